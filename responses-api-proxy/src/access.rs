//! The per-connection peer identification and authorization hook.
//!
//! Called once per accepted connection, on the connection's own task (never in the accept loop),
//! before any byte of the request is read. Its [`PeerDecision`] is attached to every request on
//! that connection: a refusal turns each request into `403` with a JSON error body and an audit
//! line carrying the identity and reason; an allowed peer's uid appears in the audit line.
//!
//! The one implementation, `peer_access::PeerAccess` (`--allow-user`, `--allow-group`:
//! `SO_PEERCRED` on unix sockets, sock_diag on loopback TCP), is produced by the confinement step;
//! there is no default that skips it.

use std::os::fd::BorrowedFd;

use crate::listener::ConnAddrs;

/// Who is on the other end, as far as it is known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The local user who answers for the peer: the kernel's uid, or the owner of the
    /// subordinate range it lies in (`crate::subuid`).
    pub uid: Option<u32>,
    /// The kernel's uid when it is a subordinate uid of `uid`'s (`None`: it is `uid`).
    pub kernel_uid: Option<u32>,
    pub gid: Option<u32>,
    pub pid: Option<i32>,
}

/// The hook's verdict for one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerDecision {
    Allow(PeerIdentity),
    /// Every request on the connection gets `403`; `reason` goes to the audit log (never to the
    /// client, which only learns that it is not allowed).
    Refuse {
        identity: PeerIdentity,
        reason: String,
    },
}

impl PeerDecision {
    pub fn identity(&self) -> &PeerIdentity {
        match self {
            PeerDecision::Allow(id) | PeerDecision::Refuse { identity: id, .. } => id,
        }
    }
}

/// What the hook gets: the listener-side and peer-side addresses, and the connected socket (for
/// `SO_PEERCRED` / `getsockopt`), borrowed for the duration of the call.
#[derive(Debug)]
pub struct ConnectionInfo<'a> {
    pub addrs: &'a ConnAddrs,
    pub socket: BorrowedFd<'a>,
}

/// Decides, per connection, who the peer is and whether it may use the key.
///
/// Runs on a runtime worker thread: it must not block for long (a netlink round trip is fine).
pub trait PeerAuthorizer: Send + Sync + 'static {
    fn authorize(&self, conn: &ConnectionInfo<'_>) -> PeerDecision;
}
