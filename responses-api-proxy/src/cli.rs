//! Command line: codex-compatible flags first (`--port`, `--server-info`, `--http-shutdown`,
//! `--upstream-url`, `--dump-dir`), then ours.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

pub use crate::listener::ListenAddr;

/// Default upstream: the OpenAI Responses API.
pub const DEFAULT_UPSTREAM_URL: &str = "https://api.openai.com/v1/responses";

/// A local proxy that holds an OpenAI API key (read from stdin) and forwards
/// `POST /v1/responses` with it, so local users can use the key without reading it.
///
/// Provide the key on stdin, e.g.
/// `printenv OPENAI_API_KEY | env -u OPENAI_API_KEY responses-api-proxy --server-info /run/x/info.json`.
#[derive(Debug, Parser)]
#[command(
    name = "responses-api-proxy",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// TCP port on 127.0.0.1 (default: an ephemeral port). Ignored when --listen is given.
    #[arg(long)]
    pub port: Option<u16>,

    /// After listening, write {"port":N,"pid":M,"listen":[...]} and a newline to FILE
    /// (parents created, atomic replace, never through a symlink, mode 0644).
    #[arg(long, value_name = "FILE")]
    pub server_info: Option<PathBuf>,

    /// Enable `GET /shutdown`: answer 200, stop accepting, drain in-flight requests, exit 0.
    #[arg(long)]
    pub http_shutdown: bool,

    /// Where requests go. `Host` is rewritten to this URL's authority.
    #[arg(long, value_name = "URL", default_value = DEFAULT_UPSTREAM_URL)]
    pub upstream_url: String,

    /// For a plain-http (loopback) --upstream-url: the account (name or uid) that must own the
    /// upstream's listening socket, checked on every new upstream connection before the key is
    /// sent (another local user could listen on a loopback port first). Default: root.
    #[arg(long, value_name = "USER", default_value = "root")]
    pub upstream_owner: String,

    /// Subordinate uid ranges (`/etc/subuid` format, read at start-up with the policy file's
    /// checks): a peer uid inside a range answers as the range's owner for budgets, policy
    /// rules, rate and connection caps (a user with `newuidmap` can run as any uid of their
    /// range); `/etc/passwd` users always answer as themselves. A missing file is no ranges.
    #[arg(long, value_name = "FILE", default_value = "/etc/subuid")]
    pub subuid_file: PathBuf,

    /// Write each exchange to DIR as `<seq>-<ms>-request.json` / `<seq>-<ms>-response.json`
    /// (credentials redacted, files 0600, never overwriting).
    #[arg(long, value_name = "DIR")]
    pub dump_dir: Option<PathBuf>,

    /// Listen on ADDR (repeatable): `127.0.0.1:PORT`, `[::1]:PORT`, `localhost:PORT`,
    /// `unix:/path.sock`. The default is 127.0.0.1 with --port.
    #[arg(long = "listen", value_name = "ADDR", value_parser = parse_listen_addr)]
    pub listen: Vec<ListenAddr>,

    /// Also forward POST requests to this exact path (repeatable), e.g. `/v1/responses/compact`.
    #[arg(long = "allow-path", value_name = "PATH", value_parser = parse_allow_path)]
    pub allow_path: Vec<String>,

    /// Largest request body accepted (bytes); larger ones get 413.
    #[arg(long, value_name = "BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: u64,

    /// Most client connections at once. When full, the oldest connection with no request in
    /// flight is closed to make room; when every connection has a request in flight, new ones
    /// are closed. Default: 1024, or fewer if the descriptor limit (RLIMIT_NOFILE, raised to its
    /// hard limit at start) cannot hold two descriptors per connection plus a reserve of 64; a
    /// larger N than the limit allows is refused (exit 2). The cap in force is logged at start.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,

    /// Most client connections one local user (uid) holds at once; a connection over it is
    /// closed as soon as its peer is identified (SO_PEERCRED, or sock_diag for loopback TCP).
    /// Peers whose uid cannot be found share one count. Default: a quarter of
    /// --max-connections, at least 32 (or --max-connections when smaller); at most
    /// --max-connections.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_user: Option<u32>,

    /// Seconds a client may take to send a request's headers.
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout: u64,

    /// Seconds a client may stay silent between chunks of a request body.
    #[arg(long, value_name = "SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_read_timeout: u64,

    /// Seconds a whole request body may take to arrive, however steadily it comes; past it the
    /// request gets 408 `body_timeout` and its connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_total_timeout: u64,

    /// Seconds a WebSocket session (the Responses API WebSocket mode) may carry no message in
    /// either direction before the proxy closes it (close code 1001).
    #[arg(long, value_name = "SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub ws_idle_timeout: u64,

    /// Audit log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Worker threads of the async runtime (1: a single-threaded runtime, measured fastest on a
    /// 2-core machine; see the README benchmark). Never one per connection.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,

    /// Before the single-threaded event loop sleeps, poll its epoll instance for up to this
    /// many microseconds (0: sleep at once). An event that arrives within it is served without
    /// a sleep and a wake-up; spinning takes at most half a CPU. Default: 50 with `--threads 1`
    /// on two or more CPUs, else 0. See the README's "Busy polling".
    #[arg(long, value_name = "MICROSECONDS", value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub busy_poll_us: Option<u32>,

    /// Access control and privilege separation flags.
    #[command(flatten)]
    pub access: AccessArgs,

    /// Governance: per-user policy and budgets.
    #[command(flatten)]
    pub governance: GovernanceArgs,

    /// The admin socket: key rotation and metrics.
    #[command(flatten)]
    pub admin: AdminArgs,

    /// `usage`: the administrator's report from --state-dir (no key, nothing served).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The governance flags (flattened into [`Args`]); the crate `codex-proxy-governance` does the work.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GovernanceArgs {
    /// Per-user policy (TOML): models, output ceiling, store/background, server tools, request
    /// rate, day/month token and cost budgets. Owned by root (or the proxy's account), not
    /// group/other-writable, not a symlink; read before the privilege drop. A bad file is refused
    /// at start (exit 2, nothing listening).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// The usage ledger's directory (created 0700 if missing; the only writable place besides
    /// --dump-dir). Required when the policy sets budgets.
    #[arg(long, value_name = "DIR", requires = "policy")]
    pub state_dir: Option<PathBuf>,

    /// Most request-body bytes held at once across all governed requests (each is read whole
    /// before it is checked); a request that would go over gets 503 `proxy_busy` and its
    /// connection is closed. Never below --max-body-bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024 * 1024, requires = "policy")]
    pub max_buffered_bytes: u64,
}

