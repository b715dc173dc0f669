//! Not built yet (issue 5).

#[derive(Debug, clap::Args)]
pub struct MacosArgs {
    #[command(flatten)]
    pub run: super::RunArgs,
}

pub fn run(_args: MacosArgs, _global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    Err(crate::exit::Coded::new(crate::exit::FAILURE, "not built yet (issue 5)"))
}
