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

/// The directory in `temp_root` (canonical) made or found for the command: the fixed name when
/// it is a directory of the user's closed to others, else (another user took the name, or it is
/// not a private directory) a new one with a random suffix, and a warning naming why.
pub fn ensure(temp_root: &Path, program: &str) -> std::io::Result<PathBuf> {
    let uid = crate::sys::getuid();
    let fixed = temp_root.join(format!("codex-sandbox-{uid}"));
    match own_private_dir(&fixed, uid) {
        Ok(()) => return Ok(fixed),
        Err(why) => eprintln!(
            "{program}: warning: {}: {why}; the command's $TMPDIR is a new directory instead",
            fixed.display()
        ),
    }
    for _ in 0..16 {
        let mut r = [0u8; 6];
        crate::sys::random_bytes(&mut r)?;
        let suffix: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let dir = temp_root.join(format!("codex-sandbox-{uid}.{suffix}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
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
        assert_eq!(ensure(&root, "test").unwrap(), fixed);
        assert_eq!(ensure(&root, "test").unwrap(), fixed, "found again");
        std::fs::set_permissions(&fixed, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let other = ensure(&root, "test").unwrap();
        assert_ne!(other, fixed, "a directory open to others is not used");
        assert_eq!(std::fs::metadata(&other).unwrap().mode() & 0o7777, 0o700);
        std::fs::remove_dir(&fixed).unwrap();
        std::os::unix::fs::symlink(&other, &fixed).unwrap();
        assert_ne!(ensure(&root, "test").unwrap(), fixed, "a link is not used");
    }
}
