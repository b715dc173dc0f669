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

/// `unshare(flags)`. The kernel requires a single-threaded caller for `CLONE_NEWUSER`; callers
/// run it in the freshly forked child.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes flags by value and touches no memory of ours.
    check(unsafe { libc::unshare(flags) }).map(drop)
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
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `path` is NUL-terminated and borrowed for the call; `attr` is a live, initialised
    // `struct mount_attr` and we pass its exact size, so the kernel reads only within it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            AT_RECURSIVE,
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
