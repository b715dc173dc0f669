//! The private mount namespace for read-only carve-outs (`.git`, the gitdir a `.git` file points
//! to, `.codex`) inside writable roots.
//!
//! Landlock cannot take rights away below a rule, so a writable root's `.git` would be writable.
//! Without privileges the only way to carve a read-only hole is a mount: the launcher clones the
//! child into new user, mount, pid and IPC namespaces (root with CAP_SYS_ADMIN needs no user
//! namespace); the child maps its own uid and gid, makes `/` private (nothing propagates back),
//! makes every mount read-only except the writable roots ([`crate::metadata`]: file metadata),
//! then binds each carve-out onto itself and sets it read-only recursively with
//! `mount_setattr`. Landlock (no mount topology changes for confined processes) and seccomp
//! (`mount`, `umount2`, `move_mount`, ... refused) keep the command from undoing it.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::sys;

/// Errors while setting up the namespace.
#[derive(Debug, thiserror::Error)]
pub enum MountNsError {
    #[error(
        "failed to make the sandbox child dumpable (prctl PR_SET_DUMPABLE) to write its id maps: {source}"
    )]
    Dumpable {
        #[source]
        source: io::Error,
    },
    #[error("failed to write {path}: {source}")]
    WriteProc {
        path: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("failed to make / a private mount (mount MS_REC|MS_PRIVATE): {source}")]
    MakePrivate {
        #[source]
        source: io::Error,
    },
    #[error("failed to bind-mount {path} onto itself: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to make {path} read-only (mount_setattr MOUNT_ATTR_RDONLY): {source}")]
    ReadOnly {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "failed to copy the mount tree of writable root {path} (open_tree OPEN_TREE_CLONE): {source}"
    )]
    OpenTree {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "failed to make every mount read-only (mount_setattr / MOUNT_ATTR_RDONLY AT_RECURSIVE): {source}"
    )]
    ReadOnlyAll {
        #[source]
        source: io::Error,
    },
    #[error("failed to put writable root {path} back as a writable mount (move_mount): {source}")]
    MoveMount {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to re-enter the working directory after mounting (getcwd/chdir): {source}")]
    Chdir {
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is no longer the directory or file the launcher resolved (swapped for a link or \
         moved since): refusing to mount it"
    )]
    Replaced { path: PathBuf },
    #[error("path contains a NUL byte: {path}")]
    Nul { path: PathBuf },
}

fn cstr(path: &Path) -> Result<CString, MountNsError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| MountNsError::Nul {
        path: path.to_path_buf(),
    })
}

fn write_proc(path: &'static str, content: &str) -> Result<(), MountNsError> {
    std::fs::write(path, content).map_err(|source| MountNsError::WriteProc { path, source })
}

/// The namespaces the sandbox's first process was cloned into (`launch.rs` creates them with
/// `clone`, so that the process is pid 1 of its pid namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entered {
    /// A new user namespace (false: root with `CAP_SYS_ADMIN` created the others without one).
    pub user: bool,
    /// The real uid and gid before the clone. Inside a fresh user namespace with no map yet,
    /// `getuid()` answers the overflow id (65534), so the map must be written from these.
    pub outer_ids: (u32, u32),
}

/// A path the mount namespace may bind, as the launcher resolved it (issue 12 item 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approved {
    pub path: PathBuf,
    /// `(st_dev, st_ino)` of what the launcher reached.
    pub id: (u64, u64),
    /// The innermost writable root at or above `path` whose descriptor `path` was reached from
    /// (r21 F2: one walk for a root and its carve-outs). `None`: walked from `/` (a path outside
    /// every root, or no descriptor for its root).
    pub anchor: Option<PathBuf>,
}

/// What [`set_up`] did besides the read-only mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// A procfs of the new pid namespace covers `/proc` (false: the host's stays, so pids in
    /// `/proc` are the host's; set-up continues).
    pub own_proc: bool,
}

