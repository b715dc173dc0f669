//! A recording mock of the OpenAI Responses API, for tests of the proxy and the CLI.
//!
//! [`MockUpstream`] listens on `127.0.0.1:<ephemeral>` over plain HTTP or TLS (with a
//! [`TestCa`](crate::tls::TestCa): point the client's `SSL_CERT_FILE` at the CA file), serves
//! HTTP/1.1 and HTTP/2 (ALPN or prior knowledge), records every request it receives (method, path,
//! headers, body) and answers from a script: one-shot responses queued with
//! [`MockUpstream::push_response`], then an optional handler, then the default response.
//!
//! It runs on its own thread with its own single-threaded tokio runtime, so synchronous tests and
//! async tests can both use it; dropping it stops it. Streamed answers report whether the client
//! read them to the end or went away ([`MockState::streams_aborted`]), which is how a test observes
//! that a proxy cancelled its upstream request.
//!
//! It also speaks the Responses API **WebSocket mode** when the script says so
//! ([`MockResponse::WebSocket`] answering a `GET` with `Upgrade: websocket`): the same port then
//! serves HTTP requests and WebSocket sessions, as the real API does (benchmarks drive both
//! through one proxy). [`crate::ws_mock`] is the recording WebSocket mock for behaviour tests;
//! this one answers every `response.create` with fixed messages, back to back, and only counts.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::{mpsc, oneshot};

use crate::tls::TestCa;

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum MockResponse {
    /// `status` with a JSON body (`content-type: application/json`).
    Json {
        status: u16,
        body: serde_json::Value,
    },
    /// Any status, extra headers and raw body: upstream errors a proxy must pass through unchanged.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
    },
    /// `200 text/event-stream`, every frame written at once.
    SseBurst { frames: Vec<String> },
    /// `200 text/event-stream`, each frame its own HTTP/1 chunk (HTTP/2: DATA frame), all ready at
    /// once so they leave back to back, as a real upstream's are when one TLS record carries
    /// several events.
    SseChunked { frames: Vec<String> },
    /// `200 text/event-stream`, one frame every `delay` (the first one immediately).
    SsePaced {
        frames: Vec<String>,
        delay: Duration,
    },
    /// `200 text/event-stream`: these frames (paced by `delay`), then the stream is aborted without
    /// its end (HTTP/1: the connection closes without the last chunk; HTTP/2: `RST_STREAM`).
    ResetMidStream {
        frames: Vec<String>,
        delay: Duration,
    },
    /// `200 text/event-stream`, `count` frames `delay` apart, each stamped when it is sent:
    /// `event: tick\ndata: {"i":N,"ts_us":MICROS_SINCE_UNIX_EPOCH}\n\n` (benchmarks measure how
    /// late each event arrives).
    SseTimestamped { count: usize, delay: Duration },
    /// For a WebSocket upgrade (`Upgrade: websocket` with a `Sec-WebSocket-Key`, HTTP/1.1):
    /// `101`, then every text message of type `response.create` is answered with `messages`,
    /// each its own text message, all written at once (one flush) like [`Self::SseChunked`]'s
    /// frames. Other messages are ignored; a close ends the session. A request that is not an
    /// upgrade gets `400`. [`RESPONSE_ID`] in a message becomes an id of its own for every
    /// response, as the real API gives (a proxy that books each terminal event once per id
    /// takes a repeated id for a repeated event).
    WebSocket { messages: Vec<String> },
}

impl MockResponse {
    /// A `200` JSON body.
    pub fn json(body: serde_json::Value) -> Self {
        MockResponse::Json { status: 200, body }
    }
}

