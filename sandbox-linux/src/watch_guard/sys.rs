//! Raw calls of the watch guard.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, OwnedFd};

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
