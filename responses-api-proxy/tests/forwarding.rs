//! Forwarding through the real binary to the recording mock upstream (plain HTTP and TLS).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{KEY, Spawn};
use suite_test_support::responses_mock::{MockResponse, MockUpstream};
use suite_test_support::tls::TestCa;

#[test]
fn injects_the_key_and_drops_client_credentials_and_hop_by_hop_headers() {
    let mock = MockUpstream::start().unwrap();
    let proxy = Spawn::new(&mock.responses_url()).start();
    let resp = proxy.request(
        "POST",
        "/v1/responses",
        &[
            ("Authorization", "Bearer client-own-key"),
            ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
            ("Cookie", "session=abc"),
            ("Connection", "x-hop-secret"),
            ("X-Hop-Secret", "must-not-pass"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Proxy-Connection", "keep-alive"),
            // The key's owner decides who pays (outside review r18 F9).
            ("OpenAI-Organization", "org-someone-else"),
            ("OpenAI-Project", "proj_someone_else"),
            ("Content-Type", "application/json"),
            ("OpenAI-Beta", "responses=experimental"),
        ],
        br#"{"model":"m","input":"hi"}"#,
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json(), serde_json::json!({"ok": true}));
    assert_eq!(resp.header("x-request-id"), Some("req_mock_1"));

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/responses");
    assert_eq!(
        r.header("authorization").as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(r.headers.get_all("authorization").iter().count(), 1);
    assert_eq!(
        r.header("host").as_deref(),
        Some(format!("127.0.0.1:{}", mock.addr().port()).as_str())
    );
    for gone in [
        "proxy-authorization",
        "cookie",
        "x-hop-secret",
        "keep-alive",
        "te",
        "proxy-connection",
        "openai-organization",
        "openai-project",
    ] {
        assert!(
            r.header(gone).is_none(),
            "{gone} was forwarded: {:?}",
            r.headers
        );
    }
    // Control: end-to-end headers and the body pass unchanged.
    assert_eq!(
        r.header("openai-beta").as_deref(),
        Some("responses=experimental")
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        r.json(),
        Some(serde_json::json!({"model": "m", "input": "hi"}))
    );
    assert!(!proxy.stderr().contains(KEY));
}

#[test]
fn tls_upstream_is_trusted_through_ssl_cert_file_and_refused_without_it() {
    let ca = TestCa::new().unwrap();
    let mock = MockUpstream::start_tls(&ca).unwrap();
    let url = format!("{}/responses", mock.base_url_localhost());

    let proxy = Spawn::new(&url)
        .env("SSL_CERT_FILE", ca.ca_pem_path().to_str().unwrap())
        .start();
    let resp = proxy.post(r#"{"x":1}"#);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].header("authorization").as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    // ALPN offers only http/1.1 (the proxy writes the request head itself, the key straight
    // from its locked page: README, Upstream), though the mock also accepts h2.
    assert_eq!(reqs[0].version, http::Version::HTTP_11);

    // Control: the same upstream trusted through another CA is a TLS failure, answered 502 JSON.
    let other_ca = TestCa::new().unwrap();
    let untrusting = Spawn::new(&url)
        .env("SSL_CERT_FILE", other_ca.ca_pem_path().to_str().unwrap())
        .start();
    let resp = untrusting.post("{}");
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert_eq!(resp.error_code(), "upstream_unavailable");
    assert!(
        resp.text().to_lowercase().contains("certificate"),
        "{}",
        resp.text()
    );
    assert_eq!(mock.requests().len(), 1);
}

#[test]
fn unreachable_upstream_is_502_json() {
    // A port held bound but not listening for the whole test: every connection is refused.
    let refusing = suite_test_support::ports::RefusingPort::new().unwrap();
    let port = refusing.port();
    let proxy = Spawn::new(&format!("http://127.0.0.1:{port}/v1/responses")).start();
    let resp = proxy.post("{}");
    assert_eq!(resp.status, 502);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.error_code(), "upstream_unavailable");
    assert!(
        resp.text().contains("Connection refused"),
        "{}",
        resp.text()
    );
}

#[test]
fn upstream_errors_pass_through_unchanged() {
    let mock = MockUpstream::start().unwrap();
    let body =
        Bytes::from_static(br#"{"error":{"message":"Rate limit reached","type":"requests"}}"#);
    mock.push_response(MockResponse::Raw {
        status: 429,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("retry-after".into(), "7".into()),
            ("x-ratelimit-remaining-requests".into(), "0".into()),
            ("set-cookie".into(), "__cf_bm=shared; path=/".into()),
        ],
        body: body.clone(),
    });
    let proxy = Spawn::new(&mock.responses_url()).start();
    let resp = proxy.post("{}");
    assert_eq!(resp.status, 429);
    assert_eq!(resp.body, body.to_vec());
    assert_eq!(resp.header("retry-after"), Some("7"));
    assert_eq!(resp.header("x-ratelimit-remaining-requests"), Some("0"));
    // Upstream cookies would be shared by every local user: not mirrored.
    assert_eq!(resp.header("set-cookie"), None);
}

#[test]
fn allow_path_forwards_one_more_exact_path() {
    let mock = MockUpstream::start().unwrap();
    let without = Spawn::new(&mock.responses_url()).start();
    let refused = without.request("POST", "/v1/responses/input_tokens", &[], b"{}");
    assert_eq!(refused.status, 403);
    assert_eq!(mock.requests().len(), 0);
    // Compaction is forwarded without the flag (the Codex CLI calls it; issue 17).
    let compact = without.request("POST", "/v1/responses/compact", &[], b"{}");
    assert_eq!(compact.status, 200, "{}", compact.text());
    assert_eq!(mock.requests()[0].path, "/v1/responses/compact");

    let with = Spawn::new(&mock.responses_url())
        .arg("--allow-path")
        .arg("/v1/responses/input_tokens")
        .start();
    let ok = with.request("POST", "/v1/responses/input_tokens", &[], b"{}");
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(mock.requests()[1].path, "/v1/responses/input_tokens");
}

#[test]
fn dump_dir_writes_redacted_pairs_0600() {
    use std::os::unix::fs::PermissionsExt;
    let mock = MockUpstream::start().unwrap();
    // Started as root, the proxy drops to `nobody`, which must be able to write the dumps.
    let (spawn, dumps) = Spawn::new(&mock.responses_url()).dumping();
    let proxy = spawn.start();
    let resp = proxy.request(
        "POST",
        "/v1/responses",
        &[("Cookie", "c=1"), ("Content-Type", "application/json")],
        br#"{"input":"dump me"}"#,
    );
    assert_eq!(resp.status, 200);
    // The response dump is written when the body ends; give it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut names: Vec<String>;
    loop {
        names = std::fs::read_dir(dumps.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        if names.len() >= 2 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names[0].starts_with("000001-") && names[0].ends_with("-request.json"),
        "{names:?}"
    );
    assert!(names[1].ends_with("-response.json"), "{names:?}");
    for n in &names {
        let p = dumps.path().join(n);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{n}");
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains(KEY), "key in {n}");
        assert!(!text.contains("c=1"), "cookie in {n}");
    }
    let req: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dumps.path().join(&names[0])).unwrap())
            .unwrap();
    assert_eq!(req["body"]["input"], "dump me");
    assert_eq!(req["headers"]["authorization"], "[REDACTED]");
    let resp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dumps.path().join(&names[1])).unwrap())
            .unwrap();
    assert_eq!(resp["status"], 200);
    assert_eq!(resp["body"]["ok"], true);
}