/// One SSE frame: `event: NAME\ndata: DATA\n\n`.
pub fn sse_frame(event: &str, data: &serde_json::Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// A plausible Responses API event stream answering with `text`: `response.created`, one
/// `response.output_text.delta` per word, `response.output_item.done`, `response.completed`.
pub fn sse_text_response(response_id: &str, text: &str) -> Vec<String> {
    let mut frames = vec![sse_frame(
        "response.created",
        &serde_json::json!({"type": "response.created", "response": {"id": response_id}}),
    )];
    let words: Vec<&str> = text.split_inclusive(' ').collect();
    for word in &words {
        frames.push(sse_frame(
            "response.output_text.delta",
            &serde_json::json!({"type": "response.output_text.delta", "delta": word}),
        ));
    }
    frames.push(sse_frame(
        "response.output_item.done",
        &serde_json::json!({
            "type": "response.output_item.done",
            "item": {
                "type": "message",
                "role": "assistant",
                "id": format!("msg_{response_id}"),
                "content": [{"type": "output_text", "text": text}]
            }
        }),
    ));
    frames.push(sse_frame(
        "response.completed",
        &serde_json::json!({
            "type": "response.completed",
            "response": {
                "id": response_id,
                "usage": {
                    "input_tokens": 1,
                    "input_tokens_details": null,
                    "output_tokens": 1,
                    "output_tokens_details": null,
                    "total_tokens": 2
                }
            }
        }),
    ));
    frames
}

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query as sent.
    pub path: String,
    pub version: http::Version,
    pub headers: HeaderMap,
    /// The body bytes received (up to the error, if reading failed).
    pub body: Bytes,
    /// Whether the body was received to its end (false: the client aborted or framing broke).
    pub body_complete: bool,
    /// Trailers that followed the body, if any (HTTP/1 chunked or HTTP/2 trailing HEADERS).
    pub trailers: Option<HeaderMap>,
    pub received_at: Instant,
}

