//! Not built yet (issues 6 and 7).

#[derive(Debug, clap::Args)]
pub struct LoginArgs {}

pub fn run(_args: LoginArgs, _global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    Err(crate::exit::Coded::new(crate::exit::FAILURE, "not built yet (issues 6, 7)"))
}

pub fn run_logout(_global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    Err(crate::exit::Coded::new(crate::exit::FAILURE, "not built yet (issue 6)"))
}
