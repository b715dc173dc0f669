//! Layered configuration. Lowest to highest precedence:
//!
//! 1. `$CODEX_HOME/config.toml` (`CODEX_HOME` defaults to `~/.codex`);
//! 2. the selected profile: the table `[profiles.NAME]` of config.toml, NAME from `-p/--profile`,
//!    else `-c profile=NAME`, else `profile = "NAME"` in config.toml (codex's keys; an unknown
//!    profile is an error listing the defined ones);
//! 3. `-c key=value` overrides (dotted keys; the value is parsed as TOML, and taken as a plain
//!    string when it is not valid TOML);
//! 4. the managed config, `/etc/codex/managed_config.toml` (an administrator's settings, which the
//!    user cannot override). `CODEX_MANAGED_CONFIG_PATH` names another file (packaging, tests)
//!    only when that file is owned by root and not writable by group or others, checked on the
//!    opened descriptor the file is then read from; otherwise the variable is ignored with a
//!    warning and the default path is used (outside review: a user pointing it at a file of their
//!    own, or at nothing, replaced the administrator's settings). The rule is the same in every
//!    build; the tests run as root and create root-owned files.
//!
//! Tables merge recursively; any other value (arrays included) replaces the lower one. Every layer
//! is checked against the schema of the keys this CLI knows ([`Schema`]); unknown keys are kept and
//! ignored (other subcommands read their own). Errors name the file, `line:column` and key.
//! Other modules use [`load`] and [`Config::get`]; `codex config show` prints the effective values
//! with the layer each one came from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::exit::{Coded, USAGE};

/// Environment variable overriding the managed config path (tests, packaging).
pub const MANAGED_CONFIG_ENV: &str = "CODEX_MANAGED_CONFIG_PATH";
/// Where the administrator's managed config lives.
pub const DEFAULT_MANAGED_CONFIG: &str = "/etc/codex/managed_config.toml";

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `$CODEX_HOME` (default `~/.codex`).
    pub codex_home: PathBuf,
    /// The merged table.
    pub table: toml::Table,
}

impl Config {
    /// A value by dotted key, e.g. `sandbox.deny_read`.
    pub fn get(&self, dotted: &str) -> Option<&toml::Value> {
        let mut parts = dotted.split('.');
        let mut cur = self.table.get(parts.next()?)?;
        for p in parts {
            cur = cur.as_table()?.get(p)?;
        }
        Some(cur)
    }

