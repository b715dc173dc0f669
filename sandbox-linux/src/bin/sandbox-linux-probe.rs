//! Test probe (not installed for users; `test = false`): performs ONE attack or action named on
//! its command line and prints `ok` or `errno N` on stdout. The integration tests run it inside
//! the sandbox (attack) and outside or under a permissive policy (control).
//!
//! Usage: `sandbox-linux-probe ACTION [ARGS...]`; see `run` for the actions.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;

/// Raw calls of the probe, each with its invariant.
mod probe_sys {
    use std::ffi::CStr;
    use std::io;

    /// A pid-hopping loop (outside review r32 F7): fork without pause, the parent exits, the
    /// child goes on; a line appended to `file` every 10 ms. Never returns.
    pub fn hop(file: &std::path::Path) -> ! {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .expect("hop: the tick file");
        let mut last = std::time::Instant::now();
        loop {
            // SAFETY: the probe is single-threaded here; the child only touches its own copy of
            // the memory (a file, an Instant) and calls fork/_exit again.
            let pid = unsafe { libc::fork() };
            if pid > 0 {
                // SAFETY: _exit takes an integer and does not return.
                unsafe { libc::_exit(0) };
            }
            if pid == 0 && last.elapsed() > std::time::Duration::from_millis(10) {
                let _ = f.write_all(b"t\n");
                last = std::time::Instant::now();
            }
        }
    }

    pub fn res(ret: libc::c_long) -> io::Result<libc::c_long> {
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }

    pub fn socket(domain: i32, ty: i32, proto: i32) -> io::Result<i32> {
        // SAFETY: socket takes integers only.
        res(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) } as libc::c_long)
            .map(|v| v as i32)
    }

    pub fn connect_v4(fd: i32, port: u16) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_in is valid; we pass its exact size.
        let ret = unsafe {
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as u16;
            sa.sin_port = port.to_be();
            sa.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
            libc::connect(
                fd,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        res(ret as libc::c_long).map(drop)
    }

    pub fn bind_v4(fd: i32) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_in (port 0, 127.0.0.1) with its exact size.
        let ret = unsafe {
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as u16;
            sa.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
            libc::bind(
                fd,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        res(ret as libc::c_long).map(drop)
    }

    pub fn sendto_v4(fd: i32, port: u16) -> io::Result<()> {
        sendto_v4_flags(fd, port, 0)
    }

    /// `sendto(fd, "x", flags, 127.0.0.1:port)` (`MSG_FASTOPEN` on a TCP socket connects).
    pub fn sendto_v4_flags(fd: i32, port: u16, flags: i32) -> io::Result<()> {
        // SAFETY: the buffer is 1 valid byte; zeroed sockaddr_in with its exact size.
        let ret = unsafe {
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as u16;
            sa.sin_port = port.to_be();
            sa.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
            libc::sendto(
                fd,
                b"x".as_ptr().cast(),
                1,
                flags,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32,
            )
        };
        res(ret as libc::c_long).map(drop)
    }

    pub fn connect_v6(fd: i32, port: u16) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_in6 (::1) with its exact size.
        let ret = unsafe {
            let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
            sa.sin6_family = libc::AF_INET6 as u16;
            sa.sin6_port = port.to_be();
            sa.sin6_addr.s6_addr[15] = 1;
            libc::connect(
                fd,
                &sa as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in6>() as u32,
            )
        };
        res(ret as libc::c_long).map(drop)
    }

    /// Connect to a unix socket; `abstract_` puts a NUL first (abstract namespace).
    pub fn connect_unix(fd: i32, name: &[u8], abstract_: bool) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_un; we copy at most sun_path.len() - 1 bytes and pass the
        // length of the used prefix.
        let ret = unsafe {
            let mut sa: libc::sockaddr_un = std::mem::zeroed();
            sa.sun_family = libc::AF_UNIX as u16;
            let off = usize::from(abstract_);
            let n = name.len().min(sa.sun_path.len() - 1 - off);
            for (i, b) in name[..n].iter().enumerate() {
                sa.sun_path[i + off] = *b as libc::c_char;
            }
            let len = std::mem::size_of::<libc::sa_family_t>() + off + n + usize::from(!abstract_);
            libc::connect(fd, &sa as *const _ as *const libc::sockaddr, len as u32)
        };
        res(ret as libc::c_long).map(drop)
    }

    pub fn send(fd: i32) -> io::Result<()> {
        // SAFETY: 1 valid byte.
        res(unsafe { libc::send(fd, b"s".as_ptr().cast(), 1, 0) } as libc::c_long).map(drop)
    }

    pub fn sendto_null(fd: i32) -> io::Result<()> {
        // SAFETY: 1 valid byte; NULL address with length 0 is the connected-socket form.
        res(
            unsafe { libc::sendto(fd, b"t".as_ptr().cast(), 1, 0, std::ptr::null(), 0) }
                as libc::c_long,
        )
        .map(drop)
    }

    pub fn sendmsg(fd: i32) -> io::Result<()> {
        // SAFETY: the iovec points at 1 valid byte; msghdr zeroed otherwise (no name, no control).
        let ret = unsafe {
            let mut iov = libc::iovec {
                iov_base: b"m".as_ptr() as *mut libc::c_void,
                iov_len: 1,
            };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            libc::sendmsg(fd, &msg, 0)
        };
        res(ret as libc::c_long).map(drop)
    }

    pub fn socketpair() -> io::Result<(i32, i32)> {
        let mut fds = [0i32; 2];
        // SAFETY: fds has room for two descriptors.
        let ret =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
        res(ret as libc::c_long)?;
        Ok((fds[0], fds[1]))
    }

    pub fn recv1(fd: i32) -> io::Result<u8> {
        let mut b = [0u8; 1];
        // SAFETY: b is 1 writable byte.
        res(unsafe { libc::recv(fd, b.as_mut_ptr().cast(), 1, 0) } as libc::c_long)?;
        Ok(b[0])
    }

    pub fn syscall6(nr: libc::c_long, a: [libc::c_long; 6]) -> io::Result<libc::c_long> {
        // SAFETY: callers pass argument sets that are either integers or NULL/invalid pointers the
        // kernel validates (EFAULT) — no pointer to our memory is written through.
        res(unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) })
    }

    pub fn io_uring_setup() -> io::Result<libc::c_long> {
        let mut params = [0u8; 120];
        // SAFETY: params is a zeroed 120-byte struct io_uring_params that the kernel may write.
        res(unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, params.as_mut_ptr()) })
    }

    pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
        // SAFETY: kill takes integers.
        res(unsafe { libc::kill(pid, sig) } as libc::c_long).map(drop)
    }

    pub fn ioctl_badfd(req: libc::c_ulong) -> io::Result<()> {
        let c = b"x";
        // SAFETY: fd -1 is invalid, so the kernel fails with EBADF before reading the argument.
        res(unsafe { libc::ioctl(-1, req as _, c.as_ptr()) } as libc::c_long).map(drop)
    }

    pub fn unshare(flags: i32) -> io::Result<()> {
        // SAFETY: unshare takes flags only.
        res(unsafe { libc::unshare(flags) } as libc::c_long).map(drop)
    }

    /// clone(flags | SIGCHLD) without a new stack (fork-like): the child exits immediately.
    pub fn clone_flags(flags: i32) -> io::Result<()> {
        // SAFETY: a NULL stack makes clone behave like fork (copy-on-write stack); the child calls
        // only _exit.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone,
                (flags | libc::SIGCHLD) as libc::c_long,
                0usize,
                0usize,
                0usize,
                0usize,
            )
        };
        if pid == 0 {
            // SAFETY: _exit never returns.
            unsafe { libc::_exit(0) }
        }
        let pid = res(pid)?;
        let mut st = 0;
        // SAFETY: st is a live c_int.
        unsafe { libc::waitpid(pid as i32, &mut st, 0) };
        Ok(())
    }

    pub fn geteuid() -> u32 {
        // SAFETY: no arguments, cannot fail.
        unsafe { libc::geteuid() }
    }

    pub fn raise(sig: i32) {
        // SAFETY: restoring the default action (Rust's runtime handles SIGSEGV itself) and
        // raising take integers only.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig)
        };
    }

    pub fn process_vm_readv(pid: i32) -> io::Result<()> {
        let mut buf = [0u8; 8];
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: 8,
        };
        let remote = libc::iovec {
            iov_base: 0x1000 as *mut libc::c_void,
            iov_len: 8,
        };
        // SAFETY: `local` describes our 8-byte buffer; the remote address is validated by the kernel.
        res(unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) } as libc::c_long)
            .map(drop)
    }

    /// `mkdir(buf, 0755)` on a buffer another thread keeps rewriting (the name guard's race
    /// test). True on success.
    pub fn mkdir_shared(buf: &[std::sync::atomic::AtomicU8; 8]) -> bool {
        // SAFETY: AtomicU8 has the same size, alignment and bit validity as u8, so the array is
        // 8 readable bytes; byte 7 is never written and stays NUL, so the string always ends.
        // The kernel reading bytes another thread is storing is the point of the test.
        unsafe { libc::mkdir(buf.as_ptr().cast::<libc::c_char>(), 0o755) == 0 }
    }

    /// `fchmodat(AT_FDCWD, buf, mode)` on a path another thread is rewriting.
    pub fn chmod_shared(buf: &[std::sync::atomic::AtomicU8; 16], mode: u32) -> bool {
        // SAFETY: AtomicU8 has the same size, alignment and bit validity as u8, so the array is
        // 16 readable bytes; byte 15 is never written and stays NUL, so the string always
        // ends. The kernel (or the supervisor) reading bytes another thread is storing is the
        // point of the test.
        unsafe {
            libc::syscall(
                libc::SYS_fchmodat,
                libc::AT_FDCWD,
                buf.as_ptr().cast::<libc::c_char>(),
                mode,
            ) == 0
        }
    }

    /// A new inotify instance (close-on-exec).
    pub fn inotify() -> io::Result<i32> {
        // SAFETY: inotify_init1 takes an integer flag.
        res(unsafe { libc::inotify_init1(libc::IN_CLOEXEC) } as libc::c_long).map(|v| v as i32)
    }

    /// `inotify_add_watch(fd, p, mask)`: the watch descriptor.
    pub fn add_watch(fd: i32, p: &CStr, mask: u32) -> io::Result<i32> {
        // SAFETY: NUL-terminated path; integers by value.
        res(unsafe { libc::inotify_add_watch(fd, p.as_ptr(), mask) } as libc::c_long)
            .map(|v| v as i32)
    }

    /// Waits up to `ms` for `fd` to be readable, then reads one batch of inotify events: the
    /// watch descriptors and masks of the events read (empty: none came).
    pub fn read_events(fd: i32, ms: i32) -> io::Result<Vec<(i32, u32)>> {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        if res(unsafe { libc::poll(&mut pfd, 1, ms) } as libc::c_long)? == 0 {
            return Ok(Vec::new());
        }
        let mut buf = [0u8; 4096];
        // SAFETY: `buf` is writable for its length.
        let n = res(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } as libc::c_long)?
            as usize;
        let mut out = Vec::new();
        let mut i = 0;
        // struct inotify_event: wd (i32), mask, cookie, len (u32), then `len` bytes of name
        while i + 16 <= n {
            let wd = i32::from_ne_bytes(buf[i..i + 4].try_into().unwrap_or([0; 4]));
            let mask = u32::from_ne_bytes(buf[i + 4..i + 8].try_into().unwrap_or([0; 4]));
            let len = u32::from_ne_bytes(buf[i + 12..i + 16].try_into().unwrap_or([0; 4]));
            out.push((wd, mask));
            i += 16 + len as usize;
        }
        Ok(out)
    }

    /// `fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME, O_RDONLY)` (what an unprivileged
    /// user may ask for), closed again.
    pub fn fanotify() -> io::Result<()> {
        const FAN_REPORT_DFID_NAME: u32 = 0x0000_0c00;
        // SAFETY: integers only; the descriptor returned is closed right away.
        let fd = res(unsafe {
            libc::syscall(
                libc::SYS_fanotify_init,
                libc::FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME,
                libc::O_RDONLY as libc::c_uint,
            )
        })?;
        // SAFETY: `fd` was just returned and is owned here.
        unsafe { libc::close(fd as i32) };
        Ok(())
    }

    /// `fcntl(F_NOTIFY, DN_ACCESS | DN_MULTISHOT)` on directory `p` (dnotify).
    pub fn dnotify(p: &CStr) -> io::Result<()> {
        // linux/fcntl.h
        const DN_ACCESS: libc::c_int = 0x0000_0001;
        const DN_MULTISHOT: libc::c_int = 0x8000_0000_u32 as libc::c_int;
        // SAFETY: NUL-terminated path; the descriptor is closed below.
        let fd = res(unsafe {
            libc::open(
                p.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        } as libc::c_long)? as i32;
        // SAFETY: integers only on a descriptor owned here.
        let r = res(
            unsafe { libc::fcntl(fd, libc::F_NOTIFY, DN_ACCESS | DN_MULTISHOT) } as libc::c_long,
        );
        // SAFETY: `fd` was opened above and is not used again.
        unsafe { libc::close(fd) };
        r.map(drop)
    }

    pub fn open_ro_noctty(p: &CStr) -> io::Result<()> {
        // SAFETY: NUL-terminated path; the returned descriptor is closed right away.
        let fd = res(unsafe {
            libc::open(
                p.as_ptr(),
                libc::O_RDONLY | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
        } as libc::c_long)?;
        // SAFETY: `fd` was just returned by open and is owned here.
        unsafe { libc::close(fd as i32) };
        Ok(())
    }

    /// Create `p` with `mode` under `umask` by `kind` (`open`, `openat`, `creat`, `mkdir`,
    /// `mknod` (a regular file), `mkfifo`), then `lstat` it: the mode it got.
    pub fn create(kind: &str, p: &CStr, mode: u32, umask: u32) -> io::Result<u32> {
        // SAFETY: umask takes an integer and cannot fail.
        unsafe { libc::umask(umask) };
        let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_EXCL | libc::O_CLOEXEC;
        // SAFETY: NUL-terminated path; integer flags and modes by value. A returned descriptor
        // is closed right away.
        let r = unsafe {
            match kind {
                #[cfg(target_arch = "x86_64")]
                "open" => libc::syscall(libc::SYS_open, p.as_ptr(), flags, mode),
                #[cfg(target_arch = "x86_64")]
                "creat" => libc::syscall(libc::SYS_creat, p.as_ptr(), mode),
                #[cfg(target_arch = "x86_64")]
                "mkdir" => libc::syscall(libc::SYS_mkdir, p.as_ptr(), mode),
                // the generic syscall table has only the *at forms
                #[cfg(not(target_arch = "x86_64"))]
                "open" | "creat" => {
                    libc::syscall(libc::SYS_openat, libc::AT_FDCWD, p.as_ptr(), flags, mode)
                }
                #[cfg(not(target_arch = "x86_64"))]
                "mkdir" => libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, p.as_ptr(), mode),
                "openat" => {
                    libc::syscall(libc::SYS_openat, libc::AT_FDCWD, p.as_ptr(), flags, mode)
                }
                "mknod" => libc::syscall(
                    libc::SYS_mknodat,
                    libc::AT_FDCWD,
                    p.as_ptr(),
                    libc::S_IFREG | mode,
                    0,
                ),
                "mkfifo" => libc::syscall(
                    libc::SYS_mknodat,
                    libc::AT_FDCWD,
                    p.as_ptr(),
                    libc::S_IFIFO | mode,
                    0,
                ),
                _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
            }
        };
        let fd = res(r)?;
        if matches!(kind, "open" | "openat" | "creat") {
            // SAFETY: `fd` was just returned by the kernel and is owned here.
            unsafe { libc::close(fd as i32) };
        }
        // SAFETY: stat is plain data written by the kernel.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: NUL-terminated path, `st` valid for writing.
        res(unsafe { libc::lstat(p.as_ptr(), &mut st) } as libc::c_long)?;
        Ok(st.st_mode & 0o7777)
    }

    pub fn chmod(p: &CStr, mode: u32) -> io::Result<()> {
        // SAFETY: NUL-terminated path, mode by value.
        res(unsafe { libc::chmod(p.as_ptr(), mode) } as libc::c_long).map(drop)
    }

    /// `utimensat(AT_FDCWD, p, {0, 0}, 0)`: set both times to the epoch.
    pub fn utime_epoch(p: &CStr) -> io::Result<()> {
        let times = [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        ];
        // SAFETY: NUL-terminated path; `times` holds the two timespecs utimensat reads.
        res(
            unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) }
                as libc::c_long,
        )
        .map(drop)
    }

    pub fn setxattr(p: &CStr, name: &CStr, value: &[u8]) -> io::Result<()> {
        // SAFETY: path and name NUL-terminated; `value` is valid for its length.
        res(unsafe {
            libc::setxattr(
                p.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        } as libc::c_long)
        .map(drop)
    }

    /// `mq_open(name, O_CREAT | O_RDWR, 0666, NULL)` with umask 0 (raw call: `name` without
    /// the leading slash), closed again.
    pub fn mq_create(name: &CStr) -> io::Result<()> {
        // SAFETY: integers only.
        unsafe { libc::umask(0) };
        // SAFETY: NUL-terminated name; NULL attributes are the defaults.
        let q = res(unsafe {
            libc::syscall(
                libc::SYS_mq_open,
                name.as_ptr(),
                libc::O_CREAT | libc::O_RDWR,
                0o666,
                std::ptr::null::<libc::c_void>(),
            )
        })?;
        // SAFETY: `q` is the queue descriptor just returned.
        unsafe { libc::close(q as i32) };
        Ok(())
    }

    /// Receive one descriptor (SCM_RIGHTS) on the connected socket `sock`.
    pub fn recv_fd(sock: i32) -> io::Result<i32> {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut cbuf = [0u64; 8];
        // SAFETY: msghdr is plain data; every pointer set below outlives the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
        // SAFETY: `msg` describes the local buffers above.
        res(unsafe { libc::recvmsg(sock, &mut msg, 0) } as libc::c_long)?;
        // SAFETY: the kernel filled the control buffer; CMSG_FIRSTHDR checks its length.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
                return Err(io::Error::from_raw_os_error(libc::EBADMSG));
            }
            Ok(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>()))
        }
    }

    /// One metadata call (`call`) on `fd` or `path`, the way a program makes it; see the
    /// probe's `meta` action.
    pub fn meta(call: &str, fd: i32, path: &CStr, name: &CStr) -> io::Result<()> {
        const SYS_FCHMODAT2: libc::c_long = 452;
        let epoch = [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
        ];
        let tv = [libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        }; 2];
        let xattr = c"user.r14";
        let mode: libc::c_long = 0o644;
        // SAFETY: integers only.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let (p, e) = (path.as_ptr(), c"".as_ptr());
        // SAFETY: every pointer below is a NUL-terminated string or a local array of the size
        // the call reads, alive for the call.
        let r = unsafe {
            match call {
                "fchmod" => libc::syscall(libc::SYS_fchmod, fd, mode),
                "dup-fchmod" => {
                    res(libc::syscall(libc::SYS_dup3, fd, 40, 0))?;
                    libc::syscall(libc::SYS_fchmod, 40, mode)
                }
                "fchown" => libc::syscall(libc::SYS_fchown, fd, uid, gid),
                "futimens" => {
                    libc::syscall(libc::SYS_utimensat, fd, std::ptr::null::<u8>(), &epoch, 0)
                }
                "fremovexattr" => libc::syscall(libc::SYS_fremovexattr, fd, xattr.as_ptr()),
                "setflags" => {
                    let mut flags: libc::c_int = 0;
                    res(libc::syscall(
                        libc::SYS_ioctl,
                        fd,
                        0x8008_6601u32 as libc::c_ulong, // FS_IOC_GETFLAGS
                        &mut flags,
                    ))?;
                    flags |= 0x40; // FS_NODUMP_FL
                    libc::syscall(
                        libc::SYS_ioctl,
                        fd,
                        0x4008_6602u32 as libc::c_ulong, // FS_IOC_SETFLAGS
                        &flags,
                    )
                }
                "fchmodat2-empty" => libc::syscall(SYS_FCHMODAT2, fd, e, mode, libc::AT_EMPTY_PATH),
                "fchownat-empty" => {
                    libc::syscall(libc::SYS_fchownat, fd, e, uid, gid, libc::AT_EMPTY_PATH)
                }
                "utimensat-empty" => {
                    libc::syscall(libc::SYS_utimensat, fd, e, &epoch, libc::AT_EMPTY_PATH)
                }
                #[cfg(target_arch = "x86_64")]
                "chmod" => libc::syscall(libc::SYS_chmod, p, mode),
                "fchmodat" => libc::syscall(libc::SYS_fchmodat, libc::AT_FDCWD, p, mode),
                #[cfg(target_arch = "x86_64")]
                "chown" => libc::syscall(libc::SYS_chown, p, uid, gid),
                #[cfg(target_arch = "x86_64")]
                "lchown" => libc::syscall(libc::SYS_lchown, p, uid, gid),
                "fchownat" => libc::syscall(libc::SYS_fchownat, libc::AT_FDCWD, p, uid, gid, 0),
                "utimensat" => libc::syscall(libc::SYS_utimensat, libc::AT_FDCWD, p, &epoch, 0),
                #[cfg(target_arch = "x86_64")]
                "utimes" => libc::syscall(libc::SYS_utimes, p, &tv),
                "removexattr" => libc::syscall(libc::SYS_removexattr, p, xattr.as_ptr()),
                // relative to the descriptor: `name` inside the directory `fd`
                "at-chmod" => libc::syscall(libc::SYS_fchmodat, fd, name.as_ptr(), mode),
                "at-utimensat" => libc::syscall(libc::SYS_utimensat, fd, name.as_ptr(), &epoch, 0),
                "fchdir-chmod" => {
                    res(libc::syscall(libc::SYS_fchdir, fd))?;
                    libc::syscall(libc::SYS_fchmodat, libc::AT_FDCWD, name.as_ptr(), mode)
                }
                _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
            }
        };
        let _ = tv;
        res(r).map(drop)
    }

    /// `shmget(key, 0, 0)` then `shmat` read-only, read the first byte, `shmdt`.
    pub fn shm_read(key: i32) -> io::Result<u8> {
        // SAFETY: shmget takes integers only.
        let id = res(unsafe { libc::shmget(key, 0, 0) } as libc::c_long)? as i32;
        // SAFETY: attaching segment `id` at an address of the kernel's choice.
        let addr = unsafe { libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY) };
        if addr as isize == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the segment is at least one byte long (created so by the test) and mapped
        // readable at `addr` until shmdt.
        let b = unsafe { *(addr as *const u8) };
        // SAFETY: `addr` was returned by shmat above.
        unsafe { libc::shmdt(addr) };
        Ok(b)
    }

    /// `n` connects of fresh unix stream sockets to a sockaddr another thread keeps rewriting
    /// between `a` and `b` (whole sun_path each time); returns (connected, failed).
    pub fn race_connect_bytes(a: &[u8], b: &[u8], n: usize) -> (usize, usize) {
        use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
        const LEN: usize = std::mem::size_of::<libc::sockaddr_un>();
        let buf: &'static [AtomicU8; LEN] = Box::leak(Box::new([const { AtomicU8::new(0) }; LEN]));
        let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
        let fill = |p: &[u8]| {
            let fam = (libc::AF_UNIX as u16).to_ne_bytes();
            buf[0].store(fam[0], Ordering::Relaxed);
            buf[1].store(fam[1], Ordering::Relaxed);
            for (i, b) in buf.iter().skip(2).enumerate() {
                b.store(p.get(i).copied().unwrap_or(0), Ordering::Relaxed);
            }
        };
        fill(a);
        let (a2, b2) = (a.to_vec(), b.to_vec());
        let t = std::thread::spawn(move || {
            let mut flip = false;
            while !stop.load(Ordering::Relaxed) {
                fill(if flip { &a2 } else { &b2 });
                flip = !flip;
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(5)); // let the swapper run
        let (mut ok, mut bad) = (0, 0);
        for _ in 0..n {
            let Ok(fd) = socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) else {
                bad += 1;
                continue;
            };
            // SAFETY: `buf` is LEN bytes (AtomicU8 has u8's layout), alive for ever; the kernel
            // (or the supervisor) copies it; concurrent atomic stores are the point of the test.
            let r = unsafe { libc::connect(fd, buf.as_ptr().cast(), LEN as u32) };
            if r == 0 {
                ok += 1
            } else {
                bad += 1
            }
            // SAFETY: our own fd.
            unsafe { libc::close(fd) };
        }
        stop.store(true, Ordering::Relaxed);
        let _ = t.join();
        (ok, bad)
    }

    /// `n` connects to `link` while another thread keeps replacing the symlink `link` (atomic
    /// rename) to point at `a` or `b`; returns (connected, failed).
    pub fn race_connect_symlink(link: &str, a: &str, b: &str, n: usize) -> (usize, usize) {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
        let (l, a2, b2) = (link.to_string(), a.to_string(), b.to_string());
        let _ = std::os::unix::fs::symlink(a, link);
        let t = std::thread::spawn(move || {
            let tmp = format!("{l}.tmp");
            let mut flip = false;
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(&tmp);
                let _ = std::os::unix::fs::symlink(if flip { &a2 } else { &b2 }, &tmp);
                let _ = std::fs::rename(&tmp, &l);
                flip = !flip;
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(5)); // let the swapper run
        let (mut ok, mut bad) = (0, 0);
        for _ in 0..n {
            let Ok(fd) = socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) else {
                bad += 1;
                continue;
            };
            if connect_unix(fd, link.as_bytes(), false).is_ok() {
                ok += 1
            } else {
                bad += 1
            }
            // SAFETY: our own fd.
            unsafe { libc::close(fd) };
        }
        stop.store(true, Ordering::Relaxed);
        let _ = t.join();
        (ok, bad)
    }

    pub fn link(a: &CStr, b: &CStr) -> io::Result<()> {
        // SAFETY: both NUL-terminated.
        res(unsafe { libc::link(a.as_ptr(), b.as_ptr()) } as libc::c_long).map(drop)
    }
}

