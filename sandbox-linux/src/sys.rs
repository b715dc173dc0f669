//! The raw system calls of this crate. Each function makes exactly one call (or one fixed
//! sequence documented on it) and returns `io::Result`; every `unsafe` block names its invariant.
//!
//! Nothing here decides policy: callers in `launch.rs`, `mountns.rs` and `kernel.rs` do. The
//! confinement calls (no_new_privs, seccomp, Landlock) are `codex-confine`'s.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `prctl(PR_SET_DUMPABLE, 1)`: /proc/self/{uid,gid}_map and setgroups are owned by root while a
/// process is not dumpable, so the child re-enables it before writing its id maps (it is about
/// to execute the user's command, which resets the flag anyway).
pub fn set_dumpable() -> io::Result<()> {
    // SAFETY: PR_SET_DUMPABLE takes an integer by value; no memory is passed.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) }).map(drop)
}

/// `prctl(PR_SET_PDEATHSIG, sig)`: the kernel sends `sig` to us when our parent exits.
pub fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number by value; no memory is passed.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) }).map(drop)
}

/// `setsid()`: a new session without a controlling terminal (the command cannot reach the user's
/// terminal with TIOCSTI even where seccomp could not stop it).
pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid takes no arguments.
    check(unsafe { libc::setsid() }).map(drop)
}

/// `mount(source, target, NULL, flags, NULL)` for bind mounts and propagation changes.
pub fn mount(source: Option<&CStr>, target: &CStr, flags: libc::c_ulong) -> io::Result<()> {
    let src = source.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: `src` is NULL or a NUL-terminated string borrowed for the call, `target` likewise;
    // fstype and data are NULL, which bind mounts and MS_PRIVATE accept.
    check(unsafe {
        libc::mount(
            src,
            target.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    })
    .map(drop)
}

/// `struct mount_attr` from `<linux/mount.h>`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(AT_FDCWD, path, AT_RECURSIVE, {attr_set = MOUNT_ATTR_RDONLY})`: make the mount
/// at `path` (and mounts below it) read-only without touching its other (possibly locked) flags.
pub fn mount_set_readonly_recursive(path: &CStr) -> io::Result<()> {
    set_readonly_recursive(libc::AT_FDCWD, path, 0)
}

/// `mount_setattr(dirfd, path, flags | AT_RECURSIVE, {attr_set = MOUNT_ATTR_RDONLY})`.
fn set_readonly_recursive(dirfd: libc::c_int, path: &CStr, flags: libc::c_uint) -> io::Result<()> {
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is NUL-terminated and borrowed for the call; `dirfd` is AT_FDCWD or a
    // descriptor the caller borrows for the call; `attr` is a live, initialised `struct
    // mount_attr` and we pass its exact size, so the kernel reads only within it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check_long(ret).map(drop)
}

/// `getuid()`.
pub fn getuid() -> u32 {
    // SAFETY: getuid cannot fail and takes no arguments.
    unsafe { libc::getuid() }
}

/// Fills `buf` from `getrandom(2)` (at most 256 bytes: one call never returns short then).
pub fn random_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    if buf.len() > 256 {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: the pointer and length describe `buf`, writable and alive for the call.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    match usize::try_from(n) {
        Ok(got) if got == buf.len() => Ok(()),
        Ok(_) => Err(std::io::Error::from_raw_os_error(libc::EIO)),
        Err(_) => Err(std::io::Error::last_os_error()),
    }
}

/// `geteuid()`.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid cannot fail and takes no arguments.
    unsafe { libc::geteuid() }
}

/// `getgid()`.
pub fn getgid() -> u32 {
    // SAFETY: getgid cannot fail and takes no arguments.
    unsafe { libc::getgid() }
}

/// The result of [`fork`].
pub enum Fork {
    Parent { child: libc::pid_t },
    Child,
}

