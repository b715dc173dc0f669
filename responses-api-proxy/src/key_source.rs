//! Where the key comes from: stdin (the default), `--api-key-file FILE`, or the systemd
//! credential `--api-key-credential NAME`. Every error names the source; none contains a byte of
//! the key.

use std::fmt;
use std::io::IsTerminal;
use std::path::PathBuf;

use std::sync::Arc;

use secure_main::FdReader;

use crate::cli::AccessArgs;
use crate::key::{ApiKey, KEY_PREFIX, KeyError, MAX_HEADER_LEN};
use crate::key_pages::KeyPages;

/// One of the three sources, from the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Standard input (the default).
    Stdin,
    /// `--api-key-file FILE`.
    File(PathBuf),
    /// `--api-key-credential NAME` (`$CREDENTIALS_DIRECTORY/NAME`).
    Credential(String),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Stdin => write!(f, "stdin"),
            KeySource::File(p) => write!(f, "--api-key-file {}", p.display()),
            KeySource::Credential(n) => write!(f, "--api-key-credential {n}"),
        }
    }
}

/// Reading the key failed: from which source, and why.
#[derive(Debug, thiserror::Error)]
pub enum KeySourceError {
    /// The file or credential could not be located or opened (or failed its ownership/mode checks).
    #[error("{source_name}: {error}")]
    Open {
        source_name: KeySource,
        error: codex_privsep::CredentialError,
    },
    /// Stdin is a terminal: a key typed there would be echoed on the screen (and into the
    /// terminal's scrollback and any session recording).
    #[error(
        "stdin is a terminal: a key typed there is echoed; {}",
        crate::key::HOW_TO_PROVIDE
    )]
    Terminal,
    /// The file holds more than the key on one line: an environment file, a second key, notes.
    /// Refused rather than guessed at (review F7); the extra bytes are never shown.
    #[error(
        "{source_name}: holds more than the API key: the file must contain the key on one line \
         (a line ending is allowed) and nothing after it"
    )]
    ExtraContent { source_name: KeySource },
    /// Reading the rest of the file failed.
    #[error("{source_name}: failed to read after the key: {error}")]
    Trailing {
        source_name: KeySource,
        error: std::io::Error,
    },
    /// Reading or checking the key itself failed.
    #[error("{}", read_message(.source_name, .error))]
    Read {
        source_name: KeySource,
        error: KeyError,
    },
}

/// Stdin keeps [`KeyError`]'s wording (it tells how to pipe the key in); a file or credential is
/// named first and described as a file.
fn read_message(src: &KeySource, e: &KeyError) -> String {
    if *src == KeySource::Stdin {
        return e.to_string();
    }
    format!("{src}: {}", key_problem(e))
}

/// What is wrong with a key, without naming where it came from (and never a byte of it).
pub fn key_problem(e: &KeyError) -> String {
    match e {
        KeyError::Empty => "holds no API key".to_string(),
        KeyError::TooLong => format!(
            "the API key is too long: at most {} characters are accepted",
            MAX_HEADER_LEN - KEY_PREFIX.len()
        ),
        KeyError::ForbiddenByte { offset } => format!(
            "the API key contains a character other than A-Z, a-z, 0-9, '_' and '-' (at offset {offset})"
        ),
        KeyError::Read { source } => format!("failed to read the API key: {source}"),
        KeyError::TrailingContent => "holds more than the API key: the key must be on one line \
             (a line ending is allowed) and nothing after it"
            .to_string(),
        other => other.to_string(),
    }
}

impl KeySource {
    /// The source the flags name.
    pub fn from_args(a: &AccessArgs) -> Self {
        match (&a.api_key_file, &a.api_key_credential) {
            (Some(p), _) => KeySource::File(p.clone()),
            (None, Some(n)) => KeySource::Credential(n.clone()),
            (None, None) => KeySource::Stdin,
        }
    }

    /// Reads `Bearer <key>` into a page of `pages` (locked at start-up). A file or credential
    /// is opened with codex-privsep's checks (regular file, owned by root or us, no group/other
    /// bits, no symlink, no FIFO) and closed right after the read.
    pub fn read(&self, pages: &Arc<KeyPages>) -> Result<ApiKey, KeySourceError> {
        let read_err = |error| KeySourceError::Read {
            source_name: self.clone(),
            error,
        };
        let path = match self {
            KeySource::Stdin => {
                if std::io::stdin().is_terminal() {
                    return Err(KeySourceError::Terminal);
                }
                return pages.load(&mut FdReader::stdin()).map_err(read_err);
            }
            KeySource::File(_) | KeySource::Credential(_) => self.path()?,
        };
        let file = codex_privsep::open_key_file(&path).map_err(|error| KeySourceError::Open {
            source_name: self.clone(),
            error,
        })?;
        self.read_opened(&file, pages)
    }

    /// The file to open: `--api-key-file`'s path or `$CREDENTIALS_DIRECTORY/NAME`; `None` for
    /// stdin.
    pub fn file_path(&self) -> Result<Option<PathBuf>, KeySourceError> {
        match self {
            KeySource::Stdin => Ok(None),
            _ => self.path().map(Some),
        }
    }

    fn path(&self) -> Result<PathBuf, KeySourceError> {
        match self {
            KeySource::Stdin => Ok(PathBuf::from("/dev/stdin")),
            KeySource::File(p) => Ok(p.clone()),
            KeySource::Credential(name) => {
                codex_privsep::systemd_credential(name).map_err(|error| KeySourceError::Open {
                    source_name: self.clone(),
                    error,
                })
            }
        }
    }

    /// Reads the key from a file already opened with the key-file checks (at start-up, or by
    /// the key opener on SIGHUP), then checks that nothing follows it.
    pub fn read_opened(
        &self,
        file: &std::fs::File,
        pages: &Arc<KeyPages>,
    ) -> Result<ApiKey, KeySourceError> {
        let key = pages
            .load(&mut FdReader::new(std::os::fd::AsFd::as_fd(file)))
            .map_err(|error| KeySourceError::Read {
                source_name: self.clone(),
                error,
            })?;
        // `key` drops (its page wiped) if the check fails.
        self.check_nothing_after(file, key.key_len())?;
        Ok(key)
    }

    /// A key file holds the key and at most line endings after it. Read with `pread` from the
    /// key's end (the reader may have consumed and wiped more than the line); the bytes read
    /// are wiped, never shown.
    fn check_nothing_after(
        &self,
        file: &std::fs::File,
        key_len: usize,
    ) -> Result<(), KeySourceError> {
        use std::os::unix::fs::FileExt;
        let mut buf = zeroize::Zeroizing::new([0u8; 256]);
        let mut off = key_len as u64;
        loop {
            let n = file
                .read_at(&mut buf[..], off)
                .map_err(|error| KeySourceError::Trailing {
                    source_name: self.clone(),
                    error,
                })?;
            if n == 0 {
                return Ok(());
            }
            if buf[..n].iter().any(|b| !matches!(b, b'\r' | b'\n')) {
                return Err(KeySourceError::ExtraContent {
                    source_name: self.clone(),
                });
            }
            off += n as u64;
        }
    }
}
