//! The descriptor limit (`RLIMIT_NOFILE`): raised from its soft to its hard value at start-up,
//! before the privilege drop, so that the proxy's connection cap can be derived from what the
//! kernel will really allow (outside review round 5, F3: with systemd's default `1024:524288`
//! the soft limit equalled the old fixed cap of 1024, `accept4` failed with `EMFILE` before the
//! cap was reached, and the eviction of idle connections never ran).
//!
//! Raising the soft limit up to the hard one needs no privilege. A hard limit of
//! `RLIM_INFINITY` is not a valid `RLIMIT_NOFILE` value (the kernel refuses anything above
//! `fs.nr_open`), so the target is then `fs.nr_open` (`/proc/sys/fs/nr_open`, 1048576 unless
//! changed).

use crate::sys;

/// The limit before and after [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit found at start.
    pub was_soft: u64,
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit (unchanged).
    pub hard: u64,
}

/// Reading or raising the limit failed.
#[derive(Debug, thiserror::Error)]
pub enum NofileError {
    /// `getrlimit(RLIMIT_NOFILE)` failed.
    #[error("failed to read the descriptor limit (getrlimit RLIMIT_NOFILE): {source}")]
    Get {
        /// The error.
        source: std::io::Error,
    },
    /// `setrlimit(RLIMIT_NOFILE)` failed.
    #[error(
        "failed to raise the descriptor limit from {from} to {to} (setrlimit RLIMIT_NOFILE): {source}"
    )]
    Set {
        /// The soft limit found.
        from: u64,
        /// The soft limit asked for.
        to: u64,
        /// The error.
        source: std::io::Error,
    },
}

/// `fs.nr_open`, the largest `RLIMIT_NOFILE` the kernel accepts (1048576 if unreadable).
fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
}

/// Raises the soft descriptor limit to the hard one (capped at `fs.nr_open`); returns the limits.
pub fn raise_nofile_limit() -> Result<NofileLimit, NofileError> {
    let (was_soft, hard) = sys::get_nofile_limit().map_err(|source| NofileError::Get { source })?;
    let target = if hard == libc::RLIM_INFINITY {
        nr_open()
    } else {
        hard
    };
    if target <= was_soft {
        return Ok(NofileLimit {
            was_soft,
            soft: was_soft,
            hard,
        });
    }
    sys::set_nofile_limit(target, hard).map_err(|source| NofileError::Set {
        from: was_soft,
        to: target,
        source,
    })?;
    Ok(NofileLimit {
        was_soft,
        soft: target,
        hard,
    })
}
