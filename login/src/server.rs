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

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
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
use tokio::task::{AbortHandle, JoinSet};

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
/// Connections kept at once. When a new one arrives at the limit, the oldest connection that has
/// no request in progress (idle, or still sending its headers) is closed to make room; only when
/// every connection is handling a request is the new one closed unanswered.
const MAX_CONNECTIONS: usize = 64;
/// Attempts at finding an ephemeral port free on both loopback families.
const EPHEMERAL_ATTEMPTS: usize = 16;

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

/// What a generic login's exchange step needs: the code from the callback, the redirect URI it
/// was sent to, and the PKCE verifier.
#[derive(Debug)]
pub struct CallbackCode {
    pub code: String,
    pub redirect_uri: String,
    pub verifier: crate::SecretString,
}

/// The second step of a generic login: store what the exchange returned. Runs once the login is
/// committed (a cancel can no longer end it).
pub type CommitFn = Box<dyn FnOnce() -> PersistFuture + Send>;
/// The first step of a generic login: exchange the code. `Err(reason)` fails the login.
pub type ExchangeFn = Box<
    dyn FnOnce(CallbackCode) -> Pin<Box<dyn Future<Output = Result<CommitFn, String>> + Send>>
        + Send,
>;

/// The parameters of a generic login, known once its callback server is bound: the caller
/// registers the redirect URI (RFC 7591) and builds its authorization URL from them.
pub struct BoundCallback {
    listeners: Listeners,
    /// `http://localhost:<port>/auth/callback`.
    pub redirect_uri: String,
    /// The `state` the callback must carry.
    pub state: String,
    /// The PKCE S256 challenge for the authorization URL.
    pub code_challenge: String,
    pkce: PkceCodes,
}

impl std::fmt::Debug for BoundCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundCallback")
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

impl BoundCallback {
    /// The port bound.
    pub fn port(&self) -> u16 {
        self.listeners.port
    }

    /// Serve the callback until the login ends: a callback with our `state` and a code runs
    /// `exchange` (then its commit step), with the same phases, cancel, timeout and pages as the
    /// ChatGPT login. `auth_url` is only reported back ([`LoginServer::auth_url`]); on success
    /// the outcome is `LoginOutcome::Success` with empty claims.
    pub fn serve(
        self,
        auth_url: String,
        timeout: Option<Duration>,
        exchange: ExchangeFn,
    ) -> LoginServer {
        let port = self.listeners.port;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            phase: Mutex::new(Phase::Waiting),
            persist: Mutex::new(None),
            generic: Mutex::new(Some(exchange)),
            state: self.state,
            pkce: self.pkce,
            client_id: String::new(),
            redirect_uri: self.redirect_uri,
            port,
            token_client: None,
            outcomes: tx,
        });
        let notify = Arc::new(Notify::new());
        let task = tokio::spawn(serve(self.listeners, shared, rx, notify.clone(), timeout));
        LoginServer {
            auth_url,
            port,
            cancel: CancelHandle { notify },
            task: Some(task),
        }
    }
}

/// Bind the loopback callback server for a generic (non-ChatGPT) OAuth login, e.g. an MCP
/// server's: same sockets (127.0.0.1 and [::1] on one port), Host check, `state` check and
/// connection limits as [`start`]. Continue with [`BoundCallback::serve`].
pub async fn bind_callback(port: PortChoice) -> Result<BoundCallback, LoginError> {
    let listeners = bind(port).await?;
    let redirect_uri = format!("http://localhost:{}{CALLBACK_PATH}", listeners.port);
    let pkce = generate_pkce();
    Ok(BoundCallback {
        listeners,
        redirect_uri,
        state: generate_state(),
        code_challenge: pkce.challenge.clone(),
        pkce,
    })
}

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

    /// The port the callback server listens on (127.0.0.1 and, when the host has IPv6, [::1]).
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
    let listeners = bind(opts.port).await?;
    let port = listeners.port;
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
        generic: Mutex::new(None),
        state,
        pkce,
        client_id: opts.client_id,
        redirect_uri,
        port,
        token_client: Some(token_client),
        outcomes: tx,
    });
    let notify = Arc::new(Notify::new());
    let task = tokio::spawn(serve(listeners, shared, rx, notify.clone(), opts.timeout));
    Ok(LoginServer {
        auth_url,
        port,
        cancel: CancelHandle { notify },
        task: Some(task),
    })
}