    /// A string value, `None` when absent (the schema checked the type at load time).
    /// `sandbox.deny_read` and `sandbox_workspace_write.network_access`, typed.
    pub fn sandbox_settings(&self) -> SandboxSettings {
        let deny_read = match self.get("sandbox.deny_read") {
            Some(toml::Value::String(s)) => vec![s.clone()],
            Some(toml::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let network_access = self
            .get("sandbox_workspace_write.network_access")
            .and_then(toml::Value::as_bool)
            .unwrap_or(false);
        let allow_unix_sockets = self
            .get("sandbox.allow_unix_sockets")
            .and_then(toml::Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let strings = |key: &str| -> Vec<String> {
            self.get(key)
                .and_then(toml::Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        let env = sandbox_policy::EnvPolicy {
            inherit: self
                .get_str("shell_environment_policy.inherit")
                .and_then(|s| s.parse().ok())
                .unwrap_or_default(),
            ignore_default_excludes: self
                .get("shell_environment_policy.ignore_default_excludes")
                .and_then(toml::Value::as_bool)
                .unwrap_or(false),
            exclude: strings("shell_environment_policy.exclude"),
            set: self
                .get("shell_environment_policy.set")
                .and_then(toml::Value::as_table)
                .map(|t| {
                    t.iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                        .collect()
                })
                .unwrap_or_default(),
            include_only: strings("shell_environment_policy.include_only"),
            keep: strings("shell_environment_policy.keep"),
        };
        let allowed_domains = strings("sandbox.network.allowed_domains");
        let denied_domains = strings("sandbox.network.denied_domains");
        let allow_git_writes = self
            .get("sandbox.allow_git_writes")
            .and_then(toml::Value::as_bool)
            .unwrap_or(false);
        let allow_writable_home = self
            .get("sandbox.allow_writable_home")
            .and_then(toml::Value::as_bool)
            .unwrap_or(false);
        SandboxSettings {
            deny_read,
            network_access,
            allow_unix_sockets,
            allow_git_writes,
            allow_writable_home,
            allowed_domains,
            denied_domains,
            env,
        }
    }

    pub fn get_str(&self, dotted: &str) -> Option<&str> {
        self.get(dotted).and_then(toml::Value::as_str)
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// `$CODEX_HOME/config.toml`.
    User(PathBuf),
    /// `[profiles.NAME]` of config.toml.
    Profile(String),
    /// A `-c key=value` flag.
    Override,
    /// The managed config file.
    Managed(PathBuf),
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::User(p) => write!(f, "{}", p.display()),
            Layer::Profile(n) => write!(f, "profile {n}"),
            Layer::Override => f.write_str("-c"),
            Layer::Managed(p) => write!(f, "managed {}", p.display()),
        }
    }
}

/// The effective configuration and the layer of every leaf value.
#[derive(Debug, Clone)]
pub struct Layered {
    pub config: Config,
    /// Dotted key of each leaf (non-table value) → the layer it came from.
    pub origins: BTreeMap<String, Layer>,
    /// The selected profile, if any.
    pub profile: Option<String>,
    /// Warnings about the layers (an ignored `CODEX_MANAGED_CONFIG_PATH`).
    pub warnings: Vec<String>,
}

/// The keys this CLI reads, with their types. Deserializing a layer into it turns a type mismatch
/// into an error with the key and (for files) the position. Unknown keys are ignored here.
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // fields exist for their type checks; values are read through `Config::get`
struct Schema {
    model: Option<String>,
    model_provider: Option<String>,
    profile: Option<String>,
    profiles: Option<BTreeMap<String, toml::Table>>,
    cli_auth_credentials_store: Option<StoreModeValue>,
    mcp_oauth_credentials_store: Option<StoreModeValue>,
    features: Option<BTreeMap<String, bool>>,
    model_providers: Option<BTreeMap<String, codex_providers::ProviderInfo>>,
    sandbox: Option<SandboxSchema>,
    sandbox_workspace_write: Option<SandboxWorkspaceWriteSchema>,
    shell_environment_policy: Option<ShellEnvironmentPolicySchema>,
}

/// `[shell_environment_policy]` (codex's keys; see `sandbox_policy::env_policy`), plus `keep`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ShellEnvironmentPolicySchema {
    inherit: Option<InheritValue>,
    ignore_default_excludes: Option<bool>,
    exclude: Option<Vec<String>>,
    set: Option<BTreeMap<String, String>>,
    include_only: Option<Vec<String>>,
    keep: Option<Vec<String>>,
    experimental_use_profile: Option<bool>,
}

/// `shell_environment_policy.inherit`: "all", "core" or "none".
#[derive(Debug)]
struct InheritValue;

impl<'de> Deserialize<'de> for InheritValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<sandbox_policy::env_policy::Inherit>()
            .map_err(serde::de::Error::custom)?;
        Ok(InheritValue)
    }
}

/// `[sandbox]`: `deny_read` is one path or an array of paths (`~` and `~/x` expand to `$HOME`).
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct SandboxSchema {
    deny_read: Option<DenyReadValue>,
    allow_unix_sockets: Option<Vec<String>>,
    allow_git_writes: Option<bool>,
    allow_writable_home: Option<bool>,
    network: Option<SandboxNetworkSchema>,
}

/// `[sandbox.network]`: the domain allow-list (Linux; hosts reached through the launcher's
/// filtering proxy while the network is otherwise off).
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
struct SandboxNetworkSchema {
    allowed_domains: Option<Vec<String>>,
    denied_domains: Option<Vec<String>>,
}

/// `[sandbox_workspace_write]` (codex's key): `network_access` for `--full-auto`.
#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct SandboxWorkspaceWriteSchema {
    network_access: Option<bool>,
}

/// `sandbox.deny_read`: a string or an array of strings, nothing else.
#[derive(Debug)]
struct DenyReadValue;

impl<'de> Deserialize<'de> for DenyReadValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::String(_) => Ok(DenyReadValue),
            toml::Value::Array(a) if a.iter().all(toml::Value::is_str) => Ok(DenyReadValue),
            _ => Err(serde::de::Error::custom(
                "expected a path or an array of paths (strings)",
            )),
        }
    }
}

