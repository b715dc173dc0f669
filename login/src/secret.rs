//! Secret strings: zeroized on drop, no `Clone`, `Debug` prints `[REDACTED]`.

use std::fmt;

use zeroize::Zeroizing;

/// A token or key. The only way to read it is [`SecretString::expose_secret`], which callers use
/// at the one place where the bytes leave the process (an HTTP body, the credential store).
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wrap a secret. The caller's `String` moves in, so no unzeroized copy stays behind.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The secret's text. Named so that every use is visible in review.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// `true` when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = SecretString::new("sk-very-secret".to_string());
        assert_eq!(format!("{s:?}"), "[REDACTED]");
        assert_eq!(s.expose_secret(), "sk-very-secret");
    }
}
