//! A mock OAuth 2.0 issuer and a scripted browser, for the login tests.
//!
//! [`MockIssuer`] listens on `127.0.0.1:<ephemeral>` (plain HTTP: the login crate accepts
//! `http://` issuers on loopback only) and implements the two endpoints a browser login uses:
//!
//! - `GET /oauth/authorize`: checks `response_type=code`, the client id, `code_challenge_method=S256`,
//!   a loopback `redirect_uri` ending in `/auth/callback`, then answers `302` to
//!   `redirect_uri?code=<fresh code>&state=<state as given>`;
//! - `POST /oauth/token`: `authorization_code` grant: the code must be known and unused, the
//!   client id and redirect URI must match the authorize request, and
//!   `BASE64URL(SHA256(code_verifier))` must equal the stored challenge (RFC 7636 §4.6), else
//!   `400 {"error":"invalid_grant"}`; then `{id_token, access_token, refresh_token}` where the ID
//!   token is a JWT with base64url claims and a signature-looking third part. `refresh_token`
//!   grant: refresh tokens ROTATE: a live one gets new tokens and a new refresh token, and is dead
//!   from then on (`invalid_grant` when presented again). Access tokens are JWTs whose `exp` is
//!   `now + access_ttl` ([`MockIssuer::set_access_ttl`], may be negative: already expired).
//! - openai/codex's device flow: `POST /api/accounts/deviceauth/usercode` (JSON `{client_id}` →
//!   `{device_auth_id, user_code, interval}`), `POST /api/accounts/deviceauth/token` (403 while
//!   pending, then `{authorization_code, code_challenge, code_verifier}`; the code is exchanged
//!   at `/oauth/token` with `redirect_uri = <issuer>/deviceauth/callback`);
//! - RFC 8628, when [`MockIssuer::set_advertise_device`] is on: `device_authorization_endpoint`
//!   in `/.well-known/openid-configuration`, `POST /oauth/device/code`, and the device-code grant
//!   at `/oauth/token` (`authorization_pending`, `access_denied`, single-use device codes);
//! - [`MockIssuer::approve_device`] / [`MockIssuer::deny_device`]: the scripted approver, by user
//!   code, for both device flows.
//!
//! It runs on its own thread with a single-threaded tokio runtime, so sync and async tests can use
//! it; dropping it stops it. [`browse`] is the scripted browser: it follows the authorize redirect
//! to the login server's callback with a plain blocking HTTP/1.1 client.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::RngCore;
use sha2::Digest;
use tokio::sync::oneshot;

/// The client id the mock expects unless configured otherwise (openai/codex's public id).
pub const MOCK_CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";

/// What the mock puts into the tokens it issues.
#[derive(Clone, Debug)]
pub struct MockIdentity {
    pub email: String,
    pub account_id: String,
    pub plan: String,
}

impl Default for MockIdentity {
    fn default() -> Self {
        Self {
            email: "user@example.com".to_string(),
            account_id: "acct_mock_123".to_string(),
            plan: "plus".to_string(),
        }
    }
}

/// Tokens the mock issued, for comparing with what the client stored.
#[derive(Clone, Debug)]
pub struct IssuedTokens {
    pub id_token: String,
    pub access_token: String,
    pub refresh_token: String,
}

#[derive(Debug)]
struct PendingCode {
    challenge: String,
    redirect_uri: String,
    client_id: String,
}

/// A device login waiting for the scripted approver.
#[derive(Debug, Clone)]
struct DeviceEntry {
    user_code: String,
    /// `None`: pending; `Some(true)`: approved; `Some(false)`: denied.
    decision: Option<bool>,
    /// RFC 8628 flow (else openai/codex's own).
    rfc8628: bool,
    polls: u32,
}

#[derive(Debug)]
struct State {
    codes: HashMap<String, PendingCode>,
    issued: Vec<IssuedTokens>,
    token_requests: Vec<HashMap<String, String>>,
    token_delay: Duration,
    /// Refresh tokens that may still be used.
    live_refresh: std::collections::HashSet<String>,
    refresh_grants: u32,
    access_ttl: i64,
    rotate_refresh: bool,
    refresh_id_token: Option<String>,
    advertise_device: bool,
    device_interval: i64,
    /// Keyed by device_auth_id (codex flow) or device_code (RFC 8628).
    devices: HashMap<String, DeviceEntry>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            codes: HashMap::new(),
            issued: Vec::new(),
            token_requests: Vec::new(),
            token_delay: Duration::ZERO,
            live_refresh: Default::default(),
            refresh_grants: 0,
            access_ttl: 3600,
            rotate_refresh: true,
            refresh_id_token: None,
            advertise_device: false,
            device_interval: 1,
            devices: HashMap::new(),
        }
    }
}

