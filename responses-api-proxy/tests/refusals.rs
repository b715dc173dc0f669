//! Bad input from a local client: each refused with the specific status, the upstream untouched,
//! each paired with a control that passes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Proxy, Spawn, parse_response, send_raw};
use suite_test_support::responses_mock::MockUpstream;

fn setup() -> (MockUpstream, Proxy) {
    let mock = MockUpstream::start().unwrap();
    let proxy = Spawn::new(&mock.responses_url())
        .arg("--max-body-bytes")
        .arg("1000")
        .start();
    (mock, proxy)
}

#[test]
fn only_post_v1_responses_is_forwarded() {
    let (mock, proxy) = setup();
    for (method, path) in [
        ("GET", "/v1/responses"),
        ("PUT", "/v1/responses"),
        ("DELETE", "/v1/responses"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/responses/"),
        ("POST", "/"),
        ("GET", "/shutdown"), // not enabled
    ] {
        let r = proxy.request(method, path, &[], b"{}");
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.error_code(), "not_allowed", "{method} {path}");
    }
    for path in [
        "/v1/responses?stream=true",
        "/v1/../v1/responses",
        "/v1/%2e%2e/v1/responses",
        "/v1/%2E%2E/responses",
        "/v1%2fresponses",
    ] {
        let r = proxy.request("POST", path, &[], b"{}");
        assert_eq!(r.status, 403, "{path}");
        assert_eq!(r.error_code(), "path_refused", "{path}");
    }
    assert_eq!(
        mock.requests().len(),
        0,
        "a refused request reached upstream"
    );
    // Control.
    assert_eq!(proxy.post("{}").status, 200);
    assert_eq!(mock.requests().len(), 1);
}

#[test]
fn foreign_host_and_any_origin_are_refused() {
    let (mock, proxy) = setup();
    let wrong_port = format!("127.0.0.1:{}", proxy.port.wrapping_add(1));
    // DNS rebinding: the page's own name with the proxy's port (only the name check refuses it).
    let rebound = format!("evil.example:{}", proxy.port);
    for host in [
        "evil.example",
        "evil.example:80",
        rebound.as_str(),
        wrong_port.as_str(),
        "127.0.0.1",
    ] {
        let r = proxy.request("POST", "/v1/responses", &[("Host", host)], b"{}");
        assert_eq!(r.status, 403, "Host {host}");
        assert_eq!(r.error_code(), "host_refused", "Host {host}");
    }
    let ours = proxy.host();
    for origin in ["http://evil.example", "null", &format!("http://{ours}")] {
        let r = proxy.request("POST", "/v1/responses", &[("Origin", origin)], b"{}");
        assert_eq!(r.status, 403, "Origin {origin}");
        assert_eq!(r.error_code(), "origin_refused");
    }
    assert_eq!(mock.requests().len(), 0);
    // Controls: every loopback spelling with our port.
    for host in [
        format!("localhost:{}", proxy.port),
        format!("127.0.0.1:{}", proxy.port),
    ] {
        let r = proxy.request("POST", "/v1/responses", &[("Host", &host)], b"{}");
        assert_eq!(r.status, 200, "Host {host}");
    }
}

/// The upstream received exactly one complete request body, equal to `expected`.
fn assert_one_complete_body(mock: &MockUpstream, expected: &[u8]) {
    let complete: Vec<_> = mock
        .requests()
        .into_iter()
        .filter(|r| r.body_complete)
        .collect();
    assert_eq!(complete.len(), 1);
    assert_eq!(complete[0].body.as_ref(), expected);
}

/// Opens a connection and sends a `POST /v1/responses` head with our Host plus `extra` header
/// lines (each ending in CRLF); the body, if any, is up to the caller.
fn post_head(proxy: &Proxy, extra: &str, read_timeout_secs: u64) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(read_timeout_secs)))
        .unwrap();
    write!(
        s,
        "POST /v1/responses HTTP/1.1\r\nHost: {}\r\n{extra}\r\n",
        proxy.host()
    )
    .unwrap();
    s
}