impl RecordedRequest {
    /// The first value of header `name`, lossily as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// What the mock has seen so far.
#[derive(Debug, Default)]
pub struct MockState {
    pub requests: Vec<RecordedRequest>,
    /// Requests received, recorded or not.
    pub requests_total: usize,
    /// TCP connections accepted.
    pub connections_accepted: usize,
    /// TCP connections whose HTTP serving has ended (closed by either side).
    pub connections_closed: usize,
    /// Streamed answers written to the end.
    pub streams_completed: usize,
    /// Streamed answers the client stopped reading (its side went away before the end).
    pub streams_aborted: usize,
    /// Streams this mock aborted on purpose ([`MockResponse::ResetMidStream`]).
    pub streams_reset: usize,
    /// WebSocket sessions opened ([`MockResponse::WebSocket`]).
    pub ws_sessions_opened: usize,
    /// WebSocket sessions ended (close, error or end of stream).
    pub ws_sessions_ended: usize,
    /// `response.create` messages answered over WebSocket.
    pub ws_responses: usize,
}

type Handler = dyn Fn(&RecordedRequest) -> MockResponse + Send + Sync;

struct Shared {
    state: Mutex<MockState>,
    changed: Condvar,
    queue: Mutex<VecDeque<MockResponse>>,
    default: Mutex<MockResponse>,
    handler: Mutex<Option<Arc<Handler>>>,
    request_seq: Mutex<u64>,
    recording: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut MockState)) {
        let mut state = lock(&self.state);
        f(&mut state);
        self.changed.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running mock upstream. Stops when dropped.
pub struct MockUpstream {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for MockUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockUpstream")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl MockUpstream {
    /// Starts a plain-HTTP mock on `127.0.0.1:<ephemeral>` answering `{"ok":true}` by default.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_inner(None, "127.0.0.1:0".parse()?)
    }

    /// Starts a TLS mock presenting `ca`'s server certificate (valid for `localhost`, `127.0.0.1`).
    pub fn start_tls(ca: &TestCa) -> anyhow::Result<Self> {
        Self::start_inner(Some(ca.server_config()?), "127.0.0.1:0".parse()?)
    }

    fn start_inner(
        tls: Option<Arc<rustls::ServerConfig>>,
        addr: SocketAddr,
    ) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(MockState::default()),
            changed: Condvar::new(),
            queue: Mutex::new(VecDeque::new()),
            default: Mutex::new(MockResponse::json(serde_json::json!({"ok": true}))),
            handler: Mutex::new(None),
            request_seq: Mutex::new(0),
            recording: std::sync::atomic::AtomicBool::new(true),
        });
        let std_listener =
            std::net::TcpListener::bind(addr).with_context(|| format!("bind mock on {addr}"))?;
        std_listener
            .set_nonblocking(true)
            .context("set mock listener non-blocking")?;
        let addr = std_listener.local_addr().context("mock local_addr")?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let is_tls = tls.is_some();
        let thread_shared = shared.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("responses-mock".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::anyhow!("mock runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(anyhow::anyhow!("mock listener: {e}")));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    accept_loop(listener, tls, thread_shared, stop_rx).await;
                });
            })
            .context("spawn mock thread")?;
        ready_rx
            .recv()
            .context("mock thread exited during start-up")??;
        Ok(Self {
            addr,
            tls: is_tls,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http(s)://127.0.0.1:PORT/v1/responses`: the value for `--upstream-url`.
    pub fn responses_url(&self) -> String {
        format!("{}/responses", self.base_url())
    }

    /// `http(s)://127.0.0.1:PORT/v1`: a client's base URL.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/v1", self.addr.port())
    }

    /// `https://localhost:PORT/v1` (TLS name checks by DNS name rather than IP).
    pub fn base_url_localhost(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://localhost:{}/v1", self.addr.port())
    }

    /// Answer the next request (not yet answered) with `response`, before handler and default.
    pub fn push_response(&self, response: MockResponse) {
        lock(&self.shared.queue).push_back(response);
    }

    /// Answer every request not covered by the queue with `response`.
    pub fn set_default(&self, response: MockResponse) {
        *lock(&self.shared.default) = response;
    }

    /// Answer every request not covered by the queue by calling `handler`.
    pub fn set_handler(
        &self,
        handler: impl Fn(&RecordedRequest) -> MockResponse + Send + Sync + 'static,
    ) {
        *lock(&self.shared.handler) = Some(Arc::new(handler));
    }

    /// Whether requests are kept for [`MockUpstream::requests`] (on by default; benchmarks turn
    /// it off so memory stays flat; [`MockState::requests_total`] still counts).
    pub fn set_recording(&self, on: bool) {
        self.shared
            .recording
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// A snapshot of the recorded requests.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.state).requests.clone()
    }

    /// Reads the state under its lock.
    pub fn with_state<R>(&self, f: impl FnOnce(&MockState) -> R) -> R {
        f(&lock(&self.shared.state))
    }

    /// Waits (blocking) until `pred` holds or `timeout` passes; returns whether it held.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&MockState) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.shared.state);
        loop {
            if pred(&state) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = match self.shared.changed.wait_timeout(state, deadline - now) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        shared.update(|s| s.connections_accepted += 1);
        let shared = shared.clone();
        let acceptor = acceptor.clone();
        tasks.spawn(async move {
            let service_shared = shared.clone();
            let service = hyper::service::service_fn(move |req| {
                let shared = service_shared.clone();
                async move { Ok::<_, Infallible>(handle(req, shared).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            // With upgrades: only a `101` (MockResponse::WebSocket) takes the connection over;
            // every other answer is served as without.
            match acceptor {
                Some(acceptor) => {
                    if let Ok(tls_stream) = acceptor.accept(stream).await {
                        let _ = builder
                            .serve_connection_with_upgrades(TokioIo::new(tls_stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                }
            }
            shared.update(|s| s.connections_closed += 1);
        });
        // Reap finished connection tasks so a long benchmark does not accumulate them.
        while tasks.try_join_next().is_some() {}
    }
    tasks.abort_all();
}

fn is_websocket_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == http::Version::HTTP_11
        && req
            .headers()
            .get(http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

async fn handle(mut req: Request<Incoming>, shared: Arc<Shared>) -> Response<MockBody> {
    // Taken before the request is consumed; dropped unused unless the script answers `101`.
    let on_upgrade = is_websocket_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let mut body = body;
    let mut received = bytes::BytesMut::new();
    let mut body_complete = true;
    let mut trailers: Option<HeaderMap> = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    received.extend_from_slice(d);
                }
                if let Some(t) = f.trailers_ref() {
                    trailers
                        .get_or_insert_with(HeaderMap::new)
                        .extend(t.clone());
                }
            }
            Err(_) => {
                body_complete = false;
                break;
            }
        }
    }
    let body = received.freeze();
    let ws_key = parts.headers.get(http::header::SEC_WEBSOCKET_KEY).cloned();
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        version: parts.version,
        headers: parts.headers,
        body,
        body_complete,
        trailers,
        received_at: Instant::now(),
    };
    let response = {
        let queued = lock(&shared.queue).pop_front();
        match queued {
            Some(r) => r,
            None => {
                let handler = lock(&shared.handler).clone();
                match handler {
                    Some(h) => h(&recorded),
                    None => lock(&shared.default).clone(),
                }
            }
        }
    };
    let record = shared.recording.load(std::sync::atomic::Ordering::Relaxed);
    shared.update(|s| {
        s.requests_total += 1;
        if record {
            s.requests.push(recorded);
        }
    });
    let seq = {
        let mut seq = lock(&shared.request_seq);
        *seq += 1;
        *seq
    };
    let request_id = format!("req_mock_{seq}");

    let mut builder = Response::builder().header("x-request-id", request_id.as_str());
    match response {
        MockResponse::Json { status, body } => builder
            .status(status)
            .header("content-type", "application/json")
            .body(MockBody::full(Bytes::from(body.to_string())))
            .unwrap_or_else(|_| internal_error()),
        MockResponse::Raw {
            status,
            headers,
            body,
        } => {
            for (name, value) in headers {
                builder = builder.header(name, value);
            }
            builder
                .status(status)
                .body(MockBody::full(body))
                .unwrap_or_else(|_| internal_error())
        }
        MockResponse::SseBurst { frames } => {
            let all: String = frames.concat();
            sse_builder(builder)
                .body(MockBody::full(Bytes::from(all)))
                .unwrap_or_else(|_| internal_error())
        }
        MockResponse::SseChunked { frames } => sse_builder(builder)
            .body(MockBody::Frames(
                frames.into_iter().map(Bytes::from).collect(),
            ))
            .unwrap_or_else(|_| internal_error()),
        MockResponse::SsePaced { frames, delay } => {
            let body = spawn_stream(Frames::Fixed(frames), delay, false, shared);
            sse_builder(builder)
                .body(body)
                .unwrap_or_else(|_| internal_error())
        }
        MockResponse::ResetMidStream { frames, delay } => {
            let body = spawn_stream(Frames::Fixed(frames), delay, true, shared);
            sse_builder(builder)
                .body(body)
                .unwrap_or_else(|_| internal_error())
        }
        MockResponse::SseTimestamped { count, delay } => {
            let body = spawn_stream(Frames::Timestamped(count), delay, false, shared);
            sse_builder(builder)
                .body(body)
                .unwrap_or_else(|_| internal_error())
        }
        MockResponse::WebSocket { messages } => {
            let (Some(on_upgrade), Some(key)) = (on_upgrade, ws_key) else {
                let mut r = Response::new(MockBody::full(Bytes::from_static(
                    b"mock: a WebSocket answer needs a WebSocket upgrade request",
                )));
                *r.status_mut() = StatusCode::BAD_REQUEST;
                return r;
            };
            tokio::spawn(async move {
                if let Ok(upgraded) = on_upgrade.await {
                    shared.update(|s| s.ws_sessions_opened += 1);
                    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        tokio_tungstenite::tungstenite::protocol::Role::Server,
                        None,
                    )
                    .await;
                    ws_session(ws, messages, &shared).await;
                    shared.update(|s| s.ws_sessions_ended += 1);
                }
            });
            let accept =
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            builder
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(http::header::UPGRADE, "websocket")
                .header(http::header::CONNECTION, "upgrade")
                .header(http::header::SEC_WEBSOCKET_ACCEPT, accept)
                .body(MockBody::full(Bytes::new()))
                .unwrap_or_else(|_| internal_error())
        }
    }
}

/// The placeholder a [`MockResponse::WebSocket`] message carries where each response's own id
/// goes.
pub const RESPONSE_ID: &str = "{response_id}";

/// Responses answered over WebSocket by every mock of this process (their ids).
static WS_RESPONSE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One WebSocket session of [`MockResponse::WebSocket`]: `messages` for every `response.create`.
async fn ws_session<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    messages: Vec<String>,
    shared: &Shared,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
    // Converted once: each answer clones reference-counted bytes.
    let messages: Vec<Utf8Bytes> = messages.into_iter().map(Utf8Bytes::from).collect();
    while let Some(Ok(m)) = ws.next().await {
        let Message::Text(text) = m else { continue };
        let is_create = serde_json::from_str::<serde_json::Value>(text.as_str())
            .is_ok_and(|v| v["type"] == "response.create");
        if !is_create {
            continue;
        }
        let n = WS_RESPONSE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for m in &messages {
            let m = if m.as_str().contains(RESPONSE_ID) {
                Utf8Bytes::from(m.as_str().replace(RESPONSE_ID, &format!("resp_mock_{n}")))
            } else {
                m.clone()
            };
            if ws.feed(Message::Text(m)).await.is_err() {
                return;
            }
        }
        if ws.flush().await.is_err() {
            return;
        }
        shared.update(|s| s.ws_responses += 1);
    }
}

fn sse_builder(builder: http::response::Builder) -> http::response::Builder {
    builder
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
}

fn internal_error() -> Response<MockBody> {
    let mut r = Response::new(MockBody::full(Bytes::from_static(b"mock: bad script")));
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

enum Frames {
    Fixed(Vec<String>),
    Timestamped(usize),
}

fn unix_micros() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

fn spawn_stream(
    frames: Frames,
    delay: Duration,
    reset_at_end: bool,
    shared: Arc<Shared>,
) -> MockBody {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let count = match &frames {
        Frames::Fixed(f) => f.len(),
        Frames::Timestamped(n) => *n,
    };
    tokio::spawn(async move {
        for i in 0..count {
            if i > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let frame = match &frames {
                Frames::Fixed(f) => f[i].clone(),
                Frames::Timestamped(_) => format!(
                    "event: tick\ndata: {{\"i\":{i},\"ts_us\":{}}}\n\n",
                    unix_micros()
                ),
            };
            if tx.send(Ok(Bytes::from(frame))).await.is_err() {
                shared.update(|s| s.streams_aborted += 1);
                return;
            }
        }
        if reset_at_end {
            let _ = tx
                .send(Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "mock: reset mid-stream",
                )))
                .await;
            shared.update(|s| s.streams_reset += 1);
            return;
        }
        // Every frame was handed to hyper; dropping `tx` ends the body.
        shared.update(|s| s.streams_completed += 1);
    });
    MockBody::Channel(rx)
}

