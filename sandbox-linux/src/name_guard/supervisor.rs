//! The creator's side of one notification: read the call's arguments from the notifying
//! thread (once), turn its `dirfd` or cwd into a descriptor of our own, perform the call.

use std::ffi::CString;
use std::os::fd::OwnedFd;

use super::{DENIED_ERRNO, Op, Request};
use crate::unix_connect::sys as nsys;

/// How a notification is answered.
#[derive(Debug)]
pub enum Answer {
    /// Return this errno (0: success) from the call.
    Errno(i32),
    /// Install this descriptor in the child and return its number.
    Fd { fd: OwnedFd, cloexec: bool },
}

/// `dirfd` argument meaning "the current directory".
const AT_FDCWD: i32 = libc::AT_FDCWD;

struct Ctx {
    /// The thread as the system calls of this process name it (the notification's pid).
    tid: libc::pid_t,
    /// The same thread as the `/proc` this process sees names it (differs when the sandbox's
    /// pid namespace kept the host's procfs).
    proc_tid: libc::pid_t,
    /// Opened on first use: absolute paths and the cwd need none.
    pidfd: std::cell::OnceCell<OwnedFd>,
}

impl Ctx {
    fn pidfd(&self) -> Result<&OwnedFd, i32> {
        if self.pidfd.get().is_none() {
            let fd = crate::unix_connect::pidfd_of_thread(self.tid).map_err(|_| libc::ESRCH)?;
            let _ = self.pidfd.set(fd);
        }
        self.pidfd.get().ok_or(libc::ESRCH)
    }

    /// Descriptor `fd` of the child, duplicated into this process.
    fn getfd(&self, fd: i32) -> Result<OwnedFd, i32> {
        nsys::pidfd_getfd(self.pidfd()?, fd).map_err(os_errno)
    }
}

/// Handle a mediated file call in the creator, which received notification `n` on `listener`
/// itself. `proc_matches`: the `/proc` it sees is of its own pid namespace (the notification's
/// pid names the thread there too).
pub fn handle(listener: &OwnedFd, n: &libc::seccomp_notif, proc_matches: bool) -> Answer {
    let tid = n.pid as libc::pid_t;
    let ctx = Ctx {
        tid,
        proc_tid: tid,
        pidfd: std::cell::OnceCell::new(),
    };
    let ctx = if proc_matches {
        ctx
    } else {
        // the host's procfs: the thread's number there, from a pidfd's fdinfo
        let proc_tid = match ctx
            .pidfd()
            .and_then(|p| crate::unix_connect::pidfd_tid(p).map_err(|_| libc::ESRCH))
        {
            Ok(t) => t,
            Err(e) => return Answer::Errno(e),
        };
        Ctx { proc_tid, ..ctx }
    };
    let (req, fds) = match build(&ctx, n) {
        Ok(r) => r,
        Err(e) => return Answer::Errno(e),
    };
    // The thread is still blocked in this very call: the memory we read, the pid, its fd table
    // and its cwd belonged to it (no pid reuse in between).
    if !nsys::notif_id_valid(listener, n.id) {
        return Answer::Errno(libc::EINTR);
    }
    let wants_fd = matches!(req.op, Op::Open | Op::Reopen);
    let cloexec = req.flags & libc::O_CLOEXEC != 0;
    match super::creator::perform(&req, fds) {
        Err(super::creator::GUARD_BREACHED) => {
            // a server of the command's could not be taken back out of a temporary root's
            // shared part: the process that moved it there dies (and with it what it holds)
            if let Ok(p) = ctx.pidfd() {
                let _ = nsys::pidfd_kill(p);
            }
            Answer::Errno(DENIED_ERRNO)
        }
        Err(errno) => Answer::Errno(errno),
        Ok(Some(fd)) if wants_fd => Answer::Fd { fd, cloexec },
        Ok(None) if !wants_fd => Answer::Errno(0),
        Ok(_) => Answer::Errno(DENIED_ERRNO),
    }
}

