//! `codex mcp`: add, list, get, remove, login and logout of MCP servers. Flags are parsed here and
//! results printed; configuration, credentials, OAuth and the MCP client are `codex-mcp`.
//!
//! Exit codes: 0 success; 1 a runtime failure (a server that cannot be reached, a failed
//! login, an unknown server name); 2 bad usage or an invalid config (the message names the
//! file, line and field).

use std::collections::BTreeMap;
use std::path::PathBuf;

use codex_mcp::config::{self, McpConfig, Transport};
use codex_mcp::edit::{self, Added, EditError, NewServer};
use codex_mcp::view;

use crate::exit::{Coded, FAILURE, USAGE};

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
        eprintln!("codex: warning: {w}");
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

pub fn run(args: McpArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    // The rest of the config must be valid too (as for every subcommand).
    let _ = crate::config::load(global)?;
    let p = paths()?;
    match args.action {
        McpAction::List(a) => list(&p, a.json),
        McpAction::Get(a) => get(&p, &a.name, a.json),
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
        println!(
            "If the server uses OAuth, sign in with: codex mcp login {}  ({url})",
            a.name
        );
    }
    Ok(0)
}

fn list(p: &Paths, json: bool) -> anyhow::Result<i32> {
    let cfg = load(p)?;
    if json {
        let arr: Vec<_> = cfg.servers.iter().map(view::server_json).collect();
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
    ]];
    for s in &cfg.servers {
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

fn get(p: &Paths, name: &str, json: bool) -> anyhow::Result<i32> {
    let cfg = load(p)?;
    let Some(s) = cfg.get(name) else {
        return Err(Coded::new(
            FAILURE,
            format!("no mcp server named {name:?} (see `codex mcp list`)"),
        ));
    };
    if json {
        println!("{}", view::server_json(s));
        return Ok(0);
    }
    let mut out = format!("{}\n", s.name);
    out.push_str(&format!(
        "  enabled: {}\n  transport: {}\n  defined at: {}\n",
        s.enabled,
        view::transport_name(s),
        s.source
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
    print!("{out}");
    Ok(0)
}
