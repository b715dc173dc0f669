//! `$CODEX_HOME/auth.json`: mode 0600, written atomically, never through a symlink.
//!
//! Write protocol: a temporary file in `$CODEX_HOME/.auth-tmp/` (0700, same filesystem, so the
//! rename stays atomic; its own directory so that the sandbox can deny reading it as a whole:
//! a killed writer's leftover holds the credentials too), opened
//! `O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC` with mode 0600 (then `fchmod 0600`, so the umask
//! cannot change it), written, `fsync`ed, `rename`d over `auth.json`, then the directory is
//! `fsync`ed. A writer killed at any point leaves either the old or the new `auth.json`, never a
//! truncated one (a stale `.auth-tmp/.auth.json.tmp.*` file, mode 0600, may remain).
//!
//! Decisions:
//! - `auth.json` itself must not be a symlink (read, write and delete refuse it).
//! - `CODEX_HOME` may be a symlink (dotfile managers do this), but the directory it resolves to
//!   must be owned by the current user (or root) and not writable by group or others: whoever
//!   can write that directory can replace `auth.json` and plant their own credentials.
//! - A missing `CODEX_HOME` is created with mode 0700 when credentials are saved.
//! - `auth.json` owned by another user is refused (planted credentials); one with group/other
//!   permission bits is read with a warning; the next save rewrites it 0600.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zeroize::Zeroizing;

use crate::{AuthDotJson, AuthError, sys};

/// The file name inside `CODEX_HOME`.
pub const AUTH_FILE_NAME: &str = "auth.json";
/// Largest `auth.json` accepted (tokens are a few KiB).
pub const MAX_AUTH_FILE_BYTES: u64 = 4 * 1024 * 1024;
const TEMP_PREFIX: &str = ".auth.json.tmp.";
/// The directory of the temporary files, inside `CODEX_HOME` (the sandbox's deny-read defaults
/// name it: `sandbox_policy::CREDENTIAL_PATHS`).
pub const TEMP_DIR_NAME: &str = ".auth-tmp";

/// The file backend.
#[derive(Debug, Clone)]
pub struct FileStore {
    home: PathBuf,
    /// `auth.json`, or another credential file of the same rules (`.credentials.json` of MCP).
    file_name: &'static str,
}

/// What [`FileStore::load_bytes`] read, with warnings the user must see.
#[derive(Debug)]
pub struct BytesLoad {
    /// The file's bytes; `None` when there is no file.
    pub bytes: Option<Zeroizing<Vec<u8>>>,
    pub warnings: Vec<String>,
}

/// What a read found, with warnings the user must see.
#[derive(Debug)]
pub struct FileLoad {
    pub auth: Option<AuthDotJson>,
    pub warnings: Vec<String>,
}

impl FileStore {
    pub fn new(home: PathBuf) -> Self {
        Self::with_file_name(home, AUTH_FILE_NAME)
    }

    /// The same protocol for another credential file in `home` (a plain file name, no `/`).
    pub fn with_file_name(home: PathBuf, file_name: &'static str) -> Self {
        Self { home, file_name }
    }

    /// `$CODEX_HOME/auth.json` (or the file name given to [`FileStore::with_file_name`]).
    pub fn path(&self) -> PathBuf {
        self.home.join(self.file_name)
    }