#[test]
fn upstream_connections_are_pooled() {
    let mock = MockUpstream::start().unwrap();
    let proxy = Spawn::new(&mock.responses_url()).start();
    for _ in 0..5 {
        assert_eq!(proxy.post("{}").status, 200);
    }
    assert_eq!(mock.requests().len(), 5);
    assert_eq!(mock.with_state(|s| s.connections_accepted), 1);
}

#[test]
fn one_json_audit_line_per_request_with_the_documented_fields() {
    let mock = MockUpstream::start().unwrap();
    let mut proxy = Spawn::new(&mock.responses_url())
        .arg("--log-format")
        .arg("json")
        .start();
    assert_eq!(proxy.post(r#"{"a":1}"#).status, 200);
    assert_eq!(proxy.request("GET", "/nope", &[], b"").status, 403);
    proxy.signal("TERM");
    proxy.wait_exit(Duration::from_secs(20)).unwrap();
    let audits: Vec<serde_json::Value> = proxy
        .stderr()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("every log line is JSON"))
        .filter(|v| v["target"] == "audit")
        .collect();
    assert_eq!(audits.len(), 2, "{audits:?}");
    let ok = &audits[0];
    assert_eq!(ok["method"], "POST");
    assert_eq!(ok["path"], "/v1/responses");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["bytes_in"], 7);
    assert_eq!(ok["bytes_out"], 11);
    assert_eq!(ok["upstream_request_id"], "req_mock_1");
    assert_eq!(ok["outcome"], "complete");
    assert!(ok["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(ok["duration_ms"].as_f64().unwrap() >= 0.0);
    let refused = &audits[1];
    assert_eq!(refused["status"], 403);
    assert_eq!(refused["outcome"], "refused");
    assert_eq!(refused["reason"], "not_allowed");
}

/// Trailers on a client's chunked request would pass the header table (`authorization`,
/// `cookie` as trailers; hyper's h2 client sent them as trailing HEADERS). The proxy drops
/// request trailers; control: the same request's body and headers arrive, over TLS to a mock
/// that would accept h2 (the proxy offers only http/1.1 now).
#[test]
fn request_trailers_never_reach_the_upstream() {
    let ca = TestCa::new().unwrap();
    let mock = MockUpstream::start_tls(&ca).unwrap();
    let url = format!("{}/responses", mock.base_url_localhost());
    let proxy = Spawn::new(&url)
        .env("SSL_CERT_FILE", ca.ca_pem_path().to_str().unwrap())
        .start();
    let raw = format!(
        "POST /v1/responses HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nTE: trailers\r\nTrailer: authorization, cookie, x-trailer\r\n\
         Connection: close\r\n\r\n7\r\n{{\"x\":1}}\r\n0\r\nauthorization: Bearer client-secret-trailer\r\n\
         cookie: session=trailer-cookie\r\nx-trailer: 1\r\n\r\n",
        proxy.host()
    );
    let r = common::parse_response(&common::send_raw(proxy.port, raw.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.text());
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].version, http::Version::HTTP_11);
    assert_eq!(&reqs[0].body[..], b"{\"x\":1}");
    assert!(reqs[0].body_complete);
    assert_eq!(
        reqs[0].header("authorization").as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert!(
        reqs[0].trailers.is_none(),
        "trailers reached upstream: {:?}",
        reqs[0].trailers
    );
}

/// The multi-threaded runtime (`--threads 4`: worker threads started after confinement, each
/// through glibc's thread start and std's per-thread set-up) serves concurrent requests under
/// the seccomp allow-list: a call outside it would stop the proxy with exit 10 and a line on
/// stderr naming it.
#[test]
fn a_multi_threaded_runtime_serves_under_the_seccomp_allow_list() {
    let mock = MockUpstream::start().unwrap();
    let mut proxy = Spawn::new(&mock.responses_url())
        .arg("--threads")
        .arg("4")
        .start();
    let port = proxy.port;
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let raw = format!(
                    "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
                     Content-Type: application/json\r\nContent-Length: 2\r\n\
                     Connection: close\r\n\r\n{{}}"
                );
                common::parse_response(&common::send_raw(port, raw.as_bytes())).status
            })
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 200, "stderr: {}", proxy.stderr());
    }
    assert_eq!(mock.requests().len(), 8);
    assert!(
        proxy.wait_exit(Duration::from_millis(200)).is_none(),
        "the proxy stopped: {}",
        proxy.stderr()
    );
    let err = proxy.stderr();
    assert!(!err.contains("seccomp refused"), "{err}");
    assert!(
        err.contains("seccomp=allow-list("),
        "confinement not logged: {err}"
    );
}

