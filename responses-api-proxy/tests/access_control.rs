//! Access control end to end: the real proxy binary, started as root, attacked by clients running
//! as uid 65534 (`nobody`, via `curl` spawned with that uid) and used by root (control).
//!
//! The upstream is unreachable on purpose: an allowed peer's request is forwarded and gets 502,
//! a refused peer gets 403 before anything is forwarded. Needs `curl` (installed by `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_responses-api-proxy");
const KEY: &str = "sk-proj-ACCESSCONTROL_canary_271828";
const NOBODY: u32 = 65534;
/// Nothing listens on the discard port: forwarded requests get 502.
const UPSTREAM: &str = "http://127.0.0.1:9/v1/responses";

struct Proxy {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    stderr: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn child_signal_term(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
    }
    fn sock(&self) -> PathBuf {
        self.dir.path().join("proxy.sock")
    }
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
    fn status_line(&self, key: &str) -> String {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        s.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn open_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("proxy-access-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A minimal upstream on 127.0.0.1: answers every request with `200 {"ok":true}` and closes.
fn tiny_upstream() -> u16 {
    use std::io::Read;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then the body by Content-Length.
            let (head_end, len) = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break (0, 0);
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    break (i + 4, len);
                }
            };
            while head_end > 0 && buf.len() < head_end + len {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = b"{\"ok\":true}";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        }
    });
    port
}

