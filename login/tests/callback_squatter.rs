//! The callback server against another local user (uid 65534): a squatter on `[::1]:port` and a
//! flood of idle connections (issue 15, "close what an outside review found").
//!
//! The squatter is this test binary re-executed as uid 65534 (`Command::uid`: fork, setgid,
//! setuid, exec) running [`squatter_child`], so the attacker really is another user.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codex_login::{Issuer, LoginError, LoginOptions, PortChoice, TokenSet, start};
use suite_test_support::oauth_mock::{self, MockIssuer};

const ROLE: &str = "CODEX_LOGIN_SQUATTER";

/// Not a check: the body of the squatter process. Runs only when re-executed with `ROLE` set.
#[test]
fn squatter_child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let mut parts = role.split(':');
    let (kind, port) = (
        parts.next().unwrap(),
        parts.next().unwrap().parse::<u16>().unwrap(),
    );
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    match kind {
        // Listen on [::1]:port and answer whatever comes with a page of the attacker's.
        "v6" => {
            let l = TcpListener::bind(("::1", port)).unwrap();
            println!("SQUATTER READY uid={}", rustix_uid());
            std::thread::spawn(move || {
                for c in l.incoming().flatten() {
                    let mut c = c;
                    // The whole request head: closing with unread bytes would send a reset
                    // instead of the answer (a CI run saw "connection reset by peer").
                    let mut got = Vec::new();
                    let mut buf = [0u8; 4096];
                    let _ = c.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let first = String::from_utf8_lossy(&got)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    eprintln!("SQUATTER GOT {first}");
                    let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nattacker!");
                    let _ = c.shutdown(std::net::Shutdown::Write);
                }
            });
        }
        // Open many idle connections to 127.0.0.1:port and [::1]:port and send nothing.
        "idle" => {
            let n: usize = parts.next().unwrap().parse().unwrap();
            for i in 0..n {
                let host = if i % 2 == 0 { "127.0.0.1" } else { "::1" };
                if let Ok(s) = TcpStream::connect((host, port)) {
                    keep.push(Box::new(s));
                }
            }
            println!("SQUATTER READY uid={} open={}", rustix_uid(), keep.len());
            // Keep opening connections as fast as it can while the login runs (a persistent
            // attacker): the server sees 64 new ones within a few milliseconds, less than it
            // takes the browser's connection to have its request read. The last 512 are kept
            // open (older ones closed: the process has 1024 descriptors).
            std::thread::spawn(move || {
                let mut ring = std::collections::VecDeque::new();
                loop {
                    for host in ["127.0.0.1", "::1"] {
                        if let Ok(s) = TcpStream::connect((host, port)) {
                            ring.push_back(s);
                        }
                    }
                    while ring.len() > 512 {
                        ring.pop_front();
                    }
                }
            });
        }
        other => panic!("unknown squatter role {other}"),
    }
    std::io::stdout().flush().unwrap();
    // Until the parent closes our stdin.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(keep);
}

fn rustix_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(u32::MAX)
}

struct Squatter {
    child: Child,
}

impl Drop for Squatter {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the squatter as uid 65534 and wait until it is in place.
fn squatter(role: &str) -> (Squatter, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "squatter_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .uid(65534)
        .gid(65534)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
            panic!("the squatter (uid 65534) did not start: the check cannot run");
        }
        if line.contains("SQUATTER READY") {
            break;
        }
    }
    assert!(
        line.contains("uid=65534"),
        "squatter not dropped to 65534: {line}"
    );
    std::thread::spawn(move || for _ in out.lines() {});
    (Squatter { child }, line)
}

fn free_port_on_both() -> u16 {
    loop {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = v4.local_addr().unwrap().port();
        if TcpListener::bind(("::1", p)).is_ok() {
            return p;
        }
    }
}

fn opts(mock: &MockIssuer, port: PortChoice) -> LoginOptions {
    LoginOptions {
        issuer: Issuer::parse(&mock.url()).unwrap(),
        client_id: mock.client_id().to_string(),
        port,
        timeout: Some(Duration::from_secs(60)),
    }
}

type Stored = Arc<Mutex<Vec<TokenSet>>>;

