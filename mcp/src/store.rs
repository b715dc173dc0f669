//! The MCP OAuth credential store (`mcp_oauth_credentials_store = "auto" | "file" | "keyring"`,
//! default `auto`).
//!
//! - **file**: `$CODEX_HOME/.credentials.json`, written with `codex-auth`'s [`FileStore`]
//!   protocol (0600 by `fchmod`, temporary file in `.auth-tmp/` with `O_EXCL|O_NOFOLLOW`, fsync,
//!   rename, fsync of the directory; a symlink, a file of another owner or a group/world-writable
//!   `CODEX_HOME` refused). One document, one entry per server keyed by
//!   `NAME|<16 hex of sha256(URL)>`: a server renamed or pointed at another URL does not inherit
//!   another server's token. Every read-modify-write holds [`StoreLock`] on
//!   `$CODEX_HOME/.credentials.json.lock`, so two processes saving two servers never lose one.
//!   A file that does not parse is **refused** for reads and writes (the other servers' entries are
//!   never overwritten silently); the error names the file and the position only.
//! - **keyring**: one entry per server: service `Codex MCP Credentials`, account
//!   `<16 hex of sha256(CODEX_HOME)>|NAME|<16 hex of sha256(URL)>`, value: the entry's JSON. An
//!   unavailable keyring is an error and nothing is written elsewhere.
//! - **auto**: the keyring; when it fails, the file, and the outcome carries a warning that the
//!   caller must show. After a keyring save, a plaintext entry of that server is removed.
//!
//! Tokens are [`SecretString`]s outside this module; the stored form ([`StoredEntry`]) wipes its
//! strings on drop, and serialized documents live in zeroizing buffers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use codex_auth::file_store::FileStore;
use codex_auth::{AuthError, KeyringBackend, OsKeyring, StoreLock, StoreMode};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::SecretString;

/// The file name inside `CODEX_HOME`.
pub const CREDENTIALS_FILE_NAME: &str = ".credentials.json";
/// The lock serializing writers and refreshes, inside `CODEX_HOME`.
pub const LOCK_FILE_NAME: &str = ".credentials.json.lock";
/// Keyring service name.
pub const KEYRING_SERVICE: &str = "Codex MCP Credentials";
/// How long a writer waits for the lock.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// One server's OAuth credentials as stored. Strings are wiped on drop.
#[derive(Clone, Default, Serialize, Deserialize, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct StoredEntry {
    pub server_name: String,
    pub server_url: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default)]
    pub scopes: Vec<String>,
    pub token_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// RFC 8707 resource the tokens were issued for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The authorization server's issuer.
    #[serde(default)]
    pub issuer: String,
}

impl std::fmt::Debug for StoredEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredEntry")
            .field("server_name", &self.server_name)
            .field("server_url", &self.server_url)
            .field("client_id", &self.client_id)
            .field("access_token", &"[REDACTED]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl StoredEntry {
    /// The access token as a secret.
    pub fn access_token(&self) -> SecretString {
        SecretString::new(self.access_token.clone())
    }
    /// The refresh token as a secret.
    pub fn refresh_token(&self) -> Option<SecretString> {
        self.refresh_token.clone().map(SecretString::new)
    }
    /// Seconds until the access token expires (negative: expired); `None` when unknown.
    pub fn expires_in(&self, now: u64) -> Option<i64> {
        self.expires_at.map(|e| e as i64 - now as i64)
    }
}

#[derive(Default, Serialize, Deserialize)]
struct CredFile {
    #[serde(default = "one")]
    version: u32,
    #[serde(default)]
    mcp_servers: BTreeMap<String, StoredEntry>,
}

fn one() -> u32 {
    1
}

/// Why a credential operation failed. Never carries stored bytes.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    File(#[from] AuthError),
    #[error(
        "refusing {path}: {category} at line {line} column {column}; it is not overwritten (other servers' \
         credentials may be in it): fix or remove it, then log in again"
    )]
    Corrupt {
        path: PathBuf,
        category: &'static str,
        line: usize,
        column: usize,
    },
    #[error("the OS keyring entry {service}/{account} is not valid: {category}")]
    CorruptKeyring {
        service: &'static str,
        account: String,
        category: &'static str,
    },
    #[error("OS keyring {op} failed: {message} (mcp_oauth_credentials_store = \"keyring\")")]
    Keyring { op: &'static str, message: String },
    #[error("{0}")]
    Lock(#[from] codex_auth::LockError),
    #[error("failed to encode the credentials: {0}")]
    Encode(&'static str),
}

/// Where credentials are (or were) stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    File(PathBuf),
    Keyring(&'static str),
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::File(p) => write!(f, "file {}", p.display()),
            Backend::Keyring(n) => write!(f, "OS keyring ({n})"),
        }
    }
}