/// In the freshly cloned namespaces (single-threaded caller): map our uid/gid (new user
/// namespace), make `/` private, mount a procfs of the new pid namespace, make every mount
/// read-only except `roots` ([`crate::metadata::read_only_outside`]), then bind `pins` (outermost first, unchanged)
/// and the read-only `paths` (carve-outs and deny-read paths inside the roots).
///
/// A pin is a mount point, which cannot be renamed or removed (`EBUSY`), so a directory between
/// an outer writable root and a carve-out cannot be moved away and replaced by a fresh, writable
/// `.git`. Afterwards the working directory is entered again by path, so that relative paths
/// resolve through the new mounts rather than the covered directories below them.
///
/// `approved` holds the identity (`st_dev`, `st_ino`) the launcher resolved for the roots, the
/// carve-outs, the deny-read paths inside the roots and the directories between them (its
/// descriptors belong to its own mount namespace, which mount calls here cannot use): each of
/// these paths is opened here once, compared, and mounted through that descriptor (issue 12
/// item 8). A path with an anchor (a root at or above it) is reached from the descriptor of
/// that root's re-attached mount, one component at a time without following links, never by
/// its path from `/` (r21 F2: a directory exchanged with another between two walks gave a root
/// from one and a carve-out from the other); the launcher reached it the same way from the
/// root's walked descriptor. A path without one (an alias at another mount point) is opened
/// here by path, unchecked.
///
/// After a failure the process is in the new namespaces with some mounts changed: exit.
pub fn set_up(
    entered: Entered,
    roots: &[PathBuf],
    approved: &[Approved],
    pins: &[PathBuf],
    paths: &[PathBuf],
) -> Result<Outcome, MountNsError> {
    if entered.user {
        let (uid, gid) = entered.outer_ids;
        sys::set_dumpable().map_err(|source| MountNsError::Dumpable { source })?;
        write_proc("/proc/self/uid_map", &format!("{uid} {uid} 1\n"))?;
        write_proc("/proc/self/setgroups", "deny\n")?;
        write_proc("/proc/self/gid_map", &format!("{gid} {gid} 1\n"))?;
    }
    // The directory the launcher approved and the process is in (an inode it holds: a rename
    // cannot change it); the re-entry by path below must land on the same one.
    let cwd_id = cwd_identity().map_err(|source| MountNsError::Chdir { source })?;
    sys::mount(None, c"/", libc::MS_REC | libc::MS_PRIVATE)
        .map_err(|source| MountNsError::MakePrivate { source })?;
    // Before the read-only pass, so the new procfs is read-only too.
    let own_proc = sys::mount_proc().is_ok();
    let trees = crate::metadata::read_only_outside(roots, approved)?;
    #[cfg(debug_assertions)]
    crate::launch::test_pause(crate::launch::TEST_PAUSE_CARVE_OUTS_VAR);
    // `p` reached from its anchor: the re-attached mount of the outermost root above the anchor
    // (or `/` when a root is `/`), down to the anchor (checked), then down to `p`
    let from_anchor = |p: &PathBuf,
                       anchor: &PathBuf|
     -> Result<Option<std::os::fd::OwnedFd>, MountNsError> {
        use std::os::fd::AsFd;
        let replaced = || MountNsError::Replaced { path: p.clone() };
        let bind = |source| MountNsError::Bind {
            path: p.clone(),
            source,
        };
        let slash;
        let (top, top_fd) = match trees.iter().find(|(k, _)| anchor.starts_with(k)) {
            Some((k, fd)) => (k.as_path(), fd.as_fd()),
            None if roots.iter().any(|r| r == Path::new("/")) => {
                slash = sys::open_path_follow(None, c"/").map_err(bind)?;
                (Path::new("/"), slash.as_fd())
            }
            None => return Err(replaced()),
        };
        let rel = anchor.strip_prefix(top).map_err(|_| replaced())?;
        let (anchor_fd, st) = crate::resolve::open_beneath(top_fd, rel).map_err(|_| replaced())?;
        match approved.iter().find(|a| a.path == *anchor) {
            Some(a) if a.id == (st.st_dev, st.st_ino) => {}
            _ => return Err(replaced()),
        }
        let rel = p.strip_prefix(anchor).map_err(|_| replaced())?;
        match crate::resolve::open_beneath(anchor_fd.as_fd(), rel) {
            Ok((fd, _)) => Ok(Some(fd)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(_) => Err(replaced()),
        }
    };
    // Bind `p` onto itself (recursively), read-only when asked; the error names `p`. `p` is
    // opened once, checked against the launcher's identity for it when there is one (a swap
    // since is refused), and copied and attached through that descriptor (issue 12 item 8).
    let bind_self = |p: &PathBuf, read_only: bool| {
        use std::os::fd::AsFd;
        let c = cstr(p)?;
        let bind = |source| MountNsError::Bind {
            path: p.clone(),
            source,
        };
        let approved_p = approved.iter().find(|a| a.path == *p);
        let fd = match approved_p.and_then(|a| a.anchor.as_ref()) {
            Some(anchor) => match from_anchor(p, anchor)? {
                Some(fd) => fd,
                None => return Err(MountNsError::Replaced { path: p.clone() }),
            },
            None => sys::open_path_follow(None, &c).map_err(bind)?,
        };
        let st = sys::fstat(fd.as_fd()).map_err(bind)?;
        if let Some(a) = approved_p {
            if a.id != (st.st_dev, st.st_ino) {
                return Err(MountNsError::Replaced { path: p.clone() });
            }
        }
        let tree = sys::open_tree_clone_fd(fd.as_fd()).map_err(bind)?;
        if read_only {
            sys::mount_set_readonly_recursive_fd(tree.as_fd()).map_err(|source| {
                MountNsError::ReadOnly {
                    path: p.clone(),
                    source,
                }
            })?;
        }
        sys::move_mount_onto_fd(tree.as_fd(), fd.as_fd()).map_err(bind)?;
        Ok::<_, MountNsError>(())
    };
    for p in pins {
        bind_self(p, false)?;
    }
    for p in paths {
        bind_self(p, true)?;
    }
    let cwd = std::env::current_dir().map_err(|source| MountNsError::Chdir { source })?;
    std::env::set_current_dir(&cwd).map_err(|source| MountNsError::Chdir { source })?;
    // A concurrent process of the user may have exchanged the directory at that path with
    // another between `getcwd` and `chdir` (outside review r21 F2: `renameat2(RENAME_EXCHANGE)`
    // in a loop put the command in another directory 13 times in 150): refused, not run.
    if cwd_identity().map_err(|source| MountNsError::Chdir { source })? != cwd_id {
        return Err(MountNsError::Replaced { path: cwd });
    }
    Ok(Outcome { own_proc })
}

/// `(st_dev, st_ino)` of the working directory (bind mounts of a directory keep both).
fn cwd_identity() -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(".")?;
    Ok((m.dev(), m.ino()))
}

