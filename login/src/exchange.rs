//! The token endpoint: authorization-code exchange and refresh, over rustls.
//!
//! Trust roots: the OS store via rustls-native-certs, which reads `SSL_CERT_FILE` / `SSL_CERT_DIR`
//! instead when they are set. A loopback `http://` issuer (tests only, see [`crate::Issuer`]) needs
//! no roots.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use zeroize::Zeroize;

use crate::claims::{IdTokenClaims, parse_id_token};
use crate::error::LoginError;
use crate::issuer::Issuer;
use secure_main::SecretString;

/// Upper bound for one token request, connect to last byte.
pub const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest token endpoint answer read.
const MAX_BODY: usize = 1 << 20;

/// Tokens from the issuer, with the (unverified) claims of the ID token.
#[derive(Debug)]
pub struct TokenSet {
    pub id_token: SecretString,
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    pub claims: IdTokenClaims,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: String,
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
}

impl TokenResponse {
    /// The tokens as a [`TokenSet`] (moved, not copied), with `refresh_token` as its refresh
    /// token and the ID token's claims.
    fn into_token_set(mut self, refresh_token: SecretString) -> Result<TokenSet, LoginError> {
        let claims = parse_id_token(&self.id_token)?;
        Ok(TokenSet {
            id_token: SecretString::new(std::mem::take(&mut self.id_token)),
            access_token: SecretString::new(std::mem::take(&mut self.access_token)),
            refresh_token,
            claims,
        })
    }
}

impl Drop for TokenResponse {
    fn drop(&mut self) {
        self.id_token.zeroize();
        self.access_token.zeroize();
        self.refresh_token.zeroize();
    }
}

/// An HTTP(S) client for one issuer's token endpoint.
#[derive(Clone)]
pub struct TokenClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoint: String,
}

impl std::fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenClient")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl TokenClient {
    /// A client for `issuer`'s token endpoint; loads the trust roots for an https issuer.
    pub fn new(issuer: &Issuer) -> Result<Self, LoginError> {
        let mut roots = rustls::RootCertStore::empty();
        if issuer.is_https() {
            let loaded = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
            if added == 0 {
                let why = loaded
                    .errors
                    .first()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "the trust store is empty".to_string());
                return Err(LoginError::Roots(std::io::Error::other(why)));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| LoginError::Roots(std::io::Error::other(e)))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
        let connector = if issuer.is_https() {
            builder.https_only().enable_http1().build()
        } else {
            builder.https_or_http().enable_http1().build()
        };
        // No idle pool: the connection (and its task) ends with the answer, so nothing of a login
        // outlives it.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Ok(Self {
            client,
            endpoint: issuer.token_endpoint(),
        })
    }

    /// Exchange an authorization code (RFC 6749 §4.1.3, with the PKCE verifier of RFC 7636 §4.5).
    pub async fn exchange_code(
        &self,
        client_id: &str,
        redirect_uri: &str,
        code: &str,
        verifier: &SecretString,
    ) -> Result<TokenSet, LoginError> {
        let mut body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("client_id", client_id)
            .append_pair("code_verifier", verifier.expose_secret())
            .finish();
        let resp = self.post(&body).await;
        body.zeroize();
        let mut resp = resp?;
        let refresh = resp
            .refresh_token
            .take()
            .ok_or_else(|| LoginError::TokenBody {
                endpoint: self.endpoint.clone(),
                reason: "missing field `refresh_token`".to_string(),
            })?;
        resp.into_token_set(SecretString::new(refresh))
    }

    /// Refresh (RFC 6749 §6). An answer without a new refresh token keeps `refresh_token`.
    pub async fn refresh(
        &self,
        client_id: &str,
        refresh_token: &SecretString,
    ) -> Result<TokenSet, LoginError> {
        let mut body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("client_id", client_id)
            .append_pair("refresh_token", refresh_token.expose_secret())
            .append_pair("scope", "openid profile email")
            .finish();
        let resp = self.post(&body).await;
        body.zeroize();
        let mut resp = resp?;
        let refresh = match resp.refresh_token.take() {
            Some(new) => new,
            None => refresh_token.expose_secret().to_string(),
        };
        resp.into_token_set(SecretString::new(refresh))
    }

    async fn post(&self, form: &str) -> Result<TokenResponse, LoginError> {
        match tokio::time::timeout(TOKEN_REQUEST_TIMEOUT, self.post_inner(form)).await {
            Ok(r) => r,
            Err(_) => Err(LoginError::TokenTransport {
                endpoint: self.endpoint.clone(),
                reason: format!("no answer within {}s", TOKEN_REQUEST_TIMEOUT.as_secs()),
            }),
        }
    }

    async fn post_inner(&self, form: &str) -> Result<TokenResponse, LoginError> {
        let transport = |reason: String| LoginError::TokenTransport {
            endpoint: self.endpoint.clone(),
            reason,
        };
        let req = http::Request::post(&self.endpoint)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("codex-login/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::copy_from_slice(form.as_bytes())))
            .map_err(|e| transport(e.to_string()))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| transport(error_chain(&e)))?;
        let status = resp.status();
        let collected = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| transport(format!("reading the answer: {e}")))?;
        let mut body = collected.to_bytes().to_vec();
        let result = if status.is_success() {
            serde_json::from_slice::<TokenResponse>(&body).map_err(|e| LoginError::TokenBody {
                endpoint: self.endpoint.clone(),
                // serde_json's message names the field and position, never the value.
                reason: e.to_string(),
            })
        } else {
            Err(LoginError::TokenRefused {
                endpoint: self.endpoint.clone(),
                status: status.as_u16(),
                detail: oauth_error_detail(&body),
            })
        };
        body.zeroize();
        result
    }
}

/// `error: error_description` from an OAuth error answer (RFC 6749 §5.2), printable and short;
/// never the raw body.
fn oauth_error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct OAuthError {
        error: Option<String>,
        error_description: Option<String>,
    }
    let clean = |s: &str| -> String { s.chars().filter(|c| !c.is_control()).take(200).collect() };
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(OAuthError {
            error: Some(e),
            error_description: Some(d),
        }) => {
            format!("{}: {}", clean(&e), clean(&d))
        }
        Ok(OAuthError {
            error: Some(e),
            error_description: None,
        }) => clean(&e),
        _ => "no oauth error in the answer".to_string(),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_detail_is_bounded_and_printable() {
        assert_eq!(
            oauth_error_detail(br#"{"error":"invalid_grant","error_description":"bad\nverifier"}"#),
            "invalid_grant: badverifier"
        );
        assert_eq!(
            oauth_error_detail(b"<html>secret-ish</html>"),
            "no oauth error in the answer"
        );
        let long = format!(r#"{{"error":"{}"}}"#, "x".repeat(5000));
        assert_eq!(oauth_error_detail(long.as_bytes()).len(), 200);
    }
}
