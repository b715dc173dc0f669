//! The proxy's side of governance (`--policy`, `--state-dir`): buffering and checking the
//! request body with [`codex_proxy_governance::Governor`], the refusal response, the usage tap
//! on the response body, and the ledger's writer and sync tasks. All decisions are the
//! governance crate's; this file only connects them to hyper and tokio.
//!
//! Ledger I/O stays off the request path: a finished response queues its record and wakes the
//! writer task, which runs in the same event-loop round and writes every queued record with one
//! `write(2)`; once a second the sync task hands the file to a blocking thread for `fdatasync`.
//!
//! Without `--policy` nothing here runs: request bodies stream upstream as before. With it, the
//! request body is read to its end first (within `--max-body-bytes` and the body-idle timeout),
//! checked, possibly rewritten, and sent as one buffered body.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use codex_proxy_governance::{Admitted, Governor, UsageTap, clock};
use tokio::sync::Notify;

/// The governor, the writer task's wake-up, and the bytes of request bodies being buffered.
pub struct Governed {
    pub governor: Governor,
    flush: Notify,
    /// Request-body bytes held right now by governed requests (read, not yet sent upstream).
    buffered: AtomicU64,
    /// `--max-buffered-bytes` (at least `--max-body-bytes`).
    buffer_cap: u64,
}

impl Governed {
    pub fn new(governor: Governor, buffer_cap: u64) -> Arc<Self> {
        Arc::new(Self {
            governor,
            flush: Notify::new(),
            buffered: AtomicU64::new(0),
            buffer_cap,
        })
    }

    /// Starts the ledger's writer and once-a-second sync tasks (on the current runtime).
    pub fn spawn_tasks(self: &Arc<Self>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                me.flush.notified().await;
                me.governor.flush(clock::now_ms());
            }
        });
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // Retries a failed write too (fail closed until it succeeds).
                me.governor.flush(clock::now_ms());
                if let Some(f) = me.governor.sync_handle() {
                    match tokio::task::spawn_blocking(move || f.sync_data()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => me.governor.sync_failed(&e),
                        Err(e) => me
                            .governor
                            .sync_failed(&std::io::Error::other(e.to_string())),
                    }
                }
            }
        });
    }

    /// At shutdown, after the drain: every record written and synced.
    pub fn finish(&self) {
        self.governor.tick(clock::now_ms());
    }
}

use crate::audit::{AuditRecord, Governance, Outcome};
use crate::body::{BodyTap, RequestBody, RequestBodyError, ResponseBody};

/// The body sent upstream: the client's, streamed (no policy), or the checked one, buffered
/// (its bytes counted against `--max-buffered-bytes` until the body is dropped).
pub enum UpstreamBody {
    Streamed(RequestBody),
    Buffered(Option<Bytes>, BufferCharge),
}

/// Request-body bytes one governed request holds, counted in [`Governed`]'s total; given back
/// when dropped (the body sent, refused, or the client gone).
pub struct BufferCharge {
    governed: Arc<Governed>,
    bytes: u64,
}

impl BufferCharge {
    fn new(governed: &Arc<Governed>) -> Self {
        Self {
            governed: Arc::clone(governed),
            bytes: 0,
        }
    }

    /// Counts `n` more bytes; false when the total would go over the cap (nothing counted).
    fn add(&mut self, n: u64) -> bool {
        let cap = self.governed.buffer_cap;
        let ok = self
            .governed
            .buffered
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                t.checked_add(n).filter(|&v| v <= cap)
            })
            .is_ok();
        if ok {
            self.bytes += n;
        }
        ok
    }
}