/// The callback server's sockets: `127.0.0.1:port` and `[::1]:port`.
///
/// The redirect URI says `localhost` (the name openai/codex registers with its issuer), and a
/// browser may resolve it to `::1` first. If we listened on 127.0.0.1 only, another local user
/// could listen on `[::1]:port` and receive the code and `state` (and serve a page on the
/// callback origin). So both families are bound on the same port, or the port is not used: with a
/// preferred port, another port free on both families is chosen; with an exact port, it is an
/// error. A host without an IPv6 loopback (bind fails with `EADDRNOTAVAIL`/`EAFNOSUPPORT`) gets
/// the IPv4 socket only: nobody can listen on `::1` there either.
struct Listeners {
    v4: TcpListener,
    v6: Option<TcpListener>,
    port: u16,
}

async fn bind_pair(port: u16) -> Result<Listeners, LoginError> {
    let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .map_err(|source| LoginError::Bind {
            host: "127.0.0.1",
            port,
            source,
        })?;
    let port = v4.local_addr().map_err(LoginError::LocalAddr)?.port();
    let v6 = match TcpListener::bind((Ipv6Addr::LOCALHOST, port)).await {
        Ok(l) => Some(l),
        Err(e)
            if e.kind() == std::io::ErrorKind::AddrNotAvailable
                || e.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
        {
            None
        }
        Err(source) => {
            return Err(LoginError::Bind {
                host: "[::1]",
                port,
                source,
            });
        }
    };
    Ok(Listeners { v4, v6, port })
}

fn in_use(e: &LoginError) -> bool {
    matches!(e, LoginError::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse)
}

