//! Binding the proxy's unix socket safely.
//!
//! Rules, in the order they are checked:
//! 1. The path is absolute, ends in a file name and its parent directory exists.
//! 2. The parent directory is resolved to its real path (`canonicalize`: symlinks, `.`, `..`),
//!    and from then on the socket is handled at `REAL_PARENT/NAME`, so a symlink on the way cannot
//!    be swapped later. The real parent and EVERY directory above it up to `/` are examined with
//!    `lstat` and must be directories owned by root or by us, not writable by group or others
//!    unless they have the sticky bit (like `/tmp`). In a directory others can write without the
//!    sticky bit they could rename our socket away and put a symlink in its place between our
//!    `bind` and `chown`; in a directory above they could rename the whole subtree and put their
//!    own in its place (clients would then reach their server). We refuse instead of racing. In
//!    a sticky directory only the owner of an entry (root or us, checked one level down) can
//!    rename it.
//! 3. What is at the path is examined with `lstat` (never following a symlink):
//!    - nothing: bind;
//!    - a socket: `connect` to it; `ECONNREFUSED` means nobody listens (stale), and only then is
//!      it unlinked; if a server answers we refuse ("in use");
//!    - anything else (regular file, symlink, directory, fifo...): refused, left untouched.
//! 4. The socket is created with the requested mode already in place (umask set around `bind`,
//!    so there is no window with a wider mode), then the group is set with `lchown` (never
//!    follows a symlink), then both are verified with `lstat`.
//!
//! `bind` itself fails with `EADDRINUSE` if anything appears at the path meanwhile, so a racing
//! process can make us fail, never make us use its file.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use crate::sys;

/// Mode of the socket when `--socket-mode` is not given: owner and group (`--socket-group`, or
/// the owner's group) may connect. Widen explicitly; the allow-list applies in any case.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// What to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnixSocketSpec {
    /// Absolute path of the socket.
    pub path: PathBuf,
    /// Permission bits (`0o777` at most).
    pub mode: u32,
    /// Group to give the socket, if any.
    pub group: Option<u32>,
}

