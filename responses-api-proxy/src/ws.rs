//! The Responses API WebSocket mode: `GET /v1/responses` with `Upgrade: websocket`, then
//! `response.create` messages from the client and the usual Responses events from the upstream,
//! one JSON text message each (the Codex CLI uses it when its provider sets
//! `supports_websockets = true`).
//!
//! **The upgrade** goes through the same checks as any request (`proxy::handle`: the peer
//! verdict, then [`crate::policy::Admission::check`]: no `Origin`, no browser headers, a
//! loopback `Host` with the proxy's port, no query); only `GET /v1/responses` may upgrade. The
//! proxy then opens its own WebSocket to the upstream **before** it answers `101`, so an upstream
//! that refuses (or is down) gives the client an ordinary HTTP error and it can fall back to
//! HTTP.
//!
//! **The key.** Both handshakes are written here, not by the WebSocket library: the upstream's
//! request head is sent with one `writev` of three pieces, the middle one the `Authorization`
//! value's bytes in the locked page ([`crate::key::ApiKey::bytes_for_upstream`]), on a connection
//! from [`crate::client::UpstreamClient::connect_dedicated`] (the same address order, plain-http
//! owner check and TLS configuration as HTTP requests; over TLS rustls encrypts the record in
//! place). The relay's frame codec ([`crate::ws_frame`]) only runs on the connection once both
//! sides have switched, so it never sees the key: no heap copy of the key is made, nothing to
//! wipe (tokio-tungstenite provides the handshake's key and accept values, nothing else). The
//! client's own `Authorization`, cookies, `Sec-WebSocket-*` and hop-by-hop headers are not
//! forwarded (the HTTP header table, plus the handshake's own headers). After the handshake
//! the session keeps no [`ApiKey`], only its scrubber's handle on the page; a rotation that
//! retires the key ends the session (1001) once its response in flight, if any, has ended, so
//! the old page is wiped and no session talks upstream with a retired key (outside review r15
//! F4: idle sessions pinned every page and made rotation fail).
//!
//! **Messages.** Text only: a binary message from the client closes the session with 1008
//! (policy violation); one larger than `--max-body-bytes` closes it with 1009 (refused from its
//! frame header, before the payload is waited for). Upstream messages may be up to
//! [`UPSTREAM_MAX_MESSAGE`] (a `response.completed` repeats the whole output). An upstream
//! message that carries the key is masked before it reaches the client, and so is the rest of a
//! key begun in earlier text deltas ([`DeltaScrub`]: no message is held back, so the earlier
//! ones have left with a prefix; outside review r15 F8).
//! No message in either direction for `--ws-idle-timeout` closes the session (1001). No
//! compression extension is negotiated: the proxy must read the messages it checks and counts.
//!
//! **The relay** frames with [`crate::ws_frame`], not a WebSocket library (issue 13: parsing
//! every upstream message into a library `Message`, copying and re-framing it cost 2-3x nginx's
//! CPU per response). Each side is a `Side`: a read buffer, the frames decoded from it, an
//! output buffer written with one write. Upstream to client, the hot path: every upstream text
//! message that came in one frame is UTF-8 checked, scrubbed (`Session::scrub`, same length)
//! and scanned for usage in place in the read buffer, then its frame is appended to the
//! client's output **as the same bytes** (server frames are unmasked on both hops); everything
//! whole in the buffer is relayed, then written with one write, and nothing waits for more. A
//! fragmented upstream message is assembled first (the scrub and the usage scan see it whole)
//! and re-framed. Client to upstream: frames unmasked, limits checked from the header, text
//! UTF-8 checked (1007) and sent upstream masked with a fresh random key per frame. Pings are
//! answered on the side they came from; a close frame is answered by echoing its code; a frame
//! breaking RFC 6455 ends the session (1002 to a client that sent it; 1011 to the client when
//! the upstream did).
//!
//! **Policy** (`--policy`): each `response.create` is checked by
//! [`codex_proxy_governance::Governor::admit`] exactly like an HTTP request body (its request
//! fields sit at the top level, next to `"type"`). A refused one is answered with an `error`
//! event in the shape the Codex CLI reads (`{"type":"error","status":403,"error":{...}}`, the
//! HTTP refusal's error object) and is not forwarded; the connection stays open for the next
//! message. An admitted one may be rewritten (store forced, output ceiling clamped). Other
//! message types are forwarded only when they cannot start a response (`response.processed`);
//! anything else is refused the same way (fail closed). Usage is read from the upstream's
//! `response.completed` / `response.incomplete` / `response.failed` events and recorded for
//! the peer's uid, one response at a time in the order they were created. A client that leaves
//! while responses are in flight: the proxy reads on (within the idle timeout) for their usage,
//! and charges [`codex_proxy_governance::Admitted::estimate`] for any that never reported it.
//!
//! **Audit.** One line per session when it ends (`GET /v1/responses`, status 101, bytes both
//! ways, how it ended) and one per `response.create` (method `WS`: its model, tokens, decision
//! and rule with a policy; refused ones too).
//!
//! **Shutdown** (and key rotation, and the session's lifetime). On SIGTERM (or `/shutdown`) a
//! session with no response in flight is closed at once (1001, "proxy shutting down"); one with a response in flight relays it to its end and
//! then closes; a `response.create` that arrives meanwhile gets an `error` event (503). Sessions
//! count as connections with a request in flight: they are never evicted for a new connection,
//! and the shutdown drain waits for them (within its deadline).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use codex_proxy_governance::usage::{JsonScanner, Layout, TapResult};

use crate::audit::{AuditRecord, Governance, Outcome};
use crate::body::ResponseBody;
use crate::client::UpstreamClient;
use crate::client::{SendError, UpstreamIo};
use crate::governed::{BufferCharge, BufferFull, Governed};
use crate::key::ApiKey;
use crate::off_loop;
use crate::policy::{Direction, forwardable_headers};
use crate::scrub::{DeltaScrub, KeyScrub};
use crate::upstream::Upstream;
use crate::wire::{MAX_RESPONSE_HEAD, parse_response_head};
use crate::ws_frame::{self, FrameError, Message, Opcode, Peer, code};

/// How many booked response ids a session remembers (see `Session::booked`).
const BOOKED_IDS: usize = 16;

/// Largest upstream message relayed (a `response.completed` carries the whole response again;
/// generated images inside it are base64).
pub const UPSTREAM_MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// Longest the upstream WebSocket handshake may take once connected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closing side gets to answer our close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Room made in a session's read buffer before each read (a response's burst of messages is a
/// few KiB).
const READ_CHUNK: usize = 16 * 1024;
/// Most a read buffer grows at once ahead of a large frame's payload.
const READ_AHEAD_MAX: usize = 1024 * 1024;
/// Longest a session lives (the Responses API's own WebSocket sessions end after 60 minutes):
/// after it, the response in flight finishes and the session closes (outside review r15 F2: a
/// session kept alive by pings held a connection slot, and its key page, for ever).
const SESSION_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// Most WebSocket sessions one local user holds at once (outside review r15 F2: one user held
/// every connection slot); past it the upgrade gets 429. Every peer is identified (SO_PEERCRED,
/// sock_diag for loopback TCP; outside review r18 F4: without a policy or allow-list TCP peers
/// were not, and shared one count); peers whose uid the lookup could not find share one.
pub const SESSIONS_PER_USER: usize = 16;
/// With a policy, `response.create` messages waiting while a response is in flight (outside
/// review r15 F1: pipelined messages were all admitted against the budget as it stood before
/// any of them ended); past it an `error` event (429).
const WAITING_MAX: usize = 8;

/// Close reasons of a draining session.
const SHUTTING_DOWN: &str = "proxy shutting down";
const KEY_ROTATED: &str = "the proxy's API key was rotated";

static SESSIONS_BY_UID: crate::per_user::PerUser = crate::per_user::PerUser::new();

/// What an upgrade needs from the proxy's shared state and from its connection (`proxy.rs`
/// builds it; the session task owns it).
pub struct WsContext {
    pub client: UpstreamClient,
    pub upstream: Upstream,
    /// The key in force when the upgrade came: written into the upstream handshake, then
    /// dropped (see [`Session::scrub`] for the one handle the session keeps).
    pub key: Arc<ApiKey>,
    pub governor: Option<Arc<Governed>>,
    /// `--max-body-bytes`: the largest client message.
    pub max_message: u64,
    /// `--ws-idle-timeout`.
    pub idle: Duration,
    /// `true` once shutdown was requested.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The peer as the audit log writes it, and its uid.
    pub peer: Arc<str>,
    pub uid: Option<u32>,
}

/// The WebSocket session a connection switched to, if any: the connection's task waits for it
/// (so the session counts against `--max-connections` and the shutdown drain waits for it).
#[derive(Default)]
pub struct SessionSlot(Mutex<Option<tokio::task::JoinHandle<()>>>);

