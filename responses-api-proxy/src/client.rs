//! The proxy's own HTTP/1.1 client for the upstream ([`UpstreamClient`]): rustls with the system
//! roots (or `SSL_CERT_FILE` / `SSL_CERT_DIR` when set: rustls-native-certs reads those instead
//! of the system store), ALPN `http/1.1` only, a small keep-alive pool, `TCP_NODELAY` on every
//! upstream connection.
//!
//! **Why not hyper's client (issue 13).** hyper encodes `Authorization` into each pooled
//! connection's heap write buffer (`Vec::clear` does not wipe): after load the proxy's memory held
//! the key once per pooled connection, in ordinary pages. Here the request head is written with
//! one `writev` of three pieces, the middle one the key's bytes in the locked page
//! ([`crate::key::ApiKey::bytes_for_upstream`]); the kernel copies them into the socket (plain
//! http), or rustls gathers them into a fresh record buffer and encrypts that buffer **in place**
//! (rustls 0.23 `Tls13MessageEncrypter::encrypt` / `GcmMessageEncrypter::encrypt`:
//! `PrefixedPayload::with_capacity` sized for the tag, `extend_from_chunks`, then
//! `seal_in_place_*`, so no reallocation leaves a plaintext copy behind), so the only plaintext
//! copy is overwritten by ciphertext before the buffer is queued and freed. rustls buffers
//! plaintext (`sendable_plaintext`) only before the handshake completes; the client writes only
//! after `TlsConnector::connect` has completed it. Early data (0-RTT) is off (rustls' default).
//!
//! The response body is decoded here too ([`crate::wire::Decoder`]) on the serving task: one read
//! from upstream, every complete chunk in it returned as one frame, so several SSE events that
//! arrived together leave to the client in one write (hyper's client handed them over one chunk
//! per task turn, and the proxy wrote each with its own `writev`).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::uri::Scheme;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::key::ApiKey;
use crate::upstream::{Upstream, UpstreamError};
use crate::upstream_owner::UpstreamOwner;
use crate::wire::{
    Decoder, RequestFraming, RequestHead, ResponseHead, WireError, chunk_header,
    parse_response_head,
};

/// Longest a new upstream connection may take: TCP connect (every address the name resolves
/// to, in order), the owner check or the TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// TCP keep-alive probes on upstream connections start after this much silence.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// An idle pooled connection older than this is closed, not reused.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Most idle connections kept.
const POOL_MAX_IDLE: usize = 256;
/// Read buffer growth per upstream read.
const READ_CHUNK: usize = 16 * 1024;
/// Most request-body bytes gathered into one upstream write.
const COALESCE_MAX: usize = 64 * 1024;
/// Most pieces per `writev`.
const MAX_IOV: usize = 64;

/// The proxy's HTTP/1.1 client for the one upstream. Cheap to share (`Arc` inside).
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    upstream: Upstream,
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    owner: Arc<UpstreamOwner>,
    idle: Mutex<Vec<Idle>>,
    reaper: std::sync::Once,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Builds the client. Roots: `SSL_CERT_FILE`/`SSL_CERT_DIR` if set, else the system store.
/// `owner`: who must own a plain-http upstream's socket (checked on every new connection).
pub fn build_client(
    upstream: &Upstream,
    owner: Arc<UpstreamOwner>,
) -> Result<UpstreamClient, UpstreamError> {
    let host = upstream
        .authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let https = upstream.scheme == Scheme::HTTPS;
    let port = upstream
        .authority
        .port_u16()
        .unwrap_or(if https { 443 } else { 80 });
    let tls = if https {
        let name = ServerName::try_from(host.clone()).map_err(|_| UpstreamError::Url {
            url: upstream.responses_uri.to_string(),
            reason: "the host is not a valid TLS server name".into(),
        })?;
        Some((TlsConnector::from(Arc::new(tls_config()?)), name))
    } else {
        None
    };
    Ok(UpstreamClient {
        inner: Arc::new(ClientInner {
            upstream: upstream.clone(),
            host,
            port,
            tls,
            owner,
            idle: Mutex::new(Vec::new()),
            reaper: std::sync::Once::new(),
        }),
    })
}

