//! Resolve a planned path once, component by component, to an `O_PATH` descriptor (issue 12
//! item 8): the check is made on that descriptor and the rule is added from it, never from the
//! path again.
//!
//! The walk starts at `/` and opens each component with `openat(parent, name, O_PATH |
//! O_NOFOLLOW | O_CLOEXEC)`, then `fstat`s what it got:
//! - a symbolic link owned by root (`/lib -> usr/lib`, `/var/run`) is followed: its target is
//!   read from the link's own descriptor (`readlinkat(fd, "")`) and walked the same way, from
//!   `/` when absolute, from the link's directory when relative (at most [`MAX_LINKS`] links);
//! - a symbolic link owned by anyone else refuses ([`ResolveError::ForeignSymlink`], naming it):
//!   a command of an earlier or parallel run could have made it, the same rule as the policy's
//!   (`sandbox_policy`, outside review r14 F6), now applied to the object the rule is added from;
//! - any other component must be a directory unless it is the last one;
//! - `..` is opened as `..` of the directory reached so far (physical, as the kernel walks).
//!
//! `O_DIRECTORY` is not used for the intermediate components: with `O_NOFOLLOW` it would turn a
//! link into `ENOTDIR` before it could be judged; the type comes from `fstat` instead.
//!
//! A descriptor names the object, not the path: a link swapped in after the walk (by a process
//! of the user running outside the sandbox) changes nothing for a rule added from it.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use crate::sys;

/// Symbolic links followed in one walk before giving up (the kernel's limit).
pub const MAX_LINKS: usize = 40;

/// Why a planned path could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "{path} goes through the symbolic link {link}, owned by uid {owner}: another process of \
         the user could have swapped it in to point the sandbox's rules at another directory; \
         refusing to resolve it (name the real directory, or remove the link)"
    )]
    ForeignSymlink {
        path: PathBuf,
        link: PathBuf,
        owner: u32,
    },
    #[error("failed to resolve {path}: {step} {at}: {source}")]
    Walk {
        path: PathBuf,
        step: &'static str,
        at: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to resolve {path}: {at} is not a directory")]
    NotADirectory { path: PathBuf, at: PathBuf },
    #[error("failed to resolve {path}: more than {MAX_LINKS} symbolic links")]
    TooManyLinks { path: PathBuf },
    #[error("path contains a NUL byte: {path}")]
    Nul { path: PathBuf },
    #[error(
        "cwd ($PWD): the working directory {cwd} is not the directory $PWD names ({pwd}): the \
         shell may have entered it through a symbolic link that was replaced since; change to \
         the directory again (cd), or run with -C naming the real directory"
    )]
    PwdNotCwd { pwd: PathBuf, cwd: PathBuf },
}

impl ResolveError {
    /// The path does not exist (or is not reachable as a directory tree): nothing to grant.
    pub fn is_missing(&self) -> bool {
        match self {
            ResolveError::Walk { source, .. } => matches!(
                source.raw_os_error(),
                Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::EACCES)
            ),
            ResolveError::NotADirectory { .. } => true,
            _ => false,
        }
    }
}

/// An opened path: the descriptor and what `fstat` said about it.
#[derive(Debug)]
pub struct Resolved {
    pub fd: OwnedFd,
    pub is_dir: bool,
    pub dev: u64,
    pub ino: u64,
    pub uid: u32,
}

impl Resolved {
    fn new(fd: OwnedFd, st: &libc::stat) -> Self {
        Resolved {
            fd,
            is_dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR,
            dev: st.st_dev,
            ino: st.st_ino,
            uid: st.st_uid,
        }
    }
}

/// What to do with a symbolic link met as the last component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastLink {
    /// The same rule as every other component (root's followed, others refused).
    Judge,
    /// Followed whoever owns it; the caller judges where it landed
    /// ([`real_path`] of the descriptor).
    Follow,
}

