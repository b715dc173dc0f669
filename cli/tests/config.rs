//! Config layers through the real binary: config.toml < -c < managed config, recursive table
//! merge, provenance in `codex config show`, and every bad-input error naming file, position, key.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    _dir: tempfile::TempDir,
    home: PathBuf,
    managed: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    // an empty managed layer (root-owned: honoured), so the machine's /etc/codex does not count
    let managed = dir.path().join("managed_config.toml");
    std::fs::write(&managed, "").unwrap();
    Env {
        _dir: dir,
        home,
        managed,
    }
}

fn codex(e: &Env, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codex"))
        .env("CODEX_HOME", &e.home)
        .env("CODEX_MANAGED_CONFIG_PATH", &e.managed)
        .args(args)
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_owned()
}

fn write(p: &Path, s: &str) {
    std::fs::write(p, s).unwrap();
}

fn show_json(e: &Env, args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.extend(["config", "show", "--json"]);
    let o = codex(e, &a);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn precedence_user_then_override_then_managed() {
    let e = env();
    let user = e.home.join("config.toml");
    write(&user, "model = \"from-file\"\nmodel_provider = \"p\"\n");
    let v = show_json(&e, &[]);
    assert_eq!(
        v["model"],
        serde_json::json!({"value": "from-file", "source": user.display().to_string()})
    );
    let v = show_json(&e, &["-c", "model=from-flag"]);
    assert_eq!(
        v["model"],
        serde_json::json!({"value": "from-flag", "source": "-c"})
    );
    assert_eq!(v["model_provider"]["source"], user.display().to_string());
    write(&e.managed, "model = \"from-admin\"\n");
    let v = show_json(&e, &["-c", "model=from-flag"]);
    assert_eq!(
        v["model"],
        serde_json::json!({"value": "from-admin", "source": format!("managed {}", e.managed.display())})
    );
}

#[test]
fn tables_merge_recursively_other_values_replace() {
    let e = env();
    write(
        &e.home.join("config.toml"),
        "[model_providers.p]\nname = \"P\"\nbase_url = \"http://a/v1\"\n[sandbox]\ndeny_read = [\"/a\", \"/b\"]\n",
    );
    let v = show_json(
        &e,
        &[
            "-c",
            "model_providers.p.base_url=http://b/v1",
            "-c",
            "sandbox.deny_read=[\"/c\"]",
        ],
    );
    assert_eq!(v["model_providers.p.name"]["value"], "P");
    assert_eq!(
        v["model_providers.p.base_url"],
        serde_json::json!({"value": "http://b/v1", "source": "-c"})
    );
    assert_eq!(
        v["sandbox.deny_read"]["value"],
        serde_json::json!(["/c"]),
        "arrays replace, not append"
    );
}

#[test]
fn override_values_parse_as_toml_else_string() {
    let e = env();
    let v = show_json(
        &e,
        &[
            "-c",
            "a.int=5",
            "-c",
            "a.bool=true",
            "-c",
            "a.s=plain words",
            "-c",
            "a.q=\"x\"",
        ],
    );
    assert_eq!(v["a.int"]["value"], 5);
    assert_eq!(v["a.bool"]["value"], true);
    assert_eq!(v["a.s"]["value"], "plain words");
    assert_eq!(v["a.q"]["value"], "x");
}

#[test]
fn text_show_names_the_layer() {
    let e = env();
    write(&e.home.join("config.toml"), "model = \"m\"\n");
    let o = codex(
        &e,
        &["-c", "features.web_search_request=true", "config", "show"],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let s = out(&o);
    assert!(
        s.contains(&format!(
            "model = \"m\"  # {}",
            e.home.join("config.toml").display()
        )),
        "{s}"
    );
    assert!(
        s.contains("features.web_search_request = true  # -c"),
        "{s}"
    );
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let e = env();
    let user = e.home.join("config.toml");
    write(
        &user,
        "model = \"ok\"\n\n[features\nexec_usage_line = true\n",
    );
    let o = codex(&e, &["config", "show"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        err(&o).starts_with(&format!("codex: {}:3:10: ", user.display())),
        "{}",
        err(&o)
    );
}

#[test]
fn managed_config_type_mismatch_names_file_position_and_key() {
    let e = env();
    write(
        &e.managed,
        "# admin\n[features]\nexec_usage_line = \"yes\"\n",
    );
    let o = codex(&e, &["config", "show"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let msg = err(&o);
    assert!(
        msg.starts_with(&format!("codex: {}:3:19: key features.exec_usage_line: invalid type: string \"yes\", expected a boolean", e.managed.display())),
        "{msg}"
    );
    // Nothing else is affected: the user's file is untouched and works again without the bad layer.
    std::fs::write(&e.managed, "").unwrap();
    assert_eq!(codex(&e, &["config", "show"]).status.code(), Some(0));
}

#[test]
fn provider_field_type_mismatch_is_named() {
    let e = env();
    let user = e.home.join("config.toml");
    write(
        &user,
        "[model_providers.proxy]\nbase_url = \"http://127.0.0.1:1/v1\"\nrequires_auth = \"no\"\n",
    );
    let o = codex(&e, &["config", "show"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        err(&o).starts_with(&format!(
            "codex: {}:3:17: key model_providers.proxy.requires_auth:",
            user.display()
        )),
        "{}",
        err(&o)
    );
}

#[test]
fn override_without_equals_is_refused() {
    let e = env();
    let o = codex(&e, &["-c", "model", "config", "show"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(
        err(&o),
        "codex: invalid -c override \"model\": expected key=value (e.g. -c model=\"gpt-5\")"
    );
}

#[test]
fn override_type_mismatch_names_the_key() {
    let e = env();
    let o = codex(
        &e,
        &["-c", "features.exec_usage_line=maybe", "config", "show"],
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        err(&o).starts_with("codex: -c features.exec_usage_line: key features.exec_usage_line: invalid type: string \"maybe\", expected a boolean"),
        "{}",
        err(&o)
    );
}

#[test]
fn bad_store_mode_in_the_file_names_value_and_allowed_ones() {
    let e = env();
    let user = e.home.join("config.toml");
    write(&user, "cli_auth_credentials_store = \"vault\"\n");
    let o = codex(&e, &["config", "show"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        err(&o).starts_with(&format!(
            "codex: {}:1:30: key cli_auth_credentials_store: invalid credential store \"vault\": expected one of \"file\", \"keyring\", \"auto\"",
            user.display()
        )),
        "{}",
        err(&o)
    );
}

#[test]
fn codex_home_that_is_a_file_is_a_usage_error() {
    let e = env();
    let f = e.home.join("file");
    write(&f, "x");
    let o = Command::new(env!("CARGO_BIN_EXE_codex"))
        .env("CODEX_HOME", &f)
        .env("CODEX_MANAGED_CONFIG_PATH", &e.managed)
        .args(["config", "show"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        err(&o),
        format!("codex: CODEX_HOME {} is not a directory", f.display())
    );
}

#[test]
fn config_show_never_prints_secret_values() {
    // outside review r9 F2: MCP env values, header values and pasted tokens were printed
    let e = env();
    write(
        &e.home.join("config.toml"),
        "[mcp_servers.docs]\ncommand = \"python3\"\nenv = { API_KEY = \"SECRET_ENV_111\" }\n\
         [mcp_servers.remote]\nurl = \"https://example.com/mcp?key=SECRET_QUERY_222\"\n\
         http_headers = { \"X-Api-Key\" = \"SECRET_HEADER_333\" }\n\
         bearer_token_env_var = \"MY_TOKEN\"\n",
    );
    for args in [&["config", "show"][..], &["config", "show", "--json"]] {
        let o = codex(&e, args);
        let text = out(&o);
        assert!(o.status.success(), "{}", err(&o));
        for secret in ["SECRET_ENV_111", "SECRET_QUERY_222", "SECRET_HEADER_333"] {
            assert!(!text.contains(secret), "{args:?}: {text}");
        }
        // control: the non-secret values are shown
        assert!(
            text.contains("MY_TOKEN") && text.contains("example.com/mcp"),
            "{text}"
        );
    }
}

/// Outside review r11 F1: an unprivileged user pointed `CODEX_MANAGED_CONFIG_PATH` at any
/// root-owned file (an empty one dropped the administrator's settings) or at `/proc/self/comm`
/// (root's, since codex is not dumpable) through a symlink to codex named `model="evil"`. Now
/// only root may replace the managed config, and never with a kernel file. Control: root with a
/// root-owned 0644 file (the administrator testing one) is honoured.
#[test]
fn only_root_may_replace_the_managed_config_and_never_with_a_kernel_file() {
    use std::os::unix::process::CommandExt;
    let e = env();
    write(&e.managed, "model = \"managed-model\"\n");
    std::os::unix::fs::chown(e.home.parent().unwrap(), Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(&e.home, Some(65534), Some(65534)).unwrap();
    let as_nobody = Command::new(env!("CARGO_BIN_EXE_codex"))
        .env("CODEX_HOME", &e.home)
        .env("CODEX_MANAGED_CONFIG_PATH", &e.managed)
        .args(["config", "show"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out(&as_nobody).contains("managed-model"), "{as_nobody:?}");
    assert!(
        err(&as_nobody).contains("only root may replace the managed config"),
        "{as_nobody:?}"
    );
    // a kernel file, even for root: /proc/self/comm names the program ("codex" here)
    let o = Command::new(env!("CARGO_BIN_EXE_codex"))
        .env("CODEX_HOME", &e.home)
        .env("CODEX_MANAGED_CONFIG_PATH", "/proc/self/comm")
        .args(["config", "show"])
        .output()
        .unwrap();
    assert!(
        err(&o).contains("is a kernel file, not a configuration"),
        "{o:?}"
    );
    // control: root's own test of a root-owned 0644 file is honoured
    let o = codex(&e, &["config", "show"]);
    assert!(out(&o).contains("model = \"managed-model\""), "{o:?}");
}