fn tls_config() -> Result<rustls::ClientConfig, UpstreamError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let detail = if loaded.errors.is_empty() {
            "the system certificate store is empty (set SSL_CERT_FILE)".to_string()
        } else {
            loaded
                .errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(UpstreamError::NoRoots { detail });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| UpstreamError::Tls { source })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // HTTP/1.1 only: the proxy writes the request head itself (see the module docs).
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// A request on its way upstream: the filtered client headers, the target, the key to send.
pub struct Outgoing {
    pub method: Method,
    /// Path and query for the request line.
    pub target: String,
    /// The client's headers after the header table; `host`, `authorization` and the framing
    /// headers are written by the client.
    pub headers: HeaderMap,
    pub key: Arc<ApiKey>,
}

/// Forwarding failed before a response head arrived.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("resolving {host} failed: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("{host} resolved to no address")]
    NoAddress { host: String },
    #[error("connecting to {addr} failed: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("connecting to the upstream took longer than {0:?}")]
    ConnectTimeout(Duration),
    #[error("TLS handshake with the upstream failed: {0}")]
    Tls(io::Error),
    /// The plain-http owner check refused the connection (the key was not sent).
    #[error("{0}")]
    Owner(io::Error),
    #[error("writing the request upstream failed: {0}")]
    Write(io::Error),
    #[error("reading the upstream response failed: {0}")]
    Read(io::Error),
    #[error("upstream closed the connection before answering")]
    Closed,
    #[error(transparent)]
    Wire(WireError),
    /// The client's request body failed (too large, too slow, broken); the proxy answers it.
    #[error("reading the request body failed: {0}")]
    Body(crate::BoxError),
}

impl SendError {
    /// The failure a stale pooled connection explains and that proves the upstream did not get
    /// the request: writing it failed (the upstream closed the connection while it was idle). A
    /// request that was written whole is never sent again, even if the connection then closes
    /// without an answer: the upstream may have acted on it (a POST spends the key; nginx and
    /// Go's net/http do not resend a sent POST either).
    fn stale_connection(&self) -> bool {
        matches!(self, SendError::Write(_))
    }
}

impl UpstreamClient {
    pub fn upstream(&self) -> &Upstream {
        &self.inner.upstream
    }

    /// Sends `req` with `body` and returns the response once its head has arrived; the body
    /// streams from the returned [`UpstreamBody`]. A reused connection on which the write fails
    /// (closed by the upstream while idle) is replaced once, when the whole request was ready at
    /// the first write.
    pub async fn send<B>(&self, req: Outgoing, body: B) -> Result<Response<UpstreamBody>, SendError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<crate::BoxError>,
    {
        let framing = if body.is_end_stream() {
            RequestFraming::Length(0)
        } else {
            match body.size_hint().exact() {
                Some(n) => RequestFraming::Length(n),
                None => RequestFraming::Chunked,
            }
        };
        let head = RequestHead::new(
            &req.method,
            &req.target,
            self.inner.upstream.authority.as_str(),
            &req.headers,
            framing,
        );
        let mut out = Out::default();
        out.push(head.before_key);
        out.push(req.key.bytes_for_upstream());
        out.push(Bytes::from_static(head.after_key));
        let mut pump = Pump {
            body,
            chunked: framing == RequestFraming::Chunked,
            out,
            body_done: framing == RequestFraming::Length(0),
            first: true,
            replay: None,
            finished: false,
        };
        if pump.body_done && pump.chunked {
            pump.out.push(Bytes::from_static(b"0\r\n\r\n"));
        }
        let mut conn = match self.inner.checkout() {
            Some(c) => c,
            None => self.inner.connect().await?,
        };
        let head = match exchange(&mut conn, &mut pump, &req.method).await {
            Ok(head) => head,
            Err(e) if conn.reused && e.stale_connection() && pump.replay.is_some() => {
                tracing::debug!(error = %e, "pooled upstream connection was closed; retrying on a new one");
                if let Some(replay) = pump.replay.take() {
                    pump.out = Out::from_queue(replay);
                }
                pump.finished = false;
                conn = self.inner.connect().await?;
                exchange(&mut conn, &mut pump, &req.method).await?
            }
            Err(e) => return Err(e),
        };
        let keep_alive =
            head.keep_alive && pump.finished && head.status != StatusCode::SWITCHING_PROTOCOLS;
        let ResponseHead {
            status,
            headers,
            framing,
            ..
        } = head;
        let mut body = UpstreamBody {
            conn: Some(conn),
            decoder: Decoder::new(framing),
            keep_alive,
            client: Arc::clone(&self.inner),
            trailers: None,
            fresh_data: false,
            failed: None,
        };
        if body.decoder.is_done() {
            body.release();
        }
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        Ok(resp)
    }
}