/// Directories already walked in one planning pass, by the literal path that led to them (no
/// link followed, no `..` on the way): the next path below one starts there instead of at `/`.
/// Every descriptor in it was reached by the same rules, so starting from it is the walk from `/`
/// made earlier.
#[derive(Debug, Default)]
pub struct Cache {
    dirs: std::collections::HashMap<PathBuf, (Rc<OwnedFd>, libc::stat)>,
}

/// Walk `path` (absolute) from `/`, as described in the module docs.
pub fn open(path: &Path, last: LastLink) -> Result<Resolved, ResolveError> {
    open_cached(path, last, &mut Cache::default())
}

/// [`open`], starting at the deepest directory of `cache` above `path` and adding the
/// directories it walks through.
pub fn open_cached(
    path: &Path,
    last: LastLink,
    cache: &mut Cache,
) -> Result<Resolved, ResolveError> {
    let err = |step: &'static str, at: &Path, source: io::Error| ResolveError::Walk {
        path: path.to_path_buf(),
        step,
        at: at.to_path_buf(),
        source,
    };
    let all = components(path.as_os_str());
    // `cur_path` is the literal prefix of `path` while `literal` holds
    let mut literal = path.is_absolute() && !all.iter().any(|c| c.as_bytes() == b"..");
    let mut start = 0;
    let mut from_cache = None;
    if literal {
        // down to `/` itself (n = 0): opened once per cache, not once per path
        for n in (0..all.len()).rev() {
            let prefix: PathBuf = std::iter::once(OsStr::new("/"))
                .chain(all[..n].iter().map(|c| c.as_os_str()))
                .collect();
            if let Some((fd, st)) = cache.dirs.get(&prefix) {
                from_cache = Some((Rc::clone(fd), *st, prefix));
                start = n;
                break;
            }
        }
    }
    let (mut cur, mut st_cur, mut cur_path) = match from_cache {
        Some(c) => c,
        None => {
            let root =
                sys::open_path_nofollow(None, c"/").map_err(|e| err("open", Path::new("/"), e))?;
            let st = sys::fstat(root.as_fd()).map_err(|e| err("fstat", Path::new("/"), e))?;
            let root = Rc::new(root);
            if literal {
                cache
                    .dirs
                    .insert(PathBuf::from("/"), (Rc::clone(&root), st));
            }
            (root, st, PathBuf::from("/"))
        }
    };
    // components still to walk, next first (reversed so that `pop` takes the next one)
    let mut todo: Vec<OsString> = all[start..].to_vec();
    todo.reverse();
    let mut links = 0usize;
    while let Some(name) = todo.pop() {
        let is_last = todo.is_empty();
        if name.as_bytes() == b".." {
            literal = false;
            let fd = sys::open_path_nofollow(Some(cur.as_fd()), c"..")
                .map_err(|e| err("open", &cur_path.join(".."), e))?;
            cur_path.pop();
            st_cur = sys::fstat(fd.as_fd()).map_err(|e| err("fstat", &cur_path, e))?;
            cur = Rc::new(fd);
            continue;
        }
        let next_path = cur_path.join(&name);
        let c = CString::new(name.into_vec()).map_err(|_| ResolveError::Nul {
            path: path.to_path_buf(),
        })?;
        let fd = sys::open_path_nofollow(Some(cur.as_fd()), &c)
            .map_err(|e| err("open", &next_path, e))?;
        let st = sys::fstat(fd.as_fd()).map_err(|e| err("fstat", &next_path, e))?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFLNK => {
                if is_last && last == LastLink::Follow {
                    let fd = sys::open_path_follow(Some(cur.as_fd()), &c)
                        .map_err(|e| err("open", &next_path, e))?;
                    let st = sys::fstat(fd.as_fd()).map_err(|e| err("fstat", &next_path, e))?;
                    return Ok(Resolved::new(fd, &st));
                }
                if st.st_uid != 0 {
                    return Err(ResolveError::ForeignSymlink {
                        path: path.to_path_buf(),
                        link: next_path,
                        owner: st.st_uid,
                    });
                }
                literal = false;
                links += 1;
                if links > MAX_LINKS {
                    return Err(ResolveError::TooManyLinks {
                        path: path.to_path_buf(),
                    });
                }
                let target =
                    sys::readlink_fd(fd.as_fd()).map_err(|e| err("readlink", &next_path, e))?;
                let target = OsStr::from_bytes(&target);
                let mut more = components(target);
                more.reverse();
                todo.extend(more);
                if target.as_bytes().starts_with(b"/") {
                    cur = Rc::new(
                        sys::open_path_nofollow(None, c"/")
                            .map_err(|e| err("open", Path::new("/"), e))?,
                    );
                    cur_path = PathBuf::from("/");
                    st_cur = sys::fstat(cur.as_fd()).map_err(|e| err("fstat", &cur_path, e))?;
                }
                // relative: go on from the link's directory (`cur`)
            }
            libc::S_IFDIR => {
                let fd = Rc::new(fd);
                if literal && !cache.dirs.contains_key(&next_path) {
                    cache.dirs.insert(next_path.clone(), (Rc::clone(&fd), st));
                }
                cur = fd;
                cur_path = next_path;
                st_cur = st;
            }
            _ if is_last => return Ok(Resolved::new(fd, &st)),
            _ => {
                return Err(ResolveError::NotADirectory {
                    path: path.to_path_buf(),
                    at: next_path,
                });
            }
        }
    }
    // a directory: ours alone, or shared with the cache (then a duplicate)
    let fd = match Rc::try_unwrap(cur) {
        Ok(fd) => fd,
        Err(shared) => shared.try_clone().map_err(|e| err("dup", &cur_path, e))?,
    };
    Ok(Resolved::new(fd, &st_cur))
}

