//! `codex app-server` as a child process over pipes, against the mock OAuth issuer.
// Test code: a failed unwrap is a failed test (clippy.toml allows it in #[test] fns only).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use suite_test_support::oauth_mock::{self, MockIssuer};
use suite_test_support::tls::TestCa;

const WAIT: Duration = Duration::from_secs(60);

struct AppServer {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: mpsc::Receiver<Value>,
    pending: Vec<Value>,
    stderr: std::thread::JoinHandle<String>,
    home: tempfile::TempDir,
    next_id: u64,
}

impl AppServer {
    fn spawn(mock: &MockIssuer, extra: &[&str]) -> Self {
        Self::spawn_with(mock, extra, &[])
    }

    fn spawn_with(mock: &MockIssuer, extra: &[&str], envs: &[(&str, &Path)]) -> Self {
        let home = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_codex"));
        cmd.arg("app-server")
            .arg("-c")
            .arg(format!("auth.issuer={}", mock.url()))
            .arg("-c")
            .arg("auth.login_port=0");
        for e in extra {
            cmd.arg("-c").arg(e);
        }
        cmd.env("CODEX_HOME", home.path())
            .env("HOME", home.path())
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // stdout carries only protocol: a non-JSON line is a test failure.
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|_| Value::String(format!("NON-JSON LINE: {line}")));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
            s
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            rx,
            pending: Vec::new(),
            stderr,
            home,
            next_id: 1000,
        }
    }

    fn auth_json(&self) -> PathBuf {
        self.home.path().join("auth.json")
    }

    fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    }

    /// Send a request, return its id.
    fn send(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_raw(&msg.to_string());
        id
    }

    fn next_matching(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    assert!(!v.is_string(), "{v}");
                    if pred(&v) {
                        return v;
                    }
                    self.pending.push(v);
                }
                Err(_) => panic!("no {what} within {WAIT:?}; seen: {:?}", self.pending),
            }
        }
    }

    fn response(&mut self, id: u64) -> Value {
        self.next_matching(&format!("response {id}"), |v| v["id"] == json!(id))
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params);
        self.response(id)
    }

    fn result(&mut self, method: &str, params: Value) -> Value {
        let r = self.request(method, params);
        assert!(r.get("error").is_none(), "{method}: {r}");
        r["result"].clone()
    }

    fn notification(&mut self, method: &str) -> Value {
        let m = method.to_string();
        self.next_matching(method, move |v| {
            v["method"] == json!(m) && v.get("id").is_none()
        })["params"]
            .clone()
    }

    fn login_complete(&mut self, login_id: &str) -> Value {
        let id = login_id.to_string();
        self.next_matching("loginChatGptComplete", move |v| {
            v["method"] == "loginChatGptComplete" && v["params"]["loginId"] == json!(id)
        })["params"]
            .clone()
    }

    /// Close stdin and wait for the exit; returns the status, the remaining messages and stderr.
    fn finish(mut self) -> (ExitStatus, Vec<Value>, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("app-server did not exit after EOF");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut rest = std::mem::take(&mut self.pending);
        while let Ok(v) = self.rx.recv_timeout(Duration::from_secs(5)) {
            rest.push(v);
        }
        for v in &rest {
            assert!(!v.is_string(), "{v}");
        }
        let stderr = self.stderr.join().unwrap();
        (status, rest, stderr)
    }
}

fn callback_port(auth_url: &str) -> u16 {
    let redirect = oauth_mock::query_param(auth_url, "redirect_uri").unwrap();
    url_port(&redirect)
}

fn url_port(url: &str) -> u16 {
    let rest = url.strip_prefix("http://localhost:").unwrap();
    rest.split('/').next().unwrap().parse().unwrap()
}

