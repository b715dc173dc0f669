//! The start-up sequence, in an order the types enforce (each step consumes the previous state;
//! the only way to [`Confined::serve`] is through [`Announced::confine`]):
//!
//! 0. [`Config::from_args`]: resolve `--user` and the allow-list ([`ConfinePlan::resolve`]:
//!    unknown users/groups fail before the key is read, while `/etc` is readable), parse the
//!    upstream URL, load TLS roots, open the dump dir.
//! 1. [`Config::read_key`]: the key from its source (stdin, `--api-key-file`,
//!    `--api-key-credential`) into locked memory ([`crate::key_source`]). Nothing listens before
//!    this succeeds.
//! 2. [`KeyRead::bind`]: bind every listener (still single-threaded: no runtime yet).
//! 3. [`Bound::announce`]: write the server-info file.
//! 4. [`Announced::confine`]: privilege drop, then no_new_privs + Landlock + seccomp
//!    ([`crate::confinement`]), while the process is still single-threaded; returns the
//!    per-connection authorizer with the next state. Required: there is no other way to serve.
//! 5. [`Confined::serve`]: start the runtime (a small fixed worker pool) and serve until shutdown.
//!
//! Every failure is a [`StartupError`] variant naming its step, mapped to an exit code in one
//! place, [`StartupError::exit_code`].

use std::sync::Arc;

use crate::access::PeerAuthorizer;
use crate::admin::{AdminError, AdminListener};
use crate::cli::Args;
use crate::client::{UpstreamClient, build_client};
use crate::confinement::{ConfinePlan, ConfineStepError, PlanError};
use crate::files::{Dumper, FileError, ServerInfo, write_server_info};
use crate::governed::Governed;
use crate::key::{ApiKey, KeySlot};
use crate::key_pages::{KEY_PAGES, KeyPages};
use crate::key_source::{KeySource, KeySourceError};
use crate::listener::{BindError, BoundListener};
use crate::listeners::{ListenError, bind_listeners};
use crate::policy::Admission;
use crate::proxy::ProxyState;
use crate::rotation::Rotator;
use crate::server::{ServeLimits, serve};
use crate::upstream::{Upstream, UpstreamError};
use codex_proxy_governance::{Governor, Ledger, Policy, SystemDirectory, clock};

/// Exit codes (secure-main's pre-main hardening uses 5–8; clap's usage errors exit 2).
pub mod exit {
    /// Served and shut down cleanly.
    pub const OK: u8 = 0;
    /// The runtime failed while serving.
    pub const RUNTIME: u8 = 1;
    /// Invalid configuration (upstream URL, TLS roots, dump dir, users and groups).
    pub const CONFIG: u8 = 2;
    /// Key intake failed (source missing or unsafe, empty, too long, forbidden character, read or
    /// lock failure).
    pub const KEY: u8 = 3;
    /// Binding a listener or writing the server-info file failed.
    pub const LISTEN: u8 = 4;
    /// The privilege drop or the confinement step failed, or the key opener could not start
    /// (confined).
    pub const CONFINE: u8 = 9;
    /// The seccomp allow-list refused a system call while serving: stderr has one line naming
    /// it (`responses-api-proxy: seccomp refused system call NAME (nr N): WHY; exiting with
    /// code 10`), written by the SIGSYS handler `codex-confine` installs.
    pub const REFUSED_SYSCALL: u8 = 10;
    const _: () =
        assert!(REFUSED_SYSCALL as i32 == codex_privsep::seccomp_policy::REFUSED_SYSCALL_EXIT);
}

