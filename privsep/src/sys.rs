//! The syscall layer: every `unsafe` block of the crate lives here.
//!
//! Each function wraps exactly one libc call (or one tightly coupled pair, noted) and returns
//! `io::Result`; callers add the context (which call, which path) in their typed errors.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

/// `getresuid(2)`: (real, effective, saved) user ids.
pub fn getresuid() -> io::Result<(u32, u32, u32)> {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are to live, writable `uid_t` locals of this frame.
    cvt(unsafe { libc::getresuid(&mut r, &mut e, &mut s) })?;
    Ok((r, e, s))
}

/// `geteuid(2)` (cannot fail).
pub fn geteuid() -> u32 {
    // SAFETY: no arguments; geteuid always succeeds.
    unsafe { libc::geteuid() }
}

/// `getresgid(2)`: (real, effective, saved) group ids.
pub fn getresgid() -> io::Result<(u32, u32, u32)> {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: the three pointers are to live, writable `gid_t` locals of this frame.
    cvt(unsafe { libc::getresgid(&mut r, &mut e, &mut s) })?;
    Ok((r, e, s))
}

/// `getgroups(2)`: the supplementary groups of the calling thread.
pub fn getgroups() -> io::Result<Vec<u32>> {
    // SAFETY: size 0 with a null list only asks for the count; nothing is written.
    let n = cvt(unsafe { libc::getgroups(0, std::ptr::null_mut()) })?;
    let mut groups = vec![0 as libc::gid_t; usize::try_from(n).unwrap_or(0)];
    // SAFETY: `groups` has exactly `n` writable elements and we pass `n` as the size.
    let got = cvt(unsafe { libc::getgroups(n, groups.as_mut_ptr()) })?;
    groups.truncate(usize::try_from(got).unwrap_or(0));
    Ok(groups)
}

/// `setgroups(2)` through glibc, which applies it to every thread of the process.
pub fn setgroups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: the pointer and length describe the live slice `groups`, read-only for the kernel.
    cvt(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) }).map(drop)
}

/// `setresgid(2)` through glibc (process-wide: glibc broadcasts set*id calls to all threads).
pub fn setresgid(gid: u32) -> io::Result<()> {
    // SAFETY: plain integer arguments; no memory is shared with the kernel.
    cvt(unsafe { libc::setresgid(gid, gid, gid) }).map(drop)
}

/// `setresuid(2)` through glibc (process-wide).
pub fn setresuid(uid: u32) -> io::Result<()> {
    // SAFETY: plain integer arguments; no memory is shared with the kernel.
    cvt(unsafe { libc::setresuid(uid, uid, uid) }).map(drop)
}

/// `setuid(2)`: used only to verify that root cannot be regained.
pub fn setuid(uid: u32) -> io::Result<()> {
    // SAFETY: plain integer argument.
    cvt(unsafe { libc::setuid(uid) }).map(drop)
}

/// `setgid(2)`: used only to verify that group 0 cannot be regained.
pub fn setgid(gid: u32) -> io::Result<()> {
    // SAFETY: plain integer argument.
    cvt(unsafe { libc::setgid(gid) }).map(drop)
}

/// `capget(2)` (version 3): (effective, permitted) capability sets of the calling thread, as
/// 64-bit masks.
pub fn capget() -> io::Result<(u64, u64)> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: version 3 of capget reads one header and writes two `Data` structs; both pointers
    // are to live locals of exactly those repr(C) layouts.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    let eff = u64::from(data[0].effective) | (u64::from(data[1].effective) << 32);
    let perm = u64::from(data[0].permitted) | (u64::from(data[1].permitted) << 32);
    Ok((eff, perm))
}

// ---------------------------------------------------------------------------------------------
// Process attributes
// ---------------------------------------------------------------------------------------------

/// `prctl(PR_SET_DUMPABLE, 0)`.
pub fn set_not_dumpable() -> io::Result<()> {
    // SAFETY: integer-only prctl; no memory is passed.
    cvt(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).map(drop)
}

/// `prctl(PR_GET_DUMPABLE)`.
pub fn get_dumpable() -> io::Result<i32> {
    // SAFETY: integer-only prctl; no memory is passed.
    cvt(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) })
}

/// `setrlimit(RLIMIT_CORE, {0, 0})`.
pub fn set_core_limit_zero() -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live, initialised rlimit the kernel only reads.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_CORE, &lim) }).map(drop)
}

