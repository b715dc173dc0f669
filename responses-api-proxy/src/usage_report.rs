//! `responses-api-proxy usage`: the administrator's report from the ledger in `--state-dir`
//! (per user and model: requests, input/cached/output tokens, cost), as a table or JSON.
//! Reads only; runs as whoever may read the state directory (root).

use codex_proxy_governance::clock;
use codex_proxy_governance::ledger::{LedgerError, read_range};
use codex_proxy_governance::report::{Report, passwd_names, summarize};

use crate::cli::UsageArgs;

/// The report failed (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("--{flag} {given:?}: not a date (YYYY-MM-DD)")]
    BadDate { flag: &'static str, given: String },
    #[error("--from {from} is after --to {to}")]
    Reversed { from: String, to: String },
    #[error("{0}")]
    Ledger(#[from] LedgerError),
}

/// The report as text (or JSON with `--json`), for `now_ms`.
pub fn run(a: &UsageArgs, now_ms: u64) -> Result<String, UsageError> {
    let today = clock::day_of(now_ms);
    let (from, to) = match (&a.from, &a.to) {
        (Some(f), Some(t)) => {
            let day = |flag, s: &String| {
                clock::parse_day(s).ok_or_else(|| UsageError::BadDate {
                    flag,
                    given: s.clone(),
                })
            };
            let (f, t) = (day("from", f)?, day("to", t)?);
            if f > t {
                return Err(UsageError::Reversed {
                    from: clock::format_day(f),
                    to: clock::format_day(t),
                });
            }
            (f, t)
        }
        _ if a.today => (today, today),
        _ => (clock::Month::of_day(today).first_day(), today),
    };
    let (records, stats) = read_range(&a.state_dir, from, to)?;
    let names = passwd_names();
    let report = Report {
        from: clock::format_day(from),
        to: clock::format_day(to),
        rows: summarize(&records, &names),
        corrupt_lines: stats.corrupt,
    };
    Ok(if a.json {
        let mut s = serde_json::to_string_pretty(&report).unwrap_or_default();
        s.push('\n');
        s
    } else {
        report.text()
    })
}
