//! Every "Validation" item of issue 14, each an error naming the file, the line and the field,
//! with a valid twin that passes (the control).
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use codex_mcp::config::{ConfigError, Transport, load, parse_servers};

const FILE: &str = "/home/u/.codex/config.toml";

fn err(text: &str) -> ConfigError {
    parse_servers(Path::new(FILE), text, false).expect_err(text)
}

/// Assert the error names the file, `line` and `field`.
fn assert_names(text: &str, line: usize, field: &str) -> String {
    let e = err(text);
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("{FILE}:{line}: {field}: ")),
        "expected {FILE}:{line}: {field}: ..., got {msg}"
    );
    assert_eq!(e.field(), Some(field), "{msg}");
    msg
}

fn ok(text: &str) {
    parse_servers(Path::new(FILE), text, false).unwrap_or_else(|e| panic!("{text}\n{e}"));
}

#[test]
fn valid_stdio_and_http_servers() {
    let servers = parse_servers(
        Path::new(FILE),
        r#"
model = "o3"
[mcp_servers.docs]
command = "npx"
args = ["-y", "docs"]
env = { TOKEN = "v" }
cwd = "/tmp"
enabled = false
startup_timeout_sec = 20
tool_timeout_sec = 1.5

[mcp_servers.gh]
url = "https://api.example.com/mcp"
bearer_token_env_var = "GH_TOKEN"
http_headers = { "X-Team" = "a" }
env_http_headers = { "X-Key" = "KEY_VAR" }

[mcp_servers.local]
url = "http://127.0.0.1:8080/mcp"
bearer_token_env_var = "T"
oauth_client_id = "abc"
"#,
        false,
    )
    .unwrap();
    assert_eq!(servers.len(), 3);
    assert_eq!(servers[0].source.line, 3);
    assert!(!servers[0].enabled);
    assert!(matches!(&servers[0].transport, Transport::Stdio { args, .. } if args.len() == 2));
    assert_eq!(servers[1].source.line, 12);
    assert_eq!(servers[0].tool_timeout_sec, Some(1.5));
}

#[test]
fn command_with_url_is_refused() {
    assert_names(
        "[mcp_servers.x]\ncommand = \"a\"\nurl = \"https://h/mcp\"\n",
        3,
        "mcp_servers.x.url",
    );
    ok("[mcp_servers.x]\ncommand = \"a\"\n");
    ok("[mcp_servers.x]\nurl = \"https://h/mcp\"\n");
}

#[test]
fn env_with_url_is_refused() {
    assert_names(
        "[mcp_servers.x]\nurl = \"https://h/mcp\"\n\nenv = { A = \"b\" }\n",
        4,
        "mcp_servers.x.env",
    );
    for k in ["args = [\"a\"]", "cwd = \"/\""] {
        let key = k.split(' ').next().unwrap();
        assert_names(
            &format!("[mcp_servers.x]\nurl = \"https://h/mcp\"\n{k}\n"),
            3,
            &format!("mcp_servers.x.{key}"),
        );
    }
}

#[test]
fn bearer_token_env_var_with_command_is_refused() {
    assert_names(
        "[mcp_servers.x]\ncommand = \"a\"\nbearer_token_env_var = \"T\"\n",
        3,
        "mcp_servers.x.bearer_token_env_var",
    );
    for k in [
        "http_headers = { A = \"b\" }",
        "env_http_headers = { A = \"B\" }",
        "oauth_client_id = \"c\"",
    ] {
        let key = k.split(' ').next().unwrap();
        assert_names(
            &format!("[mcp_servers.x]\ncommand = \"a\"\n{k}\n"),
            3,
            &format!("mcp_servers.x.{key}"),
        );
    }
}

#[test]
fn neither_command_nor_url() {
    assert_names("# c\n[mcp_servers.x]\nenabled = true\n", 2, "mcp_servers.x");
}

#[test]
fn bad_names_are_refused() {
    let msg = assert_names(
        "[mcp_servers.\"\"]\ncommand = \"a\"\n",
        1,
        "mcp_servers.\"\"",
    );
    assert!(msg.contains("empty"), "{msg}");
    for (name, quoted) in [
        ("\"a b\"", "\"a b\""),
        ("\"a.b\"", "\"a.b\""),
        ("\"é\"", "\"é\""),
        ("\"a/b\"", "\"a/b\""),
    ] {
        let msg = assert_names(
            &format!("\n[mcp_servers.{name}]\ncommand = \"a\"\n"),
            2,
            &format!("mcp_servers.{quoted}"),
        );
        assert!(msg.contains("[A-Za-z0-9_-]"), "{msg}");
    }
    ok("[mcp_servers.a-B_9]\ncommand = \"a\"\n");
    // a dotted key form, line of the key
    assert_names(
        "[mcp_servers]\nx.command = \"a\"\n\"y z\".command = \"b\"\n",
        3,
        "mcp_servers.\"y z\"",
    );
}

#[test]
fn url_must_be_http_or_https() {
    for u in [
        "ftp://h/mcp",
        "file:///etc/passwd",
        "ws://h/mcp",
        "not a url",
        "https://",
    ] {
        let msg = assert_names(
            &format!("[mcp_servers.x]\nurl = \"{u}\"\n"),
            2,
            "mcp_servers.x.url",
        );
        assert!(!msg.is_empty());
    }
    assert_names(
        "[mcp_servers.x]\nurl = \"https://u:pw@h/mcp\"\n",
        2,
        "mcp_servers.x.url",
    );
    assert_names(
        "[mcp_servers.x]\nurl = \"https://h/mcp\"\noauth_resource = \"urn:x\"\n",
        3,
        "mcp_servers.x.oauth_resource",
    );
}

