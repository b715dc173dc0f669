//! `codex` configuration: one config file's text ([`codex_cli::config::parse_layer_text`]) and
//! `-c key=value` overrides ([`codex_cli::config::parse_overrides`]).
//!
//! Input: the config file's text, then a NUL byte, then overrides one per line.
//!
//! Properties: no panic; parsing is deterministic; a file error is one line that starts with the
//! file's name (`FILE:LINE:COL: ...` or `FILE: ...`); an override error is one line that names
//! the override (`-c`); the last accepted override's dotted key is present in the resulting table.

use std::path::Path;

use codex_cli::config::{parse_layer_text, parse_overrides};

const FILE: &str = "/fuzz/config.toml";

/// The fuzz target.
pub fn config(data: &[u8]) {
    let (file, rest) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(text) = std::str::from_utf8(file) {
        let a = parse_layer_text(Path::new(FILE), text);
        let b = parse_layer_text(Path::new(FILE), text);
        match (&a, &b) {
            // Compared as text: `nan` is a valid TOML float and NaN != NaN.
            (Ok(x), Ok(y)) => assert_eq!(format!("{x:?}"), format!("{y:?}"), "not deterministic"),
            (Err(x), Err(y)) => {
                let m = x.to_string();
                assert_eq!(m, y.to_string(), "not deterministic");
                assert!(
                    m.starts_with(FILE),
                    "file error does not name the file: {m}"
                );
                assert!(!m.contains('\n'), "file error is not one line: {m:?}");
            }
            _ => panic!("not deterministic"),
        }
    }
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let items: Vec<String> = text.lines().map(str::to_owned).collect();
    match parse_overrides(&items) {
        Ok(table) => {
            // The last override always wins: its whole dotted key is in the table. (Earlier ones
            // may have been replaced by a later scalar and then a new table.)
            if let Some(item) = items.last() {
                let key = item.split_once('=').map_or(item.as_str(), |(k, _)| k);
                let mut t = &table;
                let parts: Vec<&str> = key.split('.').map(str::trim).collect();
                for (i, p) in parts.iter().enumerate() {
                    let v = t
                        .get(*p)
                        .unwrap_or_else(|| panic!("override {item:?}: {p} missing"));
                    if i + 1 < parts.len() {
                        t = v
                            .as_table()
                            .unwrap_or_else(|| panic!("override {item:?}: {p} is not a table"));
                    }
                }
            }
        }
        Err(e) => {
            let m = e.to_string();
            assert!(m.contains("-c"), "override error does not name -c: {m}");
            assert!(!m.contains('\n'), "override error is not one line: {m:?}");
        }
    }
}