/// `fork()`.
///
/// The caller must be single-threaded (checked by `codex_confine::thread_count` before calling): the child
/// then owns the only thread and may allocate and run ordinary Rust code.
pub fn fork() -> io::Result<Fork> {
    // SAFETY: the caller guarantees the process is single-threaded, so no lock (allocator,
    // stdio) can be held by another thread at the time of the fork.
    let pid = check(unsafe { libc::fork() })?;
    Ok(if pid == 0 {
        Fork::Child
    } else {
        Fork::Parent { child: pid }
    })
}

/// Stack of a [`spawn_vfork`] child: what the command's last steps before `execve` use (the
/// environment filter, a message on failure, glibc's `execvpe`), with room to spare; only the
/// pages touched are ever allocated.
const VFORK_STACK: usize = 1 << 20;

/// `clone(CLONE_VM | CLONE_VFORK | SIGCHLD)` on a stack of its own: `child` runs in a new
/// process that shares this one's memory (no page tables copied, no copy-on-write faults, and
/// its `execve` drops no copy of this address space) while the calling thread is suspended,
/// until the child calls `execve` or `_exit`. Returns the child's pid.
///
/// `child` must end in `execve` or `_exit` (its type: it never returns) and may allocate: the
/// caller must be single-threaded (the sandbox's init is), so no other thread holds a lock or
/// sees the heap change, and the caller does not run until the child is done. What `child`
/// captured is moved out in the child (the slot below is emptied in the shared memory), so
/// this process never drops it again. File descriptors and signal actions are the child's own
/// copies (no `CLONE_FILES`, no `CLONE_SIGHAND`).
pub fn spawn_vfork<F: FnOnce() -> std::convert::Infallible>(child: F) -> io::Result<libc::pid_t> {
    // `f()` has an uninhabited type: the match ends the function without a value
    #[allow(unreachable_code)]
    extern "C" fn trampoline<F: FnOnce() -> std::convert::Infallible>(
        arg: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `arg` is the `Option<F>` slot of `spawn_vfork`, alive (its frame is
        // suspended in `clone`) and touched by nobody else until this child execs or exits.
        let slot = unsafe { &mut *arg.cast::<Option<F>>() };
        match slot.take() {
            Some(f) => match f() {},
            None => exit_now(crate::EXIT_SETUP_FAILED),
        }
    }
    // SAFETY: a fresh anonymous private mapping; the kernel picks the address.
    let stack = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            VFORK_STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if stack == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // a guard page at the low end: an overflow faults instead of writing below the mapping
    // SAFETY: the first page of the mapping made above.
    let guarded = unsafe { libc::mprotect(stack, 4096, libc::PROT_NONE) };
    let mut slot = Some(child);
    let pid = if guarded == 0 {
        // SAFETY: the stack grows down from the end of the `VFORK_STACK`-byte mapping (16-byte
        // aligned: page-aligned end); `trampoline::<F>` reads `slot`, which lives in this frame,
        // suspended until the child execs or exits (`CLONE_VFORK`), so it outlives the child's
        // use of it.
        unsafe {
            libc::clone(
                trampoline::<F>,
                stack.cast::<u8>().add(VFORK_STACK).cast(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&mut slot as *mut Option<F>).cast(),
            )
        }
    } else {
        -1
    };
    let result = check(pid);
    // SAFETY: the mapping made above; the child no longer runs on it (it has exec'ed or exited:
    // `CLONE_VFORK` returned only then).
    unsafe { libc::munmap(stack, VFORK_STACK) };
    // `slot` is `None` when the child ran (it took the closure); still `Some` when the clone
    // failed: dropped here, never run
    drop(slot);
    result
}

/// `waitpid(pid, &status, 0)`, retried on `EINTR`. Returns the raw wait status.
pub fn waitpid(pid: libc::pid_t) -> io::Result<libc::c_int> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is a live c_int the kernel writes the wait status into.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        if ret == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        return Ok(status);
    }
}

/// Turn a raw wait status into a shell-style exit code: the code, or 128 + the signal number.
pub fn exit_code_from_status(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        128
    }
}

