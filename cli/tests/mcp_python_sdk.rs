//! `codex mcp add/login/get --check/logout` against a server built with the official MCP Python
//! SDK (PyPI `mcp` 2.x: `MCPServer`, FastMCP's new name, with the SDK's own OAuth routes and
//! dynamic registration), installed by this test into its own venv, driven with a scripted
//! browser. Nothing here is mocked on the server side: discovery, registration, PKCE, `resource`,
//! refresh rotation, revocation and the MCP handshake are the SDK's.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{codex, home};
use suite_test_support::oauth_mock::browse;

const FILE_STORE: &[&str] = &["-c", "mcp_oauth_credentials_store=file"];
/// The SDK line this test is written against.
const MCP_REQUIREMENT: &str = "mcp>=2.3,<3";

/// `target/tmp/mcp-python-sdk-venv` with the SDK, created on first use. A failure to create it
/// (no python3-venv, no PyPI) fails the test: it cannot run its check.
fn sdk_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mcp-python-sdk-venv");
    let python = venv.join("bin/python");
    let has_sdk = || {
        Command::new(&python)
            .args([
                "-c",
                "import mcp.server.mcpserver, mcp.server.auth.provider",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has_sdk() {
        return python;
    }
    let base = suite_test_support::python::interpreter();
    let o = Command::new(&base)
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {base} -m venv ({e}): install python3 and python3-venv")
        });
    assert!(
        o.status.success(),
        "{base} -m venv failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            MCP_REQUIREMENT,
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pip install {MCP_REQUIREMENT} failed (PyPI must be reachable): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        has_sdk(),
        "the venv at {} lacks the MCP SDK after pip install",
        venv.display()
    );
    python
}

struct Server {
    child: Child,
    port: u16,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

fn start_server() -> Server {
    let python = sdk_python();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_python/oauth_server.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
    }
    let server = Server { child, port, log };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the Python SDK server did not start: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

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

fn get_check(home: &Path) -> (Option<i32>, serde_json::Value) {
    let o = mcp(home, &["get", "py", "--json", "--check"])
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {:?}", out(&o)));
    (o.status.code(), v)
}

#[test]
fn add_login_check_refresh_logout_against_the_official_python_sdk() {
    let server = start_server();
    let h = home();
    let url = format!("http://127.0.0.1:{}/mcp", server.port);
    let o = mcp(&h.path, &["add", "py", "--url", &url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", out(&o));

    // before login: the SDK asks for OAuth, the check is refused
    let (code, v) = get_check(&h.path);
    assert_eq!(v["auth_status"]["status"], "not_logged_in", "{v}");
    assert_eq!(code, Some(1), "{v}");

    // login with the scripted browser: the SDK's /authorize redirects to our callback
    let mut child = mcp(&h.path, &["login", "py", "--no-browser", "--timeout", "60"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let auth_url = loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            let _ = child.wait();
            panic!("login printed no URL; server log:\n{}", server.log());
        }
        if line.trim().starts_with("http://") {
            break line.trim().to_string();
        }
    };
    let r = browse(&auth_url).unwrap();
    assert_eq!(
        r.authorize.status,
        302,
        "{:?}\n{}",
        r.authorize,
        server.log()
    );
    let cb = r.callback.unwrap();
    assert_eq!(cb.status, 200, "{}\n{}", cb.body, server.log());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    assert!(rest.contains("registered dynamically"), "{rest}");

    // the check: initialize + tools/list with the stored token
    let (code, v) = get_check(&h.path);
    assert_eq!(code, Some(0), "{v}\n{}", server.log());
    assert_eq!(v["auth_status"]["status"], "oauth", "{v}");
    assert_eq!(v["check"]["server_name"], "python-sdk-oauth", "{v}");
    assert_eq!(v["check"]["server_version"], "9.8.7", "{v}");
    assert_eq!(v["check"]["tool_count"], 2, "{v}");
    assert_eq!(v["check"]["auth"], "oauth");

    // make the stored token due: the next check refreshes at the SDK (rotating) and still works
    let path = h.path.join(".credentials.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let key = doc["mcp_servers"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let old_refresh = doc["mcp_servers"][&key]["refresh_token"].clone();
    doc["mcp_servers"][&key]["expires_at"] = serde_json::json!(1);
    std::fs::write(&path, doc.to_string()).unwrap();
    let (code, v) = get_check(&h.path);
    assert_eq!(code, Some(0), "{v}\n{}", server.log());
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_ne!(
        doc["mcp_servers"][&key]["refresh_token"], old_refresh,
        "the SDK rotated the refresh token"
    );
    assert!(server.log().contains("POST /token"), "{}", server.log());

    // logout revokes both tokens at the SDK's /revoke
    let o = mcp(&h.path, &["logout", "py"]).output().unwrap();
    assert!(o.status.success(), "{:?}", out(&o));
    assert!(
        out(&o).1.contains("2 token(s) revoked"),
        "{:?}\n{}",
        out(&o),
        server.log()
    );
    let log = server.log();
    assert!(
        log.contains("REVOKED RefreshToken") && log.contains("REVOKED AccessToken"),
        "{log}"
    );
    let (code, v) = get_check(&h.path);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["auth_status"]["status"], "not_logged_in", "{v}");
}
