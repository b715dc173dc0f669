//! The local callback server and the login's life cycle.
//!
//! One tokio task runs the whole login: it owns the listener, the per-connection tasks (a
//! `JoinSet`, aborted when the login ends) and the timeout (a `sleep_until` inside the serve loop,
//! dropped — so disarmed — the moment the loop ends). Nothing outlives [`LoginServer::wait`], and
//! dropping a [`LoginServer`] aborts the login.
//!
//! Phases, under one mutex so that cancel, timeout and the callback cannot both win:
//! `Waiting` → (valid callback) `Exchanging` → (tokens received) `Committed` → `Done`.
//! Cancel and timeout end the login in `Waiting` and `Exchanging`; once `Committed` the tokens are
//! being stored and the login completes (a cancel that arrives then has no effect).

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::claims::IdTokenClaims;
use crate::error::LoginError;
use crate::exchange::{TokenClient, TokenSet};
use crate::issuer::{self, Issuer};
use codex_oauth::pkce::{PkceCodes, generate_pkce, generate_state};

/// The port openai/codex registers with its issuer.
pub const DEFAULT_PORT: u16 = 1455;
/// The callback path.
pub const CALLBACK_PATH: &str = "/auth/callback";
/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed unanswered.
const MAX_CONNECTIONS: usize = 64;

/// Which port to listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChoice {
    /// Try this port; if it is taken, listen on an ephemeral port instead. Port 0 means ephemeral.
    Preferred(u16),
    /// This port or an error (`--port`).
    Exact(u16),
}

/// What a login needs to start.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    pub issuer: Issuer,
    pub client_id: String,
    pub port: PortChoice,
    /// `None`: wait until cancelled.
    pub timeout: Option<Duration>,
}

/// How a login ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Tokens received and stored by the persist callback.
    Success(IdTokenClaims),
    /// [`CancelHandle::cancel`] was called before the tokens arrived.
    Cancelled,
    /// The timeout passed before the tokens arrived.
    TimedOut(Duration),
    /// The issuer reported an error, the token exchange failed, or storing failed.
    Failed(String),
}

impl LoginOutcome {
    /// `true` for [`LoginOutcome::Success`].
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success(_))
    }

    /// The reason a login did not succeed, as shown to the user; `None` on success.
    pub fn error_message(&self) -> Option<String> {
        match self {
            Self::Success(_) => None,
            Self::Cancelled => Some("login cancelled".to_string()),
            Self::TimedOut(d) => Some(format!("login timed out after {}s", d.as_secs())),
            Self::Failed(reason) => Some(reason.clone()),
        }
    }
}

/// The future a persist callback returns: `Err(reason)` fails the login with that reason.
pub type PersistFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type PersistFn = Box<dyn FnOnce(TokenSet) -> PersistFuture + Send>;

/// Cancels a login. Cloneable; cancelling twice, or after the login ended, does nothing.
#[derive(Debug, Clone)]
pub struct CancelHandle {
    notify: Arc<Notify>,
}

impl CancelHandle {
    /// Ask the login to end with [`LoginOutcome::Cancelled`] (unless the tokens already arrived).
    pub fn cancel(&self) {
        // notify_one keeps a permit when the loop is not waiting at this instant.
        self.notify.notify_one();
    }
}

/// A running login.
#[derive(Debug)]
pub struct LoginServer {
    auth_url: String,
    port: u16,
    cancel: CancelHandle,
    task: Option<tokio::task::JoinHandle<LoginOutcome>>,
}

impl LoginServer {
    /// The URL the user opens.
    pub fn auth_url(&self) -> &str {
        &self.auth_url
    }

    /// The port the callback server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that cancels this login.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    /// Wait for the login to end. When this returns, the listener is closed and no task of the
    /// login is left running.
    pub async fn wait(mut self) -> LoginOutcome {
        let Some(task) = self.task.take() else {
            return LoginOutcome::Failed("login already awaited".to_string());
        };
        match task.await {
            Ok(outcome) => outcome,
            Err(e) => LoginOutcome::Failed(format!("login task ended abnormally: {e}")),
        }
    }
}

