//! OAuth for streamable HTTP MCP servers, as the MCP authorization spec asks, built from
//! `codex-oauth`'s pieces and `codex-login`'s loopback callback server:
//!
//! 1. **Probe**: `POST <url>` with an `initialize` request and no token. A 2xx answer: the server
//!    needs no OAuth. A 401: its `WWW-Authenticate: Bearer` challenge names the protected
//!    resource metadata (RFC 9728), else the well-known URLs are tried.
//! 2. **Authorization server**: the metadata's first `authorization_servers` entry (without
//!    metadata: the server's origin), discovered with RFC 8414 then OpenID Connect; it must
//!    advertise `authorization_endpoint`, `token_endpoint` and PKCE `S256` (an absent
//!    `code_challenge_methods_supported` is refused, as the MCP spec says).
//! 3. **Client**: `oauth_client_id` from the config, else RFC 7591 dynamic registration with the
//!    loopback redirect URI.
//! 4. **Authorization code** with PKCE S256, `state`, `scope` and RFC 8707 `resource`
//!    (`oauth_resource`, else the metadata's `resource`, else the server URL) on the same
//!    loopback callback server as `codex login`; the `resource` is sent again at the token
//!    endpoint and on every refresh. The answer must be `token_type: Bearer` with a sane
//!    `expires_in` ([`codex_oauth::TokenResponse::check_bearer`]).
//! 5. **Refresh** before expiry ([`REFRESH_MARGIN`]), serialized across processes: the store's
//!    lock → re-read → adopt a token another process refreshed meanwhile, or refresh and save
//!    → unlock. Two processes never both present one (rotating) refresh token.
//! 6. **Logout**: RFC 7009 revocation of the refresh then the access token where the server
//!    offers it, then the entry is removed (a failed revocation is a warning, the local removal
//!    still happens).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use codex_oauth::discovery::AuthServerMetadata;
use codex_oauth::resource::BearerChallenge;
use codex_oauth::{HttpClient, OAuthError, TokenClient};

use crate::SecretString;
use crate::config::HttpServer;
use crate::store::{CredentialStore, Saved, StoreError, StoredEntry};

/// Refresh when the access token expires within this margin.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// The client name sent at registration.
pub const CLIENT_NAME: &str = "codex";
/// The MCP protocol version the probe announces.
pub const PROBE_PROTOCOL_VERSION: &str = "2025-06-18";

/// Why an MCP OAuth step failed.
#[derive(Debug, thiserror::Error)]
pub enum McpAuthError {
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot start the login callback server: {0}")]
    Callback(#[from] codex_login::LoginError),
    #[error("mcp server {url} does not use OAuth: {reason}")]
    NoOAuth { url: String, reason: String },
    #[error("authorization server {issuer}: {reason}")]
    Metadata { issuer: String, reason: String },
    #[error(
        "refused: {url} is plain http:// to a non-loopback host; tokens would travel in clear text"
    )]
    Cleartext { url: String },
    #[error("not logged in to mcp server {name:?}: run `codex mcp login {name}`")]
    NotLoggedIn { name: String },
    #[error(
        "the sign-in to mcp server {name:?} has expired or was revoked ({reason}): run `codex mcp login {name}`"
    )]
    SignInAgain { name: String, reason: String },
    #[error("login to mcp server {name:?} failed: {reason}")]
    Login { name: String, reason: String },
}

/// The authorization server of an MCP server, and what to ask it for.
#[derive(Debug, Clone)]
pub struct AuthTarget {
    pub issuer: String,
    pub metadata: AuthServerMetadata,
    /// RFC 8707 resource indicator to send.
    pub resource: String,
    /// Scopes the server suggests (challenge `scope`, else the metadata's `scopes_supported`).
    pub suggested_scopes: Option<Vec<String>>,
}

