//! The raw syscalls of the attacker helper, each wrapped in a safe function that makes exactly
//! one call and returns `io::Result`. The only `unsafe` code in this crate.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `ptrace(PTRACE_ATTACH, pid)`.
pub fn ptrace_attach(pid: libc::pid_t) -> io::Result<()> {
    // SAFETY: PTRACE_ATTACH takes no pointer arguments (addr and data are ignored, passed null).
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_ATTACH,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    check(ret).map(drop)
}

/// `ptrace(PTRACE_SEIZE, pid)` with no options.
pub fn ptrace_seize(pid: libc::pid_t) -> io::Result<()> {
    // SAFETY: PTRACE_SEIZE reads no memory: addr must be 0 and data (the options) is 0.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_SEIZE,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    check(ret).map(drop)
}

/// `ptrace(PTRACE_INTERRUPT, pid)` (a seized tracee stops).
pub fn ptrace_interrupt(pid: libc::pid_t) -> io::Result<()> {
    // SAFETY: PTRACE_INTERRUPT takes no pointer arguments.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_INTERRUPT,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    check(ret).map(drop)
}

/// `ptrace(PTRACE_DETACH, pid, 0, 0)`: resumes the tracee without a signal.
pub fn ptrace_detach(pid: libc::pid_t) -> io::Result<()> {
    // SAFETY: PTRACE_DETACH with data 0 takes no pointer arguments.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_DETACH,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    check(ret).map(drop)
}

/// `ptrace(PTRACE_SINGLESTEP, pid, 0, 0)`.
pub fn ptrace_singlestep(pid: libc::pid_t) -> io::Result<()> {
    // SAFETY: PTRACE_SINGLESTEP with data 0 takes no pointer arguments.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_SINGLESTEP,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    check(ret).map(drop)
}

/// `ptrace(PTRACE_PEEKDATA, pid, addr)`: one word of the stopped tracee's memory.
pub fn ptrace_peekdata(pid: libc::pid_t, addr: u64) -> io::Result<u64> {
    // SAFETY: errno is thread-local; clearing it lets a -1 word be told apart from an error.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: PEEKDATA reads the tracee's memory at `addr` (checked by the kernel) and returns
    // the word; no memory of ours is written.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_PEEKDATA,
            pid,
            addr as *mut libc::c_void,
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    let e = io::Error::last_os_error();
    if ret == -1 && e.raw_os_error().unwrap_or(0) != 0 {
        return Err(e);
    }
    Ok(ret as u64)
}

/// `ptrace(PTRACE_POKEDATA, pid, addr, word)`.
pub fn ptrace_pokedata(pid: libc::pid_t, addr: u64, word: u64) -> io::Result<()> {
    // SAFETY: POKEDATA writes `word` (passed by value) into the tracee at `addr`, checked by the
    // kernel; no memory of ours is read or written.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_POKEDATA,
            pid,
            addr as *mut libc::c_void,
            word as *mut libc::c_void,
        )
    };
    check(ret).map(drop)
}

/// The registers of a stopped tracee (x86_64).
#[cfg(target_arch = "x86_64")]
pub type Regs = libc::user_regs_struct;

/// `ptrace(PTRACE_GETREGS, pid)`.
#[cfg(target_arch = "x86_64")]
pub fn ptrace_getregs(pid: libc::pid_t) -> io::Result<Regs> {
    // SAFETY: user_regs_struct is plain integers; all-zero is a valid value.
    let mut regs: Regs = unsafe { std::mem::zeroed() };
    // SAFETY: GETREGS writes exactly one user_regs_struct to `data`, which points to `regs`,
    // valid and exclusively borrowed for the call.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGS,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            &mut regs as *mut Regs as *mut libc::c_void,
        )
    };
    check(ret).map(|_| regs)
}

/// `ptrace(PTRACE_SETREGS, pid)`.
#[cfg(target_arch = "x86_64")]
pub fn ptrace_setregs(pid: libc::pid_t, regs: &Regs) -> io::Result<()> {
    // SAFETY: SETREGS reads exactly one user_regs_struct from `data`, which points to `regs`,
    // valid for the call.
    let ret = unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGS,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            regs as *const Regs as *mut libc::c_void,
        )
    };
    check(ret).map(drop)
}

/// `waitpid(pid, &status, __WALL)`: the raw wait status.
pub fn waitpid_all(pid: libc::pid_t) -> io::Result<i32> {
    let mut status = 0;
    // SAFETY: `status` is a valid, exclusively borrowed int for the call.
    let ret = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
    check(ret as libc::c_long).map(|_| status)
}

/// `process_vm_readv(pid, [buf], [addr, len])`: up to `len` bytes of another process's memory.
pub fn process_vm_readv(pid: libc::pid_t, addr: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: `local` describes `buf`, valid for `len` writable bytes for the call; `remote` is
    // only interpreted by the kernel in the other process's address space (checked there).
    let ret = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    let n = check(ret as libc::c_long)?;
    buf.truncate(n as usize);
    Ok(buf)
}

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes no pointers; a non-negative return is a new fd we own.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = check(ret)?;
    // SAFETY: `fd` was just returned by pidfd_open and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_getfd(pidfd, targetfd, 0)`: a duplicate of another process's descriptor.
pub fn pidfd_getfd(pidfd: &OwnedFd, target_fd: RawFd) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    // SAFETY: takes no pointers; `pidfd` is an open pidfd borrowed for the call; a non-negative
    // return is a new fd we own.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target_fd, 0) };
    let fd = check(ret)?;
    // SAFETY: `fd` was just returned by pidfd_getfd and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `kill(pid, sig)`.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes no pointers.
    let ret = unsafe { libc::kill(pid, sig) };
    check(ret as libc::c_long).map(drop)
}

/// Who a spawned child runs as: uid, primary gid and the supplementary groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Makes `cmd` drop to `id` in the child before `exec`: `setgroups(id.groups)`, then
/// `setresgid(gid)`, then `setresuid(uid)` (irreversible: all three ids). The caller must be root.
///
/// Used instead of `CommandExt::uid`/`gid` because std sets supplementary groups only through the
/// unstable `groups()`; without it the child would lose the groups that make user A a member.
pub fn run_as(cmd: &mut std::process::Command, id: &Identity) {
    use std::os::unix::process::CommandExt;
    let groups: Vec<libc::gid_t> = id.groups.clone();
    let (uid, gid) = (id.uid, id.gid);
    let drop_ids = move || -> io::Result<()> {
        // SAFETY: `groups` is owned by this closure and valid for `groups.len()` gids; setgroups
        // only reads them. Between fork and exec only raw syscalls run here (async-signal-safe,
        // no allocation: `last_os_error` builds an `Os` variant without allocating).
        if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: setresgid takes no pointers.
        if unsafe { libc::setresgid(gid, gid, gid) } == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: setresuid takes no pointers.
        if unsafe { libc::setresuid(uid, uid, uid) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure runs in the forked child before exec and only makes the three raw
    // syscalls above, which are async-signal-safe and touch no lock or allocator.
    unsafe { cmd.pre_exec(drop_ids) };
}
