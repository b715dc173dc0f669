//! The Responses API WebSocket mode through the proxy (issue 17): the real proxy binary (started
//! as root, confined, running as nobody) between a WebSocket client and the recording WebSocket
//! mock upstream (`suite_test_support::ws_mock`). Every protection is shown with its control:
//! the same action succeeding without it. The last test drives the real Codex CLI
//! (`supports_websockets = true`) through the proxy and checks the mock saw a WebSocket session,
//! not the HTTP fallback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{KEY, Proxy, Spawn, policy_dir, residency, usage_json, write_policy};
use futures_util::{SinkExt, StreamExt};
use suite_test_support::tls::TestCa;
use suite_test_support::ws_mock::{WsMock, WsScript};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Opens a WebSocket to the proxy's `/v1/responses` with extra headers; `Err(status)` when the
/// upgrade is refused.
async fn connect(port: u16, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let mut req = format!("ws://127.0.0.1:{port}/v1/responses")
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    match tokio_tungstenite::client_async(req, tcp).await {
        Ok((ws, resp)) => {
            assert_eq!(resp.status(), 101);
            Ok(ws)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket handshake failed: {e}"),
    }
}

fn create(model: &str) -> String {
    serde_json::json!({
        "type": "response.create",
        "model": model,
        "instructions": "be brief",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        "stream": true,
        "store": true,
    })
    .to_string()
}

/// What the client received until the session ended or `until` matched a message type.
#[derive(Debug, Default)]
struct Got {
    texts: Vec<String>,
    close: Option<(u16, String)>,
}

impl Got {
    fn types(&self) -> Vec<String> {
        self.texts
            .iter()
            .filter_map(|t| serde_json::from_str::<serde_json::Value>(t).ok())
            .filter_map(|v| v["type"].as_str().map(str::to_string))
            .collect()
    }
}

/// Reads messages until one of type `until` arrives (or the session ends, or 15 s pass).
async fn read_until(ws: &mut Ws, until: &str) -> Got {
    let mut got = Got::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let m = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("no {until:?} within 15 s; got {got:?}"),
            Ok(None) | Ok(Some(Err(_))) => return got,
            Ok(Some(Ok(m))) => m,
        };
        match m {
            Message::Text(t) => {
                let done = serde_json::from_str::<serde_json::Value>(t.as_str())
                    .is_ok_and(|v| v["type"] == until);
                got.texts.push(t.as_str().to_string());
                if done {
                    return got;
                }
            }
            Message::Close(f) => {
                got.close = f.map(|f| (u16::from(f.code), f.reason.to_string()));
                return got;
            }
            _ => {}
        }
    }
}

fn start(mock: &WsMock, extra: &[&str]) -> Proxy {
    let mut s = Spawn::new(&mock.responses_url());
    for a in extra {
        s = s.arg(a);
    }
    s.start()
}

#[test]
fn a_session_relays_both_ways_with_the_key_injected_and_never_returned() {
    let mock = WsMock::start().unwrap();
    mock.set_script(WsScript {
        echo_authorization: true,
        ..WsScript::default()
    });
    let proxy = start(&mock, &[]);
    let got = rt().block_on(async {
        let mut ws = connect(
            proxy.port,
            &[
                ("authorization", "Bearer client-own-secret"),
                ("cookie", "session=client-cookie"),
                ("openai-beta", "responses_websockets=2026-02-06"),
            ],
        )
        .await
        .expect("upgrade accepted");
        ws.send(Message::text(create("gpt-5"))).await.unwrap();
        let first = read_until(&mut ws, "response.completed").await;
        // The same connection carries the next response.
        ws.send(Message::text(create("gpt-5"))).await.unwrap();
        let second = read_until(&mut ws, "response.completed").await;
        ws.close(None).await.unwrap();
        (first, second)
    });
    assert!(
        got.0.types().contains(&"response.completed".to_string()),
        "{:?}",
        got.0
    );
    assert!(
        got.1.types().contains(&"response.completed".to_string()),
        "{:?}",
        got.1
    );

    assert!(mock.wait_until(Duration::from_secs(5), |s| {
        s.sessions.first().is_some_and(|x| x.ended)
    }));
    let state = mock.state();
    assert_eq!(
        state.sessions.len(),
        1,
        "one upstream session for one client session"
    );
    assert!(state.http.is_empty(), "no HTTP request: {:?}", state.http);
    let session = &state.sessions[0];
    assert_eq!(session.path, "/v1/responses");
    // The key went upstream (control: the mock's echo carries it) ...
    assert_eq!(
        session.header("authorization").unwrap(),
        format!("Bearer {KEY}")
    );
    // ... the client's own credentials did not.
    assert!(session.header("cookie").is_none());
    assert_eq!(
        session.header("openai-beta").unwrap(),
        "responses_websockets=2026-02-06"
    );
    assert_eq!(session.messages.len(), 2);
    assert_eq!(
        session.messages[0],
        create("gpt-5"),
        "relayed unchanged without a policy"
    );

    // The upstream echoed the key; the client got it masked.
    let all = [got.0.texts.join("\n"), got.1.texts.join("\n")].join("\n");
    assert!(all.contains("(upstream saw Bearer ****"), "{all}");
    assert!(!all.contains(KEY), "the key reached the client");
    assert!(
        !all.contains("TESTKEY"),
        "part of the key reached the client"
    );

    // Audit: one line per response and one for the session.
    let log = proxy.wait_log("status=101", 1);
    assert_eq!(
        log.lines().filter(|l| l.contains("method=WS")).count(),
        2,
        "{log}"
    );
    assert!(!log.contains(KEY), "key in the log");
}

/// Review r15 F8: an upstream that echoes the key split over two `output_text.delta` messages.
/// The message completing the key has the rest overwritten with `*`; the one before left at
/// once with a prefix (no message is held back), so the client never has the whole key, at any
/// split point. Control: the mock really sent the key in two pieces (the earlier delta carries
/// the prefix as sent), and a delta that does not complete the key passes untouched.
#[test]
fn a_key_split_over_two_delta_messages_never_reaches_the_client_whole() {
    let mock = WsMock::start().unwrap();
    let proxy = start(&mock, &[]);
    let splits = [1usize, 3, 12, KEY.len() / 2, KEY.len() - 2, KEY.len() - 1];
    let deltas = |got: &Got| -> Vec<String> {
        got.texts
            .iter()
            .filter_map(|t| serde_json::from_str::<serde_json::Value>(t).ok())
            .filter(|v| v["type"] == "response.output_text.delta")
            .filter_map(|v| v["delta"].as_str().map(str::to_string))
            .collect()
    };
    let got: Vec<Got> = rt().block_on(async {
        let mut ws = connect(proxy.port, &[]).await.expect("upgrade accepted");
        let mut all = Vec::new();
        for n in splits {
            mock.set_script(WsScript {
                echo_key_split_at: Some(n),
                ..WsScript::default()
            });
            ws.send(Message::text(create("gpt-5"))).await.unwrap();
            all.push(read_until(&mut ws, "response.completed").await);
        }
        // Control: the same text as two deltas that do not make the key.
        mock.set_script(WsScript {
            text: format!("{} {}", &KEY[..10], &KEY[10..]),
            ..WsScript::default()
        });
        ws.send(Message::text(create("gpt-5"))).await.unwrap();
        all.push(read_until(&mut ws, "response.completed").await);
        ws.close(None).await.unwrap();
        all
    });
    for (i, n) in splits.into_iter().enumerate() {
        let d = deltas(&got[i]);
        let joined = d.concat();
        assert!(!joined.contains(KEY), "split at {n}: {d:?}");
        let first = d
            .iter()
            .position(|t| t.starts_with("the key is "))
            .unwrap_or_else(|| panic!("split at {n}: no echo in {d:?}"));
        // The prefix left as the mock sent it; the rest is masked, its length kept.
        assert_eq!(
            d[first],
            format!("the key is {}", &KEY[..n]),
            "split at {n}"
        );
        assert_eq!(d[first + 1], "*".repeat(KEY.len() - n), "split at {n}");
    }
    let control = deltas(&got[splits.len()]).concat();
    assert_eq!(control, format!("{} {}", &KEY[..10], &KEY[10..]));
    let log = proxy.wait_log("split over WebSocket text deltas", splits.len());
    assert!(!log.contains(KEY), "key in the log");
}

