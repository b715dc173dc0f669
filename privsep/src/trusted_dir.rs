//! Opening a directory the process writes into (the proxy's server-info file and dump dir) so
//! that nobody but root and us decides where the writes land.
//!
//! The path is walked from `/` one component at a time: each directory is opened with
//! `openat(parent, name, O_DIRECTORY|O_NOFOLLOW)` and checked on the open descriptor (`fstat`: no
//! window between the check and the use) with the rule of the unix-socket code
//! ([`crate::unix_socket`]): owned by root or by us, not writable by group or others unless it
//! has the sticky bit. A user who controls any directory on the path could otherwise rename a
//! subtree away or put a symlink in its place and choose where root writes; the walk refuses
//! instead. A symlink on the path is followed only when it is owned by root or by us and sits in
//! a directory that passed the check (in a sticky directory anyone may create one, so its owner
//! matters); its target is walked the same way (at most 40 links). `..` goes back to the
//! directory already opened before it. Missing components are created with `mkdirat` and the
//! given mode, and then checked like the others.
//!
//! The directory itself may be allowed to belong to anyone ([`Leaf::AnyOwner`]: the proxy's dump
//! dir belongs to the account the proxy drops to, which must write there) as long as neither
//! group nor others can write it: its owner can then delete or rename entries in it, but since
//! it is held open and every directory above it is trusted, nobody can make the writes land
//! anywhere else.
//!
//! The result is an open directory: files are then created, renamed and removed relative to it
//! (`openat`/`renameat`/`unlinkat`), never through the path again.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};

use crate::sys;
use crate::unix_socket::unsafe_dir_reason;

/// Most symlinks followed while opening one directory (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// Opening a trusted directory failed; each names the directory asked for and the offending path.
#[derive(Debug, thiserror::Error)]
pub enum TrustedDirError {
    /// A component could not be opened or examined.
    #[error("cannot open directory {path} (on the way to {target}): {source}")]
    Open {
        /// The component.
        path: PathBuf,
        /// The directory asked for.
        target: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A missing component could not be created.
    #[error("cannot create directory {path}: {source}")]
    Create {
        /// The component.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A directory on the path is not safe.
    #[error("refusing directory {target}: {path} on its path is {reason}")]
    Unsafe {
        /// The directory asked for.
        target: PathBuf,
        /// The offending directory.
        path: PathBuf,
        /// Why (owner uid and mode).
        reason: String,
    },
    /// A symlink on the path belongs to someone else.
    #[error(
        "refusing directory {target}: symlink {path} on its path is owned by uid {uid}, not by root or by us"
    )]
    UntrustedSymlink {
        /// The directory asked for.
        target: PathBuf,
        /// The symlink.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// More than [`MAX_LINKS`] symlinks.
    #[error("refusing directory {target}: more than {MAX_LINKS} symlinks on its path")]
    TooManyLinks {
        /// The directory asked for.
        target: PathBuf,
    },
}

/// Who may own the directory itself (every directory above it: root or us).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaf {
    /// Root or us, like the directories above it.
    RootOrUs,
    /// Any owner, but not writable by group or others (sticky or not).
    AnyOwner,
    /// Owned by root, by us or by this uid (the account the process drops to), and writable
    /// by nobody else, sticky or not: a directory whose contents are read back as trusted (the
    /// proxy's usage ledger). Its owner can replace every file in it, so it may be nobody but
    /// the process itself (outside review r53 F1: a state directory owned by another local
    /// user, or a root-owned `1777` one, let that user replace the ledger and reset their own
    /// spend or exhaust another user's budget).
    Private(Option<u32>),
}

/// A directory opened by [`TrustedDir::open`]: every directory from `/` to it is owned by root
/// or by us and writable by nobody else (or sticky).
#[derive(Debug)]
pub struct TrustedDir {
    dir: File,
    path: PathBuf,
}

