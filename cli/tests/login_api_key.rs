//! `codex login --with-api-key`, `codex login status`, `codex logout`: the real binary, the real
//! filesystem and the real kernel keyring (made unavailable with `keyctl` for the fallback tests).
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

mod common;
use common::{codex, home};

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const KEY: &str = "sk-proj-TESTKEY0123456789abcdefXYZ12";

fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    // The child may exit before reading (refusals): a broken pipe is fine.
    let _ = input.write_all(stdin);
    drop(input);
    child.wait_with_output().unwrap()
}

fn login(home: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = codex(home);
    c.args(args).args(["login", "--with-api-key"]);
    run(c, stdin)
}

/// `codex login --with-api-key` with `KEY` on stdin; asserts that it succeeds.
fn store_key(home: &Path) {
    let o = login(home, &[], format!("{KEY}\n").as_bytes());
    assert_eq!(o.status.code(), Some(0), "{o:?}");
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn status(home: &Path, args: &[&str]) -> Output {
    let mut c = codex(home);
    c.args(args).args(["login", "status"]);
    run(c, b"")
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

fn no_key_in(o: &Output) {
    assert!(
        !stdout(o).contains(KEY) && !stderr(o).contains(KEY),
        "the key leaked: {o:?}"
    );
}

#[test]
fn stdin_key_is_stored_0600_and_status_masks_it() {
    let h = home();
    let o = login(&h.path, &[], format!("{KEY}\n").as_bytes());
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stderr(&o).contains("Successfully logged in (API key stored in file"),
        "{o:?}"
    );
    no_key_in(&o);
    let auth = h.path.join("auth.json");
    assert_eq!(mode(&auth), 0o600);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    assert_eq!(v["OPENAI_API_KEY"], KEY);

    let o = status(&h.path, &[]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        stdout(&o).trim(),
        format!(
            "Logged in using an API key - sk-proj-...XYZ12 (stored in file {})",
            auth.display()
        )
    );
    no_key_in(&o);
}

#[test]
fn crlf_line_ending_is_trimmed() {
    let h = home();
    let o = login(&h.path, &[], format!("{KEY}\r\n").as_bytes());
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.path.join("auth.json")).unwrap()).unwrap();
    assert_eq!(v["OPENAI_API_KEY"], KEY);
}

#[test]
fn empty_stdin_is_refused_and_creates_nothing() {
    for input in [&b""[..], b"\n", b"\r\n"] {
        let h = home();
        let o = login(&h.path, &[], input);
        assert_eq!(o.status.code(), Some(2), "{o:?}");
        assert_eq!(
            stderr(&o).trim(),
            "codex: no API key on stdin (got an empty line); printenv OPENAI_API_KEY | codex login --with-api-key"
        );
        assert!(!h.path.join("auth.json").exists());
    }
}

#[test]
fn key_with_whitespace_or_control_characters_is_refused_and_nothing_is_overwritten() {
    let h = home();
    store_key(&h.path);
    let before = std::fs::read(h.path.join("auth.json")).unwrap();
    for (input, offset) in [
        (&b"sk-abc def\n"[..], 6),
        (b"sk-abc\tdef\n", 6),
        (b" sk-abcdef\n", 0),
        (b"sk-abc\x01def\n", 6),
        (b"sk-abc\x1b[2Jdef\n", 6),
        (b"sk-abcdef\r", 9), // a lone CR at EOF is not a line ending
    ] {
        let o = login(&h.path, &[], input);
        assert_eq!(o.status.code(), Some(2), "{input:?}: {o:?}");
        assert_eq!(
            stderr(&o).trim(),
            format!(
                "codex: the API key on stdin contains whitespace or a control character at byte {offset}; \
                 pass exactly one key on one line"
            ),
            "{input:?}"
        );
        assert_eq!(
            std::fs::read(h.path.join("auth.json")).unwrap(),
            before,
            "nothing overwritten"
        );
    }
}

#[test]
fn too_long_key_is_refused() {
    let h = home();
    let o = login(&h.path, &[], &vec![b'k'; 5000]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(
        stderr(&o).trim(),
        "codex: the API key on stdin is longer than 4096 bytes"
    );
}

#[test]
fn api_key_flag_is_refused_without_echoing_the_value() {
    let h = home();
    let mut c = codex(&h.path);
    c.args(["login", "--api-key", KEY]);
    let o = run(c, b"");
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        stderr(&o).contains(
            "pipe it on stdin instead: printenv OPENAI_API_KEY | codex login --with-api-key"
        ),
        "{o:?}"
    );
    no_key_in(&o);
    assert!(!h.path.join("auth.json").exists());
    // Hidden from --help.
    let mut c = codex(&h.path);
    c.args(["login", "--help"]);
    let o = run(c, b"");
    assert!(!stdout(&o).contains("--api-key"), "{}", stdout(&o));
    assert!(stdout(&o).contains("--with-api-key"));
}

