//! `codex login` (browser) end to end: the printed URL, the scripted browser, Ctrl-C, timeout.
// Test code: a failed unwrap is a failed test (clippy.toml allows it in #[test] fns only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use suite_test_support::oauth_mock::{self, MockIssuer};

const WAIT: Duration = Duration::from_secs(60);

struct Login {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    home: tempfile::TempDir,
}

fn spawn_login(mock_url: &str, args: &[&str]) -> Login {
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_codex"))
        .arg("login")
        .arg("--no-browser")
        .args([
            "-c",
            &format!("auth.issuer={mock_url}"),
            "-c",
            "auth.login_port=0",
        ])
        .args(args)
        .env("CODEX_HOME", home.path())
        .env("HOME", home.path())
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
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
    /// The sign-in URL printed on stdout or stderr.
    fn url(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no URL printed: {:?}", self.seen));
            self.seen.push(line.clone());
            if let Some(i) = line.find("http://127.0.0.1") {
                return line[i..].trim().to_string();
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

fn callback_port(auth_url: &str) -> u16 {
    let redirect = oauth_mock::query_param(auth_url, "redirect_uri").unwrap();
    let rest = redirect.strip_prefix("http://localhost:").unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

#[test]
fn browser_login_end_to_end() {
    let mock = MockIssuer::start().unwrap();
    let mut login = spawn_login(&mock.url(), &[]);
    let url = login.url();
    assert!(
        url.starts_with(&format!("{}/oauth/authorize?", mock.url())),
        "{url}"
    );
    let seen = oauth_mock::browse(&url).unwrap();
    let cb = seen.callback.unwrap();
    assert_eq!(cb.status, 200, "{}", cb.body);
    let (code, out, home) = login.wait();
    assert_eq!(code, 0, "{out}");
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
    assert!(!out.contains(&issued.access_token), "token printed: {out}");
}

#[test]
fn ctrl_c_cancels_cleanly() {
    let mock = MockIssuer::start().unwrap();
    let mut login = spawn_login(&mock.url(), &[]);
    let url = login.url();
    let port = callback_port(&url);
    let kill = Command::new("kill")
        .args(["-INT", &login.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (code, out, home) = login.wait();
    assert_eq!(code, 130, "{out}");
    assert!(out.contains("codex: login cancelled"), "{out}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!home.path().join("auth.json").exists());
}

#[test]
fn timeout_flag_ends_the_login() {
    let mock = MockIssuer::start().unwrap();
    let mut login = spawn_login(&mock.url(), &["--timeout", "1s"]);
    login.url();
    let (code, out, _) = login.wait();
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("login timed out after 1s"), "{out}");
}

#[test]
fn exact_port_taken_is_an_error_naming_it() {
    let mock = MockIssuer::start().unwrap();
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let login = spawn_login(&mock.url(), &["--port", &taken.to_string()]);
    let (code, out, _) = login.wait();
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "cannot bind the login callback server to 127.0.0.1:{taken}"
        )),
        "{out}"
    );
}

#[test]
fn plain_http_issuer_off_loopback_is_refused() {
    let login = spawn_login("http://auth.example.com", &[]);
    let (code, out, _) = login.wait();
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("config auth.issuer"), "{out}");
    assert!(
        out.contains("http:// is accepted only for a loopback host"),
        "{out}"
    );
}
