//! `codex sandbox macos` on a platform without Seatbelt, and `--print-policy`.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

use std::process::{Command, Output};

fn codex(args: &[&str], home: &std::path::Path, cwd: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codex"))
        .args(args)
        .env("HOME", home)
        .env("CODEX_HOME", home.join("codex-home"))
        .env_remove("TMPDIR")
        .current_dir(cwd)
        .env("PWD", cwd)
        .output()
        .unwrap()
}

#[cfg(not(target_os = "macos"))]
#[test]
fn macos_sandbox_on_linux_fails_with_documented_code_and_message() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        &["sandbox", "macos", "--", "true"][..],
        &["sandbox", "seatbelt", "--", "true"][..],
        &["debug", "seatbelt", "--", "true"][..],
        &["sandbox", "macos", "--full-auto", "--", "true"][..],
    ] {
        let out = codex(args, home.path(), home.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(201), "{args:?}: {stderr}");
        assert!(
            stderr.contains("codex sandbox macos is macOS only"),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn print_policy_passes_credentials_and_roots_as_parameters() {
    // a HOME outside `/tmp`: the implicit `/tmp` root would hold it (refused)
    let home = tempfile::tempdir_in(suite_test_support::dirs::outside_default_roots(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    ))
    .unwrap();
    let ws = home.path().join("ws");
    std::fs::create_dir_all(ws.join(".git")).unwrap();
    let out = codex(
        &[
            "sandbox",
            "macos",
            "--full-auto",
            "--print-policy",
            "--",
            "true",
        ],
        home.path(),
        &ws,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (policy, params) = stdout.split_once("; parameters").unwrap();
    assert!(policy.starts_with("(version 1)"), "{policy}");
    assert!(policy.contains("(deny default)"));
    let base = std::fs::canonicalize(home.path()).unwrap();
    let base = sandbox_macos::paths::seatbelt_path("test", &base).unwrap();
    assert!(
        params.contains(&format!(
            "; DENY_READ_0={}\n",
            base.join("codex-home").display()
        )),
        "{params}"
    );
    assert!(
        params.contains(&format!(
            "; WRITABLE_ROOT_0={}\n",
            base.join("ws").display()
        )),
        "{params}"
    );
    assert!(
        params.contains(&format!(
            "; WRITABLE_ROOT_0_RO_0={}\n",
            base.join("ws/.git").display()
        )),
        "{params}"
    );
    assert!(
        !policy.contains(&base.display().to_string()),
        "no path in the policy text"
    );
}

#[test]
fn writable_root_without_full_auto_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let out = codex(
        &[
            "sandbox",
            "macos",
            "--print-policy",
            "--writable-root",
            "/",
            "--",
            "true",
        ],
        home.path(),
        home.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--writable-root /: needs --full-auto"));
}

#[test]
fn missing_writable_root_is_an_invalid_policy() {
    let home = tempfile::tempdir().unwrap();
    let missing = home.path().join("missing");
    let out = codex(
        &[
            "sandbox",
            "macos",
            "--print-policy",
            "--full-auto",
            "--writable-root",
            missing.to_str().unwrap(),
            "--",
            "true",
        ],
        home.path(),
        home.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(200), "{stderr}");
    assert!(
        stderr.contains("sandbox policy: writable_roots: "),
        "{stderr}"
    );
    assert!(stderr.contains("missing"), "{stderr}");
}

/// The macOS door says what `--allow-writable-home` lets through, as the Linux launcher does
/// (`HOME` below the implicit `/tmp` root here). Control: without the flag the same run is
/// refused (201), and with a home outside every root there is no warning.
#[test]
fn allow_writable_home_is_warned_about_on_the_macos_door_too() {
    let home = tempfile::tempdir_in("/tmp").unwrap();
    let home_path = std::fs::canonicalize(home.path()).unwrap();
    let ws = home_path.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let args = |flag: Option<&'static str>| {
        let mut v = vec!["sandbox", "macos", "--full-auto", "--print-policy"];
        v.extend(flag);
        v.extend(["--", "true"]);
        v
    };
    let out = codex(&args(Some("--allow-writable-home")), &home_path, &ws);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let want = format!(
        "warning: --allow-writable-home: the writable root /tmp holds your home directory {}",
        home_path.display()
    );
    assert!(stderr.contains(&want), "{stderr}");
    let out = codex(&args(None), &home_path, &ws);
    assert_eq!(out.status.code(), Some(201), "{out:?}");
    // control: a home outside the roots, no warning
    let other = tempfile::tempdir_in(suite_test_support::dirs::outside_default_roots(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    ))
    .unwrap();
    let out = codex(&args(Some("--allow-writable-home")), other.path(), &ws);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{out:?}"
    );
}
