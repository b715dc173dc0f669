//! Helpers shared by the secure-main integration tests.

use std::process::{Command, Stdio};

/// Run `secure-main-attacker ARGS` (stdin closed), assert it exits 0, and parse the JSON it prints.
pub fn attacker_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_secure-main-attacker"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run attacker");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}