/// `rotate-key` as root over `admin` with `key` on stdin: (exit code, stdout + stderr).
fn rotate(admin: &Path, key: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(common::BIN)
        .args(["rotate-key", "--admin-socket", admin.to_str().unwrap()])
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{key}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// One metric's value from the admin socket's `GET /metrics`.
fn metric(admin: &Path, name: &str) -> u64 {
    use std::io::{Read, Write};
    let mut c = std::os::unix::net::UnixStream::connect(admin).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nhost: admin\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// Review r15 F4: a WebSocket session no longer pins its key's page for its whole life. Four
/// idle sessions opened across rotations (the reviewer's pattern: one session after each) no
/// longer block the fourth rotation (it was refused with 503: every one of the 4 pages held):
/// a rotation ends each session opened with the retired key (1001, after its response in
/// flight), so the old pages are wiped (`key_pages_wiped_total`) and no session goes on talking
/// upstream with a retired key. Control: a response in flight at the rotation is relayed to its
/// end with its old key before its session closes, and a session opened after the rotation
/// uses the new key and stays open.
#[test]
fn sessions_do_not_pin_retired_keys_and_rotation_ends_them_after_their_response() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("openai.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let admin_dir = tempfile::tempdir().unwrap();
    let admin = admin_dir.path().join("admin.sock");
    let mock = WsMock::start().unwrap();
    let proxy = Spawn::new(&mock.responses_url())
        .key(b"")
        .arg("--api-key-file")
        .arg(key_file.to_str().unwrap())
        .arg("--admin-socket")
        .arg(admin.to_str().unwrap())
        .arg("--key-pages-without-memfd-secret")
        .start();
    let wiped = "responses_api_proxy_key_pages_wiped_total";
    let in_use = "responses_api_proxy_key_pages_in_use";
    let rotated_key = |i: usize| format!("sk-proj-ROTATED{i}_websocket_session_pin_canary");
    let rt = rt();
    // Session i is opened after rotation i (session 0 before any); each stays idle.
    let mut sessions: Vec<Ws> = Vec::new();
    for i in 0..4 {
        sessions.push(
            rt.block_on(connect(proxy.port, &[]))
                .expect("upgrade accepted"),
        );
        assert!(mock.wait_until(Duration::from_secs(5), |s| s.sessions.len() == i + 1));
        let (code, out) = rotate(&admin, &rotated_key(i + 1));
        assert_eq!(code, 0, "rotation {}: {out}", i + 1);
    }
    // Each session opened with a retired key has ended (1001, the reason says why) ...
    for (i, ws) in sessions.iter_mut().enumerate() {
        let got = rt.block_on(read_until(ws, "never"));
        assert_eq!(
            got.close,
            Some((1001, "the proxy's API key was rotated".to_string())),
            "session {i}: {got:?}"
        );
    }
    // ... and the four retired keys' pages are wiped; only the key in force holds one.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&admin, wiped) < 4 {
        assert!(Instant::now() < deadline, "pages not wiped");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(metric(&admin, in_use), 1);
    // Each upstream session carried the key in force when it was opened.
    let state = mock.state();
    assert_eq!(
        state.sessions[0].header("authorization").unwrap(),
        format!("Bearer {KEY}")
    );
    for i in 1..4 {
        assert_eq!(
            state.sessions[i].header("authorization").unwrap(),
            format!("Bearer {}", rotated_key(i))
        );
    }
    // ... and their upstream sessions are closed (the mock sees the close a moment after the
    // client does: waited for, it flaked under CI load when read at once)
    assert!(
        mock.wait_until(Duration::from_secs(10), |s| s.sessions[..4]
            .iter()
            .all(|x| x.ended)),
        "an upstream session still open: {:?}",
        mock.state()
            .sessions
            .iter()
            .map(|x| x.ended)
            .collect::<Vec<_>>()
    );

    // Control: a response in flight when the key is rotated finishes, then its session closes;
    // a session opened after the rotation stays usable.
    mock.set_script(WsScript {
        delay: Duration::from_millis(100),
        ..WsScript::default()
    });
    let (got, after) = rt.block_on(async {
        let mut ws = connect(proxy.port, &[]).await.expect("upgrade accepted");
        ws.send(Message::text(create("gpt-5"))).await.unwrap();
        let first = ws.next().await;
        assert!(matches!(first, Some(Ok(Message::Text(_)))), "{first:?}");
        let (code, out) = tokio::task::spawn_blocking({
            let admin = admin.clone();
            let k = rotated_key(5);
            move || rotate(&admin, &k)
        })
        .await
        .unwrap();
        assert_eq!(code, 0, "{out}");
        let mut got = read_until(&mut ws, "response.completed").await;
        let rest = read_until(&mut ws, "never").await;
        got.close = rest.close;
        mock.set_script(WsScript::default());
        let mut fresh = connect(proxy.port, &[]).await.expect("upgrade accepted");
        fresh.send(Message::text(create("gpt-5"))).await.unwrap();
        let after = read_until(&mut fresh, "response.completed").await;
        (got, after)
    });
    assert!(
        got.types().contains(&"response.completed".to_string()),
        "{got:?}"
    );
    assert_eq!(
        got.close,
        Some((1001, "the proxy's API key was rotated".to_string()))
    );
    assert!(
        after.close.is_none() && after.types().contains(&"response.completed".to_string()),
        "{after:?}"
    );
    let state = mock.state();
    let n = state.sessions.len();
    assert_eq!(
        state.sessions[n - 2].header("authorization").unwrap(),
        format!("Bearer {}", rotated_key(4))
    );
    assert_eq!(
        state.sessions[n - 1].header("authorization").unwrap(),
        format!("Bearer {}", rotated_key(5))
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&admin, wiped) < 5 {
        assert!(
            Instant::now() < deadline,
            "the fourth rotated key's page not wiped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(metric(&admin, in_use), 1);
}

/// `wss://` to an https upstream (the proxy's rustls configuration), under load: 32 sessions of
/// 2 responses each leave no copy of the key outside locked memory (the upgrade request is
/// written with the key's bytes from the locked page; rustls encrypts its record in place).
/// Control: an upstream that echoes the key makes the scan find copies in ordinary memory.
#[test]
fn websocket_sessions_over_tls_leave_no_copy_of_the_key_in_ordinary_memory() {
    let ca = TestCa::new().unwrap();
    let mock = WsMock::start_tls(&ca).unwrap();
    let proxy = Spawn::new(&mock.responses_url())
        .env("SSL_CERT_FILE", ca.ca_pem_path().to_str().unwrap())
        .start();
    let sessions = ws_sessions_per_user();
    rt().block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..sessions {
            let port = proxy.port;
            tasks.push(tokio::spawn(async move {
                let mut ws = connect(port, &[]).await.expect("upgrade over wss");
                for _ in 0..2 {
                    ws.send(Message::text(create("gpt-5"))).await.unwrap();
                    let got = read_until(&mut ws, "response.completed").await;
                    assert!(got.types().contains(&"response.completed".to_string()));
                }
                ws.close(None).await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert!(
        mock.wait_until(Duration::from_secs(10), |s| s.sessions.len() == sessions
            && s.sessions.iter().all(|x| x.ended))
    );
    let state = mock.state();
    assert!(
        state
            .sessions
            .iter()
            .all(|s| s.header("authorization").as_deref() == Some(&*format!("Bearer {KEY}")))
    );
    let r = residency(proxy.pid(), KEY.as_bytes());
    eprintln!(
        "wss: key copies after {sessions} sessions: {} locked, {} outside, {} unreadable regions",
        r.locked,
        r.outside.len(),
        r.unreadable.len()
    );
    assert!(
        r.outside.is_empty(),
        "{} copies of the key outside locked memory:\n{}",
        r.outside.len(),
        r.outside.join("\n")
    );
    assert!(
        r.locked >= 1 || !r.unreadable.is_empty(),
        "the key was found nowhere: {r:?}"
    );

    // Control: the upstream echoes the key in a message; the client sees it masked, and the scan
    // sees the copies the proxy received (it could not see one otherwise).
    mock.set_script(WsScript {
        echo_authorization: true,
        ..WsScript::default()
    });
    let got = rt().block_on(async {
        let mut ws = connect(proxy.port, &[]).await.unwrap();
        ws.send(Message::text(create("gpt-5"))).await.unwrap();
        read_until(&mut ws, "response.completed").await
    });
    let all = got.texts.join("\n");
    assert!(all.contains("Bearer ****") && !all.contains(KEY), "{all}");
    let r = residency(proxy.pid(), KEY.as_bytes());
    eprintln!(
        "wss: control (echo): {} copies outside locked memory",
        r.outside.len()
    );
    assert!(
        !r.outside.is_empty(),
        "control failed: no copy found after the echo: {r:?}"
    );
}

#[test]
fn an_upgrade_with_an_origin_or_from_a_disallowed_peer_is_refused() {
    let mock = WsMock::start().unwrap();
    let proxy = start(&mock, &[]);
    rt().block_on(async {
        // Cross-site WebSocket hijacking: a page's WebSocket always carries Origin.
        assert_eq!(
            connect(proxy.port, &[("origin", "http://evil.example")])
                .await
                .err(),
            Some(403)
        );
        // ... and a browser's request made without one still carries Fetch Metadata.
        assert_eq!(
            connect(proxy.port, &[("sec-fetch-mode", "websocket")])
                .await
                .err(),
            Some(403)
        );
        // Control: the same upgrade without them is accepted.
        assert!(connect(proxy.port, &[]).await.is_ok());
    });
    assert!(mock.wait_until(Duration::from_secs(5), |s| s.sessions.len() == 1));
    drop(proxy);

    // A peer the allow-list does not name (the test runs as root; only uid 4243 is allowed).
    let refused = start(&mock, &["--allow-user", "4243"]);
    rt().block_on(async {
        assert_eq!(connect(refused.port, &[]).await.err(), Some(403));
    });
    // Control: root allowed, the same upgrade goes through.
    let allowed = start(&mock, &["--allow-user", "0"]);
    rt().block_on(async {
        assert!(connect(allowed.port, &[]).await.is_ok());
    });
    assert!(mock.wait_until(Duration::from_secs(5), |s| s.sessions.len() == 2));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        mock.state().sessions.len(),
        2,
        "no upstream session for the refused peer"
    );
}

#[test]
fn binary_and_oversized_messages_close_the_session_and_never_reach_upstream() {
    let mock = WsMock::start().unwrap();
    let proxy = start(&mock, &["--max-body-bytes", "4096"]);
    rt().block_on(async {
        // Binary: closed with 1008 (policy violation) and a reason.
        let mut ws = connect(proxy.port, &[]).await.unwrap();
        ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
        let got = read_until(&mut ws, "-").await;
        let (code, reason) = got.close.expect("a close frame");
        assert_eq!(code, u16::from(CloseCode::Policy));
        assert!(reason.contains("binary"), "{reason}");

        // Oversized: closed with 1009.
        let mut ws = connect(proxy.port, &[]).await.unwrap();
        let big = format!("{{\"type\":\"x\",\"pad\":\"{}\"}}", "a".repeat(8000));
        ws.send(Message::text(big)).await.unwrap();
        let got = read_until(&mut ws, "-").await;
        let (code, reason) = got.close.expect("a close frame");
        assert_eq!(code, u16::from(CloseCode::Size));
        assert!(reason.contains("max-body-bytes"), "{reason}");

        // Control: a text message under the limit goes through.
        let mut ws = connect(proxy.port, &[]).await.unwrap();
        let fits = format!("{{\"type\":\"x\",\"pad\":\"{}\"}}", "a".repeat(3000));
        ws.send(Message::text(fits)).await.unwrap();
        ws.send(Message::text(create("gpt-5"))).await.unwrap();
        let got = read_until(&mut ws, "response.completed").await;
        assert!(got.types().contains(&"response.completed".to_string()));
    });
    assert!(mock.wait_until(Duration::from_secs(5), |s| s.sessions.len() == 3));
    let state = mock.state();
    assert_eq!(
        state
            .sessions
            .iter()
            .map(|s| s.binary_messages)
            .sum::<usize>(),
        0
    );
    let texts: Vec<&String> = state.sessions.iter().flat_map(|s| &s.messages).collect();
    assert!(
        texts.iter().all(|t| t.len() < 4096),
        "the oversized message reached upstream"
    );
    assert_eq!(texts.len(), 2, "{texts:?}");
}

#[test]
fn sessions_count_against_the_connection_cap_and_are_never_evicted() {
    let mock = WsMock::start().unwrap();
    let proxy = start(&mock, &["--max-connections", "2"]);
    rt().block_on(async {
        let mut a = connect(proxy.port, &[]).await.unwrap();
        let mut b = connect(proxy.port, &[]).await.unwrap();
        // Both connections are busy (sessions): a third one is closed without an answer.
        let mut third = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
            .await
            .unwrap();
        let head = format!(
            "POST /v1/responses HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-length: 2\r\n\r\n{{}}",
            proxy.port
        );
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let _ = third.write_all(head.as_bytes()).await;
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut buf))
            .await
            .expect("the third connection is closed")
            .unwrap_or(0);
        assert_eq!(
            n,
            0,
            "served past the cap: {}",
            String::from_utf8_lossy(&buf)
        );
        // ... and neither session was evicted to make room.
        for ws in [&mut a, &mut b] {
            ws.send(Message::text(create("gpt-5"))).await.unwrap();
            let got = read_until(ws, "response.completed").await;
            assert!(
                got.types().contains(&"response.completed".to_string()),
                "{got:?}"
            );
        }
        // Control: once a session ends, a new connection is served.
        a.close(None).await.unwrap();
        drop(a);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(connect(proxy.port, &[]).await.is_ok());
    });
}

#[test]
fn an_upstream_without_the_websocket_mode_gives_the_client_an_http_error() {
    // The HTTP-only mock answers the upgrade with an ordinary 200: no session.
    let mock = suite_test_support::responses_mock::MockUpstream::start().unwrap();
    let proxy = Spawn::new(&mock.responses_url()).start();
    let status = rt().block_on(async { connect(proxy.port, &[]).await.err() });
    assert_eq!(
        status,
        Some(502),
        "a failed upstream upgrade is an HTTP error, not a 101"
    );
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "GET");
    assert_eq!(
        reqs[0].header("authorization").unwrap(),
        format!("Bearer {KEY}")
    );
    assert_eq!(reqs[0].header("upgrade").unwrap(), "websocket");
    let log = proxy.wait_log("upstream_error", 1);
    assert!(
        log.contains("upstream answered 200 OK to the WebSocket upgrade"),
        "{log}"
    );
    assert!(!log.contains(KEY));
}

/// A proxy in front of `mock` with the policy `text` and the flags `extra`; the directory that
/// holds the policy (and whatever the caller puts there).
fn policy_proxy(mock: &WsMock, text: &str, extra: &[&str]) -> (Proxy, tempfile::TempDir) {
    let d = policy_dir();
    let policy = write_policy(d.path(), text);
    let mut args = vec!["--policy", policy.to_str().unwrap()];
    args.extend_from_slice(extra);
    (start(mock, &args), d)
}

#[test]
fn a_denied_model_gets_an_error_event_and_the_next_message_on_the_connection_works() {
    let mock = WsMock::start().unwrap();
    let state = tempfile::tempdir().unwrap();
    let state = state.path().join("state");
    let (proxy, _d) = policy_proxy(
        &mock,
        "[default]\nmodels = [\"gpt-5*\"]\ndeny_models = [\"gpt-5-pro\"]\nmax_output_tokens = 500\n",
        &["--state-dir", state.to_str().unwrap()],
    );
    let (refused, other, allowed) = rt().block_on(async {
        let mut ws = connect(proxy.port, &[]).await.unwrap();
        ws.send(Message::text(create("gpt-5-pro"))).await.unwrap();
        let refused = read_until(&mut ws, "error").await;
        // An unknown message type could start a response the policy never saw: refused too.
        ws.send(Message::text(
            r#"{"type":"response.append","model":"gpt-5"}"#,
        ))
        .await
        .unwrap();
        let other = read_until(&mut ws, "error").await;
        ws.send(Message::text(create("gpt-5"))).await.unwrap();
        let allowed = read_until(&mut ws, "response.completed").await;
        ws.close(None).await.unwrap();
        (refused, other, allowed)
    });
    assert!(refused.close.is_none(), "the connection stays open");
    let ev: serde_json::Value = serde_json::from_str(refused.texts.last().unwrap()).unwrap();
    assert_eq!(ev["type"], "error");
    assert_eq!(ev["status"], 403);
    assert_eq!(ev["error"]["code"], "model_denied");
    assert_eq!(ev["error"]["rule"], "default.deny_models");
    let ev: serde_json::Value = serde_json::from_str(other.texts.last().unwrap()).unwrap();
    assert_eq!(ev["error"]["code"], "message_type_refused");
    assert!(
        allowed.types().contains(&"response.completed".to_string()),
        "{allowed:?}"
    );

    // Upstream saw only the admitted message, rewritten: store forced off, ceiling applied.
    assert!(mock.wait_until(Duration::from_secs(5), |s| {
        s.sessions.first().is_some_and(|x| x.ended)
    }));
    let st = mock.state();
    assert_eq!(
        st.sessions[0].messages.len(),
        1,
        "{:?}",
        st.sessions[0].messages
    );
    let sent: serde_json::Value = serde_json::from_str(&st.sessions[0].messages[0]).unwrap();
    assert_eq!(sent["type"], "response.create");
    assert_eq!(sent["model"], "gpt-5");
    assert_eq!(sent["store"], false);
    assert_eq!(sent["max_output_tokens"], 500);

    // The usage of response.completed is in the ledger, for the peer's uid (root here).
    let log = proxy.wait_log(
        "model=\"gpt-5\" tokens_in=11 tokens_cached=0 tokens_out=7",
        1,
    );
    assert!(
        log.contains("decision=\"refused\"") || log.contains("decision=refused"),
        "{log}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let report = usage_json(&state, &[]);
        let row = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["uid"] == 0 && r["model"] == "gpt-5")
            .cloned();
        if let Some(row) = row {
            assert_eq!(row["input_tokens"], 11, "{report}");
            assert_eq!(row["output_tokens"], 7, "{report}");
            assert_eq!(row["requests"], 1, "{report}");
            break;
        }
        assert!(Instant::now() < deadline, "no ledger row: {report}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_idle_session_is_closed_and_sigterm_drains_open_sessions_with_close_frames() {
    let mock = WsMock::start().unwrap();
    let proxy = start(&mock, &["--ws-idle-timeout", "1"]);
    rt().block_on(async {
        let mut ws = connect(proxy.port, &[]).await.unwrap();
        let t0 = Instant::now();
        let got = read_until(&mut ws, "-").await;
        let (code, reason) = got.close.expect("a close frame");
        assert_eq!(code, u16::from(CloseCode::Away));
        assert_eq!(reason, "idle timeout");
        assert!(t0.elapsed() >= Duration::from_millis(900));
    });
    drop(proxy);

    // A response in flight at SIGTERM is relayed to its end, then the session is closed.
    mock.set_script(WsScript {
        delay: Duration::from_millis(150),
        ..WsScript::default()
    });
    let mut proxy = start(&mock, &[]);
    let got = rt().block_on(async {
        let mut ws = connect(proxy.port, &[]).await.unwrap();
        ws.send(Message::text(create("gpt-5"))).await.unwrap();
        let first = read_until(&mut ws, "response.created").await;
        assert_eq!(first.types(), vec!["response.created"]);
        proxy.signal("TERM");
        read_until(&mut ws, "never").await
    });
    assert!(
        got.types().contains(&"response.completed".to_string()),
        "{got:?}"
    );
    let (code, reason) = got.close.expect("a close frame after the response");
    assert_eq!(code, u16::from(CloseCode::Away));
    assert_eq!(reason, "proxy shutting down");
    let status = proxy
        .wait_exit(Duration::from_secs(10))
        .expect("the proxy exits");
    assert!(status.success(), "{status:?}");
}

fn ledger_row(state: &Path, model: &str, n: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let report = usage_json(state, &[]);
        let row = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["uid"] == 0 && r["model"] == model && r["requests"] == n)
            .cloned();
        if let Some(row) = row {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "no ledger row for {model} with {n} requests: {report}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A proxy under a policy (`gpt-5*`, output ceiling 500: the estimate's output) with a state
/// dir and `--ws-idle-timeout idle`, in front of a mock that sends `response.created` and then
/// only pings, every 200 ms; a client that leaves right after `response.created`.
fn abandoned_behind_pings(idle: &str) -> (Proxy, tempfile::TempDir, WsMock) {
    let mock = WsMock::start().unwrap();
    mock.set_script(WsScript {
        stall_with_pings: Some(Duration::from_millis(200)),
        ..WsScript::default()
    });
    let d = policy_dir();
    let policy = write_policy(
        d.path(),
        "[default]\nmodels = [\"gpt-5*\"]\nmax_output_tokens = 500\nday = { output_tokens = 100000 }\n",
    );
    let state = d.path().join("state");
    let admin = d.path().join("admin.sock");
    let proxy = start(
        &mock,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--ws-idle-timeout",
            idle,
            "--admin-socket",
            admin.to_str().unwrap(),
        ],
    );
    rt().block_on(async {
        let mut ws = connect(proxy.port, &[]).await.unwrap();
        ws.send(Message::text(create("gpt-5"))).await.unwrap();
        let _ = read_until(&mut ws, "response.created").await;
        drop(ws);
    });
    (proxy, d, mock)
}

/// `GET /metrics` on the admin socket (as root).
fn metrics(admin: &Path) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "--unix-socket"])
        .arg(admin)
        .arg("http://admin/metrics")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Outside review r36 F1: after its client left, a response whose upstream sent only pings
/// (or pongs, or fragments it never finished) was read on for as long as they came, past the
/// idle timeout (600 s and more), unbooked, holding one of the user's session slots. Only text
/// messages count as activity now: with a 2 s idle timeout the read ends and the response is
/// charged its estimate within seconds. (Before the fix no ledger row appeared.)
#[test]
fn pings_do_not_keep_an_abandoned_websocket_response_read() {
    let (proxy, d, _mock) = abandoned_behind_pings("2");
    let row = ledger_row(&d.path().join("state"), "gpt-5", 1);
    assert_eq!(row["output_tokens"], 500, "the estimate: {row}");
    let log = proxy.wait_log("usage_anomaly", 1);
    assert!(log.contains("estimated"), "{log}");
}

/// Outside review r36 F2: at SIGTERM, a response read on after its client left held the
/// shutdown for the whole idle timeout (300 s) and, behind pings, up to the 600 s drain
/// deadline, after which it was never booked. Now such reads go on at most 10 s into a
/// shutdown and what is left is charged its estimate. Control: the response was still being
/// read (no ledger row) before the signal.
#[test]
fn a_shutdown_does_not_wait_out_an_abandoned_websocket_response_and_charges_it() {
    let (mut proxy, d, _mock) = abandoned_behind_pings("300");
    let state = d.path().join("state");
    std::thread::sleep(Duration::from_secs(1));
    let before = usage_json(&state, &[]);
    assert!(
        before["rows"].as_array().is_none_or(|r| r.is_empty()),
        "control: nothing booked while the response is read on: {before}"
    );
    // the reservation of the response being read on shows in the metrics (r36 note: for a
    // uid whose only requests were such responses there was no line; here uid 0 has finished
    // requests already, so this checks the figure, not that listing)
    let m = metrics(&d.path().join("admin.sock"));
    assert!(
        m.contains(
            "responses_api_proxy_budget_reserved{uid=\"0\",period=\"day\",kind=\"output\"} 500\n"
        ),
        "{m}"
    );
    proxy.signal("TERM");
    let t0 = Instant::now();
    let status = proxy
        .wait_exit(Duration::from_secs(40))
        .unwrap_or_else(|| panic!("still running 40 s after SIGTERM\n{}", proxy.stderr()));
    assert!(status.success(), "{status:?}");
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(30), "took {took:?}");
    let row = ledger_row(&state, "gpt-5", 1);
    assert_eq!(row["output_tokens"], 500, "the estimate: {row}");
}

#[test]
fn a_client_that_leaves_mid_response_still_pays() {
    let mock = WsMock::start().unwrap();
    let d = policy_dir();
    let policy = write_policy(
        d.path(),
        "[default]\nmodels = [\"gpt-5*\"]\nmax_output_tokens = 500\n",
    );
    let state = d.path().join("state");
    let proxy = start(
        &mock,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    // The usage comes after the client left: the proxy reads on for it.
    mock.set_script(WsScript {
        delay: Duration::from_millis(100),
        ..WsScript::default()
    });
    rt().block_on(async {
        let mut ws = connect(proxy.port, &[]).await.unwrap();
        ws.send(Message::text(create("gpt-5"))).await.unwrap();
        let got = read_until(&mut ws, "response.created").await;
        assert_eq!(got.types(), vec!["response.created"]);
        drop(ws); // no close frame: the socket just goes away
    });
    let row = ledger_row(&state, "gpt-5", 1);
    assert_eq!(row["input_tokens"], 11, "{row}");
    assert_eq!(
        row["output_tokens"], 7,
        "the reported usage, read after the client left: {row}"
    );

    // Control for the estimate: the upstream never reports usage; the response is not free.
    mock.set_script(WsScript {
        delay: Duration::from_millis(100),
        usage: None,
        ..WsScript::default()
    });
    rt().block_on(async {
        let mut ws = connect(proxy.port, &[]).await.unwrap();
        ws.send(Message::text(create("gpt-5-mini"))).await.unwrap();
        let _ = read_until(&mut ws, "response.created").await;
        drop(ws);
    });
    let row = ledger_row(&state, "gpt-5-mini", 1);
    assert_eq!(
        row["output_tokens"], 500,
        "the estimate (the clamped ceiling): {row}"
    );
    assert!(row["input_tokens"].as_u64().unwrap() > 0, "{row}");
    let log = proxy.wait_log("usage_anomaly", 1);
    assert!(log.contains("estimated"), "{log}");

    // Review r15 F9: out-of-range numbers (the reviewer's `hugeusage`) are not booked as 0:
    // each bad count is charged the estimate; the good cached count (0) stays.
    mock.set_script(WsScript {
        usage: Some(serde_json::json!({
            "input_tokens": 1e30, "output_tokens": -5,
            "input_tokens_details": {"cached_tokens": 0}, "total_tokens": 18446744073709551616.0,
        })),
        ..WsScript::default()
    });
    rt().block_on(async {
        let mut ws = connect(proxy.port, &[]).await.unwrap();
        ws.send(Message::text(create("gpt-5-nano"))).await.unwrap();
        let _ = read_until(&mut ws, "response.completed").await;
        ws.close(None).await.unwrap();
    });
    let row = ledger_row(&state, "gpt-5-nano", 1);
    assert_eq!(row["output_tokens"], 500, "the estimate, not 0: {row}");
    assert!(row["input_tokens"].as_u64().unwrap() > 0, "{row}");
    let log = proxy.wait_log("bad usage numbers: estimated", 1);
    assert!(log.contains("tokens_out=500"), "{log}");
}

/// Outside review r53 F3: an upstream that sent `response.completed` twice for one response
/// had the repeat booked as the next response's usage (then every later response one late,
/// the last one's usage never, and the next `response.create` sent upstream while one was
/// still running). Terminal events are matched to the response in flight by `response.id`:
/// three responses of 7 output tokens, each followed by a repeat claiming 1, book 21 (15
/// without the match).
#[test]
fn a_repeated_terminal_event_is_not_the_next_responses_usage() {
    let mock = WsMock::start().unwrap();
    mock.set_script(WsScript {
        repeat_terminal_usage: Some(serde_json::json!({"input_tokens": 1, "output_tokens": 1})),
        ..WsScript::default()
    });
    let (proxy, _d, state) = with_output_budget(&mock, 100000);
    rt().block_on(async {
        let mut ws = connect(proxy.port, &[]).await.unwrap();
        for _ in 0..3 {
            ws.send(Message::text(create("gpt-5"))).await.unwrap();
        }
        let mut completed = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while completed < 6 {
            let m = tokio::time::timeout_at(deadline, ws.next())
                .await
                .expect("six response.completed within 20 s")
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                if t.as_str().contains("\"response.completed\"") {
                    completed += 1;
                }
            }
        }
        ws.close(None).await.unwrap();
    });
    let row = ledger_row(&state, "gpt-5", 3);
    assert_eq!(row["output_tokens"], 21, "{row}");
    assert!(
        proxy
            .wait_log(
                "a terminal event for a response that is not the one in flight",
                3
            )
            .contains("not counted")
    );
}

/// The real Codex CLI: `scripts/test` installs it with npm (`$SUITE_CODEX_CLI`); without it
/// this test fails, it does not skip.
fn codex_cli() -> PathBuf {
    let path = std::env::var("SUITE_CODEX_CLI")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            "/tmp/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"
                .into()
        });
    let p = PathBuf::from(&path);
    assert!(
        p.is_file(),
        "the real Codex CLI is missing at {path}: run the tests with scripts/test, which installs \
         @openai/codex with npm (or set SUITE_CODEX_CLI)"
    );
    p
}