/// A dedicated upstream connection (see [`UpstreamClient::connect_dedicated`]).
pub type UpstreamIo = Io;

impl UpstreamClient {
    /// A new upstream connection of its own, never taken from or returned to the pool, for the
    /// WebSocket mode (`ws.rs`): the same path as every request's (addresses in order, the
    /// owner check of a plain-http upstream, the proxy's TLS configuration, the connect timeout).
    pub async fn connect_dedicated(&self) -> Result<UpstreamIo, SendError> {
        Ok(self.inner.connect().await?.io)
    }
}

impl ClientInner {
    /// The most recently used idle connection that is still open and young enough.
    fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(Idle { conn, since }) = idle.pop() {
            if since.elapsed() < POOL_IDLE_TIMEOUT && conn.looks_open() {
                return Some(conn);
            }
        }
        None
    }

    fn put(self: &Arc<Self>, mut conn: Conn) {
        conn.reused = true;
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= POOL_MAX_IDLE {
            return;
        }
        idle.push(Idle {
            conn,
            since: Instant::now(),
        });
        drop(idle);
        self.reaper.call_once(|| {
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(POOL_IDLE_TIMEOUT / 3);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(client) = weak.upgrade() else { return };
                    let mut idle = client.idle.lock().unwrap_or_else(|e| e.into_inner());
                    idle.retain(|i| i.since.elapsed() < POOL_IDLE_TIMEOUT && i.conn.looks_open());
                }
            });
        });
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.connect_inner()).await {
            Ok(r) => r,
            Err(_) => Err(SendError::ConnectTimeout(CONNECT_TIMEOUT)),
        }
    }

    async fn connect_inner(&self) -> Result<Conn, SendError> {
        let addrs: Vec<SocketAddr> = match self.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, self.port)],
            Err(_) => tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|source| SendError::Resolve {
                    host: self.host.clone(),
                    source,
                })?
                .collect(),
        };
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    // Before a byte is written: a plain-http upstream must be the named
                    // account's. One that is not (a squatter on `[::1]:P` while the real
                    // upstream listens on 127.0.0.1:P, both names of `localhost`) is skipped
                    // for the next address instead of failing every request (outside review r10
                    // F-P4); the key goes to none of them.
                    if self.tls.is_none() {
                        if let Err(e) = self.owner.verify(&s).await {
                            last = Some(SendError::Owner(e));
                            continue;
                        }
                    }
                    tcp = Some(s);
                    break;
                }
                Err(source) => last = Some(SendError::Connect { addr, source }),
            }
        }
        let Some(tcp) = tcp else {
            return Err(last.unwrap_or_else(|| SendError::NoAddress {
                host: self.host.clone(),
            }));
        };
        let _ = tcp.set_nodelay(true);
        let _ = socket2::SockRef::from(&tcp)
            .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE));
        let io = match &self.tls {
            // the owner was verified above, before a byte was written
            None => Io::Plain(tcp),
            Some((connector, name)) => Io::Tls(Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(SendError::Tls)?,
            )),
        };
        Ok(Conn {
            io,
            rbuf: BytesMut::new(),
            reused: false,
        })
    }
}

/// One upstream connection and what has been read from it but not used yet.
pub struct Conn {
    io: Io,
    rbuf: BytesMut,
    /// Taken from the pool (served an earlier request).
    reused: bool,
}

