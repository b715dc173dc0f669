//! `codex sandbox linux|landlock|macos|seatbelt|check` and the legacy `codex debug landlock|seatbelt`.
//!
//! `linux.rs` (and `check`) belong to the Linux sandbox, `macos.rs` to the macOS one; this file
//! only parses and dispatches.

pub mod linux;
pub mod macos;
mod request;

pub use request::{RunArgs, effective_policy};

#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    #[command(subcommand)]
    pub cmd: SandboxCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum SandboxCmd {
    /// Run COMMAND under Landlock + seccomp (+ a mount namespace where available).
    #[command(visible_alias = "landlock")]
    Linux(linux::LinuxArgs),
    /// Run COMMAND under Seatbelt (`/usr/bin/sandbox-exec`). macOS only.
    #[command(visible_alias = "seatbelt")]
    Macos(macos::MacosArgs),
    /// Print what this kernel can enforce and which guarantees each policy has here.
    Check(linux::CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct DebugArgs {
    #[command(subcommand)]
    pub cmd: DebugCmd,
}

#[derive(Debug, clap::Subcommand)]
pub enum DebugCmd {
    /// Legacy spelling of `codex sandbox linux`.
    Landlock(linux::LinuxArgs),
    /// Legacy spelling of `codex sandbox macos`.
    Seatbelt(macos::MacosArgs),
}

/// When started as `codex-linux-sandbox` (argv[0]), run the helper and return its exit code.
pub fn dispatch_arg0() -> Option<i32> {
    linux::dispatch_arg0()
}

pub fn run(args: SandboxArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    match args.cmd {
        SandboxCmd::Linux(a) => linux::run(a, global),
        SandboxCmd::Macos(a) => macos::run(a, global),
        SandboxCmd::Check(a) => linux::run_check(a, global),
    }
}

pub fn run_debug(args: DebugArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    match args.cmd {
        DebugCmd::Landlock(a) => linux::run(a, global),
        DebugCmd::Seatbelt(a) => macos::run(a, global),
    }
}
