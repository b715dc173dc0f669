//! Untrusted text (a model's answer, a provider's error, a model name from a ledger) on its way
//! to a terminal. A terminal obeys escape sequences in what it prints: `ESC ] 52` writes the
//! clipboard, `ESC [ 2J` clears the screen, a bidirectional override reorders what is shown, and a
//! newline in a value forges a line of a table. Every function here escapes those characters as
//! `\u{…}`, which a reader sees and the terminal does not act on.
//!
//! - [`terminal_safe`] keeps newlines and tabs (multi-line messages stay readable).
//! - [`one_line`] escapes them too: a value inside one line of a table or a log.

/// Characters that draw nothing but change what is shown (soft hyphen, zero-width characters,
/// bidirectional embeddings, overrides and isolates, the byte-order mark, interlinear anchors).
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

fn escape(s: &str, keep: fn(char) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if (c.is_control() && !keep(c)) || invisible(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` with C0 and C1 controls (but newline and tab) and invisible characters escaped.
pub fn terminal_safe(s: &str) -> String {
    escape(s, |c| c == '\n' || c == '\t')
}

/// `s` with every control (newline and tab included) and invisible character escaped.
pub fn one_line(s: &str) -> String {
    escape(s, |_| false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_only_terminal_safe_keeps_lines() {
        let hostile = "a\u{1b}]52;c;SGk=\u{7}b\nnext\tcol\u{9b}2J\u{202e}x";
        assert_eq!(
            terminal_safe(hostile),
            "a\\u{1b}]52;c;SGk=\\u{7}b\nnext\tcol\\u{9b}2J\\u{202e}x"
        );
        assert_eq!(
            one_line(hostile),
            "a\\u{1b}]52;c;SGk=\\u{7}b\\u{a}next\\u{9}col\\u{9b}2J\\u{202e}x"
        );
        // Control: ordinary text, accents and CJK pass as they are.
        let plain = "gpt-5-mini café 模型 ft:gpt-4o:org:x";
        assert_eq!(one_line(plain), plain);
        assert_eq!(terminal_safe(plain), plain);
    }
}
