//! Not built yet (issues 4 and 5).

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {}

#[derive(Debug, clap::Args)]
pub struct DebugArgs {}

/// When started as `codex-linux-sandbox` (argv[0]), run the helper and return its exit code.
pub fn dispatch_arg0() -> Option<i32> {
    None
}

pub fn run(_args: SandboxArgs, _global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    Err(crate::exit::Coded::new(crate::exit::FAILURE, "not built yet (issue 4)"))
}

pub fn run_debug(_args: DebugArgs, _global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    Err(crate::exit::Coded::new(crate::exit::FAILURE, "not built yet (issue 4)"))
}
