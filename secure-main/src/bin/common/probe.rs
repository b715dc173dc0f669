//! Shared body of the test probes `secure-main-hardened-probe` (pre-main hardening, `Strip`),
//! `secure-main-keep-probe` (`StripAndKeepForChildren`) and `secure-main-plain-probe` (no
//! hardening: the control). They differ only in the `harden_process!` line of their `main.rs`;
//! nothing here can turn the hardening off.
//!
//! Commands (argv[1]):
//! - `status`: print one JSON line describing this process (pid, dumpable flag, core limit,
//!   environment names, kept loader variables, address of a marker in ordinary heap memory),
//!   then block until stdin reaches end of input, then exit 0.
//! - `children`: run `env -0` twice, once as `Command` builds it and once with
//!   `kept_loader_env()` added back, and print both environments' names as one JSON line.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn env_names_hex() -> Vec<String> {
    std::env::vars_os()
        .map(|(k, _)| hex(k.as_bytes()))
        .collect()
}

fn child_env_names(extra: &[(OsString, OsString)]) -> Result<Vec<String>, String> {
    let out = Command::new("env")
        .arg("-0")
        .envs(extra.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("failed to run env: {e}"))?;
    Ok(out
        .stdout
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| hex(e.split(|b| *b == b'=').next().unwrap_or(e)))
        .collect())
}

pub fn run() -> Result<(), String> {
    let cmd = std::env::args_os().nth(1).unwrap_or_default();
    let report = secure_main::hardening_report();
    let kept: Vec<[String; 2]> = secure_main::kept_loader_env()
        .iter()
        .map(|(k, v)| [hex(k.as_bytes()), hex(v.as_bytes())])
        .collect();
    match cmd.to_str() {
        Some("status") => {
            let pid = std::process::id();
            let marker = format!("secure-main-probe-marker-{pid}")
                .into_bytes()
                .into_boxed_slice();
            let line = serde_json::json!({
                "pid": pid,
                "dumpable": report.dumpable,
                "core_limit": report.core_limit,
                "env_names_hex": env_names_hex(),
                "kept_hex": kept,
                "marker_addr": marker.as_ptr() as usize,
                "marker_hex": hex(&marker),
                "report": report,
            });
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}").map_err(|e| format!("failed to write stdout: {e}"))?;
            out.flush()
                .map_err(|e| format!("failed to flush stdout: {e}"))?;
            drop(out);
            let mut sink = Vec::new();
            std::io::stdin()
                .read_to_end(&mut sink)
                .map_err(|e| format!("failed to read stdin: {e}"))?;
            // Keep the marker alive (and observable) until stdin closes.
            std::hint::black_box(&marker);
            Ok(())
        }
        Some("children") => {
            let line = serde_json::json!({
                "kept_hex": kept,
                "plain_child_env_names_hex": child_env_names(&[])?,
                "reinjected_child_env_names_hex": child_env_names(&secure_main::kept_loader_env())?,
            });
            println!("{line}");
            Ok(())
        }
        _ => Err("usage: <probe> status|children".to_owned()),
    }
}
