//! Addresses for tests that need "nothing answers here", without port races.
//!
//! Picking a free port, closing it and hoping that nothing else takes it before the test uses it
//! is a race with every other test binary running in parallel. [`RefusingPort`] instead keeps the
//! port *bound but not listening* for as long as it lives: nobody else can bind it, and every
//! connection to it is refused (RST) by the kernel.

use std::net::SocketAddr;

/// A loopback TCP port that is reserved for the test and refuses every connection.
#[derive(Debug)]
pub struct RefusingPort {
    _socket: tokio::net::TcpSocket,
    addr: SocketAddr,
}

impl RefusingPort {
    /// Binds 127.0.0.1:0 without listening.
    pub fn new() -> std::io::Result<Self> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = socket.local_addr()?;
        Ok(RefusingPort {
            _socket: socket,
            addr,
        })
    }

    /// The reserved port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn connections_are_refused_and_the_port_stays_taken() {
        let p = RefusingPort::new().unwrap();
        let e = std::net::TcpStream::connect(("127.0.0.1", p.port())).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        let e = std::net::TcpListener::bind(("127.0.0.1", p.port())).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse);
    }
}
