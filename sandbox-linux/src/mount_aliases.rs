//! Second paths to a denied file through other mounts (outside review F3, second round F4).
//!
//! Landlock rules attach to inodes and grant what lies beneath them along the path walked. The
//! deny-read list is enforced by granting everything *beside* each denied path (`fs_rules`), so a
//! bind mount of `/home` at `/srv/h` made `/srv/h/u/.ssh` readable (`/srv` was a granted
//! sibling), and a bind of the home *beside* it (`/x/mnt2` = `/home/u`) made the canonical path
//! readable too: the rule granted to the sibling `mnt2` sits on the home directory's own inode.
//!
//! Every path at which a mount of the same filesystem exposes a denied path (or part of it) is
//! therefore added to the deny list: for a denied path `P` whose filesystem-relative path is
//! `R`, each mount `M` of the same device with root `Mr` and mount point `Mp` exposes it at
//! `Mp + (R - Mr)` when `R` lies below `Mr`, and exposes part of it at `Mp` when `Mr` lies below
//! `R`. Read from `/proc/self/mountinfo` at plan time: a mount made later is not seen (the
//! sandboxed command cannot mount: no privileges, seccomp). Hard links are not mounts and stay
//! uncovered (documented).

use std::path::{Path, PathBuf};

pub use sandbox_policy::mounts::{aliases, parse};

/// [`aliases`] from this process's `/proc/self/mountinfo`, keeping those that exist. An
/// unreadable mountinfo yields none (the caller's plan is then what it was before).
pub fn from_this_process(denied: &[PathBuf]) -> Vec<PathBuf> {
    if denied.is_empty() {
        // nothing to find aliases of: mountinfo is not read (start-up)
        return Vec::new();
    }
    let Ok(text) = crate::sys::read_proc("/proc/self/mountinfo").and_then(|b| {
        String::from_utf8(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }) else {
        return Vec::new();
    };
    aliases(denied, &parse(&text))
        .into_iter()
        .filter(|a| Path::new(a).symlink_metadata().is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 8:1 / / rw - ext4 /dev/sda1 rw
30 22 8:1 /home /srv/h rw - ext4 /dev/sda1 rw
31 22 8:1 /home/u /x/mnt2 rw - ext4 /dev/sda1 rw
32 22 8:1 /home/u/.ssh/sub /keys rw - ext4 /dev/sda1 rw
33 22 0:40 / /tmp rw - tmpfs tmpfs rw
34 22 8:1 /home/u/with\\040space /sp rw - ext4 /dev/sda1 rw
";

    #[test]
    fn every_mount_of_the_same_filesystem_that_exposes_a_denied_path_is_found() {
        let m = parse(INFO);
        assert_eq!(m[5].root, PathBuf::from("/home/u/with space"));
        let got = aliases(&[PathBuf::from("/home/u/.ssh")], &m);
        assert_eq!(
            got,
            [
                PathBuf::from("/srv/h/u/.ssh"),
                PathBuf::from("/x/mnt2/.ssh"),
                PathBuf::from("/keys"),
            ]
        );
        // a denied path reached through a bind mount maps back to the canonical one too
        let got = aliases(&[PathBuf::from("/srv/h/u/.netrc")], &m);
        assert!(got.contains(&PathBuf::from("/home/u/.netrc")), "{got:?}");
        assert!(got.contains(&PathBuf::from("/x/mnt2/.netrc")), "{got:?}");
        // control: another filesystem (tmpfs) and unrelated binds add nothing
        assert!(aliases(&[PathBuf::from("/tmp/secret")], &m).is_empty());
        assert!(aliases(&[PathBuf::from("/etc/shadow")], &m).is_empty());
    }
}
