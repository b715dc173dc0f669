//! The network allow-list's filtering proxy (issue 18): an HTTP forward proxy and `CONNECT`
//! tunnel the launcher runs outside the sandbox on `127.0.0.1:<port>`. The command gets
//! `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` (both cases) pointing at it; the connect supervisor
//! ([`crate::unix_connect`]) lets inet connects reach this listener and nothing else, and the
//! notifying filter refuses non-stream inet sockets (UDP, raw DNS) and TCP Fast Open sends, so
//! ignoring the variables gets `EACCES`.
//!
//! Each request: the target host is checked against [`DomainRules`] (deny wins); the proxy
//! resolves the name itself and connects to an address it resolved, refusing non-public
//! addresses unless the host is an IP literal or `localhost` named exactly by an allow rule
//! (no DNS-rebinding route to local services). A refused request gets `403` with a body that
//! names the host and the rule. No TLS interception: `CONNECT` splices bytes. Plain-HTTP
//! requests are forwarded once with `Connection: close`. One log line per decision with `-v`.
//!
//! Only the launcher's own uid may use the proxy: a loopback port belongs to nobody, and another
//! local user who found it would reach the allowed hosts as this user (round-8 review). Each
//! accepted connection's peer socket owner is looked up with `NETLINK_SOCK_DIAG`
//! (`codex_privsep::PeerIdentifier`, the proxy's own peer check); another uid, or a lookup that
//! fails, gets `403` naming the uid and is closed (fail closed).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sandbox_policy::net_rules::{DomainRules, HostDecision, is_non_public, normalise_host};

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Connections served at once (each is a thread and two descriptors); beyond it, 503.
const MAX_CONNECTIONS: usize = 256;
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The listener, bound before the fork (its address goes into the command's environment and
/// the supervisor's rules); served after it.
#[derive(Debug)]
pub struct Bound {
    listener: TcpListener,
    pub addr: SocketAddr,
}

/// Bind `127.0.0.1:0`.
pub fn bind() -> io::Result<Bound> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let addr = listener.local_addr()?;
    Ok(Bound { listener, addr })
}

/// The variables the command gets.
pub fn proxy_env(addr: SocketAddr) -> Vec<(String, String)> {
    let url = format!("http://{addr}");
    let mut v = Vec::new();
    for k in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
        v.push((k.to_string(), url.clone()));
        v.push((k.to_ascii_lowercase(), url.clone()));
    }
    // an inherited NO_PROXY would send some hosts direct, where they fail: nothing bypasses
    v.push(("NO_PROXY".into(), String::new()));
    v.push(("no_proxy".into(), String::new()));
    v
}

/// Serve on threads (after the fork). `log`: print one line per decision (`-v`).
pub fn serve(bound: Bound, rules: DomainRules, log: Option<String>) -> io::Result<()> {
    let rules = Arc::new(rules);
    let log = Arc::new(log);
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    // the sandboxed command's sockets are ours: created by our uid (mapped to itself in the
    // sandbox's user namespace), so the kernel records this uid as their owner
    let peers = Arc::new(codex_privsep::PeerIdentifier::new());
    std::thread::Builder::new()
        .name("sandbox-net-proxy".into())
        .spawn(move || {
            let open = Arc::new(AtomicUsize::new(0));
            for conn in bound.listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                // another uid is answered here, without a thread: a flood of them holds no
                // thread and no descriptor for long (outside review r10 F-S5: ~1000 idle
                // connections of another user exhausted the launcher's descriptors)
                if let Err(why) = peer_is(&peers, &conn, me) {
                    refuse_peer(&mut conn, &why, log.as_deref());
                    continue;
                }
                if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                    let _ = respond(
                        &mut conn,
                        503,
                        "Service Unavailable",
                        "codex sandbox proxy: too many open connections\n",
                    );
                    continue;
                }
                open.fetch_add(1, Ordering::SeqCst);
                let (rules, log, count) = (rules.clone(), log.clone(), open.clone());
                let spawned = std::thread::Builder::new()
                    .name("sandbox-net-conn".into())
                    .spawn(move || {
                        handle(conn, &rules, log.as_deref());
                        count.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    // no thread: the connection was dropped with the closure
                    open.fetch_sub(1, Ordering::SeqCst);
                }
            }
        })?;
    Ok(())
}

/// Answer 403 and close, on the accepting thread without blocking: what the peer already sent
/// is read first (without waiting), or the unread bytes would turn the close into a reset that
/// can discard the answer.
fn refuse_peer(conn: &mut TcpStream, why: &str, log: Option<&str>) {
    if let Some(p) = log {
        eprintln!("{p}: network: proxy connection refused: {why}");
    }
    let _ = conn.set_nonblocking(true);
    let mut sink = [0u8; 4096];
    let mut seen = 0;
    while seen < MAX_HEAD {
        match conn.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen += n,
        }
    }
    let _ = respond(
        conn,
        403,
        "Forbidden",
        &format!("codex sandbox proxy: {why}\n"),
    );
    let _ = conn.shutdown(Shutdown::Write);
}

