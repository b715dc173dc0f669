//! `/proc/self/mountinfo`, parsed, and the other paths at which mounts expose a path: the
//! Linux sandbox adds them to the deny-read list (`sandbox_linux::mount_aliases`), and the
//! request refuses a writable root through which the home is exposed
//! ([`crate::request`]). Pure: the callers read mountinfo.

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
        let Some((dev, rel)) = fs_location(p, mounts) else {
            continue;
        };
        for m in mounts.iter().filter(|m| m.dev == dev) {
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

/// Where `p` (canonical) lies in its filesystem: the device of the mount that holds it (the
/// longest mount point that is a prefix; the last one listed wins among equals: it is mounted
/// on top) and the path inside that filesystem.
fn fs_location<'a>(p: &Path, mounts: &'a [MountEntry]) -> Option<(&'a str, PathBuf)> {
    let holder = mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| p.starts_with(&m.mount_point))
        .max_by_key(|(i, m)| (m.mount_point.components().count(), *i))
        .map(|(_, m)| m)?;
    let rest = p.strip_prefix(&holder.mount_point).ok()?;
    Some((holder.dev.as_str(), holder.root.join(rest)))
}

/// The other paths at which `mounts` expose `p` (canonical) whole: each mount of its
/// filesystem whose root is `p` or a directory above it (a bind mount of `p`, of its parent,
/// of `/`). Mounts of directories *inside* `p` are not counted.
pub fn whole_exposures(p: &Path, mounts: &[MountEntry]) -> Vec<PathBuf> {
    let Some((dev, rel)) = fs_location(p, mounts) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = Vec::new();
    for m in mounts.iter().filter(|m| m.dev == dev) {
        if let Ok(below) = rel.strip_prefix(&m.root) {
            // (`join("")` would add a trailing `/` to the name printed)
            let at: PathBuf = m
                .mount_point
                .components()
                .chain(below.components())
                .collect();
            if at != p && !out.contains(&at) {
                out.push(at);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_exposures_are_mounts_of_the_path_or_above_it() {
        let m = parse(
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
             30 22 8:1 /home /srv/h rw - ext4 /dev/sda1 rw\n\
             31 22 8:1 /home/u /tmp/alias rw - ext4 /dev/sda1 rw\n\
             32 22 8:1 /home/u/ws /tmp/ws rw - ext4 /dev/sda1 rw\n\
             33 22 0:40 / /tmp/t rw - tmpfs tmpfs rw\n",
        );
        let got = whole_exposures(Path::new("/home/u"), &m);
        assert_eq!(
            got,
            [PathBuf::from("/srv/h/u"), PathBuf::from("/tmp/alias")]
        );
        assert_eq!(got[1].to_str(), Some("/tmp/alias"), "no trailing slash");
        // a mount of a directory inside it is not the path; another filesystem neither
        assert!(!got.contains(&PathBuf::from("/tmp/ws")));
        assert!(whole_exposures(Path::new("/tmp/t/x"), &m).is_empty());
    }
}
