//! [`AuthStore`]: the mode-dispatching front of the two backends.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::file_store::FileStore;
use crate::keyring_store::{KEYRING_SERVICE, KeyringBackend, OsKeyring, account_for};
use crate::{AuthDotJson, AuthError, StoreMode};

/// Which backend holds (or held) the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The file, at this path.
    File(PathBuf),
    /// The OS keyring (its name).
    Keyring(&'static str),
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::File(p) => write!(f, "file {}", p.display()),
            Backend::Keyring(name) => write!(f, "OS keyring ({name})"),
        }
    }
}

/// What `save` did. In `auto` mode, `warning` is set when the keyring was unavailable and the
/// credentials went to the plaintext file: the caller MUST show it to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "the fallback warning must be shown to the user"]
pub struct SaveOutcome {
    pub backend: Backend,
    pub warning: Option<String>,
}

/// What `load_with_source` found.
#[derive(Debug)]
#[must_use = "the warnings must be shown to the user"]
pub struct LoadOutcome {
    pub auth: Option<AuthDotJson>,
    /// Where it came from (`None` when nothing was stored).
    pub backend: Option<Backend>,
    /// Keyring fallback or loose file permissions: show them to the user.
    pub warnings: Vec<String>,
}

/// What `delete_with_warnings` removed.
#[derive(Debug)]
#[must_use = "the warnings must be shown to the user"]
pub struct DeleteOutcome {
    /// True if credentials were removed from any backend.
    pub removed: bool,
    pub warnings: Vec<String>,
}

/// See [`AuthStore::fingerprint`]. Equal fingerprints: nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

/// The credential store for one `CODEX_HOME` and mode.
#[derive(Clone)]
pub struct AuthStore {
    codex_home: PathBuf,
    mode: StoreMode,
    file: FileStore,
    keyring: Arc<dyn KeyringBackend>,
}

impl fmt::Debug for AuthStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthStore")
            .field("codex_home", &self.codex_home)
            .field("mode", &self.mode)
            .field("keyring", &self.keyring.name())
            .finish()
    }
}

impl AuthStore {
    /// A store using the real OS keyring.
    pub fn new(codex_home: PathBuf, mode: StoreMode) -> Self {
        Self::with_keyring(codex_home, mode, Arc::new(OsKeyring))
    }

    /// A store with an injected keyring backend (tests; other platforms' keyrings).
    pub fn with_keyring(
        codex_home: PathBuf,
        mode: StoreMode,
        keyring: Arc<dyn KeyringBackend>,
    ) -> Self {
        let file = FileStore::new(codex_home.clone());
        Self {
            codex_home,
            mode,
            file,
            keyring,
        }
    }

    pub fn mode(&self) -> StoreMode {
        self.mode
    }

    pub fn codex_home(&self) -> &std::path::Path {
        &self.codex_home
    }

    fn account(&self) -> String {
        account_for(&self.codex_home)
    }

    fn keyring_backend(&self) -> Backend {
        Backend::Keyring(self.keyring.name())
    }

    fn keyring_load(&self) -> Result<Option<AuthDotJson>, crate::keyring_store::KeyringError> {
        let Some(bytes) = self.keyring.get(KEYRING_SERVICE, &self.account())? else {
            return Ok(None);
        };
        let origin = format!("OS keyring entry {KEYRING_SERVICE}/{}", self.account());
        AuthDotJson::from_json(&bytes, &origin)
            .map(Some)
            .map_err(|e| crate::keyring_store::KeyringError(e.to_string()))
    }

    /// Load, returning the backend and any warnings instead of printing them.
    pub fn load_with_source(&self) -> Result<LoadOutcome, AuthError> {
        match self.mode {
            StoreMode::File => self.load_file(Vec::new()),
            StoreMode::Keyring => {
                let auth = self.keyring_load().map_err(|e| AuthError::Keyring {
                    op: "read",
                    message: e.0,
                })?;
                let backend = auth.as_ref().map(|_| self.keyring_backend());
                Ok(LoadOutcome {
                    auth,
                    backend,
                    warnings: Vec::new(),
                })
            }
            StoreMode::Auto => match self.keyring_load() {
                Ok(Some(auth)) => Ok(LoadOutcome {
                    auth: Some(auth),
                    backend: Some(self.keyring_backend()),
                    warnings: Vec::new(),
                }),
                Ok(None) => self.load_file(Vec::new()),
                Err(e) => {
                    let warning = format!(
                        "the OS keyring is unavailable ({e}); reading credentials from the plaintext file {} \
                         (cli_auth_credentials_store = \"auto\")",
                        self.file.path().display()
                    );
                    self.load_file(vec![warning])
                }
            },
        }
    }

    fn load_file(&self, mut warnings: Vec<String>) -> Result<LoadOutcome, AuthError> {
        let loaded = self.file.load()?;
        warnings.extend(loaded.warnings);
        let backend = loaded
            .auth
            .as_ref()
            .map(|_| Backend::File(self.file.path()));
        Ok(LoadOutcome {
            auth: loaded.auth,
            backend,
            warnings,
        })
    }

    /// Load the stored credentials, `None` if there are none. Warnings (keyring fallback, loose file
    /// mode) are printed to stderr as `codex: warning: ...`, so they are never silent; use
    /// [`AuthStore::load_with_source`] to handle them yourself.
    pub fn load(&self) -> Result<Option<AuthDotJson>, AuthError> {
        let outcome = self.load_with_source()?;
        for w in &outcome.warnings {
            eprintln!("codex: warning: {w}");
        }
        Ok(outcome.auth)
    }

