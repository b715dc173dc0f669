//! Test probe WITHOUT pre-main hardening: the control for the hardened probe. See `common/probe.rs`.

#[path = "common/probe.rs"]
mod probe;

fn main() {
    if let Err(e) = probe::run() {
        eprintln!("probe: {e}");
        std::process::exit(2);
    }
}