/// The running mock issuer.
pub struct MockIssuer {
    addr: SocketAddr,
    base_url: String,
    client_id: String,
    identity: MockIdentity,
    state: Arc<Mutex<State>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for MockIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockIssuer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl MockIssuer {
    /// Start with [`MOCK_CLIENT_ID`] and the default identity.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(MOCK_CLIENT_ID, MockIdentity::default())
    }

    /// Start over TLS with a certificate from `ca` (valid for `localhost`): [`MockIssuer::url`]
    /// is then `https://localhost:<port>`; clients trust it through `SSL_CERT_FILE`.
    pub fn start_tls(ca: &crate::tls::TestCa) -> anyhow::Result<Self> {
        Self::start_inner(
            MOCK_CLIENT_ID,
            MockIdentity::default(),
            Some(ca.server_config()?),
        )
    }

    /// Start expecting `client_id`, issuing tokens for `identity`.
    pub fn start_with(client_id: &str, identity: MockIdentity) -> anyhow::Result<Self> {
        Self::start_inner(client_id, identity, None)
    }

    fn start_inner(
        client_id: &str,
        identity: MockIdentity,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> anyhow::Result<Self> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let base_url = match tls {
            Some(_) => format!("https://localhost:{}", addr.port()),
            None => format!("http://{addr}"),
        };
        let state = Arc::new(Mutex::new(State::default()));
        let (tx, rx) = oneshot::channel();
        let ctx = Arc::new(Ctx {
            client_id: client_id.to_string(),
            identity: identity.clone(),
            state: state.clone(),
            base_url: base_url.clone(),
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("oauth-mock".to_string())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    tokio::select! {
                        _ = rx => {}
                        () = accept_loop(listener, ctx, tls) => {}
                    }
                });
            })?;
        Ok(Self {
            addr,
            base_url,
            client_id: client_id.to_string(),
            identity,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>` (or `https://localhost:<port>` with TLS): the value for
    /// `auth.issuer`.
    pub fn url(&self) -> String {
        self.base_url.clone()
    }

    /// The client id it expects.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The identity it puts into ID tokens.
    pub fn identity(&self) -> &MockIdentity {
        &self.identity
    }

    /// Delay every token answer (to keep a login in its exchange phase).
    pub fn set_token_delay(&self, d: Duration) {
        lock(&self.state).token_delay = d;
    }

    /// Every token request's form fields, in order.
    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        lock(&self.state).token_requests.clone()
    }

    /// Every token set issued, in order.
    pub fn issued(&self) -> Vec<IssuedTokens> {
        lock(&self.state).issued.clone()
    }

    /// Lifetime of the access tokens issued from now on, in seconds (negative: already expired).
    pub fn set_access_ttl(&self, secs: i64) {
        lock(&self.state).access_ttl = secs;
    }

    /// `false`: refresh answers carry no refresh token (the client keeps its old one, which
    /// stays live).
    pub fn set_rotate_refresh(&self, rotate: bool) {
        lock(&self.state).rotate_refresh = rotate;
    }

    /// Put this string as the ID token into refresh answers (e.g. a malformed JWT).
    pub fn set_refresh_id_token(&self, token: Option<&str>) {
        lock(&self.state).refresh_id_token = token.map(str::to_string);
    }

    /// Successful refresh grants so far.
    pub fn refresh_grants(&self) -> u32 {
        lock(&self.state).refresh_grants
    }

    /// The refresh token a client should hold now (the newest live one).
    pub fn newest_refresh_token(&self) -> Option<String> {
        let st = lock(&self.state);
        st.issued
            .iter()
            .rev()
            .map(|t| t.refresh_token.clone())
            .find(|t| st.live_refresh.contains(t))
    }

    /// Advertise RFC 8628 (`device_authorization_endpoint`) in the discovery document.
    pub fn set_advertise_device(&self, on: bool) {
        lock(&self.state).advertise_device = on;
    }

    /// The `interval` given to device logins (seconds; the value is sent as is).
    pub fn set_device_interval(&self, secs: i64) {
        lock(&self.state).device_interval = secs;
    }

    /// User codes of device logins still waiting for a decision.
    pub fn pending_user_codes(&self) -> Vec<String> {
        lock(&self.state)
            .devices
            .values()
            .filter(|d| d.decision.is_none())
            .map(|d| d.user_code.clone())
            .collect()
    }

    /// Polls received so far for the device login with this user code.
    pub fn device_polls(&self, user_code: &str) -> u32 {
        lock(&self.state)
            .devices
            .values()
            .filter(|d| d.user_code == user_code)
            .map(|d| d.polls)
            .sum()
    }

    /// The scripted approver: the user signs in and approves `user_code`. `false` if unknown.
    pub fn approve_device(&self, user_code: &str) -> bool {
        self.decide(user_code, true)
    }

    /// The user refuses `user_code`.
    pub fn deny_device(&self, user_code: &str) -> bool {
        self.decide(user_code, false)
    }

    fn decide(&self, user_code: &str, approve: bool) -> bool {
        let mut st = lock(&self.state);
        let mut found = false;
        for d in st.devices.values_mut() {
            if d.user_code == user_code && d.decision.is_none() {
                d.decision = Some(approve);
                found = true;
            }
        }
        found
    }

    /// Act as an attacker would: run an authorize request with the attacker's own PKCE challenge
    /// and return the code the mock issues for it (not sent anywhere).
    pub fn mint_code(&self, challenge: &str, redirect_uri: &str) -> String {
        let code = random_hex(16);
        lock(&self.state).codes.insert(
            code.clone(),
            PendingCode {
                challenge: challenge.to_string(),
                redirect_uri: redirect_uri.to_string(),
                client_id: self.client_id.clone(),
            },
        );
        code
    }
}

