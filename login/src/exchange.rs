//! The ChatGPT issuer's token endpoint: authorization-code exchange and refresh, through
//! `codex-oauth`'s [`codex_oauth::TokenClient`] (rustls, OS roots or `SSL_CERT_FILE`; a loopback
//! `http://` issuer needs no roots). This layer adds what ChatGPT sign-in needs on top of OAuth:
//! an ID token that is a JWT (its claims name the account), and a refresh token.

use codex_oauth::{HttpClient, TokenResponse};

use crate::claims::{IdTokenClaims, parse_id_token};
use crate::error::LoginError;
use crate::issuer::Issuer;
use secure_main::SecretString;

pub use codex_oauth::REQUEST_TIMEOUT as TOKEN_REQUEST_TIMEOUT;

/// The scope openai/codex sends with a refresh.
pub const REFRESH_SCOPE: &str = "openid profile email";

/// Tokens from the issuer, with the (unverified) claims of the ID token.
#[derive(Debug)]
pub struct TokenSet {
    pub id_token: SecretString,
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    pub claims: IdTokenClaims,
}

/// An HTTP(S) client for one issuer's token endpoint.
#[derive(Clone, Debug)]
pub struct TokenClient {
    inner: codex_oauth::TokenClient,
}

impl TokenClient {
    /// A client for `issuer`'s token endpoint; loads the trust roots for an https issuer.
    pub fn new(issuer: &Issuer) -> Result<Self, LoginError> {
        let http = HttpClient::new(issuer.is_https())?;
        Self::with_http(http, issuer)
    }

    /// A client sharing `http`.
    pub fn with_http(http: HttpClient, issuer: &Issuer) -> Result<Self, LoginError> {
        Ok(Self {
            inner: codex_oauth::TokenClient::with_http(http, &issuer.token_endpoint())?,
        })
    }

    fn missing(&self, field: &'static str) -> LoginError {
        LoginError::MissingToken {
            endpoint: self.inner.endpoint().to_string(),
            field,
        }
    }

    /// Exchange an authorization code (RFC 6749 §4.1.3, with the PKCE verifier of RFC 7636 §4.5).
    pub async fn exchange_code(
        &self,
        client_id: &str,
        redirect_uri: &str,
        code: &str,
        verifier: &SecretString,
    ) -> Result<TokenSet, LoginError> {
        let resp = self
            .inner
            .exchange_code(client_id, redirect_uri, code, verifier, &[])
            .await?;
        self.token_set(resp, None)
    }

    /// Refresh (RFC 6749 §6). An answer without a new refresh token keeps `refresh_token`; one
    /// without an ID token keeps `id_token`. A new ID token that is not a JWT fails the refresh
    /// (nothing is stored by the caller then).
    pub async fn refresh(
        &self,
        client_id: &str,
        refresh_token: &SecretString,
        id_token: &SecretString,
    ) -> Result<TokenSet, LoginError> {
        let resp = self
            .inner
            .refresh(client_id, refresh_token, Some(REFRESH_SCOPE), &[])
            .await?;
        self.token_set(resp, Some(id_token))
    }

    /// The ChatGPT view of a token answer.
    pub(crate) fn token_set(
        &self,
        resp: TokenResponse,
        old_id_token: Option<&SecretString>,
    ) -> Result<TokenSet, LoginError> {
        let TokenResponse {
            access_token,
            refresh_token,
            id_token,
            ..
        } = resp;
        let refresh_token = refresh_token.ok_or_else(|| self.missing("refresh_token"))?;
        let id_token = match (id_token, old_id_token) {
            (Some(t), _) => t,
            (None, Some(old)) => SecretString::new(old.expose_secret().to_string()),
            (None, None) => return Err(self.missing("id_token")),
        };
        let claims = parse_id_token(id_token.expose_secret())?;
        Ok(TokenSet {
            id_token,
            access_token,
            refresh_token,
            claims,
        })
    }
}