impl SessionSlot {
    fn set(&self, h: tokio::task::JoinHandle<()>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
    }

    /// Waits for the session (if the connection switched to one) to end.
    pub async fn wait(&self) {
        let h = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = h {
            let _ = h.await;
        }
    }
}

/// Whether a request asks to switch to WebSocket (`Upgrade: websocket`). The handshake's other
/// headers are checked by [`upgrade`].
fn header_lists(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn json_error(
    status: StatusCode,
    code: &str,
    message: &str,
    mut audit: AuditRecord,
) -> Response<ResponseBody> {
    audit.status = status.as_u16();
    let v = serde_json::json!({"error": {
        "message": message, "type": "proxy_error", "code": code, "status": status.as_u16(),
    }});
    let mut resp = Response::new(ResponseBody::full(
        Bytes::from(format!("{v}\n")),
        Some(audit),
    ));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Switching to WebSocket failed before the client got `101`.
#[derive(Debug, thiserror::Error)]
enum UpgradeError {
    #[error(transparent)]
    Connect(#[from] SendError),
    #[error("writing the upgrade request upstream failed: {0}")]
    Write(std::io::Error),
    #[error("reading the upstream's upgrade answer failed: {0}")]
    Read(std::io::Error),
    #[error("upstream closed the connection before answering the upgrade")]
    Closed,
    #[error(transparent)]
    Wire(crate::wire::WireError),
    #[error("upstream answered {0} to the WebSocket upgrade")]
    Status(StatusCode),
    #[error("upstream's WebSocket handshake is invalid: {0}")]
    Handshake(&'static str),
    #[error("the upstream WebSocket handshake took longer than {0:?}")]
    Timeout(Duration),
}

/// `GET /v1/responses` with `Upgrade: websocket`, admitted by the proxy's checks: opens the
/// upstream WebSocket, answers `101` and starts the session (see the module docs).
pub async fn upgrade(
    mut req: Request<Incoming>,
    ctx: WsContext,
    slot: &SessionSlot,
    mut audit: AuditRecord,
) -> Response<ResponseBody> {
    let headers = req.headers();
    let version_ok = headers
        .get(http::header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let client_key = headers
        .get(http::header::SEC_WEBSOCKET_KEY)
        .filter(|k| k.len() == 24)
        .cloned();
    let (true, true, Some(client_key)) = (
        header_lists(headers, &http::header::CONNECTION, "upgrade"),
        version_ok,
        client_key,
    ) else {
        audit.outcome = Outcome::Refused;
        audit.reason = Some("bad_websocket_handshake".into());
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_websocket_handshake",
            "a WebSocket upgrade needs connection: upgrade, sec-websocket-version: 13 and a \
             sec-websocket-key",
            audit,
        );
    };

    // Peers whose uid the lookup could not find share one count.
    let Some(user_session) = SESSIONS_BY_UID.take(ctx.uid.unwrap_or(u32::MAX), SESSIONS_PER_USER)
    else {
        audit.outcome = Outcome::Refused;
        audit.reason = Some("too_many_sessions".into());
        return json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_sessions",
            &format!("at most {SESSIONS_PER_USER} WebSocket sessions per local user at once"),
            audit,
        );
    };
    let opened = tokio::time::timeout(
        HANDSHAKE_TIMEOUT * 2,
        open_upstream(&ctx, &ctx.key, headers),
    )
    .await
    .unwrap_or(Err(UpgradeError::Timeout(HANDSHAKE_TIMEOUT * 2)));
    let (upstream, upstream_headers) = match opened {
        Ok(o) => o,
        Err(e) => {
            audit.outcome = Outcome::UpstreamError;
            tracing::warn!(upstream = %ctx.upstream.authority, error = %e, "upstream WebSocket failed");
            let status = match &e {
                UpgradeError::Status(s) if s.is_client_error() => *s,
                _ => StatusCode::BAD_GATEWAY,
            };
            return json_error(status, "upstream_websocket_failed", &e.to_string(), audit);
        }
    };

    let mut resp = Response::new(ResponseBody::full(Bytes::new(), None));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    // What the upstream said about the session (x-request-id, openai-model, x-codex-turn-state...)
    // goes to the client like an HTTP response's headers; the handshake's own do not.
    for (name, value) in &upstream_headers {
        if !name.as_str().starts_with("sec-websocket-") && *name != http::header::CONTENT_LENGTH {
            resp.headers_mut().append(name.clone(), value.clone());
        }
    }
    let accept =
        tokio_tungstenite::tungstenite::handshake::derive_accept_key(client_key.as_bytes());
    let h = resp.headers_mut();
    h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("upgrade"),
    );
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }

    audit.status = 101;
    audit.request_id = upstream_headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(128).collect());
    let on_upgrade = hyper::upgrade::on(&mut req);
    drop(req);
    // The key was needed for the upstream handshake only: the session keeps no `ApiKey`, only
    // the scrubber's handle on the page (to mask an echo of the key it authenticated with),
    // and ends after its response in flight once a rotation retires that key (outside review
    // r15 F4: an idle session held the page for ever and made every later rotation fail).
    let WsContext {
        client: _,
        upstream: up,
        key,
        governor,
        max_message,
        idle,
        shutdown,
        peer,
        uid,
    } = ctx;
    let scrub = KeyScrub::new(key.header());
    let retired = key.retired();
    let cut = key.cut_signal();
    // the session holds the key (its scrub's page) as this peer's, for the rotation's choice
    let holder = Arc::new(tokio::sync::Notify::new());
    key.held_by(&holder, uid);
    drop(key);
    // what the line says if the session's task is dropped at the shutdown deadline (every
    // ending sets its own)
    let mut audit = audit;
    audit.outcome = Outcome::Stopped;
    audit.reason = Some("the proxy stopped before the session ended".into());
    let session = Session {
        scrub: Some((scrub, holder)),
        rotated: false,
        client_left: false,
        retired,
        cut,
        tail: DeltaScrub::default(),
        ctx: SessionCtx {
            upstream: up,
            governor,
            max_message,
            idle,
            shutdown,
            peer,
            uid,
        },
        pending: VecDeque::new(),
        booked: VecDeque::new(),
        waiting: VecDeque::new(),
        audit,
        responses: 0,
        refused: 0,
        last_activity: tokio::time::Instant::now(),
        started: tokio::time::Instant::now(),
        _user_session: user_session,
    };
    let task = tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let limit = usize::try_from(session.ctx.max_message).unwrap_or(usize::MAX);
                let client =
                    Side::new(TokioIo::new(upgraded), BytesMut::new(), Peer::Client, limit);
                session.run(client, upstream).await;
            }
            Err(e) => {
                let mut session = session;
                session.audit.outcome = Outcome::ClientGone;
                session.audit.reason = Some(format!("websocket upgrade did not complete: {e}"));
            }
        }
    });
    slot.set(task);
    resp
}