fn port_closed(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn chatgpt_login_succeeds_stores_0600_and_reports() {
    let mock = MockIssuer::start().unwrap();
    let mut app = AppServer::spawn(&mock, &[]);
    let started = app.result("loginChatGpt", json!({}));
    let login_id = started["loginId"].as_str().unwrap().to_string();
    let url = started["authUrl"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("{}/oauth/authorize?", mock.url())),
        "{url}"
    );
    assert_eq!(
        oauth_mock::query_param(&url, "code_challenge_method").unwrap(),
        "S256"
    );

    let seen = oauth_mock::browse(&url).unwrap();
    let cb = seen.callback.unwrap();
    assert_eq!(cb.status, 200, "{}", cb.body);

    let done = app.login_complete(&login_id);
    assert_eq!(done, json!({"loginId": login_id, "success": true}));
    assert_eq!(
        app.notification("authStatusChange"),
        json!({"authMethod": "chatgpt"})
    );

    let path = app.auth_json();
    assert_eq!(mode(&path), 0o600);
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let issued = &mock.issued()[0];
    assert_eq!(stored["tokens"]["access_token"], json!(issued.access_token));
    assert_eq!(
        stored["tokens"]["refresh_token"],
        json!(issued.refresh_token)
    );
    assert_eq!(stored["tokens"]["id_token"], json!(issued.id_token));
    assert_eq!(stored["tokens"]["account_id"], "acct_mock_123");
    assert!(stored["last_refresh"].as_str().unwrap().ends_with('Z'));

    let status = app.result("getAuthStatus", json!({}));
    assert_eq!(status["authMethod"], "chatgpt");
    assert!(
        status.get("authToken").is_none(),
        "token without includeToken: {status}"
    );
    assert_eq!(status["email"], "user@example.com");
    let status = app.result("getAuthStatus", json!({"includeToken": true}));
    assert_eq!(status["authToken"], json!(issued.access_token));

    // refreshToken: new tokens from the issuer's refresh grant, stored.
    let status = app.result(
        "getAuthStatus",
        json!({"includeToken": true, "refreshToken": true}),
    );
    let refreshed = &mock.issued()[1];
    assert_eq!(status["authToken"], json!(refreshed.access_token));
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        stored["tokens"]["access_token"],
        json!(refreshed.access_token)
    );
    assert_eq!(mode(&path), 0o600);

    assert!(port_closed(callback_port(&url)));
    let (status, _, stderr) = app.finish();
    assert!(status.success(), "{status:?}");
    for t in [
        &issued.access_token,
        &issued.refresh_token,
        &refreshed.access_token,
    ] {
        assert!(!stderr.contains(t.as_str()), "token on stderr: {stderr}");
    }
}

#[test]
fn cancel_reports_and_unknown_ids_are_errors() {
    let mock = MockIssuer::start().unwrap();
    let mut app = AppServer::spawn(&mock, &[]);
    let r = app.request("cancelLoginChatGpt", json!({"loginId": "nope"}));
    assert_eq!(r["error"]["code"], -32600);
    assert_eq!(r["error"]["message"], "login id not found: nope");

    let started = app.result("loginChatGpt", json!({}));
    let login_id = started["loginId"].as_str().unwrap().to_string();
    let port = callback_port(started["authUrl"].as_str().unwrap());
    assert!(!port_closed(port));
    assert_eq!(
        app.result("cancelLoginChatGpt", json!({"loginId": login_id})),
        json!({})
    );
    let done = app.login_complete(&login_id);
    assert_eq!(
        done,
        json!({"loginId": login_id, "success": false, "error": "login cancelled"})
    );
    assert!(port_closed(port));
    // A finished login's id is unknown now; cancelling again is an error, not a crash.
    let r = app.request("cancelLoginChatGpt", json!({"loginId": login_id}));
    assert_eq!(
        r["error"]["message"],
        format!("login id not found: {login_id}")
    );
    assert!(!app.auth_json().exists());
    let (status, rest, _) = app.finish();
    assert!(status.success());
    assert!(
        !rest.iter().any(|v| v["method"] == "authStatusChange"),
        "{rest:?}"
    );
}

#[test]
fn timeout_from_config_reports_timed_out() {
    let mock = MockIssuer::start().unwrap();
    let mut app = AppServer::spawn(&mock, &["auth.login_timeout_secs=1"]);
    let t0 = Instant::now();
    let started = app.result("loginChatGpt", json!({}));
    let login_id = started["loginId"].as_str().unwrap().to_string();
    let done = app.login_complete(&login_id);
    assert_eq!(
        done,
        json!({"loginId": login_id, "success": false, "error": "login timed out after 1s"})
    );
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert!(port_closed(callback_port(
        started["authUrl"].as_str().unwrap()
    )));
    assert!(app.finish().0.success());
}

