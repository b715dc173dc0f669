//! The admin socket (`--admin-socket PATH`): key rotation and metrics for the administrator,
//! on a unix socket only root or `--admin-group` may use.
//!
//! **Who may connect.** The socket is bound while root, before the privilege drop: owned by
//! root, mode 0600, or 0660 with group `--admin-group` (so the file's permissions already keep
//! other users out), and every connection's `SO_PEERCRED` is checked as well (the boundary that
//! holds whatever the file's mode becomes): uid 0, the group as primary gid, or a member of the
//! group at start-up. Anyone else gets `403`; what it sent is drained unparsed for at most a
//! second and the connection closed.
//!
//! **What it speaks.** HTTP/1.x, one request per connection, `Connection: close`:
//! - `GET /metrics`: the Prometheus text format ([`crate::metrics`]); works with
//!   `curl --unix-socket PATH http://admin/metrics` and any scraper that can reach a unix socket;
//! - `POST /rotate-key`: the body is the new key (one line, a line ending allowed, nothing
//!   after it, as in a key file; `Content-Length` or up to end of input); `responses-api-proxy rotate-key --admin-socket PATH` sends it from its stdin. The
//!   request head is read one byte per `read(2)` (a few hundred bytes; no byte of the body can
//!   land in an ordinary buffer) and the body straight into a locked key page
//!   ([`crate::rotation::KeyPages::load`]). Answers `200` with the rotation count, `422` with
//!   why the key was refused (never a byte of it), `503` when every key page is still in use.
//!
//! A refused peer is answered on the event loop. An administrator's connection is served on a
//! blocking thread (the key read is synchronous raw `read(2)`; at most
//! [`MAX_ADMIN_CONNECTIONS`] at once, more get 503), with a 5 s timeout per read and 10 s for
//! the whole head.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secure_main::{FdReader, RawRead};
use tokio::sync::watch;

pub use crate::cli::{AdminArgs, RotateKeyArgs};
use crate::proxy::ProxyState;
use crate::rotation::{RotateError, Rotator};

/// Longest wait for an admin client's bytes.
pub const ADMIN_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Admin connections served at once (each on a blocking thread); more get 503.
pub const MAX_ADMIN_CONNECTIONS: usize = 4;
/// Longest an admin client may take to send its request head, in total.
pub const ADMIN_HEAD_DEADLINE: Duration = Duration::from_secs(10);
/// Longest request head accepted on the admin socket.
pub const MAX_ADMIN_HEAD: usize = 4096;