/// Opens the upstream WebSocket: connects, writes the handshake with the key from the locked
/// page, checks the `101` answer. Returns the stream and the answer's forwardable headers (the
/// key scrubbed out of them).
async fn open_upstream(
    ctx: &WsContext,
    key: &ApiKey,
    client_headers: &HeaderMap,
) -> Result<(UpstreamWs, HeaderMap), UpgradeError> {
    let mut io = ctx.client.connect_dedicated().await?;
    let ws_key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    let target = ctx.upstream.target_for("/v1/responses");
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(b"GET ");
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    head.extend_from_slice(ctx.upstream.authority.as_str().as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &forwardable_headers(client_headers, Direction::Request) {
        if written_here(name) {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: ");
    head.extend_from_slice(ws_key.as_bytes());
    head.extend_from_slice(b"\r\nauthorization: ");
    let key_piece = key.bytes_for_upstream();
    let pieces: [&[u8]; 3] = [&head, &key_piece, b"\r\n\r\n"];
    write_all_vectored(&mut io, &pieces)
        .await
        .map_err(UpgradeError::Write)?;
    drop(key_piece);

    let mut buf = BytesMut::with_capacity(4096);
    let read = async {
        loop {
            if let Some((head, len)) =
                parse_response_head(&buf, &Method::GET).map_err(UpgradeError::Wire)?
            {
                let _ = buf.split_to(len);
                if head.status.is_informational() && head.status != StatusCode::SWITCHING_PROTOCOLS
                {
                    continue;
                }
                return Ok(head);
            }
            if buf.len() > MAX_RESPONSE_HEAD {
                return Err(UpgradeError::Wire(crate::wire::WireError::HeadTooLarge));
            }
            buf.reserve(4096);
            match io.read_buf(&mut buf).await {
                Ok(0) => return Err(UpgradeError::Closed),
                Ok(_) => {}
                Err(e) => return Err(UpgradeError::Read(e)),
            }
        }
    };
    let head = tokio::time::timeout(HANDSHAKE_TIMEOUT, read)
        .await
        .unwrap_or(Err(UpgradeError::Timeout(HANDSHAKE_TIMEOUT)))?;
    if head.status != StatusCode::SWITCHING_PROTOCOLS {
        return Err(UpgradeError::Status(head.status));
    }
    let expected = tokio_tungstenite::tungstenite::handshake::derive_accept_key(ws_key.as_bytes());
    if head
        .headers
        .get(http::header::SEC_WEBSOCKET_ACCEPT)
        .is_none_or(|v| v.as_bytes() != expected.as_bytes())
    {
        return Err(UpgradeError::Handshake(
            "sec-websocket-accept does not match the key sent",
        ));
    }
    if !header_lists(&head.headers, &http::header::UPGRADE, "websocket") {
        return Err(UpgradeError::Handshake("no upgrade: websocket"));
    }
    if head
        .headers
        .contains_key(http::header::SEC_WEBSOCKET_EXTENSIONS)
        || head
            .headers
            .contains_key(http::header::SEC_WEBSOCKET_PROTOCOL)
    {
        return Err(UpgradeError::Handshake(
            "an extension or subprotocol the proxy did not offer",
        ));
    }
    let mut headers = head.headers;
    let echoed = KeyScrub::new(key.header()).headers(&mut headers);
    if echoed > 0 {
        tracing::warn!(upstream = %ctx.upstream.authority, headers = echoed, "upstream echoed the key in its upgrade answer; overwritten");
    }
    let headers = forwardable_headers(&headers, Direction::Response);
    // what came after the `101` is the first frames
    let ws = Side::new(io, buf, Peer::Server, UPSTREAM_MAX_MESSAGE);
    Ok((ws, headers))
}

/// Headers of the client's upgrade request that the upstream handshake writes itself or never
/// sends (the WebSocket key and version are the proxy's own; no extension or subprotocol is
/// offered).
fn written_here(name: &HeaderName) -> bool {
    *name == http::header::HOST
        || *name == http::header::CONTENT_LENGTH
        || *name == http::header::TRANSFER_ENCODING
        || *name == http::header::AUTHORIZATION
        || name.as_str().starts_with("sec-websocket-")
}

/// Writes `pieces` with `writev` until all are out, then flushes (rustls may hold records).
async fn write_all_vectored(io: &mut UpstreamIo, pieces: &[&[u8]]) -> std::io::Result<()> {
    let mut idx = 0;
    let mut off = 0;
    while idx < pieces.len() {
        let slices: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(&pieces[idx][off..]))
            .chain(pieces[idx + 1..].iter().map(|p| IoSlice::new(p)))
            .collect();
        let mut n = io.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 && idx < pieces.len() {
            let left = pieces[idx].len() - off;
            if n >= left {
                n -= left;
                idx += 1;
                off = 0;
            } else {
                off += n;
                n = 0;
            }
        }
        while idx < pieces.len() && pieces[idx].len() == off {
            idx += 1;
            off = 0;
        }
    }
    io.flush().await
}

/// A response created on this session whose terminal event has not come yet.
struct Pending {
    /// With a policy: the admission, registered as an open response until booked.
    admitted: Option<crate::governed::OpenTicket>,
    audit: AuditRecord,
    /// Message bytes relayed to the client for it (for the estimate).
    seen: u64,
    /// The upstream announced it (`response.created`): an `error` after this is charged.
    started: bool,
    /// Its id, from the upstream's `response.created`: a terminal event naming another
    /// response is not this one's.
    id: Option<String>,
}

/// What a session keeps of its [`WsContext`] (not the key).
struct SessionCtx {
    upstream: Upstream,
    governor: Option<Arc<Governed>>,
    max_message: u64,
    idle: Duration,
    shutdown: tokio::sync::watch::Receiver<bool>,
    peer: Arc<str>,
    uid: Option<u32>,
}

struct Session {
    ctx: SessionCtx,
    /// Finds the key in upstream messages (built once per session). Its handle on the key's
    /// page is the session's only one: held until the session ends, which a rotation brings
    /// about after the response in flight (see [`Session::retired`]).
    /// `None` once a rotation cut the session: nothing more is relayed, and the key's page is
    /// let go while the rest of the response is read for its usage.
    /// With it, the session's registration as a holder of the key ([`ApiKey::held_by`]).
    scrub: Option<(KeyScrub, Arc<tokio::sync::Notify>)>,
    /// Becomes `true` when a rotation retires the key the session was opened with: the session
    /// relays its response in flight, if any, then closes (1001), and the page can be wiped.
    retired: tokio::sync::watch::Receiver<bool>,
    /// Becomes `true` when a rotation found no free key page and cut this key's holders: the
    /// session ends at once, its response in flight included (outside review r18 F1).
    cut: tokio::sync::watch::Receiver<bool>,
    /// A rotation cut the session (`cut`): what is still read upstream is for its usage only,
    /// and its audit outcome is `rotated`.
    rotated: bool,
    /// The client is gone and the upstream is read on for usage only.
    client_left: bool,
    /// The end of the text deltas relayed so far that could begin a key (see [`DeltaScrub`]).
    tail: DeltaScrub,
    pending: VecDeque<Pending>,
    /// The ids of the last responses booked ([`BOOKED_IDS`]): a second terminal event for one
    /// of them is not the next response's (outside review r53 F3).
    booked: VecDeque<String>,
    /// With a policy: `response.create` messages that arrived while a response was in flight;
    /// each is checked and sent when the one before has ended (see [`WAITING_MAX`]). Each holds
    /// its bytes against `--max-buffered-bytes` until it leaves the queue.
    waiting: VecDeque<(ClientText, BufferCharge)>,
    /// The session's own line (`GET /v1/responses` 101); holds the connection's in-flight count.
    audit: AuditRecord,
    responses: u64,
    refused: u64,
    /// Last message relayed either way (pings and refused messages do not count).
    last_activity: tokio::time::Instant,
    started: tokio::time::Instant,
    _user_session: crate::per_user::Slot,
}

/// One connection of a session, after its handshake: the read buffer and the frames decoded
/// from it ([`ws_frame::Reader`]), and the frames waiting to be written (one write each time
/// [`Side::flush`] runs). Frames written to a server are masked (the proxy is its client), with a
/// fresh random key each.
struct Side<IO> {
    io: IO,
    buf: BytesMut,
    reader: ws_frame::Reader,
    out: Vec<u8>,
    masks: bool,
}

type ClientWs = Side<TokioIo<hyper::upgrade::Upgraded>>;
type UpstreamWs = Side<UpstreamIo>;

impl<IO: AsyncRead + AsyncWrite + Unpin> Side<IO> {
    /// `buf`: bytes already read past the handshake; `from`: who writes the frames read here
    /// (the other side is who the proxy writes to: a server's frames are masked towards it).
    fn new(io: IO, buf: BytesMut, from: Peer, max_message: usize) -> Self {
        Self {
            io,
            buf,
            reader: ws_frame::Reader::new(from, max_message),
            out: Vec::new(),
            masks: from == Peer::Server,
        }
    }

    /// Waits until [`Side::next`] has something to act on: at once when the buffer already holds
    /// a whole frame, else after one read (`Ok(0)`: the peer closed the connection). Cancel-safe
    /// (a cancelled read has read nothing).
    async fn readable(&mut self) -> std::io::Result<usize> {
        if self.reader.ready(&self.buf) {
            return Ok(self.buf.len());
        }
        let want = self
            .reader
            .missing(&self.buf)
            .clamp(READ_CHUNK, READ_AHEAD_MAX);
        self.buf.reserve(want);
        let n = self.io.read_buf(&mut self.buf).await?;
        self.reader.unmask_arrived(&mut self.buf);
        Ok(n)
    }

    /// The next message whose frames are all read (see [`ws_frame::Reader::next`]).
    fn next(&mut self) -> Result<Option<Message>, FrameError> {
        self.reader.next(&mut self.buf)
    }

    /// Frames `payload` into the output (not written yet).
    fn push(&mut self, opcode: Opcode, payload: &[u8]) {
        let mask = self.masks.then(rand::random::<[u8; 4]>);
        ws_frame::encode(&mut self.out, opcode, payload, mask);
    }

    /// Writes out what was pushed, with one write if the socket takes it.
    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            let r = self.io.write_all(&self.out).await;
            self.out.clear();
            r?;
        }
        self.io.flush().await
    }

    async fn send(&mut self, opcode: Opcode, payload: &[u8]) -> std::io::Result<()> {
        self.push(opcode, payload);
        self.flush().await
    }

    /// [`Side::send`] of a text message; one over [`off_loop::INLINE_BYTES`] is framed (copied
    /// and masked) off the event loop, as `uid`'s job (outside review r77 F2).
    async fn send_text(&mut self, uid: Option<u32>, payload: Bytes) -> std::io::Result<()> {
        if payload.len() <= off_loop::INLINE_BYTES {
            return self.send(Opcode::Text, &payload).await;
        }
        let mask = self.masks.then(rand::random::<[u8; 4]>);
        let mut out = std::mem::take(&mut self.out);
        self.out = off_loop::run(uid, move || {
            ws_frame::encode(&mut out, Opcode::Text, &payload, mask);
            out
        })
        .await
        .map_err(std::io::Error::other)?;
        self.flush().await
    }

    /// Sends a close frame (`None`: one without a code) after what was pushed before it.
    async fn close(&mut self, frame: Option<&CloseFrame>) -> std::io::Result<()> {
        let payload = frame
            .map(|f| ws_frame::close_payload(f.code, &f.reason))
            .unwrap_or_default();
        self.send(Opcode::Close, &payload).await
    }
}

