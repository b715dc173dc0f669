//! The token endpoint (RFC 6749 §3.2): authorization-code exchange (§4.1.3, with the PKCE
//! verifier of RFC 7636 §4.5), refresh (§6), and any other grant through [`TokenClient::grant`]
//! (the device-code grant of RFC 8628 uses it).

use serde::Deserialize;
use zeroize::Zeroize;

use crate::error::clean;
use crate::http_client::{Answer, HttpClient, endpoint_name};
use crate::{ErrorCode, OAuthError, SecretString};

/// A successful token answer (RFC 6749 §5.1). Tokens are zeroizing secrets.
#[derive(Debug)]
pub struct TokenResponse {
    pub access_token: SecretString,
    pub token_type: Option<String>,
    /// Seconds until the access token expires, as the server said.
    pub expires_in: Option<u64>,
    /// The refresh token. After [`TokenClient::refresh`]: the new one when the server rotated it,
    /// else the one that was presented (see [`TokenResponse::refresh_rotated`]).
    pub refresh_token: Option<SecretString>,
    /// `false` when a refresh answer carried no refresh token and the old one was kept.
    pub refresh_rotated: bool,
    /// OpenID Connect ID token, when the server sent one.
    pub id_token: Option<SecretString>,
    pub scope: Option<String>,
}

#[derive(Deserialize)]
struct RawToken {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

impl Drop for RawToken {
    fn drop(&mut self) {
        self.access_token.zeroize();
        self.refresh_token.zeroize();
        self.id_token.zeroize();
    }
}

#[derive(Deserialize)]
struct RawError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The error an error answer (non-2xx) stands for: an RFC 6749 §5.2 body becomes
/// [`OAuthError::Server`], anything else [`OAuthError::Status`].
pub fn error_from_answer(endpoint: &str, answer: &Answer) -> OAuthError {
    match serde_json::from_slice::<RawError>(&answer.body) {
        Ok(e) if answer.is_json() || answer.body.first() == Some(&b'{') => OAuthError::Server {
            endpoint: endpoint.to_string(),
            status: answer.status,
            code: ErrorCode::parse(&e.error),
            description: e
                .error_description
                .as_deref()
                .map(|d| clean(d, 200))
                .filter(|d| !d.is_empty()),
        },
        _ => OAuthError::Status {
            endpoint: endpoint.to_string(),
            status: answer.status,
            detail: format!("no oauth error in the answer: {}", answer.describe()),
        },
    }
}

/// Parse a token answer (success or error).
pub(crate) fn parse_token_answer(
    endpoint: &str,
    answer: &Answer,
) -> Result<TokenResponse, OAuthError> {
    if !(200..300).contains(&answer.status) {
        return Err(error_from_answer(endpoint, answer));
    }
    let body_err = |reason: String| OAuthError::Body {
        endpoint: endpoint.to_string(),
        reason,
    };
    if !answer.is_json() {
        return Err(body_err(format!(
            "expected json, got {}",
            answer.describe()
        )));
    }
    let mut raw: RawToken = serde_json::from_slice(&answer.body).map_err(|e| {
        body_err(format!(
            "{}, {}",
            crate::error::json_reason(&e),
            answer.describe()
        ))
    })?;
    if raw.access_token.is_empty() {
        return Err(body_err("empty access_token".to_string()));
    }
    let expires_in = match raw.expires_in.take() {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| body_err("expires_in is not a non-negative integer".to_string()))?,
        ),
    };
    Ok(TokenResponse {
        access_token: SecretString::new(std::mem::take(&mut raw.access_token)),
        token_type: raw.token_type.take().map(|t| clean(&t, 40)),
        expires_in,
        refresh_rotated: raw.refresh_token.is_some(),
        refresh_token: raw
            .refresh_token
            .take()
            .filter(|t| !t.is_empty())
            .map(SecretString::new),
        id_token: raw
            .id_token
            .take()
            .filter(|t| !t.is_empty())
            .map(SecretString::new),
        scope: raw.scope.take(),
    })
}

/// The longest access-token lifetime [`TokenResponse::check_bearer`] accepts (one year): beyond
/// it, `expires_in` is a server bug (or an attempt to make a stolen token never expire locally).
pub const MAX_EXPIRES_IN: u64 = 365 * 24 * 3600;

impl TokenResponse {
    /// The checks an RFC 6750 client makes before using the tokens: `token_type` is `Bearer`
    /// (case-insensitive, RFC 6749 §5.1 makes it required), `expires_in`, when sent, is in
    /// 1..=[`MAX_EXPIRES_IN`]. `endpoint` names the token endpoint in the error.
    pub fn check_bearer(&self, endpoint: &str) -> Result<(), OAuthError> {
        let bad = |reason: String| OAuthError::Body {
            endpoint: endpoint.to_string(),
            reason,
        };
        match self.token_type.as_deref() {
            Some(t) if t.eq_ignore_ascii_case("bearer") => {}
            Some(t) => return Err(bad(format!("token_type {t:?} is not Bearer"))),
            None => return Err(bad("token_type is missing (must be Bearer)".to_string())),
        }
        if let Some(e) = self.expires_in
            && !(1..=MAX_EXPIRES_IN).contains(&e)
        {
            return Err(bad(format!(
                "expires_in {e} is out of range (1 to {MAX_EXPIRES_IN} seconds)"
            )));
        }
        Ok(())
    }
}

