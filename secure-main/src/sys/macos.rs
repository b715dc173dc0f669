//! macOS-only calls: `ptrace(PT_DENY_ATTACH)` and the `environ` accessor.
//!
//! This file has never been compiled or run in this project's CI (no Apple target installed);
//! it is kept small on purpose.

use std::io;

/// `ptrace(PT_DENY_ATTACH, 0, NULL, 0)`: later attach attempts by debuggers fail, and the process
/// is killed if it is already being traced.
pub(crate) fn ptrace_deny_attach() -> io::Result<()> {
    // SAFETY: PT_DENY_ATTACH ignores pid, addr and data; no memory is passed to the kernel.
    let rc = unsafe { libc::ptrace(libc::PT_DENY_ATTACH, 0, std::ptr::null_mut(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub(crate) fn environ_ptr() -> *mut *mut libc::c_char {
    // SAFETY: _NSGetEnviron returns a valid pointer to the process's `environ` variable; reading
    // it is how Apple's libc gives executables and dylibs alike access to the environment.
    unsafe { *libc::_NSGetEnviron() }
}
