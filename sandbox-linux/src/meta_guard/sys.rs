//! Raw system calls of the metadata mediation: each performs one metadata change on a descriptor
//! the supervisor holds (a duplicate of the child's, or one it resolved itself) and returns the
//! errno (0 on success).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

fn errno(r: libc::c_long) -> i32 {
    if r >= 0 {
        0
    } else {
        io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    }
}

/// The mount id of the file `fd` refers to (`statx(STATX_MNT_ID)`, Linux 5.8; the id of
/// `/proc/PID/mountinfo`'s first column).
pub fn mount_id(fd: &OwnedFd) -> io::Result<u64> {
    // SAFETY: statx is plain data the kernel fills.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: the empty path is NUL-terminated, `stx` a valid out-pointer.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    Ok(stx.stx_mnt_id)
}

/// Is `fd` (an `O_PATH` or ordinary descriptor) a symbolic link?
pub fn is_symlink(fd: &OwnedFd) -> bool {
    // SAFETY: stat is plain data the kernel fills.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the empty path is NUL-terminated, `st` a valid out-pointer.
    let r = unsafe {
        libc::fstatat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            &mut st,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// `openat2(root, path, O_PATH | O_CLOEXEC [| O_NOFOLLOW], RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS)`: `path` resolved as the child sees it (`root` is its
/// `/proc/TID/root`), never through a `/proc` magic link (`ELOOP`).
pub fn open_in_root(root: &OwnedFd, path: &CStr, follow: bool) -> io::Result<OwnedFd> {
    // SAFETY: an all-zero open_how is valid; the fields are set below.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC | nofollow) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `path` is NUL-terminated, `how` a valid open_how of the size passed; returns a new
    // fd.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: new fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn fchmod(fd: &OwnedFd, mode: u32) -> i32 {
    // SAFETY: integers only.
    errno(unsafe { libc::fchmod(fd.as_raw_fd(), mode) }.into())
}

pub fn fchown(fd: &OwnedFd, uid: u32, gid: u32) -> i32 {
    // SAFETY: integers only.
    errno(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }.into())
}

/// `utimensat(fd, NULL, times, 0)` (`futimens`); `None`: now.
pub fn futimens(fd: &OwnedFd, times: Option<&[libc::timespec; 2]>) -> i32 {
    let t = times.map_or(std::ptr::null(), |t| t.as_ptr());
    // SAFETY: a NULL path is the fd form; `t` is NULL or points at two timespecs.
    errno(unsafe {
        libc::syscall(
            libc::SYS_utimensat,
            fd.as_raw_fd(),
            std::ptr::null::<libc::c_char>(),
            t,
            0,
        )
    })
}

pub fn fremovexattr(fd: &OwnedFd, name: &CStr) -> i32 {
    // SAFETY: `name` is NUL-terminated.
    errno(unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) }.into())
}

/// `ioctl(fd, cmd, arg)` with the argument the supervisor copied (`arg` is the whole structure
/// the command reads: 4 bytes for `FS_IOC_SETFLAGS`, 28 for `FS_IOC_FSSETXATTR`).
pub fn ioctl_with(fd: &OwnedFd, cmd: u32, arg: &mut [u8]) -> i32 {
    // SAFETY: `arg` is the full structure the ioctl number reads (the caller sizes it by `cmd`).
    errno(unsafe { libc::ioctl(fd.as_raw_fd(), cmd as libc::Ioctl, arg.as_mut_ptr()) }.into())
}

/// `f()` with `SIGTTOU` blocked in the calling thread (a terminal's settings changed from a
/// background process group of its session would stop this process otherwise).
pub fn without_sigttou<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset/sigaddset; pthread_sigmask
    // changes only this thread's mask and writes the old one into `old`, put back below.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGTTOU);
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old);
        let r = f();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        r
    }
}

