//! `codex mcp get NAME --check`: a real MCP client (the official Rust SDK, `rmcp`) performs the
//! `initialize` handshake and `tools/list` over stdio or streamable HTTP, with the server's
//! credentials, and reports the server's name, version and tools.
//!
//! - **stdio**: the command is spawned with [`INHERITED_ENV`] from codex's environment plus the
//!   server's `env` (nothing else: a secret in the user's shell does not reach a third-party
//!   server), in its `cwd`; its stderr is discarded; it is killed when the check ends (also on
//!   timeout).
//! - **streamable HTTP**: `rmcp`'s reqwest client with the suite's rustls configuration
//!   (`codex_oauth::tls_client_config`: ring, OS roots or `SSL_CERT_FILE`), redirects off (a
//!   redirect must not carry the token elsewhere). The token: the `bearer_token_env_var`
//!   variable's value (unset = an error before any connection), else the stored OAuth token
//!   (refreshed first when due, serialized like every refresh), else none. `http_headers` and
//!   `env_http_headers` are sent as configured. A cleartext remote URL never gets a credential
//!   (the config refuses that combination; checked again here).
//! - The whole check is bounded by `startup_timeout_sec` (default [`DEFAULT_TIMEOUT`]).
//!
//! Limit: `rmcp` keeps the token as a plain `String` in its transport configuration for the
//! life of the check (not zeroized on drop).

use std::collections::HashMap;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};

use crate::config::{HttpServer, ServerConfig, Transport};
use crate::oauth::{self, McpAuthError};
use crate::store::CredentialStore;

/// The variables a stdio server inherits from codex's environment (openai/codex's default
/// list); everything else it gets only through its `env` table. A server is a third-party
/// program: `OPENAI_API_KEY`, cloud and forge tokens in the user's shell must not reach it
/// unless the user says so.
pub const INHERITED_ENV: &[&str] = &[
    "HOME",
    "LOGNAME",
    "PATH",
    "SHELL",
    "USER",
    "LANG",
    "LC_ALL",
    "TERM",
    "TMPDIR",
    "TZ",
    "PYENV_ROOT",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Bound of a check when the server sets no `startup_timeout_sec`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub server_name: Option<String>,
    pub server_version: Option<String>,
    pub protocol_version: String,
    pub tools: Vec<String>,
    /// How the request was authenticated: `none`, `bearer token ($VAR)`, `oauth`.
    pub auth: String,
}

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot start {command:?}: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("the environment variable {var} (bearer_token_env_var) is unset or empty")]
    TokenUnset { var: String },
    #[error(transparent)]
    Auth(#[from] McpAuthError),
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("the MCP initialize handshake failed: {0}")]
    Initialize(String),
    #[error("tools/list failed: {0}")]
    ListTools(String),
    #[error("no complete answer within {secs}s (startup_timeout_sec)")]
    Timeout { secs: u64 },
    #[error("invalid header {name:?}: {reason}")]
    Header { name: String, reason: String },
}

/// Run the check (see the module docs). Warnings from the credential store are returned too.
pub async fn check(
    server: &ServerConfig,
    store: &CredentialStore,
) -> Result<(CheckReport, Vec<String>), CheckError> {
    let timeout = server
        .startup_timeout_sec
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64);
    match tokio::time::timeout(timeout, check_inner(server, store, timeout)).await {
        Ok(r) => r,
        Err(_) => Err(CheckError::Timeout {
            secs: timeout.as_secs().max(1),
        }),
    }
}

async fn check_inner(
    server: &ServerConfig,
    store: &CredentialStore,
    timeout: Duration,
) -> Result<(CheckReport, Vec<String>), CheckError> {
    match &server.transport {
        Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.env_clear()
                .envs(
                    INHERITED_ENV
                        .iter()
                        .filter_map(|k| std::env::var_os(k).map(|v| (*k, v))),
                )
                .args(args)
                .envs(env)
                .kill_on_drop(true);
            if let Some(c) = cwd {
                cmd.current_dir(c);
            }
            let (transport, _stderr) = TokioChildProcess::builder(cmd)
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|source| CheckError::Spawn {
                    command: command.clone(),
                    source,
                })?;
            let report = run_client(transport, "none".to_string()).await?;
            Ok((report, Vec::new()))
        }
        Transport::Http(h) => check_http(&server.name, h, store, timeout).await,
    }
}