/// Runs `codex exec` against the proxy on `port` with a provider whose `supports_websockets` is
/// `ws`; returns (success, stdout, stderr).
fn codex_exec(codex: &Path, port: u16, ws: bool) -> (bool, String, String) {
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("config.toml"),
        format!(
            r#"model = "gpt-5"
model_provider = "viaproxy"

[model_providers.viaproxy]
name = "responses-api-proxy"
base_url = "http://127.0.0.1:{port}/v1"
wire_api = "responses"
env_key = "VIAPROXY_DUMMY_KEY"
supports_websockets = {ws}
request_max_retries = 0
stream_max_retries = 0
"#
        ),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(codex)
        .args(["exec", "--skip-git-repo-check", "-s", "read-only", "say hi"])
        .current_dir(work.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("CODEX_HOME", home.path())
        .env("VIAPROXY_DUMMY_KEY", "client-dummy-key")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_real_codex_cli_uses_the_websocket_mode_through_the_proxy() {
    let codex = codex_cli();
    let mock = WsMock::start().unwrap();
    mock.set_script(WsScript {
        text: "websocket says hi".into(),
        ..WsScript::default()
    });
    let proxy = start(&mock, &[]);
    let (ok, stdout, stderr) = codex_exec(&codex, proxy.port, true);
    let state = mock.state();
    eprintln!(
        "codex stdout:\n{stdout}\ncodex stderr:\n{stderr}\nmock: {} sessions, messages {:?}, http {:?}",
        state.sessions.len(),
        state
            .sessions
            .iter()
            .map(|s| s
                .messages
                .iter()
                .filter_map(|m| serde_json::from_str::<serde_json::Value>(m).ok())
                .map(|v| format!(
                    "type={} model={} generate={} store={} previous_response_id={} tools={:?}",
                    v["type"],
                    v["model"],
                    v["generate"],
                    v["store"],
                    v["previous_response_id"],
                    v["tools"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|t| match t["tools"].as_array() {
                            Some(inner) => format!(
                                "{}[{}]",
                                t["type"],
                                inner
                                    .iter()
                                    .map(|i| i["type"].to_string())
                                    .collect::<Vec<_>>()
                                    .join(",")
                            ),
                            None => t["type"].to_string(),
                        })
                        .collect::<Vec<_>>()
                ))
                .collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        state
            .http
            .iter()
            .map(|h| (&h.method, &h.path))
            .collect::<Vec<_>>()
    );
    assert!(ok, "codex exec failed");
    assert!(
        stdout.contains("websocket says hi"),
        "the answer did not come back"
    );
    assert!(
        !state.sessions.is_empty(),
        "the mock saw no WebSocket session"
    );
    let creates: Vec<&String> = state
        .sessions
        .iter()
        .flat_map(|s| &s.messages)
        .filter(|m| m.contains("\"response.create\""))
        .collect();
    assert!(!creates.is_empty(), "no response.create over the WebSocket");
    assert!(
        !state.http.iter().any(|h| h.method == "POST"),
        "codex fell back to HTTP: {:?}",
        state.http.iter().map(|h| &h.path).collect::<Vec<_>>()
    );
    for s in &state.sessions {
        assert_eq!(s.header("authorization").unwrap(), format!("Bearer {KEY}"));
    }
    let log = proxy.stderr();
    assert!(log.contains("status=101"), "{log}");
    assert!(!log.contains(KEY));

    // With a policy: codex's messages are checked and rewritten (the ceiling inserted), and its
    // usage lands in the ledger for the peer's uid (root here): the warm-up
    // (`"generate":false`) and the turn, 11 + 7 tokens each from the mock.
    let d = policy_dir();
    let policy = write_policy(
        d.path(),
        // Codex 0.171 sends `web_search` (server-side) by default, and its own function tools
        // grouped in a `namespace` tool (client-side).
        "[default]\nmodels = [\"gpt-5*\"]\nmax_output_tokens = 400\nserver_tools = [\"web_search\"]\n",
    );
    let ledger = d.path().join("state");
    let mock = WsMock::start().unwrap();
    mock.set_script(WsScript {
        text: "governed websocket says hi".into(),
        ..WsScript::default()
    });
    let proxy = start(
        &mock,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            ledger.to_str().unwrap(),
        ],
    );
    let (ok, stdout, stderr) = codex_exec(&codex, proxy.port, true);
    assert!(ok, "codex exec under a policy failed: {stderr}");
    assert!(stdout.contains("governed websocket says hi"), "{stdout}");
    let state = mock.state();
    assert!(
        state.http.is_empty(),
        "{:?}",
        state.http.iter().map(|h| &h.path).collect::<Vec<_>>()
    );
    let creates: Vec<serde_json::Value> = state
        .sessions
        .iter()
        .flat_map(|s| &s.messages)
        .filter_map(|m| serde_json::from_str(m).ok())
        .collect();
    assert!(!creates.is_empty());
    assert!(
        creates
            .iter()
            .all(|c| c["max_output_tokens"] == 400 && c["store"] == false),
        "{creates:?}"
    );
    let row = ledger_row(&ledger, "gpt-5", creates.len() as u64);
    assert_eq!(row["input_tokens"], 11 * creates.len() as u64, "{row}");
    assert_eq!(row["output_tokens"], 7 * creates.len() as u64, "{row}");

    // A refusal reaches the real client as an error it reports (the `error` event), and nothing
    // reaches the upstream.
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nmodels = [\"o3\"]\n");
    let mock = WsMock::start().unwrap();
    let proxy = start(&mock, &["--policy", policy.to_str().unwrap()]);
    let (ok, _stdout, stderr) = codex_exec(&codex, proxy.port, true);
    let state = mock.state();
    eprintln!(
        "codex under a refusing policy: success={ok}, {} sessions, {} messages upstream, http {:?}\n{}",
        state.sessions.len(),
        state
            .sessions
            .iter()
            .map(|s| s.messages.len())
            .sum::<usize>(),
        state
            .http
            .iter()
            .map(|h| (&h.method, &h.path))
            .collect::<Vec<_>>(),
        stderr
            .lines()
            .filter(|l| l.contains("ERROR"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(!ok, "codex succeeded although the policy refuses its model");
    assert!(
        stderr.contains("is not in the policy's allowed models"),
        "{stderr}"
    );
    assert_eq!(
        state
            .sessions
            .iter()
            .map(|s| s.messages.len())
            .sum::<usize>(),
        0
    );
    assert!(!state.http.iter().any(|h| h.method == "POST"));

    // Control: the same run without `supports_websockets` takes the HTTP path, which the
    // record tells apart.
    let mock = WsMock::start().unwrap();
    mock.set_script(WsScript {
        text: "http says hi".into(),
        ..WsScript::default()
    });
    let proxy = start(&mock, &[]);
    let (ok, stdout, stderr) = codex_exec(&codex, proxy.port, false);
    let state = mock.state();
    assert!(ok, "codex exec over HTTP failed: {stderr}");
    assert!(stdout.contains("http says hi"), "{stdout}");
    assert!(state.sessions.is_empty(), "{:?}", state.sessions);
    assert!(
        state
            .http
            .iter()
            .any(|h| h.method == "POST" && h.path == "/v1/responses")
    );
}

/// Relay cost (not a pass/fail check; run with `--ignored --nocapture`): 20 responses of 2000
/// delta messages each, through the proxy (with and without a policy) and straight to the mock.
#[test]
#[ignore]
fn ws_relay_throughput() {
    let mock = WsMock::start().unwrap();
    mock.set_script(WsScript {
        text: "word ".repeat(2000),
        ..WsScript::default()
    });
    let d = policy_dir();
    let policy = write_policy(
        d.path(),
        "[default]\nmodels = [\"gpt-5*\"]\nmax_output_tokens = 500\n",
    );
    let plain = start(&mock, &[]);
    let governed = start(&mock, &["--policy", policy.to_str().unwrap()]);
    let run = |port: u16| {
        rt().block_on(async move {
            let mut ws = connect(port, &[]).await.unwrap();
            let t0 = Instant::now();
            let mut msgs = 0;
            for _ in 0..20 {
                ws.send(Message::text(create("gpt-5"))).await.unwrap();
                msgs += read_until(&mut ws, "response.completed").await.texts.len();
            }
            (msgs, t0.elapsed())
        })
    };
    for (name, port) in [
        ("direct to the mock", mock.addr().port()),
        ("through the proxy", plain.port),
        ("through the proxy with --policy", governed.port),
    ] {
        let _ = run(port); // warm-up
        let (msgs, took) = run(port);
        eprintln!(
            "{name}: {msgs} messages in {:.1} ms = {:.0} messages/s",
            took.as_secs_f64() * 1000.0,
            msgs as f64 / took.as_secs_f64()
        );
    }
}

/// Outside review r15 F1 and F6: (1) `response.create` messages written in one burst were all
/// admitted against the budget as it stood before any ended (60x a daily budget in one write);
/// under a policy they now wait while a response is in flight and are checked one at a time
/// (at most 8 wait). (2) A malformed `response.processed` provoked upstream `error` events that
/// the accounting took for the end of a response; it is no longer forwarded under a policy.
/// Control: the same burst without a policy reaches the upstream whole.
#[test]
fn pipelined_creates_are_checked_one_at_a_time_against_the_budget() {
    let burst = |proxy: &Proxy| {
        rt().block_on(async {
            let mut ws = connect(proxy.port, &[]).await.unwrap();
            for _ in 0..10 {
                ws.send(Message::text(create("gpt-5"))).await.unwrap();
            }
            let (mut completed, mut errors) = (0, Vec::new());
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while completed + errors.len() < 10 {
                let m = tokio::time::timeout_at(deadline, ws.next())
                    .await
                    .expect("10 answers within 20 s")
                    .unwrap()
                    .unwrap();
                if let Message::Text(t) = m {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                    match v["type"].as_str() {
                        Some("response.completed") => completed += 1,
                        Some("error") => {
                            errors.push(v["error"]["code"].as_str().unwrap_or("").to_string())
                        }
                        _ => {}
                    }
                }
            }
            // A malformed response.processed, then the session ends.
            ws.send(Message::text(r#"{"type":"response.processed","bogus":1}"#))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            ws.close(None).await.unwrap();
            (completed, errors)
        })
    };
    let mock = WsMock::start().unwrap();
    let (proxy, _d, _state) = with_output_budget(&mock, 20);
    let (completed, errors) = burst(&proxy);
    // 0, 7 and 14 output tokens spent are under 20: three responses; the rest refused.
    assert_eq!(completed, 3, "{errors:?}");
    assert!(errors.iter().any(|c| c == "budget_exhausted"), "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|c| c == "budget_exhausted" || c == "too_many_waiting"),
        "{errors:?}"
    );
    assert!(mock.wait_until(Duration::from_secs(5), |s| {
        s.sessions.first().is_some_and(|x| x.ended)
    }));
    let st = mock.state();
    let types: Vec<String> = st.sessions[0]
        .messages
        .iter()
        .map(|m| serde_json::from_str::<serde_json::Value>(m).unwrap()["type"].to_string())
        .collect();
    assert_eq!(
        types.len(),
        3,
        "only the admitted creates reached the upstream: {types:?}"
    );
    assert!(
        types.iter().all(|t| t == "\"response.create\""),
        "{types:?}"
    );
    drop(proxy);

    // Control: without a policy the whole burst goes upstream.
    let mock = WsMock::start().unwrap();
    let proxy = start(&mock, &[]);
    let (completed, errors) = burst(&proxy);
    assert_eq!((completed, errors.len()), (10, 0), "{errors:?}");
}

/// A proxy in front of `mock` under a policy whose default is a daily budget of `tokens` output
/// tokens, with a state dir (returned; keep the temporary directory alive).
fn with_output_budget(mock: &WsMock, tokens: u64) -> (Proxy, tempfile::TempDir, PathBuf) {
    let d = policy_dir();
    let policy = write_policy(
        d.path(),
        &format!("[default]\nday = {{ output_tokens = {tokens} }}\n"),
    );
    let state = d.path().join("state");
    let proxy = start(
        mock,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    (proxy, d, state)
}

/// Outside review r15 F2: one user held every connection slot with WebSocket sessions kept
/// alive by pings. Pings no longer keep a session alive past `--ws-idle-timeout`, and a user
/// holds at most 16 sessions at once (429 for the next). Control: a session that relays
/// messages outlives the idle timeout.
#[test]
fn pings_do_not_keep_a_session_and_one_user_holds_at_most_16() {
    let mock = WsMock::start().unwrap();
    let proxy = start(&mock, &["--ws-idle-timeout", "2"]);
    rt().block_on(async {
        let mut pinger = connect(proxy.port, &[]).await.unwrap();
        let started = tokio::time::Instant::now();
        let closed = loop {
            pinger.send(Message::Ping(vec![1u8].into())).await.unwrap();
            match tokio::time::timeout(Duration::from_millis(400), pinger.next()).await {
                Ok(Some(Ok(Message::Close(f)))) => break f,
                Ok(None) | Ok(Some(Err(_))) => break None,
                _ => {}
            }
            assert!(
                started.elapsed() < Duration::from_secs(8),
                "pings kept the session alive"
            );
        };
        if let Some(f) = closed {
            assert_eq!(f.reason.as_str(), "idle timeout");
        }
        // Control: messages relayed every second keep a session past the 2 s timeout.
        let mut busy = connect(proxy.port, &[]).await.unwrap();
        for _ in 0..4 {
            busy.send(Message::text(create("gpt-5"))).await.unwrap();
            let got = read_until(&mut busy, "response.completed").await;
            assert!(got.close.is_none(), "{got:?}");
            tokio::time::sleep(Duration::from_millis(900)).await;
        }
        // 15 more sessions of the same user (root) make 16; the 17th is refused.
        let mut held = Vec::new();
        for _ in 0..15 {
            held.push(connect(proxy.port, &[]).await.unwrap());
        }
        assert_eq!(connect(proxy.port, &[]).await.err(), Some(429));
        drop(held);
    });
}

/// The most sessions one user (root, here) may hold at once (`ws.rs` `SESSIONS_PER_USER`).
fn ws_sessions_per_user() -> usize {
    16
}

/// A `response.create` of about `pad` bytes (its `instructions` padded).
fn big_create(pad: usize) -> String {
    serde_json::json!({
        "type": "response.create",
        "model": "gpt-5",
        "instructions": "x".repeat(pad),
        "input": "hi",
        "stream": true,
    })
    .to_string()
}

/// A proxy under a policy that allows `gpt-5`, with `--max-body-bytes` 1 MiB and `budget` bytes
/// of `--max-buffered-bytes`, in front of a mock that sends each event `delay` after the last.
/// (Returned in drop order: the proxy goes first.)
fn governed_with_budget(delay: Duration, budget: &str) -> (Proxy, tempfile::TempDir, WsMock) {
    let mock = WsMock::start().unwrap();
    mock.set_script(WsScript {
        delay,
        ..WsScript::default()
    });
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nmodels = [\"gpt-5\"]\n");
    let proxy = start(
        &mock,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--max-body-bytes",
            "1048576",
            "--max-buffered-bytes",
            budget,
        ],
    );
    (proxy, d, mock)
}

/// Outside review r18 F8: under a policy, `response.create` messages that arrive while one is
/// in flight wait, each held whole, and none was counted anywhere (9 × --max-body-bytes per
/// session, 16 sessions per uid). They now count against --max-buffered-bytes and the user's
/// share of it (a quarter, at least --max-body-bytes): with a 3 MiB budget (a 1 MiB share), of 8
/// waiting messages of 900 kB one waits and seven get an `error` event 503 `proxy_busy`; the
/// session stays usable. Control: with a budget whose share holds them all, all eight wait and
/// are served.
#[test]
fn waiting_messages_count_against_the_buffer_budget() {
    let run = |budget: &str| {
        let (proxy, _d, mock) = governed_with_budget(Duration::from_millis(300), budget);
        let (completed, errors) = rt().block_on(async {
            let mut ws = connect(proxy.port, &[]).await.unwrap();
            ws.send(Message::text(create("gpt-5"))).await.unwrap();
            for _ in 0..8 {
                ws.send(Message::text(big_create(900_000))).await.unwrap();
            }
            // the first response is still in flight (6 events, 300 ms apart); the rest quickly
            mock.set_script(WsScript::default());
            let (mut completed, mut errors) = (0, Vec::new());
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while completed + errors.len() < 9 {
                let m = tokio::time::timeout_at(deadline, ws.next())
                    .await
                    .expect("9 answers within 30 s")
                    .unwrap()
                    .unwrap();
                if let Message::Text(t) = m {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                    match v["type"].as_str() {
                        Some("response.completed") => completed += 1,
                        Some("error") => {
                            assert_eq!(v["status"], 503, "{v}");
                            errors.push(v["error"]["code"].as_str().unwrap_or("").to_string())
                        }
                        _ => {}
                    }
                }
            }
            // still usable
            ws.send(Message::text(create("gpt-5"))).await.unwrap();
            let got = read_until(&mut ws, "response.completed").await;
            assert!(got.close.is_none(), "{got:?}");
            ws.close(None).await.unwrap();
            (completed, errors)
        });
        (completed, errors, proxy.stderr())
    };
    let (completed, errors, log) = run("3145728");
    assert_eq!((completed, errors.len()), (2, 7), "{errors:?}\n{log}");
    assert!(errors.iter().all(|c| c == "proxy_busy"), "{errors:?}");
    assert!(log.contains("--max-buffered-bytes"), "{log}");
    // Control: a budget that holds all eight.
    let (completed, errors, log) = run("67108864");
    assert_eq!((completed, errors.len()), (9, 0), "{errors:?}\n{log}");
}

/// The status code of a raw HTTP/1.1 POST of `body` to the proxy (as root).
fn post_status(port: u16, body: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let _ = s.write_all(body.as_bytes());
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0)
}

/// Outside review r33 F2: a client that left with a `response.create` waiting kept that
/// message's bytes counted against its share of --max-buffered-bytes until the response in
/// flight ended upstream (up to --ws-idle-timeout): the same user's next governed request got
/// 503 with no connection open. Now the waiting messages go when the session's relay ends.
/// Control: while the session is open, the same request is refused (the share is in use).
#[test]
fn a_client_that_leaves_gives_back_what_its_waiting_messages_held() {
    // the first response stays in flight for about 6 s; a 1 MiB share: one 900 kB message
    // waiting fills it
    let (proxy, _d, _mock) = governed_with_budget(Duration::from_secs(1), "3145728");
    let body = serde_json::json!({"model": "gpt-5", "input": "x".repeat(900_000)}).to_string();
    rt().block_on(async {
        let mut ws = connect(proxy.port, &[]).await.unwrap();
        ws.send(Message::text(create("gpt-5"))).await.unwrap();
        ws.send(Message::text(big_create(900_000))).await.unwrap();
        // until the proxy has read the waiting message: the share is in use (a POST sent
        // before that would hold the share itself and have the message refused)
        tokio::time::sleep(Duration::from_millis(500)).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            let status = post_status(proxy.port, &body);
            if status == 503 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "control: {status}\n{}",
                proxy.stderr()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // the client goes away without a close frame
        drop(ws);
    });
    std::thread::sleep(Duration::from_millis(300));
    let status = post_status(proxy.port, &body);
    assert_ne!(status, 503, "{}", proxy.stderr());
}

/// The status line of a WebSocket upgrade to the proxy sent by uid 65534 (`python3` run as it).
fn upgrade_status_as_nobody(port: u16) -> String {
    use std::os::unix::process::CommandExt;
    let script = r#"
import base64, os, socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
           % (port, key)).encode())
print(s.recv(4096).split(b"\r\n")[0].decode())
"#;
    // The system python3, not $SUITE_PYTHON: that venv lives in the checkout, which uid 65534
    // may not be able to enter (CI clones under a 0700 directory). The script needs no SDK.
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, &port.to_string()])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("cannot run python3 as uid 65534: the test cannot run its check");
    assert!(
        out.status.success(),
        "the uid 65534 client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Outside review r18 F4: without --policy or an allow-list, TCP peers were not identified and
/// shared one session count, so one user's 16 sessions refused everybody's WebSocket mode. Every
/// peer is identified now: root holds 16 (its 17th gets 429) and uid 65534 still opens one.
#[test]
fn without_a_policy_one_users_sessions_do_not_refuse_another_users() {
    let mock = WsMock::start().unwrap();
    let proxy = start(&mock, &[]);
    rt().block_on(async {
        let mut held = Vec::new();
        for _ in 0..ws_sessions_per_user() {
            held.push(connect(proxy.port, &[]).await.unwrap());
        }
        // control: the same user is at its cap
        assert_eq!(connect(proxy.port, &[]).await.err(), Some(429));
        let other = upgrade_status_as_nobody(proxy.port);
        assert!(
            other.starts_with("HTTP/1.1 101"),
            "uid 65534 was refused while root held its sessions: {other}"
        );
        drop(held);
    });
}

/// Outside review r20 L1: a session cut by a rotation (every key page in use: the oldest
/// retired key's holders are cut) was charged its response's whole reservation and logged
/// `client_gone`. Now its audit line says `rotated`, and the response in flight is read on
/// upstream (nothing more reaches the client) until its `response.completed`, whose usage is
/// what the ledger gets: `tokens_out=7`, the mock's count, not the 500 reserved.
#[test]
fn a_session_cut_by_a_rotation_is_logged_rotated_and_charged_its_real_usage() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("openai.key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let admin_dir = tempfile::tempdir().unwrap();
    let admin = admin_dir.path().join("admin.sock");
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nmax_output_tokens = 500\n");
    let state = d.path().join("state");
    let mock = WsMock::start().unwrap();
    // about 40 events 100 ms apart: each response lasts ~4 s
    mock.set_script(WsScript {
        text: (0..40).map(|i| format!("w{i} ")).collect(),
        delay: Duration::from_millis(100),
        ..WsScript::default()
    });
    let proxy = Spawn::new(&mock.responses_url())
        .key(b"")
        .arg("--api-key-file")
        .arg(key_file.to_str().unwrap())
        .arg("--admin-socket")
        .arg(admin.to_str().unwrap())
        .arg("--key-pages-without-memfd-secret")
        .arg("--policy")
        .arg(policy.to_str().unwrap())
        .arg("--state-dir")
        .arg(state.to_str().unwrap())
        .start();
    let key = |i: usize| format!("sk-proj-ROTATED{i}_websocket_cut_usage_canary");
    let rt = rt();
    let first = rt.block_on(async {
        // sessions 0-2 each hold a response in flight under keys 0-2 (three retired pages)
        let mut sessions = Vec::new();
        for i in 0..3 {
            let mut ws = connect(proxy.port, &[]).await.expect("upgrade accepted");
            ws.send(Message::text(create("gpt-5"))).await.unwrap();
            let m = ws.next().await;
            assert!(matches!(m, Some(Ok(Message::Text(_)))), "{m:?}");
            let admin = admin.clone();
            let k = key(i + 1);
            let (code, out) = tokio::task::spawn_blocking(move || rotate(&admin, &k))
                .await
                .unwrap();
            assert_eq!(code, 0, "rotation {}: {out}", i + 1);
            sessions.push(ws);
        }
        // every page in use: the fourth rotation cuts session 0 (the oldest retired key)
        let admin = admin.clone();
        let (code, out) = tokio::task::spawn_blocking(move || rotate(&admin, &key(4)))
            .await
            .unwrap();
        assert_eq!(code, 0, "the fourth rotation: {out}");
        let cut_at = std::time::Instant::now();
        let first = read_until(&mut sessions[0], "never").await;
        // outside review r28 F2: the 1001 and the connection's end come at the cut, not when
        // the response it cut ends upstream (here about 3 s later; the real API's can take
        // minutes): clients that wait for the TCP close after the handshake saw nothing
        while let Some(Ok(_)) = sessions[0].next().await {}
        let waited = cut_at.elapsed();
        assert!(
            waited < Duration::from_millis(1500),
            "the cut session's connection ended {waited:?} after the cut"
        );
        for ws in sessions.iter_mut().skip(1) {
            let _ = read_until(ws, "response.completed").await;
        }
        first
    });
    assert_eq!(
        first.close,
        Some((
            1001,
            "the proxy's API key was rotated and its page is needed".to_string()
        )),
        "{first:?}"
    );
    assert!(
        !first.types().contains(&"response.completed".to_string()),
        "the cut session got its whole response: {first:?}"
    );
    let log = proxy.wait_log("outcome=\"rotated\"", 2);
    let cut: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("outcome=\"rotated\""))
        .collect();
    assert!(
        cut.iter().any(|l| l.contains("tokens_out=7")),
        "the cut response was read on and charged its real usage: {cut:?}"
    );
    assert!(!cut.iter().any(|l| l.contains("tokens_out=500")), "{cut:?}");
}

/// TCP segments the proxy (listening on `proxy_port`) has sent on its connection to the client
/// at `client_port` (`ss -ti`'s `segs_out`; `ss` is iproute2's, which scripts/test installs).
fn segs_to_client(proxy_port: u16, client_port: u16) -> u64 {
    let out = Command::new("ss")
        .args([
            "-tinH",
            "state",
            "established",
            &format!("( sport = :{proxy_port} and dport = :{client_port} )"),
        ])
        .output()
        .expect("ss (iproute2) must be installed");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("segs_out:"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no segs_out in `ss -ti`: {text}"))
}

/// Segments the proxy sends the client for one more response on a warm session, and the
/// messages of that response.
async fn segs_for_one_response(proxy_port: u16) -> (u64, Vec<String>) {
    let mut ws = connect(proxy_port, &[]).await.expect("upgrade accepted");
    let client_port = ws.get_ref().local_addr().unwrap().port();
    // warm-up: the session and its upstream connection exist before the count
    ws.send(Message::text(create("gpt-5"))).await.unwrap();
    let _ = read_until(&mut ws, "response.completed").await;
    let before = segs_to_client(proxy_port, client_port);
    ws.send(Message::text(create("gpt-5"))).await.unwrap();
    let got = read_until(&mut ws, "response.completed").await;
    (segs_to_client(proxy_port, client_port) - before, got.texts)
}

/// Issue 13 (found by the bench's WebSocket cell): the messages of a response that upstream
/// delivers at once leave to the client in a few writes, not one `sendto` (one TCP segment,
/// `TCP_NODELAY`) per message: 15 per response, 3-9x nginx's CPU. Control: the same count of
/// messages paced 5 ms apart leaves one segment each, so the counter does see them.
#[test]
fn a_burst_of_upstream_messages_leaves_in_fewer_writes_than_messages() {
    let mut messages: Vec<String> = (0..14)
        .map(|i| {
            format!(
                r#"{{"type":"response.output_text.delta","delta":"d{i} {}"}}"#,
                "x".repeat(200)
            )
        })
        .collect();
    messages.push(
        r#"{"type":"response.completed","response":{"id":"r","usage":{"input_tokens":1,"output_tokens":14,"total_tokens":15}}}"#
            .to_string(),
    );
    let mock = suite_test_support::responses_mock::MockUpstream::start().unwrap();
    let sent = messages.clone();
    mock.set_handler(
        move |_| suite_test_support::responses_mock::MockResponse::WebSocket {
            messages: messages.clone(),
        },
    );
    let proxy = Spawn::new(&mock.responses_url()).start();
    let rt = rt();
    let (burst, texts) = rt.block_on(segs_for_one_response(proxy.port));
    // byte-identical: the relay passes upstream frames through as they came
    assert_eq!(texts, sent);
    eprintln!("burst: {burst} segments for 15 messages");
    assert!(burst <= 4, "{burst} segments for a burst of 15 messages");

    // control: the WebSocket mock paced 5 ms apart
    let paced = WsMock::start().unwrap();
    paced.set_script(WsScript {
        text: (0..14).map(|i| format!("w{i} ")).collect(),
        delay: Duration::from_millis(5),
        ..WsScript::default()
    });
    let proxy = Spawn::new(&paced.responses_url()).start();
    let (segs, texts) = rt.block_on(segs_for_one_response(proxy.port));
    let n = texts.len();
    eprintln!("paced: {segs} segments for {n} messages");
    assert!(
        segs >= 10,
        "control: {n} paced messages took only {segs} segments"
    );
}

/// A frame as a peer writes it (unmasked: an upstream's), `fin` and opcode free.
fn raw_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= 0xFFFF => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// Reads one frame the proxy wrote to its upstream: (opcode, mask key, unmasked payload); a
/// frame without the mask bit fails the test (RFC 6455 5.3: a client masks every frame).
fn read_masked_frame(s: &mut impl std::io::Read) -> (u8, [u8; 4], Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    assert!(h[1] & 0x80 != 0, "an unmasked frame from the proxy: {h:?}");
    assert!(h[0] & 0x80 != 0, "the proxy sends final frames");
    let len = match h[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).unwrap();
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mut mask = [0u8; 4];
    s.read_exact(&mut mask).unwrap();
    let mut p = vec![0u8; len as usize];
    s.read_exact(&mut p).unwrap();
    for (i, b) in p.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    (h[0] & 0x0F, mask, p)
}

/// What the hand-written upstream of the next test saw.
#[derive(Debug, Default)]
struct RawUpstreamSaw {
    /// (opcode, mask) of every frame the proxy sent, with the payload.
    frames: Vec<(u8, [u8; 4], Vec<u8>)>,
}

/// The relay's frame handling that the recording mock (tungstenite, whole messages) cannot
/// show: an upstream that fragments a message, with a ping between its fragments and the key
/// split across them. The client gets one message with the key overwritten (the scrub saw the
/// whole message), the upstream gets its pong on its own connection, every frame the proxy
/// sends upstream is masked with a key of its own, and a message that came in one frame
/// reaches the client as the same bytes.
#[test]
fn fragmented_upstream_messages_are_assembled_and_scrubbed_and_pings_answered_upstream() {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let completed = r#"{"type":"response.completed","response":{"id":"r1","usage":{"input_tokens":3,"output_tokens":2,"total_tokens":5}}}"#;
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let (mut ws_key, mut auth) = (String::new(), String::new());
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((n, v)) = l.split_once(':') {
                match n.to_ascii_lowercase().as_str() {
                    "sec-websocket-key" => ws_key = v.trim().to_string(),
                    "authorization" => auth = v.trim().to_string(),
                    _ => {}
                }
            }
        }
        let accept =
            tokio_tungstenite::tungstenite::handshake::derive_accept_key(ws_key.as_bytes());
        write!(w, "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n").unwrap();
        let mut saw = RawUpstreamSaw::default();
        saw.frames.push(read_masked_frame(&mut r));
        // The key, split over two fragments of one delta message, a ping between them.
        let key = auth.strip_prefix("Bearer ").unwrap().to_string();
        let head = format!(
            r#"{{"type":"response.output_text.delta","delta":"leak {}"#,
            &key[..10]
        );
        let tail = format!(r#"{} end"}}"#, &key[10..]);
        let mut out = raw_frame(false, 0x1, head.as_bytes());
        out.extend(raw_frame(true, 0x9, b"are you there"));
        out.extend(raw_frame(true, 0x0, tail.as_bytes()));
        out.extend(raw_frame(true, 0x1, completed.as_bytes()));
        w.write_all(&out).unwrap();
        // the pong, then the client's second message
        saw.frames.push(read_masked_frame(&mut r));
        saw.frames.push(read_masked_frame(&mut r));
        w.write_all(&raw_frame(true, 0x1, completed.as_bytes()))
            .unwrap();
        (saw, key)
    });
    let proxy = Spawn::new(&format!("http://127.0.0.1:{port}/v1/responses")).start();
    let rt = rt();
    let (first, second) = rt.block_on(async {
        let mut ws = connect(proxy.port, &[]).await.expect("upgrade accepted");
        ws.send(Message::text(create("gpt-5"))).await.unwrap();
        let first = read_until(&mut ws, "response.completed").await;
        ws.send(Message::text(create("gpt-5-mini"))).await.unwrap();
        let second = read_until(&mut ws, "response.completed").await;
        ws.close(None).await.unwrap();
        (first, second)
    });
    let (saw, key) = server.join().unwrap();

    // One message for the fragments, the key overwritten in it, the rest intact.
    assert_eq!(first.texts.len(), 2, "{first:?}");
    let delta = &first.texts[0];
    assert!(
        !delta.contains(&key[..]),
        "the key reached the client: {delta}"
    );
    assert!(
        delta.contains(&format!("leak {} end", "*".repeat(key.len()))),
        "{delta}"
    );
    // A message in one frame: the same bytes.
    assert_eq!(first.texts[1], completed);
    assert_eq!(second.texts, [completed]);

    // Upstream: the client's message, the pong with the ping's payload, the next message; all
    // masked, each with its own key.
    let ops: Vec<u8> = saw.frames.iter().map(|f| f.0).collect();
    assert_eq!(ops, [0x1, 0xA, 0x1], "{saw:?}");
    assert_eq!(saw.frames[1].2, b"are you there");
    assert_eq!(String::from_utf8_lossy(&saw.frames[0].2), create("gpt-5"));
    assert_eq!(
        String::from_utf8_lossy(&saw.frames[2].2),
        create("gpt-5-mini")
    );
    let masks: std::collections::HashSet<[u8; 4]> = saw.frames.iter().map(|f| f.1).collect();
    assert_eq!(masks.len(), 3, "a mask key used twice: {saw:?}");
}

/// A client's masked text frame (any mask works; the proxy unmasks what it reads).
fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x5a, 0x13, 0xc7, 0x81];
    let mut f = raw_frame(true, 1, payload);
    let at = f.len() - payload.len();
    f[1] |= 0x80;
    f.splice(at..at, MASK);
    for (i, b) in f[at + 4..].iter_mut().enumerate() {
        *b ^= MASK[i % 4];
    }
    f
}

