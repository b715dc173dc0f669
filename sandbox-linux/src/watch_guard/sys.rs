//! Raw calls of the watch guard.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};

/// Is `file` on procfs (`fstatfs`)? Unknown: yes (refused).
pub fn is_procfs(file: &OwnedFd) -> bool {
    // SAFETY: an all-zero statfs is valid storage for the call to fill.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `file` is a live descriptor; `st` is writable storage of the right type.
    let r = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) };
    // (`f_type`'s C type differs between C libraries and architectures)
    #[allow(clippy::unnecessary_cast)]
    let procfs = st.f_type as i64 == libc::PROC_SUPER_MAGIC as i64;
    r != 0 || procfs
}

/// `inotify_add_watch(instance, path, mask)`: the watch descriptor or the errno.
pub fn inotify_add_watch(instance: &OwnedFd, path: &CStr, mask: u32) -> Result<i64, i32> {
    // SAFETY: `instance` is a live descriptor owned by the caller; `path` is NUL-terminated
    // and outlives the call; the mask is an integer.
    let r = unsafe { libc::inotify_add_watch(instance.as_raw_fd(), path.as_ptr(), mask) };
    if r < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EACCES))
    } else {
        Ok(i64::from(r))
    }
}