/// `Ok` when the peer socket of `conn` belongs to uid `me`.
fn peer_is(
    peers: &Result<codex_privsep::PeerIdentifier, codex_privsep::PeerError>,
    conn: &TcpStream,
    me: u32,
) -> Result<(), String> {
    let peers = peers
        .as_ref()
        .map_err(|e| format!("the peer check is unavailable ({e}): refusing every connection"))?;
    match peers.peer_of(conn) {
        Ok(cred) if cred.uid == me => Ok(()),
        Ok(cred) => Err(format!(
            "connection from uid {} refused: this proxy serves uid {me} only",
            cred.uid
        )),
        Err(e) => Err(format!("the connecting uid is unknown ({e})")),
    }
}

/// What the request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Connect {
        host: String,
        port: u16,
    },
    Http {
        host: String,
        port: u16,
        origin_form: String,
    },
}

fn handle(mut client: TcpStream, rules: &DomainRules, log: Option<&str>) {
    let _ = client.set_read_timeout(Some(HEAD_TIMEOUT));
    let (head, rest) = match read_head(&mut client) {
        Ok(h) => h,
        Err(_) => return,
    };
    let target = match parse_request(&head) {
        Ok(t) => t,
        Err(why) => {
            let _ = respond(
                &mut client,
                400,
                "Bad Request",
                &format!("codex sandbox proxy: {why}\n"),
            );
            return;
        }
    };
    let (host, port) = match &target {
        Target::Connect { host, port } | Target::Http { host, port, .. } => (host.clone(), *port),
    };
    let upstream = match decide_and_connect(rules, &host, port) {
        Ok((stream, rule)) => {
            if let Some(p) = log {
                eprintln!("{p}: network: allowed {host}:{port} (rule {rule:?})");
            }
            stream
        }
        Err(reason) => {
            if let Some(p) = log {
                eprintln!("{p}: network: refused {host}:{port}: {reason}");
            }
            let _ = respond(
                &mut client,
                403,
                "Forbidden",
                &format!("codex sandbox: network request to {host}:{port} refused: {reason}\n"),
            );
            return;
        }
    };
    let _ = client.set_read_timeout(None);
    let mut upstream = upstream;
    match target {
        Target::Connect { .. } => {
            if client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .is_err()
            {
                return;
            }
            if !rest.is_empty() && upstream.write_all(&rest).is_err() {
                return;
            }
        }
        Target::Http { origin_form, .. } => {
            let forwarded = rewrite_head(&head, &origin_form, &authority(&host, port));
            if upstream.write_all(&forwarded).is_err() || upstream.write_all(&rest).is_err() {
                return;
            }
        }
    }
    splice(client, upstream);
}

/// Copy both ways until both sides are done.
fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let t = std::thread::spawn(move || pump(a2, b2));
    pump(b, a);
    let _ = t.join();
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

fn respond(c: &mut TcpStream, code: u16, reason: &str, body: &str) -> io::Result<()> {
    write!(
        c,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The head (through the blank line) and whatever followed it in the same reads.
fn read_head(c: &mut TcpStream) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        let n = c.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// Parse the request line: `CONNECT host:port HTTP/1.x` or `METHOD http://host[:port]/path HTTP/1.x`.
fn parse_request(head: &[u8]) -> Result<Target, String> {
    let text = std::str::from_utf8(head).map_err(|_| "request head is not UTF-8".to_string())?;
    let line = text.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("malformed request line {line:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported version {version:?}"));
    }
    let has = |name: &str| {
        text.lines().skip(1).any(|l| {
            l.split(':')
                .next()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
        })
    };
    if has("transfer-encoding") && has("content-length") {
        return Err("both Transfer-Encoding and Content-Length: ambiguous framing".into());
    }
    if method == "CONNECT" {
        let (host, port) = split_authority(target, None)?;
        return Ok(Target::Connect { host, port });
    }
    if !method.bytes().all(|b| b.is_ascii_uppercase()) || method.is_empty() {
        return Err(format!("malformed method {method:?}"));
    }
    let Some(after) = target.strip_prefix("http://") else {
        return Err(if target.starts_with("https://") {
            "https:// goes through CONNECT".to_string()
        } else {
            format!("not a proxy request (target {target:?}; set HTTP_PROXY)")
        });
    };
    let (authority, path) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, "/"),
    };
    if authority.contains('@') {
        return Err("user info in the URL is not forwarded".into());
    }
    let (host, port) = split_authority(authority, Some(80))?;
    Ok(Target::Http {
        host,
        port,
        origin_form: path.to_string(),
    })
}

fn split_authority(a: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let (h, p) = if let Some(rest) = a.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("malformed authority {a:?}"))?;
        (h, after.strip_prefix(':'))
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    let port = match (p, default_port) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("bad port in {a:?}"))?,
        (None, Some(d)) => d,
        (None, None) => return Err(format!("CONNECT needs host:port, got {a:?}")),
    };
    let host = normalise_host(h).ok_or_else(|| format!("not a host name: {h:?}"))?;
    Ok((host, port))
}

