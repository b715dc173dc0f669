//! Start-up step 4, the proxy's most important one: privilege drop, then no_new_privs, Landlock
//! and seccomp (codex-privsep's profile on codex-confine's mechanism). [`ConfinePlan::resolve`]
//! runs at step 0 (before the key: unknown users/groups fail early, and `/etc` is still
//! readable); [`ConfinePlan::apply`] runs after the server-info file is written, while the process
//! is still single-threaded (checked), and returns the per-connection authorizer: serving is only
//! reachable through it (see `startup`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use codex_privsep::{AllowList, ConfineSpec, PeerIdentifier, RunAs};

use crate::access::PeerAuthorizer;
use crate::cli::Args;
use crate::peer_access::PeerAccess;
use crate::upstream::Upstream;
use crate::upstream_owner::UpstreamOwner;

/// Resolving the plan failed (bad flags).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    RunAs(#[source] codex_privsep::DropError),
    #[error("{0}")]
    AllowList(#[source] codex_privsep::AllowListError),
    #[error("--upstream-owner: {0}")]
    UpstreamOwner(#[source] codex_privsep::ResolveError),
    #[error("{0}")]
    SubUids(String),
}

/// Applying the plan failed: which step and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfineStepError {
    #[error("peer identification: {0}")]
    PeerIdentifier(#[source] codex_privsep::PeerError),
    /// (`flag`: `--dump-dir` or `--state-dir`, the directory's flag.)
    #[error("{flag} {}: not the root-owned directory created at start-up", dir.display())]
    CreatedDirNotOurs { flag: &'static str, dir: PathBuf },
    #[error("{flag} {}: {source}", dir.display())]
    CreatedDirStat {
        flag: &'static str,
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{flag} {}: chown to uid {uid}: {source}", dir.display())]
    CreatedDirChown {
        flag: &'static str,
        dir: PathBuf,
        uid: u32,
        source: std::io::Error,
    },
    #[error("{0}")]
    Drop(#[source] codex_privsep::DropError),
    #[error(
        "--dump-dir {} is not writable by the account the proxy runs as (uid {uid}): {source}; \
         chown it to that account, or choose another with --user",
        dir.display()
    )]
    DumpDirNotWritable {
        dir: PathBuf,
        uid: u32,
        source: std::io::Error,
    },
    #[error(
        "--state-dir {} is not writable by the account the proxy runs as (uid {uid}): {source}; \
         chown it to that account (next month's ledger file is made there)",
        dir.display()
    )]
    StateDirNotWritable {
        dir: PathBuf,
        uid: u32,
        source: std::io::Error,
    },
    #[error("{0}")]
    Confine(#[source] codex_privsep::ConfineError),
}

/// Who the proxy becomes, who may use the key, and what the confined process may still do.
pub struct ConfinePlan {
    run_as: RunAs,
    allow: AllowList,
    dump_dir: Option<PathBuf>,
    /// `--dump-dir` did not exist before start-up: the proxy creates it (step 0) and hands it
    /// to the account it drops to.
    dump_dir_is_ours: bool,
    /// `--state-dir` (the usage ledger), and whether the proxy creates it, as the dump dir.
    state_dir: Option<PathBuf>,
    state_dir_is_ours: bool,
    /// `--policy` is set: every peer is identified.
    policy: bool,
    spec: ConfineSpec,
    upstream_owner: Arc<UpstreamOwner>,
    /// `--subuid-file`: who answers for a subordinate uid (outside review r64 F1, F2).
    subuids: crate::subuid::SubUids,
}

impl ConfinePlan {
    /// Resolves the account and the allow-list; must run before the dump directory is created.
    pub fn resolve(args: &Args) -> Result<Self, PlanError> {
        let a = &args.access;
        let run_as = RunAs::decide(a.user.as_deref(), a.dangerously_run_as_root)
            .map_err(PlanError::RunAs)?;
        let allow =
            AllowList::resolve(&a.allow_user, &a.allow_group).map_err(PlanError::AllowList)?;
        let owner_uid = codex_privsep::users::resolve_uid(&args.upstream_owner)
            .map_err(PlanError::UpstreamOwner)?;
        let subuids = crate::subuid::SubUids::load(&args.subuid_file, |n| {
            codex_privsep::users::resolve_uid(n).ok()
        })
        .map_err(PlanError::SubUids)?;
        for (a, b) in subuids.overlaps() {
            tracing::warn!(
                file = %args.subuid_file.display(),
                "the subordinate ranges of uids {a} and {b} overlap: their common uids are refused (nobody answers for them)"
            );
        }
        let dump_dir_is_ours = args
            .dump_dir
            .as_ref()
            .is_some_and(|d| std::fs::symlink_metadata(d).is_err());
        let state_dir = args.governance.state_dir.clone();
        let state_dir_is_ours = state_dir
            .as_ref()
            .is_some_and(|d| std::fs::symlink_metadata(d).is_err());
        Ok(Self {
            run_as,
            allow,
            dump_dir: args.dump_dir.clone(),
            dump_dir_is_ours,
            state_dir: state_dir.clone(),
            state_dir_is_ours,
            policy: args.governance.policy.is_some(),
            spec: ConfineSpec {
                read_paths: Vec::new(),
                // The dump dir and the ledger's directory: the only writable places.
                write_dirs: args
                    .dump_dir
                    .iter()
                    .chain(state_dir.iter())
                    .cloned()
                    .collect(),
                connect_ports: Vec::new(),
                allow_dns: false,
            },
            upstream_owner: Arc::new(crate::upstream_owner::upstream_owner(owner_uid)),
            subuids,
        })
    }

    /// The account the proxy drops to, when it drops (the one besides root that may own
    /// `--state-dir`).
    pub fn drop_uid(&self) -> Option<u32> {
        match &self.run_as {
            RunAs::Drop(account) => Some(account.uid),
            _ => None,
        }
    }

    /// Who must own a plain-http upstream's socket; the upstream client checks through it, with
    /// the sock_diag socket [`ConfinePlan::apply`] installs.
    pub fn upstream_owner(&self) -> Arc<UpstreamOwner> {
        Arc::clone(&self.upstream_owner)
    }

    /// What serving needs of the network, from the already parsed upstream: its TCP port, and
    /// DNS when its host is a name.
    pub fn for_upstream(mut self, upstream: &Upstream) -> Self {
        let (port, host_is_ip) = upstream_port_and_kind(upstream);
        self.spec.connect_ports = vec![port];
        self.spec.allow_dns = !host_is_ip;
        self
    }

    /// Hands the directories this start created (`--dump-dir`, `--state-dir`) to the account
    /// the proxy drops to, as soon as they exist: a start that fails later (a port in use)
    /// leaves them usable by the next one (outside review r102 F2: a root-owned 0700 state dir
    /// was left, and every later start refused it, exit 9). Each is given once.
    pub fn give_created_dirs(&mut self) -> Result<(), ConfineStepError> {
        if let (RunAs::Drop(account), Some(dir)) = (&self.run_as, &self.dump_dir) {
            if self.dump_dir_is_ours {
                give_created_dir("--dump-dir", dir, account.uid, account.gid)?;
                self.dump_dir_is_ours = false;
            }
        }
        if let (RunAs::Drop(account), Some(dir)) = (&self.run_as, &self.state_dir) {
            if self.state_dir_is_ours {
                give_created_dir("--state-dir", dir, account.uid, account.gid)?;
                self.state_dir_is_ours = false;
            }
        }
        Ok(())
    }

    /// Drops privileges and confines the process; returns the per-connection authorizer.
    pub fn apply(mut self) -> Result<Arc<dyn PeerAuthorizer>, ConfineStepError> {
        // The sock_diag socket is opened only now, after the listeners were bound: systemd's
        // LISTEN_FDS are taken as fds 3.. at bind time, and a descriptor opened earlier could
        // sit at one of those numbers. Before confinement, whose seccomp filter refuses netlink.
        let ident = Arc::new(PeerIdentifier::new().map_err(ConfineStepError::PeerIdentifier)?);
        self.upstream_owner.install(Arc::clone(&ident));
        self.give_created_dirs()?;
        let dropped = self.run_as.apply().map_err(ConfineStepError::Drop)?;
        // The account must be able to create dumps: fail now, not at the first request.
        if let Some(dir) = &self.dump_dir {
            codex_privsep::check_writable_dir(dir).map_err(|source| {
                ConfineStepError::DumpDirNotWritable {
                    dir: dir.clone(),
                    uid: dropped.uid.1,
                    source,
                }
            })?;
        }
        // The ledger's directory. Its permissions shut out the account (a root-owned 0700
        // directory, outside review r73 F4: this month's file was opened as root, next month's
        // could not be made): fatal, a mistake of the set-up. A read-only mount keeps the proxy
        // serving (budgets fail closed and every refusal says why), said at once.
        if let Some(dir) = &self.state_dir {
            if let Err(e) = codex_privsep::check_writable_dir(dir) {
                if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) {
                    return Err(ConfineStepError::StateDirNotWritable {
                        dir: dir.clone(),
                        uid: dropped.uid.1,
                        source: e,
                    });
                }
                tracing::error!(
                    dir = %dir.display(),
                    uid = dropped.uid.1,
                    error = %e,
                    "--state-dir is not writable by the account the proxy runs as: next month's ledger file cannot be created"
                );
            }
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
        let report = codex_privsep::confine(&self.spec).map_err(ConfineStepError::Confine)?;
        tracing::info!(confinement = %report.summary(), "confined");
        let hardening = serde_json::to_string(&secure_main::hardening_report())
            .unwrap_or_else(|e| format!("unserialisable: {e}"));
        tracing::info!(%hardening, "hardening report");
        Ok(Arc::new(PeerAccess::new(
            self.allow,
            ident,
            self.policy,
            self.subuids,
        )))
    }
}

/// The upstream's TCP port (the scheme's default when the URL has none) and whether its host is
/// an IP literal (no DNS needed).
fn upstream_port_and_kind(u: &Upstream) -> (u16, bool) {
    let port = u
        .authority
        .port_u16()
        .unwrap_or(if u.scheme == http::uri::Scheme::HTTP {
            80
        } else {
            443
        });
    let host = u.authority.host();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    (port, bare.parse::<std::net::IpAddr>().is_ok())
}

/// Hands a directory the proxy created at start-up (`flag`'s: the dump or the state directory;
/// owned by us, mode 0700) to the account it is about to become. `lchown`: never follows a
/// symlink; an existing directory someone else prepared is never chowned.
fn give_created_dir(
    flag: &'static str,
    dir: &Path,
    uid: u32,
    gid: u32,
) -> Result<(), ConfineStepError> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(dir).map_err(|source| ConfineStepError::CreatedDirStat {
        flag,
        dir: dir.to_path_buf(),
        source,
    })?;
    if !md.is_dir() || md.uid() != 0 {
        return Err(ConfineStepError::CreatedDirNotOurs {
            flag,
            dir: dir.to_path_buf(),
        });
    }
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).map_err(|source| {
        ConfineStepError::CreatedDirChown {
            flag,
            dir: dir.to_path_buf(),
            uid,
            source,
        }
    })?;
    // (outside review r96: this line said "dump directory" for the state directory too)
    tracing::info!(flag, dir = %dir.display(), uid, "directory created for the unprivileged account");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_ports_and_dns() {
        let pk = |url: &str| upstream_port_and_kind(&Upstream::parse(url).unwrap());
        assert_eq!(pk("https://api.openai.com/v1/responses"), (443, false));
        assert_eq!(pk("http://127.0.0.1:8080/v1/responses"), (8080, true));
        assert_eq!(pk("https://[::1]/v1/responses"), (443, true));
        assert_eq!(pk("http://localhost/x"), (80, false));
    }
}
