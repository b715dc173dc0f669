//! `codex mcp`: add, list, get, remove, login and logout of MCP servers. Flags are parsed here and
//! results printed; configuration, credentials, OAuth and the MCP client are `codex-mcp`.
//!
//! Exit codes: 0 success; 1 a runtime failure (a server that cannot be reached, a failed
//! login, an unknown server name, not logged in); 2 bad usage or an invalid config (the message
//! names the file, line and field); 130 a login cancelled with Ctrl-C.
//!
//! Config keys: `mcp_oauth_credentials_store` (`auto`, default; `file`; `keyring`),
//! `mcp_oauth_callback_port` (the login's callback port; default: an ephemeral port, which
//! dynamic registration allows; a pre-registered `oauth_client_id` may need a fixed one).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use codex_auth::StoreMode;
use codex_mcp::config::{self, HttpServer, McpConfig, ServerConfig, Transport};
use codex_mcp::edit::{self, Added, EditError, NewServer};
use codex_mcp::oauth::{self, McpAuthError};
use codex_mcp::status::{self, AuthStatus};
use codex_mcp::store::CredentialStore;
use codex_mcp::view;

use crate::exit::{Coded, FAILURE, USAGE};
use crate::login_browser::CANCELLED;

/// Per-request timeout of login and logout requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    codex mcp add docs -- npx -y @example/docs-mcp\n  \
    codex mcp add files --env ROOT=/srv/files -- /usr/local/bin/files-mcp --stdio\n  \
    codex mcp add github --url https://api.example.com/mcp --bearer-token-env-var GITHUB_TOKEN\n  \
    codex mcp add linear --url https://mcp.linear.example/mcp && codex mcp login linear\n  \
    codex mcp list --json\n  \
    codex mcp get linear --check")]
pub struct McpArgs {
    #[command(subcommand)]
    pub action: McpAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum McpAction {
    /// List configured MCP servers (values of env, headers and tokens are never shown).
    List(ListArgs),
    /// Show one MCP server.
    Get(GetArgs),
    /// Add (or replace) an MCP server in config.toml.
    Add(AddArgs),
    /// Remove an MCP server from config.toml.
    Remove(NameArg),
    /// Sign in to a streamable HTTP MCP server with OAuth.
    Login(McpLoginArgs),
    /// Revoke (where the server offers it) and remove the stored OAuth tokens of an MCP server.
    Logout(NameArg),
}

#[derive(Debug, clap::Args)]
pub struct McpLoginArgs {
    /// Name of the MCP server to authenticate with OAuth.
    pub name: String,
    /// Comma-separated list of OAuth scopes to request.
    #[arg(long, value_name = "SCOPE,SCOPE", value_delimiter = ',')]
    pub scopes: Option<Vec<String>>,
    /// Do not try to open a browser; only print the authorization URL.
    #[arg(long)]
    pub no_browser: bool,
    /// Give up after this long: seconds, or a number with a unit (`90s`, `10m`). Default 10m.
    #[arg(long, value_name = "DURATION", value_parser = crate::login_browser::parse_duration)]
    pub timeout: Option<Duration>,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Output the configured servers as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// Name of the MCP server to display.
    pub name: String,
    /// Output the server configuration as JSON.
    #[arg(long)]
    pub json: bool,
    /// Connect with the stored credentials: MCP initialize and tools/list; print the server's
    /// name, version and tool count (exit 1 when the check fails).
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, clap::Args)]
pub struct NameArg {
    /// Name of the MCP server.
    pub name: String,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("transport").required(true).args(["url", "command"])))]
