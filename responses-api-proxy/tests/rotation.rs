//! Key rotation and the admin socket (issue 17), end to end against the real binary started as
//! root: it drops to uid 65534 and confines itself (Landlock + the seccomp allow-list: a
//! refused call would end it with exit 10, which every test checks for), so every path here
//! runs under the filter.
//!
//! - SIGHUP after the key file was replaced: new requests carry the new key upstream, a stream
//!   started before finishes with the old one, and once it ended the old key is nowhere in the
//!   process's memory (the key pages are mlock'ed anonymous memory here, readable by root
//!   through `/proc/PID/mem`, so the wipe can be watched; control: while the stream runs the
//!   old key is found in a locked page). The dropped proxy cannot read the root-owned 0600
//!   file itself: the key opener hands it the descriptor.
//! - A bad new key (file or admin socket) keeps the old one; the log says why, never a key.
//! - The admin socket: root rotates and scrapes; uid 65534 is refused, by the socket's mode
//!   and, with the mode opened up, by the SO_PEERCRED check.
//! - With the key on stdin, SIGHUP says rotation needs a file source and keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, KEY, Proxy, Spawn, residency};
use suite_test_support::responses_mock::{MockResponse, MockUpstream};

const KEY2: &str = "sk-proj-SECONDKEY_rotated_Qw7Zt0Canary_2718281828";
const NOBODY: u32 = 65534;