async fn bind(choice: PortChoice) -> Result<Listeners, LoginError> {
    let (port, fallback) = match choice {
        PortChoice::Preferred(p) => (p, true),
        PortChoice::Exact(p) => (p, false),
    };
    if port != 0 {
        match bind_pair(port).await {
            Ok(l) => return Ok(l),
            Err(e) if fallback && in_use(&e) => {}
            Err(e) => return Err(e),
        }
    }
    // An ephemeral port on 127.0.0.1 may be taken on [::1] (a squatter guessing it): try again.
    let mut last = None;
    for _ in 0..EPHEMERAL_ATTEMPTS {
        match bind_pair(0).await {
            Ok(l) => return Ok(l),
            Err(e) if in_use(&e) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(LoginError::Bind {
        host: "127.0.0.1",
        port: 0,
        source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
    }))
}

/// Accept on `l`, or never when it is absent.
async fn accept_opt(l: &Option<TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// The live connections, oldest first, with whether each is handling a request and whether
/// its peer is a process of the user running the login.
struct Connections {
    set: JoinSet<()>,
    order: VecDeque<Conn>,
    /// Who owns each peer socket (sock_diag); `None` when the netlink socket could not be
    /// opened: every peer then counts as another user's.
    #[cfg(target_os = "linux")]
    peers: Option<codex_privsep::peer::PeerIdentifier>,
    #[cfg(target_os = "linux")]
    me: u32,
}

struct Conn {
    handle: AbortHandle,
    busy: Arc<AtomicBool>,
    ours: bool,
}

impl Connections {
    fn new() -> Self {
        Self {
            set: JoinSet::new(),
            order: VecDeque::new(),
            #[cfg(target_os = "linux")]
            peers: codex_privsep::peer::PeerIdentifier::new().ok(),
            #[cfg(target_os = "linux")]
            me: crate::sys::geteuid(),
        }
    }

    /// Whether the peer of `stream` belongs to the user running the login (unknown: no).
    #[cfg(target_os = "linux")]
    fn ours(&self, stream: &TcpStream) -> bool {
        let (Some(peers), Ok(local), Ok(peer)) =
            (&self.peers, stream.local_addr(), stream.peer_addr())
        else {
            return false;
        };
        peers
            .peer_uid_tcp(local, peer)
            .is_ok_and(|c| c.uid == self.me)
    }

    /// No sock_diag here: every peer counts as another user's.
    #[cfg(not(target_os = "linux"))]
    fn ours(&self, _stream: &TcpStream) -> bool {
        false
    }

    /// Make room for one more (`ours`: its peer is the user's): drop finished entries, then, at
    /// the limit, close the oldest connection of another user without a request in progress,
    /// or, for a connection of the user's, the oldest of the user's own if there is none.
    /// Another user's connections never push out one of the user's (the browser's, in a
    /// flood). `false`: no room, the new connection is closed.
    fn make_room(&mut self, ours: bool) -> bool {
        self.order.retain(|c| !c.handle.is_finished());
        if self.order.len() < MAX_CONNECTIONS {
            return true;
        }
        let idle = |c: &Conn| !c.busy.load(Ordering::SeqCst);
        let pick = self
            .order
            .iter()
            .position(|c| idle(c) && !c.ours)
            .or_else(|| ours.then(|| self.order.iter().position(idle)).flatten());
        match pick.and_then(|i| self.order.remove(i)) {
            Some(c) => {
                c.handle.abort();
                true
            }
            None => false,
        }
    }

    fn spawn(&mut self, stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
        let ours = self.ours(&stream);
        if !self.make_room(ours) {
            return; // dropped: closed unanswered
        }
        let busy = Arc::new(AtomicBool::new(false));
        let handle = self
            .set
            .spawn(serve_connection(stream, peer, shared, busy.clone()));
        self.order.push_back(Conn { handle, busy, ours });
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
    /// A generic login's exchange step (then `token_client` is `None`).
    generic: Mutex<Option<ExchangeFn>>,
    state: String,
    pkce: PkceCodes,
    client_id: String,
    redirect_uri: String,
    port: u16,
    /// The ChatGPT login's token endpoint.
    token_client: Option<TokenClient>,
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
    listeners: Listeners,
    shared: Arc<Shared>,
    mut outcomes: mpsc::UnboundedReceiver<LoginOutcome>,
    cancel: Arc<Notify>,
    timeout: Option<Duration>,
) -> LoginOutcome {
    let mut conns = Connections::new();
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
            accepted = listeners.v4.accept() => match accepted {
                Ok((stream, peer)) => conns.spawn(stream, peer, shared.clone()),
                // EMFILE and friends: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            accepted = accept_opt(&listeners.v6) => match accepted {
                Ok((stream, peer)) => conns.spawn(stream, peer, shared.clone()),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = conns.set.join_next(), if !conns.set.is_empty() => {}
        }
    };
    drop(listeners);
    conns.set.abort_all();
    while conns.set.join_next().await.is_some() {}
    outcome
}

/// Clears a connection's busy flag when its request ends (or is aborted).
struct BusyGuard(Arc<AtomicBool>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

async fn serve_connection(
    stream: TcpStream,
    _peer: SocketAddr,
    shared: Arc<Shared>,
    busy: Arc<AtomicBool>,
) {
    let slot: Arc<Mutex<Option<LoginOutcome>>> = Arc::new(Mutex::new(None));
    let service = {
        let shared = shared.clone();
        let slot = slot.clone();
        service_fn(move |req| {
            let shared = shared.clone();
            let slot = slot.clone();
            let busy = busy.clone();
            async move {
                // A connection handling a request (e.g. the callback during the token exchange)
                // is never evicted to make room.
                busy.store(true, Ordering::SeqCst);
                let _idle_again = BusyGuard(busy);
                Ok::<_, Infallible>(handle(req, &shared, &slot).await)
            }
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
    let Some(token_client) = &shared.token_client else {
        return generic_exchange(shared, code, finish).await;
    };
    let tokens = match token_client
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

/// The exchange and commit of a generic login (the ChatGPT path is inline in [`handle`]).
async fn generic_exchange(
    shared: &Shared,
    code: &str,
    finish: impl Fn(LoginOutcome),
) -> Response<Full<Bytes>> {
    let exchange = shared
        .generic
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let Some(exchange) = exchange else {
        *shared.phase() = Phase::Done;
        let reason = "the code was already exchanged".to_string();
        let resp = page(StatusCode::CONFLICT, "Sign-in failed", &reason, true);
        finish(LoginOutcome::Failed(reason));
        return resp;
    };
    let commit = match exchange(CallbackCode {
        code: code.to_string(),
        redirect_uri: shared.redirect_uri.clone(),
        verifier: crate::SecretString::new(shared.pkce.verifier.expose_secret().to_string()),
    })
    .await
    {
        Ok(c) => c,
        Err(reason) => {
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
    let stored = commit().await;
    *shared.phase() = Phase::Done;
    match stored {
        Ok(()) => {
            let resp = page(
                StatusCode::OK,
                "Signed in",
                "Signed in. You can close this tab and return to the terminal.",
                true,
            );
            finish(LoginOutcome::Success(IdTokenClaims::default()));
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

/// An HTML page. `last` closes the connection after it (the login ends with this answer);
/// so does every refusal (4xx): a refused connection is not kept idle, where a web page that
/// makes the user's browser send requests to the callback would hold connections of the
/// user's own uid, which may push out the browser's (outside review r37 F2).
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
    if last || status.is_client_error() {
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
