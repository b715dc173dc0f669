//! The creator: the sandbox process that performs the mediated calls (see the module docs).

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use super::sys;
use super::{
    DENIED_ERRNO, Op, Request, fossil_entry, has_protected_component, inside_git_directory,
    is_fossil_database, is_head_file, is_protected, is_protected_new_name,
};

/// Carve-outs that did not exist at the start (a `$CODEX_HOME` to be created, `.git`/`.codex`
/// at a root): nothing may be created at them, below them, or at a directory above them
/// (which would bring a prepared tree, or a symlink, into their place).
static PROTECTED_PATHS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();

/// The temporary roots' shared part (`crate::own_tmp`): no socket, link or directory from
/// elsewhere is put there.
static SHARED_TEMP: std::sync::OnceLock<crate::own_tmp::SharedTemp> = std::sync::OnceLock::new();

/// Whether the directory `dir` is in a temporary root's shared part. Its path is read back
/// only when the policy has a temporary root (a `readlink` per side of every mediated
/// `rename`, `link` and `symlink` otherwise).
fn in_shared_temp(dir: BorrowedFd<'_>) -> Result<bool, i32> {
    use std::os::unix::ffi::OsStrExt;
    let Some(shared) = SHARED_TEMP.get().filter(|s| !s.temp_roots.is_empty()) else {
        return Ok(false);
    };
    let real = real_path(dir)?;
    Ok(shared.is_shared(std::path::Path::new(std::ffi::OsStr::from_bytes(&real))))
}

/// What may be given a name in a temporary root's shared part by `rename`/`link`: not a socket
/// (a server the user's programs find there at a fixed name: outside review r65 F1), not a
/// symbolic link (it could lead to one), not a directory from elsewhere (it could hold one), and
/// not the command's own temporary directory or a directory above it. `entry`: the entry's
/// parent directory and name; `parent_shared`: that parent is in the shared part too.
fn refuse_into_shared_temp(
    parent: BorrowedFd<'_>,
    name: &CString,
    parent_shared: bool,
) -> Result<(), i32> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    let Ok(stat) = sys::fstatat_nofollow(parent.as_raw_fd(), name, &mut st) else {
        return Ok(()); // no such entry: the call fails by itself
    };
    let kind = stat.st_mode & libc::S_IFMT;
    match kind {
        libc::S_IFSOCK | libc::S_IFLNK => Err(DENIED_ERRNO),
        libc::S_IFDIR if !parent_shared => Err(DENIED_ERRNO),
        libc::S_IFDIR => {
            let mut path = real_path(parent)?;
            path.push(b'/');
            path.extend_from_slice(name.as_bytes());
            let holds_own = SHARED_TEMP
                .get()
                .and_then(|s| s.own.as_ref())
                .is_some_and(|o| {
                    use std::os::unix::ffi::OsStrExt;
                    o.starts_with(std::ffi::OsStr::from_bytes(&path))
                });
            // nor another run's directory or anything in it (outside review r66 F2: a
            // concurrent run moved the first run's directory, its server listening, to
            // /tmp/x67, where the user's `TMUX_TMPDIR` pointed)
            if holds_own || in_sandbox_tmp(&path) {
                Err(DENIED_ERRNO)
            } else if !sys::dir_is_empty(parent, name).unwrap_or(false) {
                // nor a directory with anything in it (outside review r70 F1: a concurrent run's
                // workspace in /tmp is shared part here; its server listened in a directory there
                // that this run moved to `$TMUX_TMPDIR/tmux-UID`). `EXDEV`: `mv` and
                // `shutil.move` copy instead, entry by entry, each one checked.
                Err(libc::EXDEV)
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// After a rename whose destination directory a concurrent run moved into a temporary root's
/// shared part between the check and the call ([`landed_in_shared_temp`]): the entry now at
/// `dir`/`name` is judged as if renamed there, by what it is (a socket bound in place of a
/// checked file gets the freed inode number: outside review r68 F1); when refused it is put back
/// (`RENAME_NOREPLACE`), or removed (from a directory the command made unwritable too), or the
/// process that asked is killed; `EACCES` either way.
fn moved_what_was_checked(
    dir: BorrowedFd<'_>,
    name: &CString,
    from: (BorrowedFd<'_>, &CString),
    from_shared: bool,
) -> Result<(), i32> {
    let is_dir = is_directory(dir, name);
    if refuse_into_shared_temp(dir, name, from_shared).is_ok() {
        return Ok(());
    }
    let back = sys::renameat2(
        Some(dir),
        name,
        Some(from.0),
        from.1,
        libc::RENAME_NOREPLACE,
    );
    if back.is_err() && !remove_entry(dir, name, is_dir) {
        // it stays at the name: the caller kills the process that asked (outside review r68
        // F1: the command made the directory 0500 so that the removal failed)
        return Err(GUARD_BREACHED);
    }
    Err(DENIED_ERRNO)
}

/// Moves `op`/`ol` (outside the shared part) to `np`/`nl` (in it) without a window: the entry is
/// opened (`O_PATH|O_NOFOLLOW`, which also keeps its inode number from being given to another
/// file), checked on that descriptor (a regular file, FIFO or device node only: sockets, links
/// and directories are refused there), linked by descriptor at the new name (an entry there is
/// removed first unless `RENAME_NOREPLACE`; a directory there is refused), and its old name
/// removed if it still names that inode. Not atomic: for a moment both names exist, and a
/// replaced destination is missing.
fn move_pinned(
    op: BorrowedFd<'_>,
    ol: &CString,
    np: BorrowedFd<'_>,
    nl: &CString,
    flags: u32,
) -> Result<(), i32> {
    if flags & !libc::RENAME_NOREPLACE != 0 {
        return Err(DENIED_ERRNO);
    }
    let src = sys::openat(Some(op), ol, libc::O_PATH | libc::O_NOFOLLOW, 0).map_err(errno)?;
    let st = sys::fstat_fd(src.as_fd()).map_err(errno)?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK | libc::S_IFLNK | libc::S_IFDIR => return Err(DENIED_ERRNO),
        _ => {}
    }
    let link =
        CString::new(format!("/proc/self/fd/{}", src.as_raw_fd())).map_err(|_| libc::EINVAL)?;
    let mut tries = 0;
    loop {
        match sys::linkat(None, &link, Some(np), nl, libc::AT_SYMLINK_FOLLOW) {
            Ok(()) => break,
            Err(e)
                if e.raw_os_error() == Some(libc::EEXIST)
                    && flags & libc::RENAME_NOREPLACE == 0
                    && tries < 8 =>
            {
                tries += 1;
                let mut dst = std::mem::MaybeUninit::<libc::stat>::uninit();
                match sys::fstatat_nofollow(np.as_raw_fd(), nl, &mut dst) {
                    Ok(d) if d.st_mode & libc::S_IFMT == libc::S_IFDIR => return Err(libc::EISDIR),
                    // the same file under both names (or one name twice): `rename` does
                    // nothing then, and both names stay
                    Ok(d) if (d.st_dev, d.st_ino) == (st.st_dev, st.st_ino) => return Ok(()),
                    Ok(_) => {
                        let _ = sys::unlinkat(Some(np), nl, 0);
                    }
                    Err(_) => {}
                }
            }
            Err(e) => return Err(errno(e)),
        }
    }
    let mut now = std::mem::MaybeUninit::<libc::stat>::uninit();
    if let Ok(s) = sys::fstatat_nofollow(op.as_raw_fd(), ol, &mut now) {
        if (s.st_dev, s.st_ino) == (st.st_dev, st.st_ino) {
            let _ = sys::unlinkat(Some(op), ol, 0);
        }
    }
    Ok(())
}

/// Whether `dir`/`name` is a directory (not followed if a link).
fn is_directory(dir: BorrowedFd<'_>, name: &CString) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    sys::fstatat_nofollow(dir.as_raw_fd(), name, &mut st)
        .is_ok_and(|s| s.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// Moves the empty directory `op`/`ol` to `np`/`nl` within a temporary root's shared part
/// without ever giving a name there to what is in a directory: a new directory (the old one's
/// mode) is made at the new name, replacing an empty one there unless `RENAME_NOREPLACE`, and
/// the old one is removed with `rmdir`, which the kernel refuses when anything is in it (then
/// the new one is removed and the call fails with `EXDEV`, so that `mv` copies). Not a rename:
/// the directory is a new inode (descriptors of the old one see it deleted), and a replaced
/// destination is gone even when the move then fails.
fn move_empty_directory(
    op: BorrowedFd<'_>,
    ol: &CString,
    np: BorrowedFd<'_>,
    nl: &CString,
    flags: u32,
) -> Result<(), i32> {
    if flags & !libc::RENAME_NOREPLACE != 0 {
        return Err(libc::EXDEV);
    }
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    let src = sys::fstatat_nofollow(op.as_raw_fd(), ol, &mut st).map_err(errno)?;
    let wanted = src.st_mode & 0o7777;
    // made as `mkdir` makes one there: a setgid directory's group or a default ACL is not
    // passed on to it (outside reviews r31/r32, see [`Inherited`])
    let inherited = Inherited::of(np);
    let mode = inherited.creation_mode(wanted);
    match sys::mkdirat(Some(np), nl, mode) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) && flags & libc::RENAME_NOREPLACE == 0 => {
            let mut dt = std::mem::MaybeUninit::<libc::stat>::uninit();
            let dst = sys::fstatat_nofollow(np.as_raw_fd(), nl, &mut dt).map_err(errno)?;
            if (dst.st_dev, dst.st_ino) == (src.st_dev, src.st_ino) {
                return Ok(()); // renamed onto itself: nothing to do, as the kernel does
            }
            if dst.st_mode & libc::S_IFMT != libc::S_IFDIR {
                return Err(libc::ENOTDIR);
            }
            sys::unlinkat(Some(np), nl, libc::AT_REMOVEDIR).map_err(errno)?;
            sys::mkdirat(Some(np), nl, mode).map_err(errno)?;
        }
        Err(e) => return Err(errno(e)),
    }
    settle_entry(inherited, np, nl, wanted);
    match sys::unlinkat(Some(op), ol, libc::AT_REMOVEDIR) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = sys::unlinkat(Some(np), nl, libc::AT_REMOVEDIR);
            Err(match e.raw_os_error() {
                Some(libc::ENOTEMPTY | libc::EEXIST) => libc::EXDEV,
                _ => errno(e),
            })
        }
    }
}

/// The answer of [`perform`] when something that can serve could not be taken back out of a
/// temporary root's shared part: the requesting process is killed ([`super::supervisor`]).
pub(super) const GUARD_BREACHED: i32 = libc::ENOTRECOVERABLE;

/// Removes `dir`/`name` (a directory when `is_dir`), giving `dir` back its owner's write bit
/// when the command took it away; `false` when it is still there.
fn remove_entry(dir: BorrowedFd<'_>, name: &CString, is_dir: bool) -> bool {
    let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
    // a thread of the command may flip the directory's mode back as fast as it can
    for _ in 0..1000 {
        match sys::unlinkat(Some(dir), name, flags) {
            Ok(()) => return true,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return true,
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => return false,
            Err(_) => {
                let _ = sys::make_dir_writable(dir);
                std::thread::yield_now();
            }
        }
    }
    false
}

/// Whether `path` is a run directory of the sandbox's (`codex-sandbox-*` in a temporary root,
/// see `crate::own_tmp`), its parent, or below one.
fn in_sandbox_tmp(path: &[u8]) -> bool {
    path.split(|&b| b == b'/')
        .any(|c| c.starts_with(b"codex-sandbox-"))
}

/// `a` is `b` or below it.
fn at_or_below(a: &[u8], b: &[u8]) -> bool {
    !b.is_empty()
        && (a == b || (a.starts_with(b) && (b.ends_with(b"/") || a.get(b.len()) == Some(&b'/'))))
}

/// Whether a name created at `path` would be, be below, or be a directory above a protected
/// path.
fn touches_protected_path(path: &[u8]) -> bool {
    PROTECTED_PATHS.get().is_some_and(|ps| {
        ps.iter()
            .any(|p| at_or_below(path, p) || at_or_below(p, path))
    })
}

/// Whether an existing file at `path` is a protected path or below one.
fn below_protected_path(path: &[u8]) -> bool {
    PROTECTED_PATHS
        .get()
        .is_some_and(|ps| ps.iter().any(|p| at_or_below(path, p)))
}

/// `EACCES` when `fd` (an `O_PATH` descriptor of an entry about to be renamed or linked) is a
/// directory that is or holds a repository at any depth ([`subtree_holds_repository`]: a git
/// or svn repository by its contents, a protected name, a Fossil database, a link to any of
/// them), or a Fossil database itself (outside review r27 F3: `mv lib lib.moved; mkdir lib`
/// took a submodule's `.git` file away with its directory, as removing it did in r26 F1, and
/// the user's next `git reset --hard` in `lib` acted on the superproject; r80 F1, r82 F3: the
/// same with a directory above a Fossil or svn repository, one or two levels up). A directory
/// too large to look at in full gets `EXDEV`: `mv` and `shutil.move` then copy it entry by
/// entry and remove the originals one by one, each call checked.
fn refuse_repository_entry(fd: BorrowedFd<'_>) -> Result<(), i32> {
    match sys::info(fd).map_err(errno)?.kind {
        libc::S_IFDIR => match super::subtree_holds_repository(fd) {
            super::Subtree::Clear => Ok(()),
            super::Subtree::Repository => Err(DENIED_ERRNO),
            super::Subtree::TooLarge => Err(libc::EXDEV),
        },
        // a Fossil repository is not renamed, linked or removed either (another file put in
        // its place would be the one the checkout names: outside review r79 F1)
        libc::S_IFREG if is_fossil_database(fd) => Err(DENIED_ERRNO),
        _ => Ok(()),
    }
}

/// What a directory hands to what is created in it, beyond the creator's own mode: a group
/// (setgid) and access control lists (a default ACL). Both can give another local user write
/// access to a file the command creates, which the command can then move over a workspace file
/// that user runs or edits later.
///
/// - **A setgid directory whose group is not the user's private one, or that someone else
///   owns** (outside review r31 F1: another local user's `2777` directory; with `umask 002` a
///   script made there was group-writable for that user's group, `chmod a+x` added no group
///   write bit for the metadata mediation to refuse, and `mv` put it over the workspace's
///   `build.sh`; r32 F2: a directory made there is the user's own but keeps that group, and what
///   was made in it was not covered; r32 F4b: the user's own project inside such a directory):
///   what is created there gets no group write bit, from its creation on (r32 F3: stripping it
///   afterwards left a moment in which that user's inotify watcher opened the file for writing
///   and kept the descriptor), and a directory loses the setgid bit the kernel gives it.
/// - **A default ACL** (r32 F1: another user's directory with `setfacl -d -m u:THEM:rwx`; the
///   file made there inherited the entry, and `chmod 0775` opened its mask): what is created
///   there is created with no group-class bits (the ACL mask, so the inherited entries grant
///   nothing from the start), then its inherited ACLs are removed and it gets the mode it
///   asked for. The command cannot set an ACL itself (the metadata mediation refuses it), so it
///   cannot inherit one either. A user's own default ACLs are not passed on to what the
///   command creates (documented cost).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Inherited {
    shared_group: bool,
    default_acl: bool,
}

