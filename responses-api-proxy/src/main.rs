#![forbid(unsafe_code)]
//! The `responses-api-proxy` binary: the start-up steps in their order (see `startup`).
secure_main::harden_process!(secure_main::HardeningConfig::STRIP);

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use responses_api_proxy::access_control::AccessPlan;
use responses_api_proxy::audit::init_logging;
use responses_api_proxy::cli::Args;
use responses_api_proxy::startup::{Config, StartupError};

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("responses-api-proxy: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// The start-up order: configuration → key → listeners → server-info → confinement → serve.
fn run(args: Args) -> Result<(), StartupError> {
    // 0a. allow-list and --user resolved (before the key: bad names fail early)
    let access = AccessPlan::from_args(&args).map_err(StartupError::Access)?;
    let config = Config::from_args(args)?; // 0. flags, upstream URL, TLS roots, dump dir
    let key_read = config.read_key()?; // 1. key from stdin into locked memory
    let bound = key_read.bind()?; // 2. bind listeners
    let announced = bound.announce()?; // 3. write --server-info
    let mut authorizer = None;
    let confined = announced.confine(|args| {
        authorizer = Some(access.drop_and_confine(args)?);
        Ok(())
    })?; // 4. privilege drop + self-confinement
    let confined = match authorizer {
        Some(a) => confined.with_authorizer(a),
        None => confined,
    };
    confined.serve() // 5. runtime + serve until shutdown, then drain
}