/// `--admin-socket` / `--admin-group` are unusable.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("--admin-group: {0}")]
    Group(#[source] codex_privsep::ResolveError),
    #[error("--admin-group: {0}")]
    Members(#[source] codex_privsep::AllowListError),
    #[error("--admin-socket: {0}")]
    Bind(#[source] codex_privsep::UnixSocketError),
    #[error(
        "--admin-socket {}: its directory {} is owned by uid {owner} with mode {mode:04o}: only a directory that root owns and no one else may write holds the admin socket (another user could listen there first and receive the next rotate-key)",
        path.display(),
        dir.display()
    )]
    UnsafeDirectory {
        path: PathBuf,
        dir: PathBuf,
        owner: u32,
        mode: u32,
    },
    #[error("--admin-socket {}: {source}", path.display())]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Who may use the admin socket: root, and the admin group (primary gid or member at start).
#[derive(Debug, Clone)]
pub struct AdminAccess {
    gid: Option<u32>,
    members: Option<codex_privsep::AllowList>,
}

impl AdminAccess {
    /// Whether a peer with these ids is an administrator.
    pub fn allows(&self, uid: u32, gid: Option<u32>) -> bool {
        uid == 0
            || (self.gid.is_some() && gid == self.gid)
            || self.members.as_ref().is_some_and(|m| m.allows(uid))
    }
}

/// The bound admin socket (step 2, while root) and who may use it.
pub struct AdminListener {
    listener: std::os::unix::net::UnixListener,
    access: AdminAccess,
    path: PathBuf,
}

impl AdminListener {
    /// Binds `--admin-socket` if given (root-owned, 0600, or 0660 with the admin group).
    pub fn bind(args: &AdminArgs) -> Result<Option<Self>, AdminError> {
        let Some(path) = &args.admin_socket else {
            return Ok(None);
        };
        let gid = args
            .admin_group
            .as_deref()
            .map(codex_privsep::users::resolve_gid)
            .transpose()
            .map_err(AdminError::Group)?;
        let members = match &args.admin_group {
            Some(g) => Some(
                codex_privsep::AllowList::resolve(Vec::<String>::new(), [g.as_str()])
                    .map_err(AdminError::Members)?,
            ),
            None => None,
        };
        // Stricter than the client listeners' rule (a sticky `/tmp` passes there): the
        // directory must be root's and writable by no one else, or another local user could
        // bind the name first (the proxy then refuses to start) and receive the administrator's
        // next `rotate-key` (outside review r15 F3).
        {
            use std::os::unix::fs::MetadataExt;
            let dir = path.parent().unwrap_or(std::path::Path::new("/"));
            let md = std::fs::metadata(dir).map_err(|source| AdminError::Directory {
                path: path.clone(),
                source,
            })?;
            if md.uid() != 0 || md.mode() & 0o022 != 0 {
                return Err(AdminError::UnsafeDirectory {
                    path: path.clone(),
                    dir: dir.to_path_buf(),
                    owner: md.uid(),
                    mode: md.mode() & 0o7777,
                });
            }
        }
        let listener = codex_privsep::bind_unix_listener(&codex_privsep::UnixSocketSpec {
            path: path.clone(),
            mode: if gid.is_some() { 0o660 } else { 0o600 },
            group: gid,
        })
        .map_err(AdminError::Bind)?;
        tracing::info!(path = %path.display(), admin_gid = gid, "admin socket");
        Ok(Some(AdminListener {
            listener,
            access: AdminAccess { gid, members },
            path: path.clone(),
        }))
    }

    /// Serves the admin socket until shutdown (on the current runtime).
    pub fn spawn(
        self,
        state: Arc<ProxyState>,
        rotator: Arc<Rotator>,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        self.listener.set_nonblocking(true)?;
        let listener = tokio::net::UnixListener::from_std(self.listener)?;
        let access = self.access;
        let path = self.path;
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_ADMIN_CONNECTIONS));
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = async { let _ = shutdown.wait_for(|v| *v).await; } => break,
                    a = listener.accept() => match a {
                        Ok((s, _)) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, "admin socket: accept failed");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    },
                };
                let cred = codex_privsep::peer_cred_unix(stream.as_fd());
                match cred {
                    Ok(c) if access.allows(c.uid, c.gid) => {
                        // At most MAX_ADMIN_CONNECTIONS at once, each on a blocking thread.
                        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                            let _ = stream.try_write(&answer(
                                503,
                                "text/plain",
                                b"too many admin connections at once\n",
                            ));
                            continue;
                        };
                        let Ok(stream) = stream.into_std() else {
                            continue;
                        };
                        let (state, rotator) = (state.clone(), rotator.clone());
                        tokio::task::spawn_blocking(move || {
                            serve_one(stream, c.uid, &state, &rotator);
                            drop(permit);
                        });
                    }
                    // Refused on the event loop, no thread spent on it.
                    Ok(c) => {
                        tracing::warn!(
                            uid = c.uid,
                            gid = c.gid,
                            socket = %path.display(),
                            "admin socket: refused a peer that is neither root nor in the admin group"
                        );
                        crate::metrics::METRICS.admin_refused();
                        tokio::spawn(refuse(stream));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "admin socket: peer not identified; closed");
                    }
                }
            }
        });
        Ok(())
    }
}

/// Answers a refused peer with 403 and closes. What it sent is read and dropped (never parsed)
/// for at most a second, so that a client which writes its request after the answer left still
/// reads the answer (closing with its bytes unread would make its write fail first).
async fn refuse(mut stream: tokio::net::UnixStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let msg = answer(
        403,
        "text/plain",
        b"only root and the admin group may use this socket\n",
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        if stream.write_all(&msg).await.is_ok() {
            let _ = stream.shutdown().await;
            let mut sink = [0u8; 512];
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
    })
    .await;
}