/// What [`CredentialStore::load`] found.
#[derive(Debug)]
#[must_use = "the warnings must be shown to the user"]
pub struct Loaded {
    pub entry: Option<StoredEntry>,
    pub backend: Option<Backend>,
    pub warnings: Vec<String>,
}

/// What [`CredentialStore::save`] did. `warning` is set when `auto` fell back to the file.
#[derive(Debug)]
#[must_use = "the fallback warning must be shown to the user"]
pub struct Saved {
    pub backend: Backend,
    pub warning: Option<String>,
}

/// What [`CredentialStore::delete`] removed.
#[derive(Debug)]
#[must_use = "the warnings must be shown to the user"]
pub struct Deleted {
    pub removed: bool,
    pub warnings: Vec<String>,
}

fn hex16(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The entry key in `.credentials.json`: `NAME|<16 hex of sha256(URL)>`.
pub fn entry_key(name: &str, url: &str) -> String {
    format!("{name}|{}", hex16(url.as_bytes()))
}

fn json_category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "i/o error",
        serde_json::error::Category::Syntax => "invalid JSON syntax",
        serde_json::error::Category::Data => "unexpected field type or value",
        serde_json::error::Category::Eof => "unexpected end of input",
    }
}

/// The MCP credential store of one `CODEX_HOME` and mode.
#[derive(Clone)]
pub struct CredentialStore {
    home: PathBuf,
    mode: StoreMode,
    file: FileStore,
    keyring: Arc<dyn KeyringBackend>,
}

impl std::fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialStore")
            .field("home", &self.home)
            .field("mode", &self.mode)
            .finish()
    }
}

impl CredentialStore {
    /// A store using the real OS keyring.
    pub fn new(home: PathBuf, mode: StoreMode) -> Self {
        Self::with_keyring(home, mode, Arc::new(OsKeyring))
    }

    /// A store with an injected keyring (tests).
    pub fn with_keyring(home: PathBuf, mode: StoreMode, keyring: Arc<dyn KeyringBackend>) -> Self {
        let file = FileStore::with_file_name(home.clone(), CREDENTIALS_FILE_NAME);
        Self {
            home,
            mode,
            file,
            keyring,
        }
    }

    pub fn mode(&self) -> StoreMode {
        self.mode
    }

    /// `$CODEX_HOME/.credentials.json`.
    pub fn file_path(&self) -> PathBuf {
        self.file.path()
    }

    /// `$CODEX_HOME/.credentials.json.lock`.
    pub fn lock_path(&self) -> PathBuf {
        self.home.join(LOCK_FILE_NAME)
    }

    /// Take the cross-process lock (creating `CODEX_HOME` 0700 when missing).
    pub async fn lock(&self) -> Result<StoreLock, StoreError> {
        self.file.check_home(true)?;
        Ok(StoreLock::acquire(&self.lock_path(), LOCK_TIMEOUT).await?)
    }

    /// Blocking variant of [`CredentialStore::lock`].
    pub fn lock_blocking(&self) -> Result<StoreLock, StoreError> {
        self.file.check_home(true)?;
        Ok(StoreLock::acquire_blocking(
            &self.lock_path(),
            LOCK_TIMEOUT,
        )?)
    }

    fn account(&self, name: &str, url: &str) -> String {
        let canonical = self
            .home
            .canonicalize()
            .unwrap_or_else(|_| self.home.clone());
        format!(
            "{}|{name}|{}",
            hex16(canonical.as_os_str().as_encoded_bytes()),
            hex16(url.as_bytes())
        )
    }