#[test]
fn wrong_state_is_refused_then_the_right_one_succeeds() {
    let mock = MockIssuer::start().unwrap();
    let mut app = AppServer::spawn(&mock, &[]);
    let started = app.result("loginChatGpt", json!({}));
    let login_id = started["loginId"].as_str().unwrap().to_string();
    let (callback_url, code, state) =
        oauth_mock::authorize_only(started["authUrl"].as_str().unwrap()).unwrap();
    let port = url_port(&callback_url);
    let forged = format!("http://localhost:{port}/auth/callback?code={code}&state=x{state}");
    let a = oauth_mock::http_get(&forged, None).unwrap();
    assert_eq!(a.status, 400, "{}", a.body);
    // Still pending: answered, not completed.
    assert_eq!(
        app.result("getAuthStatus", json!({}))["authMethod"],
        Value::Null
    );
    let ok = oauth_mock::http_get(&callback_url, None).unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(app.login_complete(&login_id)["success"], true);
    assert_eq!(
        mock.token_requests().len(),
        1,
        "the forged callback reached the token endpoint"
    );
    assert!(app.finish().0.success());
}

#[test]
fn injected_code_with_wrong_pkce_verifier_fails() {
    let mock = MockIssuer::start().unwrap();
    let mut app = AppServer::spawn(&mock, &[]);
    let started = app.result("loginChatGpt", json!({}));
    let login_id = started["loginId"].as_str().unwrap().to_string();
    let url = started["authUrl"].as_str().unwrap();
    let state = oauth_mock::query_param(url, "state").unwrap();
    let redirect = oauth_mock::query_param(url, "redirect_uri").unwrap();
    let attacker = codex_login::pkce::generate_pkce();
    let code = mock.mint_code(&attacker.challenge, &redirect);
    let a = oauth_mock::http_get(&format!("{redirect}?code={code}&state={state}"), None).unwrap();
    assert_eq!(a.status, 502, "{}", a.body);
    let done = app.login_complete(&login_id);
    assert_eq!(done["success"], false);
    let err = done["error"].as_str().unwrap();
    assert!(
        err.contains("invalid_grant: pkce verification failed"),
        "{err}"
    );
    assert!(!app.auth_json().exists());
    assert_eq!(
        app.result("getAuthStatus", json!({}))["authMethod"],
        Value::Null
    );
    assert!(app.finish().0.success());
}

#[test]
fn second_login_replaces_the_first() {
    let mock = MockIssuer::start().unwrap();
    let mut app = AppServer::spawn(&mock, &[]);
    let first = app.result("loginChatGpt", json!({}));
    let first_id = first["loginId"].as_str().unwrap().to_string();
    let second = app.result("loginChatGpt", json!({}));
    let second_id = second["loginId"].as_str().unwrap().to_string();
    assert_ne!(first_id, second_id);
    let done = app.login_complete(&first_id);
    assert_eq!(
        done,
        json!({"loginId": first_id, "success": false, "error": "login cancelled: replaced by a newer loginChatGpt"})
    );
    assert!(port_closed(callback_port(
        first["authUrl"].as_str().unwrap()
    )));
    let r = app.request("cancelLoginChatGpt", json!({"loginId": first_id}));
    assert_eq!(r["error"]["code"], -32600);
    let seen = oauth_mock::browse(second["authUrl"].as_str().unwrap()).unwrap();
    assert_eq!(seen.callback.unwrap().status, 200);
    assert_eq!(app.login_complete(&second_id)["success"], true);
    assert!(app.finish().0.success());
}

