//! Authorization-server metadata: RFC 8414 (`/.well-known/oauth-authorization-server`), then
//! OpenID Connect Discovery (`/.well-known/openid-configuration`).
//!
//! For an issuer with a path (`https://h/tenant`), RFC 8414 §3.1 inserts the well-known segment
//! before the path (`https://h/.well-known/oauth-authorization-server/tenant`) and OIDC appends it
//! (`https://h/tenant/.well-known/openid-configuration`); both are tried in that order. The
//! metadata's `issuer` must equal the issuer asked for (RFC 8414 §3.3: a mismatch means the
//! document speaks for someone else), and every endpoint in it must pass
//! [`crate::validate_endpoint`].

use serde::Deserialize;

use crate::OAuthError;
use crate::http_client::HttpClient;
use crate::token::error_from_answer;

/// The metadata fields the suite uses. Unknown fields are ignored.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct AuthServerMetadata {
    pub issuer: String,
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
    #[serde(default)]
    pub registration_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    #[serde(default)]
    pub grant_types_supported: Option<Vec<String>>,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
}

/// The well-known URLs tried for `issuer`, in order.
pub fn well_known_urls(issuer: &url::Url) -> Vec<String> {
    let origin = issuer.origin().ascii_serialization();
    let path = issuer.path().trim_end_matches('/');
    vec![
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ]
}

/// Fetch the metadata of `issuer`. `Ok(None)` when no well-known document exists (every URL
/// answered 404 or 410); any other failure is an error.
pub async fn discover(
    http: &HttpClient,
    issuer: &str,
) -> Result<Option<AuthServerMetadata>, OAuthError> {
    let parsed = crate::validate_endpoint(issuer)?;
    if parsed.query().is_some() {
        return Err(OAuthError::Endpoint {
            url: issuer.to_string(),
            reason: "an issuer has no query".to_string(),
        });
    }
    let expected = issuer.trim_end_matches('/');
    for url in well_known_urls(&parsed) {
        let answer = http.get(&url).await?;
        if answer.status == 404 || answer.status == 410 {
            continue;
        }
        if !(200..300).contains(&answer.status) {
            return Err(error_from_answer(&url, &answer));
        }
        let bad = |reason: String| OAuthError::Body {
            endpoint: url.clone(),
            reason,
        };
        if !answer.is_json() {
            return Err(bad(format!("expected json, got {}", answer.describe())));
        }
        let meta: AuthServerMetadata = serde_json::from_slice(&answer.body).map_err(|e| {
            bad(format!(
                "not authorization server metadata: {}",
                crate::error::json_reason(&e)
            ))
        })?;
        if meta.issuer.trim_end_matches('/') != expected {
            return Err(OAuthError::IssuerMismatch {
                endpoint: url.clone(),
                expected: expected.to_string(),
                found: crate::error::clean(&meta.issuer, 200),
            });
        }
        for (field, value) in [
            ("authorization_endpoint", &meta.authorization_endpoint),
            ("token_endpoint", &meta.token_endpoint),
            (
                "device_authorization_endpoint",
                &meta.device_authorization_endpoint,
            ),
            ("registration_endpoint", &meta.registration_endpoint),
            ("revocation_endpoint", &meta.revocation_endpoint),
        ] {
            if let Some(v) = value {
                crate::validate_endpoint(v).map_err(|e| bad(format!("{field}: {e}")))?;
            }
        }
        return Ok(Some(meta));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_placement() {
        let u = url::Url::parse("https://h.example/tenant/").unwrap();
        assert_eq!(
            well_known_urls(&u),
            [
                "https://h.example/.well-known/oauth-authorization-server/tenant",
                "https://h.example/tenant/.well-known/openid-configuration"
            ]
        );
        let u = url::Url::parse("http://127.0.0.1:9").unwrap();
        assert_eq!(
            well_known_urls(&u),
            [
                "http://127.0.0.1:9/.well-known/oauth-authorization-server",
                "http://127.0.0.1:9/.well-known/openid-configuration"
            ]
        );
    }
}