/// `getrlimit(RLIMIT_CORE)`: (soft, hard).
pub fn get_core_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live rlimit local the kernel writes.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) })?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// `getrlimit(RLIMIT_NOFILE)`: (soft, hard).
pub fn get_nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live rlimit local the kernel writes.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// `setrlimit(RLIMIT_NOFILE, {soft, hard})`.
pub fn set_nofile_limit(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a live, initialised rlimit the kernel only reads.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }).map(drop)
}

/// `umask(2)`: sets the mask and returns the previous one (cannot fail).
pub fn umask(mask: u32) -> u32 {
    // SAFETY: integer-only call that cannot fail.
    unsafe { libc::umask(mask) }
}

/// Removes an environment variable.
///
/// Callers must only call this while the process is single-threaded (start-up, before any
/// runtime exists): `remove_var` races with concurrent `getenv` in other threads. The caller
/// checks `codex_confine::thread_count` first.
pub fn remove_env_var(name: &str) {
    // SAFETY: the caller guarantees (and checks with `thread_count() == 1`) that no other
    // thread exists that could read the environment concurrently.
    unsafe { std::env::remove_var(name) }
}

// ---------------------------------------------------------------------------------------------
// File descriptors and sockets
// ---------------------------------------------------------------------------------------------

/// Takes ownership of an inherited descriptor number.
///
/// The caller guarantees that `fd` is open, that nothing else in the process owns it, and that
/// it is claimed only once (systemd activation unsets `LISTEN_FDS` after claiming).
pub fn claim_inherited_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: per the function contract, `fd` is an open descriptor inherited across exec that
    // no other object in this process owns, so wrapping it in one `OwnedFd` is sound.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `fcntl(F_GETFD)` succeeds: the descriptor number is open.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on any integer is harmless; it only queries the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// `fcntl(F_SETFD, FD_CLOEXEC)`.
pub fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `fd` is a live borrowed descriptor; F_SETFD only changes its flags.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) }).map(drop)
}

/// `fstat(2)`: the `st_mode`, `st_uid` of a descriptor.
pub fn fstat_mode_uid(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fd` is live; `st` is a writable stat buffer the kernel fills on success.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat returned 0, so the kernel initialised the whole struct.
    let st = unsafe { st.assume_init() };
    Ok((st.st_mode, st.st_uid))
}

/// `getsockopt(fd, SOL_SOCKET, opt)` for an `int`-valued option.
pub fn getsockopt_int(fd: BorrowedFd<'_>, opt: libc::c_int) -> io::Result<libc::c_int> {
    let mut val: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `val` is a writable int and `len` holds its exact size.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&mut val as *mut libc::c_int).cast(),
            &mut len,
        )
    })?;
    Ok(val)
}

/// `getsockopt(SO_PEERCRED)`: (pid, uid, gid) of the peer at connect time.
pub fn getsockopt_peercred(fd: BorrowedFd<'_>) -> io::Result<(i32, u32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable ucred and `len` holds its exact size.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    if len as usize != std::mem::size_of::<libc::ucred>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short SO_PEERCRED answer",
        ));
    }
    Ok((cred.pid, cred.uid, cred.gid))
}

/// `socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)`.
pub fn netlink_sock_diag_socket() -> io::Result<OwnedFd> {
    // SAFETY: integer-only call; on success the returned descriptor is new and owned by us.
    let fd = cvt(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    })?;
    // SAFETY: `fd` was just returned by socket(2) and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setsockopt(SO_RCVTIMEO)`.
pub fn set_recv_timeout(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros() as i32),
    };
    // SAFETY: `tv` is a live timeval the kernel reads `size_of::<timeval>()` bytes from.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `send(2)` of one whole datagram to the kernel (netlink destination is implicit: pid 0).
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe the live slice `buf`, read-only for the kernel.
    let n = unsafe { libc::send(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// `recv(2)` of one datagram.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe the live, writable slice `buf`.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

// ---------------------------------------------------------------------------------------------
// The user and group databases (NSS)
// ---------------------------------------------------------------------------------------------

/// One passwd entry, copied out of libc's buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passwd {
    pub name: CString,
    pub uid: u32,
    pub gid: u32,
}

/// One group entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: CString,
    pub gid: u32,
}

