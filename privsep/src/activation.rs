//! systemd socket activation (`sd_listen_fds(3)` protocol) as another way to receive listeners.
//!
//! - `LISTEN_FDS` unset: no activated listeners (not an error).
//! - `LISTEN_FDS` set but `LISTEN_PID` missing or naming another process: an error (the variables
//!   were meant for someone else, e.g. leaked from a parent; using those descriptors would be
//!   wrong).
//! - The variables (`LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES`) are removed after reading, so
//!   they are not passed on and descriptors cannot be claimed twice.
//! - Each descriptor (3, 4, ...) must be a listening stream socket: unix, or TCP on a loopback
//!   address (peers of other addresses cannot be identified). `FD_CLOEXEC` is set on each.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;

use crate::sys;

/// First descriptor passed by systemd.
pub const SD_LISTEN_FDS_START: i32 = 3;

/// An activated listener.
#[derive(Debug)]
pub enum ActivatedListener {
    /// A TCP listener on a loopback address.
    Tcp(TcpListener),
    /// A unix stream listener.
    Unix(UnixListener),
}

/// Errors receiving activated listeners.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// `LISTEN_FDS` is set but `LISTEN_PID` is missing.
    #[error("LISTEN_FDS is set but LISTEN_PID is not: refusing descriptors not meant for us")]
    MissingPid,
    /// `LISTEN_PID` names another process.
    #[error("LISTEN_PID={found} but this process is {ours}: the listeners are not meant for us")]
    WrongPid {
        /// The value found.
        found: String,
        /// Our pid.
        ours: u32,
    },
    /// A variable is not a valid number.
    #[error("{var}={value:?} is not a valid number")]
    BadValue {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// `/proc/self/task` could not be read.
    #[error("failed to count this process's threads (/proc/self/task): {source}")]
    ThreadCount {
        /// The error.
        source: io::Error,
    },
    /// Activation must happen while the process is single-threaded (environment changes).
    #[error("socket activation must be read before any thread starts ({threads} threads running)")]
    Threads {
        /// Threads found.
        threads: usize,
    },
    /// A passed descriptor is not open.
    #[error("LISTEN_FDS names descriptor {fd}, which is not open")]
    NotOpen {
        /// The descriptor.
        fd: i32,
    },
    /// A passed descriptor is not what we accept.
    #[error("activated descriptor {fd} refused: {reason}")]
    Unsupported {
        /// The descriptor.
        fd: i32,
        /// Why.
        reason: String,
    },
    /// A syscall on a passed descriptor failed.
    #[error("{call} on activated descriptor {fd} failed: {source}")]
    Syscall {
        /// The call.
        call: &'static str,
        /// The descriptor.
        fd: i32,
        /// The error.
        source: io::Error,
    },
}

/// Receives the listeners systemd passed, if any, and removes the activation variables.
///
/// Call at start-up while single-threaded (checked).
pub fn listeners_from_systemd() -> Result<Vec<ActivatedListener>, ActivationError> {
    let Some(fds) = std::env::var_os("LISTEN_FDS") else {
        return Ok(Vec::new());
    };
    let threads =
        codex_confine::thread_count().map_err(|source| ActivationError::ThreadCount { source })?;
    if threads != 1 {
        return Err(ActivationError::Threads { threads });
    }
    let pid = std::env::var_os("LISTEN_PID");
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        sys::remove_env_var(var);
    }
    let pid = pid.ok_or(ActivationError::MissingPid)?;
    let pid = pid.to_string_lossy().into_owned();
    let ours = std::process::id();
    if pid.parse::<u32>().ok() != Some(ours) {
        return Err(ActivationError::WrongPid { found: pid, ours });
    }
    let fds = fds.to_string_lossy().into_owned();
    let n: i32 =
        fds.parse()
            .ok()
            .filter(|n| (0..=1024).contains(n))
            .ok_or(ActivationError::BadValue {
                var: "LISTEN_FDS",
                value: fds.clone(),
            })?;
    // Check every descriptor is open before claiming any, so a bad count claims nothing.
    for fd in SD_LISTEN_FDS_START..SD_LISTEN_FDS_START + n {
        if !sys::fd_is_open(fd) {
            return Err(ActivationError::NotOpen { fd });
        }
    }
    let owned: Vec<(i32, OwnedFd)> = (SD_LISTEN_FDS_START..SD_LISTEN_FDS_START + n)
        .map(|fd| (fd, sys::claim_inherited_fd(fd)))
        .collect();
    let mut out = Vec::with_capacity(owned.len());
    for (fd, owned) in owned {
        out.push(classify(fd, owned)?);
    }
    Ok(out)
}

fn classify(fd: i32, owned: OwnedFd) -> Result<ActivatedListener, ActivationError> {
    let sc = |call: &'static str| move |source| ActivationError::Syscall { call, fd, source };
    sys::set_cloexec(owned.as_fd()).map_err(sc("fcntl(F_SETFD, FD_CLOEXEC)"))?;
    let (mode, _) = sys::fstat_mode_uid(owned.as_fd()).map_err(sc("fstat"))?;
    if mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(ActivationError::Unsupported {
            fd,
            reason: "not a socket".into(),
        });
    }
    let ty =
        sys::getsockopt_int(owned.as_fd(), libc::SO_TYPE).map_err(sc("getsockopt(SO_TYPE)"))?;
    if ty != libc::SOCK_STREAM {
        return Err(ActivationError::Unsupported {
            fd,
            reason: "not a stream socket".into(),
        });
    }
    let listening = sys::getsockopt_int(owned.as_fd(), libc::SO_ACCEPTCONN)
        .map_err(sc("getsockopt(SO_ACCEPTCONN)"))?;
    if listening != 1 {
        return Err(ActivationError::Unsupported {
            fd,
            reason: "not listening (use ListenStream=, Accept=no)".into(),
        });
    }
    let domain =
        sys::getsockopt_int(owned.as_fd(), libc::SO_DOMAIN).map_err(sc("getsockopt(SO_DOMAIN)"))?;
    match domain {
        libc::AF_UNIX => {
            let l = UnixListener::from(owned);
            // The same rule as a socket we bind ourselves: every directory above it must be
            // root's or ours and not replaceable by others, or a local user could swap the
            // socket (or its directory) and catch the clients (outside review F7).
            if let Some(path) = l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(std::path::Path::to_path_buf))
            {
                crate::unix_socket::check_activated_path(&path)
                    .map_err(|reason| ActivationError::Unsupported { fd, reason })?;
            }
            Ok(ActivatedListener::Unix(l))
        }
        libc::AF_INET | libc::AF_INET6 => {
            let l = TcpListener::from(owned);
            let addr = l.local_addr().map_err(sc("getsockname"))?;
            if !addr.ip().is_loopback() {
                return Err(ActivationError::Unsupported {
                    fd,
                    reason: format!(
                        "TCP listener on {addr} is not loopback: peers could not be identified"
                    ),
                });
            }
            Ok(ActivatedListener::Tcp(l))
        }
        other => Err(ActivationError::Unsupported {
            fd,
            reason: format!("address family {other} is not unix, inet or inet6"),
        }),
    }
}
