//! Access control and privilege separation (issue 8), on top of `codex-privsep`:
//!
//! - the flags (`--socket-mode`, `--socket-group`, `--allow-user`, `--allow-group`, `--user`,
//!   `--dangerously-run-as-root`, `--api-key-file`, `--api-key-credential`);
//! - the key from a file or a systemd credential instead of stdin;
//! - binding `--listen unix:PATH` safely and receiving systemd-activated listeners;
//! - the per-connection [`PeerAccess`] authorizer (a refused peer gets 403 on every request,
//!   `/shutdown` included);
//! - the start-up step that drops privileges and confines the process.
//!
//! Start-up order: [`AccessPlan::from_args`] (before the key: unknown users/groups fail early,
//! and `/etc` is still readable) → key → [`bind_listeners`] → server-info →
//! [`AccessPlan::drop_and_confine`] → runtime.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use codex_privsep::{
    ActivatedListener, AllowList, ConfineSpec, DEFAULT_SOCKET_MODE, PeerIdentifier, RunAs,
    UnixSocketSpec,
};

use crate::access::{ConnectionInfo, PeerAuthorizer, PeerDecision, PeerIdentity};
use crate::cli::{Args, ListenAddr};
use crate::listener::{BindError, BoundListener};

/// The access-control flags (flattened into [`Args`]).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AccessArgs {
    /// Permission bits of unix sockets created by `--listen unix:PATH`, octal (default 0660:
    /// owner and group). The allow-list applies in any case.
    #[arg(long, value_name = "MODE", value_parser = codex_privsep::parse_socket_mode)]
    pub socket_mode: Option<u32>,

    /// Group (name or gid) of unix sockets created by `--listen unix:PATH`.
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,

    /// Only this local user (name or uid) may use the key (repeatable). Peers are identified by
    /// the kernel: SO_PEERCRED on unix sockets, the owner of the peer socket on loopback TCP.
    #[arg(long = "allow-user", value_name = "USER")]
    pub allow_user: Vec<String>,

    /// Only members of this group (name or gid; supplementary membership counts) may use the
    /// key (repeatable). Membership is read at start-up.
    #[arg(long = "allow-group", value_name = "GROUP")]
    pub allow_group: Vec<String>,

    /// After reading the key, binding and writing --server-info, run as USER (name, uid with a
    /// passwd entry, or UID:GID). Started as root without --user, the proxy runs as `nobody`.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Keep running as root (no privilege drop). Dangerous: a bug in the proxy is then a bug in
    /// a root process.
    #[arg(long)]
    pub dangerously_run_as_root: bool,

    /// Read the key from FILE instead of stdin (a regular file, owned by root or by us, with no
    /// group/other permission bits).
    #[arg(long, value_name = "FILE", conflicts_with = "api_key_credential")]
    pub api_key_file: Option<PathBuf>,

    /// Read the key from the systemd credential NAME (`$CREDENTIALS_DIRECTORY/NAME`, from
    /// `LoadCredential=NAME:...`), with the same checks as --api-key-file.
    #[arg(long, value_name = "NAME")]
    pub api_key_credential: Option<String>,
}

/// Opens `--api-key-file` / `--api-key-credential`, if given (`None`: the key comes on stdin).
pub fn open_key_source(args: &Args) -> Result<Option<File>, String> {
    let path = match (&args.access.api_key_file, &args.access.api_key_credential) {
        (Some(p), _) => p.clone(),
        (None, Some(name)) => codex_privsep::systemd_credential(name)
            .map_err(|e| format!("--api-key-credential: {e}"))?,
        (None, None) => return Ok(None),
    };
    codex_privsep::open_key_file(&path)
        .map(Some)
        .map_err(|e| format!("--api-key-file: {e}"))
}

