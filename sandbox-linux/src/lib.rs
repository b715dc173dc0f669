//! Linux command sandbox: Landlock + seccomp (+ a user/mount namespace for read-only carve-outs),
//! without needing namespaces for the core guarantees. See the crate README for what it
//! guarantees per policy and kernel, and `docs/security.md` for the threat model.
//!
//! Entry points: [`Sandbox::plan`] → [`Sandbox::spawn`] (fork, apply, exec, wait), the helper
//! [`helper::main`] (`codex-linux-sandbox --sandbox-policy-cwd DIR --sandbox-policy JSON -- CMD`),
//! and [`check::render`] (`codex sandbox check`).
//!
//! Exit codes of a sandboxed run:
//!
//! | code | meaning |
//! |---|---|
//! | the command's | the command exited |
//! | 128 + N | the command was killed by signal N |
//! | 2 | bad command-line usage (helper only) |
//! | 126 | the command exists but cannot be executed |
//! | 127 | the command was not found |
//! | 200 | invalid policy or arguments (bad JSON, missing writable root, no command) |
//! | 201 | refused: the kernel cannot enforce the policy (message names the feature and kernel) |
//! | 202 | a set-up step failed (fork, setsid, mount namespace, no_new_privs, Landlock, seccomp) |
//!
//! Threads: the launcher must be single-threaded when it calls [`Sandbox::spawn`].

pub mod check;
pub mod error;
pub mod fs_rules;
pub mod helper;
pub mod kernel;
pub mod landlock_rules;
pub mod launch;
pub mod mountns;
pub mod report;
pub mod seccomp;
mod sys;
pub mod unix_connect;

pub use error::SandboxError;
pub use kernel::{Feature, KernelSupport, Missing};
pub use launch::{Applied, Options, Planned, Sandbox};
pub use report::Report;

/// The command exists but cannot be executed (like shells).
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// The command was not found (like shells).
pub const EXIT_NOT_FOUND: i32 = 127;
/// Invalid policy or arguments.
pub const EXIT_INVALID_POLICY: i32 = 200;
/// Refused: the kernel cannot enforce the policy.
pub const EXIT_REFUSED: i32 = 201;
/// A set-up step failed.
pub const EXIT_SETUP_FAILED: i32 = 202;
