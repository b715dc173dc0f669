//! The raw calls of the name guard (creator side and message passing). One call per function,
//! `io::Result` out; every `unsafe` block names its invariant.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn cvt(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn raw(dir: Option<BorrowedFd<'_>>) -> RawFd {
    dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd())
}

/// Most descriptors passed with one message.
pub const MAX_FDS: usize = 2;

/// A `SOCK_SEQPACKET` pair (message boundaries kept), close-on-exec.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a writable array of two ints, as socketpair requires.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } as libc::c_long)?;
    // SAFETY: socketpair succeeded: both descriptors are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Send one message with up to [`MAX_FDS`] descriptors.
pub fn send(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    assert!(fds.len() <= MAX_FDS);
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let mut cbuf = [0u64; 4]; // CMSG_SPACE(2 * sizeof(int)) = 24 ≤ 32, 8-aligned
    // SAFETY: `msg` points at `iov` (which borrows `bytes` for the call) and at `cbuf`, which is
    // large and aligned enough for one SCM_RIGHTS header with MAX_FDS ints; the header is written
    // through CMSG_* on that buffer only when there are descriptors.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            let n = (fds.len() * std::mem::size_of::<RawFd>()) as u32;
            msg.msg_control = cbuf.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(n) as _;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(n) as _;
            let data = libc::CMSG_DATA(c).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                std::ptr::write_unaligned(data.add(i), fd.as_raw_fd());
            }
        }
        loop {
            let r = libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL);
            if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            cvt(r as libc::c_long)?;
            return Ok(());
        }
    }
}

/// Receive one message into `buf`: its length and its descriptors (close-on-exec). `Ok(None)`
/// at end of stream.
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<(usize, Vec<OwnedFd>)>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 4];
    // SAFETY: `msg` points at `iov` (borrowing `buf` mutably for the call) and `cbuf`; the
    // control headers the kernel wrote are walked with CMSG_* within msg_controllen, and each
    // descriptor in an SCM_RIGHTS header is new to this process and owned by nobody else.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        let n = loop {
            let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break cvt(n as libc::c_long)? as usize;
        };
        let mut fds = Vec::new();
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / std::mem::size_of::<RawFd>();
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        if n == 0 && fds.is_empty() {
            return Ok(None);
        }
        if msg.msg_flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 {
            return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
        }
        Ok(Some((n, fds)))
    }
}

/// `openat(dir, path, flags, mode)`.
pub fn openat(
    dir: Option<BorrowedFd<'_>>,
    path: &CStr,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call; the result is a new descriptor.
    let fd = cvt(
        unsafe { libc::openat(raw(dir), path.as_ptr(), flags | libc::O_CLOEXEC, mode) }
            as libc::c_long,
    )?;
    // SAFETY: openat succeeded: the descriptor is new and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdirat(dir: Option<BorrowedFd<'_>>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and borrowed for the call.
    cvt(unsafe { libc::mkdirat(raw(dir), name.as_ptr(), mode) } as libc::c_long).map(drop)
}

/// `mknodat(dir, name, mode, dev)`.
pub fn mknodat(
    dir: Option<BorrowedFd<'_>>,
    name: &CStr,
    mode: libc::mode_t,
    dev: libc::dev_t,
) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated and borrowed for the call.
    cvt(unsafe { libc::mknodat(raw(dir), name.as_ptr(), mode, dev) } as libc::c_long).map(drop)
}

/// `symlinkat(target, dir, name)`.
pub fn symlinkat(target: &CStr, dir: Option<BorrowedFd<'_>>, name: &CStr) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated and borrowed for the call.
    cvt(unsafe { libc::symlinkat(target.as_ptr(), raw(dir), name.as_ptr()) } as libc::c_long)
        .map(drop)
}

/// `linkat(old_dir, old, new_dir, new, flags)`.
pub fn linkat(
    old_dir: Option<BorrowedFd<'_>>,
    old: &CStr,
    new_dir: Option<BorrowedFd<'_>>,
    new: &CStr,
    flags: libc::c_int,
) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated and borrowed for the call.
    cvt(unsafe {
        libc::linkat(
            raw(old_dir),
            old.as_ptr(),
            raw(new_dir),
            new.as_ptr(),
            flags,
        )
    } as libc::c_long)
    .map(drop)
}

/// `renameat2(old_dir, old, new_dir, new, flags)`.
pub fn renameat2(
    old_dir: Option<BorrowedFd<'_>>,
    old: &CStr,
    new_dir: Option<BorrowedFd<'_>>,
    new: &CStr,
    flags: libc::c_uint,
) -> io::Result<()> {
    // SAFETY: both strings are NUL-terminated and borrowed for the call.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            raw(old_dir),
            old.as_ptr(),
            raw(new_dir),
            new.as_ptr(),
            flags,
        )
    })
    .map(drop)
}