impl Drop for MockIssuer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Ctx {
    client_id: String,
    identity: MockIdentity,
    state: Arc<Mutex<State>>,
    base_url: String,
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    ctx: Arc<Ctx>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let ctx = ctx.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(route(req, &ctx).await) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            match acceptor {
                Some(acceptor) => {
                    // A client that does not trust the certificate aborts the handshake here.
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = http.serve_connection(TokioIo::new(tls), service).await;
                }
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
            }
        });
    }
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn json(status: StatusCode, v: serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

fn oauth_error(code: &str, description: &str) -> Response<Full<Bytes>> {
    json(
        StatusCode::BAD_REQUEST,
        serde_json::json!({"error": code, "error_description": description}),
    )
}

fn is_loopback_callback(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("http://") else {
        return false;
    };
    let Some((authority, path)) = rest.split_once('/') else {
        return false;
    };
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]") && path == "auth/callback"
}

async fn route(req: Request<Incoming>, ctx: &Ctx) -> Response<Full<Bytes>> {
    match (req.method().as_str(), req.uri().path()) {
        ("GET", "/oauth/authorize") => authorize(&req, ctx),
        ("GET", "/.well-known/openid-configuration") => {
            let mut doc = serde_json::json!({
                "issuer": ctx.base_url,
                "authorization_endpoint": format!("{}/oauth/authorize", ctx.base_url),
                "token_endpoint": format!("{}/oauth/token", ctx.base_url),
                "code_challenge_methods_supported": ["S256"],
            });
            if lock(&ctx.state).advertise_device {
                doc["device_authorization_endpoint"] =
                    serde_json::json!(format!("{}/oauth/device/code", ctx.base_url));
            }
            json(StatusCode::OK, doc)
        }
        (
            "POST",
            path @ ("/api/accounts/deviceauth/usercode"
            | "/api/accounts/deviceauth/token"
            | "/oauth/device/code"),
        ) => {
            let path = path.to_string();
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return oauth_error("invalid_request", "unreadable body"),
            };
            match path.as_str() {
                "/oauth/device/code" => rfc_device_code(&url_decode_pairs(&body), ctx),
                "/api/accounts/deviceauth/usercode" => codex_usercode(&body, ctx),
                _ => codex_device_token(&body, ctx),
            }
        }
        ("POST", "/oauth/token") => {
            let body = match req.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return oauth_error("invalid_request", "unreadable body"),
            };
            let form: HashMap<String, String> = url_decode_pairs(&body);
            let delay = {
                let mut st = lock(&ctx.state);
                st.token_requests.push(form.clone());
                st.token_delay
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            token(&form, ctx)
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not_found"}),
        ),
    }
}

