//! `codex sandbox linux` (alias `landlock`, legacy `codex debug landlock`), `codex sandbox check`,
//! and the `codex-linux-sandbox` argv[0] dispatch. The work is done by the `sandbox-linux` crate.

use std::ffi::OsString;
use std::path::PathBuf;

use sandbox_linux::{Sandbox, SandboxError};
use sandbox_policy::{SandboxEnv, SandboxPolicy};

use crate::exit::{Coded, USAGE};

#[derive(Debug, clap::Args)]
pub struct LinuxArgs {
    #[command(flatten)]
    pub run: super::RunArgs,
    #[command(flatten)]
    pub enforce: sandbox_linux::helper::EnforceArgs,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

/// When argv[0]'s basename is `codex-linux-sandbox`, run the helper and return its exit code.
pub fn dispatch_arg0() -> Option<i32> {
    let argv0 = std::env::args_os().next()?;
    if !sandbox_linux::helper::is_helper_argv0(&argv0) {
        return None;
    }
    Some(sandbox_linux::helper::main(
        std::env::args_os(),
        secure_main::kept_loader_env(),
    ))
}

/// `sandbox.deny_read` from the config: an array of paths (or one path); `~` and `~/` expand to
/// $HOME. A `~` path with HOME unset or empty, or an empty path, is an error: taken literally it
/// would resolve below the cwd and leave the intended path readable without a word.
fn config_deny_read(config: &crate::config::Config) -> anyhow::Result<Vec<PathBuf>> {
    deny_read_paths(config, SandboxEnv::from_process().home.as_deref())
}

fn deny_read_paths(
    config: &crate::config::Config,
    home: Option<&std::path::Path>,
) -> anyhow::Result<Vec<PathBuf>> {
    config_paths(config, "sandbox.deny_read", home)
}

/// A config key holding an array of paths (or one path), `~` expanded; errors name the key.
fn config_paths(
    config: &crate::config::Config,
    key: &str,
    home: Option<&std::path::Path>,
) -> anyhow::Result<Vec<PathBuf>> {
    let Some(value) = config.get(key) else {
        return Ok(Vec::new());
    };
    let items: Vec<&toml::Value> = match value {
        toml::Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for item in items {
        let Some(s) = item.as_str() else {
            return Err(Coded::new(
                USAGE,
                format!("{key}: expected paths (strings), got {item}"),
            ));
        };
        if s.is_empty() {
            return Err(Coded::new(
                USAGE,
                format!("{key}: an empty string is not a path"),
            ));
        }
        let Some(path) = super::expand_home(s, home) else {
            return Err(Coded::new(
                USAGE,
                format!("{key}: {s}: ~ used but HOME is not set"),
            ));
        };
        out.push(path);
    }
    Ok(out)
}

pub fn run(args: LinuxArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    let config = crate::config::load(global)?;
    let mut deny_read = config_deny_read(&config)?;
    deny_read.extend(args.enforce.deny_read.iter().cloned());
    if !args.run.full_auto && !args.run.writable_roots.is_empty() {
        return Err(Coded::new(
            USAGE,
            "--writable-root needs --full-auto (the default policy is read-only)",
        ));
    }
    let network = config
        .get("sandbox_workspace_write.network_access")
        .and_then(toml::Value::as_bool)
        .unwrap_or(false);
    let policy = if args.run.full_auto {
        SandboxPolicy::WorkspaceWrite {
            writable_roots: args.run.writable_roots.clone(),
            network_access: network,
            exclude_tmpdir_env_var: false,
            exclude_slash_tmp: false,
        }
    } else {
        SandboxPolicy::ReadOnly
    };
    let cwd = std::env::current_dir()
        .map_err(|e| Coded::new(crate::exit::FAILURE, format!("current directory: {e}")))?;
    let mut env = SandboxEnv::from_process();
    env.codex_home = Some(config.codex_home.clone());
    let effective = policy
        .resolve(&cwd, &env, &deny_read)
        .map_err(|e| Coded::new(sandbox_linux::EXIT_INVALID_POLICY, e.to_string()))?;
    let mut opts = args
        .enforce
        .options(secure_main::kept_loader_env(), "codex");
    // `sandbox.allow_unix_sockets`: outside pathname unix sockets the command may connect to.
    opts.allow_unix_sockets.extend(config_paths(
        &config,
        "sandbox.allow_unix_sockets",
        SandboxEnv::from_process().home.as_deref(),
    )?);
    let command: Vec<OsString> = args.run.command.clone();
    match Sandbox::plan(effective, opts).and_then(|s| s.spawn(&command)) {
        Ok(code) => Ok(code),
        // The child printed its own message.
        Err(SandboxError::Child { code }) => Ok(code),
        Err(e) => Err(Coded::new(e.exit_code(), e.to_string())),
    }
}

pub fn run_check(_args: CheckArgs, _global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    print!("{}", sandbox_linux::check::render());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(toml_text: &str) -> crate::config::Config {
        crate::config::Config {
            codex_home: PathBuf::from("/ch"),
            table: toml_text.parse().unwrap(),
        }
    }

    #[test]
    fn tilde_expands_to_home() {
        let c = config("[sandbox]\ndeny_read = [\"~/.netrc\", \"~\", \"/srv/x\"]\n");
        let got = deny_read_paths(&c, Some(Path::new("/h"))).unwrap();
        assert_eq!(
            got,
            vec![
                PathBuf::from("/h/.netrc"),
                PathBuf::from("/h/"),
                PathBuf::from("/srv/x")
            ]
        );
    }

    #[test]
    fn tilde_without_home_and_empty_path_are_refused() {
        // Taken literally, `~/.netrc` would resolve to `<cwd>/~/.netrc`, which does not exist, and
        // the real ~/.netrc would stay readable.
        for (text, want) in [
            (
                "[sandbox]\ndeny_read = [\"~/.netrc\"]\n",
                "~ used but HOME is not set",
            ),
            (
                "[sandbox]\ndeny_read = \"~\"\n",
                "~ used but HOME is not set",
            ),
            (
                "[sandbox]\ndeny_read = [\"\"]\n",
                "an empty string is not a path",
            ),
        ] {
            let e = deny_read_paths(&config(text), None).unwrap_err();
            let c = e.downcast_ref::<Coded>().unwrap();
            assert_eq!(c.code, USAGE, "{text}");
            assert!(
                c.message.starts_with("sandbox.deny_read: "),
                "{}",
                c.message
            );
            assert!(c.message.contains(want), "{}", c.message);
        }
    }

    #[test]
    fn allow_unix_sockets_key_is_read_and_errors_name_it() {
        let c = config("[sandbox]\nallow_unix_sockets = [\"~/tmux.sock\", \"/run/x.sock\"]\n");
        let got = config_paths(&c, "sandbox.allow_unix_sockets", Some(Path::new("/h"))).unwrap();
        assert_eq!(
            got,
            vec![PathBuf::from("/h/tmux.sock"), PathBuf::from("/run/x.sock")]
        );
        let bad = config("[sandbox]\nallow_unix_sockets = [1]\n");
        let e = config_paths(&bad, "sandbox.allow_unix_sockets", None).unwrap_err();
        let c = e.downcast_ref::<Coded>().unwrap();
        assert!(
            c.message.starts_with("sandbox.allow_unix_sockets: "),
            "{}",
            c.message
        );
    }
}