fn report(r: io::Result<()>) {
    match r {
        Ok(()) => println!("ok"),
        Err(e) => println!("errno {}", e.raw_os_error().unwrap_or(-1)),
    }
}

fn arg(args: &[String], i: usize) -> String {
    args.get(i).cloned().unwrap_or_default()
}

fn num(args: &[String], i: usize) -> i64 {
    arg(args, i).parse().unwrap_or(0)
}

fn cpath(s: &str) -> CString {
    CString::new(std::ffi::OsStr::new(s).as_bytes()).unwrap_or_default()
}

fn sock_then<F: FnOnce(i32) -> io::Result<()>>(domain: i32, ty: i32, f: F) -> io::Result<()> {
    let fd = probe_sys::socket(domain, ty, 0)?;
    f(fd)
}

/// For `secs` seconds one thread flips a buffer between `okok` and `.git` while this one calls
/// `mkdir` on it; prints `RACE-WON` if `.git` ever appears, then `made N` (successful mkdirs).
fn race_mkdir(secs: u64) {
    use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
    static BUF: [AtomicU8; 8] = [const { AtomicU8::new(0) }; 8];
    static STOP: AtomicBool = AtomicBool::new(false);
    for (b, v) in BUF.iter().zip(b"okok") {
        b.store(*v, Ordering::Relaxed);
    }
    let flipper = std::thread::spawn(|| {
        while !STOP.load(Ordering::Relaxed) {
            for name in [b"okok", b".git"] {
                for (b, v) in BUF.iter().zip(name) {
                    b.store(*v, Ordering::Relaxed);
                }
            }
        }
    });
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut made = 0u64;
    while std::time::Instant::now() < end {
        if probe_sys::mkdir_shared(&BUF) {
            made += 1;
            if std::path::Path::new(".git").exists() {
                println!("RACE-WON");
                break;
            }
            let _ = std::fs::remove_dir("okok");
        }
    }
    STOP.store(true, Ordering::Relaxed);
    let _ = flipper.join();
    println!("made {made}");
}

