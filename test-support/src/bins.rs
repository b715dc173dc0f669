//! Locate the workspace's built binaries from inside a test.
//!
//! Integration tests can only name their own package's binaries (`CARGO_BIN_EXE_*`); tests that
//! drive another package's binary find it next to the test executable: `target/<profile>/NAME`.
//! The README's test command builds every binary first (`cargo build --workspace --bins`).

use std::path::PathBuf;

/// The path of workspace binary `name` in the same target profile directory as this test.
///
/// Panics (this is test-only code) with a message saying how to build it when it is missing:
/// a missing binary must fail the test, never skip it.
#[allow(clippy::panic, clippy::expect_used)]
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let candidate = dir.join(name);
    if candidate.is_file() {
        return candidate;
    }
    panic!(
        "binary {name} not found at {}: run `cargo build --workspace --bins` before `cargo test --workspace`",
        candidate.display()
    );
}

/// `codex-linux-sandbox` (crate `codex-sandbox-cli`) as a string, for the sandbox tests that
/// build shell command lines and argument lists with it.
pub fn sandbox_helper() -> String {
    workspace_bin("codex-linux-sandbox")
        .to_string_lossy()
        .into_owned()
}
