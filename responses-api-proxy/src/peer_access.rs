//! The per-connection authorizer: identifies the peer (SO_PEERCRED on unix sockets, the owner of
//! the peer socket through sock_diag on loopback TCP) and applies `--allow-user`/`--allow-group`.
//! A refused peer gets 403 on every request, `/shutdown` included.

use std::sync::Arc;

use codex_privsep::{AllowList, PeerIdentifier};

use crate::access::{ConnectionInfo, PeerAuthorizer, PeerDecision, PeerIdentity};
use crate::listener::ConnAddrs;

/// Identifies peers and applies the allow-list. Unix peers are always identified (for the audit
/// line); loopback TCP peers only when an allow-list or a `--policy` is set (a sock_diag lookup
/// per connection): the policy applies per uid, and a peer whose uid is unknown is refused there.
pub struct PeerAccess {
    allow: AllowList,
    ident: Arc<PeerIdentifier>,
    /// `--policy`: identify TCP peers even without an allow-list.
    identify_tcp: bool,
}

impl PeerAccess {
    /// The authorizer for `allow`; `ident` is the sock_diag socket, opened before confinement;
    /// `policy`: a governance policy needs every peer's uid.
    pub fn new(allow: AllowList, ident: Arc<PeerIdentifier>, policy: bool) -> Self {
        let identify_tcp = policy || allow.is_restricted();
        PeerAccess {
            allow,
            ident,
            identify_tcp,
        }
    }
}

impl PeerAuthorizer for PeerAccess {
    fn authorize(&self, conn: &ConnectionInfo<'_>) -> PeerDecision {
        let found = match conn.addrs {
            // Without an allow-list nobody is refused: skip the netlink round trip (the audit
            // line then has no uid for TCP peers). SO_PEERCRED below is one cheap getsockopt.
            ConnAddrs::Tcp { .. } if !self.identify_tcp => {
                return PeerDecision::Allow(PeerIdentity::default());
            }
            ConnAddrs::Tcp { local, peer } => self.ident.peer_uid_tcp(*local, *peer),
            ConnAddrs::Unix { .. } => codex_privsep::peer_cred_unix(conn.socket),
        };
        match found {
            Ok(cred) => {
                let identity = PeerIdentity {
                    uid: Some(cred.uid),
                    gid: cred.gid,
                    pid: cred.pid,
                };
                if self.allow.allows(cred.uid) {
                    PeerDecision::Allow(identity)
                } else {
                    PeerDecision::Refuse {
                        identity,
                        reason: match cred.pid {
                            Some(pid) => format!(
                                "uid {} (pid {pid}) is not allowed (--allow-user/--allow-group)",
                                cred.uid
                            ),
                            None => format!(
                                "uid {} is not allowed (--allow-user/--allow-group)",
                                cred.uid
                            ),
                        },
                    }
                }
            }
            Err(e) if self.allow.is_restricted() => PeerDecision::Refuse {
                identity: PeerIdentity::default(),
                reason: format!("peer could not be identified: {e}"),
            },
            Err(_) => PeerDecision::Allow(PeerIdentity::default()),
        }
    }
}