/// The mock's response body: a whole buffer or a channel of chunks.
pub enum MockBody {
    Full(Option<Bytes>),
    /// Separate frames, every one ready at once.
    Frames(VecDeque<Bytes>),
    Channel(mpsc::Receiver<Result<Bytes, std::io::Error>>),
}

impl MockBody {
    fn full(bytes: Bytes) -> Self {
        MockBody::Full(Some(bytes))
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Frames(f) => Poll::Ready(f.pop_front().map(|b| Ok(Frame::data(b)))),
            MockBody::Channel(rx) => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(b) => b.is_none(),
            MockBody::Frames(f) => f.is_empty(),
            MockBody::Channel(_) => false,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            MockBody::Full(Some(b)) => http_body::SizeHint::with_exact(b.len() as u64),
            MockBody::Full(None) => http_body::SizeHint::with_exact(0),
            MockBody::Channel(_) | MockBody::Frames(_) => http_body::SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn raw_post(addr: SocketAddr, body: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "POST /v1/responses HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn records_requests_and_answers_from_the_script() {
        let mock = MockUpstream::start().unwrap();
        mock.push_response(MockResponse::Raw {
            status: 429,
            headers: vec![("retry-after".into(), "7".into())],
            body: Bytes::from_static(b"{\"error\":\"slow down\"}"),
        });
        let first = raw_post(mock.addr(), "{\"a\":1}");
        assert!(first.starts_with("HTTP/1.1 429"), "{first}");
        assert!(first.contains("retry-after: 7"), "{first}");
        let second = raw_post(mock.addr(), "x");
        assert!(second.starts_with("HTTP/1.1 200"), "{second}");
        assert!(second.ends_with("{\"ok\":true}"), "{second}");
        let reqs = mock.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].method, "POST");
        assert_eq!(reqs[0].path, "/v1/responses");
        assert_eq!(reqs[0].header("authorization").as_deref(), Some("Bearer t"));
        assert_eq!(reqs[0].json(), Some(serde_json::json!({"a": 1})));
    }

    #[test]
    fn paced_stream_spreads_frames_and_reset_aborts() {
        let mock = MockUpstream::start().unwrap();
        mock.push_response(MockResponse::SsePaced {
            frames: vec!["data: 1\n\n".into(), "data: 2\n\n".into()],
            delay: Duration::from_millis(200),
        });
        let start = Instant::now();
        let out = raw_post(mock.addr(), "");
        assert!(start.elapsed() >= Duration::from_millis(190));
        assert!(out.contains("data: 1") && out.contains("data: 2"), "{out}");
        assert!(out.ends_with("0\r\n\r\n"), "chunked end missing: {out}");

        mock.push_response(MockResponse::ResetMidStream {
            frames: vec!["data: 1\n\n".into()],
            delay: Duration::ZERO,
        });
        let out = raw_post(mock.addr(), "");
        assert!(out.contains("data: 1"), "{out}");
        assert!(
            !out.ends_with("0\r\n\r\n"),
            "reset stream must not end cleanly: {out}"
        );
        assert!(mock.wait_until(Duration::from_secs(5), |s| s.streams_reset == 1));
    }

    #[test]
    fn websocket_answer_serves_sessions_next_to_http_on_one_port() {
        use futures_util::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        let mock = MockUpstream::start().unwrap();
        let answer = vec![
            r#"{"type":"response.output_text.delta","delta":"hi"}"#.to_string(),
            r#"{"type":"response.completed","response":{"usage":{"output_tokens":1}}}"#.to_string(),
        ];
        let ws_answer = answer.clone();
        mock.set_handler(move |req| {
            if req.header("upgrade").is_some() {
                MockResponse::WebSocket {
                    messages: ws_answer.clone(),
                }
            } else {
                MockResponse::json(serde_json::json!({"plain": true}))
            }
        });
        let port = mock.addr().port();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let got = rt.block_on(async {
            let (mut ws, resp) =
                tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/v1/responses"), {
                    tokio::net::TcpStream::connect(mock.addr()).await.unwrap()
                })
                .await
                .unwrap();
            assert_eq!(resp.status(), 101);
            let mut got = Vec::new();
            for msg in [
                r#"{"type":"response.create","model":"m"}"#,
                r#"{"type":"something.else"}"#,
                r#"{"type":"response.create","model":"m"}"#,
            ] {
                ws.send(Message::text(msg)).await.unwrap();
            }
            // Two answers (the other message is ignored), nothing more before the close.
            while got.len() < 4 {
                match ws.next().await.unwrap().unwrap() {
                    Message::Text(t) => got.push(t.as_str().to_string()),
                    other => panic!("unexpected {other:?}"),
                }
            }
            ws.close(None).await.unwrap();
            while let Some(Ok(m)) = ws.next().await {
                assert!(m.is_close(), "unexpected {m:?}");
            }
            got
        });
        assert_eq!(got, [answer.clone(), answer].concat());
        assert!(mock.wait_until(Duration::from_secs(5), |s| s.ws_sessions_ended == 1));
        mock.with_state(|s| {
            assert_eq!(s.ws_sessions_opened, 1);
            assert_eq!(s.ws_responses, 2);
        });
        // The same port still answers HTTP, and a WebSocket answer to a request that is not an
        // upgrade is a 400, not a 101.
        let plain = raw_post(mock.addr(), "{}");
        assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
        assert!(plain.ends_with("{\"plain\":true}"), "{plain}");
        mock.push_response(MockResponse::WebSocket { messages: vec![] });
        let refused = raw_post(mock.addr(), "{}");
        assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    }

    #[test]
    fn tls_mock_is_trusted_through_the_test_ca() {
        let ca = TestCa::new().unwrap();
        let mock = MockUpstream::start_tls(&ca).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.ca_der()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut sock = std::net::TcpStream::connect(mock.addr()).unwrap();
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        tls.write_all(b"POST /v1/responses HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out);
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(
            std::fs::read_to_string(ca.ca_pem_path())
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
    }
}