/// The sandbox keys, typed (validated by the schema when the config was loaded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxSettings {
    /// `sandbox.deny_read`, as written.
    pub deny_read: Vec<String>,
    /// `sandbox_workspace_write.network_access` (default false).
    pub network_access: bool,
    /// `sandbox.allow_unix_sockets`, as written: outside pathname unix sockets the sandboxed
    /// command may connect to (Linux).
    pub allow_unix_sockets: Vec<String>,
    /// `sandbox.allow_git_writes` (default false): the name guard off (Linux).
    pub allow_git_writes: bool,
    /// `sandbox.allow_writable_home` (default false): a writable root may be the home or hold it.
    pub allow_writable_home: bool,
    /// `sandbox.network.allowed_domains` / `denied_domains`, as written (validated by the
    /// sandbox: a bad pattern is exit 200 naming it).
    pub allowed_domains: Vec<String>,
    pub denied_domains: Vec<String>,
    /// `[shell_environment_policy]`: the sandboxed command's environment.
    pub env: sandbox_policy::EnvPolicy,
}

/// `cli_auth_credentials_store`, checked against the allowed values.
#[derive(Debug)]
struct StoreModeValue;

impl<'de> Deserialize<'de> for StoreModeValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<codex_auth::StoreMode>()
            .map_err(serde::de::Error::custom)?;
        Ok(StoreModeValue)
    }
}

/// `$CODEX_HOME`, or `~/.codex` (`~`: `$HOME` when absolute, else the passwd entry's home).
pub fn codex_home() -> anyhow::Result<PathBuf> {
    match std::env::var_os("CODEX_HOME").filter(|v| !v.is_empty()) {
        Some(h) => Ok(PathBuf::from(h)),
        None => {
            let home = std::env::var_os("HOME").map(PathBuf::from);
            match sandbox_policy::home::user_home(home.as_deref()) {
                Some(h) => Ok(h.join(".codex")),
                None => Err(Coded::new(
                    USAGE,
                    "neither CODEX_HOME nor HOME is set, and this user has no passwd home",
                )),
            }
        }
    }
}

/// The managed config's path: `CODEX_MANAGED_CONFIG_PATH` when codex runs as root (real uid 0:
/// the administrator, or the test suite) and it names a root-owned regular file outside `/proc`,
/// `/sys` and `/dev` that is not writable by group or others; else [`DEFAULT_MANAGED_CONFIG`]
/// (with the reason as a warning).
///
/// Outside review r11 F1: a file check alone does not prove the administrator wrote the file.
/// An unprivileged user pointed the variable at any empty root-owned file (`/etc/hostname`'s
/// kind) and dropped the administrator's settings, or at `/proc/self/comm` (root-owned, since
/// codex makes itself non-dumpable) through a symlink to codex named `model="evil"`.
pub fn managed_config_choice() -> (PathBuf, Option<String>) {
    let default = PathBuf::from(DEFAULT_MANAGED_CONFIG);
    let Some(p) = std::env::var_os(MANAGED_CONFIG_ENV).filter(|v| !v.is_empty()) else {
        return (default, None);
    };
    let p = PathBuf::from(p);
    if let Some(why) = override_refusal(&p) {
        return (default, Some(managed_ignored(&p, &why)));
    }
    match std::fs::metadata(&p) {
        Ok(m) => match managed_file_refusal(&m) {
            None => (p, None),
            Some(why) => (default, Some(managed_ignored(&p, &why))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !default.exists() => (default, None),
        Err(e) => (default, Some(managed_ignored(&p, &e.to_string()))),
    }
}

/// [`managed_config_choice`]'s path.
pub fn managed_config_path() -> PathBuf {
    managed_config_choice().0
}

/// Why `CODEX_MANAGED_CONFIG_PATH=p` is not even opened: codex does not run as root, or `p` is
/// a kernel file (see [`managed_config_choice`]).
fn override_refusal(p: &Path) -> Option<String> {
    if secure_main::real_uid() != 0 {
        return Some(
            "only root may replace the managed config (a user could drop the administrator's settings)"
                .into(),
        );
    }
    let real = std::fs::canonicalize(p).ok()?;
    ["/proc", "/sys", "/dev"]
        .iter()
        .any(|d| real.starts_with(d))
        .then(|| format!("{} is a kernel file, not a configuration", real.display()))
}

fn managed_ignored(p: &Path, why: &str) -> String {
    format!(
        "ignoring {MANAGED_CONFIG_ENV}={}: {why}; the administrator's {DEFAULT_MANAGED_CONFIG} applies",
        p.display()
    )
}

/// Why a file may not stand in for the managed config: not a regular file, not owned by root,
/// or writable by group or others. `None`: acceptable.
fn managed_file_refusal(m: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if !m.is_file() {
        return Some("not a regular file".into());
    }
    if m.uid() != 0 {
        return Some(format!(
            "owned by uid {}, not root (only an administrator's file may replace the managed config)",
            m.uid()
        ));
    }
    let mode = m.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Some(format!("mode {mode:04o} is writable by group or others"));
    }
    None
}

/// Reads the managed config: from `CODEX_MANAGED_CONFIG_PATH` when the opened file passes
/// [`managed_file_refusal`] (checked on the descriptor it is read from), else from the default path.
fn read_managed(warnings: &mut Vec<String>) -> anyhow::Result<(PathBuf, Option<toml::Table>)> {
    use std::io::Read;
    let default = PathBuf::from(DEFAULT_MANAGED_CONFIG);
    if let Some(p) = std::env::var_os(MANAGED_CONFIG_ENV).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        if let Some(why) = override_refusal(&p) {
            warnings.push(managed_ignored(&p, &why));
            let t = read_layer_file(&default)?;
            return Ok((default, t));
        }
        let checked = std::fs::File::open(&p).and_then(|mut f| {
            let m = f.metadata()?;
            if let Some(why) = managed_file_refusal(&m) {
                return Ok(Err(why));
            }
            let mut text = String::new();
            f.read_to_string(&mut text)?;
            Ok(Ok(text))
        });
        match checked {
            Ok(Ok(text)) => {
                let t = parse_layer_text(&p, &text)?;
                return Ok((p, Some(t)));
            }
            Ok(Err(why)) => warnings.push(managed_ignored(&p, &why)),
            // Naming a missing file changes nothing while there is no administrator's file
            // either (the tests' usual set-up): no warning then.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !default.exists() => {}
            Err(e) => warnings.push(managed_ignored(&p, &e.to_string())),
        }
    }
    let t = read_layer_file(&default)?;
    Ok((default, t))
}