/// Binds every `--listen` address (unix sockets through `codex_privsep::bind_unix_listener`:
/// mode, group, stale-socket handling) and adds the listeners systemd passed (`LISTEN_FDS`). With
/// activated listeners and neither `--listen` nor `--port`, only those are used.
pub fn bind_listeners(args: &Args) -> Result<Vec<BoundListener>, String> {
    let activated = codex_privsep::listeners_from_systemd()
        .map_err(|e| format!("systemd socket activation: {e}"))?;
    let mut out = Vec::new();
    let use_flags = activated.is_empty() || !args.listen.is_empty() || args.port.is_some();
    if use_flags {
        let group = match &args.access.socket_group {
            Some(g) => Some(
                codex_privsep::users::resolve_gid(g).map_err(|e| format!("--socket-group: {e}"))?,
            ),
            None => None,
        };
        for addr in args.listen_addrs() {
            match &addr {
                ListenAddr::Unix(path) => {
                    let spec = UnixSocketSpec {
                        path: path.clone(),
                        mode: args.access.socket_mode.unwrap_or(DEFAULT_SOCKET_MODE),
                        group,
                    };
                    let l = codex_privsep::bind_unix_listener(&spec).map_err(|e| e.to_string())?;
                    out.push(BoundListener::from_std_unix(l, path.clone()));
                }
                ListenAddr::Tcp(_) => {
                    out.push(BoundListener::bind(&addr).map_err(|e: BindError| e.to_string())?)
                }
            }
        }
    }
    for l in activated {
        out.push(match l {
            ActivatedListener::Tcp(t) => BoundListener::from_std_tcp(t),
            ActivatedListener::Unix(u) => {
                let path = u
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(PathBuf::from))
                    .unwrap_or_else(|| PathBuf::from("(systemd socket)"));
                BoundListener::from_std_unix(u, path)
            }
        });
    }
    Ok(out)
}

/// Resolved at start-up, applied after the server-info file is written.
pub struct AccessPlan {
    run_as: RunAs,
    allow: AllowList,
    /// `--dump-dir` did not exist before start-up: the proxy creates it (step 0) and hands it
    /// to the account it drops to.
    dump_dir_is_ours: bool,
}

impl AccessPlan {
    /// Resolves the allow-list and the account (the sock_diag socket is opened later, in
    /// [`AccessPlan::drop_and_confine`]). Fails with a clear
    /// message for unknown users/groups, `--user root`, contradictory flags.
    pub fn from_args(args: &Args) -> Result<Self, String> {
        let a = &args.access;
        let run_as = RunAs::decide(a.user.as_deref(), a.dangerously_run_as_root)
            .map_err(|e| e.to_string())?;
        let allow = AllowList::resolve(&a.allow_user, &a.allow_group).map_err(|e| e.to_string())?;
        let dump_dir_is_ours = args
            .dump_dir
            .as_ref()
            .is_some_and(|d| std::fs::symlink_metadata(d).is_err());
        Ok(Self {
            run_as,
            allow,
            dump_dir_is_ours,
        })
    }

    /// Start-up step 4: privilege drop, then no_new_privs + Landlock + seccomp. Must run while
    /// the process is single-threaded (checked). Returns the per-connection authorizer.
    pub fn drop_and_confine(self, args: &Args) -> Result<Arc<dyn PeerAuthorizer>, String> {
        // The sock_diag socket is opened only now, after the listeners were bound: systemd's
        // LISTEN_FDS are taken as fds 3.. at bind time, and a descriptor opened earlier could
        // sit at one of those numbers. Before confinement, whose seccomp filter refuses netlink.
        let ident = PeerIdentifier::new().map_err(|e| format!("peer identification: {e}"))?;
        if let (RunAs::Drop(account), Some(dir)) = (&self.run_as, &args.dump_dir) {
            if self.dump_dir_is_ours {
                give_created_dir(dir, account.uid, account.gid)?;
            }
        }
        let dropped = self.run_as.apply().map_err(|e| e.to_string())?;
        // The account must be able to create dumps: fail now, not at the first request.
        if let Some(dir) = &args.dump_dir {
            codex_privsep::check_writable_dir(dir).map_err(|e| {
                format!(
                    "--dump-dir {} is not writable by the account the proxy runs as (uid {}): \
                     {e}; chown it to that account, or choose another with --user",
                    dir.display(),
                    dropped.uid.1
                )
            })?;
        }
        if dropped.dangerously_root {
            tracing::warn!("--dangerously-run-as-root: the proxy keeps running as root");
        }
        tracing::info!(
            user = dropped.user.as_deref().unwrap_or("?"),
            uid = dropped.uid.1,
            gid = dropped.gid.1,
            dropped = dropped.dropped,
            "privileges"
        );
        let spec = confine_spec(args)?;
        let report = codex_privsep::confine(&spec).map_err(|e| e.to_string())?;
        tracing::info!(confinement = %report.summary(), "confined");
        let hardening = serde_json::to_string(&secure_main::hardening_report())
            .unwrap_or_else(|e| format!("unserialisable: {e}"));
        tracing::info!(%hardening, "hardening report");
        Ok(Arc::new(PeerAccess {
            allow: self.allow,
            ident,
        }))
    }
}