pub struct AddArgs {
    /// Name for the MCP server configuration ([A-Za-z0-9_-]).
    pub name: String,
    /// Environment variables to set when launching the server. Only valid with stdio servers.
    #[arg(long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// URL for a streamable HTTP MCP server.
    #[arg(long)]
    pub url: Option<String>,
    /// Environment variable to read a bearer token from. Only valid with streamable HTTP servers.
    #[arg(long, value_name = "ENV_VAR", requires = "url")]
    pub bearer_token_env_var: Option<String>,
    /// OAuth client identifier (a pre-registered client; without it, codex registers one).
    #[arg(long, value_name = "CLIENT_ID", requires = "url")]
    pub oauth_client_id: Option<String>,
    /// Refused: a secret on the command line is visible to every local user.
    #[arg(long, value_name = "CLIENT_SECRET", hide = true)]
    pub oauth_client_secret: Option<String>,
    /// OAuth resource parameter (RFC 8707) to send during login; default: the server URL.
    #[arg(long, value_name = "RESOURCE", requires = "url")]
    pub oauth_resource: Option<String>,
    /// Command to launch the MCP server. Use --url for a streamable HTTP server.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Paths of the two config layers.
struct Paths {
    user: PathBuf,
    managed: PathBuf,
}

fn paths() -> anyhow::Result<Paths> {
    let home = crate::config::codex_home()?;
    Ok(Paths {
        user: home.join("config.toml"),
        managed: crate::config::managed_config_path(),
    })
}

fn load(p: &Paths) -> anyhow::Result<McpConfig> {
    let cfg =
        config::load(&p.user, Some(&p.managed)).map_err(|e| Coded::new(USAGE, e.to_string()))?;
    for w in &cfg.warnings {
        crate::exit::warn(w);
    }
    Ok(cfg)
}

fn edit_error(e: EditError) -> anyhow::Error {
    let code = match e {
        EditError::Io { .. } | EditError::NotFound { .. } => FAILURE,
        _ => USAGE,
    };
    Coded::new(code, e.to_string())
}

/// The credential store selected by `mcp_oauth_credentials_store` (default `auto`).
fn store_from(cfg: &crate::config::Config) -> anyhow::Result<CredentialStore> {
    let mode = match cfg.get_str("mcp_oauth_credentials_store") {
        None => StoreMode::Auto,
        Some(s) => s
            .parse::<StoreMode>()
            .map_err(|e| Coded::new(USAGE, format!("config mcp_oauth_credentials_store: {e}")))?,
    };
    Ok(CredentialStore::new(cfg.codex_home.clone(), mode))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Coded::new(FAILURE, format!("cannot start the async runtime: {e}")))
}

pub fn run(args: McpArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    // The rest of the config must be valid too (as for every subcommand).
    let cfg = crate::config::load(global)?;
    let p = paths()?;
    match args.action {
        McpAction::List(a) => list(&p, &cfg, a.json),
        McpAction::Get(a) => get(&p, &cfg, &a.name, a.json, a.check),
        McpAction::Login(a) => login(&p, &cfg, a),
        McpAction::Logout(a) => logout(&p, &cfg, &a.name),
        McpAction::Add(a) => add(&p, a),
        McpAction::Remove(a) => {
            edit::remove(&p.user, Some(&p.managed), &a.name).map_err(edit_error)?;
            println!("Removed MCP server '{}' from {}", a.name, p.user.display());
            Ok(0)
        }
    }
}

fn add(p: &Paths, mut a: AddArgs) -> anyhow::Result<i32> {
    if let Some(mut s) = a.oauth_client_secret.take() {
        zeroize::Zeroize::zeroize(&mut s);
        return Err(Coded::new(
            USAGE,
            "--oauth-client-secret is not supported: a secret on the command line is visible in the \
             process list and shell history",
        ));
    }
    let server = match a.url {
        Some(url) => {
            if !a.env.is_empty() {
                return Err(Coded::new(
                    USAGE,
                    "--env is only valid with a stdio server (-- COMMAND), not with --url",
                ));
            }
            NewServer::Http {
                url,
                bearer_token_env_var: a.bearer_token_env_var,
                oauth_client_id: a.oauth_client_id,
                oauth_resource: a.oauth_resource,
            }
        }
        None => {
            let mut it = a.command.into_iter();
            let command = it.next().unwrap_or_default();
            let mut env = BTreeMap::new();
            for kv in &a.env {
                let Some((k, v)) = kv.split_once('=') else {
                    return Err(Coded::new(
                        USAGE,
                        format!(
                            "--env {:?}: expected KEY=VALUE",
                            kv.split('=').next().unwrap_or("")
                        ),
                    ));
                };
                env.insert(k.to_string(), v.to_string());
            }
            NewServer::Stdio {
                command,
                args: it.collect(),
                env,
            }
        }
    };
    let what = edit::add(&p.user, Some(&p.managed), &a.name, &server).map_err(edit_error)?;
    let verb = match what {
        Added::Created => "Added",
        Added::Replaced => "Updated",
    };
    println!("{verb} MCP server '{}' in {}", a.name, p.user.display());
    if let NewServer::Http {
        url,
        bearer_token_env_var: None,
        ..
    } = &server
    {
        // the query may carry a key (outside review r9 F1)
        let shown = match url.split_once('?') {
            Some((base, _)) => format!("{base}?***"),
            None => url.clone(),
        };
        println!(
            "If the server uses OAuth, sign in with: codex mcp login {}  ({shown})",
            a.name
        );
    }
    Ok(0)
}

