//! RFC 7591 dynamic client registration with loopback redirect URIs: a public client (PKCE, no
//! secret) where the server allows it, else a confidential one (`client_secret_post`). The answer must carry a non-empty `client_id`; a `client_secret`, when
//! sent, is kept as a secret.

use serde::Deserialize;
use zeroize::Zeroize;

use crate::http_client::HttpClient;
use crate::token::error_from_answer;
use crate::{OAuthError, SecretString};

/// What to register.
#[derive(Debug, Clone)]
pub struct RegistrationRequest<'a> {
    pub client_name: &'a str,
    pub redirect_uris: &'a [String],
    /// Space-separated scopes, when known.
    pub scope: Option<&'a str>,
    /// `none` (a public client with PKCE), or `client_secret_post` when the server supports no
    /// public clients (see [`choose_auth_method`]).
    pub token_endpoint_auth_method: &'a str,
}

/// The token endpoint authentication method to register: `none` when the server lists it (or
/// lists nothing: RFC 8414's default is `client_secret_basic`, but MCP servers accept public
/// clients), else `client_secret_post` when listed, else `none` (the server will say no).
pub fn choose_auth_method(supported: Option<&[String]>) -> &'static str {
    match supported {
        Some(list)
            if !list.iter().any(|m| m == "none")
                && list.iter().any(|m| m == "client_secret_post") =>
        {
            "client_secret_post"
        }
        _ => "none",
    }
}

/// A registered client.
#[derive(Debug)]
pub struct RegisteredClient {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    /// `client_secret_expires_at` (0 = never), when sent.
    pub client_secret_expires_at: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_method_choice() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(choose_auth_method(None), "none");
        assert_eq!(
            choose_auth_method(Some(&v(&["none", "client_secret_post"]))),
            "none"
        );
        assert_eq!(
            choose_auth_method(Some(&v(&["client_secret_post", "client_secret_basic"]))),
            "client_secret_post"
        );
        assert_eq!(choose_auth_method(Some(&v(&["private_key_jwt"]))), "none");
    }
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    client_secret_expires_at: Option<u64>,
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.client_secret.zeroize();
    }
}

/// Register at `endpoint`.
pub async fn register(
    http: &HttpClient,
    endpoint: &str,
    req: &RegistrationRequest<'_>,
) -> Result<RegisteredClient, OAuthError> {
    crate::validate_endpoint(endpoint)?;
    let mut body = serde_json::json!({
        "client_name": req.client_name,
        "redirect_uris": req.redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": req.token_endpoint_auth_method,
    });
    if let Some(s) = req.scope {
        body["scope"] = serde_json::json!(s);
    }
    let answer = http.post_json(endpoint, &body).await?;
    if !(200..300).contains(&answer.status) {
        return Err(error_from_answer(endpoint, &answer));
    }
    let bad = |reason: String| OAuthError::Body {
        endpoint: endpoint.to_string(),
        reason,
    };
    if !answer.is_json() {
        return Err(bad(format!("expected json, got {}", answer.describe())));
    }
    let mut raw: Raw = serde_json::from_slice(&answer.body).map_err(|e| {
        bad(format!(
            "{}, {}",
            crate::error::json_reason(&e),
            answer.describe()
        ))
    })?;
    let client_id = raw
        .client_id
        .take()
        .map(|c| crate::error::clean(&c, 256))
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("the registration answer has no client_id".to_string()))?;
    Ok(RegisteredClient {
        client_id,
        client_secret: raw
            .client_secret
            .take()
            .filter(|s| !s.is_empty())
            .map(SecretString::new),
        client_secret_expires_at: raw.client_secret_expires_at,
    })
}
