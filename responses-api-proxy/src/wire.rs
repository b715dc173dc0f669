//! HTTP/1.1 on the upstream connection, written and read by the proxy itself.
//!
//! The request head is built in two public pieces with the key between them
//! ([`RequestHead`]): the key's bytes are never copied into a buffer of this process, they go
//! from the locked page straight into `writev(2)` (plain http) or into rustls's record buffer,
//! where they are encrypted in place (see `client.rs`). The response head is parsed with
//! `httparse` ([`parse_response_head`]) and the body decoded by [`Decoder`], which returns
//! **every complete piece of body already read, as one buffer**: several SSE events that came
//! in one read leave to the client in one write, and nothing waits for more data.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

/// Longest response head (status line and headers) accepted from upstream.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most response header fields.
const MAX_HEADERS: usize = 128;
/// Longest chunk-size line (extensions included).
const MAX_CHUNK_LINE: usize = 4096;
/// Longest trailer section.
const MAX_TRAILERS: usize = 16 * 1024;

/// The upstream's answer could not be read as HTTP/1.1.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("upstream sent a malformed response head: {0}")]
    Head(String),
    #[error("upstream response head is larger than {MAX_RESPONSE_HEAD} bytes")]
    HeadTooLarge,
    #[error("upstream sent an invalid content-length")]
    ContentLength,
    #[error("upstream sent a malformed chunked body: {0}")]
    Chunked(&'static str),
    #[error("upstream closed the connection before the end of the response body")]
    Truncated,
}

/// How the request body is framed on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFraming {
    /// `content-length: N`, then N raw bytes.
    Length(u64),
    /// `transfer-encoding: chunked`.
    Chunked,
}

/// A request head as two public pieces; the `Authorization` value goes between them, taken
/// from where it lives (the locked key page) at write time.
#[derive(Debug)]
pub struct RequestHead {
    /// Request line, `host`, the client's forwardable headers, the framing header and
    /// `authorization: ` (the value follows).
    pub before_key: Bytes,
    /// What follows the value: the end of the line and of the head.
    pub after_key: &'static [u8],
}

/// Headers the head writes itself (or never): skipped from the client's map.
fn written_by_us(name: &HeaderName) -> bool {
    *name == http::header::HOST
        || *name == http::header::CONTENT_LENGTH
        || *name == http::header::TRANSFER_ENCODING
        || *name == http::header::AUTHORIZATION
}

impl RequestHead {
    /// `headers` are the client's, already filtered by the header table
    /// ([`crate::policy::forwardable_headers`]).
    pub fn new(
        method: &Method,
        target: &str,
        authority: &str,
        headers: &HeaderMap,
        framing: RequestFraming,
    ) -> Self {
        let mut b = Vec::with_capacity(256 + headers.len() * 48);
        b.extend_from_slice(method.as_str().as_bytes());
        b.push(b' ');
        b.extend_from_slice(target.as_bytes());
        b.extend_from_slice(b" HTTP/1.1\r\nhost: ");
        b.extend_from_slice(authority.as_bytes());
        b.extend_from_slice(b"\r\n");
        for (name, value) in headers {
            if written_by_us(name) {
                continue;
            }
            b.extend_from_slice(name.as_str().as_bytes());
            b.extend_from_slice(b": ");
            b.extend_from_slice(value.as_bytes());
            b.extend_from_slice(b"\r\n");
        }
        match framing {
            RequestFraming::Length(n) => {
                b.extend_from_slice(b"content-length: ");
                b.extend_from_slice(n.to_string().as_bytes());
                b.extend_from_slice(b"\r\n");
            }
            RequestFraming::Chunked => b.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        b.extend_from_slice(b"authorization: ");
        RequestHead {
            before_key: Bytes::from(b),
            after_key: b"\r\n\r\n",
        }
    }
}

/// The size line in front of one chunk of a chunked request body.
pub fn chunk_header(len: usize) -> Bytes {
    Bytes::from(format!("{len:x}\r\n"))
}

/// How the response body ends (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (1xx, 204, 304, or a response to HEAD).
    Empty,
    Length(u64),
    Chunked,
    /// Until upstream closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: BodyFraming,
    /// The connection may carry another request after this response.
    pub keep_alive: bool,
}

