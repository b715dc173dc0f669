#!/usr/bin/env bash
# Compile-check the macOS-only code on a Linux machine (never runs it):
#   1. sandbox-macos itself (run, sys.rs: confstr), with clippy;
#   2. cli/src/sandbox_cmd/{macos,request}.rs (and through them sandbox-policy's request builder),
#      compiled inside a throw-away crate with stubs for the rest of
#      the CLI (the full CLI cannot be checked for macOS here: ring's build script needs a macOS C
#      toolchain).
# Needs the std for the target: `rustup target add aarch64-apple-darwin` (default target).
set -euo pipefail
target="${1:-aarch64-apple-darwin}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
rustup target list --installed | grep -qx "$target" || {
    echo "check-macos: the $target std is not installed (rustup target add $target)" >&2
    exit 1
}
cd "$root"
cargo clippy -p sandbox-macos --all-targets --target "$target" -- -D warnings

harness="$(mktemp -d)"
trap 'rm -rf "$harness"' EXIT
mkdir -p "$harness/src"
cat > "$harness/Cargo.toml" <<TOML
[package]
name = "macos-cli-check"
version = "0.0.0"
edition = "2024"
publish = false
[dependencies]
sandbox-policy = { path = "$root/sandbox-policy" }
sandbox-macos = { path = "$root/sandbox-macos" }
secure-main = { path = "$root/secure-main" }
codex-terminal-text = { path = "$root/terminal-text" }
anyhow = "1"
clap = { version = "4.5", features = ["derive", "env"] }
toml = "0.9"
[workspace]
TOML
cp "$root/Cargo.lock" "$harness/Cargo.lock"
cat > "$harness/src/lib.rs" <<RS
#[path = "$root/cli/src/exit.rs"]
pub mod exit;
pub mod config {
    use std::path::PathBuf;
    #[derive(Debug, Clone, Default)]
    pub struct SandboxSettings { pub deny_read: Vec<String>, pub network_access: bool, pub allow_git_writes: bool, pub allow_writable_home: bool, pub env: sandbox_policy::EnvPolicy }
    #[derive(Debug, Clone)]
    pub struct Config { pub codex_home: PathBuf, pub table: toml::Table }
    impl Config {
        pub fn get(&self, _dotted: &str) -> Option<&toml::Value> { None }
        pub fn sandbox_settings(&self) -> SandboxSettings { SandboxSettings::default() }
    }
    pub fn load(_g: &crate::GlobalOpts) -> anyhow::Result<Config> {
        Ok(Config { codex_home: PathBuf::new(), table: toml::Table::new() })
    }
}
pub struct GlobalOpts;
pub mod sandbox_cmd {
    #[path = "$root/cli/src/sandbox_cmd/request.rs"]
    mod request;
    pub use request::{RunArgs, effective_policy};
    #[path = "$root/cli/src/sandbox_cmd/macos.rs"]
    pub mod macos;
}
RS
CARGO_TARGET_DIR="$root/target/macos-cli-check" cargo check --manifest-path "$harness/Cargo.toml" --target "$target"
echo "check-macos: ok ($target)"
