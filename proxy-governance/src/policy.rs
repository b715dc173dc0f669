//! The policy file (`--policy FILE`): its TOML model, strict parsing and validation, and rule
//! resolution.
//!
//! ```toml
//! known_models = ["my-fine-tune-*"]      # names globs may match besides the built-in list
//!
//! [prices."gpt-5*"]                       # per million tokens, any currency
//! input = 1.25
//! cached_input = 0.125                    # default: the input price
//! output = 10.0
//!
//! [default]                               # everyone
//! models = ["gpt-5*", "o4-mini"]          # allow-list (globs); absent: every model
//! deny_models = ["*-pro"]                 # deny-list (globs), checked first
//! max_output_tokens = 8192                # ceiling: larger or missing values are clamped to it
//! allow_store = false                     # default false: `store` is forced to false
//! allow_background = false                # default false: `background: true` is refused
//! server_tools = ["web_search"]           # server-side tools allowed (default: none; also
//!                                         # "hosted_shell", "multi_agent", "stored_prompt")
//! requests_per_minute = 60
//! day = { input_tokens = 2_000_000, output_tokens = 200_000 }
//! month = { cost = 50.0 }                 # cost needs a price for every model used
//!
//! [group.developers]                      # members of the group (at start-up)
//! month = { cost = 200.0 }
//!
//! [user.alice]                            # user name or uid
//! models = ["gpt-5*", "o3"]
//! ```
//!
//! **Resolution, most specific wins, key by key:** built-in defaults < `[default]` < every
//! `[group.G]` the user belongs to, in the order they appear in the file (a later section
//! overrides an earlier one) < `[user.U]`. A key not set by a more specific section keeps the
//! less specific value; inside `day` / `month` each limit is a key of its own. A more specific
//! section can raise an inherited limit but not remove it.
//!
//! **Refused at start-up** (exit 2, nothing listening), every message naming the file, the line
//! and the key: TOML that does not parse, an unknown key anywhere (`deny_unknown_fields`), a
//! negative, zero or absurd limit (bounds in [`Bounds`]), a price that is negative or not
//! finite, a model glob (in `models`, `deny_models` or `prices`) that matches no known model, an
//! unknown server tool name, a user or group that does not exist, and a file that is a symlink,
//! not a regular file, writable by group or others, or owned by someone other than root or the
//! proxy's own account (`codex_privsep::open_config_file`, the key file's checks with the
//! read bits allowed: the policy is not secret).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::glob;

/// The largest policy file read.
pub const MAX_POLICY_BYTES: u64 = 1024 * 1024;

/// Limits beyond these are refused as absurd (a typo's extra zeros, or a unit mix-up).
pub struct Bounds;

impl Bounds {
    /// `max_output_tokens`: no model writes more than this in one response.
    pub const MAX_OUTPUT_TOKENS: i64 = 1_000_000;
    /// `requests_per_minute`.
    pub const REQUESTS_PER_MINUTE: i64 = 100_000;
    /// A daily token limit.
    pub const DAY_TOKENS: i64 = 1_000_000_000_000;
    /// A monthly token limit.
    pub const MONTH_TOKENS: i64 = 10_000_000_000_000;
    /// A cost limit.
    pub const COST: f64 = 1_000_000_000.0;
    /// A price per million tokens.
    pub const PRICE: f64 = 100_000.0;
}

/// Tool types the client runs itself (the upstream only asks for a call): always allowed.
pub const CLIENT_TOOLS: &[&str] = &["function", "custom", "local_shell", "shell", "apply_patch"];

