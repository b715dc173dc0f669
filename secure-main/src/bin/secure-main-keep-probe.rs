//! Test probe with pre-main hardening, loader environment `StripAndKeepForChildren`. See `common/probe.rs`.

secure_main::harden_process!(secure_main::HardeningConfig::STRIP_AND_KEEP_FOR_CHILDREN);

#[path = "common/probe.rs"]
mod probe;

fn main() {
    if let Err(e) = probe::run() {
        eprintln!("probe: {e}");
        std::process::exit(2);
    }
}