/// Load the effective configuration for this invocation.
pub fn load(global: &crate::GlobalOpts) -> anyhow::Result<Config> {
    Ok(load_layered(global)?.config)
}

/// Load every layer, remembering where each value came from.
pub fn load_layered(global: &crate::GlobalOpts) -> anyhow::Result<Layered> {
    let codex_home = codex_home()?;
    match std::fs::metadata(&codex_home) {
        Ok(m) if !m.is_dir() => {
            return Err(Coded::new(
                USAGE,
                format!("CODEX_HOME {} is not a directory", codex_home.display()),
            ));
        }
        _ => {}
    }
    let mut warnings = Vec::new();
    let user_path = codex_home.join("config.toml");

    let mut table = toml::Table::new();
    let mut origins = BTreeMap::new();
    let user = read_layer_file(&user_path)?;
    let overrides = parse_overrides(&global.overrides)?;
    let profile = select_profile(global, user.as_ref(), &overrides, &user_path)?;
    if let Some(t) = user {
        merge(
            &mut table,
            t,
            "",
            &Layer::User(user_path.clone()),
            &mut origins,
        );
    }
    if let Some((name, t)) = &profile {
        merge(
            &mut table,
            t.clone(),
            "",
            &Layer::Profile(name.clone()),
            &mut origins,
        );
    }
    merge(&mut table, overrides, "", &Layer::Override, &mut origins);
    let (managed_path, managed) = read_managed(&mut warnings)?;
    for w in &warnings {
        crate::exit::warn(w);
    }
    if let Some(t) = managed {
        merge(
            &mut table,
            t,
            "",
            &Layer::Managed(managed_path.clone()),
            &mut origins,
        );
    }
    // The -c values were checked one by one; check the merged result once more so that, for
    // example, `-c features=1` replacing a table is caught with the key named.
    check_schema_value(&table, "the effective configuration")?;
    Ok(Layered {
        config: Config { codex_home, table },
        origins,
        profile: profile.map(|(n, _)| n),
        warnings,
    })
}