#[test]
fn requests_are_answered_at_once_while_a_login_is_pending() {
    let mock = MockIssuer::start().unwrap();
    // Hold the login in its token exchange: the most "pending" it gets.
    mock.set_token_delay(Duration::from_secs(20));
    let mut app = AppServer::spawn(&mock, &[]);
    let started = app.result("loginChatGpt", json!({}));
    let login_id = started["loginId"].as_str().unwrap().to_string();
    let url = started["authUrl"].as_str().unwrap().to_string();
    let browser = std::thread::spawn(move || oauth_mock::browse(&url));
    let deadline = Instant::now() + WAIT;
    while mock.token_requests().is_empty() {
        assert!(Instant::now() < deadline, "no token request");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut times = Vec::new();
    for _ in 0..20 {
        let t0 = Instant::now();
        let s = app.result("getAuthStatus", json!({}));
        times.push(t0.elapsed());
        assert_eq!(s["authMethod"], Value::Null);
    }
    times.sort();
    let median = times[times.len() / 2];
    let max = times[times.len() - 1];
    eprintln!("getAuthStatus during a pending login: median {median:?}, max {max:?} (20 requests)");
    assert!(median < Duration::from_millis(50), "median {median:?}");
    assert!(max < Duration::from_secs(2), "max {max:?}");
    app.result("cancelLoginChatGpt", json!({"loginId": login_id}));
    assert_eq!(app.login_complete(&login_id)["error"], "login cancelled");
    let _ = browser.join();
    assert!(!app.auth_json().exists());
    assert!(app.finish().0.success());
}

#[test]
fn taken_callback_port_falls_back_to_an_ephemeral_one() {
    let mock = MockIssuer::start().unwrap();
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let mut app = AppServer::spawn(&mock, &[&format!("auth.login_port={taken}")]);
    let started = app.result("loginChatGpt", json!({}));
    let url = started["authUrl"].as_str().unwrap();
    assert_ne!(callback_port(url), taken);
    let seen = oauth_mock::browse(url).unwrap();
    assert_eq!(seen.callback.unwrap().status, 200);
    assert_eq!(
        app.login_complete(started["loginId"].as_str().unwrap())["success"],
        true
    );
    assert!(app.finish().0.success());
}

#[test]
fn malformed_input_gets_jsonrpc_errors_and_the_server_keeps_running() {
    let mock = MockIssuer::start().unwrap();
    let mut app = AppServer::spawn(&mock, &[]);
    app.send_raw("this is not json");
    let e = app.next_matching("parse error", |v| v["error"]["code"] == -32700);
    assert_eq!(e["id"], Value::Null);
    app.send_raw("[1,2]");
    app.next_matching("batch error", |v| {
        v["error"]["code"] == -32600 && v["id"].is_null()
    });
    app.send_raw(r#"{"id":7}"#);
    let e = app.response(7);
    assert_eq!(e["error"]["code"], -32600);
    app.send_raw(r#"{"id":8,"method":"noSuchMethod"}"#);
    assert_eq!(app.response(8)["error"]["code"], -32601);
    let e = app.request("cancelLoginChatGpt", json!({}));
    assert_eq!(e["error"]["code"], -32602);
    let e = app.request("loginApiKey", json!({"apiKey": 5}));
    assert_eq!(e["error"]["code"], -32602);
    let e = app.request("loginApiKey", json!({"apiKey": "sk-abc def"}));
    assert_eq!(e["error"]["code"], -32602);
    assert_eq!(
        e["error"]["message"],
        "invalid params: apiKey contains whitespace or control characters"
    );
    let e = app.request("getAuthStatus", json!({"includeToken": "yes"}));
    assert_eq!(e["error"]["code"], -32602);
    assert!(!app.auth_json().exists());
    // A request without "jsonrpc" is accepted; the server is still serving.
    app.send_raw(r#"{"id":9,"method":"getAuthStatus"}"#);
    assert_eq!(app.response(9)["result"]["authMethod"], Value::Null);
    assert!(app.finish().0.success());
}

#[test]
fn api_key_login_status_and_logout() {
    let mock = MockIssuer::start().unwrap();
    let mut app = AppServer::spawn(&mock, &[]);
    let key = "sk-test-abcdefghijklmnopqrstuvwxyz0123456789";
    // Pipelined: the status request is sent before the login's answer arrives.
    let a = app.send("loginApiKey", json!({"apiKey": key}));
    let b = app.send("getAuthStatus", json!({"includeToken": true}));
    assert_eq!(app.response(a)["result"], json!({}));
    assert_eq!(
        app.response(b)["result"],
        json!({"authMethod": "apikey", "authToken": key})
    );
    assert_eq!(
        app.notification("authStatusChange"),
        json!({"authMethod": "apikey"})
    );
    assert_eq!(mode(&app.auth_json()), 0o600);
    assert_eq!(
        app.result("getAuthStatus", json!({})),
        json!({"authMethod": "apikey"})
    );
    assert_eq!(app.result("logout", json!({})), json!({}));
    assert_eq!(
        app.notification("authStatusChange"),
        json!({"authMethod": null})
    );
    assert!(!app.auth_json().exists());
    assert_eq!(
        app.result("getAuthStatus", json!({})),
        json!({"authMethod": null})
    );
    let (status, _, stderr) = app.finish();
    assert!(status.success());
    assert!(!stderr.contains(key), "key on stderr: {stderr}");
}

#[test]
fn eof_cancels_the_pending_login_and_exits_0() {
    let mock = MockIssuer::start().unwrap();
    let mut app = AppServer::spawn(&mock, &[]);
    let started = app.result("loginChatGpt", json!({}));
    let login_id = started["loginId"].as_str().unwrap().to_string();
    let port = callback_port(started["authUrl"].as_str().unwrap());
    let t0 = Instant::now();
    let (status, rest, _) = app.finish();
    assert_eq!(status.code(), Some(0));
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    let done = rest
        .iter()
        .find(|v| v["method"] == "loginChatGptComplete")
        .expect("completion");
    assert_eq!(
        done["params"],
        json!({"loginId": login_id, "success": false, "error": "login cancelled: the app-server's input was closed"})
    );
    assert!(port_closed(port));
}

/// Play the browser's redirect for a login whose issuer the scripted browser cannot reach over
/// TLS: mint a code for the login's own challenge and deliver it with its state.
fn deliver_code(mock: &MockIssuer, auth_url: &str) -> oauth_mock::HttpAnswer {
    let challenge = oauth_mock::query_param(auth_url, "code_challenge").unwrap();
    let redirect = oauth_mock::query_param(auth_url, "redirect_uri").unwrap();
    let state = oauth_mock::query_param(auth_url, "state").unwrap();
    let code = mock.mint_code(&challenge, &redirect);
    oauth_mock::http_get(&format!("{redirect}?code={code}&state={state}"), None).unwrap()
}

#[test]
fn https_issuer_is_trusted_only_through_the_configured_roots() {
    let ca = TestCa::new().unwrap();
    let mock = MockIssuer::start_tls(&ca).unwrap();
    assert!(mock.url().starts_with("https://localhost:"));

    // Attack: the token endpoint presents a certificate from a CA the client does not trust (an
    // impostor on the path). The code and verifier must not be sent.
    let other = TestCa::new().unwrap();
    let untrusted = other.ca_pem_path();
    let mut app = AppServer::spawn_with(&mock, &[], &[("SSL_CERT_FILE", &untrusted)]);
    let started = app.result("loginChatGpt", json!({}));
    let id = started["loginId"].as_str().unwrap().to_string();
    let answer = deliver_code(&mock, started["authUrl"].as_str().unwrap());
    assert_eq!(answer.status, 502, "{}", answer.body);
    let done = app.login_complete(&id);
    assert_eq!(done["success"], false);
    let err = done["error"].as_str().unwrap();
    assert!(err.contains("invalid peer certificate"), "{err}");
    assert!(
        mock.token_requests().is_empty(),
        "token request reached an untrusted server"
    );
    assert!(!app.auth_json().exists());
    assert!(app.finish().0.success());

    // Control: the same issuer trusted through SSL_CERT_FILE.
    let trusted = ca.ca_pem_path();
    let mut app = AppServer::spawn_with(&mock, &[], &[("SSL_CERT_FILE", &trusted)]);
    let started = app.result("loginChatGpt", json!({}));
    let id = started["loginId"].as_str().unwrap().to_string();
    let answer = deliver_code(&mock, started["authUrl"].as_str().unwrap());
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(app.login_complete(&id)["success"], true);
    assert_eq!(mock.token_requests().len(), 1);
    assert_eq!(mode(&app.auth_json()), 0o600);
    assert!(app.finish().0.success());
}

fn latencies(app: &mut AppServer, n: usize) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        app.result("getAuthStatus", json!({}));
        times.push(t0.elapsed());
    }
    times.sort();
    (times[n / 2], times[n * 99 / 100])
}

/// Benchmark (not run by CI): `getAuthStatus` round trips with no login (baseline) and while a
/// login sits in its token exchange, side by side.
/// `cargo test -p codex-cli --test app_server bench_get_auth_status -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: run by hand"]
fn bench_get_auth_status_latency() {
    let mock = MockIssuer::start().unwrap();
    mock.set_token_delay(Duration::from_secs(60));
    let mut app = AppServer::spawn(&mock, &[]);
    latencies(&mut app, 50); // warm-up
    let (base_p50, base_p99) = latencies(&mut app, 500);
    let started = app.result("loginChatGpt", json!({}));
    let login_id = started["loginId"].as_str().unwrap().to_string();
    let url = started["authUrl"].as_str().unwrap().to_string();
    let browser = std::thread::spawn(move || oauth_mock::browse(&url));
    while mock.token_requests().is_empty() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (pend_p50, pend_p99) = latencies(&mut app, 500);
    println!("getAuthStatus round trip, 500 requests each   p50        p99");
    println!("baseline (no login pending)                  {base_p50:>9.2?}  {base_p99:>9.2?}");
    println!("login pending (in token exchange)            {pend_p50:>9.2?}  {pend_p99:>9.2?}");
    println!("target: < 50ms while pending");
    app.result("cancelLoginChatGpt", json!({"loginId": login_id}));
    let _ = browser.join();
    assert!(app.finish().0.success());
}

// ---- v2: initialize, account/* ----

impl AppServer {
    fn init(&mut self) -> Value {
        self.result(
            "initialize",
            json!({"clientInfo": {"name": "test-ide", "version": "1.2.3"}}),
        )
    }

    fn completed(&mut self, login_id: &Value) -> Value {
        let id = login_id.clone();
        self.next_matching("account/login/completed", move |v| {
            v["method"] == "account/login/completed" && v["params"]["loginId"] == id
        })["params"]
            .clone()
    }

    fn updated_to(&mut self, mode: Value) -> Value {
        self.next_matching("account/updated", move |v| {
            v["method"] == "account/updated" && v["params"]["authMode"] == mode
        })["params"]
            .clone()
    }

    /// No `account/updated` arrives within `d` (pending ones included).
    fn no_update_within(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Ok(v) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.pending.push(v);
        }
        assert!(
            !self
                .pending
                .iter()
                .any(|v| v["method"] == "account/updated"),
            "{:?}",
            self.pending
        );
    }
}

/// Approve `user_code` at the mock once the app-server has polled for it.
fn approve_when_polled(mock: &MockIssuer, user_code: &str) {
    let deadline = Instant::now() + WAIT;
    while mock.device_polls(user_code) == 0 {
        assert!(Instant::now() < deadline, "never polled for {user_code}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(mock.approve_device(user_code));
}

#[test]
fn v2_methods_need_initialize_and_v1_works_without() {
    let mock = MockIssuer::start().unwrap();
    let mut app = AppServer::spawn(&mock, &[]);
    for (method, params) in [
        ("account/read", json!({})),
        ("account/logout", json!({})),
        ("account/login/start", json!({"type": "chatgpt"})),
        ("account/login/cancel", json!({"loginId": "x"})),
    ] {
        let e = app.request(method, params);
        assert_eq!(e["error"]["code"], -32600, "{method}: {e}");
        assert_eq!(
            e["error"]["message"],
            format!("not initialized: send `initialize` before {method}")
        );
    }
    // v1 (legacy) needs no initialize.
    assert_eq!(
        app.result("getAuthStatus", json!({})),
        json!({"authMethod": null})
    );
    let e = app.request("initialize", json!({}));
    assert_eq!(e["error"]["code"], -32602, "{e}");
    let e = app.request("initialize", json!({"clientInfo": {"name": 7}}));
    assert_eq!(e["error"]["code"], -32602, "{e}");
    // Pipelined: the account/read right behind initialize already sees the session initialized.
    let a = app.send(
        "initialize",
        json!({"clientInfo": {"name": "test-ide", "version": "1.2.3"}}),
    );
    let b = app.send("account/read", json!({}));
    let init = app.response(a);
    assert!(
        init["result"]["userAgent"]
            .as_str()
            .unwrap()
            .ends_with("(test-ide/1.2.3)"),
        "{init}"
    );
    assert_eq!(
        app.response(b)["result"],
        json!({"account": null, "requiresOpenaiAuth": true})
    );
    let e = app.request("initialize", json!({"clientInfo": {"name": "again"}}));
    assert_eq!(e["error"]["message"], "already initialized");
    assert!(app.finish().0.success());
}

#[test]
fn v2_api_key_login_read_logout_and_bad_login_types() {
    let mock = MockIssuer::start().unwrap();
    let mut app = AppServer::spawn(&mock, &[]);
    app.init();
    for (params, want) in [
        (
            json!({"type": "password"}),
            "unknown login type \"password\"",
        ),
        (json!({}), "missing type"),
        (json!({"type": 3}), "type must be a string"),
        (json!({"type": "apiKey"}), "missing apiKey"),
        (
            json!({"type": "apiKey", "apiKey": "sk bad"}),
            "apiKey contains whitespace",
        ),
    ] {
        let e = app.request("account/login/start", params.clone());
        assert_eq!(e["error"]["code"], -32602, "{params}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(want),
            "{params}: {e}"
        );
    }
    assert!(!app.auth_json().exists());
    let key = "sk-test-abcdefghijklmnopqrstuvwxyz0123456789";
    assert_eq!(
        app.result(
            "account/login/start",
            json!({"type": "apiKey", "apiKey": key})
        ),
        json!({"type": "apiKey"})
    );
    assert_eq!(
        app.completed(&Value::Null),
        json!({"loginId": null, "success": true})
    );
    assert_eq!(
        app.updated_to(json!("apikey")),
        json!({"authMode": "apikey", "planType": null})
    );
    assert_eq!(
        app.result("account/read", json!({})),
        json!({"account": {"type": "apiKey"}, "requiresOpenaiAuth": true})
    );
    assert_eq!(app.result("account/logout", json!({})), json!({}));
    app.updated_to(Value::Null);
    assert_eq!(
        app.result("account/read", json!({}))["account"],
        Value::Null
    );
    assert!(!app.auth_json().exists());
    let (status, rest, stderr) = app.finish();
    assert!(status.success());
    assert!(!stderr.contains(key));
    assert!(!rest.iter().any(|v| v.to_string().contains(key)));
}

#[test]
fn v2_browser_login_then_read_and_refresh() {
    let mock = MockIssuer::start().unwrap();
    let mut app = AppServer::spawn(&mock, &[]);
    app.init();
    let started = app.result("account/login/start", json!({"type": "chatgpt"}));
    assert_eq!(started["type"], "chatgpt");
    let url = started["authUrl"].as_str().unwrap().to_string();
    let seen = oauth_mock::browse(&url).unwrap();
    assert_eq!(seen.callback.unwrap().status, 200);
    assert_eq!(
        app.completed(&started["loginId"]),
        json!({"loginId": started["loginId"], "success": true})
    );
    assert_eq!(
        app.updated_to(json!("chatgpt")),
        json!({"authMode": "chatgpt", "planType": "plus"})
    );
    assert_eq!(
        app.result("account/read", json!({})),
        json!({"account": {"type": "chatgpt", "email": "user@example.com", "planType": "plus"},
               "requiresOpenaiAuth": true})
    );
    // refreshToken: a real refresh at the issuer (rotated), reported as account/updated.
    let before = mock.refresh_grants();
    app.result("account/read", json!({"refreshToken": true}));
    assert_eq!(mock.refresh_grants(), before + 1);
    app.updated_to(json!("chatgpt"));
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(app.auth_json()).unwrap()).unwrap();
    assert_eq!(
        stored["tokens"]["refresh_token"],
        json!(mock.newest_refresh_token().unwrap())
    );
    // The refresh token dies elsewhere (used by someone else): invalid_grant logs out cleanly.
    let rt = stored["tokens"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let rt_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = codex_oauth::TokenClient::new(&format!("{}/oauth/token", mock.url())).unwrap();
    rt_runtime
        .block_on(client.refresh(
            mock.client_id(),
            &codex_oauth::SecretString::new(rt),
            None,
            &[],
        ))
        .unwrap();
    let e = app.request("account/read", json!({"refreshToken": true}));
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("sign in again"), "{e}");
    assert!(msg.contains("invalid_grant"), "{e}");
    app.updated_to(Value::Null);
    assert_eq!(
        app.result("account/read", json!({}))["account"],
        Value::Null
    );
    assert!(app.auth_json().exists(), "the store is left untouched");
    assert!(app.finish().0.success());
}

#[test]
fn v2_device_login_with_a_scripted_approver_answering_requests_meanwhile() {
    let mock = MockIssuer::start().unwrap();
    let mut app = AppServer::spawn(&mock, &[]);
    app.init();
    let started = app.result("account/login/start", json!({"type": "chatgptDeviceCode"}));
    assert_eq!(started["type"], "chatgptDeviceCode");
    assert_eq!(
        started["verificationUrl"],
        format!("{}/codex/device", mock.url())
    );
    let code = started["userCode"].as_str().unwrap().to_string();
    assert_eq!(mock.pending_user_codes(), vec![code.clone()]);
    // Answered at once while the device login polls.
    let t0 = Instant::now();
    assert_eq!(
        app.result("account/read", json!({}))["account"],
        Value::Null
    );
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    approve_when_polled(&mock, &code);
    assert_eq!(
        app.completed(&started["loginId"]),
        json!({"loginId": started["loginId"], "success": true})
    );
    app.updated_to(json!("chatgpt"));
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(app.auth_json()).unwrap()).unwrap();
    assert_eq!(
        stored["tokens"]["access_token"],
        json!(mock.issued()[0].access_token)
    );
    assert_eq!(mode(&app.auth_json()), 0o600);
    // Cancelling a finished login: notFound, nothing else happens.
    assert_eq!(
        app.result(
            "account/login/cancel",
            json!({"loginId": started["loginId"]})
        ),
        json!({"status": "notFound"})
    );
    assert!(app.auth_json().exists());
    assert!(app.finish().0.success());
}

#[test]
fn v2_two_device_logins_at_once_the_newer_replaces_the_older() {
    let mock = MockIssuer::start().unwrap();
    let mut app = AppServer::spawn(&mock, &[]);
    app.init();
    let a = app.send("account/login/start", json!({"type": "chatgptDeviceCode"}));
    let b = app.send("account/login/start", json!({"type": "chatgptDeviceCode"}));
    let (ra, rb) = (
        app.response(a)["result"].clone(),
        app.response(b)["result"].clone(),
    );
    assert_ne!(ra["loginId"], rb["loginId"]);
    assert_ne!(ra["userCode"], rb["userCode"]);
    // Whichever got the start lock first was replaced by the other.
    let ids = [ra["loginId"].clone(), rb["loginId"].clone()];
    let done = app.next_matching("the replaced login's completion", move |v| {
        v["method"] == "account/login/completed" && ids.contains(&v["params"]["loginId"])
    })["params"]
        .clone();
    let (old, new) = if done["loginId"] == ra["loginId"] {
        (ra, rb)
    } else {
        (rb, ra)
    };
    assert_eq!(done["success"], false, "{done}");
    assert_eq!(
        done["error"],
        "login cancelled: replaced by a newer account/login/start"
    );
    // Approving the replaced code stores nothing; the newer one completes.
    mock.approve_device(old["userCode"].as_str().unwrap());
    approve_when_polled(&mock, new["userCode"].as_str().unwrap());
    assert_eq!(app.completed(&new["loginId"])["success"], true);
    assert_eq!(mock.issued().len(), 1);
    // A pending device login is cancelled on request.
    let third = app.result("account/login/start", json!({"type": "chatgptDeviceCode"}));
    assert_eq!(
        app.result("account/login/cancel", json!({"loginId": third["loginId"]})),
        json!({"status": "canceled"})
    );
    assert_eq!(
        app.completed(&third["loginId"]),
        json!({"loginId": third["loginId"], "success": false, "error": "login cancelled"})
    );
    assert!(app.finish().0.success());
}

#[test]
fn v2_session_sees_account_updated_when_another_process_logs_out() {
    let mock = MockIssuer::start().unwrap();
    let mut app = AppServer::spawn(&mock, &[]);
    app.init();
    app.result(
        "account/login/start",
        json!({"type": "apiKey", "apiKey": "sk-test-abcdefghijklmnopqrstuvwxyz0123456789"}),
    );
    app.updated_to(json!("apikey"));
    app.no_update_within(Duration::from_millis(1200));
    // A second process logs out.
    let out = Command::new(env!("CARGO_BIN_EXE_codex"))
        .arg("logout")
        .env("CODEX_HOME", app.home.path())
        .env(
            "CODEX_MANAGED_CONFIG_PATH",
            suite_test_support::dirs::no_managed_config(app.home.path()),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!app.auth_json().exists());
    let t0 = Instant::now();
    assert_eq!(
        app.updated_to(Value::Null),
        json!({"authMode": null, "planType": null})
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    assert_eq!(
        app.result("account/read", json!({}))["account"],
        Value::Null
    );
    assert!(app.finish().0.success());
}

#[test]
fn v2_schema_documents_every_method_and_notification() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("app-server-v2.schema.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let methods: Vec<&str> = schema["x-methods"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want: Vec<&str> = codex_cli::app_server::V2_METHODS.to_vec();
    want.sort_unstable();
    let mut got = methods.clone();
    got.sort_unstable();
    assert_eq!(got, want);
    let notes: Vec<&str> = schema["x-notifications"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want: Vec<&str> = codex_cli::app_server::V2_NOTIFICATIONS.to_vec();
    want.sort_unstable();
    let mut got = notes;
    got.sort_unstable();
    assert_eq!(got, want);
    // Every $ref resolves.
    let text = schema.to_string();
    for r in text.split("\"$ref\":\"#/$defs/").skip(1) {
        let name = r.split('"').next().unwrap();
        assert!(schema["$defs"].get(name).is_some(), "dangling $ref {name}");
    }
}

#[test]
fn an_oversized_request_line_is_skipped_without_buffering_it() {
    // outside review r7 F3: a 512 MiB line grew the server to 530 MB while it skipped it
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_codex"))
        .arg("app-server")
        .env("CODEX_HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..96 {
        stdin.write_all(&chunk).unwrap();
    }
    stdin.flush().unwrap();
    let rss_kb = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap();
    stdin
        .write_all(b"\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"getAuthStatus\",\"params\":{}}\n")
        .unwrap();
    drop(stdin);
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    let _ = child.wait();
    assert!(first.contains("longer than 1048576 bytes"), "{first}");
    assert!(
        second.contains("\"id\":1") && second.contains("result"),
        "{second}"
    );
    assert!(rss_kb < 48 * 1024, "96 MiB sent, resident {rss_kb} kB");
}
