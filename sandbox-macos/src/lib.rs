//! Seatbelt (macOS `sandbox-exec`) for the codex sandbox policy.
//!
//! * [`generate`] turns the shared [`sandbox_policy::EffectivePolicy`] into SBPL text plus
//!   `-D KEY=VALUE` parameters. It is pure and platform independent: golden-tested and
//!   property-tested on Linux. Paths only ever travel as parameters, mapped to the form Seatbelt
//!   compares ([`paths::seatbelt_path`]: `/var`, `/tmp`, `/etc` → `/private/...`).
//! * [`rules`] holds every constant allow rule with its reason and the tool that needed it.
//! * [`syntax::check`] parses and checks the generated SBPL (vocabulary from a table), and
//!   [`generate`] refuses to return a policy that fails it.
//! * [`SeatbeltPolicy::command`] builds `/usr/bin/sandbox-exec -p POLICY -DKEY=VALUE... -- CMD`
//!   with the child environment; [`exit_code`] maps the status (own code, 128+signal).
//! * `run` (macOS only) spawns that command and waits.
//!
//! Limits: Seatbelt itself is only on macOS; nothing in this crate has been run on macOS in
//! this repository's CI (see README). A process that `run` starts inherits the caller's
//! environment and file descriptors; after a failure to start, nothing has been changed in the
//! calling process (the sandbox applies to the child only).

mod command;
mod error;
mod generate;
pub mod paths;
pub mod rules;
pub mod syntax;
#[cfg(target_os = "macos")]
mod sys;

pub use command::{
    CODEX_SANDBOX_ENV_VAR, CODEX_SANDBOX_NETWORK_DISABLED_ENV_VAR, CODEX_SANDBOX_VALUE,
    SANDBOX_EXEC, exit_code,
};
pub use error::Error;
pub use generate::{
    GenOptions, HostPaths, PROTECTED_NAMES_REGEX, Param, SeatbeltPolicy, generate, generate_with,
};

impl HostPaths {
    /// The host paths of this machine: on macOS the per-user cache directory from `confstr`
    /// (left out, and the network rules without it, if `confstr` fails); elsewhere none.
    pub fn from_host() -> HostPaths {
        #[cfg(target_os = "macos")]
        {
            HostPaths {
                darwin_user_cache_dir: sys::darwin_user_cache_dir().ok(),
            }
        }
        #[cfg(not(target_os = "macos"))]
        {
            HostPaths::default()
        }
    }
}

/// Run `command` under `policy` in `cwd` and wait for it (macOS only). `extra_env` is added to
/// the inherited environment (see [`SeatbeltPolicy::command`]).
///
/// `base_env` is the command's environment before `extra_env` and the `CODEX_SANDBOX*` markers
/// (the caller's, filtered by its env policy: `sandbox_policy::env_policy`).
///
/// The command runs as a child: `/usr/bin/sandbox-exec` applies the policy to itself, then execs
/// the command, so the returned status is the command's own (see [`exit_code`]).
#[cfg(target_os = "macos")]
pub fn run(
    policy: &SeatbeltPolicy,
    command: &[std::ffi::OsString],
    cwd: &std::path::Path,
    base_env: &[(std::ffi::OsString, std::ffi::OsString)],
    extra_env: &[(std::ffi::OsString, std::ffi::OsString)],
) -> Result<std::process::ExitStatus, Error> {
    let program = std::path::PathBuf::from(SANDBOX_EXEC);
    let mut cmd = policy.command(command, extra_env)?;
    // the environment the env policy let through, not this process's (see `command`)
    cmd.env_clear();
    cmd.envs(base_env.iter().cloned());
    cmd.envs(extra_env.iter().cloned());
    cmd.env(CODEX_SANDBOX_ENV_VAR, CODEX_SANDBOX_VALUE);
    if !policy.network() {
        cmd.env(CODEX_SANDBOX_NETWORK_DISABLED_ENV_VAR, "1");
    }
    cmd.current_dir(cwd);
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        program: program.clone(),
        source,
    })?;
    child
        .wait()
        .map_err(|source| Error::Wait { program, source })
}