/// Starts the proxy (key on stdin) and waits for its server-info file; `Err` on early exit.
fn try_start(args: &[&str], dir: tempfile::TempDir) -> Result<Proxy, (i32, String)> {
    let info = dir.path().join("info.json");
    let stderr = dir.path().join("stderr.log");
    let sock = dir.path().join("proxy.sock");
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{sock}", sock.to_str().unwrap()))
        .collect();
    let mut cmd = Command::new(BIN);
    cmd.args(&args);
    if !args.iter().any(|a| a == "--upstream-url") {
        cmd.arg("--upstream-url").arg(UPSTREAM);
    }
    let mut child = cmd
        .arg("--server-info")
        .arg(&info)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(KEY.as_bytes());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(&info) {
            if text.ends_with('\n') {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                let port = v["port"].as_u64().unwrap_or(0) as u16;
                let mut p = Proxy {
                    child,
                    dir,
                    port,
                    stderr,
                };
                // Serving starts after the drop and confinement: wait for the log line.
                while !p.stderr().contains("confined") {
                    if let Some(st) = p.child.try_wait().unwrap() {
                        return Err((st.code().unwrap_or(-1), p.stderr()));
                    }
                    assert!(Instant::now() < deadline, "proxy not confined in 60 s");
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = &mut p;
                return Ok(p);
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            let err = std::fs::read_to_string(&stderr).unwrap_or_default();
            return Err((st.code().unwrap_or(-1), err));
        }
        assert!(Instant::now() < deadline, "proxy did not start in 60 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn start(args: &[&str]) -> Proxy {
    match try_start(args, open_dir()) {
        Ok(p) => p,
        Err((code, err)) => panic!("proxy exited during start-up ({code}): {err}"),
    }
}

/// `curl` as `uid` (None: root). Returns (HTTP status, body).
fn curl(uid: Option<u32>, target: &Target, method: &str, path: &str) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        "--max-time",
        "30",
    ]);
    if method == "POST" {
        c.args(["-H", "content-type: application/json", "--data", "{}"]);
    }
    match target {
        Target::Unix(p) => {
            c.arg("--unix-socket")
                .arg(p)
                .arg(format!("http://localhost{path}"));
        }
        Target::Tcp(port) => {
            c.arg(format!("http://127.0.0.1:{port}{path}"));
        }
    }
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    let out: Output = c
        .stdin(Stdio::null())
        .output()
        .expect("curl must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    assert!(
        out.status.success(),
        "curl failed: {} {}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

enum Target {
    Unix(PathBuf),
    Tcp(u16),
}

fn assert_no_key(what: &str, text: &str) {
    assert!(!text.contains(KEY), "key leaked in {what}");
}

#[test]
fn unix_socket_allow_user_refuses_others_and_guards_shutdown() {
    let p = start(&[
        "--listen",
        "unix:{sock}",
        "--socket-mode",
        "0666",
        "--allow-user",
        "root",
        "--http-shutdown",
    ]);
    let t = Target::Unix(p.sock());
    // Attack: nobody may reach the socket (mode 0666) but is not on the allow-list.
    let (status, body) = curl(Some(NOBODY), &t, "POST", "/v1/responses");
    assert_eq!(status, 403, "{body}");
    assert_no_key("refusal body", &body);
    // Control: root is allowed; the request is forwarded (upstream down: 502).
    let (status, body) = curl(None, &t, "POST", "/v1/responses");
    assert_eq!(status, 502, "{body}");
    // Attack: /shutdown from a refused peer is refused too; the proxy keeps running.
    let (status, _) = curl(Some(NOBODY), &t, "GET", "/shutdown");
    assert_eq!(status, 403);
    std::thread::sleep(Duration::from_millis(200));
    let mut p = p;
    assert!(
        p.child.try_wait().unwrap().is_none(),
        "refused /shutdown stopped the proxy"
    );
    // Control: the allowed user can shut it down.
    let (status, _) = curl(None, &t, "GET", "/shutdown");
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    let st = loop {
        if let Some(st) = p.child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "no exit after /shutdown");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(st.success(), "{}", p.stderr());
    // The audit log names the refused peer's uid.
    let log = p.stderr();
    assert!(
        log.contains("uid 65534 (pid "),
        "refusal not audit-logged with uid and pid: {log}"
    );
    assert_no_key("stderr", &log);
}

#[test]
fn tcp_allow_user_by_sock_diag() {
    let p = start(&["--allow-user", "nobody"]);
    let t = Target::Tcp(p.port);
    // nobody is allowed over loopback TCP (identified with sock_diag): forwarded.
    let (status, body) = curl(Some(NOBODY), &t, "POST", "/v1/responses");
    assert_eq!(status, 502, "{body}");
    // Attack from the other side: root is not on this list.
    let (status, body) = curl(None, &t, "POST", "/v1/responses");
    assert_eq!(status, 403, "{body}");
}

#[test]
fn a_refused_peer_pipelining_without_reading_does_not_hold_the_drain() {
    use std::io::Read;
    let mut p = start(&["--allow-user", "nobody"]);
    // Attack: root is not on the list; it pipelines thousands of requests and never reads the
    // 403s. Before the fix hyper kept writing 403s into the full socket and SIGTERM left the proxy
    // "draining" until the attacker hung up.
    let mut attacker = std::net::TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    let one = format!(
        "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 2\r\n\r\n{{}}",
        p.port
    );
    let burst = one.repeat(20_000);
    attacker
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let _ = attacker.write_all(burst.as_bytes()); // may fail: the proxy closed after one 403
    std::thread::sleep(Duration::from_millis(300));
    p.child_signal_term();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = p.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "still draining 10 s after SIGTERM while the attacker holds its connection: {}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", p.stderr());
    // What the attacker got: one 403 with `Connection: close`, then the end of the stream.
    attacker
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = Vec::new();
    let _ = attacker.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 403").count(), 1, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    // The attacker kept its socket open the whole time.
    drop(attacker);
}

#[test]
fn tcp_allow_group_refuses_non_members() {
    // root's primary group: root is a member, nobody is not.
    let p = start(&["--allow-group", "root"]);
    let t = Target::Tcp(p.port);
    let (status, _) = curl(Some(NOBODY), &t, "POST", "/v1/responses");
    assert_eq!(status, 403);
    let (status, _) = curl(None, &t, "POST", "/v1/responses");
    assert_eq!(status, 502);
}

#[test]
fn started_as_root_runs_as_nobody_confined() {
    let p = start(&[]);
    assert_eq!(p.status_line("Uid:"), "65534 65534 65534 65534");
    assert_eq!(p.status_line("Gid:"), "65534 65534 65534 65534");
    assert_eq!(p.status_line("Groups:"), "");
    assert_eq!(p.status_line("NoNewPrivs:"), "1");
    assert_eq!(p.status_line("Seccomp:"), "2");
    assert_eq!(p.status_line("CapEff:"), "0000000000000000");
    // Every thread (runtime workers included) runs under the filter.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", p.child.id())).unwrap();
    for t in tasks {
        // A blocking-pool thread may exit between the listing and the read.
        let Ok(s) = std::fs::read_to_string(t.unwrap().path().join("status")) else {
            continue;
        };
        assert!(
            s.contains("Seccomp:\t2"),
            "a thread without the filter: {s}"
        );
        assert!(s.contains("NoNewPrivs:\t1"));
    }
    // Still serves (no allow-list: everyone).
    let (status, _) = curl(Some(NOBODY), &Target::Tcp(p.port), "POST", "/v1/responses");
    assert_eq!(status, 502);
    let log = p.stderr();
    assert!(
        log.contains("landlock=abi"),
        "confinement not logged: {log}"
    );
}

#[test]
fn dangerously_run_as_root_keeps_root_and_user_root_is_refused() {
    let p = start(&["--dangerously-run-as-root"]);
    assert_eq!(p.status_line("Uid:"), "0 0 0 0");
    assert_eq!(p.status_line("Seccomp:"), "2", "still confined");
    drop(p);
    let Err((code, err)) = try_start(&["--user", "root"], open_dir()) else {
        panic!("--user root accepted");
    };
    assert_eq!(code, 2);
    assert!(err.contains("use --dangerously-run-as-root"), "{err}");
}

#[test]
fn unknown_names_fail_before_the_key_is_read() {
    for (flag, value, want) in [
        ("--allow-group", "no-such-group-proxy-x", "unknown group"),
        ("--allow-user", "no-such-user-proxy-x", "unknown user"),
        ("--user", "no-such-user-proxy-x", "unknown user"),
    ] {
        let Err((code, err)) = try_start(&[flag, value], open_dir()) else {
            panic!("{flag} {value} accepted");
        };
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(want) && err.contains(value), "{err}");
    }
}