impl Inherited {
    fn of(parent: BorrowedFd<'_>) -> Self {
        let Ok(p) = sys::fstat_fd(parent) else {
            return Self::default();
        };
        let me = crate::sys::geteuid();
        let shared_group = p.st_mode & libc::S_ISGID != 0
            && (p.st_uid != me
                || p.st_uid == super::OVERFLOW_UID
                || !crate::unix_connect::private_group(p.st_gid));
        let default_acl = crate::meta_guard::sys::has_xattr(parent, c"system.posix_acl_default");
        Self {
            shared_group,
            default_acl,
        }
    }

    /// The mode to create with (`mode` already has the umask applied).
    fn creation_mode(self, mode: u32) -> u32 {
        let mut m = mode;
        if self.shared_group {
            m &= !libc::S_IWGRP;
        }
        if self.default_acl {
            m &= !0o070;
        }
        m
    }

    /// After `fd` (any descriptor of the new file, `O_PATH` included) was created with
    /// [`Self::creation_mode`] of `mode`: the inherited ACLs removed and the mode set, without
    /// the group write bit and the setgid bit under a shared group. Best effort on an error
    /// (the call itself stands; its group-class bits stay cleared, which grants nothing).
    fn settle(self, fd: &OwnedFd, mode: u32) {
        use crate::meta_guard::sys as msys;
        let Ok(st) = sys::fstat_fd(fd.as_fd()) else {
            return;
        };
        if st.st_uid != crate::sys::geteuid() || st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return;
        }
        let mut want = st.st_mode & 0o7777;
        if self.default_acl {
            let _ = msys::removexattr_pinned(fd, c"system.posix_acl_access");
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                let _ = msys::removexattr_pinned(fd, c"system.posix_acl_default");
            }
            // the asked-for mode, and the setgid bit the kernel gave a directory
            want = (mode & 0o777) | (st.st_mode & libc::S_ISGID);
        }
        if self.shared_group {
            want &= !(libc::S_IWGRP | libc::S_ISGID);
        }
        if want != st.st_mode & 0o7777 {
            let _ = msys::chmod_pinned(fd, want);
        }
    }
}

