//! Helpers shared by the CLI integration tests: a private `CODEX_HOME` and a `codex` command that
//! ignores the caller's managed config and `OPENAI_API_KEY`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh `CODEX_HOME` (mode 0700) inside a temporary directory removed on drop.
pub struct Home {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn home() -> Home {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("codex-home");
    std::fs::create_dir(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    Home { _dir: dir, path }
}

/// `codex` with `CODEX_HOME=home`, no managed config, and no `OPENAI_API_KEY`.
pub fn codex(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_codex"));
    c.env("CODEX_HOME", home)
        .env(
            "CODEX_MANAGED_CONFIG_PATH",
            suite_test_support::dirs::no_managed_config(home),
        )
        .env_remove("OPENAI_API_KEY")
        // the test's cwd is the package's; cargo's `$PWD` may name another directory, which the
        // sandbox refuses (`$PWD` must name `.`); a caller's `current_dir` sets its own
        .env("PWD", env!("CARGO_MANIFEST_DIR"));
    c
}
