//! `codex-linux-sandbox --sandbox-policy-cwd DIR --sandbox-policy JSON -- CMD...`: see the crate
//! README. Exit codes are listed in the crate docs.
secure_main::harden_process!(secure_main::HardeningConfig::STRIP_AND_KEEP_FOR_CHILDREN);

fn main() {
    let code = codex_sandbox_cli::main(std::env::args_os(), secure_main::kept_loader_env());
    std::process::exit(code);
}
