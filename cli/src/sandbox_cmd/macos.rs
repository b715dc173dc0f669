//! `codex sandbox macos [--full-auto] [--writable-root DIR]... -- CMD` (alias `seatbelt`; legacy
//! `codex debug seatbelt`): run CMD under Seatbelt through `/usr/bin/sandbox-exec`.
//!
//! The policy is `read-only` by default, `workspace-write` with `--full-auto`; the deny-read list
//! is the default credential paths plus `sandbox.deny_read` from the config. `--print-policy`
//! prints the generated SBPL and its `-D` parameters instead of running (works on every
//! platform).
//!
//! Exit codes (the same numbering as `codex sandbox linux`, so set-up failures sit in the 200s
//! where commands rarely exit):
//!
//! | code | meaning |
//! |---|---|
//! | the command's own | the command ran; 128+N if signal N killed it |
//! | 2 | bad usage: `--writable-root` without `--full-auto` |
//! | 200 | invalid policy: a writable root that is not a directory, an empty `sandbox.deny_read` entry, one with a NUL byte or one a shell would expand (`~user`, `$VAR`, a glob), no home directory at all (HOME unset or relative and no passwd home) (`sandbox_policy::request::exit::INVALID_POLICY`); a `sandbox.deny_read` of the wrong type is a config error (2) |
//! | 201 | refused: not macOS, Seatbelt exists only there ([`EXIT_NOT_MACOS`]); a `.git` file whose gitdir the command could swap (a symlink on the way, or a renameable directory in a writable root) |
//! | 202 | sandbox set-up failed: the policy could not be generated or `/usr/bin/sandbox-exec` could not be started ([`EXIT_SETUP_FAILED`]) |
//!
//! `sandbox-exec` reports its own failures (a policy the kernel rejects, a command it cannot
//! exec) with its own exit status and a `sandbox-exec:` message on stderr; those cannot be told
//! apart from the command's status.

use std::ffi::OsString;

use sandbox_policy::request::exit;

use crate::exit::Coded;

/// Exit code of `codex sandbox macos` on any platform but macOS (refused: cannot enforce here).
pub const EXIT_NOT_MACOS: i32 = exit::REFUSED;
/// Exit code when the sandbox could not be set up (policy generation, starting sandbox-exec).
pub const EXIT_SETUP_FAILED: i32 = exit::SETUP_FAILED;

#[derive(Debug, clap::Args)]
pub struct MacosArgs {
    #[command(flatten)]
    pub run: super::RunArgs,
    /// An extra path that stays unreadable (besides the credential defaults and the config's
    /// `sandbox.deny_read`), as on Linux. Repeatable.
    #[arg(long = "deny-read", value_name = "PATH")]
    pub deny_read: Vec<std::path::PathBuf>,
    /// Print the generated Seatbelt policy and its -D parameters instead of running COMMAND.
    #[arg(long)]
    pub print_policy: bool,
    /// Let the command create `.git`, `.codex` and `.agents` and write below existing ones
    /// inside its writable roots (off by default), as on Linux.
    #[arg(long = "allow-git-writes")]
    pub allow_git_writes: bool,
    /// Let a writable root be your home directory or a directory above it (refused by default,
    /// exit 201: the command could rewrite what runs at your next login, shell or git start;
    /// only the startup files are then held read-only).
    #[arg(long = "allow-writable-home")]
    pub allow_writable_home: bool,
}

pub fn run(args: MacosArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    if !args.print_policy && !cfg!(target_os = "macos") {
        return Err(not_macos());
    }
    let (effective, cwd, settings) = super::effective_policy(
        &args.run,
        &args.deny_read,
        args.allow_writable_home,
        None,
        global,
    )?;
    if let Some(why) = &effective.writable_home {
        eprintln!(
            "codex: warning: --allow-writable-home: {why}: the command can change what runs at your next login, shell or git start; only the startup files of docs/security.md are held read-only"
        );
    }
    let opts = sandbox_macos::GenOptions {
        allow_git_writes: args.allow_git_writes || settings.allow_git_writes,
    };
    let seatbelt =
        sandbox_macos::generate_with(&effective, &sandbox_macos::HostPaths::from_host(), &opts)
            .map_err(|e| {
                let code = if e.is_refusal() {
                    exit::REFUSED
                } else {
                    EXIT_SETUP_FAILED
                };
                Coded::new(code, format!("seatbelt policy: {e}"))
            })?;
    if args.print_policy {
        print!("{}", seatbelt.text());
        println!("\n; parameters, passed as -D KEY=VALUE (never part of the policy text):");
        for p in seatbelt.params() {
            println!("; {}={}", p.key, p.value.to_string_lossy().escape_debug());
        }
        return Ok(0);
    }
    // `[shell_environment_policy]`: the same filter as on Linux (secrets, agent sockets), over
    // the loader variables our pre-main hardening kept for the command too (r51 F1)
    let env = settings
        .env
        .apply(std::env::vars_os().chain(secure_main::kept_loader_env()))
        .vars;
    run_seatbelt(&seatbelt, &args.run.command, &cwd, &env)
}

#[cfg(target_os = "macos")]
fn run_seatbelt(
    policy: &sandbox_macos::SeatbeltPolicy,
    command: &[OsString],
    cwd: &std::path::Path,
    env: &[(OsString, OsString)],
) -> anyhow::Result<i32> {
    match sandbox_macos::run(policy, command, cwd, env, &[]) {
        Ok(status) => Ok(sandbox_macos::exit_code(status)),
        Err(e) => Err(Coded::new(EXIT_SETUP_FAILED, e.to_string())),
    }
}

#[cfg(not(target_os = "macos"))]
fn run_seatbelt(
    _policy: &sandbox_macos::SeatbeltPolicy,
    _command: &[OsString],
    _cwd: &std::path::Path,
    _env: &[(OsString, OsString)],
) -> anyhow::Result<i32> {
    Err(not_macos())
}

fn not_macos() -> anyhow::Error {
    Coded::new(
        EXIT_NOT_MACOS,
        "codex sandbox macos is macOS only: Seatbelt (/usr/bin/sandbox-exec) does not exist on this platform; \
         use `codex sandbox linux` here (`--print-policy` shows the macOS policy on any platform)",
    )
}