/// After the proxy's close frame: the client's close reply (read for at most [`CLOSE_GRACE`]),
/// then the connection shut down, so that the client sees its session end at once.
async fn end_client_now(client: &mut ClientWs) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        loop {
            match client.next() {
                Ok(Some(Message::Close(_))) | Err(_) => break,
                Ok(Some(_)) => continue,
                Ok(None) => {}
            }
            if !matches!(client.readable().await, Ok(n) if n > 0) {
                break;
            }
        }
    })
    .await;
    let _ = tokio::time::timeout(CLOSE_GRACE, client.io.shutdown()).await;
}

/// A close frame's code and reason.
#[derive(Debug, Clone)]
struct CloseFrame {
    code: u16,
    reason: Cow<'static, str>,
}

/// How the relay loop ended.
enum End {
    /// The client sent a close frame (`Some`: the reply, its code and reason echoed) or ended
    /// the stream (`None`: nothing to answer).
    ClientClosed(Option<Option<CloseFrame>>),
    /// The client went away or broke a limit (`Some`: the close frame to send it, best effort).
    Client(Option<CloseFrame>),
    /// The upstream closed or failed: the client gets this close frame.
    Upstream(CloseFrame),
    /// Idle timeout or shutdown: both sides get this close frame.
    Both(CloseFrame),
    /// A rotation needed the page of the session's key: the client gets this close frame, the
    /// response in flight is read on for its usage (outside review r20 L1: it was charged its
    /// whole reservation and logged `client_gone`).
    Rotated(CloseFrame),
}

/// What ended a pass over the upstream's whole messages (see `Session::take_upstream`).
enum UpstreamStop {
    /// A protocol error or a text message that is not UTF-8: the reason, for the log.
    Broke(String),
    /// A binary message (the Responses API sends none).
    Binary,
    /// A close frame (its code and reason, if any).
    Closed(Option<(u16, String)>),
}

fn close(code: u16, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: Cow::Borrowed(reason),
    }
}

/// The reply to a peer's close frame: its code and reason echoed (RFC 6455 section 5.5.1), 1002
/// for a code a peer may not send.
fn close_reply(received: Option<(u16, String)>) -> Option<CloseFrame> {
    received.map(|(c, reason)| {
        if ws_frame::close_code_allowed(c) {
            CloseFrame {
                code: c,
                reason: Cow::Owned(reason),
            }
        } else {
            close(code::PROTOCOL, "Protocol violation")
        }
    })
}

/// The client broke the protocol or a limit: the close frame it gets.
fn client_frame_error(e: &FrameError) -> CloseFrame {
    match e {
        FrameError::TooLarge { .. } => close(
            code::SIZE,
            "message larger than the proxy's --max-body-bytes",
        ),
        FrameError::TooManyFragments { .. } => CloseFrame {
            code: code::POLICY,
            reason: Cow::Owned(e.to_string()),
        },
        other => CloseFrame {
            code: code::PROTOCOL,
            reason: Cow::Owned(other.to_string()),
        },
    }
}

impl Session {
    async fn run(mut self, mut client: ClientWs, mut upstream: UpstreamWs) {
        let end = self.relay(&mut client, &mut upstream).await;
        // Messages still waiting for their turn are never sent once the relay has ended: their
        // bytes go back to --max-buffered-bytes now, not when the response in flight ends
        // (outside review r33 F2: a client that left held its share of the buffer for up to
        // --ws-idle-timeout while the upstream kept that response open).
        self.waiting.clear();
        let how = match end {
            End::ClientClosed(reply) => {
                self.audit.outcome = Outcome::Complete;
                // The answer to the client's close frame (echoing it).
                if let Some(reply) = reply {
                    let _ = tokio::time::timeout(CLOSE_GRACE, client.close(reply.as_ref())).await;
                }
                // What the client left in flight is still read for its usage.
                self.drain_upstream(&mut upstream).await;
                let _ = tokio::time::timeout(CLOSE_GRACE, upstream.close(None)).await;
                "closed by the client".to_string()
            }
            End::Client(frame) => {
                self.audit.outcome = Outcome::ClientGone;
                let how = match &frame {
                    Some(f) => format!("closed by the proxy: {} {}", f.code, f.reason),
                    None => "client went away".to_string(),
                };
                if let Some(frame) = frame {
                    let _ = tokio::time::timeout(CLOSE_GRACE, client.close(Some(&frame))).await;
                }
                self.drain_upstream(&mut upstream).await;
                let _ = tokio::time::timeout(CLOSE_GRACE, upstream.close(None)).await;
                how
            }
            End::Rotated(frame) => {
                self.rotated = true;
                self.audit.outcome = Outcome::Rotated;
                // the key's page goes now; nothing more reaches the client
                self.scrub = None;
                let how = format!("closed by the proxy: {} {}", frame.code, frame.reason);
                let _ = tokio::time::timeout(CLOSE_GRACE, client.close(Some(&frame))).await;
                // the client's side ends now, not when the response it no longer gets ends
                // upstream (outside review r28 F2: clients that wait for the connection to
                // close after the closing handshake, as Python's `websockets` does, sat
                // silent for the rest of the generation): its close reply is read briefly,
                // then the connection is shut down, and only then the upstream drained
                end_client_now(&mut client).await;
                self.drain_upstream(&mut upstream).await;
                let _ = tokio::time::timeout(CLOSE_GRACE, upstream.close(None)).await;
                how
            }
            End::Upstream(frame) => {
                self.audit.outcome = Outcome::UpstreamError;
                let how = format!("upstream ended the session: {}", frame.reason);
                let _ = tokio::time::timeout(CLOSE_GRACE, client.close(Some(&frame))).await;
                how
            }
            End::Both(frame) => {
                self.audit.outcome = Outcome::Complete;
                let how = format!("closed by the proxy: {} {}", frame.code, frame.reason);
                let _ = tokio::time::timeout(
                    CLOSE_GRACE,
                    upstream.close(Some(&close(code::NORMAL, "client session ended"))),
                )
                .await;
                let _ = tokio::time::timeout(CLOSE_GRACE, client.close(Some(&frame))).await;
                how
            }
        };
        // Whatever never reported its usage is charged the estimate (an unmeasured response is
        // never free).
        while let Some(p) = self.pending.pop_front() {
            self.finish(p, None, 0, false);
        }
        self.audit.reason = Some(format!(
            "websocket session: {} responses, {} refused; {how}",
            self.responses, self.refused
        ));
    }

