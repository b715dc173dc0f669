//! [`AuthError`]: one variant per failing operation, naming the path or backend.
//!
//! No variant ever carries credential bytes: parse errors keep only the position and the category
//! (a `serde_json` message can quote the offending value), keyring errors keep the platform's
//! message, never the stored blob.

use std::io;
use std::path::PathBuf;

/// Why a credential store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("failed to stat {path}: {source}")]
    Stat { path: PathBuf, source: io::Error },
    #[error("CODEX_HOME {path} is not a directory")]
    HomeNotDirectory { path: PathBuf },
    #[error("failed to create CODEX_HOME {path}: {source}")]
    CreateHome { path: PathBuf, source: io::Error },
    #[error("refusing to use {path} for credentials: {reason}")]
    UnsafeHome { path: PathBuf, reason: String },
    #[error(
        "refusing {path}: it is a symbolic link (credentials are never read or written through a symlink)"
    )]
    Symlink { path: PathBuf },
    #[error("refusing {path}: not a regular file")]
    NotRegularFile { path: PathBuf },
    #[error("refusing {path}: owned by uid {owner}, not by the current user (uid {euid})")]
    ForeignOwner {
        path: PathBuf,
        owner: u32,
        euid: u32,
    },
    #[error("failed to open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "refusing {path}: {len} bytes is larger than the {max}-byte limit for a credential file"
    )]
    TooLarge { path: PathBuf, len: u64, max: u64 },
    #[error("failed to parse {path}: {category} at line {line} column {column}")]
    Parse {
        path: String,
        category: &'static str,
        line: usize,
        column: usize,
    },
    #[error("failed to encode credentials as JSON: {category}")]
    Encode { category: &'static str },
    #[error("failed to create temporary file {path}: {source}")]
    CreateTemp { path: PathBuf, source: io::Error },
    #[error("failed to write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("failed to set mode 0600 on {path}: {source}")]
    Chmod { path: PathBuf, source: io::Error },
    #[error("failed to fsync {path}: {source}")]
    Sync { path: PathBuf, source: io::Error },
    #[error("failed to rename {from} to {to}: {source}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    #[error("failed to remove {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("OS keyring {op} failed: {message}")]
    Keyring { op: &'static str, message: String },
}

/// The category of a JSON error, without its message (which may quote secret input).
pub(crate) fn json_category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "i/o error",
        serde_json::error::Category::Syntax => "invalid JSON syntax",
        serde_json::error::Category::Data => "unexpected field type or value",
        serde_json::error::Category::Eof => "unexpected end of input",
    }
}
