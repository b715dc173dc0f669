//! `codex`: the multitool, as a library so that its parsers (config, `-c` overrides, the app-server's
//! JSON-RPC dispatcher) can be fuzzed and its clap definition rendered into man pages. Each
//! subcommand lives in its own module; [`run`] parses nothing itself: it dispatches a parsed [`Cli`]
//! and turns errors into messages and exit codes (one place, `exit::report`).
#![forbid(unsafe_code)]

pub mod app_server;
pub mod completion;
pub mod config;
pub mod exec_cmd;
pub mod exit;
pub mod feature_table;
pub mod features;
pub mod login_browser;
pub mod login_cmd;
pub mod login_device;
pub mod mcp_cmd;
pub mod sandbox_cmd;
pub mod sessions_cmd;

use clap::{Parser, Subcommand};

/// Options that every subcommand understands.
#[derive(Debug, Clone, clap::Args, Default)]
pub struct GlobalOpts {
    /// Override a config value: `-c key=value` (value parsed as TOML, else taken as a string).
    #[arg(short = 'c', long = "config", value_name = "KEY=VALUE", global = true)]
    pub overrides: Vec<String>,
    /// Enable a feature flag (see `codex features list`).
    #[arg(long = "enable", value_name = "FEATURE", global = true)]
    pub enable: Vec<String>,
    /// Disable a feature flag.
    #[arg(long = "disable", value_name = "FEATURE", global = true)]
    pub disable: Vec<String>,
    /// Apply `[profiles.NAME]` of config.toml (between config.toml and `-c`).
    #[arg(short = 'p', long = "profile", value_name = "NAME", global = true)]
    pub profile: Option<String>,
}

#[derive(Debug, Parser)]
#[command(
    name = "codex",
    version,
    about = "The codex multitool: sandboxed commands, login, and a Responses API client",
    after_help = "Examples:\n  \
        printenv OPENAI_API_KEY | codex login --with-api-key\n  \
        codex login status\n  \
        codex exec \"Summarize RFC 9110 in one sentence\"\n  \
        codex exec resume --last \"Now shorter\"\n  \
        codex -p azure exec --json \"hi\"\n  \
        codex -c model_providers.proxy.base_url=http://127.0.0.1:8080/v1 -c model_provider=proxy exec \"hi\"\n  \
        codex --enable web_search_request features list\n  \
        codex config show\n  \
        codex sandbox linux --full-auto -- make test\n  \
        codex completion bash > ~/.local/share/bash-completion/completions/codex\n\n\
        Config: $CODEX_HOME/config.toml (default ~/.codex) < [profiles.NAME] (-p NAME) < -c key=value < /etc/codex/managed_config.toml"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in the Linux or macOS sandbox, or check what this machine can enforce.
    Sandbox(sandbox_cmd::SandboxArgs),
    /// Legacy spellings: `codex debug landlock`, `codex debug seatbelt`.
    Debug(sandbox_cmd::DebugArgs),
    /// Sign in (browser, or `--with-api-key` from stdin); `codex login status`.
    Login(login_cmd::LoginArgs),
    /// Remove stored credentials.
    Logout,
    /// Send a prompt to the Responses API and stream the answer; `codex exec resume` continues a
    /// recorded session.
    Exec(exec_cmd::ExecArgs),
    /// Recorded `codex exec` sessions: `codex sessions list`.
    Sessions(sessions_cmd::SessionsArgs),
    /// JSON-RPC over stdio for editors: the auth API.
    AppServer(app_server::AppServerArgs),
    /// List feature flags and their state.
    Features(features::FeaturesArgs),
    /// Show the effective configuration.
    Config(config::ConfigArgs),
    /// Manage MCP servers: add, list, get, remove, login, logout.
    Mcp(mcp_cmd::McpArgs),
    /// Print a shell completion script.
    Completion(completion::CompletionArgs),
}

/// `codex sandbox ...` alone: the same option types as [`Cli`] without the rest of the command
/// tree. Building the whole tree (and propagating the global options into every subcommand)
/// cost 0.4-0.7 ms of a 9 ms sandboxed `/bin/true` (issue 12's start-up target); a parse that
/// succeeds here gives the values the full parse gives (`sandbox_fast_path_parses_as_the_full_cli`),
/// and anything else (help, errors) is left to the full parser, which prints it.
#[derive(Debug, Parser)]
#[command(name = "codex")]
struct SandboxCli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: SandboxOnly,
}

#[derive(Debug, Subcommand)]
enum SandboxOnly {
    Sandbox(sandbox_cmd::SandboxArgs),
}

/// [`SandboxCli`] when `argv[1]` is `sandbox` and the parse succeeds.
fn parse_sandbox_fast<I, T>(argv: I) -> Option<(GlobalOpts, sandbox_cmd::SandboxArgs)>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let argv: Vec<std::ffi::OsString> = argv.into_iter().map(Into::into).collect();
    if argv.get(1).is_none_or(|a| a != "sandbox") {
        return None;
    }
    let cli = SandboxCli::try_parse_from(argv).ok()?;
    let SandboxOnly::Sandbox(args) = cli.command;
    Some((cli.global, args))
}