/// Server-side tools a policy may allow in `server_tools` (each runs, and costs, at the
/// provider). A request naming any other tool type is refused when a policy is in force.
pub const SERVER_TOOLS: &[&str] = &[
    "web_search",
    "web_search_preview",
    "file_search",
    "code_interpreter",
    "image_generation",
    "computer_use",
    "computer_use_preview",
    "mcp",
    // outside review r59 F1: the `shell` tool with a hosted environment (`container_auto`,
    // `container_reference`) runs in a container at the provider; only `{"type":"local"}` (or
    // no environment) is the client's
    "hosted_shell",
    // outside review r59 F2: the request's `multi_agent` option runs server-hosted subagents
    "multi_agent",
    // a stored `prompt` (outside review r59, documented then, built in session 16): the
    // provider's copy may enable any server tool, which the proxy never sees
    "stored_prompt",
];

/// Loading the policy failed; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Opening or checking the file (symlink, mode, owner, not regular).
    #[error("--policy: {0}")]
    Open(#[source] codex_privsep::CredentialError),
    /// Reading it.
    #[error("--policy {}: read failed: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Larger than [`MAX_POLICY_BYTES`].
    #[error("--policy {}: larger than {MAX_POLICY_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    /// Not valid TOML, a wrong type, or an unknown key.
    #[error("--policy {}, line {line}{}: {message}", path.display(), key_part(.key))]
    Syntax {
        path: PathBuf,
        line: usize,
        key: Option<String>,
        message: String,
    },
    /// Parsed, but a value is refused.
    #[error("--policy {}, line {line}, key {key}: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        reason: String,
    },
}

fn key_part(key: &Option<String>) -> String {
    key.as_ref()
        .map(|k| format!(", key {k}"))
        .unwrap_or_default()
}