impl TrustedDir {
    /// Opens `path` (relative paths start at the working directory), creating missing
    /// components with `create_mode` when it is `Some`. See the module documentation.
    pub fn open(
        path: &Path,
        create_mode: Option<u32>,
        leaf: Leaf,
    ) -> Result<Self, TrustedDirError> {
        let target = std::path::absolute(path).map_err(|source| TrustedDirError::Open {
            path: path.to_owned(),
            target: path.to_owned(),
            source,
        })?;
        let euid = crate::effective_uid();
        let open_dir = |parent: Option<&File>, name: &OsStr, shown: &Path| {
            sys::openat(
                parent.map(|p| p.as_fd()),
                name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .map(File::from)
            .map_err(|source| TrustedDirError::Open {
                path: shown.to_owned(),
                target: target.clone(),
                source,
            })
        };
        let check = |dir: &File, shown: &Path| -> Result<(), TrustedDirError> {
            let md = dir.metadata().map_err(|source| TrustedDirError::Open {
                path: shown.to_owned(),
                target: target.clone(),
                source,
            })?;
            use std::os::unix::fs::MetadataExt;
            // The directory asked for, unless it follows the rule of those above it: write
            // access by nobody but its owner (sticky or not), and for `Private` the owner too.
            if shown == target {
                let owner_ok = match leaf {
                    Leaf::RootOrUs => true, // the rule below
                    Leaf::AnyOwner => true,
                    Leaf::Private(writer) => {
                        md.uid() == 0 || md.uid() == euid || Some(md.uid()) == writer
                    }
                };
                // `Private` is closed to others too (outside review r59 F3: another user took
                // the flock of a 0755 state dir and kept the proxy from starting, and could
                // watch when the ledger changed).
                let open_to_others = matches!(leaf, Leaf::Private(_)) && md.mode() & 0o007 != 0;
                if leaf != Leaf::RootOrUs && (!owner_ok || md.mode() & 0o022 != 0 || open_to_others)
                {
                    return Err(TrustedDirError::Unsafe {
                        target: target.clone(),
                        path: shown.to_owned(),
                        reason: format!(
                            "owned by uid {} with mode {:o}{}",
                            md.uid(),
                            md.mode() & 0o7777,
                            match leaf {
                                Leaf::Private(_) =>
                                    ": it must belong to root or to the account the process runs as, be writable by nobody else and closed to others (chmod o-rwx)",
                                _ => ": it must be writable by nobody but its owner",
                            }
                        ),
                    });
                }
                if leaf != Leaf::RootOrUs {
                    return Ok(());
                }
            }
            match unsafe_dir_reason(&md, euid) {
                Some(reason) => Err(TrustedDirError::Unsafe {
                    target: target.clone(),
                    path: shown.to_owned(),
                    reason,
                }),
                None => Ok(()),
            }
        };

        let root = open_dir(None, OsStr::new("/"), Path::new("/"))?;
        check(&root, Path::new("/"))?;
        // The directories opened so far, `/` first, with their resolved paths.
        let mut stack: Vec<(File, PathBuf)> = vec![(root, PathBuf::from("/"))];
        // Components still to walk, the next one last.
        let mut todo: Vec<OsString> = components_reversed(&target);
        let mut links = 0;
        while let Some(name) = todo.pop() {
            if name == "." {
                continue;
            }
            if name == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let (parent, parent_path) = stack.last().expect("the stack always holds /");
            let shown = parent_path.join(&name);
            let opened = match sys::lstatat_mode_uid(parent.as_fd(), &name) {
                Ok((mode, uid)) if mode & libc::S_IFMT == libc::S_IFLNK => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(TrustedDirError::TooManyLinks { target });
                    }
                    if uid != 0 && uid != euid {
                        return Err(TrustedDirError::UntrustedSymlink {
                            target,
                            path: shown,
                            uid,
                        });
                    }
                    let link = sys::readlinkat(parent.as_fd(), &name).map_err(|source| {
                        TrustedDirError::Open {
                            path: shown.clone(),
                            target: target.clone(),
                            source,
                        }
                    })?;
                    let link = PathBuf::from(link);
                    if link.is_absolute() {
                        stack.truncate(1);
                    }
                    todo.extend(components_reversed(&link));
                    continue;
                }
                Ok(_) => open_dir(Some(parent), &name, &shown)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound && create_mode.is_some() => {
                    let mode = create_mode.unwrap_or(0o700);
                    match sys::mkdirat(parent.as_fd(), &name, mode) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(source) => {
                            return Err(TrustedDirError::Create {
                                path: shown,
                                source,
                            });
                        }
                    }
                    open_dir(Some(parent), &name, &shown)?
                }
                Err(source) => {
                    return Err(TrustedDirError::Open {
                        path: shown,
                        target,
                        source,
                    });
                }
            };
            check(&opened, &shown)?;
            stack.push((opened, shown));
        }
        let (dir, path) = stack.pop().expect("the stack always holds /");
        Ok(Self { dir, path })
    }

    /// The directory's path as resolved by the walk (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates `name` in the directory: `O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW` with `mode` (the
    /// umask still applies; set the exact mode on the returned file).
    pub fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        check_name(name)?;
        sys::openat(
            Some(self.dir.as_fd()),
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            mode,
        )
        .map(File::from)
    }

    /// Opens `name` for appending, creating it with `mode` if missing
    /// (`O_WRONLY|O_APPEND|O_CREAT|O_NOFOLLOW`: a symlink there is refused, never followed;
    /// `O_NONBLOCK`: a FIFO there never blocks the open, outside review r57 F3).
    pub fn open_append(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        check_name(name)?;
        sys::openat(
            Some(self.dir.as_fd()),
            name,
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            mode,
        )
        .map(File::from)
    }

    /// For a file opened in a [`Leaf::Private`] directory and read back as trusted (the proxy's
    /// usage ledger): a regular file of root, of us or of `writer`, writable by nobody else (an
    /// access ACL's mask shows in the group bits) and with no other name (outside review r55
    /// F2: in an accepted directory, a ledger another user owned, a root-owned `0666` one, or a
    /// hard link to another user's file was replayed and rewritten by that user).
    pub fn check_private_file(f: &File, writer: Option<u32>) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let md = f.metadata()?;
        let euid = crate::effective_uid();
        let uid = md.uid();
        if !md.file_type().is_file()
            || md.nlink() != 1
            || md.mode() & 0o022 != 0
            || !(uid == 0 || uid == euid || Some(uid) == writer)
        {
            return Err(io::Error::other(format!(
                "refused: owned by uid {uid} with mode {:o} and {} name(s); it must be a regular file of root or of the account the process runs as, writable by nobody else, with no other name: move it aside and let the process make a new one (a descriptor opened while it was writable keeps writing after a chmod or chown)",
                md.mode() & 0o7777,
                md.nlink()
            )));
        }
        Ok(())
    }

    /// Opens `name` for reading (`O_RDONLY|O_NOFOLLOW|O_NONBLOCK`: a FIFO there never blocks
    /// the open; check the type of what was opened).
    pub fn open_read(&self, name: &OsStr) -> io::Result<File> {
        check_name(name)?;
        sys::openat(
            Some(self.dir.as_fd()),
            name,
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
            0,
        )
        .map(File::from)
    }

    /// The file type bits (`st_mode & S_IFMT`) of `name`, without following a symlink; `None`
    /// when nothing is there.
    pub fn kind_of(&self, name: &OsStr) -> io::Result<Option<u32>> {
        check_name(name)?;
        match sys::lstatat_mode_uid(self.dir.as_fd(), name) {
            Ok((mode, _)) => Ok(Some(mode & libc::S_IFMT)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Renames `from` to `to`, both in this directory (replacing `to`; a symlink at `to` is
    /// replaced, never followed).
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        sys::renameat(self.dir.as_fd(), from, to)
    }

    /// Opens (creating, 0600) the lock file `name` and takes an exclusive `flock` on it, held
    /// as long as the returned file lives (`Ok(None)`: another process holds it). One process
    /// per directory, where the directory's files are replaced rather than shared (the proxy's
    /// ledger). A file of the directory's own, not the directory: anyone who may open the
    /// directory could lock that (outside review r59 F3).
    /// On a read-only file system (no file can be made, and nothing will be written there
    /// either) the directory itself is locked.
    pub fn lock_file(&self, name: &OsStr, writer: Option<u32>) -> io::Result<Option<File>> {
        let f = match self.open_append(name, 0o600) {
            Ok(f) => {
                Self::check_private_file(&f, writer)?;
                f
            }
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => self.dir.try_clone()?,
            Err(e) => return Err(e),
        };
        match sys::flock_exclusive_now(f.as_fd()) {
            Ok(()) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the non-directory `name`.
    pub fn remove_file(&self, name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        sys::unlinkat(self.dir.as_fd(), name)
    }
}

impl AsFd for TrustedDir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.dir.as_fd()
    }
}

/// A single file name: no `/`, not empty, not `.` or `..`.
fn check_name(name: &OsStr) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a single file name",
        ));
    }
    Ok(())
}

