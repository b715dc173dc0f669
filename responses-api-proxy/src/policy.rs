//! What the proxy forwards, as data: the header table and the request admission rules.
//!
//! Every rule has a one-line reason; the README prints the same table.

use http::header::{HeaderMap, HeaderName};
use http::{Method, Request, StatusCode};

/// Which way a header travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to upstream.
    Request,
    /// Upstream to client.
    Response,
    Both,
}

/// How a rule matches a header name (names are lower-case in `http`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameMatch {
    Exact(&'static str),
    Prefix(&'static str),
}

/// One header that is never forwarded.
#[derive(Clone, Copy, Debug)]
pub struct HeaderRule {
    pub name: NameMatch,
    pub direction: Direction,
    pub reason: &'static str,
}

const fn drop(name: &'static str, direction: Direction, reason: &'static str) -> HeaderRule {
    HeaderRule {
        name: NameMatch::Exact(name),
        direction,
        reason,
    }
}

/// Headers that are never forwarded. Everything else is end-to-end and mirrored unchanged.
/// Besides this table: every header named in the message's own `Connection` header is dropped
/// (RFC 9110 §7.6.1), `Host` is set to the upstream URL's authority and `Authorization` to the
/// proxy's key (a sensitive header value).
pub const HEADER_RULES: &[HeaderRule] = &[
    drop(
        "authorization",
        Direction::Request,
        "a client's own credential never reaches upstream; the proxy injects its key instead",
    ),
    drop(
        "proxy-authorization",
        Direction::Request,
        "credentials for a proxy hop are not the upstream's business",
    ),
    drop(
        "cookie",
        Direction::Request,
        "a client's cookies are its own; upstream sees one identity, the key's",
    ),
    drop(
        "openai-organization",
        Direction::Request,
        "the key's owner decides which organization pays; a local user must not pick another \
         one the key can reach (outside review r18 F9)",
    ),
    drop(
        "openai-project",
        Direction::Request,
        "the key's owner decides which project pays; a local user must not pick another one the \
         key can reach (outside review r18 F9)",
    ),
    drop(
        "set-cookie",
        Direction::Response,
        "cookies would be shared by every local user of the proxy and are never sent back",
    ),
    drop(
        "host",
        Direction::Request,
        "names the proxy, not the upstream; rewritten to the upstream URL's authority",
    ),
    drop(
        "connection",
        Direction::Both,
        "hop-by-hop (RFC 9110 §7.6.1); the headers it lists are dropped too",
    ),
    drop(
        "keep-alive",
        Direction::Both,
        "hop-by-hop: connection reuse is decided per hop",
    ),
    drop(
        "te",
        Direction::Both,
        "hop-by-hop: transfer codings are negotiated per hop",
    ),
    drop(
        "trailer",
        Direction::Both,
        "hop-by-hop: announces trailers of this hop's framing",
    ),
    drop(
        "transfer-encoding",
        Direction::Both,
        "hop-by-hop framing; each hop frames the body itself",
    ),
    drop(
        "upgrade",
        Direction::Both,
        "hop-by-hop: no protocol switches (WebSocket, h2c) through the proxy",
    ),
    HeaderRule {
        name: NameMatch::Prefix("proxy-"),
        direction: Direction::Both,
        reason: "proxy-* headers (Proxy-Connection, Proxy-Authenticate, ...) concern a proxy hop",
    },
];

/// Whether header `name` travelling in `direction` is never forwarded.
pub fn is_dropped(name: &HeaderName, direction: Direction) -> bool {
    let name = name.as_str();
    HEADER_RULES.iter().any(|rule| {
        (rule.direction == direction || rule.direction == Direction::Both)
            && match rule.name {
                NameMatch::Exact(n) => name == n,
                NameMatch::Prefix(p) => name.starts_with(p),
            }
    })
}

/// Copies the end-to-end headers of `from` into a new map: drops the table's headers and those
/// listed in `Connection`.
pub fn forwardable_headers(from: &HeaderMap, direction: Direction) -> HeaderMap {
    // Borrowed tokens, compared case-insensitively: no per-request lower-casing copies.
    let listed: Vec<&str> = from
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    let mut out = HeaderMap::with_capacity(from.len());
    for (name, value) in from {
        if is_dropped(name, direction)
            || listed.iter().any(|l| l.eq_ignore_ascii_case(name.as_str()))
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Where an admitted request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Forward upstream.
    Forward,
    /// `GET /shutdown` with `--http-shutdown`.
    Shutdown,
    /// `GET /v1/responses` with `Upgrade: websocket`: the Responses API WebSocket mode
    /// (`ws.rs`).
    WebSocket,
}

/// Why a request is refused: the status and a short, fixed message (never request content).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: &'static str,
}

const fn refuse(status: StatusCode, code: &'static str, message: &'static str) -> Refusal {
    Refusal {
        status,
        code,
        message,
    }
}

/// Headers only a web browser sends (W3C Fetch Metadata, and `Referer`): a request
/// carrying any of them was made by a page, whatever its `Host` and `Origin` say.
pub const BROWSER_HEADERS: &[&str] = &[
    "sec-fetch-site",
    "sec-fetch-mode",
    "sec-fetch-dest",
    "sec-fetch-user",
    "referer",
];

/// How the connection reached the proxy, for the `Host` check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalEndpoint {
    /// A TCP listener on this port: `Host` must name loopback with exactly this port.
    Tcp { port: u16 },
    /// A unix socket: `Host` must name loopback; a port is optional.
    Unix,
}

