//! Name guard: no `.git`, `.codex` or `.agents` is created anywhere, and nothing below an
//! existing one is opened for writing, renamed, linked or created (issue 12, item 3: nested
//! repositories, submodules, `git init` below a root).
//!
//! Landlock grants by location, not by name, so every call that creates a name or opens a file
//! for writing is mediated, in one hop:
//! 1. the notifying filter ([`crate::unix_connect`]'s, the same listener) turns `open`/`openat`
//!    with a write, create or truncate flag, `creat`, `mkdir(at)`, `mknod(at)`, `symlink(at)`,
//!    `link(at)`, `rename(at/at2)` into user notifications; `openat2` fails with `ENOSYS` (its
//!    flags live in memory seccomp cannot read; libc's `open` does not use it);
//! 2. the **creator** receives them on the listener itself. It copies the path strings **once**,
//!    turns the child's `dirfd` (or cwd) into a descriptor of its own (`pidfd_getfd`,
//!    `/proc/<tid>/cwd`), performs the call and answers with 0, an errno or the opened
//!    descriptor, which it installs in the child (`SECCOMP_ADDFD_FLAG_SEND`). The kernel never
//!    re-reads the child's memory (no `SECCOMP_USER_NOTIF_FLAG_CONTINUE`): nothing is raceable.
//!    The other notifications of the listener (`connect`, `listen`, metadata calls) it forwards
//!    to the launcher with a pidfd of the thread ([`crate::unix_connect::forward`]), which
//!    decides and answers them as it does without the guard.
//!
//! One hop instead of three: the launcher used to receive every notification and pass the
//! file calls to the creator and back (four wake-ups per call, two of them across CPUs under
//! load); now the kernel's synchronous hand-off (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`) runs the
//! creator and then the child on the same CPU (`sandbox-linux/README.md`, benchmark).
//!
//! The creator is a process of the sandbox, forked by its init after the mount namespace,
//! `no_new_privs` and the init's Landlock domain, before the seccomp filters: it shares that
//! domain, and the command's is nested below it, so the command cannot signal or ptrace it
//! (Landlock's scopes and ptrace rule) while the creator may read the command's memory. It drops
//! its capabilities when it is not root, is not dumpable, and keeps no descriptor but its
//! channels and the listener. It resolves every path exactly as the
//! command's own call would (same root, same mounts, same Landlock rules, the child's cwd or
//! dirfd); the only differences are the checks below, made on the **resolved** location (the
//! path `/proc/self/fd/N` reads back in the sandbox's mount namespace), never on the string:
//! - the final name of what is created or renamed is not a protected name (ASCII case ignored);
//! - the directory it is created in, and any file opened for writing, has no protected
//!   component in its resolved path;
//! - symlinks in the final component of an `O_CREAT` open are followed by the creator one at a
//!   time (each hop checked), so a dangling link cannot create `.git` elsewhere;
//! - `/proc/self/fd/N`, `/dev/fd/N`, `/dev/std{in,out,err}` are re-opened from the child's own
//!   descriptor; other `/proc` files are refused for writing (they would be the creator's).
//!
//! The creator's umask is 0; the child's (`/proc/<tid>/status`) is applied to the mode of what
//! it creates. Deviation: where the parent directory has a default ACL the kernel would ignore
//! the umask; here it still narrows the mode (never widens it).
//!
//! Not mediated (no name is created and nothing below a protected directory gains content):
//! `unlink`, `rmdir`, `truncate(path)`, metadata calls inside the roots, `bind` of a unix socket.

mod creator;
mod supervisor;
pub(crate) mod sys;

use std::os::fd::OwnedFd;

pub use creator::{Creator, spawn_creator};
pub use supervisor::Answer;

/// Whether the creator handles system call `nr` itself (a file call of the guard) rather than
/// forwarding it to the launcher (`connect`, `listen`, the metadata calls).
pub fn is_guarded(nr: i64) -> bool {
    nr != libc::SYS_connect && nr != libc::SYS_listen && !crate::meta_guard::is_mediated(nr)
}

/// Names nothing in the sandbox may create, nor write below: repositories and agent
/// configurations whose contents a tool run later, outside the sandbox, executes — git's hooks
/// and fsmonitor (`.git`), Mercurial's `[hooks]` in `.hg/hgrc` (outside review r10 F-S1: a
/// `pre-status` hook planted in `.hg` ran at the user's next `hg status`) and Sapling's in
/// `.sl/config` (r11), Jujutsu's repository
/// config (`.jj/repo/config.toml`: fix tools, merge tools, aliases run commands), codex's and
/// other agents' project configuration (`.codex`, `.agents`, `.claude`: hooks and MCP servers
/// the agent starts).
pub const PROTECTED_NAMES: &[&str] = &[".git", ".codex", ".agents", ".hg", ".sl", ".jj", ".claude"];

/// Errno of a refused call (the one Landlock gives).
pub const DENIED_ERRNO: i32 = libc::EACCES;

/// Number of the creator's threads, each with its channel to the launcher: a call that blocks
/// (a FIFO opened for writing with no reader yet, a forwarded `connect`) holds one; the others
/// keep serving.
pub const CHANNELS: usize = 4;

/// Whether `name` (one path component) is protected: one of [`PROTECTED_NAMES`], or a name
/// ending in `.git` (the usual name of a bare repository: a push to it runs its hooks), ASCII
/// case ignored.
pub fn is_protected(name: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    PROTECTED_NAMES
        .iter()
        .any(|p| p.as_bytes() == lower.as_slice())
        || (lower.len() > 4 && lower.ends_with(b".git"))
}