#[test]
fn unix_socket_gets_mode_and_group() {
    let p = start(&[
        "--listen",
        "unix:{sock}",
        "--socket-mode",
        "0660",
        "--socket-group",
        "nogroup",
    ]);
    let md = std::fs::symlink_metadata(p.sock()).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o660);
    assert_eq!(md.gid(), NOBODY);
}

#[test]
fn symlink_at_socket_path_is_refused_and_untouched() {
    let dir = open_dir();
    let target = dir.path().join("victim");
    std::fs::write(&target, b"victim").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("proxy.sock")).unwrap();
    let Err((code, err)) = try_start(&["--listen", "unix:{sock}"], dir) else {
        panic!("symlink replaced");
    };
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("symlink"), "{err}");
}

#[test]
fn api_key_file_with_loose_mode_is_refused() {
    let dir = open_dir();
    let key = dir.path().join("key");
    std::fs::write(&key, KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let keyarg = key.to_str().unwrap().to_owned();
    let Err((code, err)) = try_start(&["--api-key-file", &keyarg], dir) else {
        panic!("loose key file accepted");
    };
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("gives group or others access"), "{err}");
    assert_no_key("error", &err);
    // Control: 0400 works.
    let dir = open_dir();
    let key = dir.path().join("key");
    std::fs::write(&key, KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    let keyarg = key.to_str().unwrap().to_owned();
    let p = try_start(&["--api-key-file", &keyarg], dir).unwrap();
    let (status, _) = curl(None, &Target::Tcp(p.port), "POST", "/v1/responses");
    assert_eq!(status, 502);
}

#[test]
fn key_errors_name_their_source() {
    // A file: empty, then a forbidden byte (its offset, never the byte or the key).
    for (content, expect) in [
        (&b""[..], ": holds no API key"),
        (
            b"sk-SECRETPART with space\n",
            ": the API key contains a character other than",
        ),
        // review F7: a second line was silently ignored (an env file, a second key, notes)
        (
            b"sk-first\nOTHER_SECRETPART=x\n",
            ": holds more than the API key",
        ),
        (
            b"sk-first\r\n\r\nSECRETPART",
            ": holds more than the API key",
        ),
    ] {
        let dir = open_dir();
        let key = dir.path().join("key");
        std::fs::write(&key, content).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
        let keyarg = key.to_str().unwrap().to_owned();
        let Err((code, err)) = try_start(&["--api-key-file", &keyarg], dir) else {
            panic!("bad key file accepted");
        };
        assert_eq!(code, 3, "{err}");
        assert!(
            err.contains(&format!("--api-key-file {keyarg}{expect}")),
            "{err}"
        );
        assert!(
            !err.contains("SECRETPART") && !err.contains("on stdin"),
            "{err}"
        );
    }
    // Control: line endings after the key are fine.
    let dir = open_dir();
    let key = dir.path().join("key");
    std::fs::write(&key, b"sk-first\r\n\n\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    let keyarg = key.to_str().unwrap().to_owned();
    assert!(try_start(&["--api-key-file", &keyarg], dir).is_ok());
    // A credential that does not exist is named as such.
    let dir = open_dir();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    let out = Command::new(BIN)
        .args(["--api-key-credential", "missing-key"])
        .env_clear()
        .env("CREDENTIALS_DIRECTORY", &creds)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--api-key-credential missing-key: "), "{err}");
}

/// Runs `cmd` (a proxy expected to exit at start-up) with the key on stdin; stderr captured.
fn run_with_key_on_stdin(mut cmd: Command) -> std::process::Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            let _ = c.stdin.take().unwrap().write_all(KEY.as_bytes());
            c.wait_with_output()
        })
        .unwrap()
}