/// Outside review r19 F2: `$PWD` (absolute) names the process's working directory. Walked as a
/// writable root is (a link not owned by root refuses), the descriptor the walk ends on must be
/// the same file (`st_dev`, `st_ino`) as `.`; comparing descriptors, not paths, leaves no window
/// for a link flipped between two looks at the text (the policy's own check is by path).
pub fn check_pwd(pwd: &Path) -> Result<(), ResolveError> {
    let r = open(pwd, LastLink::Judge)?;
    let dot = std::fs::metadata(".").map_err(|e| ResolveError::Walk {
        path: pwd.to_path_buf(),
        step: "stat",
        at: PathBuf::from("."),
        source: e,
    })?;
    use std::os::unix::fs::MetadataExt;
    if r.dev == dot.dev() && r.ino == dot.ino() {
        return Ok(());
    }
    Err(ResolveError::PwdNotCwd {
        pwd: pwd.to_path_buf(),
        cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
    })
}

/// [`check_pwd`] where it applies: a `workspace-write` policy whose cwd (its main writable root)
/// is the process's `.`, and `pwd` (the `$PWD` the policy was resolved with) set and absolute.
/// Unset or relative: nothing names how `.` was reached (see the crate README, "Not covered").
pub fn check_policy_pwd(
    policy: &sandbox_policy::EffectivePolicy,
    pwd: Option<&Path>,
) -> Result<(), crate::error::SandboxError> {
    use std::os::unix::fs::MetadataExt;
    let Some(pwd) = pwd.filter(|p| p.is_absolute()) else {
        return Ok(());
    };
    if policy.kind != sandbox_policy::PolicyKind::WorkspaceWrite {
        return Ok(());
    }
    let cwd_is_dot = match (std::fs::metadata(&policy.cwd), std::fs::metadata(".")) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    if !cwd_is_dot {
        return Ok(());
    }
    check_pwd(pwd).map_err(|source| crate::error::SandboxError::Resolve { source })
}

