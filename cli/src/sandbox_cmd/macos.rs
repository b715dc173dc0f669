//! `codex sandbox macos [--full-auto] [--writable-root DIR]... -- CMD` (alias `seatbelt`; legacy
//! `codex debug seatbelt`): run CMD under Seatbelt through `/usr/bin/sandbox-exec`.
//!
//! The policy is `read-only` by default, `workspace-write` with `--full-auto`; the deny-read list
//! is the default credential paths plus `sandbox.deny_read` from the config. `--print-policy`
//! prints the generated SBPL and its `-D` parameters instead of running (works on every
//! platform).
//!
//! Exit codes (the same numbering as `codex sandbox linux`, so set-up failures sit in the 200s
//! where commands rarely exit):
//!
//! | code | meaning |
//! |---|---|
//! | the command's own | the command ran; 128+N if signal N killed it |
//! | 2 | bad usage: `--writable-root` without `--full-auto` |
//! | 200 | invalid policy: a writable root that is not a directory, a malformed `sandbox.deny_read` ([`EXIT_INVALID_POLICY`]) |
//! | 201 | refused: not macOS, Seatbelt exists only there ([`EXIT_NOT_MACOS`]) |
//! | 202 | sandbox set-up failed: the policy could not be generated or `/usr/bin/sandbox-exec` could not be started ([`EXIT_SETUP_FAILED`]) |
//!
//! `sandbox-exec` reports its own failures (a policy the kernel rejects, a command it cannot
//! exec) with its own exit status and a `sandbox-exec:` message on stderr; those cannot be told
//! apart from the command's status.

use std::ffi::OsString;
use std::path::PathBuf;

use sandbox_policy::{EffectivePolicy, SandboxEnv, SandboxPolicy};

use crate::exit::{Coded, USAGE};

/// Exit code for a policy that cannot be built (writable root, `sandbox.deny_read`).
pub const EXIT_INVALID_POLICY: i32 = 200;
/// Exit code of `codex sandbox macos` on any platform but macOS (refused: cannot enforce here).
pub const EXIT_NOT_MACOS: i32 = 201;
/// Exit code when the sandbox could not be set up (policy generation, starting sandbox-exec).
pub const EXIT_SETUP_FAILED: i32 = 202;

#[derive(Debug, clap::Args)]
pub struct MacosArgs {
    #[command(flatten)]
    pub run: super::RunArgs,
    /// Print the generated Seatbelt policy and its -D parameters instead of running COMMAND.
    #[arg(long)]
    pub print_policy: bool,
}

pub fn run(args: MacosArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    if !args.print_policy && !cfg!(target_os = "macos") {
        return Err(not_macos());
    }
    let config = crate::config::load(global)?;
    let deny_read = deny_read_from_config(&config)?;
    let policy = policy_from_flags(&args.run)?;
    let cwd = std::env::current_dir()
        .map_err(|e| Coded::new(EXIT_SETUP_FAILED, format!("current directory: {e}")))?;
    let mut env = SandboxEnv::from_process();
    if env.codex_home.is_none() {
        env.codex_home = Some(config.codex_home.clone());
    }
    let effective: EffectivePolicy = policy
        .resolve(&cwd, &env, &deny_read)
        .map_err(|e| Coded::new(EXIT_INVALID_POLICY, format!("sandbox policy: {e}")))?;
    let seatbelt = sandbox_macos::generate(&effective, &sandbox_macos::HostPaths::from_host())
        .map_err(|e| Coded::new(EXIT_SETUP_FAILED, format!("seatbelt policy: {e}")))?;
    if args.print_policy {
        print!("{}", seatbelt.text());
        println!("\n; parameters, passed as -D KEY=VALUE (never part of the policy text):");
        for p in seatbelt.params() {
            println!("; {}={}", p.key, p.value.to_string_lossy().escape_debug());
        }
        return Ok(0);
    }
    run_seatbelt(&seatbelt, &args.run.command, &cwd)
}