    fn read_file(&self) -> Result<(CredFile, Vec<String>), StoreError> {
        let loaded = self.file.load_bytes()?;
        let Some(bytes) = loaded.bytes else {
            return Ok((CredFile::default(), loaded.warnings));
        };
        let doc: CredFile = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: self.file.path(),
            category: json_category(&e),
            line: e.line(),
            column: e.column(),
        })?;
        Ok((doc, loaded.warnings))
    }

    fn write_file(&self, doc: &CredFile) -> Result<PathBuf, StoreError> {
        let mut buf = Zeroizing::new(Vec::with_capacity(4096));
        serde_json::to_writer_pretty(&mut *buf, doc)
            .map_err(|e| StoreError::Encode(json_category(&e)))?;
        buf.push(b'\n');
        Ok(self.file.save_bytes(&buf)?)
    }

    fn keyring_get(&self, name: &str, url: &str) -> Result<Option<StoredEntry>, StoreError> {
        let account = self.account(name, url);
        let got = self
            .keyring
            .get(KEYRING_SERVICE, &account)
            .map_err(|e| StoreError::Keyring {
                op: "read",
                message: e.0,
            })?;
        match got {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice::<StoredEntry>(&bytes)
                .map(Some)
                .map_err(|e| StoreError::CorruptKeyring {
                    service: KEYRING_SERVICE,
                    account,
                    category: json_category(&e),
                }),
        }
    }

    fn file_get(
        &self,
        name: &str,
        url: &str,
    ) -> Result<(Option<StoredEntry>, Vec<String>), StoreError> {
        let (mut doc, warnings) = self.read_file()?;
        Ok((doc.mcp_servers.remove(&entry_key(name, url)), warnings))
    }

    /// The credentials of server `name` at `url`.
    pub fn load(&self, name: &str, url: &str) -> Result<Loaded, StoreError> {
        let file_backend = || Backend::File(self.file.path());
        match self.mode {
            StoreMode::File => {
                let (entry, warnings) = self.file_get(name, url)?;
                let backend = entry.as_ref().map(|_| file_backend());
                Ok(Loaded {
                    entry,
                    backend,
                    warnings,
                })
            }
            StoreMode::Keyring => {
                let entry = self.keyring_get(name, url)?;
                let backend = entry
                    .as_ref()
                    .map(|_| Backend::Keyring(self.keyring.name()));
                Ok(Loaded {
                    entry,
                    backend,
                    warnings: Vec::new(),
                })
            }
            StoreMode::Auto => match self.keyring_get(name, url) {
                Ok(Some(entry)) => Ok(Loaded {
                    entry: Some(entry),
                    backend: Some(Backend::Keyring(self.keyring.name())),
                    warnings: Vec::new(),
                }),
                Ok(None) => {
                    let (entry, warnings) = self.file_get(name, url)?;
                    let backend = entry.as_ref().map(|_| file_backend());
                    Ok(Loaded {
                        entry,
                        backend,
                        warnings,
                    })
                }
                Err(StoreError::Keyring { message, .. }) => {
                    let (entry, mut warnings) = self.file_get(name, url)?;
                    warnings.insert(
                        0,
                        format!(
                            "the OS keyring is unavailable ({message}); reading MCP credentials from the \
                             plaintext file {} (mcp_oauth_credentials_store = \"auto\")",
                            self.file.path().display()
                        ),
                    );
                    let backend = entry.as_ref().map(|_| file_backend());
                    Ok(Loaded {
                        entry,
                        backend,
                        warnings,
                    })
                }
                Err(e) => Err(e),
            },
        }
    }

    fn file_put(
        &self,
        name: &str,
        url: &str,
        entry: Option<&StoredEntry>,
        held: Option<&StoreLock>,
    ) -> Result<bool, StoreError> {
        // Read-modify-write under the lock: a corrupt file stops here (never overwritten).
        let _lock = match held {
            Some(_) => None,
            None => Some(self.lock_blocking()?),
        };
        let (mut doc, _) = self.read_file()?;
        let key = entry_key(name, url);
        let changed = match entry {
            Some(e) => {
                doc.mcp_servers.insert(key, e.clone());
                true
            }
            None => doc.mcp_servers.remove(&key).is_some(),
        };
        if changed {
            if doc.mcp_servers.is_empty() {
                self.file.delete()?;
            } else {
                self.write_file(&doc)?;
            }
        }
        Ok(changed)
    }

    fn keyring_put(&self, name: &str, url: &str, entry: &StoredEntry) -> Result<(), StoreError> {
        let mut buf = Zeroizing::new(Vec::with_capacity(2048));
        serde_json::to_writer(&mut *buf, entry)
            .map_err(|e| StoreError::Encode(json_category(&e)))?;
        self.keyring
            .set(KEYRING_SERVICE, &self.account(name, url), &buf)
            .map_err(|e| StoreError::Keyring {
                op: "write",
                message: e.0,
            })
    }

    /// Store the credentials of server `name` at `url`, replacing what was stored for it. Takes
    /// the lock for the file's read-modify-write.
    pub fn save(&self, name: &str, url: &str, entry: &StoredEntry) -> Result<Saved, StoreError> {
        self.save_inner(name, url, entry, None)
    }

    /// [`CredentialStore::save`] by a caller that holds the lock (from [`CredentialStore::lock`]).
    pub fn save_locked(
        &self,
        lock: &StoreLock,
        name: &str,
        url: &str,
        entry: &StoredEntry,
    ) -> Result<Saved, StoreError> {
        self.save_inner(name, url, entry, Some(lock))
    }

    fn save_inner(
        &self,
        name: &str,
        url: &str,
        entry: &StoredEntry,
        held: Option<&StoreLock>,
    ) -> Result<Saved, StoreError> {
        match self.mode {
            StoreMode::File => {
                self.file_put(name, url, Some(entry), held)?;
                Ok(Saved {
                    backend: Backend::File(self.file.path()),
                    warning: None,
                })
            }
            StoreMode::Keyring => {
                self.keyring_put(name, url, entry)?;
                Ok(Saved {
                    backend: Backend::Keyring(self.keyring.name()),
                    warning: None,
                })
            }
            StoreMode::Auto => match self.keyring_put(name, url, entry) {
                Ok(()) => {
                    // a plaintext entry left by an earlier fallback goes
                    if self.file.path().exists() {
                        self.file_put(name, url, None, held)?;
                    }
                    Ok(Saved {
                        backend: Backend::Keyring(self.keyring.name()),
                        warning: None,
                    })
                }
                Err(StoreError::Keyring { message, .. }) => {
                    self.file_put(name, url, Some(entry), held)?;
                    Ok(Saved {
                        backend: Backend::File(self.file.path()),
                        warning: Some(format!(
                            "the OS keyring is unavailable ({message}); the MCP credentials of {name:?} were \
                             stored in the plaintext file {} (mode 0600) instead. Set \
                             mcp_oauth_credentials_store = \"keyring\" to make this an error",
                            self.file.path().display()
                        )),
                    })
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Remove the credentials of server `name` at `url` from every backend this mode may have
    /// used. `removed: false` when there were none.
    pub fn delete(&self, name: &str, url: &str) -> Result<Deleted, StoreError> {
        self.delete_inner(name, url, None)
    }

    /// [`CredentialStore::delete`] by a caller that holds the lock.
    pub fn delete_locked(
        &self,
        lock: &StoreLock,
        name: &str,
        url: &str,
    ) -> Result<Deleted, StoreError> {
        self.delete_inner(name, url, Some(lock))
    }

    fn delete_inner(
        &self,
        name: &str,
        url: &str,
        held: Option<&StoreLock>,
    ) -> Result<Deleted, StoreError> {
        let mut warnings = Vec::new();
        let mut removed = false;
        let account = self.account(name, url);
        match self.mode {
            StoreMode::File => {}
            StoreMode::Keyring => {
                removed |= self
                    .keyring
                    .delete(KEYRING_SERVICE, &account)
                    .map_err(|e| StoreError::Keyring {
                        op: "delete",
                        message: e.0,
                    })?;
            }
            StoreMode::Auto => match self.keyring.delete(KEYRING_SERVICE, &account) {
                Ok(r) => removed |= r,
                Err(e) => warnings.push(format!(
                    "the OS keyring is unavailable ({e}); only the file {} was checked",
                    self.file.path().display()
                )),
            },
        }
        if self.mode != StoreMode::Keyring || self.file.path().exists() {
            removed |= self.file_put(name, url, None, held)?;
        }
        Ok(Deleted { removed, warnings })
    }

    /// `CODEX_HOME`.
    pub fn home(&self) -> &Path {
        &self.home
    }
}
