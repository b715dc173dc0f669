fn main() {
    eprintln!("codex-linux-sandbox: not built yet");
    std::process::exit(2);
}
