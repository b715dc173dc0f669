//! `/proc/self/mountinfo`, parsed, and the other paths at which mounts expose a path: the
//! Linux sandbox adds them to the deny-read list (`sandbox_linux::mount_aliases`), and the
//! request refuses a writable root through which the home is exposed
//! ([`crate::request`]). Pure: the callers read mountinfo.
//!
//! Two kinds of exposure: a mount of the same filesystem (a bind mount: same `major:minor`,
//! its root a directory of that filesystem), and an overlay one of whose layers (`upperdir=`,
//! `lowerdir=` in its super options) is the path, above it or inside it (outside review r44
//! F1: an overlay with `upperdir=/home/u` at `/tmp/ov` let the command append to `~/.bashrc`,
//! and with `lowerdir=~` read `~/.ssh`). FUSE mirrors (bindfs, sshfs) are not seen.

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
    /// An overlay's layers (`upperdir` first when there is one); empty for other filesystems.
    pub layers: Vec<Layer>,
}

/// One directory an overlay shows at its mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub path: PathBuf,
    /// The upper layer: what is written through the overlay lands here.
    pub upper: bool,
}

/// Where a mount shows (part of) a path: at `at`, the part `part` of it (the path itself, or a
/// directory or file inside it), written through when `writable` (a bind mount, an overlay's
/// upper layer; not a lower layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    pub at: PathBuf,
    pub part: PathBuf,
    pub writable: bool,
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
            // after the optional fields: `- FSTYPE SOURCE SUPER_OPTIONS`
            let mut rest = f.skip_while(|x| *x != "-").skip(1);
            let (fstype, _source, opts) = (rest.next(), rest.next(), rest.next());
            let layers = if fstype == Some("overlay") {
                overlay_layers(opts.unwrap_or(""))
            } else {
                Vec::new()
            };
            Some(MountEntry {
                dev: dev.to_string(),
                root: unescape(root),
                mount_point: unescape(mp),
                layers,
            })
        })
        .collect()
}

/// An overlay's super options: `upperdir=` and the `:`-separated `lowerdir=` (and `lowerdir+=`).
/// Options are separated by raw commas (mountinfo shows a comma inside a path octal-escaped);
/// each value is unescaped, then the overlay's own escapes (`\,`, `\:`, `\\`) are undone,
/// splitting lower layers at unescaped colons (r45 F2: an escaped comma hid a layer).
fn overlay_layers(opts: &str) -> Vec<Layer> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for o in opts.split(',') {
        let (value, upper) = if let Some(v) = o.strip_prefix("upperdir=") {
            (v, true)
        } else if let Some(v) = o
            .strip_prefix("lowerdir=")
            .or_else(|| o.strip_prefix("lowerdir+="))
        {
            (v, false)
        } else {
            continue;
        };
        let raw = unescape(value);
        let bytes = raw.as_os_str().as_bytes();
        let mut parts: Vec<Vec<u8>> = vec![Vec::new()];
        let mut k = 0;
        while k < bytes.len() {
            match bytes[k] {
                b'\\' if k + 1 < bytes.len() => {
                    k += 1;
                    if let Some(last) = parts.last_mut() {
                        last.push(bytes[k]);
                    }
                }
                b':' if !upper => parts.push(Vec::new()),
                c => {
                    if let Some(last) = parts.last_mut() {
                        last.push(c);
                    }
                }
            }
            k += 1;
        }
        for p in parts.into_iter().filter(|p| !p.is_empty()) {
            let path = PathBuf::from(std::ffi::OsStr::from_bytes(&p));
            if upper {
                out.insert(0, Layer { path, upper: true });
            } else {
                out.push(Layer { path, upper: false });
            }
        }
    }
    out
}

/// A layer whose text does not name where it is now: relative (to the mounter's cwd then),
/// through a link or `..`, or gone (r45 F2: `upperdir=..`, a layer given through a link later
/// re-pointed). Such an overlay inside a writable root cannot be checked.
pub fn uncertain_layer(m: &MountEntry) -> Option<&Path> {
    m.layers
        .iter()
        .map(|l| l.path.as_path())
        .find(|p| !p.is_absolute() || std::fs::canonicalize(p).ok().as_deref() != Some(*p))
}

