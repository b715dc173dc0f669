//! [`McpOAuthMock`]: an MCP server protected by OAuth, and its authorization server, on one
//! port over real HTTP (or TLS with the test CA), for the `codex mcp` tests.
//!
//! Resource server (`/mcp`, MCP streamable HTTP, JSON answers):
//! - without a valid `Authorization: Bearer` token: `401` with
//!   `WWW-Authenticate: Bearer resource_metadata="<base>/.well-known/oauth-protected-resource/mcp"`
//!   (unless [`McpOAuthMock::set_oauth`] is off: then no token is needed);
//! - `initialize` → `serverInfo {name: "mock-mcp", version: "1.2.3"}` and an `Mcp-Session-Id`;
//!   `notifications/initialized` → 202; `tools/list` → three tools; `ping`; `GET` → 405.
//!
//! Authorization server (issuer `<base>`):
//! - RFC 9728 metadata at both well-known URLs (resource `<base>/mcp`), RFC 8414 metadata with
//!   `code_challenge_methods_supported: ["S256"]`, registration and revocation endpoints;
//! - `POST /register` (RFC 7591): loopback redirect URIs only → a fresh `client_id`;
//! - `GET /authorize`: the scripted browser's approval: checks the client, the registered
//!   redirect URI, `response_type=code`, `code_challenge_method=S256`, and that `resource` is
//!   `<base>/mcp` (RFC 8707), then 302 to `redirect_uri?code&state`;
//! - `POST /token`: `authorization_code` (code single-use, same client, redirect URI and
//!   resource, `BASE64URL(SHA256(verifier)) == challenge`) and `refresh_token` grants; refresh
//!   tokens rotate (a used one is dead: `invalid_grant`); access tokens live
//!   [`McpOAuthMock::set_access_ttl`] seconds;
//! - `POST /revoke` (RFC 7009): the token is dead from then on.
//!
//! Every request to the authorization server is recorded for the tests' checks.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
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

/// The server name and version the mock MCP server reports.
pub const MOCK_MCP_NAME: &str = "mock-mcp";
pub const MOCK_MCP_VERSION: &str = "1.2.3";
/// The tools it lists.
pub const MOCK_MCP_TOOLS: &[&str] = &["echo", "add", "time"];

#[derive(Clone, Debug)]
struct CodeEntry {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    resource: Option<String>,
}

#[derive(Clone, Debug)]
struct TokenEntry {
    exp: i64,
}

/// One recorded request to the authorization server or the MCP endpoint.
#[derive(Clone, Debug)]
pub struct McpRecorded {
    pub method: String,
    pub path: String,
    /// Query (GET) or form/JSON body fields (POST), flattened.
    pub fields: HashMap<String, String>,
    pub authorization: Option<String>,
}

struct State {
    oauth: bool,
    access_ttl: i64,
    clients: HashMap<String, Vec<String>>,
    codes: HashMap<String, CodeEntry>,
    access: HashMap<String, TokenEntry>,
    refresh_live: HashSet<String>,
    revoked: Vec<String>,
    refresh_grants: u32,
    token_delay: Duration,
    token_override: Option<serde_json::Value>,
    register_override: Option<serde_json::Value>,
    records: Vec<McpRecorded>,
    mcp_ok: u32,
}

impl Default for State {
    fn default() -> Self {
        Self {
            oauth: true,
            access_ttl: 3600,
            clients: HashMap::new(),
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh_live: HashSet::new(),
            revoked: Vec::new(),
            refresh_grants: 0,
            token_delay: Duration::ZERO,
            token_override: None,
            register_override: None,
            records: Vec::new(),
            mcp_ok: 0,
        }
    }
}

struct Ctx {
    base: String,
    state: Arc<Mutex<State>>,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running mock.
pub struct McpOAuthMock {
    addr: SocketAddr,
    base: String,
    state: Arc<Mutex<State>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl McpOAuthMock {
    /// Start over plain HTTP on `127.0.0.1`.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_inner(None)
    }

    /// Start over TLS (`https://localhost:<port>`, certificate from `ca`).
    pub fn start_tls(ca: &crate::tls::TestCa) -> anyhow::Result<Self> {
        Self::start_inner(Some(ca.server_config()?))
    }