fn url_decode_pairs(s: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(s).into_owned().collect()
}

fn authorize(req: &Request<Incoming>, ctx: &Ctx) -> Response<Full<Bytes>> {
    let q = url_decode_pairs(req.uri().query().unwrap_or("").as_bytes());
    let get = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    if get("response_type") != "code" {
        return oauth_error("unsupported_response_type", "response_type must be code");
    }
    if get("client_id") != ctx.client_id {
        return oauth_error("invalid_client", "unknown client id");
    }
    if get("code_challenge_method") != "S256" || get("code_challenge").is_empty() {
        return oauth_error("invalid_request", "PKCE with S256 is required");
    }
    let redirect_uri = get("redirect_uri");
    if !is_loopback_callback(redirect_uri) {
        return oauth_error("invalid_request", "redirect_uri is not a loopback callback");
    }
    if get("state").is_empty() {
        return oauth_error("invalid_request", "state is required");
    }
    let code = random_hex(16);
    lock(&ctx.state).codes.insert(
        code.clone(),
        PendingCode {
            challenge: get("code_challenge").to_string(),
            redirect_uri: redirect_uri.to_string(),
            client_id: ctx.client_id.clone(),
        },
    );
    let location = format!(
        "{redirect_uri}?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", get("state"))
            .finish()
    );
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = http::HeaderValue::from_str(&location) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}

/// A JWT-shaped ID token: base64url header and claims, and a third part that looks like a
/// signature (a hash; nothing verifies it).
pub fn make_id_token(issuer: &str, client_id: &str, identity: &MockIdentity) -> String {
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "mock"});
    let claims = serde_json::json!({
        "iss": issuer,
        "aud": [client_id],
        "sub": "user-mock",
        "email": identity.email,
        "iat": 1_700_000_000u64,
        "exp": 4_000_000_000u64,
        "https://api.openai.com/auth": {
            "chatgpt_account_id": identity.account_id,
            "chatgpt_plan_type": identity.plan,
        },
    });
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let sig = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(format!("{h}.{c}.{}", random_hex(8))));
    format!("{h}.{c}.{sig}")
}

fn issue(ctx: &Ctx, refresh_token: Option<String>) -> Response<Full<Bytes>> {
    issue_with(ctx, refresh_token, true, None)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A JWT-shaped access token expiring at `exp` (unix seconds).
pub fn make_access_token(issuer: &str, identity: &MockIdentity, exp: i64) -> String {
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    let claims = serde_json::json!({
        "iss": issuer,
        "exp": exp,
        "jti": random_hex(16),
        "https://api.openai.com/auth": {"chatgpt_account_id": identity.account_id},
    });
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(random_hex(16)))
}

/// Issue tokens. `refresh_token`: the one to send back (`None`: a fresh one); `send_refresh`:
/// whether the answer carries a refresh token at all; `id_override`: the ID token to send.
fn issue_with(
    ctx: &Ctx,
    refresh_token: Option<String>,
    send_refresh: bool,
    id_override: Option<String>,
) -> Response<Full<Bytes>> {
    let ttl = lock(&ctx.state).access_ttl;
    let tokens = IssuedTokens {
        id_token: id_override
            .unwrap_or_else(|| make_id_token(&ctx.base_url, &ctx.client_id, &ctx.identity)),
        access_token: make_access_token(&ctx.base_url, &ctx.identity, now_secs() + ttl),
        refresh_token: refresh_token.unwrap_or_else(|| format!("mock-refresh-{}", random_hex(24))),
    };
    {
        let mut st = lock(&ctx.state);
        st.issued.push(tokens.clone());
        st.live_refresh.insert(tokens.refresh_token.clone());
    }
    let mut body = serde_json::json!({
        "id_token": tokens.id_token,
        "access_token": tokens.access_token,
        "token_type": "Bearer",
        "expires_in": ttl.max(0),
    });
    if send_refresh {
        body["refresh_token"] = serde_json::json!(tokens.refresh_token);
    }
    json(StatusCode::OK, body)
}