    async fn relay(&mut self, client: &mut ClientWs, upstream: &mut UpstreamWs) -> End {
        let idle = self.ctx.idle;
        let mut shutdown = self.ctx.shutdown.clone();
        let mut retired = self.retired.clone();
        let mut cut = self.cut.clone();
        let mut draining = false;
        // Client messages handled since the loop was last given back, in bytes (each at least
        // 1 KiB, see below).
        let mut read_here = 0usize;
        // Why the session is draining (its close frame's reason).
        let mut why: &'static str = SHUTTING_DOWN;
        // Made once (not per round of the loop: a timer and four watch waiters per round were a
        // few % of the relay's CPU); the idle timer is moved when there was activity.
        let lifetime = tokio::time::sleep_until(self.started + SESSION_LIFETIME);
        let idle_timer = tokio::time::sleep_until(self.last_activity + idle);
        // each is polled until it fires, never after (its branch is then disabled or returns)
        let shutdown_signal = shutting_down(&mut shutdown);
        let retired_signal = shutting_down(&mut retired);
        let cut_signal = shutting_down(&mut cut);
        tokio::pin!(
            lifetime,
            idle_timer,
            shutdown_signal,
            retired_signal,
            cut_signal
        );
        loop {
            // The next waiting `response.create`, once the response before it has ended.
            while self.pending.is_empty() {
                let Some((next, charge)) = self.waiting.pop_front() else {
                    break;
                };
                drop(charge);
                if let Err(e) = self
                    .on_client_text(next, draining.then_some(why), client, upstream)
                    .await
                {
                    return e;
                }
            }
            if draining && self.pending.is_empty() {
                return End::Both(close(code::AWAY, why));
            }
            let idle_at = self.last_activity + idle;
            if idle_timer.deadline() != idle_at {
                idle_timer.as_mut().reset(idle_at);
            }
            tokio::select! {
                r = client.readable() => {
                    match r {
                        Ok(0) => return End::ClientClosed(None),
                        Err(_) => return End::Client(None),
                        Ok(_) => {}
                    }
                    // Every message the read completed, in order.
                    loop {
                        let m = match client.next() {
                            Ok(Some(m)) => m,
                            Ok(None) => break,
                            Err(e) => return End::Client(Some(client_frame_error(&e))),
                        };
                        // Messages handled on the loop give it back after every 64 KiB of them,
                        // each counted as 8 KiB at least (a ping costs a write; a refusal an
                        // event and a line): a task runs until it waits, and with messages
                        // queued on the socket (each refused or answered at once) it would not
                        // wait for a long time (a flood of messages just under 64 KiB held
                        // another user's requests 2.4 s; counted 1 KiB at least, 16 sessions of
                        // ~1 KiB messages refused for the waiting cap still held them 62 ms,
                        // debug build, outside review r86 F1's shape: 20 ms now).
                        read_here += m.size().max(8192);
                        if read_here > off_loop::INLINE_BYTES {
                            read_here = 0;
                            tokio::task::yield_now().await;
                        }
                        let text = match m {
                            Message::Whole { text: true, frame, header_len } => {
                                let mut t = frame;
                                let _ = t.split_to(header_len);
                                t.freeze()
                            }
                            Message::Assembled { text: true, payload } => payload.freeze(),
                            Message::Whole { text: false, .. } | Message::Assembled { text: false, .. } => {
                                return End::Client(Some(close(code::POLICY, "binary messages are not accepted (the Responses API sends JSON text)")));
                            }
                            Message::Close(c) => return End::ClientClosed(Some(close_reply(c))),
                            Message::Ping(p) => {
                                // answered on the same side; not activity
                                if client.send(Opcode::Pong, &p).await.is_err() {
                                    return End::Client(None);
                                }
                                continue;
                            }
                            Message::Pong => continue,
                        };
                        // The policy parses it; the upstream expects text. A large message is
                        // read off the event loop (outside review r77 F2: 16 sessions sending
                        // 10 MB messages, each parsed here, held another user's requests up to 1 s).
                        let len = text.len();
                        let message = match off_loop::run_if_large(self.ctx.uid, len, move || ClientText::read(text)).await {
                            Ok(Some(m)) => m,
                            Ok(None) => return End::Client(Some(close(code::INVALID_DATA, "a text message that is not UTF-8"))),
                            Err(_) => return End::Client(Some(close(code::ERROR, "internal error reading a message"))),
                        };
                        self.audit.bytes_in.fetch_add(len as u64, Ordering::Relaxed);
                        if let Err(e) = self.on_client_text(message, draining.then_some(why), client, upstream).await {
                            return e;
                        }
                    }
                }
                r = upstream.readable() => {
                    match r {
                        Ok(0) => return End::Upstream(close(code::NORMAL, "upstream closed the session")),
                        Err(e) => {
                            tracing::warn!(upstream = %self.ctx.upstream.authority, error = %e, "upstream WebSocket failed");
                            return End::Upstream(close(code::ERROR, "upstream WebSocket failed"));
                        }
                        Ok(_) => {}
                    }
                    // Every message upstream has already delivered is relayed, then written to
                    // the client with one write (issue 13: one `sendto` per message made a
                    // response of 15 messages cost 3-9x nginx's CPU). Nothing waits for more:
                    // what is not whole yet goes in the next round. A message that came in one
                    // frame leaves as the same bytes, scrubbed and scanned in place.
                    if let Some(end) = self.relay_upstream(client, upstream).await {
                        return end;
                    }
                }
                _ = &mut shutdown_signal, if !draining => {
                    draining = true;
                }
                _ = &mut lifetime, if !draining => {
                    draining = true;
                    why = "session lifetime reached";
                }
                _ = &mut retired_signal, if !draining => {
                    draining = true;
                    why = KEY_ROTATED;
                }
                _ = &mut cut_signal => {
                    return End::Rotated(close(code::AWAY, "the proxy's API key was rotated and its page is needed"));
                }
                _ = &mut idle_timer => {
                    return End::Both(close(code::AWAY, "idle timeout"));
                }
            }
        }
    }

    /// Relays the upstream messages that are whole in its read buffer to the client, with one
    /// write; answers pings on the upstream side. `Some`: the session ends.
    async fn relay_upstream(
        &mut self,
        client: &mut ClientWs,
        upstream: &mut UpstreamWs,
    ) -> Option<End> {
        let (relayed, stop) = self.take_upstream(upstream, Some(client));
        // activity is stamped once per round (a clock read per message showed in the profile)
        if relayed {
            self.last_activity = tokio::time::Instant::now();
        }
        match stop {
            None => {}
            Some(UpstreamStop::Broke(e)) => return Some(self.upstream_broke(&e)),
            Some(UpstreamStop::Binary) => {
                return Some(End::Upstream(close(
                    code::ERROR,
                    "upstream sent a binary message",
                )));
            }
            Some(UpstreamStop::Closed(c)) => {
                // answered (best effort); what was relayed before it still goes out, ahead
                // of the client's close frame
                let reply = close_reply(c);
                let _ = tokio::time::timeout(CLOSE_GRACE, upstream.close(reply.as_ref())).await;
                return Some(End::Upstream(close(
                    code::NORMAL,
                    "upstream closed the session",
                )));
            }
        }
        if !upstream.out.is_empty() && upstream.flush().await.is_err() {
            return Some(self.upstream_broke("writing a pong failed"));
        }
        if client.flush().await.is_err() {
            return Some(End::Client(None));
        }
        None
    }

    /// Takes the upstream messages that are whole in its read buffer: each text message is
    /// tapped (usage, key scrub) and, when there is a `client`, queued for it (and counted as
    /// bytes out); pings get a pong
    /// queued upstream. Nothing is written here. Returns whether any text message was taken and
    /// what stopped the pass (`None`: the buffer holds no whole message any more).
    fn take_upstream(
        &mut self,
        upstream: &mut UpstreamWs,
        mut client: Option<&mut ClientWs>,
    ) -> (bool, Option<UpstreamStop>) {
        let mut taken = false;
        loop {
            let stop = match upstream.next() {
                Ok(None) => return (taken, None),
                Ok(Some(Message::Whole {
                    text: true,
                    mut frame,
                    header_len,
                })) => {
                    let payload = &mut frame[header_len..];
                    if std::str::from_utf8(payload).is_err() {
                        UpstreamStop::Broke("a text message that is not UTF-8".into())
                    } else {
                        taken = true;
                        self.on_upstream_text(payload);
                        // an unmasked server frame: the client gets it as it came (payload
                        // scrubbed in place, same length)
                        if let Some(c) = client.as_deref_mut() {
                            self.audit.bytes_out += payload.len() as u64;
                            c.out.extend_from_slice(&frame);
                        }
                        continue;
                    }
                }
                Ok(Some(Message::Assembled {
                    text: true,
                    mut payload,
                })) => {
                    if std::str::from_utf8(&payload).is_err() {
                        UpstreamStop::Broke("a text message that is not UTF-8".into())
                    } else {
                        taken = true;
                        self.on_upstream_text(&mut payload);
                        if let Some(c) = client.as_deref_mut() {
                            self.audit.bytes_out += payload.len() as u64;
                            c.push(Opcode::Text, &payload);
                        }
                        continue;
                    }
                }
                Ok(Some(
                    Message::Whole { text: false, .. } | Message::Assembled { text: false, .. },
                )) => UpstreamStop::Binary,
                Ok(Some(Message::Ping(p))) => {
                    upstream.push(Opcode::Pong, &p);
                    continue;
                }
                Ok(Some(Message::Pong)) => continue,
                Ok(Some(Message::Close(c))) => UpstreamStop::Closed(c),
                Err(e) => UpstreamStop::Broke(e.to_string()),
            };
            return (taken, Some(stop));
        }
    }

    /// The upstream broke the protocol or a limit: logged, and the client gets 1011.
    fn upstream_broke(&self, error: &str) -> End {
        tracing::warn!(upstream = %self.ctx.upstream.authority, error, "upstream WebSocket failed");
        End::Upstream(close(code::ERROR, "upstream WebSocket failed"))
    }

