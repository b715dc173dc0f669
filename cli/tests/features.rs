//! Feature flags: defaults, config layers, --enable/--disable, unknown names rejected.
#![allow(clippy::unwrap_used, clippy::panic)] // helpers outside #[test] functions

use std::process::{Command, Output};

fn codex(home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codex"))
        .env("CODEX_HOME", home)
        .env(
            "CODEX_MANAGED_CONFIG_PATH",
            suite_test_support::dirs::no_managed_config(home),
        )
        .args(args)
        .output()
        .unwrap()
}

fn state(o: &Output, name: &str) -> String {
    let s = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = s
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} not listed: {s}"));
    let parts: Vec<&str> = line.split_whitespace().collect();
    format!("{} {}", parts[2], parts[3])
}

#[test]
fn list_shows_defaults() {
    let d = tempfile::tempdir().unwrap();
    let o = codex(d.path(), &["features", "list"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(state(&o, "exec_usage_line"), "on (default)");
    assert_eq!(state(&o, "web_search_request"), "off (default)");
}

#[test]
fn config_then_flags_decide() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("config.toml"),
        "[features]\nweb_search_request = true\nexec_usage_line = false\n",
    )
    .unwrap();
    let o = codex(d.path(), &["features", "list"]);
    assert_eq!(state(&o, "web_search_request"), "on (config");
    assert_eq!(state(&o, "exec_usage_line"), "off (config");
    let o = codex(
        d.path(),
        &[
            "--disable",
            "web_search_request",
            "--enable",
            "exec_usage_line",
            "features",
            "list",
        ],
    );
    assert_eq!(state(&o, "web_search_request"), "off (flag)");
    assert_eq!(state(&o, "exec_usage_line"), "on (flag)");
    let o = codex(
        d.path(),
        &[
            "-c",
            "features.web_search_request=false",
            "features",
            "list",
        ],
    );
    assert_eq!(state(&o, "web_search_request"), "off (config");
}

#[test]
fn unknown_feature_flag_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    for flag in ["--enable", "--disable"] {
        let o = codex(d.path(), &[flag, "web_serch_request", "features", "list"]);
        assert_eq!(o.status.code(), Some(2), "{o:?}");
        assert_eq!(
            String::from_utf8_lossy(&o.stderr).trim(),
            "codex: --enable/--disable: unknown feature \"web_serch_request\" (known: exec_usage_line, web_search_request)"
        );
    }
}

#[test]
fn unknown_feature_in_config_is_rejected_with_the_file() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("config.toml");
    std::fs::write(&cfg, "[features]\nturbo = true\n").unwrap();
    let o = codex(d.path(), &["features", "list"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        format!(
            "codex: {}: key features.turbo: unknown feature \"turbo\" (known: exec_usage_line, web_search_request)",
            cfg.display()
        )
    );
}

#[test]
fn enable_and_disable_of_the_same_feature_is_rejected() {
    let d = tempfile::tempdir().unwrap();
    let o = codex(
        d.path(),
        &[
            "--enable",
            "exec_usage_line",
            "--disable",
            "exec_usage_line",
            "features",
            "list",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("is both --enable'd and --disable'd"));
}
