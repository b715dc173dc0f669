//! `codex-auth`: the codex CLI's credential store.
//!
//! - [`StoreMode::File`]: `$CODEX_HOME/auth.json`, mode 0600, written atomically, never through a
//!   symlink (see [`file_store`] for the exact protocol and decisions).
//! - [`StoreMode::Keyring`]: the OS keyring (Linux kernel keyutils, macOS Keychain), see
//!   [`keyring_store`]. Unavailable keyring = error.
//! - [`StoreMode::Auto`]: the keyring; when it is unavailable, the file, with a warning that
//!   [`AuthStore::save`] returns in [`SaveOutcome::warning`] and [`AuthStore::load`] prints. Never a
//!   silent plaintext fallback.
//!
//! Secrets are [`SecretString`]s (zeroized on drop, redacted `Debug`); serialized forms live in
//! zeroizing buffers; errors never quote stored bytes.
//!
//! Thread-safety: an `AuthStore` is `Send + Sync`; concurrent saves are safe (each writes its own
//! temporary file; the last rename wins). After a failed save, the previous credentials are intact.
//! Platforms: Unix only (file modes, `O_NOFOLLOW`).

#![cfg(unix)]

mod auth_json;
mod error;
pub mod file_store;
pub mod keyring_store;
pub mod lock;
pub mod manager;
mod mode;
mod secret;
mod store;
mod sys;

pub use auth_json::{AuthDotJson, TokenData};
pub use error::AuthError;
pub use keyring_store::{KeyringBackend, KeyringError, OsKeyring};
pub use lock::{LockError, StoreLock};
pub use manager::{
    AuthManager, ManagerError, RefreshFailure, RefreshFuture, RefreshOutcome, RefreshedTokens,
    TokenRefresher,
};
pub use mode::{ParseStoreModeError, StoreMode};
pub use secret::mask_api_key;
pub use secure_main::SecretString;
pub use store::{AuthStore, Backend, DeleteOutcome, Fingerprint, LoadOutcome, SaveOutcome};
