//! [`ScriptedServer`]: a plain-HTTP server on `127.0.0.1` that answers each path from a script,
//! for testing clients against bad answers (HTML, malformed JSON, dropped connections).
//!
//! Each path has a list of [`Reply`]s served in order; the last one repeats. Unknown paths get
//! `404 {"error":"not_found"}`. Every request is recorded. One connection at a time, one request
//! per connection (`Connection: close`), on its own thread; dropping the server stops it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A JSON answer with this status.
    Json(u16, serde_json::Value),
    /// Any answer.
    Raw {
        status: u16,
        content_type: String,
        body: String,
    },
    /// Read the request, then close the connection without answering (a network drop).
    Drop,
}

impl Reply {
    /// `text/html` with this status and body.
    pub fn html(status: u16, body: &str) -> Self {
        Self::Raw {
            status,
            content_type: "text/html; charset=utf-8".to_string(),
            body: body.to_string(),
        }
    }
}

/// A recorded request.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub body: String,
}

impl Recorded {
    /// The body as form fields.
    pub fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }
}

type Script = HashMap<String, (Vec<Reply>, usize)>;

/// The running server.
pub struct ScriptedServer {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ScriptedServer {
    /// Start with `(path, replies)` pairs.
    pub fn start(routes: Vec<(&str, Vec<Reply>)>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let script: Script = routes
            .into_iter()
            .map(|(p, r)| (p.to_string(), (r, 0)))
            .collect();
        let script = Arc::new(Mutex::new(script));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (script, requests, stop) = (script.clone(), requests.clone(), stop.clone());
            std::thread::Builder::new()
                .name("scripted-http".to_string())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        if let Ok(conn) = conn {
                            let _ = serve_one(conn, &script, &requests);
                        }
                    }
                })?
        };
        Ok(Self {
            addr,
            script,
            requests,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replace the replies for `path`.
    pub fn set(&self, path: &str, replies: Vec<Reply>) {
        self.script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_string(), (replies, 0));
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Requests to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(
    conn: TcpStream,
    script: &Mutex<Script>,
    requests: &Mutex<Vec<Recorded>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let path = target.split('?').next().unwrap_or("").to_string();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len.min(1 << 20)];
    reader.read_exact(&mut body)?;
    requests
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Recorded {
            method,
            path: path.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    let reply = {
        let mut s = script.lock().unwrap_or_else(|p| p.into_inner());
        match s.get_mut(&path) {
            Some((replies, next)) if !replies.is_empty() => {
                let i = (*next).min(replies.len() - 1);
                *next += 1;
                replies[i].clone()
            }
            _ => Reply::Json(404, serde_json::json!({"error": "not_found"})),
        }
    };
    let (status, ct, body) = match reply {
        Reply::Drop => return Ok(()),
        Reply::Json(s, v) => (s, "application/json".to_string(), v.to_string()),
        Reply::Raw {
            status,
            content_type,
            body,
        } => (status, content_type, body),
    };
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}