/// What a probe found.
#[derive(Debug, Clone)]
pub enum Discovery {
    /// The server answered without asking for a token.
    Open,
    /// The server wants OAuth and says where.
    OAuth(Box<AuthTarget>),
    /// The server asks for a token (401) but advertises no OAuth metadata.
    TokenRequired,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An HTTP client able to reach `url` and, where the trust store loads, any https endpoint.
pub fn http_client(url: &url::Url, timeout: Duration) -> Result<HttpClient, OAuthError> {
    let client = if url.scheme() == "https" {
        HttpClient::new(true)?
    } else {
        HttpClient::new(true).or_else(|_| HttpClient::new(false))?
    };
    Ok(client.with_timeout(timeout))
}

fn check_cleartext(server: &HttpServer) -> Result<(), McpAuthError> {
    if server.is_cleartext_remote() {
        return Err(McpAuthError::Cleartext {
            url: crate::view::redacted_url(&server.url),
        });
    }
    Ok(())
}

/// Probe the server and, when it asks for OAuth, find its authorization server.
pub async fn discover(http: &HttpClient, server: &HttpServer) -> Result<Discovery, McpAuthError> {
    check_cleartext(server)?;
    let url = server.url.as_str();
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": PROBE_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "codex-mcp-probe", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    let answer = http
        .probe_post_json(
            url,
            &[("accept", "application/json, text/event-stream")],
            &body,
        )
        .await?;
    if (200..300).contains(&answer.status) {
        return Ok(Discovery::Open);
    }
    if answer.status != 401 {
        return Err(OAuthError::Status {
            endpoint: crate::view::redacted_url(&server.url),
            status: answer.status,
            detail: "the mcp server answered neither success nor 401 to initialize".to_string(),
        }
        .into());
    }
    let challenge = answer
        .www_authenticate
        .as_deref()
        .and_then(codex_oauth::resource::parse_bearer_challenge);
    discover_after_401(http, server, challenge.as_ref()).await
}

async fn discover_after_401(
    http: &HttpClient,
    server: &HttpServer,
    challenge: Option<&BearerChallenge>,
) -> Result<Discovery, McpAuthError> {
    let url = server.url.as_str();
    let prm = codex_oauth::resource::discover(http, url, challenge).await?;
    let issuer = match &prm {
        Some(m) => m.authorization_servers[0].clone(),
        // MCP 2025-03-26: without resource metadata, the server's origin is the issuer.
        None => server.url.origin().ascii_serialization(),
    };
    let Some(metadata) = codex_oauth::discovery::discover(http, &issuer).await? else {
        if prm.is_none() {
            return Ok(Discovery::TokenRequired);
        }
        return Err(McpAuthError::Metadata {
            issuer,
            reason: "no authorization server metadata (RFC 8414 or OpenID Connect)".to_string(),
        });
    };
    let missing = |field: &str| McpAuthError::Metadata {
        issuer: issuer.clone(),
        reason: format!("the metadata has no {field}"),
    };
    if metadata.authorization_endpoint.is_none() {
        return Err(missing("authorization_endpoint"));
    }
    if metadata.token_endpoint.is_none() {
        return Err(missing("token_endpoint"));
    }
    match &metadata.code_challenge_methods_supported {
        Some(m) if m.iter().any(|x| x == "S256") => {}
        Some(_) => {
            return Err(McpAuthError::Metadata {
                issuer,
                reason: "code_challenge_methods_supported does not include S256 (PKCE)".to_string(),
            });
        }
        None => {
            return Err(McpAuthError::Metadata {
                issuer,
                reason:
                    "the metadata has no code_challenge_methods_supported: PKCE support is not \
                         advertised (the MCP authorization spec requires refusing)"
                        .to_string(),
            });
        }
    }
    let resource = server
        .oauth_resource
        .clone()
        .or_else(|| prm.as_ref().map(|m| m.resource.clone()))
        .unwrap_or_else(|| url.to_string());
    let suggested_scopes = challenge
        .and_then(|c| c.scope.as_deref())
        .map(|s| s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .or_else(|| prm.as_ref().and_then(|m| m.scopes_supported.clone()));
    Ok(Discovery::OAuth(Box::new(AuthTarget {
        issuer,
        metadata,
        resource,
        suggested_scopes,
    })))
}

/// Options of [`login`].
pub struct LoginOptions {
    /// `--scopes`: overrides the configured and suggested scopes.
    pub scopes: Option<Vec<String>>,
    pub port: codex_login::PortChoice,
    /// How long to wait for the browser.
    pub timeout: Duration,
    /// Called with the URL to open (print it, open a browser).
    pub on_url: Box<dyn FnOnce(&str) + Send>,
    /// Receives the cancel handle (Ctrl-C).
    pub on_cancel_handle: Option<Box<dyn FnOnce(codex_login::CancelHandle) + Send>>,
    /// Per-request timeout for the OAuth requests.
    pub request_timeout: Duration,
}

/// A finished login.
#[derive(Debug)]
pub struct LoggedIn {
    pub saved: Saved,
    pub expires_in: Option<u64>,
    pub client_id: String,
    pub registered: bool,
}

/// Sign in to server `name` and store its tokens.
pub async fn login(
    name: &str,
    server: &HttpServer,
    store: &CredentialStore,
    opts: LoginOptions,
) -> Result<LoggedIn, McpAuthError> {
    let http = http_client(&server.url, opts.request_timeout)?;
    let target = match discover(&http, server).await? {
        Discovery::OAuth(t) => t,
        Discovery::Open => {
            return Err(McpAuthError::NoOAuth {
                url: crate::view::redacted_url(&server.url),
                reason: "it answered without asking for a token".to_string(),
            });
        }
        Discovery::TokenRequired => {
            return Err(McpAuthError::NoOAuth {
                url: crate::view::redacted_url(&server.url),
                reason: "it asks for a token but advertises no OAuth metadata; use \
                         bearer_token_env_var"
                    .to_string(),
            });
        }
    };
    let meta = &target.metadata;
    // Checked in discover_after_401.
    let (Some(authorization_endpoint), Some(token_endpoint)) = (
        meta.authorization_endpoint.clone(),
        meta.token_endpoint.clone(),
    ) else {
        return Err(McpAuthError::Metadata {
            issuer: target.issuer.clone(),
            reason: "endpoints missing".to_string(),
        });
    };
    let bound = codex_login::bind_callback(opts.port).await?;
    let scopes: Vec<String> = opts
        .scopes
        .clone()
        .or_else(|| server.scopes.clone())
        .or_else(|| target.suggested_scopes.clone())
        .unwrap_or_default();
    let scope = (!scopes.is_empty()).then(|| scopes.join(" "));
    let (client_id, client_secret, registered) = match &server.oauth_client_id {
        Some(id) => (id.clone(), None, false),
        None => {
            let Some(reg) = meta.registration_endpoint.as_deref() else {
                return Err(McpAuthError::Metadata {
                    issuer: target.issuer.clone(),
                    reason: "no registration_endpoint (dynamic client registration); set \
                             oauth_client_id for this server"
                        .to_string(),
                });
            };
            let redirect_uris = [bound.redirect_uri.clone()];
            let client = codex_oauth::registration::register(
                &http,
                reg,
                &codex_oauth::registration::RegistrationRequest {
                    client_name: CLIENT_NAME,
                    redirect_uris: &redirect_uris,
                    scope: scope.as_deref(),
                    token_endpoint_auth_method: codex_oauth::registration::choose_auth_method(
                        meta.token_endpoint_auth_methods_supported.as_deref(),
                    ),
                },
            )
            .await?;
            (client.client_id, client.client_secret, true)
        }
    };
    let mut auth_url = codex_oauth::validate_endpoint(&authorization_endpoint)?;
    {
        let mut q = auth_url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", &bound.redirect_uri)
            .append_pair("code_challenge", &bound.code_challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &bound.state)
            .append_pair("resource", &target.resource);
        if let Some(s) = &scope {
            q.append_pair("scope", s);
        }
    }
    let auth_url = auth_url.to_string();

    let (tx, rx) = tokio::sync::oneshot::channel::<(Saved, Option<u64>)>();
    let exchange: codex_login::ExchangeFn = {
        let http = http.clone();
        let store = store.clone();
        let name = name.to_string();
        let server_url = server.url.to_string();
        let client_id = client_id.clone();
        let resource = target.resource.clone();
        let issuer = target.issuer.clone();
        let revocation_endpoint = meta.revocation_endpoint.clone();
        let token_endpoint = token_endpoint.clone();
        Box::new(move |cb: codex_login::CallbackCode| {
            Box::pin(async move {
                let tc =
                    TokenClient::with_http(http, &token_endpoint).map_err(|e| e.to_string())?;
                let mut extra = vec![("resource", resource.as_str())];
                if let Some(s) = &client_secret {
                    extra.push(("client_secret", s.expose_secret()));
                }
                let tokens = tc
                    .exchange_code(&client_id, &cb.redirect_uri, &cb.code, &cb.verifier, &extra)
                    .await
                    .map_err(|e| format!("token exchange failed: {e}"))?;
                tokens
                    .check_bearer(tc.endpoint())
                    .map_err(|e| format!("token exchange failed: {e}"))?;
                let mut entry = StoredEntry::default();
                entry.server_name = name.clone();
                entry.server_url = server_url.clone();
                entry.client_id = client_id.clone();
                entry.client_secret = client_secret
                    .as_ref()
                    .map(|s| s.expose_secret().to_string());
                entry.access_token = tokens.access_token.expose_secret().to_string();
                entry.refresh_token = tokens
                    .refresh_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_string());
                entry.expires_at = tokens.expires_in.map(|e| now() + e);
                entry.scopes = tokens
                    .scope
                    .as_deref()
                    .map(|s| s.split_whitespace().map(str::to_string).collect())
                    .unwrap_or(scopes);
                entry.token_endpoint = token_endpoint;
                entry.revocation_endpoint = revocation_endpoint;
                entry.resource = Some(resource);
                entry.issuer = issuer;
                let expires_in = tokens.expires_in;
                let commit: codex_login::CommitFn = Box::new(move || {
                    Box::pin(async move {
                        let lock = store.lock().await.map_err(|e| e.to_string())?;
                        let saved = store
                            .save_locked(&lock, &name, &server_url, &entry)
                            .map_err(|e| e.to_string())?;
                        let _ = tx.send((saved, expires_in));
                        Ok(())
                    })
                });
                Ok(commit)
            })
        })
    };
    let server_task = bound.serve(auth_url.clone(), Some(opts.timeout), exchange);
    if let Some(f) = opts.on_cancel_handle {
        f(server_task.cancel_handle());
    }
    (opts.on_url)(&auth_url);
    let outcome = server_task.wait().await;
    if let Some(reason) = outcome.error_message() {
        return Err(McpAuthError::Login {
            name: name.to_string(),
            reason,
        });
    }
    let (saved, expires_in) = rx.await.map_err(|_| McpAuthError::Login {
        name: name.to_string(),
        reason: "the tokens were not stored".to_string(),
    })?;
    Ok(LoggedIn {
        saved,
        expires_in,
        client_id,
        registered,
    })
}

/// A usable access token and what it took to get it.
#[derive(Debug)]
pub struct FreshToken {
    pub access_token: SecretString,
    pub expires_in: Option<i64>,
    /// `true` when this call refreshed; `false` when the stored token was still good (or
    /// another process had just refreshed it).
    pub refreshed: bool,
    pub warnings: Vec<String>,
}

fn needs_refresh(entry: &StoredEntry, force: bool) -> bool {
    force
        || entry
            .expires_in(now())
            .is_some_and(|left| left <= REFRESH_MARGIN.as_secs() as i64)
}

/// The access token of server `name`, refreshed first when it expires within
/// [`REFRESH_MARGIN`] (or when `force`). Cross-process protocol in the module docs.
pub async fn fresh_token(
    name: &str,
    server: &HttpServer,
    store: &CredentialStore,
    force: bool,
    request_timeout: Duration,
) -> Result<FreshToken, McpAuthError> {
    check_cleartext(server)?;
    let url = server.url.as_str();
    let first = store.load(name, url)?;
    let mut warnings = first.warnings;
    let Some(seen) = first.entry else {
        return Err(McpAuthError::NotLoggedIn {
            name: name.to_string(),
        });
    };
    if !needs_refresh(&seen, force) {
        return Ok(FreshToken {
            access_token: seen.access_token(),
            expires_in: seen.expires_in(now()),
            refreshed: false,
            warnings,
        });
    }
    let lock = store.lock().await?;
    let again = store.load(name, url)?;
    let Some(current) = again.entry else {
        return Err(McpAuthError::NotLoggedIn {
            name: name.to_string(),
        });
    };
    // Another process refreshed while we waited for the lock: adopt its token.
    if current.access_token != seen.access_token && !needs_refresh(&current, false) {
        return Ok(FreshToken {
            access_token: current.access_token(),
            expires_in: current.expires_in(now()),
            refreshed: false,
            warnings,
        });
    }
    let Some(refresh_token) = current.refresh_token() else {
        return Err(McpAuthError::SignInAgain {
            name: name.to_string(),
            reason: "the access token expired and there is no refresh token".to_string(),
        });
    };
    let endpoint = codex_oauth::validate_endpoint(&current.token_endpoint)?;
    let http = http_client(&endpoint, request_timeout)?;
    let tc = TokenClient::with_http(http, endpoint.as_str())?;
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if let Some(r) = &current.resource {
        extra.push(("resource", r));
    }
    if let Some(s) = &current.client_secret {
        extra.push(("client_secret", s));
    }
    let tokens = match tc
        .refresh(&current.client_id, &refresh_token, None, &extra)
        .await
    {
        Ok(t) => t,
        Err(e) if e.is_invalid_grant() => {
            return Err(McpAuthError::SignInAgain {
                name: name.to_string(),
                reason: e.to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    tokens.check_bearer(tc.endpoint())?;
    let mut next = current.clone();
    next.access_token = tokens.access_token.expose_secret().to_string();
    next.refresh_token = tokens
        .refresh_token
        .as_ref()
        .map(|t| t.expose_secret().to_string());
    next.expires_at = tokens.expires_in.map(|e| now() + e);
    if let Some(s) = &tokens.scope {
        next.scopes = s.split_whitespace().map(str::to_string).collect();
    }
    let saved = store.save_locked(&lock, name, url, &next)?;
    drop(lock);
    warnings.extend(saved.warning);
    Ok(FreshToken {
        access_token: next.access_token(),
        expires_in: next.expires_in(now()),
        refreshed: true,
        warnings,
    })
}

/// What [`logout`] did.
#[derive(Debug)]
pub struct LoggedOut {
    pub removed: bool,
    /// Tokens revoked at the server (0, 1 or 2).
    pub revoked: usize,
    pub warnings: Vec<String>,
}

/// Revoke (where offered) and remove the stored tokens of server `name`.
pub async fn logout(
    name: &str,
    server: &HttpServer,
    store: &CredentialStore,
    request_timeout: Duration,
) -> Result<LoggedOut, McpAuthError> {
    let url = server.url.as_str();
    let lock = store.lock().await?;
    let loaded = store.load(name, url)?;
    let mut warnings = loaded.warnings;
    let Some(entry) = loaded.entry else {
        return Ok(LoggedOut {
            removed: false,
            revoked: 0,
            warnings,
        });
    };
    let mut revoked = 0;
    if let Some(endpoint) = &entry.revocation_endpoint {
        match codex_oauth::validate_endpoint(endpoint)
            .and_then(|u| http_client(&u, request_timeout))
        {
            Ok(http) => {
                let secret = entry.client_secret.clone().map(SecretString::new);
                let mut tokens = Vec::new();
                if let Some(rt) = entry.refresh_token() {
                    tokens.push((rt, codex_oauth::revocation::TokenKind::Refresh));
                }
                tokens.push((
                    entry.access_token(),
                    codex_oauth::revocation::TokenKind::Access,
                ));
                for (token, kind) in tokens {
                    match codex_oauth::revocation::revoke(
                        &http,
                        endpoint,
                        &token,
                        kind,
                        &entry.client_id,
                        secret.as_ref(),
                    )
                    .await
                    {
                        Ok(()) => revoked += 1,
                        Err(e) => warnings.push(format!("revocation failed: {e}")),
                    }
                }
            }
            Err(e) => warnings.push(format!("revocation skipped: {e}")),
        }
    }
    let deleted = store.delete_locked(&lock, name, url)?;
    warnings.extend(deleted.warnings);
    Ok(LoggedOut {
        removed: deleted.removed,
        revoked,
        warnings,
    })
}
