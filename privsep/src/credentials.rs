//! The key from a file: `--api-key-file PATH`, or a systemd credential
//! (`LoadCredential=NAME:...` → `$CREDENTIALS_DIRECTORY/NAME`).
//!
//! This module only opens and checks the file; the caller reads it with the same zeroizing reader
//! as stdin (`secure_main::read_secret` over the returned descriptor), so the key never passes
//! through a buffered copy.
//!
//! Refused (the file is left untouched, the key never read): a symlink as the last component
//! (`O_NOFOLLOW`), anything but a regular file (opened `O_NONBLOCK`, so a FIFO is refused instead
//! of blocking start-up until something writes to it), any group or other permission bit (`mode & 077`:
//! whoever can read it has the key; whoever can write it chooses it), and an owner other than
//! root or the process's effective uid.
//!
//! The same checks open the proxy's policy file ([`open_config_file`]), which is not secret: there
//! only group/other *write* bits are refused (whoever can write it chooses the policy).
//!
//! The directory the file is in is opened first with [`TrustedDir`]'s walk from `/` (every
//! directory on the way root's or ours and writable by nobody else unless sticky, a symlink on
//! the way followed only when root or we own it), and the file is opened relative to it: a user
//! who owns a directory on the path could otherwise swap in another root-owned file that passes
//! every check on the file itself, and choose which key, policy or subuid table root reads
//! (outside review r99 F1: a lenient policy of another proxy, read through a directory the
//! lead's account owned).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::sys;
use crate::trusted_dir::{Leaf, TrustedDir, TrustedDirError};

/// Errors opening a key file; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// `open` failed.
    #[error("cannot open {kind} {path}: {source}")]
    Open {
        /// Which kind of file.
        kind: FileKind,
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A directory on the way to the file is not safe or cannot be opened.
    #[error(
        "refusing {kind} {path}: {source} (keep it in a directory only root can change, such as /etc/responses-api-proxy)"
    )]
    Directory {
        /// Which kind of file.
        kind: FileKind,
        /// The path.
        path: PathBuf,
        /// What the walk found (boxed: it names up to three paths).
        source: Box<TrustedDirError>,
    },
    /// The path does not end in a file name (`/`, `..`).
    #[error("refusing {kind} {path}: not a file name")]
    NotAFileName {
        /// Which kind of file.
        kind: FileKind,
        /// The path.
        path: PathBuf,
    },
    /// `fstat` failed.
    #[error("cannot examine {kind} {path}: {source}")]
    Stat {
        /// Which kind of file.
        kind: FileKind,
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The path is a symlink.
    #[error("refusing {kind} {path}: it is a symlink")]
    Symlink {
        /// Which kind of file.
        kind: FileKind,
        /// The path.
        path: PathBuf,
    },
    /// Not a regular file.
    #[error("refusing {kind} {path}: not a regular file")]
    NotRegular {
        /// Which kind of file.
        kind: FileKind,
        /// The path.
        path: PathBuf,
    },
    /// Loose permissions.
    #[error("refusing {kind} {path}: mode {mode:04o} {}", kind.loose_mode_advice())]
    LooseMode {
        /// Which kind of file.
        kind: FileKind,
        /// The path.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// Owned by someone else.
    #[error("refusing {kind} {path}: owned by uid {owner}, not by root or by us (uid {ours})")]
    Owner {
        /// Which kind of file.
        kind: FileKind,
        /// The path.
        path: PathBuf,
        /// Owner.
        owner: u32,
        /// Our effective uid.
        ours: u32,
    },
    /// `$CREDENTIALS_DIRECTORY` is not set.
    #[error(
        "systemd credential {name:?} requested but $CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the unit)"
    )]
    NoCredentialsDirectory {
        /// The credential.
        name: String,
    },
    /// Bad credential name.
    #[error("invalid credential name {0:?}: a plain file name is required")]
    BadName(String),
    /// `$CREDENTIALS_DIRECTORY` is empty or relative (outside review r101 F2: the credential
    /// was read from the working directory).
    #[error(
        "systemd credential {name:?}: $CREDENTIALS_DIRECTORY={dir:?} is not an absolute path (systemd sets one; refusing to read the credential relative to the working directory)"
    )]
    RelativeCredentialsDirectory {
        /// The credential.
        name: String,
        /// The variable's value.
        dir: PathBuf,
    },
    /// The file's own directory is writable by group or others (outside review r101 F3).
    #[error(
        "refusing {kind} {path}: its directory {dir} is writable by group or others (mode {mode:04o}; sticky or not, anyone may create or hold the name first): keep it in a directory only root can change, such as /etc/responses-api-proxy"
    )]
    OpenDirectory {
        /// Which kind of file.
        kind: FileKind,
        /// The path.
        path: PathBuf,
        /// The directory.
        dir: PathBuf,
        /// Its mode.
        mode: u32,
    },
}

