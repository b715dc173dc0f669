//! The Python interpreter that the tests drive the official `openai` SDK with.
//!
//! `scripts/test` installs the SDK into its own venv and exports `SUITE_PYTHON`; without it the
//! tests use `python3` from `PATH`. A missing interpreter or SDK fails the test with a message
//! naming the one command that fixes it.

use std::process::Command;

/// The interpreter: `$SUITE_PYTHON`, else `python3`.
pub fn interpreter() -> String {
    std::env::var("SUITE_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// A `Command` for the interpreter, after checking that it imports `openai`.
///
/// # Panics
/// When the interpreter cannot start or lacks the SDK: the test cannot run its check, so it fails.
#[allow(clippy::panic)]
pub fn with_openai_sdk() -> Command {
    let python = interpreter();
    let probe = Command::new(&python)
        .args(["-c", "import openai"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}): run the tests with scripts/test, which installs it")
        });
    if !probe.status.success() {
        panic!(
            "{python} lacks the openai Python SDK: run the tests with scripts/test, which installs \
             it into target/test-venv ({})",
            String::from_utf8_lossy(&probe.stderr).trim()
        );
    }
    Command::new(python)
}
