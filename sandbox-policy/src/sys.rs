//! The libc calls of this crate: the passwd entry's home directory; the filesystem nodes of
//! listening unix sockets (`NETLINK_SOCK_DIAG`).

use std::ffi::{CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// This process's real uid.
pub fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// `getpwuid_r(getuid())`'s `pw_dir`; `None` when there is no entry, it has no directory, or
/// the lookup fails (NSS unreachable): the caller then protects `HOME` only or refuses.
/// Looked up once per uid and process (a sandbox's start asked four times: each lookup is a
/// dozen system calls, NSS's configuration, `nscd`'s socket, `/etc/passwd`).
pub fn passwd_home() -> Option<PathBuf> {
    static LOOKED_UP: std::sync::Mutex<Option<(u32, Option<PathBuf>)>> =
        std::sync::Mutex::new(None);
    let uid = uid();
    let mut cache = LOOKED_UP.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((for_uid, home)) = cache.as_ref()
        && *for_uid == uid
    {
        return home.clone();
    }
    let home = passwd_home_of_uid(uid);
    *cache = Some((uid, home.clone()));
    home
}

fn passwd_home_of_uid(uid: u32) -> Option<PathBuf> {
    let mut buf = vec![0 as libc::c_char; 4096];
    loop {
        // SAFETY: an all-zero passwd is a valid value for getpwuid_r to overwrite.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `pw`, `buf` (of `buf.len()` bytes) and `result` are valid for writes for the
        // duration of the call; the strings pw points to live in `buf`, read before it changes.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pw.pw_dir.is_null() {
            return None;
        }
        // SAFETY: on success pw_dir points to a NUL-terminated string inside `buf`, alive here.
        let dir = unsafe { CStr::from_ptr(pw.pw_dir) };
        let bytes = dir.to_bytes();
        return (!bytes.is_empty()).then(|| PathBuf::from(OsStr::from_bytes(bytes)));
    }
}

/// The filesystem node each listening unix socket of this network namespace is bound to, from
/// one `NETLINK_SOCK_DIAG` dump (`unix_diag`, `UDIAG_SHOW_VFS`, `ss -xl`'s source): (the socket's
/// own inode, as `/proc/net/unix`'s `Inode` column shows it) -> (device as the kernel encodes it,
/// `MAJOR << 20 | MINOR`; inode of the node). Sockets without a node (abstract, unbound) are
/// absent. The node stays the same when the socket file is renamed or linked elsewhere, which
/// its bound path in `/proc/net/unix` does not show.
#[cfg(target_os = "linux")]
pub fn listening_unix_nodes() -> std::io::Result<std::collections::HashMap<u32, (u32, u64)>> {
    use crate::unix_diag::{Query, Walked, ask, receive, walk};
    let nl = ask(Query::Listening)?;
    let mut nodes = std::collections::HashMap::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = receive(&nl, &mut buf)?;
        let walked = walk(&buf[..n], |sock, node| {
            if let Some(node) = node {
                nodes.insert(sock, node);
            }
        })?;
        if walked == Walked::Done {
            return Ok(nodes);
        }
    }
}

/// A `NETLINK_SOCK_DIAG` socket with `req` sent on it.
#[cfg(target_os = "linux")]
pub fn netlink_sock_diag_send(req: &[u8]) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket takes integers and returns a new descriptor or -1.
    let nl = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if nl < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new descriptor owned by nobody else.
    let nl = unsafe { OwnedFd::from_raw_fd(nl) };
    // SAFETY: `req` is valid for its length; the kernel copies it.
    if unsafe { libc::send(nl.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(nl)
}

/// One `recv` on `fd` into `buf`; 0 bytes is an error (the kernel always answers).
#[cfg(target_os = "linux")]
pub fn netlink_recv(fd: &std::os::fd::OwnedFd, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `buf` is writable for its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    match n {
        n if n < 0 => Err(std::io::Error::last_os_error()),
        0 => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "unix_diag: no answer",
        )),
        n => Ok(n as usize),
    }
}
