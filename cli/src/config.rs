//! Layered configuration (issue 6 fills in the layers): `$CODEX_HOME/config.toml` < `-c key=value`
//! < managed config. Other modules use [`load`] and [`Config::get`].

use std::path::PathBuf;

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
}

/// Load the effective configuration for this invocation.
pub fn load(_global: &crate::GlobalOpts) -> anyhow::Result<Config> {
    let codex_home = match std::env::var_os("CODEX_HOME").filter(|v| !v.is_empty()) {
        Some(h) => PathBuf::from(h),
        None => match std::env::var_os("HOME") {
            Some(h) => PathBuf::from(h).join(".codex"),
            None => anyhow::bail!("neither CODEX_HOME nor HOME is set"),
        },
    };
    Ok(Config { codex_home, table: toml::Table::new() })
}

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {}

pub fn run(_args: ConfigArgs, _global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    Err(crate::exit::Coded::new(crate::exit::FAILURE, "not built yet (issue 6)"))
}
