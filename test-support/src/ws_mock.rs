//! A recording mock of the Responses API **WebSocket mode** (and its HTTP fallback), for tests of
//! the proxy and the Codex CLI.
//!
//! [`WsMock`] listens on `127.0.0.1:<ephemeral>` (plain HTTP). `GET .../responses` with
//! `Upgrade: websocket` becomes a WebSocket session: every session is recorded with its upgrade
//! request's headers (the `Authorization` the mock saw), every text message it receives, and how
//! it ended. Each `response.create` message is answered with a plausible event sequence
//! (`response.created`, `response.output_text.delta`, `response.output_item.done`,
//! `response.completed` with `usage`), shaped by [`WsScript`]. Any other request is recorded
//! as an HTTP request (the fallback a client takes when WebSocket fails) and `POST`s to
//! `.../responses` are answered with the same events as SSE, so a client works either way and a
//! test tells the two apart from the record.
//!
//! Runs on its own thread and single-threaded runtime, like [`crate::responses_mock`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// How the mock answers each `response.create`.
#[derive(Clone, Debug)]
pub struct WsScript {
    /// The assistant's answer text.
    pub text: String,
    /// The `usage` object of `response.completed` (`None`: the event has none).
    pub usage: Option<serde_json::Value>,
    /// Pause between events.
    pub delay: Duration,
    /// Echo the `Authorization` value the mock received inside a delta (an upstream that leaks
    /// the key back).
    pub echo_authorization: bool,
    /// Echo the key the mock received (the `Authorization` value without `Bearer `) split over
    /// two delta events, the first `n` bytes in one and the rest in the next.
    pub echo_key_split_at: Option<usize>,
    /// Send this many bytes of padding in one extra delta event (an oversized upstream message).
    pub padding: usize,
    /// After `response.created`, send nothing but a ping every this long, for as long as the
    /// connection lasts (a stuck response behind keep-alive pings: outside review r36 F1).
    pub stall_with_pings: Option<Duration>,
    /// After `response.completed`, send it again with this `usage` (an upstream that repeats a
    /// terminal event: outside review r53 F3).
    pub repeat_terminal_usage: Option<serde_json::Value>,
}

impl Default for WsScript {
    fn default() -> Self {
        Self {
            text: "hello from the websocket mock".into(),
            usage: Some(serde_json::json!({
                "input_tokens": 11,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 7,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 18
            })),
            delay: Duration::ZERO,
            echo_authorization: false,
            echo_key_split_at: None,
            padding: 0,
            stall_with_pings: None,
            repeat_terminal_usage: None,
        }
    }
}

/// One WebSocket session as the mock saw it.
#[derive(Clone, Debug)]
pub struct WsSessionRecord {
    /// The upgrade request's path.
    pub path: String,
    /// The upgrade request's headers.
    pub headers: HeaderMap,
    /// Every text message received, in order.
    pub messages: Vec<String>,
    /// Binary messages received.
    pub binary_messages: usize,
    /// The session ended (close frame, error or end of stream).
    pub ended: bool,
}

impl WsSessionRecord {
    /// A header of the upgrade request, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// A plain HTTP request the mock received (not an upgrade).
#[derive(Clone, Debug)]
pub struct HttpRecord {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Everything recorded so far.
#[derive(Clone, Debug, Default)]
pub struct WsMockState {
    pub sessions: Vec<WsSessionRecord>,
    pub http: Vec<HttpRecord>,
}

struct Shared {
    state: Mutex<WsMockState>,
    changed: Condvar,
    script: Mutex<WsScript>,
    seq: Mutex<u64>,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut WsMockState)) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
        self.changed.notify_all();
    }

    fn next_id(&self) -> String {
        let mut n = self.seq.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        format!("resp_ws_{n}")
    }
}

/// The mock (see the module docs). Dropping it stops it.
pub struct WsMock {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WsMock {
    /// Starts the mock on `127.0.0.1:<ephemeral>` (plain HTTP).
    pub fn start() -> anyhow::Result<Self> {
        Self::start_inner(None)
    }

