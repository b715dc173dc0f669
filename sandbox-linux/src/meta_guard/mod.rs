//! File metadata changes through descriptors and `/proc` links (outside review r14 F2).
//!
//! The read-only mounts of [`crate::metadata`] protect only what the command reaches through the
//! sandbox's own mounts. A descriptor it inherited (0–2: the user's terminal, a file the user
//! redirected output to), received over a socket, or re-opened through `/proc/self/fd/N`
//! (`/dev/stdin`, `/dev/fd/N`) still refers to the *outer*, writable mount: `fchmod(0, 0644)`
//! made the user's terminal readable by every local user, who then read the keystrokes typed
//! after the launcher returned; `futimens`, `fchown` and `chmod("/proc/self/fd/1")` worked too.
//!
//! Mechanism: every call that changes a file's mode, owner, timestamps, extended attributes or
//! inode flags is a seccomp user notification of the filter the connect supervisor already
//! serves (`fchmod`, `fchown`, `fremovexattr`, `ioctl(FS_IOC_SETFLAGS / FS_IOC32_SETFLAGS /
//! FS_IOC_FSSETXATTR)`, `chmod`, `fchmodat`, `fchmodat2`, `chown`, `lchown`, `fchownat`,
//! `utime`, `utimes`, `futimesat`, `utimensat`, `removexattr`, `lremovexattr`; setting an
//! extended attribute is refused outright, [`crate::seccomp::MODES`], and so are
//! `removexattrat` and `file_setattr`, whose arguments live in memory). The supervisor, in the
//! launcher:
//! 1. copies each argument in memory **once** (path, times, attribute name, ioctl structure);
//! 2. gets the file itself: the child's descriptor (`pidfd_getfd`, the very open file), or the
//!    path resolved by the supervisor as the child sees it (`openat2` below `/proc/TID/root`,
//!    `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`: a path through `/proc/self/fd/N` is refused,
//!    a relative one starts at the path of the child's cwd or directory descriptor);
//! 3. requires the file's mount (`statx(STATX_MNT_ID)`) to be a mount of the sandbox's own mount
//!    namespace (`/proc/TID/mountinfo`): there, everything outside the writable roots, the
//!    `.git`/`.codex` carve-outs and the deny-read binds are read-only mounts, so the kernel
//!    answers `EROFS` for them; a file on a mount of another namespace (the user's terminal,
//!    the redirected log file) is refused with `EPERM`;
//! 4. checks the notification is still pending, performs the call itself on its descriptor and
//!    answers with the errno. It never answers `SECCOMP_USER_NOTIF_FLAG_CONTINUE`.
//!
//! Without namespaces the read-only policy refuses these calls by seccomp before they are
//! notified ([`crate::seccomp::METADATA`]); a policy with writable roots is refused there.
//!
//! Also here, though not a file's metadata: a terminal's settings (`tcsetattr` and the older
//! and newer structures), performed without `TOSTOP` in every mode ([`terminal_settings`];
//! outside review r51 F2).

pub(crate) mod sys;

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::Mutex;

use crate::unix_connect::sys as usys;

/// Errno of a refused metadata change (a file outside the sandbox's mounts, a `/proc` link).
pub const DENIED_ERRNO: i32 = libc::EPERM;

/// `_IOW('f', 2, long)`, `_IOW('f', 2, int)`, `_IOW('X', 32, struct fsxattr)` (linux/fs.h).
pub const FS_IOC_SETFLAGS: u32 = 0x4008_6602;
pub const FS_IOC32_SETFLAGS: u32 = 0x4004_6602;
pub const FS_IOC_FSSETXATTR: u32 = 0x401c_5820;
/// The terminal settings calls (`tcsetattr`: `struct termios`, the old `struct termio`, and
/// `struct termios2`), notified so that the supervisor performs them without `TOSTOP`
/// ([`terminal_settings`]). Numbers and layouts of the generic ioctl ABI (x86-64, arm64,
/// riscv64); other architectures keep the direct call.
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]
pub const TERMINAL_SETTINGS: &[u32] = &[
    libc::TCSETS as u32,
    libc::TCSETSW as u32,
    libc::TCSETSF as u32,
    libc::TCSETA as u32,
    libc::TCSETAW as u32,
    libc::TCSETAF as u32,
    libc::TCSETS2 as u32,
    libc::TCSETSW2 as u32,
    libc::TCSETSF2 as u32,
];
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
pub const TERMINAL_SETTINGS: &[u32] = &[];
/// The file ioctls notified (`ioctl(fd, cmd, arg)`: `cmd` is compared in the filter; the
/// [`TERMINAL_SETTINGS`] too).
pub const IOCTLS: &[u32] = &[FS_IOC_SETFLAGS, FS_IOC32_SETFLAGS, FS_IOC_FSSETXATTR];
/// `sizeof(struct fsxattr)`.
const FSXATTR_SIZE: usize = 28;