#[test]
fn declared_oversize_body_is_413_before_the_body_is_read() {
    let (mock, proxy) = setup();
    let mut s = post_head(&proxy, "Content-Length: 100000000\r\n", 10);
    // No body byte is sent: the answer must come anyway.
    let start = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    let r = parse_response(&buf[..n]);
    assert_eq!(r.status, 413);
    assert_eq!(r.error_code(), "body_too_large");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(mock.requests().len(), 0);
    // Control: at the limit.
    let ok = proxy.request("POST", "/v1/responses", &[], &[b' '; 1000]);
    assert_eq!(ok.status, 200);
}

#[test]
fn chunked_body_over_the_limit_is_413() {
    let (mock, proxy) = setup();
    let mut raw = format!(
        "POST /v1/responses HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        proxy.host()
    )
    .into_bytes();
    for _ in 0..3 {
        raw.extend_from_slice(b"190\r\n");
        raw.extend_from_slice(&[b'a'; 400]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = parse_response(&send_raw(proxy.port, &raw));
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.error_code(), "body_too_large");
    // The upstream may have seen the start of the body, never a complete oversized one.
    assert!(
        mock.requests()
            .iter()
            .all(|r| !r.body_complete && r.body.len() <= 1000),
        "upstream got a complete oversized body"
    );
    // Control: the same chunked framing under the limit is forwarded.
    let mut raw = format!(
        "POST /v1/responses HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        proxy.host()
    )
    .into_bytes();
    raw.extend_from_slice(b"2\r\n{}\r\n0\r\n\r\n");
    let r = parse_response(&send_raw(proxy.port, &raw));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_one_complete_body(&mock, b"{}");
}

#[test]
fn transfer_encoding_with_content_length_is_400() {
    let (mock, proxy) = setup();
    for order in [
        "Transfer-Encoding: chunked\r\nContent-Length: 2",
        "Content-Length: 2\r\nTransfer-Encoding: chunked",
    ] {
        let raw = format!(
            "POST /v1/responses HTTP/1.1\r\nHost: {}\r\n{order}\r\nConnection: close\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n",
            proxy.host()
        );
        let r = parse_response(&send_raw(proxy.port, raw.as_bytes()));
        assert_eq!(r.status, 400, "{order}: {}", r.text());
    }
    assert!(mock.requests().is_empty());
}

#[test]
fn malformed_and_oversized_requests_are_rejected() {
    let (mock, proxy) = setup();
    let r = parse_response(&send_raw(proxy.port, b"THIS IS NOT HTTP\r\n\r\n"));
    assert_eq!(r.status, 400);
    let big = format!(
        "POST /v1/responses HTTP/1.1\r\nHost: {}\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
        proxy.host(),
        "a".repeat(64 * 1024)
    );
    let r = parse_response(&send_raw(proxy.port, big.as_bytes()));
    assert_eq!(r.status, 431);
    assert!(mock.requests().is_empty());
    // The proxy still serves.
    assert_eq!(proxy.post("{}").status, 200);
}

#[test]
fn server_info_through_a_symlink_is_refused_and_the_target_untouched() {
    let mock = MockUpstream::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "root-owned content").unwrap();
    let link = dir.path().join("info.json");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["--upstream-url", &mock.responses_url(), "--server-info"])
        .arg(&link)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"sk-abc\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("is a symlink"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "root-owned content"
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

/// A root-only directory with a precious file, and a directory uid 65534 owns on the way to it:
/// `(base, secret_dir, attacker_dir)`. The attacker (a process running as uid 65534) puts a
/// symlink `evil/d -> secret` there, so `evil/d/...` names the root-only directory.
fn attacker_owned_parent() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = base.path().join("secret");
    std::fs::create_dir(&secret).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(secret.join("info.json"), "root-owned content").unwrap();
    let evil = base.path().join("evil");
    std::fs::create_dir(&evil).unwrap();
    std::os::unix::fs::chown(&evil, Some(65534), Some(65534)).unwrap();
    suite_test_support::dirs::symlink_as(65534, &secret, &evil.join("d"));
    (base, secret, evil)
}

