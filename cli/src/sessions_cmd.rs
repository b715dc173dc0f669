//! `codex sessions list [--json] [--limit N]`: recorded `codex exec` sessions, newest first
//! (the store is [`codex_sessions`]). Text: one line per session, `ID  STARTED  CWD  PROMPT`
//! (prompt truncated to 60 characters, control characters shown as spaces); `--json`: one array
//! of `{"id", "timestamp", "cwd", "first_prompt", "path"}`. Files refused by the store's checks
//! (symlinks, other owners, loose modes) are named on stderr.

use codex_sessions::SessionStore;

use crate::exit::{Coded, FAILURE};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  codex sessions list\n  codex sessions list --json | jq -r '.[0].id'\n  \
    codex exec resume \"$(codex sessions list --json | jq -r '.[0].id')\" \"continue\""
)]
pub struct SessionsArgs {
    #[command(subcommand)]
    pub action: SessionsAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum SessionsAction {
    /// List recent sessions: id, start time, working directory, first prompt.
    List {
        /// One JSON array.
        #[arg(long)]
        json: bool,
        /// At most N sessions.
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: usize,
    },
}

/// Printable, one line, at most `max` characters (`...` when cut).
fn shown(s: &str, max: usize) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one.chars().count() > max {
        let mut cut: String = one.chars().take(max).collect();
        cut.push_str("...");
        cut
    } else {
        one
    }
}

pub fn run(args: SessionsArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    let cfg = crate::config::load(global)?;
    let SessionsAction::List { json, limit } = args.action;
    let store = SessionStore::new(&cfg.codex_home);
    let listing = store
        .list()
        .map_err(|e| Coded::new(FAILURE, e.to_string()))?;
    for r in &listing.refused {
        crate::exit::warn(r);
    }
    let sessions = listing.sessions.iter().take(limit);
    let mut out = String::new();
    if json {
        let arr: Vec<serde_json::Value> = sessions
            .map(|s| {
                serde_json::json!({
                    "id": s.id,
                    "timestamp": s.timestamp,
                    "cwd": s.cwd,
                    "first_prompt": s.first_prompt,
                    "path": s.path.display().to_string(),
                })
            })
            .collect();
        out.push_str(&crate::exec_cmd::output::json_line(
            &serde_json::Value::Array(arr),
        ));
        out.push('\n');
    } else {
        if listing.sessions.is_empty() {
            eprintln!("codex: no sessions under {}", store.root().display());
        }
        for s in sessions {
            out.push_str(&format!(
                "{}  {}  {}  {}\n",
                s.id,
                shown(&s.timestamp, 30),
                shown(&s.cwd, 200),
                shown(s.first_prompt.as_deref().unwrap_or(""), 60)
            ));
        }
    }
    print!("{out}");
    Ok(0)
}