async fn check_http(
    name: &str,
    h: &HttpServer,
    store: &CredentialStore,
    timeout: Duration,
) -> Result<(CheckReport, Vec<String>), CheckError> {
    let mut warnings = Vec::new();
    let (token, auth) = if let Some(var) = &h.bearer_token_env_var {
        let value = std::env::var(var)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| CheckError::TokenUnset { var: var.clone() })?;
        (Some(value), format!("bearer token (${var})"))
    } else {
        let loaded = store
            .load(name, h.url.as_str())
            .map_err(McpAuthError::from)?;
        warnings.extend(loaded.warnings);
        if loaded.entry.is_some() {
            let fresh = oauth::fresh_token(name, h, store, false, timeout).await?;
            warnings.extend(fresh.warnings);
            (
                Some(fresh.access_token.expose_secret().to_string()),
                "oauth".to_string(),
            )
        } else {
            (None, "none".to_string())
        }
    };
    if h.is_cleartext_remote()
        && (token.is_some() || !h.http_headers.is_empty() || !h.env_http_headers.is_empty())
    {
        return Err(McpAuthError::Cleartext {
            url: crate::view::redacted_url(&h.url),
        }
        .into());
    }
    let mut headers = HashMap::new();
    let header = |k: &str, v: &str| -> Result<(http::HeaderName, http::HeaderValue), CheckError> {
        let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| CheckError::Header {
            name: k.to_string(),
            reason: e.to_string(),
        })?;
        let mut value = http::HeaderValue::from_str(v).map_err(|_| CheckError::Header {
            name: k.to_string(),
            reason: "the value is not a valid header value".to_string(),
        })?;
        value.set_sensitive(true);
        Ok((name, value))
    };
    for (k, v) in &h.http_headers {
        let (n, v) = header(k, v)?;
        headers.insert(n, v);
    }
    for (k, var) in &h.env_http_headers {
        if let Ok(v) = std::env::var(var)
            && !v.is_empty()
        {
            let (n, v) = header(k, &v)?;
            headers.insert(n, v);
        }
    }
    let tls = codex_oauth::tls_client_config().map_err(|e| CheckError::Tls(e.to_string()))?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .build()
        .map_err(|e| CheckError::Tls(e.to_string()))?;
    let mut config =
        StreamableHttpClientTransportConfig::with_uri(h.url.as_str()).custom_headers(headers);
    if let Some(t) = token {
        config = config.auth_header(t);
    }
    let transport = StreamableHttpClientTransport::with_client(client, config);
    let report = run_client(transport, auth).await?;
    Ok((report, warnings))
}

async fn run_client<T, E, A>(transport: T, auth: String) -> Result<CheckReport, CheckError>
where
    T: rmcp::transport::IntoTransport<rmcp::RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let client = ().serve(transport).await.map_err(|e| CheckError::Initialize(e.to_string()))?;
    let info = client.peer_info();
    let (server_name, server_version, protocol_version) = match info.as_deref() {
        Some(i) => (
            i.server_info.as_ref().map(|s| clean(&s.name)),
            i.server_info.as_ref().map(|s| clean(&s.version)),
            clean(&i.protocol_version.to_string()),
        ),
        None => (None, None, String::new()),
    };
    let tools = client
        .list_all_tools()
        .await
        .map_err(|e| CheckError::ListTools(e.to_string()));
    let _ = client.cancel().await;
    let tools = tools?
        .into_iter()
        .map(|t| clean(&t.name))
        .collect::<Vec<_>>();
    Ok(CheckReport {
        server_name,
        server_version,
        protocol_version,
        tools,
        auth,
    })
}

/// A server-supplied string, safe for a terminal: no control characters, at most 200 chars.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}