const SYS_FCHMODAT2: libc::c_long = 452;
/// `removexattrat` (6.13) and `file_setattr` (6.17) take their arguments in structures in
/// memory; refused (`EPERM`) instead of mediated: nothing uses them yet.
pub const REFUSED_CALLS: &[libc::c_long] = &[466, 469];

/// The calls notified whatever their arguments.
#[cfg(target_arch = "x86_64")]
pub const CALLS: &[libc::c_long] = &[
    libc::SYS_fchmod,
    libc::SYS_fchown,
    libc::SYS_fremovexattr,
    libc::SYS_fchmodat,
    SYS_FCHMODAT2,
    libc::SYS_fchownat,
    libc::SYS_utimensat,
    libc::SYS_removexattr,
    libc::SYS_lremovexattr,
    libc::SYS_chmod,
    libc::SYS_chown,
    libc::SYS_lchown,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_futimesat,
];
#[cfg(not(target_arch = "x86_64"))]
pub const CALLS: &[libc::c_long] = &[
    libc::SYS_fchmod,
    libc::SYS_fchown,
    libc::SYS_fremovexattr,
    libc::SYS_fchmodat,
    SYS_FCHMODAT2,
    libc::SYS_fchownat,
    libc::SYS_utimensat,
    libc::SYS_removexattr,
    libc::SYS_lremovexattr,
];

/// Is `nr` a call this module answers?
pub fn is_mediated(nr: libc::c_long) -> bool {
    CALLS.contains(&nr) || nr == libc::SYS_ioctl
}

/// The mount ids of the sandbox's mount namespace, read from `/proc/TID/mountinfo` of a
/// notifying thread (the command cannot mount: the mount calls are refused by seccomp) and
/// read again when an id is not found (a mount the kernel added, e.g. an automount).
#[derive(Debug, Default)]
pub struct Mounts(Mutex<HashSet<u64>>);

impl Mounts {
    fn contains(&self, tid: libc::pid_t, id: u64) -> bool {
        let mut set = match self.0.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if set.contains(&id) {
            return true;
        }
        match read_mount_ids(tid) {
            Ok(fresh) => {
                *set = fresh;
                set.contains(&id)
            }
            Err(_) => false,
        }
    }
}

fn read_mount_ids(tid: libc::pid_t) -> std::io::Result<HashSet<u64>> {
    let text = crate::sys::read_proc(&format!("/proc/{tid}/mountinfo"))?;
    Ok(text
        .split(|&b| b == b'\n')
        .filter_map(|l| l.split(|&b| b == b' ').next())
        .filter_map(|f| std::str::from_utf8(f).ok()?.parse().ok())
        .collect())
}

/// Which file a call acts on.
#[derive(Debug)]
enum Target {
    /// A descriptor of the child, with the `f*` call's own semantics (`fchmod(fd)`).
    Fd(i32),
    /// A descriptor of the child (or its cwd, `AT_FDCWD`) named with `AT_EMPTY_PATH`.
    Empty(i32),
    /// A path (copied) relative to `dirfd`.
    Path {
        dirfd: i32,
        path: Vec<u8>,
        follow: bool,
    },
}

/// What a call changes.
#[derive(Debug)]
enum Change {
    Mode(u32),
    Owner(u32, u32),
    /// `None`: now.
    Times(Option<[libc::timespec; 2]>),
    RemoveXattr(CString),
    Ioctl {
        cmd: u32,
        arg: Vec<u8>,
    },
}

/// What a notification asks for.
enum Decoded {
    /// A file's metadata.
    Metadata(Target, Change),
    /// A terminal's settings through descriptor `fd` ([`terminal_settings`]).
    TerminalSettings { fd: i32, cmd: u32, arg: Vec<u8> },
}