/// Which file [`open_key_file`] / [`open_config_file`] checked (for messages and the mode rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The API key: no group/other bit at all.
    Key,
    /// The policy file: no group/other write bit.
    Policy,
    /// The proxy's subordinate uid table (`--subuid-file`): the policy file's rule.
    Subuid,
}

impl FileKind {
    /// Mode bits that refuse the file.
    fn forbidden_bits(self) -> u32 {
        match self {
            FileKind::Key => 0o077,
            FileKind::Policy | FileKind::Subuid => 0o022,
        }
    }

    fn loose_mode_advice(self) -> &'static str {
        match self {
            FileKind::Key => "gives group or others access; chmod 0400 (or 0600) it",
            FileKind::Policy | FileKind::Subuid => "lets group or others write it; chmod go-w it",
        }
    }
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::Key => "key file",
            FileKind::Policy => "policy file",
            FileKind::Subuid => "subuid file",
        })
    }
}

/// `$CREDENTIALS_DIRECTORY/<name>`.
pub fn systemd_credential(name: &str) -> Result<PathBuf, CredentialError> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(CredentialError::BadName(name.to_owned()));
    }
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
        CredentialError::NoCredentialsDirectory {
            name: name.to_owned(),
        }
    })?;
    credential_in(PathBuf::from(dir), name)
}

/// `dir/name` for [`systemd_credential`], `dir` the value of `$CREDENTIALS_DIRECTORY`.
fn credential_in(dir: PathBuf, name: &str) -> Result<PathBuf, CredentialError> {
    if !dir.is_absolute() {
        return Err(CredentialError::RelativeCredentialsDirectory {
            name: name.to_owned(),
            dir,
        });
    }
    Ok(dir.join(name))
}

/// Opens a key file after checking it per the module rules.
pub fn open_key_file(path: &Path) -> Result<File, CredentialError> {
    open_checked(path, FileKind::Key)
}

/// Opens the proxy's `--subuid-file` with [`open_config_file`]'s checks (named as such).
pub fn open_subuid_file(path: &Path) -> Result<File, CredentialError> {
    open_checked(path, FileKind::Subuid)
}

/// Opens a configuration file (the proxy's `--policy`) with the key file's checks, except that
/// group and others may read it: a symlink, anything but a regular file, a group/other write bit,
/// or an owner other than root or us is refused.
pub fn open_config_file(path: &Path) -> Result<File, CredentialError> {
    open_checked(path, FileKind::Policy)
}

/// The directory a key or policy file is in, opened with [`TrustedDir`]'s walk, and the file's
/// name in it: the key opener holds it to re-open the key on every rotation without resolving
/// the path again.
#[derive(Debug)]
pub struct FileDir {
    dir: TrustedDir,
    name: std::ffi::OsString,
    path: PathBuf,
    kind: FileKind,
}

impl FileDir {
    /// Walks to `path`'s directory (see the module documentation).
    pub fn open(path: &Path, kind: FileKind) -> Result<Self, CredentialError> {
        let name = path
            .file_name()
            .filter(|_| !path.as_os_str().as_encoded_bytes().ends_with(b"/"))
            .ok_or_else(|| CredentialError::NotAFileName {
                kind,
                path: path.to_owned(),
            })?;
        let parent = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = TrustedDir::open(parent, None, Leaf::RootOrUs).map_err(|source| {
            CredentialError::Directory {
                kind,
                path: path.to_owned(),
                source: Box::new(source),
            }
        })?;
        // The walk admits a sticky world-writable directory on the way (`/tmp`); the file's
        // own directory must be closed: there anyone could create the name before root does
        // and keep it (outside review r101 F3: start-up blocked, or root's `printf KEY >` wrote
        // the key into the attacker's file where `protected_regular` is off).
        let (mode, _) =
            sys::fstat_mode_uid(dir.as_fd()).map_err(|source| CredentialError::Stat {
                kind,
                path: path.to_owned(),
                source,
            })?;
        if mode & 0o022 != 0 {
            return Err(CredentialError::OpenDirectory {
                kind,
                path: path.to_owned(),
                dir: dir.path().to_owned(),
                mode: mode & 0o7777,
            });
        }
        Ok(Self {
            dir,
            name: name.to_owned(),
            path: path.to_owned(),
            kind,
        })
    }

    /// The file's directory as the walk resolved it (root's or ours all the way).
    pub fn dir_path(&self) -> &Path {
        self.dir.path()
    }