/// Writes `content` to `path` as root, mode 0600, replacing it with a rename (as editors and
/// `install` do: a new inode).
fn write_key_file(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Setup {
    proxy: Proxy,
    mock: MockUpstream,
    key_file: PathBuf,
    admin: PathBuf,
    _keys: tempfile::TempDir,
    _admin_dir: tempfile::TempDir,
}

/// The proxy with its key in a root-owned 0600 file and an admin socket.
fn start(extra: &[&str]) -> Setup {
    let keys = tempfile::Builder::new()
        .prefix("rotation-keys-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(keys.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let key_file = keys.path().join("openai.key");
    write_key_file(&key_file, format!("{KEY}\n").as_bytes());
    // The socket's directory is open to all (as /run is): only the socket's own mode and the
    // peer check keep other users out.
    let admin_dir = tempfile::Builder::new()
        .prefix("rotation-admin-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(admin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let admin = admin_dir.path().join("admin.sock");
    let mock = MockUpstream::start().unwrap();
    let mut spawn = Spawn::new(&mock.responses_url())
        .key(b"")
        .arg("--api-key-file")
        .arg(key_file.to_str().unwrap())
        .arg("--admin-socket")
        .arg(admin.to_str().unwrap())
        .arg("--key-pages-without-memfd-secret");
    for a in extra {
        spawn = spawn.arg(a);
    }
    let proxy = spawn.start();
    ready(&proxy);
    Setup {
        proxy,
        mock,
        key_file,
        admin,
        _keys: keys,
        _admin_dir: admin_dir,
    }
}

/// Waits until the proxy serves (its signal handlers are installed by then: a SIGHUP that
/// arrives before would end it with the default action). One request that never goes
/// upstream (403: not a forwarded path).
fn ready(p: &Proxy) {
    let r = p.request("GET", "/ready", &[], b"");
    assert_eq!(r.status, 403, "{}", r.text());
}

fn alive(p: &mut Proxy) {
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "the proxy exited: {}",
        p.stderr()
    );
    let log = p.stderr();
    assert!(!log.contains("seccomp refused"), "{log}");
}

fn wait_log(p: &Proxy, what: &str, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = p.stderr();
        if log.matches(what).count() >= n {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "no {what:?} (x{n}) in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `Authorization` value of the mock's last request.
fn last_auth(mock: &MockUpstream) -> String {
    mock.requests()
        .last()
        .and_then(|r| r.header("authorization"))
        .unwrap_or_default()
}

/// `rotate-key` as `uid` (None: root) with `key` on stdin: (exit code, stdout, stderr).
fn rotate_key(admin: &Path, key: &[u8], uid: Option<u32>) -> (i32, String, String) {
    let mut c = Command::new(BIN);
    c.args(["rotate-key", "--admin-socket", admin.to_str().unwrap()])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(key).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `GET /metrics` on the admin socket as `uid` (None: root), raw: (status line, body).
fn scrape(admin: &Path, uid: Option<u32>) -> (String, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-i", "--max-time", "10", "--unix-socket"])
        .arg(admin)
        .arg("http://admin/metrics")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((head, body)) => (
            head.lines().next().unwrap_or("").to_string(),
            body.to_string(),
        ),
        None => (String::new(), text),
    }
}

/// A streamed request on its own thread: returns the body when the stream ended.
fn stream_in_background(port: u16) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let raw = format!(
            "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        common::send_raw(port, raw.as_bytes())
    })
}

/// SIGHUP after the key file was replaced: the next request carries the new key, the stream
/// that started before finishes with the old one, and then the old key's page is wiped.
#[test]
fn sighup_rotates_the_key_a_stream_in_flight_keeps_the_old_one_then_its_page_is_wiped() {
    let mut s = start(&[]);
    let pid = s.proxy.pid();
    // Control for the memory scan: the first key is in a locked page now.
    assert!(
        residency(pid, KEY.as_bytes()).locked >= 1,
        "control: the key page is readable"
    );

    let frames: Vec<String> = (0..12)
        .map(|i| format!("data: {{\"n\":{i}}}\n\n"))
        .collect();
    s.mock.push_response(MockResponse::SsePaced {
        frames: frames.clone(),
        delay: Duration::from_millis(250),
    });
    s.mock
        .set_default(MockResponse::json(serde_json::json!({"ok": true})));
    let stream = stream_in_background(s.proxy.port);
    assert!(
        s.mock
            .wait_until(Duration::from_secs(10), |m| m.requests_total >= 1)
    );
    assert_eq!(last_auth(&s.mock), format!("Bearer {KEY}"));

    write_key_file(&s.key_file, format!("{KEY2}\n").as_bytes());
    s.proxy.signal("HUP");
    wait_log(&s.proxy, "SIGHUP: key rotated", 1);
    alive(&mut s.proxy);
    let r = s.proxy.post(r#"{"model":"m"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        last_auth(&s.mock),
        format!("Bearer {KEY2}"),
        "new requests use the new key"
    );

    // The stream is still running with the old key: its page is in use (control for the wipe).
    let during = residency(pid, KEY.as_bytes());
    assert!(
        during.locked >= 1,
        "control: the old key is still in its page during the stream"
    );
    assert!(
        !stream.is_finished(),
        "the stream ended too early for the test"
    );
    let body = stream.join().unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for f in &frames {
        assert!(text.contains(f.trim_end()), "the stream was cut: {text}");
    }
    let first = s.mock.requests()[0]
        .header("authorization")
        .unwrap_or_default();
    assert_eq!(
        first,
        format!("Bearer {KEY}"),
        "the stream kept the old key"
    );

    wait_log(&s.proxy, "key page wiped", 1);
    let after_old = residency(pid, KEY.as_bytes());
    assert!(
        after_old.locked == 0 && after_old.outside.is_empty(),
        "the old key is still in memory after its last stream: {after_old:?}"
    );
    let after_new = residency(pid, KEY2.as_bytes());
    assert!(
        after_new.locked >= 1 && after_new.outside.is_empty(),
        "{after_new:?}"
    );

    let (status, metrics) = scrape(&s.admin, None);
    assert!(status.contains("200"), "{status}");
    assert!(
        metrics.contains("responses_api_proxy_key_rotations_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("responses_api_proxy_key_pages_in_use 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("responses_api_proxy_key_pages_wiped_total 1\n"),
        "{metrics}"
    );
    alive(&mut s.proxy);
    let log = s.proxy.stderr();
    assert!(
        !log.contains(KEY) && !log.contains(KEY2),
        "a key in the log:\n{log}"
    );
}

/// A bad new key in the file, or over the admin socket, keeps the old key; the log says why
/// and shows no key.
#[test]
fn a_bad_new_key_keeps_the_old_one_and_the_log_says_why_without_the_key() {
    let mut s = start(&[]);
    s.mock
        .set_default(MockResponse::json(serde_json::json!({"ok": true})));
    let bad = "sk-BADKEY_canary with space";
    let cases: [(&[u8], &str); 4] = [
        (b"", "holds no API key"),
        (
            format!("{bad}\n").leak().as_bytes(),
            "a character other than",
        ),
        (
            format!("{KEY2}\nsecond line\n").leak().as_bytes(),
            "holds more than the API key",
        ),
        (format!("{KEY}\n").leak().as_bytes(), "nothing to rotate"),
    ];
    for (i, (content, why)) in cases.iter().enumerate() {
        write_key_file(&s.key_file, content);
        s.proxy.signal("HUP");
        let log = wait_log(&s.proxy, "SIGHUP: key rotation refused", i + 1);
        assert!(log.contains(why), "case {i}: {log}");
        alive(&mut s.proxy);
        assert_eq!(s.proxy.post("{}").status, 200);
        assert_eq!(last_auth(&s.mock), format!("Bearer {KEY}"), "case {i}");
    }
    // A loose mode is refused by the opener's checks (the file is not opened).
    write_key_file(&s.key_file, format!("{KEY2}\n").as_bytes());
    std::fs::set_permissions(&s.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    s.proxy.signal("HUP");
    let log = wait_log(&s.proxy, "SIGHUP: key rotation refused", 5);
    assert!(log.contains("chmod 0400"), "{log}");
    assert_eq!(s.proxy.post("{}").status, 200);
    assert_eq!(last_auth(&s.mock), format!("Bearer {KEY}"));

    // Over the admin socket: refused with exit 3, the old key stays; `rotate-key` prints why,
    // never the key.
    let (code, out, err) = rotate_key(&s.admin, format!("{bad}\n").as_bytes(), None);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("a character other than"), "{err}");
    assert!(
        !out.contains("BADKEY_canary") && !err.contains("BADKEY_canary"),
        "{out} {err}"
    );
    let (code, out, err) = rotate_key(&s.admin, b"sk-a\x01b\n", None);
    assert_eq!(code, 3, "{out} {err}");
    // Sent past the local check (the client checks too): the proxy's own check refuses it.
    let mut raw = UnixStream::connect(&s.admin).unwrap();
    raw.write_all(b"POST /rotate-key HTTP/1.1\r\ncontent-length: 14\r\n\r\nsk-BADKEY_x y\n")
        .unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
    assert!(
        answer.contains("a character other than") && !answer.contains("BADKEY"),
        "{answer}"
    );
    assert_eq!(s.proxy.post("{}").status, 200);
    assert_eq!(last_auth(&s.mock), format!("Bearer {KEY}"));

    // Review r15 F7: a two-line key is refused on both sides, as a two-line key file is; the
    // first line is not silently used. The client refuses before connecting ...
    let two = format!("{KEY2}\nsk-SECONDLINE_canary_xyz\n");
    let (code, out, err) = rotate_key(&s.admin, two.as_bytes(), None);
    assert_eq!(code, 3, "{out} {err}");
    assert!(err.contains("holds more than the API key"), "{err}");
    assert!(!err.contains("SECONDLINE") && !err.contains(KEY2), "{err}");
    // ... and the proxy refuses a body that carries it (a client that skips the check).
    let body = format!("{KEY2}\nsk-SECONDLINE_canary_xyz");
    let mut raw = UnixStream::connect(&s.admin).unwrap();
    raw.write_all(
        format!(
            "POST /rotate-key HTTP/1.1\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 422"), "{answer}");
    assert!(
        answer.contains("holds more than the API key") && answer.contains("the current key stays"),
        "{answer}"
    );
    assert!(
        !answer.contains("SECONDLINE") && !answer.contains(KEY2),
        "{answer}"
    );
    assert_eq!(s.proxy.post("{}").status, 200);
    assert_eq!(last_auth(&s.mock), format!("Bearer {KEY}"));
    // Control: the same first line alone (line endings after it allowed) rotates.
    let (code, out, err) = rotate_key(&s.admin, format!("{KEY2}\r\n\n").as_bytes(), None);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("\"rotated\":true"), "{out}");
    assert_eq!(s.proxy.post("{}").status, 200);
    assert_eq!(last_auth(&s.mock), format!("Bearer {KEY2}"));
    alive(&mut s.proxy);
    let log = s.proxy.stderr();
    for k in [KEY, KEY2, "BADKEY_canary", "SECONDLINE"] {
        assert!(!log.contains(k), "{k} in the log:\n{log}");
    }
}

/// Root rotates over the admin socket and scrapes metrics; uid 65534 can do neither, first
/// because of the socket's mode (0600 root), then, with the mode opened up, because of the
/// SO_PEERCRED check.
#[test]
fn only_root_may_use_the_admin_socket() {
    let mut s = start(&[]);
    s.mock
        .set_default(MockResponse::json(serde_json::json!({"ok": true})));
    assert_eq!(s.proxy.post("{}").status, 200);
    let mode = std::fs::metadata(&s.admin).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // By the mode.
    let (code, _, err) = rotate_key(&s.admin, format!("{KEY2}\n").as_bytes(), Some(NOBODY));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    // By the peer check (the attack the mode alone would not stop).
    std::fs::set_permissions(&s.admin, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, _, err) = rotate_key(&s.admin, format!("{KEY2}\n").as_bytes(), Some(NOBODY));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("403"), "{err}");
    let (status, body) = scrape(&s.admin, Some(NOBODY));
    assert!(status.contains("403"), "{status} {body}");
    assert!(!body.contains("responses_api_proxy_"), "{body}");
    wait_log(
        &s.proxy,
        "refused a peer that is neither root nor in the admin group",
        2,
    );
    assert_eq!(s.proxy.post("{}").status, 200);
    assert_eq!(
        last_auth(&s.mock),
        format!("Bearer {KEY}"),
        "nobody could not rotate"
    );

    // Control: root can.
    let (code, out, err) = rotate_key(&s.admin, format!("{KEY2}\n").as_bytes(), None);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("\"rotated\":true"), "{out}");
    assert_eq!(s.proxy.post("{}").status, 200);
    assert_eq!(last_auth(&s.mock), format!("Bearer {KEY2}"));

    let (status, metrics) = scrape(&s.admin, None);
    assert!(status.contains("200"), "{status}");
    check_exposition(&metrics);
    assert!(
        metrics.contains("responses_api_proxy_requests_total{uid=\"unknown\",status=\"200\"} 3\n")
            || metrics.contains("responses_api_proxy_requests_total{uid=\"0\",status=\"200\"} 3\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("responses_api_proxy_admin_refused_total 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("responses_api_proxy_key_rotations_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("responses_api_proxy_upstream_response_seconds_count 3\n"),
        "{metrics}"
    );
    for k in [KEY, KEY2] {
        assert!(!metrics.contains(k));
    }
    alive(&mut s.proxy);
}

/// The text format: every sample's family has HELP and TYPE, names and label sets are well
/// formed, values parse, histogram buckets are cumulative and end with +Inf = count.
fn check_exposition(text: &str) {
    use std::collections::BTreeSet;
    let mut typed = BTreeSet::new();
    let mut helped = BTreeSet::new();
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    let mut count = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let name = it.next().unwrap().to_string();
            let kind = it.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name);
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').unwrap();
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            if !labels.is_empty() {
                let inner = labels
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .unwrap();
                for pair in inner.split("\",") {
                    let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line}"
                    );
                    assert!(
                        !v.trim_end_matches('"').contains('"'),
                        "unescaped quote: {line}"
                    );
                }
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(
            typed.contains(family) && helped.contains(family),
            "no TYPE/HELP for {line}"
        );
        if name == "responses_api_proxy_upstream_response_seconds_bucket" {
            let le = series
                .split("le=\"")
                .nth(1)
                .unwrap()
                .trim_end_matches("\"}");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            buckets.push((le, v));
        }
        if name == "responses_api_proxy_upstream_response_seconds_count" {
            count = Some(v);
        }
    }
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "{buckets:?}"
    );
    assert_eq!(buckets.last().map(|b| b.1), count);
}

