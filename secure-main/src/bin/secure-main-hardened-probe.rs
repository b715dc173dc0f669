//! Test probe with pre-main hardening, loader environment `Strip`. See `common/probe.rs`.

secure_main::harden_process!(secure_main::HardeningConfig::STRIP);

#[path = "common/probe.rs"]
mod probe;

fn main() {
    if let Err(e) = probe::run() {
        eprintln!("probe: {e}");
        std::process::exit(2);
    }
}