/// Paths forwarded without `--allow-path`: the Responses API, and conversation compaction (the
/// Codex CLI calls it; the same policy rules apply to both).
pub const FORWARDED_PATHS: &[&str] = &["/v1/responses", COMPACT_PATH];
/// The compaction endpoint, whose body the policy checks without rewriting it.
pub const COMPACT_PATH: &str = "/v1/responses/compact";

/// The request admission rules, in the order they are checked.
#[derive(Clone, Debug)]
pub struct Admission {
    pub allowed_paths: Vec<String>,
    pub http_shutdown: bool,
    pub max_body_bytes: u64,
}

impl Admission {
    /// Decides a request from its head alone (the body is not read yet).
    pub fn check<B>(&self, req: &Request<B>, local: LocalEndpoint) -> Result<Route, Refusal> {
        let headers = req.headers();
        // Framing first: a request that two parsers could read differently is never forwarded.
        if headers.contains_key(http::header::TRANSFER_ENCODING)
            && headers.contains_key(http::header::CONTENT_LENGTH)
        {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "ambiguous_framing",
                "transfer-encoding and content-length together",
            ));
        }
        // Browsers always send Origin on cross-origin POSTs: no web page spends the key.
        if headers.contains_key(http::header::ORIGIN) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "origin_refused",
                "requests carrying an origin header are refused",
            ));
        }
        // A web page can make a browser send a GET with a loopback Host and no Origin
        // (`<img src=".../shutdown">`); every browser marks such requests with Sec-Fetch-*
        // (Fetch Metadata) and usually a Referer. No local client of the proxy sends them.
        if let Some(name) = BROWSER_HEADERS.iter().find(|h| headers.contains_key(**h)) {
            tracing::debug!(header = name, "request made by a browser");
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "browser_refused",
                "requests made by a web browser (sec-fetch-* or referer) are refused",
            ));
        }
        // DNS rebinding: a page's host name resolving to 127.0.0.1 still sends its own Host.
        if !host_is_local(headers, local) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "host_refused",
                "host header must name loopback with the proxy's port",
            ));
        }
        let uri = req.uri();
        if uri.scheme().is_some() || uri.authority().is_some() {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "path_refused",
                "absolute-form request targets are refused",
            ));
        }
        if uri.query().is_some() {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "path_refused",
                "query strings are refused",
            ));
        }
        let path = uri.path();
        let lower = path.to_ascii_lowercase();
        if path.contains("..") || lower.contains("%2e") || lower.contains("%2f") {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "path_refused",
                "dot segments and encoded dots or slashes are refused",
            ));
        }
        if path == "/shutdown" && self.http_shutdown && req.method() == Method::GET {
            return Ok(Route::Shutdown);
        }
        if path == "/v1/responses" && req.method() == Method::GET && wants_websocket(headers) {
            return Ok(Route::WebSocket);
        }
        let forwarded_path =
            FORWARDED_PATHS.contains(&path) || self.allowed_paths.iter().any(|p| p == path);
        if !forwarded_path || req.method() != Method::POST {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "not_allowed",
                "only POST /v1/responses and /v1/responses/compact are forwarded",
            ));
        }
        if let Some(len) = headers.get(http::header::CONTENT_LENGTH) {
            let len = len.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok());
            match len {
                Some(n) if n > self.max_body_bytes => {
                    return Err(refuse(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "request body exceeds --max-body-bytes",
                    ));
                }
                Some(_) => {}
                None => {
                    return Err(refuse(
                        StatusCode::BAD_REQUEST,
                        "bad_content_length",
                        "invalid content-length",
                    ));
                }
            }
        }
        Ok(Route::Forward)
    }
}