fn statuses(
    cfg: &crate::config::Config,
    servers: &[ServerConfig],
) -> anyhow::Result<Vec<AuthStatus>> {
    let store = store_from(cfg)?;
    let rt = runtime()?;
    let results = rt.block_on(status::auth_statuses(
        servers,
        &store,
        status::STATUS_TIMEOUT,
    ));
    let mut shown = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (s, warnings) in results {
        for w in warnings {
            if shown.insert(w.clone()) {
                crate::exit::warn(&w);
            }
        }
        out.push(s);
    }
    Ok(out)
}

fn list(p: &Paths, main_cfg: &crate::config::Config, json: bool) -> anyhow::Result<i32> {
    let cfg = load(p)?;
    let auth = statuses(main_cfg, &cfg.servers)?;
    if json {
        let arr: Vec<_> = cfg
            .servers
            .iter()
            .zip(&auth)
            .map(|(s, a)| {
                let mut v = view::server_json(s);
                v["auth_status"] = a.json();
                v
            })
            .collect();
        println!("{}", serde_json::Value::Array(arr));
        return Ok(0);
    }
    if cfg.servers.is_empty() {
        println!("No MCP servers configured. Add one with `codex mcp add`.");
        return Ok(0);
    }
    let mut rows = vec![[
        "Name".to_string(),
        "Transport".into(),
        "Command / URL".into(),
        "Args".into(),
        "Env / Headers".into(),
        "Status".into(),
        "Auth".into(),
    ]];
    for (s, a) in cfg.servers.iter().zip(&auth) {
        let (target, args, env) = match &s.transport {
            Transport::Stdio {
                command, args, env, ..
            } => (
                command.clone(),
                if args.is_empty() {
                    "-".into()
                } else {
                    args.join(" ")
                },
                view::masked_names(env.keys()),
            ),
            Transport::Http(h) => (
                view::redacted_url(&h.url),
                "-".into(),
                view::masked_names(h.http_headers.keys().chain(h.env_http_headers.keys())),
            ),
        };
        rows.push([
            s.name.clone(),
            view::transport_name(s).into(),
            target,
            args,
            env,
            if s.enabled { "enabled" } else { "disabled" }.into(),
            a.label(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(0)
}

fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn find<'a>(cfg: &'a McpConfig, name: &str) -> anyhow::Result<&'a ServerConfig> {
    cfg.get(name).ok_or_else(|| {
        Coded::new(
            FAILURE,
            format!("no mcp server named {name:?} (see `codex mcp list`)"),
        )
    })
}

fn http_of<'a>(s: &'a ServerConfig, what: &str) -> anyhow::Result<&'a HttpServer> {
    match &s.transport {
        Transport::Http(h) => Ok(h),
        Transport::Stdio { .. } => Err(Coded::new(
            USAGE,
            format!(
                "mcp server {:?} is a stdio server: {what} applies to streamable HTTP servers (--url)",
                s.name
            ),
        )),
    }
}

fn run_check(
    main_cfg: &crate::config::Config,
    s: &ServerConfig,
) -> anyhow::Result<Result<codex_mcp::client::CheckReport, String>> {
    let store = store_from(main_cfg)?;
    let rt = runtime()?;
    Ok(match rt.block_on(codex_mcp::client::check(s, &store)) {
        Ok((report, warnings)) => {
            for w in warnings {
                crate::exit::warn(&w);
            }
            Ok(report)
        }
        Err(e) => Err(check_error_text(s, &e.to_string())),
    })
}

/// A `--check` failure as printed: the server's URL with its query masked, any `Bearer <value>`
/// and the configured bearer token replaced by `***`, control and invisible formatting characters
/// escaped (outside review r9 F1, F2, F4: the error quoted the server's answer raw, with escape
/// sequences and an echoed `Authorization` header, and the URL's query).
fn check_error_text(s: &ServerConfig, text: &str) -> String {
    let mut t = text.to_string();
    if let codex_mcp::config::Transport::Http(h) = &s.transport {
        t = t.replace(h.url.as_str(), &codex_mcp::view::redacted_url(&h.url));
        if let Some(var) = &h.bearer_token_env_var {
            if let Some(v) = std::env::var_os(var).filter(|v| v.len() >= 4) {
                t = t.replace(v.to_string_lossy().as_ref(), "***");
            }
        }
    }
    let mut out = String::with_capacity(t.len());
    let mut rest = t.as_str();
    while let Some(i) = rest.find("Bearer ") {
        out.push_str(&rest[..i + "Bearer ".len()]);
        let after = &rest[i + "Bearer ".len()..];
        let end = after
            .find(|c: char| c.is_whitespace() || c == '"' || c == ',')
            .unwrap_or(after.len());
        out.push_str("***");
        rest = &after[end..];
    }
    out.push_str(rest);
    codex_login::claims::printable(&out)
}