/// The profile to apply: `-p NAME`, else `-c profile=NAME`, else `profile` in config.toml; its
/// table from config.toml's `[profiles]`. An unknown name is an error listing the defined ones.
fn select_profile(
    global: &crate::GlobalOpts,
    user: Option<&toml::Table>,
    overrides: &toml::Table,
    user_path: &Path,
) -> anyhow::Result<Option<(String, toml::Table)>> {
    let (name, from) = if let Some(n) = &global.profile {
        (n.clone(), "-p/--profile".to_owned())
    } else if let Some(n) = overrides.get("profile").and_then(toml::Value::as_str) {
        (n.to_owned(), "-c profile".to_owned())
    } else if let Some(n) = user
        .and_then(|u| u.get("profile"))
        .and_then(toml::Value::as_str)
    {
        (n.to_owned(), format!("profile in {}", user_path.display()))
    } else {
        return Ok(None);
    };
    let profiles = user
        .and_then(|u| u.get("profiles"))
        .and_then(toml::Value::as_table);
    match profiles
        .and_then(|p| p.get(&name))
        .and_then(toml::Value::as_table)
    {
        Some(t) => Ok(Some((name, t.clone()))),
        None => {
            let defined: Vec<&str> = profiles
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let defined = if defined.is_empty() {
                "none is defined".to_owned()
            } else {
                format!("defined: {}", defined.join(", "))
            };
            Err(Coded::new(
                USAGE,
                format!(
                    "unknown profile {:?} (from {from}): {} has no [profiles.{}] table ({defined})",
                    codex_login::claims::printable(&name),
                    user_path.display(),
                    codex_login::claims::printable(&name)
                ),
            ))
        }
    }
}

/// Read and check one config file; `None` when it does not exist.
fn read_layer_file(path: &Path) -> anyhow::Result<Option<toml::Table>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Coded::new(
                USAGE,
                format!("failed to read {}: {e}", path.display()),
            ));
        }
    };
    parse_layer_text(path, &text).map(Some)
}

/// Parses and checks the text of one config file (`path` only names it in errors): TOML syntax,
/// the typed schema, feature names. Errors are `FILE:LINE:COL: [key K: ]MESSAGE`.
pub fn parse_layer_text(path: &Path, text: &str) -> anyhow::Result<toml::Table> {
    let table: toml::Table = toml::from_str(text)
        .map_err(|e| Coded::new(USAGE, toml_error_line(path, text, &e, None)))?;
    if let Some(depth) = deeper_than(&table, MAX_KEY_DEPTH) {
        return Err(Coded::new(
            USAGE,
            format!(
                "{}: tables or arrays nested {depth} deep, at most {MAX_KEY_DEPTH} (no codex key is nested that deep)",
                path.display()
            ),
        ));
    }
    if let Err(e) = toml::from_str::<Schema>(text) {
        let key = mismatched_key(&table);
        return Err(Coded::new(
            USAGE,
            toml_error_line(path, text, &e, key.as_deref()),
        ));
    }
    check_feature_names(&table, &path.display().to_string())?;
    if let Some(toml::Value::Table(profiles)) = table.get("profiles") {
        for (name, p) in profiles {
            if let toml::Value::Table(p) = p {
                let origin = format!(
                    "{}: profiles.{}",
                    path.display(),
                    codex_login::claims::printable(name)
                );
                check_schema_value(p, &origin)?;
                check_feature_names(p, &origin)?;
            }
        }
    }
    Ok(table)
}

/// How deep a config may nest tables, arrays and dotted keys. The checks, merges and drops
/// below recurse once per level: a `-c a.a.a...=1` with hundreds of parts overflowed the stack of
/// a test thread (found by the `config` fuzz target's long run).
pub const MAX_KEY_DEPTH: usize = 32;

/// `Some(depth)` when `table` nests deeper than `max` (counted without recursion).
fn deeper_than(table: &toml::Table, max: usize) -> Option<usize> {
    let mut todo: Vec<(&toml::Value, usize)> = table.values().map(|v| (v, 1)).collect();
    while let Some((v, d)) = todo.pop() {
        if d > max {
            return Some(d);
        }
        match v {
            toml::Value::Table(t) => todo.extend(t.values().map(|v| (v, d + 1))),
            toml::Value::Array(a) => todo.extend(a.iter().map(|v| (v, d + 1))),
            _ => {}
        }
    }
    None
}