/// The head with the request line in origin form, hop-by-hop proxy headers dropped and
/// `Connection: close`.
fn rewrite_head(head: &[u8], origin_form: &str, host: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("");
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or("GET");
    let _ = parts.next();
    let version = parts.next().unwrap_or("HTTP/1.1");
    let mut out = format!("{method} {origin_form} {version}\r\n");
    for l in lines {
        if l.is_empty() {
            continue;
        }
        let name = l
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        // `Host` is the checked authority, not what the client wrote (round-8 review F6: a
        // different Host reached another virtual host on the allowed address)
        if matches!(
            name.as_str(),
            "proxy-connection" | "proxy-authorization" | "connection" | "keep-alive" | "host"
        ) {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Host: {host}\r\nConnection: close\r\n\r\n"));
    out.into_bytes()
}

/// `host[:port]` for a `Host` header (IPv6 in brackets, port 80 left out).
fn authority(host: &str, port: u16) -> String {
    let h = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if port == 80 { h } else { format!("{h}:{port}") }
}

/// The rules, then resolution by the proxy, then the address check, then the connect.
/// `ip` (or the IPv4 address it maps) is one of `own`.
fn is_own(own: &[IpAddr], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    own.contains(&ip)
}

fn decide_and_connect(
    rules: &DomainRules,
    host: &str,
    port: u16,
) -> Result<(TcpStream, String), String> {
    let (rule, local_ok) = match rules.decide(host) {
        HostDecision::Allowed { rule, local_ok } => (rule, local_ok),
        HostDecision::Denied { reason } => return Err(reason),
    };
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("{host} does not resolve: {e}"))?
            .collect(),
    };
    // this machine's own addresses count as local even when public: a name that resolves to
    // one (DNS rebinding) would reach services listening on every interface (round-8 review);
    // looked up per request, since addresses change. A failed lookup refuses every name.
    let own = if local_ok {
        Vec::new()
    } else {
        crate::sys::interface_addresses()
            .map_err(|e| format!("this machine's addresses are unknown (getifaddrs: {e})"))?
    };
    let usable: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| local_ok || !(is_non_public(a.ip()) || is_own(&own, a.ip())))
        .collect();
    if usable.is_empty() {
        return Err(format!(
            "{host} resolves only to non-public addresses or this machine's own ({}); name the IP or localhost exactly in allowed_domains to reach a local service",
            addrs
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut last = String::new();
    for a in usable {
        match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
            Ok(s) => return Ok((s, rule)),
            Err(e) => last = format!("connect {a}: {e}"),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse_or_are_refused_with_a_reason() {
        assert_eq!(
            parse_request(b"CONNECT PyPI.org:443 HTTP/1.1\r\nHost: pypi.org\r\n\r\n"),
            Ok(Target::Connect {
                host: "pypi.org".into(),
                port: 443
            })
        );
        assert_eq!(
            parse_request(b"GET http://example.com/a?b HTTP/1.1\r\n\r\n"),
            Ok(Target::Http {
                host: "example.com".into(),
                port: 80,
                origin_form: "/a?b".into()
            })
        );
        assert_eq!(
            parse_request(b"GET http://[::1]:8080 HTTP/1.1\r\n\r\n"),
            Ok(Target::Http {
                host: "::1".into(),
                port: 8080,
                origin_form: "/".into()
            })
        );
        for bad in [
            &b"GET /x HTTP/1.1\r\n\r\n"[..],
            b"GET https://x/ HTTP/1.1\r\n\r\n",
            b"CONNECT host HTTP/1.1\r\n\r\n",
            b"CONNECT host:0 HTTP/1.1\r\n\r\n",
            b"GET http://u:p@host/ HTTP/1.1\r\n\r\n",
            b"GET http://ho st/ HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                parse_request(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn the_forwarded_head_is_origin_form_without_proxy_headers() {
        let h = b"GET http://e.com/p HTTP/1.1\r\nHost: e.com\r\nProxy-Authorization: x\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n";
        let out = String::from_utf8(rewrite_head(h, "/p", "e.com")).unwrap();
        assert_eq!(
            out,
            "GET /p HTTP/1.1\r\nAccept: */*\r\nHost: e.com\r\nConnection: close\r\n\r\n"
        );
        // a Host the client wrote is replaced by the checked authority
        let h = b"GET http://allowed.test:8080/ HTTP/1.1\r\nHost: other.test\r\n\r\n";
        let out =
            String::from_utf8(rewrite_head(h, "/", &authority("allowed.test", 8080))).unwrap();
        assert!(out.contains("Host: allowed.test:8080\r\n") && !out.contains("other.test"));
        assert_eq!(authority("::1", 80), "[::1]");
        assert!(
            parse_request(b"POST http://e.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")
                .is_err()
        );
    }
}