const NSS_BUF_START: usize = 4096;
const NSS_BUF_MAX: usize = 1 << 20;

/// One `get*_r(3)` lookup, retried with a larger buffer on `ERANGE`. `call(entry, buf, result)`
/// must be a reentrant NSS call that, on success, sets `*result` to `entry` (filled in, its strings
/// pointing into `buf`) or to null when there is no such entry; `copy` copies the entry out
/// before `buf` is freed.
fn nss_lookup<E, T>(
    mut call: impl FnMut(*mut E, &mut [libc::c_char], *mut *mut E) -> libc::c_int,
    copy: impl Fn(&E) -> T,
) -> io::Result<Option<T>> {
    let mut len = NSS_BUF_START;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        let mut entry = MaybeUninit::<E>::uninit();
        let mut result: *mut E = std::ptr::null_mut();
        match call(entry.as_mut_ptr(), &mut buf, &mut result) {
            0 if result.is_null() => return Ok(None),
            // SAFETY: a get*_r call that returned 0 with a non-null `result` pointed it at
            // `entry`, which it initialised, and the entry's strings point into `buf`, still
            // alive here; `copy` copies them out before both go out of scope.
            0 => return Ok(Some(copy(unsafe { &*result }))),
            libc::ERANGE if len < NSS_BUF_MAX => len *= 2,
            err => return Err(io::Error::from_raw_os_error(err)),
        }
    }
}

fn nss_name(name: &OsStr) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

fn passwd_from(pw: &libc::passwd) -> Passwd {
    // SAFETY: `pw_name` of an entry returned by getpw*_r points into the caller's live buffer
    // as a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(pw.pw_name) }.to_owned();
    Passwd {
        name,
        uid: pw.pw_uid,
        gid: pw.pw_gid,
    }
}

/// `getpwnam_r(3)`.
pub fn getpwnam(name: &OsStr) -> io::Result<Option<Passwd>> {
    let cname = nss_name(name)?;
    nss_lookup(
        |pw, buf, result| {
            // SAFETY: `cname` is NUL-terminated; `pw`, `buf` (with its exact length) and `result`
            // are live and writable for the duration of the call.
            unsafe { libc::getpwnam_r(cname.as_ptr(), pw, buf.as_mut_ptr(), buf.len(), result) }
        },
        passwd_from,
    )
}

/// `getpwuid_r(3)`.
pub fn getpwuid(uid: u32) -> io::Result<Option<Passwd>> {
    nss_lookup(
        |pw, buf, result| {
            // SAFETY: `pw`, `buf` (with its exact length) and `result` are live and writable.
            unsafe { libc::getpwuid_r(uid, pw, buf.as_mut_ptr(), buf.len(), result) }
        },
        passwd_from,
    )
}

fn group_from(gr: &libc::group) -> Group {
    // SAFETY: `gr_name` of an entry returned by getgr*_r is a NUL-terminated string in the
    // caller's live buffer.
    let name = unsafe { CStr::from_ptr(gr.gr_name) }.to_owned();
    Group {
        name,
        gid: gr.gr_gid,
    }
}

/// `getgrnam_r(3)`.
pub fn getgrnam(name: &OsStr) -> io::Result<Option<Group>> {
    let cname = nss_name(name)?;
    nss_lookup(
        |gr, buf, result| {
            // SAFETY: `cname` is NUL-terminated; `gr`, `buf` (exact length) and `result` are live.
            unsafe { libc::getgrnam_r(cname.as_ptr(), gr, buf.as_mut_ptr(), buf.len(), result) }
        },
        group_from,
    )
}

