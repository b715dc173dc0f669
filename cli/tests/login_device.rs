//! `codex login --device-auth` end to end: the printed URL and code, a scripted approver, both
//! device flows, refusal, expiry, Ctrl-C.
// Test code: a failed unwrap is a failed test (clippy.toml allows it in #[test] fns only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use suite_test_support::oauth_mock::MockIssuer;
use suite_test_support::scripted_http::{Reply, ScriptedServer};

const WAIT: Duration = Duration::from_secs(60);

struct Login {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    home: tempfile::TempDir,
}

fn spawn_device_login(issuer: &str) -> Login {
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_codex"))
        .args([
            "login",
            "--device-auth",
            "-c",
            &format!("auth.issuer={issuer}"),
        ])
        .env("CODEX_HOME", home.path())
        .env("HOME", home.path())
        .env(
            "CODEX_MANAGED_CONFIG_PATH",
            suite_test_support::dirs::no_managed_config(home.path()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    Login {
        child,
        lines: rx,
        seen: Vec::new(),
        home,
    }
}

impl Login {
    /// The verification URL and the user code, as printed.
    fn prompt(&mut self) -> (String, String) {
        let deadline = Instant::now() + WAIT;
        let mut url = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no prompt printed: {:?}", self.seen));
            self.seen.push(line.clone());
            let t = line.trim();
            if t.starts_with("http://") {
                url = Some(t.to_string());
            } else if url.is_some() && !t.is_empty() && !t.contains(' ') {
                return (url.unwrap(), t.to_string());
            }
        }
    }

    fn wait(mut self) -> (i32, String, tempfile::TempDir) {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("codex login did not exit: {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        (status.code().unwrap_or(-1), self.seen.join("\n"), self.home)
    }
}

fn end_to_end(rfc8628: bool) {
    let mock = MockIssuer::start().unwrap();
    mock.set_advertise_device(rfc8628);
    let mut login = spawn_device_login(&mock.url());
    let (url, code) = login.prompt();
    let want = if rfc8628 { "/device" } else { "/codex/device" };
    assert_eq!(url, format!("{}{want}", mock.url()));
    assert_eq!(mock.pending_user_codes(), vec![code.clone()]);
    // The scripted approver: the user signs in on another device after the CLI has polled.
    let t0 = Instant::now();
    while mock.device_polls(&code) == 0 {
        assert!(t0.elapsed() < WAIT, "never polled");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(mock.approve_device(&code));
    let (status, out, home) = login.wait();
    assert_eq!(status, 0, "{out}");
    assert!(
        out.contains("Signed in as user@example.com (plan: plus)."),
        "{out}"
    );
    let path = home.path().join("auth.json");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let stored: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let issued = &mock.issued()[0];
    assert_eq!(
        stored["tokens"]["access_token"],
        issued.access_token.as_str()
    );
    assert_eq!(
        stored["tokens"]["refresh_token"],
        issued.refresh_token.as_str()
    );
    assert_eq!(stored["tokens"]["account_id"], "acct_mock_123");
    for secret in [
        &issued.access_token,
        &issued.refresh_token,
        &issued.id_token,
    ] {
        assert!(!out.contains(secret.as_str()), "token printed: {out}");
    }
}

#[test]
fn device_login_end_to_end_codex_flow() {
    end_to_end(false);
}

#[test]
fn device_login_end_to_end_rfc8628() {
    end_to_end(true);
}

#[test]
fn refusal_is_a_clear_error_and_stores_nothing() {
    let mock = MockIssuer::start().unwrap();
    let mut login = spawn_device_login(&mock.url());
    let (_, code) = login.prompt();
    assert!(mock.deny_device(&code));
    let (status, out, home) = login.wait();
    assert_eq!(status, 1, "{out}");
    assert!(
        out.contains("codex: the sign-in was refused in the browser (access_denied)"),
        "{out}"
    );
    assert!(!home.path().join("auth.json").exists());
}

#[test]
fn ctrl_c_exits_130_and_stores_nothing() {
    let mock = MockIssuer::start().unwrap();
    let mut login = spawn_device_login(&mock.url());
    let (_, code) = login.prompt();
    let kill = Command::new("kill")
        .args(["-INT", &login.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (status, out, home) = login.wait();
    assert_eq!(status, 130, "{out}");
    assert!(out.contains("codex: login cancelled"), "{out}");
    assert!(!home.path().join("auth.json").exists());
    // Approving afterwards changes nothing.
    mock.approve_device(&code);
    assert!(!home.path().join("auth.json").exists());
}

#[test]
fn expiry_is_a_clear_message() {
    let srv = ScriptedServer::start(vec![]).unwrap();
    let url = srv.url();
    srv.set(
        "/.well-known/openid-configuration",
        vec![Reply::Json(
            200,
            json!({"issuer": url, "token_endpoint": format!("{url}/t"),
            "device_authorization_endpoint": format!("{url}/dev")}),
        )],
    );
    srv.set(
        "/dev",
        vec![Reply::Json(
            200,
            json!({"device_code": "D", "user_code": "BCDF-GHJK",
            "verification_uri": format!("{url}/v"), "expires_in": 3, "interval": 1}),
        )],
    );
    srv.set(
        "/t",
        vec![Reply::Json(400, json!({"error": "authorization_pending"}))],
    );
    let mut login = spawn_device_login(&url);
    let (_, code) = login.prompt();
    assert_eq!(code, "BCDF-GHJK");
    let (status, out, home) = login.wait();
    assert_eq!(status, 1, "{out}");
    assert!(
        out.contains("codex: the device code expired after 3s without being approved: run `codex login --device-auth` again"),
        "{out}"
    );
    assert!(!home.path().join("auth.json").exists());
    assert!(!srv.requests_to("/t").is_empty());
}

#[test]
fn issuer_without_device_login_says_so() {
    let srv = ScriptedServer::start(vec![]).unwrap();
    let (status, out, _) = spawn_device_login(&srv.url()).wait();
    assert_eq!(status, 1, "{out}");
    assert!(
        out.contains("device code login is not enabled for the issuer"),
        "{out}"
    );
}