#[test]
fn cleartext_http_to_a_remote_host_with_credentials_is_refused() {
    for (k, field) in [
        ("bearer_token_env_var = \"T\"", "bearer_token_env_var"),
        ("oauth_client_id = \"c\"", "oauth_client_id"),
        ("oauth_resource = \"https://h/\"", "oauth_resource"),
        ("scopes = [\"a\"]", "scopes"),
        ("env_http_headers = { X = \"V\" }", "env_http_headers"),
        (
            "http_headers = { Authorization = \"Bearer x\" }",
            "http_headers",
        ),
    ] {
        let msg = assert_names(
            &format!("[mcp_servers.x]\nurl = \"http://mcp.example.com/mcp\"\n{k}\n"),
            3,
            &format!("mcp_servers.x.{field}"),
        );
        assert!(msg.contains("clear text"), "{msg}");
        // controls: https to the same host, and http to loopback
        ok(&format!(
            "[mcp_servers.x]\nurl = \"https://mcp.example.com/mcp\"\n{k}\n"
        ));
        ok(&format!(
            "[mcp_servers.x]\nurl = \"http://127.0.0.1:9/mcp\"\n{k}\n"
        ));
        ok(&format!(
            "[mcp_servers.x]\nurl = \"http://[::1]:9/mcp\"\n{k}\n"
        ));
    }
    // plain http without credentials is allowed (a local dev server)
    ok("[mcp_servers.x]\nurl = \"http://mcp.example.com/mcp\"\n");
    // a host that only looks local
    assert_names(
        "[mcp_servers.x]\nurl = \"http://localhost.evil.example/mcp\"\nbearer_token_env_var = \"T\"\n",
        3,
        "mcp_servers.x.bearer_token_env_var",
    );
}

#[test]
fn types_and_values() {
    for (line, field) in [
        ("command = 1", "command"),
        ("command = \"\"", "command"),
        ("command = \"a\"\nargs = \"x\"", "args"),
        ("command = \"a\"\nargs = [1]", "args[0]"),
        ("command = \"a\"\nenv = { A = 1 }", "env.A"),
        ("command = \"a\"\nenv = { \"1A\" = \"x\" }", "env.1A"),
        ("command = \"a\"\nenabled = \"yes\"", "enabled"),
        (
            "command = \"a\"\nstartup_timeout_sec = 0",
            "startup_timeout_sec",
        ),
        ("command = \"a\"\ntool_timeout_sec = -1", "tool_timeout_sec"),
        (
            "command = \"a\"\ntool_timeout_sec = 1e9",
            "tool_timeout_sec",
        ),
        ("command = \"a\"\ncomand = \"typo\"", "comand"),
        (
            "url = \"https://h\"\nbearer_token_env_var = \"ghp_x-y\"",
            "bearer_token_env_var",
        ),
        (
            "url = \"https://h\"\nhttp_headers = { \"a b\" = \"x\" }",
            "http_headers.\"a b\"",
        ),
        (
            "url = \"https://h\"\nenv_http_headers = { X = \"not-a-var\" }",
            "env_http_headers.X",
        ),
    ] {
        let text = format!("[mcp_servers.x]\n{line}\n");
        let last = text.lines().count();
        let e = err(&text);
        let msg = e.to_string();
        assert_eq!(
            e.field(),
            Some(format!("mcp_servers.x.{field}").as_str()),
            "{text}: {msg}"
        );
        assert!(
            msg.starts_with(&format!("{FILE}:{last}: ")),
            "{text}: {msg}"
        );
    }
    // a secret-looking value that is wrongly typed is not quoted back
    let msg = err("[mcp_servers.x]\ncommand = \"a\"\nenv = { A = 12345678 }\n").to_string();
    assert!(!msg.contains("12345678"), "{msg}");
    let msg = assert_names("mcp_servers = 3\n", 1, "mcp_servers");
    assert!(msg.contains("table"), "{msg}");
    assert_names("[mcp_servers]\nx = 3\n", 2, "mcp_servers.x");
}

#[test]
fn syntax_errors_name_file_and_line() {
    let e = err("a = 1\n[mcp_servers.x\ncommand = \"a\"\n");
    assert!(matches!(e, ConfigError::Syntax { line: 2, .. }), "{e}");
    assert!(e.to_string().starts_with(&format!("{FILE}:2: ")), "{e}");
}

#[test]
fn managed_config_wins_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let user = dir.path().join("config.toml");
    let managed = dir.path().join("managed.toml");
    std::fs::write(
        &user,
        "[mcp_servers.a]\ncommand = \"user-a\"\n[mcp_servers.b]\ncommand = \"user-b\"\n",
    )
    .unwrap();
    std::fs::write(
        &managed,
        "[mcp_servers.a]\nurl = \"https://corp.example/mcp\"\n",
    )
    .unwrap();
    let cfg = load(&user, Some(&managed)).unwrap();
    assert_eq!(cfg.servers.len(), 2);
    let a = cfg.get("a").unwrap();
    assert!(a.source.managed && matches!(a.transport, Transport::Http(_)));
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(cfg.warnings[0].contains("managed"), "{:?}", cfg.warnings);
    // an invalid managed config is an error naming it, not skipped
    std::fs::write(
        &managed,
        "[mcp_servers.a]\ncommand = \"x\"\nurl = \"https://h\"\n",
    )
    .unwrap();
    let e = load(&user, Some(&managed)).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:3: mcp_servers.a.url", managed.display())),
        "{e}"
    );
    // missing files are empty layers
    let cfg = load(
        &dir.path().join("none.toml"),
        Some(&dir.path().join("no.toml")),
    )
    .unwrap();
    assert!(cfg.servers.is_empty());
}
