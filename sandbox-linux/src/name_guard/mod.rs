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
//! Also mediated: `unlink`/`rmdir` (nothing removed inside a repository, below a protected name,
//! or a protected name itself) and `truncate(path)`. Metadata calls go to the launcher
//! ([`crate::meta_guard`]). Not mediated: `bind` of a unix socket.

mod creator;
mod supervisor;
pub(crate) mod sys;

use std::os::fd::OwnedFd;

pub use creator::{Creator, spawn_creator};
pub use supervisor::Answer;

/// Whether the creator handles system call `nr` itself (a file call of the guard) rather than
/// forwarding it to the launcher (`connect`, `listen`, the metadata calls, `inotify_add_watch`).
pub fn is_guarded(nr: i64) -> bool {
    nr != libc::SYS_connect
        && nr != libc::SYS_listen
        && nr != crate::watch_guard::CALL
        && !crate::meta_guard::is_mediated(nr)
}

/// Names nothing in the sandbox may create, nor write below: repositories and agent
/// configurations whose contents a tool run later, outside the sandbox, executes — git's hooks
/// and fsmonitor (`.git`), Mercurial's `[hooks]` in `.hg/hgrc` (outside review r10 F-S1: a
/// `pre-status` hook planted in `.hg` ran at the user's next `hg status`) and Sapling's in
/// `.sl/config` (r11), Jujutsu's repository
/// config (`.jj/repo/config.toml`: fix tools, merge tools, aliases run commands), codex's and
/// other agents' project configuration (`.codex`, `.agents`, `.claude`: hooks and MCP servers
/// the agent starts). Lower case: names are compared with ASCII case ignored ([`is_protected`]).
pub const PROTECTED_NAMES: &[&str] = &[
    ".git",
    ".codex",
    ".agents",
    ".hg",
    ".sl",
    ".jj",
    ".claude",
    // outside review r74 F2: darcs runs `ALL prehook`/`posthook` from `_darcs/prefs/defaults`
    // at the user's next `darcs whatsnew`; pijul's and Breezy's repositories, fossil's checkout
    // database (it names the repository whose settings and hooks fossil runs) alike
    "_darcs",
    ".pijul",
    ".bzr",
    ".fslckout",
    "_fossil_",
    // r76 F1: a checkout's `.svn/wc.db` re-pointed at a repository the command built, whose
    // `start-commit` hook ran at the user's next `svn commit`
    ".svn",
];

/// Errno of a refused call (the one Landlock gives).
pub const DENIED_ERRNO: i32 = libc::EACCES;

/// Number of the creator's threads, each with its channel to the launcher: a call that blocks
/// (a FIFO opened for writing with no reader yet, a forwarded `connect`) holds one; the others
/// keep serving.
pub const CHANNELS: usize = 4;

/// Whether `name` (one path component) is protected: one of [`PROTECTED_NAMES`], or a name
/// ending in `.git` (the usual name of a bare repository: a push to it runs its hooks), ASCII
/// case ignored; or the SQLite side file ([`sqlite_side_base`]) of such a name
/// (`.fslckout-journal`: a hot journal is played into its database by the next program that
/// opens it, so it would rewrite the checkout database the name protects).
pub fn is_protected(name: &[u8]) -> bool {
    is_protected_base(name) || sqlite_side_base(name).is_some_and(is_protected_base)
}

/// The database a SQLite side file belongs to: `NAME` for `NAME-journal` (a rollback journal),
/// `NAME-wal` (a write-ahead log) and `NAME-shm` (its index); `None` for any other name.
pub fn sqlite_side_base(name: &[u8]) -> Option<&[u8]> {
    [&b"-journal"[..], b"-wal", b"-shm"]
        .iter()
        .find_map(|s| name.strip_suffix(*s))
        .filter(|base| !base.is_empty())
}

fn is_protected_base(name: &[u8]) -> bool {
    let lower = name.to_ascii_lowercase();
    PROTECTED_NAMES
        .iter()
        .any(|p| p.as_bytes() == lower.as_slice())
        || (lower.len() > 4 && lower.ends_with(b".git"))
        || PROTECTED_EXACT_NAMES.iter().any(|p| p.as_bytes() == name)
        || lower.starts_with(STAGING_PREFIX)
}

/// The prefix of the name under which the name guard's creator holds a directory between the
/// two steps of its rename to an object store's directory name (`creator.rs`,
/// `renamed_checked_directory`): protected, so that no call of any sandbox can exchange,
/// replace or remove what stands there in between (outside review r94 F1).
pub const STAGING_PREFIX: &[u8] = b".codex-staging-";

/// Protected names compared exactly (their tools read no other spelling, and a project's own
/// `cvs/` directory stays free): CVS's metadata (outside review r75 F1: `CVS/Root` re-pointed
/// at a repository the command built, whose `CVSROOT/commitinfo` ran at the user's next `cvs
/// commit` and copied `~/.ssh/id_ed25519`) and Monotone's (`_MTN/monotonerc`: Lua hooks).
///
/// `CVSROOT` is a CVS *repository*'s administrative directory: its `commitinfo`, `loginfo`,
/// `verifymsg`... name programs `cvs` runs at every commit to the repository, from any
/// checkout, one outside the writable roots included (outside review r82 F1: `chmod u+w
/// CVSROOT/commitinfo` and a line appended to it copied `~/.ssh/id_ed25519` at the user's next
/// `cvs commit`).
pub const PROTECTED_EXACT_NAMES: &[&str] = &["CVS", "CVSROOT", "_MTN"];