impl Conn {
    /// Whether an idle connection may still be open: the upstream has not closed it (or sent
    /// anything unasked). Costs no system call unless the socket became readable.
    fn looks_open(&self) -> bool {
        let tcp = match &self.io {
            Io::Plain(s) => s,
            Io::Tls(t) => t.get_ref().0,
        };
        let mut probe = [0u8; 1];
        matches!(tcp.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// An upstream connection's byte stream (plain TCP or TLS).
pub enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Bytes queued for the upstream, written with `writev` (pieces are never joined: the key's
/// piece stays where it lives).
#[derive(Default)]
struct Out {
    queue: VecDeque<Bytes>,
    len: usize,
}

impl Out {
    fn from_queue(queue: VecDeque<Bytes>) -> Self {
        let len = queue.iter().map(Bytes::len).sum();
        Out { queue, len }
    }

    fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.len += b.len();
            self.queue.push_back(b);
        }
    }

    /// Writes everything queued, then flushes (rustls may hold records the socket refused).
    fn poll_write_all(&mut self, io: &mut Io, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let n = self.queue.len().min(MAX_IOV);
            for (slot, b) in slices.iter_mut().zip(self.queue.iter()) {
                *slot = IoSlice::new(b);
            }
            let mut written = ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.len -= written;
            while written > 0 {
                let Some(front) = self.queue.front_mut() else {
                    break;
                };
                if written >= front.len() {
                    written -= front.len();
                    self.queue.pop_front();
                } else {
                    front.advance(written);
                    written = 0;
                }
            }
        }
        Pin::new(&mut *io).poll_flush(cx)
    }
}

/// The request body on its way upstream, framed (`content-length` or chunked).
struct Pump<B> {
    body: B,
    chunked: bool,
    out: Out,
    body_done: bool,
    first: bool,
    /// The whole request when it was complete at the first write (a retry sends it again).
    replay: Option<VecDeque<Bytes>>,
    /// Everything written and flushed.
    finished: bool,
}

impl<B> Pump<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<crate::BoxError>,
{
    fn end(&mut self) {
        if !self.body_done {
            self.body_done = true;
            if self.chunked {
                self.out.push(Bytes::from_static(b"0\r\n\r\n"));
            }
        }
    }

    fn push_data(&mut self, data: Bytes) {
        if self.chunked {
            self.out.push(chunk_header(data.len()));
            self.out.push(data);
            self.out.push(Bytes::from_static(b"\r\n"));
        } else {
            self.out.push(data);
        }
    }

    /// Moves the body upstream: gathers every frame the client's body has ready, writes them
    /// with one `writev`, repeats until the body ends. Never waits for more body before
    /// writing what it has, except one scheduler turn while each turn brings another frame
    /// (hyper's server hands a body over one chunk per turn of the connection task: the chunks
    /// of one client read leave together; a pause in the client's sending ends the gathering).
    fn poll(&mut self, io: &mut Io, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        loop {
            let mut got = false;
            while !self.body_done && self.out.len < COALESCE_MAX {
                match Pin::new(&mut self.body).poll_frame(cx) {
                    Poll::Ready(Some(Ok(frame))) => {
                        // Trailers are dropped (the header table never saw them).
                        if let Ok(data) = frame.into_data() {
                            if !data.is_empty() {
                                self.push_data(data);
                                got = true;
                            }
                        }
                        if self.body.is_end_stream() {
                            self.end();
                        }
                    }
                    Poll::Ready(Some(Err(e))) => {
                        return Poll::Ready(Err(SendError::Body(e.into())));
                    }
                    Poll::Ready(None) => self.end(),
                    Poll::Pending => break,
                }
            }
            if self.first {
                self.first = false;
                if self.body_done {
                    self.replay = Some(self.out.queue.clone());
                }
            }
            if got && !self.body_done && self.out.len < COALESCE_MAX {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            ready!(self.out.poll_write_all(io, cx)).map_err(SendError::Write)?;
            if self.body_done {
                self.finished = true;
                return Poll::Ready(Ok(()));
            }
            if !got {
                // Nothing ready: the body's waker is registered.
                return Poll::Pending;
            }
        }
    }
}

/// Sends the request (head and body) and reads the response head; a response that arrives
/// before the body is sent ends the sending (the connection is then not reused).
async fn exchange<B>(
    conn: &mut Conn,
    pump: &mut Pump<B>,
    method: &Method,
) -> Result<ResponseHead, SendError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<crate::BoxError>,
{
    let mut write_failed: Option<io::Error> = None;
    poll_fn(|cx| {
        if !pump.finished && write_failed.is_none() {
            match pump.poll(&mut conn.io, cx) {
                Poll::Ready(Ok(())) | Poll::Pending => {}
                Poll::Ready(Err(SendError::Write(e))) => write_failed = Some(e),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            }
        }
        loop {
            if !conn.rbuf.is_empty() {
                if let Some((head, len)) =
                    parse_response_head(&conn.rbuf, method).map_err(SendError::Wire)?
                {
                    conn.rbuf.advance(len);
                    // Interim answers (100 Continue, 102, 103 Early Hints) are not relayed; a
                    // final 1xx (101) is returned and refused by the proxy.
                    if head.status.is_informational()
                        && head.status != StatusCode::SWITCHING_PROTOCOLS
                    {
                        continue;
                    }
                    return Poll::Ready(Ok(head));
                }
            }
            if conn.rbuf.capacity() - conn.rbuf.len() < READ_CHUNK / 4 {
                conn.rbuf.reserve(READ_CHUNK);
            }
            match ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut conn.io),
                cx,
                &mut conn.rbuf
            )) {
                Ok(0) => {
                    return Poll::Ready(Err(match write_failed.take() {
                        Some(e) => SendError::Write(e),
                        None if conn.rbuf.is_empty() => SendError::Closed,
                        None => SendError::Wire(WireError::Head(
                            "connection closed inside the response head".into(),
                        )),
                    }));
                }
                Ok(_) => {}
                Err(e) => {
                    return Poll::Ready(Err(match write_failed.take() {
                        Some(w) => SendError::Write(w),
                        None => SendError::Read(e),
                    }));
                }
            }
        }
    })
    .await
}