/// A client for one token endpoint.
#[derive(Clone, Debug)]
pub struct TokenClient {
    http: HttpClient,
    endpoint: String,
}

impl TokenClient {
    /// A client for `endpoint` (checked with [`crate::validate_endpoint`]).
    pub fn new(endpoint: &str) -> Result<Self, OAuthError> {
        let http = HttpClient::for_url(endpoint)?;
        Self::with_http(http, endpoint)
    }

    /// A client for `endpoint` sharing `http`.
    pub fn with_http(http: HttpClient, endpoint: &str) -> Result<Self, OAuthError> {
        let parsed = crate::validate_endpoint(endpoint)?;
        Ok(Self {
            http,
            endpoint: parsed.to_string(),
        })
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Exchange an authorization code; `extra` adds parameters (e.g. an RFC 8707 `resource`).
    pub async fn exchange_code(
        &self,
        client_id: &str,
        redirect_uri: &str,
        code: &str,
        verifier: &SecretString,
        extra: &[(&str, &str)],
    ) -> Result<TokenResponse, OAuthError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
            ("code_verifier", verifier.expose_secret()),
        ];
        form.extend_from_slice(extra);
        self.grant(&form).await
    }

    /// Refresh. The answer's refresh token is the rotated one when the server sent one; else the
    /// one presented here is kept (RFC 6749 §6: the server MAY issue a new refresh token).
    pub async fn refresh(
        &self,
        client_id: &str,
        refresh_token: &SecretString,
        scope: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Result<TokenResponse, OAuthError> {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("client_id", client_id),
            ("refresh_token", refresh_token.expose_secret()),
        ];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        form.extend_from_slice(extra);
        let mut resp = self.grant(&form).await?;
        if resp.refresh_token.is_none() {
            resp.refresh_token = Some(SecretString::new(refresh_token.expose_secret().to_string()));
            resp.refresh_rotated = false;
        }
        Ok(resp)
    }

    /// POST `form` to the token endpoint and parse the answer.
    pub async fn grant(&self, form: &[(&str, &str)]) -> Result<TokenResponse, OAuthError> {
        let answer = self.http.post_form(&self.endpoint, form).await?;
        let name = url::Url::parse(&self.endpoint)
            .map(|u| endpoint_name(&u))
            .unwrap_or_else(|_| self.endpoint.clone());
        parse_token_answer(&name, &answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn ans(status: u16, ct: Option<&str>, body: &str) -> Answer {
        Answer {
            status,
            content_type: ct.map(str::to_string),
            body: Zeroizing::new(body.as_bytes().to_vec()),
            www_authenticate: None,
        }
    }

    #[test]
    fn rfc6749_error_bodies_are_typed() {
        let e = parse_token_answer(
            "E",
            &ans(
                400,
                Some("application/json"),
                r#"{"error":"invalid_grant","error_description":"refresh\ntoken revoked"}"#,
            ),
        )
        .unwrap_err();
        assert!(e.is_invalid_grant(), "{e}");
        assert_eq!(
            e.to_string(),
            "E refused the request: invalid_grant: refreshtoken revoked"
        );
        let e = parse_token_answer("E", &ans(400, None, r#"{"error":"weird_thing\u001b[31m"}"#))
            .unwrap_err();
        assert_eq!(
            e.code(),
            Some(&ErrorCode::Other("weird_thing[31m".to_string()))
        );
        let e = parse_token_answer(
            "E",
            &ans(502, Some("text/html"), "<html>bad gateway</html>"),
        )
        .unwrap_err();
        assert!(
            matches!(&e, OAuthError::Status { status: 502, detail, .. } if detail.contains("html")),
            "{e}"
        );
    }

    #[test]
    fn success_bodies() {
        let r = parse_token_answer(
            "E",
            &ans(
                200,
                Some("application/json"),
                r#"{"access_token":"AT","expires_in":"60","token_type":"Bearer"}"#,
            ),
        )
        .unwrap();
        assert_eq!(r.access_token.expose_secret(), "AT");
        assert_eq!(r.expires_in, Some(60));
        assert!(r.refresh_token.is_none() && !r.refresh_rotated);
        let e = parse_token_answer("E", &ans(200, Some("text/html"), "<html>login</html>"))
            .unwrap_err();
        assert!(matches!(e, OAuthError::Body { .. }), "{e}");
        let e = parse_token_answer("E", &ans(200, None, "<html>SECRETPAGE</html>")).unwrap_err();
        assert!(!e.to_string().contains("SECRETPAGE"), "{e}");
        let e = parse_token_answer("E", &ans(200, None, r#"{"token_type":"x"}"#)).unwrap_err();
        assert!(e.to_string().contains("access_token"), "{e}");
        let e = parse_token_answer(
            "E",
            &ans(200, None, r#"{"access_token":"AT","expires_in":-5}"#),
        )
        .unwrap_err();
        assert!(e.to_string().contains("expires_in"), "{e}");
    }
}
