//! `codex mcp add/remove/list/get` end to end: config.toml edited in place (comments kept,
//! atomic, mode kept, symlink kept), the managed config never touched nor overridden, and no
//! secret value in any output.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Output;

use common::{codex, home};

fn run(home: &Path, managed: Option<&Path>, args: &[&str]) -> Output {
    let mut c = codex(home);
    if let Some(m) = managed {
        c.env("CODEX_MANAGED_CONFIG_PATH", m);
    }
    c.env("GH_TOKEN", "ghp_SECRETTOKENVALUE")
        .env("HDR_VAR", "HEADERVARSECRET")
        .args(["mcp"])
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

const ORIGINAL: &str = "# my settings\nmodel = \"o3\"   # keep this comment\n\n\
[mcp_servers.old]\n# the old server\ncommand = \"old-mcp\"  # trailing\n\n\
[other]\nx = 1\n";

#[test]
fn add_and_remove_keep_comments_and_formatting() {
    let h = home();
    let cfg = h.path.join("config.toml");
    std::fs::write(&cfg, ORIGINAL).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o640)).unwrap();

    let o = run(
        &h.path,
        None,
        &["add", "docs", "--env", "A=1", "--", "npx", "-y", "docs"],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(
        text(&o).0.contains("Added MCP server 'docs'"),
        "{:?}",
        text(&o)
    );
    let after = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        after.starts_with(ORIGINAL.trim_end_matches("\n[other]\nx = 1\n")),
        "{after}"
    );
    assert!(after.contains("# keep this comment") && after.contains("# the old server"));
    assert!(
        after.contains("command = \"old-mcp\"  # trailing"),
        "{after}"
    );
    assert!(
        after.contains("[mcp_servers.docs]\ncommand = \"npx\"\nargs = [\"-y\", \"docs\"]\nenv = { A = \"1\" }\n"),
        "{after}"
    );
    assert!(after.contains("[other]\nx = 1"), "{after}");
    let meta = std::fs::metadata(&cfg).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o640, "the file's mode is kept");
    // no temporary file left beside it
    let names: Vec<_> = std::fs::read_dir(&h.path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");

    // replacing says so
    let o = run(&h.path, None, &["add", "docs", "--", "other"]);
    assert!(
        text(&o).0.contains("Updated MCP server 'docs'"),
        "{:?}",
        text(&o)
    );

    let o = run(&h.path, None, &["remove", "old"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let after = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        !after.contains("old-mcp") && !after.contains("# the old server"),
        "{after}"
    );
    assert!(
        after.contains("# keep this comment") && after.contains("[other]"),
        "{after}"
    );

    // unknown name: exit 1, nothing written
    let before = std::fs::read(&cfg).unwrap();
    let o = run(&h.path, None, &["remove", "nope"]);
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(
        text(&o).1.contains("no mcp server named \"nope\""),
        "{:?}",
        text(&o)
    );
    assert_eq!(std::fs::read(&cfg).unwrap(), before);
}

#[test]
fn add_creates_the_config_with_mode_0600() {
    let h = home();
    let o = run(
        &h.path,
        None,
        &["add", "gh", "--url", "https://api.example.com/mcp"],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let cfg = h.path.join("config.toml");
    assert_eq!(std::fs::metadata(&cfg).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        "[mcp_servers.gh]\nurl = \"https://api.example.com/mcp\"\n"
    );
}

#[test]
fn add_creates_a_missing_codex_home_private() {
    let h = home();
    let nested = h.path.join("new-home");
    let o = run(&nested, None, &["add", "a", "--", "cmd"]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(std::fs::metadata(&nested).unwrap().mode() & 0o777, 0o700);
}

#[test]
fn a_symlinked_config_is_edited_at_its_target() {
    let h = home();
    let real = h.path.join("dotfiles-config.toml");
    std::fs::write(&real, "# dotfiles\nmodel = \"o3\"\n").unwrap();
    std::os::unix::fs::symlink(&real, h.path.join("config.toml")).unwrap();
    let o = run(&h.path, None, &["add", "a", "--", "cmd"]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(
        std::fs::symlink_metadata(h.path.join("config.toml"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let t = std::fs::read_to_string(&real).unwrap();
    assert!(
        t.starts_with("# dotfiles\nmodel = \"o3\"\n")
            && t.contains("[mcp_servers.a]\ncommand = \"cmd\""),
        "{t}"
    );
}

#[test]
fn invalid_additions_are_refused_and_nothing_is_written() {
    let h = home();
    let cfg = h.path.join("config.toml");
    std::fs::write(&cfg, ORIGINAL).unwrap();
    for (args, needle) in [
        (
            vec![
                "add",
                "x",
                "--url",
                "http://mcp.example.com/m",
                "--bearer-token-env-var",
                "T",
            ],
            "mcp_servers.x.bearer_token_env_var: refused for a plain http:// URL",
        ),
        (vec!["add", "x", "--url", "ftp://h/m"], "mcp_servers.x.url"),
        (vec!["add", "a b", "--", "cmd"], "invalid server name"),
        (vec!["add", "", "--", "cmd"], "the server name is empty"),
        (
            vec!["add", "x", "--url", "https://h/m", "--env", "A=1"],
            "--env is only valid",
        ),
        (
            vec!["add", "x", "--env", "NOEQUALS", "--", "cmd"],
            "expected KEY=VALUE",
        ),
        (
            vec![
                "add",
                "x",
                "--url",
                "https://h/m",
                "--bearer-token-env-var",
                "ghp_abc-def",
            ],
            "must name an environment variable",
        ),
        (
            vec![
                "add",
                "x",
                "--url",
                "https://h/m",
                "--oauth-client-secret",
                "SEKRIT",
            ],
            "--oauth-client-secret is not supported",
        ),
    ] {
        let o = run(&h.path, None, &args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {out} {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("SEKRIT"), "{err}");
        assert_eq!(std::fs::read_to_string(&cfg).unwrap(), ORIGINAL, "{args:?}");
    }
    // the control: the same server over https is added
    let o = run(
        &h.path,
        None,
        &[
            "add",
            "x",
            "--url",
            "https://mcp.example.com/m",
            "--bearer-token-env-var",
            "T",
        ],
    );
    assert!(o.status.success(), "{:?}", text(&o));
}

#[test]
fn managed_servers_cannot_be_removed_or_overridden() {
    let h = home();
    let managed = h.path.join("managed.toml");
    let managed_text = "# admin\n[mcp_servers.corp]\nurl = \"https://corp.example/mcp\"\n";
    std::fs::write(&managed, managed_text).unwrap();
    let mtime = std::fs::metadata(&managed).unwrap().mtime_nsec();
    let cfg = h.path.join("config.toml");
    std::fs::write(&cfg, "[mcp_servers.mine]\ncommand = \"m\"\n").unwrap();

    let o = run(&h.path, Some(&managed), &["remove", "corp"]);
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
    assert!(
        text(&o).1.contains("defined in the managed config"),
        "{:?}",
        text(&o)
    );
    let o = run(&h.path, Some(&managed), &["add", "corp", "--", "evil"]);
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
    assert!(
        text(&o).1.contains("cannot be added or overridden"),
        "{:?}",
        text(&o)
    );
    assert!(!std::fs::read_to_string(&cfg).unwrap().contains("evil"));
    // the control: the user's own server is removed
    let o = run(&h.path, Some(&managed), &["remove", "mine"]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(std::fs::read_to_string(&managed).unwrap(), managed_text);
    assert_eq!(std::fs::metadata(&managed).unwrap().mtime_nsec(), mtime);

    // a user table of the managed name (edited by hand) is shadowed, with a warning
    std::fs::write(&cfg, "[mcp_servers.corp]\ncommand = \"evil\"\n").unwrap();
    let o = run(&h.path, Some(&managed), &["get", "corp", "--json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out} {err}");
    assert!(
        out.contains("corp.example") && !out.contains("evil"),
        "{out}"
    );
    assert!(err.contains("is ignored: the managed config"), "{err}");
}

#[test]
fn list_and_get_never_print_secret_values() {
    let h = home();
    std::fs::write(
        h.path.join("config.toml"),
        r#"
[mcp_servers.local]
command = "files-mcp"
args = ["--root", "/srv"]
env = { API_KEY = "ENVSECRETVALUE", OTHER = "ENVSECRET2" }

[mcp_servers.gh]
url = "https://api.example.com/mcp?token=URLSECRET"
bearer_token_env_var = "GH_TOKEN"
http_headers = { "X-Api-Key" = "HEADERSECRETVALUE" }
env_http_headers = { "X-Other" = "HDR_VAR" }
"#,
    )
    .unwrap();
    let secrets = [
        "ENVSECRETVALUE",
        "ENVSECRET2",
        "URLSECRET",
        "HEADERSECRETVALUE",
        "ghp_SECRETTOKENVALUE",
        "HEADERVARSECRET",
    ];
    let mut outputs = Vec::new();
    for args in [
        vec!["list"],
        vec!["list", "--json"],
        vec!["get", "local"],
        vec!["get", "local", "--json"],
        vec!["get", "gh"],
        vec!["get", "gh", "--json"],
    ] {
        let o = run(&h.path, None, &args);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{args:?}: {out} {err}");
        for s in secrets {
            assert!(
                !out.contains(s) && !err.contains(s),
                "{args:?} leaked {s}: {out}{err}"
            );
        }
        outputs.push(out);
    }
    // the names are shown (so the redaction is not an empty output)
    assert!(
        outputs[0].contains("API_KEY=*****") && outputs[0].contains("X-Api-Key=*****"),
        "{}",
        outputs[0]
    );
    let json: serde_json::Value = serde_json::from_str(&outputs[1]).unwrap();
    let gh = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "gh")
        .unwrap();
    assert_eq!(gh["transport"]["bearer_token_env_var"], "GH_TOKEN");
    assert_eq!(
        gh["transport"]["url"],
        "https://api.example.com/mcp?token=***"
    );
    let local = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "local")
        .unwrap();
    assert_eq!(
        local["transport"]["env_vars"],
        serde_json::json!(["API_KEY", "OTHER"])
    );
    assert!(outputs[2].contains("args: --root /srv"), "{}", outputs[2]);
}

#[test]
fn an_invalid_config_is_a_usage_error_naming_file_line_and_field() {
    let h = home();
    std::fs::write(
        h.path.join("config.toml"),
        "model = \"o3\"\n\n[mcp_servers.x]\ncommand = \"a\"\nurl = \"https://h/mcp\"\n",
    )
    .unwrap();
    let o = run(&h.path, None, &["list"]);
    assert_eq!(o.status.code(), Some(2));
    let want = format!(
        "{}:5: mcp_servers.x.url: cannot be combined with command",
        h.path.join("config.toml").display()
    );
    assert!(text(&o).1.contains(&want), "{:?}", text(&o));
    // remove works on the broken entry (only TOML syntax is required to edit)
    let o = run(&h.path, None, &["remove", "x"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = run(&h.path, None, &["list"]);
    assert!(o.status.success(), "{:?}", text(&o));
}
