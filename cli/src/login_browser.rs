//! Not built yet (issue 7): `codex login` through the browser.

/// Flags of the browser login, flattened into `codex login`.
#[derive(Debug, Clone, clap::Args, Default)]
pub struct BrowserLoginArgs {}

pub fn run(_args: BrowserLoginArgs, _global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    Err(crate::exit::Coded::new(crate::exit::FAILURE, "not built yet (issue 7)"))
}