/// The components of `p` after its root, in reverse order (so `pop` yields the first).
fn components_reversed(p: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::CurDir => Some(".".into()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    v.reverse();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn opens_creates_and_follows_trusted_links() {
        let base = tempfile::tempdir().unwrap();
        let d = TrustedDir::open(&base.path().join("a/b"), Some(0o700), Leaf::RootOrUs).unwrap();
        assert!(base.path().join("a/b").is_dir());
        assert_eq!(d.path(), base.path().join("a/b"));
        std::os::unix::fs::symlink(base.path().join("a"), base.path().join("l")).unwrap();
        let via = TrustedDir::open(&base.path().join("l/b/../b"), None, Leaf::RootOrUs).unwrap();
        assert_eq!(via.path(), base.path().join("a/b"));
        let f = via.create_new(OsStr::new("x"), 0o600).unwrap();
        drop(f);
        assert!(via.create_new(OsStr::new("x"), 0o600).is_err());
        assert!(via.create_new(OsStr::new("../x"), 0o600).is_err());
        via.rename(OsStr::new("x"), OsStr::new("y")).unwrap();
        assert_eq!(via.kind_of(OsStr::new("y")).unwrap(), Some(libc::S_IFREG));
        via.remove_file(OsStr::new("y")).unwrap();
        assert_eq!(via.kind_of(OsStr::new("y")).unwrap(), None);
    }

    #[test]
    fn refuses_a_directory_others_can_write() {
        let base = tempfile::tempdir().unwrap();
        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = TrustedDir::open(&open.join("sub"), Some(0o700), Leaf::AnyOwner).unwrap_err();
        assert!(matches!(err, TrustedDirError::Unsafe { .. }), "{err}");
        assert!(err.to_string().contains("mode 0777"), "{err}");
        assert!(
            !open.join("sub").exists(),
            "created below an unsafe directory"
        );
        // Control: sticky is fine.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        TrustedDir::open(&open.join("sub"), Some(0o700), Leaf::RootOrUs).unwrap();
        // The directory itself: another owner is fine with `AnyOwner` unless it is open to
        // group or others; never with `RootOrUs`.
        let theirs = base.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o755)).unwrap();
        TrustedDir::open(&theirs, None, Leaf::AnyOwner).unwrap();
        assert!(TrustedDir::open(&theirs, None, Leaf::RootOrUs).is_err());
        assert!(TrustedDir::open(&theirs.join("x"), Some(0o700), Leaf::AnyOwner).is_err());
        std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(TrustedDir::open(&theirs, None, Leaf::AnyOwner).is_err());
    }

    /// Outside review r53 F1: the proxy's ledger directory owned by another local user (who
    /// then replaced the month's file), or root's and `1777` (anyone made the file first), was
    /// accepted. `Private` takes root, us or the named writer, writable by nobody else.
    #[test]
    fn a_private_directory_belongs_to_root_us_or_the_writer_and_nobody_else_writes_it() {
        let base = tempfile::tempdir().unwrap();
        let dir = |name: &str, uid: u32, mode: u32| {
            let p = base.path().join(name);
            std::fs::create_dir(&p).unwrap();
            std::os::unix::fs::chown(&p, Some(uid), Some(uid)).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let other = dir("other", 65533, 0o700);
        let err = TrustedDir::open(&other, None, Leaf::Private(Some(65534))).unwrap_err();
        assert!(
            err.to_string().contains("owned by uid 65533 with mode 700"),
            "{err}"
        );
        let sticky = dir("sticky", 0, 0o1777);
        let err = TrustedDir::open(&sticky, None, Leaf::Private(None)).unwrap_err();
        assert!(err.to_string().contains("mode 1777"), "{err}");
        // (the sticky hole was in `AnyOwner` too: the dump dir)
        assert!(TrustedDir::open(&sticky, None, Leaf::AnyOwner).is_err());
        // Outside review r59 F3: open to others (another user locked it, or watched the ledger).
        let readable = dir("readable", 0, 0o755);
        let err = TrustedDir::open(&readable, None, Leaf::Private(None)).unwrap_err();
        assert!(
            err.to_string().contains("mode 755") && err.to_string().contains("o-rwx"),
            "{err}"
        );
        let searchable = dir("searchable", 0, 0o701);
        assert!(TrustedDir::open(&searchable, None, Leaf::Private(None)).is_err());
        // Controls: the writer's own directory, and ours (group access is the admin's choice).
        let grouped = dir("grouped", 0, 0o750);
        TrustedDir::open(&grouped, None, Leaf::Private(None)).unwrap();
        let writer = dir("writer", 65534, 0o700);
        TrustedDir::open(&writer, None, Leaf::Private(Some(65534))).unwrap();
        assert!(TrustedDir::open(&writer, None, Leaf::Private(None)).is_err());
        let ours = dir("ours", 0, 0o700);
        TrustedDir::open(&ours, None, Leaf::Private(Some(65534))).unwrap();
        // ...and the same sticky directory above a private one is fine (like /tmp)
        TrustedDir::open(&sticky.join("sub"), Some(0o700), Leaf::Private(None)).unwrap();
    }
}