/// [`Inherited::settle`] for the entry `name` just made in `parent` (reached with `O_PATH`, so
/// a FIFO or a socket file is not opened).
fn settle_entry(inherited: Inherited, parent: BorrowedFd<'_>, name: &std::ffi::CStr, mode: u32) {
    if inherited == Inherited::default() {
        return;
    }
    if let Ok(fd) = sys::openat(Some(parent), name, libc::O_PATH | libc::O_NOFOLLOW, 0) {
        inherited.settle(&fd, mode);
    }
}

/// A file opened with `O_CREAT` in a setgid directory of a shared group: the group write bit
/// and the setgid bit come off even when it already existed and is the user's (as before
/// r32: a file of the user's made there under `umask 002`).
fn no_group_write_in_a_shared_group(inherited: Inherited, fd: &OwnedFd) {
    if !inherited.shared_group {
        return;
    }
    let Ok(f) = sys::fstat_fd(fd.as_fd()) else {
        return;
    };
    let bits = libc::S_IWGRP | libc::S_ISGID;
    if f.st_uid == crate::sys::geteuid() && f.st_mode & bits != 0 {
        let _ = crate::meta_guard::sys::fchmod(fd, f.st_mode & 0o7777 & !bits);
    }
}

/// `EACCES` when the entry `name` of `parent` is a directory whose entries would be history
/// files ([`super::is_history_file`]) under the name `new_name` (outside review r89 H1: a
/// directory holding `evil.pack` + `evil.idx`, made where the names mean nothing, renamed to a
/// borrowed object store's empty `pack`, and git loaded the pack; H2: the same for a loose
/// object's two-hex-digit directory and `info`). Only names that make history files are looked
/// at (two hex digits, `pack`, `info`, `commit-graphs`); an unreadable directory counts as one.
/// A symbolic link under such a name is refused too (r90 A-F1: the link's directory was filled
/// under another name).
/// `lock`: the directory is held exclusively ([`lock_dir`]) until the call ends (the check
/// before the rename; the one after it runs under that hold already).
/// Returns the identity (device, inode) of what it checked, file or directory, when `new_name`
/// is a store's directory name: the rename must move that and nothing else
/// ([`renamed_checked_directory`]; a file checked and a directory exchanged in for it before
/// the call was renamed unchecked). Nothing there: `ENOENT` (something could be put there
/// before the call).
fn no_history_under(
    parent: BorrowedFd<'_>,
    name: &CString,
    new_name: &[u8],
    lock: bool,
) -> Result<Option<(u64, u64)>, i32> {
    use std::os::unix::ffi::OsStrExt;
    if !super::is_store_directory_name(new_name) {
        return Ok(None);
    }
    let entry =
        sys::openat(Some(parent), name, libc::O_PATH | libc::O_NOFOLLOW, 0).map_err(errno)?;
    let info = sys::info(entry.as_fd()).map_err(errno)?;
    match info.kind {
        libc::S_IFLNK => return Err(DENIED_ERRNO),
        libc::S_IFDIR => {}
        _ => return Ok(Some(info.id)), // a file holds no entries
    }
    // no call of any sandbox names something in it from here to the rename
    if lock {
        lock_dir(entry.as_fd(), true)?;
    }
    let Ok(d) = sys::openat(
        Some(entry.as_fd()),
        c".",
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NONBLOCK,
        0,
    ) else {
        return Err(DENIED_ERRNO);
    };
    let Ok(list) = std::fs::read_dir(format!("/proc/self/fd/{}", d.as_raw_fd())) else {
        return Err(DENIED_ERRNO);
    };
    for e in list {
        match e {
            Ok(e) if !super::is_history_file(new_name, e.file_name().as_bytes()) => {}
            _ => return Err(DENIED_ERRNO),
        }
    }
    Ok(Some(info.id))
}

/// `prefix` and 16 random hex digits: a predictable name could be taken beforehand.
fn random_name(prefix: &[u8]) -> Result<CString, i32> {
    let mut r = [0u8; 8];
    crate::sys::random_bytes(&mut r).map_err(errno)?;
    let mut name = prefix.to_vec();
    name.extend(r.iter().flat_map(|b| format!("{b:02x}").into_bytes()));
    CString::new(name).map_err(|_| libc::EINVAL)
}

/// The rename of `op`/`ol`, which [`no_history_under`] checked (identity `id`; a directory is
/// held locked), to an object store's directory name `np`/`nl`, made so that what is renamed
/// is what was checked: the kernel looks the old name up again, and another
/// sandbox could exchange what stands there with a directory holding history files between
/// the check and the call (outside review r94 F1: `T/D` checked, swapped with `T/D2` holding
/// an object by a second sandbox's `RENAME_EXCHANGE` of two neutral names, and `T/D2` renamed
/// to `T/ab`; the check after the call moved it aside, but a victim's `git cat-file` had found
/// the object 25 times in 560,000 look-ups). First to a staging name,
/// `.codex-staging-<16 random hex digits>`, that no call of any sandbox may name
/// ([`super::is_protected`]); there it is compared with what was checked (put back and
/// `EACCES` when it is another), then given the new name with the call's flags.
fn renamed_checked_directory(
    op: BorrowedFd<'_>,
    ol: &CStr,
    np: BorrowedFd<'_>,
    nl: &CStr,
    flags: u32,
    id: (u64, u64),
) -> Result<(), i32> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    let stage = random_name(super::STAGING_PREFIX)?;
    sys::renameat2(Some(op), ol, Some(op), &stage, libc::RENAME_NOREPLACE).map_err(errno)?;
    let staged = sys::fstatat_nofollow(op.as_raw_fd(), &stage, &mut st)
        .ok()
        .map(|s| (s.st_dev, s.st_ino));
    if staged != Some(id) {
        put_back(op, &stage, ol);
        return Err(DENIED_ERRNO);
    }
    if let Err(e) = sys::renameat2(Some(op), &stage, Some(np), nl, flags) {
        put_back(op, &stage, ol);
        return Err(errno(e));
    }
    // two names of one file: the kernel's rename does nothing and succeeds, and the staging
    // name stays (outside review r97 F1: a name no sandbox may remove, 50 of them in 50 tries,
    // froze the directory): back to the old name, as the kernel leaves it
    if sys::fstatat_nofollow(op.as_raw_fd(), &stage, &mut st).is_ok() {
        put_back(op, &stage, ol);
    }
    Ok(())
}

/// The staged `dir`/`stage` back at `name`; when that name is taken now, moved aside.
fn put_back(dir: BorrowedFd<'_>, stage: &CStr, name: &CStr) {
    if sys::renameat2(Some(dir), stage, Some(dir), name, libc::RENAME_NOREPLACE).is_err() {
        let _ = move_aside(dir, stage);
    }
}

/// Held by every call the creator makes for the command: shared, except by a rename that gives
/// something an object store's directory name ([`super::is_store_directory_name`]), which
/// holds it alone. The rules on history files judge a name by the name of the directory it is
/// in; the directory's own name can change under a call checked a moment before (outside
/// review r91 C-F1: a directory `D` holding `a` and `b` renamed to a borrowed store's `pack`
/// while two other threads renamed `a` to `e.idx` and `b` to `e.pack` through a descriptor of
/// `D`: checked while `D` was still `D`, done when it was `pack`; in about one try in 400 both
/// landed and git loaded the pack). Now such a rename waits for every call in flight, and the
/// calls after it see the new name.
static NAMING: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// The directory a call names something in is held with `flock(LOCK_SH)` when the name would
/// be a history file under a store's directory name ([`super::could_be_history_name`]), and a
/// directory renamed to an object store's name with `flock(LOCK_EX)`, for the call's duration: the same
/// inodes in every sandbox of the machine, so that a call of another sandbox, with a creator
/// and a [`NAMING`] of its own, cannot name something in a directory while it is being renamed
/// to a store's name (outside review r93 E-F2: with only a check after the call, a victim's
/// `git cat-file` outside read the command's object once in 3,908 reads during r92's
/// two-sandbox race, in the moment between the call and the check). A directory the user
/// cannot read (mode `0300`) cannot be locked: no such name is made in it (`EACCES`). Released when
/// the call ends ([`DirLocks`]).
fn lock_dir(dir: BorrowedFd<'_>, exclusive: bool) -> Result<(), i32> {
    let fd = sys::openat(
        Some(dir),
        c".",
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NONBLOCK,
        0,
    )
    .map_err(|_| DENIED_ERRNO)?;
    let op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    retrying(|| match sys::flock(fd.as_fd(), op | libc::LOCK_NB) {
        Ok(()) => Some(Ok(())),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EWOULDBLOCK | libc::EINTR)) => None,
        Err(_) => Some(Err(DENIED_ERRNO)),
    })?;
    HELD_DIRS.with(|h| h.borrow_mut().push(fd));
    Ok(())
}