/// Reading the upstream response body failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamBodyError {
    #[error("reading the upstream response body failed: {0}")]
    Read(io::Error),
    #[error(transparent)]
    Wire(WireError),
}

/// The upstream's response body, read on the task that polls it (the client connection's):
/// each poll returns every complete piece of body that one read brought, as one frame. At its
/// end the connection goes back to the pool (when upstream allows keep-alive); dropped before
/// the end, the connection is closed.
pub struct UpstreamBody {
    conn: Option<Conn>,
    decoder: Decoder,
    keep_alive: bool,
    client: Arc<ClientInner>,
    trailers: Option<HeaderMap>,
    /// The last poll returned data: hyper may still hold it in its write buffer.
    fresh_data: bool,
    /// An error held back for one scheduler turn (see [`UpstreamBody::fail`]).
    failed: Option<UpstreamBodyError>,
}

impl UpstreamBody {
    /// Ends the body with `e`, closing the connection. When data was just handed over, the error
    /// waits one scheduler turn: hyper's server writes buffered data when the body is pending
    /// and drops it when the body fails, so the events before a broken upstream still reach the
    /// client (no timer: the task wakes itself).
    fn fail(
        &mut self,
        e: UpstreamBodyError,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamBodyError>>> {
        self.conn = None;
        if std::mem::take(&mut self.fresh_data) {
            self.failed = Some(e);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Some(Err(e)))
    }

    /// The body is complete: the connection goes back to the pool if it can carry another
    /// request (keep-alive, nothing unexpected after the body).
    fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.keep_alive && self.decoder.is_done() && conn.rbuf.is_empty() {
                self.client.put(conn);
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = UpstreamBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamBodyError>>> {
        let this = &mut *self;
        if let Some(e) = this.failed.take() {
            return Poll::Ready(Some(Err(e)));
        }
        let polled = this.poll_inner(cx);
        this.fresh_data = matches!(&polled, Poll::Ready(Some(Ok(f))) if f.is_data());
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done() && self.trailers.is_none() && self.failed.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) if self.trailers.is_none() => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

impl UpstreamBody {
    fn poll_inner(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpstreamBodyError>>> {
        let this = self;
        loop {
            if let Some(t) = this.trailers.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(t))));
            }
            if this.decoder.is_done() {
                this.release();
                return Poll::Ready(None);
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            if !conn.rbuf.is_empty() {
                let decoded = match this.decoder.decode(&mut conn.rbuf) {
                    Ok(d) => d,
                    Err(e) => return this.fail(UpstreamBodyError::Wire(e), cx),
                };
                this.trailers = decoded.trailers;
                if decoded.done {
                    this.release();
                }
                if let Some(data) = decoded.data {
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                if decoded.done || this.trailers.is_some() {
                    continue;
                }
            }
            let Some(conn) = this.conn.as_mut() else {
                continue;
            };
            if conn.rbuf.capacity() - conn.rbuf.len() < READ_CHUNK / 4 {
                conn.rbuf.reserve(READ_CHUNK);
            }
            match ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut conn.io),
                cx,
                &mut conn.rbuf
            )) {
                Ok(0) => {
                    this.keep_alive = false;
                    if let Err(e) = this.decoder.eof() {
                        return this.fail(UpstreamBodyError::Wire(e), cx);
                    }
                }
                Ok(_) => {}
                Err(e) => return this.fail(UpstreamBodyError::Read(e), cx),
            }
        }
    }
}
