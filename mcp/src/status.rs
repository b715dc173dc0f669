//! The auth status of a server, for `codex mcp list` and `get`.
//!
//! | status | when |
//! |---|---|
//! | `unsupported` | a stdio server (credentials are its own business: `env`) |
//! | `bearer token (VAR set)` / `(VAR unset)` | `bearer_token_env_var` is configured |
//! | `oauth (logged in, expires in 52m)` | stored OAuth tokens (refreshed first when expired, without the status time limit: a cancelled refresh would lose a rotated token) |
//! | `not logged in` | the server advertises OAuth and nothing usable is stored (also: the refresh token expired) |
//! | `none` | an HTTP server that answered without asking for a token |
//! | `token required` | a 401 without OAuth metadata |
//! | `unreachable (…)` | the probe failed or timed out ([`STATUS_TIMEOUT`]); `list` never waits longer |
//! | `error (…)` | a discovery document or the store is broken (the reason says which) |
//!
//! Values are never part of a status: the variable's *name*, never its value.

use std::time::Duration;

use serde_json::{Value, json};

use crate::config::{ServerConfig, Transport};
use crate::oauth::{self, Discovery, McpAuthError};
use crate::store::CredentialStore;

/// The whole status computation of one server is bounded by this.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

/// A server's auth status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStatus {
    Unsupported,
    BearerToken { var: String, set: bool },
    OAuth { expires_in: Option<i64> },
    NotLoggedIn,
    None,
    TokenRequired,
    Unreachable(String),
    Error(String),
}

/// `52m`, `3h`, `expired`: a duration for people.
pub fn human(secs: i64) -> String {
    match secs {
        s if s < 0 => "expired".to_string(),
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

impl AuthStatus {
    /// One short line for the table.
    pub fn label(&self) -> String {
        match self {
            Self::Unsupported => "unsupported".into(),
            Self::BearerToken { var, set } => {
                format!(
                    "bearer token ({var} {})",
                    if *set { "set" } else { "unset" }
                )
            }
            Self::OAuth {
                expires_in: Some(s),
            } => {
                format!("oauth (logged in, expires in {})", human(*s))
            }
            Self::OAuth { expires_in: None } => "oauth (logged in)".into(),
            Self::NotLoggedIn => "not logged in".into(),
            Self::None => "none".into(),
            Self::TokenRequired => "token required".into(),
            Self::Unreachable(r) => format!("unreachable ({r})"),
            Self::Error(r) => format!("error ({r})"),
        }
    }

    /// The JSON form: `{"status": "...", ...}`.
    pub fn json(&self) -> Value {
        match self {
            Self::Unsupported => json!({"status": "unsupported"}),
            Self::BearerToken { var, set } => {
                json!({"status": "bearer_token", "env_var": var, "env_var_set": set})
            }
            Self::OAuth { expires_in } => {
                json!({"status": "oauth", "logged_in": true, "expires_in_sec": expires_in})
            }
            Self::NotLoggedIn => json!({"status": "not_logged_in"}),
            Self::None => json!({"status": "none"}),
            Self::TokenRequired => json!({"status": "token_required"}),
            Self::Unreachable(r) => json!({"status": "unreachable", "reason": r}),
            Self::Error(r) => json!({"status": "error", "reason": r}),
        }
    }
}

fn short(e: &dyn std::fmt::Display) -> String {
    let s = e.to_string();
    s.chars().filter(|c| !c.is_control()).take(160).collect()
}

/// The status of `server`, within `timeout` (see the module docs), and the store's warnings
/// (an `auto` store reading the plaintext file because the keyring is unavailable): show them.
pub async fn auth_status(
    server: &ServerConfig,
    store: &CredentialStore,
    timeout: Duration,
) -> (AuthStatus, Vec<String>) {
    let h = match &server.transport {
        Transport::Stdio { .. } => return (AuthStatus::Unsupported, Vec::new()),
        Transport::Http(h) => h,
    };
    if let Some(var) = &h.bearer_token_env_var {
        let set = std::env::var_os(var).is_some_and(|v| !v.is_empty());
        let s = AuthStatus::BearerToken {
            var: var.clone(),
            set,
        };
        return (s, Vec::new());
    }
    if h.is_cleartext_remote() {
        return (AuthStatus::None, Vec::new());
    }
    let mut warnings = Vec::new();
    // Stored tokens: refreshed when due, and never under the status time limit: cancelling a
    // refresh the server already answered would lose its rotated refresh token (outside review
    // r9 F3). The refresh has the HTTP client's own request limit instead.
    match store.load(&server.name, h.url.as_str()) {
        Err(e) => return (AuthStatus::Error(short(&e)), warnings),
        Ok(l) if l.entry.is_some() => {
            warnings.extend(l.warnings);
            let status = match oauth::fresh_token(
                &server.name,
                h,
                store,
                false,
                codex_oauth::REQUEST_TIMEOUT,
            )
            .await
            {
                Ok(t) => AuthStatus::OAuth {
                    expires_in: t.expires_in,
                },
                Err(McpAuthError::SignInAgain { .. } | McpAuthError::NotLoggedIn { .. }) => {
                    AuthStatus::NotLoggedIn
                }
                Err(McpAuthError::OAuth(e)) => AuthStatus::Unreachable(short(&e)),
                Err(e) => AuthStatus::Error(short(&e)),
            };
            return (status, warnings);
        }
        Ok(l) => warnings.extend(l.warnings),
    }
    let work = async {
        let http = match oauth::http_client(&h.url, timeout) {
            Ok(c) => c,
            Err(e) => return AuthStatus::Error(short(&e)),
        };
        match oauth::discover(&http, h).await {
            Ok(Discovery::Open) => AuthStatus::None,
            Ok(Discovery::OAuth(_)) => AuthStatus::NotLoggedIn,
            Ok(Discovery::TokenRequired) => AuthStatus::TokenRequired,
            Err(McpAuthError::OAuth(
                e @ (codex_oauth::OAuthError::Transport { .. }
                | codex_oauth::OAuthError::Timeout { .. }),
            )) => AuthStatus::Unreachable(short(&e)),
            Err(e) => AuthStatus::Error(short(&e)),
        }
    };
    let status = match tokio::time::timeout(timeout, work).await {
        Ok(s) => s,
        Err(_) => AuthStatus::Unreachable(format!("no answer within {}s", timeout.as_secs())),
    };
    (status, warnings)
}

/// The statuses of `servers`, computed concurrently (so `list` takes about one timeout).
pub async fn auth_statuses(
    servers: &[ServerConfig],
    store: &CredentialStore,
    timeout: Duration,
) -> Vec<(AuthStatus, Vec<String>)> {
    futures_util::future::join_all(servers.iter().map(|s| auth_status(s, store, timeout))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(
            AuthStatus::OAuth {
                expires_in: Some(3120)
            }
            .label(),
            "oauth (logged in, expires in 52m)"
        );
        assert_eq!(
            AuthStatus::BearerToken {
                var: "T".into(),
                set: false
            }
            .label(),
            "bearer token (T unset)"
        );
    }
}
