//! `NETLINK_SOCK_DIAG` for unix sockets (`unix_diag`, `ss -x`'s source): the request asking for
//! the filesystem node a socket is bound to (`UDIAG_SHOW_VFS`), and the walk of the answer.
//! The byte handling is here; the two socket calls are in `sys`.

use std::io;

/// `nlmsg_type` of a `sock_diag` request and of its answers.
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
const UDIAG_SHOW_VFS: u32 = 0x2;
const UNIX_DIAG_VFS: u16 = 1;
const TCP_LISTEN: u32 = 10;

/// `st_dev` (user-space encoding) as the kernel encodes devices in `unix_diag`
/// (`MAJOR << 20 | MINOR`).
pub fn kernel_dev(st_dev: u64) -> u32 {
    (libc::major(st_dev) << 20) | libc::minor(st_dev)
}

/// What is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// The socket with this inode (`fstat` of it), in any state.
    One(u32),
    /// Every listening socket of the network namespace.
    Listening,
}

/// `nlmsghdr` (16 bytes) + `unix_diag_req` (24) for `query`, with the node shown.
pub fn request(query: Query) -> [u8; 40] {
    let (flags, states, ino) = match query {
        Query::One(ino) => (libc::NLM_F_REQUEST as u16, u32::MAX, ino),
        Query::Listening => (
            (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
            1u32 << TCP_LISTEN,
            0,
        ),
    };
    let mut req = [0u8; 40];
    req[0..4].copy_from_slice(&40u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes()); // sequence
    req[16] = libc::AF_UNIX as u8;
    req[20..24].copy_from_slice(&states.to_ne_bytes());
    req[24..28].copy_from_slice(&ino.to_ne_bytes());
    req[28..32].copy_from_slice(&UDIAG_SHOW_VFS.to_ne_bytes());
    req[32..40].copy_from_slice(&[0xff; 8]); // no cookie
    req
}

/// A `NETLINK_SOCK_DIAG` socket on which `query` was sent; read it with [`receive`].
pub fn ask(query: Query) -> io::Result<std::os::fd::OwnedFd> {
    crate::sys::netlink_sock_diag_send(&request(query))
}

/// One received buffer of answers (at least one byte).
pub fn receive(fd: &std::os::fd::OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    crate::sys::netlink_recv(fd, buf)
}

/// How one received buffer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walked {
    /// `NLMSG_DONE`: the dump is complete.
    Done,
    /// More may follow (a dump's next buffer; a single answer is complete here).
    More,
}

/// Walk the netlink messages in `buf`: `each(socket inode, Some((device as the kernel encodes
/// it, MAJOR << 20 | MINOR; inode of the node)))` per answer, `None` for a socket without a
/// node (abstract, unbound). `NLMSG_ERROR` becomes its errno; a length that does not fit is
/// `InvalidData`.
pub fn walk(buf: &[u8], mut each: impl FnMut(u32, Option<(u32, u64)>)) -> io::Result<Walked> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed unix_diag answer");
    let u16_at = |b: &[u8], i: usize| -> Option<u16> {
        Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?))
    };
    let u32_at = |b: &[u8], i: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
    };
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32_at(buf, at).ok_or_else(bad)? as usize;
        let kind = u16_at(buf, at + 4).ok_or_else(bad)?;
        if len < 16 || at + len > buf.len() {
            return Err(bad());
        }
        let msg = &buf[at..at + len];
        match kind {
            k if k == libc::NLMSG_DONE as u16 => return Ok(Walked::Done),
            k if k == libc::NLMSG_ERROR as u16 => {
                let errno = u32_at(msg, 16).map_or(libc::EIO, |e| -(e as i32));
                return Err(io::Error::from_raw_os_error(errno));
            }
            SOCK_DIAG_BY_FAMILY => {
                // unix_diag_msg: family, type, state, pad, ino (u32), cookie (2 x u32)
                let sock_ino = u32_at(msg, 16 + 4).ok_or_else(bad)?;
                let mut node = None;
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
                        node = Some((dev, u64::from(ino)));
                    }
                    a += (alen + 3) & !3;
                }
                each(sock_ino, node);
            }
            _ => {}
        }
        at += (len + 3) & !3;
    }
    Ok(Walked::More)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(sock_ino: u32, node: Option<(u32, u32)>) -> Vec<u8> {
        let mut m = vec![0u8; 32];
        m[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m[20..24].copy_from_slice(&sock_ino.to_ne_bytes());
        if let Some((dev, ino)) = node {
            m.extend_from_slice(&12u16.to_ne_bytes());
            m.extend_from_slice(&UNIX_DIAG_VFS.to_ne_bytes());
            m.extend_from_slice(&ino.to_ne_bytes());
            m.extend_from_slice(&dev.to_ne_bytes());
        }
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    #[test]
    fn answers_are_walked_and_malformed_lengths_refused() {
        let mut buf = answer(7, Some((8 << 20 | 1, 99)));
        buf.extend(answer(9, None));
        let mut seen = Vec::new();
        let end = walk(&buf, |s, n| seen.push((s, n))).unwrap();
        assert_eq!(end, Walked::More);
        assert_eq!(seen, vec![(7, Some((8 << 20 | 1, 99))), (9, None)]);
        // a message longer than the buffer, and an attribute longer than its message
        let mut long = answer(7, None);
        long[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(walk(&long, |_, _| {}).is_err());
        let mut attr = answer(7, Some((1, 2)));
        attr[32..34].copy_from_slice(&200u16.to_ne_bytes());
        assert!(walk(&attr, |_, _| {}).is_err());
        // NLMSG_DONE ends a dump
        let mut done = vec![0u8; 20];
        done[0..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
        assert_eq!(walk(&done, |_, _| {}).unwrap(), Walked::Done);
    }
}