/// A raw HTTP/1.1 upstream on loopback that answers every request with `answer`, then closes.
fn raw_upstream(answer: &'static [u8]) -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // The head, then the Content-Length body (the proxy sends `{}`).
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(answer);
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    port
}

/// Review round 5, F7, from a hostile upstream's position: a `101 Switching Protocols` the
/// proxy never asked for (it does not forward `Upgrade`) is not relayed to the client; the
/// client gets 502. Control: the same upstream answering 200 is relayed.
#[test]
fn an_upstream_101_becomes_502() {
    let switching = raw_upstream(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: evil\r\n\r\nraw-tunnel-bytes",
    );
    let proxy = Spawn::new(&format!("http://127.0.0.1:{switching}/v1/responses")).start();
    let r = proxy.post("{}");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.error_code(), "upstream_bad_status", "{}", r.text());
    assert!(!r.text().contains("raw-tunnel-bytes"), "{}", r.text());
    assert!(r.header("upgrade").is_none());
    // Control.
    let ok = raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    let proxy = Spawn::new(&format!("http://127.0.0.1:{ok}/v1/responses")).start();
    let r = proxy.post("{}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "ok");
}

/// Outside review r53 (side note), from a hostile upstream's position: `Transfer-Encoding:
/// gzip, chunked` was relayed with the chunks taken off and the body still gzip-coded, where the
/// key scrub cannot see an echo. Refused like a content coding (502 `upstream_bad_encoding`,
/// nothing of the body relayed). Control: plain `chunked` is relayed.
#[test]
fn a_transfer_coding_other_than_chunked_is_refused() {
    let coded = raw_upstream(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n4\r\nzzzz\r\n0\r\n\r\n",
    );
    let proxy = Spawn::new(&format!("http://127.0.0.1:{coded}/v1/responses")).start();
    let r = proxy.post("{}");
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.error_code(), "upstream_bad_encoding", "{}", r.text());
    assert!(!r.text().contains("zzzz"), "{}", r.text());
    // Control.
    let plain = raw_upstream(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nzzzz\r\n0\r\n\r\n",
    );
    let proxy = Spawn::new(&format!("http://127.0.0.1:{plain}/v1/responses")).start();
    let r = proxy.post("{}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "zzzz");
}

