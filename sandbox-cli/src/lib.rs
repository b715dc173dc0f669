//! The sandbox's command-line front: the clap flags `codex sandbox linux` and the
//! `codex-linux-sandbox` helper share ([`EnforceArgs`]), the helper's own ([`HelperArgs`], codex's
//! flags) and its [`main`], also reached through `codex` when argv[0]'s basename is
//! `codex-linux-sandbox`. The policy itself comes from `sandbox_policy::SandboxRequest`, the one
//! builder every front door calls; the libraries below (sandbox-policy, sandbox-linux) know no
//! clap.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use sandbox_linux::{Options, Sandbox, SandboxError};
use sandbox_policy::{PolicySource, SandboxEnv, SandboxRequest};

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
    /// The command and its arguments, after `--`. An unknown option before the command is a
    /// usage error (exit 2), not the command: `--` ends the options.
    #[arg(trailing_var_arg = true, required = true, value_name = "COMMAND")]
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
    /// Let the command create `.git`, `.codex` and `.agents` and write below existing ones inside
    /// its writable roots (for tools that must `git init` or commit). Off by default: a nested
    /// repository's hooks or `core.fsmonitor` run outside the sandbox at the user's next `git`.
    #[arg(long = "allow-git-writes")]
    pub allow_git_writes: bool,
    /// Let a writable root be your home directory or a directory above it (refused by default,
    /// exit 201: the command could rewrite what runs at your next login, shell or git start;
    /// only the startup files are then held read-only).
    #[arg(long = "allow-writable-home")]
    pub allow_writable_home: bool,
    /// With the network off: let the command reach this host through a filtering proxy the
    /// launcher runs (`example.com`, `*.example.com` below it, `**.example.com` both); nothing
    /// else is reachable, with or without user namespaces. Repeatable.
    #[arg(long = "allow-domain", value_name = "DOMAIN")]
    pub allow_domains: Vec<String>,
    /// Pass an inherited variable whose name matches PATTERN (glob, case-insensitive) even though
    /// the default excludes (names with KEY, SECRET, TOKEN, PASSWORD, CREDENTIAL; SSH_AUTH_SOCK,
    /// GPG_AGENT_INFO) would remove it. Repeatable.
    #[arg(long = "keep-env", value_name = "PATTERN")]
    pub keep_env: Vec<String>,
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
            allow_git_writes: self.allow_git_writes,
            allow_domains: self.allow_domains.clone(),
            deny_domains: Vec::new(),
            env: sandbox_policy::EnvPolicy {
                keep: self.keep_env.clone(),
                ..sandbox_policy::EnvPolicy::default()
            },
        }
    }
}

/// Run the helper with `args` (including argv[0]); returns the exit code. `extra_env` is added to
/// the command's environment (pass `secure_main::kept_loader_env()`).
pub fn main(args: impl IntoIterator<Item = OsString>, extra_env: Vec<(OsString, OsString)>) -> i32 {
    let args = match HelperArgs::try_parse_from(args) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let request = SandboxRequest {
        policy: PolicySource::Json(args.sandbox_policy.clone()),
        config_deny_read: Vec::new(),
        flag_deny_read: args.enforce.deny_read.clone(),
        cwd: args.sandbox_policy_cwd.clone(),
        env: SandboxEnv::from_process(),
        allow_writable_home: args.enforce.allow_writable_home,
    };
    let effective = match request.build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{HELPER_NAME}: {e}");
            return e.exit_code();
        }
    };
    let opts = args.enforce.options(extra_env, HELPER_NAME);
    // `$PWD` against `.` by descriptor (r19 F2; the policy compared paths)
    let pwd = std::env::var_os("PWD").map(std::path::PathBuf::from);
    match sandbox_linux::resolve::check_policy_pwd(&effective, pwd.as_deref())
        .and_then(|()| Sandbox::plan(effective, opts))
        .and_then(|s| s.spawn(&args.command))
    {
        Ok(code) => code,
        Err(SandboxError::Child { code }) => code,
        Err(e) => {
            eprintln!("{HELPER_NAME}: {e}");
            e.exit_code()
        }
    }
}

/// True when `argv0`'s basename is the helper's name.
pub fn is_helper_argv0(argv0: &std::ffi::OsStr) -> bool {
    std::path::Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == HELPER_NAME)
}
