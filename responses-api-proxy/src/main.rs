#![forbid(unsafe_code)]
fn main() {
    eprintln!("responses-api-proxy: not built yet");
    std::process::exit(2);
}
