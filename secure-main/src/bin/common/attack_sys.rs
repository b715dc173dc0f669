//! The test attacker's syscall layer (every `unsafe` block of `secure-main-attacker`), one call
//! per function, each returning `io::Result`.

use std::io;

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A resource limit the attacker sets up before dropping privileges.
#[derive(Clone, Copy)]
pub enum Resource {
    Core,
    Memlock,
}

/// `setrlimit(resource, {soft, hard})`.
pub fn set_rlimit(resource: Resource, soft: u64, hard: u64) -> io::Result<()> {
    let resource = match resource {
        Resource::Core => libc::RLIMIT_CORE,
        Resource::Memlock => libc::RLIMIT_MEMLOCK,
    };
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid rlimit that outlives the call; setrlimit only reads it.
    check(unsafe { libc::setrlimit(resource, &lim) }.into()).map(drop)
}

/// `setgroups(0)`, `setresgid(gid)`, `setresuid(uid)`: drop from root to `uid`/`gid` for good.
pub fn drop_to(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: setgroups with size 0 reads no memory.
    check(unsafe { libc::setgroups(0, std::ptr::null()) }.into())?;
    // SAFETY: setresgid takes plain integers.
    check(unsafe { libc::setresgid(gid, gid, gid) }.into())?;
    // SAFETY: setresuid takes plain integers.
    check(unsafe { libc::setresuid(uid, uid, uid) }.into()).map(drop)
}

/// `prctl(PR_SET_DUMPABLE, value)`.
pub fn set_dumpable(value: bool) -> io::Result<()> {
    let v: libc::c_ulong = value.into();
    // SAFETY: PR_SET_DUMPABLE takes a plain integer argument.
    check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, v, 0, 0, 0) }.into()).map(drop)
}

/// `prctl(PR_GET_DUMPABLE)`.
pub fn get_dumpable() -> io::Result<i64> {
    // SAFETY: PR_GET_DUMPABLE takes no pointer arguments.
    check(unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) }.into())
}

/// `ptrace(PTRACE_ATTACH, pid)`.
pub fn ptrace_attach(pid: i32) -> io::Result<()> {
    // SAFETY: PTRACE_ATTACH ignores addr and data; no memory is passed.
    check(unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0usize, 0usize) }).map(drop)
}

/// `ptrace(PTRACE_DETACH, pid)`.
pub fn ptrace_detach(pid: i32) -> io::Result<()> {
    // SAFETY: PTRACE_DETACH with data 0 (no signal); no memory is passed.
    check(unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0usize, 0usize) }).map(drop)
}

/// `waitpid(pid, &status, __WALL)`: waits for the ptrace stop after attaching.
pub fn wait_stop(pid: i32) -> io::Result<i32> {
    let mut status = 0;
    // SAFETY: `status` is a valid, writable int for the duration of the call.
    check(unsafe { libc::waitpid(pid, &mut status, libc::__WALL) }.into()).map(|_| status)
}

