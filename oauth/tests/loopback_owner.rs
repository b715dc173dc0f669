//! Outside review r37 F1: a loopback `http://` OAuth endpoint is served by whoever listens on its
//! port first. Another local user listening on `127.0.0.1:P` of a loopback issuer received the
//! token request (the code and the PKCE verifier), relayed it to the real issuer and kept the
//! tokens. Now a plain-http connection is used only when its server socket belongs to this
//! user or root (sock_diag), and nothing is written on it before.
//!
//! The attacker is `/usr/bin/python3` run as uid 65534 (fork, setgid, setuid, exec): a server
//! that reports how many bytes it received. Control: the same server run as this user answers
//! and the request goes through.

// Test code: a failed set-up step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use codex_oauth::HttpClient;

/// A one-connection HTTP server on `127.0.0.1`: prints its port, then, after the connection,
/// `received N` (the bytes of the request it read within 2 s).
const SERVER: &str = r#"
import socket, sys
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4)
print(l.getsockname()[1], flush=True)
c, _ = l.accept(); c.settimeout(2)
got = b""
try:
    while b"\r\n\r\n" not in got or len(got) < got.find(b"\r\n\r\n") + 4 + 20:
        b = c.recv(65536)
        if not b: break
        got += b
except Exception: pass
body = b'{"access_token":"t","token_type":"Bearer"}'
c.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
c.close()
print("received", len(got), flush=True)
"#;

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(uid: Option<u32>) -> Server {
        let mut c = Command::new("/usr/bin/python3");
        c.args(["-c", SERVER])
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if let Some(uid) = uid {
            c.uid(uid).gid(uid);
        }
        let mut child = c
            .spawn()
            .expect("cannot run /usr/bin/python3: the test cannot run its check");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the server's port");
        Server { child, port }
    }

    /// What the server printed after its connection (`received N`).
    fn report(mut self) -> String {
        let mut rest = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut rest)
            .unwrap();
        let _ = self.child.wait();
        rest.trim().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post(port: u16) -> Result<u16, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = HttpClient::new(false).unwrap();
        client
            .post_form(
                &format!("http://127.0.0.1:{port}/oauth/token"),
                &[
                    ("code", "victim-code"),
                    ("code_verifier", "victim-verifier"),
                ],
            )
            .await
            .map(|a| a.status)
            .map_err(|e| e.to_string())
    })
}

#[test]
fn a_loopback_endpoint_served_by_another_user_gets_nothing() {
    assert_eq!(
        unsafe_free_euid(),
        0,
        "runs as root (CI does): the attacker must be another uid"
    );
    let attacker = Server::start(Some(65534));
    let err = post(attacker.port).expect_err("the request went to uid 65534's server");
    assert!(
        err.contains("uid 65534") && err.contains("not sent"),
        "{err}"
    );
    assert_eq!(attacker.report(), "received 0");
    // control: the same server run by this user gets the request and answers it
    let own = Server::start(None);
    assert_eq!(post(own.port), Ok(200));
    let report = own.report();
    assert!(
        report.starts_with("received ") && report != "received 0",
        "{report}"
    );
}

/// The effective uid, from `/proc/self/status` (no unsafe in tests).
fn unsafe_free_euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap()
}
