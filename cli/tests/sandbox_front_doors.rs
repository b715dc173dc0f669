//! The three sandbox front doors (`codex sandbox linux`, `codex sandbox macos --print-policy`,
//! `codex-linux-sandbox`) give the same answer and exit code for the same input: they all build
//! the policy through `sandbox_policy::SandboxRequest` (issue 19). One row per shared key/flag.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{Home, home};

/// How one door ended: exit code and stderr.
fn ended(mut c: Command) -> (i32, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `codex [-c ...] sandbox linux ARGS -- true` and `codex [-c ...] sandbox macos --print-policy
/// ARGS -- true`, with HOME set (or not) and the config text in CODEX_HOME/config.toml.
fn both(h: &Home, config: &str, args: &[&str], with_home: bool) -> [(i32, String); 2] {
    std::fs::write(h.path.join("config.toml"), config).unwrap();
    let run = |door: &[&str]| {
        let mut c = common::codex(&h.path);
        c.args(["sandbox"])
            .args(door)
            .args(args)
            .args(["--", "true"]);
        if with_home {
            c.env("HOME", h.path.parent().unwrap());
        } else {
            c.env_remove("HOME");
        }
        ended(c)
    };
    [run(&["linux"]), run(&["macos", "--print-policy"])]
}

fn helper(policy_json: &str) -> (i32, String) {
    let mut c = Command::new(suite_test_support::bins::workspace_bin(
        "codex-linux-sandbox",
    ));
    c.args([
        "--sandbox-policy-cwd",
        "/tmp",
        "--sandbox-policy",
        policy_json,
        "--",
        "true",
    ]);
    ended(c)
}

/// (what, config.toml, flags, HOME set, exit code, stderr contains)
type Case = (
    &'static str,
    &'static str,
    &'static [&'static str],
    bool,
    i32,
    &'static str,
);