#[test]
fn listen_fds_for_another_pid_is_refused() {
    let dir = open_dir();
    let info = dir.path().join("info.json");
    let mut cmd = Command::new(BIN);
    cmd.arg("--server-info")
        .arg(&info)
        .env_clear()
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1");
    let out = run_with_key_on_stdin(cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("LISTEN_PID=1"), "{err}");
    assert!(!Path::new(&info).exists());
}

#[test]
fn listen_fds_naming_us_without_a_passed_descriptor_is_refused_cleanly() {
    // LISTEN_PID is our own pid but nothing was passed at fd 3. The proxy must not mistake a
    // descriptor it opened itself (formerly: the sock_diag netlink socket) for a systemd
    // listener: that took the descriptor twice and aborted in std's I/O-safety check.
    let dir = open_dir();
    let info = dir.path().join("info.json");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" --allow-user root --server-info "$1""#)
        .arg(BIN)
        .arg(&info)
        .env_clear();
    let out = run_with_key_on_stdin(cmd);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(4),
        "killed or wrong code: {:?} {err}",
        out.status
    );
    assert!(err.contains("LISTEN_FDS") || err.contains("fd 3"), "{err}");
    assert!(!Path::new(&info).exists());
    assert_no_key("stderr", &err);
}

#[test]
fn confined_proxy_resolves_a_host_name_upstream() {
    // The upstream is named, not an IP: getaddrinfo must still work under Landlock and seccomp
    // (resolver files and NSS libraries readable, nothing else), and connect only reaches the
    // upstream's port.
    let port = tiny_upstream();
    let url = format!("http://localhost:{port}/v1/responses");
    let p = start(&["--upstream-url", &url]);
    assert_eq!(p.status_line("Seccomp:"), "2");
    let (status, body) = curl(None, &Target::Tcp(p.port), "POST", "/v1/responses");
    assert_eq!(status, 200, "{body} {}", p.stderr());
    assert_eq!(body, "{\"ok\":true}");
}

