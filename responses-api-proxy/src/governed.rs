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

use codex_proxy_governance::{Admitted, Endpoint, Governor, TapResult, UsageTap, clock};
use tokio::sync::Notify;

/// The governor, the writer task's wake-up, the bytes of request bodies being buffered, and the
/// responses not booked yet.
pub struct Governed {
    pub governor: Governor,
    flush: Notify,
    /// Request-body bytes held right now by governed requests (read, not yet sent upstream).
    buffered: AtomicU64,
    /// `--max-buffered-bytes` (at least `--max-body-bytes`).
    buffer_cap: u64,
    /// The most one uid holds of `buffer_cap` (see [`user_share`]); peers whose uid is not
    /// known share one count.
    user_share: u64,
    buffered_by_uid: Mutex<std::collections::HashMap<Option<u32>, u64>>,
    /// Every response with a usage tap that has not been booked yet (streaming, or read on after
    /// its client left): at shutdown each is booked with its estimate ([`Governed::finish`]).
    open: Mutex<std::collections::HashMap<u64, Arc<OpenResponse>>>,
    next_open: AtomicU64,
}

/// A response not booked yet (see [`Governed::open`]).
pub struct OpenResponse {
    admitted: Admitted,
    status: u16,
    /// Response body bytes seen (for the estimate when no usage comes).
    seen: AtomicU64,
    /// Booked (by its tap, or by the shutdown): exactly once.
    booked: std::sync::atomic::AtomicBool,
}

impl OpenResponse {
    /// Claims the booking; false when it was already booked.
    fn claim(&self) -> bool {
        !self.booked.swap(true, Ordering::AcqRel)
    }
}

impl Governed {
    /// `buffer_cap`: `--max-buffered-bytes`; `max_body`: `--max-body-bytes`.
    pub fn new(governor: Governor, buffer_cap: u64, max_body: u64) -> Arc<Self> {
        Arc::new(Self {
            governor,
            flush: Notify::new(),
            buffered: AtomicU64::new(0),
            buffer_cap,
            user_share: user_share(buffer_cap, max_body),
            buffered_by_uid: Mutex::new(std::collections::HashMap::new()),
            open: Mutex::new(std::collections::HashMap::new()),
            next_open: AtomicU64::new(0),
        })
    }