/// The request for notification `n`, with the descriptors it names (dir1 first).
fn build(ctx: &Ctx, n: &libc::seccomp_notif) -> Result<(Request, Vec<OwnedFd>), i32> {
    let a = n.data.args;
    let nr = i64::from(n.data.nr);
    let i = |v: u64| v as i32;
    let mut req = Request {
        op: Op::Open,
        has_dir1: false,
        has_dir2: false,
        flags: 0,
        mode: 0,
        umask: 0,
        dev: 0,
        path1: Vec::new(),
        path2: Vec::new(),
    };
    // (dirfd, path) pairs, the first goes to dir1, the second to dir2
    let mut first: Option<(i32, u64)> = None;
    let mut second: Option<(i32, u64)> = None;
    match nr {
        #[cfg(target_arch = "x86_64")]
        libc::SYS_open => {
            first = Some((AT_FDCWD, a[0]));
            req.flags = i(a[1]);
            req.mode = a[2] as u32;
        }
        libc::SYS_openat => {
            first = Some((i(a[0]), a[1]));
            req.flags = i(a[2]);
            req.mode = a[3] as u32;
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_creat => {
            first = Some((AT_FDCWD, a[0]));
            req.flags = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;
            req.mode = a[1] as u32;
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_mkdir => {
            req.op = Op::Mkdir;
            first = Some((AT_FDCWD, a[0]));
            req.mode = a[1] as u32;
        }
        libc::SYS_mkdirat => {
            req.op = Op::Mkdir;
            first = Some((i(a[0]), a[1]));
            req.mode = a[2] as u32;
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_mknod => {
            req.op = Op::Mknod;
            first = Some((AT_FDCWD, a[0]));
            req.mode = a[1] as u32;
            req.dev = a[2];
        }
        libc::SYS_mknodat => {
            req.op = Op::Mknod;
            first = Some((i(a[0]), a[1]));
            req.mode = a[2] as u32;
            req.dev = a[3];
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_symlink => {
            req.op = Op::Symlink;
            req.path1 = read_cstr(ctx.tid, a[0])?;
            second = Some((AT_FDCWD, a[1]));
        }
        libc::SYS_symlinkat => {
            req.op = Op::Symlink;
            req.path1 = read_cstr(ctx.tid, a[0])?;
            second = Some((i(a[1]), a[2]));
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_link => {
            req.op = Op::Link;
            first = Some((AT_FDCWD, a[0]));
            second = Some((AT_FDCWD, a[1]));
        }
        libc::SYS_linkat => {
            req.op = Op::Link;
            first = Some((i(a[0]), a[1]));
            second = Some((i(a[2]), a[3]));
            req.flags = i(a[4]);
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_rename => {
            req.op = Op::Rename;
            first = Some((AT_FDCWD, a[0]));
            second = Some((AT_FDCWD, a[1]));
        }
        #[cfg(not(target_arch = "riscv64"))]
        libc::SYS_renameat => {
            req.op = Op::Rename;
            first = Some((i(a[0]), a[1]));
            second = Some((i(a[2]), a[3]));
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_unlink => {
            req.op = Op::Unlink;
            first = Some((AT_FDCWD, a[0]));
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_rmdir => {
            req.op = Op::Unlink;
            first = Some((AT_FDCWD, a[0]));
            req.flags = libc::AT_REMOVEDIR;
        }
        libc::SYS_truncate => {
            req.op = Op::Truncate;
            first = Some((AT_FDCWD, a[0]));
            req.dev = a[1];
        }
        libc::SYS_unlinkat => {
            req.op = Op::Unlink;
            first = Some((i(a[0]), a[1]));
            req.flags = i(a[2]);
        }
        libc::SYS_renameat2 => {
            req.op = Op::Rename;
            first = Some((i(a[0]), a[1]));
            second = Some((i(a[2]), a[3]));
            req.flags = i(a[4]);
        }
        _ => return Err(libc::ENOSYS),
    }
    let mut fds = Vec::with_capacity(2);
    if let Some((dfd, addr)) = first {
        req.path1 = read_cstr(ctx.tid, addr)?;
        if req.op == Op::Open {
            if let Some(fd) = descriptor_link(&req.path1) {
                // `/dev/stdout`, `/proc/self/fd/N`: the child's own descriptor, re-opened
                req.op = Op::Reopen;
                req.path1.clear();
                req.has_dir1 = true;
                fds.push(ctx.getfd(fd)?);
            }
        }
        if req.op == Op::Link && req.flags & libc::AT_SYMLINK_FOLLOW != 0 {
            if let Some(fd) = descriptor_link(&req.path1) {
                // `linkat(AT_FDCWD, "/proc/self/fd/N", ..., AT_SYMLINK_FOLLOW)`: an O_TMPFILE
                // file given a name; the creator links the child's own descriptor
                req.path1.clear();
                req.flags = (req.flags & !libc::AT_SYMLINK_FOLLOW) | libc::AT_EMPTY_PATH;
                req.has_dir1 = true;
                fds.push(ctx.getfd(fd)?);
            }
        }
        if req.op != Op::Reopen && !req.has_dir1 {
            if let Some(d) = dir_for(ctx, dfd, &req.path1, req.op == Op::Link)? {
                req.has_dir1 = true;
                fds.push(d);
            }
        }
    }
    if let Some((dfd, addr)) = second {
        req.path2 = read_cstr(ctx.tid, addr)?;
        if let Some(d) = dir_for(ctx, dfd, &req.path2, false)? {
            req.has_dir2 = true;
            fds.push(d);
        }
    }
    if creates(&req) {
        req.umask = child_umask(ctx.proc_tid)?;
    }
    Ok((req, fds))
}

fn os_errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EBADF)
}

fn creates(req: &Request) -> bool {
    match req.op {
        Op::Open => req.flags & (libc::O_CREAT | libc::O_TMPFILE) != 0,
        Op::Mkdir | Op::Mknod => true,
        _ => false,
    }
}

/// The directory a relative path starts from: the child's cwd or its `dirfd`. `None` for an
/// absolute path (the creator's root is the child's). `empty_ok`: an empty path names `dirfd`
/// itself (`AT_EMPTY_PATH`).
fn dir_for(ctx: &Ctx, dfd: i32, path: &[u8], empty_ok: bool) -> Result<Option<OwnedFd>, i32> {
    if path.first() == Some(&b'/') {
        return Ok(None);
    }
    if path.is_empty() && !empty_ok {
        return Err(libc::ENOENT);
    }
    if dfd == AT_FDCWD {
        let cwd = CString::new(format!("/proc/{}/cwd", ctx.proc_tid)).map_err(|_| libc::EINVAL)?;
        return nsys::open_path(None, &cwd)
            .map(Some)
            .map_err(|_| DENIED_ERRNO);
    }
    ctx.getfd(dfd).map(Some)
}

/// `/dev/std{in,out,err}`, `/dev/fd/N`, `/proc/self/fd/N`, `/proc/thread-self/fd/N`: the
/// descriptor number they name in the calling process.
pub(super) fn descriptor_link(path: &[u8]) -> Option<i32> {
    let fixed: &[(&[u8], i32)] = &[(b"/dev/stdin", 0), (b"/dev/stdout", 1), (b"/dev/stderr", 2)];
    if let Some((_, n)) = fixed.iter().find(|(p, _)| *p == path) {
        return Some(*n);
    }
    let rest = [
        &b"/dev/fd/"[..],
        b"/proc/self/fd/",
        b"/proc/thread-self/fd/",
    ]
    .iter()
    .find_map(|p| path.strip_prefix(*p))?;
    if rest.is_empty() || rest.len() > 10 || !rest.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// The child's umask (`/proc/<tid>/status`). `Umask:` is the second line, after `Name:` (at
/// most 64 escaped bytes of a 15-byte name): one `read` of 256 bytes reaches it, where reading
/// the whole file took eight calls.
fn child_umask(tid: libc::pid_t) -> Result<u32, i32> {
    use std::io::Read;
    let mut file = std::fs::File::open(format!("/proc/{tid}/status")).map_err(|_| libc::ESRCH)?;
    let mut buf = [0u8; 256];
    let n = file.read(&mut buf).map_err(|_| libc::ESRCH)?;
    let status = &buf[..n];
    status
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(b"Umask:"))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .ok_or(libc::ESRCH)
}

/// A NUL-terminated string of the child, copied once (page by page: a string that ends just
/// before an unmapped page is still read).
fn read_cstr(tid: libc::pid_t, addr: u64) -> Result<Vec<u8>, i32> {
    const PAGE: u64 = 4096;
    let max = libc::PATH_MAX as usize;
    if addr == 0 {
        return Err(libc::EFAULT);
    }
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < max {
        let want = ((PAGE - at % PAGE) as usize).min(max - out.len());
        let mut buf = vec![0u8; want];
        let got = match nsys::read_remote(tid, at, &mut buf) {
            Ok(0) | Err(_) => return Err(libc::EFAULT),
            Ok(g) => g,
        };
        if let Some(p) = buf[..got].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..p]);
            return Ok(out);
        }
        out.extend_from_slice(&buf[..got]);
        at += got as u64;
    }
    Err(libc::ENAMETOOLONG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_links_are_recognised_and_nothing_else() {
        assert_eq!(descriptor_link(b"/dev/stdout"), Some(1));
        assert_eq!(descriptor_link(b"/dev/fd/7"), Some(7));
        assert_eq!(descriptor_link(b"/proc/self/fd/12"), Some(12));
        assert_eq!(descriptor_link(b"/proc/thread-self/fd/3"), Some(3));
        assert_eq!(descriptor_link(b"/proc/self/fd/"), None);
        assert_eq!(descriptor_link(b"/proc/self/fd/1/x"), None);
        assert_eq!(descriptor_link(b"/proc/self/cwd"), None);
        assert_eq!(descriptor_link(b"/dev/stdout2"), None);
    }
}
