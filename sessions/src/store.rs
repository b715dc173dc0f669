//! The store: `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<local time>-<id>.jsonl`.
//!
//! Writing: directories are created 0700 (an existing one must be a real directory of this user,
//! not group/world-writable); a new file is opened `O_CREAT|O_EXCL|O_NOFOLLOW|O_APPEND`, mode 0600
//! (`fchmod`ed, so the umask cannot loosen it). Every record is one `write(2)` of one line on the
//! `O_APPEND` descriptor, so a writer killed at any moment leaves complete lines and at most one
//! torn last line; [`Recorder::sync`] (`fsync`) runs at the end of each turn.
//!
//! Reading: like `auth.json` — a symlink is refused (checked, then opened `O_NOFOLLOW`), and on the
//! opened descriptor: a regular file, owned by the current user, not writable by group or others
//! (refused: a session is replayed to the model as conversation input, so a file others could
//! change is not used), at most [`MAX_SESSION_BYTES`]. A file only *readable* by others (the Codex
//! CLI writes 0644 under the default umask) is used, and [`SessionStore::resume`] sets it to 0600
//! and reports it in [`Transcript::tightened_from`]. Complete lines are used; a torn last line (no newline: the writer was
//! interrupted) and lines that do not parse are skipped and reported in [`Transcript::skipped`].
//! Resuming truncates a torn last line before appending, so the next record starts a line.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::SessionError;
use crate::id::{SessionId, is_id_prefix, is_uuid};
use crate::record::{Message, Role, RolloutItem, RolloutLine, SessionMeta, now_utc};
use crate::sys;

/// The directory below `$CODEX_HOME` (codex's name).
pub const SESSIONS_SUBDIR: &str = "sessions";
/// The largest session file read.
pub const MAX_SESSION_BYTES: u64 = 64 * 1024 * 1024;
/// How much of a file listing reads (header and first prompt).
const SUMMARY_BYTES: u64 = 1024 * 1024;
/// How much of the first prompt a summary keeps (characters).
const SUMMARY_PROMPT_CHARS: usize = 200;

/// The session store of one `CODEX_HOME`.
#[derive(Debug, Clone)]
pub struct SessionStore {
    root: PathBuf,
}

/// What the header of a new session records.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub cwd: String,
    pub model_provider: Option<String>,
    pub model: Option<String>,
    pub originator: String,
    pub cli_version: String,
}

/// An open session file, appended to.
#[derive(Debug)]
pub struct Recorder {
    file: File,
    path: PathBuf,
    id: String,
}

/// A skipped line of a session file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

/// A loaded session.
#[derive(Debug, Clone)]
pub struct Transcript {
    pub path: PathBuf,
    pub meta: SessionMeta,
    /// User inputs and assistant messages, in order.
    pub messages: Vec<Message>,
    /// Lines not used (torn or unparsable), in order.
    pub skipped: Vec<Skipped>,
    /// The file's mode when it was readable by group or others (the Codex CLI writes 0644 under
    /// the default umask); [`SessionStore::resume`] set it to 0600.
    pub tightened_from: Option<u32>,
}

/// One line of `codex sessions list`.
#[derive(Debug, Clone)]
pub struct SessionSummary {
    pub id: String,
    pub path: PathBuf,
    /// When the session started (the header's UTC timestamp).
    pub timestamp: String,
    pub cwd: String,
    /// The first user input (at most 200 characters).
    pub first_prompt: Option<String>,
    /// The file's modification time: when it was last appended to.
    pub modified: SystemTime,
}

/// Sessions found, newest first, and the files that were refused (one message each).
#[derive(Debug, Default)]
pub struct Listing {
    pub sessions: Vec<SessionSummary>,
    pub refused: Vec<String>,
}

impl SessionStore {
    /// The store under `codex_home`.
    pub fn new(codex_home: &Path) -> Self {
        SessionStore {
            root: codex_home.join(SESSIONS_SUBDIR),
        }
    }