/// Close descriptors 0, 1 and 2 (nothing may be printed afterwards).
pub fn close_stdio() {
    for fd in 0..=2 {
        // SAFETY: closing a descriptor number; the caller owns the standard descriptors and
        // neither uses nor reopens them afterwards.
        unsafe { libc::close(fd) };
    }
}

/// `_exit(code)`: leave the forked child without running destructors or atexit handlers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is async-signal-safe.
    unsafe { libc::_exit(code) }
}

/// The pid the forwarding handler sends signals to (0 = none yet).
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe and takes its arguments by value.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Forward SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 received by this process to
/// `child` (the sandboxed command lives in its own session, so the terminal does not reach it).
pub fn forward_signals_to(child: libc::pid_t) -> io::Result<()> {
    FORWARD_TO.store(child, Ordering::SeqCst);
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: `sa` is zero-initialised (a valid empty `struct sigaction`), then given a handler
        // that only calls async-signal-safe functions; sigaction reads `sa` during the call only.
        let ret = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = forward_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        check(ret)?;
    }
    Ok(())
}

/// Mark every descriptor from 3 up close-on-exec (`close_range(3, ~0, CLOSE_RANGE_CLOEXEC)`,
/// Linux 5.11): what the launcher inherited beyond stdin/stdout/stderr (a file the user's shell
/// had open, an agent socket) does not reach the command (third review round F7).
pub fn cloexec_from_3() -> io::Result<()> {
    // SAFETY: close_range takes integers only; with CLOSE_RANGE_CLOEXEC it closes nothing now.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
        )
    };
    check(ret as libc::c_int).map(drop)
}

/// Restore SIGPIPE's default action and unblock every signal. The Rust runtime ignores SIGPIPE in our own process and an
/// ignored disposition survives execve: without this, `cmd | head` inside the sandbox would see
/// EPIPE instead of being killed.
pub fn reset_sigpipe() -> io::Result<()> {
    // SAFETY: `sa` is zero-initialised and set to SIG_DFL; sigaction reads it during the call only.
    let ret = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGPIPE, &sa, std::ptr::null_mut())
    };
    check(ret)?;
    // SAFETY: `set` is a zero-initialised sigset_t emptied by sigemptyset; sigprocmask reads it
    // during the call only. An empty mask unblocks every signal, as std's Command does.
    let ret = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut())
    };
    check(ret).map(drop)
}

/// `pipe2(O_CLOEXEC)`: (read end, write end).
pub fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// `execvpe(file, argv, envp)`: only returns on failure.
pub fn execvpe(file: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: `file`, every argv and envp string are NUL-terminated and outlive the call; both
    // pointer arrays are NULL-terminated as execvpe requires.
    unsafe { libc::execvpe(file.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// Fork a child that tries `unshare(CLONE_NEWUSER | CLONE_NEWNS)` and reports the result; this
/// process is unaffected. Used by `codex sandbox check`.
///
/// Safe to call from a multi-threaded process: the child only calls `unshare`, reads errno and
/// calls `_exit`, all async-signal-safe.
pub fn probe_user_namespace() -> io::Result<Result<(), io::Error>> {
    // SAFETY: the child runs only async-signal-safe calls (see above) and never returns.
    let pid = check(unsafe { libc::fork() })?;
    match if pid == 0 {
        Fork::Child
    } else {
        Fork::Parent { child: pid }
    } {
        Fork::Child => {
            // SAFETY: unshare takes flags by value; this is the single-threaded forked child.
            let ret = unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) };
            let code = if ret == 0 {
                0
            } else {
                io::Error::last_os_error().raw_os_error().unwrap_or(255)
            };
            exit_now(code.min(255))
        }
        Fork::Parent { child } => {
            let status = waitpid(child)?;
            if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                Ok(Ok(()))
            } else if libc::WIFEXITED(status) {
                Ok(Err(io::Error::from_raw_os_error(libc::WEXITSTATUS(status))))
            } else {
                Ok(Err(io::Error::other("probe child was killed")))
            }
        }
    }
}

