//! File metadata outside the writable roots: mode, owner, timestamps, extended attributes and
//! ACLs (Landlock does not cover chmod, chown, utime or setxattr).
//!
//! With a mount namespace every mount becomes read-only except the writable roots, so those
//! calls fail with `EROFS` (as does any write the Landlock rules already refuse):
//! 1. each writable root's mount tree is copied as it is now (`open_tree(OPEN_TREE_CLONE |
//!    AT_RECURSIVE)`, detached, keeping its flags);
//! 2. every mount, hidden or not, becomes read-only (`mount_setattr("/", MOUNT_ATTR_RDONLY,
//!    AT_RECURSIVE)`);
//! 3. the copies are attached back over their roots, outermost first (`move_mount`).
//!
//! Deny-read paths and carve-outs inside a root are then bound read-only by
//! [`crate::mountns::set_up`]. These mounts cover only what the command reaches through the
//! sandbox's mount namespace: descriptors it inherited or received (and `/proc/self/fd` links to
//! them) refer to the outer mounts, so every metadata call is also mediated
//! ([`crate::meta_guard`], outside review r14 F2). Device nodes stay usable on a read-only mount (`/dev/null`,
//! the command's terminal), and connecting to a unix socket needs no writable mount.
//!
//! Without a mount namespace seccomp cannot see paths: the read-only policy (no writable root)
//! denies the metadata calls outright ([`crate::seccomp::METADATA`]); a policy with writable
//! roots cannot keep the guarantee and is refused (exit 201) unless
//! `--dangerously-allow-weaker-sandbox`.

use std::path::{Path, PathBuf};

use crate::mountns::MountNsError;
use crate::sys;

fn cstr(path: &Path) -> Result<std::ffi::CString, MountNsError> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| MountNsError::Nul {
        path: path.to_path_buf(),
    })
}

/// The roots to re-attach: outermost first, without roots inside another root (the outer copy
/// already holds them). `None` when a root is `/` (nothing lies outside the roots).
pub fn roots_to_keep(roots: &[PathBuf]) -> Option<Vec<PathBuf>> {
    if roots.iter().any(|r| r == Path::new("/")) {
        return None;
    }
    let mut keep: Vec<PathBuf> = roots
        .iter()
        .filter(|r| !roots.iter().any(|o| o != *r && r.starts_with(o)))
        .cloned()
        .collect();
    keep.sort_by_key(|p| p.components().count());
    keep.dedup();
    Some(keep)
}

/// Make every mount read-only except the trees at `roots` (inside a private mount namespace).
///
/// `approved` holds the identity (`st_dev`, `st_ino`) of each root as the launcher resolved it
/// ([`crate::resolve`]; its descriptors belong to the launcher's mount namespace, which mount
/// calls here cannot use). Each root is opened here once, checked against that identity (a
/// root swapped for a link since is refused, [`MountNsError::Replaced`]), and copied and
/// re-attached through that one descriptor, never through its path again (issue 12 item 8).
///
/// Returns each re-attached root with the descriptor of its new (writable) mount: the
/// carve-outs below it are reached from that descriptor ([`crate::mountns::set_up`], r21 F2),
/// so that root and carve-out come from one walk. Empty when a root is `/`.
pub fn read_only_outside(
    roots: &[PathBuf],
    approved: &[crate::mountns::Approved],
) -> Result<Vec<(PathBuf, std::os::fd::OwnedFd)>, MountNsError> {
    use std::os::fd::AsFd;
    let Some(keep) = roots_to_keep(roots) else {
        return Ok(Vec::new());
    };
    let mut trees = Vec::with_capacity(keep.len());
    for r in &keep {
        let c = cstr(r)?;
        let open = |source| MountNsError::OpenTree {
            path: r.clone(),
            source,
        };
        let fd = sys::open_path_follow(None, &c).map_err(open)?;
        let st = sys::fstat(fd.as_fd()).map_err(open)?;
        if let Some(a) = approved.iter().find(|a| a.path == *r) {
            if a.id != (st.st_dev, st.st_ino) {
                return Err(MountNsError::Replaced { path: r.clone() });
            }
        }
        let tree = sys::open_tree_clone_fd(fd.as_fd()).map_err(open)?;
        trees.push((r, fd, tree));
    }
    sys::mount_set_readonly_recursive(c"/")
        .map_err(|source| MountNsError::ReadOnlyAll { source })?;
    let mut attached = Vec::with_capacity(trees.len());
    for (r, fd, tree) in trees {
        sys::move_mount_onto_fd(tree.as_fd(), fd.as_fd()).map_err(|source| {
            MountNsError::MoveMount {
                path: r.clone(),
                source,
            }
        })?;
        // `tree` now names the root of the attached copy
        attached.push((r.clone(), tree));
    }
    Ok(attached)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_roots_are_kept_once_outermost_first_and_slash_keeps_everything() {
        let roots = vec![
            PathBuf::from("/w/a/b"),
            PathBuf::from("/tmp"),
            PathBuf::from("/w/a"),
        ];
        assert_eq!(
            roots_to_keep(&roots),
            Some(vec![PathBuf::from("/tmp"), PathBuf::from("/w/a")])
        );
        assert_eq!(
            roots_to_keep(&[PathBuf::from("/"), PathBuf::from("/w")]),
            None
        );
    }
}
