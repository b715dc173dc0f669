//! `gen-assets OUTDIR`: renders the suite's man pages and shell completions from the same clap
//! definitions the binaries parse with, so the documentation cannot drift from the flags.
//!
//! Writes `OUTDIR/man/man1/{codex,codex-SUB...,codex-linux-sandbox}.1`,
//! `OUTDIR/man/man8/responses-api-proxy.8` (an administrator's daemon) and
//! `OUTDIR/completions/{codex.bash,_codex,codex.fish}`. Exit 0, or 1 with the failing path.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: gen-assets OUTDIR");
        std::process::exit(2);
    };
    if let Err(e) = run(Path::new(&out)) {
        eprintln!("gen-assets: {e:#}");
        std::process::exit(1);
    }
}

fn run(out: &Path) -> anyhow::Result<()> {
    let man1 = out.join("man/man1");
    let man8 = out.join("man/man8");
    let comp = out.join("completions");
    for d in [&man1, &man8, &comp] {
        std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    }
    let codex = codex_cli::command();
    man_pages(&codex, "codex", "1", &man1)?;
    let helper = codex_sandbox_cli::HelperArgs::command();
    man_pages(&helper, "codex-linux-sandbox", "1", &man1)?;
    let proxy = responses_api_proxy::cli::Args::command();
    man_pages(&proxy, "responses-api-proxy", "8", &man8)?;
    for (shell, file) in [
        (clap_complete::Shell::Bash, "codex.bash"),
        (clap_complete::Shell::Zsh, "_codex"),
        (clap_complete::Shell::Fish, "codex.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut codex_cli::command(), "codex", &mut buf);
        write(&comp.join(file), &buf)?;
    }
    Ok(())
}

/// One page for `cmd` named `name`, then one per subcommand (`name-sub`), recursively.
fn man_pages(cmd: &clap::Command, name: &str, section: &str, dir: &Path) -> anyhow::Result<()> {
    let cmd = cmd.clone().name(name.to_owned());
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .section(section)
        .render(&mut buf)
        .with_context(|| format!("render the {name} man page"))?;
    write(&dir.join(format!("{name}.{section}")), &buf)?;
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        man_pages(sub, &format!("{name}-{}", sub.get_name()), section, dir)?;
    }
    Ok(())
}

fn write(path: &PathBuf, data: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, data).with_context(|| format!("write {}", path.display()))
}
