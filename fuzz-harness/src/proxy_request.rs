//! The proxy's request admission ([`Admission::check`]), header filter
//! ([`forwardable_headers`]) and request-smuggling guard ([`Tracker`]).
//!
//! Input: byte 0 picks the framing guard's read size and the admission options; the rest is a raw
//! HTTP/1.1 request (head and body), as a client would send it.
//!
//! Properties:
//! - admission never admits what the rules forbid: a forwarded request is exactly
//!   `POST /v1/responses`, with no `Origin`, no query, no absolute-form target, not both
//!   `Transfer-Encoding` and `Content-Length`; a shutdown is `GET /shutdown` with the flag; a
//!   WebSocket upgrade is `GET /v1/responses` with `Upgrade: websocket` and the same checks;
//! - the header filter never forwards a credential, `Host`, a hop-by-hop header or a header that
//!   `Connection` names;
//! - the framing guard's verdicts do not depend on how the bytes were split into reads.

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use responses_api_proxy::framing::{FramingLog, Tracker};
use responses_api_proxy::policy::{
    Admission, Direction, LocalEndpoint, Route, forwardable_headers,
};

/// Never forwarded upstream, whatever the client sends.
const NEVER_FORWARDED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
];

/// The fuzz target.
pub fn proxy_request(data: &[u8]) {
    let Some((&ctl, raw)) = data.split_first() else {
        return;
    };
    framing_is_split_invariant(raw, usize::from(ctl % 17) + 1);
    let Some(req) = parse_head(raw) else { return };
    let admission = Admission {
        allowed_paths: vec![],
        http_shutdown: ctl & 0x20 != 0,
        max_body_bytes: 1 << 20,
    };
    let local = if ctl & 0x40 != 0 {
        LocalEndpoint::Unix
    } else {
        LocalEndpoint::Tcp { port: 8080 }
    };
    let h = req.headers();
    match admission.check(&req, local) {
        Ok(Route::Forward) => {
            assert_eq!(req.method(), Method::POST, "forwarded a non-POST");
            assert_eq!(req.uri().path(), "/v1/responses", "forwarded another path");
            assert!(req.uri().query().is_none(), "forwarded a query");
            assert!(
                req.uri().authority().is_none(),
                "forwarded an absolute-form target"
            );
            assert!(
                !h.contains_key(http::header::ORIGIN),
                "forwarded a browser request"
            );
            assert!(
                !(h.contains_key(http::header::TRANSFER_ENCODING)
                    && h.contains_key(http::header::CONTENT_LENGTH)),
                "forwarded ambiguous framing"
            );
        }
        Ok(Route::WebSocket) => {
            assert_eq!(req.method(), Method::GET, "upgraded a non-GET");
            assert_eq!(req.uri().path(), "/v1/responses", "upgraded another path");
            assert!(req.uri().query().is_none(), "upgraded with a query");
            assert!(
                req.uri().authority().is_none(),
                "upgraded an absolute-form target"
            );
            assert!(
                !h.contains_key(http::header::ORIGIN),
                "upgraded a browser request"
            );
            assert!(
                responses_api_proxy::policy::wants_websocket(h),
                "upgraded without upgrade: websocket"
            );
        }
        Ok(Route::Shutdown) => {
            assert!(admission.http_shutdown, "shutdown without --http-shutdown");
            assert_eq!(req.method(), Method::GET);
            assert_eq!(req.uri().path(), "/shutdown");
            assert!(
                !h.contains_key(http::header::ORIGIN),
                "shutdown by a browser request"
            );
        }
        Err(refusal) => assert!(
            refusal.status.is_client_error(),
            "refusal with status {}",
            refusal.status
        ),
    }
    let out = forwardable_headers(h, Direction::Request);
    let connection_listed: Vec<String> = h
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for name in out.keys() {
        let n = name.as_str();
        assert!(!NEVER_FORWARDED.contains(&n), "forwarded {n}");
        assert!(!n.starts_with("proxy-"), "forwarded {n}");
        assert!(
            !connection_listed.iter().any(|t| t == n),
            "forwarded {n}, which Connection lists"
        );
    }
}

/// The guard's verdicts for the same bytes, fed whole and in reads of `step` bytes.
fn framing_is_split_invariant(raw: &[u8], step: usize) {
    let whole = FramingLog::default();
    Tracker::default().feed(raw, &whole);
    let split = FramingLog::default();
    let mut t = Tracker::default();
    for chunk in raw.chunks(step) {
        t.feed(chunk, &split);
    }
    for i in 0..64 {
        assert_eq!(
            whole.next_is_ambiguous(),
            split.next_is_ambiguous(),
            "request {i}: framing verdict depends on the read size {step}"
        );
    }
}

/// `METHOD TARGET VERSION` and `name: value` lines up to the first empty line, as an
/// `http::Request`; `None` when `http` itself would not represent it (hyper refuses such input
/// before admission runs).
fn parse_head(raw: &[u8]) -> Option<Request<()>> {
    let text = std::str::from_utf8(raw).ok()?;
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = head.split("\r\n");
    let mut start = lines.next()?.split(' ');
    let method = Method::from_bytes(start.next()?.as_bytes()).ok()?;
    let target: http::Uri = start.next()?.parse().ok()?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        let value = HeaderValue::from_str(value.trim()).ok()?;
        headers.append(name, value);
    }
    let mut req = Request::builder()
        .method(method)
        .uri(target)
        .body(())
        .ok()?;
    *req.headers_mut() = headers;
    Some(req)
}