/// The directories to pin for `carve_outs` inside `roots`: for each carve-out strictly inside a
/// writable root, every directory below that root down to the carve-out's parent, outermost
/// first.
pub fn pins_for(roots: &[PathBuf], carve_outs: &[PathBuf]) -> Vec<PathBuf> {
    let mut pins: Vec<PathBuf> = Vec::new();
    for c in carve_outs {
        for r in roots {
            if !c.starts_with(r) || c == r {
                continue;
            }
            let mut p = c.clone();
            while p.pop() && p.starts_with(r) && p != *r {
                if !pins.contains(&p) {
                    pins.push(p.clone());
                }
            }
        }
    }
    pins.sort_by_key(|p| p.components().count());
    pins
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_cover_every_directory_between_an_outer_root_and_a_carve_out() {
        let roots = vec![PathBuf::from("/t"), PathBuf::from("/t/a/ws")];
        let carve = vec![PathBuf::from("/t/a/ws/.git"), PathBuf::from("/u/x/.git")];
        assert_eq!(
            pins_for(&roots, &carve),
            vec![PathBuf::from("/t/a"), PathBuf::from("/t/a/ws")]
        );
        // a carve-out directly in its only root needs no pin
        assert!(pins_for(&[PathBuf::from("/w")], &[PathBuf::from("/w/.git")]).is_empty());
    }
}