/// `clone(flags | SIGCHLD)` with no new stack: a `fork` whose child starts in the namespaces
/// `flags` names (`CLONE_NEWUSER`, `CLONE_NEWNS`, `CLONE_NEWPID`, `CLONE_NEWIPC`). With
/// `CLONE_NEWPID` the child is pid 1 of the new pid namespace.
///
/// The caller must be single-threaded, as for [`fork`].
pub fn clone_into(flags: libc::c_int) -> io::Result<Fork> {
    // SAFETY: raw clone without CLONE_VM and with a NULL stack duplicates the address space like
    // fork (the child continues on a copy of this stack); the caller is single-threaded, so no
    // lock is held by another thread. The pointer arguments (parent/child tid, tls) are NULL and
    // unused without CLONE_*TID/CLONE_SETTLS.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    let pid = check_long(ret)?;
    Ok(if pid == 0 {
        Fork::Child
    } else {
        Fork::Parent {
            child: pid as libc::pid_t,
        }
    })
}

/// `prctl(PR_SET_CHILD_SUBREAPER, 1)`: orphaned descendants are re-parented to this process
/// instead of the system's init, so it can find and kill them.
pub fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer by value; no memory is passed.
    check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }).map(drop)
}

/// `poll(fd, POLLOUT, 0)` on the write end of a pipe: `true` when the read end is closed
/// everywhere (`POLLERR`), i.e. the process holding it has died.
pub fn pipe_reader_gone(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: `p` is one live pollfd and we pass a count of 1.
    let ret = unsafe { libc::poll(&mut p, 1, 0) };
    ret > 0 && p.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

/// `waitpid(-1, &status, 0)` once (not retried on `EINTR`: callers check flags set by signal
/// handlers). Returns (pid, raw status).
pub fn wait_any() -> io::Result<(libc::pid_t, libc::c_int)> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a live c_int the kernel writes the wait status into.
    let pid = check(unsafe { libc::waitpid(-1, &mut status, 0) })?;
    Ok((pid, status))
}

/// `waitpid(-1, &status, WNOHANG)` once: `Ok(None)` when children remain but none has changed
/// state.
pub fn wait_any_nohang() -> io::Result<Option<(libc::pid_t, libc::c_int)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a live c_int the kernel writes the wait status into.
    let pid = check(unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) })?;
    Ok((pid > 0).then_some((pid, status)))
}

/// `getppid()`.
pub fn getppid() -> libc::pid_t {
    // SAFETY: getppid cannot fail and takes no arguments.
    unsafe { libc::getppid() }
}

/// `kill(pid, sig)`.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes its arguments by value.
    check(unsafe { libc::kill(pid, sig) }).map(drop)
}

/// Install `handler` for `sig` without `SA_RESTART` (a blocking `waitpid` returns `EINTR`).
pub fn on_signal(sig: libc::c_int, handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: `sa` is zero-initialised (a valid empty `struct sigaction`) and given a handler
    // that only touches atomics; sigaction reads `sa` during the call only.
    let ret = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut())
    };
    check(ret).map(drop)
}

/// `mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)`: a procfs showing
/// the caller's pid namespace.
pub fn mount_proc() -> io::Result<()> {
    // SAFETY: all strings are NUL-terminated literals; data is NULL, which procfs accepts.
    check(unsafe {
        libc::mount(
            c"proc".as_ptr(),
            c"/proc".as_ptr(),
            c"proc".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    })
    .map(drop)
}

/// `getpid()`.
pub fn getpid() -> libc::pid_t {
    // SAFETY: getpid cannot fail and takes no arguments.
    unsafe { libc::getpid() }
}

/// The addresses assigned to this machine's interfaces (`getifaddrs`), IPv4 and IPv6.
pub fn interface_addresses() -> io::Result<Vec<std::net::IpAddr>> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we own and free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says which struct it is.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
                out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))));
            } else if family == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in6>() };
                out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once; no reference outlives this.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The write end of the job-control pipe (-1: none).
