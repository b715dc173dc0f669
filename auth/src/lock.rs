//! [`StoreLock`]: the cross-process lock that serializes writers of the stored credentials.
//!
//! `$CODEX_HOME/auth.json.lock`, opened `O_RDWR|O_CREAT|O_NOFOLLOW|O_CLOEXEC` mode 0600, locked
//! with `flock(LOCK_EX)`. The lock belongs to the open file description, so it is released when
//! the [`StoreLock`] is dropped or the process dies (a crashed holder never wedges the others).
//! The file is never removed: removing a lock file lets two processes lock two different inodes.
//! It holds no data. The lock is advisory: a writer that does not take it (an older codex, an
//! editor) is detected by the auth manager's fingerprint check instead (see `manager`).
//! Used for every store mode (the keyring has no lock of its own).

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::sys;

/// The lock file's name inside `CODEX_HOME`.
pub const LOCK_FILE_NAME: &str = "auth.json.lock";
/// How long [`StoreLock::acquire`] waits by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open the credential lock {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("flock on the credential lock {path} failed: {source}")]
    Flock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another codex process has held the credential lock {path} for more than {secs}s; try again"
    )]
    Timeout { path: PathBuf, secs: u64 },
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

fn open(path: &Path) -> Result<File, LockError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| LockError::Open {
            path: path.to_owned(),
            source,
        })
}

impl StoreLock {
    /// The lock path for `codex_home`.
    pub fn path_for(codex_home: &Path) -> PathBuf {
        codex_home.join(LOCK_FILE_NAME)
    }

    /// Try once.
    pub fn try_acquire(path: &Path) -> Result<Option<Self>, LockError> {
        let file = open(path)?;
        match sys::try_flock_exclusive(file.as_fd()) {
            Ok(true) => Ok(Some(Self { _file: file })),
            Ok(false) => Ok(None),
            Err(source) => Err(LockError::Flock {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Wait up to `timeout` without blocking the async runtime.
    pub async fn acquire(path: &Path, timeout: Duration) -> Result<Self, LockError> {
        let start = Instant::now();
        loop {
            if let Some(l) = Self::try_acquire(path)? {
                return Ok(l);
            }
            if start.elapsed() >= timeout {
                return Err(LockError::Timeout {
                    path: path.to_owned(),
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Wait up to `timeout`, blocking the thread (synchronous callers).
    pub fn acquire_blocking(path: &Path, timeout: Duration) -> Result<Self, LockError> {
        let start = Instant::now();
        loop {
            if let Some(l) = Self::try_acquire(path)? {
                return Ok(l);
            }
            if start.elapsed() >= timeout {
                return Err(LockError::Timeout {
                    path: path.to_owned(),
                    secs: timeout.as_secs(),
                });
            }
            std::thread::sleep(POLL);
        }
    }
}
