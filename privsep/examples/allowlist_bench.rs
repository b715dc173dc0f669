//! End-to-end cost of the allow-list in the real proxy: requests/s through `responses-api-proxy`
//! without an allow-list and with `--allow-user root` (a sock_diag lookup per TCP connection),
//! side by side in one run. Run as root (the proxy drops to `nobody`; the client runs as root):
//!
//! `cargo build --release -p responses-api-proxy && cargo run --release -p codex-privsep --example allowlist_bench`
//!
//! Both proxies run at once against the same in-process upstream (HTTP/1.1 keep-alive, a small
//! JSON answer), measured in alternating rounds so machine load hits both alike. Two client
//! shapes: a new connection per request (worst case: one lookup per request) and keep-alive
//! connections (one lookup per connection). Options: `--secs N` per round (default 1),
//! `--rounds N` (default 6), `--clients N` concurrent clients (default 4).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]
// A benchmark binary: panics on set-up failure are its error report.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const KEY: &str = "sk-bench-allowlist-0123456789";
const BODY: &[u8] = br#"{"model":"gpt-x","input":"hello"}"#;

fn flag(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn proxy_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/release/examples/allowlist_bench -> target/release/responses-api-proxy
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .unwrap()
        .join("responses-api-proxy");
    assert!(
        bin.is_file(),
        "{} not found: run `cargo build --release -p responses-api-proxy` first",
        bin.display()
    );
    bin
}

/// Reads one HTTP/1.1 message head and its Content-Length body; false at EOF.
fn read_message(r: &mut BufReader<TcpStream>) -> bool {
    let mut len = 0usize;
    let mut line = String::new();
    let mut first = true;
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        if line == "\r\n" {
            break;
        }
        if first {
            first = false;
            continue;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).is_ok()
}

/// Keep-alive upstream answering every request with a small JSON body.
fn upstream() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 27\r\n\r\n{\"id\":\"resp_1\",\"ok\":true}\n\n";
                while read_message(&mut r) {
                    if w.write_all(answer).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

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

fn start_proxy(upstream: u16, extra: &[&str]) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let info = dir.path().join("info.json");
    let mut child = Command::new(proxy_bin())
        .args([
            "--upstream-url",
            &format!("http://127.0.0.1:{upstream}/v1/responses"),
        ])
        .args(["--threads", "2", "--log-format", "json"])
        .args(extra)
        .arg("--server-info")
        .arg(&info)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    // Owned by `Proxy` from here on, so every path (panics included) kills and waits for it.
    let mut p = Proxy {
        child,
        port: 0,
        _dir: dir,
    };
    stdin.unwrap().write_all(KEY.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(t) = std::fs::read_to_string(&info) {
            if t.ends_with('\n') {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                p.port = v["port"].as_u64().unwrap() as u16;
                // Serving starts after confinement; wait until a request succeeds.
                while !one_request(p.port, None) {
                    assert!(Instant::now() < deadline, "proxy not serving");
                    std::thread::sleep(Duration::from_millis(20));
                }
                return p;
            }
        }
        assert!(Instant::now() < deadline, "proxy did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn request_bytes(port: u16, close: bool) -> Vec<u8> {
    let mut req = format!(
        "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n",
        BODY.len(),
        if close { "connection: close\r\n" } else { "" }
    )
    .into_bytes();
    req.extend_from_slice(BODY);
    req
}

/// One request; on a fresh connection (`conn: None`, closed after) or a kept-alive one.
fn one_request(port: u16, conn: Option<&mut BufReader<TcpStream>>) -> bool {
    match conn {
        None => {
            let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                return false;
            };
            let _ = s.set_nodelay(true);
            if s.write_all(&request_bytes(port, true)).is_err() {
                return false;
            }
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out);
            out.starts_with(b"HTTP/1.1 200")
        }
        Some(r) => {
            let req = request_bytes(port, false);
            if r.get_mut().write_all(&req).is_err() {
                return false;
            }
            let mut status = String::new();
            if r.read_line(&mut status).unwrap_or(0) == 0 {
                return false;
            }
            // Rest of the head and the body.
            let mut len = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return false;
                }
                if line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            r.read_exact(&mut body).is_ok() && status.starts_with("HTTP/1.1 200")
        }
    }
}

/// Requests completed in `secs` by `clients` threads.
fn round(port: u16, clients: u64, secs: u64, keep_alive: bool) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut conn = keep_alive.then(|| {
                    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                    s.set_nodelay(true).unwrap();
                    BufReader::new(s)
                });
                while !stop.load(Ordering::Relaxed) {
                    assert!(one_request(port, conn.as_mut()), "request failed");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for th in threads {
        th.join().unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let secs = flag("--secs", 1);
    let rounds = flag("--rounds", 6);
    let clients = flag("--clients", 4);
    let up = upstream();
    let without = start_proxy(up, &[]);
    let with = start_proxy(up, &["--allow-user", "root"]);
    println!(
        "responses-api-proxy, {clients} clients, {rounds} x {secs} s rounds, alternating; \
         upstream: in-process keep-alive HTTP/1.1"
    );
    println!(
        "{:<34} {:>14} {:>14} {:>7}",
        "client shape", "without req/s", "allow-list", "ratio"
    );
    for keep_alive in [false, true] {
        let (mut a, mut b) = (0.0, 0.0);
        // Warm-up (pools, caches).
        round(without.port, clients, 1, keep_alive);
        round(with.port, clients, 1, keep_alive);
        for _ in 0..rounds {
            a += round(without.port, clients, secs, keep_alive);
            b += round(with.port, clients, secs, keep_alive);
        }
        let (a, b) = (a / rounds as f64, b / rounds as f64);
        let shape = if keep_alive {
            "keep-alive (lookup per connection)"
        } else {
            "new connection per request"
        };
        println!("{shape:<34} {a:>14.0} {b:>14.0} {:>7.3}", b / a);
    }
    println!("required: ratio >= 0.95");
}