impl Drop for LoginServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Start a login: bind the callback server, build the authorize URL, and serve until the login
/// ends. `persist` receives the tokens once; its error fails the login. Must be called inside a
/// tokio runtime with the time and io drivers enabled.
pub async fn start<P, F>(opts: LoginOptions, persist: P) -> Result<LoginServer, LoginError>
where
    P: FnOnce(TokenSet) -> F + Send + 'static,
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    issuer::validate_client_id(&opts.client_id)?;
    let token_client = TokenClient::new(&opts.issuer)?;
    let listener = bind(opts.port).await?;
    let port = listener.local_addr().map_err(LoginError::LocalAddr)?.port();
    let redirect_uri = format!("http://localhost:{port}{CALLBACK_PATH}");
    let pkce = generate_pkce();
    let state = generate_state();
    let auth_url = issuer::authorize_url(
        &opts.issuer,
        &opts.client_id,
        &redirect_uri,
        &pkce.challenge,
        &state,
    );
    let persist: PersistFn = Box::new(move |t| Box::pin(persist(t)));
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        phase: Mutex::new(Phase::Waiting),
        persist: Mutex::new(Some(persist)),
        state,
        pkce,
        client_id: opts.client_id,
        redirect_uri,
        port,
        token_client,
        outcomes: tx,
    });
    let notify = Arc::new(Notify::new());
    let task = tokio::spawn(serve(listener, shared, rx, notify.clone(), opts.timeout));
    Ok(LoginServer {
        auth_url,
        port,
        cancel: CancelHandle { notify },
        task: Some(task),
    })
}

async fn bind(choice: PortChoice) -> Result<TcpListener, LoginError> {
    let (port, fallback) = match choice {
        PortChoice::Preferred(p) => (p, true),
        PortChoice::Exact(p) => (p, false),
    };
    match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
        Ok(l) => Ok(l),
        Err(e) if fallback && port != 0 && e.kind() == std::io::ErrorKind::AddrInUse => {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .map_err(|source| LoginError::Bind { port: 0, source })
        }
        Err(source) => Err(LoginError::Bind { port, source }),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting,
    Exchanging,
    Committed,
    Done,
}

struct Shared {
    phase: Mutex<Phase>,
    persist: Mutex<Option<PersistFn>>,
    state: String,
    pkce: PkceCodes,
    client_id: String,
    redirect_uri: String,
    port: u16,
    token_client: TokenClient,
    outcomes: mpsc::UnboundedSender<LoginOutcome>,
}