/// The admin socket's flags (flattened into [`Args`]).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdminArgs {
    /// Unix socket for the administrator: `GET /metrics` (Prometheus text format) and
    /// `POST /rotate-key` (see `responses-api-proxy rotate-key`). Owned by root, mode 0600 (0660
    /// with --admin-group); only root and the admin group may use it (checked per connection
    /// with SO_PEERCRED).
    #[arg(long, value_name = "PATH")]
    pub admin_socket: Option<PathBuf>,

    /// The group whose members may use --admin-socket besides root (name or gid).
    #[arg(long, value_name = "GROUP", requires = "admin_socket")]
    pub admin_group: Option<String>,

    /// Key pages in mlock'ed anonymous memory instead of memfd_secret, as on kernels without
    /// it (root can then read them through /proc/PID/mem: the tests watch the wipe this way).
    #[arg(long, hide = true)]
    pub key_pages_without_memfd_secret: bool,
}

/// `responses-api-proxy rotate-key --admin-socket PATH`: the new key from stdin (never argv or
/// the environment), read into locked memory and sent over the admin socket.
#[derive(Debug, Clone, clap::Args)]
pub struct RotateKeyArgs {
    /// The running proxy's --admin-socket.
    #[arg(long, value_name = "PATH")]
    pub admin_socket: PathBuf,
}

/// Subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Per user and model: requests, input/cached/output tokens and cost from the ledger in
    /// --state-dir, for this month (default), today, or --from/--to (UTC dates).
    Usage(UsageArgs),
    /// Sends a new API key, read from stdin, to a running proxy over its --admin-socket (root
    /// or the admin group). New requests use it; requests in flight finish with the old key.
    RotateKey(RotateKeyArgs),
}

/// `responses-api-proxy usage`.
#[derive(Debug, Clone, clap::Args)]
pub struct UsageArgs {
    /// The proxy's --state-dir.
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Today only (UTC).
    #[arg(long, conflicts_with_all = ["month", "from", "to"])]
    pub today: bool,
    /// This month (UTC); the default.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub month: bool,
    /// First day, YYYY-MM-DD (UTC).
    #[arg(long, value_name = "DATE", requires = "to")]
    pub from: Option<String>,
    /// Last day, YYYY-MM-DD (UTC), inclusive.
    #[arg(long, value_name = "DATE", requires = "from")]
    pub to: Option<String>,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The access-control flags (flattened into [`Args`]): who may use the key, as whom the proxy runs, where the key comes from.
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

impl Args {
    /// The listeners to bind: `--listen` values, or `127.0.0.1:<--port or 0>`.
    pub fn listen_addrs(&self) -> Vec<ListenAddr> {
        if self.listen.is_empty() {
            vec![ListenAddr::Tcp(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                self.port.unwrap_or(0),
            ))]
        } else {
            self.listen.clone()
        }
    }

    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout)
    }

    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Parses `127.0.0.1:P`, `[::1]:P`, `localhost:P` or `unix:/path`. Only loopback TCP addresses
/// are accepted: the key must not be offered to the network.
pub fn parse_listen_addr(s: &str) -> Result<ListenAddr, String> {
    if let Some(path) = s.strip_prefix("unix:") {
        let path = PathBuf::from(path);
        if !path.is_absolute() {
            return Err(format!(
                "unix socket path must be absolute: {}",
                path.display()
            ));
        }
        return Ok(ListenAddr::Unix(path));
    }
    let addr: SocketAddr = if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid port in listen address {s:?}"))?;
        return Ok(ListenAddr::Localhost(port));
    } else {
        s.parse().map_err(|_| {
            format!(
                "invalid listen address {s:?}: expected 127.0.0.1:PORT, [::1]:PORT or unix:/PATH"
            )
        })?
    };
    if !addr.ip().is_loopback() {
        return Err(format!(
            "listen address {addr} is not a loopback address: the proxy only serves local users"
        ));
    }
    Ok(ListenAddr::Tcp(addr))
}

fn parse_allow_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') {
        return Err(format!("allowed path must start with '/': {s:?}"));
    }
    if s.contains('?') || s.contains('#') || s.contains("..") || s.contains('%') {
        return Err(format!(
            "allowed path must be a plain path without '?', '#', '..' or '%': {s:?}"
        ));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(
            parse_listen_addr("127.0.0.1:80").unwrap(),
            ListenAddr::Tcp("127.0.0.1:80".parse().unwrap())
        );
        assert_eq!(
            parse_listen_addr("[::1]:0").unwrap(),
            ListenAddr::Tcp("[::1]:0".parse().unwrap())
        );
        assert_eq!(
            parse_listen_addr("localhost:9").unwrap(),
            ListenAddr::Localhost(9)
        );
        assert_eq!(
            parse_listen_addr("unix:/run/x.sock").unwrap(),
            ListenAddr::Unix("/run/x.sock".into())
        );
        assert!(
            parse_listen_addr("0.0.0.0:80")
                .unwrap_err()
                .contains("not a loopback")
        );
        assert!(
            parse_listen_addr("unix:rel.sock")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(parse_listen_addr("nonsense").is_err());
    }

    #[test]
    fn allow_path_rejects_tricks() {
        assert!(parse_allow_path("/v1/responses/compact").is_ok());
        assert!(parse_allow_path("v1").is_err());
        assert!(parse_allow_path("/v1/../x").is_err());
        assert!(parse_allow_path("/v1?x").is_err());
        assert!(parse_allow_path("/v1/%2e").is_err());
    }
}