/// `attempt` until it gives an answer (`Some`), every 50 µs, for up to 5 s, then `EBUSY`: the
/// guard's locks never queue (a call in flight that blocks, such as the open of a FIFO waiting
/// for its reader, must not make others wait behind it without end).
fn retrying<T>(mut attempt: impl FnMut() -> Option<Result<T, i32>>) -> Result<T, i32> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if let Some(answer) = attempt() {
            return answer;
        }
        if std::time::Instant::now() > deadline {
            return Err(libc::EBUSY);
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
}

thread_local! {
    /// The directory locks of the call this thread is making ([`lock_dir`]).
    static HELD_DIRS: std::cell::RefCell<Vec<OwnedFd>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Releases the calling thread's [`HELD_DIRS`] when the call ends.
struct DirLocks;

impl Drop for DirLocks {
    fn drop(&mut self) {
        HELD_DIRS.with(|h| h.borrow_mut().clear());
    }
}

/// The hold a call has on [`NAMING`] for its duration.
enum NamingHold {
    Shared(#[allow(dead_code)] std::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>),
}

/// The hold `req` needs on [`NAMING`]. A rename to an object store's directory name takes it
/// alone without ever queueing (so that a call in flight which blocks, such as the open of a
/// FIFO waiting for its reader, cannot make the others wait behind the rename): it retries
/// for up to 5 s, then fails with `EBUSY`.
fn naming_lock(req: &Request) -> Result<NamingHold, i32> {
    let names_store =
        |path: &[u8]| split(path).is_some_and(|(_, last, _)| super::is_store_directory_name(last));
    let alone = req.op == Op::Rename
        && (names_store(&req.path2)
            || (req.flags as u32 & libc::RENAME_EXCHANGE != 0 && names_store(&req.path1)));
    if !alone {
        return Ok(NamingHold::Shared(
            NAMING.read().unwrap_or_else(|e| e.into_inner()),
        ));
    }
    retrying(|| match NAMING.try_write() {
        Ok(g) => Some(Ok(NamingHold::Alone(g))),
        Err(std::sync::TryLockError::Poisoned(e)) => Some(Ok(NamingHold::Alone(e.into_inner()))),
        Err(std::sync::TryLockError::WouldBlock) => None,
    })
}

/// After a rename gave `dir`/`name` its name: when that name is an object store's directory
/// name and what stands there now would not have passed [`no_history_under`] (changed by
/// another thread between the check and the call), it is moved aside to a new name
/// (`.refused-<16 random hex digits>`, where its entries are no history files) and the call fails with
/// `EACCES`; when even that fails, the process that asked is killed ([`GUARD_BREACHED`]).
fn settled_under_store_name(dir: BorrowedFd<'_>, name: &CString) -> Result<(), i32> {
    let bytes = trim_slashes(name.to_bytes());
    if !super::is_store_directory_name(bytes) {
        return Ok(());
    }
    match no_history_under(dir, name, bytes, false) {
        Ok(_) | Err(libc::ENOENT) => Ok(()),
        Err(_) => move_aside(dir, name),
    }
}

/// After a call gave `dir`/`name` a name (checked before the call by the directory's path then):
/// whether that name is a history file ([`super::is_history_path`]) by the directory's path
/// **now**. Another sandbox of the user has a creator and a [`NAMING`] of its own: its rename
/// of the directory to an object store's name is not held off by this one's calls (outside
/// review r92 D-F1: two sandboxes on one workspace, one renaming a directory to a two-hex
/// name, the other renaming a file in it to a 38-hex name through a descriptor: the object
/// landed in a borrowed store, and the victim's `git worktree add` wrote the command's
/// script). What landed so is taken back by the caller.
fn became_history(dir: BorrowedFd<'_>, name: &CStr) -> bool {
    real_path(dir)
        .is_ok_and(|now| super::is_history_path(&entry_path(now, trim_slashes(name.to_bytes()))))
}

/// [`became_history`], then the entry the call made removed and `EACCES`; when even that
/// fails, the process that asked is killed ([`GUARD_BREACHED`]).
fn unmade_if_history(dir: BorrowedFd<'_>, name: &CStr) -> Result<(), i32> {
    if !became_history(dir, name) {
        return Ok(());
    }
    match sys::unlinkat(Some(dir), name, 0) {
        Ok(()) => Err(DENIED_ERRNO),
        Err(_) => Err(GUARD_BREACHED),
    }
}

/// [`became_history`] for what a rename put at `dir`/`name`: moved aside to
/// `.refused-<16 random hex digits>` (no history file by name) and `EACCES`.
fn moved_aside_if_history(dir: BorrowedFd<'_>, name: &CStr) -> Result<(), i32> {
    if !became_history(dir, name) {
        return Ok(());
    }
    move_aside(dir, name)
}

/// `dir`/`name` renamed to `.refused-<16 random hex digits>` in the same directory, then
/// `EACCES`; a file that cannot be moved is removed; [`GUARD_BREACHED`] when neither works.
fn move_aside(dir: BorrowedFd<'_>, name: &CStr) -> Result<(), i32> {
    for _ in 0..16 {
        // short, whatever the name's length (outside review r93 E-F1: a 244-byte pack name
        // plus a suffix was too long, the move failed and the file stayed)
        let aside = random_name(b".refused-")?;
        match sys::renameat2(Some(dir), name, Some(dir), &aside, libc::RENAME_NOREPLACE) {
            Ok(()) => return Err(DENIED_ERRNO),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
            Err(_) => break,
        }
    }
    // a file that cannot be moved is removed (the directory case has no such way out)
    if sys::unlinkat(Some(dir), name, 0).is_ok() {
        return Err(DENIED_ERRNO);
    }
    Err(GUARD_BREACHED)
}

/// `name` without the trailing slashes a path may give its last component.
fn trim_slashes(name: &[u8]) -> &[u8] {
    let len = name.len() - name.iter().rev().take_while(|&&b| b == b'/').count();
    &name[..len]
}

/// [`refuse_repository_entry`] for the entry `name` of `parent` (missing: nothing to refuse),
/// about to be removed or renamed. A symbolic link whose target is or holds a repository is
/// neither (outside review r82 F2: `rm links/m.fossil`, the link the user's checkout named,
/// and the command's own copy with a hook put there); one whose target is too large to look
/// at in full neither (`EACCES`: a copy of a link is a link again).
fn entry_is_no_repository(parent: BorrowedFd<'_>, name: &std::ffi::CStr) -> Result<(), i32> {
    let Ok(fd) = sys::openat(Some(parent), name, libc::O_PATH | libc::O_NOFOLLOW, 0) else {
        return Ok(());
    };
    // a Fossil database's side file is not removed or replaced either (r84 F2: it holds
    // frames not yet in the database)
    if super::sqlite_side_base(name.to_bytes()).is_some_and(|base| fossil_entry(parent, base)) {
        return Err(DENIED_ERRNO);
    }
    if sys::info(fd.as_fd()).map_err(errno)?.kind != libc::S_IFLNK {
        return refuse_repository_entry(fd.as_fd());
    }
    match super::link_target(parent, name) {
        super::LinkTarget::Nothing => Ok(()),
        super::LinkTarget::Repository => Err(DENIED_ERRNO),
        super::LinkTarget::Directory(t) => match super::subtree_holds_repository(t.as_fd()) {
            super::Subtree::Clear => Ok(()),
            _ => Err(DENIED_ERRNO),
        },
    }
}

/// The resolved location of the entry `name` of the directory at `parent` (a resolved path).
fn entry_path(mut parent: Vec<u8>, name: &[u8]) -> Vec<u8> {
    if parent.last() != Some(&b'/') {
        parent.push(b'/');
    }
    parent.extend_from_slice(name);
    parent
}

/// Symlinks followed by hand in the last component of an `O_CREAT` open (the kernel's limit).
const MAX_HOPS: usize = 40;
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// The creator, as the init sees it after the fork.
#[derive(Debug)]
pub struct Creator {
    /// The creator's **lifeline** (close-on-exec): the creator exits when every copy is closed.
    /// The init holds it until the command has exited, then drops it before sweeping the
    /// survivors.
    pub lifeline: OwnedFd,
    /// Where the init sends the notifying filter's listener once it is installed
    /// ([`crate::unix_connect::install_in_child`]); dropped unsent, the creator exits.
    pub handoff: OwnedFd,
}

/// Fork the creator (in the sandbox's init, after the mount namespace, `no_new_privs` and the
/// init's Landlock domain, **before** the seccomp filters). It shares the init's Landlock domain
/// and is not under any seccomp filter; the command, in a domain nested below it, can neither
/// signal nor ptrace it, while it may read the command's memory and take its descriptors (the
/// ptrace rule of Landlock: an enclosing domain only). `channels` go to the launcher, which
/// handles what the creator forwards (`connect`, `listen`, metadata calls). `proc_matches`:
/// `/proc` shows the creator's pid namespace. The child never returns.
pub fn spawn_creator(
    channels: Vec<OwnedFd>,
    protected_paths: Vec<std::path::PathBuf>,
    proc_matches: bool,
    shared: crate::own_tmp::SharedTemp,
) -> std::io::Result<Creator> {
    let (life_r, life_w) = crate::sys::pipe_cloexec()?;
    let (handoff_init, handoff_creator) = crate::unix_connect::sys::socketpair()?;
    match crate::sys::fork()? {
        crate::sys::Fork::Parent { .. } => Ok(Creator {
            lifeline: life_w,
            handoff: handoff_init,
        }),
        crate::sys::Fork::Child => {
            drop(life_w);
            drop(handoff_init);
            let _ = SHARED_TEMP.set(shared);
            let _ = PROTECTED_PATHS.set(
                protected_paths
                    .iter()
                    .map(|p| {
                        use std::os::unix::ffi::OsStrExt;
                        p.as_os_str().as_bytes().to_vec()
                    })
                    .collect(),
            );
            let code = match set_up(&channels, &life_r, &handoff_creator) {
                Ok(()) => match crate::unix_connect::sys::recv_fd(&handoff_creator) {
                    Ok(Some(listener)) => {
                        drop(handoff_creator);
                        // Best effort: a kernel without the flag (before 6.6) is only slower.
                        let _ = crate::unix_connect::sys::set_sync_wakeup(&listener);
                        // this thread serves too, until the lifeline's EOF (the init let go,
                        // or died) or the listener's end; then the process waits for the EOF
                        serve_all(listener, channels, proc_matches, life_r.as_fd());
                        let mut b = [0u8; 1];
                        let _ = sys::read_eintr(life_r.as_fd(), &mut b);
                        0
                    }
                    // the init failed before installing the filter: it reports why
                    _ => crate::EXIT_SETUP_FAILED,
                },
                Err(e) => {
                    eprintln!("codex sandbox: name guard: {e}");
                    crate::EXIT_SETUP_FAILED
                }
            };
            crate::sys::exit_now(code)
        }
    }
}

fn set_up(channels: &[OwnedFd], lifeline: &OwnedFd, handoff: &OwnedFd) -> std::io::Result<()> {
    crate::sys::set_parent_death_signal(libc::SIGKILL)?;
    sys::set_not_dumpable()?;
    let mut keep: Vec<i32> = channels.iter().map(|c| c.as_raw_fd()).collect();
    keep.push(lifeline.as_raw_fd());
    keep.push(handoff.as_raw_fd());
    sys::close_all_but(&keep);
    sys::stdio_to_dev_null()?;
    sys::set_umask(0);
    if crate::sys::getuid() != 0 {
        // The command runs without capabilities (its uid is not 0): so does the creator, but
        // for CAP_SYS_PTRACE where it has it (in the sandbox's user namespace, which owns the
        // command's memory): a non-dumpable command is read too (outside review r22 F2: ssh's
        // file calls failed with EFAULT). Without a user namespace it has none: dropped all.
        if sys::keep_only_ptrace_capability().is_err() {
            sys::drop_capabilities()?;
        }
    }
    Ok(())
}

/// Threads serving the listener, one per channel, started as they are needed: one at the
/// start, another whenever every running one is busy with a call (at most one per channel).
/// A command that makes no guarded call (`/bin/true`) costs one thread instead of four, and a
/// busy one (`make -j2`) reaches the same four threads after its first concurrent calls.
/// No notification is ever without a listener: the listener exists from the start (held
/// here), and a call that comes while every thread is busy waits in the kernel's queue.
struct Pool {
    listener: OwnedFd,
    /// Channels no thread serves yet (a thread takes one when it starts).
    spare: std::sync::Mutex<Vec<OwnedFd>>,
    /// Threads waiting for a notification.
    idle: std::sync::atomic::AtomicUsize,
    proc_matches: bool,
}

impl Pool {
    /// Start one more thread if a channel is spare. `false`: none left (or the thread could
    /// not be created: the running ones keep serving).
    fn grow(self: &std::sync::Arc<Self>) -> bool {
        use std::sync::atomic::Ordering;
        let chan = match self.spare.lock() {
            Ok(mut spare) => spare.pop(),
            Err(_) => None,
        };
        let Some(chan) = chan else {
            return false;
        };
        self.idle.fetch_add(1, Ordering::SeqCst);
        let pool = self.clone();
        let spawned = std::thread::Builder::new()
            .name("guard-creator".into())
            .spawn(move || serve(&pool, &chan, None));
        if spawned.is_err() {
            self.idle.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        true
    }
}

/// Serve the listener on the calling thread (the creator's main thread) until `lifeline` reads
/// EOF or the listener ends; [`Pool::grow`] adds the other threads as calls need them. They end
/// with the process.
fn serve_all(
    listener: OwnedFd,
    mut channels: Vec<OwnedFd>,
    proc_matches: bool,
    lifeline: BorrowedFd<'_>,
) {
    // the first channel: the one the launcher's first thread serves from the start
    // (`unix_connect::supervisor::run_forwarded_all`); the others are taken from the end
    if channels.is_empty() {
        return;
    }
    let own = channels.remove(0);
    let pool = std::sync::Arc::new(Pool {
        listener,
        spare: std::sync::Mutex::new(channels),
        idle: std::sync::atomic::AtomicUsize::new(1),
        proc_matches,
    });
    serve(&pool, &own, Some(lifeline));
}

/// Answer notifications until no process uses the filter any more (or, given a `lifeline`,
/// until it reads EOF): the name guard's calls here, the rest (`connect`, `listen`, metadata)
/// forwarded to the launcher over `chan`.
fn serve(pool: &std::sync::Arc<Pool>, chan: &OwnedFd, lifeline: Option<BorrowedFd<'_>>) {
    use crate::unix_connect::sys as nsys;
    use std::sync::atomic::Ordering;
    let listener = &pool.listener;
    loop {
        match lifeline {
            None => match nsys::wait_readable(listener) {
                Ok(true) => {}
                Ok(false) | Err(_) => return,
            },
            Some(life) => match nsys::wait_any_ready(&[listener.as_fd(), life]) {
                // the lifeline: readable only at its EOF (nothing is ever written to it)
                Ok(ready) if ready.get(1) == Some(&true) => return,
                Ok(_) => {
                    if !matches!(nsys::wait_readable(listener), Ok(true)) {
                        return;
                    }
                }
                Err(_) => return,
            },
        }
        let notif = match nsys::notif_recv(listener) {
            Ok(n) => n,
            Err(_) => return,
        };
        // busy now: when no other thread waits, start one for the next call before this one
        if pool.idle.fetch_sub(1, Ordering::SeqCst) == 1 {
            pool.grow();
        }
        if !super::is_guarded(i64::from(notif.data.nr)) {
            if let Err(errno) = crate::unix_connect::forward(listener, &notif, chan) {
                let _ = nsys::notif_send(listener, notif.id, errno);
            }
        } else {
            match super::supervisor::handle(listener, &notif, pool.proc_matches) {
                super::Answer::Errno(errno) => {
                    let _ = nsys::notif_send(listener, notif.id, errno);
                }
                super::Answer::Fd { fd, cloexec } => {
                    if sys::notif_addfd_send(listener.as_fd(), notif.id, fd.as_fd(), cloexec)
                        .is_err()
                    {
                        let _ = nsys::notif_send(listener, notif.id, DENIED_ERRNO);
                    }
                }
            }
        }
        pool.idle.fetch_add(1, Ordering::SeqCst);
    }
}

type Outcome = Result<Option<OwnedFd>, i32>;

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn cstr(b: &[u8]) -> Result<CString, i32> {
    CString::new(b).map_err(|_| libc::EINVAL)
}

/// Perform one request (this thread's umask set to the child's first).
pub(super) fn perform(req: &Request, fds: Vec<OwnedFd>) -> Outcome {
    let _naming = naming_lock(req)?;
    let _dir_locks = DirLocks;
    let mut fds = fds.into_iter();
    let dir1 = if req.has_dir1 { fds.next() } else { None };
    let dir2 = if req.has_dir2 { fds.next() } else { None };
    if (req.has_dir1 && dir1.is_none()) || (req.has_dir2 && dir2.is_none()) {
        return Err(libc::EPROTO);
    }
    // the creator's umask is 0 (set once: threads share it); the child's is applied here
    let mut req = req.clone();
    // and the modes no command may create with (`crate::seccomp::MODES`): cleared, as a umask
    // would (a creation mode of 0666 with umask 0 is legal; the file gets 0664)
    req.mode = (req.mode & libc::S_IFMT)
        | (req.mode & 0o7777 & !req.umask & !crate::seccomp::FORBIDDEN_MODE_BITS);
    let req = &req;
    let d1 = dir1.as_ref().map(|d| d.as_fd());
    let d2 = dir2.as_ref().map(|d| d.as_fd());
    match req.op {
        Op::Open => open(d1, &req.path1, req.flags, req.mode),
        Op::Reopen => match d1 {
            Some(fd) => reopen_checked(fd, req.flags, false),
            None => Err(libc::EPROTO),
        },
        Op::Mkdir => match target_refusing(d1, &req.path1, is_protected)? {
            Target::Direct => sys::mkdirat(d1, &cstr(&req.path1)?, req.mode).map_err(errno),
            Target::In(parent, last) => {
                let inherited = Inherited::of(parent.as_fd());
                let mode = inherited.creation_mode(req.mode);
                sys::mkdirat(Some(parent.as_fd()), &last, mode).map_err(errno)?;
                settle_entry(inherited, parent.as_fd(), &last, req.mode);
                Ok(())
            }
        }
        .map(|()| None),
        Op::Mknod => match target(d1, &req.path1)? {
            Target::Direct => {
                sys::mknodat(d1, &cstr(&req.path1)?, req.mode, req.dev as _).map_err(errno)
            }
            Target::In(parent, last) => {
                let inherited = Inherited::of(parent.as_fd());
                let mode = (req.mode & libc::S_IFMT) | inherited.creation_mode(req.mode & 0o7777);
                sys::mknodat(Some(parent.as_fd()), &last, mode, req.dev as _).map_err(errno)?;
                unmade_if_history(parent.as_fd(), &last)?;
                settle_entry(inherited, parent.as_fd(), &last, req.mode);
                Ok(())
            }
        }
        .map(|()| None),
        Op::Symlink => {
            let content = cstr(&req.path1)?;
            match target(d2, &req.path2)? {
                Target::Direct => sys::symlinkat(&content, d2, &cstr(&req.path2)?).map_err(errno),
                Target::In(parent, last) => {
                    // no link in a temporary root's shared part: it could lead the user's
                    // programs to the command's server (outside review r65 F1)
                    if in_shared_temp(parent.as_fd())? {
                        return Err(DENIED_ERRNO);
                    }
                    // no link named like an object store's directory (r90 A-F1)
                    if super::is_store_directory_name(trim_slashes(last.to_bytes())) {
                        return Err(DENIED_ERRNO);
                    }
                    sys::symlinkat(&content, Some(parent.as_fd()), &last).map_err(errno)?;
                    unmade_if_history(parent.as_fd(), &last)?;
                    // its directory moved into the shared part meanwhile (r71 F1)
                    if landed_in_shared_temp(parent.as_fd(), &last)? {
                        return take_back(parent.as_fd(), &last).map(|()| None);
                    }
                    Ok(())
                }
            }
            .map(|()| None)
        }
        Op::Link => link(d1, &req.path1, d2, &req.path2, req.flags).map(|()| None),
        Op::Unlink => unlink(d1, &req.path1, req.flags).map(|()| None),
        Op::Truncate => truncate(d1, &req.path1, req.dev as i64).map(|()| None),
        Op::Rename => rename(d1, &req.path1, d2, &req.path2, req.flags as u32).map(|()| None),
    }
}

/// Where a name is created: in `parent`, as `last` (checked), or, for paths whose last
/// component cannot be a new name (`/`, `.`, `..`), the original call unchanged.
enum Target {
    Direct,
    In(OwnedFd, CString),
}

/// Split `path` into its directory, its last component, and the last component with the
/// trailing slashes the kernel reads as "must be a directory". `None` for paths whose last
/// component cannot be a new name (`/`, empty, `.`, `..`).
fn split(path: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let trimmed_len = path.len() - path.iter().rev().take_while(|&&b| b == b'/').count();
    let trimmed = &path[..trimmed_len];
    if trimmed.is_empty() {
        return None;
    }
    let (parent, start) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(0) => (&b"/"[..], 1),
        Some(i) => (&trimmed[..i], i + 1),
        None => (&b"."[..], 0),
    };
    let last = &trimmed[start..];
    if last == b"." || last == b".." {
        return None;
    }
    Some((parent, last, &path[start..]))
}

fn target(dir: Option<BorrowedFd<'_>>, path: &[u8]) -> Result<Target, i32> {
    target_refusing(dir, path, is_protected_new_name)
}

/// [`target`] with the test of the new name: `mkdir` may make a directory named `HEAD` (git
/// reads `HEAD` as a file or link only; outside review r27 FP1: unpacking a tree with such a
/// directory failed), so it refuses only [`is_protected`] names.
fn target_refusing(
    dir: Option<BorrowedFd<'_>>,
    path: &[u8],
    refused: fn(&[u8]) -> bool,
) -> Result<Target, i32> {
    let Some((parent, last, last_as_given)) = split(path) else {
        return Ok(Target::Direct);
    };
    let parent_fd = open_path_no_magiclinks(dir, &cstr(parent)?, true)?;
    // held before the directory's path is read: it keeps that name until the call is made
    // (only for a name that a store's directory name would make a history file)
    if super::could_be_history_name(last) {
        lock_dir(parent_fd.as_fd(), false)?;
    }
    let (info, parent_path) = check_location(parent_fd.as_fd(), true)?;
    let last_c = cstr(last_as_given)?;
    // an existing Fossil database, or a side file of one, is not created over, opened for
    // writing, renamed or linked onto (outside review r79 F1)
    let full = entry_path(parent_path, last);
    if touches_protected_path(&full)
        || super::is_history_path(&full)
        || fossil_entry(parent_fd.as_fd(), last)
    {
        return Err(if info.read_only {
            libc::EROFS
        } else {
            DENIED_ERRNO
        });
    }
    if refused(last) {
        // an existing carve-out is its own read-only mount: EROFS, as the kernel would say
        let held = sys::openat(
            Some(parent_fd.as_fd()),
            &last_c,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
        )
        .and_then(|f| sys::info(f.as_fd()))
        .is_ok_and(|i| i.read_only);
        return Err(if info.read_only || held {
            libc::EROFS
        } else {
            DENIED_ERRNO
        });
    }
    Ok(Target::In(parent_fd, last_c))
}

/// `O_PATH` resolution of `path` from `dir` that refuses magic links (`EACCES`); `dir_only`: the
/// result must be a directory (`ENOTDIR`).
fn open_path_no_magiclinks(
    dir: Option<BorrowedFd<'_>>,
    path: &std::ffi::CStr,
    dir_only: bool,
) -> Result<OwnedFd, i32> {
    open_path_no_magiclinks_flags(dir, path, dir_only, 0)
}

/// [`open_path_no_magiclinks`] with `extra` open flags (`O_NOFOLLOW`). No magic link is
/// followed anywhere in the path (outside review r23 F2: `/proc/1/cwd/x` relative to a
/// directory descriptor of `/proc` reached the init's cwd through the creator's
/// `CAP_SYS_PTRACE`, which the command itself may not follow).
fn open_path_no_magiclinks_flags(
    dir: Option<BorrowedFd<'_>>,
    path: &std::ffi::CStr,
    dir_only: bool,
    extra: i32,
) -> Result<OwnedFd, i32> {
    use crate::unix_connect::sys::open_path_no_magiclinks_flags as open2;
    let fd = match dir {
        Some(d) => {
            let owned = d.try_clone_to_owned().map_err(errno)?;
            open2(Some(&owned), path, extra)
        }
        None => open2(None, path, extra),
    }
    .map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::EXDEV) => DENIED_ERRNO,
        Some(n) => n,
        None => libc::EIO,
    })?;
    if dir_only && sys::info(fd.as_fd()).map_err(errno)?.kind != libc::S_IFDIR {
        return Err(libc::ENOTDIR);
    }
    Ok(fd)
}