fn get(
    p: &Paths,
    main_cfg: &crate::config::Config,
    name: &str,
    json: bool,
    check: bool,
) -> anyhow::Result<i32> {
    let cfg = load(p)?;
    let s = find(&cfg, name)?;
    let auth = statuses(main_cfg, std::slice::from_ref(s))?
        .pop()
        .unwrap_or(AuthStatus::Error("not computed".into()));
    let checked = if check {
        Some(run_check(main_cfg, s)?)
    } else {
        None
    };
    let code = match &checked {
        Some(Err(_)) => FAILURE,
        _ => 0,
    };
    if json {
        let mut v = view::server_json(s);
        v["auth_status"] = auth.json();
        if let Some(c) = &checked {
            v["check"] = match c {
                Ok(r) => serde_json::json!({
                    "ok": true,
                    "server_name": r.server_name,
                    "server_version": r.server_version,
                    "protocol_version": r.protocol_version,
                    "tool_count": r.tools.len(),
                    "tools": r.tools,
                    "auth": r.auth,
                }),
                Err(e) => serde_json::json!({"ok": false, "error": e}),
            };
        }
        println!("{v}");
        return Ok(code);
    }
    let mut out = format!("{}\n", s.name);
    out.push_str(&format!(
        "  enabled: {}\n  transport: {}\n  defined at: {}\n  auth: {}\n",
        s.enabled,
        view::transport_name(s),
        s.source,
        auth.label()
    ));
    match &s.transport {
        Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            out.push_str(&format!("  command: {command}\n"));
            out.push_str(&format!(
                "  args: {}\n",
                if args.is_empty() {
                    "-".into()
                } else {
                    args.join(" ")
                }
            ));
            out.push_str(&format!("  env: {}\n", view::masked_names(env.keys())));
            if let Some(c) = cwd {
                out.push_str(&format!("  cwd: {}\n", c.display()));
            }
        }
        Transport::Http(h) => {
            out.push_str(&format!("  url: {}\n", view::redacted_url(&h.url)));
            out.push_str(&format!(
                "  bearer_token_env_var: {}\n",
                h.bearer_token_env_var.as_deref().unwrap_or("-")
            ));
            out.push_str(&format!(
                "  http_headers: {}\n",
                view::masked_names(h.http_headers.keys())
            ));
            let envh: Vec<String> = h
                .env_http_headers
                .iter()
                .map(|(k, v)| format!("{k}=${v}"))
                .collect();
            out.push_str(&format!(
                "  env_http_headers: {}\n",
                if envh.is_empty() {
                    "-".into()
                } else {
                    envh.join(", ")
                }
            ));
            if let Some(id) = &h.oauth_client_id {
                out.push_str(&format!("  oauth_client_id: {id}\n"));
            }
            if let Some(r) = &h.oauth_resource {
                out.push_str(&format!("  oauth_resource: {r}\n"));
            }
        }
    }
    for (k, v) in [
        ("startup_timeout_sec", s.startup_timeout_sec),
        ("tool_timeout_sec", s.tool_timeout_sec),
    ] {
        if let Some(v) = v {
            out.push_str(&format!("  {k}: {v}\n"));
        }
    }
    match &checked {
        None => {}
        Some(Ok(r)) => {
            out.push_str(&codex_login::claims::printable(&format!(
                "  check: ok: {} {} (MCP {}), {} tool(s){} [auth: {}]",
                r.server_name.as_deref().unwrap_or("(unnamed server)"),
                r.server_version.as_deref().unwrap_or("(no version)"),
                r.protocol_version,
                r.tools.len(),
                if r.tools.is_empty() {
                    String::new()
                } else {
                    format!(": {}", r.tools.join(", "))
                },
                r.auth
            )));
            out.push('\n');
        }
        Some(Err(e)) => out.push_str(&format!("  check: FAILED: {e}\n")),
    }
    print!("{out}");
    Ok(code)
}