/// `FILE:LINE:COL: [key K: ]MESSAGE` for a TOML error.
fn toml_error_line(path: &Path, text: &str, e: &toml::de::Error, key: Option<&str>) -> String {
    let pos = e.span().map(|span| line_col(text, span.start));
    let msg = e.message().trim().replace('\n', " ");
    let key = key.map(|k| format!("key {k}: ")).unwrap_or_default();
    match pos {
        Some((l, c)) => format!("{}:{l}:{c}: {key}{msg}", path.display()),
        None => format!("{}: {key}{msg}", path.display()),
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Find the first known key whose value has the wrong type (to name it in the error).
fn mismatched_key(table: &toml::Table) -> Option<String> {
    for key in [
        "model",
        "model_provider",
        "profile",
        "profiles",
        "cli_auth_credentials_store",
        "mcp_oauth_credentials_store",
        "features",
        "model_providers",
        "sandbox",
        "sandbox_workspace_write",
    ] {
        if let Some(v) = table.get(key) {
            let mut one = toml::Table::new();
            one.insert(key.to_owned(), v.clone());
            if toml::Value::Table(one).try_into::<Schema>().is_err() {
                return Some(deepest_mismatch(key, v));
            }
        }
    }
    None
}

/// Narrow `features`/`model_providers`/`sandbox*` mismatches down to the entry.
fn deepest_mismatch(key: &str, v: &toml::Value) -> String {
    let Some(t) = v.as_table() else {
        return key.to_owned();
    };
    for (k, inner) in t {
        let mut one = toml::Table::new();
        one.insert(k.clone(), inner.clone());
        let one = toml::Value::Table(one);
        let bad = match key {
            "features" => !inner.is_bool(),
            "model_providers" => inner
                .clone()
                .try_into::<codex_providers::ProviderInfo>()
                .is_err(),
            "sandbox" => one.try_into::<SandboxSchema>().is_err(),
            "sandbox_workspace_write" => one.try_into::<SandboxWorkspaceWriteSchema>().is_err(),
            _ => false,
        };
        if bad {
            if key == "model_providers" {
                if let Some(pt) = inner.as_table() {
                    for (pk, pv) in pt {
                        let mut one = toml::Table::new();
                        one.insert(pk.clone(), pv.clone());
                        if toml::Value::Table(one)
                            .try_into::<codex_providers::ProviderInfo>()
                            .is_err()
                        {
                            return format!("{key}.{k}.{pk}");
                        }
                    }
                }
            }
            return format!("{key}.{k}");
        }
    }
    key.to_owned()
}

/// Check a table (no positions: `-c` values and the merged result).
fn check_schema_value(table: &toml::Table, origin: &str) -> anyhow::Result<()> {
    if let Err(e) = toml::Value::Table(table.clone()).try_into::<Schema>() {
        let key = mismatched_key(table)
            .map(|k| format!("key {k}: "))
            .unwrap_or_default();
        return Err(Coded::new(
            USAGE,
            format!("{origin}: {key}{}", e.message().trim().replace('\n', " ")),
        ));
    }
    Ok(())
}

fn check_feature_names(table: &toml::Table, origin: &str) -> anyhow::Result<()> {
    if let Some(toml::Value::Table(f)) = table.get("features") {
        for name in f.keys() {
            crate::feature_table::check_name(name)
                .map_err(|e| Coded::new(USAGE, format!("{origin}: key features.{name}: {e}")))?;
        }
    }
    Ok(())
}

/// Parse every `-c key=value` into one table (later flags win).
pub fn parse_overrides(raw: &[String]) -> anyhow::Result<toml::Table> {
    let mut out = toml::Table::new();
    let mut scratch = BTreeMap::new();
    for item in raw {
        let one = parse_override(item)?;
        check_schema_value(&one, &format!("-c {}", override_key(item)))?;
        check_feature_names(&one, &format!("-c {}", override_key(item)))?;
        merge(&mut out, one, "", &Layer::Override, &mut scratch);
    }
    Ok(out)
}

fn override_key(item: &str) -> &str {
    item.split_once('=').map_or(item, |(k, _)| k.trim())
}

/// One `-c key=value` as a nested table.
pub fn parse_override(item: &str) -> anyhow::Result<toml::Table> {
    let Some((key, value)) = item.split_once('=') else {
        return Err(Coded::new(
            USAGE,
            format!("invalid -c override {item:?}: expected key=value (e.g. -c model=\"gpt-5\")"),
        ));
    };
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    if key.is_empty() || parts.iter().any(|p| p.is_empty()) {
        return Err(Coded::new(
            USAGE,
            format!(
                "invalid -c override {item:?}: the key must be dotted names, like model_providers.proxy.base_url"
            ),
        ));
    }
    if parts.len() > MAX_KEY_DEPTH {
        return Err(Coded::new(
            USAGE,
            format!(
                "invalid -c override {}: {} dotted parts, at most {MAX_KEY_DEPTH} (no codex key is nested that deep)",
                override_key(item),
                parts.len()
            ),
        ));
    }
    let value = parse_value(value.trim());
    let mut v = value;
    for p in parts.iter().rev() {
        let mut t = toml::Table::new();
        t.insert((*p).to_owned(), v);
        v = toml::Value::Table(t);
    }
    match v {
        toml::Value::Table(t) => Ok(t),
        _ => Err(Coded::new(USAGE, format!("invalid -c override {item:?}"))),
    }
}

/// A `-c` value: TOML if it parses as a TOML value, otherwise the raw string.
fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

/// Merge `upper` into `base`: tables recursively, anything else replaces. Records the layer of
/// each leaf written, and forgets the origins of what was replaced.
fn merge(
    base: &mut toml::Table,
    upper: toml::Table,
    prefix: &str,
    layer: &Layer,
    origins: &mut BTreeMap<String, Layer>,
) {
    for (k, v) in upper {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(u)) => {
                merge(b, u, &path, layer, origins);
            }
            (_, v) => {
                let sub = format!("{path}.");
                origins.retain(|key, _| key != &path && !key.starts_with(&sub));
                record_leaves(&v, &path, layer, origins);
                base.insert(k, v);
            }
        }
    }
}

