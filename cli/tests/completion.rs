//! Shell completions and help text.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

use std::process::{Command, Output};

fn codex(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_codex"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bash_completion_is_valid_bash_and_knows_the_subcommands() {
    let o = codex(&["completion", "bash"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let script = String::from_utf8(o.stdout).unwrap();
    for word in [
        "exec",
        "login",
        "logout",
        "features",
        "config",
        "completion",
        "--with-api-key",
        "--enable",
    ] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("codex.bash");
    std::fs::write(&f, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&f).output().unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // And it registers: sourcing it defines the completion for `codex`.
    let reg = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p codex", f.display()))
        .output()
        .unwrap();
    assert!(reg.status.success(), "{reg:?}");
    assert!(String::from_utf8_lossy(&reg.stdout).contains("codex"));
}

#[test]
fn zsh_and_fish_completions_are_generated() {
    let zsh = String::from_utf8(codex(&["completion", "zsh"]).stdout).unwrap();
    assert!(
        zsh.starts_with("#compdef codex"),
        "{}",
        &zsh[..zsh.len().min(80)]
    );
    assert!(zsh.contains("--with-api-key"));
    let fish = String::from_utf8(codex(&["completion", "fish"]).stdout).unwrap();
    assert!(fish.contains("complete -c codex"), "fish output");
    assert!(fish.contains("with-api-key"));
}

#[test]
fn unknown_shell_is_a_usage_error() {
    let o = codex(&["completion", "powershell"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid value 'powershell'"));
}

#[test]
fn help_texts_carry_real_examples() {
    for (args, example) in [
        (
            &["--help"][..],
            "printenv OPENAI_API_KEY | codex login --with-api-key",
        ),
        (&["login", "--help"], "codex login status"),
        (
            &["exec", "--help"],
            "codex -c model_providers.proxy.base_url=http://127.0.0.1:8080/v1 -c model_provider=proxy exec",
        ),
        (
            &["features", "--help"],
            "codex --enable web_search_request features list",
        ),
        (&["config", "--help"], "codex config show"),
        (&["completion", "--help"], "codex completion bash >"),
    ] {
        let o = codex(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains("Examples:") && text.contains(example),
            "{args:?}: {text}"
        );
    }
}