/// Open `rel` (plain components only: no `..`, no `/`) below the directory `start`, one
/// component at a time with `O_PATH | O_NOFOLLOW` (r21 F2: a carve-out is reached from the
/// descriptor its root was walked to, never by a second walk from `/`). A symbolic link on the
/// way or at the end refuses (`ELOOP`): inside a writable root the command could have made it.
/// `rel` empty: a duplicate of `start`. Returns the descriptor and its `fstat`.
pub fn open_beneath(start: BorrowedFd<'_>, rel: &Path) -> io::Result<(OwnedFd, libc::stat)> {
    let mut cur = start.try_clone_to_owned()?;
    let mut st = sys::fstat(cur.as_fd())?;
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        let c = CString::new(name.as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        let next = sys::open_path_nofollow(Some(cur.as_fd()), &c)?;
        st = sys::fstat(next.as_fd())?;
        if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        cur = next;
    }
    Ok((cur, st))
}

/// The path the kernel holds for `fd` now (`/proc/self/fd/N`): where the descriptor landed.
pub fn real_path(fd: &OwnedFd) -> io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// The normal components and `..` of `p`, in order (`/` and `.` dropped).
fn components(p: &OsStr) -> Vec<OsString> {
    Path::new(p)
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: &Resolved, p: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(p).unwrap();
        a.dev == m.dev() && a.ino == m.ino()
    }

    #[test]
    fn pwd_must_walk_to_the_working_directory() {
        // control: the physical cwd walks to `.`
        check_pwd(&std::env::current_dir().unwrap()).unwrap();
        // another directory is refused, naming both
        let dir = tempfile::tempdir().unwrap();
        let other = std::fs::canonicalize(dir.path()).unwrap();
        let e = check_pwd(&other).unwrap_err();
        assert!(matches!(e, ResolveError::PwdNotCwd { .. }), "{e}");
        assert!(e.to_string().contains(&other.display().to_string()), "{e}");
        // a user's link to `.` is refused as a link, not followed to a match
        let link = other.join("l");
        std::os::unix::fs::symlink(std::env::current_dir().unwrap(), &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
        let e = check_pwd(&link).unwrap_err();
        assert!(matches!(e, ResolveError::ForeignSymlink { .. }), "{e}");
    }

    #[test]
    fn open_beneath_walks_plain_components_and_refuses_any_link() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(base.join("root/a/.git")).unwrap();
        std::fs::create_dir_all(base.join("elsewhere/.git")).unwrap();
        std::os::unix::fs::symlink(base.join("elsewhere"), base.join("root/l")).unwrap();
        let root = open(&base.join("root"), LastLink::Judge).unwrap();
        let (fd, st) = open_beneath(root.fd.as_fd(), Path::new("a/.git")).unwrap();
        assert!(same(&Resolved::new(fd, &st), &base.join("root/a/.git")));
        // a link on the way or at the end: ELOOP, whoever owns it (root here)
        for rel in ["l/.git", "l"] {
            let e = open_beneath(root.fd.as_fd(), Path::new(rel)).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{rel}");
        }
        let e = open_beneath(root.fd.as_fd(), Path::new("a/../a")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        // the walk follows the descriptor, not the path: `root` renamed still leads to its `a`
        std::fs::rename(base.join("root"), base.join("moved")).unwrap();
        std::fs::create_dir_all(base.join("root/a/.git")).unwrap();
        let (fd, st) = open_beneath(root.fd.as_fd(), Path::new("a/.git")).unwrap();
        assert!(same(&Resolved::new(fd, &st), &base.join("moved/a/.git")));
    }

    #[test]
    fn plain_directories_and_files_resolve_to_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(base.join("d")).unwrap();
        std::fs::write(base.join("d/f"), "x").unwrap();
        let d = open(&base.join("d"), LastLink::Judge).unwrap();
        assert!(d.is_dir && same(&d, &base.join("d")));
        let f = open(&base.join("d/f"), LastLink::Judge).unwrap();
        assert!(!f.is_dir && same(&f, &base.join("d/f")));
        let up = open(&base.join("d/../d/f"), LastLink::Judge).unwrap();
        assert!(same(&up, &base.join("d/f")));
        let e = open(&base.join("d/f/x"), LastLink::Judge).unwrap_err();
        assert!(matches!(e, ResolveError::NotADirectory { .. }), "{e}");
        let e = open(&base.join("missing"), LastLink::Judge).unwrap_err();
        assert!(e.is_missing(), "{e}");
    }

    #[test]
    fn a_link_owned_by_someone_else_than_root_is_refused_and_roots_is_followed() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        std::os::unix::fs::symlink("real", base.join("link")).unwrap();
        let link = base.join("link");
        let owner = std::fs::symlink_metadata(&link).unwrap().uid();
        if owner == 0 {
            // tests run as root: hand the link to another user for the refusal
            std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
        }
        let e = open(&link.join("."), LastLink::Judge).unwrap_err();
        match &e {
            ResolveError::ForeignSymlink { link: l, owner, .. } => {
                assert_eq!(l, &link);
                assert_ne!(*owner, 0);
            }
            other => panic!("expected a refusal, got {other}"),
        }
        assert!(e.to_string().contains(&link.display().to_string()), "{e}");
        // the last component may be followed on request, whoever owns it
        let followed = open(&link, LastLink::Follow).unwrap();
        assert!(same(&followed, &base.join("real")));
        // control: the same link owned by root is followed
        std::os::unix::fs::lchown(&link, Some(0), Some(0)).unwrap();
        let r = open(&link, LastLink::Judge).unwrap();
        assert!(r.is_dir && same(&r, &base.join("real")));
        assert_eq!(real_path(&r.fd).unwrap(), base.join("real"));
    }

    #[test]
    fn the_cache_starts_below_walked_directories_and_still_judges_what_follows() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(base.join("d/a")).unwrap();
        std::fs::create_dir_all(base.join("d/b")).unwrap();
        std::fs::create_dir_all(base.join("elsewhere")).unwrap();
        let mut cache = Cache::default();
        let a = open_cached(&base.join("d/a"), LastLink::Judge, &mut cache).unwrap();
        assert!(same(&a, &base.join("d/a")));
        assert!(cache.dirs.contains_key(&base.join("d")));
        let b = open_cached(&base.join("d/b"), LastLink::Judge, &mut cache).unwrap();
        assert!(same(&b, &base.join("d/b")));
        // a link below a cached directory is judged as on a walk from `/`
        std::os::unix::fs::symlink(base.join("elsewhere"), base.join("d/l")).unwrap();
        if std::fs::symlink_metadata(base.join("d/l")).unwrap().uid() == 0 {
            std::os::unix::fs::lchown(base.join("d/l"), Some(65534), Some(65534)).unwrap();
        }
        let e = open_cached(&base.join("d/l/x"), LastLink::Judge, &mut cache).unwrap_err();
        assert!(matches!(e, ResolveError::ForeignSymlink { .. }), "{e}");
        // the cached directory is the object walked: `d` swapped for a link afterwards is not
        // followed by a later walk in the same pass
        std::fs::rename(base.join("d"), base.join("d.old")).unwrap();
        std::os::unix::fs::symlink(base.join("elsewhere"), base.join("d")).unwrap();
        let a2 = open_cached(&base.join("d/a"), LastLink::Judge, &mut cache).unwrap();
        assert!(same(&a2, &base.join("d.old/a")));
        // without the cache the swap is met and refused
        std::os::unix::fs::lchown(base.join("d"), Some(65534), Some(65534)).unwrap();
        let e = open(&base.join("d/a"), LastLink::Judge).unwrap_err();
        assert!(matches!(e, ResolveError::ForeignSymlink { .. }), "{e}");
    }
}