fn record_leaves(
    v: &toml::Value,
    path: &str,
    layer: &Layer,
    origins: &mut BTreeMap<String, Layer>,
) {
    match v {
        toml::Value::Table(t) => {
            for (k, inner) in t {
                record_leaves(inner, &format!("{path}.{k}"), layer, origins);
            }
        }
        _ => {
            origins.insert(path.to_owned(), layer.clone());
        }
    }
}

/// `codex config`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  codex config show\n  codex -c model=gpt-5 config show\n  \
    CODEX_HOME=/tmp/ch codex config show --json"
)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigAction {
    /// Print the effective configuration: every value with the layer it came from.
    Show {
        /// One JSON object: {"key": {"value": ..., "source": ...}}.
        #[arg(long)]
        json: bool,
    },
}

/// What `config show` prints instead of a value that holds a secret (outside review r9 F2: MCP
/// `env` values, header values and tokens pasted into the config were printed in clear): `None`
/// prints the value. Secret: a value below `env`, `http_headers` or `shell_environment_policy.set`,
/// a key naming a token, secret, password or API key (not `*_env_var`, which names a variable),
/// and the query of a URL.
fn masked(key: &str, v: &toml::Value) -> Option<String> {
    let parts: Vec<String> = key.split('.').map(str::to_ascii_lowercase).collect();
    let last = parts.last().map(String::as_str).unwrap_or("");
    let under = |seg: &str| {
        parts[..parts.len().saturating_sub(1)]
            .iter()
            .any(|p| p == seg)
    };
    let secret_name = !last.ends_with("_env_var")
        && ["token", "secret", "password", "api_key", "apikey"]
            .iter()
            .any(|w| last.contains(w));
    if under("env")
        || under("http_headers")
        || under("query_params")
        || key.starts_with("shell_environment_policy.set.")
        || secret_name
    {
        return Some("***".to_string());
    }
    if last.ends_with("url") {
        if let Some(s) = v.as_str() {
            if let Some((base, _query)) = s.split_once('?') {
                return Some(format!("{}?***", codex_login::claims::printable(base)));
            }
        }
    }
    None
}

