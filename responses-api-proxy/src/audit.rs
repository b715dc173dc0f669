//! One audit line per request, written when the response is finished (or abandoned): peer, uid
//! where known, method, path, status, bytes each way, duration, upstream request id, outcome.
//! Never the key, never header values other than the upstream request id, never bodies.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crate::cli::LogFormat;

/// Sets up the stderr log: text or one JSON object per line. `RUST_LOG` can raise verbosity of
/// the proxy's own targets; dependency logs stay at `warn` (they could print header values).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(tracing::Level::INFO.into())
        .from_env_lossy()
        .add_directive(
            "hyper=warn"
                .parse()
                .unwrap_or_else(|_| tracing::Level::WARN.into()),
        )
        .add_directive(
            "hyper_util=warn"
                .parse()
                .unwrap_or_else(|_| tracing::Level::WARN.into()),
        )
        .add_directive(
            "rustls=warn"
                .parse()
                .unwrap_or_else(|_| tracing::Level::WARN.into()),
        )
        .add_directive(
            "h2=warn"
                .parse()
                .unwrap_or_else(|_| tracing::Level::WARN.into()),
        );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// How an exchange ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Response written to the end.
    Complete,
    /// Refused by the proxy (policy or peer authorization).
    Refused,
    /// The client went away before the end; the upstream request was dropped.
    ClientGone,
    /// The upstream failed before (502) or during the response.
    UpstreamError,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Refused => "refused",
            Outcome::ClientGone => "client_gone",
            Outcome::UpstreamError => "upstream_error",
        }
    }
}

/// The record of one exchange; logs itself when dropped (after the response body ends or is
/// abandoned), so every request yields exactly one line.
#[derive(Debug)]
pub struct AuditRecord {
    pub peer: String,
    pub uid: Option<u32>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub bytes_in: Arc<AtomicU64>,
    pub bytes_out: u64,
    pub start: Instant,
    pub request_id: Option<String>,
    pub outcome: Outcome,
    /// Why it was refused (a fixed policy code or the peer authorizer's reason).
    pub reason: Option<String>,
    /// Decremented on drop: the connection's in-flight count (eviction looks at it).
    pub in_flight: Option<Arc<AtomicUsize>>,
}

impl AuditRecord {
    pub fn new(peer: String, uid: Option<u32>, method: &http::Method, path: &str) -> Self {
        Self {
            peer,
            uid,
            method: method.as_str().to_string(),
            // Only the path: a query string could carry anything and is refused anyway.
            path: path.chars().take(256).collect(),
            status: 0,
            bytes_in: Arc::new(AtomicU64::new(0)),
            bytes_out: 0,
            start: Instant::now(),
            request_id: None,
            outcome: Outcome::Complete,
            reason: None,
            in_flight: None,
        }
    }
}

impl Drop for AuditRecord {
    fn drop(&mut self) {
        if let Some(n) = self.in_flight.take() {
            n.fetch_sub(1, Ordering::AcqRel);
        }
        let duration_ms = self.start.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(
            target: "audit",
            peer = %self.peer,
            uid = self.uid,
            method = %self.method,
            path = %self.path,
            status = self.status,
            bytes_in = self.bytes_in.load(Ordering::Relaxed),
            bytes_out = self.bytes_out,
            duration_ms = (duration_ms * 1000.0).round() / 1000.0,
            upstream_request_id = self.request_id.as_deref(),
            outcome = self.outcome.as_str(),
            reason = self.reason.as_deref(),
            "request"
        );
    }
}
