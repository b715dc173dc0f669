//! RFC 7009 token revocation. A 200 answer means revoked (or unknown, which §2.2 treats the
//! same); an error answer is typed like a token endpoint's.

use crate::http_client::HttpClient;
use crate::token::error_from_answer;
use crate::{OAuthError, SecretString};

/// Which token is revoked (`token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// Revoke `token` at `endpoint` for `client_id` (and its secret, when it has one).
pub async fn revoke(
    http: &HttpClient,
    endpoint: &str,
    token: &SecretString,
    kind: TokenKind,
    client_id: &str,
    client_secret: Option<&SecretString>,
) -> Result<(), OAuthError> {
    crate::validate_endpoint(endpoint)?;
    let hint = match kind {
        TokenKind::Access => "access_token",
        TokenKind::Refresh => "refresh_token",
    };
    let mut form = vec![
        ("token", token.expose_secret()),
        ("token_type_hint", hint),
        ("client_id", client_id),
    ];
    if let Some(s) = client_secret {
        form.push(("client_secret", s.expose_secret()));
    }
    let answer = http.post_form(endpoint, &form).await?;
    if (200..300).contains(&answer.status) {
        Ok(())
    } else {
        Err(error_from_answer(endpoint, &answer))
    }
}