    /// A text message from the client: checked (with a policy), then forwarded, or answered
    /// with an `error` event.
    async fn on_client_text(
        &mut self,
        message: ClientText,
        draining: Option<&'static str>,
        client: &mut ClientWs,
        upstream: &mut UpstreamWs,
    ) -> Result<(), End> {
        let ClientText { text, kind } = message;
        let creates = kind.as_deref() == Some("response.create");
        let new_audit = |peer: &Arc<str>, uid: Option<u32>, len: usize| {
            let a = AuditRecord::new(peer.clone(), uid, &ws_method(), "/v1/responses");
            a.bytes_in.store(len as u64, Ordering::Relaxed);
            a
        };
        if let (Some(why), true) = (draining, creates) {
            let (code, message) = if why == SHUTTING_DOWN {
                ("shutting_down", "the proxy is shutting down".to_string())
            } else {
                (
                    "session_closing",
                    format!("this WebSocket session is closing ({why}): open a new one"),
                )
            };
            let mut audit = new_audit(&self.ctx.peer, self.ctx.uid, text.len());
            audit.outcome = Outcome::Refused;
            audit.reason = Some(code.into());
            audit.status = 503;
            let ev = error_event(
                503,
                serde_json::json!({
                    "message": message, "type": "proxy_error",
                    "code": code, "status": 503,
                }),
                None,
            );
            return send_client(client, ev).await;
        }
        let mut send = text.clone();
        let mut audit = None;
        let mut admitted = None;
        if let Some(g) = &self.ctx.governor {
            if creates && !self.pending.is_empty() {
                // One response at a time under a policy: this one is checked when the one in
                // flight has been booked (the upstream runs them one after another anyway).
                if self.waiting.len() >= WAITING_MAX {
                    self.refused += 1;
                    // an audit line (held back with the user's other refusals when they flood)
                    // and the metrics' count, as every refusal (outside review r90 B-F1: 2.8 M
                    // of these left both untouched)
                    let mut a_rec = new_audit(&self.ctx.peer, self.ctx.uid, text.len());
                    a_rec.outcome = Outcome::Refused;
                    a_rec.reason = Some("too_many_waiting".into());
                    a_rec.status = 429;
                    drop(a_rec);
                    let ev = error_event(
                        429,
                        serde_json::json!({
                            "message": format!("at most {WAITING_MAX} response.create messages may wait while a response is in flight"),
                            "type": "proxy_policy_error", "code": "too_many_waiting",
                            "status": 429, "rule": "proxy.websocket_waiting",
                        }),
                        Some(1),
                    );
                    return send_client(client, ev).await;
                }
                // Held whole until its turn: counted against `--max-buffered-bytes` like a
                // governed HTTP body being read (outside review r18 F8: 8 waiting messages of
                // 10 MiB per session, 16 sessions per uid, were held counted nowhere).
                let mut charge = BufferCharge::new(g, self.ctx.uid);
                if let Err(full) = charge.add(text.len() as u64) {
                    self.refused += 1;
                    tracing::warn!(
                        uid = self.ctx.uid,
                        bytes = text.len(),
                        limit = if full == BufferFull::User {
                            "the user's share"
                        } else {
                            "the proxy's cap"
                        },
                        "waiting WebSocket messages and governed request bodies at their buffer cap (--max-buffered-bytes): error event 503"
                    );
                    let mut a_rec = new_audit(&self.ctx.peer, self.ctx.uid, text.len());
                    a_rec.outcome = Outcome::Refused;
                    a_rec.reason = Some("proxy_busy".into());
                    a_rec.status = 503;
                    let ev = error_event(
                        503,
                        serde_json::json!({
                            "message": match full {
                                BufferFull::User => BufferFull::User.message(),
                                BufferFull::Proxy => "the proxy holds too many request bodies and waiting messages; retry shortly",
                            },
                            "type": "proxy_error", "code": "proxy_busy", "status": 503,
                        }),
                        Some(1),
                    );
                    return send_client(client, ev).await;
                }
                // its own copy: `text` shares the read buffer, which the charge does not count
                let held = off_loop::run_if_large(self.ctx.uid, text.len(), move || {
                    Bytes::copy_from_slice(&text)
                })
                .await
                .map_err(|_| {
                    End::Client(Some(close(code::ERROR, "internal error holding a message")))
                })?;
                self.waiting
                    .push_back((ClientText { text: held, kind }, charge));
                return Ok(());
            }
            if creates {
                let mut a_rec = new_audit(&self.ctx.peer, self.ctx.uid, text.len());
                // a large message is checked off the event loop, as a large HTTP body is
                // (outside review r73 F1)
                let decided = g
                    .admit_body_off_loop(
                        self.ctx.uid,
                        text.clone(),
                        codex_proxy_governance::Endpoint::Responses,
                    )
                    .await;
                match decided {
                    Ok(mut a) => {
                        if let Some(rewritten) = a.body.take() {
                            // The rewrite only replaces JSON values with ASCII: still UTF-8.
                            let checked =
                                off_loop::run_if_large(self.ctx.uid, rewritten.len(), move || {
                                    std::str::from_utf8(&rewritten).is_ok().then_some(rewritten)
                                })
                                .await;
                            let Ok(Some(rewritten)) = checked else {
                                return Err(End::Client(Some(close(
                                    code::ERROR,
                                    "internal error rewriting a message",
                                ))));
                            };
                            send = Bytes::from(rewritten);
                        }
                        a_rec.bytes_in.store(a.request_bytes, Ordering::Relaxed);
                        a_rec.governance = Some(Governance {
                            model: Some(a.model.clone()),
                            decision: if a.clamped { "clamped" } else { "allowed" },
                            rule: a.rule.to_string(),
                            ..Governance::default()
                        });
                        audit = Some(a_rec);
                        admitted = Some(a);
                    }
                    Err(refusal) => {
                        self.refused += 1;
                        a_rec.outcome = Outcome::Refused;
                        a_rec.status = refusal.status;
                        a_rec.reason = Some(refusal.code.into());
                        a_rec.governance = Some(Governance {
                            decision: "refused",
                            rule: refusal.rule.clone(),
                            ..Governance::default()
                        });
                        let body: serde_json::Value =
                            serde_json::from_slice(&refusal.body()).unwrap_or_default();
                        let ev = error_event(
                            refusal.status,
                            body["error"].clone(),
                            refusal.retry_after_s,
                        );
                        if text.len() <= off_loop::CHECK_INLINE_BYTES {
                            // checked on the loop and refused at once: the loop is given back
                            // after each, so one user's sessions cannot put a check each on
                            // every turn (outside review r86 F1: 16 sessions of refused
                            // messages just under 1 KiB, 1,000 checks a turn, held another
                            // user's requests at p50 23-73 ms). HTTP has the same turn after
                            // any error response (`server.rs`).
                            tokio::task::yield_now().await;
                        }
                        return send_client(client, ev).await;
                    }
                }
            } else if kind.as_deref() == Some("response.processed") {
                // Not forwarded under a policy: an upstream answers a client event it cannot use
                // with an `error` event that names no response, and the accounting cannot tell
                // which response such an error ends (outside review r15 F6: malformed
                // `response.processed` messages made responses unbooked). Dropped silently.
                tracing::debug!("response.processed not forwarded (policy)");
                return Ok(());
            } else {
                // Fail closed: a message type the proxy does not know might start a response
                // that the policy never saw.
                self.refused += 1;
                let mut a_rec = new_audit(&self.ctx.peer, self.ctx.uid, text.len());
                a_rec.outcome = Outcome::Refused;
                a_rec.status = 400;
                a_rec.reason = Some("message_type_refused".into());
                let ev = error_event(
                    400,
                    serde_json::json!({
                        "message": "with a policy, only response.create and response.processed messages are forwarded",
                        "type": "proxy_policy_error", "code": "message_type_refused",
                        "status": 400, "rule": "request",
                    }),
                    None,
                );
                return send_client(client, ev).await;
            }
        }
        if upstream.send_text(self.ctx.uid, send).await.is_err() {
            // Not sent whole: nothing to charge (the upstream reports nothing for it).
            return Err(End::Upstream(close(
                code::ERROR,
                "upstream WebSocket failed",
            )));
        }
        self.last_activity = tokio::time::Instant::now();
        if creates {
            self.responses += 1;
            let mut audit =
                audit.unwrap_or_else(|| new_audit(&self.ctx.peer, self.ctx.uid, text.len()));
            // (until `finish` says how it ended: what the line says if the shutdown's deadline
            // drops the session first; the ledger charges the estimate then: r39 F1)
            audit.outcome = Outcome::Stopped;
            audit.reason = Some(
                "the proxy stopped before the response ended: charged its estimate at shutdown"
                    .into(),
            );
            let admitted = match (&self.ctx.governor, admitted) {
                (Some(g), Some(a)) => Some(g.open_ticket(a)),
                _ => None,
            };
            self.pending.push_back(Pending {
                admitted,
                audit,
                seen: 0,
                started: false,
                id: None,
            });
        }
        Ok(())
    }