/// Start-up failed: which step and why. Never contains the key.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Step 0: `--user`, `--allow-user`, `--allow-group`.
    #[error("{0}")]
    Plan(#[from] PlanError),
    /// Step 0: `--upstream-url`, TLS roots.
    #[error("{0}")]
    Upstream(#[from] UpstreamError),
    /// Step 0: `--dump-dir`.
    #[error("--dump-dir: {0}")]
    DumpDir(#[source] FileError),
    /// Step 0: `--policy` (names the file, line and key).
    #[error("{0}")]
    Policy(#[from] codex_proxy_governance::PolicyError),
    /// Step 0: `--state-dir`.
    #[error("{0}")]
    StateDir(#[from] codex_proxy_governance::LedgerError),
    /// Step 0: budgets without a ledger could not hold across restarts.
    #[error(
        "--policy {}: the policy sets budgets, which must survive restarts: give --state-dir DIR",
        .0.display()
    )]
    BudgetsNeedStateDir(std::path::PathBuf),
    /// Step 0: the ledger would belong to `nobody`, which other daemons share (outside review
    /// r57 F3: a uid-65534 process replaced the ledger in the state dir handed to it).
    #[error(
        "--state-dir {}: the ledger would belong to uid 65534 (nobody), which other daemons share: any of them could rewrite it (erase spend, forge another user's); give --user ACCOUNT, a dedicated account (the packages create responses-api-proxy)",
        .0.display()
    )]
    StateDirNeedsOwnAccount(std::path::PathBuf),
    /// Step 1.
    #[error("{0}")]
    Key(#[from] KeySourceError),
    /// Step 2.
    #[error("{0}")]
    Listen(#[from] ListenError),
    /// Step 3: describing a bound listener.
    #[error("{0}")]
    Describe(#[from] BindError),
    /// Step 3: `--server-info`.
    #[error("--server-info: {0}")]
    ServerInfo(#[source] FileError),
    /// Step 4.
    #[error("confinement failed: {0}")]
    Confine(#[from] ConfineStepError),
    /// Step 0: the descriptor limit.
    #[error("{0}")]
    Nofile(#[from] codex_privsep::NofileError),
    /// Step 0: `SIGXFSZ` could not be ignored.
    #[error("sigaction(SIGXFSZ, SIG_IGN) failed: {0}")]
    Signal(#[source] std::io::Error),
    /// Step 0: `--max-connections` (or its default) does not fit the descriptor limit.
    #[error("{0}")]
    ConnectionCap(#[from] CapError),
    /// Step 0: `--busy-poll-us` with a multi-threaded runtime.
    #[error(
        "--busy-poll-us {0}: busy polling needs the single-threaded runtime (--threads 1); give --busy-poll-us 0 or drop --threads"
    )]
    BusyPollNeedsOneThread(u32),
    /// Step 2: `--admin-socket`, `--admin-group`.
    #[error("{0}")]
    Admin(#[from] AdminError),
    /// Step 4: the key opener (forked before the privilege drop).
    #[error("key opener: {0}")]
    Opener(#[from] codex_privsep::KeyOpenerError),
    /// Step 5.
    #[error("failed to start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// Step 5.
    #[error("failed to register a listener with the runtime: {0}")]
    Register(#[source] std::io::Error),
}

impl StartupError {
    /// The documented exit code of each failure (README, `--help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Plan(_)
            | StartupError::Upstream(_)
            | StartupError::DumpDir(_)
            | StartupError::Policy(_)
            | StartupError::StateDir(_)
            | StartupError::BudgetsNeedStateDir(_)
            | StartupError::StateDirNeedsOwnAccount(_)
            | StartupError::Nofile(_)
            | StartupError::ConnectionCap(_)
            | StartupError::BusyPollNeedsOneThread(_) => exit::CONFIG,
            StartupError::Key(_) => exit::KEY,
            StartupError::Listen(_) | StartupError::Describe(_) | StartupError::ServerInfo(_) => {
                exit::LISTEN
            }
            StartupError::Admin(AdminError::Bind(_)) => exit::LISTEN,
            StartupError::Admin(_) => exit::CONFIG,
            StartupError::Confine(_) | StartupError::Opener(_) => exit::CONFINE,
            StartupError::Runtime(_) | StartupError::Register(_) | StartupError::Signal(_) => {
                exit::RUNTIME
            }
        }
    }
}

/// Descriptors kept back from the connection cap: stdio, listeners, the sock_diag socket, the
/// runtime's epoll/eventfd/signal pipe, resolver sockets, dump files, TLS roots at reload.
pub const FD_RESERVE: u64 = 64;
/// Descriptors one client connection can cost: its socket and the upstream connection of its
/// request (idle pooled upstream connections are bounded by the peak of concurrent requests).
pub const FDS_PER_CONNECTION: u64 = 2;
/// The default cap when the descriptor limit allows it.
pub const DEFAULT_MAX_CONNECTIONS: u64 = 1024;

/// The default `--busy-poll-us` where busy polling is on by default.
pub const DEFAULT_BUSY_POLL_US: u32 = 50;

/// `--busy-poll-us` in force: `None` when the event loop sleeps at once. Explicit values apply
/// as given (a non-zero one needs `--threads 1`); the default is on only for the
/// single-threaded runtime on two or more CPUs (on one CPU the spin would hold back the very
/// process it waits for).
pub fn busy_poll_budget(
    explicit: Option<u32>,
    threads: u16,
    cpus: usize,
) -> Result<Option<std::time::Duration>, StartupError> {
    let us = match explicit {
        Some(us) if us > 0 && threads > 1 => return Err(StartupError::BusyPollNeedsOneThread(us)),
        Some(us) => us,
        None if threads <= 1 && cpus >= 2 => DEFAULT_BUSY_POLL_US,
        None => 0,
    };
    Ok((us > 0).then(|| std::time::Duration::from_micros(u64::from(us))))
}

/// `--max-connections` against the descriptor limit.
#[derive(Debug, thiserror::Error)]
pub enum CapError {
    /// An explicit cap needs more descriptors than the limit.
    #[error(
        "--max-connections {asked} needs {needed} descriptors (2 per connection + {FD_RESERVE}), but RLIMIT_NOFILE allows {limit} (hard limit); raise LimitNOFILE= (or ulimit -Hn) or lower --max-connections"
    )]
    TooMany {
        /// The cap asked for.
        asked: u64,
        /// Descriptors it needs.
        needed: u64,
        /// The soft limit after raising it to the hard one.
        limit: u64,
    },
    /// The limit leaves no room for even one connection.
    #[error(
        "RLIMIT_NOFILE allows {limit} descriptors (hard limit): not enough for one connection (2 per connection + {FD_RESERVE}); raise LimitNOFILE= (or ulimit -Hn)"
    )]
    NoRoom {
        /// The soft limit after raising it to the hard one.
        limit: u64,
    },
}

/// The connection cap: `asked`, or the default (1024 or what `limit` descriptors can hold);
/// refused when it cannot be held without `EMFILE`.
pub fn connection_cap(asked: Option<u32>, limit: u64) -> Result<usize, CapError> {
    let room = limit.saturating_sub(FD_RESERVE) / FDS_PER_CONNECTION;
    let cap = match asked {
        Some(n) => {
            let n = u64::from(n);
            if n > room {
                return Err(CapError::TooMany {
                    asked: n,
                    needed: n * FDS_PER_CONNECTION + FD_RESERVE,
                    limit,
                });
            }
            n
        }
        None if room == 0 => return Err(CapError::NoRoom { limit }),
        None => room.min(DEFAULT_MAX_CONNECTIONS),
    };
    Ok(usize::try_from(cap).unwrap_or(usize::MAX))
}

/// `nobody`: shared by daemons, so never the owner of the ledger.
const NOBODY_UID: u32 = 65534;

/// Step 0: validated configuration.
pub struct Config {
    pub args: Args,
    /// The connection cap in force (`--max-connections` or derived from RLIMIT_NOFILE).
    pub max_connections: usize,
    plan: ConfinePlan,
    upstream: Upstream,
    client: UpstreamClient,
    dumper: Option<Arc<Dumper>>,
    governor: Option<Arc<Governed>>,
    busy_poll: Option<std::time::Duration>,
}

/// `--policy` and `--state-dir` (step 0, before the key: a bad policy fails with nothing
/// listening; the ledger's directory is created and this month's file opened while still root).
fn load_governor(args: &Args, writer: Option<u32>) -> Result<Option<Arc<Governed>>, StartupError> {
    let Some(path) = &args.governance.policy else {
        return Ok(None);
    };
    let policy = Policy::load(path, &SystemDirectory)?;
    let now = clock::now_ms();
    let ledger = match &args.governance.state_dir {
        Some(dir) => {
            if writer.unwrap_or_else(codex_privsep::effective_uid) == NOBODY_UID {
                return Err(StartupError::StateDirNeedsOwnAccount(dir.clone()));
            }
            let (ledger, records, stats) = Ledger::open_for(dir, now, writer)?;
            tracing::info!(
                dir = %ledger.path().display(),
                records = stats.records,
                corrupt_lines = stats.corrupt,
                torn_tail = stats.torn_tail,
                "usage ledger: this month replayed"
            );
            if let Some(e) = ledger.error() {
                tracing::error!(
                    dir = %ledger.path().display(),
                    error = e,
                    "usage ledger not writable: requests under a budget are refused until it is"
                );
            }
            Some((ledger, records))
        }
        None if policy.has_any_budget() => {
            return Err(StartupError::BudgetsNeedStateDir(path.clone()));
        }
        None => None,
    };
    tracing::info!(policy = %path.display(), ledger = ledger.is_some(), "governance policy loaded");
    let buffer_cap = args.governance.max_buffered_bytes.max(args.max_body_bytes);
    tracing::info!(
        max_buffered_bytes = buffer_cap,
        per_user = crate::governed::user_share(buffer_cap, args.max_body_bytes),
        "governed request bodies: buffer cap"
    );
    Ok(Some(Governed::new(
        Governor::new(policy, ledger, now),
        buffer_cap,
        args.max_body_bytes,
    )))
}

/// `--max-connections-per-user` when not given: a quarter of `max_connections` (256 of the
/// default 1024), but never below 32 (or `max_connections` when that is smaller), so that a
/// small explicit --max-connections still lets one user run a few clients in parallel.
fn default_connections_per_user(max_connections: usize) -> usize {
    (max_connections / 4).max(max_connections.min(32))
}

impl Config {
    pub fn from_args(args: Args) -> Result<Self, StartupError> {
        // Before the drop (no privilege needed either way): the soft descriptor limit up to the
        // hard one, and the connection cap derived from it, so that accept never meets EMFILE
        // before the cap's eviction runs (review round 5, F3).
        codex_privsep::ignore_file_size_signal().map_err(StartupError::Signal)?;
        let nofile = codex_privsep::raise_nofile_limit()?;
        let max_connections = connection_cap(args.max_connections, nofile.soft)?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let busy_poll = busy_poll_budget(args.busy_poll_us, args.threads, cpus)?;
        if busy_poll.is_some() && cpus < 2 {
            tracing::warn!(
                cpus,
                "--busy-poll-us on one CPU: the spin competes for it with whatever else runs there (the client or upstream included)"
            );
        }
        tracing::info!(
            max_connections,
            explicit = args.max_connections.is_some(),
            nofile_soft = nofile.soft,
            nofile_was = nofile.was_soft,
            nofile_hard = nofile.hard,
            fd_reserve = FD_RESERVE,
            "connection cap"
        );
        // Before the dump dir is created: the plan records whether it existed.
        let plan = ConfinePlan::resolve(&args)?;
        let upstream = Upstream::parse(&args.upstream_url)?;
        let plan = plan.for_upstream(&upstream);
        let client = build_client(&upstream, plan.upstream_owner())?;
        let dumper = match &args.dump_dir {
            Some(dir) => Some(Arc::new(Dumper::new(dir).map_err(StartupError::DumpDir)?)),
            None => None,
        };
        let governor = load_governor(&args, plan.drop_uid())?;
        let mut plan = plan;
        plan.give_created_dirs()?;
        Ok(Self {
            args,
            max_connections,
            plan,
            upstream,
            client,
            dumper,
            governor,
            busy_poll,
        })
    }

    /// Step 1: the key, from its source, into locked memory (`mlock` failure is an error).
    /// When the key can be rotated (a file or credential source, or `--admin-socket`), every
    /// page a later key can use is allocated now ([`crate::rotation`]).
    pub fn read_key(self) -> Result<KeyRead, StartupError> {
        let source = KeySource::from_args(&self.args.access);
        let rotatable = source != KeySource::Stdin || self.args.admin.admin_socket.is_some();
        let pages = KeyPages::new(
            if rotatable { KEY_PAGES } else { 1 },
            !self.args.admin.key_pages_without_memfd_secret,
        )
        .map_err(|error| crate::key_source::KeySourceError::Read {
            source_name: source.clone(),
            error,
        })?;
        let key = source.read(&pages)?;
        Ok(KeyRead {
            config: self,
            key,
            pages,
            source,
        })
    }
}

/// After step 1.
pub struct KeyRead {
    config: Config,
    key: ApiKey,
    pages: Arc<KeyPages>,
    source: KeySource,
}

impl KeyRead {
    /// Step 2: bind every listener.
    pub fn bind(self) -> Result<Bound, StartupError> {
        let listeners = bind_listeners(&self.config.args)?;
        let admin = AdminListener::bind(&self.config.args.admin)?;
        Ok(Bound {
            key: self,
            listeners,
            admin,
        })
    }
}

/// After step 2.
pub struct Bound {
    key: KeyRead,
    listeners: Vec<BoundListener>,
    admin: Option<AdminListener>,
}

impl Bound {
    /// Step 3: write `--server-info` (if given): the first TCP listener's port, our pid, and
    /// every listener.
    pub fn announce(self) -> Result<Announced, StartupError> {
        let listen = self
            .listeners
            .iter()
            .map(|l| l.describe())
            .collect::<Result<Vec<_>, _>>()?;
        let port = self
            .listeners
            .iter()
            .find_map(|l| l.tcp_port())
            .unwrap_or(0);
        if let Some(path) = &self.key.config.args.server_info {
            write_server_info(
                path,
                &ServerInfo {
                    port,
                    pid: std::process::id(),
                    listen: listen.clone(),
                },
            )
            .map_err(StartupError::ServerInfo)?;
        }
        tracing::info!(listen = ?listen, upstream = %self.key.config.upstream.authority, "listening");
        Ok(Announced { bound: self })
    }
}

/// After step 3.
pub struct Announced {
    bound: Bound,
}

impl Announced {
    /// Step 4: privilege drop and self-confinement (the plan resolved at step 0, consumed here),
    /// while the process is still single-threaded. Returns the only state that can serve, holding
    /// the per-connection authorizer the confinement step produced.
    pub fn confine(self) -> Result<Confined, StartupError> {
        let Bound {
            key:
                KeyRead {
                    config,
                    key,
                    pages,
                    source,
                },
            listeners,
            admin,
        } = self.bound;
        let Config {
            args,
            max_connections,
            plan,
            upstream,
            client,
            dumper,
            governor,
            busy_poll,
        } = config;
        // Before the drop, while single-threaded: the process that can still open the key file.
        let opener = match source.file_path()? {
            Some(path) => {
                let o = codex_privsep::KeyOpener::spawn(&path)?;
                tracing::info!(pid = o.pid(), key = %source, "key opener started: SIGHUP re-reads the key");
                Some(o)
            }
            None => None,
        };
        let authorizer = plan.apply()?;
        let rotator = Arc::new(Rotator::new(pages, source, opener));
        Ok(Confined {
            args,
            max_connections,
            upstream,
            client,
            dumper,
            governor,
            busy_poll,
            key,
            rotator,
            listeners,
            admin,
            authorizer,
        })
    }
}

/// After step 4: the only state with [`Confined::serve`].
pub struct Confined {
    args: Args,
    max_connections: usize,
    upstream: Upstream,
    client: UpstreamClient,
    dumper: Option<Arc<Dumper>>,
    governor: Option<Arc<Governed>>,
    busy_poll: Option<std::time::Duration>,
    key: ApiKey,
    rotator: Arc<Rotator>,
    listeners: Vec<BoundListener>,
    admin: Option<AdminListener>,
    authorizer: Arc<dyn PeerAuthorizer>,
}

impl Confined {
    /// Step 5: start the runtime and serve until shutdown; returns after the drain.
    pub fn serve(self) -> Result<(), StartupError> {
        let args = &self.args;
        let mut rt = if args.threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(usize::from(args.threads));
            b
        };
        // Busy polling (single-threaded runtime only): the park hook spins on the runtime's
        // epoll instance, found among the descriptors its build opened.
        let spinner = Arc::new(std::sync::OnceLock::<codex_privsep::busy_poll::Spinner>::new());
        let fds_before = self.busy_poll.map(|_| {
            let hook = spinner.clone();
            rt.on_thread_park(move || {
                if let Some(s) = hook.get() {
                    s.before_park();
                }
            });
            codex_privsep::busy_poll::epoll_fds().unwrap_or_default()
        });
        let rt = rt
            .enable_all()
            .thread_name("proxy-worker")
            .build()
            .map_err(StartupError::Runtime)?;
        match (self.busy_poll, fds_before) {
            (Some(budget), Some(before)) => {
                match codex_privsep::busy_poll::Spinner::for_new_epoll(&before, budget) {
                    Ok(s) => {
                        tracing::info!(
                            budget_us = budget.as_micros(),
                            "busy polling: the event loop polls its epoll instance before it sleeps"
                        );
                        let _ = spinner.set(s);
                    }
                    // Not fatal: the loop sleeps as it would without the flag.
                    Err(e) => tracing::warn!(
                        error = %e,
                        "busy polling off: the event loop's epoll instance was not found"
                    ),
                }
            }
            _ => tracing::info!(
                reason = if self.args.threads > 1 {
                    "--threads above 1"
                } else if self.args.busy_poll_us == Some(0) {
                    "--busy-poll-us 0"
                } else {
                    "one CPU"
                },
                "busy polling off: the event loop sleeps when idle"
            ),
        }
        let limits = ServeLimits {
            max_connections: self.max_connections,
            header_read_timeout: args.header_read_timeout(),
            max_header_bytes: 32 * 1024,
            sighup_drains: !(self.rotator.hangup_rotates() || self.admin.is_some()),
            max_connections_per_user: args
                .max_connections_per_user
                .map(|n| n as usize)
                .unwrap_or_else(|| default_connections_per_user(self.max_connections))
                .clamp(1, self.max_connections.max(1)),
        };
        let body_total_timeout = std::time::Duration::from_secs(args.body_total_timeout);
        tracing::info!(
            max_connections_per_user = limits.max_connections_per_user,
            body_total_timeout_secs = body_total_timeout.as_secs(),
            "per-user connection cap and request-body deadline"
        );
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let governor = self.governor;
        let sync = governor.clone();
        let state = Arc::new(ProxyState {
            admission: Admission {
                allowed_paths: args.allow_path.clone(),
                http_shutdown: args.http_shutdown,
                max_body_bytes: args.max_body_bytes,
            },
            upstream: self.upstream,
            client: self.client,
            key: KeySlot::new(self.key),
            dumper: self.dumper,
            governor: governor.clone(),
            body_read_timeout: args.body_read_timeout(),
            body_total_timeout,
            ws_idle_timeout: std::time::Duration::from_secs(args.ws_idle_timeout),
            shutdown,
        });
        let authorizer = self.authorizer;
        let listeners = self.listeners;
        let (admin, rotator) = (self.admin, self.rotator);
        let sighup_drains = limits.sighup_drains;

        rt.block_on(async move {
            let listeners = listeners
                .into_iter()
                .map(BoundListener::into_async)
                .collect::<Result<Vec<_>, _>>()
                .map_err(StartupError::Register)?;
            if let Some(g) = sync {
                g.spawn_tasks();
            }
            if let Some(admin) = admin {
                admin
                    .spawn(state.clone(), rotator.clone(), state.shutdown.subscribe())
                    .map_err(StartupError::Register)?;
            }
            if !sighup_drains {
                crate::rotation::spawn_hangup_rotation(state.clone(), rotator);
            }
            serve(listeners, state, authorizer, limits).await;
            Ok::<_, StartupError>(())
        })?;
        // In-flight work is drained; do not wait for idle pooled upstream connections.
        rt.shutdown_background();
        // Every finished request's record is written; make them durable.
        if let Some(g) = &governor {
            g.finish();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_polling_defaults_to_the_single_threaded_runtime_on_two_cpus() {
        let us = |e, t, c| busy_poll_budget(e, t, c).unwrap().map(|d| d.as_micros());
        assert_eq!(us(None, 1, 2), Some(50));
        assert_eq!(
            us(None, 1, 1),
            None,
            "one CPU: the spin would hold back its peers"
        );
        assert_eq!(us(None, 2, 8), None);
        assert_eq!(us(Some(0), 1, 2), None);
        assert_eq!(us(Some(0), 4, 2), None);
        assert_eq!(us(Some(200), 1, 1), Some(200), "explicit: as given");
        let e = busy_poll_budget(Some(20), 2, 2).unwrap_err();
        assert_eq!(e.exit_code(), exit::CONFIG);
        assert!(e.to_string().starts_with("--busy-poll-us 20: "), "{e}");
    }

    #[test]
    fn the_connection_cap_fits_the_descriptor_limit() {
        // systemd's default soft limit before raising: the old 1024 would not fit.
        assert_eq!(connection_cap(None, 1024).unwrap(), 480);
        assert_eq!(connection_cap(None, 524_288).unwrap(), 1024);
        assert_eq!(connection_cap(None, 256).unwrap(), 96);
        assert_eq!(connection_cap(Some(96), 256).unwrap(), 96);
        let e = connection_cap(Some(97), 256).unwrap_err().to_string();
        assert!(
            e.contains("--max-connections 97 needs 258 descriptors")
                && e.contains("RLIMIT_NOFILE allows 256"),
            "{e}"
        );
        assert!(matches!(
            connection_cap(None, 65),
            Err(CapError::NoRoom { limit: 65 })
        ));
        assert_eq!(connection_cap(None, 66).unwrap(), 1);
    }
}