/// Whether a *new* name may not be created: a protected name, or `HEAD`, without which git does
/// not take a directory for a repository (round-8 review F2: a repository planted under another
/// name, `HEAD` + `objects/` + `refs/` + `config`, ran its fsmonitor at the user's `git status`).
pub fn is_protected_new_name(name: &[u8]) -> bool {
    // exactly `HEAD`: git on Linux reads no other spelling (outside review r25 F2: any case of
    // `head` was refused, which broke `gcc -o head` and a Hugo `layouts/partials/head/`)
    is_protected(name) || name == b"HEAD"
}

/// Fossil's SQLite `application_id`s (`PRAGMA application_id`: the big-endian word at offset
/// 68 of a database's header): a repository, 252006673, whose `config` table holds the hooks
/// (`before-commit`...) a `fossil commit` runs (outside review r79 F1: a `proj.fossil` inside
/// its checkout, as `fossil open URL` leaves it, had a hook added with `fossil hook add -R`,
/// which the user's next `fossil commit` ran outside, both modes), and a checkout database,
/// 252006674 (`.fslckout`, protected by name too). Fossil names its repository files freely,
/// so they are recognised by their contents.
const FOSSIL_APPLICATION_IDS: [u32; 2] = [252_006_673, 252_006_674];

/// Whether the first bytes of a file are a SQLite header with one of Fossil's
/// [`FOSSIL_APPLICATION_IDS`].
pub(crate) fn sqlite_header_is_fossils(b: &[u8]) -> bool {
    b.len() >= 72
        && b.starts_with(b"SQLite format 3\0")
        && FOSSIL_APPLICATION_IDS.contains(&u32::from_be_bytes([b[68], b[69], b[70], b[71]]))
}

/// Whether `file` (any descriptor, `O_PATH` included) is a Fossil database by its contents
/// ([`FOSSIL_APPLICATION_IDS`]). Only a regular file of whole SQLite pages (at least 512 bytes,
/// a multiple of 512) is read; one that cannot be read counts as one (fails closed).
pub(crate) fn is_fossil_database(file: std::os::fd::BorrowedFd<'_>) -> bool {
    fossil_database(file, true)
}

/// [`is_fossil_database`], but a file this process may not open for reading (`EACCES`) is
/// none: for the metadata calls, so that `chmod 000 f` then `chmod 644 f` keeps working on any
/// file (a Fossil database cannot be made unreadable in the first place: that `chmod` is
/// refused).
pub(crate) fn is_readable_fossil_database(file: std::os::fd::BorrowedFd<'_>) -> bool {
    fossil_database(file, false)
}

fn fossil_database(file: std::os::fd::BorrowedFd<'_>, unreadable_counts: bool) -> bool {
    use std::os::fd::{AsFd, AsRawFd};
    let Ok(st) = sys::fstat_fd(file) else {
        return true;
    };
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_size < 512 || st.st_size % 512 != 0 {
        return false;
    }
    // an `O_PATH` descriptor is not readable: opened again for reading, by itself
    let Ok(link) = std::ffi::CString::new(format!("/proc/self/fd/{}", file.as_raw_fd())) else {
        return true;
    };
    let f = match sys::openat(
        None,
        &link,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
        0,
    ) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => return unreadable_counts,
        Err(_) => return true,
    };
    let mut b = [0u8; 72];
    let mut got = 0;
    while got < b.len() {
        match sys::read_eintr(f.as_fd(), &mut b[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(_) => return true,
        }
    }
    sqlite_header_is_fossils(&b[..got])
}

/// Whether the entry `name` of `dir`, or the database whose SQLite side file `name` would be
/// ([`sqlite_side_base`]: a hot journal next to a repository is played into it by the next
/// `fossil` that opens it), is a Fossil database ([`is_fossil_database`]). A missing entry is
/// none; any other failure to look counts as one.
pub(crate) fn fossil_entry(dir: std::os::fd::BorrowedFd<'_>, name: &[u8]) -> bool {
    use std::os::fd::AsFd;
    [Some(name), sqlite_side_base(name)]
        .into_iter()
        .flatten()
        .any(|n| {
            let Ok(c) = std::ffi::CString::new(n) else {
                return false;
            };
            match sys::openat(Some(dir), &c, libc::O_PATH | libc::O_NOFOLLOW, 0) {
                Ok(fd) => is_fossil_database(fd.as_fd()),
                Err(e) => !matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)),
            }
        })
}

/// Whether the file at the resolved path `real` is a SQLite side file (`NAME-wal`, `-shm`,
/// `-journal`) of a Fossil database `NAME` beside it (outside review r84 F2: an existing
/// `-wal` of a repository in WAL mode, left by a process holding it open or killed, was opened
/// for writing; frames written there that added a hook were recovered into the repository by
/// the next `fossil`, which ran the hook). Any doubt about the database counts as one.
pub(crate) fn fossil_side_file(real: &[u8]) -> bool {
    use std::os::fd::AsFd;
    let Some(slash) = real.iter().rposition(|&b| b == b'/') else {
        return false;
    };
    let (dir, name) = (&real[..slash.max(1)], &real[slash + 1..]);
    let Some(base) = sqlite_side_base(name) else {
        return false;
    };
    let Ok(dir) = std::ffi::CString::new(dir) else {
        return true;
    };
    match sys::openat(None, &dir, libc::O_PATH | libc::O_DIRECTORY, 0) {
        Ok(d) => fossil_entry(d.as_fd(), base),
        Err(_) => true,
    }
}