/// What serving needs: the dump directory, the upstream's TCP port, DNS when the upstream is a
/// host name.
fn confine_spec(args: &Args) -> Result<ConfineSpec, String> {
    let url = url_parts(&args.upstream_url)?;
    Ok(ConfineSpec {
        read_paths: Vec::new(),
        write_dirs: args.dump_dir.iter().cloned().collect(),
        connect_ports: vec![url.port],
        allow_dns: !url.host_is_ip,
    })
}

struct UrlParts {
    port: u16,
    host_is_ip: bool,
}

fn url_parts(url: &str) -> Result<UrlParts, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("--upstream-url {url:?}: {e}"))?;
    let host = uri
        .host()
        .ok_or_else(|| format!("--upstream-url {url:?}: no host"))?;
    let port = match uri.port_u16() {
        Some(p) => p,
        None if uri.scheme_str() == Some("http") => 80,
        None => 443,
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    Ok(UrlParts {
        port,
        host_is_ip: bare.parse::<std::net::IpAddr>().is_ok(),
    })
}

/// Hands a dump directory the proxy created at start-up (owned by us, mode 0700) to the account
/// it is about to become. `lchown`: never follows a symlink; an existing directory someone else
/// prepared is never chowned.
fn give_created_dir(dir: &std::path::Path, uid: u32, gid: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let md =
        std::fs::symlink_metadata(dir).map_err(|e| format!("--dump-dir {}: {e}", dir.display()))?;
    if !md.is_dir() || md.uid() != 0 {
        return Err(format!(
            "--dump-dir {}: not the root-owned directory created at start-up",
            dir.display()
        ));
    }
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
        .map_err(|e| format!("--dump-dir {}: chown to uid {uid}: {e}", dir.display()))?;
    tracing::info!(dir = %dir.display(), uid, "dump directory created for the unprivileged account");
    Ok(())
}

/// Identifies peers and applies the allow-list. Unix peers are always identified (for the audit
/// line); loopback TCP peers only when an allow-list is set (a sock_diag lookup per connection).
pub struct PeerAccess {
    allow: AllowList,
    ident: PeerIdentifier,
}

impl PeerAuthorizer for PeerAccess {
    fn authorize(&self, conn: &ConnectionInfo<'_>) -> PeerDecision {
        let found = match conn.addrs {
            // Without an allow-list nobody is refused: skip the netlink round trip (the audit
            // line then has no uid for TCP peers). SO_PEERCRED below is one cheap getsockopt.
            crate::listener::ConnAddrs::Tcp { .. } if !self.allow.is_restricted() => {
                return PeerDecision::Allow(PeerIdentity::default());
            }
            crate::listener::ConnAddrs::Tcp { local, peer } => {
                self.ident.peer_uid_tcp(*local, *peer)
            }
            crate::listener::ConnAddrs::Unix { .. } => codex_privsep::peer_cred_unix(conn.socket),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_ports_and_dns() {
        let p = url_parts("https://api.openai.com/v1/responses").unwrap();
        assert_eq!((p.port, p.host_is_ip), (443, false));
        let p = url_parts("http://127.0.0.1:8080/v1/responses").unwrap();
        assert_eq!((p.port, p.host_is_ip), (8080, true));
        let p = url_parts("https://[::1]/v1/responses").unwrap();
        assert_eq!((p.port, p.host_is_ip), (443, true));
        let p = url_parts("http://localhost/x").unwrap();
        assert_eq!((p.port, p.host_is_ip), (80, false));
    }
}
