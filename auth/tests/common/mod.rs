//! Shared helpers for the codex-auth integration tests.
#![allow(dead_code)]
// Test-only helpers outside `#[test]` functions: a failed set-up must abort the test.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use codex_auth::{AuthDotJson, SecretString};

/// A fresh CODEX_HOME (mode 0700) inside its own temp dir.
pub fn home() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("codex-home");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    (dir, home)
}

pub fn key_auth(key: &str) -> AuthDotJson {
    AuthDotJson::from_api_key(SecretString::new(key.to_owned()))
}

pub fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

pub fn stored_key(a: &AuthDotJson) -> String {
    a.openai_api_key
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned()
}
