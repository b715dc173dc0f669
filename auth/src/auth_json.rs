//! The stored credentials: codex-compatible `auth.json`.

use serde::{Deserialize, Serialize};

use secure_main::SecretString;

/// The content of `auth.json` (and of the keyring entry), field for field as openai/codex writes it:
/// `{"OPENAI_API_KEY": "sk-..." | null, "tokens": {...}, "last_refresh": "RFC 3339"}`.
/// Unknown fields are ignored, so files written by newer versions still load.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AuthDotJson {
    /// An API key (`codex login --with-api-key`).
    #[serde(rename = "OPENAI_API_KEY", default)]
    pub openai_api_key: Option<SecretString>,
    /// OAuth tokens (`codex login` through the browser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenData>,
    /// When the tokens were last refreshed, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refresh: Option<String>,
}

/// OAuth tokens from the ChatGPT sign-in.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenData {
    /// The OpenID Connect ID token (a JWT).
    pub id_token: SecretString,
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token.
    pub refresh_token: SecretString,
    /// The ChatGPT account id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

impl AuthDotJson {
    /// Credentials holding only an API key.
    pub fn from_api_key(key: SecretString) -> Self {
        Self {
            openai_api_key: Some(key),
            tokens: None,
            last_refresh: None,
        }
    }

    /// An upper bound of the serialized size, so the output buffer is allocated once (no
    /// reallocation leaving copies of secrets in freed memory).
    pub(crate) fn size_hint(&self) -> usize {
        let mut n = 256 + self.last_refresh.as_ref().map_or(0, String::len);
        // JSON escaping at most doubles a string made of printable characters; control characters
        // take 6 bytes, so allow 6x.
        if let Some(k) = &self.openai_api_key {
            n += 6 * k.len();
        }
        if let Some(t) = &self.tokens {
            n += 6 * (t.id_token.len() + t.access_token.len() + t.refresh_token.len());
            n += 6 * t.account_id.as_ref().map_or(0, String::len);
        }
        n
    }

    /// Serialize into a zeroizing buffer, allocated once.
    pub(crate) fn to_json(&self) -> Result<zeroize::Zeroizing<Vec<u8>>, crate::AuthError> {
        let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(self.size_hint()));
        serde_json::to_writer_pretty(&mut *buf, self).map_err(|e| crate::AuthError::Encode {
            category: crate::error::json_category(&e),
        })?;
        Ok(buf)
    }

    /// Parse from bytes; `origin` names the file or keyring entry in the error.
    pub(crate) fn from_json(bytes: &[u8], origin: &str) -> Result<Self, crate::AuthError> {
        serde_json::from_slice(bytes).map_err(|e| crate::AuthError::Parse {
            path: origin.to_owned(),
            category: crate::error::json_category(&e),
            line: e.line(),
            column: e.column(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_codex_format() {
        let j = br#"{"OPENAI_API_KEY": null, "tokens": {"id_token": "a.b.c", "access_token": "at",
            "refresh_token": "rt", "account_id": "acc"}, "last_refresh": "2025-01-01T00:00:00Z", "future": 1}"#;
        let a = AuthDotJson::from_json(j, "x").unwrap();
        assert!(a.openai_api_key.is_none());
        let t = a.tokens.unwrap();
        assert_eq!(t.access_token.expose_secret(), "at");
        assert_eq!(t.account_id.as_deref(), Some("acc"));
        assert_eq!(a.last_refresh.as_deref(), Some("2025-01-01T00:00:00Z"));
    }

    #[test]
    fn writes_codex_format() {
        let a = AuthDotJson::from_api_key(SecretString::new("sk-x".into()));
        let j = a.to_json().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&j).unwrap();
        assert_eq!(v, serde_json::json!({"OPENAI_API_KEY": "sk-x"}));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let j = br#"{"OPENAI_API_KEY": "sk-SECRET1", "tokens": {"id_token": "SECRET2",
            "access_token": "SECRET3", "refresh_token": "SECRET4", "account_id": "acc-public"}}"#;
        let a = AuthDotJson::from_json(j, "x").unwrap();
        let d = format!("{a:?}");
        assert!(!d.contains("SECRET"), "{d}");
        assert!(d.contains("acc-public") && d.contains("[REDACTED]"), "{d}");
    }

    #[test]
    fn parse_error_never_quotes_the_value() {
        // serde_json's own message would be `invalid type: string "sk-SECRET...", expected a map`.
        let j = br#"{"OPENAI_API_KEY": "sk-SECRETSECRET", "tokens": "sk-SECRETSECRET"}"#;
        let e = AuthDotJson::from_json(j, "auth.json")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("SECRET"), "{e}");
        assert!(
            e.starts_with("failed to parse auth.json: unexpected field type or value at line 1"),
            "{e}"
        );
    }
}
