//! The crate's only unsafe code: single libc calls wrapped in safe functions.

/// The effective user id of this process (`geteuid(2)`, which cannot fail).
pub fn geteuid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory and always succeeds (POSIX).
    unsafe { libc::geteuid() }
}
