//! `codex`: the multitool. The hardening constructor must live in the binary; everything else is
//! the `codex_cli` library.
#![forbid(unsafe_code)]
secure_main::harden_process!(secure_main::HardeningConfig::STRIP_AND_KEEP_FOR_CHILDREN);

fn main() {
    std::process::exit(codex_cli::main_with_args());
}