/// Runs the proxy with `--server-info path` (and `extra`): `Ok` once it wrote that file (then
/// killed), `Err((exit code, stderr))` when start-up failed.
fn run_with_server_info(
    mock: &MockUpstream,
    path: &std::path::Path,
    extra: &[&str],
) -> Result<(), (Option<i32>, String)> {
    let mut child = std::process::Command::new(common::BIN)
        .args(["--upstream-url", &mock.responses_url(), "--server-info"])
        .arg(path)
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"sk-abc\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Err((status.code(), err));
        }
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains("\"port\"")) {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(());
        }
        assert!(
            Instant::now() < deadline,
            "proxy neither started nor failed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Outside review r99 F1: the policy, the key file and the subuid table reached through a
/// directory another user controls (their symlink to another root-only directory) are refused at
/// start-up, although each file there passes every check on the file itself; the same files by
/// root's path are read.
#[test]
fn policy_key_and_subuid_files_through_an_attacker_controlled_parent_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let mock = MockUpstream::start().unwrap();
    let (base, secret, evil) = attacker_owned_parent();
    std::fs::write(
        secret.join("policy.toml"),
        "[default]\nmodels = [\"gpt-5\"]\n",
    )
    .unwrap();
    std::fs::write(secret.join("key"), "sk-abc\n").unwrap();
    std::fs::set_permissions(secret.join("key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(secret.join("subuid"), "root:100000:65536\n").unwrap();
    let info = base.path().join("info.json");
    let path_str = |p: std::path::PathBuf| p.to_str().unwrap().to_owned();
    for (flag, name, code, kind) in [
        ("--policy", "policy.toml", 2, "policy file"),
        ("--api-key-file", "key", 3, "key file"),
        ("--subuid-file", "subuid", 2, "subuid file"),
    ] {
        // Control: root's path.
        let _ = std::fs::remove_file(&info);
        run_with_server_info(&mock, &info, &[flag, &path_str(secret.join(name))])
            .unwrap_or_else(|e| panic!("{flag} by root's path: {e:?}"));
        // Attack: the same file through uid 65534's directory and symlink.
        let _ = std::fs::remove_file(&info);
        let (got, err) =
            run_with_server_info(&mock, &info, &[flag, &path_str(evil.join("d").join(name))])
                .expect_err(flag);
        assert!(
            err.contains(&format!("refusing {kind}")) && err.contains("owned by uid 65534"),
            "{flag}: {err}"
        );
        assert_eq!(got, Some(code), "{flag}: {err}");
    }
}

/// Outside review r101 F1: root with every capability reads a key of mode 0000 at start-up,
/// but the key opener (uid 0 without capabilities) cannot, so every SIGHUP would have failed:
/// start-up fails (exit 9) naming the fix; the same key with its owner's read bit starts its
/// opener.
#[test]
fn a_key_the_key_opener_cannot_open_fails_start_up() {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    let mock = MockUpstream::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "sk-abc\n").unwrap();
    // The proxy's stderr lines until it exits or `stop` matches one (then it is killed):
    // (exit code, lines).
    let run = |stop: &str| -> (Option<i32>, String) {
        let mut child = std::process::Command::new(common::BIN)
            .args(["--upstream-url", &mock.responses_url(), "--api-key-file"])
            .arg(&key)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = String::new();
        for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
            let line = line.unwrap();
            lines.push_str(&line);
            lines.push('\n');
            if line.contains(stop) {
                let _ = child.kill();
                break;
            }
        }
        (child.wait().unwrap().code(), lines)
    };
    for mode in [0o000, 0o200] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let (code, err) = run("key opener started");
        assert_eq!(code, Some(9), "{mode:o}: {err}");
        assert!(
            err.contains("the key opener")
                && err.contains("cannot open it")
                && err.contains("chmod 0400"),
            "{mode:o}: {err}"
        );
        assert!(!err.contains("sk-abc"), "{err}");
    }
    // control: the owner's read bit
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    let (code, err) = run("key opener started");
    assert_ne!(code, Some(9), "{err}");
    assert!(err.contains("key opener started"), "{err}");
}