#[test]
fn a_terminal_on_stdin_is_refused_with_the_hint() {
    // `script` gives the command a pseudo-terminal as stdin.
    let h = home();
    let cmd = format!("{} login --with-api-key", env!("CARGO_BIN_EXE_codex"));
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("CODEX_HOME", &h.path)
        .env(
            "CODEX_MANAGED_CONFIG_PATH",
            suite_test_support::dirs::no_managed_config(&h.path),
        )
        .stdin(Stdio::null())
        .output()
        .expect("`script` (util-linux) is needed to give the CLI a terminal");
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        out.contains("--with-api-key reads the key from stdin, which is a terminal; pipe it in: printenv OPENAI_API_KEY | codex login --with-api-key"),
        "{out}"
    );
    // Control: the same binary with a pipe on stdin proceeds to read (and here stores) the key.
    store_key(&h.path);
}

#[test]
fn codex_home_that_is_a_file_is_refused_and_untouched() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("file");
    std::fs::write(&f, b"not a dir").unwrap();
    let o = login(&f, &[], format!("{KEY}\n").as_bytes());
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(
        stderr(&o).trim(),
        format!("codex: CODEX_HOME {} is not a directory", f.display())
    );
    assert_eq!(std::fs::read(&f).unwrap(), b"not a dir");
}

#[test]
fn symlinked_auth_json_is_refused_and_its_target_untouched() {
    let h = home();
    let target = h.path.parent().unwrap().join("elsewhere");
    std::fs::write(&target, b"precious").unwrap();
    std::os::unix::fs::symlink(&target, h.path.join("auth.json")).unwrap();
    let o = login(&h.path, &[], format!("{KEY}\n").as_bytes());
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "codex: failed to store the API key: refusing {}: it is a symbolic link (credentials are never read or written through a symlink)",
            h.path.join("auth.json").display()
        )
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    let o = status(&h.path, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is a symbolic link"), "{o:?}");
}

#[test]
fn loose_auth_json_is_read_with_a_warning() {
    let h = home();
    store_key(&h.path);
    let auth = h.path.join("auth.json");
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = status(&h.path, &[]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stderr(&o).starts_with(&format!("codex: warning: {} has mode 0644", auth.display())),
        "{o:?}"
    );
    // Control: 0600 gives no warning.
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(stderr(&status(&h.path, &[])), "");
}

#[test]
fn logout_removes_the_file_and_status_says_not_logged_in() {
    let h = home();
    store_key(&h.path);
    let mut c = codex(&h.path);
    c.arg("logout");
    let o = run(c, b"");
    assert_eq!(
        (o.status.code(), stderr(&o).trim()),
        (Some(0), "Successfully logged out")
    );
    assert!(!h.path.join("auth.json").exists());
    let o = status(&h.path, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o).trim(), "Not logged in (credential store: file)");
    let mut c = codex(&h.path);
    c.arg("logout");
    assert_eq!(stderr(&run(c, b"")).trim(), "Not logged in");
}

// ---- keyring ----

const KEYRING: &[&str] = &["-c", "cli_auth_credentials_store=keyring"];
const AUTO: &[&str] = &["-c", "cli_auth_credentials_store=auto"];

fn keyctl_available() {
    let ok = Command::new("keyctl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`keyctl` (Debian package keyutils) is needed to make the keyring unavailable in this test"
    );
}

/// Run codex in a fresh session keyring whose permissions are all removed: the kernel refuses
/// every keyring operation (EACCES), as on a machine without a usable keyring.
fn dead_keyring(home: &Path, args: &[&str], stdin: &[u8]) -> Output {
    keyctl_available();
    let mut c = Command::new("keyctl");
    c.args([
        "session",
        "-",
        "sh",
        "-c",
        "keyctl setperm @s 0 && exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_codex"),
    ])
    .args(args)
    .env("CODEX_HOME", home)
    .env(
        "CODEX_MANAGED_CONFIG_PATH",
        home.join("no-managed-config.toml"),
    );
    run(c, stdin)
}

#[test]
fn keyring_mode_stores_in_the_real_keyring_and_no_file() {
    let h = home();
    let o = login(&h.path, KEYRING, format!("{KEY}\n").as_bytes());
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stderr(&o).contains("stored in OS keyring (kernel keyring (keyutils))"),
        "{o:?}"
    );
    assert!(
        !h.path.join("auth.json").exists(),
        "keyring mode writes no plaintext"
    );
    let o = status(&h.path, KEYRING);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        stdout(&o).trim(),
        "Logged in using an API key - sk-proj-...XYZ12 (stored in OS keyring (kernel keyring (keyutils)))"
    );
    // A separate CODEX_HOME does not see it (one entry per CODEX_HOME).
    let other = home();
    assert_eq!(status(&other.path, KEYRING).status.code(), Some(1));
    let mut c = codex(&h.path);
    c.args(KEYRING).arg("logout");
    assert_eq!(stderr(&run(c, b"")).trim(), "Successfully logged out");
    assert_eq!(status(&h.path, KEYRING).status.code(), Some(1));
}