/// A WebSocket session to the proxy as a raw socket (the upgrade answered 101), for writing
/// frames built once.
fn raw_session(port: u16) -> std::net::TcpStream {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 101"), "upgrade refused: {line}");
    while line != "\r\n" {
        line.clear();
        r.read_line(&mut line).unwrap();
    }
    s
}

/// Root's 16 WebSocket sessions, each with a response in flight, write `create(items)` messages
/// back to back (each waits or is refused, but each is read first) while uid 4243's requests
/// (refused by the policy, so that the single-threaded mock upstream plays no part) are timed,
/// against the same requests on the quiet proxy: their median stays near the quiet one.
fn another_users_requests_during_a_message_flood(items: usize, min_sent: u32) {
    message_flood_of(items, min_sent, "gpt-5");
}

/// The most another user's median may take during [`message_flood_of`]'s flood: `quiet` times
/// `times`, plus `slack`.
struct Allowed {
    times: u32,
    slack: Duration,
}

/// [`another_users_requests_during_a_message_flood`] with the flood's messages asking for
/// `model` (`o3`: each refused by the policy).
fn message_flood_of(items: usize, min_sent: u32, model: &str) {
    message_flood_within(
        items,
        min_sent,
        model,
        Allowed {
            times: 10,
            slack: Duration::from_millis(200),
        },
    );
}

