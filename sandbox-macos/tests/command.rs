//! The `sandbox-exec` command line, the child environment and exit-status passthrough (shared
//! code, tested on Linux; the status mapping is exercised with real processes).

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::Command;

use sandbox_macos::{HostPaths, SANDBOX_EXEC, exit_code, generate};
use sandbox_policy::{EffectivePolicy, PolicyKind};

fn policy(network: bool) -> sandbox_macos::SeatbeltPolicy {
    let p = EffectivePolicy {
        kind: if network {
            PolicyKind::DangerFullAccess
        } else {
            PolicyKind::ReadOnly
        },
        cwd: PathBuf::from("/"),
        writable_roots: vec![],
        deny_read: if network {
            vec![]
        } else {
            vec![PathBuf::from("/Users/a/.ssh")]
        },
        network,
        deny_read_unsearched: Vec::new(),
        sockets_through_links: Vec::new(),
        temp_roots: Vec::new(),
        writable_home: None,
    };
    generate(&p, &HostPaths::default()).unwrap()
}

#[test]
fn always_the_system_sandbox_exec_never_path() {
    assert_eq!(SANDBOX_EXEC, "/usr/bin/sandbox-exec");
    let cmd = policy(false)
        .command(&[OsString::from("true")], &[])
        .unwrap();
    assert_eq!(cmd.get_program(), OsStr::new("/usr/bin/sandbox-exec"));
    let args: Vec<&OsStr> = cmd.get_args().collect();
    assert_eq!(args[0], "-p");
    assert_eq!(args[2], "-DDENY_READ_0=/Users/a/.ssh");
    assert_eq!(args[3], "--");
    assert_eq!(args[4], "true");
    assert_eq!(args.len(), 5);
}

#[test]
fn child_environment_names_the_sandbox_and_network() {
    let envs = |network: bool| -> Vec<(OsString, Option<OsString>)> {
        policy(network)
            .command(&[OsString::from("true")], &[])
            .unwrap()
            .get_envs()
            .map(|(k, v)| (k.to_os_string(), v.map(|v| v.to_os_string())))
            .collect()
    };
    let off = envs(false);
    assert!(off.contains(&("CODEX_SANDBOX".into(), Some("seatbelt".into()))));
    assert!(off.contains(&("CODEX_SANDBOX_NETWORK_DISABLED".into(), Some("1".into()))));
    let on = envs(true);
    assert!(on.contains(&("CODEX_SANDBOX".into(), Some("seatbelt".into()))));
    // With network, an inherited CODEX_SANDBOX_NETWORK_DISABLED is removed, not passed on.
    assert!(on.contains(&("CODEX_SANDBOX_NETWORK_DISABLED".into(), None)));
}

#[test]
fn empty_command_is_an_error() {
    let e = policy(false).command(&[], &[]).unwrap_err();
    assert_eq!(e.to_string(), "no command to run");
}

#[test]
fn exit_status_passes_through_with_128_plus_signal() {
    let st = Command::new("/bin/sh")
        .args(["-c", "exit 7"])
        .status()
        .unwrap();
    assert_eq!(exit_code(st), 7);
    let st = Command::new("/bin/sh")
        .args(["-c", "exit 0"])
        .status()
        .unwrap();
    assert_eq!(exit_code(st), 0);
    let st = Command::new("/bin/sh")
        .args(["-c", "kill -TERM $$"])
        .status()
        .unwrap();
    assert_eq!(exit_code(st), 128 + 15);
    let st = Command::new("/bin/sh")
        .args(["-c", "kill -KILL $$"])
        .status()
        .unwrap();
    assert_eq!(exit_code(st), 128 + 9);
}

#[test]
fn resolved_policy_from_a_real_tree_generates() {
    // End to end on this machine: resolve (canonicalises real paths) then generate.
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws \"quoted\")");
    std::fs::create_dir_all(ws.join(".git")).unwrap();
    let env = sandbox_policy::SandboxEnv {
        home: Some(dir.path().join("home")),
        other_homes: Vec::new(),
        codex_home: Some(dir.path().join("ch")),
        tmpdir: None,
        pwd: None,
        credential_env: Vec::new(),
    };
    let eff = sandbox_policy::SandboxPolicy::workspace_write()
        .resolve(&ws, &env, &[])
        .unwrap();
    let sb = generate(&eff, &HostPaths::default()).unwrap();
    // The temp dir is usually under /tmp, which Seatbelt sees as /private/tmp.
    let ws_c =
        sandbox_macos::paths::seatbelt_path("test", &std::fs::canonicalize(&ws).unwrap()).unwrap();
    let params = sb.params_text();
    assert!(
        params.contains(&format!("WRITABLE_ROOT_0={}\n", ws_c.display())),
        "{params}"
    );
    assert!(
        params.contains(&format!(
            "WRITABLE_ROOT_0_RO_0={}\n",
            ws_c.join(".git").display()
        )),
        "{params}"
    );
    assert!(
        params.contains("=/private/tmp\n"),
        "/tmp is passed as /private/tmp: {params}"
    );
    assert!(!sb.text().contains("quoted"));
}

#[test]
fn extra_env_is_passed_but_cannot_override_the_sandbox_markers() {
    let extra = vec![
        (
            OsString::from("DYLD_LIBRARY_PATH"),
            OsString::from("/opt/lib"),
        ),
        (OsString::from("CODEX_SANDBOX"), OsString::from("none")),
        (
            OsString::from("CODEX_SANDBOX_NETWORK_DISABLED"),
            OsString::from("0"),
        ),
    ];
    let cmd = policy(false)
        .command(&[OsString::from("true")], &extra)
        .unwrap();
    // Run it with /usr/bin/env in place of sandbox-exec to see the environment the child gets.
    let envs: Vec<(OsString, Option<OsString>)> = cmd
        .get_envs()
        .map(|(k, v)| (k.to_os_string(), v.map(|v| v.to_os_string())))
        .collect();
    assert!(envs.contains(&("DYLD_LIBRARY_PATH".into(), Some("/opt/lib".into()))));
    assert!(envs.contains(&("CODEX_SANDBOX".into(), Some("seatbelt".into()))));
    assert!(envs.contains(&("CODEX_SANDBOX_NETWORK_DISABLED".into(), Some("1".into()))));
    let mut real = Command::new("/usr/bin/env");
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => real.env(k, v),
            None => real.env_remove(k),
        };
    }
    let out = String::from_utf8(real.output().unwrap().stdout).unwrap();
    assert!(out.lines().any(|l| l == "CODEX_SANDBOX=seatbelt"), "{out}");
    assert!(
        out.lines().any(|l| l == "CODEX_SANDBOX_NETWORK_DISABLED=1"),
        "{out}"
    );
    assert!(!out.lines().any(|l| l == "CODEX_SANDBOX=none"), "{out}");
}