/// `readlinkat(dir, name)` (at most PATH_MAX bytes).
pub fn readlinkat(dir: Option<BorrowedFd<'_>>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `name` is NUL-terminated; `buf` is writable for `buf.len()` bytes.
    let n =
        cvt(
            unsafe { libc::readlinkat(raw(dir), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
                as libc::c_long,
        )? as usize;
    if n == buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(buf)
}

/// What the checks need to know about a descriptor's file (`fstat`, `fstatfs`).
#[derive(Debug, Clone, Copy)]
pub struct FileInfo {
    /// `st_mode & S_IFMT`.
    pub kind: libc::mode_t,
    /// The filesystem's magic number.
    pub magic: i64,
    /// The mount is read-only (`ST_RDONLY`).
    pub read_only: bool,
    /// `(st_dev, st_ino)`: which file it is.
    pub id: (u64, u64),
}

/// `fstat`, `fstatfs` and `fstatvfs` of `fd` (an `O_PATH` descriptor is enough).
pub fn info(fd: BorrowedFd<'_>) -> io::Result<FileInfo> {
    // SAFETY: the three structs are plain data written by the kernel for a valid descriptor.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        cvt(libc::fstat(fd.as_raw_fd(), &mut st) as libc::c_long)?;
        let mut sf: libc::statfs = std::mem::zeroed();
        cvt(libc::fstatfs(fd.as_raw_fd(), &mut sf) as libc::c_long)?;
        Ok(FileInfo {
            id: (st.st_dev, st.st_ino),
            kind: st.st_mode & libc::S_IFMT,
            magic: sf.f_type as i64,
            read_only: {
                let mut sv: libc::statvfs = std::mem::zeroed();
                cvt(libc::fstatvfs(fd.as_raw_fd(), &mut sv) as libc::c_long)?;
                sv.f_flag & libc::ST_RDONLY != 0
            },
        })
    }
}

/// `umask(mask)` (process-wide).
pub fn set_umask(mask: libc::mode_t) {
    // SAFETY: umask takes an integer and cannot fail.
    unsafe { libc::umask(mask) };
}

/// `prctl(PR_SET_DUMPABLE, 0)`: no other process of the same uid may open our `/proc/<pid>/mem`.
pub fn set_not_dumpable() -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes an integer by value.
    cvt(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } as libc::c_long).map(drop)
}

/// `capset`: empty effective, permitted and inheritable sets for this thread.
pub fn drop_capabilities() -> io::Result<()> {
    set_capabilities(0)
}

/// Keep `CAP_SYS_PTRACE` only (effective and permitted), when this process has it: in the
/// sandbox's user namespace it lets the creator read the memory of a command that made itself
/// non-dumpable (ssh, ssh-agent, an execute-only binary). `Err(EPERM)` when it does not have it.
pub fn keep_only_ptrace_capability() -> io::Result<()> {
    const CAP_SYS_PTRACE: u32 = 19;
    set_capabilities(1 << CAP_SYS_PTRACE)
}

/// `capset` with `low` as the effective and permitted sets (capabilities 0-31), nothing else.
fn set_capabilities(low: u32) -> io::Result<()> {
    let header = libc_cap_header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut data = [libc_cap_data::default(); 2];
    data[0].effective = low;
    data[0].permitted = low;
    // SAFETY: `header` and `data` have the layout of the kernel's cap_user_header_t and two
    // cap_user_data_t (version 3), borrowed for the call.
    cvt(unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) }).map(drop)
}

#[repr(C)]
struct libc_cap_header {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct libc_cap_data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Close every descriptor from 3 up except `keep`.
pub fn close_all_but(keep: &[RawFd]) {
    let mut keep = keep.to_vec();
    keep.sort_unstable();
    let mut from: u32 = 3;
    for k in keep {
        let k = k as u32;
        if k > from {
            // SAFETY: close_range takes integers; it closes only descriptors in [from, k-1].
            unsafe { libc::syscall(libc::SYS_close_range, from, k - 1, 0) };
        }
        from = from.max(k + 1);
    }
    // SAFETY: as above, [from, ~0].
    unsafe { libc::syscall(libc::SYS_close_range, from, u32::MAX, 0) };
}

/// Point 0, 1 and 2 at `/dev/null`.
pub fn stdio_to_dev_null() -> io::Result<()> {
    let null = openat(None, c"/dev/null", libc::O_RDWR, 0)?;
    for fd in 0..3 {
        // SAFETY: dup2 takes integers; `null` stays open during the call.
        cvt(unsafe { libc::dup2(null.as_raw_fd(), fd) } as libc::c_long)?;
    }
    Ok(())
}

/// `SECCOMP_IOCTL_NOTIF_ADDFD` with `SECCOMP_ADDFD_FLAG_SEND`: install `fd` in the notifying
/// process and answer the notification with its number, atomically (Linux 5.14).
pub fn notif_addfd_send(
    listener: BorrowedFd<'_>,
    id: u64,
    fd: BorrowedFd<'_>,
    cloexec: bool,
) -> io::Result<i32> {
    #[repr(C)]
    struct SeccompNotifAddfd {
        id: u64,
        flags: u32,
        srcfd: u32,
        newfd: u32,
        newfd_flags: u32,
    }
    const SECCOMP_ADDFD_FLAG_SEND: u32 = 1 << 1;
    // _IOW('!', 3, struct seccomp_notif_addfd)
    // `libc::Ioctl`: the request's C type (unsigned long on glibc, int on musl).
    const SECCOMP_IOCTL_NOTIF_ADDFD: libc::Ioctl = 0x4018_2103;
    let add = SeccompNotifAddfd {
        id,
        flags: SECCOMP_ADDFD_FLAG_SEND,
        srcfd: fd.as_raw_fd() as u32,
        newfd: 0,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: `add` has the layout of struct seccomp_notif_addfd and is borrowed for the call.
    let r = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            SECCOMP_IOCTL_NOTIF_ADDFD,
            &add as *const SeccompNotifAddfd,
        )
    };
    cvt(r as libc::c_long).map(|n| n as i32)
}