/// [`message_flood_of`] with its bound. A session's first message asks for a model the policy
/// allows (one response in flight, the rest of a `gpt-5` flood waits or is refused for that);
/// with a refused model, none is in flight and every message meets the policy's check.
fn message_flood_within(items: usize, min_sent: u32, model: &str, allowed: Allowed) {
    use std::io::Write;
    let mock = WsMock::start().unwrap();
    mock.set_script(WsScript {
        delay: Duration::from_secs(60),
        ..WsScript::default()
    });
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nmodels = [\"gpt-5*\"]\n");
    let proxy = start(
        &mock,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "--max-body-bytes",
            "16777216",
            "--max-buffered-bytes",
            "67108864",
        ],
    );
    let port = proxy.port;
    // uid 4243's request: a model the policy refuses (403 from the proxy itself)
    let other = move || common::timed_refused_request(4243, port);
    let quiet = common::median((0..10).map(|_| other()).collect());
    let items = vec![r#"{"role":"user","content":"x"}"#; items].join(",");
    let big = Arc::new(masked_text_frame(
        format!(r#"{{"type":"response.create","model":"{model}","input":[{items}]}}"#).as_bytes(),
    ));
    let small = masked_text_frame(create("gpt-5").as_bytes());
    let flooding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sessions: Vec<_> = (0..16)
        .map(|_| {
            let mut s = raw_session(port);
            if model != "o3" {
                s.write_all(&small).unwrap();
            }
            let (big, flooding) = (Arc::clone(&big), Arc::clone(&flooding));
            std::thread::spawn(move || {
                let mut sent = 0u32;
                while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                    if s.write_all(&big).is_err() {
                        break;
                    }
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    let during = common::timings_during_flood(other);
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let slowest = *during.iter().max().unwrap();
    let during_median = common::median(during.clone());
    drop(proxy);
    let sent: u32 = sessions.into_iter().map(|h| h.join().unwrap()).sum();
    eprintln!(
        "quiet median {quiet:?}; during the flood: median {during_median:?}, slowest {slowest:?}; {sent} messages of {} bytes sent: {during:?}",
        big.len()
    );
    assert!(
        sent >= min_sent,
        "only {sent} large messages went in: the test cannot run its check"
    );
    assert!(
        during_median < quiet * allowed.times + allowed.slack,
        "another user's requests took {during_median:?} (median; {quiet:?} on the quiet proxy) while large messages were read"
    );
}

/// Outside review r77 F2: a client's WebSocket message was read on the event loop (its UTF-8
/// checked, its `type` parsed, its frame to upstream copied and masked): one user's 16 sessions
/// sending 10 MB `response.create` messages held another user's requests up to 1 s (p50 150 ms;
/// the same bodies over HTTP: 7.8 ms). A message over 64 KiB is read off the loop now, one at
/// a time per user, as a large HTTP body is checked. Here the messages are 6 MB of 200,000 input
/// items (read on the loop: every request of uid 4243 waited out curl's 5 s, run and seen; read
/// off it: a median of 24 ms, 10 ms quiet).
#[test]
fn large_websocket_messages_are_read_off_the_event_loop_while_other_users_are_served() {
    another_users_requests_during_a_message_flood(200_000, 32);
}

/// Messages just under 64 KiB (2,000 input items) are read on the event loop, each in well under
/// a millisecond; queued on the socket and refused at once, a session's task read them one after
/// another until tokio's budget of 128 operations made it yield (tens of ms per turn, 16
/// sessions in turn: uid 4243's requests took 2.4 s, median, run and seen). It yields after
/// every 64 KiB of them now (51 ms in a debug build, 7 ms quiet: the 16 sessions' turns).
#[test]
fn a_flood_of_messages_just_under_the_off_loop_size_does_not_hold_the_loop() {
    another_users_requests_during_a_message_flood(2_000, 200);
}

/// Outside review r86 F1: `response.create` messages just under 1 KiB (then the size above
/// which they are checked off the loop), each refused by the policy, counted 1 KiB towards the
/// relay's yield after 64 KiB: 16 sessions put about 1,000 checks on every turn of the loop
/// (another user's p50 23-31 ms, 73 ms through the upstream, release build). A message the
/// policy refuses on the loop now gives the loop back (here: a median of 16 ms, 8 ms quiet,
/// debug build; without the yield 47 ms with each message counted 8 KiB, 130 ms counted 1 KiB,
/// run and seen).
#[test]
fn a_flood_of_refused_messages_just_under_1_kib_does_not_hold_the_loop() {
    message_flood_within(
        30,
        200,
        "o3",
        Allowed {
            times: 3,
            slack: Duration::from_millis(15),
        },
    );
}

/// The same shape with a model the policy allows: each session's first message goes upstream
/// (the mock answers in 60 s), the rest wait or are refused for the waiting cap without the
/// policy's check. Each message handled on the loop counted 1 KiB towards the relay's yield
/// after 64 KiB (debug build: a median of 62 ms, 7 ms quiet, run and seen); 8 KiB now (20 ms).
#[test]
fn a_flood_of_waiting_messages_just_under_1_kib_does_not_hold_the_loop() {
    message_flood_within(
        30,
        200,
        "gpt-5",
        Allowed {
            times: 4,
            slack: Duration::from_millis(20),
        },
    );
}

/// Outside review r78 F1: a client opened a text message and then sent empty continuation
/// frames without end; the message never grew, so it was never refused, never counted and
/// never read off the loop, and 16 such sessions held another user's requests at p50 517 ms.
/// A message may come in 64 fragments and one more per KiB: the session is closed with 1008
/// naming the fragments, and nothing went upstream. Control: the same message in 64 fragments
/// is relayed.
#[test]
fn a_message_in_endless_empty_fragments_closes_the_session() {
    use std::io::{Read, Write};
    let mock = WsMock::start().unwrap();
    let proxy = start(&mock, &[]);
    let masked = |fin: bool, opcode: u8, payload: &[u8]| {
        let mut f = masked_text_frame(payload);
        f[0] = if fin { 0x80 } else { 0 } | opcode;
        f
    };
    let mut s = raw_session(proxy.port);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut frames = masked(false, 1, b"");
    for _ in 0..10_000 {
        frames.extend(masked(false, 0, b""));
    }
    // the proxy may close before it has read them all
    let _ = s.write_all(&frames);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(got.len() >= 4 && got[0] == 0x88, "no close frame: {got:?}");
    let code = u16::from_be_bytes([got[2], got[3]]);
    let reason = String::from_utf8_lossy(&got[4..]).into_owned();
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("fragments"), "{reason}");
    assert!(
        mock.state().sessions.iter().all(|x| x.messages.is_empty()),
        "something went upstream"
    );
    // control: a message in 64 fragments goes through
    let mut s = raw_session(proxy.port);
    let text = create("gpt-5");
    let (head, rest) = text.as_bytes().split_at(1);
    let mut frames = masked(false, 1, head);
    let pieces: Vec<&[u8]> = rest.chunks(rest.len().div_ceil(63)).collect();
    for (i, p) in pieces.iter().enumerate() {
        frames.extend(masked(i + 1 == pieces.len(), 0, p));
    }
    assert!(pieces.len() <= 63);
    s.write_all(&frames).unwrap();
    assert!(
        mock.wait_until(Duration::from_secs(10), |st| st
            .sessions
            .iter()
            .any(|x| x.messages.iter().any(|m| m == &text))),
        "the fragmented message did not reach upstream"
    );
}

/// Outside review r90 B-F1: `response.create` messages refused because 8 already waited
/// (`too_many_waiting`, 429) wrote no audit line and were not counted in the metrics (2.8 M of
/// them left `requests_total{status="429"}` at 16); the docs say the metrics count every
/// refusal. Now each one is audited (held back with the user's other refusals in a flood) and
/// counted. Control: the response in flight and the 8 waiting messages are not counted as
/// refused.
#[test]
fn a_message_refused_for_the_waiting_cap_is_audited_and_counted() {
    let mock = WsMock::start().unwrap();
    mock.set_script(WsScript {
        delay: Duration::from_secs(60),
        ..WsScript::default()
    });
    let admin_dir = tempfile::tempdir().unwrap();
    let admin = admin_dir.path().join("admin.sock");
    let (proxy, _d) = policy_proxy(
        &mock,
        "[default]\nmodels = [\"gpt-5*\"]\n",
        &["--admin-socket", admin.to_str().unwrap()],
    );
    let refused = rt().block_on(async {
        let mut ws = connect(proxy.port, &[]).await.unwrap();
        for _ in 0..12 {
            ws.send(Message::text(create("gpt-5"))).await.unwrap();
        }
        let mut codes = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while codes.len() < 3 {
            let m = tokio::time::timeout_at(deadline, ws.next())
                .await
                .expect("3 error events within 10 s")
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "error" {
                    codes.push(v["error"]["code"].as_str().unwrap_or("").to_string());
                }
            }
        }
        codes
    });
    assert!(
        refused.iter().all(|c| c == "too_many_waiting"),
        "{refused:?}"
    );
    let log = proxy.wait_log("reason=\"too_many_waiting\"", 3);
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("too_many_waiting") && l.contains("status=429"))
            .count(),
        3,
        "{log}"
    );
    let m = metrics(&admin);
    let count = m
        .lines()
        .find_map(|l| {
            (l.starts_with("responses_api_proxy_requests_total{") && l.contains("status=\"429\""))
                .then(|| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        })
        .unwrap_or(0);
    assert_eq!(count, 3, "{m}");
}
