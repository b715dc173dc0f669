//! `codex-linux-sandbox --sandbox-policy-cwd DIR --sandbox-policy JSON -- CMD...`: see the crate
//! README. Exit codes are listed in the crate docs.

fn main() {
    let code = sandbox_linux::helper::main(std::env::args_os(), Vec::new());
    std::process::exit(code);
}