#[cfg(target_os = "macos")]
fn run_seatbelt(
    policy: &sandbox_macos::SeatbeltPolicy,
    command: &[OsString],
    cwd: &std::path::Path,
) -> anyhow::Result<i32> {
    match sandbox_macos::run(policy, command, cwd, &secure_main::kept_loader_env()) {
        Ok(status) => Ok(sandbox_macos::exit_code(status)),
        Err(e) => Err(Coded::new(EXIT_SETUP_FAILED, e.to_string())),
    }
}

#[cfg(not(target_os = "macos"))]
fn run_seatbelt(
    _policy: &sandbox_macos::SeatbeltPolicy,
    _command: &[OsString],
    _cwd: &std::path::Path,
) -> anyhow::Result<i32> {
    Err(not_macos())
}

fn not_macos() -> anyhow::Error {
    Coded::new(
        EXIT_NOT_MACOS,
        "codex sandbox macos is macOS only: Seatbelt (/usr/bin/sandbox-exec) does not exist on this platform; \
         use `codex sandbox linux` here (`--print-policy` shows the macOS policy on any platform)",
    )
}

fn policy_from_flags(run: &super::RunArgs) -> anyhow::Result<SandboxPolicy> {
    if run.full_auto {
        return Ok(SandboxPolicy::WorkspaceWrite {
            writable_roots: run.writable_roots.clone(),
            network_access: false,
            exclude_tmpdir_env_var: false,
            exclude_slash_tmp: false,
        });
    }
    if let Some(r) = run.writable_roots.first() {
        return Err(Coded::new(
            USAGE,
            format!(
                "--writable-root {}: needs --full-auto (the default policy is read-only)",
                r.display()
            ),
        ));
    }
    Ok(SandboxPolicy::ReadOnly)
}

/// `sandbox.deny_read`: an array of path strings; `~` and `~/` mean `$HOME` and `$HOME/`.
fn deny_read_from_config(config: &crate::config::Config) -> anyhow::Result<Vec<PathBuf>> {
    let Some(value) = config.get("sandbox.deny_read") else {
        return Ok(Vec::new());
    };
    let bad = || {
        Coded::new(
            EXIT_INVALID_POLICY,
            "config sandbox.deny_read: expected an array of path strings",
        )
    };
    let items = value.as_array().ok_or_else(bad)?;
    let home = SandboxEnv::from_process().home;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let s = item.as_str().ok_or_else(bad)?;
        if s.is_empty() || s.contains('\0') {
            return Err(Coded::new(
                EXIT_INVALID_POLICY,
                format!("config sandbox.deny_read: {s:?}: not a usable path"),
            ));
        }
        let Some(path) = super::expand_home(s, home.as_deref()) else {
            return Err(Coded::new(
                EXIT_INVALID_POLICY,
                format!("config sandbox.deny_read: {s}: ~ used but HOME is not set"),
            ));
        };
        out.push(path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> crate::config::Config {
        crate::config::Config {
            codex_home: PathBuf::from("/ch"),
            table: toml_text.parse().unwrap(),
        }
    }

    fn code(e: anyhow::Error) -> (i32, String) {
        let c = e.downcast_ref::<Coded>().unwrap();
        (c.code, c.message.clone())
    }

    #[test]
    fn deny_read_config_is_read_and_expands_home() {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let got = deny_read_from_config(&config(
            "[sandbox]\ndeny_read = [\"/srv/secret\", \"~/.netrc\"]\n",
        ))
        .unwrap();
        assert_eq!(got[0], PathBuf::from("/srv/secret"));
        if let Some(h) = home {
            assert_eq!(got[1], h.join(".netrc"));
        }
        assert!(deny_read_from_config(&config("")).unwrap().is_empty());
    }

    #[test]
    fn malformed_deny_read_is_an_invalid_policy_naming_the_key() {
        for bad in [
            "[sandbox]\ndeny_read = \"/x\"\n",
            "[sandbox]\ndeny_read = [1]\n",
            "[sandbox]\ndeny_read = [\"\"]\n",
        ] {
            let (c, m) = code(deny_read_from_config(&config(bad)).unwrap_err());
            assert_eq!(c, EXIT_INVALID_POLICY, "{bad}");
            assert!(m.starts_with("config sandbox.deny_read: "), "{m}");
        }
    }
}