#[test]
fn systemd_socket_activation_serves_on_the_passed_socket() {
    // systemd-socket-activate (package systemd) binds the socket, sets LISTEN_FDS/LISTEN_PID for
    // the process it execs, and execs it on the first connection.
    let dir = open_dir();
    let sock = dir.path().join("activated.sock");
    let info = dir.path().join("info.json");
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&sock)
        .arg(BIN)
        .args(["--upstream-url", UPSTREAM, "--allow-user", "root"])
        .arg("--server-info")
        .arg(&info)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (package systemd) must be installed");
    let _ = child.stdin.take().unwrap().write_all(KEY.as_bytes());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "socket not created");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let t = Target::Unix(sock.clone());
    let (status, body) = curl(None, &t, "POST", "/v1/responses");
    let _guard = KillOnDrop(child);
    assert_eq!(status, 502, "allowed root is forwarded: {body}");
    let (status, _) = curl(Some(NOBODY), &t, "POST", "/v1/responses");
    assert_eq!(status, 403, "the allow-list applies to activated sockets");
    let text = std::fs::read_to_string(&info).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["port"], 0,
        "no default TCP listener besides the activated one: {text}"
    );
    assert_eq!(
        v["listen"],
        serde_json::json!([format!("unix:{}", sock.display())]),
        "{text}"
    );
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dump_dir_created_by_the_proxy_belongs_to_the_dropped_account() {
    let port = tiny_upstream();
    let url = format!("http://127.0.0.1:{port}/v1/responses");
    let base = open_dir();
    let dumps = base.path().join("dumps");
    let p = start(&[
        "--upstream-url",
        &url,
        "--dump-dir",
        dumps.to_str().unwrap(),
    ]);
    let md = std::fs::metadata(&dumps).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o777), (NOBODY, 0o700));
    let (status, _) = curl(None, &Target::Tcp(p.port), "POST", "/v1/responses");
    assert_eq!(status, 200);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = std::fs::read_dir(&dumps).unwrap().count();
        if n == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dumps not written: {n} {}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for f in std::fs::read_dir(&dumps).unwrap() {
        let md = f.unwrap().metadata().unwrap();
        assert_eq!((md.uid(), md.mode() & 0o777), (NOBODY, 0o600));
    }
    // An existing directory the account cannot write is refused at start-up, not at the first
    // dump (and never chowned).
    let root_only = base.path().join("root-only");
    std::fs::create_dir(&root_only).unwrap();
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o700)).unwrap();
    let Err((code, err)) = try_start(&["--dump-dir", root_only.to_str().unwrap()], open_dir())
    else {
        panic!("unwritable dump dir accepted");
    };
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("not writable by the account"), "{err}");
    assert_eq!(std::fs::metadata(&root_only).unwrap().uid(), 0);
}

/// `cat` as uid 65534; returns (success, stderr).
fn cat_as_nobody(path: &str) -> (bool, String) {
    let out = Command::new("cat")
        .arg(path)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn same_uid_attacker_cannot_read_the_dropped_proxy() {
    // The proxy dropped to nobody; the attacker runs as nobody too. The kernel resets the
    // dumpable flag on the credential change; the re-assertion keeps /proc/<pid>/{mem,environ}
    // closed to the same uid.
    let p = start(&[]);
    assert_eq!(p.status_line("Uid:"), "65534 65534 65534 65534");
    let pid = p.child.id();
    for f in ["mem", "environ", "maps"] {
        let (ok, err) = cat_as_nobody(&format!("/proc/{pid}/{f}"));
        assert!(!ok, "nobody read /proc/<proxy>/{f}");
        assert!(err.contains("Permission denied"), "{f}: {err}");
    }
    // Control: an ordinary process of the same uid is readable by that uid.
    let mut victim = Command::new("sleep")
        .arg("30")
        .uid(NOBODY)
        .gid(NOBODY)
        .spawn()
        .unwrap();
    let (ok, err) = cat_as_nobody(&format!("/proc/{}/environ", victim.id()));
    let _ = victim.kill();
    let _ = victim.wait();
    assert!(
        ok,
        "control: same-uid /proc/<pid>/environ should be readable: {err}"
    );
}

#[test]
fn unprivileged_start_with_a_systemd_credential() {
    // As under `DynamicUser=` + `LoadCredential=`: started as an unprivileged account, key from
    // $CREDENTIALS_DIRECTORY/NAME (0400, owned by that account). Nothing to drop; still confined.
    let dir = open_dir();
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    let key = creds.join("openai-api-key");
    std::fs::write(&key, KEY).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    std::os::unix::fs::chown(&creds, Some(NOBODY), Some(NOBODY)).unwrap();
    std::os::unix::fs::chown(&key, Some(NOBODY), Some(NOBODY)).unwrap();
    let info = dir.path().join("info.json");
    let stderr = dir.path().join("stderr.log");
    std::fs::File::create(&stderr).unwrap();
    std::os::unix::fs::chown(&stderr, Some(NOBODY), Some(NOBODY)).unwrap();
    let child = Command::new(BIN)
        .args([
            "--upstream-url",
            UPSTREAM,
            "--api-key-credential",
            "openai-api-key",
        ])
        .arg("--server-info")
        .arg(&info)
        .env_clear()
        .env("CREDENTIALS_DIRECTORY", &creds)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&stderr)
                .unwrap(),
        )
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let log = || std::fs::read_to_string(&stderr).unwrap_or_default();
    while !log().contains("confined") {
        if let Some(st) = child.0.try_wait().unwrap() {
            panic!("proxy exited ({st}): {}", log());
        }
        assert!(Instant::now() < deadline, "not confined in 60 s: {}", log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = std::fs::read_to_string(&info).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let port = v["port"].as_u64().unwrap() as u16;
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.0.id())).unwrap();
    assert!(
        status.contains("Uid:\t65534\t65534\t65534\t65534"),
        "{status}"
    );
    assert!(status.contains("Seccomp:\t2"), "{status}");
    let (code, body) = curl(Some(NOBODY), &Target::Tcp(port), "POST", "/v1/responses");
    assert_eq!(code, 502, "{body}");
    assert_no_key("stderr", &log());
    // Without $CREDENTIALS_DIRECTORY the flag is a clear error.
    let out = Command::new(BIN)
        .args(["--api-key-credential", "openai-api-key"])
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("$CREDENTIALS_DIRECTORY is not set"), "{err}");
}

