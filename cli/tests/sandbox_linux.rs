//! The codex spellings of the Linux sandbox: `codex sandbox linux|landlock`, `codex debug landlock`,
//! `codex sandbox check`, `-c sandbox.deny_read=[...]`, and argv[0] = `codex-linux-sandbox`.
//! The attacks themselves are tested in `sandbox-linux/tests/attacks.rs`.

// Test code: a failed set-up step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::path::{Path, PathBuf};
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

/// Outside review r19 F1/F2 through the `codex` spellings, as nobody (namespaces available; the
/// policy check is the one `sandbox-linux/tests/cwd_links.rs` runs with and without them):
/// `codex sandbox -P :workspace -C ws/sub` with `ws/sub -> $HOME` planted by an earlier command is
/// refused naming the link (absolute, relative, and `sub/..`), the real directory runs; a shell
/// that `cd`'d through the link before it was swapped for a directory is refused by `$PWD`.
#[test]
fn dash_c_and_a_stale_pwd_through_a_users_link_are_refused() {
    use std::os::unix::fs::chown;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    let (_d, base) = suite_test_support::dirs::sandbox_scratch(
        "cli-sbcwd-",
        Path::new(env!("CARGO_TARGET_TMPDIR")),
    );
    let (home, ws, ch) = (base.join("home"), base.join("ws"), base.join("codex-home"));
    for d in [&home, &ws.join("real"), &ch] {
        std::fs::create_dir_all(d).unwrap();
    }
    let sub = ws.join("sub");
    std::os::unix::fs::symlink(&home, &sub).unwrap();
    for p in [&home, &ws, &ws.join("real"), &ch] {
        chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    std::os::unix::fs::lchown(&sub, Some(NOBODY), Some(NOBODY)).unwrap();
    let run = |mut c: Command| {
        let out = c
            .current_dir(&ws)
            .env("PWD", &ws)
            .env("HOME", &home)
            .env("CODEX_HOME", &ch)
            .env_remove("TMPDIR")
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.code(), text(&out.stderr))
    };
    let dash_c = |dir: &Path| {
        let mut c = Command::new(CODEX);
        c.args(["sandbox", "-P", ":workspace", "-C"]).arg(dir);
        c.args(["--", "sh", "-c", "echo pwned > marker"]);
        c
    };
    for dir in [sub.clone(), PathBuf::from("sub"), sub.join("d/..")] {
        if dir.ends_with("..") {
            std::fs::create_dir_all(home.join("d")).unwrap();
            chown(home.join("d"), Some(NOBODY), Some(NOBODY)).unwrap();
        }
        let (code, err) = run(dash_c(&dir));
        assert_eq!(code, Some(200), "-C {}: refused: {err}", dir.display());
        assert!(
            err.contains("goes through the symbolic link")
                && err.contains(&sub.display().to_string()),
            "-C {}: names the link: {err}",
            dir.display()
        );
        assert!(
            !home.join("marker").exists(),
            "-C {}: $HOME written",
            dir.display()
        );
    }
    // control: -C of the real directory (absolute and relative) runs there
    for dir in [ws.join("real"), PathBuf::from("real")] {
        let (code, err) = run(dash_c(&dir));
        assert_eq!(code, Some(0), "-C {}: control runs: {err}", dir.display());
        assert!(ws.join("real/marker").exists());
        std::fs::remove_file(ws.join("real/marker")).unwrap();
    }
    // F2: cd through the link, the link swapped for a directory, then `codex sandbox linux`
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(r#"cd "$0" || exit 90; rm -- "$0" && mkdir -- "$0" || exit 91; exec "$@""#)
        .arg(&sub)
        .arg(CODEX)
        .args([
            "sandbox",
            "linux",
            "--full-auto",
            "--",
            "sh",
            "-c",
            "echo pwned > marker",
        ]);
    let (code, err) = run(c);
    assert!(
        std::fs::symlink_metadata(&sub).unwrap().is_dir(),
        "the swap happened"
    );
    assert_eq!(code, Some(200), "stale $PWD refused: {err}");
    assert!(err.contains("is not the directory $PWD names"), "{err}");
    assert!(
        !home.join("marker").exists(),
        "$HOME written through a stale $PWD"
    );
    // control: $PWD naming `.` runs
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(r#"cd "$0" || exit 90; exec "$@""#)
        .arg(&sub)
        .arg(CODEX)
        .args([
            "sandbox",
            "linux",
            "--full-auto",
            "--",
            "sh",
            "-c",
            "echo pwned > marker",
        ]);
    let (code, err) = run(c);
    assert_eq!(code, Some(0), "control runs: {err}");
    assert!(sub.join("marker").exists());
}
