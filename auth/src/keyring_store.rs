//! The OS keyring backend, behind [`KeyringBackend`] so tests can inject an unavailable one.
//!
//! Linux: the kernel key retention service (keyutils, `keyring` feature `linux-native`): the entry
//! is a `user` key in the session keyring, linked into the user's persistent keyring
//! (`/proc/sys/kernel/keys/persistent_keyring_expiry`, 3 days idle by default), readable by
//! processes of the same user that possess it. It does not survive a reboot. No D-Bus needed.
//! macOS: the login Keychain. Elsewhere: unavailable (an error, or the file with a warning in
//! `auto` mode).
//!
//! Entry: service `Codex Auth`, account `cli|<first 16 hex digits of sha256(CODEX_HOME)>` (the
//! same naming as openai/codex), value: the `auth.json` document.

use std::path::Path;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Keyring service name.
pub const KEYRING_SERVICE: &str = "Codex Auth";

/// A keyring failure: the platform's message (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyringError(pub String);

impl std::fmt::Display for KeyringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An OS keyring. [`OsKeyring`] is the real one; tests inject others.
pub trait KeyringBackend: Send + Sync {
    /// The stored value, `None` if there is no entry.
    fn get(&self, service: &str, account: &str)
    -> Result<Option<Zeroizing<Vec<u8>>>, KeyringError>;
    /// Store (replace) the value.
    fn set(&self, service: &str, account: &str, secret: &[u8]) -> Result<(), KeyringError>;
    /// Remove the entry; `Ok(false)` if there was none.
    fn delete(&self, service: &str, account: &str) -> Result<bool, KeyringError>;
    /// Human-readable name for messages.
    fn name(&self) -> &'static str;
}

/// The keyring account for a `CODEX_HOME`: `cli|` + 16 hex digits of its SHA-256 (canonical path
/// when it exists).
pub fn account_for(codex_home: &Path) -> String {
    let canonical = codex_home
        .canonicalize()
        .unwrap_or_else(|_| codex_home.to_path_buf());
    let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("cli|{hex}")
}

/// The platform keyring through the `keyring` crate.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsKeyring;

#[cfg(any(target_os = "linux", target_os = "macos"))]
mod os {
    use super::*;

    fn describe(e: &keyring::Error) -> String {
        match e {
            // The only variant carrying stored bytes: never print them.
            keyring::Error::BadEncoding(_) => "stored value is not valid UTF-8".to_owned(),
            keyring::Error::Ambiguous(v) => format!("{} entries match", v.len()),
            keyring::Error::PlatformFailure(inner) => inner.to_string(),
            keyring::Error::NoStorageAccess(inner) => format!("no access to the keyring: {inner}"),
            other => other.to_string(),
        }
    }

    /// Linux: make sure this thread has a session keyring it possesses (joining a new anonymous
    /// one when it has none, as under cron, ssh without pam_keyinit, or CI) and that the user's
    /// persistent keyring is linked into it. Without the persistent keyring an entry would vanish
    /// when this process exits, so its absence is an error, never a silent loss.
    #[cfg(target_os = "linux")]
    fn prepare() -> Result<(), KeyringError> {
        use linux_keyutils::{KeyRing, KeyRingIdentifier};
        KeyRing::from_special_id(KeyRingIdentifier::Session, true).map_err(|e| {
            KeyringError(format!(
                "keyctl(KEYCTL_GET_KEYRING_ID, session) failed: {e:?}"
            ))
        })?;
        KeyRing::get_persistent(KeyRingIdentifier::Session).map_err(|e| {
            KeyringError(format!(
                "keyctl(KEYCTL_GET_PERSISTENT) failed: {e:?} (the kernel persistent keyring is needed for \
                 credentials to outlive this process)"
            ))
        })?;
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn prepare() -> Result<(), KeyringError> {
        Ok(())
    }

    fn entry(service: &str, account: &str) -> Result<keyring::Entry, KeyringError> {
        prepare()?;
        keyring::Entry::new(service, account).map_err(|e| KeyringError(describe(&e)))
    }

    impl KeyringBackend for OsKeyring {
        fn get(
            &self,
            service: &str,
            account: &str,
        ) -> Result<Option<Zeroizing<Vec<u8>>>, KeyringError> {
            match entry(service, account)?.get_secret() {
                Ok(v) => Ok(Some(Zeroizing::new(v))),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(KeyringError(describe(&e))),
            }
        }

        fn set(&self, service: &str, account: &str, secret: &[u8]) -> Result<(), KeyringError> {
            entry(service, account)?
                .set_secret(secret)
                .map_err(|e| KeyringError(describe(&e)))
        }

        fn delete(&self, service: &str, account: &str) -> Result<bool, KeyringError> {
            match entry(service, account)?.delete_credential() {
                Ok(()) => Ok(true),
                Err(keyring::Error::NoEntry) => Ok(false),
                Err(e) => Err(KeyringError(describe(&e))),
            }
        }

        fn name(&self) -> &'static str {
            if cfg!(target_os = "linux") {
                "kernel keyring (keyutils)"
            } else {
                "macOS Keychain"
            }
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
impl KeyringBackend for OsKeyring {
    fn get(&self, _: &str, _: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyringError> {
        Err(KeyringError(
            "no OS keyring support on this platform".into(),
        ))
    }
    fn set(&self, _: &str, _: &str, _: &[u8]) -> Result<(), KeyringError> {
        Err(KeyringError(
            "no OS keyring support on this platform".into(),
        ))
    }
    fn delete(&self, _: &str, _: &str) -> Result<bool, KeyringError> {
        Err(KeyringError(
            "no OS keyring support on this platform".into(),
        ))
    }
    fn name(&self) -> &'static str {
        "OS keyring"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_is_stable_and_distinct() {
        let a = account_for(Path::new("/nonexistent/a"));
        assert_eq!(a, account_for(Path::new("/nonexistent/a")));
        assert_ne!(a, account_for(Path::new("/nonexistent/b")));
        assert!(a.starts_with("cli|") && a.len() == 20, "{a}");
    }
}