/// `cmd` takes the old `struct termio` (`TCSETA`, `TCSETAW`, `TCSETAF`).
fn is_termio(cmd: u32) -> bool {
    [libc::TCSETA, libc::TCSETAW, libc::TCSETAF]
        .iter()
        .any(|&c| c as u32 == cmd)
}

/// `sizeof(struct termios)` of the kernel (not the C library's larger one), and where its
/// `c_cc` starts (after four `u32` flag words and `c_line`); `struct termio`'s `c_cc` (after
/// four `u16` and `c_line`). `struct termios2` begins like `struct termios`.
const TERMIOS_SIZE: usize = 36;
const TERMIOS_CC: usize = 17;
const TERMIO_CC: usize = 9;
/// The special characters a command may not change (see [`terminal_settings`]).
const KEPT_CHARACTERS: [usize; 5] = [
    libc::VINTR,
    libc::VQUIT,
    libc::VSUSP,
    libc::VSTOP,
    libc::VSTART,
];

/// The kernel's structure a terminal settings call reads: `struct termio` (18 bytes), `struct
/// termios2` (44), `struct termios` (36; not the C library's larger one).
fn terminal_settings_size(cmd: u32) -> usize {
    if is_termio(cmd) {
        18
    } else if [libc::TCSETS2, libc::TCSETSW2, libc::TCSETSF2]
        .iter()
        .any(|&c| c as u32 == cmd)
    {
        44
    } else {
        TERMIOS_SIZE
    }
}

/// Answer one notification: the errno to return (0: done).
pub fn handle(
    listener: &OwnedFd,
    n: &libc::seccomp_notif,
    mounts: &Mounts,
    guard: bool,
    denied: &[std::path::PathBuf],
) -> i32 {
    let tid = n.pid as libc::pid_t;
    let decoded = match decode(tid, n) {
        Ok(x) => x,
        Err(e) => return e,
    };
    let Ok(pidfd) = crate::unix_connect::supervisor_open_pidfd(tid) else {
        return libc::ESRCH;
    };
    let (target, change) = match decoded {
        Decoded::Metadata(target, change) => (target, change),
        Decoded::TerminalSettings { fd, cmd, arg } => {
            return terminal_settings(listener, n.id, &pidfd, fd, cmd, arg);
        }
    };
    let file = match &target {
        Target::Fd(fd) | Target::Empty(fd) if *fd != libc::AT_FDCWD => {
            match usys::pidfd_getfd(&pidfd, *fd) {
                Ok(f) => f,
                Err(_) => return libc::EBADF,
            }
        }
        Target::Fd(_) => return libc::EBADF,
        Target::Empty(_) => match usys::open_path(None, &proc_path(tid, "cwd")) {
            Ok(f) => f,
            Err(_) => return DENIED_ERRNO,
        },
        Target::Path {
            dirfd,
            path,
            follow,
        } => match resolve(tid, *dirfd, path, *follow) {
            Ok(f) => f,
            Err(e) => return e,
        },
    };
    let Ok(mnt) = sys::mount_id(&file) else {
        return DENIED_ERRNO;
    };
    if !mounts.contains(tid, mnt) {
        return DENIED_ERRNO;
    }
    if guard && protected_location(&file) {
        return crate::name_guard::DENIED_ERRNO;
    }
    // (the file's metadata, read once for both rules)
    let Ok(md) = file
        .try_clone()
        .and_then(|dup| std::fs::File::from(dup).metadata())
    else {
        return DENIED_ERRNO;
    };
    if let Err(e) = socket_rule(&file, &md, &change) {
        return e;
    }
    if let Err(e) = denied_ancestor_rule(&file, &md, &change, denied) {
        return e;
    }
    // The thread is still blocked in this very call: the memory we copied, its descriptors,
    // root and cwd were its own (no pid reuse in between).
    if !usys::notif_id_valid(listener, n.id) {
        return libc::EINTR;
    }
    perform(&file, matches!(target, Target::Fd(_)), change)
}