/// An upstream listener of uid 65534 on 127.0.0.1: accepts one connection, reads for up to 3 s,
/// then prints what it received (hex). First line: its port.
struct SquatterUpstream {
    child: Child,
    port: u16,
}

impl SquatterUpstream {
    fn start() -> Self {
        const SERVER: &str = r#"
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
s.settimeout(30)
c, _ = s.accept(); c.settimeout(3)
data = b""
try:
    while True:
        d = c.recv(65536)
        if not d: break
        data += d
except Exception:
    pass
print(data.hex(), flush=True)
"#;
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .uid(NOBODY)
            .gid(NOBODY)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        let port = line.trim().parse().unwrap();
        // Keep the rest of stdout attached for `received`.
        child.stdout = Some(out.into_inner());
        SquatterUpstream { child, port }
    }

    /// What the squatter received (it stops reading 3 s after the last byte).
    fn received(mut self) -> String {
        let mut rest = String::new();
        std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut rest).unwrap();
        let _ = self.child.wait();
        let hex = rest.trim();
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[test]
fn a_plain_http_upstream_of_another_user_never_gets_the_key() {
    // Another local user listens on the loopback port the administrator's plain-http upstream
    // was meant to use (loopback ports belong to nobody): the proxy checks the owner of the
    // socket it reached before writing a byte, and answers 502.
    let squatter = SquatterUpstream::start();
    let url = format!("http://127.0.0.1:{}/v1/responses", squatter.port);
    let p = start(&["--upstream-url", &url]);
    let (status, body) = curl(None, &Target::Tcp(p.port), "POST", "/v1/responses");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("served by uid 65534"), "{body}");
    assert!(!body.contains(KEY));
    let got = squatter.received();
    assert!(got.is_empty(), "the squatter received: {got:?}");

    // Control: naming that account as the upstream's owner lets the same request (and the key)
    // through, so the check above is what kept it.
    let squatter = SquatterUpstream::start();
    let url = format!("http://127.0.0.1:{}/v1/responses", squatter.port);
    let p = start(&["--upstream-url", &url, "--upstream-owner", "nobody"]);
    let _ = curl(None, &Target::Tcp(p.port), "POST", "/v1/responses");
    let got = squatter.received();
    assert!(got.contains(&format!("Bearer {KEY}")), "{got:?}");
}

#[test]
fn plain_http_to_another_host_is_refused() {
    let out = Command::new(BIN)
        .args(["--upstream-url", "http://192.0.2.1/v1/responses"])
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plain http is only allowed to a loopback host"),
        "{err}"
    );
}
