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
            "deny_read ~ without HOME",
            "[sandbox]\ndeny_read = [\"~/.kube\"]\n",
            &[],
            false,
            200,
            "HOME is not set",
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
