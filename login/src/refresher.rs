//! [`ChatGptRefresher`]: `codex-auth`'s [`TokenRefresher`] for the ChatGPT issuer, so that the
//! auth manager (which knows nothing about HTTP) can refresh stored ChatGPT tokens.
//!
//! `invalid_grant` becomes [`RefreshFailure::InvalidGrant`] (sign in again); everything else,
//! including a new ID token that is not a JWT, is [`RefreshFailure::Other`] (the stored tokens
//! stay). Messages never carry a token.

use codex_auth::{RefreshFailure, RefreshFuture, RefreshedTokens, TokenData, TokenRefresher};

use crate::error::LoginError;
use crate::exchange::TokenClient;
use crate::issuer::Issuer;

/// Refreshes ChatGPT tokens at one issuer for one client id.
#[derive(Debug, Clone)]
pub struct ChatGptRefresher {
    client: TokenClient,
    client_id: String,
}

impl ChatGptRefresher {
    /// A refresher for `issuer` and `client_id` (loads the trust roots for an https issuer).
    pub fn new(issuer: &Issuer, client_id: &str) -> Result<Self, LoginError> {
        crate::issuer::validate_client_id(client_id)?;
        Ok(Self {
            client: TokenClient::new(issuer)?,
            client_id: client_id.to_string(),
        })
    }
}

impl TokenRefresher for ChatGptRefresher {
    fn refresh<'a>(&'a self, tokens: &'a TokenData) -> RefreshFuture<'a> {
        Box::pin(async move {
            match self
                .client
                .refresh(&self.client_id, &tokens.refresh_token, &tokens.id_token)
                .await
            {
                Ok(set) => Ok(RefreshedTokens {
                    id_token: set.id_token,
                    access_token: set.access_token,
                    refresh_token: set.refresh_token,
                    account_id: set.claims.account_id,
                }),
                Err(LoginError::OAuth(e)) if e.is_invalid_grant() => {
                    Err(RefreshFailure::InvalidGrant(e.to_string()))
                }
                Err(e) => Err(RefreshFailure::Other(e.to_string())),
            }
        })
    }
}