    fn start_inner(tls: Option<Arc<rustls::ServerConfig>>) -> anyhow::Result<Self> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let base = match tls {
            Some(_) => format!("https://localhost:{}", addr.port()),
            None => format!("http://{addr}"),
        };
        let state = Arc::new(Mutex::new(State::default()));
        let ctx = Arc::new(Ctx {
            base: base.clone(),
            state: state.clone(),
        });
        let (tx, rx) = oneshot::channel();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("mcp-mock".to_string())
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
            base,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// The issuer, `http://127.0.0.1:<port>` (or `https://localhost:<port>`).
    pub fn base_url(&self) -> String {
        self.base.clone()
    }

    /// The MCP endpoint, `<base>/mcp`.
    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `false`: the MCP endpoint needs no token and advertises no OAuth.
    pub fn set_oauth(&self, on: bool) {
        lock(&self.state).oauth = on;
    }

    /// Lifetime of new access tokens (may be negative: already expired).
    pub fn set_access_ttl(&self, secs: i64) {
        lock(&self.state).access_ttl = secs;
    }

    /// Delay every token answer (to make refreshes overlap).
    pub fn set_token_delay(&self, d: Duration) {
        lock(&self.state).token_delay = d;
    }

    /// Answer every token request with this JSON (status 200) instead.
    pub fn set_token_override(&self, v: Option<serde_json::Value>) {
        lock(&self.state).token_override = v;
    }

    /// Answer every registration with this JSON (status 201) instead.
    pub fn set_register_override(&self, v: Option<serde_json::Value>) {
        lock(&self.state).register_override = v;
    }

    /// Revoke every live refresh token (as an expired session would).
    pub fn expire_refresh_tokens(&self) {
        lock(&self.state).refresh_live.clear();
    }

    /// Refresh grants served successfully.
    pub fn refresh_grants(&self) -> u32 {
        lock(&self.state).refresh_grants
    }

    /// The refresh tokens still usable.
    pub fn live_refresh_tokens(&self) -> Vec<String> {
        lock(&self.state).refresh_live.iter().cloned().collect()
    }

    /// `true` when `token` is a live, unexpired access token.
    pub fn access_token_valid(&self, token: &str) -> bool {
        let st = lock(&self.state);
        st.access.get(token).is_some_and(|t| t.exp > now_secs())
    }

    /// Tokens revoked through `/revoke`.
    pub fn revoked(&self) -> Vec<String> {
        lock(&self.state).revoked.clone()
    }

    /// Registered client ids.
    pub fn clients(&self) -> Vec<String> {
        lock(&self.state).clients.keys().cloned().collect()
    }

    /// Requests to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<McpRecorded> {
        lock(&self.state)
            .records
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Authorized MCP requests answered.
    pub fn mcp_ok(&self) -> u32 {
        lock(&self.state).mcp_ok
    }
}

impl Drop for McpOAuthMock {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

fn loopback_redirect(uri: &str) -> bool {
    url::Url::parse(uri).is_ok_and(|u| {
        u.scheme() == "http" && matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
    })
}

async fn route(req: Request<Incoming>, ctx: &Ctx) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return empty(StatusCode::BAD_REQUEST),
    };
    let mut fields = query.clone();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        fields.extend(url::form_urlencoded::parse(&body).into_owned());
    } else if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(&body) {
        for (k, v) in m {
            fields.insert(k, v.as_str().map_or_else(|| v.to_string(), str::to_string));
        }
    }
    lock(&ctx.state).records.push(McpRecorded {
        method: method.to_string(),
        path: path.clone(),
        fields: fields.clone(),
        authorization: authorization.clone(),
    });
    let base = &ctx.base;
    match (method.as_str(), path.as_str()) {
        (
            "GET",
            "/.well-known/oauth-protected-resource/mcp" | "/.well-known/oauth-protected-resource",
        ) => json(
            StatusCode::OK,
            serde_json::json!({
                "resource": format!("{base}/mcp"),
                "authorization_servers": [base],
                "scopes_supported": ["mcp:read", "mcp:write"],
                "bearer_methods_supported": ["header"],
            }),
        ),
        ("GET", "/.well-known/oauth-authorization-server") => json(
            StatusCode::OK,
            serde_json::json!({
                "issuer": base,
                "authorization_endpoint": format!("{base}/authorize"),
                "token_endpoint": format!("{base}/token"),
                "registration_endpoint": format!("{base}/register"),
                "revocation_endpoint": format!("{base}/revoke"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["mcp:read", "mcp:write"],
                "token_endpoint_auth_methods_supported": ["none"],
            }),
        ),
        ("POST", "/register") => register(&body, ctx),
        ("GET", "/authorize") => authorize(&query, ctx),
        ("POST", "/token") => {
            let delay = lock(&ctx.state).token_delay;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            token(&fields, ctx)
        }
        ("POST", "/revoke") => {
            let t = fields.get("token").cloned().unwrap_or_default();
            let mut st = lock(&ctx.state);
            st.refresh_live.remove(&t);
            st.access.remove(&t);
            st.revoked.push(t);
            empty(StatusCode::OK)
        }
        (_, "/mcp") => mcp(&method, authorization.as_deref(), &body, ctx),
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "not_found"}),
        ),
    }
}

