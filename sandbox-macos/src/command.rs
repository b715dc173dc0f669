//! The `sandbox-exec` command line, the child's environment and the exit status: shared by every
//! platform so that all of it is tested on Linux; only [`crate::run`] itself is macOS-only.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};

use crate::{Error, SeatbeltPolicy};

/// The only `sandbox-exec` ever run: the system's, never one found on `PATH`.
pub const SANDBOX_EXEC: &str = "/usr/bin/sandbox-exec";

/// Set in the child: which sandbox it runs in (codex's variable and value).
pub const CODEX_SANDBOX_ENV_VAR: &str = "CODEX_SANDBOX";
/// The value of [`CODEX_SANDBOX_ENV_VAR`] under Seatbelt.
pub const CODEX_SANDBOX_VALUE: &str = "seatbelt";
/// Set to `1` in the child when the policy has no network (codex's variable).
pub const CODEX_SANDBOX_NETWORK_DISABLED_ENV_VAR: &str = "CODEX_SANDBOX_NETWORK_DISABLED";

impl SeatbeltPolicy {
    /// The arguments after `/usr/bin/sandbox-exec`:
    /// `-p POLICY -DKEY=VALUE... -- COMMAND ARGS...`.
    ///
    /// Each parameter is one argument (`-DKEY=VALUE`), so a value can never be read as an
    /// option; the values are absolute paths, checked free of NUL bytes at generation.
    pub fn sandbox_exec_args(&self, command: &[OsString]) -> Result<Vec<OsString>, Error> {
        if command.is_empty() {
            return Err(Error::EmptyCommand);
        }
        let mut args: Vec<OsString> = Vec::with_capacity(3 + self.params().len() + command.len());
        args.push("-p".into());
        args.push(self.text().into());
        for p in self.params() {
            let mut a = format!("-D{}=", p.key).into_bytes();
            a.extend_from_slice(p.value.as_os_str().as_encoded_bytes());
            args.push(OsString::from_vec(a));
        }
        args.push("--".into());
        args.extend(command.iter().cloned());
        Ok(args)
    }

    /// The full command: program [`SANDBOX_EXEC`], [`Self::sandbox_exec_args`], and the child
    /// environment: the caller's, plus `extra_env` (e.g. the loader variables
    /// `secure_main::kept_loader_env()` kept for the user's commands), then
    /// `CODEX_SANDBOX=seatbelt` and `CODEX_SANDBOX_NETWORK_DISABLED=1` without network (removed
    /// with network, so an inherited value cannot lie). `extra_env` cannot override the two
    /// `CODEX_SANDBOX*` variables.
    ///
    /// On macOS with System Integrity Protection, dyld drops `DYLD_*` variables when it starts
    /// the protected `/usr/bin/sandbox-exec`, so they may not reach the command (not verified
    /// here).
    pub fn command(
        &self,
        command: &[OsString],
        extra_env: &[(OsString, OsString)],
    ) -> Result<Command, Error> {
        let mut cmd = Command::new(SANDBOX_EXEC);
        cmd.args(self.sandbox_exec_args(command)?);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.env(CODEX_SANDBOX_ENV_VAR, CODEX_SANDBOX_VALUE);
        if self.network() {
            cmd.env_remove(CODEX_SANDBOX_NETWORK_DISABLED_ENV_VAR);
        } else {
            cmd.env(CODEX_SANDBOX_NETWORK_DISABLED_ENV_VAR, "1");
        }
        Ok(cmd)
    }
}

/// The exit code to pass on: the command's own status, or 128+signal if a signal killed it
/// (what a shell reports). `sandbox-exec` execs the command, so its status is the command's.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}