async fn start_recording(
    o: LoginOptions,
) -> Result<(codex_login::LoginServer, Stored), LoginError> {
    let stored: Stored = Arc::default();
    let s = stored.clone();
    let server = start(o, move |t| async move {
        s.lock().unwrap().push(t);
        Ok(())
    })
    .await?;
    Ok((server, stored))
}

/// `browse`, but reaching the callback through `[::1]` as a browser that tries IPv6 first does.
fn browse_via_v6(auth_url: &str) -> oauth_mock::HttpAnswer {
    let (callback, _, _) = oauth_mock::authorize_only(auth_url).unwrap();
    let v6 = callback.replacen("http://localhost:", "http://[::1]:", 1);
    assert_ne!(v6, callback, "{callback}");
    // The Host header stays `localhost:port`, as the browser sends it.
    let host = url::Url::parse(&callback).unwrap();
    let host = format!("localhost:{}", host.port().unwrap());
    oauth_mock::http_get(&v6, Some(&host)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squatter_on_the_ipv6_loopback_port_never_gets_the_callback() {
    let mock = MockIssuer::start().unwrap();
    let port = free_port_on_both();
    let (_sq, _) = squatter(&format!("v6:{port}"));

    // Control: the squatter really owns [::1]:port (a browser trying ::1 first reaches it), while
    // 127.0.0.1:port is free: what a 127.0.0.1-only server would have left open.
    let seen = oauth_mock::http_get(&format!("http://[::1]:{port}/auth/callback"), None).unwrap();
    assert_eq!(seen.body, "attacker!");
    assert!(TcpListener::bind(("127.0.0.1", port)).is_ok());

    // An exact port whose IPv6 half is taken is an error naming it.
    let err = start_recording(opts(&mock, PortChoice::Exact(port)))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "cannot bind the login callback server to [::1]:{port}"
        )),
        "{err}"
    );
    // The preferred port is given up for one free on both families.
    let (server, stored) = start_recording(opts(&mock, PortChoice::Preferred(port)))
        .await
        .unwrap();
    assert_ne!(server.port(), port);
    let p = server.port();
    assert!(
        TcpListener::bind(("::1", p)).is_err(),
        "[::1]:{p} must be ours"
    );
    assert!(
        TcpListener::bind(("127.0.0.1", p)).is_err(),
        "127.0.0.1:{p} must be ours"
    );
    let url = server.auth_url().to_string();
    let cb = tokio::task::spawn_blocking(move || browse_via_v6(&url))
        .await
        .unwrap();
    assert_eq!(cb.status, 200, "{}", cb.body);
    assert!(server.wait().await.is_success());
    assert_eq!(stored.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_of_another_user_do_not_lock_the_callback_out() {
    let mock = MockIssuer::start().unwrap();
    let port = free_port_on_both();
    let (server, stored) = start_recording(opts(&mock, PortChoice::Exact(port)))
        .await
        .unwrap();
    // 200 idle connections (more than the 64 kept), and more as fast as the squatter can
    // open them while the login runs.
    let (_sq, ready) = squatter(&format!("idle:{port}:200"));
    assert!(ready.contains("open=200"), "{ready}");
    let url = server.auth_url().to_string();
    let t0 = Instant::now();
    // No retry: the browser's connection (this process's uid, the login's) is never closed to
    // make room for another user's. The browser here preconnects, as browsers do, and sends
    // its request 300 ms later: without the uid rule the flood closes that connection every
    // time (checked by mutation); a CI run in 30 saw even a fresh one reset under load.
    let answer = tokio::task::spawn_blocking(move || {
        let (callback, _, _) = oauth_mock::authorize_only(&url).unwrap();
        let u = url::Url::parse(&callback).unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let req = format!(
            "GET {}?{} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n",
            u.path(),
            u.query().unwrap_or("")
        );
        c.write_all(req.as_bytes())
            .and_then(|()| {
                let mut answer = String::new();
                c.read_to_string(&mut answer).map(|_| answer)
            })
            .unwrap_or_else(|e| panic!("the browser's preconnected connection: {e}"))
    })
    .await
    .unwrap();
    let took = t0.elapsed();
    eprintln!(
        "callback answered {took:?} after the browser started (300 ms of it preconnected), with 200+ idle connections of uid 65534"
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Served at once, not after the idle connections' 10 s header timeout.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(server.wait().await.is_success());
    assert_eq!(stored.lock().unwrap().len(), 1);
}
