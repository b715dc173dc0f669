//! Existing git directories below the writable roots, found by content (outside review r21 F1).
//!
//! A bare repository under a writable root whose name does not end in `.git` (`git init --bare
//! /tmp/x/remote`, a local remote) is none of the carve-outs the policy names and none of the
//! names the name guard protects: the command could plant `hooks/pre-receive` there, which the
//! user's next `git push` runs outside the sandbox. At set-up the launcher therefore walks each
//! writable root from the descriptor the root was resolved to ([`crate::resolve`]) and takes
//! every directory that git's `is_git_directory` (setup.c) would accept as a repository:
//! - a `HEAD` that is a regular file or a symbolic link, and
//! - `objects/` and `refs/` directories, in the directory itself or, when it has a `commondir`
//!   file (a worktree's gitdir), in the directory that file names.
//!
//! Each one found becomes a read-only carve-out like a root's `.git` (the mount namespace binds
//! it onto itself read-only; without namespaces the name guard refuses writes below it), and
//! the walk does not go below it.
//!
//! The walk is bounded, so that a root like `/tmp` or `$HOME` costs a bounded time at every
//! start ([`LIMITS`]): breadth first (shallow repositories first), at most `max_depth` levels
//! below the root, `max_dirs` directories listed, `max_entries` entries per directory,
//! `max_found` repositories and `max_time`. Symbolic links are never followed (every step is
//! `openat(O_NOFOLLOW)` from the directory above); other filesystems mounted below a root (a
//! different `st_dev`) are not entered, nor are deny-read paths.
//!
//! The walk runs when the name guard's rules apply (not with `--allow-git-writes`, which lets
//! the command write below existing repositories; the roots' own `.git` stays read-only then).
//! What is *not* found, and so stays writable (the name guard still refuses `.git` names, new
//! `HEAD` files and writes below `.git`-named directories):
//! - a repository deeper than `max_depth`, or not reached before a bound was hit (the report
//!   says which bound, [`Scan::incomplete`], in the `-v` report line);
//! - a repository on another filesystem mounted below a root, or behind a symbolic link;
//! - a repository in a directory the user cannot list;
//! - a root that is itself a repository (it stays the writable root it was asked to be).

use std::collections::VecDeque;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::sys;

/// How far the walk may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Levels below a root (1: the root's own entries).
    pub max_depth: usize,
    /// Directories listed, over all roots.
    pub max_dirs: usize,
    /// Entries read from one directory.
    pub max_entries: usize,
    /// Repositories found, over all roots.
    pub max_found: usize,
    /// Wall-clock time, over all roots.
    pub max_time: Duration,
}

/// The limits every run uses (a typical workspace is far below them; `/tmp` on a busy machine
/// may not be: the report then says so).
pub const LIMITS: Limits = Limits {
    max_depth: 8,
    max_dirs: 20_000,
    max_entries: 20_000,
    max_found: 64,
    max_time: Duration::from_millis(400),
};

/// A repository found below a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The root it was found below.
    pub root: PathBuf,
    /// `root` joined with the components walked (no link on the way).
    pub path: PathBuf,
    /// `(st_dev, st_ino)` of the directory where it was found.
    pub id: (u64, u64),
}

/// What the walk found and how far it got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    pub found: Vec<Found>,
    /// Directories listed.
    pub dirs: usize,
    pub elapsed: Duration,
    /// Directories below a root on another filesystem, not entered (at most 8 named).
    pub other_fs: Vec<PathBuf>,
    /// The bounds that stopped the walk before it had seen everything (empty: complete).
    pub incomplete: Vec<String>,
}

impl Scan {
    /// One line for the report.
    pub fn summary(&self) -> String {
        let found: Vec<String> = self
            .found
            .iter()
            .map(|f| f.path.display().to_string())
            .collect();
        let mut s = format!(
            "git directories found by content [{}] ({} directories in {} ms",
            found.join(","),
            self.dirs,
            self.elapsed.as_millis()
        );
        if !self.other_fs.is_empty() {
            let o: Vec<String> = self
                .other_fs
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            s.push_str(&format!(
                "; other filesystems not entered [{}]",
                o.join(",")
            ));
        }
        s.push(')');
        if !self.incomplete.is_empty() {
            s.push_str(&format!(
                "; git directory scan INCOMPLETE (stopped by {}): an existing repository below a \
                 root that was not reached stays writable",
                self.incomplete.join(", ")
            ));
        }
        s
    }
}