    /// Starts the mock over TLS with `ca`'s server certificate (valid for `localhost` and
    /// `127.0.0.1`): the proxy's `wss://` path.
    pub fn start_tls(ca: &crate::tls::TestCa) -> anyhow::Result<Self> {
        Self::start_inner(Some(ca.server_config()?))
    }

    fn start_inner(tls: Option<Arc<rustls::ServerConfig>>) -> anyhow::Result<Self> {
        let is_tls = tls.is_some();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let shared = Arc::new(Shared {
            state: Mutex::new(WsMockState::default()),
            changed: Condvar::new(),
            script: Mutex::new(WsScript::default()),
            seq: Mutex::new(0),
        });
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("bind the websocket mock")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ws-mock".into())
            .spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    let mut stop_rx = stop_rx;
                    loop {
                        let accepted = tokio::select! {
                            _ = &mut stop_rx => break,
                            a = listener.accept() => a,
                        };
                        let Ok((tcp, _)) = accepted else { continue };
                        let shared = thread_shared.clone();
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            match acceptor {
                                None => serve(tcp, shared).await,
                                Some(a) => {
                                    if let Ok(tls) = a.accept(tcp).await {
                                        serve(tls, shared).await;
                                    }
                                }
                            }
                        });
                    }
                });
            })
            .context("spawn the websocket mock thread")?;
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

    /// `http://127.0.0.1:PORT/v1/responses` (`https://localhost:PORT/...` over TLS): the value
    /// for the proxy's `--upstream-url`.
    pub fn responses_url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}/v1/responses", self.addr.port())
        } else {
            format!("http://{}/v1/responses", self.addr)
        }
    }

    /// How the next `response.create` messages are answered.
    pub fn set_script(&self, script: WsScript) {
        *self.shared.script.lock().unwrap_or_else(|e| e.into_inner()) = script;
    }

    /// A copy of what was recorded.
    pub fn state(&self) -> WsMockState {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits (up to `timeout`) until `pred` holds; returns whether it did.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&WsMockState) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if pred(&s) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self
                .shared
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for WsMock {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The events answering one `response.create` (the JSON of each message).
pub fn response_events(
    id: &str,
    script: &WsScript,
    authorization: Option<&str>,
) -> Vec<serde_json::Value> {
    let mut ev = vec![serde_json::json!({
        "type": "response.created",
        "response": {"id": id, "object": "response", "status": "in_progress", "model": "gpt-5"}
    })];
    ev.push(serde_json::json!({
        "type": "response.output_item.added",
        "output_index": 0,
        "item": {"type": "message", "role": "assistant", "id": format!("msg_{id}"), "status": "in_progress", "content": []}
    }));
    for word in script.text.split_inclusive(' ') {
        ev.push(serde_json::json!({
            "type": "response.output_text.delta", "item_id": format!("msg_{id}"),
            "output_index": 0, "content_index": 0, "delta": word
        }));
    }
    if script.echo_authorization {
        ev.push(serde_json::json!({
            "type": "response.output_text.delta", "item_id": format!("msg_{id}"),
            "output_index": 0, "content_index": 0,
            "delta": format!(" (upstream saw {})", authorization.unwrap_or("nothing"))
        }));
    }
    if let Some(n) = script.echo_key_split_at {
        let key = authorization
            .unwrap_or("")
            .strip_prefix("Bearer ")
            .unwrap_or("");
        let n = n.min(key.len());
        for part in [format!("the key is {}", &key[..n]), key[n..].to_string()] {
            ev.push(serde_json::json!({
                "type": "response.output_text.delta", "item_id": format!("msg_{id}"),
                "output_index": 0, "content_index": 0, "delta": part
            }));
        }
    }
    if script.padding > 0 {
        ev.push(serde_json::json!({
            "type": "response.output_text.delta", "item_id": format!("msg_{id}"),
            "output_index": 0, "content_index": 0, "delta": "x".repeat(script.padding)
        }));
    }
    ev.push(serde_json::json!({
        "type": "response.output_item.done",
        "output_index": 0,
        "item": {
            "type": "message", "role": "assistant", "id": format!("msg_{id}"), "status": "completed",
            "content": [{"type": "output_text", "text": script.text, "annotations": []}]
        }
    }));
    let mut response = serde_json::json!({
        "id": id, "object": "response", "status": "completed", "model": "gpt-5", "output": []
    });
    if let Some(u) = &script.usage {
        response["usage"] = u.clone();
    }
    ev.push(serde_json::json!({"type": "response.completed", "response": response}));
    if let Some(u) = &script.repeat_terminal_usage {
        let mut again = response.clone();
        again["usage"] = u.clone();
        ev.push(serde_json::json!({"type": "response.completed", "response": again}));
    }
    ev
}

async fn serve<S>(io: S, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(req, shared).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades()
        .await;
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

async fn handle(mut req: Request<Incoming>, shared: Arc<Shared>) -> Response<Full<Bytes>> {
    if is_upgrade(&req) {
        let Some(key) = req.headers().get(http::header::SEC_WEBSOCKET_KEY).cloned() else {
            return status(StatusCode::BAD_REQUEST);
        };
        let path = req.uri().path().to_string();
        let headers = req.headers().clone();
        let index = {
            let mut s = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            s.sessions.push(WsSessionRecord {
                path,
                headers: headers.clone(),
                messages: Vec::new(),
                binary_messages: 0,
                ended: false,
            });
            s.sessions.len() - 1
        };
        shared.changed.notify_all();
        let on_upgrade = hyper::upgrade::on(&mut req);
        let auth = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        tokio::spawn(async move {
            if let Ok(up) = on_upgrade.await {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
                session(ws, shared.clone(), index, auth).await;
            }
            shared.update(|s| s.sessions[index].ended = true);
        });
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let mut resp = status(StatusCode::SWITCHING_PROTOCOLS);
        let h = resp.headers_mut();
        h.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("upgrade"),
        );
        if let Ok(v) = HeaderValue::from_str(&accept) {
            h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
        }
        h.insert("x-request-id", HeaderValue::from_static("req_ws_mock"));
        return resp;
    }
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    shared.update(|s| {
        s.http.push(HttpRecord {
            method: method.clone(),
            path: path.clone(),
            headers,
            body,
        })
    });
    if method == "POST" && path.ends_with("/responses") {
        let script = shared
            .script
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let id = shared.next_id();
        let mut sse = String::new();
        for ev in response_events(&id, &script, None) {
            let name = ev["type"].as_str().unwrap_or("message").to_string();
            sse.push_str(&format!("event: {name}\ndata: {ev}\n\n"));
        }
        let mut resp = Response::new(Full::new(Bytes::from(sse)));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        return resp;
    }
    status(StatusCode::NOT_FOUND)
}

fn status(s: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = s;
    r
}

async fn session<S>(
    mut ws: WebSocketStream<S>,
    shared: Arc<Shared>,
    index: usize,
    auth: Option<String>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(m) = ws.next().await {
        let Ok(m) = m else { return };
        match m {
            Message::Text(t) => {
                let text = t.as_str().to_string();
                shared.update(|s| s.sessions[index].messages.push(text.clone()));
                let kind = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v["type"].as_str().map(str::to_string));
                if kind.as_deref() != Some("response.create") {
                    continue;
                }
                let script = shared
                    .script
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                let id = shared.next_id();
                for ev in response_events(&id, &script, auth.as_deref()) {
                    if !script.delay.is_zero() {
                        tokio::time::sleep(script.delay).await;
                    }
                    if ws.send(Message::text(ev.to_string())).await.is_err() {
                        return;
                    }
                    if let Some(every) = script.stall_with_pings {
                        loop {
                            tokio::time::sleep(every).await;
                            if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            Message::Binary(_) => shared.update(|s| s.sessions[index].binary_messages += 1),
            Message::Close(_) => return,
            _ => {}
        }
    }
}
