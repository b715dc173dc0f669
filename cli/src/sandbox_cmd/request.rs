//! The flags both `codex sandbox linux` and `codex sandbox macos` take, and the one call into
//! sandbox-policy's request builder. Its own file (no Linux-only imports) so that
//! `sandbox-macos/scripts/check-macos.sh` compiles the real code for macOS.

use std::path::PathBuf;

use sandbox_policy::request::exit;
use sandbox_policy::{EffectivePolicy, PolicySource, SandboxEnv, SandboxRequest};

use crate::exit::Coded;

/// Arguments shared by `codex sandbox linux` and `codex sandbox macos`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Use the `workspace-write` policy (write the cwd, /tmp, $TMPDIR and --writable-root; no
    /// network) instead of the default `read-only`.
    #[arg(long)]
    pub full_auto: bool,
    /// An extra writable directory (with --full-auto). Repeatable.
    #[arg(long = "writable-root", value_name = "DIR")]
    pub writable_roots: Vec<std::path::PathBuf>,
    /// The command and its arguments, after `--`. An unknown option before the command is a
    /// usage error (exit 2), not the command: `--` ends the options.
    #[arg(trailing_var_arg = true, required = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
    /// `codex sandbox -P :danger-full-access`: no sandbox (not a flag of `codex sandbox linux`).
    #[arg(skip)]
    pub danger_full_access: bool,
}

/// The one way `codex sandbox linux` and `codex sandbox macos` get their policy: the flags and
/// the typed config keys (`sandbox.deny_read`, `sandbox_workspace_write.network_access`,
/// `sandbox.allow_writable_home`) go into
/// sandbox-policy's request builder, with `$CODEX_HOME` the CLI's (env, else `~/.codex`). Errors
/// carry the builder's exit code (2 usage, 200 invalid policy; a malformed config value is a
/// config error, 2, naming the file and key, before this runs).
pub fn effective_policy(
    run: &RunArgs,
    flag_deny_read: &[PathBuf],
    allow_writable_home: bool,
    pwd: Option<&std::path::Path>,
    global: &crate::GlobalOpts,
) -> anyhow::Result<(EffectivePolicy, PathBuf, crate::config::SandboxSettings)> {
    let config = crate::config::load(global)?;
    let settings = config.sandbox_settings();
    let cwd = std::env::current_dir()
        .map_err(|e| Coded::new(exit::SETUP_FAILED, format!("current directory: {e}")))?;
    let mut env = SandboxEnv::from_process();
    env.codex_home = Some(config.codex_home.clone());
    if let Some(p) = pwd {
        env.pwd = Some(p.to_path_buf());
    }
    let request = SandboxRequest {
        policy: if run.danger_full_access {
            PolicySource::Json(r#"{"mode":"danger-full-access"}"#.to_string())
        } else {
            PolicySource::Flags {
                full_auto: run.full_auto,
                writable_roots: run.writable_roots.clone(),
                network_access: settings.network_access,
            }
        },
        config_deny_read: settings.deny_read.clone(),
        flag_deny_read: flag_deny_read.to_vec(),
        cwd: cwd.clone(),
        env,
        allow_writable_home: allow_writable_home || settings.allow_writable_home,
    };
    let policy = request
        .build()
        .map_err(|e| Coded::new(e.exit_code(), format!("sandbox policy: {e}")))?;
    Ok((policy, cwd, settings))
}