/// With the key on stdin and an admin socket, SIGHUP does not drain: the log says rotation
/// needs a file source and the proxy keeps serving (without the admin socket SIGHUP drains,
/// `lifecycle.rs`).
#[test]
fn with_the_key_on_stdin_sighup_says_rotation_needs_a_file_source_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let admin = dir.path().join("admin.sock");
    let mock = MockUpstream::start().unwrap();
    mock.set_default(MockResponse::json(serde_json::json!({"ok": true})));
    let mut p = Spawn::new(&mock.responses_url())
        .arg("--admin-socket")
        .arg(admin.to_str().unwrap())
        .start();
    ready(&p);
    p.signal("HUP");
    let log = wait_log(&p, "rotation needs a file source", 1);
    assert!(log.contains("still serving"), "{log}");
    alive(&mut p);
    assert_eq!(p.post("{}").status, 200);
    // The admin socket still rotates a stdin-keyed proxy.
    let (code, out, err) = rotate_key(&admin, format!("{KEY2}\n").as_bytes(), None);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(p.post("{}").status, 200);
    assert_eq!(last_auth(&mock), format!("Bearer {KEY2}"));
    alive(&mut p);
}

/// The opener's pid, from the start-up log.
fn opener_pid(p: &Proxy) -> u32 {
    let log = wait_log(p, "key opener started", 1);
    let line = log
        .lines()
        .find(|l| l.contains("key opener started"))
        .unwrap();
    line.split("pid=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line}"))
}