/// The resolved location of `fd` in the sandbox's mount namespace.
fn real_path(fd: BorrowedFd<'_>) -> Result<Vec<u8>, i32> {
    let link =
        CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|_| libc::EINVAL)?;
    sys::readlinkat(None, &link).map_err(|_| DENIED_ERRNO)
}

/// Refuse a location below a protected name (and, for paths the child named, procfs: its
/// `self` would be the creator). A read-only mount answers `EROFS` first, as the kernel would.
fn check_location(fd: BorrowedFd<'_>, refuse_proc: bool) -> Result<(sys::FileInfo, Vec<u8>), i32> {
    let info = sys::info(fd).map_err(errno)?;
    if refuse_proc && info.magic == PROC_SUPER_MAGIC {
        return Err(DENIED_ERRNO);
    }
    let real = real_path(fd)?;
    if has_protected_component(&real)
        || below_protected_path(&real)
        || inside_git_directory(fd, &real)
        || (info.kind == libc::S_IFREG
            && (is_fossil_database(fd) || super::fossil_side_file(&real)))
    {
        return Err(if info.read_only {
            libc::EROFS
        } else {
            DENIED_ERRNO
        });
    }
    Ok((info, real))
}

/// Re-open `fd` (an `O_PATH` descriptor, or the child's own) with `flags`, after the checks.
fn reopen_checked(fd: BorrowedFd<'_>, flags: i32, refuse_proc: bool) -> Outcome {
    let (info, real) = check_location(fd, refuse_proc)?;
    if info.kind == libc::S_IFLNK {
        return Err(libc::ELOOP); // O_NOFOLLOW on a symlink
    }
    if info.kind != libc::S_IFDIR && is_head_file(&real) {
        return Err(DENIED_ERRNO);
    }
    let link =
        CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(|_| libc::EINVAL)?;
    let flags = flags & !(libc::O_NOFOLLOW | libc::O_CREAT | libc::O_EXCL);
    sys::openat(None, &link, flags, 0).map(Some).map_err(errno)
}

