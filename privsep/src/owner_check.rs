//! Before a credential goes over plain http to a loopback port: is the listener ours?
//!
//! Loopback ports belong to nobody: another local user listening on `127.0.0.1:P` or `[::1]:P`
//! (nothing of ours there yet, or `localhost` resolving to the other family) would receive
//! `Authorization: Bearer <key>` with the first request. [`OwnerCheckedConnector`] wraps
//! hyper's TCP connector: after each new plain-http connection and before a byte is written on
//! it, it asks sock_diag ([`PeerIdentifier`]) who owns the other end and refuses the connection
//! unless it is the expected uid. HTTPS connections are authenticated by TLS instead and are not
//! checked. Cost: one sock_diag round trip (~6 µs) per new plain-http connection; pooled
//! connections are not checked again.
//!
//! Users: `responses-api-proxy` (its upstream must belong to `--upstream-owner`, default root)
//! and the `codex` CLI (a loopback provider that receives the user's key must belong to the user).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use http::Uri;
use http::uri::Scheme;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::peer::{PeerError, PeerIdentifier};

/// Who must own a plain-http server's socket, how refusals name things, and the sock_diag
/// socket to ask (installed once, possibly after construction: the proxy opens it only after its
/// listeners are bound).
#[derive(Debug)]
pub struct ExpectedOwner {
    uid: u32,
    /// What is being connected to, for messages: "plain-http upstream".
    subject: &'static str,
    /// Who should own it, for messages: "the --upstream-owner uid".
    owner: &'static str,
    ident: OnceLock<Arc<PeerIdentifier>>,
    /// Root may own it too ([`ExpectedOwner::root_too`]).
    root_too: bool,
}

impl ExpectedOwner {
    /// `uid` must own the server socket. Refusals read
    /// "`{subject}` ADDR is served by uid N, not `{owner}` UID; the key was not sent".
    pub fn new(uid: u32, subject: &'static str, owner: &'static str) -> Self {
        ExpectedOwner {
            uid,
            subject,
            owner,
            ident: OnceLock::new(),
            root_too: false,
        }
    }

    /// Accept a server run by root as well (root can read the user's files anyway: a
    /// system-wide service on loopback is no other user).
    pub fn root_too(mut self) -> Self {
        self.root_too = true;
        self
    }

    /// [`ExpectedOwner::new`] for this process's effective uid (a client protecting its user's
    /// key), with its sock_diag socket opened and installed.
    pub fn current_user(subject: &'static str, owner: &'static str) -> Result<Self, PeerError> {
        let (_, euid, _) = crate::sys::getresuid().map_err(|source| PeerError::Address {
            call: "getresuid",
            source,
        })?;
        let me = Self::new(euid, subject, owner);
        me.install(Arc::new(PeerIdentifier::new()?));
        Ok(me)
    }

    /// Installs the sock_diag socket (once; later calls are ignored). Until then every plain-http
    /// connection is refused.
    pub fn install(&self, ident: Arc<PeerIdentifier>) {
        let _ = self.ident.set(ident);
    }

    /// The expected uid.
    pub fn uid(&self) -> u32 {
        self.uid
    }

    /// Waits until the server has accepted the connection (before `accept` the kernel knows no
    /// owning process: `NotOwned`), then compares its owner with the expected uid. Nothing is
    /// written on the connection before this returns `Ok`.
    pub async fn verify(&self, stream: &TcpStream) -> io::Result<()> {
        let denied = |msg: String| io::Error::new(io::ErrorKind::PermissionDenied, msg);
        let ident = self.ident.get().ok_or_else(|| {
            denied(format!(
                "{}: no peer identification yet; the key was not sent",
                self.subject
            ))
        })?;
        let (local, peer) = (stream.local_addr()?, stream.peer_addr()?);
        let deadline = tokio::time::Instant::now() + ACCEPT_WAIT;
        let mut tries = 0u32;
        let cred = loop {
            match ident.peer_uid_tcp(local, peer) {
                Ok(cred) => break cred,
                Err(PeerError::NotOwned { .. }) if tokio::time::Instant::now() < deadline => {
                    // A server usually accepts within microseconds: look again at once a few
                    // times (each look is a sock_diag round trip) before sleeping; a first
                    // sleep of 2 ms made every WebSocket upgrade through a plain-http upstream
                    // take 3.6 ms against nginx's 0.3 ms (the bench's WebSocket cell).
                    tries += 1;
                    if tries <= 16 {
                        tokio::task::yield_now().await;
                    } else {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
                Err(e) => {
                    return Err(denied(format!(
                        "{} {peer}: its owner could not be identified ({e}); the key was not sent",
                        self.subject
                    )));
                }
            }
        };
        if cred.uid != self.uid && !(self.root_too && cred.uid == 0) {
            return Err(denied(format!(
                "{} {peer} is served by uid {}, not {} {}; the key was not sent",
                self.subject, cred.uid, self.owner, self.uid
            )));
        }
        Ok(())
    }
}

/// How long a plain-http server may take to `accept` before it is refused.
const ACCEPT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The TCP connector with the owner check for `http://` URIs.
#[derive(Clone, Debug)]
pub struct OwnerCheckedConnector {
    inner: HttpConnector,
    owner: Arc<ExpectedOwner>,
}

impl OwnerCheckedConnector {
    pub fn new(inner: HttpConnector, owner: Arc<ExpectedOwner>) -> Self {
        OwnerCheckedConnector { inner, owner }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for OwnerCheckedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let plain = uri.scheme() == Some(&Scheme::HTTP);
        let connecting = self.inner.call(uri);
        let owner = Arc::clone(&self.owner);
        Box::pin(async move {
            let io = connecting.await?;
            if plain {
                owner.verify(io.inner()).await?;
            }
            Ok(io)
        })
    }
}
