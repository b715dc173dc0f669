//! The codex spellings of the Linux sandbox: `codex sandbox linux|landlock`, `codex debug landlock`,
//! `codex sandbox check`, `-c sandbox.deny_read=[...]`, and argv[0] = `codex-linux-sandbox`.
//! The attacks themselves are tested in `sandbox-linux/tests/attacks.rs`.

// Test code: a failed set-up step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

const CODEX: &str = env!("CARGO_BIN_EXE_codex");

fn codex(dir: &Path, args: &[&str]) -> Output {
    Command::new(CODEX)
        .args(args)
        .current_dir(dir.join("ws"))
        .env("PWD", dir.join("ws"))
        .env("HOME", dir.join("home"))
        .env("CODEX_HOME", dir.join("codex-home"))
        .env_remove("TMPDIR")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("cli-sbl-")
        .tempdir_in(suite_test_support::dirs::outside_default_roots(
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
        ))
        .unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir_all(base.join("home/.ssh")).unwrap();
    std::fs::create_dir_all(base.join("codex-home")).unwrap();
    std::fs::create_dir_all(base.join("ws")).unwrap();
    std::fs::write(base.join("home/.ssh/id_rsa"), "KEY").unwrap();
    std::fs::write(base.join("secret.txt"), "S").unwrap();
    (dir, base)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_spelling_runs_the_sandbox() {
    let (_d, base) = setup();
    for spelling in [
        &["sandbox", "linux"][..],
        &["sandbox", "landlock"],
        &["debug", "landlock"],
    ] {
        let mut args = spelling.to_vec();
        args.extend([
            "--full-auto",
            "--",
            "sh",
            "-c",
            "echo ok > inside && echo $CODEX_SANDBOX; echo x > /etc/codex-sbl-test",
        ]);
        let out = codex(&base, &args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{spelling:?}: sh exits 2 after the denied write: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout).trim(), "linux", "{spelling:?}");
        // outside the writable roots everything is a read-only mount (namespaces available)
        assert!(
            text(&out.stderr).contains("Read-only file system"),
            "{spelling:?}: {}",
            text(&out.stderr)
        );
        assert!(base.join("ws/inside").exists());
        assert!(!Path::new("/etc/codex-sbl-test").exists());
    }
    // read-only by default: the cwd is not writable; control: --full-auto above wrote it
    let out = codex(
        &base,
        &["sandbox", "linux", "--", "sh", "-c", "echo x > ro-file"],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(!base.join("ws/ro-file").exists());
}

#[test]
fn exit_code_and_missing_command() {
    let (_d, base) = setup();
    assert_eq!(
        codex(&base, &["sandbox", "linux", "--", "sh", "-c", "exit 42"])
            .status
            .code(),
        Some(42)
    );
    assert_eq!(
        codex(
            &base,
            &["sandbox", "linux", "--", "sh", "-c", "kill -TERM $$"]
        )
        .status
        .code(),
        Some(143)
    );
    let out = codex(&base, &["sandbox", "linux", "--", "no-such-cmd-xyz"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        text(&out.stderr).contains("no-such-cmd-xyz: command not found"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn deny_read_defaults_flag_and_config() {
    let (_d, base) = setup();
    let key = base.join("home/.ssh/id_rsa");
    let secret = base.join("secret.txt");
    let out = codex(
        &base,
        &["sandbox", "linux", "--", "cat", key.to_str().unwrap()],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("Permission denied"));
    // control: an undenied file reads fine
    let out = codex(
        &base,
        &["sandbox", "linux", "--", "cat", secret.to_str().unwrap()],
    );
    assert_eq!(text(&out.stdout), "S");
    let out = codex(
        &base,
        &[
            "sandbox",
            "linux",
            "--deny-read",
            secret.to_str().unwrap(),
            "--",
            "cat",
            secret.to_str().unwrap(),
        ],
    );
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn deny_read_from_config_dash_c() {
    let (_d, base) = setup();
    let secret = base.join("secret.txt");
    let c = format!("sandbox.deny_read=[\"{}\"]", secret.display());
    let out = codex(
        &base,
        &[
            "-c",
            &c,
            "sandbox",
            "linux",
            "--",
            "cat",
            secret.to_str().unwrap(),
        ],
    );
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "-c sandbox.deny_read: {}",
        text(&out.stderr)
    );
}

#[test]
fn check_reports_kernel_features() {
    let (_d, base) = setup();
    let out = codex(&base, &["sandbox", "check"]);
    assert_eq!(out.status.code(), Some(0));
    let t = text(&out.stdout);
    assert!(t.contains("landlock: ABI "), "{t}");
    assert!(t.contains("seccomp: available"), "{t}");
    assert!(t.contains("user namespaces: available"), "{t}");
    assert!(t.contains("policy workspace-write: fully enforced"), "{t}");
}

#[test]
fn argv0_codex_linux_sandbox_is_the_helper() {
    let (_d, base) = setup();
    let link = base.join("codex-linux-sandbox");
    std::os::unix::fs::symlink(CODEX, &link).unwrap();
    let out = Command::new(&link)
        .args([
            "--sandbox-policy-cwd",
            base.to_str().unwrap(),
            "--sandbox-policy",
            r#"{"mode":"read-only"}"#,
            "--",
            "sh",
            "-c",
            "echo $CODEX_SANDBOX; exit 7",
        ])
        .env("HOME", base.join("home"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "linux");
}

#[test]
fn deny_read_from_config_file_with_tilde() {
    let (_d, base) = setup();
    std::fs::create_dir_all(base.join("home/private")).unwrap();
    std::fs::write(base.join("home/private/notes"), "N").unwrap();
    std::fs::write(
        base.join("codex-home/config.toml"),
        "[sandbox]\ndeny_read = [\"~/private\"]\n",
    )
    .unwrap();
    let notes = base.join("home/private/notes");
    let out = codex(
        &base,
        &["sandbox", "linux", "--", "cat", notes.to_str().unwrap()],
    );
    assert!(
        text(&out.stderr).contains("Permission denied"),
        "{}",
        text(&out.stderr)
    );
    // control: without the config entry the file is readable
    std::fs::remove_file(base.join("codex-home/config.toml")).unwrap();
    let out = codex(
        &base,
        &["sandbox", "linux", "--", "cat", notes.to_str().unwrap()],
    );
    assert_eq!(text(&out.stdout), "N");
}
