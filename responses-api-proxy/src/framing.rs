//! Request-smuggling guard: spots requests that carry both `Transfer-Encoding` and
//! `Content-Length`.
//!
//! hyper accepts such a request (Transfer-Encoding wins, Content-Length is removed from the
//! headers, the connection closes after the response), so by the time the service sees it the
//! evidence is gone. [`Framed`] watches the raw bytes the server reads, follows HTTP/1.1 message
//! framing (head, then `Content-Length` bytes or chunked coding) and records, for each request
//! head in order, whether it had both. The service asks [`FramingLog::next_is_ambiguous`] once
//! per request, in the same order, and answers 400.
//!
//! When the tracker cannot follow the stream (a head it cannot parse, a head longer than
//! [`MAX_HEAD`]), it stops tracking; hyper rejects such input itself.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest request head the tracker buffers (hyper's own limit is lower and answers 431).
pub const MAX_HEAD: usize = 64 * 1024;
const MAX_LINE: usize = 4096;

/// Per-connection record of which request heads had ambiguous framing, in arrival order.
#[derive(Debug, Default)]
pub struct FramingLog {
    heads: Mutex<VecDeque<bool>>,
}

impl FramingLog {
    /// For the next request the server hands to the service: did its head carry both
    /// `Transfer-Encoding` and `Content-Length`?
    pub fn next_is_ambiguous(&self) -> bool {
        self.heads
            .lock()
            .map(|mut h| h.pop_front().unwrap_or(false))
            .unwrap_or(false)
    }

    fn push(&self, ambiguous: bool) {
        if let Ok(mut h) = self.heads.lock() {
            h.push_back(ambiguous);
        }
    }
}

#[derive(Debug)]
enum State {
    Head(Vec<u8>),
    Fixed(u64),
    ChunkSize(Vec<u8>),
    ChunkData(u64),
    ChunkDataEnd(u8),
    Trailers(Vec<u8>),
    Lost,
}

/// Follows message framing over the bytes of one connection.
#[derive(Debug)]
pub struct Tracker {
    state: State,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            state: State::Head(Vec::new()),
        }
    }
}

impl Tracker {
    /// Feeds bytes the server just read.
    pub fn feed(&mut self, mut data: &[u8], log: &FramingLog) {
        while !data.is_empty() {
            let state = std::mem::replace(&mut self.state, State::Lost);
            self.state = match state {
                State::Lost => return,
                // The usual case: a whole head within one read, parsed in place (no copy).
                State::Head(buf) if buf.is_empty() => match parse_head(data) {
                    HeadParse::Partial if data.len() > MAX_HEAD => State::Lost,
                    HeadParse::Partial => {
                        let buf = data.to_vec();
                        data = &[];
                        State::Head(buf)
                    }
                    HeadParse::Invalid => State::Lost,
                    HeadParse::Complete { len, te, cl } => {
                        log.push(te && cl.is_some());
                        data = &data[len..];
                        after_head(te, cl)
                    }
                },
                State::Head(mut buf) => {
                    let start = buf.len();
                    buf.extend_from_slice(data);
                    match parse_head(&buf) {
                        HeadParse::Partial if buf.len() > MAX_HEAD => State::Lost,
                        HeadParse::Partial => {
                            data = &[];
                            State::Head(buf)
                        }
                        HeadParse::Invalid => State::Lost,
                        HeadParse::Complete { len, te, cl } => {
                            log.push(te && cl.is_some());
                            data = &data[len - start..];
                            after_head(te, cl)
                        }
                    }
                }
                State::Fixed(n) => {
                    let take = n.min(data.len() as u64);
                    data = &data[take as usize..];
                    if n == take {
                        State::Head(Vec::new())
                    } else {
                        State::Fixed(n - take)
                    }
                }
                State::ChunkSize(mut line) => match take_line(&mut line, &mut data) {
                    LineResult::More if line.len() > MAX_LINE => State::Lost,
                    LineResult::More => State::ChunkSize(line),
                    LineResult::Line => match parse_chunk_size(&line) {
                        Some(0) => State::Trailers(Vec::new()),
                        Some(n) => State::ChunkData(n),
                        None => State::Lost,
                    },
                },
                State::ChunkData(n) => {
                    let take = n.min(data.len() as u64);
                    data = &data[take as usize..];
                    if n == take {
                        State::ChunkDataEnd(2)
                    } else {
                        State::ChunkData(n - take)
                    }
                }
                State::ChunkDataEnd(left) => {
                    let take = usize::from(left).min(data.len());
                    data = &data[take..];
                    let left = left - take as u8;
                    if left == 0 {
                        State::ChunkSize(Vec::new())
                    } else {
                        State::ChunkDataEnd(left)
                    }
                }
                State::Trailers(mut line) => match take_line(&mut line, &mut data) {
                    LineResult::More if line.len() > MAX_LINE => State::Lost,
                    LineResult::More => State::Trailers(line),
                    LineResult::Line if line.is_empty() => State::Head(Vec::new()),
                    LineResult::Line => State::Trailers(Vec::new()),
                },
            };
        }
    }
}