/// Errors binding a unix socket; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum UnixSocketError {
    /// Relative path given.
    #[error("unix socket path {0} is not absolute")]
    NotAbsolute(PathBuf),
    /// Mode has bits beyond `0o777`.
    #[error("invalid socket mode {0:#o}: only permission bits (at most 0777) are allowed")]
    BadMode(u32),
    /// The parent directory could not be examined.
    #[error("cannot examine socket directory {path}: {source}")]
    ParentStat {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The path ends in `..`, `.` or `/` instead of a file name.
    #[error("unix socket path {0} does not end in a file name")]
    NoFileName(PathBuf),
    /// The parent directory could not be resolved to its real path.
    #[error("cannot resolve socket directory {path}: canonicalize failed: {source}")]
    Canonicalize {
        /// The directory as given.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The parent directory is unsafe.
    #[error("refusing socket directory {path}: it is {reason}")]
    UnsafeParent {
        /// The directory (real path).
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A directory above the socket's directory is unsafe.
    #[error("refusing socket directory {socket_dir}: its ancestor {path} is {reason}")]
    UnsafeAncestor {
        /// The offending ancestor (real path).
        path: PathBuf,
        /// The socket's directory (real path).
        socket_dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// `lstat` of the socket path failed (other than ENOENT).
    #[error("cannot examine {path}: {source}")]
    Lstat {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Something that is not a socket is at the path; it was left untouched.
    #[error("refusing to replace {path}: it is a {kind}, not a socket (left untouched)")]
    NotASocket {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A server is listening on the existing socket.
    #[error("unix socket {path} is in use by a running server")]
    InUse {
        /// The path.
        path: PathBuf,
    },
    /// Probing the existing socket failed with something else than ECONNREFUSED.
    #[error("cannot tell whether {path} is stale: connect failed: {source}")]
    Probe {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Removing the stale socket failed.
    #[error("cannot remove stale socket {path}: {source}")]
    Unlink {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// `bind` failed.
    #[error("bind to unix socket {path} failed: {source}")]
    Bind {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// `lchown` failed.
    #[error("cannot set group {gid} on {path}: {source}")]
    Chown {
        /// The path.
        path: PathBuf,
        /// The group.
        gid: u32,
        /// The error.
        source: io::Error,
    },
    /// The bound socket does not have the requested mode/group afterwards.
    #[error("socket {path} does not have the requested permissions after bind: {detail}")]
    Verify {
        /// The path.
        path: PathBuf,
        /// What differs.
        detail: String,
    },
}

/// Parses a `--socket-mode` value: octal, with or without a leading `0`/`0o`.
pub fn parse_socket_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    let mode = u32::from_str_radix(digits, 8)
        .map_err(|_| format!("invalid socket mode {s:?}: expected octal like 0660"))?;
    if mode > 0o777 {
        return Err(format!(
            "invalid socket mode {s:?}: only permission bits (at most 0777) are allowed"
        ));
    }
    Ok(mode)
}

fn file_kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "symlink"
    } else if ft.is_file() {
        "regular file"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else {
        "non-socket file"
    }
}

/// Why `md` (from `lstat`) is not a safe directory on the socket's path, if it is not. The
/// reason always names the owner uid and the mode.
pub(crate) fn unsafe_dir_reason(md: &std::fs::Metadata, euid: u32) -> Option<String> {
    let mode = md.mode() & 0o7777;
    let uid = md.uid();
    if !md.is_dir() {
        return Some(format!(
            "a {} owned by uid {uid} with mode {mode:04o}, not a directory (changed while being checked)",
            file_kind(md.file_type())
        ));
    }
    if uid != 0 && uid != euid {
        return Some(format!(
            "owned by uid {uid} with mode {mode:04o}, not by root or by us (uid {euid})"
        ));
    }
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Some(format!(
            "owned by uid {uid} with mode {mode:04o}: group or others can replace entries (no sticky bit)"
        ));
    }
    None
}

/// Resolves the socket's directory to its real path and checks it and every directory above it
/// up to `/` (module rule 2). Returns the real path of the directory.
fn check_parent(dir: &Path) -> Result<PathBuf, UnixSocketError> {
    let real = std::fs::canonicalize(dir).map_err(|source| UnixSocketError::Canonicalize {
        path: dir.to_owned(),
        source,
    })?;
    let euid = crate::effective_uid();
    for (i, d) in real.ancestors().enumerate() {
        let md = std::fs::symlink_metadata(d).map_err(|source| UnixSocketError::ParentStat {
            path: d.to_owned(),
            source,
        })?;
        if let Some(reason) = unsafe_dir_reason(&md, euid) {
            return Err(if i == 0 {
                UnixSocketError::UnsafeParent {
                    path: real.clone(),
                    reason,
                }
            } else {
                UnixSocketError::UnsafeAncestor {
                    path: d.to_owned(),
                    socket_dir: real.clone(),
                    reason,
                }
            });
        }
    }
    Ok(real)
}

/// A listener systemd bound at `path`: its directory and every one above must pass the checks
/// of [`bind_unix_listener`] (module rule 2). The reason names the path.
pub(crate) fn check_activated_path(path: &Path) -> Result<(), String> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    check_parent(parent)
        .map(drop)
        .map_err(|e| format!("unix socket {}: {e}", path.display()))
}

/// Binds a listening unix socket per the module rules. Sets the process umask briefly: call at
/// start-up, before other threads create files.
pub fn bind_unix_listener(spec: &UnixSocketSpec) -> Result<UnixListener, UnixSocketError> {
    let path = &spec.path;
    if !path.is_absolute() {
        return Err(UnixSocketError::NotAbsolute(path.clone()));
    }
    if spec.mode > 0o777 {
        return Err(UnixSocketError::BadMode(spec.mode));
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(UnixSocketError::NoFileName(path.clone()));
    };
    // From here on the socket lives at the real path whose every directory was checked.
    let path = &check_parent(parent)?.join(name);

    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(UnixSocketError::Lstat {
                path: path.to_path_buf(),
                source,
            });
        }
        Ok(md) if md.file_type().is_socket() => match UnixStream::connect(path) {
            Ok(_) => {
                return Err(UnixSocketError::InUse {
                    path: path.to_path_buf(),
                });
            }
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                std::fs::remove_file(path).map_err(|source| UnixSocketError::Unlink {
                    path: path.to_path_buf(),
                    source,
                })?;
            }
            Err(source) => {
                return Err(UnixSocketError::Probe {
                    path: path.to_path_buf(),
                    source,
                });
            }
        },
        Ok(md) => {
            return Err(UnixSocketError::NotASocket {
                path: path.to_path_buf(),
                kind: file_kind(md.file_type()),
            });
        }
    }

    let old = sys::umask(0o777 & !spec.mode);
    let bound = UnixListener::bind(path);
    sys::umask(old);
    let listener = bound.map_err(|source| UnixSocketError::Bind {
        path: path.to_path_buf(),
        source,
    })?;

    if let Some(gid) = spec.group {
        std::os::unix::fs::lchown(path, None, Some(gid)).map_err(|source| {
            UnixSocketError::Chown {
                path: path.to_path_buf(),
                gid,
                source,
            }
        })?;
    }
    let md = std::fs::symlink_metadata(path).map_err(|source| UnixSocketError::Lstat {
        path: path.to_path_buf(),
        source,
    })?;
    if !md.file_type().is_socket() {
        return Err(UnixSocketError::Verify {
            path: path.to_path_buf(),
            detail: format!("it is now a {}", file_kind(md.file_type())),
        });
    }
    if md.mode() & 0o7777 != spec.mode {
        return Err(UnixSocketError::Verify {
            path: path.to_path_buf(),
            detail: format!("mode {:04o}, wanted {:04o}", md.mode() & 0o7777, spec.mode),
        });
    }
    if let Some(gid) = spec.group {
        if md.gid() != gid {
            return Err(UnixSocketError::Verify {
                path: path.to_path_buf(),
                detail: format!("group {}, wanted {gid}", md.gid()),
            });
        }
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_parsing() {
        assert_eq!(parse_socket_mode("0660").unwrap(), 0o660);
        assert_eq!(parse_socket_mode("660").unwrap(), 0o660);
        assert_eq!(parse_socket_mode("0o600").unwrap(), 0o600);
        assert!(
            parse_socket_mode("4777")
                .unwrap_err()
                .contains("at most 0777")
        );
        assert!(parse_socket_mode("rw").unwrap_err().contains("octal"));
        assert!(parse_socket_mode("0999").is_err());
    }

    #[test]
    fn relative_path_refused() {
        let e = bind_unix_listener(&UnixSocketSpec {
            path: "x.sock".into(),
            mode: 0o600,
            group: None,
        })
        .unwrap_err();
        assert!(matches!(e, UnixSocketError::NotAbsolute(_)));
    }

    #[test]
    fn path_without_file_name_refused() {
        for p in ["/", "/tmp/.."] {
            let e = bind_unix_listener(&UnixSocketSpec {
                path: p.into(),
                mode: 0o600,
                group: None,
            })
            .unwrap_err();
            assert!(matches!(e, UnixSocketError::NoFileName(_)), "{p}: {e}");
        }
    }
}