fn callback_port(cfg: &crate::config::Config) -> anyhow::Result<codex_login::PortChoice> {
    match cfg.get("mcp_oauth_callback_port") {
        None => Ok(codex_login::PortChoice::Preferred(0)),
        Some(v) => v
            .as_integer()
            .and_then(|n| u16::try_from(n).ok())
            .map(codex_login::PortChoice::Exact)
            .ok_or_else(|| {
                Coded::new(
                    USAGE,
                    "config mcp_oauth_callback_port: expected a port number 0-65535",
                )
            }),
    }
}

fn auth_error(e: McpAuthError) -> anyhow::Error {
    let code = match e {
        McpAuthError::Cleartext { .. } => USAGE,
        _ => FAILURE,
    };
    Coded::new(code, e.to_string())
}

fn login(p: &Paths, main_cfg: &crate::config::Config, a: McpLoginArgs) -> anyhow::Result<i32> {
    let cfg = load(p)?;
    let s = find(&cfg, &a.name)?;
    let h = http_of(s, "codex mcp login")?.clone();
    if let Some(var) = &h.bearer_token_env_var {
        return Err(Coded::new(
            USAGE,
            format!(
                "mcp server {:?} uses a bearer token from ${var} (bearer_token_env_var); OAuth login does not apply",
                s.name
            ),
        ));
    }
    let store = store_from(main_cfg)?;
    let port = callback_port(main_cfg)?;
    let name = s.name.clone();
    let timeout = a.timeout.unwrap_or(crate::login_browser::DEFAULT_TIMEOUT);
    let rt = runtime()?;
    rt.block_on(async move {
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|e| Coded::new(FAILURE, format!("cannot listen for Ctrl-C: {e}")))?;
        let (url_tx, mut url_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let opts = oauth::LoginOptions {
            scopes: a.scopes.clone(),
            port,
            timeout,
            on_url: Box::new(move |url| {
                eprintln!(
                    "Open this URL in your browser to sign in to the MCP server (waiting {}s; Ctrl-C cancels):\n",
                    timeout.as_secs()
                );
                eprintln!("  {url}\n");
                let _ = url_tx.send(url.to_string());
            }),
            on_cancel_handle: None,
            request_timeout: REQUEST_TIMEOUT,
        };
        let fut = oauth::login(&name, &h, &store, opts);
        tokio::pin!(fut);
        let result = loop {
            tokio::select! {
                r = &mut fut => break r,
                Some(url) = url_rx.recv() => {
                    if !a.no_browser {
                        if let Err(why) = crate::login_browser::open_browser(&url).await {
                            eprintln!("(could not open a browser: {why}; open the URL above yourself)");
                        }
                    }
                }
                // Dropping the login future closes the callback server.
                _ = sigint.recv() => return Err(Coded::new(CANCELLED, "login cancelled")),
            }
        };
        let done = result.map_err(auth_error)?;
        if let Some(w) = &done.saved.warning {
            crate::exit::warn(w);
        }
        let expiry = done
            .expires_in
            .map(|e| format!(", expires in {}", status::human(e as i64)))
            .unwrap_or_default();
        eprintln!(
            "Logged in to MCP server '{name}' (client {}{}{expiry}); tokens stored in {}.",
            done.client_id,
            if done.registered { ", registered dynamically" } else { "" },
            done.saved.backend
        );
        Ok(0)
    })
}

fn logout(p: &Paths, main_cfg: &crate::config::Config, name: &str) -> anyhow::Result<i32> {
    let cfg = load(p)?;
    let s = find(&cfg, name)?;
    let h = http_of(s, "codex mcp logout")?.clone();
    let store = store_from(main_cfg)?;
    let rt = runtime()?;
    let out = rt
        .block_on(oauth::logout(name, &h, &store, REQUEST_TIMEOUT))
        .map_err(auth_error)?;
    for w in &out.warnings {
        crate::exit::warn(w);
    }
    if !out.removed {
        eprintln!("Not logged in to MCP server '{name}'.");
        return Ok(1);
    }
    eprintln!(
        "Logged out of MCP server '{name}'{}.",
        match out.revoked {
            0 => " (the server offers no revocation, or it failed: tokens removed locally)"
                .to_string(),
            n => format!(" ({n} token(s) revoked at the server)"),
        }
    );
    Ok(0)
}
