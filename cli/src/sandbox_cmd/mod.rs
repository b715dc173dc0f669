//! `codex sandbox linux|landlock|macos|seatbelt|check` and the legacy `codex debug landlock|seatbelt`.
//!
//! `linux.rs` (and `check`) belong to the Linux sandbox, `macos.rs` to the macOS one; this file
//! only parses and dispatches.

pub mod linux;
pub mod macos;
mod request;

pub use request::{RunArgs, effective_policy};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SandboxArgs {
    #[command(subcommand)]
    pub cmd: Option<SandboxCmd>,
    /// codex 0.171's spelling, Linux: `:read-only` (the default), `:workspace` (= `linux
    /// --full-auto`) or `:danger-full-access` (no sandbox).
    #[arg(short = 'P', long = "permission-profile", value_name = "NAME")]
    pub permission_profile: Option<String>,
    /// Run COMMAND in DIR (the policy's cwd and writable root for `:workspace`).
    #[arg(short = 'C', long = "cd", value_name = "DIR")]
    pub cd: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub enforce: codex_sandbox_cli::EnforceArgs,
    /// The command and its arguments, after `--`.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
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
        Some(SandboxCmd::Linux(a)) => linux::run(a, global),
        Some(SandboxCmd::Macos(a)) => macos::run(a, global),
        Some(SandboxCmd::Check(a)) => linux::run_check(a, global),
        None => run_profile(args, global),
    }
}

/// The subcommand name that starts `command` when no `--` came right before it in `argv`
/// (`codex sandbox -c k=v linux --full-auto -- make`: clap takes `linux` after an option as the
/// program to run, with `--full-auto -- make` as its arguments; outside review r49 F2). The
/// trailing command is the tail of `argv`, so a `--` the user wrote is the word just before it.
fn subcommand_taken_as_command(
    command: &[std::ffi::OsString],
    argv: impl Iterator<Item = std::ffi::OsString>,
) -> Option<String> {
    const NAMES: &[&str] = &["linux", "landlock", "macos", "seatbelt", "check", "help"];
    let first = command.first()?.to_str()?;
    if !NAMES.contains(&first) {
        return None;
    }
    let argv: Vec<std::ffi::OsString> = argv.collect();
    let before = argv.len().checked_sub(command.len() + 1)?;
    (argv[before] != "--").then(|| first.to_string())
}

/// `codex sandbox [-P PROFILE] [-C DIR] -- COMMAND` (codex 0.171's spelling) on today's policies.
fn run_profile(args: SandboxArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    use crate::exit::Coded;
    use sandbox_policy::request::exit;
    if args.command.is_empty() {
        return Err(Coded::new(
            2,
            "sandbox: no command (usage: codex sandbox [-P :read-only|:workspace|:danger-full-access] [-C DIR] -- COMMAND...)",
        ));
    }
    if let Some(word) = subcommand_taken_as_command(&args.command, std::env::args_os()) {
        return Err(Coded::new(
            2,
            format!(
                "sandbox: `{word}` after an option would run a program named {word}: write `codex sandbox {word} [OPTIONS] -- COMMAND...` (options after the subcommand), or `-- {word}` to run such a program"
            ),
        ));
    }
    let (full_auto, danger) = match args.permission_profile.as_deref() {
        None | Some(":read-only") => (false, false),
        Some(":workspace") => (true, false),
        Some(":danger-full-access") => (false, true),
        Some(other) => {
            return Err(Coded::new(
                exit::INVALID_POLICY,
                format!(
                    "sandbox -P {other:?}: this build knows the built-in profiles :read-only, :workspace and :danger-full-access"
                ),
            ));
        }
    };
    let mut pwd = None;
    if let Some(dir) = &args.cd {
        pwd = Some(enter_dir(dir)?);
    }
    if cfg!(target_os = "macos") {
        return Err(Coded::new(
            exit::REFUSED,
            "sandbox -P: on macOS use `codex sandbox macos`",
        ));
    }
    let run = RunArgs {
        full_auto,
        writable_roots: Vec::new(),
        command: args.command,
        danger_full_access: danger,
    };
    linux::run(
        linux::LinuxArgs {
            run,
            enforce: args.enforce,
            pwd,
        },
        global,
    )
}

/// `-C DIR`: walk DIR as every writable root is walked (component by component from `/`, a
/// symbolic link not owned by root refused, naming it; outside review r19 F1), then enter the
/// directory the walk opened (through its descriptor, not the path again). A relative DIR is
/// taken below `$PWD` when that names `.`, else below the physical cwd. Returns the absolute
/// path walked: the `$PWD` the policy checks `.` against.
fn enter_dir(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    use crate::exit::Coded;
    use sandbox_linux::resolve::{LastLink, open};
    use sandbox_policy::request::exit;
    let bad = |what: String| {
        Coded::new(
            exit::INVALID_POLICY,
            format!("sandbox -C {}: {what}", dir.display()),
        )
    };
    let abs = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        let pwd = std::env::var_os("PWD")
            .map(std::path::PathBuf::from)
            .filter(|p| {
                use std::os::unix::fs::MetadataExt;
                p.is_absolute()
                    && match (std::fs::metadata(p), std::fs::metadata(".")) {
                        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
                        _ => false,
                    }
            });
        match pwd {
            Some(p) => p.join(dir),
            None => std::env::current_dir()
                .map_err(|e| bad(format!("current directory: {e}")))?
                .join(dir),
        }
    };
    let r = open(&abs, LastLink::Judge).map_err(|e| bad(e.to_string()))?;
    if !r.is_dir {
        return Err(bad("not a directory".into()));
    }
    // `/proc/self/fd/N` names the opened directory itself (a magic link to the object)
    let via = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&r.fd));
    std::env::set_current_dir(&via)
        .map_err(|e| bad(format!("chdir (fchdir of the walked directory): {e}")))?;
    Ok(abs)
}

pub fn run_debug(args: DebugArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    match args.cmd {
        DebugCmd::Landlock(a) => linux::run(a, global),
        DebugCmd::Seatbelt(a) => macos::run(a, global),
    }
}
