//! The command's own temporary directory (outside review r63 F1-F4).
//!
//! A temporary root (`/tmp`, `$TMPDIR`) is shared with every program of the user's, and many
//! find their server there at a fixed name: an ssh `ControlPath` in `/tmp`, an agent started
//! with `ssh-agent -a /tmp/agent.sock`, PostgreSQL's `/tmp/.s.PGSQL.5432`, tmux under
//! `$TMUX_TMPDIR`. A command that listened at such a name got the user's next `ssh` (its
//! terminal and the typed password), the decrypted key `ssh-add` sent, the `.pgpass` password,
//! and a command run by the user's `tmux ls` outside the sandbox. So in a temporary root the
//! command listens only below a directory of its own, `codex-sandbox-UID` in the first
//! temporary root (0700, the user's), which its `$TMPDIR` names: what honours `$TMPDIR` (mktemp,
//! Python's tempfile and pytest, Go's `t.TempDir`, Rust's `tempfile`, Node's `os.tmpdir`) keeps
//! its sockets working, and no program outside looks for a server there. Elsewhere in a
//! temporary root `listen` fails with `EACCES` (`unix_connect::supervisor::handle_listen`);
//! below a workspace root that lies in a temporary root (a checkout in `/tmp`) it works.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The command's directory for this run, made in `temp_root` (canonical): a new directory
/// with a random name (0700) inside `codex-sandbox-UID` when that is a directory of the user's
/// closed to others, else (another user took the name, or it is not a private directory) a new
/// `codex-sandbox-UID.RANDOM` in the root itself, and a warning naming why. One per run
/// (outside review r65 F2: a server one run left listening in a shared directory made it a
/// read-only carve-out for the next run; each run's directory is held alone now, see
/// `sandbox_policy::own_tmp_parent_name`). Left in place after the run, as `/tmp` files are.
pub fn ensure(temp_root: &Path, program: &str) -> std::io::Result<PathBuf> {
    let uid = crate::sys::getuid();
    let fixed = temp_root.join(sandbox_policy::own_tmp_parent_name(uid));
    match own_private_dir(&fixed, uid) {
        Ok(()) => return new_random_dir(&fixed, "run-"),
        Err(why) => eprintln!(
            "{program}: warning: {}: {why}; the command's $TMPDIR is a new directory instead",
            fixed.display()
        ),
    }
    new_random_dir(temp_root, &format!("codex-sandbox-{uid}."))
}

/// A new directory `prefix` + 12 random hex digits in `dir` (0700, `O_EXCL` by `mkdir`).
fn new_random_dir(dir: &Path, prefix: &str) -> std::io::Result<PathBuf> {
    for _ in 0..16 {
        let mut r = [0u8; 6];
        crate::sys::random_bytes(&mut r)?;
        let suffix: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let made = dir.join(format!("{prefix}{suffix}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&made) {
            Ok(()) => return Ok(made),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(
        "no free name for the command's temporary directory",
    ))
}

/// Makes `dir` (0700) unless it exists; then it must be a directory (not a link) of `uid`'s
/// with no group or other bits, checked on the opened directory itself.
fn own_private_dir(dir: &Path, uid: u32) -> Result<(), String> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.to_string()),
    }
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
        .map_err(|e| format!("not a directory of yours ({e})"))?;
    let m = opened.metadata().map_err(|e| e.to_string())?;
    if m.uid() != uid {
        return Err(format!("it belongs to uid {}", m.uid()));
    }
    if m.mode() & 0o077 != 0 {
        return Err(format!(
            "its mode {:o} opens it to others",
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// The writable roots, the temporary ones among them and the command's own directory: what
/// the name guard's creator needs to keep sockets, links and directories out of a temporary
/// root's shared part (outside review r65 F1).
#[derive(Debug, Clone, Default)]
pub struct SharedTemp {
    pub roots: Vec<PathBuf>,
    pub temp_roots: Vec<PathBuf>,
    pub own: Option<PathBuf>,
}

impl SharedTemp {
    /// Whether `real` (a resolved directory) is in a temporary root's shared part: where the
    /// command may not listen ([`may_listen_at`]).
    pub fn is_shared(&self, real: &Path) -> bool {
        !self.temp_roots.is_empty()
            && !may_listen_at(real, &self.roots, &self.temp_roots, self.own.as_deref())
    }
}

/// Whether the command may listen on a socket file at `real` (its canonical path): outside
/// every temporary root, below `own` (the command's own directory), or where the deepest
/// writable root holding it is not a temporary one (a workspace in `/tmp`).
pub fn may_listen_at(
    real: &Path,
    roots: &[PathBuf],
    temp_roots: &[PathBuf],
    own: Option<&Path>,
) -> bool {
    if !temp_roots.iter().any(|t| real.starts_with(t)) {
        return true;
    }
    if own.is_some_and(|o| real.starts_with(o)) {
        return true;
    }
    let deepest = roots
        .iter()
        .chain(temp_roots)
        .filter(|r| real.starts_with(r))
        .max_by_key(|r| r.components().count());
    deepest.is_some_and(|r| !temp_roots.contains(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_places() {
        let p = PathBuf::from;
        let roots = [p("/tmp/ws"), p("/home/u/proj"), p("/tmp")];
        let temps = [p("/tmp"), p("/home/u/proj/tmp")];
        let own = p("/tmp/codex-sandbox-1000");
        for (path, ok) in [
            ("/tmp/.s.PGSQL.5432", false),
            ("/tmp/ssh-u@host:22", false),
            ("/tmp/x/tmux-1000/default", false),
            ("/tmp/codex-sandbox-1000/pytest-of-u/s.sock", true),
            ("/tmp/codex-sandbox-1000.abc/s", false),
            ("/tmp/codex-sandbox-10000/s", false),
            ("/tmp/ws/run/s.sock", true),
            ("/home/u/proj/s.sock", true),
            ("/home/u/proj/tmp/agent.sock", false),
            ("/run/user/1000/s.sock", true),
        ] {
            assert_eq!(
                may_listen_at(&p(path), &roots, &temps, Some(&own)),
                ok,
                "{path}"
            );
        }
    }

    #[test]
    fn the_fixed_name_is_used_only_when_it_is_a_private_directory_of_the_users() {
        let t = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(t.path()).unwrap();
        let uid = crate::sys::getuid();
        let fixed = root.join(format!("codex-sandbox-{uid}"));
        let first = ensure(&root, "test").unwrap();
        let second = ensure(&root, "test").unwrap();
        assert_eq!(first.parent(), Some(fixed.as_path()));
        assert_eq!(second.parent(), Some(fixed.as_path()));
        assert_ne!(first, second, "one directory per run");
        std::fs::set_permissions(&fixed, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let other = ensure(&root, "test").unwrap();
        assert_eq!(
            other.parent(),
            Some(root.as_path()),
            "a directory open to others is not used"
        );
        assert_eq!(std::fs::metadata(&other).unwrap().mode() & 0o7777, 0o700);
        std::fs::remove_dir_all(&fixed).unwrap();
        std::os::unix::fs::symlink(&other, &fixed).unwrap();
        assert_eq!(
            ensure(&root, "test").unwrap().parent(),
            Some(root.as_path()),
            "a link is not used"
        );
    }
}