fn open(dir: Option<BorrowedFd<'_>>, path: &[u8], flags: i32, mode: u32) -> Outcome {
    if flags & libc::O_TMPFILE == libc::O_TMPFILE {
        let d = open_path_no_magiclinks(dir, &cstr(path)?, true)?;
        check_location(d.as_fd(), true)?;
        // linked in later (`linkat`): what it inherits here goes with it
        let inherited = Inherited::of(d.as_fd());
        let fd = sys::openat(
            Some(d.as_fd()),
            c".",
            flags,
            inherited.creation_mode(mode & 0o7777),
        )
        .map_err(errno)?;
        inherited.settle(&fd, mode);
        return Ok(Some(fd));
    }
    if flags & libc::O_CREAT == 0 {
        // magic links (`/proc/self/fd/N` behind a workspace symlink) would be this process's
        // own descriptors (round-8 review F5): not followed here
        let fd = if flags & libc::O_NOFOLLOW != 0 {
            open_path_no_magiclinks_flags(dir, &cstr(path)?, false, libc::O_NOFOLLOW)?
        } else {
            open_path_no_magiclinks(dir, &cstr(path)?, false)?
        };
        return reopen_checked(fd.as_fd(), flags, true);
    }
    // O_CREAT: follow a symlink in the last component one hop at a time.
    let mut path = path.to_vec();
    let mut base: Option<OwnedFd> = None;
    for _ in 0..MAX_HOPS {
        let d = match &base {
            Some(b) => Some(b.as_fd()),
            None => dir,
        };
        let absolute = path.first() == Some(&b'/');
        let d = if absolute { None } else { d };
        let (parent, last) = match target(d, &path)? {
            Target::Direct => {
                return sys::openat(d, &cstr(&path)?, flags, mode)
                    .map(Some)
                    .map_err(errno);
            }
            Target::In(parent, last) => (parent, last),
        };
        let inherited = Inherited::of(parent.as_fd());
        // Whether this call creates the file (what it inherits is settled only then): it was
        // not there just before (a file another process of the user makes in between is
        // settled too, which clears nothing it asked for but inherited ACLs).
        let existed = inherited != Inherited::default() && {
            let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
            !matches!(
                sys::fstatat_nofollow(parent.as_raw_fd(), &last, &mut st),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT)
            )
        };
        match sys::openat(
            Some(parent.as_fd()),
            &last,
            flags | libc::O_NOFOLLOW,
            inherited.creation_mode(mode & 0o7777),
        ) {
            Ok(fd) => {
                if sys::info(fd.as_fd()).map_err(errno)?.magic == PROC_SUPER_MAGIC {
                    return Err(DENIED_ERRNO);
                }
                // its directory renamed to an object store's name meanwhile (r92 D-F1)
                unmade_if_history(parent.as_fd(), &last)?;
                if existed {
                    no_group_write_in_a_shared_group(inherited, &fd);
                } else {
                    inherited.settle(&fd, mode);
                }
                return Ok(Some(fd));
            }
            Err(e)
                if e.raw_os_error() == Some(libc::ELOOP)
                    && flags & (libc::O_NOFOLLOW | libc::O_EXCL) == 0 =>
            {
                let content = match sys::readlinkat(Some(parent.as_fd()), &last) {
                    Ok(c) => c,
                    Err(_) => return Err(libc::ELOOP),
                };
                path = content;
                base = Some(parent);
            }
            Err(e) => return Err(errno(e)),
        }
    }
    Err(libc::ELOOP)
}