#[test]
fn the_same_config_gets_the_same_answer_from_every_door() {
    let h = home();
    let cases: &[Case] = &[
        (
            "deny_read as one string",
            "[sandbox]\ndeny_read = \"/srv/x\"\n",
            &[],
            true,
            0,
            "",
        ),
        (
            "deny_read as an array",
            "[sandbox]\ndeny_read = [\"/srv/x\", \"~/.kube\"]\n",
            &[],
            true,
            0,
            "",
        ),
        (
            "deny_read of the wrong type",
            "[sandbox]\ndeny_read = 5\n",
            &[],
            true,
            2,
            "sandbox.deny_read",
        ),
        (
            "deny_read array of numbers",
            "[sandbox]\ndeny_read = [1]\n",
            &[],
            true,
            2,
            "sandbox.deny_read",
        ),
        (
            "deny_read empty entry",
            "[sandbox]\ndeny_read = [\"\"]\n",
            &[],
            true,
            200,
            "an empty string is not a path",
        ),
        (
            // `~` is then the passwd entry's home (review F5: it used to exit 2 on one door)
            "deny_read ~ without HOME",
            "[sandbox]\ndeny_read = [\"~/.kube\"]\n",
            &[],
            false,
            0,
            "",
        ),
        (
            // review F5: ignored on Linux, 202 on macOS
            "deny_read entry with a NUL byte",
            "[sandbox]\ndeny_read = [\"/srv/\\u0000x\"]\n",
            &[],
            true,
            200,
            "contains a NUL byte",
        ),
        (
            // second review round F7: `~user`, `$VAR` and globs were taken as relative paths
            "deny_read entry a shell would expand",
            "[sandbox]\ndeny_read = [\"~root/.ssh\", \"$HOME/x\"]\n",
            &[],
            true,
            200,
            "is not expanded here",
        ),
        (
            // review F5: macOS had no --deny-read and ran it as the command
            "--deny-read flag",
            "",
            &["--deny-read", "/srv/x"],
            true,
            0,
            "",
        ),
        (
            // review F5: an unknown option became the command (exit 127)
            "an unknown option",
            "",
            &["--bogus"],
            true,
            2,
            "unexpected argument '--bogus'",
        ),
        (
            "network_access of the wrong type",
            "[sandbox_workspace_write]\nnetwork_access = \"yes\"\n",
            &["--full-auto"],
            true,
            2,
            "network_access",
        ),
        (
            "--writable-root without --full-auto",
            "",
            &["--writable-root", "/tmp"],
            true,
            2,
            "needs --full-auto",
        ),
        (
            "a writable root that does not exist",
            "",
            &["--full-auto", "--writable-root", "/nonexistent/root"],
            true,
            200,
            "/nonexistent/root",
        ),
        (
            // session 12: HOME (a temp dir here) below the implicit `/tmp` root
            "a writable root that holds the home",
            "",
            &["--full-auto"],
            true,
            201,
            "holds your home directory",
        ),
        (
            "the same, allowed by the flag",
            "",
            &["--full-auto", "--allow-writable-home"],
            true,
            0,
            "",
        ),
        (
            "the same, allowed by the config",
            "[sandbox]\nallow_writable_home = true\n",
            &["--full-auto"],
            true,
            0,
            "",
        ),
        (
            "allow_writable_home of the wrong type",
            "[sandbox]\nallow_writable_home = \"yes\"\n",
            &["--full-auto"],
            true,
            2,
            "allow_writable_home",
        ),
    ];
    for (what, config, flags, with_home, code, says) in cases {
        for (door, (got, err)) in ["linux", "macos"]
            .iter()
            .zip(both(&h, config, flags, *with_home))
        {
            assert_eq!(got, *code, "{what}: codex sandbox {door}: {err}");
            assert!(err.contains(says), "{what}: codex sandbox {door}: {err}");
        }
    }
    // The helper has no config; its JSON policy goes through the same builder and codes.
    let (code, err) =
        helper(r#"{"mode":"workspace-write","writable_roots":["/nonexistent/root"]}"#);
    assert_eq!(code, 200, "{err}");
    assert!(err.contains("/nonexistent/root"), "{err}");
    let (code, err) = helper("{not json");
    assert_eq!(code, 200, "{err}");
    assert_eq!(helper(r#"{"mode":"read-only"}"#).0, 0);
    // review F5: unknown keys were accepted (a misspelt key silently meant its default)
    for json in [
        r#"{"mode":"read-only","network_access":true}"#,
        r#"{"mode":"workspace-write","network_acess":true}"#,
        r#"{"mode":"danger-full-access","x":1}"#,
    ] {
        let (code, err) = helper(json);
        assert_eq!(code, 200, "{json}: {err}");
        assert!(err.contains("unknown field"), "{json}: {err}");
    }
    // second review round F7: a repeated key was "last one wins" (read-only became unconfined)
    for json in [
        r#"{"mode":"read-only","mode":"danger-full-access"}"#,
        r#"{"mode":"read-only","\u006dode":"danger-full-access"}"#,
        r#"{"mode":"workspace-write","network_access":false,"network_access":true}"#,
    ] {
        let (code, err) = helper(json);
        assert_eq!(code, 200, "{json}: {err}");
        assert!(err.contains("duplicate field"), "{json}: {err}");
    }
    // and an unknown option before the command is a usage error here too
    let mut c = Command::new(suite_test_support::bins::workspace_bin(
        "codex-linux-sandbox",
    ));
    c.args(["--sandbox-policy-cwd", "/tmp", "--sandbox-policy"])
        .args([r#"{"mode":"read-only"}"#, "--bogus", "--", "true"]);
    let (code, err) = ended(c);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unexpected argument '--bogus'"), "{err}");
}

#[test]
fn tilde_slash_slash_is_the_home_not_the_root() {
    // review F5: `~//x` became `/x`; a shell says `$HOME/x`
    let h = home();
    let home_dir = h.path.parent().unwrap();
    let out = common::codex(&h.path)
        .env("HOME", home_dir)
        .args([
            "sandbox",
            "macos",
            "--print-policy",
            "--deny-read",
            "~//x",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    // (macOS maps /tmp to /private/tmp, so compare the tail)
    let want = home_dir.join("x").display().to_string();
    assert!(text.lines().any(|l| l.ends_with(&want)), "{want} in {text}");
    assert!(!text.lines().any(|l| l.ends_with("=/x")), "{text}");
}

#[test]
fn network_access_reaches_both_enforcers() {
    // Linux: the child sees CODEX_SANDBOX_NETWORK_DISABLED only without network access.
    // macOS: the generated policy allows outbound network only with it (it used to ignore the key).
    let h = home();
    // stdout of `codex sandbox ARGS` with this config.toml; the run must succeed.
    let stdout_of = |config: &str, args: &[&str]| {
        std::fs::write(h.path.join("config.toml"), config).unwrap();
        let out = common::codex(&h.path)
            .arg("sandbox")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let env_of = |config: &str| {
        stdout_of(config, &["linux", "--full-auto", "--", "env"])
            .contains("CODEX_SANDBOX_NETWORK_DISABLED=1")
    };
    let policy_of = |config: &str| {
        stdout_of(
            config,
            &["macos", "--print-policy", "--full-auto", "--", "true"],
        )
        .contains("(allow network-outbound)")
    };
    let on = "[sandbox_workspace_write]\nnetwork_access = true\n";
    assert!(env_of(""), "network off by default on Linux");
    assert!(!env_of(on), "network_access = true on Linux");
    assert!(!policy_of(""), "network off by default on macOS");
    assert!(policy_of(on), "network_access = true on macOS");
}

#[test]
fn codex_0171s_permission_profile_spelling_maps_onto_the_policies() {
    // issue 18: `codex sandbox [-P :read-only|:workspace|:danger-full-access] [-C DIR] -- CMD`
    let h = home();
    let ws = tempfile::tempdir().unwrap();
    // a HOME outside `/tmp`: the implicit `/tmp` root of `:workspace` would hold it (refused)
    let user_home = tempfile::tempdir_in(suite_test_support::dirs::outside_default_roots(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    ))
    .unwrap();
    let run = |extra: &[&str], script: &str| {
        let mut c = common::codex(&h.path);
        c.arg("sandbox")
            .args(extra)
            .args(["-C", ws.path().to_str().unwrap(), "--", "sh", "-c", script])
            .env("HOME", user_home.path());
        let out = c.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&[], "echo x > f");
    assert_ne!(code, 0, "the default is read-only: {err}");
    assert!(err.contains("Read-only file system"), "{err}");
    let (code, out, err) = run(&["-P", ":workspace"], "echo x > f && cat f && pwd");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains('x') && out.contains(ws.path().to_str().unwrap()),
        "{out}"
    );
    let (code, out, _) = run(
        &["-P", ":danger-full-access"],
        "echo ${CODEX_SANDBOX:-none}",
    );
    assert_eq!((code, out.trim()), (0, "none"));
    let (code, _, err) = run(&["-P", ":nope"], "true");
    assert_eq!(code, 200, "{err}");
    assert!(err.contains(":nope") && err.contains(":workspace"), "{err}");
    // the subcommands keep working next to it
    let (code, err) = ended({
        let mut c = common::codex(&h.path);
        c.args(["sandbox", "linux", "--", "true"]);
        c
    });
    assert_eq!(code, 0, "{err}");
}

/// Outside review r49 F2: an option before the subcommand (`codex sandbox -c k=v linux
/// --full-auto -- true`) made clap take `linux` as the program to run in the read-only
/// sandbox, with `--full-auto -- true` as its arguments. Now a usage error (2) saying where the
/// options go. Control: `-- linux` still runs a program of that name (here: not found, 127).
#[test]
fn a_subcommand_after_an_option_is_a_usage_error_not_the_command() {
    let h = home();
    for pre in [
        &["-c", "k=1"][..],
        &["-P", ":workspace"],
        &["--deny-read", "/x"],
    ] {
        let mut c = common::codex(&h.path);
        c.arg("sandbox")
            .args(pre)
            .args(["linux", "--full-auto", "--", "true"]);
        let (code, stderr) = ended(c);
        assert_eq!(code, 2, "{pre:?}: {stderr}");
        assert!(
            stderr.contains("`linux` after an option would run a program named linux"),
            "{pre:?}: {stderr}"
        );
    }
    let mut c = common::codex(&h.path);
    c.args(["sandbox", "-c", "k=1", "--", "linux"]);
    let (code, stderr) = ended(c);
    assert!(!stderr.contains("after an option"), "{stderr}");
    assert_eq!(code, 127, "{stderr}");
}