    /// Opens the file in the directory held open and checks it per the module rules.
    pub fn open_file(&self) -> Result<File, CredentialError> {
        let (kind, path) = (self.kind, &self.path);
        // O_NONBLOCK: opening a FIFO must not wait for a writer before the checks below refuse
        // it (it has no effect on reading a regular file).
        let file = sys::openat(
            Some(self.dir.as_fd()),
            &self.name,
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK,
            0,
        )
        .map(File::from)
        .map_err(|source| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                CredentialError::Symlink {
                    kind,
                    path: path.to_owned(),
                }
            } else {
                CredentialError::Open {
                    kind,
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        check_file(file, path, kind)
    }
}

fn open_checked(path: &Path, kind: FileKind) -> Result<File, CredentialError> {
    FileDir::open(path, kind)?.open_file()
}

fn check_file(file: File, path: &Path, kind: FileKind) -> Result<File, CredentialError> {
    let (mode, owner) =
        sys::fstat_mode_uid(file.as_fd()).map_err(|source| CredentialError::Stat {
            kind,
            path: path.to_owned(),
            source,
        })?;
    if mode & libc::S_IFMT != libc::S_IFREG {
        return Err(CredentialError::NotRegular {
            kind,
            path: path.to_owned(),
        });
    }
    if mode & kind.forbidden_bits() != 0 {
        return Err(CredentialError::LooseMode {
            kind,
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    let ours = crate::effective_uid();
    if owner != 0 && owner != ours {
        return Err(CredentialError::Owner {
            kind,
            path: path.to_owned(),
            owner,
            ours,
        });
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        let mut f = File::create(&p).unwrap();
        f.write_all(b"sk-test\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn private_file_accepted_loose_refused() {
        let d = tempfile::tempdir().unwrap();
        // Control: 0400 and 0600 open.
        open_key_file(&write(d.path(), "a", 0o400)).unwrap();
        open_key_file(&write(d.path(), "b", 0o600)).unwrap();
        // Attack surface: group/other readable or writable.
        for (i, mode) in [0o440, 0o404, 0o620, 0o602, 0o644].into_iter().enumerate() {
            let p = write(d.path(), &format!("loose{i}"), mode);
            let e = open_key_file(&p).unwrap_err();
            assert!(
                matches!(e, CredentialError::LooseMode { mode: m, .. } if m == mode),
                "{mode:o}: {e}"
            );
            assert!(e.to_string().contains("chmod 0400"), "{e}");
            assert!(!e.to_string().contains("sk-test"));
        }
    }

    #[test]
    fn config_file_may_be_read_by_others_but_not_written() {
        let d = tempfile::tempdir().unwrap();
        // Control: world-readable policy files open (and are refused as key files).
        for mode in [0o644, 0o444, 0o600] {
            open_config_file(&write(d.path(), &format!("ok{mode:o}"), mode)).unwrap();
        }
        assert!(open_key_file(&write(d.path(), "k644", 0o644)).is_err());
        for mode in [0o664, 0o646, 0o622] {
            let e = open_config_file(&write(d.path(), &format!("w{mode:o}"), mode)).unwrap_err();
            assert!(
                matches!(e, CredentialError::LooseMode { kind: FileKind::Policy, mode: m, .. } if m == mode),
                "{mode:o}: {e}"
            );
            assert!(
                e.to_string().contains("refusing policy file")
                    && e.to_string().contains("chmod go-w"),
                "{e}"
            );
        }
        let target = write(d.path(), "real", 0o644);
        let link = d.path().join("policy-link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            open_config_file(&link).unwrap_err(),
            CredentialError::Symlink {
                kind: FileKind::Policy,
                ..
            }
        ));
    }

    #[test]
    fn symlink_and_directory_refused() {
        let d = tempfile::tempdir().unwrap();
        let target = write(d.path(), "key", 0o400);
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(
            open_key_file(&link).unwrap_err(),
            CredentialError::Symlink { .. }
        ));
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(matches!(
            open_key_file(&sub).unwrap_err(),
            CredentialError::NotRegular { .. }
        ));
        assert!(matches!(
            open_key_file(&d.path().join("missing")).unwrap_err(),
            CredentialError::Open { .. }
        ));
    }

    #[test]
    fn fifo_refused_without_waiting_for_a_writer() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("key.fifo");
        let st = std::process::Command::new("mkfifo")
            .arg("-m")
            .arg("0600")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(st.success(), "mkfifo failed");
        // A blocking open of a FIFO waits for a writer that never comes: run it aside.
        let (tx, rx) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(open_key_file(&path).map(drop));
        });
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("open_key_file blocked on a FIFO instead of refusing it");
        assert!(
            matches!(r, Err(CredentialError::NotRegular { .. })),
            "{r:?}"
        );
        // Control: a regular file with the same mode opens.
        open_key_file(&write(d.path(), "regular", 0o600)).unwrap();
    }

    #[test]
    fn other_owner_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "k", 0o400);
        std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
        let e = open_key_file(&p).unwrap_err();
        assert!(
            matches!(e, CredentialError::Owner { owner: 65534, .. }),
            "{e}"
        );
    }

    /// Outside review r99 F1: a root-owned file that passes every check on the file itself,
    /// reached through a directory or a symlink another user owns, is refused (that user chose
    /// which file root reads); the same file by a path only root controls opens.
    #[test]
    fn a_file_through_a_directory_or_symlink_another_user_owns_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let roots = base.path().join("roots");
        std::fs::create_dir(&roots).unwrap();
        let key = write(&roots, "key", 0o400);
        let policy = write(&roots, "policy.toml", 0o644);
        // Control: root's directory, root's files.
        open_key_file(&key).unwrap();
        open_config_file(&policy).unwrap();
        // Attack 1: the same files in a directory uid 65534 owns (it can swap them at will).
        let theirs = base.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::copy(&key, theirs.join("key")).unwrap();
        std::fs::copy(&policy, theirs.join("policy.toml")).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        for (e, kind) in [
            (open_key_file(&theirs.join("key")).unwrap_err(), "key file"),
            (
                open_config_file(&theirs.join("policy.toml")).unwrap_err(),
                "policy file",
            ),
        ] {
            assert!(
                matches!(&e, CredentialError::Directory { source, .. }
                    if matches!(**source, TrustedDirError::Unsafe { .. })),
                "{e}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("refusing {kind}")) && msg.contains("owned by uid 65534"),
                "{msg}"
            );
        }
        // Attack 2: a symlink uid 65534 owns, in a sticky world-writable directory (as in
        // /tmp), pointing at root's directory: it chooses which directory is read.
        let sticky = base.path().join("sticky");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        suite_test_support::dirs::symlink_as(65534, &roots, &sticky.join("d"));
        let e = open_config_file(&sticky.join("d/policy.toml")).unwrap_err();
        assert!(
            matches!(&e, CredentialError::Directory { source, .. }
                if matches!(**source, TrustedDirError::UntrustedSymlink { uid: 65534, .. })),
            "{e}"
        );
        // Control: root's own symlink there is followed.
        std::os::unix::fs::symlink(&roots, sticky.join("r")).unwrap();
        open_config_file(&sticky.join("r/policy.toml")).unwrap();
        open_key_file(&sticky.join("r/key")).unwrap();
        // A path that names no file.
        assert!(matches!(
            open_key_file(Path::new("/")).unwrap_err(),
            CredentialError::NotAFileName { .. }
        ));
    }

    /// Outside review r101 F2: an empty or relative `$CREDENTIALS_DIRECTORY` read the credential
    /// from the working directory.
    #[test]
    fn a_relative_credentials_directory_is_refused() {
        for dir in ["", ".", "creds", "./run/credentials/x"] {
            let e = credential_in(PathBuf::from(dir), "openai").unwrap_err();
            assert!(
                matches!(e, CredentialError::RelativeCredentialsDirectory { .. }),
                "{dir:?}: {e}"
            );
        }
        // control: systemd's absolute directory
        assert_eq!(
            credential_in(PathBuf::from("/run/credentials/p.service"), "openai").unwrap(),
            Path::new("/run/credentials/p.service/openai")
        );
    }

    /// Outside review r101 F3: a sticky world-writable directory (as `/tmp`) directly holding
    /// the file is refused (anyone may create the name before root does); on the way to it, it
    /// is admitted (control).
    #[test]
    fn a_file_directly_in_a_sticky_world_writable_directory_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let sticky = base.path().join("sticky");
        std::fs::create_dir(&sticky).unwrap();
        std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let key = write(&sticky, "key", 0o400);
        let policy = write(&sticky, "policy.toml", 0o644);
        for (e, kind) in [
            (open_key_file(&key).unwrap_err(), "key file"),
            (open_config_file(&policy).unwrap_err(), "policy file"),
            (open_subuid_file(&policy).unwrap_err(), "subuid file"),
        ] {
            assert!(
                matches!(e, CredentialError::OpenDirectory { mode: 0o1777, .. }),
                "{e}"
            );
            assert!(e.to_string().contains(&format!("refusing {kind}")), "{e}");
        }
        // control: a closed directory below the sticky one
        let closed = sticky.join("closed");
        std::fs::create_dir(&closed).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o755)).unwrap();
        open_key_file(&write(&closed, "key", 0o400)).unwrap();
        open_config_file(&write(&closed, "policy.toml", 0o644)).unwrap();
    }

    #[test]
    fn credential_names() {
        assert!(matches!(
            systemd_credential("../x").unwrap_err(),
            CredentialError::BadName(_)
        ));
        assert!(matches!(
            systemd_credential("").unwrap_err(),
            CredentialError::BadName(_)
        ));
    }
}
