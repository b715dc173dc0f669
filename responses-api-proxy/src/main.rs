#![forbid(unsafe_code)]
//! The `responses-api-proxy` binary: the start-up steps in their order (see `startup`).
secure_main::harden_process!(secure_main::HardeningConfig::STRIP);

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use responses_api_proxy::audit::init_logging;
use responses_api_proxy::cli::{Args, Command, UsageArgs};
use responses_api_proxy::startup::{Config, StartupError};

fn main() -> ExitCode {
    // Before confinement: std's hook would ask for `getcwd` (a backtrace), which the allow-list
    // refuses, and the panic would be reported as that refusal (review round 5, F6).
    codex_privsep::install_panic_hook("responses-api-proxy: ");
    let args = Args::parse();
    init_logging(args.log_format);
    match &args.command {
        Some(Command::Usage(u)) => return usage(u),
        Some(Command::RotateKey(r)) => return rotate_key(r),
        None => {}
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            use std::io::Write;
            // Not eprintln!: it panics when stderr is gone; the exit code still tells.
            let _ = writeln!(std::io::stderr(), "responses-api-proxy: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The start-up order (`startup` enforces it with types): configuration → key → listeners →
/// server-info → privilege drop + confinement → serve.
fn run(args: Args) -> Result<(), StartupError> {
    Config::from_args(args)? // 0. users/groups, upstream URL, TLS roots, dump dir
        .read_key()? // 1. key into locked memory
        .bind()? // 2. listeners
        .announce()? // 3. --server-info
        .confine()? // 4. privilege drop + no_new_privs, Landlock, seccomp
        .serve() // 5. runtime + serve until shutdown, then drain
}

/// `responses-api-proxy usage`: the report on stdout; exit 2 on a bad date or state dir.
fn usage(a: &UsageArgs) -> ExitCode {
    use std::io::Write;
    match responses_api_proxy::usage_report::run(a, codex_proxy_governance::clock::now_ms()) {
        Ok(text) => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "responses-api-proxy usage: {e}");
            ExitCode::from(2)
        }
    }
}

/// `responses-api-proxy rotate-key`: the proxy's answer on stdout; exit codes in the README.
fn rotate_key(a: &responses_api_proxy::admin::RotateKeyArgs) -> ExitCode {
    use std::io::Write;
    match responses_api_proxy::admin::rotate_key(a) {
        Ok(answer) => {
            let _ = writeln!(std::io::stdout(), "{answer}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "responses-api-proxy rotate-key: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
