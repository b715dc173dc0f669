//! Not built yet (issue 4).

#[derive(Debug, clap::Args)]
pub struct LinuxArgs {
    #[command(flatten)]
    pub run: super::RunArgs,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

pub fn dispatch_arg0() -> Option<i32> {
    None
}

pub fn run(_args: LinuxArgs, _global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    Err(crate::exit::Coded::new(crate::exit::FAILURE, "not built yet (issue 4)"))
}

pub fn run_check(_args: CheckArgs, _global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    Err(crate::exit::Coded::new(crate::exit::FAILURE, "not built yet (issue 4)"))
}