/// Whether a comma-separated header (`connection`, `transfer-encoding`) lists `token`
/// (case-insensitively); for `transfer-encoding`, `last` asks about the final coding only.
fn lists(headers: &HeaderMap, name: HeaderName, token: &str, last: bool) -> bool {
    let mut tokens = headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty());
    if last {
        tokens
            .next_back()
            .is_some_and(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    } else {
        tokens.any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
    }
}

/// Parses a response head at the start of `buf`: `Ok(None)` when it is not complete yet,
/// else the head and its length in bytes. Interim 1xx answers (100, 102, 103) are returned like
/// any other; the caller skips them.
pub fn parse_response_head(
    buf: &[u8],
    request: &Method,
) -> Result<Option<(ResponseHead, usize)>, WireError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD => {
            return Err(WireError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(WireError::Head(e.to_string())),
    };
    if len > MAX_RESPONSE_HEAD {
        return Err(WireError::HeadTooLarge);
    }
    let code = resp.code.unwrap_or(0);
    let status =
        StatusCode::from_u16(code).map_err(|_| WireError::Head(format!("status {code}")))?;
    let mut headers = HeaderMap::with_capacity(resp.headers.len());
    for f in resp.headers.iter() {
        let name = HeaderName::from_bytes(f.name.as_bytes())
            .map_err(|_| WireError::Head("invalid header name".into()))?;
        let value = HeaderValue::from_bytes(f.value)
            .map_err(|_| WireError::Head(format!("invalid value of {name}")))?;
        headers.append(name, value);
    }
    let http11 = resp.version == Some(1);
    let te = headers.contains_key(http::header::TRANSFER_ENCODING);
    let framing = if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || *request == Method::HEAD
    {
        BodyFraming::Empty
    } else if te {
        if lists(&headers, http::header::TRANSFER_ENCODING, "chunked", true) {
            BodyFraming::Chunked
        } else {
            BodyFraming::Close
        }
    } else if let Some(n) = content_length(&headers)? {
        BodyFraming::Length(n)
    } else {
        BodyFraming::Close
    };
    // A response with both framings is a smuggling attempt or a broken server: its connection
    // is not trusted with another request.
    let keep_alive = http11
        && framing != BodyFraming::Close
        && !(te && headers.contains_key(http::header::CONTENT_LENGTH))
        && !lists(&headers, http::header::CONNECTION, "close", false);
    // The chunks frame the body: a `Content-Length` beside them is not the body's (RFC 9112
    // 6.1: removed; outside review r55 F4: relayed, it made the client cut a 200 short).
    if te {
        headers.remove(http::header::CONTENT_LENGTH);
    }
    Ok(Some((
        ResponseHead {
            status,
            headers,
            framing,
            keep_alive,
        },
        len,
    )))
}

/// `content-length`: absent, or the same decimal number in every field and list item.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, WireError> {
    let mut found: Option<u64> = None;
    for v in headers.get_all(http::header::CONTENT_LENGTH) {
        for item in v.as_bytes().split(|&b| b == b',') {
            let item = item.trim_ascii();
            if item.is_empty() || !item.iter().all(u8::is_ascii_digit) || item.len() > 19 {
                return Err(WireError::ContentLength);
            }
            let n: u64 = std::str::from_utf8(item)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(WireError::ContentLength)?;
            if found.is_some_and(|f| f != n) {
                return Err(WireError::ContentLength);
            }
            found = Some(n);
        }
    }
    Ok(found)
}

/// Where a chunked body's decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// This many bytes of chunk data left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields up to an empty line.
    Trailers,
}

