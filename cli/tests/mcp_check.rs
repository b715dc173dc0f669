//! `codex mcp get NAME --check`: the MCP initialize handshake and tools/list with the official
//! Rust SDK (`rmcp`), over stdio (a small line-delimited JSON-RPC server in Python) and over
//! streamable HTTP (`McpOAuthMock`) with the stored OAuth token, a bearer token from the
//! environment, or none; each failure has a control that succeeds.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{codex, home};
use suite_test_support::mcp_mock::{MOCK_MCP_NAME, MOCK_MCP_TOOLS, MOCK_MCP_VERSION, McpOAuthMock};
use suite_test_support::oauth_mock::browse;

const FILE_STORE: &[&str] = &["-c", "mcp_oauth_credentials_store=file"];

fn mcp(home: &Path, args: &[&str]) -> Command {
    let mut c = codex(home);
    c.args(FILE_STORE).arg("mcp").args(args);
    c
}

fn out(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn check_json(
    home: &Path,
    name: &str,
    env: &[(&str, &str)],
) -> (Option<i32>, serde_json::Value, String) {
    let mut c = mcp(home, &["get", name, "--json", "--check"]);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {:?}", out(&o)));
    (o.status.code(), v, out(&o).1)
}

/// A stdio MCP server: newline-delimited JSON-RPC on stdin/stdout. It answers only when the
/// environment carries the configured `env` value (so a test sees that `env` reached it).
const STDIO_SERVER: &str = r#"
import json, os, sys
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    m = msg.get("method")
    if m == "initialize":
        name = "py-stdio-LEAKED" if "MCP_TEST_SECRET" in os.environ else "py-stdio"
        res = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
               "serverInfo": {"name": name, "version": os.environ.get("STDIO_VERSION", "?")}}
    elif m == "tools/list":
        res = {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in ("one", "two")]}
    else:
        out = {"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32601, "message": "no"}}
        print(json.dumps(out), flush=True)
        continue
    print(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": res}), flush=True)
"#;

#[test]
fn stdio_check_reports_name_version_and_tools() {
    let h = home();
    let script = h.path.join("server.py");
    std::fs::write(&script, STDIO_SERVER).unwrap();
    let python = suite_test_support::python::interpreter();
    let o = mcp(
        &h.path,
        &[
            "add",
            "py",
            "--env",
            "STDIO_VERSION=4.5.6",
            "--",
            &python,
            script.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{:?}", out(&o));
    // a secret in codex's environment does not reach the server; its configured env does
    let (code, v, err) = check_json(&h.path, "py", &[("MCP_TEST_SECRET", "s3cret")]);
    assert_eq!(code, Some(0), "{v} {err}");
    assert_eq!(v["check"]["ok"], true, "{v}");
    assert_eq!(
        v["check"]["server_name"], "py-stdio",
        "the secret leaked into the server"
    );
    assert_eq!(
        v["check"]["server_version"], "4.5.6",
        "env reached the server"
    );
    // the control: the same variable configured in the server's env does reach it
    let o = mcp(
        &h.path,
        &[
            "add",
            "py2",
            "--env",
            "MCP_TEST_SECRET=given",
            "--",
            &python,
            script.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success());
    let (_, v, _) = check_json(&h.path, "py2", &[]);
    assert_eq!(v["check"]["server_name"], "py-stdio-LEAKED", "{v}");
    assert_eq!(v["check"]["tool_count"], 2);
    let o = mcp(&h.path, &["get", "py", "--check"]).output().unwrap();
    assert!(
        out(&o).0.contains("check: ok: py-stdio 4.5.6"),
        "{:?}",
        out(&o)
    );
    // a command that does not exist: exit 1 with the reason
    let o = mcp(&h.path, &["add", "gone", "--", "/nonexistent/mcp-server"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let (code, v, _) = check_json(&h.path, "gone", &[]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["check"]["ok"], false);
    assert!(
        v["check"]["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/mcp-server"),
        "{v}"
    );
    // a command that is not an MCP server (exits at once): a handshake failure, not a hang
    let o = mcp(&h.path, &["add", "notmcp", "--", "true"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let (code, v, _) = check_json(&h.path, "notmcp", &[]);
    assert_eq!(code, Some(1), "{v}");
    assert!(
        v["check"]["error"].as_str().unwrap().contains("initialize"),
        "{v}"
    );
}

#[test]
fn http_check_with_the_stored_oauth_token() {
    let mock = McpOAuthMock::start().unwrap();
    let h = home();
    let o = mcp(&h.path, &["add", "docs", "--url", &mock.mcp_url()])
        .output()
        .unwrap();
    assert!(o.status.success());
    // not logged in: the server refuses the handshake
    let (code, v, _) = check_json(&h.path, "docs", &[]);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["check"]["ok"], false, "{v}");
    assert_eq!(mock.mcp_ok(), 0);
    // log in (scripted browser), then the check passes with the stored token
    let mut child = mcp(
        &h.path,
        &["login", "docs", "--no-browser", "--timeout", "60"],
    )
    .stderr(Stdio::piped())
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let mut reader = std::io::BufReader::new(child.stderr.take().unwrap());
    let url = loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap() == 0 {
            let _ = child.wait();
            panic!("no URL");
        }
        if line.trim().starts_with("http://") {
            break line.trim().to_string();
        }
    };
    assert_eq!(browse(&url).unwrap().callback.unwrap().status, 200);
    assert!(child.wait().unwrap().success());
    let (code, v, err) = check_json(&h.path, "docs", &[]);
    assert_eq!(code, Some(0), "{v} {err}");
    assert_eq!(v["check"]["server_name"], MOCK_MCP_NAME);
    assert_eq!(v["check"]["server_version"], MOCK_MCP_VERSION);
    assert_eq!(v["check"]["tool_count"], MOCK_MCP_TOOLS.len());
    assert_eq!(v["check"]["auth"], "oauth");
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(h.path.join(".credentials.json")).unwrap())
            .unwrap();
    let token = stored["mcp_servers"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let init = mock
        .requests_to("/mcp")
        .into_iter()
        .filter(|r| r.fields.get("method").map(String::as_str) == Some("tools/list"))
        .collect::<Vec<_>>();
    assert_eq!(
        init.last().unwrap().authorization.as_deref(),
        Some(format!("Bearer {token}").as_str())
    );
    assert!(!v.to_string().contains(&token), "the token is not printed");
}

#[test]
fn http_check_with_a_bearer_token_from_the_environment_or_none() {
    let mock = McpOAuthMock::start().unwrap();
    mock.set_oauth(false);
    let h = home();
    std::fs::write(
        h.path.join("config.toml"),
        format!(
            "[mcp_servers.b]\nurl = \"{u}\"\nbearer_token_env_var = \"MCP_CHECK_TOKEN\"\n\
             http_headers = {{ \"X-Team\" = \"blue\" }}\n[mcp_servers.open]\nurl = \"{u}\"\n",
            u = mock.mcp_url()
        ),
    )
    .unwrap();
    // unset variable: refused before any connection
    let before = mock.requests_to("/mcp").len();
    let (code, v, _) = check_json(&h.path, "b", &[]);
    assert_eq!(code, Some(1));
    assert!(
        v["check"]["error"]
            .as_str()
            .unwrap()
            .contains("MCP_CHECK_TOKEN"),
        "{v}"
    );
    assert_eq!(mock.requests_to("/mcp").len(), before);
    // set: sent as the bearer token, never printed
    let (code, v, err) = check_json(&h.path, "b", &[("MCP_CHECK_TOKEN", "tok-SECRET-1")]);
    assert_eq!(code, Some(0), "{v} {err}");
    assert_eq!(v["check"]["auth"], "bearer token ($MCP_CHECK_TOKEN)");
    assert!(!v.to_string().contains("tok-SECRET-1") && !err.contains("tok-SECRET-1"));
    let last = mock.requests_to("/mcp").pop().unwrap();
    assert_eq!(last.authorization.as_deref(), Some("Bearer tok-SECRET-1"));
    // an open server: no credentials at all
    let (code, v, _) = check_json(&h.path, "open", &[]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["check"]["auth"], "none");
    assert!(
        mock.requests_to("/mcp")
            .pop()
            .unwrap()
            .authorization
            .is_none()
    );
}

#[test]
fn a_silent_server_fails_the_check_within_its_startup_timeout() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let h = home();
    std::fs::write(
        h.path.join("config.toml"),
        format!(
            "[mcp_servers.s]\nurl = \"http://127.0.0.1:{port}/mcp\"\nstartup_timeout_sec = 2\n"
        ),
    )
    .unwrap();
    let t0 = std::time::Instant::now();
    let (code, v, _) = check_json(&h.path, "s", &[]);
    assert_eq!(code, Some(1), "{v}");
    assert!(
        v["check"]["error"].as_str().unwrap().contains("within 2s"),
        "{v}"
    );
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        t0.elapsed()
    );
    drop(silent);
}

#[test]
fn a_hostile_servers_error_text_is_printed_escaped_and_without_secrets() {
    // outside review r9 F1, F2, F4: the --check error quoted the server's answer raw (escape
    // sequences, an echoed Authorization header) and the URL with its query
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let mut c = c;
            let mut buf = [0u8; 8192];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match c.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let body = "B\u{1b}]0;PWN\u{7}\u{1b}[2J Bearer SECRETBEARER3 \u{202e}x";
            let _ = write!(
                c,
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let h = home();
    let url = format!("http://127.0.0.1:{port}/mcp?api_key=SECRETQ1");
    let added = mcp(
        &h.path,
        &["add", "r", "--url", &url, "--bearer-token-env-var", "TOK"],
    )
    .output()
    .unwrap();
    assert!(added.status.success(), "{added:?}");
    for extra in [&[][..], &["--json"]] {
        let mut args = vec!["get", "r", "--check"];
        args.extend_from_slice(extra);
        let o = mcp(&h.path, &args)
            .env("TOK", "SECRETBEARER3")
            .output()
            .unwrap();
        let (stdout, stderr) = out(&o);
        let all = format!("{stdout}{stderr}");
        assert!(!o.status.success(), "{all}");
        assert!(
            all.contains("FAILED") || all.contains("\"ok\":false"),
            "{all}"
        );
        for bad in ["SECRETBEARER3", "SECRETQ1", "\u{1b}", "\u{7}", "\u{202e}"] {
            assert!(!all.contains(bad), "{extra:?}: {bad:?} in {all:?}");
        }
    }
    // the add hint masks the query too
    let (stdout, _) = out(&added);
    assert!(!stdout.contains("SECRETQ1"), "{stdout}");
}