fn user_code() -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let c: String = b
        .iter()
        .map(|x| char::from(ALPHABET[usize::from(*x) % ALPHABET.len()]))
        .collect();
    format!("{}-{}", &c[..4], &c[4..])
}

fn new_device(ctx: &Ctx, rfc8628: bool) -> (String, String, i64) {
    let key = random_hex(16);
    let code = user_code();
    let mut st = lock(&ctx.state);
    st.devices.insert(
        key.clone(),
        DeviceEntry {
            user_code: code.clone(),
            decision: None,
            rfc8628,
            polls: 0,
        },
    );
    (key, code, st.device_interval)
}

fn rfc_device_code(form: &HashMap<String, String>, ctx: &Ctx) -> Response<Full<Bytes>> {
    if form.get("client_id").map(String::as_str) != Some(ctx.client_id.as_str()) {
        return oauth_error("invalid_client", "unknown client id");
    }
    let (device_code, user_code, interval) = new_device(ctx, true);
    json(
        StatusCode::OK,
        serde_json::json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": format!("{}/device", ctx.base_url),
            "verification_uri_complete": format!("{}/device?user_code={user_code}", ctx.base_url),
            "expires_in": 600,
            "interval": interval,
        }),
    )
}

fn codex_usercode(body: &[u8], ctx: &Ctx) -> Response<Full<Bytes>> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if v.get("client_id").and_then(|c| c.as_str()) != Some(ctx.client_id.as_str()) {
        return oauth_error("invalid_client", "unknown client id");
    }
    let (id, user_code, interval) = new_device(ctx, false);
    // openai/codex's server sends the interval as a string.
    json(
        StatusCode::OK,
        serde_json::json!({"device_auth_id": id, "user_code": user_code, "interval": interval.to_string()}),
    )
}

fn codex_device_token(body: &[u8], ctx: &Ctx) -> Response<Full<Bytes>> {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let id = v
        .get("device_auth_id")
        .and_then(|c| c.as_str())
        .unwrap_or("");
    let code = v.get("user_code").and_then(|c| c.as_str()).unwrap_or("");
    let decision = {
        let mut st = lock(&ctx.state);
        let Some(d) = st
            .devices
            .get_mut(id)
            .filter(|d| !d.rfc8628 && d.user_code == code)
        else {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "invalid_grant", "error_description": "unknown device login"}),
            );
        };
        d.polls += 1;
        d.decision
    };
    match decision {
        // openai/codex treats 403 and 404 as "not yet".
        None => json(
            StatusCode::FORBIDDEN,
            serde_json::json!({"error": "authorization_pending"}),
        ),
        Some(false) => {
            lock(&ctx.state).devices.remove(id);
            oauth_error("access_denied", "the user refused")
        }
        Some(true) => {
            lock(&ctx.state).devices.remove(id);
            let verifier = format!("{}{}", random_hex(32), random_hex(32));
            let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
            let code = random_hex(16);
            lock(&ctx.state).codes.insert(
                code.clone(),
                PendingCode {
                    challenge: challenge.clone(),
                    redirect_uri: format!("{}/deviceauth/callback", ctx.base_url),
                    client_id: ctx.client_id.clone(),
                },
            );
            json(
                StatusCode::OK,
                serde_json::json!({"authorization_code": code, "code_challenge": challenge, "code_verifier": verifier}),
            )
        }
    }
}