/// `getgrouplist(3)`: every group `user` belongs to, including `primary`.
pub fn getgrouplist(user: &CStr, primary: u32) -> io::Result<Vec<u32>> {
    let mut n: libc::c_int = 32;
    loop {
        let mut groups = vec![0 as libc::gid_t; usize::try_from(n).unwrap_or(32)];
        let mut count = n;
        // SAFETY: `user` is NUL-terminated; `groups` has `count` writable elements and `count`
        // is a live int the call updates.
        let rc =
            unsafe { libc::getgrouplist(user.as_ptr(), primary, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(usize::try_from(count).unwrap_or(0));
            return Ok(groups);
        }
        // -1: too small; `count` now holds the needed size (glibc).
        if count <= n || count > 65536 {
            return Err(io::Error::other(
                "getgrouplist did not report a usable size",
            ));
        }
        n = count;
    }
}

/// Every passwd entry, by `setpwent`/`getpwent`/`endpwent` (NSS enumeration).
///
/// `getpwent` keeps iteration state in libc; a process-wide lock serialises callers of this
/// function. Nothing else in this workspace uses `getpwent`.
pub fn all_passwd_entries() -> io::Result<Vec<Passwd>> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = Vec::new();
    // SAFETY: setpwent resets libc's iteration state, which `LOCK` makes ours alone.
    unsafe { libc::setpwent() };
    loop {
        // Distinguish end-of-database (errno untouched) from an error.
        // SAFETY: __errno_location returns this thread's errno slot, always valid.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: getpwent returns null or a pointer into libc's static entry, valid until the
        // next getpwent call; we copy out of it before calling again.
        let pw = unsafe { libc::getpwent() };
        if pw.is_null() {
            let err = io::Error::last_os_error();
            // SAFETY: ends the iteration started above.
            unsafe { libc::endpwent() };
            return match err.raw_os_error() {
                Some(0) | Some(libc::ENOENT) | None => Ok(out),
                _ => Err(err),
            };
        }
        // SAFETY: non-null: a valid entry until the next getpwent call (see above).
        out.push(passwd_from(unsafe { &*pw }));
    }
}

/// `faccessat(AT_FDCWD, path, mode, AT_EACCESS)`: checks `path` with the effective ids.
pub fn access(path: &std::path::Path, mode: libc::c_int) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call; the kernel only reads it.
    cvt(unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), mode, libc::AT_EACCESS) }).map(drop)
}

// ---------------------------------------------------------------------------------------------
// Directory-relative file operations (trusted_dir)
// ---------------------------------------------------------------------------------------------