/// With the name guard on, nothing below a protected name (`.git`, `.codex`, ...) or inside a
/// repository recognised by its contents changes mode, owner, times or attributes either
/// (outside review r22 F4: in a setgid project directory shared with another user's group,
/// `chmod g+w .git/config` and `chmod 0775 .git/hooks` of a nested repository let that user
/// plant `core.fsmonitor` or a hook, run at the victim's next `git status`). The file's path
/// is the one `/proc/self/fd` gives for the descriptor: its place in the sandbox's mount
/// namespace, whose layout is the host's (each mount is bound onto itself).
fn protected_location(file: &OwnedFd) -> bool {
    use std::os::fd::AsFd;
    match fd_path(file) {
        Ok(real) => {
            let b = real.as_os_str().as_bytes();
            crate::name_guard::has_protected_component(b)
                || crate::name_guard::inside_git_directory(file.as_fd(), b)
                // a Fossil database (outside review r82 F4: `chmod 000` locked the user's
                // `fossil` out of it, `touch -d` forged its times)
                || crate::name_guard::is_readable_fossil_database(file.as_fd())
                // nor its side files (outside review r85 F3: `chmod 0` of its `-shm` broke the
                // user's next `fossil commit`)
                || crate::name_guard::fossil_side_file(b)
        }
        Err(_) => true,
    }
}

/// The path `/proc/self/fd` gives for the supervisor's descriptor: its place in the sandbox's
/// mount namespace, whose layout is the host's.
pub(crate) fn fd_path(file: &OwnedFd) -> std::io::Result<std::path::PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// A directory above a deny-read path gains no group or other read or search bit (outside
/// review r41 F4: with `~` a writable root, `chmod 711 ~` let another local user read
/// `~/.npmrc` and `~/.config/gh/hosts.yml`, mode 0644 behind the home's 0700, which the command
/// itself could not read). Bits the directory has already may stay. The directory's path is the
/// one `/proc/self/fd` gives for the descriptor (the host's layout, as for
/// [`protected_location`]); unknown: refused.
fn denied_ancestor_rule(
    file: &OwnedFd,
    md: &std::fs::Metadata,
    change: &Change,
    denied: &[std::path::PathBuf],
) -> Result<(), i32> {
    use std::os::unix::fs::MetadataExt;
    const OPENING: u32 = libc::S_IRGRP | libc::S_IXGRP | libc::S_IROTH | libc::S_IXOTH;
    let Change::Mode(m) = change else {
        return Ok(());
    };
    if m & OPENING == 0 || denied.is_empty() {
        return Ok(());
    }
    if !md.is_dir() || m & OPENING & !md.mode() == 0 {
        return Ok(());
    }
    let Ok(real) = fd_path(file) else {
        return Err(DENIED_ERRNO);
    };
    if denied.iter().any(|d| d.starts_with(&real) && d != &real) {
        return Err(DENIED_ERRNO);
    }
    Ok(())
}

/// A socket file keeps what `listen` checked for its whole life (outside review r16 F4: a
/// socket bound in another user's setgid directory listened with mode 0755, then `chmod 0770`
/// let that user's group connect): no group write bit unless the group is the user's private
/// one, and no change of its group. Other files: [`group_rule`].
fn socket_rule(file: &OwnedFd, md: &std::fs::Metadata, change: &Change) -> Result<(), i32> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if !md.file_type().is_socket() {
        let acl = sys::has_xattr(std::os::fd::AsFd::as_fd(file), c"system.posix_acl_access");
        return group_rule(md, acl, change);
    }
    match change {
        Change::Mode(m)
            if m & libc::S_IWGRP != 0 && !crate::unix_connect::private_group(md.gid()) =>
        {
            Err(DENIED_ERRNO)
        }
        Change::Owner(_, g) if *g != u32::MAX && *g != md.gid() => Err(DENIED_ERRNO),
        _ => Ok(()),
    }
}

/// Any other file: no group write bit added, and no change of group, unless the group is the
/// user's private one (outside review r29 F2: `chgrp` to a group shared with another local
/// user and `chmod g+w` inside the roots handed that user write access to the user's scripts;
/// `o+w` was already refused). A group write bit the file already has (made in a setgid
/// project directory under `umask 002`) may stay. On a file with an access ACL (`acl`) the
/// group bits are the ACL's mask, which opens every named entry: no group write bit is added
/// there whatever the group (outside review r32 F1: a file inheriting another user's default
/// ACL, then `chmod 0775`).
fn group_rule(md: &std::fs::Metadata, acl: bool, change: &Change) -> Result<(), i32> {
    use std::os::unix::fs::MetadataExt;
    match change {
        Change::Mode(m)
            if m & libc::S_IWGRP != 0
                && md.mode() & libc::S_IWGRP == 0
                && (acl || !crate::unix_connect::private_group(md.gid())) =>
        {
            Err(DENIED_ERRNO)
        }
        Change::Owner(_, g)
            if *g != u32::MAX && *g != md.gid() && !crate::unix_connect::private_group(*g) =>
        {
            Err(DENIED_ERRNO)
        }
        _ => Ok(()),
    }
}