/// Whether a request asks to switch to WebSocket (`Upgrade: websocket`); the handshake's other
/// headers are checked by the upgrade itself (`ws.rs`).
pub fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::UPGRADE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"websocket"))
}

/// Whether `Host` names a loopback host (`localhost`, `127.0.0.1`, `[::1]`) with the right port.
fn host_is_local(headers: &HeaderMap, local: LocalEndpoint) -> bool {
    let mut hosts = headers.get_all(http::header::HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return false; // missing, or several Host headers
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let (name, port) = split_host_port(host);
    let name_ok = name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1" || name == "[::1]";
    if !name_ok {
        return false;
    }
    match (local, port) {
        (LocalEndpoint::Tcp { port: expected }, Some(p)) => p == Some(expected),
        (LocalEndpoint::Tcp { .. }, None) => false,
        (LocalEndpoint::Unix, None) => true,
        (LocalEndpoint::Unix, Some(p)) => p.is_some(),
    }
}

/// Splits `name[:port]`; the port is `Some(None)` when present but not a number.
fn split_host_port(host: &str) -> (&str, Option<Option<u16>>) {
    let (name, port) = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => {
                let (name, rest) = host.split_at(end + 1);
                match rest.strip_prefix(':') {
                    Some(p) => (name, Some(p)),
                    None if rest.is_empty() => (name, None),
                    None => return (host, Some(None)),
                }
            }
            None => return (host, Some(None)),
        }
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (host, None),
        }
    };
    let port = port.map(|p| {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            p.parse::<u16>().ok()
        }
    });
    (name, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    fn admission() -> Admission {
        Admission {
            allowed_paths: vec!["/v1/extra".into()],
            http_shutdown: true,
            max_body_bytes: 100,
        }
    }

    const TCP: LocalEndpoint = LocalEndpoint::Tcp { port: 4000 };

    fn code(r: Result<Route, Refusal>) -> &'static str {
        match r {
            Ok(Route::Forward) => "forward",
            Ok(Route::Shutdown) => "shutdown",
            Ok(Route::WebSocket) => "websocket",
            Err(refusal) => refusal.code,
        }
    }

    #[test]
    fn admits_only_the_forwarded_paths_with_post() {
        let a = admission();
        let h = [("host", "127.0.0.1:4000")];
        assert_eq!(
            code(a.check(&req("POST", "/v1/responses", &h), TCP)),
            "forward"
        );
        assert_eq!(code(a.check(&req("POST", "/v1/extra", &h), TCP)), "forward");
        assert_eq!(
            code(a.check(&req("GET", "/v1/responses", &h), TCP)),
            "not_allowed"
        );
        assert_eq!(
            code(a.check(&req("PUT", "/v1/responses", &h), TCP)),
            "not_allowed"
        );
        // The WebSocket mode: only a GET of /v1/responses may upgrade, after the same checks.
        let up = [("host", "127.0.0.1:4000"), ("upgrade", "websocket")];
        assert_eq!(
            code(a.check(&req("GET", "/v1/responses", &up), TCP)),
            "websocket"
        );
        assert_eq!(
            code(a.check(&req("GET", "/v1/extra", &up), TCP)),
            "not_allowed"
        );
        assert_eq!(
            code(a.check(&req("POST", "/v1/responses/compact", &up), TCP)),
            "forward"
        );
        let cross = [
            ("host", "127.0.0.1:4000"),
            ("upgrade", "websocket"),
            ("origin", "http://127.0.0.1:4000"),
        ];
        assert_eq!(
            code(a.check(&req("GET", "/v1/responses", &cross), TCP)),
            "origin_refused"
        );
        let rebound = [("host", "evil.example:4000"), ("upgrade", "websocket")];
        assert_eq!(
            code(a.check(&req("GET", "/v1/responses", &rebound), TCP)),
            "host_refused"
        );
        assert_eq!(
            code(a.check(&req("POST", "/v1/responses/", &h), TCP)),
            "not_allowed"
        );
        assert_eq!(
            code(a.check(&req("POST", "/v1/models", &h), TCP)),
            "not_allowed"
        );
        assert_eq!(code(a.check(&req("GET", "/shutdown", &h), TCP)), "shutdown");
        let no_shutdown = Admission {
            http_shutdown: false,
            ..admission()
        };
        assert_eq!(
            code(no_shutdown.check(&req("GET", "/shutdown", &h), TCP)),
            "not_allowed"
        );
    }

    #[test]
    fn refuses_path_tricks() {
        let a = admission();
        let h = [("host", "localhost:4000")];
        for uri in [
            "/v1/responses?x=1",
            "/v1/../v1/responses",
            "/v1/%2e%2e/v1/responses",
            "/v1/%2E%2E/x",
            "/v1%2fresponses",
        ] {
            assert_eq!(
                code(a.check(&req("POST", uri, &h), TCP)),
                "path_refused",
                "{uri}"
            );
        }
        assert_eq!(
            code(a.check(&req("POST", "http://127.0.0.1:4000/v1/responses", &h), TCP)),
            "path_refused"
        );
    }

    #[test]
    fn host_must_be_loopback_with_our_port() {
        let a = admission();
        let ok = |host: &str| code(a.check(&req("POST", "/v1/responses", &[("host", host)]), TCP));
        assert_eq!(ok("127.0.0.1:4000"), "forward");
        assert_eq!(ok("localhost:4000"), "forward");
        assert_eq!(ok("LocalHost:4000"), "forward");
        assert_eq!(ok("[::1]:4000"), "forward");
        for bad in [
            "evil.example",
            "evil.example:4000",
            "127.0.0.1",
            "127.0.0.1:4001",
            "127.0.0.1:04000x",
            "localhost.evil.example:4000",
            "[::1]",
            "127.0.0.2:4000",
        ] {
            assert_eq!(ok(bad), "host_refused", "{bad}");
        }
        let none = a.check(&req("POST", "/v1/responses", &[]), TCP);
        assert_eq!(code(none), "host_refused");
        let two = req(
            "POST",
            "/v1/responses",
            &[("host", "127.0.0.1:4000"), ("host", "127.0.0.1:4000")],
        );
        assert_eq!(code(a.check(&two, TCP)), "host_refused");
        let unix = |host: &str| {
            code(a.check(
                &req("POST", "/v1/responses", &[("host", host)]),
                LocalEndpoint::Unix,
            ))
        };
        assert_eq!(unix("localhost"), "forward");
        assert_eq!(unix("localhost:80"), "forward");
        assert_eq!(unix("evil.example"), "host_refused");
    }

    #[test]
    fn origin_framing_and_size() {
        let a = admission();
        let h = |extra: (&str, &str)| {
            code(a.check(
                &req(
                    "POST",
                    "/v1/responses",
                    &[("host", "127.0.0.1:4000"), extra],
                ),
                TCP,
            ))
        };
        assert_eq!(h(("origin", "http://127.0.0.1:4000")), "origin_refused");
        assert_eq!(h(("origin", "null")), "origin_refused");
        for browser in BROWSER_HEADERS {
            assert_eq!(h((browser, "x")), "browser_refused", "{browser}");
        }
        assert_eq!(h(("x-referer", "x")), "forward");
        assert_eq!(h(("content-length", "100")), "forward");
        assert_eq!(h(("content-length", "101")), "body_too_large");
        assert_eq!(h(("content-length", "x")), "bad_content_length");
        let both = req(
            "POST",
            "/v1/responses",
            &[
                ("host", "127.0.0.1:4000"),
                ("transfer-encoding", "chunked"),
                ("content-length", "3"),
            ],
        );
        assert_eq!(code(a.check(&both, TCP)), "ambiguous_framing");
    }

    #[test]
    fn header_table_drops_credentials_and_hop_by_hop() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer client"),
            ("proxy-authorization", "Basic x"),
            ("cookie", "a=b"),
            ("host", "127.0.0.1:1"),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-connection", "keep-alive"),
            ("content-type", "application/json"),
            ("openai-beta", "responses=v1"),
            ("accept", "text/event-stream"),
        ] {
            h.append(HeaderName::from_static(k), v.parse().unwrap());
        }
        let out = forwardable_headers(&h, Direction::Request);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "openai-beta", "accept"]);
        let mut resp = HeaderMap::new();
        resp.append("set-cookie", "a=b".parse().unwrap());
        resp.append("x-request-id", "req_1".parse().unwrap());
        resp.append("transfer-encoding", "chunked".parse().unwrap());
        resp.append("authorization", "kept on responses".parse().unwrap());
        let out = forwardable_headers(&resp, Direction::Response);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-request-id", "authorization"]);
    }
}
