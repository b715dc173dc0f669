//! Listening sockets: loopback TCP and unix stream sockets, bound from a [`ListenAddr`] or
//! adopted from an already-open socket (a pre-opened fd, e.g. systemd socket activation: the
//! caller turns the fd into a std listener and hands it to [`BoundListener::from_std_tcp`] /
//! [`BoundListener::from_std_unix`]).
//!
//! Binding happens before the async runtime exists (start-up step 2), so a privilege drop after
//! it runs while the process is still single-threaded; [`BoundListener::into_async`] then moves
//! the sockets into the runtime.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::policy::LocalEndpoint;

/// Where to listen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// A loopback TCP address.
    Tcp(SocketAddr),
    /// `localhost:PORT`: both `127.0.0.1:PORT` and `[::1]:PORT`. A client resolving `localhost`
    /// may try either family first, and a loopback port is anybody's: bound on one family only,
    /// another local user who took the other received the clients' prompts and sent forged
    /// answers (outside review r10 F-P5).
    Localhost(u16),
    /// A unix stream socket at this path.
    Unix(PathBuf),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Localhost(p) => write!(f, "localhost:{p}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A listening socket bound during start-up, not yet registered with the runtime.
#[derive(Debug)]
pub enum BoundListener {
    Tcp(std::net::TcpListener),
    Unix {
        listener: std::os::unix::net::UnixListener,
        path: PathBuf,
    },
}

/// Binding failed: which address and why.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("failed to listen on {addr}: {source}")]
    Tcp { addr: SocketAddr, source: io::Error },
    #[error("failed to listen on unix socket {}: {source}", path.display())]
    Unix { path: PathBuf, source: io::Error },
    #[error("failed to read the bound address of {addr}: {source}")]
    LocalAddr { addr: String, source: io::Error },
}

impl BoundListener {
    /// Binds `addr`. A unix socket path that already exists is an error (never unlinked here).
    pub fn bind(addr: &ListenAddr) -> Result<Self, BindError> {
        match addr {
            ListenAddr::Tcp(a) => bind_tcp(*a)
                .map(BoundListener::Tcp)
                .map_err(|source| BindError::Tcp { addr: *a, source }),
            // one listener here; `bind_localhost` binds both
            ListenAddr::Localhost(p) => {
                let a = SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), *p);
                bind_tcp(a)
                    .map(BoundListener::Tcp)
                    .map_err(|source| BindError::Tcp { addr: a, source })
            }
            ListenAddr::Unix(path) => std::os::unix::net::UnixListener::bind(path)
                .map(|listener| BoundListener::Unix {
                    listener,
                    path: path.clone(),
                })
                .map_err(|source| BindError::Unix {
                    path: path.clone(),
                    source,
                }),
        }
    }

    /// Adopts an already-listening TCP socket.
    pub fn from_std_tcp(listener: std::net::TcpListener) -> Self {
        BoundListener::Tcp(listener)
    }

    /// Adopts an already-listening unix socket; `path` is how it is described and logged.
    pub fn from_std_unix(listener: std::os::unix::net::UnixListener, path: PathBuf) -> Self {
        BoundListener::Unix { listener, path }
    }

    /// What was actually bound: `127.0.0.1:40123` or `unix:/run/x.sock` (for server-info).
    pub fn describe(&self) -> Result<String, BindError> {
        match self {
            BoundListener::Tcp(l) => {
                l.local_addr()
                    .map(|a| a.to_string())
                    .map_err(|source| BindError::LocalAddr {
                        addr: "tcp listener".into(),
                        source,
                    })
            }
            BoundListener::Unix { path, .. } => Ok(format!("unix:{}", path.display())),
        }
    }

    /// The TCP port, if this is a TCP listener.
    pub fn tcp_port(&self) -> Option<u16> {
        match self {
            BoundListener::Tcp(l) => l.local_addr().ok().map(|a| a.port()),
            BoundListener::Unix { .. } => None,
        }
    }

    /// Registers the socket with the current tokio runtime.
    pub fn into_async(self) -> io::Result<Listener> {
        match self {
            BoundListener::Tcp(l) => {
                l.set_nonblocking(true)?;
                let port = l.local_addr()?.port();
                Ok(Listener::Tcp {
                    listener: tokio::net::TcpListener::from_std(l)?,
                    port,
                })
            }
            BoundListener::Unix { listener, path } => {
                listener.set_nonblocking(true)?;
                Ok(Listener::Unix {
                    listener: tokio::net::UnixListener::from_std(listener)?,
                    path,
                })
            }
        }
    }
}