/// `process_vm_readv(pid)` of `len` bytes at `addr` in the target into a fresh buffer.
pub fn process_vm_read(pid: i32, addr: usize, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: `local` describes `buf`, writable for `len` bytes; `remote` is only interpreted in
    // the target's address space by the kernel (which checks it); both iovecs outlive the call.
    let n =
        check(unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) } as libc::c_long)?;
    buf.truncate(usize::try_from(n).unwrap_or(0));
    Ok(buf)
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)` then `seccomp(SECCOMP_SET_MODE_FILTER)` with `prog`.
pub fn install_filter(prog: &[libc::sock_filter]) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }.into())?;
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `prog`, valid for `len` instructions during the call; the kernel
    // copies the program.
    check(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    })
    .map(drop)
}

/// `signal(SIGQUIT, SIG_DFL)`: a non-interactive shell starts background jobs with SIGQUIT
/// ignored, and an ignored disposition survives exec; the crash test needs the default (core).
pub fn default_sigquit() -> io::Result<()> {
    // SAFETY: installing SIG_DFL runs no handler code; plain integer arguments.
    let prev = unsafe { libc::signal(libc::SIGQUIT, libc::SIG_DFL) };
    if prev == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `kill(pid, SIGQUIT)`: the default action of SIGQUIT is to dump core.
pub fn sigquit(pid: i32) -> io::Result<()> {
    // SAFETY: kill takes plain integers.
    check(unsafe { libc::kill(pid, libc::SIGQUIT) }.into()).map(drop)
}

/// `write(2)` of `len` bytes starting at `addr` to `fd`: the kernel copies from our address space
/// and reports EFAULT for unreadable pages, so a guard page can be probed without faulting.
pub fn write_from(fd: std::os::fd::BorrowedFd<'_>, addr: usize, len: usize) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: the kernel validates the user range [addr, addr + len) and returns EFAULT instead
    // of faulting when it is not readable; no Rust reference to that memory is created.
    let n = unsafe { libc::write(fd.as_raw_fd(), addr as *const libc::c_void, len) };
    check(n as libc::c_long).map(|n| n as usize)
}

/// `sysconf(_SC_PAGESIZE)`.
pub fn page_size() -> usize {
    // SAFETY: sysconf takes no pointers.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).unwrap_or(4096)
}

/// Result of `fork(2)` in the caller.
pub enum Forked {
    Child,
    Parent(i32),
}

/// `fork(2)`. Only called from the single-threaded attacker; the child only reads memory and
/// calls `_exit`.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: the attacker is single-threaded when it forks (no locks can be held by another
    // thread), and the child restricts itself to reading memory and `_exit`.
    let pid = check(unsafe { libc::fork() }.into())?;
    Ok(if pid == 0 {
        Forked::Child
    } else {
        Forked::Parent(pid as i32)
    })
}

/// `_exit(code)`.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes an integer and never returns.
    unsafe { libc::_exit(code) }
}

/// `waitpid(pid, &status, 0)`, returning the exit code (or -signal).
pub fn wait_exit(pid: i32) -> io::Result<i32> {
    let mut status = 0;
    // SAFETY: `status` is a valid, writable int for the duration of the call.
    check(unsafe { libc::waitpid(pid, &mut status, 0) }.into())?;
    Ok(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    })
}

/// SIGALRM deliveries counted by [`install_counting_sigalrm`]'s handler.
pub static SIGALRM_COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

extern "C" fn count_sigalrm(_: libc::c_int) {
    // Atomic increment: async-signal-safe.
    SIGALRM_COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// `sigaction(SIGALRM)` with a counting handler and *without* `SA_RESTART`, so a blocking
/// `read(2)` interrupted by it fails with EINTR.
pub fn install_counting_sigalrm() -> io::Result<()> {
    // SAFETY: an all-zero sigaction is a valid value (empty mask, no flags) that we then fill in.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = count_sigalrm as extern "C" fn(libc::c_int) as libc::sighandler_t;
    sa.sa_flags = 0;
    // SAFETY: `sa` is a valid sigaction whose handler only performs an atomic increment; the old
    // action is not requested (NULL).
    check(unsafe { libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut()) }.into()).map(drop)
}

/// `pthread_sigmask` blocking or unblocking SIGALRM for the calling thread.
pub fn mask_sigalrm(block: bool) -> io::Result<()> {
    // SAFETY: an all-zero sigset_t is valid storage; sigemptyset/sigaddset initialise it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is valid, writable storage for a signal set.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGALRM);
    }
    let how = if block {
        libc::SIG_BLOCK
    } else {
        libc::SIG_UNBLOCK
    };
    // SAFETY: `set` is an initialised signal set; the old mask is not requested.
    let rc = unsafe { libc::pthread_sigmask(how, &set, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// `setitimer(ITIMER_REAL)` firing every `ms` milliseconds (0 stops it).
pub fn alarm_every(ms: i64) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: ms / 1000,
        tv_usec: (ms % 1000) * 1000,
    };
    let it = libc::itimerval {
        it_interval: tv,
        it_value: tv,
    };
    // SAFETY: `it` is a valid itimerval that outlives the call; the old value is not requested.
    check(unsafe { libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()) }.into()).map(drop)
}

/// One plain `read(2)` (the control for the EINTR test).
pub fn read_once(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `buf` is valid and writable for `buf.len()` bytes during the call.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    check(n as libc::c_long).map(|n| n as usize)
}