/// `chmod("/proc/self/fd/N")`: the mode of the file the supervisor's descriptor pins (an
/// `O_PATH` descriptor has no `fchmod`).
pub fn chmod_pinned(fd: &OwnedFd, mode: u32) -> i32 {
    let p = pinned(fd);
    // SAFETY: `p` is NUL-terminated.
    errno(unsafe { libc::chmod(p.as_ptr(), mode) }.into())
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH)` (works on `O_PATH` descriptors and symlinks).
pub fn chown_pinned(fd: &OwnedFd, uid: u32, gid: u32) -> i32 {
    // SAFETY: the empty path is NUL-terminated.
    errno(
        unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, libc::AT_EMPTY_PATH) }
            .into(),
    )
}

/// `utimensat(fd, "", times, AT_EMPTY_PATH)`.
pub fn utimens_pinned(fd: &OwnedFd, times: Option<&[libc::timespec; 2]>) -> i32 {
    let t = times.map_or(std::ptr::null(), |t| t.as_ptr());
    // SAFETY: the empty path is NUL-terminated; `t` is NULL or points at two timespecs.
    errno(unsafe { libc::utimensat(fd.as_raw_fd(), c"".as_ptr(), t, libc::AT_EMPTY_PATH) }.into())
}

/// `removexattr("/proc/self/fd/N", name)`.
pub fn removexattr_pinned(fd: &OwnedFd, name: &CStr) -> i32 {
    let p = pinned(fd);
    // SAFETY: both strings are NUL-terminated.
    errno(unsafe { libc::removexattr(p.as_ptr(), name.as_ptr()) }.into())
}

/// Whether the file `fd` pins (any descriptor, `O_PATH` included) has the extended attribute
/// `name` (`getxattr("/proc/self/fd/N", name, NULL, 0)`; an error counts as no).
pub fn has_xattr(fd: std::os::fd::BorrowedFd<'_>, name: &CStr) -> bool {
    let p = pinned(fd);
    // SAFETY: both strings are NUL-terminated; a NULL buffer of size 0 asks for the size only.
    unsafe { libc::getxattr(p.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
}

/// `/proc/self/fd/N` for `fd`, to reach the file it pins with a call that takes a path.
fn pinned(fd: impl std::os::fd::AsFd) -> std::ffi::CString {
    std::ffi::CString::new(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
        .expect("no NUL in a /proc path")
}

/// Setting an extended attribute: the calls answered `EOPNOTSUPP` by
/// [`install_xattr_unsupported`] (`setxattrat` is 463 on every architecture).
const SET_XATTR_CALLS: &[libc::c_long] = &[
    libc::SYS_setxattr,
    libc::SYS_lsetxattr,
    libc::SYS_fsetxattr,
    463,
];

/// A filter installed after the EPERM table (so it is consulted first and its answer kept):
/// setting an extended attribute fails with `EOPNOTSUPP`, what a filesystem without extended
/// attributes answers. The table refuses the same calls with `EPERM`; with that answer `cp -p`,
/// `tar` and `install` fail where they fall back to the plain mode for a filesystem without
/// ACLs. Requires no_new_privs.
pub fn install_xattr_unsupported() -> io::Result<()> {
    const LD_ABS_W: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let s = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let n = SET_XATTR_CALLS.len() as u8;
    let mut prog = vec![
        s(LD_ABS_W, 0, 0, 4), // seccomp_data.arch
        // foreign ABIs: the ABI filter kills them
        s(JEQ_K, 0, n + 2, codex_confine::arch::AUDIT_ARCH),
        s(LD_ABS_W, 0, 0, 0), // seccomp_data.nr
    ];
    for (i, &nr) in SET_XATTR_CALLS.iter().enumerate() {
        // match → the ERRNO return right after the last comparison
        prog.push(s(JEQ_K, n - i as u8, 0, nr as u32));
    }
    prog.push(s(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW));
    prog.push(s(
        RET_K,
        0,
        0,
        libc::SECCOMP_RET_ERRNO | libc::EOPNOTSUPP as u32,
    ));
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `prog`, alive for the call; the kernel copies it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
