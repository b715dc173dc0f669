//! The crate's only unsafe code: single libc calls wrapped in safe functions.

/// The effective user id of this process (`geteuid(2)`, which cannot fail).
pub fn geteuid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory and is always successful (POSIX).
    unsafe { libc::geteuid() }
}

/// `flock(fd, LOCK_EX | LOCK_NB)`: `Ok(true)` when taken, `Ok(false)` when another open file
/// description holds it (`EWOULDBLOCK`).
pub fn try_flock_exclusive(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: `fd` is a valid open descriptor for the duration of the borrow; flock only
        // reads the integer arguments and touches no memory of ours.
        let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) => return Ok(false),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}