/// For `secs` seconds one thread flips a path between `mine` and `/dev/stdin` while this one
/// calls `chmod` on it (alternating 0644 and 0600); prints `changed N` (successful chmods).
fn race_chmod(secs: u64) {
    use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
    static BUF: [AtomicU8; 16] = [const { AtomicU8::new(0) }; 16];
    static STOP: AtomicBool = AtomicBool::new(false);
    let names: [&[u8; 15]; 2] = [b"mine\0\0\0\0\0\0\0\0\0\0\0", b"/dev/stdin\0\0\0\0\0"];
    for (b, v) in BUF.iter().zip(names[0]) {
        b.store(*v, Ordering::Relaxed);
    }
    let flipper = std::thread::spawn(move || {
        while !STOP.load(Ordering::Relaxed) {
            for name in names {
                for (b, v) in BUF.iter().zip(name) {
                    b.store(*v, Ordering::Relaxed);
                }
            }
        }
    });
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let (mut changed, mut i) = (0u64, 0u32);
    while std::time::Instant::now() < end {
        i += 1;
        if probe_sys::chmod_shared(&BUF, if i % 2 == 0 { 0o644 } else { 0o600 }) {
            changed += 1;
        }
    }
    STOP.store(true, Ordering::Relaxed);
    let _ = flipper.join();
    println!("changed {changed}");
}

