//! Directories for sandbox tests.

use std::path::{Path, PathBuf};

/// A base directory for sandbox tests that lies outside every default writable root of the
/// `workspace-write` policy (`/tmp`, `$TMPDIR`): `preferred` (usually `CARGO_TARGET_TMPDIR`)
/// unless it is below one of them (a checkout under `/tmp`), else `/var/tmp`.
///
/// Without this, a test that asserts "writing outside the roots is denied" would pass or fail
/// depending on where the repository was cloned.
pub fn outside_default_roots(preferred: &Path) -> PathBuf {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let pref = canon(preferred);
    let mut roots = vec![canon(Path::new("/tmp"))];
    if let Some(t) = std::env::var_os("TMPDIR").filter(|t| !t.is_empty()) {
        roots.push(canon(Path::new(&t)));
    }
    if roots.iter().any(|r| pref.starts_with(r)) {
        PathBuf::from("/var/tmp")
    } else {
        pref
    }
}

/// A fresh scratch directory for a sandbox test: below [`outside_default_roots`] of
/// `target_tmpdir`, canonical, mode 0755 (world-traversable, so a sandboxed uid 65534 reaches it).
/// Returns the guard (removes it on drop) and its canonical path.
#[allow(clippy::expect_used)]
pub fn sandbox_scratch(prefix: &str, target_tmpdir: &Path) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(outside_default_roots(target_tmpdir))
        .expect("create the scratch directory");
    let base = std::fs::canonicalize(dir.path()).expect("canonicalize the scratch directory");
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755))
        .expect("chmod 0755 the scratch directory");
    (dir, base)
}

/// `ln -s target link` run as `uid` (gid the same): a symbolic link another user owns, as an
/// attacker would plant it. Panics when the link cannot be made (the test cannot run).
#[allow(clippy::expect_used, clippy::panic)]
pub fn symlink_as(uid: u32, target: &Path, link: &Path) {
    use std::os::unix::process::CommandExt;
    let ok = std::process::Command::new("ln")
        .arg("-s")
        .arg(target)
        .arg(link)
        .uid(uid)
        .gid(uid)
        .status()
        .expect("ln")
        .success();
    if !ok {
        panic!(
            "uid {uid} could not plant its symlink {}: the test cannot run",
            link.display()
        );
    }
}

/// `chown -R uid:uid p` without following symlinks.
#[allow(clippy::expect_used)]
pub fn chown_tree(p: &Path, uid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(uid)).expect("lchown");
    if p.is_dir() && !p.is_symlink() {
        for e in std::fs::read_dir(p).expect("read_dir") {
            chown_tree(&e.expect("dir entry").path(), uid);
        }
    }
}

/// An empty managed config for `CODEX_MANAGED_CONFIG_PATH` in `dir`: the CLI honours that
/// variable only for a file owned by root and not writable by others (a missing one falls back
/// to `/etc/codex/managed_config.toml`), so a test that wants no managed layer, whatever the
/// machine has in `/etc`, points it at this file (tests run as root).
/// `dir` is usually the test's CODEX_HOME: when it is not a directory (yet, or a file on
/// purpose) the file goes beside it, so the test's set-up stays as it wrote it.
#[allow(clippy::expect_used)]
pub fn no_managed_config(dir: &Path) -> PathBuf {
    let p = if dir.is_dir() {
        dir.join("none.toml")
    } else {
        let parent = dir.parent().unwrap_or(Path::new("/tmp"));
        parent.join("none-managed.toml")
    };
    if !p.exists() {
        std::fs::write(&p, "# no managed configuration (test)\n")
            .expect("write the empty managed config");
    }
    p
}
