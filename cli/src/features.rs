//! Not built yet (issue 6).

#[derive(Debug, clap::Args)]
pub struct FeaturesArgs {}

pub fn run(_args: FeaturesArgs, _global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    Err(crate::exit::Coded::new(crate::exit::FAILURE, "not built yet (issue 6)"))
}
