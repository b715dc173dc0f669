//! The start-up sequence, in an order the types enforce:
//!
//! 0. [`Config::from_args`]: check flags, parse the upstream URL, load TLS roots, open the dump dir
//!    (nothing secret yet; a bad flag fails before the key is read).
//! 1. [`Config::read_key`]: the key from stdin into locked memory ([`crate::key`]). Nothing
//!    listens before this succeeds.
//! 2. [`KeyRead::bind`]: bind every listener (still single-threaded: no runtime yet).
//! 3. [`Bound::announce`]: write the server-info file.
//! 4. [`Announced::confine`]: the privilege drop / self-confinement step (a hook; the default
//!    does nothing). It runs while the process is still single-threaded, before any runtime
//!    thread exists.
//! 5. [`Confined::serve`]: start the runtime (a small fixed worker pool) and serve until shutdown.

use std::sync::Arc;

use http::HeaderValue;
use secure_main::{FdReader, LockPolicy};

use crate::access::{AllowAllPeers, PeerAuthorizer};
use crate::cli::Args;
use crate::files::{Dumper, FileError, ServerInfo, write_server_info};
use crate::key::{KeyError, read_key};
use crate::listener::{BindError, BoundListener};
use crate::policy::Admission;
use crate::proxy::ProxyState;
use crate::server::{ServeLimits, serve};
use crate::upstream::{Upstream, UpstreamClient, UpstreamError, build_client};

/// Exit codes (secure-main's pre-main hardening uses 5–8; clap's usage errors exit 2).
pub mod exit {
    /// Served and shut down cleanly.
    pub const OK: u8 = 0;
    /// The runtime failed while serving.
    pub const RUNTIME: u8 = 1;
    /// Invalid configuration (upstream URL, TLS roots, dump dir).
    pub const CONFIG: u8 = 2;
    /// Key intake failed (empty, too long, forbidden character, read or lock failure).
    pub const KEY: u8 = 3;
    /// Binding a listener or writing the server-info file failed.
    pub const LISTEN: u8 = 4;
    /// The confinement step failed.
    pub const CONFINE: u8 = 9;
}

/// Start-up failed: which step and why. Never contains the key.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("--dump-dir: {0}")]
    DumpDir(FileError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error("--server-info: {0}")]
    ServerInfo(FileError),
    #[error("confinement failed: {0}")]
    Confine(String),
    /// Access-control flags (users, groups, allow-list).
    #[error("{0}")]
    Access(String),
    /// Binding a listener (unix socket rules, socket activation).
    #[error("{0}")]
    Listen(String),
    /// `--api-key-file` / `--api-key-credential`.
    #[error("{0}")]
    KeyFile(String),
    #[error("failed to start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("failed to register a listener with the runtime: {0}")]
    Register(std::io::Error),
}

impl StartupError {
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Upstream(_) | StartupError::DumpDir(_) => exit::CONFIG,
            StartupError::Key(_) => exit::KEY,
            StartupError::Bind(_) | StartupError::ServerInfo(_) => exit::LISTEN,
            StartupError::Confine(_) => exit::CONFINE,
            StartupError::Access(_) => exit::CONFIG,
            StartupError::Listen(_) => exit::LISTEN,
            StartupError::KeyFile(_) => exit::KEY,
            StartupError::Runtime(_) | StartupError::Register(_) => exit::RUNTIME,
        }
    }
}

/// Step 0: validated configuration.
pub struct Config {
    pub args: Args,
    upstream: Upstream,
    client: UpstreamClient,
    dumper: Option<Arc<Dumper>>,
}

impl Config {
    pub fn from_args(args: Args) -> Result<Self, StartupError> {
        let upstream = Upstream::parse(&args.upstream_url)?;
        let client = build_client()?;
        let dumper = match &args.dump_dir {
            Some(dir) => Some(Arc::new(Dumper::new(dir).map_err(StartupError::DumpDir)?)),
            None => None,
        };
        Ok(Self {
            args,
            upstream,
            client,
            dumper,
        })
    }

