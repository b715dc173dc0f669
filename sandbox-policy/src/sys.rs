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
pub fn passwd_home() -> Option<PathBuf> {
    let uid = uid();
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

/// Not on other systems (no `NETLINK_SOCK_DIAG`): nothing found.
#[cfg(not(target_os = "linux"))]
pub fn listening_unix_nodes() -> std::io::Result<std::collections::HashMap<u32, (u32, u64)>> {
    Ok(std::collections::HashMap::new())
}

/// The filesystem node each listening unix socket of this network namespace is bound to, from
/// one `NETLINK_SOCK_DIAG` dump (`unix_diag`, `UDIAG_SHOW_VFS`, `ss -xl`'s source): (the socket's
/// own inode, as `/proc/net/unix`'s `Inode` column shows it) -> (device as the kernel encodes it,
/// `MAJOR << 20 | MINOR`; inode of the node). Sockets without a node (abstract, unbound) are
/// absent. The node stays the same when the socket file is renamed or linked elsewhere, which
/// its bound path in `/proc/net/unix` does not show.
#[cfg(target_os = "linux")]
pub fn listening_unix_nodes() -> std::io::Result<std::collections::HashMap<u32, (u32, u64)>> {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const UDIAG_SHOW_VFS: u32 = 0x2;
    const UNIX_DIAG_VFS: u16 = 1;
    const TCP_LISTEN: u32 = 10;
    let cvt = |r: libc::c_long| {
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    };
    // SAFETY: socket takes integers and returns a new descriptor or -1.
    let nl = cvt(unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    } as libc::c_long)?;
    // SAFETY: a new descriptor owned by nobody else.
    let nl = unsafe { OwnedFd::from_raw_fd(nl as i32) };
    // nlmsghdr (16) + unix_diag_req (24): every listening socket, with its node
    let mut req = [0u8; 40];
    req[0..4].copy_from_slice(&40u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes()); // sequence
    req[16] = libc::AF_UNIX as u8;
    req[20..24].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    req[28..32].copy_from_slice(&UDIAG_SHOW_VFS.to_ne_bytes());
    req[32..40].copy_from_slice(&[0xff; 8]); // no cookie
    // SAFETY: `req` is valid for its length; the kernel copies it.
    cvt(unsafe { libc::send(nl.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } as libc::c_long)?;
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed unix_diag answer");
    let mut nodes = std::collections::HashMap::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: `buf` is writable for its length.
        let n = cvt(
            unsafe { libc::recv(nl.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) }
                as libc::c_long,
        )? as usize;
        if n == 0 {
            return Err(bad());
        }
        let msgs = &buf[..n];
        let u16_at = |b: &[u8], i: usize| -> Option<u16> {
            Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?))
        };
        let u32_at = |b: &[u8], i: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
        };
        let mut at = 0;
        while at + 16 <= n {
            let len = u32_at(msgs, at).ok_or_else(bad)? as usize;
            let kind = u16_at(msgs, at + 4).ok_or_else(bad)?;
            if len < 16 || at + len > n {
                return Err(bad());
            }
            let msg = &msgs[at..at + len];
            match kind {
                k if k == libc::NLMSG_DONE as u16 => return Ok(nodes),
                k if k == libc::NLMSG_ERROR as u16 => {
                    let errno = u32_at(msg, 16).map_or(libc::EIO, |e| -(e as i32));
                    return Err(io::Error::from_raw_os_error(errno));
                }
                SOCK_DIAG_BY_FAMILY => {
                    // unix_diag_msg: family, type, state, pad, ino (u32), cookie (2 x u32)
                    let sock_ino = u32_at(msg, 16 + 4).ok_or_else(bad)?;
                    let mut a = 16 + 16;
                    while a + 4 <= len {
                        let alen = u16_at(msg, a).ok_or_else(bad)? as usize;
                        let atype = u16_at(msg, a + 2).ok_or_else(bad)?;
                        if alen < 4 || a + alen > len {
                            return Err(bad());
                        }
                        if atype == UNIX_DIAG_VFS && alen >= 12 {
                            // struct unix_diag_vfs { __u32 udiag_vfs_ino; __u32 udiag_vfs_dev; }
                            let ino = u32_at(msg, a + 4).ok_or_else(bad)?;
                            let dev = u32_at(msg, a + 8).ok_or_else(bad)?;
                            nodes.insert(sock_ino, (dev, u64::from(ino)));
                        }
                        a += (alen + 3) & !3;
                    }
                }
                _ => {}
            }
            at += (len + 3) & !3;
        }
    }
}
