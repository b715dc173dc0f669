//! The `codex-linux-sandbox` helper (codex's flags), also reached through `codex` when argv[0]'s
//! basename is `codex-linux-sandbox`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use sandbox_policy::{SandboxEnv, SandboxPolicy};

use crate::{Options, Sandbox, SandboxError};

/// The name this helper is installed (or symlinked) under.
pub const HELPER_NAME: &str = "codex-linux-sandbox";

/// `codex-linux-sandbox --sandbox-policy-cwd DIR --sandbox-policy JSON [--deny-read PATH]... -- CMD...`
#[derive(Debug, Parser)]
#[command(
    name = "codex-linux-sandbox",
    version,
    about = "Run a command under Landlock + seccomp (codex's sandbox helper)"
)]
pub struct HelperArgs {
    /// Directory the policy's relative paths (and `workspace-write`'s cwd root) resolve against.
    #[arg(long = "sandbox-policy-cwd", value_name = "DIR")]
    pub sandbox_policy_cwd: PathBuf,
    /// The policy as codex JSON, e.g. `{"mode":"workspace-write","network_access":false}`.
    #[arg(long = "sandbox-policy", value_name = "JSON")]
    pub sandbox_policy: String,
    #[command(flatten)]
    pub enforce: EnforceArgs,
    /// The command and its arguments, after `--`.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "COMMAND"
    )]
    pub command: Vec<OsString>,
}

/// The enforcement flags `codex-linux-sandbox` and `codex sandbox linux` share.
#[derive(Debug, Clone, clap::Args)]
pub struct EnforceArgs {
    /// An extra path that stays unreadable (besides the credential defaults and the config's
    /// `sandbox.deny_read`, which only `codex` reads). Repeatable.
    #[arg(long = "deny-read", value_name = "PATH")]
    pub deny_read: Vec<PathBuf>,
    /// A pathname unix socket outside the writable roots the command may connect to (e.g. a
    /// tmux or agent socket; each is a way out of the sandbox). Repeatable.
    #[arg(long = "allow-unix-socket", value_name = "PATH")]
    pub allow_unix_sockets: Vec<PathBuf>,
    /// DANGEROUS: run even when this kernel cannot enforce the whole policy (prints what is missing).
    #[arg(long)]
    pub dangerously_allow_weaker_sandbox: bool,
    /// Print what was enforced (always printed when something is missing).
    #[arg(long, short = 'v')]
    pub verbose: bool,
}

impl EnforceArgs {
    /// The [`Options`] these flags select; `program` prefixes messages.
    pub fn options(&self, extra_env: Vec<(OsString, OsString)>, program: &str) -> Options {
        Options {
            dangerously_allow_weaker_sandbox: self.dangerously_allow_weaker_sandbox,
            verbose: self.verbose,
            extra_env,
            program: program.to_string(),
            allow_unix_sockets: self.allow_unix_sockets.clone(),
        }
    }
}

/// Run the helper with `args` (including argv[0]); returns the exit code. `extra_env` is added to
/// the command's environment (pass `secure_main::kept_loader_env()`).
pub fn main(args: impl IntoIterator<Item = OsString>, extra_env: Vec<(OsString, OsString)>) -> i32 {
    let parsed = match HelperArgs::try_parse_from(args) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(parsed, extra_env) {
        Ok(code) => code,
        Err(SandboxError::Child { code }) => code,
        Err(e) => {
            eprintln!("{HELPER_NAME}: {e}");
            e.exit_code()
        }
    }
}

fn run(args: HelperArgs, extra_env: Vec<(OsString, OsString)>) -> Result<i32, SandboxError> {
    let policy = SandboxPolicy::from_json(&args.sandbox_policy)
        .map_err(|source| SandboxError::Policy { source })?;
    let effective = policy
        .resolve(
            &args.sandbox_policy_cwd,
            &SandboxEnv::from_process(),
            &args.enforce.deny_read,
        )
        .map_err(|source| SandboxError::Policy { source })?;
    let opts = args.enforce.options(extra_env, HELPER_NAME);
    Sandbox::plan(effective, opts)?.spawn(&args.command)
}

/// True when `argv0`'s basename is the helper's name.
pub fn is_helper_argv0(argv0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == HELPER_NAME)
}
