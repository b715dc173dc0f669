//! Not built yet (issue 6).

#[derive(Debug, clap::Args)]
pub struct CompletionArgs {}

pub fn run(_args: CompletionArgs) -> anyhow::Result<i32> {
    Err(crate::exit::Coded::new(crate::exit::FAILURE, "not built yet (issue 6)"))
}
