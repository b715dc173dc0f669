//! `codex sandbox linux` (alias `landlock`, legacy `codex debug landlock`), `codex sandbox check`,
//! and the `codex-linux-sandbox` argv[0] dispatch. The work is done by the `sandbox-linux` crate.

use sandbox_linux::{Sandbox, SandboxError};

use crate::exit::Coded;

#[derive(Debug, clap::Args)]
pub struct LinuxArgs {
    #[command(flatten)]
    pub run: super::RunArgs,
    #[command(flatten)]
    pub enforce: codex_sandbox_cli::EnforceArgs,
    /// `codex sandbox -C DIR`: the absolute DIR walked and entered, checked as `$PWD`.
    #[arg(skip)]
    pub pwd: Option<std::path::PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

/// When argv[0]'s basename is `codex-linux-sandbox`, run the helper and return its exit code.
pub fn dispatch_arg0() -> Option<i32> {
    let argv0 = std::env::args_os().next()?;
    if !codex_sandbox_cli::is_helper_argv0(&argv0) {
        return None;
    }
    Some(codex_sandbox_cli::main(
        std::env::args_os(),
        secure_main::kept_loader_env(),
    ))
}

pub fn run(args: LinuxArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    let (effective, _cwd, settings) = super::effective_policy(
        &args.run,
        &args.enforce.deny_read,
        args.enforce.allow_writable_home,
        args.pwd.as_deref(),
        global,
    )?;
    let mut opts = args
        .enforce
        .options(secure_main::kept_loader_env(), "codex");
    // `sandbox.allow_unix_sockets`: outside pathname unix sockets the command may connect to,
    // with the same `~` rule as the deny-read list.
    let home = sandbox_policy::SandboxEnv::from_process().home;
    for entry in &settings.allow_unix_sockets {
        let path = sandbox_policy::expand_home(entry, home.as_deref()).ok_or_else(|| {
            Coded::new(
                sandbox_policy::request::exit::INVALID_POLICY,
                format!("sandbox policy: sandbox.allow_unix_sockets: {entry}: ~ used but HOME is not set"),
            )
        })?;
        opts.allow_unix_sockets.push(path);
    }
    opts.allow_git_writes |= settings.allow_git_writes;
    // `[sandbox.network]`, with `--allow-domain` added to its allow-list
    opts.allow_domains
        .extend(settings.allowed_domains.iter().cloned());
    opts.deny_domains = settings.denied_domains.clone();
    // `[shell_environment_policy]`, with `--keep-env` added to its `keep`
    let flag_keep = std::mem::take(&mut opts.env.keep);
    opts.env = settings.env.clone();
    opts.env.keep.extend(flag_keep);
    // `$PWD` against `.` by descriptor (r19 F2; the policy compared paths)
    let pwd = args
        .pwd
        .clone()
        .or_else(|| std::env::var_os("PWD").map(std::path::PathBuf::from));
    match sandbox_linux::resolve::check_policy_pwd(&effective, pwd.as_deref())
        .and_then(|()| Sandbox::plan(effective, opts))
        .and_then(|s| s.spawn(&args.run.command))
    {
        Ok(code) => Ok(code),
        // The child printed its own message.
        Err(SandboxError::Child { code }) => Ok(code),
        Err(e) => Err(Coded::new(e.exit_code(), e.to_string())),
    }
}

pub fn run_check(_args: CheckArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    use std::io::Write;
    // What `[shell_environment_policy]` would take out of this environment (names only).
    let env = crate::config::load(global)?.sandbox_settings().env;
    let removed = env.apply(std::env::vars_os()).removed;
    let text = format!(
        "{}environment: {} removed from this one by [shell_environment_policy]{}{}\n",
        sandbox_linux::check::render(),
        removed.len(),
        if removed.is_empty() { "" } else { ": " },
        removed.join(", ")
    );
    // a reader that goes away (`| head`) ends the output, not the process with a panic
    // (fifth review round F11)
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(0)
}