    /// `$CODEX_HOME/sessions`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates a new session file and writes its header (fsynced).
    pub fn create(&self, new: NewSession) -> Result<Recorder, SessionError> {
        let id = SessionId::new();
        let local = chrono::Local::now();
        let mut dir = self.root.clone();
        if let Some(home) = dir.parent() {
            // A missing CODEX_HOME is created 0700 (as the credential store does).
            if !home.exists() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(home)
                    .map_err(|source| SessionError::CreateDir {
                        path: home.to_path_buf(),
                        source,
                    })?;
            }
        }
        ensure_private_dir(&dir)?;
        for part in [
            local.format("%Y").to_string(),
            local.format("%m").to_string(),
            local.format("%d").to_string(),
        ] {
            dir.push(part);
            ensure_private_dir(&dir)?;
        }
        let name = format!("rollout-{}-{id}.jsonl", local.format("%Y-%m-%dT%H-%M-%S"));
        let path = dir.join(name);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|source| SessionError::Create {
                path: path.clone(),
                source,
            })?;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|source| SessionError::Create {
                path: path.clone(),
                source,
            })?;
        let mut rec = Recorder {
            file,
            path,
            id: id.to_string(),
        };
        rec.append(RolloutItem::SessionMeta(SessionMeta {
            id: id.to_string(),
            timestamp: now_utc(),
            cwd: new.cwd,
            originator: new.originator,
            cli_version: new.cli_version,
            model_provider: new.model_provider,
            model: new.model,
        }))?;
        rec.sync()?;
        Ok(rec)
    }

    /// Loads a session file (every check of the module docs) without opening it for writing.
    pub fn load(&self, path: &Path) -> Result<Transcript, SessionError> {
        let (_file, bytes, _) = open_checked(path, false)?;
        parse_transcript(path, &bytes).map(|(t, _)| t)
    }

    /// Loads a session to resume it and opens it for appending (a torn last line is cut off
    /// first, and reported in `skipped`).
    pub fn resume(&self, path: &Path) -> Result<(Transcript, Recorder), SessionError> {
        let (file, bytes, loose) = open_checked(path, true)?;
        let (mut transcript, complete_len) = parse_transcript(path, &bytes)?;
        if let Some(mode) = loose {
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(|source| SessionError::Write {
                    path: path.to_path_buf(),
                    source,
                })?;
            transcript.tightened_from = Some(mode);
        }
        if complete_len < bytes.len() {
            file.set_len(complete_len as u64)
                .map_err(|source| SessionError::Write {
                    path: path.to_path_buf(),
                    source,
                })?;
        }
        let id = transcript.meta.id.clone();
        Ok((
            transcript,
            Recorder {
                file,
                path: path.to_path_buf(),
                id,
            },
        ))
    }

    /// Every session file, newest (last modified) first. Files that fail the checks are in
    /// `refused`; symlinked directories are not entered.
    pub fn list(&self) -> Result<Listing, SessionError> {
        let mut listing = Listing::default();
        for path in self.files()? {
            match summarize(&path) {
                Ok(s) => listing.sessions.push(s),
                Err(e) => listing.refused.push(e.to_string()),
            }
        }
        listing.sessions.sort_by(|a, b| {
            b.modified
                .cmp(&a.modified)
                .then_with(|| b.path.cmp(&a.path))
        });
        Ok(listing)
    }

    /// The file of session `id` (a full id or a unique prefix), found by file name. The file is
    /// not opened: [`SessionStore::resume`] applies the checks.
    pub fn find(&self, id: &str) -> Result<PathBuf, SessionError> {
        if !is_id_prefix(id) {
            return Err(SessionError::InvalidId { id: id.to_owned() });
        }
        let want = id.to_ascii_lowercase();
        let mut hits: Vec<(String, PathBuf)> = self
            .files()?
            .into_iter()
            .filter_map(|p| {
                let fid = id_of(&p)?;
                fid.starts_with(&want).then_some((fid, p))
            })
            .collect();
        hits.sort();
        hits.dedup_by(|a, b| a.0 == b.0);
        match hits.len() {
            0 => Err(SessionError::NotFound {
                id: id.to_owned(),
                root: self.root.clone(),
            }),
            1 => Ok(hits.remove(0).1),
            _ => Err(SessionError::Ambiguous {
                id: id.to_owned(),
                candidates: hits.into_iter().map(|(i, _)| i).collect(),
            }),
        }
    }

    /// The most recently modified session (in `cwd`, when given). Refused files are skipped
    /// (the listing's `refused` says why).
    pub fn latest(&self, cwd: Option<&str>) -> Result<(SessionSummary, Vec<String>), SessionError> {
        let listing = self.list()?;
        let found = listing
            .sessions
            .into_iter()
            .find(|s| cwd.is_none_or(|c| s.cwd == c));
        match found {
            Some(s) => Ok((s, listing.refused)),
            None => Err(SessionError::NoSessions {
                root: self.root.clone(),
                scope: cwd
                    .map(|c| format!(" in {c} (--all: any directory)"))
                    .unwrap_or_default(),
            }),
        }
    }

    /// Paths of `rollout-*-<uuid>.jsonl` entries (symlinks included, so that resuming one names
    /// the refusal), in `sessions/YYYY/MM/DD`.
    fn files(&self) -> Result<Vec<PathBuf>, SessionError> {
        let mut out = Vec::new();
        for year in subdirs(&self.root)? {
            for month in subdirs(&year)? {
                for day in subdirs(&month)? {
                    let rd = match fs::read_dir(&day) {
                        Ok(rd) => rd,
                        Err(source) => return Err(SessionError::Read { path: day, source }),
                    };
                    for entry in rd {
                        let entry = entry.map_err(|source| SessionError::Read {
                            path: day.clone(),
                            source,
                        })?;
                        let p = entry.path();
                        if id_of(&p).is_some() {
                            out.push(p);
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

impl Recorder {
    /// The session id.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line (one `write(2)` on the `O_APPEND` descriptor).
    pub fn append(&mut self, item: RolloutItem) -> Result<(), SessionError> {
        let line = RolloutLine {
            timestamp: now_utc(),
            item,
        };
        let mut text = line.to_json().map_err(SessionError::Serialize)?;
        text.push('\n');
        self.file
            .write_all(text.as_bytes())
            .map_err(|source| SessionError::Write {
                path: self.path.clone(),
                source,
            })
    }

    /// `fsync`: the turn's records are on disk.
    pub fn sync(&mut self) -> Result<(), SessionError> {
        self.file.sync_data().map_err(|source| SessionError::Sync {
            path: self.path.clone(),
            source,
        })
    }
}

/// The id in a `rollout-<time>-<uuid>.jsonl` file name.
fn id_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_prefix("rollout-")?.strip_suffix(".jsonl")?;
    let id = stem.get(stem.len().checked_sub(36)?..)?;
    is_uuid(id).then(|| id.to_ascii_lowercase())
}

/// Real subdirectories (not symlinks), sorted; a missing `dir` has none.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, SessionError> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SessionError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| SessionError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Creates `dir` 0700, or checks an existing one: a directory (not a symlink) of this user, not
/// writable by group or others.
fn ensure_private_dir(dir: &Path) -> Result<(), SessionError> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(SessionError::CreateDir {
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    let meta = fs::symlink_metadata(dir).map_err(|source| SessionError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let unsafe_dir = |reason: String| SessionError::UnsafeDir {
        path: dir.to_path_buf(),
        reason,
    };
    if meta.file_type().is_symlink() {
        return Err(unsafe_dir("it is a symbolic link".into()));
    }
    if !meta.is_dir() {
        return Err(unsafe_dir("not a directory".into()));
    }
    let euid = sys::geteuid();
    if meta.uid() != euid {
        return Err(unsafe_dir(format!(
            "owned by uid {}, not by the current user (uid {euid})",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(unsafe_dir(format!(
            "mode {mode:04o} lets other users add or replace session files (fix: chmod 700 {})",
            dir.display()
        )));
    }
    Ok(())
}

/// Opens `path` with the checks of the module docs and reads it (at most `MAX_SESSION_BYTES`).
/// The third value: the mode, when the file is readable (not writable) by group or others.
fn open_checked(path: &Path, write: bool) -> Result<(File, Vec<u8>, Option<u32>), SessionError> {
    open_checked_limit(path, write, MAX_SESSION_BYTES, true)
}

fn open_checked_limit(
    path: &Path,
    write: bool,
    limit: u64,
    whole: bool,
) -> Result<(File, Vec<u8>, Option<u32>), SessionError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(SessionError::Symlink {
                path: path.to_path_buf(),
            });
        }
        _ => {}
    }
    // O_NOFOLLOW closes the race with a symlink swapped in after the check; O_NONBLOCK keeps a
    // FIFO from blocking the open. The fstat below decides on the opened file.
    let mut file = OpenOptions::new()
        .read(true)
        .append(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                SessionError::Symlink {
                    path: path.to_path_buf(),
                }
            } else {
                SessionError::Open {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
    let meta = file.metadata().map_err(|source| SessionError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(SessionError::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    let euid = sys::geteuid();
    if meta.uid() != euid {
        return Err(SessionError::ForeignOwner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            euid,
        });
    }
    let mode = meta.mode() & 0o7777;
    // Writable by others: its content could be forged, and it is replayed to the model as the
    // conversation. Refused. Only readable by others: tightened on resume (see Transcript).
    if mode & 0o022 != 0 {
        return Err(SessionError::LooseMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    let loose = (mode & 0o077 != 0).then_some(mode);
    if whole && meta.len() > limit {
        return Err(SessionError::TooLarge {
            path: path.to_path_buf(),
            len: meta.len(),
            max: limit,
        });
    }
    let mut buf = Vec::with_capacity(meta.len().min(limit) as usize);
    (&mut file)
        .take(limit)
        .read_to_end(&mut buf)
        .map_err(|source| SessionError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    Ok((file, buf, loose))
}

/// Parses the complete lines of `bytes`; returns the transcript and the length of the complete
/// lines (a torn tail starts there).
fn parse_transcript(path: &Path, bytes: &[u8]) -> Result<(Transcript, usize), SessionError> {
    let complete_len = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete_len == 0 {
        return Err(SessionError::BadHeader {
            path: path.to_path_buf(),
            reason: if bytes.is_empty() {
                "the file is empty".into()
            } else {
                "the first line is incomplete".into()
            },
        });
    }
    let mut skipped = Vec::new();
    let mut meta = None;
    let mut messages = Vec::new();
    let mut n = 0;
    for raw in bytes[..complete_len].split(|&b| b == b'\n') {
        n += 1;
        if n > 1 && raw.is_empty() {
            // the split after the final newline, or an empty line
            continue;
        }
        let parsed = std::str::from_utf8(raw)
            .map_err(|e| format!("not UTF-8: {e}"))
            .and_then(|s| RolloutLine::parse(s).map_err(|e| format!("not a record: {e}")));
        match (n, parsed) {
            (
                1,
                Ok(RolloutLine {
                    item: RolloutItem::SessionMeta(m),
                    ..
                }),
            ) => meta = Some(m),
            (1, Ok(_)) => {
                return Err(SessionError::BadHeader {
                    path: path.to_path_buf(),
                    reason: "another record type".into(),
                });
            }
            (1, Err(reason)) => {
                return Err(SessionError::BadHeader {
                    path: path.to_path_buf(),
                    reason,
                });
            }
            (_, Ok(line)) => {
                if let Some(m) = Message::from_item(&line.item) {
                    messages.push(m);
                }
            }
            (line, Err(reason)) => skipped.push(Skipped { line, reason }),
        }
    }
    if complete_len < bytes.len() {
        skipped.push(Skipped {
            line: bytes[..complete_len]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1,
            reason: format!(
                "torn: {} bytes without a newline (the writer was interrupted)",
                bytes.len() - complete_len
            ),
        });
    }
    let Some(meta) = meta else {
        return Err(SessionError::BadHeader {
            path: path.to_path_buf(),
            reason: "no session_meta record".into(),
        });
    };
    // The id is printed (`sessions list`, the resume hint meant to be pasted): it must be the
    // UUID of the file's own name, nothing else (outside review r11 F2: an id carrying an
    // escape sequence reached the terminal raw).
    if !is_uuid(&meta.id) || id_of(path).is_some_and(|named| !named.eq_ignore_ascii_case(&meta.id))
    {
        return Err(SessionError::BadHeader {
            path: path.to_path_buf(),
            reason: "its id is not the UUID in its file name".into(),
        });
    }
    Ok((
        Transcript {
            path: path.to_path_buf(),
            meta,
            messages,
            skipped,
            tightened_from: None,
        },
        complete_len,
    ))
}

/// The header and first prompt of a session file (reads at most 1 MiB).
fn summarize(path: &Path) -> Result<SessionSummary, SessionError> {
    let (file, bytes, _) = open_checked_limit(path, false, SUMMARY_BYTES, false)?;
    let modified = file
        .metadata()
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let (t, _) = parse_transcript(path, &bytes)?;
    let first_prompt = t
        .messages
        .iter()
        .find(|m| m.role == Role::User)
        .map(|m| m.text.chars().take(SUMMARY_PROMPT_CHARS).collect());
    Ok(SessionSummary {
        id: t.meta.id.clone(),
        path: path.to_path_buf(),
        timestamp: t.meta.timestamp.clone(),
        cwd: t.meta.cwd.clone(),
        first_prompt,
        modified,
    })
}