/// `read(fd, buf)`, retried on `EINTR`.
pub fn read_eintr(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `buf` is writable for `buf.len()` bytes.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if r < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return cvt(r as libc::c_long).map(|n| n as usize);
    }
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)` into `st`.
pub fn fstatat_nofollow(
    dir: RawFd,
    name: &CStr,
    st: &mut std::mem::MaybeUninit<libc::stat>,
) -> io::Result<libc::stat> {
    // SAFETY: `name` is NUL-terminated; `st` is writable memory of the size of `struct stat`,
    // which the kernel fills on success.
    cvt(unsafe {
        libc::fstatat(
            dir,
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } as libc::c_long)?;
    // SAFETY: fstatat succeeded, so the kernel initialised every field of `st`.
    Ok(unsafe { st.assume_init() })
}

/// `fstat(fd)`.
pub fn fstat_fd(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `st` is writable memory of the size of `struct stat`, filled on success.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } as libc::c_long)?;
    // SAFETY: fstat succeeded, so the kernel initialised every field of `st`.
    Ok(unsafe { st.assume_init() })
}

/// `openat(dir, "..", O_PATH | O_DIRECTORY | O_CLOEXEC)`: the directory above `dir`.
pub fn open_dotdot(dir: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: `dir` is borrowed for the call; the name is a NUL-terminated literal.
    let fd = cvt(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c"..".as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    } as libc::c_long)?;
    // SAFETY: openat succeeded: a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `open(path, O_PATH | O_DIRECTORY | O_CLOEXEC)` (an absolute path of this process's view).
pub fn open_dir_path(path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call.
    let fd = cvt(unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    } as libc::c_long)?;
    // SAFETY: open succeeded: a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Whether the directory `dir`/`name` (not followed if a link) has no entry but `.` and `..`;
/// an error when it cannot be opened and read (no read permission: not known to be empty).
pub fn dir_is_empty(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<bool> {
    let fd = openat(
        Some(dir),
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )?;
    let mut entries = std::fs::read_dir(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    Ok(entries.next().is_none())
}

/// Gives the directory `dir` (any descriptor of it, `O_PATH` too) its owner's write and search
/// bits, through `/proc/self/fd/N` (`fchmod` refuses `O_PATH` descriptors).
pub fn make_dir_writable(dir: BorrowedFd<'_>) -> io::Result<()> {
    let mode = fstat_fd(dir)?.st_mode & 0o7777;
    let path = std::ffi::CString::new(format!("/proc/self/fd/{}", dir.as_raw_fd()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `path` is NUL-terminated and alive for the call; integers otherwise.
    cvt(unsafe { libc::fchmodat(libc::AT_FDCWD, path.as_ptr(), mode | 0o300, 0) } as libc::c_long)
        .map(drop)
}

/// `flock(fd, op)` (`LOCK_SH`/`LOCK_EX`, with `LOCK_NB`).
pub fn flock(fd: BorrowedFd<'_>, op: libc::c_int) -> io::Result<()> {
    // SAFETY: flock takes a descriptor and an integer by value; no memory is passed.
    cvt(unsafe { libc::flock(fd.as_raw_fd(), op) } as libc::c_long).map(drop)
}

/// `unlinkat(dir, name, flags)`.
pub fn unlinkat(dir: Option<BorrowedFd<'_>>, name: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: `name` is NUL-terminated; `dir` is borrowed for the call.
    cvt(unsafe { libc::unlinkat(raw(dir), name.as_ptr(), flags) } as libc::c_long).map(drop)
}

/// `ftruncate(fd, length)`.
pub fn ftruncate(fd: BorrowedFd<'_>, length: i64) -> io::Result<()> {
    // SAFETY: `fd` is borrowed for the call.
    cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), length) } as libc::c_long).map(drop)
}