    /// Store `auth`, replacing what was stored. After a successful keyring write, a plaintext
    /// `auth.json` left from earlier is removed.
    pub fn save(&self, auth: &AuthDotJson) -> Result<SaveOutcome, AuthError> {
        match self.mode {
            StoreMode::File => {
                let path = self.file.save(auth)?;
                Ok(SaveOutcome {
                    backend: Backend::File(path),
                    warning: None,
                })
            }
            StoreMode::Keyring => {
                self.keyring_save(auth).map_err(|e| AuthError::Keyring {
                    op: "write",
                    message: e.0,
                })?;
                self.file.delete()?;
                Ok(SaveOutcome {
                    backend: self.keyring_backend(),
                    warning: None,
                })
            }
            StoreMode::Auto => match self.keyring_save(auth) {
                Ok(()) => {
                    self.file.delete()?;
                    Ok(SaveOutcome {
                        backend: self.keyring_backend(),
                        warning: None,
                    })
                }
                Err(e) => {
                    let path = self.file.save(auth)?;
                    let warning = format!(
                        "the OS keyring is unavailable ({e}); credentials were stored in the plaintext file {} \
                         (mode 0600) instead. Set cli_auth_credentials_store = \"keyring\" to make this an error",
                        path.display()
                    );
                    Ok(SaveOutcome {
                        backend: Backend::File(path),
                        warning: Some(warning),
                    })
                }
            },
        }
    }

    fn keyring_save(&self, auth: &AuthDotJson) -> Result<(), crate::keyring_store::KeyringError> {
        let json = auth
            .to_json()
            .map_err(|e| crate::keyring_store::KeyringError(e.to_string()))?;
        self.keyring.set(KEYRING_SERVICE, &self.account(), &json)
    }

    /// A value that changes whenever the stored credentials change: for the file, its inode,
    /// size, mtime and ctime (an atomic rename always brings a new inode, so two saves within one
    /// clock tick still differ); for the keyring, a SHA-256 of the entry. `auto` combines both.
    /// Cheap for the file (one `lstat`); one keyring read otherwise.
    pub fn fingerprint(&self) -> Result<Fingerprint, AuthError> {
        use sha2::Digest;
        use std::os::unix::fs::MetadataExt;
        let mut h = sha2::Sha256::new();
        let file = || -> Result<Option<[i64; 6]>, AuthError> {
            let path = self.file.path();
            match std::fs::symlink_metadata(&path) {
                Ok(m) => Ok(Some([
                    m.dev() as i64,
                    m.ino() as i64,
                    m.size() as i64,
                    m.mtime()
                        .wrapping_mul(1_000_000_000)
                        .wrapping_add(m.mtime_nsec()),
                    m.ctime()
                        .wrapping_mul(1_000_000_000)
                        .wrapping_add(m.ctime_nsec()),
                    i64::from(m.mode()),
                ])),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(AuthError::Stat { path, source }),
            }
        };
        if matches!(self.mode, StoreMode::File | StoreMode::Auto) {
            h.update(format!("file:{:?}", file()?).as_bytes());
        }
        if matches!(self.mode, StoreMode::Keyring | StoreMode::Auto) {
            match self.keyring.get(KEYRING_SERVICE, &self.account()) {
                Ok(Some(bytes)) => {
                    h.update(b"keyring:");
                    h.update(&*bytes);
                }
                Ok(None) => h.update(b"keyring:none"),
                Err(e) if self.mode == StoreMode::Keyring => {
                    return Err(AuthError::Keyring {
                        op: "read",
                        message: e.0,
                    });
                }
                Err(_) => h.update(b"keyring:unavailable"),
            }
        }
        Ok(Fingerprint(h.finalize().into()))
    }

    /// Make sure `CODEX_HOME` exists and is safe (created 0700 when missing), as a save does.
    pub fn ensure_home(&self) -> Result<(), AuthError> {
        self.file.check_home(true).map(|_| ())
    }

    /// Remove stored credentials from every backend this mode may have used.
    pub fn delete_with_warnings(&self) -> Result<DeleteOutcome, AuthError> {
        let mut warnings = Vec::new();
        let mut removed = false;
        match self.mode {
            StoreMode::File => {}
            StoreMode::Keyring => {
                removed |= self
                    .keyring
                    .delete(KEYRING_SERVICE, &self.account())
                    .map_err(|e| AuthError::Keyring {
                        op: "delete",
                        message: e.0,
                    })?;
            }
            StoreMode::Auto => match self.keyring.delete(KEYRING_SERVICE, &self.account()) {
                Ok(r) => removed |= r,
                Err(e) => warnings.push(format!(
                    "the OS keyring is unavailable ({e}); only the file {} was checked",
                    self.file.path().display()
                )),
            },
        }
        removed |= self.file.delete()?;
        Ok(DeleteOutcome { removed, warnings })
    }

    /// Remove stored credentials; `Ok(false)` if there were none. Warnings go to stderr.
    pub fn delete(&self) -> Result<bool, AuthError> {
        let outcome = self.delete_with_warnings()?;
        for w in &outcome.warnings {
            eprintln!("codex: warning: {w}");
        }
        Ok(outcome.removed)
    }
}