    /// An upstream text message on its way to the client: the key masked out, the terminal
    /// events' usage recorded.
    fn on_upstream_text(&mut self, text: &mut [u8]) {
        self.scrub(text);
        let len = text.len() as u64;
        if let Some(front) = self.pending.front_mut() {
            front.seen += len;
            if let Some(t) = &front.admitted {
                t.saw(len);
            }
            front.audit.bytes_out += len;
        }
        let bytes = &*text;
        // Only events that can end a response are walked.
        let (created, maybe_terminal) = event_names(bytes);
        if created {
            let mut scanner = JsonScanner::new(Layout::Event);
            scanner.feed(bytes);
            if let Some(front) = self.pending.front_mut() {
                front.started = true;
                if scanner.type_.as_deref() == Some("response.created") {
                    front.id = scanner.response_id;
                }
            }
        }
        if maybe_terminal {
            let mut scanner = JsonScanner::new(Layout::Event);
            scanner.feed(bytes);
            match scanner.type_.as_deref() {
                Some("response.completed" | "response.incomplete" | "response.failed") => {
                    // Outside review r53 F3: a second terminal event for a response already
                    // booked was taken for the next response's (booked with the wrong usage,
                    // every later response one late, and the next `response.create` sent
                    // while one was still running). Matched by id when the upstream gives one.
                    if let Some(id) = scanner.response_id.as_deref() {
                        let front_id = self.pending.front().and_then(|p| p.id.as_deref());
                        if self.booked.iter().any(|b| b == id) || front_id.is_some_and(|f| f != id)
                        {
                            tracing::warn!(
                                upstream = %self.ctx.upstream.authority,
                                peer = %self.ctx.peer,
                                "upstream sent a terminal event for a response that is not the one in flight (a repeated one?): not counted"
                            );
                            return;
                        }
                        if self.booked.len() == BOOKED_IDS {
                            self.booked.pop_front();
                        }
                        self.booked.push_back(id.to_owned());
                    }
                    let status = 200;
                    let result = tap_result(scanner);
                    if let Some(p) = self.pending.pop_front() {
                        self.finish(p, Some(result), status, true);
                    }
                }
                Some("error") => {
                    let status = serde_json::from_slice::<serde_json::Value>(bytes)
                        .ok()
                        .and_then(|v| v.get("status").and_then(|s| s.as_u64()))
                        .and_then(|s| u16::try_from(s).ok())
                        .unwrap_or(500);
                    let result = tap_result(scanner);
                    if let Some(p) = self.pending.pop_front() {
                        self.finish(p, Some(result), status, true);
                    }
                }
                _ => {}
            }
        }
    }

    /// The key, if an upstream message carries it, overwritten with `*` in place (a message is
    /// whole: nothing to hold back; same length, and `*` for ASCII key bytes keeps it UTF-8),
    /// and the rest of a key begun in earlier text deltas ([`DeltaScrub`]).
    fn scrub(&mut self, text: &mut [u8]) {
        // after a rotation's cut: read for the usage only, never relayed
        let Some((scrub, _)) = self.scrub.as_ref() else {
            return;
        };
        let bytes = &*text;
        let whole = scrub.contains(bytes);
        // A key begun in earlier deltas and completed at the start of this one's text.
        let (across, earlier, at) = match delta_text(bytes) {
            Some(r) => {
                let (n, earlier) = self.tail.next(scrub, &bytes[r.clone()]);
                (n, earlier, r.start)
            }
            None => (0, 0, 0),
        };
        if !whole && across == 0 {
            return;
        }
        text[at..at + across].fill(b'*');
        let hits = scrub.mask(text);
        if hits > 0 {
            tracing::warn!(upstream = %self.ctx.upstream.authority, hits, "upstream echoed the key in a WebSocket message; overwritten");
        }
        if across > 0 {
            tracing::warn!(
                upstream = %self.ctx.upstream.authority,
                relayed_before = earlier,
                key_len = scrub.key_len(),
                "upstream echoed the key split over WebSocket text deltas: the rest was overwritten, its first bytes had already been relayed (rotate the key if that is most of it)"
            );
        }
    }

    /// A response ended (`result`: what its terminal event reported; `None`: it never came):
    /// the ledger record and its audit line.
    fn finish(&self, mut p: Pending, result: Option<TapResult>, status: u16, complete: bool) {
        if matches!(p.audit.outcome, Outcome::Stopped) {
            p.audit.reason = None; // the shutdown's marker: it did end
        }
        p.audit.status = if complete { status } else { 200 };
        p.audit.outcome = if self.rotated {
            Outcome::Rotated
        } else if self.client_left {
            // read on after its client left (as HTTP's drain says: r36 note)
            Outcome::ClientGone
        } else if complete {
            Outcome::Complete
        } else {
            Outcome::ClientGone
        };
        let (Some(g), Some(ticket)) = (&self.ctx.governor, p.admitted.take()) else {
            return;
        };
        let Some(open) = ticket.take() else {
            return; // booked by the shutdown
        };
        let admitted = open.admitted();
        // No usage: charged the estimate unless the upstream refused the request before it
        // started (an `error` with a 4xx status and no `response.created` before it).
        let refused_before_start = complete && !p.started && (400..500).contains(&status);
        g.book(
            admitted,
            result.unwrap_or_default(),
            if complete { status } else { 200 },
            p.seen,
            (!refused_before_start)
                .then_some("no usage reported before the response ended: estimated"),
            Some(&mut p.audit),
        );
    }

    /// After the client left: reads the upstream on until every response in flight has ended,
    /// for their usage. Ends (what is left is charged its estimate) when no text message came
    /// within the idle timeout (pings, pongs and unfinished fragments do not count: outside
    /// review r36 F1, an upstream pinging or trickling fragments was read for ever), after
    /// [`crate::body::DRAIN_MAX_TIME`] or [`crate::body::DRAIN_MAX_BYTES`] in all (as HTTP's
    /// reads of abandoned responses), and 10 s into a shutdown (r36 F2: a silent upstream held
    /// the shutdown for the whole idle timeout).
    async fn drain_upstream(&mut self, upstream: &mut UpstreamWs) {
        self.client_left = true;
        if self.pending.is_empty() {
            return;
        }
        // Counted with the HTTP reads of abandoned responses; at the caps, the responses in
        // flight are charged their estimate instead.
        let Some(_slot) = crate::body::abandoned_read_slot(self.ctx.uid) else {
            return;
        };
        let idle = self.ctx.idle;
        let start = tokio::time::Instant::now();
        let mut end = start + crate::body::DRAIN_MAX_TIME;
        let mut last_text = start;
        let mut read = 0u64;
        let mut shutdown = self.ctx.shutdown.clone();
        let mut stopping = *shutdown.borrow();
        if stopping {
            end = end.min(start + crate::body::SHUTDOWN_READS_GRACE);
        }
        while !self.pending.is_empty() {
            let until = end.min(last_text + idle);
            tokio::select! {
                r = tokio::time::timeout_at(until, upstream.readable()) => match r {
                    Ok(Ok(n)) if n > 0 => read += n as u64,
                    Ok(_) | Err(_) => return,
                },
                _ = shutting_down(&mut shutdown), if !stopping => {
                    stopping = true;
                    end = end.min(tokio::time::Instant::now() + crate::body::SHUTDOWN_READS_GRACE);
                    continue;
                }
            }
            if read > crate::body::DRAIN_MAX_BYTES {
                return;
            }
            // a close, a binary message or a broken frame ends the drain (what is still in
            // flight is charged its estimate)
            let (taken, stop) = self.take_upstream(upstream, None);
            if taken {
                last_text = tokio::time::Instant::now();
            }
            if stop.is_some() {
                return;
            }
            if !upstream.out.is_empty() && upstream.flush().await.is_err() {
                return;
            }
        }
    }
}