pub fn run(args: ConfigArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    let layered = load_layered(global)?;
    let ConfigAction::Show { json } = args.action;
    let mut out = String::new();
    if json {
        let mut obj = serde_json::Map::new();
        for (key, layer) in &layered.origins {
            if let Some(v) = layered.config.get(key) {
                let value = match masked(key, v) {
                    Some(m) => serde_json::Value::String(m),
                    None => serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
                };
                obj.insert(
                    key.clone(),
                    serde_json::json!({"value": value, "source": layer.to_string()}),
                );
            }
        }
        out.push_str(&serde_json::Value::Object(obj).to_string());
        out.push('\n');
    } else {
        out.push_str(&format!(
            "# CODEX_HOME {}\n",
            layered.config.codex_home.display()
        ));
        if let Some(p) = &layered.profile {
            out.push_str(&format!(
                "# profile {}\n",
                codex_login::claims::printable(p)
            ));
        }
        if layered.origins.is_empty() {
            out.push_str("# (no values set: defaults apply)\n");
        }
        for (key, layer) in &layered.origins {
            if let Some(v) = layered.config.get(key) {
                let key_shown = codex_login::claims::printable(key);
                match masked(key, v) {
                    Some(m) => out.push_str(&format!("{key_shown} = \"{m}\"  # {layer}\n")),
                    None => out.push_str(&format!("{key_shown} = {v}  # {layer}\n")),
                }
            }
        }
    }
    print!("{out}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_config_show() {
        let s = |v: &str| toml::Value::String(v.to_string());
        assert_eq!(
            masked("mcp_servers.docs.env.API_KEY", &s("SECRET")).as_deref(),
            Some("***")
        );
        assert_eq!(
            masked("mcp_servers.r.http_headers.X-Api-Key", &s("SECRET")).as_deref(),
            Some("***")
        );
        assert_eq!(
            masked("model_providers.p.experimental_bearer_token", &s("SECRET")).as_deref(),
            Some("***")
        );
        assert_eq!(
            masked("mcp_servers.r.url", &s("https://e.com/mcp?key=SECRET")).as_deref(),
            Some("https://e.com/mcp?***")
        );
        assert_eq!(
            masked("mcp_servers.r.bearer_token_env_var", &s("MY_TOKEN")),
            None
        );
        assert_eq!(masked("model", &s("gpt-5")), None);
        assert_eq!(masked("mcp_servers.r.url", &s("https://e.com/mcp")), None);
    }

    #[test]
    fn override_values_are_toml_or_string() {
        let t = parse_override("a.b=1").unwrap();
        assert_eq!(t["a"]["b"], toml::Value::Integer(1));
        let t = parse_override("m=gpt-5").unwrap();
        assert_eq!(t["m"], toml::Value::String("gpt-5".into()));
        let t = parse_override("u=http://127.0.0.1:1/v1").unwrap();
        assert_eq!(t["u"], toml::Value::String("http://127.0.0.1:1/v1".into()));
        let t = parse_override("x=[1, 2]").unwrap();
        assert_eq!(t["x"], toml::Value::Array(vec![1.into(), 2.into()]));
        let t = parse_override("q=\"quoted\"").unwrap();
        assert_eq!(t["q"], toml::Value::String("quoted".into()));
    }

    #[test]
    fn override_without_equals_is_a_usage_error() {
        let e = parse_override("model").unwrap_err();
        let c = e.downcast_ref::<Coded>().unwrap();
        assert_eq!(c.code, USAGE);
        assert!(
            c.message
                .starts_with("invalid -c override \"model\": expected key=value"),
            "{}",
            c.message
        );
        assert!(parse_override("a..b=1").is_err());
        assert!(parse_override("=1").is_err());
    }

    #[test]
    fn merge_tables_recursively_and_replace_others() {
        let mut base: toml::Table = "a = 1\n[t]\nx = 1\ny = [1]\n".parse().unwrap();
        let mut origins = BTreeMap::new();
        merge(
            &mut base,
            "[t]\ny = [2]\nz = 3\n".parse().unwrap(),
            "",
            &Layer::Override,
            &mut origins,
        );
        assert_eq!(base["t"]["x"], toml::Value::Integer(1));
        assert_eq!(base["t"]["y"], toml::Value::Array(vec![2.into()]));
        assert_eq!(base["t"]["z"], toml::Value::Integer(3));
        assert_eq!(origins.get("t.y"), Some(&Layer::Override));
        // A non-table replaces a table, forgetting the origins below it.
        merge(
            &mut base,
            "t = 5\n".parse().unwrap(),
            "",
            &Layer::Override,
            &mut origins,
        );
        assert_eq!(base["t"], toml::Value::Integer(5));
        assert!(!origins.keys().any(|k| k.starts_with("t.")));
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
    }
}

#[cfg(test)]
mod depth_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_nested_deeper_than_the_limit_are_errors_not_stack_overflows() {
        // the `config` fuzz target's long run: a -c key of ~600 dotted parts overflowed a
        // 2 MiB stack in the recursive checks
        let deep = format!("{}=1", vec!["a"; 600].join("."));
        let e = parse_overrides(&[deep]).unwrap_err().to_string();
        assert!(e.contains("600 dotted parts, at most 32"), "{e}");
        // in a file the TOML parser stops very deep keys itself; ours stops the rest
        let text = format!("{} = 1\n", vec!["a"; 600].join("."));
        let e = parse_layer_text(Path::new("/c.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/c.toml") && e.contains("recursion limit"),
            "{e}"
        );
        let text = format!("{} = 1\n", vec!["a"; 40].join("."));
        let e = parse_layer_text(Path::new("/c.toml"), &text)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/c.toml: tables or arrays nested"), "{e}");
        // control: at the limit both are fine
        let ok = format!("{}=1", vec!["a"; MAX_KEY_DEPTH].join("."));
        assert!(parse_overrides(&[ok]).is_ok());
        let ok = format!("{} = 1\n", vec!["a"; MAX_KEY_DEPTH].join("."));
        assert!(parse_layer_text(Path::new("/c.toml"), &ok).is_ok());
    }
}
