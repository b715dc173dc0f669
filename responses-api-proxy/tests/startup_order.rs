//! docs/security.md lists the proxy's start-up steps "in the order the code runs them": this
//! keeps that true. `main.rs` chains the typestate calls; the doc's numbered list names each call
//! (`Config::from_args`, `Config::read_key`, ...). Same calls, same order, or this fails.
#![allow(clippy::unwrap_used, clippy::panic)]

fn read(rel: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

#[test]
fn the_documented_start_up_steps_are_the_code_s() {
    // The chain in main.rs: `Config::from_args(args)? .read_key()? .bind()? ...`.
    let main = read("src/main.rs");
    let chain_start = main
        .find("Config::from_args(args)")
        .expect("Config::from_args in main.rs");
    let chain_end = chain_start + main[chain_start..].find("\n}").unwrap();
    let mut code = vec!["from_args".to_string()];
    for line in main[chain_start..chain_end].lines().skip(1) {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix('.') {
            code.push(rest.split('(').next().unwrap().to_string());
        }
    }
    assert_eq!(code.len(), 6, "{code:?}");

    // The doc's numbered list under the proxy's heading.
    let doc = read("../docs/security.md");
    let section = &doc[doc.find("## The key-holding proxy").unwrap()..];
    let list = &section[section
        .find("**Hardening steps in the order the code runs them**")
        .unwrap()..];
    let list = &list[..list.find("\n\n**").unwrap()];
    let mut documented = Vec::new();
    for line in list.lines() {
        let Some((num, rest)) = line.split_once(". ") else {
            continue;
        };
        if num.parse::<u32>().is_err() {
            continue;
        }
        // `Type::method`: the step's call, if it names one (step 1 runs before main).
        if let Some(call) = rest.strip_prefix('`').and_then(|r| r.split('`').next()) {
            if let Some((_, method)) = call.split_once("::") {
                documented.push(method.trim_end_matches(':').to_string());
            }
        }
    }
    assert_eq!(
        documented, code,
        "docs/security.md's step list drifted from main.rs"
    );
}
