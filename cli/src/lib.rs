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

/// The clap definition of `codex` (man pages, completions).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Runs `codex` with the process's own argv; returns the exit code.
pub fn main_with_args() -> i32 {
    if let Some(code) = sandbox_cmd::dispatch_arg0() {
        return code;
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
