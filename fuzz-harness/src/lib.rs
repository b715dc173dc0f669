//! Fuzz targets as plain functions: each runs one parser of the suite on bytes from outside and
//! **asserts a property** (a violation panics, which libFuzzer reports as a crash).
//!
//! The same functions serve `fuzz/` (cargo-fuzz, coverage-guided, nightly) and
//! `tests/replay.rs` (every file of `fuzz/corpus/<target>/` replayed on stable, in CI).
//! See `fuzz/README.md` for what each target checks and the long-run figures.
#![allow(
    clippy::panic,
    reason = "a fuzz target reports a property violation by panicking"
)]

mod app_server;
mod config;
mod key_reader;
mod proxy_request;
mod seatbelt;

pub use app_server::app_server_line;
pub use config::config;
pub use key_reader::key_reader;
pub use proxy_request::proxy_request;
pub use seatbelt::seatbelt;

/// A fuzz target: runs a parser on the bytes and panics on a property violation.
pub type Target = fn(&[u8]);

/// Every target by name (the directory name under `fuzz/corpus/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("proxy_request", proxy_request),
    ("key_reader", key_reader),
    ("config", config),
    ("app_server_line", app_server_line),
    ("seatbelt", seatbelt),
];