fn perform(file: &OwnedFd, fd_form: bool, change: Change) -> i32 {
    match (change, fd_form) {
        (Change::Mode(m), true) => sys::fchmod(file, m),
        (Change::Mode(m), false) => {
            if sys::is_symlink(file) {
                libc::EOPNOTSUPP
            } else {
                sys::chmod_pinned(file, m)
            }
        }
        (Change::Owner(u, g), true) => sys::fchown(file, u, g),
        (Change::Owner(u, g), false) => sys::chown_pinned(file, u, g),
        (Change::Times(t), true) => sys::futimens(file, t.as_ref()),
        (Change::Times(t), false) => sys::utimens_pinned(file, t.as_ref()),
        (Change::RemoveXattr(name), true) => sys::fremovexattr(file, &name),
        (Change::RemoveXattr(name), false) => {
            if sys::is_symlink(file) {
                libc::EPERM
            } else {
                sys::removexattr_pinned(file, &name)
            }
        }
        (Change::Ioctl { cmd, mut arg }, _) => sys::ioctl_with(file, cmd, &mut arg),
    }
}

/// `tcsetattr` on the command's descriptor, performed here with `TOSTOP` cleared (outside
/// review r51 F2): the terminal the command can reach is the user's (it cannot open a pty of
/// its own: `/dev/ptmx` is refused), and `stty tostop` there stopped the user's own background
/// jobs with `SIGTTOU` at their next write, jobs of processes outside the sandbox, which stayed
/// stopped after codex returned. Nor are VINTR, VQUIT, VSUSP, VSTOP and VSTART changed (r54
/// F1, F2: set to `R`, the terminal's answer to a cursor position query signalled the user's
/// foreground job, or stopped the output for good). Every other setting is applied as the
/// command asked (raw mode, echo, speeds: editors and readline keep working); the launcher
/// restores them all at the end.
/// Not a file's metadata: no mount rule (the user's terminal is on a mount of another
/// namespace). `SIGTTOU` is blocked in this thread for the call: a launcher started in the
/// background would otherwise be stopped by its own terminal for the command's `tcsetattr`
/// (which the command, in a session of its own, makes without that check).
fn terminal_settings(
    listener: &OwnedFd,
    id: u64,
    pidfd: &OwnedFd,
    fd: i32,
    cmd: u32,
    mut arg: Vec<u8>,
) -> i32 {
    let Ok(file) = usys::pidfd_getfd(pidfd, fd) else {
        return libc::EBADF;
    };
    // The characters that make the line discipline signal the terminal's foreground job or stop
    // its output stay what they are (outside review r54 F1, F2: with VINTR, VQUIT or VSUSP set
    // to `R`, the terminal's own answer to a cursor position query, `ESC[row;colR`, typed
    // into the input, signalled the user's foreground job outside the sandbox; VSTOP set so
    // left the terminal's output stopped after codex returned). Read from the terminal now:
    // the command can never have changed them.
    let mut now = [0u8; TERMIOS_SIZE];
    let e = sys::ioctl_with(&file, libc::TCGETS as u32, &mut now);
    if e != 0 {
        return e;
    }
    // c_lflag: the fourth flag word (u32 in termios and termios2, u16 in termio); c_cc after
    // the four flag words and c_line
    #[allow(clippy::unnecessary_cast)] // `tcflag_t` is not `u32` on every architecture
    let tostop = libc::TOSTOP as u32;
    // ISTRIP stays too (outside review r55 F1: stripping the eighth bit made bytes of the
    // user's own UTF-8 keystrokes, `у` = D1 83, into ^C and the other kept characters)
    #[allow(clippy::unnecessary_cast)]
    let istrip = libc::ISTRIP as u32;
    let istrip_now = u32::from_ne_bytes([now[0], now[1], now[2], now[3]]) & istrip;
    if is_termio(cmd) {
        let l = u16::from_ne_bytes([arg[6], arg[7]]) & !(tostop as u16);
        arg[6..8].copy_from_slice(&l.to_ne_bytes());
        let i = (u16::from_ne_bytes([arg[0], arg[1]]) & !(istrip as u16)) | istrip_now as u16;
        arg[0..2].copy_from_slice(&i.to_ne_bytes());
        // `struct termio` holds the first 8 characters only: VINTR and VQUIT among them
        for i in [libc::VINTR, libc::VQUIT] {
            arg[TERMIO_CC + i] = now[TERMIOS_CC + i];
        }
    } else {
        let l = u32::from_ne_bytes([arg[12], arg[13], arg[14], arg[15]]) & !tostop;
        arg[12..16].copy_from_slice(&l.to_ne_bytes());
        let i = (u32::from_ne_bytes([arg[0], arg[1], arg[2], arg[3]]) & !istrip) | istrip_now;
        arg[0..4].copy_from_slice(&i.to_ne_bytes());
        for i in KEPT_CHARACTERS {
            arg[TERMIOS_CC + i] = now[TERMIOS_CC + i];
        }
    }
    if !usys::notif_id_valid(listener, id) {
        return libc::EINTR;
    }
    sys::without_sigttou(|| sys::ioctl_with(&file, cmd, &mut arg))
}

