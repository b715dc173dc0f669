//! `codex-sessions`: the session store of `codex exec` — one JSON Lines "rollout" file per
//! session under `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<local time>-<uuid>.jsonl`, in the
//! Codex CLI's format (a `session_meta` header, `response_item` messages, `event_msg` token counts),
//! so sessions written by either tool list and resume in the other.
//!
//! - [`SessionStore::create`] starts a file (directories 0700, file 0600, no symlinks) and
//!   returns a [`Recorder`] that appends one line per record and `fsync`s at turn end.
//! - [`SessionStore::list`], [`SessionStore::find`] (full id or unique prefix) and
//!   [`SessionStore::latest`] locate sessions; [`SessionStore::resume`] loads one (complete lines
//!   only, a torn last line skipped and reported) and reopens it for appending.
//! - Files are checked like `auth.json`: symlinks, other owners and group/other mode bits are
//!   refused, with the path in the error.
//!
//! A session file holds what the user typed and what the model answered, never a credential or
//! an HTTP header (the caller records messages and usage only). Unix only. Not thread-safe per
//! file: one writer per session (two processes resuming the same session append interleaved
//! whole lines).
//!
//! All `unsafe` code is in the private `sys` module (`geteuid`).
#![cfg(unix)]

mod error;
mod id;
mod record;
mod store;
mod sys;

pub use error::SessionError;
pub use id::{SessionId, is_id_prefix, is_uuid};
pub use record::{
    ContentItem, EventMsg, Message, ResponseItem, Role, RolloutItem, RolloutLine, SessionMeta,
    TokenInfo, TokenUsage, now_utc,
};
pub use store::{
    Listing, MAX_SESSION_BYTES, NewSession, Recorder, SESSIONS_SUBDIR, SessionStore,
    SessionSummary, Skipped, Transcript,
};

#[cfg(test)]
mod tests;