/// The raw content (between the quotes) of the `delta` string of a `*.delta` event, as a
/// range of `bytes`; `None` for any other message. A byte scan, not a parse (a parse cost
/// ~400 ns a delta, the scan a few): the message must name a `*.delta` type, and the first
/// `"delta"` key followed by `:` and a string is taken (the bytes `"delta":` cannot occur
/// inside a JSON string, where every quote is escaped). A nested `delta` key taken by mistake
/// only changes which text is joined; the per-message mask covers every byte anyway.
fn delta_text(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    use memchr::memmem::Finder;
    static DELTA_TYPE: std::sync::LazyLock<Finder<'static>> =
        std::sync::LazyLock::new(|| Finder::new(b".delta\""));
    static DELTA_KEY: std::sync::LazyLock<Finder<'static>> =
        std::sync::LazyLock::new(|| Finder::new(b"\"delta\""));
    DELTA_TYPE.find(bytes)?;
    let skip_ws = |mut i: usize| {
        while bytes
            .get(i)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            i += 1;
        }
        i
    };
    let mut from = 0;
    loop {
        let at = from + DELTA_KEY.find(&bytes[from..])?;
        from = at + 7;
        let colon = skip_ws(from);
        if bytes.get(colon) != Some(&b':') {
            continue;
        }
        let quote = skip_ws(colon + 1);
        if bytes.get(quote) != Some(&b'"') {
            continue;
        }
        let start = quote + 1;
        let mut j = start;
        loop {
            let q = j + memchr::memchr2(b'"', b'\\', bytes.get(j..)?)?;
            if bytes[q] == b'\\' {
                j = q + 2;
                continue;
            }
            return Some(start..q);
        }
    }
}

/// Whether `bytes` holds the string `"response.created"` anywhere, and whether it holds one of
/// `"response.completed"`, `"response.incomplete"`, `"response.failed"` or `"error"` (a
/// terminal event, maybe: the message is then parsed). One pass over the `"response.`
/// occurrences and one search for `"error"`, with finders built once (building a searcher per
/// call was 9% of the relay's CPU; outside the types, a delta's text rarely holds either).
fn event_names(bytes: &[u8]) -> (bool, bool) {
    use memchr::memmem::Finder;
    static RESPONSE: std::sync::LazyLock<Finder<'static>> =
        std::sync::LazyLock::new(|| Finder::new(b"\"response."));
    static ERROR: std::sync::LazyLock<Finder<'static>> =
        std::sync::LazyLock::new(|| Finder::new(b"\"error\""));
    let (mut created, mut terminal) = (false, false);
    for at in RESPONSE.find_iter(bytes) {
        let rest = &bytes[at + b"\"response.".len()..];
        if rest.starts_with(b"created\"") {
            created = true;
        } else if rest.starts_with(b"completed\"")
            || rest.starts_with(b"incomplete\"")
            || rest.starts_with(b"failed\"")
        {
            terminal = true;
        }
    }
    (created, terminal || ERROR.find(bytes).is_some())
}

fn ws_method() -> Method {
    Method::from_bytes(b"WS").unwrap_or(Method::GET)
}

fn tap_result(scanner: JsonScanner) -> TapResult {
    let mut r = TapResult::default();
    r.add_scanned(scanner);
    r
}

/// A client's text message as the relay acts on it: UTF-8, and its top-level `type` read.
struct ClientText {
    text: Bytes,
    kind: Option<String>,
}

impl ClientText {
    /// `None`: not UTF-8. Parses the whole message (off the event loop when it is large).
    fn read(text: Bytes) -> Option<Self> {
        std::str::from_utf8(&text).ok()?;
        let kind = message_type(&text);
        Some(Self { text, kind })
    }
}

/// The top-level `type` of a JSON message (`None`: not an object or no string `type`).
fn message_type(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Head<'_>>(bytes)
        .ok()
        .and_then(|h| h.kind)
        .map(|k| k.into_owned())
}

/// An `error` event in the shape the Codex CLI reads from the Responses WebSocket:
/// `{"type":"error","status":N,"error":{...},"headers":{"retry-after":"S"}}`.
fn error_event(status: u16, error: serde_json::Value, retry_after: Option<u64>) -> String {
    let mut v = serde_json::json!({"type": "error", "status": status, "error": error});
    if let Some(s) = retry_after {
        v["headers"] = serde_json::json!({"retry-after": s.to_string()});
    }
    v.to_string()
}

async fn send_client(client: &mut ClientWs, event: String) -> Result<(), End> {
    client
        .send(Opcode::Text, event.as_bytes())
        .await
        .map_err(|_| End::Client(None))
}

/// Serves one client connection with upgrades allowed, under the graceful shutdown (hyper-util's
/// `Watcher` cannot wrap an upgradeable connection: on shutdown this asks hyper to finish the
/// request in flight and close), then waits for the WebSocket session the connection may have
/// switched to. `watcher` is held to the end, so the shutdown drain waits for the session too.
pub async fn serve_connection<I, S, B>(
    conn: hyper::server::conn::http1::UpgradeableConnection<I, S>,
    watcher: hyper_util::server::graceful::Watcher,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    session: &SessionSlot,
) where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut conn = std::pin::pin!(conn);
    let mut signalled = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            _ = shutting_down(&mut shutdown), if !signalled => {
                signalled = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    session.wait().await;
    drop(watcher);
}

/// Resolves once shutdown was requested (the `watch` guard is not held across an await).
async fn shutting_down(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_finds_the_quoted_names_anywhere_as_separate_searches_did() {
        let cases: [(&[u8], (bool, bool)); 10] = [
            (
                br#"{"type":"response.output_text.delta","delta":"x"}"#,
                (false, false),
            ),
            (
                br#"{"type":"response.created","response":{}}"#,
                (true, false),
            ),
            (
                br#"{"type":"response.completed","response":{}}"#,
                (false, true),
            ),
            (br#"{"type":"response.incomplete"}"#, (false, true)),
            (br#"{"type":"response.failed"}"#, (false, true)),
            (br#"{"type":"error","status":400}"#, (false, true)),
            // anywhere, both, and names that only start alike
            (
                br#"{"a":"response.created","b":"response.completed"}"#,
                (true, true),
            ),
            (
                br#"{"type":"response.created_x","t":"response.completedness"}"#,
                (false, false),
            ),
            (br#"{"delta":"say \"response.completed\""}"#, (false, false)),
            (br#"{"delta":"response.completed"}"#, (false, true)),
        ];
        for (m, want) in cases {
            let old = (
                memchr::memmem::find(m, b"\"response.created\"").is_some(),
                memchr::memmem::find(m, b"\"response.completed\"").is_some()
                    || memchr::memmem::find(m, b"\"response.incomplete\"").is_some()
                    || memchr::memmem::find(m, b"\"response.failed\"").is_some()
                    || memchr::memmem::find(m, b"\"error\"").is_some(),
            );
            assert_eq!(event_names(m), want, "{}", String::from_utf8_lossy(m));
            assert_eq!(old, want, "{}", String::from_utf8_lossy(m));
        }
    }

    #[test]
    fn delta_text_finds_the_raw_delta_string_of_delta_events_only() {
        let m = br#"{"type":"response.output_text.delta","item_id":"m","delta":"sk-abc","sequence_number":3}"#;
        let r = delta_text(m).unwrap();
        assert_eq!(&m[r], b"sk-abc");
        // Spaces, other delta types, escapes kept raw.
        let m = br#"{"type": "response.function_call_arguments.delta", "delta": "a\"b\nc"}"#;
        assert_eq!(&m[delta_text(m).unwrap()], br#"a\"b\nc"#);
        // Not a delta event, a `delta` that is not a string, a string named like one.
        for m in [
            &br#"{"type":"response.completed","delta":"sk-abc"}"#[..],
            br#"{"type":"response.output_text.delta","delta":5}"#,
            br#"{"type":"x","text":"\"response.output_text.delta\""}"#,
            br#"not json .delta""#,
        ] {
            assert_eq!(delta_text(m), None, "{}", String::from_utf8_lossy(m));
        }
    }

    /// Cost of the relay's per-message scrub on a usual delta (no key): run with
    /// `cargo test --release -p responses-api-proxy --lib delta_scrub_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn delta_scrub_cost() {
        let key = HeaderValue::from_str(&format!("Bearer sk-proj-{}", "A1b2".repeat(40))).unwrap();
        let k = KeyScrub::new(&key);
        let mut d = DeltaScrub::default();
        let msg = br#"{"type":"response.output_text.delta","item_id":"msg_0123456789abcdef","output_index":0,"content_index":0,"delta":" word","sequence_number":17,"logprobs":[]}"#;
        let n = 1_000_000u32;
        let t = std::time::Instant::now();
        for _ in 0..n {
            let m = std::hint::black_box(&msg[..]);
            let whole = k.contains(m);
            if let Some(r) = delta_text(m) {
                std::hint::black_box(d.next(&k, &m[r]));
            }
            std::hint::black_box(whole);
        }
        let all = t.elapsed().as_nanos() as f64 / f64::from(n);
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(k.contains(std::hint::black_box(&msg[..])));
        }
        let whole_only = t.elapsed().as_nanos() as f64 / f64::from(n);
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(delta_text(std::hint::black_box(&msg[..])));
        }
        let find = t.elapsed().as_nanos() as f64 / f64::from(n);
        println!(
            "{}-byte delta: {all:.0} ns with the cross-message scrub ({find:.0} ns finding the delta), {whole_only:.0} ns per-message only",
            msg.len()
        );
    }
}
