//! Linux command sandbox: Landlock + seccomp (+ a user/mount namespace for read-only carve-outs),
//! without needing namespaces for the core guarantees. See the crate README for what it
//! guarantees per policy and kernel, and `docs/security.md` for the threat model.
//!
//! Entry points: [`Sandbox::plan`] → [`Sandbox::spawn`] (fork, apply, exec, wait), the helper
//! the helper binary `codex-linux-sandbox` (crate `codex-sandbox-cli`, which owns every
//! sandbox flag),
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
pub mod devices;
pub mod error;
pub mod fs_rules;
pub mod job_control;
pub mod kernel;
pub mod landlock_rules;
pub mod launch;
pub mod meta_guard;
pub mod metadata;
pub mod mount_aliases;
pub mod mountns;
pub mod name_guard;
pub mod namespaces;
pub mod net_proxy;
pub mod own_tmp;
pub mod pidns;
pub mod report;
pub mod resolve;
pub mod seccomp;
mod sys;
pub mod unix_connect;
pub mod watch_guard;

pub use error::{Replaceable, SandboxError};
pub use kernel::{Feature, KernelSupport, Missing};
pub use launch::{Applied, Options, Planned, Sandbox};
pub use report::Report;

/// The front doors' exit codes, defined once in `sandbox_policy::request::exit`.
pub use sandbox_policy::request::exit::{
    INVALID_POLICY as EXIT_INVALID_POLICY, NOT_EXECUTABLE as EXIT_NOT_EXECUTABLE,
    NOT_FOUND as EXIT_NOT_FOUND, REFUSED as EXIT_REFUSED, SETUP_FAILED as EXIT_SETUP_FAILED,
};
