//! The one raw call of this crate (macOS only).

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// `confstr(_CS_DARWIN_USER_CACHE_DIR)`: the per-user cache directory under `/private/var/folders`.
pub fn darwin_user_cache_dir() -> io::Result<PathBuf> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: `buf` is an owned, initialised allocation of `buf.len()` bytes, and confstr writes
    // at most `len` bytes (including the terminating NUL) into it.
    let n = unsafe {
        libc::confstr(
            libc::_CS_DARWIN_USER_CACHE_DIR,
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n == 0 {
        return Err(io::Error::last_os_error());
    }
    if n > buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "confstr result longer than PATH_MAX",
        ));
    }
    // `n` counts the terminating NUL.
    buf.truncate(n - 1);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}
