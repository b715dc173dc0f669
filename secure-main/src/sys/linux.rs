//! Linux-only calls: `prctl` for the dumpable and no_new_privs flags.

use std::io;

pub(crate) use libc::{MADV_DONTDUMP, MADV_DONTFORK, MADV_WIPEONFORK};

/// `prctl(PR_SET_DUMPABLE, value)`.
pub(crate) fn set_dumpable(value: bool) -> io::Result<()> {
    let v: libc::c_ulong = value.into();
    // SAFETY: PR_SET_DUMPABLE takes a plain integer argument; no pointers are passed.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, v, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `prctl(PR_GET_DUMPABLE)`: 0 (not dumpable), 1 (user) or 2 (root only, from fs.suid_dumpable).
pub(crate) fn get_dumpable() -> io::Result<i32> {
    // SAFETY: PR_GET_DUMPABLE takes no pointer arguments and returns the flag.
    let rc = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    if rc >= 0 {
        Ok(rc)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `prctl(PR_GET_SECCOMP)`: 0 (disabled) or 2 (filter). Works where /proc is out of reach
/// (Landlock); in strict mode (1) the call itself would kill the process, but nothing in the suite
/// uses strict mode.
pub(crate) fn get_seccomp_mode() -> io::Result<i32> {
    // SAFETY: PR_GET_SECCOMP takes no pointer arguments and returns the mode.
    let rc = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// `prctl(PR_GET_NO_NEW_PRIVS)`.
pub(crate) fn get_no_new_privs() -> io::Result<bool> {
    // SAFETY: PR_GET_NO_NEW_PRIVS takes no pointer arguments and returns the flag.
    let rc = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
    if rc >= 0 {
        Ok(rc == 1)
    } else {
        Err(io::Error::last_os_error())
    }
}