/// Outside review r55 F4: an upstream answer framed by its chunks with a `Content-Length`
/// beside them was relayed with that `Content-Length`, and the client read a 200 cut short
/// (`{"id"`). The chunks decide (RFC 9112 6.1) and the length is not passed on. Control: the
/// same body without the stray length.
#[test]
fn chunks_beside_a_content_length_reach_the_client_whole() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nConnection: close\r\n\r\na\r\n0123456789\r\n0\r\n\r\n"[..],
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\na\r\n0123456789\r\n0\r\n\r\n"[..],
    ] {
        let port = raw_upstream(answer);
        let proxy = Spawn::new(&format!("http://127.0.0.1:{port}/v1/responses")).start();
        let r = proxy.post("{}");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "0123456789");
    }
}

/// Review round 5, F1 (critical), end to end: an upstream name with several addresses makes
/// glibc sort them (RFC 3484) over a NETLINK_ROUTE socket, which the seccomp allow-list used to
/// refuse: the proxy died (exit 10) on the first request. In a private mount namespace,
/// `localhost` gets 127.0.0.1 and ::1 (as in Debian's stock /etc/hosts) and the upstream is
/// `http://localhost:PORT`. Control: the same hosts file resolves to two addresses.
#[test]
fn an_upstream_name_with_several_addresses_is_served_under_seccomp() {
    let mock = MockUpstream::start().unwrap();
    let port = mock.addr().port();
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
    )
    .unwrap();
    let check = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind '{}' /etc/hosts && getent ahosts localhost",
            hosts.display()
        ))
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&check.stdout);
    assert!(
        listed.contains("127.0.0.1") && listed.contains("::1"),
        "control: the hosts file gives two addresses: {listed}"
    );
    let mut proxy = Spawn::new(&format!("http://localhost:{port}/v1/responses"))
        .with_hosts_file(&hosts)
        .start();
    for _ in 0..3 {
        let r = proxy.post("{}");
        assert_eq!(r.status, 200, "{} / {}", r.text(), proxy.stderr());
    }
    assert!(
        proxy.child.try_wait().unwrap().is_none(),
        "{}",
        proxy.stderr()
    );
    assert!(
        !proxy.stderr().contains("seccomp refused"),
        "{}",
        proxy.stderr()
    );
    proxy.signal("TERM");
    let status = proxy.wait_exit(Duration::from_secs(20)).expect("no exit");
    assert_eq!(status.code(), Some(0), "{}", proxy.stderr());
}

/// Outside review r10 F-P4: with a plain-http upstream `http://localhost:P` (127.0.0.1:P, the
/// root-owned upstream) another local user who listened on `[::1]:P` made every request fail
/// (502, owner not identified): the proxy tried `::1` first and gave up. Now an address whose
/// listener is not the `--upstream-owner` account is skipped for the next one; the squatter
/// receives nothing. Control: the squatter's address alone (`http://[::1]:P`) is refused 502.
#[test]
fn a_squatter_on_the_other_loopback_family_is_skipped_and_receives_nothing() {
    use std::io::{BufRead, Read};
    use std::os::unix::process::CommandExt;
    let mock = MockUpstream::start().unwrap();
    let port = mock.addr().port();
    // the squatter (uid 65534) on [::1]:P: accepts and records for 8 s
    const SQUAT: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET6); s.bind(("::1", int(sys.argv[1]))); s.listen(16)
print("ready", flush=True)
s.settimeout(0.2); got = b""; end = time.time() + 8; conns = []
while time.time() < end:
    try:
        c, _ = s.accept(); c.setblocking(False); conns.append(c)
    except OSError:
        pass
    for c in conns:
        try: got += c.recv(65536)
        except OSError: pass
print("received", len(got), got.hex(), flush=True)
"#;
    let mut squatter = std::process::Command::new("python3")
        .args(["-c", SQUAT, &port.to_string()])
        .uid(65534)
        .gid(65534)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(squatter.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "::1 localhost\n127.0.0.1 localhost\n").unwrap();
    let proxy = Spawn::new(&format!("http://localhost:{port}/v1/responses"))
        .with_hosts_file(&hosts)
        .start();
    for _ in 0..3 {
        let r = proxy.post("{}");
        assert_eq!(r.status, 200, "{} / {}", r.text(), proxy.stderr());
    }
    // control: the squatter's address alone is refused, the key not sent
    let direct = Spawn::new(&format!("http://[::1]:{port}/v1/responses")).start();
    let r = direct.post("{}");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("served by uid 65534"), "{}", r.text());
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let _ = squatter.wait();
    assert_eq!(
        rest.split_whitespace().take(2).collect::<Vec<_>>(),
        ["received", "0"],
        "the squatter received bytes: {rest}"
    );
    assert!(!rest.contains(&hex(KEY.as_bytes())));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