    fn open_responses(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Arc<OpenResponse>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
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

    /// The governor's decision on a request body (HTTP) or a `response.create` message
    /// (WebSocket), after the proxy's own per-user cap on reads of abandoned responses (429
    /// `abandoned_reads`: outside review r13 F4).
    #[allow(clippy::result_large_err)] // the governor's own answer, passed on as it is
    fn admit_body(
        &self,
        uid: Option<u32>,
        body: &[u8],
        endpoint: Endpoint,
    ) -> Result<Admitted, codex_proxy_governance::Refusal> {
        if uid.is_some_and(crate::body::at_abandoned_reads_cap) {
            return Err(codex_proxy_governance::Refusal {
                status: 429,
                code: "abandoned_reads",
                rule: "proxy.abandoned_reads".into(),
                message: format!(
                    "{} responses you left are still being read for their usage; retry when they end",
                    crate::body::DRAIN_MAX_PER_USER
                ),
                limit: Some(crate::body::DRAIN_MAX_PER_USER.into()),
                resets_at_ms: None,
                retry_after_s: Some(5),
            });
        }
        self.governor
            .admit_for(uid, body, endpoint, clock::now_ms())
    }

    /// [`Governed::admit_body`], for a body larger than [`off_loop::CHECK_INLINE_BYTES`] on a thread
    /// of the blocking pool, one at a time per uid ([`off_loop::run`]): the event loop goes
    /// on serving every other request meanwhile (outside review r73 F1: a 10 MB body of 170,000
    /// input items took 0.3 s to check; 16 of them at once held every other user's requests for
    /// 1.3 s, up to 4 s).
    #[allow(clippy::result_large_err)] // the governor's own answer, passed on as it is
    pub async fn admit_body_off_loop(
        self: &Arc<Self>,
        uid: Option<u32>,
        body: Bytes,
        endpoint: Endpoint,
    ) -> Result<Admitted, codex_proxy_governance::Refusal> {
        if body.len() <= off_loop::CHECK_INLINE_BYTES {
            return self.admit_body(uid, &body, endpoint);
        }
        let me = Arc::clone(self);
        let checked = off_loop::run(uid, move || me.admit_body(uid, &body, endpoint)).await;
        checked.unwrap_or_else(|e| {
            tracing::error!(error = %e, "the check of a large request body failed");
            Err(codex_proxy_governance::Refusal {
                status: 500,
                code: "internal_error",
                rule: "proxy".into(),
                message: "the proxy could not check this request body".into(),
                limit: None,
                resets_at_ms: None,
                retry_after_s: None,
            })
        })
    }

    /// Books a finished response: when it reported no usage and `estimate` names why it is to
    /// be charged anyway, its [`Admitted::estimate`] (over `seen` response bytes), and the same
    /// for each bad count (output above the request's `max_output_tokens` included: outside
    /// review r18 F5); the reservation released and the ledger
    /// record queued (writer woken); the tokens, cost and anomaly into `audit`. The one place
    /// HTTP responses, WebSocket responses and the shutdown book through.
    pub fn book(
        &self,
        admitted: &Admitted,
        mut result: TapResult,
        status: u16,
        seen: u64,
        estimate: Option<&'static str>,
        audit: Option<&mut AuditRecord>,
    ) {
        if let (None, Some(why)) = (result.usage, estimate) {
            result.usage = Some(admitted.estimate(seen));
            result.anomaly = Some(why);
        } else if estimate.is_some() {
            result.flag_implausible_output(admitted.max_output_tokens);
            if result.charge_estimate_for_bad(admitted.estimate(seen)) {
                // A bad count is a missing one (outside review r15 F9).
                result.anomaly = Some("bad usage numbers: estimated");
            }
        }
        if let Some(why) = result.anomaly {
            tracing::warn!(uid = admitted.uid, model = %admitted.model, anomaly = why, "upstream usage not trusted in full");
        }
        let rec = self
            .governor
            .record(admitted, &result, status, clock::now_ms());
        self.flush.notify_one();
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

    /// At shutdown, after the drain: every response not booked yet (still streaming at the
    /// drain deadline, or being read on after its client left) is booked with its estimate
    /// (outside review r13 F1: a client that left when the drain began, or kept its streams open
    /// through a restart, was never charged), then every record is written and synced.
    pub fn finish(&self) {
        let open: Vec<Arc<OpenResponse>> = self.open_responses().drain().map(|(_, o)| o).collect();
        let mut booked = 0usize;
        for o in open {
            if o.claim() && (200..300).contains(&o.status) {
                self.book(
                    &o.admitted,
                    TapResult::default(),
                    o.status,
                    o.seen.load(Ordering::Relaxed),
                    Some("the proxy stopped before the response ended: estimated"),
                    None,
                );
                booked += 1;
            }
        }
        if booked > 0 {
            tracing::warn!(
                responses = booked,
                "responses still open at shutdown: each charged its estimate"
            );
        }
        self.governor.tick(clock::now_ms());
    }
}

use crate::audit::{AuditRecord, Governance, Outcome};
use crate::body::{BodyTap, RequestBody, RequestBodyError, ResponseBody};
use crate::off_loop;

/// The body sent upstream: the client's, streamed (no policy), or the checked one, buffered
/// (its bytes counted against `--max-buffered-bytes` until the body is dropped).
pub enum UpstreamBody {
    Streamed(RequestBody),
    Buffered(Option<Bytes>, BufferCharge),
}

/// The most of `--max-buffered-bytes` one uid may hold: a quarter, but never less than one
/// body of `--max-body-bytes` (nor more than the cap). Without it one user filled the whole
/// buffer with bodies sent slowly, and every other user's governed request got 503.
pub fn user_share(buffer_cap: u64, max_body: u64) -> u64 {
    (buffer_cap / 4).max(max_body).min(buffer_cap)
}

/// Which limit a [`BufferCharge`] ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BufferFull {
    /// `--max-buffered-bytes`, all users together.
    Proxy,
    /// The uid's share of it ([`user_share`]).
    User,
}

impl BufferFull {
    /// The refusal's message (code `proxy_busy`, 503).
    pub(crate) fn message(self) -> &'static str {
        match self {
            BufferFull::Proxy => {
                "the proxy holds too many request bodies being checked; retry shortly"
            }
            BufferFull::User => {
                "your requests hold your share of the proxy's buffer for request bodies being checked (a quarter of --max-buffered-bytes); retry when they have been sent"
            }
        }
    }
}

/// Request-body bytes one governed request holds, counted in [`Governed`]'s total and in its
/// uid's; given back when dropped (the body sent, refused, or the client gone).
pub struct BufferCharge {
    governed: Arc<Governed>,
    uid: Option<u32>,
    bytes: u64,
}