/// The clap definition of `codex` (man pages, completions).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Runs `codex` with the process's own argv; returns the exit code.
pub fn main_with_args() -> i32 {
    if let Some(code) = sandbox_cmd::dispatch_arg0() {
        return code;
    }
    if let Some((global, args)) = parse_sandbox_fast(std::env::args_os()) {
        return exit::report(sandbox_cmd::run(args, &global));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return parse_error(e),
    };
    let result = match cli.command {
        Command::Sandbox(a) => sandbox_cmd::run(a, &cli.global),
        Command::Debug(a) => sandbox_cmd::run_debug(a, &cli.global),
        Command::Login(a) => login_cmd::run(a, &cli.global),
        Command::Logout => login_cmd::run_logout(&cli.global),
        Command::Exec(a) => exec_cmd::run(a, &cli.global),
        Command::Sessions(a) => sessions_cmd::run(a, &cli.global),
        Command::AppServer(a) => app_server::run(a, &cli.global),
        Command::Features(a) => features::run(a, &cli.global),
        Command::Config(a) => config::run(a, &cli.global),
        Command::Mcp(a) => mcp_cmd::run(a, &cli.global),
        Command::Completion(a) => completion::run(a),
    };
    exit::report(result)
}

/// Subcommands whose arguments may hold a secret: their usage errors never quote an argument.
const SECRET_ARG_COMMANDS: &[&str] = &["login", "logout"];

/// Prints a clap error and returns its exit code. For `codex login`/`codex logout` (outside
/// review: `codex login --with-api-key=sk-...` and `codex login sk-...` echoed the key in clap's
/// usage error), the message names the kind of mistake and the usage, never an argument value.
fn parse_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // Any argument spelling the subcommand (not only the first positional: `-c k=v login ...`);
    // a false positive only makes an unrelated usage error less detailed.
    let secret_cmd = args
        .iter()
        .any(|a| SECRET_ARG_COMMANDS.iter().any(|c| a == *c));
    let informational = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !secret_cmd || informational {
        let _ = e.print();
        return e.exit_code();
    }
    let what = match e.kind() {
        ErrorKind::UnknownArgument => "an unexpected argument",
        ErrorKind::InvalidSubcommand => "an unknown subcommand or an unexpected argument",
        ErrorKind::TooManyValues => "a value where none is expected",
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => "an invalid value",
        ErrorKind::MissingRequiredArgument | ErrorKind::NoEquals => "a missing value",
        ErrorKind::ArgumentConflict => "conflicting arguments",
        _ => "invalid arguments",
    };
    let mut cmd = command();
    cmd.build();
    let usage = args
        .iter()
        .find_map(|a| {
            SECRET_ARG_COMMANDS
                .iter()
                .find(|c| a == **c)
                .and_then(|c| cmd.find_subcommand_mut(c))
                .map(|sub| sub.render_usage().to_string())
        })
        .unwrap_or_default();
    eprintln!(
        "error: {what} (argument values are not shown: they may be secrets; an API key goes on stdin: {})\n\n{}\n\nFor more information, try '--help'.",
        login_cmd::STDIN_HINT,
        usage.trim_end()
    );
    exit::USAGE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path gives exactly what the full parse gives (every option type is shared, so a
    /// divergence would come from the root command's settings), and it leaves help, errors and
    /// every other spelling to the full parser.
    #[test]
    fn sandbox_fast_path_parses_as_the_full_cli() {
        let same: &[&[&str]] = &[
            &[
                "codex",
                "sandbox",
                "linux",
                "--full-auto",
                "--",
                "make",
                "test",
            ],
            &[
                "codex",
                "sandbox",
                "linux",
                "-c",
                "k=v",
                "--profile",
                "p",
                "--deny-read",
                "/x",
                "--",
                "sh",
                "-c",
                "true",
            ],
            &[
                "codex",
                "sandbox",
                "-P",
                ":workspace",
                "-C",
                "/tmp",
                "--",
                "true",
            ],
            &["codex", "sandbox", "--", "true"],
            &["codex", "sandbox", "macos", "--full-auto", "--", "true"],
            &["codex", "sandbox", "check"],
            &["codex", "sandbox", "landlock", "--", "true"],
            &[
                "codex",
                "sandbox",
                "linux",
                "--enable",
                "x",
                "--disable",
                "y",
                "--",
                "ls",
                "--full-auto",
            ],
        ];
        for argv in same {
            let full = Cli::try_parse_from(*argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            let Command::Sandbox(args) = full.command else {
                panic!("{argv:?}: not the sandbox command")
            };
            let (global, fast) =
                parse_sandbox_fast(*argv).unwrap_or_else(|| panic!("{argv:?}: no fast parse"));
            assert_eq!(
                format!("{:?}", (full.global, args)),
                format!("{:?}", (global, fast)),
                "{argv:?}"
            );
        }
        let left: &[&[&str]] = &[
            &["codex", "sandbox", "linux", "--help"],
            &["codex", "sandbox", "linux", "--bogus", "--", "true"],
            &["codex", "sandbox", "--version"],
            &["codex", "-c", "k=v", "sandbox", "linux", "--", "true"],
            &["codex", "exec", "hi"],
            &["codex"],
        ];
        for argv in left {
            assert!(parse_sandbox_fast(*argv).is_none(), "{argv:?}");
        }
    }
}
