//! `codex exec` through the real `responses-api-proxy` binary: the user has no key at all; the
//! proxy (key on its stdin) adds it upstream. Needs `cargo build --workspace --bins` first.
#![allow(clippy::unwrap_used, clippy::panic)] // helpers outside #[test] functions

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use suite_test_support::bins::workspace_bin;
use suite_test_support::responses_mock::{MockResponse, MockUpstream, sse_text_response};

const PROXY_KEY: &str = "sk-proj-PROXYHELD_0123456789abcdef_canary";

struct Proxy {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_proxy(upstream: &str) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let info = dir.path().join("info.json");
    let mut child = Command::new(workspace_bin("responses-api-proxy"))
        .args(["--upstream-url", upstream, "--server-info"])
        .arg(&info)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PROXY_KEY}\n").as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&info) {
            if text.ends_with('\n') {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                let port = u16::try_from(v["port"].as_u64().unwrap()).unwrap();
                return Proxy {
                    child,
                    port,
                    _dir: dir,
                };
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("responses-api-proxy exited during start-up: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "responses-api-proxy did not start in 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn exec_through_the_proxy_needs_no_key_on_the_users_side() {
    let mock = MockUpstream::start().unwrap();
    mock.set_default(MockResponse::SseBurst {
        frames: sse_text_response("r1", "Answer via the proxy"),
    });
    let proxy = start_proxy(&mock.responses_url());

    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("user-home");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_codex"))
        .env("CODEX_HOME", &home)
        .env(
            "CODEX_MANAGED_CONFIG_PATH",
            suite_test_support::dirs::no_managed_config(&home),
        )
        .env_remove("OPENAI_API_KEY")
        .args([
            "-c",
            &format!(
                "model_providers.proxy.base_url=http://127.0.0.1:{}/v1",
                proxy.port
            ),
        ])
        .args([
            "-c",
            "model_provider=proxy",
            "exec",
            "hello through the proxy",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "Answer via the proxy\n");
    let err = String::from_utf8_lossy(&o.stderr);
    let err: Vec<&str> = err.lines().collect();
    assert_eq!(err[0], "tokens used: 2 (input 1, output 1)");
    assert!(
        err[1].starts_with("codex: to continue this session: codex exec resume "),
        "{err:?}"
    );
    assert_eq!(err.len(), 2, "{err:?}");
    assert!(
        !home.join("auth.json").exists(),
        "the user side holds no credentials"
    );

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    // The proxy injected its own key; the user's request body arrived unchanged.
    assert_eq!(
        reqs[0].header("authorization"),
        Some(format!("Bearer {PROXY_KEY}"))
    );
    assert_eq!(
        reqs[0].json().unwrap(),
        serde_json::json!({"model": "gpt-5", "input": "hello through the proxy", "stream": true})
    );
    // The key never reaches the user.
    assert!(!String::from_utf8_lossy(&o.stdout).contains(PROXY_KEY));
    assert!(!String::from_utf8_lossy(&o.stderr).contains(PROXY_KEY));
}