/// Whether the directory `dir` is what git's `is_git_directory` accepts (module docs).
pub fn is_git_directory(dir: BorrowedFd<'_>) -> bool {
    let kind = |name: &std::ffi::CStr, follow: bool| {
        sys::fstatat(dir, name, follow)
            .ok()
            .map(|st| st.st_mode & libc::S_IFMT)
    };
    match kind(c"HEAD", false) {
        Some(libc::S_IFREG) | Some(libc::S_IFLNK) => {}
        _ => return false,
    }
    let has_db = |d: BorrowedFd<'_>| {
        let is_dir = |n: &std::ffi::CStr| {
            sys::fstatat(d, n, true).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        };
        is_dir(c"objects") && is_dir(c"refs")
    };
    if has_db(dir) {
        return true;
    }
    // a worktree's gitdir: objects and refs live in the directory `commondir` names
    common_dir(dir).is_some_and(|common| has_db(common.as_fd()))
}

/// The directory the `commondir` file of `dir` names (absolute, or relative to `dir`, as git's
/// `get_common_dir` reads it), opened `O_PATH` (links followed, as git follows them).
fn common_dir(dir: BorrowedFd<'_>) -> Option<std::os::fd::OwnedFd> {
    let text = sys::read_small_file(dir, c"commondir", 4096).ok()?;
    let line = text.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return None;
    }
    let c = CString::new(line).ok()?;
    let start = if line.starts_with(b"/") {
        None
    } else {
        Some(dir)
    };
    sys::open_path_follow(start, &c).ok()
}

/// Walk each of `roots` (path, the descriptor it was resolved to) breadth first and collect the
/// git directories below it (module docs). `skip`: paths not entered (deny-read paths).
///
/// The queue holds, per directory listed, the names of its subdirectories still to visit: the
/// directory is reached again once from the root's descriptor (one component at a time, no
/// link), and each name is opened from it with `O_NOFOLLOW`.
pub fn scan(roots: &[(PathBuf, BorrowedFd<'_>)], skip: &[PathBuf], limits: &Limits) -> Scan {
    let started = Instant::now();
    let mut out = Scan::default();
    // the walk goes down from the root, so a skipped path is met exactly before anything below
    // it (a root inside a skipped path is not walked at all)
    let skip: std::collections::HashSet<&Path> = skip.iter().map(|p| p.as_path()).collect();
    'roots: for (root, root_fd) in roots {
        if skip.iter().any(|s| root.starts_with(s)) {
            continue;
        }
        let Ok(root_st) = sys::fstat(*root_fd) else {
            continue;
        };
        let Ok(root_dir) = sys::open_dir_nofollow(*root_fd, c".") else {
            continue;
        };
        out.dirs += 1;
        // (directory relative to `root`, depth of its entries, names of its subdirectories)
        let mut queue: VecDeque<(PathBuf, usize, Vec<CString>)> = VecDeque::new();
        let first = list_subdirs(
            root_dir.as_fd(),
            root,
            Path::new(""),
            0,
            &skip,
            limits,
            &mut out,
        );
        queue.push_back((PathBuf::new(), 1, first));
        while let Some((parent_rel, depth, names)) = queue.pop_front() {
            // reached again from the root's descriptor, one component at a time, no link
            let Ok((parent, _)) = crate::resolve::open_beneath(*root_fd, &parent_rel) else {
                continue;
            };
            for name in names {
                if started.elapsed() > limits.max_time {
                    note(
                        &mut out,
                        format!("the time limit of {} ms", limits.max_time.as_millis()),
                    );
                    break 'roots;
                }
                if out.dirs >= limits.max_dirs {
                    note(
                        &mut out,
                        format!("the limit of {} directories", limits.max_dirs),
                    );
                    break 'roots;
                }
                let rel = parent_rel.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
                let Ok(opath) = sys::open_path_nofollow(Some(parent.as_fd()), &name) else {
                    continue;
                };
                let Ok(st) = sys::fstat(opath.as_fd()) else {
                    continue;
                };
                if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
                    continue; // (a link now: not followed)
                }
                if st.st_dev != root_st.st_dev {
                    if out.other_fs.len() < 8 {
                        out.other_fs.push(root.join(&rel));
                    }
                    continue;
                }
                let Ok(dir) = sys::open_dir_nofollow(opath.as_fd(), c".") else {
                    continue;
                };
                if is_git_directory(dir.as_fd()) {
                    if out.found.len() >= limits.max_found {
                        note(
                            &mut out,
                            format!("the limit of {} repositories", limits.max_found),
                        );
                        break 'roots;
                    }
                    let id = (st.st_dev, st.st_ino);
                    if !out.found.iter().any(|f| f.id == id) {
                        out.found.push(Found {
                            root: root.clone(),
                            path: root.join(&rel),
                            id,
                        });
                    }
                    add_common_dir(dir.as_fd(), roots, limits, &mut out);
                    continue;
                }
                out.dirs += 1;
                let sub = list_subdirs(dir.as_fd(), root, &rel, depth, &skip, limits, &mut out);
                if !sub.is_empty() {
                    queue.push_back((rel, depth + 1, sub));
                }
            }
        }
    }
    out.elapsed = started.elapsed();
    out
}