/// A number written as an integer or a float (TOML keeps them apart; prices and costs accept
/// both).
#[derive(Clone, Copy, Debug)]
struct Num(f64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E>(self, v: i64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Num, E> {
                Ok(Num(v))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    #[serde(default)]
    known_models: Vec<Spanned<String>>,
    #[serde(default)]
    prices: BTreeMap<String, Spanned<PriceModel>>,
    default: Option<Spanned<RuleModel>>,
    #[serde(default)]
    group: BTreeMap<String, Spanned<RuleModel>>,
    #[serde(default)]
    user: BTreeMap<String, Spanned<RuleModel>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceModel {
    input: Spanned<Num>,
    cached_input: Option<Spanned<Num>>,
    output: Spanned<Num>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RuleModel {
    models: Option<Vec<Spanned<String>>>,
    deny_models: Option<Vec<Spanned<String>>>,
    max_output_tokens: Option<Spanned<i64>>,
    allow_store: Option<bool>,
    allow_background: Option<bool>,
    server_tools: Option<Vec<Spanned<String>>>,
    requests_per_minute: Option<Spanned<i64>>,
    day: Option<BudgetModel>,
    month: Option<BudgetModel>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BudgetModel {
    input_tokens: Option<Spanned<i64>>,
    cached_input_tokens: Option<Spanned<i64>>,
    output_tokens: Option<Spanned<i64>>,
    cost: Option<Spanned<Num>>,
}

/// A resolved setting and the policy section it came from (for refusals: `user.alice.models`).
#[derive(Clone, Debug, PartialEq)]
pub struct Setting<T> {
    pub value: T,
    /// `default`, `group.NAME`, `user.NAME`, or `built-in`.
    pub origin: Arc<str>,
}

impl<T> Setting<T> {
    /// The rule name a refusal reports: `<origin>.<key>`.
    pub fn rule(&self, key: &str) -> String {
        format!("{}.{key}", self.origin)
    }
}

/// Per-period limits (all optional).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Budget {
    pub input_tokens: Option<Setting<u64>>,
    pub cached_input_tokens: Option<Setting<u64>>,
    pub output_tokens: Option<Setting<u64>>,
    pub cost: Option<Setting<f64>>,
}

impl Budget {
    /// Whether any limit is set.
    pub fn is_set(&self) -> bool {
        self.input_tokens.is_some()
            || self.cached_input_tokens.is_some()
            || self.output_tokens.is_some()
            || self.cost.is_some()
    }
}

/// The rule in force for one user: every key resolved (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// The most specific section that applies (`user.alice`, `group.dev`, `default`), for the
    /// audit line.
    pub name: Arc<str>,
    pub models: Option<Setting<Vec<String>>>,
    pub deny_models: Option<Setting<Vec<String>>>,
    pub max_output_tokens: Option<Setting<u64>>,
    pub allow_store: Setting<bool>,
    pub allow_background: Setting<bool>,
    pub server_tools: Setting<Vec<String>>,
    pub requests_per_minute: Option<Setting<u32>>,
    pub day: Budget,
    pub month: Budget,
}

impl Rule {
    fn builtin() -> Self {
        let origin: Arc<str> = Arc::from("built-in");
        Self {
            name: origin.clone(),
            models: None,
            deny_models: None,
            max_output_tokens: None,
            allow_store: Setting {
                value: false,
                origin: origin.clone(),
            },
            allow_background: Setting {
                value: false,
                origin: origin.clone(),
            },
            server_tools: Setting {
                value: Vec::new(),
                origin,
            },
            requests_per_minute: None,
            day: Budget::default(),
            month: Budget::default(),
        }
    }

    /// Whether a token or cost budget applies (then the ledger must be writable to serve).
    pub fn has_budget(&self) -> bool {
        self.day.is_set() || self.month.is_set()
    }

    /// Whether a cost limit applies (then every model used needs a price).
    pub fn has_cost_limit(&self) -> bool {
        self.day.cost.is_some() || self.month.cost.is_some()
    }

    fn apply(&mut self, layer: &Layer) {
        let o = &layer.origin;
        let set = |v| Setting {
            value: v,
            origin: o.clone(),
        };
        self.name = o.clone();
        if let Some(v) = &layer.models {
            self.models = Some(set(v.clone()));
        }
        if let Some(v) = &layer.deny_models {
            self.deny_models = Some(Setting {
                value: v.clone(),
                origin: o.clone(),
            });
        }
        if let Some(v) = layer.max_output_tokens {
            self.max_output_tokens = Some(Setting {
                value: v,
                origin: o.clone(),
            });
        }
        if let Some(v) = layer.allow_store {
            self.allow_store = Setting {
                value: v,
                origin: o.clone(),
            };
        }
        if let Some(v) = layer.allow_background {
            self.allow_background = Setting {
                value: v,
                origin: o.clone(),
            };
        }
        if let Some(v) = &layer.server_tools {
            self.server_tools = set(v.clone());
        }
        if let Some(v) = layer.requests_per_minute {
            self.requests_per_minute = Some(Setting {
                value: v,
                origin: o.clone(),
            });
        }
        merge_budget(&mut self.day, &layer.day, o, "day");
        merge_budget(&mut self.month, &layer.month, o, "month");
    }
}

fn merge_budget(into: &mut Budget, from: &LayerBudget, origin: &Arc<str>, period: &str) {
    let o: Arc<str> = Arc::from(format!("{origin}.{period}"));
    let s = |v: u64| Setting {
        value: v,
        origin: o.clone(),
    };
    if let Some(v) = from.input_tokens {
        into.input_tokens = Some(s(v));
    }
    if let Some(v) = from.cached_input_tokens {
        into.cached_input_tokens = Some(s(v));
    }
    if let Some(v) = from.output_tokens {
        into.output_tokens = Some(s(v));
    }
    if let Some(v) = from.cost {
        into.cost = Some(Setting {
            value: v,
            origin: o.clone(),
        });
    }
}

/// One section, validated.
#[derive(Clone, Debug, Default)]
struct Layer {
    origin: Arc<str>,
    models: Option<Vec<String>>,
    deny_models: Option<Vec<String>>,
    max_output_tokens: Option<u64>,
    allow_store: Option<bool>,
    allow_background: Option<bool>,
    server_tools: Option<Vec<String>>,
    requests_per_minute: Option<u32>,
    day: LayerBudget,
    month: LayerBudget,
}

#[derive(Clone, Debug, Default)]
struct LayerBudget {
    input_tokens: Option<u64>,
    cached_input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cost: Option<f64>,
}

/// A price per million tokens.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
    pub input: f64,
    pub cached_input: f64,
    pub output: f64,
}

/// Who is who: user and group names to ids, group members. [`SystemDirectory`] asks the system
/// databases; tests pass their own.
pub trait Directory {
    /// The uid of a user name or number.
    fn uid(&self, user: &str) -> Result<u32, String>;
    /// Every uid whose groups include `group` (name or number).
    fn members(&self, group: &str) -> Result<BTreeSet<u32>, String>;
}

/// The passwd and group databases, read at start-up (as the allow-list is: membership changes
/// need a restart).
pub struct SystemDirectory;

impl Directory for SystemDirectory {
    fn uid(&self, user: &str) -> Result<u32, String> {
        codex_privsep::users::resolve_uid(user).map_err(|e| e.to_string())
    }
    fn members(&self, group: &str) -> Result<BTreeSet<u32>, String> {
        match codex_privsep::AllowList::resolve(Vec::<String>::new(), [group]) {
            Ok(codex_privsep::AllowList::Only { uids, .. }) => Ok(uids),
            Ok(codex_privsep::AllowList::Everyone) => Ok(BTreeSet::new()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The parsed, validated policy.
#[derive(Debug)]
pub struct Policy {
    path: PathBuf,
    /// Price entries, most specific pattern first.
    prices: Vec<(String, Price)>,
    default: Layer,
    /// `[group.G]` sections in file order, with their members.
    groups: Vec<(Layer, BTreeSet<u32>)>,
    users: BTreeMap<u32, Layer>,
}

impl Policy {
    /// Opens `path` with the key file's checks (group/other read allowed), reads and validates
    /// it. Must run before the privilege drop (the file is root's).
    pub fn load(path: &Path, dir: &dyn Directory) -> Result<Self, PolicyError> {
        let file = codex_privsep::open_config_file(path).map_err(PolicyError::Open)?;
        let mut text = String::new();
        file.take(MAX_POLICY_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|source| PolicyError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        if text.len() as u64 > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        Self::parse(&text, path, dir)
    }

    /// Parses and validates policy text (`path` is only for messages).
    pub fn parse(text: &str, path: &Path, dir: &dyn Directory) -> Result<Self, PolicyError> {
        let model: FileModel = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let line = line_of(text, offset);
            PolicyError::Syntax {
                path: path.to_path_buf(),
                line,
                key: key_on_line(text, line),
                message: e.message().to_string(),
            }
        })?;
        let v = Validator {
            text,
            path,
            known: {
                let mut k: Vec<String> = glob::KNOWN_MODELS.iter().map(|s| s.to_string()).collect();
                k.extend(model.known_models.iter().map(|s| s.get_ref().clone()));
                k
            },
        };
        for m in &model.known_models {
            if m.get_ref().is_empty() || glob::is_glob(m.get_ref()) {
                return Err(v.invalid(
                    m.span().start,
                    "known_models",
                    "a known model is a plain name (no '*' or '?')",
                ));
            }
        }
        let mut prices = Vec::new();
        for (pattern, p) in &model.prices {
            let key = format!("prices.{pattern:?}");
            v.glob(pattern, p.span().start, &key)?;
            let price = |n: &Spanned<Num>, what: &str| v.price(n, &format!("{key}.{what}"));
            let input = price(&p.get_ref().input, "input")?;
            let output = price(&p.get_ref().output, "output")?;
            let cached_input = match &p.get_ref().cached_input {
                Some(n) => price(n, "cached_input")?,
                None => input,
            };
            prices.push((
                pattern.clone(),
                Price {
                    input,
                    cached_input,
                    output,
                },
            ));
        }
        prices.sort_by_key(|p| std::cmp::Reverse(glob::specificity(&p.0)));

        let default = match &model.default {
            Some(r) => v.layer(r.get_ref(), "default")?,
            None => Layer {
                origin: Arc::from("default"),
                ..Layer::default()
            },
        };
        let mut groups: Vec<(&String, &Spanned<RuleModel>)> = model.group.iter().collect();
        groups.sort_by_key(|(_, r)| r.span().start);
        let mut resolved_groups = Vec::new();
        for (name, r) in groups {
            let origin = format!("group.{name}");
            let members = dir
                .members(name)
                .map_err(|reason| v.invalid(r.span().start, &origin, &reason))?;
            resolved_groups.push((v.layer(r.get_ref(), &origin)?, members));
        }
        let mut users = BTreeMap::new();
        for (name, r) in &model.user {
            let origin = format!("user.{name}");
            let uid = dir
                .uid(name)
                .map_err(|reason| v.invalid(r.span().start, &origin, &reason))?;
            if users.insert(uid, v.layer(r.get_ref(), &origin)?).is_some() {
                return Err(v.invalid(
                    r.span().start,
                    &origin,
                    &format!("uid {uid} has another [user] section"),
                ));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            prices,
            default,
            groups: resolved_groups,
            users,
        })
    }

    /// The file it came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rule for `uid` (see the module docs for the order).
    pub fn rule_for(&self, uid: u32) -> Rule {
        let mut rule = Rule::builtin();
        rule.apply(&self.default);
        for (layer, members) in &self.groups {
            if members.contains(&uid) {
                rule.apply(layer);
            }
        }
        if let Some(layer) = self.users.get(&uid) {
            rule.apply(layer);
        }
        rule
    }

    /// Whether any section sets a budget (then `--state-dir` is required: budgets must hold
    /// across restarts).
    pub fn has_any_budget(&self) -> bool {
        let set = |b: &LayerBudget| {
            b.input_tokens.is_some()
                || b.cached_input_tokens.is_some()
                || b.output_tokens.is_some()
                || b.cost.is_some()
        };
        std::iter::once(&self.default)
            .chain(self.groups.iter().map(|(l, _)| l))
            .chain(self.users.values())
            .any(|l| set(&l.day) || set(&l.month))
    }

    /// The price of `model`: the entry whose pattern matches with the most literal characters.
    pub fn price_of(&self, model: &str) -> Option<Price> {
        self.prices
            .iter()
            .find(|(p, _)| glob::matches(p, model))
            .map(|(_, p)| *p)
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The key assigned on a line (`key = ...`) or the table it opens (`[a.b]`).
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?.trim();
    if l.starts_with('[') {
        return Some(l.trim_matches(['[', ']']).trim().to_string());
    }
    let (k, _) = l.split_once('=')?;
    Some(k.trim().to_string())
}

struct Validator<'a> {
    text: &'a str,
    path: &'a Path,
    known: Vec<String>,
}

impl Validator<'_> {
    fn invalid(&self, offset: usize, key: &str, reason: &str) -> PolicyError {
        PolicyError::Invalid {
            path: self.path.to_path_buf(),
            line: line_of(self.text, offset),
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }

    fn glob(&self, pattern: &str, offset: usize, key: &str) -> Result<(), PolicyError> {
        if pattern.is_empty() {
            return Err(self.invalid(offset, key, "an empty model pattern"));
        }
        if !self.known.iter().any(|m| glob::matches(pattern, m)) {
            return Err(self.invalid(
                offset,
                key,
                &format!(
                    "model pattern {pattern:?} matches no known model (a typo?); if the model is real, add its name to known_models"
                ),
            ));
        }
        Ok(())
    }

    fn globs(&self, list: &[Spanned<String>], key: &str) -> Result<Vec<String>, PolicyError> {
        list.iter()
            .map(|g| {
                self.glob(g.get_ref(), g.span().start, key)?;
                Ok(g.get_ref().clone())
            })
            .collect()
    }

    fn int(&self, n: &Spanned<i64>, key: &str, max: i64) -> Result<u64, PolicyError> {
        let v = *n.get_ref();
        if v < 1 {
            return Err(self.invalid(
                n.span().start,
                key,
                &format!("{v} is not a limit: it must be at least 1"),
            ));
        }
        if v > max {
            return Err(self.invalid(
                n.span().start,
                key,
                &format!("{v} is absurd: at most {max} is accepted"),
            ));
        }
        Ok(v.unsigned_abs())
    }

    fn price(&self, n: &Spanned<Num>, key: &str) -> Result<f64, PolicyError> {
        let v = n.get_ref().0;
        if !v.is_finite() || !(0.0..=Bounds::PRICE).contains(&v) {
            return Err(self.invalid(
                n.span().start,
                key,
                &format!(
                    "{v} is not a price: it must be between 0 and {} per million tokens",
                    Bounds::PRICE
                ),
            ));
        }
        Ok(v)
    }

    fn budget(
        &self,
        b: &Option<BudgetModel>,
        origin: &str,
        period: &str,
        max: i64,
    ) -> Result<LayerBudget, PolicyError> {
        let Some(b) = b else {
            return Ok(LayerBudget::default());
        };
        let key = |k: &str| format!("{origin}.{period}.{k}");
        let tokens = |n: &Option<Spanned<i64>>, k: &str| {
            n.as_ref().map(|n| self.int(n, &key(k), max)).transpose()
        };
        let cost = match &b.cost {
            None => None,
            Some(n) => {
                let v = n.get_ref().0;
                if !v.is_finite() || v <= 0.0 || v > Bounds::COST {
                    return Err(self.invalid(
                        n.span().start,
                        &key("cost"),
                        &format!(
                            "{v} is not a cost limit: it must be above 0 and at most {}",
                            Bounds::COST
                        ),
                    ));
                }
                Some(v)
            }
        };
        Ok(LayerBudget {
            input_tokens: tokens(&b.input_tokens, "input_tokens")?,
            cached_input_tokens: tokens(&b.cached_input_tokens, "cached_input_tokens")?,
            output_tokens: tokens(&b.output_tokens, "output_tokens")?,
            cost,
        })
    }

    fn layer(&self, r: &RuleModel, origin: &str) -> Result<Layer, PolicyError> {
        let k = |key: &str| format!("{origin}.{key}");
        let server_tools = match &r.server_tools {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|t| {
                        if SERVER_TOOLS.contains(&t.get_ref().as_str()) {
                            Ok(t.get_ref().clone())
                        } else {
                            Err(self.invalid(
                                t.span().start,
                                &k("server_tools"),
                                &format!(
                                    "unknown server tool {:?}: one of {}",
                                    t.get_ref(),
                                    SERVER_TOOLS.join(", ")
                                ),
                            ))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
        };
        Ok(Layer {
            origin: Arc::from(origin),
            models: r
                .models
                .as_ref()
                .map(|l| self.globs(l, &k("models")))
                .transpose()?,
            deny_models: r
                .deny_models
                .as_ref()
                .map(|l| self.globs(l, &k("deny_models")))
                .transpose()?,
            max_output_tokens: r
                .max_output_tokens
                .as_ref()
                .map(|n| self.int(n, &k("max_output_tokens"), Bounds::MAX_OUTPUT_TOKENS))
                .transpose()?,
            allow_store: r.allow_store,
            allow_background: r.allow_background,
            server_tools,
            requests_per_minute: r
                .requests_per_minute
                .as_ref()
                .map(|n| {
                    self.int(n, &k("requests_per_minute"), Bounds::REQUESTS_PER_MINUTE)
                        .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
                })
                .transpose()?,
            day: self.budget(&r.day, origin, "day", Bounds::DAY_TOKENS)?,
            month: self.budget(&r.month, origin, "month", Bounds::MONTH_TOKENS)?,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// alice = 1001, bob = 1002 (group dev = {1001}), carol = 1003.
    pub struct FakeDir;
    impl Directory for FakeDir {
        fn uid(&self, user: &str) -> Result<u32, String> {
            match user {
                "alice" => Ok(1001),
                "bob" => Ok(1002),
                "carol" => Ok(1003),
                n => n.parse().map_err(|_| {
                    format!("unknown user {n:?}: no such entry in the passwd database")
                }),
            }
        }
        fn members(&self, group: &str) -> Result<BTreeSet<u32>, String> {
            match group {
                "dev" => Ok([1001].into()),
                "ops" => Ok([1001, 1002].into()),
                g => Err(format!(
                    "unknown group {g:?}: no such entry in the group database"
                )),
            }
        }
    }

    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(text, Path::new("/etc/proxy/policy.toml"), &FakeDir)
    }

    const FULL: &str = r#"
known_models = ["house-model"]

[prices."gpt-5*"]
input = 1.25
cached_input = 0.125
output = 10

[prices."gpt-5-mini"]
input = 0.25
output = 2

[default]
models = ["gpt-5*", "o4-mini"]
deny_models = ["*-pro"]
max_output_tokens = 4096
requests_per_minute = 60
day = { input_tokens = 1_000_000, output_tokens = 100_000 }
month = { cost = 50.0 }

[group.ops]
max_output_tokens = 1000

[group.dev]
max_output_tokens = 8192
server_tools = ["web_search"]

[user.alice]
models = ["gpt-5*", "o3", "house-model"]
day = { output_tokens = 500_000 }
"#;

    #[test]
    fn resolution_is_default_then_groups_in_file_order_then_user() {
        let p = parse(FULL).unwrap();
        let alice = p.rule_for(1001);
        assert_eq!(&*alice.name, "user.alice");
        assert_eq!(
            alice.models.as_ref().unwrap().rule("models"),
            "user.alice.models"
        );
        assert_eq!(alice.models.unwrap().value.len(), 3);
        // dev comes after ops in the file: its ceiling wins for alice (member of both).
        let m = alice.max_output_tokens.unwrap();
        assert_eq!((m.value, &*m.origin), (8192, "group.dev"));
        assert_eq!(alice.server_tools.value, vec!["web_search".to_string()]);
        // Budget keys merge one by one.
        assert_eq!(alice.day.output_tokens.as_ref().unwrap().value, 500_000);
        assert_eq!(&*alice.day.output_tokens.unwrap().origin, "user.alice.day");
        assert_eq!(alice.day.input_tokens.unwrap().value, 1_000_000);
        assert_eq!(alice.month.cost.unwrap().value, 50.0);
        // bob: only ops.
        let bob = p.rule_for(1002);
        assert_eq!(bob.max_output_tokens.unwrap().value, 1000);
        assert!(bob.server_tools.value.is_empty());
        assert_eq!(&*bob.name, "group.ops");
        // carol: default only; built-in store/background.
        let carol = p.rule_for(1003);
        assert_eq!(&*carol.name, "default");
        assert!(!carol.allow_store.value && !carol.allow_background.value);
        assert_eq!(carol.day.output_tokens.unwrap().value, 100_000);
        // Prices: the most specific pattern wins.
        assert_eq!(p.price_of("gpt-5-mini").unwrap().input, 0.25);
        assert_eq!(p.price_of("gpt-5-mini").unwrap().cached_input, 0.25);
        assert_eq!(p.price_of("gpt-5").unwrap().cached_input, 0.125);
        assert!(p.price_of("o4-mini").is_none());
        assert!(p.has_any_budget());
        assert!(
            !parse("[user.bob]\nmodels = [\"o3\"]\n")
                .unwrap()
                .has_any_budget()
        );
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn bad_files_are_refused_naming_file_line_and_key() {
        let e = err("[default]\nmodels = [\"gpt-5\"\n");
        assert!(
            e.starts_with("--policy /etc/proxy/policy.toml, line "),
            "{e}"
        );
        let e = err("[default]\nmax_output_tokens = 10\nbogus = 1\n");
        assert!(
            e.contains("line 3") && e.contains("key bogus") && e.contains("unknown field"),
            "{e}"
        );
        let e = err("[user.alice]\nday = { output = 5 }\n");
        assert!(
            e.contains("line 2") && e.contains("unknown field `output`"),
            "{e}"
        );
        let e = err("[default]\nmax_output_tokens = \"big\"\n");
        assert!(
            e.contains("line 2") && e.contains("key max_output_tokens"),
            "{e}"
        );
        let e = err("[default]\nrequests_per_minute = -5\n");
        assert!(
            e.contains("line 2, key default.requests_per_minute: -5 is not a limit"),
            "{e}"
        );
        let e = err("[default]\n\nmax_output_tokens = 0\n");
        assert!(e.contains("line 3, key default.max_output_tokens"), "{e}");
        let e = err("[user.bob]\nmonth = { output_tokens = 99999999999999999 }\n");
        assert!(
            e.contains("line 2, key user.bob.month.output_tokens") && e.contains("absurd"),
            "{e}"
        );
        let e = err("[default]\nday = { cost = -1 }\n");
        assert!(e.contains("key default.day.cost"), "{e}");
        let e = err("[prices.\"gpt-5\"]\ninput = -1\noutput = 1\n");
        assert!(e.contains("line 2") && e.contains("not a price"), "{e}");
        let e = err("[default]\nmodels = [\"gpt-5\", \"gtp-5*\"]\n");
        assert!(
            e.contains("line 2, key default.models") && e.contains("matches no known model"),
            "{e}"
        );
        let e = err("[prices.\"claude*\"]\ninput = 1\noutput = 1\n");
        assert!(e.contains("matches no known model"), "{e}");
        let e = err("[default]\nserver_tools = [\"web_serch\"]\n");
        assert!(e.contains("unknown server tool \"web_serch\""), "{e}");
        let e = err("\n[user.mallory]\n");
        assert!(e.contains("line 2, key user.mallory: unknown user"), "{e}");
        let e = err("[group.nogroup]\n");
        assert!(e.contains("key group.nogroup: unknown group"), "{e}");
        let e = err("[user.alice]\n[user.1001]\n");
        assert!(e.contains("has another [user] section"), "{e}");
        let e = err("known_models = [\"x*\"]\n");
        assert!(e.contains("plain name"), "{e}");
        // Controls: the same keys with sane values parse.
        parse("[default]\nrequests_per_minute = 5\nmax_output_tokens = 1\n").unwrap();
        parse("known_models = [\"house\"]\n[default]\nmodels = [\"hou*\"]\nday = { cost = 1 }\n")
            .unwrap();
        parse("").unwrap();
    }

    /// r12 F5: a sub-table without its parent table (`[user.alice.day]` alone) is valid TOML
    /// and means the same as the nested form; it was refused with a nonsense error.
    #[test]
    fn a_budget_table_without_its_parent_section_is_the_same_rule() {
        let alone =
            parse("[user.alice.day]\noutput_tokens = 10\n[default.month]\ncost = 2\n").unwrap();
        let nested =
            parse("[user.alice]\nday = { output_tokens = 10 }\n[default]\nmonth = { cost = 2 }\n")
                .unwrap();
        assert_eq!(alone.rule_for(1001), nested.rule_for(1001));
        assert_eq!(alone.rule_for(1002), nested.rule_for(1002));
        let r = alone.rule_for(1001);
        assert_eq!(&*r.name, "user.alice");
        assert_eq!(&*r.day.output_tokens.unwrap().origin, "user.alice.day");
        // Errors inside such a table still name their line and key.
        let e = err("\n[user.alice.day]\noutput_tokens = 0\n");
        assert!(
            e.contains("line 3, key user.alice.day.output_tokens"),
            "{e}"
        );
        let e = err("[user.mallory.day]\noutput_tokens = 5\n");
        assert!(e.contains("key user.mallory: unknown user"), "{e}");
    }
}