/// Whether any component of `path` is protected, or its last two are a file a version control
/// system keeps history in ([`is_history_file`]).
pub fn has_protected_component(path: &[u8]) -> bool {
    path.split(|&b| b == b'/').any(is_protected) || is_history_path(path)
}

/// Whether the last two components of `path` are a history file ([`is_history_file`]).
pub fn is_history_path(path: &[u8]) -> bool {
    let mut parts = path.rsplit(|&b| b == b'/');
    let name = parts.next().unwrap_or_default();
    let dir = parts.next().unwrap_or_default();
    is_history_file(dir, name)
}

/// Whether the entry `name` of a directory named `dir` is a file a version control system keeps
/// history in, wherever it lies, by its name: a git loose object (`[0-9a-f]{2}/` then 38 or 62
/// lower-case hex digits), a git pack (`pack/pack-<hex>.<ext>`), a git `info/alternates`, or an
/// RCS/CVS master file (`*,v`). Such a file is not created, written, renamed, removed or
/// changed in mode, owner or times (outside review r85: F1, objects of a directory another
/// repository borrows through `objects/info/alternates`, the second level of the workspace's
/// own, a nested repository's or an outside repository's, were replaced by the command's, and
/// the user's `git worktree add` wrote its script; F2, a CVS module directory linked out of
/// the repository took a new revision of `build.sh,v`). Inside a repository (`.git/objects`, a
/// bare one, beside `CVSROOT`) they were protected already; these rules reach the object stores
/// and module directories that lie elsewhere.
pub fn is_history_file(dir: &[u8], name: &[u8]) -> bool {
    let hex = |b: &[u8]| !b.is_empty() && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    (name.len() > 2 && name.ends_with(b",v"))
        || (dir.len() == 2 && hex(dir) && matches!(name.len(), 38 | 62) && hex(name))
        // any pack git would load, not only `pack-<hex>.*` (outside review r87 G2: `pack/evil.pack`
        // + `evil.idx` mapping a borrowed object to the command's content), and the indexes
        // beside them
        || (dir == b"pack"
            && ([&b".pack"[..], b".idx", b".rev", b".bitmap", b".keep", b".promisor", b".mtimes"]
                .iter()
                .any(|e| name.ends_with(e))
                || name.starts_with(b"multi-pack-index")))
        || (dir == b"info"
            && matches!(
                name,
                b"alternates" | b"http-alternates" | b"packs" | b"commit-graph"
            ))
        || (dir == b"commit-graphs"
            && (name.ends_with(b".graph") || name == b"commit-graph-chain"))
}

/// Whether `name` would be a history file ([`is_history_file`]) in a directory with an object
/// store's directory name ([`is_store_directory_name`]): only calls that name such an entry
/// need the cross-sandbox directory lock (a directory anyone can read can be `flock`ed by
/// anyone, so taking it for every name would let another local user stall every sandbox's
/// file creation in `/tmp` by holding `/tmp` locked).
pub fn could_be_history_name(name: &[u8]) -> bool {
    [&b"00"[..], b"pack", b"info", b"commit-graphs"]
        .iter()
        .any(|dir| is_history_file(dir, name))
}

