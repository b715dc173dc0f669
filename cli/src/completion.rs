//! `codex completion bash|zsh|fish`: a shell completion script on stdout (clap_complete).

use clap::CommandFactory;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  codex completion bash > ~/.local/share/bash-completion/completions/codex\n  \
    codex completion zsh > \"${fpath[1]}/_codex\"\n  \
    codex completion fish > ~/.config/fish/completions/codex.fish"
)]
pub struct CompletionArgs {
    /// The shell to generate the script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

pub fn run(args: CompletionArgs) -> anyhow::Result<i32> {
    let mut cmd = crate::Cli::command();
    let mut out = Vec::new();
    match args.shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "codex", &mut out)
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "codex", &mut out)
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "codex", &mut out)
        }
    }
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out)?;
    stdout.flush()?;
    Ok(0)
}