/// Record that `what` bound stopped the walk (once).
fn note(out: &mut Scan, what: String) {
    if !out.incomplete.contains(&what) {
        out.incomplete.push(what);
    }
}

/// The names of the subdirectories of `dir` (at `rel` below `root`, `depth` levels down) to
/// visit next: not skipped, within the depth limit (else noted).
fn list_subdirs(
    dir: BorrowedFd<'_>,
    root: &Path,
    rel: &Path,
    depth: usize,
    skip: &std::collections::HashSet<&Path>,
    limits: &Limits,
    out: &mut Scan,
) -> Vec<CString> {
    let Ok((entries, more)) = sys::read_dir_fd(dir, limits.max_entries) else {
        return Vec::new();
    };
    if more {
        note(
            out,
            format!("the limit of {} entries in a directory", limits.max_entries),
        );
    }
    let mut sub = Vec::new();
    for (name, d_type) in entries {
        let is_dir = match d_type {
            libc::DT_DIR => true,
            libc::DT_UNKNOWN => sys::fstatat(dir, &name, false)
                .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR),
            _ => false,
        };
        if !is_dir {
            continue;
        }
        if !skip.is_empty() {
            let path = root
                .join(rel)
                .join(std::ffi::OsStr::from_bytes(name.to_bytes()));
            if skip.contains(path.as_path()) {
                continue;
            }
        }
        if depth + 1 > limits.max_depth {
            note(out, format!("the depth limit of {}", limits.max_depth));
            break;
        }
        sub.push(name);
    }
    sub
}