/// Whether `name` is one under which a directory's entries can be history files
/// ([`is_history_file`]): two lower-case hex digits (loose objects), `pack`, `info`,
/// `commit-graphs`. A directory only gets such a name when nothing in it would be one
/// (outside review r89), and no symbolic link gets one (r90 A-F1: a link named `pack` in a
/// borrowed object store, to a directory filled under another name, and git loaded its packs).
pub fn is_store_directory_name(name: &[u8]) -> bool {
    (name.len() == 2 && name.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
        || matches!(name, b"pack" | b"info" | b"commit-graphs")
}

/// Whether the directory `dir` (a descriptor) is one git takes for a repository, as git's
/// `is_git_directory` does: a `HEAD` (file or link), and `objects` + `refs` or a `commondir` (a
/// worktree's gitdir). git tests `objects` and `refs` with `access(X_OK)` and `commondir` with
/// `stat`, both following symbolic links, so an entry of **any** type counts, a dangling link
/// included (outside review r26 F4: a bare remote whose `objects/` was a symlink to a shared
/// object store was no repository here and had a `pre-receive` hook planted). Looked at through
/// the descriptor, never by path (outside review r24 F2: the parent directories were exchanged
/// between a check by path and the write). Fails closed: any answer but "no such entry" (a
/// parent made `chmod 000`, outside review r24 F4) counts as a repository. Its parts cannot be
/// removed to fool the test (`unlink`, `rmdir` inside a repository are refused too: r23 F1, r24
/// F1).
///
/// One exception, so that another local user cannot freeze every sandbox below a shared
/// directory by planting `HEAD` + `objects/` + `refs/` in it (outside review r26 F2, on `/tmp`):
/// a **sticky, world-writable directory that someone else owns** ([`shared_sticky`]) is not
/// taken for a repository. git itself refuses it ("dubious ownership") unless the user listed it
/// in `safe.directory`. Nor is a directory whose `HEAD` is a file git would not read as one
/// (not `ref:` nor an object id) unless `objects` + `refs` or `commondir` are there too.
pub(crate) fn is_git_directory_at(dir: std::os::fd::BorrowedFd<'_>) -> bool {
    git_directory_at(dir, false)
}

/// A sticky, world-writable directory (`/tmp`, `/var/tmp`, a shared drop directory) that this
/// user does not own: never taken for a repository (see [`is_git_directory_at`]). Every local
/// user can add entries to it, hooks included, and git refuses it ("dubious ownership") unless
/// the user listed it in `safe.directory`. The user's own sticky repository stays one (outside
/// review r27 F5: its existing hooks, which other users cannot replace, were the command's to
/// write). Inside a user namespace another user's directory shows the overflow uid, so a
/// directory showing it counts as another's even when the sandbox runs as uid 65534 itself.
fn shared_sticky(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
        && st.st_mode & (libc::S_ISVTX | libc::S_IWOTH) == (libc::S_ISVTX | libc::S_IWOTH)
        && (st.st_uid != crate::sys::geteuid() || st.st_uid == OVERFLOW_UID)
}

/// The uid a user namespace shows for ids it does not map (`/proc/sys/kernel/overflowuid`'s
/// default): another user's directory may show it.
pub(crate) const OVERFLOW_UID: u32 = 65534;

/// [`is_git_directory_at`]; `lenient`: a directory this process may not search (`EACCES` on
/// its own entries) counts as no repository. Used for the directory a call acts on itself:
/// the command cannot make a repository unsearchable (its metadata changes are refused) and
/// the kernel refuses a creation inside an unsearchable directory anyway, while `chmod 000
/// dir` then `chmod 755 dir` must keep working.
fn git_directory_at(dir: std::os::fd::BorrowedFd<'_>, lenient: bool) -> bool {
    let kind = |name: &std::ffi::CStr| entry_kind(dir, name, lenient);
    if svn_repository_at(dir, lenient) || cvs_repository_at(dir, lenient) {
        return true;
    }
    let Ok(head) = kind(c"HEAD") else {
        return true;
    };
    match head {
        Some(libc::S_IFREG) | Some(libc::S_IFLNK) => {}
        _ => return false,
    }
    if sys::fstat_fd(dir).is_ok_and(|st| shared_sticky(&st)) {
        return false;
    }
    let (Ok(objects), Ok(refs), Ok(common)) = (kind(c"objects"), kind(c"refs"), kind(c"commondir"))
    else {
        return true;
    };
    (objects.is_some() && refs.is_some())
        || common.is_some()
        // a `HEAD` git would accept is enough (outside review r27 F1: a directory with a lone
        // `HEAD`, a bare test fixture whose empty `refs/` git did not track, had `config` and
        // hooks planted first and `objects/` + `refs/` added last; r27 F2: a `commondir`
        // added to it named a directory without `HEAD` whose config and hooks git read)
        || head == Some(libc::S_IFLNK)
        || head_content_is_gits(dir)
}

/// The type (`S_IFMT` bits) of the entry `name` of `dir`: `Ok(None)` when there is none,
/// `Err(())` when unknown (any other failure); `lenient`: an unsearchable `dir` (`EACCES`)
/// counts as having no such entry.
fn entry_kind(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::CStr,
    lenient: bool,
) -> Result<Option<u32>, ()> {
    use std::os::fd::AsRawFd;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    match sys::fstatat_nofollow(dir.as_raw_fd(), name, &mut st) {
        Ok(st) => Ok(Some(st.st_mode & libc::S_IFMT)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => Ok(None),
        Err(e) if lenient && e.raw_os_error() == Some(libc::EACCES) => Ok(None),
        Err(_) => Err(()),
    }
}

/// Whether the directory `dir` is a Subversion repository (outside review r79 F2:
/// `hooks/start-commit` of a local repository under /tmp was written by the command and run at
/// the user's next `svn commit` over `file://`): `db` a directory and `format` a file whose
/// first line is a number, as `svnadmin create` makes them (`svn` opens such a directory). A
/// symbolic link in either place counts (svn follows it), as does any doubt; but a project's
/// own `db/` and `format/` packages, or a `format` script, do not (outside review r80 F3: any
/// `db` + `format` froze such a project). Not a sticky world-writable directory someone else
/// owns ([`shared_sticky`]).
fn svn_repository_at(dir: std::os::fd::BorrowedFd<'_>, lenient: bool) -> bool {
    use std::os::fd::AsFd;
    let kind = |name: &std::ffi::CStr| entry_kind(dir, name, lenient);
    match kind(c"db") {
        Ok(Some(libc::S_IFDIR) | Some(libc::S_IFLNK)) => {}
        Ok(_) => return false,
        Err(()) => return true,
    }
    let repository = match kind(c"format") {
        Ok(Some(libc::S_IFLNK)) | Err(()) => true,
        Ok(Some(libc::S_IFREG)) => {
            match sys::openat(
                Some(dir),
                c"format",
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
                0,
            ) {
                Ok(f) => {
                    let mut b = [0u8; 16];
                    match sys::read_eintr(f.as_fd(), &mut b) {
                        Ok(n) => svn_format_line(&b[..n]),
                        Err(_) => true,
                    }
                }
                Err(_) => true,
            }
        }
        Ok(_) => false,
    };
    repository && !sys::fstat_fd(dir).is_ok_and(|st| shared_sticky(&st))
}

/// Whether the directory `dir` is a CVS repository: it holds `CVSROOT` (a directory, or a link:
/// cvs follows it; any doubt counts). Its modules' `,v` files sit beside `CVSROOT`, and a new
/// revision written into one reaches the user's next `cvs update` in a checkout anywhere
/// (outside review r84 F3: `cvs import` from inside added a revision of `build.sh` that the
/// user's checkout outside the roots then received): nothing below such a directory is written,
/// as in a git repository. Not a sticky world-writable directory someone else owns
/// ([`shared_sticky`]).
fn cvs_repository_at(dir: std::os::fd::BorrowedFd<'_>, lenient: bool) -> bool {
    match entry_kind(dir, c"CVSROOT", lenient) {
        Ok(Some(libc::S_IFDIR) | Some(libc::S_IFLNK)) | Err(()) => {
            !sys::fstat_fd(dir).is_ok_and(|st| shared_sticky(&st))
        }
        Ok(_) => false,
    }
}

/// Whether the start of a `format` file is what `svnadmin` writes: a decimal number, then a
/// line end (or the end of the file).
fn svn_format_line(b: &[u8]) -> bool {
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    digits > 0 && matches!(b.get(digits), None | Some(b'\n') | Some(b'\r'))
}

/// What [`subtree_holds_repository`] found below a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subtree {
    /// No repository, protected name or link to one.
    Clear,
    /// A repository, a protected name, a link to either, or something that could not be looked
    /// at (fails closed).
    Repository,
    /// More than [`SUBTREE_ENTRIES`] entries, or deeper than [`SUBTREE_DEPTH`]: not looked at
    /// in full.
    TooLarge,
}

/// The most entries one [`subtree_holds_repository`] reads (links' targets included): about
/// 3.5 µs an entry from the page cache (`sandbox-linux/bench/rename-dir.py`, release build:
/// a rename of 1,000 entries 2.4 ms, of 19,000 entries 67 ms; without the guard 3 µs).
pub(crate) const SUBTREE_ENTRIES: usize = 20_000;
/// The deepest directory it goes into.
pub(crate) const SUBTREE_DEPTH: usize = 128;

/// Whether anything at any depth below the directory `dir` (itself included) is a repository
/// the name guard protects: a directory git or svn takes for one ([`git_directory_at`]), an
/// entry with a protected name ([`is_protected`]: `.git`, `.svn`, `CVSROOT`, ...), a Fossil
/// database ([`is_fossil_database`]), or a symbolic link whose target is or holds one (the
/// target is looked at the same way, each directory once). Such a directory is not renamed
/// (outside review r82 F3: `mv svn svn.old` moved a repository two levels down away from the
/// absolute `file://` URL the user's working copy outside the workspace names, and the copy
/// the command made there with a hook ran at the user's next `svn commit`; r80 F1 with the
/// parent only), and such a link is not removed or renamed (r82 F2: `ws/links/m.fossil ->
/// ~/museum/m.fossil`, the path the user's checkout names, replaced by the command's copy with
/// a hook). Any doubt (an unreadable directory, an error) counts as a repository.
///
/// The answer cannot be changed under the look by the command: a repository found below
/// cannot be moved out (that rename is this same check), and one added meanwhile is the
/// command's own. Reading a link's target tells the command one thing about a place it may
/// not read (whether a repository is below it); nothing else.
pub(crate) fn subtree_holds_repository(dir: std::os::fd::BorrowedFd<'_>) -> Subtree {
    use std::os::fd::{AsFd, AsRawFd};
    use std::os::unix::ffi::OsStrExt;
    use std::rc::Rc;
    let dir_flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NONBLOCK;
    let Ok(first) = sys::openat(Some(dir), c".", dir_flags, 0) else {
        return Subtree::Repository;
    };
    // pending directories: (the directory they are in, name, depth); parents stay open only
    // while one of their entries waits (at most about the depth of the walk)
    let mut pending: Vec<(Rc<std::os::fd::OwnedFd>, std::ffi::CString, usize)> =
        vec![(Rc::new(first), c".".to_owned(), 0)];
    let mut seen = std::collections::HashSet::new();
    let mut entries = 0usize;
    while let Some((parent, name, depth)) = pending.pop() {
        if depth > SUBTREE_DEPTH {
            return Subtree::TooLarge;
        }
        let flags = if name.as_bytes() == b"." {
            dir_flags
        } else {
            dir_flags | libc::O_NOFOLLOW
        };
        let d = match sys::openat(Some(parent.as_fd()), &name, flags, 0) {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue, // gone meanwhile
            Err(_) => return Subtree::Repository,
        };
        drop(parent);
        let Ok(st) = sys::fstat_fd(d.as_fd()) else {
            return Subtree::Repository;
        };
        if !seen.insert((st.st_dev, st.st_ino)) {
            continue;
        }
        if is_git_directory_at(d.as_fd()) {
            return Subtree::Repository;
        }
        let Ok(list) = std::fs::read_dir(format!("/proc/self/fd/{}", d.as_raw_fd())) else {
            return Subtree::Repository;
        };
        // the directory's own name, for the history files in it ([`is_history_file`]; outside
        // review r87 G1: a two-hex-digit object directory renamed away and a prepared one put
        // in its place)
        let own_name: Vec<u8> = if name.as_bytes() == b"." {
            std::fs::read_link(format!("/proc/self/fd/{}", d.as_raw_fd()))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.as_bytes().to_vec()))
                .unwrap_or_default()
        } else {
            name.as_bytes().to_vec()
        };
        let d = Rc::new(d);
        for e in list {
            let Ok(e) = e else {
                return Subtree::Repository;
            };
            entries += 1;
            if entries > SUBTREE_ENTRIES {
                return Subtree::TooLarge;
            }
            let name = e.file_name();
            if is_protected(name.as_bytes()) || is_history_file(&own_name, name.as_bytes()) {
                return Subtree::Repository;
            }
            let Ok(name) = std::ffi::CString::new(name.as_bytes()) else {
                return Subtree::Repository;
            };
            let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
            let st = match sys::fstatat_nofollow(d.as_raw_fd(), &name, &mut st) {
                Ok(st) => st,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(_) => return Subtree::Repository,
            };
            match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => pending.push((Rc::clone(&d), name, depth + 1)),
                libc::S_IFREG if st.st_size >= 512 && st.st_size % 512 == 0 => {
                    match sys::openat(Some(d.as_fd()), &name, libc::O_PATH | libc::O_NOFOLLOW, 0) {
                        Ok(f) if !is_fossil_database(f.as_fd()) => {}
                        Ok(_) => return Subtree::Repository,
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                        Err(_) => return Subtree::Repository,
                    }
                }
                libc::S_IFLNK => match link_target(d.as_fd(), &name) {
                    LinkTarget::Nothing => {}
                    LinkTarget::Repository => return Subtree::Repository,
                    LinkTarget::Directory(t) => {
                        pending.push((Rc::new(t), c".".to_owned(), depth + 1))
                    }
                },
                _ => {}
            }
        }
    }
    Subtree::Clear
}