fn cstr(name: &OsStr) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `openat(2)` with `flags | O_CLOEXEC` and `mode`; `dir` `None` means `AT_FDCWD`.
pub fn openat(
    dir: Option<BorrowedFd<'_>>,
    name: &OsStr,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let name = cstr(name)?;
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `dirfd` is AT_FDCWD or a live borrowed descriptor; `name` is NUL-terminated and
    // outlives the call; on success the returned descriptor is new and owned by nobody else.
    let fd = cvt(unsafe {
        libc::openat(
            dirfd,
            name.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: `fd` was just returned by openat and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mkdirat(2)`.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
    let name = cstr(name)?;
    // SAFETY: `dir` is live; `name` is NUL-terminated and outlives the call.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// `readlinkat(2)`: the target of symlink `name` in `dir`.
pub fn readlinkat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<std::ffi::OsString> {
    use std::os::unix::ffi::OsStringExt;
    let name = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `dir` is live; `name` is NUL-terminated; `buf` is writable for `buf.len()` bytes.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(std::ffi::OsString::from_vec(buf))
}

/// `fstatat(2)` with `AT_SYMLINK_NOFOLLOW`: `st_mode`, `st_uid` of `name` in `dir`.
pub fn lstatat_mode_uid(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<(u32, u32)> {
    let name = cstr(name)?;
    let mut st = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `dir` is live; `name` is NUL-terminated; `st` is a writable stat buffer.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: fstatat returned 0, so the kernel initialised the whole struct.
    let st = unsafe { st.assume_init() };
    Ok((st.st_mode, st.st_uid))
}

/// `renameat(2)` within one directory.
pub fn renameat(dir: BorrowedFd<'_>, from: &OsStr, to: &OsStr) -> io::Result<()> {
    let (from, to) = (cstr(from)?, cstr(to)?);
    // SAFETY: `dir` is live; both names are NUL-terminated and outlive the call.
    cvt(unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) })
        .map(drop)
}

/// `flock(fd, LOCK_EX | LOCK_NB)`: `EWOULDBLOCK` when another open file description holds it.
pub fn flock_exclusive_now(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `fd` is live for the call; flock reads only the descriptor number.
    cvt(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }).map(drop)
}

/// `unlinkat(2)` of a non-directory.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let name = cstr(name)?;
    // SAFETY: `dir` is live; `name` is NUL-terminated and outlives the call.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

// ---------------------------------------------------------------------------------------------
// The key opener (key_opener.rs): a forked, confined helper that hands over descriptors
// ---------------------------------------------------------------------------------------------

/// `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: `fds` is a writable array of two ints, as socketpair requires.
    cvt(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair succeeded: both descriptors are new and owned only by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `fork(2)`: `Ok(None)` in the child, `Ok(Some(pid))` in the parent.
///
/// The caller guarantees the process is single-threaded (checked with `thread_count` just
/// before): the child is then an exact copy with no lock held by a thread that does not exist
/// in it, so it may allocate and run ordinary Rust code.
pub fn fork() -> io::Result<Option<libc::pid_t>> {
    // SAFETY: per the function contract the process is single-threaded; fork has no memory
    // arguments.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// `prctl(PR_SET_PDEATHSIG, SIGKILL)`: die when the parent does.
pub fn set_parent_death_kill() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number; no memory is passed.
    cvt(unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    })
    .map(drop)
}

/// `getppid(2)`.
pub fn getppid() -> libc::pid_t {
    // SAFETY: no arguments; cannot fail.
    unsafe { libc::getppid() }
}

/// `prctl(PR_SET_NAME)`: the thread's name in `ps` (at most 15 bytes kept).
pub fn set_name(name: &CStr) -> io::Result<()> {
    // SAFETY: `name` is a NUL-terminated string the kernel reads at most 16 bytes of.
    cvt(unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0) })
        .map(drop)
}

/// `dup2(2)`: makes `target` a copy of `fd` (without close-on-exec).
pub fn dup2(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 on a live descriptor; `target` is replaced atomically, and the caller owns
    // whatever was at that number (it is about to close every other descriptor).
    cvt(unsafe { libc::dup2(fd.as_raw_fd(), target) }).map(drop)
}

/// `close_range(first, ~0, 0)`: closes every descriptor from `first` up.
///
/// The caller guarantees that no object of the process still owns a descriptor in that range
/// that it will use again (the key opener's child calls it right after fork, before using
/// anything but its own socket).
pub fn close_from(first: libc::c_uint) -> io::Result<()> {
    // SAFETY: close_range takes integers only; per the contract no live owner uses these.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `capset(2)` with empty effective, permitted and inheritable sets for this process.
pub fn drop_all_capabilities() -> io::Result<()> {
    let mut header = libc_cap_header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [libc_cap_data::default(); 2];
    // SAFETY: `header` and the two-element `data` array are the layout capset expects for
    // version 3; the kernel only reads them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut libc_cap_header,
            data.as_ptr(),
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[repr(C)]
struct libc_cap_header {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct libc_cap_data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `_exit(2)`: ends the process at once (the key opener's child never returns into the
/// parent's code).
pub fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: _exit takes an integer and does not return.
    unsafe { libc::_exit(code) }
}

/// `sendmsg(2)` of `data` with `fd` (if any) as `SCM_RIGHTS`.
pub fn send_with_fd(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // Room for one descriptor, aligned for cmsghdr.
    let mut cbuf = [0u64; 4];
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
        debug_assert!(space <= std::mem::size_of_val(&cbuf));
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `cbuf`, at least `space` bytes and 8-aligned, so
        // CMSG_FIRSTHDR returns a pointer to its start, valid for one header plus one int.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd.as_raw_fd());
        }
    }
    // SAFETY: `msg` points at `iov` (describing the live slice `data`) and `cbuf`, both alive
    // for the call; the kernel only reads them.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `recvmsg(2)` into `buf`, taking at most one `SCM_RIGHTS` descriptor (close-on-exec):
/// (bytes, descriptor). More descriptors than one, or a truncated control message, is an error
/// (every descriptor received is closed).
pub fn recv_with_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    recv_with_fd_flags(sock, buf, 0)
}

/// [`recv_with_fd`] with extra `recvmsg` flags (`MSG_DONTWAIT`).
pub fn recv_with_fd_flags(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    let n = loop {
        // SAFETY: `msg` points at `iov` (the live, writable `buf`) and `cbuf` (writable, its
        // size in msg_controllen), both alive for the call.
        let n =
            unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC | flags) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        break n as usize;
    };
    let mut fds = Vec::new();
    // SAFETY: the kernel filled msg_control/msg_controllen; CMSG_FIRSTHDR/NXTHDR walk only
    // inside it, and each SCM_RIGHTS payload holds (cmsg_len - CMSG_LEN(0)) / 4 descriptors,
    // newly installed in this process and owned by nobody else.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                for i in 0..bytes / std::mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 || fds.len() > 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected descriptors in the message",
        ));
    }
    Ok((n, fds.pop()))
}