/// One admin request.
fn serve_one(stream: UnixStream, uid: u32, state: &ProxyState, rotator: &Rotator) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(ADMIN_READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(ADMIN_READ_TIMEOUT));
    let head = match read_head(&stream) {
        Ok(h) => h,
        Err(why) => {
            let _ = respond(&stream, 400, "text/plain", format!("{why}\n").as_bytes());
            return;
        }
    };
    match (head.method.as_str(), head.path.as_str()) {
        ("GET", "/metrics") => {
            let rotation = crate::metrics::RotationStats {
                rotations: rotator.rotations(),
                failures: rotator.failures(),
                pages_in_use: rotator.pages().in_use(),
                pages_wiped: rotator.pages().wiped(),
            };
            let budgets = state.governor.as_deref().map(|g| {
                // a uid whose only requests are still in flight (a first stream, WebSocket
                // responses read on after their client left: r36 note) shows its
                // reservation too
                let mut uids = crate::metrics::METRICS.seen_uids();
                uids.extend(g.governor.reserving_uids());
                uids.sort_unstable();
                uids.dedup();
                budgets_left(g, &uids)
            });
            let body = crate::metrics::render(&rotation, budgets.as_deref());
            let _ = respond(
                &stream,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
            );
        }
        ("POST", "/rotate-key") => {
            let mut body = Limited {
                inner: FdReader::new(stream.as_fd()),
                left: head.content_length,
            };
            match rotator.rotate_from_reader(&state.key, &mut body) {
                Ok(done) => {
                    tracing::info!(
                        by_uid = uid,
                        rotations = done.rotations,
                        pages_in_use = done.pages_in_use,
                        "key rotated (admin socket): new requests use the new key; requests in flight finish with theirs"
                    );
                    let msg = serde_json::json!({
                        "rotated": true,
                        "rotations": done.rotations,
                        "key_pages_in_use": done.pages_in_use,
                    });
                    let _ = respond(&stream, 200, "application/json", msg.to_string().as_bytes());
                }
                Err(e) => {
                    tracing::warn!(by_uid = uid, error = %e, "key rotation refused (admin socket)");
                    let status = match &e {
                        RotateError::Admin(crate::key::KeyError::PagesInUse { .. }) => 503,
                        RotateError::Admin(crate::key::KeyError::Read { .. }) => 400,
                        _ => 422,
                    };
                    let msg = serde_json::json!({"rotated": false, "error": e.to_string()});
                    let _ = respond(
                        &stream,
                        status,
                        "application/json",
                        msg.to_string().as_bytes(),
                    );
                }
            }
        }
        _ => {
            let _ = respond(
                &stream,
                404,
                "text/plain",
                b"the admin socket serves GET /metrics and POST /rotate-key\n",
            );
        }
    }
}

/// What is left of every budget the rule of each uid in `uids` sets, today and this month, and
/// what the uid's requests in flight reserve against it (the same reservation counts against
/// the day and the month).
fn budgets_left(g: &crate::governed::Governed, uids: &[u32]) -> Vec<crate::metrics::BudgetLeft> {
    let now = codex_proxy_governance::clock::now_ms();
    let policy = g.governor.policy();
    let mut out = Vec::new();
    for &uid in uids {
        let rule = policy.rule_for(uid);
        let (today, month) = g.governor.spent(uid, now);
        let held = g.governor.reserved(uid);
        for (period, budget, spent) in [("day", &rule.day, today), ("month", &rule.month, month)] {
            let mut push = |kind: &'static str, left: f64, reserved: f64| {
                out.push(crate::metrics::BudgetLeft {
                    uid,
                    period,
                    kind,
                    left,
                    reserved,
                });
            };
            let tokens = |limit: u64, spent: u64, held: u64| {
                (limit.saturating_sub(spent) as f64, held as f64)
            };
            if let Some(s) = &budget.input_tokens {
                let (left, r) = tokens(s.value, spent.usage.input_tokens, held.usage.input_tokens);
                push("input", left, r);
            }
            if let Some(s) = &budget.cached_input_tokens {
                let (left, r) = tokens(
                    s.value,
                    spent.usage.cached_input_tokens,
                    held.usage.cached_input_tokens,
                );
                push("cached_input", left, r);
            }
            if let Some(s) = &budget.output_tokens {
                let (left, r) =
                    tokens(s.value, spent.usage.output_tokens, held.usage.output_tokens);
                push("output", left, r);
            }
            if let Some(s) = &budget.cost {
                push("cost", (s.value - spent.cost).max(0.0), held.cost);
            }
        }
    }
    out
}

/// The parts of an admin request head that matter.
struct Head {
    method: String,
    path: String,
    /// `Content-Length`, if given.
    content_length: Option<u64>,
}

/// Reads the request head one byte per `read(2)`, so nothing after it (the key) is consumed.
fn read_head(stream: &UnixStream) -> Result<Head, String> {
    let mut r = FdReader::new(stream.as_fd());
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    let started = std::time::Instant::now();
    loop {
        if started.elapsed() > ADMIN_HEAD_DEADLINE {
            return Err(format!(
                "request head not complete within {} s",
                ADMIN_HEAD_DEADLINE.as_secs()
            ));
        }
        match r.read_raw(&mut byte) {
            Ok(0) => return Err("the request ended inside its head".into()),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(format!("reading the request head: {e}")),
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
        if head.len() > MAX_ADMIN_HEAD {
            return Err(format!("request head longer than {MAX_ADMIN_HEAD} bytes"));
        }
    }
    let text = std::str::from_utf8(&head).map_err(|_| "request head is not UTF-8".to_string())?;
    let mut lines = text.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let (Some(method), Some(target)) = (first.next(), first.next()) else {
        return Err("malformed request line".into());
    };
    let path = target.split('?').next().unwrap_or("").to_string();
    let mut content_length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                content_length = Some(
                    value
                        .trim()
                        .parse::<u64>()
                        .map_err(|_| "bad Content-Length".to_string())?,
                );
            } else if name.trim().eq_ignore_ascii_case("transfer-encoding") {
                return Err("chunked bodies are not accepted here: send Content-Length".into());
            }
        }
    }
    Ok(Head {
        method: method.to_string(),
        path,
        content_length,
    })
}