/// Whether a *new* name may not be created: a protected name, or `HEAD`, without which git does
/// not take a directory for a repository (round-8 review F2: a repository planted under another
/// name, `HEAD` + `objects/` + `refs/` + `config`, ran its fsmonitor at the user's `git status`).
pub fn is_protected_new_name(name: &[u8]) -> bool {
    is_protected(name) || name.eq_ignore_ascii_case(b"HEAD")
}

/// Whether any component of `path` is protected.
pub fn has_protected_component(path: &[u8]) -> bool {
    path.split(|&b| b == b'/').any(is_protected)
}

/// Whether the directory `dir` is, or was, one git takes for a repository: it holds a `HEAD`
/// (file or link). Git's own test (`is_git_directory`) also wants `objects/` and `refs/` (or a
/// `commondir`), but the command can remove those (`unlink` and `rmdir` are not mediated) and
/// then write where the test no longer sees a repository, and restore them afterwards (outside
/// review r23 F1: refs saved, `refs/` removed, a `pre-receive` hook and `core.fsmonitor`
/// planted, `refs/` made again; the user's next push ran the hook). `HEAD` alone cannot be
/// made by the command (a new `HEAD` is refused), so a directory with one stays protected
/// until its `HEAD` is gone, and then git no longer takes it for a repository. Links are not
/// followed. A lookalike with a file named `HEAD` is protected too (the price: rare outside
/// repositories).
fn is_git_directory(dir: &std::path::Path) -> bool {
    std::fs::symlink_metadata(dir.join("HEAD"))
        .is_ok_and(|m| m.file_type().is_file() || m.file_type().is_symlink())
}

/// Whether `path` (a resolved location) is a repository by its contents or lies below one,
/// whatever its name (outside review r21 F1: a bare repository `/tmp/x/remote` under a
/// writable root had a `pre-receive` hook planted, which the user's next `git push` ran). Each
/// directory from `path` up to `/` is looked at when a call is made, not scanned at set-up: a
/// repository made during the run by someone else is covered too, and a start costs nothing.
/// The command cannot assemble a new one (a new `HEAD` is refused) nor move one (it is inside
/// itself).
pub(crate) fn inside_git_directory(path: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let mut p = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
    loop {
        if p.as_os_str().len() > 1 && is_git_directory(p) {
            return true;
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
}

/// The launcher's and the creator's ends of the channels (create before the fork).
#[derive(Debug)]
pub struct Channels {
    pub launcher: Vec<OwnedFd>,
    pub creator: Vec<OwnedFd>,
}

/// [`CHANNELS`] `SOCK_SEQPACKET` pairs.
pub fn channels() -> std::io::Result<Channels> {
    let mut launcher = Vec::with_capacity(CHANNELS);
    let mut creator = Vec::with_capacity(CHANNELS);
    for _ in 0..CHANNELS {
        let (a, b) = sys::seqpacket_pair()?;
        launcher.push(a);
        creator.push(b);
    }
    Ok(Channels { launcher, creator })
}

/// What the creator is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `openat(dir1, path1, flags, mode)`; answers a descriptor.
    Open = 1,
    /// Re-open the descriptor `dir1` (`/proc/self/fd/N`) with `flags`; answers a descriptor.
    Reopen = 2,
    /// `mkdirat(dir1, path1, mode)`.
    Mkdir = 3,
    /// `mknodat(dir1, path1, mode, dev)`.
    Mknod = 4,
    /// `symlinkat(path1, dir2, path2)` (path1 is the link's content).
    Symlink = 5,
    /// `linkat(dir1, path1, dir2, path2, flags)`.
    Link = 6,
    /// `renameat2(dir1, path1, dir2, path2, flags)`.
    Rename = 7,
}

/// One mediated call, as read from the notifying thread (its directories travel beside it as
/// descriptors, `dir1` first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub op: Op,
    /// `dir1` is sent (else: the path is absolute, or the op has no first directory).
    pub has_dir1: bool,
    pub has_dir2: bool,
    pub flags: i32,
    pub mode: u32,
    pub umask: u32,
    pub dev: u64,
    pub path1: Vec<u8>,
    pub path2: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_names_ignore_ascii_case_and_only_whole_components() {
        assert!(is_protected(b".git"));
        assert!(is_protected(b".GIT"));
        assert!(is_protected(b".Codex"));
        assert!(is_protected(b".agents"));
        assert!(is_protected(b".hg") && is_protected(b".HG") && is_protected(b".jj"));
        assert!(is_protected(b".claude") && is_protected(b".SL"));
        assert!(!is_protected(b".hgignore") && !is_protected(b"hg"));
        assert!(!is_protected(b".gitignore"));
        assert!(!is_protected(b"git"));
        assert!(!is_protected(b".git "));
        assert!(has_protected_component(b"/ws/sub/.git/hooks"));
        assert!(has_protected_component(b"/ws/.codex"));
        assert!(!has_protected_component(b"/ws/sub/.github/x"));
        assert!(is_protected(b"remote.git") && is_protected(b"X.GIT"));
        assert!(!is_protected(b".git2") && !is_protected(b"digit"));
        assert!(is_protected_new_name(b"HEAD") && !is_protected(b"HEAD"));
    }
}