fn run(args: &[String]) -> i32 {
    use probe_sys as s;
    let action = arg(args, 1);
    match action.as_str() {
        "write" => report(std::fs::write(arg(args, 2), b"probe")),
        "read" => report(std::fs::read(arg(args, 2)).map(drop)),
        "open-noctty" => report(s::open_ro_noctty(&cpath(&arg(args, 2)))),
        // watch PATH: inotify_add_watch(PATH, IN_ACCESS|IN_MODIFY|IN_OPEN) → ok / errno
        "watch" => report(
            s::inotify()
                .and_then(|fd| {
                    s::add_watch(
                        fd,
                        &cpath(&arg(args, 2)),
                        libc::IN_ACCESS | libc::IN_MODIFY | libc::IN_OPEN,
                    )
                })
                .map(drop),
        ),
        // watch-create DIR: watch DIR for IN_CREATE, create DIR/probe-watched, and print
        // "event" when the watch reported it within 5 s ("none" otherwise), or the errno
        "watch-create" => {
            let dir = arg(args, 2);
            let r = s::inotify().and_then(|fd| {
                let wd = s::add_watch(fd, &cpath(&dir), libc::IN_CREATE)?;
                std::fs::write(std::path::Path::new(&dir).join("probe-watched"), "x")?;
                s::read_events(fd, 5000).map(|ev| (wd, ev))
            });
            match r {
                Ok((wd, ev)) if ev.iter().any(|&(w, m)| w == wd && m & libc::IN_CREATE != 0) => {
                    println!("event")
                }
                Ok(_) => println!("none"),
                Err(e) => println!("errno {}", e.raw_os_error().unwrap_or(-1)),
            }
        }
        "fanotify" => report(s::fanotify()),
        "dnotify" => report(s::dnotify(&cpath(&arg(args, 2)))),
        "race-chmod" => race_chmod(num(args, 2) as u64),
        "hop" => s::hop(std::path::Path::new(&arg(args, 2))),
        "race-mkdir" => {
            race_mkdir(num(args, 2) as u64);
        }
        "chmod" => report(s::chmod(
            &cpath(&arg(args, 2)),
            u32::from_str_radix(&arg(args, 3), 8).unwrap_or(0o777),
        )),
        "utime" => report(s::utime_epoch(&cpath(&arg(args, 2)))),
        // create KIND PATH MODE UMASK (octal): "mode 0NNN" or the errno
        "create" => match s::create(
            &arg(args, 2),
            &cpath(&arg(args, 3)),
            u32::from_str_radix(&arg(args, 4), 8).unwrap_or(0),
            u32::from_str_radix(&arg(args, 5), 8).unwrap_or(0o22),
        ) {
            Ok(m) => println!("mode {m:04o}"),
            Err(e) => report(Err::<(), _>(e)),
        },
        "setxattr" => report(s::setxattr(
            &cpath(&arg(args, 2)),
            &cpath(&arg(args, 3)),
            arg(args, 4).as_bytes(),
        )),
        "mq-create" => report(s::mq_create(&cpath(&arg(args, 2)))),
        // recv-meta SOCK CALL: connect to SOCK, receive a descriptor, then `meta CALL fd:N`
        "recv-meta" => report(sock_then(libc::AF_UNIX, libc::SOCK_STREAM, |fd| {
            s::connect_unix(fd, arg(args, 2).as_bytes(), false)?;
            let got = s::recv_fd(fd)?;
            s::meta(
                &arg(args, 3),
                got,
                &cpath(&format!("/proc/self/fd/{got}")),
                c"",
            )
        })),
        // meta CALL TARGET [NAME]: TARGET `fd:N` (path calls: /proc/self/fd/N) or a path
        // (fd calls: opened read-only first); prints ok or the errno
        "meta" => {
            let target = arg(args, 3);
            let (fd, path) = match target.strip_prefix("fd:") {
                Some(n) => {
                    let n: i32 = n.parse().unwrap_or(-1);
                    (n, format!("/proc/self/fd/{n}"))
                }
                None => {
                    let fd = std::fs::File::open(&target)
                        .map(std::os::fd::IntoRawFd::into_raw_fd)
                        .unwrap_or(-1);
                    (fd, target.clone())
                }
            };
            report(s::meta(
                &arg(args, 2),
                fd,
                &cpath(&path),
                &cpath(&arg(args, 4)),
            ));
        }
        "shm-read" => match s::shm_read(num(args, 2) as i32) {
            Ok(b) => println!("ok {b}"),
            Err(e) => println!("errno {}", e.raw_os_error().unwrap_or(-1)),
        },
        "readdir" => report(std::fs::read_dir(arg(args, 2)).map(drop)),
        "mkdir" => report(std::fs::create_dir(arg(args, 2))),
        "link" => report(s::link(&cpath(&arg(args, 2)), &cpath(&arg(args, 3)))),
        "symlink-write" => report(
            std::os::unix::fs::symlink(arg(args, 3), arg(args, 2))
                .and_then(|()| std::fs::write(arg(args, 2), b"via link")),
        ),
        "rename" => report(std::fs::rename(arg(args, 2), arg(args, 3))),
        "tcp4-connect" => report(sock_then(libc::AF_INET, libc::SOCK_STREAM, |fd| {
            s::connect_v4(fd, num(args, 2) as u16)
        })),
        "tcp6-connect" => report(sock_then(libc::AF_INET6, libc::SOCK_STREAM, |fd| {
            s::connect_v6(fd, num(args, 2) as u16)
        })),
        "tcp4-bind" => report(sock_then(libc::AF_INET, libc::SOCK_STREAM, s::bind_v4)),
        "tcp6-socket" => report(sock_then(libc::AF_INET6, libc::SOCK_STREAM, |_| Ok(()))),
        "udp4-sendto" => report(sock_then(libc::AF_INET, libc::SOCK_DGRAM, |fd| {
            s::sendto_v4(fd, num(args, 2) as u16)
        })),
        "tcp4-fastopen" => report(sock_then(libc::AF_INET, libc::SOCK_STREAM, |fd| {
            s::sendto_v4_flags(fd, num(args, 2) as u16, libc::MSG_FASTOPEN)
        })),
        "udp6-socket" => report(sock_then(libc::AF_INET6, libc::SOCK_DGRAM, |_| Ok(()))),
        "raw-socket" => report(sock_then(libc::AF_INET, libc::SOCK_RAW, |_| Ok(()))),
        "packet-socket" => report(sock_then(libc::AF_PACKET, libc::SOCK_RAW, |_| Ok(()))),
        "netlink-socket" => report(sock_then(libc::AF_NETLINK, libc::SOCK_RAW, |_| Ok(()))),
        "vsock-socket" => report(sock_then(libc::AF_VSOCK, libc::SOCK_STREAM, |_| Ok(()))),
        "io-uring" => report(s::io_uring_setup().map(drop)),
        "ptrace" => report(
            s::syscall6(
                libc::SYS_ptrace,
                [libc::PTRACE_SEIZE as libc::c_long, num(args, 2), 0, 0, 0, 0],
            )
            .map(drop),
        ),
        // kill PID [SIGNAL] (default SIGKILL)
        "kill" => {
            let sig = if args.len() > 3 {
                num(args, 3) as i32
            } else {
                libc::SIGKILL
            };
            report(s::kill(num(args, 2) as i32, sig))
        }
        "process-vm-readv" => report(s::process_vm_readv(num(args, 2) as i32)),
        "proc-mem" => report(
            std::fs::File::open(format!("/proc/{}/mem", num(args, 2))).and_then(|mut f| {
                let mut b = [0u8; 1];
                f.read(&mut b).map(drop)
            }),
        ),
        "abstract-connect" => report(sock_then(libc::AF_UNIX, libc::SOCK_STREAM, |fd| {
            s::connect_unix(fd, arg(args, 2).as_bytes(), true)
        })),
        "unix-connect-send" => report(sock_then(libc::AF_UNIX, libc::SOCK_STREAM, |fd| {
            s::connect_unix(fd, arg(args, 2).as_bytes(), false)?;
            s::send(fd)?;
            s::sendto_null(fd)?;
            s::sendmsg(fd)
        })),
        "unix-connect" => report(sock_then(libc::AF_UNIX, libc::SOCK_STREAM, |fd| {
            s::connect_unix(fd, arg(args, 2).as_bytes(), false)
        })),
        "race-connect-bytes" => {
            let (ok, bad) = s::race_connect_bytes(
                arg(args, 2).as_bytes(),
                arg(args, 3).as_bytes(),
                num(args, 4) as usize,
            );
            println!("connected {ok} failed {bad}");
        }
        "race-connect-symlink" => {
            let (ok, bad) = s::race_connect_symlink(
                &arg(args, 2),
                &arg(args, 3),
                &arg(args, 4),
                num(args, 5) as usize,
            );
            println!("connected {ok} failed {bad}");
        }
        "socketpair" => report(s::socketpair().and_then(|(a, b)| {
            s::sendto_null(a)?;
            if s::recv1(b)? == b't' {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(libc::EIO))
            }
        })),
        "tiocsti" => report(s::ioctl_badfd(libc::TIOCSTI as libc::c_ulong)),
        "tioclinux" => report(s::ioctl_badfd(libc::TIOCLINUX as libc::c_ulong)),
        "tiocsetd" => report(s::ioctl_badfd(libc::TIOCSETD as libc::c_ulong)),
        "tcxonc" => report(s::ioctl_badfd(libc::TCXONC as libc::c_ulong)),
        "tiocexcl" => report(s::ioctl_badfd(libc::TIOCEXCL as libc::c_ulong)),
        "unshare-user" => report(s::unshare(libc::CLONE_NEWUSER)),
        "clone-newuser" => report(s::clone_flags(libc::CLONE_NEWUSER)),
        "clone3" => report(s::syscall6(libc::SYS_clone3, [0, 0, 0, 0, 0, 0]).map(drop)),
        "keyctl" => report(
            s::syscall6(
                libc::SYS_keyctl,
                [0 /* KEYCTL_GET_KEYRING_ID */, -3, 0, 0, 0, 0],
            )
            .map(drop),
        ),
        "add-key" => report(s::syscall6(libc::SYS_add_key, [0, 0, 0, 0, 0, 0]).map(drop)),
        "request-key" => report(s::syscall6(libc::SYS_request_key, [0, 0, 0, 0, 0, 0]).map(drop)),
        "bpf" => report(s::syscall6(libc::SYS_bpf, [-1, 0, 0, 0, 0, 0]).map(drop)),
        "perf-event-open" => {
            report(s::syscall6(libc::SYS_perf_event_open, [0, 0, -1, -1, 0, 0]).map(drop))
        }
        "mount" => report(s::syscall6(libc::SYS_umount2, [0, 0, 0, 0, 0, 0]).map(drop)),
        "euid" => println!("{}", s::geteuid()),
        "env" => println!(
            "{}",
            std::env::var(arg(args, 2)).unwrap_or_else(|_| "<unset>".into())
        ),
        "exit" => return num(args, 2) as i32,
        "signal" => {
            s::raise(num(args, 2) as i32);
            return 99;
        }
        "cat" => {
            let mut buf = Vec::new();
            let _ = io::stdin().read_to_end(&mut buf);
            let _ = io::stdout().write_all(&buf);
            let _ = io::stderr().write_all(b"to-stderr\n");
        }
        "outer-deny" => return outer_deny(&arg(args, 2), &args[3..]),
        "sleep" => std::thread::sleep(std::time::Duration::from_secs(num(args, 2) as u64)),
        _ => {
            eprintln!("sandbox-linux-probe: unknown action {action:?}");
            return 3;
        }
    }
    0
}

