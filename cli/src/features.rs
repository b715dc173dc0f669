//! Feature flags: `[features]` booleans in the config layers, then `--enable X` / `--disable X`
//! (highest precedence). Unknown names are rejected everywhere, so a typo never silently leaves a
//! feature in its default state. `codex features list` prints each flag, its state and why.

use crate::exit::{Coded, USAGE};

pub use crate::feature_table::{FEATURES, Feature, check_name};

/// Where a feature's state came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    Config(String),
    Flag,
}

/// The effective feature states.
#[derive(Debug, Clone)]
pub struct Features {
    states: Vec<(&'static Feature, bool, Source)>,
}

impl Features {
    /// Resolve from the layered config and the global flags.
    pub fn resolve(
        layered: &crate::config::Layered,
        global: &crate::GlobalOpts,
    ) -> anyhow::Result<Self> {
        for name in global.enable.iter().chain(&global.disable) {
            check_name(name).map_err(|e| Coded::new(USAGE, format!("--enable/--disable: {e}")))?;
        }
        if let Some(both) = global.enable.iter().find(|n| global.disable.contains(n)) {
            return Err(Coded::new(
                USAGE,
                format!("feature {both:?} is both --enable'd and --disable'd"),
            ));
        }
        let mut states = Vec::new();
        for f in FEATURES {
            let key = format!("features.{}", f.name);
            let (mut on, mut src) = (f.default, Source::Default);
            if let Some(v) = layered.config.get(&key).and_then(toml::Value::as_bool) {
                on = v;
                let layer = layered
                    .origins
                    .get(&key)
                    .map_or_else(|| "config".to_owned(), |l| l.to_string());
                src = Source::Config(layer);
            }
            if global.enable.iter().any(|n| n == f.name) {
                (on, src) = (true, Source::Flag);
            }
            if global.disable.iter().any(|n| n == f.name) {
                (on, src) = (false, Source::Flag);
            }
            states.push((f, on, src));
        }
        Ok(Self { states })
    }

    /// Load the config and resolve.
    pub fn load(global: &crate::GlobalOpts) -> anyhow::Result<(crate::config::Layered, Self)> {
        let layered = crate::config::load_layered(global)?;
        let features = Self::resolve(&layered, global)?;
        Ok((layered, features))
    }

    /// Whether `name` is on. `name` must be a known feature (a programming error otherwise,
    /// answered `false`).
    pub fn enabled(&self, name: &str) -> bool {
        self.states.iter().any(|(f, on, _)| f.name == name && *on)
    }
}

/// `codex features`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  codex features list\n  codex --enable web_search_request features list\n  \
    codex -c features.exec_usage_line=false features list"
)]
pub struct FeaturesArgs {
    #[command(subcommand)]
    pub action: FeaturesAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum FeaturesAction {
    /// List every feature flag: name, stage, state, and where the state came from.
    List,
}

pub fn run(args: FeaturesArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    let FeaturesAction::List = args.action;
    let (_, features) = Features::load(global)?;
    let mut out = String::new();
    for (f, on, src) in &features.states {
        let src = match src {
            Source::Default => "default".to_owned(),
            Source::Config(l) => format!("config {l}"),
            Source::Flag => "flag".to_owned(),
        };
        out.push_str(&format!(
            "{:<20} {:<13} {:<5} ({src})  {}\n",
            f.name,
            f.stage,
            if *on { "on" } else { "off" },
            f.description
        ));
    }
    print!("{out}");
    Ok(0)
}
