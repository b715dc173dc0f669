//! The confinement system calls. Each function makes exactly one call and returns `io::Result`;
//! every `unsafe` block names its invariant. Nothing here decides policy.

use std::io;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`: execve can no longer grant privileges (setuid, file
/// capabilities); required before an unprivileged process may install seccomp filters or
/// Landlock rulesets.
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only; no memory is passed.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).map(drop)
}

/// `prctl(PR_GET_NO_NEW_PRIVS)`.
pub fn no_new_privs() -> io::Result<bool> {
    // SAFETY: PR_GET_NO_NEW_PRIVS takes integer arguments only; the flag is the return value.
    check(unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) }).map(|v| v == 1)
}

/// `prctl(PR_GET_SECCOMP)`: the calling thread's mode (0 none, 2 filter); `EINVAL` when the
/// kernel has no seccomp.
pub fn seccomp_mode() -> io::Result<i32> {
    // SAFETY: PR_GET_SECCOMP takes no pointer arguments; the mode is the return value.
    check(unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) })
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, prog)`: installs `prog` on every
/// thread of the process. A positive return (a thread that could not be synchronised) is an
/// error naming that thread.
pub fn seccomp_install_tsync(prog: &[libc::sock_filter]) -> io::Result<()> {
    let len = u16::try_from(prog.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `prog`, `len` instructions that stay borrowed for the call; the
    // kernel copies the program and never writes through the pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &fprog as *const libc::sock_fprog,
        )
    };
    match ret {
        0 => Ok(()),
        -1 => Err(io::Error::last_os_error()),
        tid => Err(io::Error::other(format!(
            "thread {tid} could not be synchronised (SECCOMP_FILTER_FLAG_TSYNC)"
        ))),
    }
}

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`: the kernel's Landlock
/// ABI version, or `ENOSYS` (not built) / `EOPNOTSUPP` (built, not enabled at boot).
pub fn landlock_abi_version() -> io::Result<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with the VERSION flag the kernel requires attr == NULL and size == 0 and reads no
    // memory; it returns the ABI version or -1 with errno, creating no descriptor.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i32::try_from(ret).unwrap_or(i32::MAX))
}

/// `*const T` → `&'static T` for the reporter pointer (null → `None`).
pub fn static_ref<T>(p: *mut T) -> Option<&'static T> {
    // SAFETY: the only non-null value ever stored (seccomp::install_reporter) comes from a
    // `&'static T`; it is never freed nor written through.
    unsafe { p.cast_const().as_ref() }
}

/// The offsets of `_sigsys._syscall` and `._arch` in `siginfo_t` on 64-bit Linux: the union
/// starts after three `int`s padded to 16 bytes; `_sigsys` is `{ void *_call_addr; int _syscall;
/// unsigned int _arch; }` (include/uapi/asm-generic/siginfo.h).
const SI_SYSCALL_OFFSET: usize = 16 + 8;
const SI_ARCH_OFFSET: usize = 16 + 8 + 4;
/// `si_code` of a SIGSYS sent by seccomp's `SECCOMP_RET_TRAP`.
const SYS_SECCOMP: libc::c_int = 1;

/// The SIGSYS handler: one line on fd 2 (see `seccomp::Reporter`), then `_exit`. Only `write`
/// and `exit_group`; no allocation, no lock.
extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let (seccomp, nr, arch) = if info.is_null() {
        (false, -1, 0)
    } else {
        // SAFETY: the kernel passes a valid siginfo_t for an SA_SIGINFO handler; for SIGSYS
        // with si_code SYS_SECCOMP the `_sigsys` member is the live one (offsets above); reads
        // are unaligned-safe and within the 128-byte siginfo_t.
        unsafe {
            let base = info.cast::<u8>().cast_const();
            (
                (*info).si_code == SYS_SECCOMP,
                base.add(SI_SYSCALL_OFFSET).cast::<i32>().read_unaligned(),
                base.add(SI_ARCH_OFFSET).cast::<u32>().read_unaligned(),
            )
        }
    };
    let mut buf = [0u8; 1024];
    let (len, code) = crate::seccomp::refusal(&mut buf, seccomp, nr, arch);
    let mut done = 0;
    while done < len {
        // SAFETY: `buf[done..len]` is a live stack buffer; fd 2 may be closed (EBADF: stop).
        let n = unsafe { libc::write(2, buf[done..len].as_ptr().cast(), len - done) };
        if n <= 0 {
            break;
        }
        done += n as usize;
    }
    // SAFETY: _exit takes an integer and does not return; no destructors or atexit handlers
    // run (none is async-signal-safe).
    unsafe { libc::_exit(code) }
}

/// `sigaction(SIGSYS, on_sigsys, SA_SIGINFO)` with every other signal blocked while it runs.
pub fn install_sigsys_handler() -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value that is filled below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = on_sigsys
        as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
        as libc::sighandler_t;
    sa.sa_flags = libc::SA_SIGINFO;
    // SAFETY: `sa.sa_mask` is a live sigset_t owned here.
    check(unsafe { libc::sigfillset(&mut sa.sa_mask) })?;
    // SAFETY: `sa` is fully initialised; the old action is not requested (null).
    check(unsafe { libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) }).map(drop)
}