/// The response body decoder.
#[derive(Debug)]
pub enum Decoder {
    Length(u64),
    Chunked(Chunk),
    Close,
    Done,
}

/// What one [`Decoder::decode`] call found.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Every body byte complete in the buffer, as one piece (`None`: none).
    pub data: Option<Bytes>,
    /// Trailer fields of a chunked body (at its end).
    pub trailers: Option<HeaderMap>,
    /// The body is complete: the connection is at the next response's start.
    pub done: bool,
}

impl Decoder {
    pub fn new(framing: BodyFraming) -> Self {
        match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => Decoder::Done,
            BodyFraming::Length(n) => Decoder::Length(n),
            BodyFraming::Chunked => Decoder::Chunked(Chunk::Size),
            BodyFraming::Close => Decoder::Close,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self, Decoder::Done)
    }

    /// Bytes of body still expected, when known.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            Decoder::Length(n) => Some(*n),
            Decoder::Done => Some(0),
            _ => None,
        }
    }

    /// Takes every complete piece of body from the front of `buf` (never waiting for more:
    /// a partial chunk's bytes are returned too) and returns them as one buffer.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, WireError> {
        let mut out = Decoded::default();
        let mut pieces: Vec<Bytes> = Vec::new();
        loop {
            match self {
                Decoder::Done => {
                    out.done = true;
                    break;
                }
                Decoder::Close => {
                    if !buf.is_empty() {
                        pieces.push(buf.split().freeze());
                    }
                    break;
                }
                Decoder::Length(left) => {
                    let take = (*left).min(buf.len() as u64);
                    if take > 0 {
                        pieces.push(buf.split_to(take as usize).freeze());
                        *left -= take;
                    }
                    if *left == 0 {
                        *self = Decoder::Done;
                        continue;
                    }
                    break;
                }
                Decoder::Chunked(state) => match *state {
                    Chunk::Size => {
                        let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                            if buf.len() > MAX_CHUNK_LINE {
                                return Err(WireError::Chunked("chunk-size line too long"));
                            }
                            break;
                        };
                        if nl > MAX_CHUNK_LINE {
                            return Err(WireError::Chunked("chunk-size line too long"));
                        }
                        let size = parse_chunk_size(&buf[..nl])?;
                        buf.advance(nl + 1);
                        *state = if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Chunk::Data(left) => {
                        let take = left.min(buf.len() as u64);
                        if take == 0 {
                            break;
                        }
                        pieces.push(buf.split_to(take as usize).freeze());
                        *state = if take == left {
                            Chunk::DataEnd
                        } else {
                            Chunk::Data(left - take)
                        };
                    }
                    Chunk::DataEnd => {
                        if buf.len() < 2 {
                            if buf.first().is_some_and(|&b| b != b'\r') {
                                return Err(WireError::Chunked("missing CRLF after chunk data"));
                            }
                            break;
                        }
                        if &buf[..2] != b"\r\n" {
                            return Err(WireError::Chunked("missing CRLF after chunk data"));
                        }
                        buf.advance(2);
                        *state = Chunk::Size;
                    }
                    Chunk::Trailers => {
                        if buf.starts_with(b"\r\n") {
                            buf.advance(2);
                            *self = Decoder::Done;
                            continue;
                        }
                        let Some(end) = find(buf, b"\r\n\r\n") else {
                            if buf.len() > MAX_TRAILERS {
                                return Err(WireError::Chunked("trailers too large"));
                            }
                            break;
                        };
                        out.trailers = Some(parse_trailers(&buf[..end + 4])?);
                        buf.advance(end + 4);
                        *self = Decoder::Done;
                    }
                },
            }
        }
        out.data = match pieces.len() {
            0 => None,
            1 => pieces.pop(),
            _ => {
                let mut joined = BytesMut::with_capacity(pieces.iter().map(Bytes::len).sum());
                for p in &pieces {
                    joined.extend_from_slice(p);
                }
                Some(joined.freeze())
            }
        };
        Ok(out)
    }

    /// Upstream closed the connection: the end of a close-delimited body, an error otherwise.
    pub fn eof(&mut self) -> Result<(), WireError> {
        match self {
            Decoder::Close | Decoder::Done => {
                *self = Decoder::Done;
                Ok(())
            }
            _ => Err(WireError::Truncated),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let hex = line[..end].trim_ascii();
    if hex.is_empty() || hex.len() > 15 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(WireError::Chunked("invalid chunk size"));
    }
    std::str::from_utf8(hex)
        .ok()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or(WireError::Chunked("invalid chunk size"))
}