/// A worktree's gitdir: git reads `config` and hooks from its common directory, carved out too
/// when it lies below a root (wherever the walk would reach it).
fn add_common_dir(
    dir: BorrowedFd<'_>,
    roots: &[(PathBuf, BorrowedFd<'_>)],
    limits: &Limits,
    out: &mut Scan,
) {
    let Some(common) = common_dir(dir) else {
        return;
    };
    let (Ok(cst), Ok(real)) = (
        sys::fstat(common.as_fd()),
        crate::resolve::real_path(&common),
    ) else {
        return;
    };
    let cid = (cst.st_dev, cst.st_ino);
    let Some((r, _)) = roots
        .iter()
        .find(|(r, _)| real.starts_with(r) && real != *r)
    else {
        return;
    };
    if !out.found.iter().any(|f| f.id == cid) && out.found.len() < limits.max_found {
        out.found.push(Found {
            root: r.clone(),
            path: real,
            id: cid,
        });
    }
}

/// The roots to walk: those not inside another root (the outer walk covers them) and not
/// inside a deny-read path.
pub fn outermost(roots: &[PathBuf], denied: &[PathBuf]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = roots
        .iter()
        .filter(|r| !denied.iter().any(|d| r.starts_with(d)))
        .filter(|r| !roots.iter().any(|o| o != *r && r.starts_with(o)))
        .cloned()
        .collect();
    v.dedup();
    v
}

/// `p` is one of `found`'s paths or below one.
pub fn below_found(p: &Path, found: &[Found]) -> bool {
    found.iter().any(|f| p.starts_with(&f.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare(p: &Path) {
        std::fs::create_dir_all(p.join("objects")).unwrap();
        std::fs::create_dir_all(p.join("refs/heads")).unwrap();
        std::fs::write(p.join("HEAD"), "ref: refs/heads/main\n").unwrap();
    }

    fn run(base: &Path, limits: &Limits) -> Scan {
        let fd = sys::open_path_nofollow(None, &CString::new(base.as_os_str().as_bytes()).unwrap())
            .unwrap();
        scan(&[(base.to_path_buf(), fd.as_fd())], &[], limits)
    }

    #[test]
    fn repositories_are_found_by_content_and_lookalikes_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        bare(&base.join("x/remote"));
        bare(&base.join("x/remote/nested-inside")); // not entered: below a repository
        std::fs::create_dir_all(base.join("headonly")).unwrap();
        std::fs::write(base.join("headonly/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::create_dir_all(base.join("noobjects/refs")).unwrap();
        std::fs::write(base.join("noobjects/HEAD"), "x").unwrap();
        // a worktree's gitdir: HEAD and commondir, the database in the main repository
        bare(&base.join("main.d"));
        std::fs::create_dir_all(base.join("wt/gd")).unwrap();
        std::fs::write(base.join("wt/gd/HEAD"), "0000\n").unwrap();
        std::fs::write(base.join("wt/gd/commondir"), "../../main.d\n").unwrap();
        // a worktree gitdir whose common directory lies deeper than the depth limit: carved
        // out through `commondir`
        bare(&base.join("p/q/r/s/t/u/v/w/x/deepmain"));
        std::fs::create_dir_all(base.join("wt2")).unwrap();
        std::fs::write(base.join("wt2/HEAD"), "0000\n").unwrap();
        std::fs::write(
            base.join("wt2/commondir"),
            format!("{}\n", base.join("p/q/r/s/t/u/v/w/x/deepmain").display()),
        )
        .unwrap();
        // a link to a repository is not followed
        std::os::unix::fs::symlink(base.join("x"), base.join("link")).unwrap();
        let s = run(&base, &LIMITS);
        let mut got: Vec<PathBuf> = s.found.iter().map(|f| f.path.clone()).collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                base.join("main.d"),
                base.join("p/q/r/s/t/u/v/w/x/deepmain"),
                base.join("wt/gd"),
                base.join("wt2"),
                base.join("x/remote")
            ]
        );
        assert_eq!(s.incomplete, vec!["the depth limit of 8".to_string()]);
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(base.join("x/remote")).unwrap();
        let f = s.found.iter().find(|f| f.path.ends_with("remote")).unwrap();
        assert_eq!(f.id, (m.dev(), m.ino()));
        assert!(
            s.summary()
                .contains(&base.join("x/remote").display().to_string())
        );
    }

    #[test]
    fn every_bound_is_reported_never_silent() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        bare(&base.join("a/b/c/deep"));
        bare(&base.join("r1"));
        bare(&base.join("r2"));
        for i in 0..5 {
            std::fs::create_dir_all(base.join(format!("d{i}"))).unwrap();
        }
        let depth = Limits {
            max_depth: 2,
            ..LIMITS
        };
        let s = run(&base, &depth);
        assert!(!s.found.iter().any(|f| f.path.ends_with("deep")), "{s:?}");
        assert_eq!(s.incomplete, vec!["the depth limit of 2".to_string()]);
        assert!(
            s.summary()
                .contains("INCOMPLETE (stopped by the depth limit of 2)")
        );
        let found = Limits {
            max_found: 1,
            ..LIMITS
        };
        let s = run(&base, &found);
        assert_eq!(s.found.len(), 1);
        assert_eq!(
            s.incomplete,
            vec!["the limit of 1 repositories".to_string()]
        );
        let dirs = Limits {
            max_dirs: 2,
            ..LIMITS
        };
        let s = run(&base, &dirs);
        assert_eq!(s.incomplete, vec!["the limit of 2 directories".to_string()]);
        let entries = Limits {
            max_entries: 3,
            ..LIMITS
        };
        let s = run(&base, &entries);
        assert!(
            s.incomplete
                .contains(&"the limit of 3 entries in a directory".to_string())
        );
        let time = Limits {
            max_time: Duration::ZERO,
            ..LIMITS
        };
        let s = run(&base, &time);
        assert_eq!(s.incomplete, vec!["the time limit of 0 ms".to_string()]);
        // control: within the bounds everything is found and nothing is reported
        let s = run(&base, &LIMITS);
        assert_eq!(s.found.len(), 3, "{s:?}");
        assert!(s.incomplete.is_empty() && !s.summary().contains("INCOMPLETE"));
    }
}
