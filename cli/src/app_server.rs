//! Not built yet (issue 7).

#[derive(Debug, clap::Args)]
pub struct AppServerArgs {}

pub fn run(_args: AppServerArgs, _global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    Err(crate::exit::Coded::new(crate::exit::FAILURE, "not built yet (issue 7)"))
}