/// `sigaction(sig, SIG_IGN)`.
pub fn ignore_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: an all-zero sigaction with `sa_sigaction = SIG_IGN` is a valid disposition; the
    // kernel only reads it, and the old action is not asked for.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_IGN;
        cvt(libc::sigaction(sig, &sa, std::ptr::null_mut())).map(drop)
    }
}

/// `close(2)` of a descriptor number nothing in the process owns any more (the key opener's
/// fallback when `close_range` is refused, e.g. by an older systemd's `SystemCallFilter=`).
/// Errors (`EBADF` for a number not open) are ignored.
pub fn close_unowned(fd: RawFd) {
    // SAFETY: per the caller (right after fork, before anything but the opener's own socket is
    // used), no object owns `fd`; closing a number that is not open only returns EBADF.
    unsafe {
        libc::close(fd);
    }
}

// ---------------------------------------------------------------------------------------------
// Busy polling
// ---------------------------------------------------------------------------------------------

/// `fcntl(F_DUPFD_CLOEXEC)` of a descriptor number this process has open: a new descriptor of
/// the same open file, owned by the caller (the original stays with whoever owns it).
pub fn dup_raw_cloexec(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on any integer only reads the descriptor table (EBADF if `fd` is
    // not open); on success the returned number is a new descriptor nothing else owns.
    let new = cvt(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: `new` was just created by fcntl and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// `eventfd(2)` (close-on-exec): a pollable descriptor of no consequence, for probing.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; on success the returned number is a new descriptor
    // nothing else owns.
    let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) })?;
    // SAFETY: `fd` was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether descriptor number `fd` is an epoll instance: `epoll_ctl(fd, EPOLL_CTL_DEL, probe)`
/// with a `probe` that was never added anywhere answers `ENOENT` on an epoll instance and
/// `EINVAL` (or `EBADF`) on anything else, and changes nothing either way.
pub fn is_epoll(fd: RawFd, probe: BorrowedFd<'_>) -> bool {
    epoll_del(fd, probe).err().and_then(|e| e.raw_os_error()) == Some(libc::ENOENT)
}

/// `epoll_ctl(fd, EPOLL_CTL_DEL, probe)` on any descriptor number (a non-epoll answers EINVAL).
fn epoll_del(fd: RawFd, probe: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: EPOLL_CTL_DEL ignores the event pointer (null is allowed since Linux 2.6.9); the
    // call only reads the descriptor table and, on an epoll instance, removes `probe` from it.
    cvt(unsafe {
        libc::epoll_ctl(
            fd,
            libc::EPOLL_CTL_DEL,
            probe.as_raw_fd(),
            std::ptr::null_mut(),
        )
    })
    .map(drop)
}

/// Whether epoll descriptors `a` and `b` are one epoll instance (a `dup` of each other): the
/// quiet `probe` (an eventfd with a zero count: never ready) is added to `a` and then deleted
/// through `b`; if that fails it is deleted through `a`. Either way `probe` ends registered
/// nowhere.
pub fn same_epoll(a: RawFd, b: RawFd, probe: BorrowedFd<'_>) -> io::Result<bool> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: u64::MAX,
    };
    // SAFETY: `ev` is a live epoll_event of this frame the kernel only reads; `a` is any
    // descriptor number (a non-epoll answers EINVAL).
    cvt(unsafe { libc::epoll_ctl(a, libc::EPOLL_CTL_ADD, probe.as_raw_fd(), &mut ev) })?;
    if epoll_del(b, probe).is_ok() {
        return Ok(true);
    }
    epoll_del(a, probe)?;
    Ok(false)
}

/// `poll(2)` with a zero timeout: whether `fd` is readable now (for an epoll descriptor: its
/// ready list is not empty; nothing is consumed).
pub fn readable_now(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `p` is one live, writable pollfd of this frame; nfds is 1; timeout 0 never sleeps.
    let n = cvt(unsafe { libc::poll(&mut p, 1, 0) })?;
    Ok(n > 0 && p.revents & libc::POLLIN != 0)
}