    /// Check `CODEX_HOME`. `Ok(false)` when it does not exist (and `create` is false).
    pub fn check_home(&self, create: bool) -> Result<bool, AuthError> {
        let meta = match fs::metadata(&self.home) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&self.home)
                    .map_err(|source| AuthError::CreateHome {
                        path: self.home.clone(),
                        source,
                    })?;
                fs::metadata(&self.home).map_err(|source| AuthError::Stat {
                    path: self.home.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(AuthError::Stat {
                    path: self.home.clone(),
                    source,
                });
            }
        };
        if !meta.is_dir() {
            return Err(AuthError::HomeNotDirectory {
                path: self.home.clone(),
            });
        }
        let euid = sys::geteuid();
        if meta.uid() != euid && meta.uid() != 0 {
            return Err(AuthError::UnsafeHome {
                path: self.home.clone(),
                reason: format!(
                    "directory owned by uid {}, not by the current user (uid {euid})",
                    meta.uid()
                ),
            });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(AuthError::UnsafeHome {
                path: self.home.clone(),
                reason: format!(
                    "directory mode {mode:04o} lets other users replace auth.json (fix: chmod go-w {})",
                    self.home.display()
                ),
            });
        }
        Ok(true)
    }

    /// Check the target name before opening: not a symlink, a regular file. `Ok(false)` if absent.
    fn check_target(path: &Path) -> Result<bool, AuthError> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => Err(AuthError::Symlink {
                path: path.to_owned(),
            }),
            Ok(m) if !m.file_type().is_file() => Err(AuthError::NotRegularFile {
                path: path.to_owned(),
            }),
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(AuthError::Stat {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Read `auth.json`. `auth: None` when there is none.
    pub fn load(&self) -> Result<FileLoad, AuthError> {
        let loaded = self.load_bytes()?;
        let auth = match loaded.bytes {
            Some(buf) => Some(AuthDotJson::from_json(
                &buf,
                &self.path().display().to_string(),
            )?),
            None => None,
        };
        Ok(FileLoad {
            auth,
            warnings: loaded.warnings,
        })
    }

    /// Read the file's bytes with every check of [`FileStore::load`] (home, symlink, owner,
    /// mode, size); `bytes: None` when there is no file.
    pub fn load_bytes(&self) -> Result<BytesLoad, AuthError> {
        let mut warnings = Vec::new();
        if !self.check_home(false)? {
            return Ok(BytesLoad {
                bytes: None,
                warnings,
            });
        }
        let path = self.path();
        if !Self::check_target(&path)? {
            return Ok(BytesLoad {
                bytes: None,
                warnings,
            });
        }
        // O_NOFOLLOW closes the race with a symlink swapped in after the check; O_NONBLOCK keeps a
        // FIFO swapped in from blocking the open. The fstat below decides on the opened file.
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(AuthError::Symlink { path });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(BytesLoad {
                    bytes: None,
                    warnings,
                });
            }
            Err(source) => return Err(AuthError::Open { path, source }),
        };
        let meta = file.metadata().map_err(|source| AuthError::Stat {
            path: path.clone(),
            source,
        })?;
        if !meta.file_type().is_file() {
            return Err(AuthError::NotRegularFile { path });
        }
        let euid = sys::geteuid();
        if meta.uid() != euid {
            return Err(AuthError::ForeignOwner {
                path,
                owner: meta.uid(),
                euid,
            });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            warnings.push(format!(
                "{} has mode {mode:04o}: other users may be able to read your credentials (fix: chmod 600 {0}, \
                 or log in again to rewrite it with mode 0600)",
                path.display()
            ));
        }
        if meta.len() > MAX_AUTH_FILE_BYTES {
            return Err(AuthError::TooLarge {
                path,
                len: meta.len(),
                max: MAX_AUTH_FILE_BYTES,
            });
        }
        // One allocation of the final size (+1 to see EOF without growing).
        let mut buf = Zeroizing::new(Vec::with_capacity(meta.len() as usize + 1));
        (&mut file)
            .take(MAX_AUTH_FILE_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|source| AuthError::Read {
                path: path.clone(),
                source,
            })?;
        if buf.len() as u64 > MAX_AUTH_FILE_BYTES {
            return Err(AuthError::TooLarge {
                path,
                len: buf.len() as u64,
                max: MAX_AUTH_FILE_BYTES,
            });
        }
        Ok(BytesLoad {
            bytes: Some(buf),
            warnings,
        })
    }

    /// Write `auth.json` atomically with mode 0600.
    pub fn save(&self, auth: &AuthDotJson) -> Result<PathBuf, AuthError> {
        let json = auth.to_json()?;
        self.save_bytes(&json)
    }

    /// Write `bytes` as the file, atomically with mode 0600 (the protocol in the module docs).
    pub fn save_bytes(&self, bytes: &[u8]) -> Result<PathBuf, AuthError> {
        self.check_home(true)?;
        let path = self.path();
        Self::check_target(&path)?;
        let (tmp_path, mut tmp) = self.create_temp()?;
        let result = (|| {
            tmp.write_all(bytes).map_err(|source| AuthError::Write {
                path: tmp_path.clone(),
                source,
            })?;
            tmp.sync_all().map_err(|source| AuthError::Sync {
                path: tmp_path.clone(),
                source,
            })?;
            // Re-check just before the rename: refusing a symlink that appeared meanwhile. (rename
            // itself would replace a symlink, not follow it, so no file elsewhere is written.)
            Self::check_target(&path)?;
            fs::rename(&tmp_path, &path).map_err(|source| AuthError::Rename {
                from: tmp_path.clone(),
                to: path.clone(),
                source,
            })
        })();
        if let Some(dir) = tmp_path.parent() {
            // leave no empty directory behind; another writer's file keeps it (ENOTEMPTY), and
            // a writer that loses its directory to this rmdir retries (create_temp)
            if result.is_err() {
                let _ = fs::remove_file(&tmp_path);
            }
            let _ = fs::remove_dir(dir);
        }
        result?;
        self.sync_home()?;
        Ok(path)
    }

    /// `$CODEX_HOME/.auth-tmp`, created 0700; refused unless a real directory of ours.
    fn temp_dir(&self) -> Result<PathBuf, AuthError> {
        let dir = self.home.join(TEMP_DIR_NAME);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(AuthError::CreateTemp { path: dir, source }),
        }
        let meta = fs::symlink_metadata(&dir).map_err(|source| AuthError::CreateTemp {
            path: dir.clone(),
            source,
        })?;
        let ours = meta.uid() == sys::geteuid();
        if !meta.is_dir() || !ours || meta.mode() & 0o077 != 0 {
            return Err(AuthError::CreateTemp {
                path: dir,
                source: io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "not a directory of this user with mode 0700 (a symlink or planted directory)",
                ),
            });
        }
        Ok(dir)
    }

    fn create_temp(&self) -> Result<(PathBuf, File), AuthError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut attempt = 0;
        loop {
            let dir = self.temp_dir()?;
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let prefix = if self.file_name == AUTH_FILE_NAME {
                TEMP_PREFIX.to_string()
            } else {
                format!(".{}.tmp.", self.file_name.trim_start_matches('.'))
            };
            let tmp_path = dir.join(format!("{prefix}{}.{n}.{nanos}", std::process::id()));
            match OpenOptions::new()
                .write(true)
                .create_new(true) // O_CREAT|O_EXCL
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp_path)
            {
                Ok(f) => {
                    // The umask can only remove bits from 0600; set it exactly anyway.
                    if let Err(source) = f.set_permissions(fs::Permissions::from_mode(0o600)) {
                        let _ = fs::remove_file(&tmp_path);
                        return Err(AuthError::Chmod {
                            path: tmp_path,
                            source,
                        });
                    }
                    return Ok((tmp_path, f));
                }
                // NotFound: another writer removed the empty directory in between
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::AlreadyExists | io::ErrorKind::NotFound
                    ) && attempt < 16 =>
                {
                    attempt += 1
                }
                Err(source) => {
                    return Err(AuthError::CreateTemp {
                        path: tmp_path,
                        source,
                    });
                }
            }
        }
    }

    fn sync_home(&self) -> Result<(), AuthError> {
        let dir = File::open(&self.home).map_err(|source| AuthError::Open {
            path: self.home.clone(),
            source,
        })?;
        dir.sync_all().map_err(|source| AuthError::Sync {
            path: self.home.clone(),
            source,
        })
    }

    /// Remove `auth.json`. `Ok(false)` when there was none. A symlink is refused, not removed.
    pub fn delete(&self) -> Result<bool, AuthError> {
        match fs::metadata(&self.home) {
            Ok(m) if !m.is_dir() => {
                return Err(AuthError::HomeNotDirectory {
                    path: self.home.clone(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(AuthError::Stat {
                    path: self.home.clone(),
                    source,
                });
            }
        }
        let path = self.path();
        if !Self::check_target(&path)? {
            return Ok(false);
        }
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(AuthError::Remove { path, source }),
        }
        self.sync_home()?;
        Ok(true)
    }
}
