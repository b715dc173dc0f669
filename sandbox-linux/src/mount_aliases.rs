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

/// One `/proc/self/mountinfo` line, the fields used here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the filesystem.
    pub dev: String,
    /// The directory of the filesystem that is the root of this mount.
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
}

/// Undo mountinfo's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
fn unescape(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (_id, _parent, dev, root, mp) =
                (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
            Some(MountEntry {
                dev: dev.to_string(),
                root: unescape(root),
                mount_point: unescape(mp),
            })
        })
        .collect()
}

/// The other paths at which `mounts` expose `denied` (canonical, existing paths). Pure: the
/// caller reads mountinfo.
pub fn aliases(denied: &[PathBuf], mounts: &[MountEntry]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in denied {
        // the mount that holds `p`: the longest mount point that is a prefix (the last one
        // listed wins among equals: it is mounted on top)
        let Some(home) = mounts
            .iter()
            .enumerate()
            .filter(|(_, m)| p.starts_with(&m.mount_point))
            .max_by_key(|(i, m)| (m.mount_point.components().count(), *i))
            .map(|(_, m)| m)
        else {
            continue;
        };
        let Ok(rest) = p.strip_prefix(&home.mount_point) else {
            continue;
        };
        let rel = home.root.join(rest);
        for m in mounts.iter().filter(|m| m.dev == home.dev) {
            let alias = if let Ok(below) = rel.strip_prefix(&m.root) {
                m.mount_point.join(below)
            } else if m.root.starts_with(&rel) {
                m.mount_point.clone()
            } else {
                continue;
            };
            if alias != *p && !denied.contains(&alias) && !out.contains(&alias) {
                out.push(alias);
            }
        }
    }
    out
}

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
