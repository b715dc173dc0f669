//! The per-connection authorizer: identifies the peer (SO_PEERCRED on unix sockets, the owner of
//! the peer socket through sock_diag on loopback TCP) and applies `--allow-user`/`--allow-group`.
//! A refused peer gets 403 on every request, `/shutdown` included.

use std::sync::Arc;

use codex_privsep::{AllowList, PeerIdentifier};

use crate::access::{ConnectionInfo, PeerAuthorizer, PeerDecision, PeerIdentity};
use crate::listener::ConnAddrs;

/// Identifies peers and applies the allow-list. Every peer is identified: unix peers by
/// SO_PEERCRED, loopback TCP peers by a sock_diag lookup (one netlink round trip per
/// connection, not per request). The uid is needed even without an allow-list or a policy: the
/// per-user connection cap (`--max-connections-per-user`) and the per-user WebSocket session cap
/// count by it (outside review r18 F3, F4: unidentified peers shared one count, so one user's
/// connections or sessions refused everybody's). The policy applies per uid, and a peer whose uid
/// is unknown is refused there.
pub struct PeerAccess {
    allow: AllowList,
    ident: Arc<PeerIdentifier>,
    /// `/etc/subuid`: a subordinate uid answers as its range's owner (outside review r64).
    subuids: crate::subuid::SubUids,
}

impl PeerAccess {
    /// The authorizer for `allow`; `ident` is the sock_diag socket, opened before confinement;
    /// `policy`: a governance policy needs every peer's uid.
    pub fn new(
        allow: AllowList,
        ident: Arc<PeerIdentifier>,
        _policy: bool,
        subuids: crate::subuid::SubUids,
    ) -> Self {
        PeerAccess {
            allow,
            ident,
            subuids,
        }
    }
}

impl PeerAuthorizer for PeerAccess {
    fn authorize(&self, conn: &ConnectionInfo<'_>) -> PeerDecision {
        let found = match conn.addrs {
            ConnAddrs::Tcp { local, peer } => self.ident.peer_uid_tcp(*local, *peer),
            ConnAddrs::Unix { .. } => codex_privsep::peer_cred_unix(conn.socket),
        };
        match found {
            Ok(cred) => {
                // the user who answers for it: a subordinate uid's owner (r64 F1, F2); the
                // allow-list below still judges the kernel's uid
                let answer = self.subuids.owner_of(cred.uid);
                let owner = match &answer {
                    crate::subuid::Answer::Owner(o) => Some(*o),
                    _ => None,
                };
                let identity = PeerIdentity {
                    uid: Some(owner.unwrap_or(cred.uid)),
                    kernel_uid: owner.map(|_| cred.uid),
                    gid: cred.gid,
                    pid: cred.pid,
                };
                if let crate::subuid::Answer::Ambiguous(owners) = answer {
                    return PeerDecision::Refuse {
                        identity,
                        reason: format!(
                            "uid {} lies in the subordinate ranges of several users (uids {owners:?}, --subuid-file): nobody answers for it",
                            cred.uid
                        ),
                    };
                }
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