/// A reader that ends after `left` bytes (the body's `Content-Length`).
struct Limited<R> {
    inner: R,
    left: Option<u64>,
}

impl<R: RawRead> RawRead for Limited<R> {
    fn read_raw(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = match self.left {
            Some(0) => return Ok(0),
            Some(n) => buf.len().min(usize::try_from(n).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        let n = self.inner.read_raw(&mut buf[..want])?;
        if let Some(left) = &mut self.left {
            *left -= n as u64;
        }
        Ok(n)
    }
}

fn respond(
    mut stream: &UnixStream,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    stream.write_all(&answer(status, content_type, body))?;
    stream.flush()
}

/// A whole HTTP/1.1 response with `Connection: close`.
fn answer(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// `rotate-key` failed; [`RotateKeyError::exit_code`] is documented in the README.
#[derive(Debug, thiserror::Error)]
pub enum RotateKeyError {
    #[error("{0}")]
    Key(#[from] crate::key_source::KeySourceError),
    #[error("cannot connect to the admin socket {}: {source}", path.display())]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("admin socket {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the proxy refused: {status} {message}")]
    Refused { status: u16, message: String },
}

impl RotateKeyError {
    /// 2: the socket cannot be reached or refused us; 3: the key (on stdin, or as the proxy
    /// judged it); 1: anything else (every key page busy, I/O).
    pub fn exit_code(&self) -> u8 {
        match self {
            RotateKeyError::Key(_) => 3,
            RotateKeyError::Connect { .. } => 2,
            RotateKeyError::Refused { status: 403, .. } => 2,
            RotateKeyError::Refused {
                status: 400 | 422, ..
            } => 3,
            _ => 1,
        }
    }
}

/// Runs `rotate-key`; returns the proxy's answer.
pub fn rotate_key(a: &RotateKeyArgs) -> Result<String, RotateKeyError> {
    use std::io::{IsTerminal, Read};
    if std::io::stdin().is_terminal() {
        return Err(crate::key_source::KeySourceError::Terminal.into());
    }
    // The key alone on stdin, as in a key file: a second line is refused here, before the
    // socket is even reached (outside review r15 F7), and by the proxy too.
    let key = secure_main::read_secret_alone(
        &mut FdReader::stdin(),
        &crate::key::read_options(secure_main::LockPolicy::AllowDegraded),
    )
    .map_err(|e| crate::key_source::KeySourceError::Read {
        source_name: crate::key_source::KeySource::Stdin,
        error: e.into(),
    })?;
    let io = |source| RotateKeyError::Io {
        path: a.admin_socket.clone(),
        source,
    };
    let mut s = UnixStream::connect(&a.admin_socket).map_err(|source| RotateKeyError::Connect {
        path: a.admin_socket.clone(),
        source,
    })?;
    // The proxy listens on its admin socket as root (bound before the privilege drop): a
    // socket served by anyone else is someone waiting for the key (outside review r15 F3).
    {
        use std::os::fd::AsFd;
        let served_by = codex_privsep::peer_cred_unix(s.as_fd())
            .map(|c| c.uid)
            .map_err(|e| RotateKeyError::Connect {
                path: a.admin_socket.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        if served_by != 0 {
            return Err(RotateKeyError::Connect {
                path: a.admin_socket.clone(),
                source: std::io::Error::other(format!(
                    "it is served by uid {served_by}, not by root: the key was not sent"
                )),
            });
        }
    }
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    // The key without its `Bearer ` prefix, written from the locked buffer.
    let secret = &key.expose_secret()[crate::key::KEY_PREFIX.len()..];
    let head = format!(
        "POST /rotate-key HTTP/1.1\r\nhost: admin\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        secret.len()
    );
    // A peer refused before reading gets its 403 anyway: the write may fail with EPIPE first.
    let sent = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(secret));
    drop(key);
    let mut answer = Vec::new();
    let read = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok());
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
        .unwrap_or_default();
    match (status, sent, read) {
        (Some(200), _, _) => Ok(body),
        (Some(status), _, _) => Err(RotateKeyError::Refused {
            status,
            message: body,
        }),
        (None, Err(e), _) | (None, Ok(()), Err(e)) => Err(io(e)),
        (None, Ok(()), Ok(_)) => Err(io(std::io::Error::other("no answer"))),
    }
}