fn token(form: &HashMap<String, String>, ctx: &Ctx) -> Response<Full<Bytes>> {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    match get("grant_type") {
        "authorization_code" => {
            // Codes are single-use: removed on first presentation, whatever the outcome.
            let Some(pending) = lock(&ctx.state).codes.remove(get("code")) else {
                return oauth_error("invalid_grant", "unknown or already used code");
            };
            if get("client_id") != pending.client_id {
                return oauth_error("invalid_client", "client id does not match the code");
            }
            if get("redirect_uri") != pending.redirect_uri {
                return oauth_error("invalid_grant", "redirect_uri does not match the code");
            }
            let computed =
                URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(get("code_verifier").as_bytes()));
            if get("code_verifier").is_empty() || computed != pending.challenge {
                return oauth_error("invalid_grant", "pkce verification failed");
            }
            issue(ctx, None)
        }
        "refresh_token" => {
            if get("client_id") != ctx.client_id {
                return oauth_error("invalid_client", "unknown client id");
            }
            let (rotate, id_override) = {
                let mut st = lock(&ctx.state);
                if !st.live_refresh.contains(get("refresh_token")) {
                    return oauth_error("invalid_grant", "unknown or already used refresh token");
                }
                if st.rotate_refresh {
                    st.live_refresh.remove(get("refresh_token"));
                }
                st.refresh_grants += 1;
                (st.rotate_refresh, st.refresh_id_token.clone())
            };
            if rotate {
                issue_with(ctx, None, true, id_override)
            } else {
                issue_with(
                    ctx,
                    Some(get("refresh_token").to_string()),
                    false,
                    id_override,
                )
            }
        }
        "urn:ietf:params:oauth:grant-type:device_code" => {
            let decision = {
                let mut st = lock(&ctx.state);
                let Some(d) = st.devices.get_mut(get("device_code")).filter(|d| d.rfc8628) else {
                    return oauth_error("invalid_grant", "unknown or used device code");
                };
                d.polls += 1;
                d.decision
            };
            match decision {
                None => oauth_error("authorization_pending", "waiting for the user"),
                Some(false) => {
                    lock(&ctx.state).devices.remove(get("device_code"));
                    oauth_error("access_denied", "the user refused")
                }
                Some(true) => {
                    lock(&ctx.state).devices.remove(get("device_code"));
                    issue(ctx, None)
                }
            }
        }
        _ => oauth_error("unsupported_grant_type", "unsupported grant_type"),
    }
}

/// One HTTP answer seen by the scripted browser.
#[derive(Clone, Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `GET url` with a blocking HTTP/1.1 client (`Connection: close`). `host_header` overrides the
/// `Host` header (to attack the login server's Host check).
pub fn http_get(url: &str, host_header: Option<&str>) -> anyhow::Result<HttpAnswer> {
    let parsed = url::Url::parse(url)?;
    anyhow::ensure!(
        parsed.scheme() == "http",
        "the scripted browser speaks http only: {url}"
    );
    let host = parsed
        .host_str()
        .ok_or_else(|| anyhow::anyhow!("no host in {url}"))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let authority = match parsed.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    };
    let target = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let connect_host = host.trim_start_matches('[').trim_end_matches(']');
    let mut stream = TcpStream::connect((connect_host, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: scripted-browser\r\nConnection: close\r\n\r\n",
        host_header.unwrap_or(&authority)
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> anyhow::Result<HttpAnswer> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no header end in answer: {text:?}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(HttpAnswer {
        status,
        headers,
        body,
    })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// What the scripted browser saw.
#[derive(Clone, Debug)]
pub struct BrowseResult {
    /// The issuer's answer to the authorize URL (a 302 when all is well).
    pub authorize: HttpAnswer,
    /// The login server's answer to the callback, when there was a redirect to follow.
    pub callback: Option<HttpAnswer>,
    /// The callback URL followed (carries the code and state).
    pub callback_url: Option<String>,
}

/// Open `auth_url` like a browser whose user approves at once: follow the issuer's redirect to
/// the login server's callback.
pub fn browse(auth_url: &str) -> anyhow::Result<BrowseResult> {
    let authorize = http_get(auth_url, None)?;
    let Some(location) = authorize.header("location").map(str::to_string) else {
        return Ok(BrowseResult {
            authorize,
            callback: None,
            callback_url: None,
        });
    };
    let callback = http_get(&location, None)?;
    Ok(BrowseResult {
        authorize,
        callback: Some(callback),
        callback_url: Some(location),
    })
}

/// The issuer's redirect for `auth_url`, not followed: `(callback_url, code, state)`.
pub fn authorize_only(auth_url: &str) -> anyhow::Result<(String, String, String)> {
    let answer = http_get(auth_url, None)?;
    let location = answer
        .header("location")
        .ok_or_else(|| {
            anyhow::anyhow!(
                "authorize answered {} without a redirect: {}",
                answer.status,
                answer.body
            )
        })?
        .to_string();
    let parsed = url::Url::parse(&location)?;
    let q: HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    let code = q.get("code").cloned().unwrap_or_default();
    let state = q.get("state").cloned().unwrap_or_default();
    Ok((location, code, state))
}

/// A query parameter of `url`.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