impl Shared {
    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        // A poisoned lock only means a handler panicked mid-update; the phase value is still a
        // valid enum, so keep going with it.
        self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// End the login from the outside (cancel, timeout) unless the tokens are being stored.
    fn try_end(&self) -> bool {
        let mut phase = self.phase();
        match *phase {
            Phase::Committed => false,
            _ => {
                *phase = Phase::Done;
                true
            }
        }
    }
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut outcomes: mpsc::UnboundedReceiver<LoginOutcome>,
    cancel: Arc<Notify>,
    timeout: Option<Duration>,
) -> LoginOutcome {
    let mut conns = JoinSet::new();
    let deadline = timeout.map(|d| tokio::time::Instant::now() + d);
    let timer = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timer);
    let mut timer_armed = true;
    let outcome = loop {
        tokio::select! {
            biased;
            Some(outcome) = outcomes.recv() => break outcome,
            () = cancel.notified() => {
                if shared.try_end() {
                    break LoginOutcome::Cancelled;
                }
            }
            () = &mut timer, if timer_armed => {
                if shared.try_end() {
                    break LoginOutcome::TimedOut(timeout.unwrap_or_default());
                }
                timer_armed = false;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if conns.len() < MAX_CONNECTIONS {
                        conns.spawn(serve_connection(stream, peer, shared.clone()));
                    }
                }
                // EMFILE and friends: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    };
    drop(listener);
    conns.abort_all();
    while conns.join_next().await.is_some() {}
    outcome
}

async fn serve_connection(stream: TcpStream, _peer: SocketAddr, shared: Arc<Shared>) {
    let slot: Arc<Mutex<Option<LoginOutcome>>> = Arc::new(Mutex::new(None));
    let service = {
        let shared = shared.clone();
        let slot = slot.clone();
        service_fn(move |req| {
            let shared = shared.clone();
            let slot = slot.clone();
            async move { Ok::<_, Infallible>(handle(req, &shared, &slot).await) }
        })
    };
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    // The terminal page has been written (the connection was closed after it): now report.
    let outcome = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(outcome) = outcome {
        let _ = shared.outcomes.send(outcome);
    }
}

/// Is `host` (a Host header value) one of our own loopback names, on our port?
fn host_allowed(host: &str, port: u16) -> bool {
    let (name, host_port) = match host.rsplit_once(':') {
        Some((n, _)) if !n.ends_with(']') && n.contains(':') => (host, None), // bare IPv6: refused below
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let name_ok = name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1" || name == "[::1]";
    let port_ok = match host_port {
        Some(p) => p.parse::<u16>().is_ok_and(|p| p == port),
        None => true,
    };
    name_ok && port_ok
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(
    req: Request<Incoming>,
    shared: &Shared,
    slot: &Mutex<Option<LoginOutcome>>,
) -> Response<Full<Bytes>> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !host_allowed(host, shared.port) {
        return page(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "This request's Host is not a loopback name.",
            false,
        );
    }
    if req.uri().path() != CALLBACK_PATH {
        return page(StatusCode::NOT_FOUND, "Not found", "Nothing here.", false);
    }
    if req.method() != http::Method::GET {
        return page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method not allowed",
            "Use GET.",
            false,
        );
    }
    let params: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let state_ok = params
        .get("state")
        .is_some_and(|s| ct_eq(s.as_bytes(), shared.state.as_bytes()));
    if !state_ok {
        // Not ours (a stale tab, or a forged request): refuse and keep waiting.
        return page(
            StatusCode::BAD_REQUEST,
            "State mismatch",
            "This sign-in link is not the one codex is waiting for.",
            false,
        );
    }
    let finish = |outcome: LoginOutcome| {
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(outcome);
    };
    if let Some(err) = params.get("error") {
        if !shared.try_end() {
            return page(
                StatusCode::CONFLICT,
                "Busy",
                "A sign-in is already being completed.",
                false,
            );
        }
        let clean =
            |s: &str| -> String { s.chars().filter(|c| !c.is_control()).take(200).collect() };
        let mut reason = format!("the issuer refused the sign-in: {}", clean(err));
        if let Some(d) = params.get("error_description") {
            reason.push_str(": ");
            reason.push_str(&clean(d));
        }
        let resp = page(StatusCode::BAD_REQUEST, "Sign-in failed", &reason, true);
        finish(LoginOutcome::Failed(reason));
        return resp;
    }
    let Some(code) = params.get("code").filter(|c| !c.is_empty()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Missing code",
            "The callback carries no authorization code.",
            false,
        );
    };
    {
        let mut phase = shared.phase();
        if *phase != Phase::Waiting {
            return page(
                StatusCode::CONFLICT,
                "Busy",
                "A sign-in is already being completed.",
                false,
            );
        }
        *phase = Phase::Exchanging;
    }
    let tokens = match shared
        .token_client
        .exchange_code(
            &shared.client_id,
            &shared.redirect_uri,
            code,
            &shared.pkce.verifier,
        )
        .await
    {
        Ok(t) => t,
        Err(e) => {
            let reason = format!("token exchange failed: {e}");
            *shared.phase() = Phase::Done;
            let resp = page(StatusCode::BAD_GATEWAY, "Sign-in failed", &reason, true);
            finish(LoginOutcome::Failed(reason));
            return resp;
        }
    };
    {
        let mut phase = shared.phase();
        if *phase != Phase::Exchanging {
            return page(
                StatusCode::GONE,
                "Sign-in ended",
                "This sign-in was cancelled or timed out.",
                true,
            );
        }
        *phase = Phase::Committed;
    }
    let claims = tokens.claims.clone();
    let persist = shared
        .persist
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let stored = match persist {
        Some(persist) => persist(tokens).await,
        None => Err("the tokens were already stored".to_string()),
    };
    *shared.phase() = Phase::Done;
    match stored {
        Ok(()) => {
            let who = claims
                .email
                .clone()
                .unwrap_or_else(|| "your account".to_string());
            let resp = page(
                StatusCode::OK,
                "Signed in to codex",
                &format!("Signed in as {who}. You can close this tab and return to the terminal."),
                true,
            );
            finish(LoginOutcome::Success(claims));
            resp
        }
        Err(e) => {
            let reason = format!("storing the credentials failed: {e}");
            let resp = page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign-in failed",
                &reason,
                true,
            );
            finish(LoginOutcome::Failed(reason));
            resp
        }
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An HTML page. `last` closes the connection after it (the login ends with this answer).
fn page(status: StatusCode, title: &str, message: &str, last: bool) -> Response<Full<Bytes>> {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family:sans-serif;margin:4em\"><h1>{t}</h1><p>{m}</p></body></html>\n",
        t = html_escape(title),
        m = html_escape(message),
    );
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'",
        );
    if last {
        builder = builder.header(header::CONNECTION, "close");
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| {
            let mut r = Response::new(Full::new(Bytes::from_static(b"internal error\n")));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_check() {
        for ok in [
            "localhost:1455",
            "LOCALHOST:1455",
            "127.0.0.1:1455",
            "[::1]:1455",
            "localhost",
        ] {
            assert!(host_allowed(ok, 1455), "{ok}");
        }
        for bad in [
            "",
            "evil.example:1455",
            "localhost.evil.example:1455",
            "127.0.0.1:80",
            "localhost:1455x",
            "127.0.0.2:1455",
            "::1",
            "attacker.localhost:1455",
        ] {
            assert!(!host_allowed(bad, 1455), "{bad}");
        }
    }

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }

    #[test]
    fn escaping() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