fn register(body: &[u8], ctx: &Ctx) -> Response<Full<Bytes>> {
    if let Some(v) = lock(&ctx.state).register_override.clone() {
        return json(StatusCode::CREATED, v);
    }
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let uris: Vec<String> = v["redirect_uris"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if uris.is_empty() || !uris.iter().all(|u| loopback_redirect(u)) {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "invalid_redirect_uri"}),
        );
    }
    let id = format!("dyn-{}", random_hex(8));
    lock(&ctx.state).clients.insert(id.clone(), uris.clone());
    json(
        StatusCode::CREATED,
        serde_json::json!({
            "client_id": id,
            "client_id_issued_at": now_secs(),
            "redirect_uris": uris,
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
        }),
    )
}

fn authorize(q: &HashMap<String, String>, ctx: &Ctx) -> Response<Full<Bytes>> {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let client_id = get("client_id");
    let redirect_uri = get("redirect_uri");
    let bad = |why: &str| {
        let mut r = Response::new(Full::new(Bytes::from(format!(
            "<html>authorize refused: {why}</html>"
        ))));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        r
    };
    {
        let st = lock(&ctx.state);
        match st.clients.get(&client_id) {
            None => return bad("unknown client_id"),
            Some(uris) if !uris.contains(&redirect_uri) => {
                return bad("redirect_uri not registered");
            }
            Some(_) => {}
        }
    }
    if get("response_type") != "code" {
        return bad("response_type must be code");
    }
    if get("code_challenge_method") != "S256" || get("code_challenge").len() < 43 {
        return bad("PKCE S256 required");
    }
    if get("state").is_empty() {
        return bad("state required");
    }
    let resource = q.get("resource").cloned();
    if resource.as_deref() != Some(&format!("{}/mcp", ctx.base)) {
        return bad("resource must be the MCP server's URL");
    }
    let code = format!("code-{}", random_hex(16));
    lock(&ctx.state).codes.insert(
        code.clone(),
        CodeEntry {
            client_id,
            redirect_uri: redirect_uri.clone(),
            challenge: get("code_challenge"),
            resource,
        },
    );
    let mut loc = match url::Url::parse(&redirect_uri) {
        Ok(u) => u,
        Err(_) => return bad("redirect_uri"),
    };
    loc.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state"));
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = http::HeaderValue::from_str(loc.as_str()) {
        r.headers_mut().insert(http::header::LOCATION, v);
    }
    r
}

fn issue(ctx: &Ctx) -> Response<Full<Bytes>> {
    let mut st = lock(&ctx.state);
    let access = format!("mcp-at-{}", random_hex(16));
    let refresh = format!("mcp-rt-{}", random_hex(16));
    let ttl = st.access_ttl;
    st.access.insert(
        access.clone(),
        TokenEntry {
            exp: now_secs() + ttl,
        },
    );
    st.refresh_live.insert(refresh.clone());
    json(
        StatusCode::OK,
        serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl.max(1),
            "refresh_token": refresh,
            "scope": "mcp:read mcp:write",
        }),
    )
}

fn token(f: &HashMap<String, String>, ctx: &Ctx) -> Response<Full<Bytes>> {
    if let Some(v) = lock(&ctx.state).token_override.clone() {
        return json(StatusCode::OK, v);
    }
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    let resource_ok = f.get("resource").map(String::as_str) == Some(&format!("{}/mcp", ctx.base));
    match get("grant_type").as_str() {
        "authorization_code" => {
            let entry = lock(&ctx.state).codes.remove(&get("code"));
            let Some(e) = entry else {
                return oauth_error("invalid_grant", "unknown or used code");
            };
            let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(get("code_verifier")));
            if challenge != e.challenge {
                return oauth_error("invalid_grant", "PKCE verification failed");
            }
            if e.client_id != get("client_id") || e.redirect_uri != get("redirect_uri") {
                return oauth_error("invalid_grant", "client or redirect_uri mismatch");
            }
            if e.resource.as_deref() != f.get("resource").map(String::as_str) || !resource_ok {
                return oauth_error("invalid_target", "resource mismatch");
            }
            issue(ctx)
        }
        "refresh_token" => {
            let rt = get("refresh_token");
            {
                let mut st = lock(&ctx.state);
                if !st.refresh_live.remove(&rt) {
                    return oauth_error("invalid_grant", "refresh token expired, revoked or used");
                }
                if !st.clients.contains_key(&get("client_id")) {
                    return oauth_error("invalid_client", "unknown client");
                }
                st.refresh_grants += 1;
            }
            if !resource_ok {
                return oauth_error("invalid_target", "resource mismatch");
            }
            issue(ctx)
        }
        _ => oauth_error("unsupported_grant_type", "unsupported grant_type"),
    }
}