static JOB_PIPE_W: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_job_signal(sig: libc::c_int) {
    let fd = JOB_PIPE_W.load(Ordering::SeqCst);
    if fd >= 0 {
        let b = u8::try_from(sig).unwrap_or(0);
        // SAFETY: write is async-signal-safe; one byte from a local. A full pipe drops the
        // byte (O_NONBLOCK), which only merges two signals of the same meaning.
        unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
    }
}

/// A pipe that receives one byte (the signal number) per `SIGTSTP`, `SIGTTIN`, `SIGTTOU` and
/// `SIGCONT` this process gets: their default actions are replaced (the reader stops this
/// process itself). Returns the read end.
pub fn job_signal_pipe() -> io::Result<OwnedFd> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
    // SAFETY: two new descriptors owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // the read end blocks (the reader thread waits on it); the write end stays non-blocking
    // SAFETY: fcntl on a descriptor we own, integer arguments.
    check(unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&r), libc::F_SETFL, 0) })?;
    JOB_PIPE_W.store(std::os::fd::IntoRawFd::into_raw_fd(w), Ordering::SeqCst);
    for sig in [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU, libc::SIGCONT] {
        // SAFETY: `sa` is zero-initialised (a valid empty `struct sigaction`) and given a
        // handler that only calls write(2); sigaction reads `sa` during the call only.
        let ret = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_job_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        check(ret)?;
    }
    Ok(r)
}

/// `tcgetattr(fd)`: the terminal settings of `fd`, or `None` when it is not a terminal.
pub fn tty_settings(fd: libc::c_int) -> Option<libc::termios> {
    // SAFETY: termios is plain data the kernel fills for a valid terminal descriptor.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid, writable termios; an invalid or non-terminal fd only fails.
    (unsafe { libc::tcgetattr(fd, &mut t) } == 0).then_some(t)
}

/// `tcsetattr(fd, TCSANOW, t)` with `SIGTTOU` blocked on this thread for the call (a launcher
/// in a background job would otherwise be stopped by it; POSIX performs the change when the
/// signal is blocked), then the thread's mask restored.
pub fn restore_tty_settings(fd: libc::c_int, t: &libc::termios) -> io::Result<()> {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    let mut block: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `block` is a valid sigset_t.
    unsafe {
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGTTOU);
    }
    // SAFETY: both sets are valid; only this thread's mask changes.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old) };
    // SAFETY: `t` is a valid termios read by the kernel; an invalid fd only fails.
    let r = unsafe { libc::tcsetattr(fd, libc::TCSANOW, t) };
    let err = io::Error::last_os_error();
    // SAFETY: `old` is the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    if r == 0 { Ok(()) } else { Err(err) }
}

/// `fcntl(fd, F_GETFL)`: the open file description's status flags, `None` for a closed fd.
pub fn file_status_flags(fd: libc::c_int) -> Option<libc::c_int> {
    // SAFETY: F_GETFL takes no argument; an invalid fd only fails.
    let r = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    (r >= 0).then_some(r)
}

/// `fcntl(fd, F_SETFL, flags)`.
pub fn set_file_status_flags(fd: libc::c_int, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: F_SETFL takes an int; an invalid fd only fails.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC)` (`dir` `None`: `AT_FDCWD`): a
/// descriptor for the entry itself, a symbolic link included, that grants no read or write.
pub fn open_path_nofollow(
    dir: Option<std::os::fd::BorrowedFd<'_>>,
    name: &CStr,
) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `dirfd` is AT_FDCWD or a descriptor borrowed for the call; `name` is
    // NUL-terminated and borrowed for the call.
    let fd = check(unsafe {
        libc::openat(
            dirfd,
            name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: openat succeeded, so `fd` is a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(dir, name, O_PATH | O_CLOEXEC)`: like [`open_path_nofollow`] but a final symbolic
/// link is followed (the descriptor is the link's target).
pub fn open_path_follow(
    dir: Option<std::os::fd::BorrowedFd<'_>>,
    name: &CStr,
) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `dirfd` is AT_FDCWD or a descriptor borrowed for the call; `name` is
    // NUL-terminated and borrowed for the call.
    let fd = check(unsafe { libc::openat(dirfd, name.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) })?;
    // SAFETY: openat succeeded, so `fd` is a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fstat(fd)` (an `O_PATH` descriptor is enough).