/// The call's target and change, every argument in memory copied once.
fn decode(tid: libc::pid_t, n: &libc::seccomp_notif) -> Result<Decoded, i32> {
    let a = n.data.args;
    let nr = libc::c_long::from(n.data.nr);
    let int = |i: usize| a[i] as i32;
    let id = |i: usize| a[i] as u32;
    let path_at = |dirfd: i32, i: usize, follow: bool| -> Result<Target, i32> {
        Ok(Target::Path {
            dirfd,
            path: read_cstr(tid, a[i], libc::PATH_MAX as usize)?,
            follow,
        })
    };
    // `*at` calls with AT_EMPTY_PATH and an empty path act on the descriptor itself.
    let at = |dirfd: i32, i: usize, flags: u64, allowed: u64| -> Result<Target, i32> {
        if flags & !allowed != 0 {
            return Err(libc::EINVAL);
        }
        let path = read_cstr(tid, a[i], libc::PATH_MAX as usize)?;
        let follow = flags & libc::AT_SYMLINK_NOFOLLOW as u64 == 0;
        if path.is_empty() && flags & libc::AT_EMPTY_PATH as u64 != 0 {
            return Ok(Target::Empty(dirfd));
        }
        Ok(Target::Path {
            dirfd,
            path,
            follow,
        })
    };
    let nofollow_empty = (libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) as u64;
    let cwd = libc::AT_FDCWD;
    let (target, change) = match nr {
        libc::SYS_fchmod => (Target::Fd(int(0)), Change::Mode(id(1))),
        libc::SYS_fchown => (Target::Fd(int(0)), Change::Owner(id(1), id(2))),
        libc::SYS_fremovexattr => (
            Target::Fd(int(0)),
            Change::RemoveXattr(xattr_name(tid, a[1])?),
        ),
        libc::SYS_ioctl => {
            let cmd = id(1);
            let size = match cmd {
                FS_IOC_SETFLAGS | FS_IOC32_SETFLAGS => 4,
                FS_IOC_FSSETXATTR => FSXATTR_SIZE,
                c if TERMINAL_SETTINGS.contains(&c) => {
                    let arg = read_exact(tid, a[2], terminal_settings_size(c))?;
                    return Ok(Decoded::TerminalSettings {
                        fd: int(0),
                        cmd,
                        arg,
                    });
                }
                _ => return Err(libc::ENOSYS),
            };
            let arg = read_exact(tid, a[2], size)?;
            (Target::Fd(int(0)), Change::Ioctl { cmd, arg })
        }
        libc::SYS_fchmodat => (path_at(int(0), 1, true)?, Change::Mode(id(2))),
        SYS_FCHMODAT2 => (at(int(0), 1, a[3], nofollow_empty)?, Change::Mode(id(2))),
        libc::SYS_fchownat => (
            at(int(0), 1, a[4], nofollow_empty)?,
            Change::Owner(id(2), id(3)),
        ),
        libc::SYS_utimensat => {
            let times = timespecs(tid, a[2])?;
            if a[1] == 0 {
                // utimensat(fd, NULL, ...): futimens
                if int(0) == cwd {
                    return Err(libc::EFAULT);
                }
                if a[3] & !(libc::AT_SYMLINK_NOFOLLOW as u64) != 0 {
                    return Err(libc::EINVAL);
                }
                (Target::Fd(int(0)), Change::Times(times))
            } else {
                (at(int(0), 1, a[3], nofollow_empty)?, Change::Times(times))
            }
        }
        libc::SYS_removexattr => (
            path_at(cwd, 0, true)?,
            Change::RemoveXattr(xattr_name(tid, a[1])?),
        ),
        libc::SYS_lremovexattr => (
            path_at(cwd, 0, false)?,
            Change::RemoveXattr(xattr_name(tid, a[1])?),
        ),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_chmod => (path_at(cwd, 0, true)?, Change::Mode(id(1))),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_chown => (path_at(cwd, 0, true)?, Change::Owner(id(1), id(2))),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_lchown => (path_at(cwd, 0, false)?, Change::Owner(id(1), id(2))),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_utime => (path_at(cwd, 0, true)?, Change::Times(utimbuf(tid, a[1])?)),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_utimes => (path_at(cwd, 0, true)?, Change::Times(timevals(tid, a[1])?)),
        #[cfg(target_arch = "x86_64")]
        libc::SYS_futimesat => {
            let times = Change::Times(timevals(tid, a[2])?);
            if a[1] == 0 {
                (Target::Fd(int(0)), times)
            } else {
                (path_at(int(0), 1, true)?, times)
            }
        }
        _ => return Err(libc::ENOSYS),
    };
    Ok(Decoded::Metadata(target, change))
}