/// Where the body of a head with these framing headers ends.
fn after_head(te: bool, cl: Option<u64>) -> State {
    if te {
        State::ChunkSize(Vec::new())
    } else {
        match cl {
            Some(n) if n > 0 => State::Fixed(n),
            _ => State::Head(Vec::new()),
        }
    }
}

enum LineResult {
    /// `line` holds a whole line without its `\r\n`.
    Line,
    More,
}

fn take_line(line: &mut Vec<u8>, data: &mut &[u8]) -> LineResult {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => {
            line.extend_from_slice(&data[..i]);
            *data = &data[i + 1..];
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            LineResult::Line
        }
        None => {
            line.extend_from_slice(data);
            *data = &[];
            LineResult::More
        }
    }
}

fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let end = line.iter().position(|&b| b == b';').unwrap_or(line.len());
    let hex = std::str::from_utf8(&line[..end]).ok()?.trim();
    u64::from_str_radix(hex, 16).ok()
}

enum HeadParse {
    Complete {
        len: usize,
        te: bool,
        cl: Option<u64>,
    },
    Partial,
    Invalid,
}

fn parse_head(buf: &[u8]) -> HeadParse {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            let mut te = false;
            let mut cl = None;
            for h in req.headers.iter() {
                if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    te = true;
                } else if h.name.eq_ignore_ascii_case("content-length") {
                    cl = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .or(Some(0));
                }
            }
            HeadParse::Complete { len, te, cl }
        }
        Ok(httparse::Status::Partial) => HeadParse::Partial,
        Err(_) => HeadParse::Invalid,
    }
}

/// A connection whose incoming bytes go through a [`Tracker`], and whose writes fail with
/// `TimedOut` once the client has accepted nothing for `write_stall` (a client that never reads
/// would otherwise hold its connection, and the shutdown drain, forever). The timer is armed
/// only while a write is blocked: a client that keeps up costs nothing.
pub struct Framed<T> {
    inner: T,
    tracker: Tracker,
    log: std::sync::Arc<FramingLog>,
    write_stall: std::time::Duration,
    stalled_since: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> Framed<T> {
    pub fn new(
        inner: T,
        log: std::sync::Arc<FramingLog>,
        write_stall: std::time::Duration,
    ) -> Self {
        Self {
            inner,
            tracker: Tracker::default(),
            log,
            write_stall,
            stalled_since: None,
        }
    }

    /// Passes a write-side result through, failing it once the client has been blocking writes
    /// for `write_stall`.
    fn deadline<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Pending => {
                let limit = self.write_stall;
                let timer = self
                    .stalled_since
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_ready() {
                    self.stalled_since = None;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("client accepted no data for {limit:?}"),
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.stalled_since = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Framed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                this.tracker.feed(new, &this.log);
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Framed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.deadline(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.deadline(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.deadline(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.deadline(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(input: &[u8], step: usize) -> Vec<bool> {
        let log = FramingLog::default();
        let mut t = Tracker::default();
        for piece in input.chunks(step) {
            t.feed(piece, &log);
        }
        log.heads.lock().unwrap().iter().copied().collect()
    }

    #[test]
    fn follows_keep_alive_streams_in_any_read_size() {
        let stream = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: 1\r\n\r\n\
POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n\
GET /d HTTP/1.1\r\nHost: x\r\n\r\n\
POST /e HTTP/1.1\r\nContent-Length: 2\r\nHost: x\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
        for step in [1, 2, 3, 7, 64, 4096] {
            assert_eq!(
                flags(stream, step),
                vec![false, false, true, false, true],
                "step {step}"
            );
        }
    }

    #[test]
    fn body_bytes_that_look_like_headers_are_not_heads() {
        let body = b"GET /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n";
        let mut stream = format!(
            "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        stream.extend_from_slice(body);
        assert_eq!(flags(&stream, 5), vec![false]);
    }

    #[test]
    fn garbage_stops_tracking() {
        assert_eq!(flags(b"\x00\x01 not http\r\n\r\n", 4), Vec::<bool>::new());
    }
}