/// What a symbolic link leads to, for [`subtree_holds_repository`].
pub(crate) enum LinkTarget {
    /// Nothing (dangling, a loop), or a file that is no Fossil database.
    Nothing,
    /// A Fossil database, or a target that could not be looked at.
    Repository,
    /// A directory (an `O_PATH` descriptor of it), to be looked at below.
    Directory(std::os::fd::OwnedFd),
}

/// The target of the link `name` in `dir`, followed as the user's tools follow it.
pub(crate) fn link_target(dir: std::os::fd::BorrowedFd<'_>, name: &std::ffi::CStr) -> LinkTarget {
    use std::os::fd::AsFd;
    match sys::openat(Some(dir), name, libc::O_PATH, 0) {
        Ok(t) => match sys::fstat_fd(t.as_fd()) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => LinkTarget::Directory(t),
            Ok(_) if is_fossil_database(t.as_fd()) => LinkTarget::Repository,
            Ok(_) => LinkTarget::Nothing,
            Err(_) => LinkTarget::Repository,
        },
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT) | Some(libc::ELOOP) | Some(libc::ENOTDIR)
            ) =>
        {
            LinkTarget::Nothing
        }
        Err(_) => LinkTarget::Repository,
    }
}

/// Whether the regular file `HEAD` in `dir` holds what git's `validate_headref` accepts (`ref:`
/// or an object id in hex); unreadable counts as yes. An invalid `HEAD` cannot be made valid
/// later: an existing `HEAD` is not written ([`is_head_file`]).
fn head_content_is_gits(dir: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::fd::AsFd;
    let Ok(f) = sys::openat(
        Some(dir),
        c"HEAD",
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY,
        0,
    ) else {
        return true;
    };
    let mut b = [0u8; 64];
    let Ok(n) = sys::read_eintr(f.as_fd(), &mut b) else {
        return true;
    };
    head_bytes_are_gits(&b[..n])
}