#[test]
fn server_info_and_dump_dir_through_an_attacker_controlled_parent_are_refused() {
    let mock = MockUpstream::start().unwrap();
    let (_base, secret, evil) = attacker_owned_parent();
    // Attack 1: the server-info path runs through uid 65534's directory (its symlink points at
    // the root-only directory): the file there must not be replaced.
    let via = evil.join("d/info.json");
    let (code, err) = run_with_server_info(&mock, &via, &[]).unwrap_err();
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("owned by uid 65534") && err.contains("evil"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(secret.join("info.json")).unwrap(),
        "root-owned content"
    );
    assert_eq!(
        std::fs::read_dir(&secret).unwrap().count(),
        1,
        "temp file left"
    );
    // Attack 2: the dump dir through the same parent: nothing created in the root-only dir.
    let dumps = evil.join("d/dumps");
    let (code, err) = match Spawn::new(&mock.responses_url())
        .arg("--dump-dir")
        .arg(dumps.to_str().unwrap())
        .try_start()
    {
        Ok(_) => panic!("the proxy started with a dump dir through uid 65534's directory"),
        Err((status, err)) => (status.code(), err),
    };
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("owned by uid 65534"), "{err}");
    assert!(!secret.join("dumps").exists());
    // Attack 3: a symlink uid 65534 owns in a sticky directory (anyone may create one there).
    let sticky = _base.path().join("sticky");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(
        &sticky,
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    suite_test_support::dirs::symlink_as(65534, &secret, &sticky.join("d"));
    let via = sticky.join("d/info.json");
    let (code, err) = run_with_server_info(&mock, &via, &[]).unwrap_err();
    assert_eq!(code, Some(4), "{err}");
    assert!(
        err.contains("symlink") && err.contains("uid 65534"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(secret.join("info.json")).unwrap(),
        "root-owned content"
    );
    // Control: the same file through the root-owned path is written (replaced), and a dump dir
    // in a root-owned directory is created.
    let direct = secret.join("info.json");
    let dumps = _base.path().join("dumps");
    run_with_server_info(&mock, &direct, &["--dump-dir", dumps.to_str().unwrap()])
        .unwrap_or_else(|(code, err)| panic!("control failed ({code:?}): {err}"));
    assert!(dumps.is_dir());
}

#[test]
fn ambiguous_framing_is_caught_on_a_keep_alive_connection_too() {
    let (mock, proxy) = setup();
    // A valid request, then a smuggling attempt on the same connection.
    let raw = format!(
        "POST /v1/responses HTTP/1.1\r\nHost: {h}\r\nContent-Length: 2\r\n\r\n{{}}\
POST /v1/responses HTTP/1.1\r\nHost: {h}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        h = proxy.host()
    );
    let out = String::from_utf8_lossy(&send_raw(proxy.port, raw.as_bytes())).into_owned();
    let statuses: Vec<&str> = out
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &out[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "400"], "{out}");
    assert_eq!(mock.requests().len(), 1);
}

#[test]
fn a_client_silent_mid_body_gets_408_after_the_body_read_timeout() {
    let mock = MockUpstream::start().unwrap();
    let proxy = Spawn::new(&mock.responses_url())
        .arg("--body-read-timeout")
        .arg("1")
        .start();
    let mut s = post_head(&proxy, "Content-Length: 100\r\n", 20);
    s.write_all(b"{\"partial\":").unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let waited = start.elapsed();
    let r = parse_response(&out);
    assert_eq!(r.status, 408, "{}", r.text());
    assert_eq!(r.error_code(), "body_timeout");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // The upstream never saw a complete body.
    assert!(mock.requests().iter().all(|r| !r.body_complete));
    // Control: a body that keeps coming (slower than the timeout in total) is fine.
    let mut s = post_head(&proxy, "Content-Length: 7\r\nConnection: close\r\n", 20);
    for piece in [&b"{\""[..], b"a\"", b":1", b"}"] {
        std::thread::sleep(Duration::from_millis(500));
        s.write_all(piece).unwrap();
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let r = parse_response(&out);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_one_complete_body(&mock, b"{\"a\":1}");
}
