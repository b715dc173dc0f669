//! What `codex exec` writes on stdout: the streamed text (sanitized on a terminal), or with
//! `--json` one JSON event per line (schema in `docs/exec.md`).
//!
//! Terminal escapes from the model (outside review): a prompt-injected `ESC ] 52` (clipboard
//! write), title or hyperlink sequence must not reach the terminal. When stdout is a terminal,
//! every C0 control except newline and tab, DEL, and every C1 control (U+0080..U+009F, which
//! some terminals also accept as escape introducers) is dropped. Piped or redirected output is
//! the model's text byte for byte. In `--json` output these characters are `\u00XX` escapes
//! (serde_json escapes C0; DEL and C1 are escaped here), so a JSON consumer printing a raw line
//! is safe too.

use std::io::Write;

use serde_json::json;

use crate::exit::{Coded, FAILURE};

/// Whether `c` is dropped from text written to a terminal.
pub fn is_terminal_control(c: char) -> bool {
    (c < ' ' && c != '\n' && c != '\t') || ('\u{7f}'..='\u{9f}').contains(&c)
}

/// `text` without the characters [`is_terminal_control`] names.
pub fn strip_terminal_controls(text: &str) -> String {
    text.chars().filter(|c| !is_terminal_control(*c)).collect()
}

/// One JSON line: `v` serialized, DEL and C1 characters escaped (they occur only inside strings,
/// so the line stays valid JSON), no newline inside.
pub fn json_line(v: &serde_json::Value) -> String {
    let raw = v.to_string();
    let mut out = String::with_capacity(raw.len() + 1);
    for c in raw.chars() {
        if ('\u{7f}'..='\u{9f}').contains(&c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Token counts of a turn.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Usage {
    pub input: Option<u64>,
    pub cached_input: Option<u64>,
    pub output: Option<u64>,
    pub total: Option<u64>,
}

impl Usage {
    /// `tokens used: T (input I, output O)`.
    pub fn line(&self) -> String {
        let n = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
        format!(
            "tokens used: {} (input {}, output {})",
            n(self.total),
            n(self.input),
            n(self.output)
        )
    }
}

/// The id of the one assistant message item of a turn (`item_0`, as codex numbers items).
const ITEM_ID: &str = "item_0";

/// stdout for one turn.
pub enum Sink {
    Text {
        /// stdout is a terminal: controls are stripped.
        tty: bool,
        last_char: char,
    },
    Json {
        started_item: bool,
    },
}

impl Sink {
    pub fn new(json: bool) -> Self {
        use std::io::IsTerminal;
        if json {
            Sink::Json {
                started_item: false,
            }
        } else {
            Sink::Text {
                tty: std::io::stdout().is_terminal(),
                last_char: '\n',
            }
        }
    }

    fn emit(&mut self, v: serde_json::Value) -> anyhow::Result<()> {
        if let Sink::Json { .. } = self {
            let mut line = json_line(&v);
            line.push('\n');
            write_stdout(line.as_bytes())?;
        }
        Ok(())
    }

    /// `thread.started` (codex's name for a session).
    pub fn session_started(&mut self, id: &str) -> anyhow::Result<()> {
        self.emit(json!({"type": "thread.started", "thread_id": id}))
    }

    pub fn turn_started(&mut self) -> anyhow::Result<()> {
        self.emit(json!({"type": "turn.started"}))
    }

    /// A text delta: printed (text mode) or `item.delta` (JSON; preceded once by `item.started`).
    pub fn delta(&mut self, text: &str) -> anyhow::Result<()> {
        match self {
            Sink::Text { tty, last_char } => {
                let shown = if *tty {
                    strip_terminal_controls(text)
                } else {
                    text.to_owned()
                };
                if let Some(c) = shown.chars().last() {
                    *last_char = c;
                }
                write_stdout(shown.as_bytes())
            }
            Sink::Json { started_item } => {
                if !*started_item {
                    *started_item = true;
                    self.emit(json!({"type": "item.started", "item": {"id": ITEM_ID, "type": "agent_message", "text": ""}}))?;
                }
                self.emit(json!({"type": "item.delta", "item_id": ITEM_ID, "delta": text}))
            }
        }
    }

    /// A non-fatal notice (a retry): stderr in text mode, an `error` event in JSON.
    pub fn notice(&mut self, message: &str) -> anyhow::Result<()> {
        match self {
            Sink::Text { .. } => {
                eprintln!("codex: {message}");
                Ok(())
            }
            Sink::Json { .. } => self.emit(json!({"type": "error", "message": message})),
        }
    }

    /// The turn ended with the answer `text`.
    pub fn completed(&mut self, text: &str, usage: &Usage) -> anyhow::Result<()> {
        self.finish_line();
        let n = |v: Option<u64>| v.unwrap_or(0);
        self.emit(json!({"type": "item.completed", "item": {"id": ITEM_ID, "type": "agent_message", "text": text}}))?;
        self.emit(json!({"type": "turn.completed", "usage": {
            "input_tokens": n(usage.input),
            "cached_input_tokens": n(usage.cached_input),
            "output_tokens": n(usage.output),
        }}))
    }

    /// The turn failed with `message` (the same line goes to stderr).
    pub fn failed(&mut self, message: &str) {
        self.finish_line();
        let _ = self.emit(json!({"type": "turn.failed", "error": {"message": message}}));
    }

    /// Text mode: end the answer with a newline.
    fn finish_line(&mut self) {
        if let Sink::Text { last_char, .. } = self {
            if *last_char != '\n' {
                *last_char = '\n';
                let _ = write_stdout(b"\n");
            }
        }
    }
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Coded::new(FAILURE, format!("failed to write to stdout: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_stripped_except_newline_and_tab() {
        let evil = "a\u{1b}]52;c;ZXZpbA==\u{7}b\u{9b}31mc\r\n\td\u{7f}";
        assert_eq!(strip_terminal_controls(evil), "a]52;c;ZXZpbA==b31mc\n\td");
        assert_eq!(strip_terminal_controls("plain é 日本"), "plain é 日本");
    }

    #[test]
    fn json_lines_escape_c0_del_and_c1() {
        let line = json_line(&json!({"delta": "x\u{1b}]0;t\u{7}\u{9d}y\u{7f}"}));
        assert_eq!(line, r#"{"delta":"x\u001b]0;t\u0007\u009dy\u007f"}"#);
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["delta"], "x\u{1b}]0;t\u{7}\u{9d}y\u{7f}");
    }
}