/// `validate_headref`'s test on the start of `HEAD`: `ref:`, or 40 (SHA-1) hex digits.
fn head_bytes_are_gits(b: &[u8]) -> bool {
    b.starts_with(b"ref:") || (b.len() >= 40 && b[..40].iter().all(u8::is_ascii_hexdigit))
}

/// Whether `path` (a resolved location) names a file called exactly `HEAD`: such a file is
/// not opened for writing nor truncated, wherever it is, so that a `HEAD` git would refuse
/// cannot become one it accepts after other parts were planted around it (outside review r27
/// F1; a new `HEAD` is not created either: [`is_protected_new_name`]).
pub(crate) fn is_head_file(path: &[u8]) -> bool {
    path.rsplit(|&b| b == b'/').next() == Some(b"HEAD")
}

/// Most directory levels walked up from a location (deeper: counted as inside a repository).
const MAX_LEVELS: usize = 512;

/// Whether the directory `dir` (a descriptor), or any directory above it, is a repository
/// ([`is_git_directory_at`]), whatever its name (outside review r21 F1: a bare repository
/// `/tmp/x/remote` under a writable root had a `pre-receive` hook planted, which the user's
/// next `git push` ran). Walked up through `..` from the descriptor when the call is made, not
/// scanned at set-up: the directories checked are the ones the call lands in, a repository made
/// during the run by someone else is covered too, and a start costs nothing. Fails closed.
/// `path`: where `dir` is, used only when `dir` itself cannot be searched for its `..` (a
/// directory made `chmod 000`): its parent is then opened by that path and accepted only when
/// its entry of that name is `dir`.
fn inside_git_directory_at(dir: std::os::fd::BorrowedFd<'_>, path: Option<&[u8]>) -> bool {
    use std::os::fd::AsFd;
    let mut cur: Option<std::os::fd::OwnedFd> = None;
    let mut last = None;
    for level in 0..MAX_LEVELS {
        let d = cur.as_ref().map_or(dir, |c| c.as_fd());
        if git_directory_at(d, level == 0) {
            return true;
        }
        let Ok(st) = sys::fstat_fd(d) else {
            return true;
        };
        let id = (st.st_dev, st.st_ino);
        if last == Some(id) {
            return false; // `..` of the root is the root
        }
        last = Some(id);
        let up = match (sys::open_dotdot(d), level, path) {
            (Ok(up), _, _) => up,
            (Err(e), 0, Some(p)) if e.raw_os_error() == Some(libc::EACCES) => {
                match parent_by_path(d, p) {
                    Some(up) => up,
                    None => return true,
                }
            }
            (Err(_), _, _) => return true,
        };
        cur = Some(up);
    }
    true
}

