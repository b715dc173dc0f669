//! The administrator's usage report (`responses-api-proxy usage`): ledger records summed per
//! user and model over a period, as a table or JSON.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ledger::Record;

/// One line of the report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Row {
    pub uid: u32,
    /// The user name from the passwd database at report time (the uid when unknown).
    pub user: String,
    pub model: String,
    pub requests: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub output_tokens: u64,
    pub cost: f64,
}

/// The report over a period.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// First and last day, `YYYY-MM-DD` (UTC).
    pub from: String,
    pub to: String,
    pub rows: Vec<Row>,
    /// Lines skipped as torn or corrupt in the files read.
    pub corrupt_lines: u64,
}

/// Sums `records` per (uid, model); `name` turns a uid into a user name.
pub fn summarize(records: &[Record], name: &dyn Fn(u32) -> String) -> Vec<Row> {
    let mut rows: BTreeMap<(u32, &str), Row> = BTreeMap::new();
    for r in records {
        let row = rows
            .entry((r.uid, r.model.as_str()))
            .or_insert_with(|| Row {
                uid: r.uid,
                user: name(r.uid),
                model: r.model.clone(),
                ..Row::default()
            });
        row.requests += 1;
        row.input_tokens = row.input_tokens.saturating_add(r.input_tokens);
        row.cached_input_tokens = row
            .cached_input_tokens
            .saturating_add(r.cached_input_tokens);
        row.output_tokens = row.output_tokens.saturating_add(r.output_tokens);
        row.cost += r.cost;
    }
    rows.into_values().collect()
}

use codex_terminal_text::one_line;

impl Report {
    /// A fixed-width table with a total line. Names are printed with every control character
    /// escaped ([`one_line`]): a ledger written before model names were checked, or edited by
    /// hand, cannot forge a row or send an escape sequence to the administrator's terminal.
    pub fn text(&self) -> String {
        let mut out = format!("usage from {} to {} (UTC)\n", self.from, self.to);
        out.push_str(&format!(
            "{:<16} {:<24} {:>9} {:>14} {:>14} {:>14} {:>12}\n",
            "user", "model", "requests", "input", "cached_input", "output", "cost"
        ));
        let mut total = Row::default();
        for r in &self.rows {
            out.push_str(&format!(
                "{:<16} {:<24} {:>9} {:>14} {:>14} {:>14} {:>12.4}\n",
                one_line(&r.user),
                one_line(&r.model),
                r.requests,
                r.input_tokens,
                r.cached_input_tokens,
                r.output_tokens,
                r.cost
            ));
            total.requests += r.requests;
            total.input_tokens = total.input_tokens.saturating_add(r.input_tokens);
            total.cached_input_tokens = total
                .cached_input_tokens
                .saturating_add(r.cached_input_tokens);
            total.output_tokens = total.output_tokens.saturating_add(r.output_tokens);
            total.cost += r.cost;
        }
        out.push_str(&format!(
            "{:<16} {:<24} {:>9} {:>14} {:>14} {:>14} {:>12.4}\n",
            "total",
            "",
            total.requests,
            total.input_tokens,
            total.cached_input_tokens,
            total.output_tokens,
            total.cost
        ));
        if self.corrupt_lines > 0 {
            out.push_str(&format!(
                "{} torn or corrupt ledger lines skipped\n",
                self.corrupt_lines
            ));
        }
        out
    }
}

/// User names from `/etc/passwd` (read once; a report is a one-shot command).
pub fn passwd_names() -> impl Fn(u32) -> String {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let names: BTreeMap<u32, String> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect();
    move |uid| names.get(&uid).cloned().unwrap_or_else(|| uid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Usage;

    #[test]
    fn rows_are_per_user_and_model() {
        let u = |i, o| Usage {
            input_tokens: i,
            cached_input_tokens: 1,
            output_tokens: o,
        };
        let recs = vec![
            Record::new(1, 1001, "gpt-5", u(10, 5), 200, 0.5),
            Record::new(2, 1001, "gpt-5", u(20, 5), 200, 0.25),
            Record::new(3, 1001, "o3", u(1, 1), 200, 0.0),
            Record::new(4, 1002, "gpt-5", u(2, 2), 429, 0.0),
        ];
        let rows = summarize(&recs, &|uid| format!("u{uid}"));
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            Row {
                uid: 1001,
                user: "u1001".into(),
                model: "gpt-5".into(),
                requests: 2,
                input_tokens: 30,
                cached_input_tokens: 2,
                output_tokens: 10,
                cost: 0.75
            }
        );
        let r = Report {
            from: "2026-12-01".into(),
            to: "2026-12-05".into(),
            rows,
            corrupt_lines: 0,
        };
        let t = r.text();
        assert!(
            t.contains("u1002") && t.lines().last().unwrap().starts_with("total"),
            "{t}"
        );
        assert_eq!(passwd_names()(0), "root");
    }

    /// r12 F2: a model name with a newline and escape sequences (from a ledger written before
    /// names were checked) forged a row attributed to another user and cleared root's screen.
    #[test]
    fn hostile_names_cannot_forge_rows_or_reach_the_terminal() {
        let u = Usage {
            input_tokens: 1,
            cached_input_tokens: 0,
            output_tokens: 1,
        };
        let forged = "gpt-4o\nr12a             gpt-4o      1  123456\u{1b}[2J\u{1b}]0;t\u{7}";
        let recs = vec![
            Record::new(1, 1001, forged, u, 200, 0.0),
            Record::new(2, 1001, "gpt-5", u, 200, 0.0),
        ];
        let r = Report {
            from: "a".into(),
            to: "b".into(),
            rows: summarize(&recs, &|uid| format!("u{uid}")),
            corrupt_lines: 0,
        };
        let t = r.text();
        // Header, two rows, total: no forged line, no raw control byte.
        assert_eq!(t.lines().count(), 5, "{t}");
        assert!(!t.lines().any(|l| l.starts_with("r12a")), "{t}");
        assert!(!t.bytes().any(|b| b == 0x1b || b == 0x07), "{t}");
        assert!(t.contains("gpt-4o\\u{a}r12a"), "{t}");
    }
}