/// Accept queue length asked of `listen(2)` (the kernel caps it at `net.core.somaxconn`).
pub const LISTEN_BACKLOG: i32 = 4096;

/// Like `std::net::TcpListener::bind` (`SO_REUSEADDR`, close-on-exec; IPv6 only for an IPv6
/// address) but with [`LISTEN_BACKLOG`] instead of std's 128.
/// `localhost:port`: `127.0.0.1:port`, then `[::1]` on the same port (the one the first got
/// when `port` is 0). A machine without IPv6 loopback (`EADDRNOTAVAIL`, `EAFNOSUPPORT`) gets the
/// IPv4 one only (nobody can take `[::1]` there either); any other failure, `EADDRINUSE` from a
/// squatter above all, is an error.
pub fn bind_localhost(port: u16) -> Result<Vec<BoundListener>, BindError> {
    let v4 = SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), port);
    let l4 = bind_tcp(v4).map_err(|source| BindError::Tcp { addr: v4, source })?;
    let got = l4
        .local_addr()
        .map_err(|source| BindError::LocalAddr {
            addr: v4.to_string(),
            source,
        })?
        .port();
    let v6 = SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), got);
    let mut out = vec![BoundListener::Tcp(l4)];
    match bind_tcp(v6) {
        Ok(l6) => out.push(BoundListener::Tcp(l6)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EADDRNOTAVAIL) | Some(libc::EAFNOSUPPORT)
            ) => {}
        Err(source) => return Err(BindError::Tcp { addr: v6, source }),
    }
    Ok(out)
}

fn bind_tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// A listening socket in the runtime.
#[derive(Debug)]
pub enum Listener {
    Tcp {
        listener: tokio::net::TcpListener,
        port: u16,
    },
    Unix {
        listener: tokio::net::UnixListener,
        path: PathBuf,
    },
}

/// The two ends of an accepted connection, as the peer authorization hook sees them.
#[derive(Clone, Debug)]
pub enum ConnAddrs {
    Tcp { local: SocketAddr, peer: SocketAddr },
    Unix { path: PathBuf },
}

impl ConnAddrs {
    /// For the `Host` check.
    pub fn local_endpoint(&self) -> LocalEndpoint {
        match self {
            ConnAddrs::Tcp { local, .. } => LocalEndpoint::Tcp { port: local.port() },
            ConnAddrs::Unix { .. } => LocalEndpoint::Unix,
        }
    }

    /// The peer as written in the audit log.
    pub fn peer_label(&self) -> String {
        match self {
            ConnAddrs::Tcp { peer, .. } => peer.to_string(),
            ConnAddrs::Unix { path } => format!("unix:{}", path.display()),
        }
    }
}

impl Listener {
    /// Accepts one connection; TCP connections get `TCP_NODELAY` (no Nagle stall on small SSE
    /// frames).
    pub async fn accept(&self) -> io::Result<(Conn, ConnAddrs)> {
        match self {
            Listener::Tcp { listener, .. } => {
                let (stream, peer) = listener.accept().await?;
                stream.set_nodelay(true)?;
                let local = stream.local_addr()?;
                Ok((Conn::Tcp(stream), ConnAddrs::Tcp { local, peer }))
            }
            Listener::Unix { listener, path } => {
                let (stream, _) = listener.accept().await?;
                Ok((Conn::Unix(stream), ConnAddrs::Unix { path: path.clone() }))
            }
        }
    }
}

/// An accepted connection.
#[derive(Debug)]
pub enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

impl AsFd for Conn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Conn::Tcp(s) => s.as_fd(),
            Conn::Unix(s) => s.as_fd(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Tcp(s) => s.is_write_vectored(),
            Conn::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