impl BufferCharge {
    /// An empty charge for a request (or waiting WebSocket message) of `uid`.
    pub(crate) fn new(governed: &Arc<Governed>, uid: Option<u32>) -> Self {
        Self {
            governed: Arc::clone(governed),
            uid,
            bytes: 0,
        }
    }

    fn by_uid(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<Option<u32>, u64>> {
        self.governed
            .buffered_by_uid
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `n` more bytes; refused (nothing counted) when the uid's share or the total would
    /// go over.
    pub(crate) fn add(&mut self, n: u64) -> Result<(), BufferFull> {
        let g = &self.governed;
        let mut by_uid = self.by_uid();
        let held = by_uid.entry(self.uid).or_insert(0);
        match held.checked_add(n) {
            Some(v) if v <= g.user_share => *held = v,
            _ => return Err(BufferFull::User),
        }
        let cap = g.buffer_cap;
        let ok = g
            .buffered
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                t.checked_add(n).filter(|&v| v <= cap)
            })
            .is_ok();
        if !ok {
            *held -= n;
            if *held == 0 {
                by_uid.remove(&self.uid);
            }
            return Err(BufferFull::Proxy);
        }
        drop(by_uid);
        self.bytes += n;
        Ok(())
    }
}

impl Drop for BufferCharge {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        self.governed
            .buffered
            .fetch_sub(self.bytes, Ordering::AcqRel);
        let bytes = self.bytes;
        let uid = self.uid;
        let mut by_uid = self.by_uid();
        if let Some(held) = by_uid.get_mut(&uid) {
            *held = held.saturating_sub(bytes);
            if *held == 0 {
                by_uid.remove(&uid);
            }
        }
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

/// A governed request whose body is coded (`Content-Encoding` other than `identity`): 415. The
/// policy reads the body as plain JSON; forwarded with the header, the upstream could read
/// another request than the one checked (outside review r73 F2: `content-encoding: br` went
/// upstream with the rewritten plain body). `Ok`: no coding, go on with `audit`.
#[allow(clippy::result_large_err)] // the answer itself, returned at once
pub fn refuse_coded_body(
    coding: http::header::GetAll<'_, HeaderValue>,
    mut audit: AuditRecord,
) -> Result<AuditRecord, Response<ResponseBody>> {
    // every header line and every listed coding (outside review r77 F1: a second
    // `Content-Encoding: br` line after `identity` went upstream)
    let plain = coding.iter().all(|v| {
        v.to_str().is_ok_and(|c| {
            c.split(',')
                .all(|c| c.trim().eq_ignore_ascii_case("identity"))
        })
    });
    if plain {
        return Ok(audit);
    }
    audit.reason = Some("coded_body".into());
    audit.governance = Some(Governance {
        decision: "refused",
        rule: "proxy.content_encoding".into(),
        ..Governance::default()
    });
    Err(proxy_error(
        415,
        "coded_body",
        "a request body with a Content-Encoding cannot be checked by the policy: send it uncoded",
        None,
        audit,
    ))
}

/// The proxy's own refusal of a governed request (not the policy's): `{"error": {"message",
/// "type": "proxy_error", "code", "status"}}`.
fn proxy_error(
    status: u16,
    code: &str,
    message: &str,
    retry_after: Option<u64>,
    audit: AuditRecord,
) -> Response<ResponseBody> {
    let body = serde_json::json!({"error": {
        "message": message, "type": "proxy_error", "code": code, "status": status,
    }});
    refusal_response(status, format!("{body}\n").into_bytes(), retry_after, audit)
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
    let mut charge = BufferCharge::new(governed, audit.uid);
    let mut chunks: Vec<Bytes> = Vec::new();
    loop {
        let (err, full) = match body.frame().await {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => match charge.add(data.len() as u64) {
                    Ok(()) => {
                        chunks.push(data);
                        continue;
                    }
                    Err(full) => (None, Some(full)),
                },
                Err(_) => continue, // trailers: the request body drops them already
            },
            Some(Err(e)) => (Some(e), None),
        };
        let (status, code, message) = match (&err, full) {
            (Some(RequestBodyError::TooLarge { .. }), _) => (413, "body_too_large", None),
            (Some(RequestBodyError::IdleTimeout(_)), _) => (408, "body_timeout", None),
            (Some(RequestBodyError::Client(_)), _) => (400, "bad_request_body", None),
            (None, full) => (
                503,
                "proxy_busy",
                Some(full.unwrap_or(BufferFull::Proxy).message()),
            ),
        };
        match full {
            Some(BufferFull::Proxy) => tracing::warn!(
                uid = audit.uid,
                cap = governed.buffer_cap,
                "governed request bodies at their buffer cap (--max-buffered-bytes): 503"
            ),
            Some(BufferFull::User) => tracing::warn!(
                uid = audit.uid,
                share = governed.user_share,
                "one user's governed request bodies at their share of the buffer cap (--max-buffered-bytes / 4): 503"
            ),
            None => {}
        }
        audit.reason = Some(code.into());
        let message = match (&err, message) {
            (Some(e), _) => e.to_string(),
            (None, Some(m)) => m.to_string(),
            (None, None) => String::new(),
        };
        let retry = err.is_none().then_some(1);
        let mut resp = proxy_error(status, code, &message, retry, audit);
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
    // the compaction endpoint takes another body (outside review r96 F1)
    let endpoint = if audit.path == crate::policy::COMPACT_PATH {
        Endpoint::Compact
    } else {
        Endpoint::Responses
    };
    match governed
        .admit_body_off_loop(audit.uid, bytes.clone(), endpoint)
        .await
    {
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

/// A WebSocket response (`response.create`) admitted and not booked yet: registered with the
/// open responses, so that a shutdown that stops the proxy before its session books it charges
/// its estimate (outside review r36 F2: such responses, read on after their clients left past
/// the drain deadline, were never charged).
pub struct OpenTicket {
    governed: Arc<Governed>,
    open: Arc<OpenResponse>,
    id: u64,
}

impl Governed {
    /// Registers `admitted` as an open response (status 200: the upgrade succeeded).
    pub fn open_ticket(self: &Arc<Self>, admitted: Admitted) -> OpenTicket {
        let open = Arc::new(OpenResponse {
            admitted,
            status: 200,
            seen: AtomicU64::new(0),
            booked: std::sync::atomic::AtomicBool::new(false),
        });
        let id = self.next_open.fetch_add(1, Ordering::Relaxed);
        self.open_responses().insert(id, Arc::clone(&open));
        OpenTicket {
            governed: Arc::clone(self),
            open,
            id,
        }
    }
}

impl OpenTicket {
    /// Message bytes relayed for it (the estimate's measure if the shutdown books it).
    pub fn saw(&self, n: u64) {
        self.open.seen.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes it off the open responses: the admission to book, or `None` when the shutdown
    /// booked it already.
    pub fn take(self) -> Option<Arc<OpenResponse>> {
        self.governed.open_responses().remove(&self.id);
        self.open.claim().then_some(self.open)
    }
}

impl OpenResponse {
    /// The admission this response was let through with.
    pub fn admitted(&self) -> &Admitted {
        &self.admitted
    }
}

/// The usage tap on an admitted request's response body; records the usage when the body ends
/// (or is abandoned).
pub struct ResponseTap {
    governed: Arc<Governed>,
    open: Arc<OpenResponse>,
    id: u64,
    tap: UsageTap,
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
        let open = Arc::new(OpenResponse {
            admitted,
            status,
            seen: AtomicU64::new(0),
            booked: std::sync::atomic::AtomicBool::new(false),
        });
        let id = governed.next_open.fetch_add(1, Ordering::Relaxed);
        governed.open_responses().insert(id, Arc::clone(&open));
        Self {
            governed,
            open,
            id,
            tap: UsageTap::for_content_type(ct),
        }
    }
}

impl BodyTap for ResponseTap {
    fn uid(&self) -> Option<u32> {
        Some(self.open.admitted.uid)
    }

    /// Bytes on their way to the client.
    fn observe(&mut self, data: &[u8]) {
        self.open
            .seen
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.tap.observe(data);
    }

    /// The body ended: the ledger record, and the tokens in the audit line. A successful
    /// response that reported no usage (cut by the upstream, abandoned by the client and its
    /// rest unreadable, or ended without a usage object) is charged [`Admitted::estimate`]
    /// (r12 F1, r13 F3: such responses were free).
    fn finish(self: Box<Self>, audit: Option<&mut AuditRecord>, complete: bool) {
        self.governed.open_responses().remove(&self.id);
        if !self.open.claim() {
            return; // booked by the shutdown
        }
        let status = self.open.status;
        // A successful response without usage is charged its estimate whether it was cut or
        // ended normally (outside review r13 F3: a stream without a terminal event, one ending
        // in an `error` event, a close-delimited body, a JSON answer without `usage` were free).
        let estimate = (200..300).contains(&status).then_some(if complete {
            "the response reported no usage: estimated"
        } else {
            "no usage reported before the response ended: estimated"
        });
        self.governed.book(
            &self.open.admitted,
            self.tap.finish(),
            status,
            self.open.seen.load(Ordering::Relaxed),
            estimate,
            audit,
        );
    }
}
