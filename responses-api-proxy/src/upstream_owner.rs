//! A plain-http upstream gets the key in clear text, so it must be on this machine and its
//! listening socket must belong to the account the administrator named (`--upstream-owner`,
//! default root): loopback ports belong to nobody, and another local user listening on
//! `127.0.0.1:P` or `[::1]:P` (nothing yet there, or `localhost` resolving to the other family)
//! would otherwise receive `Authorization: Bearer <key>` with the first request.
//!
//! The upstream client (`client.rs`) calls [`UpstreamOwner::verify`] after each new plain-http
//! upstream connection and before a byte is written on it: it asks sock_diag who owns the other end (the same lookup the
//! allow-list uses for clients) and refuses the connection unless it is that uid. HTTPS upstreams
//! are authenticated by TLS instead and are not checked. Cost: one sock_diag round trip (~6 µs)
//! per new plain-http upstream connection; pooled connections are not checked again.

use std::io;
use std::sync::{Arc, OnceLock};

use codex_privsep::{PeerError, PeerIdentifier};
use tokio::net::TcpStream;

/// Who must own a plain-http upstream's socket, and the sock_diag socket to ask (installed by the
/// confinement step, which opens it after the listeners are bound).
#[derive(Debug)]
pub struct UpstreamOwner {
    uid: u32,
    ident: OnceLock<Arc<PeerIdentifier>>,
}

impl UpstreamOwner {
    pub fn new(uid: u32) -> Self {
        UpstreamOwner {
            uid,
            ident: OnceLock::new(),
        }
    }

    /// Installs the sock_diag socket (once; later calls are ignored).
    pub fn install(&self, ident: Arc<PeerIdentifier>) {
        let _ = self.ident.set(ident);
    }

    /// Waits until the upstream has accepted the connection (before `accept` the kernel knows
    /// no owning process: `NotOwned`), then compares its owner with the named uid. Nothing is
    /// written on the connection before this returns `Ok`.
    pub async fn verify(&self, stream: &TcpStream) -> io::Result<()> {
        let denied = |msg: String| io::Error::new(io::ErrorKind::PermissionDenied, msg);
        let ident = self
            .ident
            .get()
            .ok_or_else(|| denied("plain-http upstream: no peer identification yet".into()))?;
        let (local, peer) = (stream.local_addr()?, stream.peer_addr()?);
        let deadline = tokio::time::Instant::now() + ACCEPT_WAIT;
        let cred = loop {
            match ident.peer_uid_tcp(local, peer) {
                Ok(cred) => break cred,
                Err(PeerError::NotOwned { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
                Err(e) => {
                    return Err(denied(format!(
                        "plain-http upstream {peer}: its owner could not be identified ({e}); \
                         the key was not sent"
                    )));
                }
            }
        };
        if cred.uid != self.uid {
            return Err(denied(format!(
                "plain-http upstream {peer} is served by uid {}, not the --upstream-owner uid {}; \
                 the key was not sent",
                cred.uid, self.uid
            )));
        }
        Ok(())
    }
}

/// How long a plain-http upstream may take to `accept` before it is refused.
const ACCEPT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