impl Drop for BufferCharge {
    fn drop(&mut self) {
        self.governed
            .buffered
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, RequestBodyError>>> {
        match self.get_mut() {
            UpstreamBody::Streamed(b) => Pin::new(b).poll_frame(cx),
            UpstreamBody::Buffered(b, _) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Streamed(b) => b.is_end_stream(),
            UpstreamBody::Buffered(b, _) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Streamed(b) => b.size_hint(),
            UpstreamBody::Buffered(Some(b), _) => SizeHint::with_exact(b.len() as u64),
            UpstreamBody::Buffered(None, _) => SizeHint::with_exact(0),
        }
    }
}

/// A JSON refusal: 400/403/429/503 with `Retry-After` when the limit resets; the connection
/// is kept (unlike the proxy's own refusals: a policy refusal is an ordinary answer that a
/// client may follow with an allowed request).
fn refusal_response(
    status: u16,
    body: Vec<u8>,
    retry_after: Option<u64>,
    mut audit: AuditRecord,
) -> Response<ResponseBody> {
    audit.status = status;
    audit.outcome = Outcome::Refused;
    let mut resp = Response::new(ResponseBody::full(Bytes::from(body), Some(audit)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(s) = retry_after {
        if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
            resp.headers_mut().insert(http::header::RETRY_AFTER, v);
        }
    }
    resp
}

/// Reads the request body to its end, checks it, and returns what to send upstream (with the
/// audit record, now naming the model and rule), or the answer to give instead (the body's own
/// errors: 413/408/400; the policy's refusals). `tee` (the dump's copy of the request body) is
/// replaced by the rewritten body.
pub async fn admit(
    governed: &Arc<Governed>,
    mut body: RequestBody,
    tee: Option<&Arc<Mutex<Vec<u8>>>>,
    mut audit: AuditRecord,
) -> Result<(UpstreamBody, Admitted, AuditRecord), Response<ResponseBody>> {
    // Read whole, every chunk counted against `--max-buffered-bytes` first (outside review
    // round 12, F4: every connection may hold a body of up to `--max-body-bytes`).
    let mut charge = BufferCharge::new(governed);
    let mut chunks: Vec<Bytes> = Vec::new();
    loop {
        let err = match body.frame().await {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if charge.add(data.len() as u64) => {
                    chunks.push(data);
                    continue;
                }
                Ok(_) => None,
                Err(_) => continue, // trailers: the request body drops them already
            },
            Some(Err(e)) => Some(e),
        };
        let (status, code, message) = match &err {
            Some(RequestBodyError::TooLarge { .. }) => (413, "body_too_large", None),
            Some(RequestBodyError::IdleTimeout(_)) => (408, "body_timeout", None),
            Some(RequestBodyError::Client(_)) => (400, "bad_request_body", None),
            None => (
                503,
                "proxy_busy",
                Some("the proxy holds too many request bodies being checked; retry shortly"),
            ),
        };
        if err.is_none() {
            tracing::warn!(
                uid = audit.uid,
                cap = governed.buffer_cap,
                "governed request bodies at their buffer cap (--max-buffered-bytes): 503"
            );
        }
        audit.reason = Some(code.into());
        let message = match (&err, message) {
            (Some(e), _) => e.to_string(),
            (None, Some(m)) => m.to_string(),
            (None, None) => String::new(),
        };
        let body = serde_json::json!({"error": {
            "message": message, "type": "proxy_error", "code": code, "status": status,
        }});
        let retry = err.is_none().then_some(1);
        let mut resp = refusal_response(status, format!("{body}\n").into_bytes(), retry, audit);
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        return Err(resp);
    }
    let bytes = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut all = Vec::with_capacity(usize::try_from(charge.bytes).unwrap_or(0));
            for c in &chunks {
                all.extend_from_slice(c);
            }
            drop(chunks);
            Bytes::from(all)
        }
    };
    match governed.governor.admit(audit.uid, &bytes, clock::now_ms()) {
        Ok(mut admitted) => {
            let send = match admitted.body.take() {
                Some(rewritten) => {
                    if let Some(tee) = tee {
                        if let Ok(mut t) = tee.lock() {
                            t.clone_from(&rewritten);
                        }
                    }
                    Bytes::from(rewritten)
                }
                None => bytes,
            };
            audit.governance = Some(Governance {
                model: Some(admitted.model.clone()),
                decision: if admitted.clamped {
                    "clamped"
                } else {
                    "allowed"
                },
                rule: admitted.rule.to_string(),
                ..Governance::default()
            });
            Ok((UpstreamBody::Buffered(Some(send), charge), admitted, audit))
        }
        Err(refusal) => {
            audit.reason = Some(refusal.code.into());
            audit.governance = Some(Governance {
                decision: "refused",
                rule: refusal.rule.clone(),
                ..Governance::default()
            });
            Err(refusal_response(
                refusal.status,
                refusal.body(),
                refusal.retry_after_s,
                audit,
            ))
        }
    }
}

/// The usage tap on an admitted request's response body; records the usage when the body ends
/// (or is abandoned).
pub struct ResponseTap {
    governed: Arc<Governed>,
    admitted: Admitted,
    tap: UsageTap,
    status: u16,
    /// Response body bytes seen (for the estimate when no usage comes).
    seen: u64,
}

impl ResponseTap {
    pub fn new(
        governed: Arc<Governed>,
        admitted: Admitted,
        headers: &http::HeaderMap,
        status: u16,
    ) -> Self {
        let ct = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        Self {
            governed,
            admitted,
            tap: UsageTap::for_content_type(ct),
            status,
            seen: 0,
        }
    }
}

impl BodyTap for ResponseTap {
    /// Bytes on their way to the client.
    fn observe(&mut self, data: &[u8]) {
        self.seen += data.len() as u64;
        self.tap.observe(data);
    }

    /// The body ended: the ledger record, and the tokens in the audit line. A successful
    /// response that did not reach its end (`complete` false: cut by the upstream, or abandoned
    /// by the client and its rest unreadable) without reporting usage is charged
    /// [`Admitted::estimate`] (r12 F1: such responses were free).
    fn finish(self: Box<Self>, audit: Option<&mut AuditRecord>, complete: bool) {
        let mut result = self.tap.finish();
        if !complete && result.usage.is_none() && (200..300).contains(&self.status) {
            result.usage = Some(self.admitted.estimate(self.seen));
            result.anomaly = Some("no usage reported before the response ended: estimated");
        }
        if let Some(why) = result.anomaly {
            tracing::warn!(uid = self.admitted.uid, model = %self.admitted.model, anomaly = why, "upstream usage not trusted in full");
        }
        let rec =
            self.governed
                .governor
                .record(&self.admitted, &result, self.status, clock::now_ms());
        self.governed.flush.notify_one();
        if let Some(g) = audit.and_then(|a| a.governance.as_mut()) {
            if result.usage.is_some() {
                g.input_tokens = Some(rec.usage.input_tokens);
                g.cached_input_tokens = Some(rec.usage.cached_input_tokens);
                g.output_tokens = Some(rec.usage.output_tokens);
            }
            g.cost = (rec.cost > 0.0).then_some(rec.cost);
            g.anomaly = result.anomaly;
        }
    }
}