    /// Step 1: the key, from stdin, into locked memory (`mlock` failure is an error).
    pub fn read_key(self) -> Result<KeyRead, StartupError> {
        let key_file =
            crate::access_control::open_key_source(&self.args).map_err(StartupError::KeyFile)?;
        let auth_header = match &key_file {
            Some(f) => read_key(
                &mut FdReader::new(std::os::fd::AsFd::as_fd(f)),
                LockPolicy::Required,
            )?,
            None => read_key(&mut FdReader::stdin(), LockPolicy::Required)?,
        };
        drop(key_file);
        Ok(KeyRead {
            config: self,
            auth_header,
        })
    }
}

/// After step 1.
pub struct KeyRead {
    config: Config,
    auth_header: HeaderValue,
}

impl KeyRead {
    /// Step 2: bind every listener.
    pub fn bind(self) -> Result<Bound, StartupError> {
        let listeners = crate::access_control::bind_listeners(&self.config.args)
            .map_err(StartupError::Listen)?;
        Ok(Bound {
            key: self,
            listeners,
        })
    }
}

/// After step 2. More listeners (pre-opened fds) can be added before announcing.
pub struct Bound {
    key: KeyRead,
    pub listeners: Vec<BoundListener>,
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
    /// Step 4: privilege drop and self-confinement, run by `step` while the process is still
    /// single-threaded. The default binary passes a step that does nothing.
    pub fn confine(
        self,
        step: impl FnOnce(&Args) -> Result<(), String>,
    ) -> Result<Confined, StartupError> {
        step(&self.bound.key.config.args).map_err(StartupError::Confine)?;
        Ok(Confined {
            bound: self.bound,
            authorizer: Arc::new(AllowAllPeers),
        })
    }
}

/// After step 4.
pub struct Confined {
    bound: Bound,
    authorizer: Arc<dyn PeerAuthorizer>,
}

impl Confined {
    /// Replaces the per-connection peer authorization hook (default: allow every peer).
    pub fn with_authorizer(mut self, authorizer: Arc<dyn PeerAuthorizer>) -> Self {
        self.authorizer = authorizer;
        self
    }

    /// Step 5: start the runtime and serve until shutdown; returns after the drain.
    pub fn serve(self) -> Result<(), StartupError> {
        let Bound { key, listeners } = self.bound;
        let KeyRead {
            config,
            auth_header,
        } = key;
        let args = &config.args;
        let mut rt = if args.threads <= 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(usize::from(args.threads));
            b
        };
        let rt = rt
            .enable_all()
            .thread_name("proxy-worker")
            .build()
            .map_err(StartupError::Runtime)?;
        let limits = ServeLimits {
            max_connections: args.max_connections as usize,
            header_read_timeout: args.header_read_timeout(),
            max_header_bytes: 32 * 1024,
        };
        let (shutdown, _) = tokio::sync::watch::channel(false);
        let state = Arc::new(ProxyState {
            admission: Admission {
                allowed_paths: args.allow_path.clone(),
                http_shutdown: args.http_shutdown,
                max_body_bytes: args.max_body_bytes,
            },
            upstream: config.upstream.clone(),
            client: config.client.clone(),
            auth_header,
            dumper: config.dumper.clone(),
            body_read_timeout: args.body_read_timeout(),
            shutdown,
        });
        let authorizer = self.authorizer;
        rt.block_on(async move {
            let listeners = listeners
                .into_iter()
                .map(BoundListener::into_async)
                .collect::<Result<Vec<_>, _>>()
                .map_err(StartupError::Register)?;
            serve(listeners, state, authorizer, limits).await;
            Ok::<_, StartupError>(())
        })?;
        // In-flight work is drained; do not wait for idle pooled upstream connections.
        rt.shutdown_background();
        Ok(())
    }
}