/// Every place `mounts` show `p` (canonical) or part of it, other than `p` itself: mounts of its
/// filesystem whose root is `p`, above it (the whole of `p` at `mount point + rest`) or inside
/// it (that part at the mount point), and overlays with a layer likewise.
pub fn exposures(p: &Path, mounts: &[MountEntry]) -> Vec<Exposure> {
    let mut out: Vec<Exposure> = Vec::new();
    let mut add = |at: PathBuf, part: PathBuf, writable: bool| {
        if at != p && !out.iter().any(|x| x.at == at) {
            out.push(Exposure { at, part, writable });
        }
    };
    // (`join("")` would add a trailing `/` to the name printed)
    let joined = |a: &Path, b: &Path| -> PathBuf { a.components().chain(b.components()).collect() };
    if let Some((dev, rel)) = fs_location(p, mounts) {
        for m in mounts.iter().filter(|m| m.dev == dev) {
            if let Ok(below) = rel.strip_prefix(&m.root) {
                add(joined(&m.mount_point, below), p.to_path_buf(), true);
            } else if let Ok(inside) = m.root.strip_prefix(&rel) {
                add(m.mount_point.clone(), joined(p, inside), true);
            }
        }
    }
    for m in mounts {
        for l in &m.layers {
            if let Ok(below) = p.strip_prefix(&l.path) {
                add(joined(&m.mount_point, below), p.to_path_buf(), l.upper);
            } else if l.path.starts_with(p) {
                add(m.mount_point.clone(), l.path.clone(), l.upper);
            }
        }
    }
    out
}

/// The other paths at which `mounts` expose `denied` (canonical, existing paths), whole or in
/// part ([`exposures`]). Pure: the caller reads mountinfo.
pub fn aliases(denied: &[PathBuf], mounts: &[MountEntry]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in denied {
        for x in exposures(p, mounts) {
            if !denied.contains(&x.at) && !out.contains(&x.at) {
                out.push(x.at);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposures_are_mounts_of_the_path_above_or_inside_it_and_overlay_layers() {
        let m = parse(
            "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
             30 22 8:1 /home /srv/h rw - ext4 /dev/sda1 rw\n\
             31 22 8:1 /home/u /tmp/alias rw - ext4 /dev/sda1 rw\n\
             32 22 8:1 /home/u/.config /tmp/cfg rw - ext4 /dev/sda1 rw\n\
             33 22 0:40 / /tmp/t rw - tmpfs tmpfs rw\n\
             34 22 0:41 / /tmp/ov rw shared:5 - overlay overlay rw,lowerdir=/tmp/l1:/home/u,upperdir=/home,workdir=/w\n",
        );
        let home = Path::new("/home/u");
        let got = exposures(home, &m);
        let at = |a: &str| got.iter().find(|x| x.at == Path::new(a)).cloned();
        assert_eq!(at("/srv/h/u").unwrap().part, home);
        assert_eq!(
            at("/tmp/alias").unwrap().at.to_str(),
            Some("/tmp/alias"),
            "no trailing /"
        );
        let cfg = at("/tmp/cfg").unwrap();
        assert_eq!(
            (cfg.part.as_path(), cfg.writable),
            (Path::new("/home/u/.config"), true)
        );
        // the overlay: upper `/home` shows the home at `/tmp/ov/u` (written through), lower
        // `/home/u` at `/tmp/ov` (read only)
        let up = at("/tmp/ov/u").unwrap();
        assert_eq!((up.part.as_path(), up.writable), (home, true));
        let low = at("/tmp/ov").unwrap();
        assert_eq!((low.part.as_path(), low.writable), (home, false));
        // r45 F2: a comma inside a layer's path (octal in mountinfo, then `\,`), `lowerdir+=`
        let m2 = parse(
            "40 22 0:42 / /tmp/o2 rw - overlay overlay rw,lowerdir=/a\\134\\054b:/c\\134:d,lowerdir+=/e,upperdir=/home,workdir=/w\n",
        );
        let paths: Vec<&Path> = m2[0].layers.iter().map(|l| l.path.as_path()).collect();
        assert_eq!(
            paths,
            [
                Path::new("/home"),
                Path::new("/a,b"),
                Path::new("/c:d"),
                Path::new("/e")
            ]
        );
        let rel = parse("41 22 0:43 / /tmp/o3 rw - overlay overlay rw,upperdir=..,workdir=w\n");
        assert_eq!(uncertain_layer(&rel[0]), Some(Path::new("..")));
        // another filesystem and unrelated paths: nothing
        assert!(exposures(Path::new("/tmp/t/x"), &m).is_empty());
        assert!(exposures(Path::new("/etc"), &m).is_empty());
    }
}