#[test]
fn auto_mode_with_a_dead_keyring_falls_back_to_the_file_with_a_visible_warning() {
    let h = home();
    let mut args = AUTO.to_vec();
    args.extend(["login", "--with-api-key"]);
    let o = dead_keyring(&h.path, &args, format!("{KEY}\n").as_bytes());
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let err = stderr(&o);
    // (`keyctl session` itself prints "Joined session keyring: N" first.)
    assert!(
        err.contains("codex: warning: the OS keyring is unavailable (keyctl(KEYCTL_GET_KEYRING_ID, session) failed: AccessDenied)"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "credentials were stored in the plaintext file {} (mode 0600)",
            h.path.join("auth.json").display()
        )),
        "{err}"
    );
    assert!(
        err.contains("Successfully logged in (API key stored in file"),
        "{err}"
    );
    no_key_in(&o);
    assert_eq!(mode(&h.path.join("auth.json")), 0o600);
    // Reading back under the dead keyring warns again.
    let mut args = AUTO.to_vec();
    args.extend(["login", "status"]);
    let o = dead_keyring(&h.path, &args, b"");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stderr(&o).contains("reading credentials from the plaintext file"),
        "{o:?}"
    );
    assert!(stdout(&o).contains("sk-proj-...XYZ12"));
}

#[test]
fn control_auto_mode_with_the_keyring_available_writes_no_file() {
    // The same wrapper without `setperm`: the keyring works, no warning, no plaintext.
    keyctl_available();
    let h = home();
    let mut c = Command::new("keyctl");
    c.args(["session", "-", env!("CARGO_BIN_EXE_codex")])
        .args(AUTO)
        .args(["login", "--with-api-key"])
        .env("CODEX_HOME", &h.path)
        .env(
            "CODEX_MANAGED_CONFIG_PATH",
            suite_test_support::dirs::no_managed_config(&h.path),
        );
    let o = run(c, format!("{KEY}\n").as_bytes());
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(!stderr(&o).contains("warning"), "{o:?}");
    assert!(!h.path.join("auth.json").exists());
    let mut c = codex(&h.path);
    c.args(AUTO).arg("logout");
    assert_eq!(stderr(&run(c, b"")).trim(), "Successfully logged out");
}

#[test]
fn keyring_mode_with_a_dead_keyring_fails_and_keeps_the_existing_file() {
    let h = home();
    store_key(&h.path);
    let before = std::fs::read(h.path.join("auth.json")).unwrap();
    let mut args = KEYRING.to_vec();
    args.extend(["login", "--with-api-key"]);
    let o = dead_keyring(&h.path, &args, b"sk-other-key-0123456789\n");
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        stderr(&o).contains("codex: failed to store the API key: OS keyring write failed: keyctl(KEYCTL_GET_KEYRING_ID, session) failed: AccessDenied"),
        "{o:?}"
    );
    assert_eq!(
        std::fs::read(h.path.join("auth.json")).unwrap(),
        before,
        "nothing lost or overwritten"
    );
}

#[test]
fn invalid_store_mode_names_the_value_and_the_allowed_ones() {
    let h = home();
    let o = login(
        &h.path,
        &["-c", "cli_auth_credentials_store=vault"],
        format!("{KEY}\n").as_bytes(),
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        stderr(&o).contains(
            "invalid credential store \"vault\": expected one of \"file\", \"keyring\", \"auto\""
        ),
        "{o:?}"
    );
    assert!(!h.path.join("auth.json").exists());
}

#[test]
fn chatgpt_tokens_show_in_status_and_are_not_used_as_an_api_key() {
    let h = home();
    let auth = h.path.join("auth.json");
    std::fs::write(
        &auth,
        br#"{"OPENAI_API_KEY": null, "tokens": {"id_token": "a.b.c", "access_token": "AT-SECRET",
            "refresh_token": "RT-SECRET", "account_id": "acc-123"}, "last_refresh": "2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = status(&h.path, &[]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        stdout(&o).trim(),
        format!(
            "Logged in using ChatGPT, account acc-123 (stored in file {})",
            auth.display()
        )
    );
    assert!(!stdout(&o).contains("SECRET") && !stderr(&o).contains("SECRET"));
    // `codex exec` against the built-in provider needs an API key: a clear auth error (21), no request.
    let mut c = codex(&h.path);
    c.args(["exec", "hi"]);
    let o = run(c, b"");
    assert_eq!(o.status.code(), Some(21), "{o:?}");
    assert!(
        stderr(&o).contains("requires an API key and the stored ChatGPT sign-in is not an API key"),
        "{o:?}"
    );
    assert!(!stderr(&o).contains("SECRET"));
}