fn parse_trailers(section: &[u8]) -> Result<HeaderMap, WireError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    match httparse::parse_headers(section, &mut fields) {
        Ok(httparse::Status::Complete((_, parsed))) => {
            let mut map = HeaderMap::new();
            for f in parsed {
                let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(f.name.as_bytes()),
                    HeaderValue::from_bytes(f.value),
                ) else {
                    return Err(WireError::Chunked("invalid trailer field"));
                };
                map.append(name, value);
            }
            Ok(map)
        }
        _ => Err(WireError::Chunked("invalid trailer section")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> ResponseHead {
        parse_response_head(raw.as_bytes(), &Method::POST)
            .unwrap()
            .unwrap()
            .0
    }

    #[test]
    fn request_head_surrounds_the_key_and_frames_the_body() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("content-length", HeaderValue::from_static("999"));
        h.insert("host", HeaderValue::from_static("127.0.0.1:1"));
        let head = RequestHead::new(
            &Method::POST,
            "/v1/responses",
            "api.example:443",
            &h,
            RequestFraming::Length(7),
        );
        let mut full = head.before_key.to_vec();
        full.extend_from_slice(b"Bearer k");
        full.extend_from_slice(head.after_key);
        assert_eq!(
            String::from_utf8(full).unwrap(),
            "POST /v1/responses HTTP/1.1\r\nhost: api.example:443\r\ncontent-type: \
             application/json\r\ncontent-length: 7\r\nauthorization: Bearer k\r\n\r\n"
        );
        let chunked = RequestHead::new(
            &Method::POST,
            "/x",
            "h",
            &HeaderMap::new(),
            RequestFraming::Chunked,
        );
        assert!(
            chunked
                .before_key
                .ends_with(b"transfer-encoding: chunked\r\nauthorization: ")
        );
        assert_eq!(&chunk_header(255)[..], b"ff\r\n");
    }

    #[test]
    fn response_framing_and_keep_alive() {
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Length(5), true));
        let h = head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Chunked, true));
        let h = head("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Chunked, false));
        let h = head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Close, false));
        let h = head("HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Close, false));
        let h =
            head("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\ncontent-length: 0\r\n\r\n");
        assert!(!h.keep_alive);
        let h = head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n");
        assert!(!h.keep_alive);
        let h = head("HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!((h.framing, h.keep_alive), (BodyFraming::Empty, true));
        let h = head("HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n");
        assert_eq!(h.status, StatusCode::SWITCHING_PROTOCOLS);
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
        ] {
            assert_eq!(
                parse_response_head(bad.as_bytes(), &Method::POST).unwrap_err(),
                WireError::ContentLength,
                "{bad}"
            );
        }
        // Same value twice is one length.
        let h = head("HTTP/1.1 200 OK\r\ncontent-length: 4, 4\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Length(4));
        assert!(
            parse_response_head(b"HTTP/1.1 200 OK\r\ncontent-le", &Method::POST)
                .unwrap()
                .is_none()
        );
        let huge = format!(
            "HTTP/1.1 200 OK\r\nx: {}",
            "a".repeat(MAX_RESPONSE_HEAD + 1)
        );
        assert_eq!(
            parse_response_head(huge.as_bytes(), &Method::POST).unwrap_err(),
            WireError::HeadTooLarge
        );
    }

    fn sse_chunked(events: usize) -> (Vec<u8>, Vec<u8>) {
        let (mut wire, mut body) = (Vec::new(), Vec::new());
        for i in 0..events {
            let ev = format!("event: delta\ndata: {{\"i\":{i}}}\n\n");
            wire.extend_from_slice(format!("{:x}\r\n{ev}\r\n", ev.len()).as_bytes());
            body.extend_from_slice(ev.as_bytes());
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        (wire, body)
    }

    #[test]
    fn every_complete_chunk_in_one_read_comes_out_as_one_piece() {
        let (wire, body) = sse_chunked(14);
        let mut d = Decoder::new(BodyFraming::Chunked);
        let mut buf = BytesMut::from(&wire[..]);
        let out = d.decode(&mut buf).unwrap();
        assert_eq!(out.data.as_deref(), Some(&body[..]));
        assert!(out.done && buf.is_empty() && out.trailers.is_none());
    }

    #[test]
    fn chunked_bodies_decode_in_any_read_size() {
        let (mut wire, body) = sse_chunked(5);
        // With trailers and an extension this time.
        wire.truncate(wire.len() - 5);
        wire.extend_from_slice(b"3;ext=1\r\nabc\r\n0\r\nx-t: 1\r\n\r\n");
        let mut want = body.clone();
        want.extend_from_slice(b"abc");
        for step in [1, 2, 3, 7, 64, 4096] {
            let mut d = Decoder::new(BodyFraming::Chunked);
            let mut buf = BytesMut::new();
            let (mut got, mut trailers, mut done) = (Vec::new(), None, false);
            for piece in wire.chunks(step) {
                buf.extend_from_slice(piece);
                let out = d.decode(&mut buf).unwrap();
                if let Some(data) = out.data {
                    got.extend_from_slice(&data);
                }
                trailers = trailers.or(out.trailers);
                done = out.done;
            }
            assert_eq!(got, want, "step {step}");
            assert!(done, "step {step}");
            assert_eq!(trailers.unwrap()["x-t"], "1");
        }
    }

    #[test]
    fn length_and_close_bodies_and_their_ends() {
        let mut d = Decoder::new(BodyFraming::Length(5));
        let mut buf = BytesMut::from(&b"hel"[..]);
        let out = d.decode(&mut buf).unwrap();
        assert_eq!((out.data.as_deref(), out.done), (Some(&b"hel"[..]), false));
        assert_eq!(d.eof(), Err(WireError::Truncated));
        let mut d = Decoder::new(BodyFraming::Length(5));
        buf.extend_from_slice(b"helloHTTP/1.1");
        let out = d.decode(&mut buf).unwrap();
        assert_eq!((out.data.as_deref(), out.done), (Some(&b"hello"[..]), true));
        assert_eq!(
            &buf[..],
            b"HTTP/1.1",
            "the next response stays in the buffer"
        );
        let mut d = Decoder::new(BodyFraming::Close);
        let mut buf = BytesMut::from(&b"abc"[..]);
        assert_eq!(
            d.decode(&mut buf).unwrap().data.as_deref(),
            Some(&b"abc"[..])
        );
        assert_eq!(d.eof(), Ok(()));
        assert!(d.is_done());
        let mut d = Decoder::new(BodyFraming::Chunked);
        assert_eq!(d.eof(), Err(WireError::Truncated));
    }

    #[test]
    fn malformed_chunked_bodies_are_errors() {
        for bad in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX",
            b"1234567890abcdef0\r\n",
            b"\r\n",
        ] {
            let mut d = Decoder::new(BodyFraming::Chunked);
            let mut buf = BytesMut::from(bad);
            assert!(
                matches!(d.decode(&mut buf), Err(WireError::Chunked(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut d = Decoder::new(BodyFraming::Chunked);
        let mut buf = BytesMut::from(&vec![b'1'; MAX_CHUNK_LINE + 2][..]);
        assert!(d.decode(&mut buf).is_err());
    }
}
