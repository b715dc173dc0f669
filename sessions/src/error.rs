//! Why a session operation failed: one variant per failing operation, naming the path.

use std::io;
use std::path::PathBuf;

/// A session store error. Messages are one lower-case line naming the file or id.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Creating a directory of the store failed.
    #[error("failed to create the session directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    /// A directory of the store (or the file's directory) is unsafe to use.
    #[error("refusing the session directory {path}: {reason}")]
    UnsafeDir { path: PathBuf, reason: String },
    /// Creating a new session file failed.
    #[error("failed to create the session file {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    /// Opening an existing session file failed.
    #[error("failed to open the session file {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    /// Reading a session file or a directory of the store failed.
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    /// Appending to a session file failed.
    #[error("failed to write to the session file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    /// `fsync` of a session file failed.
    #[error("failed to fsync the session file {path}: {source}")]
    Sync { path: PathBuf, source: io::Error },
    /// The session file is a symbolic link (like `auth.json`, never followed).
    #[error("refusing the session file {path}: it is a symbolic link")]
    Symlink { path: PathBuf },
    /// The session file is not a regular file.
    #[error("refusing the session file {path}: not a regular file")]
    NotRegularFile { path: PathBuf },
    /// The session file belongs to another user.
    #[error(
        "refusing the session file {path}: owned by uid {owner}, not by the current user (uid {euid})"
    )]
    ForeignOwner {
        path: PathBuf,
        owner: u32,
        euid: u32,
    },
    /// The session file is writable by group or others.
    #[error(
        "refusing the session file {path}: mode {mode:04o} lets other users change it (fix: chmod 600 {path})"
    )]
    LooseMode { path: PathBuf, mode: u32 },
    /// The session file is larger than the store reads.
    #[error(
        "refusing the session file {path}: {len} bytes, more than the {max} bytes a session may have"
    )]
    TooLarge { path: PathBuf, len: u64, max: u64 },
    /// The first line is not a complete `session_meta` record.
    #[error("{path}: line 1 is not a session_meta record: {reason}")]
    BadHeader { path: PathBuf, reason: String },
    /// No session has this id (or id prefix).
    #[error("no session with id {id} under {root}")]
    NotFound { id: String, root: PathBuf },
    /// The id prefix matches several sessions.
    #[error("session id {id} is ambiguous: it matches {}", candidates.join(", "))]
    Ambiguous { id: String, candidates: Vec<String> },
    /// The id is not a UUID or a prefix of one.
    #[error(
        "invalid session id {id:?}: expected a UUID or a prefix of one (hex digits and dashes)"
    )]
    InvalidId { id: String },
    /// `--last` found nothing.
    #[error("no recorded sessions{scope} under {root}")]
    NoSessions { root: PathBuf, scope: String },
    /// Serializing a record failed.
    #[error("failed to serialize a session record: {0}")]
    Serialize(#[source] serde_json::Error),
}