fn link(
    d1: Option<BorrowedFd<'_>>,
    old: &[u8],
    d2: Option<BorrowedFd<'_>>,
    new: &[u8],
    flags: i32,
) -> Result<(), i32> {
    if flags & !(libc::AT_SYMLINK_FOLLOW | libc::AT_EMPTY_PATH) != 0 {
        return Err(libc::EINVAL);
    }
    let src: OwnedFd = if old.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
        match d1 {
            Some(d) => d.try_clone_to_owned().map_err(errno)?,
            None => return Err(libc::ENOENT),
        }
    } else {
        let follow = if flags & libc::AT_SYMLINK_FOLLOW != 0 {
            0
        } else {
            libc::O_NOFOLLOW
        };
        open_path_no_magiclinks_flags(d1, &cstr(old)?, false, follow)?
    };
    let (_, real) = check_location(src.as_fd(), true)?;
    if is_head_file(&real) {
        // a second name would let it be written (see [`is_head_file`])
        return Err(DENIED_ERRNO);
    }
    refuse_repository_entry(src.as_fd())?;
    let Target::In(parent, last) = target(d2, new)? else {
        return sys::linkat(d1, &cstr(old)?, d2, &cstr(new)?, flags).map_err(errno);
    };
    // a second name for a symbolic link: not one of an object store's directories (r90 A-F1)
    if super::is_store_directory_name(trim_slashes(last.to_bytes()))
        && sys::info(src.as_fd()).map_err(errno)?.kind == libc::S_IFLNK
    {
        return Err(DENIED_ERRNO);
    }
    // a second name in a temporary root's shared part only for what cannot serve (r65 F1)
    if in_shared_temp(parent.as_fd())? {
        let kind = sys::info(src.as_fd()).map_err(errno)?.kind;
        if kind == libc::S_IFSOCK || kind == libc::S_IFLNK {
            return Err(DENIED_ERRNO);
        }
    }
    let link =
        CString::new(format!("/proc/self/fd/{}", src.as_raw_fd())).map_err(|_| libc::EINVAL)?;
    sys::linkat(
        None,
        &link,
        Some(parent.as_fd()),
        &last,
        libc::AT_SYMLINK_FOLLOW,
    )
    .map_err(errno)?;
    unmade_if_history(parent.as_fd(), &last)?;
    // the directory moved into the shared part meanwhile (outside review r71 F1)
    if landed_in_shared_temp(parent.as_fd(), &last)? {
        return take_back(parent.as_fd(), &last);
    }
    Ok(())
}

/// After a call gave `dir`/`name` a name in a directory that was not in a temporary root's
/// shared part when checked: whether that entry can serve (a socket, a link, a directory)
/// and its directory is in the shared part now, moved there meanwhile by another process of
/// the user (outside review r71 F1: a concurrent run moved the empty destination directory of
/// a workspace in /tmp to a fixed name between the check and the call). Plain files are not
/// looked at (no `readlink` for them).
fn landed_in_shared_temp(dir: BorrowedFd<'_>, name: &CString) -> Result<bool, i32> {
    if SHARED_TEMP.get().is_none_or(|s| s.temp_roots.is_empty()) {
        return Ok(false);
    }
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    let Ok(now) = sys::fstatat_nofollow(dir.as_raw_fd(), name, &mut st) else {
        return Ok(false);
    };
    match now.st_mode & libc::S_IFMT {
        libc::S_IFSOCK | libc::S_IFLNK | libc::S_IFDIR => in_shared_temp(dir),
        _ => Ok(false),
    }
}

/// Removes what this call just named at `dir`/`name` ([`landed_in_shared_temp`]); when it
/// cannot, the process that asked is killed ([`GUARD_BREACHED`]). `EACCES` otherwise.
fn take_back(dir: BorrowedFd<'_>, name: &CString) -> Result<(), i32> {
    if remove_entry(dir, name, is_directory(dir, name)) {
        Err(DENIED_ERRNO)
    } else {
        Err(GUARD_BREACHED)
    }
}