/// `outer-deny userns|landlock -- CMD...`: install a seccomp filter that takes a kernel feature
/// away (namespaces: unshare, clone(CLONE_NEWUSER/NEWNS/NEWPID/NEWIPC) → EPERM; Landlock:
/// landlock_create_ruleset → ENOSYS), then exec CMD. Simulates Docker's default profile / a
/// kernel without Landlock, honestly, with the same kernel mechanism.
fn outer_deny(what: &str, rest: &[String]) -> i32 {
    use codex_confine::seccomp::{Condition, Filter, Rule};
    const USERNS: &[Rule] = &[
        Rule::new(
            "unshare",
            libc::SYS_unshare,
            Condition::Always,
            "simulated: no user namespaces",
        ),
        Rule::new(
            "clone(CLONE_NEWUSER)",
            libc::SYS_clone,
            Condition::Bits64 {
                arg: 0,
                mask: libc::CLONE_NEWUSER as u64,
            },
            "simulated: no user namespaces",
        ),
        // Docker's default profile refuses every namespace flag to unprivileged containers:
        // without these rows root would still get mount/pid/IPC namespaces.
        Rule::new(
            "clone(CLONE_NEWNS)",
            libc::SYS_clone,
            Condition::Bits64 {
                arg: 0,
                mask: libc::CLONE_NEWNS as u64,
            },
            "simulated: no namespaces",
        ),
        Rule::new(
            "clone(CLONE_NEWPID)",
            libc::SYS_clone,
            Condition::Bits64 {
                arg: 0,
                mask: libc::CLONE_NEWPID as u64,
            },
            "simulated: no namespaces",
        ),
        Rule::new(
            "clone(CLONE_NEWIPC)",
            libc::SYS_clone,
            Condition::Bits64 {
                arg: 0,
                mask: libc::CLONE_NEWIPC as u64,
            },
            "simulated: no namespaces",
        ),
    ];
    const LANDLOCK: &[Rule] = &[Rule::new(
        "landlock_create_ruleset",
        libc::SYS_landlock_create_ruleset,
        Condition::Always,
        "simulated: a kernel without Landlock",
    )];
    const NOTIFY: &[Rule] = &[Rule::new(
        "seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER)",
        libc::SYS_seccomp,
        Condition::Bits64 {
            arg: 1,
            mask: libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
        },
        "simulated: a kernel without seccomp user notification",
    )];
    let filter = match what {
        "userns" => Filter::compile_with_errno(USERNS, libc::EPERM),
        "landlock" => Filter::compile_with_errno(LANDLOCK, libc::ENOSYS),
        "notify" => Filter::compile_with_errno(NOTIFY, libc::EINVAL),
        _ => return 3,
    };
    let Ok(filter) = filter else { return 3 };
    if codex_confine::set_no_new_privs().is_err() || filter.install().is_err() {
        return 3;
    }
    let rest: Vec<&String> = rest.iter().skip_while(|a| a.as_str() == "--").collect();
    let Some(first) = rest.first() else { return 3 };
    use std::os::unix::process::CommandExt;
    let e = std::process::Command::new(first).args(&rest[1..]).exec();
    eprintln!("sandbox-linux-probe: exec {first}: {e}");
    3
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    std::process::exit(run(&args));
}