/// The directory holding `fd`, opened by the directory part of `path` (its resolved location)
/// and accepted only when its entry of that name is `fd` itself (`None`: moved meanwhile, or
/// unreachable).
fn parent_by_path(fd: std::os::fd::BorrowedFd<'_>, path: &[u8]) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;
    let st = sys::fstat_fd(fd).ok()?;
    let slash = path.iter().rposition(|&b| b == b'/')?;
    let dir = std::ffi::CString::new(&path[..slash.max(1)]).ok()?;
    let name = std::ffi::CString::new(&path[slash + 1..]).ok()?;
    let parent = sys::open_dir_path(&dir).ok()?;
    let mut tmp = std::mem::MaybeUninit::<libc::stat>::uninit();
    let e = sys::fstatat_nofollow(parent.as_raw_fd(), &name, &mut tmp).ok()?;
    ((e.st_dev, e.st_ino) == (st.st_dev, st.st_ino)).then_some(parent)
}

/// [`inside_git_directory_at`] for a file or directory `fd` whose resolved location is
/// `path`: a directory is walked from itself; anything else from its parent
/// ([`parent_by_path`]; counted as inside when it cannot be found).
pub(crate) fn inside_git_directory(fd: std::os::fd::BorrowedFd<'_>, path: &[u8]) -> bool {
    use std::os::fd::AsFd;
    let Ok(st) = sys::fstat_fd(fd) else {
        return true;
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return inside_git_directory_at(fd, Some(path));
    }
    match parent_by_path(fd, path) {
        Some(parent) => {
            let parent_path = &path[..path.iter().rposition(|&b| b == b'/').unwrap_or(0).max(1)];
            inside_git_directory_at(parent.as_fd(), Some(parent_path))
        }
        None => true,
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
    Open,
    /// Re-open the descriptor `dir1` (`/proc/self/fd/N`) with `flags`; answers a descriptor.
    Reopen,
    /// `mkdirat(dir1, path1, mode)`.
    Mkdir,
    /// `mknodat(dir1, path1, mode, dev)`.
    Mknod,
    /// `symlinkat(path1, dir2, path2)` (path1 is the link's content).
    Symlink,
    /// `linkat(dir1, path1, dir2, path2, flags)`.
    Link,
    /// `renameat2(dir1, path1, dir2, path2, flags)`.
    Rename,
    /// `unlinkat(dir1, path1, flags)` (`unlink`, `rmdir`).
    Unlink,
    /// `truncate(path1, length)` (`length` in `dev`).
    Truncate,
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
    fn names_a_store_directory_would_make_history_take_the_directory_lock() {
        let oid = "9e5adb72ac5f76b9918e4854618fd19a0b14ac34";
        for n in [
            oid[2..].to_string(),
            "7".repeat(62),
            format!("pack-{oid}.pack"),
            "evil.idx".to_string(),
            "multi-pack-index".to_string(),
            "alternates".to_string(),
            "commit-graph".to_string(),
            "commit-graph-chain".to_string(),
            "graph-1.graph".to_string(),
            "build.sh,v".to_string(),
        ] {
            assert!(could_be_history_name(n.as_bytes()), "{n}");
        }
        // ordinary names (the build's own files) take no lock another user could hold
        for n in [
            oid[3..].to_string(),
            oid[2..].to_uppercase(),
            "main.o".to_string(),
            "Cargo.lock".to_string(),
            "pack".to_string(),
            "ab".to_string(),
            "tmp12345".to_string(),
        ] {
            assert!(!could_be_history_name(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn history_files_are_known_by_their_names_and_directories() {
        let oid = "9e5adb72ac5f76b9918e4854618fd19a0b14ac34";
        for p in [
            format!("/ws/altB/9e/{}", &oid[2..]),
            format!("/ws/objN/58/{}", "7".repeat(62)),
            format!("/ws/store/pack/pack-{oid}.pack"),
            format!("/ws/store/pack/pack-{oid}.idx"),
            "/ws/altA/info/alternates".to_string(),
            "/ws/store/pack/evil.pack".to_string(),
            "/ws/store/pack/evil.idx".to_string(),
            "/ws/store/pack/multi-pack-index".to_string(),
            "/ws/store/info/commit-graph".to_string(),
            "/ws/store/info/commit-graphs/graph-1.graph".to_string(),
            "/ws/cvsmod/proj/build.sh,v".to_string(),
        ] {
            assert!(has_protected_component(p.as_bytes()), "{p}");
        }
        for p in [
            format!("/ws/cache/9e/{}", &oid[3..]),
            format!("/ws/cache/9E/{}", &oid[2..]),
            format!("/ws/cache/9e/{}-a", &oid[2..]),
            format!("/ws/cache/{}", &oid[2..]),
            "/ws/pack/index.js".to_string(),
            "/ws/info/alternates.md".to_string(),
            "/ws/docs/a,v.txt".to_string(),
            "/ws/src/,v".to_string(),
        ] {
            assert!(!has_protected_component(p.as_bytes()), "{p}");
        }
    }

    #[test]
    fn protected_names_ignore_ascii_case_and_only_whole_components() {
        assert!(is_protected(b".git"));
        assert!(is_protected(b".GIT"));
        assert!(is_protected(b".Codex"));
        assert!(is_protected(b".agents"));
        assert!(is_protected(b".hg") && is_protected(b".HG") && is_protected(b".jj"));
        assert!(is_protected(b"_darcs") && is_protected(b"_DARCS") && is_protected(b".pijul"));
        assert!(is_protected(b"_FOSSIL_") && is_protected(b".fslckout") && is_protected(b".bzr"));
        assert!(is_protected(b"CVS") && is_protected(b"_MTN") && is_protected(b".svn"));
        assert!(!is_protected(b"cvs") && !is_protected(b"Cvs") && !is_protected(b"_mtn"));
        assert!(is_protected(b".claude") && is_protected(b".SL"));
        assert!(!is_protected(b".hgignore") && !is_protected(b"hg"));
        assert!(!is_protected(b".gitignore"));
        assert!(!is_protected(b"git"));
        // the SQLite side files of a protected name (outside review r79)
        assert!(is_protected(b".fslckout-journal") && is_protected(b"_FOSSIL_-wal"));
        assert!(is_protected(b".fslckout-shm") && !is_protected(b"-journal"));
        assert!(!is_protected(b"notes-journal") && !is_protected(b".fslckout-old"));
        // what `svnadmin create` writes in `format`, and a project's `format` script
        assert!(svn_format_line(b"5\n") && svn_format_line(b"7\nlayout sharded 1000\n"));
        assert!(svn_format_line(b"8") && !svn_format_line(b"#!/bin/sh\n") && !svn_format_line(b""));
        assert!(!is_protected(b".git "));
        assert!(has_protected_component(b"/ws/sub/.git/hooks"));
        assert!(has_protected_component(b"/ws/.codex"));
        assert!(!has_protected_component(b"/ws/sub/.github/x"));
        assert!(is_protected(b"remote.git") && is_protected(b"X.GIT"));
        assert!(!is_protected(b".git2") && !is_protected(b"digit"));
        assert!(is_protected_new_name(b"HEAD") && !is_protected(b"HEAD"));
        // r27 F1: what git's `validate_headref` takes for a HEAD
        assert!(head_bytes_are_gits(b"ref: refs/heads/main\n"));
        assert!(head_bytes_are_gits(b"ref:refs/heads/main"));
        assert!(head_bytes_are_gits(&[b'a'; 40]));
        assert!(!head_bytes_are_gits(b"hello\n"));
        assert!(!head_bytes_are_gits(&[b'a'; 39]));
        assert!(!head_bytes_are_gits(b""));
        assert!(is_head_file(b"/w/plain/HEAD") && !is_head_file(b"/w/plain/HEAD.txt"));
        assert!(!is_head_file(b"/w/HEAD/file"));
        // r27 F5: a sticky world-writable directory is shared unless it is this user's own
        // (the overflow uid a user namespace shows counts as another's)
        let root = std::fs::File::open("/").unwrap();
        let mut st = sys::fstat_fd(std::os::fd::AsFd::as_fd(&root)).unwrap();
        st.st_mode = libc::S_IFDIR | 0o1777;
        st.st_uid = crate::sys::geteuid();
        assert_eq!(shared_sticky(&st), st.st_uid == OVERFLOW_UID);
        st.st_uid = 1234;
        assert!(shared_sticky(&st));
        st.st_mode = libc::S_IFDIR | 0o777;
        assert!(!shared_sticky(&st), "not sticky");
        st.st_mode = libc::S_IFDIR | 0o1775;
        assert!(!shared_sticky(&st), "not world-writable");
        assert!(!is_protected_new_name(b"head") && !is_protected_new_name(b"Head"));
    }
}