/// Resolve `path` as the child sees it: an absolute path below its root; a relative one below
/// the path of its cwd or of `dirfd` (read back from `/proc/TID/...`), both with
/// `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` below `/proc/TID/root`.
pub(crate) fn resolve(
    tid: libc::pid_t,
    dirfd: i32,
    path: &[u8],
    follow: bool,
) -> Result<OwnedFd, i32> {
    if path.is_empty() {
        return Err(libc::ENOENT);
    }
    let full = if path[0] == b'/' {
        path.to_vec()
    } else {
        let link = if dirfd == libc::AT_FDCWD {
            format!("/proc/{tid}/cwd")
        } else if dirfd < 0 {
            return Err(libc::EBADF);
        } else {
            format!("/proc/{tid}/fd/{dirfd}")
        };
        let base = std::fs::read_link(&link).map_err(|_| libc::EBADF)?;
        let base = base.as_os_str().as_bytes();
        if base.first() != Some(&b'/') {
            return Err(libc::ENOTDIR);
        }
        if base.ends_with(b" (deleted)") {
            return Err(libc::ENOENT);
        }
        let mut full = base.to_vec();
        full.push(b'/');
        full.extend_from_slice(path);
        full
    };
    let full = CString::new(full).map_err(|_| libc::EINVAL)?;
    let root = usys::open_path(None, &proc_path(tid, "root")).map_err(|_| libc::ESRCH)?;
    // `RESOLVE_IN_ROOT` answers EAGAIN when a rename raced the walk (outside review r100 F4:
    // an editor saving by rename): a few more tries, as the kernel's own lookup would retry
    let mut opened = sys::open_in_root(&root, &full, follow);
    for _ in 0..8 {
        match &opened {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                opened = sys::open_in_root(&root, &full, follow);
            }
            _ => break,
        }
    }
    match opened {
        Ok(f) => Ok(f),
        // a /proc magic link (or a symlink loop): refused
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err(DENIED_ERRNO),
        Err(e) => Err(e.raw_os_error().unwrap_or(DENIED_ERRNO)),
    }
}

fn proc_path(tid: libc::pid_t, what: &str) -> CString {
    CString::new(format!("/proc/{tid}/{what}")).expect("no NUL in a /proc path")
}