fn status_line(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The opener keeps uid 0 (what opening the root-owned 0600 key needs) and nothing else: no
/// capability, no_new_privs, a seccomp filter, only stdio, its socket and the key file's
/// directory (walked from `/` and held, so rotation never resolves the path again: outside
/// review r99 F1) open. The proxy itself
/// runs as uid 65534, which cannot open the key file (control: that is why the opener exists).
/// A dead opener makes SIGHUP fail loudly while the proxy keeps serving; the opener dies with
/// the proxy.
#[test]
fn the_key_opener_is_confined_and_dies_with_the_proxy() {
    let mut s = start(&[]);
    s.mock
        .set_default(MockResponse::json(serde_json::json!({"ok": true})));
    let opener = opener_pid(&s.proxy);
    let proxy = s.proxy.pid();
    assert_eq!(status_line(proxy, "Uid:"), "65534 65534 65534 65534");
    assert_eq!(status_line(opener, "Uid:"), "0 0 0 0");
    assert_eq!(status_line(opener, "PPid:"), proxy.to_string());
    for cap in ["CapEff:", "CapPrm:", "CapInh:", "CapAmb:"] {
        assert_eq!(status_line(opener, cap), "0000000000000000", "{cap}");
    }
    assert_eq!(status_line(opener, "NoNewPrivs:"), "1");
    assert_eq!(status_line(opener, "Seccomp:"), "2");
    let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{opener}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    fds.sort();
    assert_eq!(
        fds[..4],
        [0, 1, 2, 3],
        "the opener holds more than stdio and its socket"
    );
    assert_eq!(
        fds.len(),
        5,
        "the opener holds more than stdio, its socket and the key's directory: {fds:?}"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{opener}/fd/{}", fds[4])).unwrap(),
        s.key_file.parent().unwrap().canonicalize().unwrap(),
        "the opener's fifth descriptor is not the key file's directory"
    );
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{opener}/comm"))
            .unwrap()
            .trim(),
        "key-opener"
    );
    // Control: uid 65534 cannot open the key file.
    let cat = Command::new("cat")
        .arg(&s.key_file)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!cat.status.success());
    assert!(String::from_utf8_lossy(&cat.stderr).contains("Permission denied"));

    // A dead opener: SIGHUP says so, the proxy keeps serving with its key.
    let ok = Command::new("kill")
        .args(["-9", &opener.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    std::thread::sleep(Duration::from_millis(100));
    write_key_file(&s.key_file, format!("{KEY2}\n").as_bytes());
    s.proxy.signal("HUP");
    let log = wait_log(&s.proxy, "SIGHUP: key rotation refused", 1);
    assert!(
        log.contains(&format!("the key opener (pid {opener}) is gone")),
        "{log}"
    );
    alive(&mut s.proxy);
    assert_eq!(s.proxy.post("{}").status, 200);
    assert_eq!(last_auth(&s.mock), format!("Bearer {KEY}"));

    // A second proxy's opener goes when its proxy is killed (SIGKILL: no clean-up ran).
    let mut t = start(&[]);
    let opener = opener_pid(&t.proxy);
    assert!(Path::new(&format!("/proc/{opener}")).exists());
    t.proxy.child.kill().unwrap();
    t.proxy.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // Gone, or a zombie waiting for init to reap it.
        let state = std::fs::read_to_string(format!("/proc/{opener}/status"))
            .map(|st| {
                st.lines()
                    .find(|l| l.starts_with("State:"))
                    .unwrap_or("")
                    .to_string()
            })
            .unwrap_or_default();
        if state.is_empty() || state.contains('Z') {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the opener outlived its proxy: {state}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `--api-key-credential NAME`: SIGHUP re-reads `$CREDENTIALS_DIRECTORY/NAME`.
#[test]
fn sighup_rereads_a_systemd_credential() {
    let creds = tempfile::Builder::new()
        .prefix("rotation-creds-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(creds.path(), std::fs::Permissions::from_mode(0o500)).unwrap();
    let file = creds.path().join("openai");
    write_key_file(&file, format!("{KEY}\n").as_bytes());
    let mock = MockUpstream::start().unwrap();
    mock.set_default(MockResponse::json(serde_json::json!({"ok": true})));
    let mut p = Spawn::new(&mock.responses_url())
        .key(b"")
        .arg("--api-key-credential")
        .arg("openai")
        .env("CREDENTIALS_DIRECTORY", creds.path().to_str().unwrap())
        .start();
    ready(&p);
    assert_eq!(p.post("{}").status, 200);
    assert_eq!(last_auth(&mock), format!("Bearer {KEY}"));
    write_key_file(&file, format!("{KEY2}\n").as_bytes());
    p.signal("HUP");
    wait_log(&p, "SIGHUP: key rotated", 1);
    assert_eq!(p.post("{}").status, 200);
    assert_eq!(last_auth(&mock), format!("Bearer {KEY2}"));
    alive(&mut p);
}

/// `--admin-group`: a member (here uid 65534 through its primary group 65534) may rotate and
/// scrape; the socket is 0660 with that group.
#[test]
fn a_member_of_the_admin_group_may_use_the_admin_socket() {
    let mut s = start(&["--admin-group", "65534"]);
    s.mock
        .set_default(MockResponse::json(serde_json::json!({"ok": true})));
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(&s.admin).unwrap();
    assert_eq!((md.mode() & 0o777, md.uid(), md.gid()), (0o660, 0, 65534));
    let (status, body) = scrape(&s.admin, Some(NOBODY));
    assert!(status.contains("200"), "{status} {body}");
    check_exposition(&body);
    let (code, out, err) = rotate_key(&s.admin, format!("{KEY2}\n").as_bytes(), Some(NOBODY));
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(s.proxy.post("{}").status, 200);
    assert_eq!(last_auth(&s.mock), format!("Bearer {KEY2}"));
    alive(&mut s.proxy);
}

/// With `--policy`: tokens and the remaining budget per uid (root and uid 65534, each through
/// curl as that user), next to the request counts by uid.
#[test]
fn metrics_count_tokens_and_remaining_budget_per_user() {
    let d = tempfile::Builder::new()
        .prefix("rotation-policy-")
        .tempdir()
        .unwrap();
    let policy = d.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[default]\nday = { output_tokens = 1000 }\nmonth = { input_tokens = 100000 }\n",
    )
    .unwrap();
    let state = d.path().join("state");
    let admin = d.path().join("admin.sock");
    let mock = MockUpstream::start().unwrap();
    mock.set_default(MockResponse::json(serde_json::json!({
        "id": "r", "model": "gpt-5",
        "usage": {"input_tokens": 700, "input_tokens_details": {"cached_tokens": 100},
                  "output_tokens": 30, "total_tokens": 730}
    })));
    let mut p = Spawn::new(&mock.responses_url())
        .arg("--policy")
        .arg(policy.to_str().unwrap())
        .arg("--state-dir")
        .arg(state.to_str().unwrap())
        .arg("--admin-socket")
        .arg(admin.to_str().unwrap())
        .start();
    let curl = |uid: Option<u32>| {
        let mut c = Command::new("curl");
        c.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .args(["-H", "content-type: application/json", "--data-binary"])
        .arg(r#"{"model":"gpt-5","input":"hi"}"#)
        .arg(format!("http://127.0.0.1:{}/v1/responses", p.port))
        .stdin(Stdio::null());
        if let Some(u) = uid {
            c.uid(u).gid(u);
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    };
    assert_eq!(curl(None), "200");
    assert_eq!(curl(None), "200");
    assert_eq!(curl(Some(NOBODY)), "200");
    wait_log(&p, "tokens_in=700", 3);
    let (status, m) = scrape(&admin, None);
    assert!(status.contains("200"), "{status}");
    check_exposition(&m);
    for want in [
        "responses_api_proxy_requests_total{uid=\"0\",status=\"200\"} 2\n",
        "responses_api_proxy_requests_total{uid=\"65534\",status=\"200\"} 1\n",
        "responses_api_proxy_tokens_total{uid=\"0\",kind=\"input\"} 1400\n",
        "responses_api_proxy_tokens_total{uid=\"0\",kind=\"cached_input\"} 200\n",
        "responses_api_proxy_tokens_total{uid=\"0\",kind=\"output\"} 60\n",
        "responses_api_proxy_tokens_total{uid=\"65534\",kind=\"output\"} 30\n",
        "responses_api_proxy_budget_remaining{uid=\"0\",period=\"day\",kind=\"output\"} 940\n",
        "responses_api_proxy_budget_remaining{uid=\"0\",period=\"month\",kind=\"input\"} 98600\n",
        "responses_api_proxy_budget_remaining{uid=\"65534\",period=\"day\",kind=\"output\"} 970\n",
        "responses_api_proxy_requests_in_flight 0\n",
        "responses_api_proxy_upstream_response_seconds_count 3\n",
        "responses_api_proxy_budget_reserved{uid=\"65534\",period=\"day\",kind=\"output\"} 0\n",
    ] {
        assert!(m.contains(want), "missing {want:?} in:\n{m}");
    }
    // A stream in flight reserves its worst case (its `max_output_tokens`) against the budget:
    // the metrics show it next to what is left (it was missing: an admin saw 970 left while
    // parallel requests had already reserved all of it), and it is given back when it ends.
    let completed = r#"{"type":"response.completed","response":{"id":"r","usage":{"input_tokens":5,"output_tokens":7,"total_tokens":12}}}"#;
    mock.set_default(MockResponse::SsePaced {
        frames: vec![
            "event: response.created\ndata: {\"type\":\"response.created\"}\n\n".into(),
            format!("event: response.completed\ndata: {completed}\n\n"),
        ],
        delay: Duration::from_secs(3),
    });
    // a stream of at most 200 output tokens as `uid`, in the background
    let stream_as = |uid: u32| {
        Command::new("curl")
            .args(["-q", "-s", "-o", "/dev/null", "--max-time", "20"])
            .args(["-H", "content-type: application/json", "--data-binary"])
            .arg(r#"{"model":"gpt-5","input":"hi","stream":true,"max_output_tokens":200}"#)
            .arg(format!("http://127.0.0.1:{}/v1/responses", p.port))
            .stdin(Stdio::null())
            .uid(uid)
            .gid(uid)
            .spawn()
            .unwrap()
    };
    // the metrics once `done` says so, or after 2 s
    let scrape_until = |done: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let (_, m) = scrape(&admin, None);
            if done(&m) || Instant::now() > deadline {
                break m;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let stream = stream_as(NOBODY);
    let reserved_of = |m: &str, uid: u32, period: &str| {
        let want = format!(
            "responses_api_proxy_budget_reserved{{uid=\"{uid}\",period=\"{period}\",kind=\"output\"}} "
        );
        m.lines()
            .find_map(|l| l.strip_prefix(want.as_str()))
            .map(str::to_string)
    };
    let reserved = |m: &str, period: &str| reserved_of(m, NOBODY, period);
    let m = scrape_until(&|m| reserved(m, "day").as_deref() != Some("0"));
    check_exposition(&m);
    assert_eq!(reserved(&m, "day").as_deref(), Some("200"), "{m}");
    assert!(
        m.contains("responses_api_proxy_budget_remaining{uid=\"65534\",period=\"day\",kind=\"output\"} 970\n"),
        "what is left counts what was spent, not what is reserved:\n{m}"
    );
    assert!(stream.wait_with_output().unwrap().status.success());
    wait_log(&p, "tokens_out=7", 1);
    let (_, m) = scrape(&admin, None);
    assert_eq!(reserved(&m, "day").as_deref(), Some("0"), "{m}");
    assert!(
        m.contains("responses_api_proxy_budget_remaining{uid=\"65534\",period=\"day\",kind=\"output\"} 963\n"),
        "{m}"
    );
    // A uid whose only request is still in flight (its first: nothing finished to count it
    // by) shows its reservation too.
    const FIRST: u32 = 4242;
    let first = stream_as(FIRST);
    let m = scrape_until(&|m| reserved_of(m, FIRST, "day").is_some());
    assert_eq!(reserved_of(&m, FIRST, "day").as_deref(), Some("200"), "{m}");
    assert!(
        !m.contains("responses_api_proxy_requests_total{uid=\"4242\""),
        "no finished request of uid {FIRST} yet:\n{m}"
    );
    assert!(first.wait_with_output().unwrap().status.success());
    alive(&mut p);
}

/// Outside review r15 F3: `rotate-key` wrote the new key to whoever listened on the path, and
/// the proxy accepted an admin socket in a world-writable (sticky) directory, where another user
/// could bind the name first. The client now refuses a socket not served by root (nothing is
/// sent), and the proxy refuses such a directory at start. Control: the real admin socket takes
/// the key (the other tests).
#[test]
fn the_admin_socket_cannot_be_squatted_and_rotate_key_sends_only_to_root() {
    let shared = tempfile::Builder::new()
        .prefix("rotation-shared-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let path = shared.path().join("admin.sock");
    // Another local user listens there first (a socket bound by uid 65534).
    let squatter = Command::new("python3")
        .args([
            "-c",
            "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1]); s.listen(4)\nprint('up', flush=True)\nc,_=s.accept(); c.settimeout(5)\nd=b''\ntry:\n  while True:\n    b=c.recv(4096)\n    if not b: break\n    d+=b\nexcept Exception: pass\nopen(sys.argv[2],'wb').write(d)\n",
            path.to_str().unwrap(),
            shared.path().join("got").to_str().unwrap(),
        ])
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut squatter = KillOnDrop(squatter);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(squatter.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "up");
    let (code, _out, err) = rotate_key(&path, format!("{KEY2}\n").as_bytes(), None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("served by uid 65534, not by root"), "{err}");
    let _ = squatter.0.wait();
    let got = std::fs::read(shared.path().join("got")).unwrap_or_default();
    assert!(
        !got.windows(10)
            .any(|w| KEY2.as_bytes().windows(10).any(|k| k == w)),
        "the squatter received the key"
    );
    // The proxy refuses the world-writable directory at start.
    let mock = MockUpstream::start().unwrap();
    let other = shared.path().join("proxy-admin.sock");
    let err = Spawn::new(&mock.responses_url())
        .arg("--admin-socket")
        .arg(other.to_str().unwrap())
        .try_start()
        .err()
        .expect("the proxy must refuse the directory");
    assert!(
        err.1
            .contains("only a directory that root owns and no one else may write"),
        "{}",
        err.1
    );
}

/// Kills the child on drop.
struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Outside review r18 F1: a governed request whose body is still arriving holds no key. A body
/// that dribbles in across a rotation goes upstream with the key in force when it is complete,
/// and the rotation retires the old page at once (it is wiped while the slow request still
/// reads its body). Before, the request took the key when it arrived: the old page stayed in use
/// and the request went upstream with the retired key.
#[test]
fn a_body_still_arriving_holds_no_key_and_goes_up_with_the_key_in_force_when_complete() {
    let d = tempfile::Builder::new()
        .prefix("rotation-slow-body-")
        .tempdir()
        .unwrap();
    let policy = d.path().join("policy.toml");
    std::fs::write(&policy, "[default]\nmodels = [\"gpt-5*\"]\n").unwrap();
    let mut s = start(&["--policy", policy.to_str().unwrap()]);
    s.mock.set_default(MockResponse::json(serde_json::json!({
        "id": "r", "model": "gpt-5",
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}
    })));
    let port = s.proxy.port;
    let body = br#"{"model":"gpt-5","input":"a body that arrives slowly"}"#;
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    c.write_all(&body[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let (code, out, err) = rotate_key(&s.admin, format!("{KEY2}\n").as_bytes(), None);
    assert_eq!(code, 0, "{out}{err}");
    // The old page is free at once: nothing holds the old key (the slow request holds none).
    wait_log(&s.proxy, "key page wiped and returned to the pool", 1);

    c.write_all(&body[10..]).unwrap();
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(last_auth(&s.mock), format!("Bearer {KEY2}"));

    // Control: a request that arrives whole now carries the new key too, and the proxy lives.
    let r = s.proxy.post(r#"{"model":"gpt-5","input":"hi"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_auth(&s.mock), format!("Bearer {KEY2}"));
    alive(&mut s.proxy);
}

/// Outside review r18 F1, the rest: streams started under three older keys hold every spare key
/// page; the fourth rotation no longer fails with 503 but cuts the holders of the oldest retired
/// key (its stream ends early, the connection closed) and goes through; the streams of the two
/// newer retired keys run to their end. Before, the rotation was refused for as long as the
/// clients kept their streams open. The old key's page is wiped and the key gone from memory.
#[test]
fn a_rotation_with_every_page_in_use_cuts_the_oldest_keys_holders_instead_of_failing() {
    let keys = [
        KEY.to_string(),
        "sk-proj-ROTATED_A_Qw7Zt0Canary_1111111111".to_string(),
        "sk-proj-ROTATED_B_Qw7Zt0Canary_2222222222".to_string(),
        "sk-proj-ROTATED_C_Qw7Zt0Canary_3333333333".to_string(),
        "sk-proj-ROTATED_D_Qw7Zt0Canary_4444444444".to_string(),
    ];
    let mut s = start(&[]);
    let pid = s.proxy.pid();
    let frames: Vec<String> = (0..60)
        .map(|i| format!("data: {{\"n\":{i}}}\n\n"))
        .chain(std::iter::once("data: [END]\n\n".to_string()))
        .collect();
    s.mock.set_default(MockResponse::SsePaced {
        frames,
        delay: Duration::from_millis(100),
    });
    let mut streams = Vec::new();
    for (i, next) in keys.iter().enumerate().skip(1).take(3) {
        streams.push(stream_in_background(s.proxy.port));
        assert!(
            s.mock
                .wait_until(Duration::from_secs(10), |m| m.requests_total >= i)
        );
        assert_eq!(last_auth(&s.mock), format!("Bearer {}", keys[i - 1]));
        let (code, out, err) = rotate_key(&s.admin, format!("{next}\n").as_bytes(), None);
        assert_eq!(code, 0, "rotation {i}: {out}{err}");
    }
    // Four pages in use: the key in force and three held by the streams.
    let started = Instant::now();
    let (code, out, err) = rotate_key(&s.admin, format!("{}\n", keys[4]).as_bytes(), None);
    assert_eq!(code, 0, "the fourth rotation: {out}{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    wait_log(
        &s.proxy,
        "cutting the connections that hold the retired key of the user holding the most",
        1,
    );

    let bodies: Vec<String> = streams
        .into_iter()
        .map(|t| String::from_utf8_lossy(&t.join().unwrap()).into_owned())
        .collect();
    assert!(bodies[0].starts_with("HTTP/1.1 200"), "{}", bodies[0]);
    assert!(
        !bodies[0].contains("[END]"),
        "the oldest key's stream was not cut: {}",
        bodies[0]
    );
    for b in &bodies[1..] {
        assert!(b.contains("[END]"), "a newer stream was cut: {b}");
    }
    // Outside review r20 L1: the cut stream's audit line says the proxy cut it (`rotated`),
    // not that its client went away.
    wait_log(&s.proxy, "outcome=\"rotated\"", 1);
    let log = s.proxy.stderr();
    assert!(!log.contains("outcome=\"client_gone\""), "{log}");
    // The first key's page was wiped: the key is nowhere in the process.
    let gone = residency(pid, keys[0].as_bytes());
    assert_eq!(
        (gone.locked, gone.outside.len()),
        (0, 0),
        "the first key is still in memory: {:?}",
        gone.outside
    );
    let r = s.proxy.post(r#"{"model":"m"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(last_auth(&s.mock), format!("Bearer {}", keys[4]));
    alive(&mut s.proxy);
}