pub fn fstat(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<libc::stat> {
    use std::os::fd::AsRawFd;
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `fd` is borrowed for the call; `st` is writable memory of the size of
    // `struct stat`, which the kernel fills on success.
    check(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded, so the kernel initialised every field of `st`.
    Ok(unsafe { st.assume_init() })
}

/// `readlinkat(link, "", ...)`: the target of the symbolic link `link` (an `O_PATH |
/// O_NOFOLLOW` descriptor of it), at most `PATH_MAX` bytes.
pub fn readlink_fd(link: std::os::fd::BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: `link` is borrowed for the call; `buf` is writable for `buf.len()` bytes and the
    // kernel writes at most that many.
    let n = check_long(unsafe {
        libc::readlinkat(
            link.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        ) as libc::c_long
    })? as usize;
    if n >= buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(buf)
}

/// A `/proc` file, read into a 64 KiB buffer. `std::fs::read` starts with a 32-byte probe
/// (procfs reports size 0) and doubles from there: eight `read`s for a short mountinfo, each
/// one making the kernel walk the mount list again up to its position. With this much room
/// the first `read` takes it all and the second sees the end.
pub fn read_proc(path: &str) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut buf = Vec::with_capacity(64 * 1024);
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

/// `getrlimit(RLIMIT_NOFILE)`: (soft, hard).
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a live `struct rlimit` the kernel fills.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) })?;
    Ok((r.rlim_cur, r.rlim_max))
}

/// `setrlimit(RLIMIT_NOFILE, {soft, hard})`.
pub fn set_nofile_limit(soft: u64, hard: u64) -> io::Result<()> {
    let r = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `r` is a live, initialised `struct rlimit` read by the kernel.
    check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }).map(drop)
}

/// `open_tree(fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH)`:
/// [`open_tree_clone`] of the directory `fd` refers to (no path resolved again).
pub fn open_tree_clone_fd(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    // SAFETY: `fd` is borrowed for the call; the empty path is a NUL-terminated literal.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd.as_raw_fd(),
            c"".as_ptr(),
            OPEN_TREE_CLONE
                | libc::O_CLOEXEC as libc::c_uint
                | AT_RECURSIVE
                | libc::AT_EMPTY_PATH as libc::c_uint,
        )
    };
    let fd = check_long(ret)?;
    // SAFETY: open_tree succeeded, so `fd` is a new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// `move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)`:
/// [`move_mount_onto`] the directory `target` refers to (no path resolved again).
pub fn move_mount_onto_fd(
    tree: std::os::fd::BorrowedFd<'_>,
    target: std::os::fd::BorrowedFd<'_>,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: both descriptors are borrowed for the call; the empty paths are NUL-terminated
    // literals.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check_long(ret).map(drop)
}

/// `mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, {attr_set = MOUNT_ATTR_RDONLY})`:
/// [`mount_set_readonly_recursive`] of a detached tree from [`open_tree_clone_fd`].
pub fn mount_set_readonly_recursive_fd(tree: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    set_readonly_recursive(tree.as_raw_fd(), c"", libc::AT_EMPTY_PATH as libc::c_uint)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The child shares this process's memory and runs to its `_exit` before `spawn_vfork`
    /// returns (what the command's start relies on: no copy made, the init suspended until
    /// then). With a plain `fork` the store below would not be seen. The closure does not
    /// allocate: the test harness has other threads.
    #[test]
    fn a_vfork_child_runs_in_this_memory_before_the_call_returns() {
        let seen = std::sync::atomic::AtomicU32::new(0);
        let seen_ref = &seen;
        let pid = spawn_vfork(move || {
            seen_ref.store(7, std::sync::atomic::Ordering::SeqCst);
            exit_now(5)
        })
        .unwrap();
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 7);
        let status = waitpid(pid).unwrap();
        assert!(libc::WIFEXITED(status), "{status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 5);
    }
}
