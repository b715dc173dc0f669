//! [`SecretString`]: a credential string (API key, OAuth token) that zeroizes on drop and never
//! prints itself. Shared by the CLI's credential store (`codex-auth`) and its login server
//! (`codex-login`), so a token moves between them without a copy. Unlike [`crate::SecretBuf`]
//! it lives on the ordinary heap (not locked): for user-side credentials of the size and life of
//! a CLI invocation.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// A secret string (API key, OAuth token).
///
/// - Its heap buffer is overwritten with zeros when dropped.
/// - No `Clone`: a copy is made on purpose with `SecretString::new(s.expose_secret().to_owned())`.
/// - `Debug` prints `[REDACTED]`; there is no `Display`.
/// - `serde` (de)serialization exists so the credential store can write `auth.json` and the
///   keyring entry. It is meant for storage only: never serialize one into a log or a response.
///
/// Limit: a `String` that grows reallocates and may leave copies in freed memory; build a
/// `SecretString` from a `String` of its final size (as `serde_json` and the CLI's stdin reader do).
pub struct SecretString(String);

impl SecretString {
    /// Wrap `s`; it will be zeroized when this value drops.
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The secret itself. The one way to read it: every call site is a place where the secret
    /// leaves this type on purpose (an `Authorization` header, the store).
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        // `String::zeroize` clears the whole capacity, not only `len` bytes.
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SecretString)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = SecretString::new("sk-very-secret-value".to_owned());
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([REDACTED])");
        assert_eq!(s.expose_secret(), "sk-very-secret-value");
    }

    #[test]
    fn serde_round_trip() {
        let s = SecretString::new("abc\"def".to_owned());
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, r#""abc\"def""#);
        let back: SecretString = serde_json::from_str(&j).unwrap();
        assert_eq!(back.expose_secret(), "abc\"def");
    }
}