fn mcp(
    method: &http::Method,
    authorization: Option<&str>,
    body: &[u8],
    ctx: &Ctx,
) -> Response<Full<Bytes>> {
    let oauth = lock(&ctx.state).oauth;
    if oauth {
        let token = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or("");
        let valid = {
            let st = lock(&ctx.state);
            st.access.get(token).is_some_and(|t| t.exp > now_secs())
        };
        if !valid {
            let mut r = json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "invalid_token"}),
            );
            let challenge = format!(
                "Bearer error=\"invalid_token\", resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
                ctx.base
            );
            if let Ok(v) = http::HeaderValue::from_str(&challenge) {
                r.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
            }
            return r;
        }
    }
    match method.as_str() {
        "GET" => return empty(StatusCode::METHOD_NOT_ALLOWED),
        "DELETE" => return empty(StatusCode::OK),
        "POST" => {}
        _ => return empty(StatusCode::METHOD_NOT_ALLOWED),
    }
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(body) else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error"}}),
        );
    };
    let id = req.get("id").cloned();
    let m = req["method"].as_str().unwrap_or("");
    let Some(id) = id else {
        return empty(StatusCode::ACCEPTED); // a notification
    };
    lock(&ctx.state).mcp_ok += 1;
    let result = match m {
        "initialize" => serde_json::json!({
            "protocolVersion": req["params"]["protocolVersion"].as_str().unwrap_or("2025-06-18"),
            "capabilities": {"tools": {"listChanged": false}},
            "serverInfo": {"name": MOCK_MCP_NAME, "version": MOCK_MCP_VERSION},
        }),
        "tools/list" => serde_json::json!({
            "tools": MOCK_MCP_TOOLS.iter().map(|t| serde_json::json!({
                "name": t,
                "description": format!("the {t} tool"),
                "inputSchema": {"type": "object", "properties": {}},
            })).collect::<Vec<_>>(),
        }),
        "ping" => serde_json::json!({}),
        _ => {
            return json(
                StatusCode::OK,
                serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}}),
            );
        }
    };
    let mut r = json(
        StatusCode::OK,
        serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}),
    );
    if m == "initialize" {
        if let Ok(v) = http::HeaderValue::from_str(&format!("sess-{}", random_hex(8))) {
            r.headers_mut().insert("mcp-session-id", v);
        }
    }
    r
}

/// The scripted browser for an authorization server on TLS: `GET auth_url` over rustls
/// trusting `ca` only, then follow the redirect to the (plain http, loopback) callback.
pub fn browse_tls(
    auth_url: &str,
    ca: &crate::tls::TestCa,
) -> anyhow::Result<crate::oauth_mock::BrowseResult> {
    use std::io::{Read, Write};
    let parsed = url::Url::parse(auth_url)?;
    anyhow::ensure!(parsed.scheme() == "https", "not an https URL: {auth_url}");
    let host = parsed.host_str().unwrap_or("localhost").to_string();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.ca_der())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(host.clone())?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let target = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    write!(
        tls,
        "GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    // A peer closing without close_notify is fine here: the answer is complete.
    let _ = tls.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let authorize = crate::oauth_mock::HttpAnswer {
        status,
        headers,
        body: body.to_string(),
    };
    let Some(location) = authorize.header("location").map(str::to_string) else {
        return Ok(crate::oauth_mock::BrowseResult {
            authorize,
            callback: None,
            callback_url: None,
        });
    };
    let callback = crate::oauth_mock::http_get(&location, None)?;
    Ok(crate::oauth_mock::BrowseResult {
        authorize,
        callback: Some(callback),
        callback_url: Some(location),
    })
}