/// `unlinkat(dir1, path1, flags)` (`unlink`, `rmdir`: `AT_REMOVEDIR`): nothing is removed
/// inside a repository or below a protected name (outside review r23 F1: `refs/` removed so
/// that git's test no longer saw a repository, a hook planted, `refs/` put back; r24 F1: a
/// `.bare` repository's `HEAD` removed, its worktrees still reading its config and hooks).
/// The directory the entry is in is checked as for a creation, and the entry's own name may
/// not be protected (outside review r26 F1).
fn unlink(d1: Option<BorrowedFd<'_>>, path: &[u8], flags: i32) -> Result<(), i32> {
    if flags & !libc::AT_REMOVEDIR != 0 {
        return Err(libc::EINVAL);
    }
    let Some((parent, last_name, last_as_given)) = split(path) else {
        return sys::unlinkat(d1, &cstr(path)?, flags).map_err(errno);
    };
    let parent_fd = open_path_no_magiclinks(d1, &cstr(parent)?, true)?;
    let (info, parent_path) = check_location(parent_fd.as_fd(), true)?;
    // a protected name is not removed either, nor a carve-out (outside review r26 F1: removing
    // a submodule's `.git` file re-pointed the user's next `git reset --hard` in it at the
    // superproject; without user namespaces the root's own `.git` file went too)
    let full = entry_path(parent_path, last_name);
    if is_protected(last_name) || below_protected_path(&full) || super::is_history_path(&full) {
        return Err(if info.read_only {
            libc::EROFS
        } else {
            DENIED_ERRNO
        });
    }
    let last = cstr(last_as_given)?;
    entry_is_no_repository(parent_fd.as_fd(), &last)
        .map_err(|e| if info.read_only { libc::EROFS } else { e })?;
    sys::unlinkat(Some(parent_fd.as_fd()), &last, flags).map_err(errno)
}

/// `truncate(path, length)`, checked like an open with `O_TRUNC` (outside review r25 F1: a
/// repository's `config` and refs, and a nested clone's `.git/config`, were emptied through
/// it): the path is resolved without magic links, the location checked, the file re-opened for
/// writing and cut with `ftruncate`. Only a regular file (anything else: `EINVAL`, as the
/// kernel answers).
fn truncate(d1: Option<BorrowedFd<'_>>, path: &[u8], length: i64) -> Result<(), i32> {
    if length < 0 {
        return Err(libc::EINVAL);
    }
    let fd = open_path_no_magiclinks(d1, &cstr(path)?, false)?;
    match sys::info(fd.as_fd()).map_err(errno)?.kind {
        libc::S_IFREG => {}
        libc::S_IFDIR => return Err(libc::EISDIR),
        _ => return Err(libc::EINVAL),
    }
    let Some(file) = reopen_checked(fd.as_fd(), libc::O_WRONLY | libc::O_CLOEXEC, true)? else {
        return Err(libc::EIO);
    };
    sys::ftruncate(file.as_fd(), length).map_err(errno)
}

fn rename(
    d1: Option<BorrowedFd<'_>>,
    old: &[u8],
    d2: Option<BorrowedFd<'_>>,
    new: &[u8],
    flags: u32,
) -> Result<(), i32> {
    let from = target(d1, old)?;
    let to = target(d2, new)?;
    match (from, to) {
        (Target::In(op, ol), Target::In(np, nl)) => {
            // a repository is not moved, nor swapped with another (outside review r23 F4: an
            // exchange of two bare repositories sent the user's next push to the other one)
            entry_is_no_repository(op.as_fd(), &ol)?;
            // nor is a directory given a name under which what it holds are history files
            let checked = no_history_under(op.as_fd(), &ol, nl.to_bytes(), true)?;
            if flags & libc::RENAME_EXCHANGE != 0 {
                let other = no_history_under(np.as_fd(), &nl, ol.to_bytes(), true)?;
                // nor by an exchange, which cannot be made in the two steps of
                // [`renamed_checked_directory`] (git never exchanges)
                if checked.is_some() || other.is_some() {
                    return Err(DENIED_ERRNO);
                }
            }
            // nor with a whiteout, which the second step would leave at the staging name (a
            // name no sandbox may remove, which freezes its directory: outside review r95 G1);
            // only overlayfs makes whiteouts
            if checked.is_some() && flags & libc::RENAME_WHITEOUT != 0 {
                return Err(DENIED_ERRNO);
            }
            // nor is one replaced (a link to a repository renamed over: the link is gone as
            // if removed, and what took its name is the command's)
            entry_is_no_repository(np.as_fd(), &nl)?;
            // nothing that can serve is moved into a temporary root's shared part (r65 F1)
            let from_shared = in_shared_temp(op.as_fd())?;
            let to_shared = in_shared_temp(np.as_fd())?;
            let exchange = flags & libc::RENAME_EXCHANGE != 0;
            // An exchange touching the shared part cannot be made without a moment in which an
            // unchecked entry could stand there (checked, then swapped by the command between
            // the check and the call): refused.
            if exchange && (from_shared || to_shared) {
                return Err(DENIED_ERRNO);
            }
            // A directory within the shared part: only an empty one moves, and it is made anew
            // at the new name while the old one is removed by `rmdir`, which fails when
            // anything is in it (outside review r71 F1: checked empty, renamed, checked again
            // and put back, a directory another run filled in between was put back to a
            // fixed name with a socket in it).
            if to_shared && from_shared && is_directory(op.as_fd(), &ol) {
                refuse_into_shared_temp(op.as_fd(), &ol, true)?;
                return move_empty_directory(op.as_fd(), &ol, np.as_fd(), &nl, flags);
            }
            // Anything else into the shared part: the checked inode itself is given the new
            // name (outside review r68 F1: checked by name, renamed by name, a socket bound in
            // between was moved from elsewhere; r72 N1: within the shared part, a plain file
            // checked and a socket swapped in at its name landed at the fixed name until the
            // check after the call put it back, once for 182 ms under load). It is held open,
            // checked, and linked by descriptor: no moment in which anything else stands there.
            if to_shared {
                return move_pinned(op.as_fd(), &ol, np.as_fd(), &nl, flags);
            }
            match checked {
                Some(id) => renamed_checked_directory(op.as_fd(), &ol, np.as_fd(), &nl, flags, id)?,
                None => sys::renameat2(Some(op.as_fd()), &ol, Some(np.as_fd()), &nl, flags)
                    .map_err(errno)?,
            }
            // what landed under an object store's directory name is looked at again: another
            // thread of the command may have swapped a link in, or filled the directory,
            // between the check above and the call
            settled_under_store_name(np.as_fd(), &nl)?;
            moved_aside_if_history(np.as_fd(), &nl)?;
            if exchange {
                settled_under_store_name(op.as_fd(), &ol)?;
                moved_aside_if_history(op.as_fd(), &ol)?;
            }
            // the destination was not in the shared part when checked; a concurrent run may
            // have moved it there since (outside review r71 F1: a socket renamed into an
            // empty directory of a workspace in /tmp that the other run moved to a fixed name
            // between this check and this rename)
            if landed_in_shared_temp(np.as_fd(), &nl)? {
                moved_what_was_checked(np.as_fd(), &nl, (op.as_fd(), &ol), from_shared)?;
            }
            if exchange && landed_in_shared_temp(op.as_fd(), &ol)? {
                moved_what_was_checked(op.as_fd(), &ol, (np.as_fd(), &nl), to_shared)?;
            }
            Ok(())
        }
        // `.`/`..`/`/` on either side: nothing new is named; the kernel refuses these itself
        _ => sys::renameat2(d1, &cstr(old)?, d2, &cstr(new)?, flags).map_err(errno),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_the_parent_and_the_last_component() {
        assert_eq!(
            split(b"a/b/c").map(|s| (s.0, s.1)),
            Some((&b"a/b"[..], &b"c"[..]))
        );
        assert_eq!(
            split(b"c").map(|s| (s.0, s.1)),
            Some((&b"."[..], &b"c"[..]))
        );
        assert_eq!(
            split(b"/c").map(|s| (s.0, s.1)),
            Some((&b"/"[..], &b"c"[..]))
        );
        assert_eq!(split(b"a/c//"), Some((&b"a"[..], &b"c"[..], &b"c//"[..])));
        assert_eq!(split(b"//x"), Some((&b"/"[..], &b"x"[..], &b"x"[..])));
        assert!(split(b"/").is_none());
        assert!(split(b"").is_none());
        assert!(split(b"a/..").is_none());
        assert!(split(b".").is_none());
    }

    #[test]
    fn protected_paths_cover_themselves_what_is_below_and_the_directories_above() {
        let _ = PROTECTED_PATHS.set(vec![b"/ws/sub/ch".to_vec()]);
        assert!(touches_protected_path(b"/ws/sub/ch"));
        assert!(touches_protected_path(b"/ws/sub/ch/config.toml"));
        assert!(
            touches_protected_path(b"/ws/sub"),
            "an ancestor could be swapped in"
        );
        assert!(touches_protected_path(b"/ws"));
        assert!(!touches_protected_path(b"/ws/sub/chx"));
        assert!(!touches_protected_path(b"/ws/other"));
        assert!(!touches_protected_path(b"/ws/su"));
        assert!(below_protected_path(b"/ws/sub/ch/x"));
        assert!(
            !below_protected_path(b"/ws/sub"),
            "the directory above stays writable"
        );
    }
}