/// A NUL-terminated string of at most `max` bytes (without the NUL) at `addr` in the child,
/// read page by page (a string may end just before an unmapped page).
pub(crate) fn read_cstr(tid: libc::pid_t, addr: u64, max: usize) -> Result<Vec<u8>, i32> {
    if addr == 0 {
        return Err(libc::EFAULT);
    }
    const PAGE: u64 = 4096;
    let mut out = Vec::new();
    let mut at = addr;
    loop {
        let chunk = (PAGE - at % PAGE) as usize;
        let mut buf = vec![0u8; chunk];
        let got = usys::read_remote(tid, at, &mut buf).map_err(|_| libc::EFAULT)?;
        if got == 0 {
            return Err(libc::EFAULT);
        }
        if let Some(end) = buf[..got].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return if out.len() > max {
                Err(libc::ENAMETOOLONG)
            } else {
                Ok(out)
            };
        }
        out.extend_from_slice(&buf[..got]);
        if out.len() > max {
            return Err(libc::ENAMETOOLONG);
        }
        at += got as u64;
    }
}

fn read_exact(tid: libc::pid_t, addr: u64, len: usize) -> Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; len];
    match usys::read_remote(tid, addr, &mut buf) {
        Ok(got) if got == len => Ok(buf),
        _ => Err(libc::EFAULT),
    }
}

fn xattr_name(tid: libc::pid_t, addr: u64) -> Result<CString, i32> {
    let name = read_cstr(tid, addr, 255).map_err(|e| {
        if e == libc::ENAMETOOLONG {
            libc::ERANGE
        } else {
            e
        }
    })?;
    CString::new(name).map_err(|_| libc::EINVAL)
}

fn le_i64(b: &[u8]) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[..8]);
    i64::from_ne_bytes(x)
}

/// `struct timespec[2]` at `addr` (NULL: now).
fn timespecs(tid: libc::pid_t, addr: u64) -> Result<Option<[libc::timespec; 2]>, i32> {
    if addr == 0 {
        return Ok(None);
    }
    let b = read_exact(tid, addr, 32)?;
    let ts = |o: usize| libc::timespec {
        tv_sec: le_i64(&b[o..]),
        tv_nsec: le_i64(&b[o + 8..]),
    };
    Ok(Some([ts(0), ts(16)]))
}

/// `struct timeval[2]` at `addr` (NULL: now), as timespecs.
#[cfg(target_arch = "x86_64")]
fn timevals(tid: libc::pid_t, addr: u64) -> Result<Option<[libc::timespec; 2]>, i32> {
    if addr == 0 {
        return Ok(None);
    }
    let b = read_exact(tid, addr, 32)?;
    let tv = |o: usize| -> Result<libc::timespec, i32> {
        let usec = le_i64(&b[o + 8..]);
        if !(0..1_000_000).contains(&usec) {
            return Err(libc::EINVAL);
        }
        Ok(libc::timespec {
            tv_sec: le_i64(&b[o..]),
            tv_nsec: usec * 1000,
        })
    };
    Ok(Some([tv(0)?, tv(16)?]))
}

/// `struct utimbuf` at `addr` (NULL: now), as timespecs.
#[cfg(target_arch = "x86_64")]
fn utimbuf(tid: libc::pid_t, addr: u64) -> Result<Option<[libc::timespec; 2]>, i32> {
    if addr == 0 {
        return Ok(None);
    }
    let b = read_exact(tid, addr, 16)?;
    let ts = |o: usize| libc::timespec {
        tv_sec: le_i64(&b[o..]),
        tv_nsec: 0,
    };
    Ok(Some([ts(0), ts(8)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metadata_call_is_mediated_and_other_ioctls_are_not_decoded() {
        for nr in [
            libc::SYS_fchmod,
            libc::SYS_fchown,
            libc::SYS_fchownat,
            libc::SYS_utimensat,
            libc::SYS_fremovexattr,
            libc::SYS_ioctl,
        ] {
            assert!(is_mediated(nr), "{nr}");
        }
        assert!(!is_mediated(libc::SYS_openat));
        assert!(!is_mediated(libc::SYS_connect));
    }

    #[test]
    fn mount_ids_are_the_first_column_of_mountinfo() {
        let me = std::process::id() as libc::pid_t;
        let ids = read_mount_ids(me).unwrap();
        let root = usys::open_path(None, c"/").unwrap();
        assert!(ids.contains(&sys::mount_id(&root).unwrap()));
    }
}
