//! Attacks on the pre-main hardening from outside the process, each paired with a control.
//!
//! Every test starts `secure-main-attacker` as root; it drops to uid/gid 65534 and starts a probe
//! as its own child (so Yama ptrace_scope 1 would not refuse the control). The probes are built
//! from one source: `secure-main-hardened-probe` runs `harden_process!` before main,
//! `secure-main-plain-probe` does not.
#![cfg(target_os = "linux")]

mod common;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const ATTACKER: &str = env!("CARGO_BIN_EXE_secure-main-attacker");
const HARDENED: &str = env!("CARGO_BIN_EXE_secure-main-hardened-probe");
const PLAIN: &str = env!("CARGO_BIN_EXE_secure-main-plain-probe");
const KEEP: &str = env!("CARGO_BIN_EXE_secure-main-keep-probe");
const TIMEOUT: Duration = Duration::from_secs(120);
const NOBODY: u32 = 65534;

fn require_root() {
    // The tests run as root (CI too) and drop to 65534 themselves.
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("Uid line");
    assert!(
        uid_line.split_whitespace().nth(2) == Some("0"),
        "these tests must run as root (they drop to uid 65534 to attack): {uid_line}"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// The environment every attack test starts its probe with: loader variables (one with a
/// non-UTF-8 name) and an ordinary non-UTF-8 name that must survive.
fn hostile_env(cmd: &mut Command) -> &mut Command {
    cmd.env("LD_PRELOAD", "/nonexistent/secure-main-test-preload.so")
        .env("LD_LIBRARY_PATH", "/nonexistent/secure-main-test-lib")
        .env(OsStr::from_bytes(b"LD_\xff"), "x")
        .env(OsStr::from_bytes(b"\xffFOO"), "kept-value")
}

/// Kills the child if the test fails half-way.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Observed {
    target: Value,
    attacks: Value,
    /// /proc/<pid>/limits "Max core file size" line, read as root while the probe runs.
    core_line: String,
    /// /proc/<pid>/environ, read as root.
    environ: Vec<u8>,
    /// Owner uid of /proc/<pid>/environ.
    environ_owner: u32,
    /// Real uid of the probe, from /proc/<pid>/status.
    probe_uid: u32,
}

fn attack(probe: &str) -> Observed {
    require_root();
    let mut cmd = Command::new(ATTACKER);
    hostile_env(&mut cmd)
        .args(["attack", probe])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut guard = Guard(cmd.spawn().expect("spawn attacker"));
    let stdout = guard.0.stdout.take().expect("stdout");
    let mut stdin: ChildStdin = guard.0.stdin.take().expect("stdin");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || -> String {
        rx.recv_timeout(TIMEOUT)
            .expect("attacker output within the timeout")
            .expect("read attacker output")
    };
    let target: Value = serde_json::from_str(&next()).expect("target json");
    let attacks: Value = serde_json::from_str(&next()).expect("attacks json");
    assert_eq!(next(), "ready");
    let target = target["target"].clone();
    let attacks = attacks["attacks"].clone();
    let pid = target["pid"].as_u64().expect("pid");

    // Outside view, as root, while the probe is alive.
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let core_line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("core line")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ as root");
    let environ_owner = std::fs::metadata(format!("/proc/{pid}/environ"))
        .expect("stat environ")
        .uid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let probe_uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .expect("Uid line");

    writeln!(stdin, "done").expect("tell the attacker to finish");
    drop(stdin);
    let status = guard.0.wait().expect("wait attacker");
    assert!(status.success(), "attacker failed: {status}");
    Observed {
        target,
        attacks,
        core_line,
        environ,
        environ_owner,
        probe_uid,
    }
}

fn env_entries(environ: &[u8]) -> Vec<&[u8]> {
    environ
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .collect()
}

fn names_hex(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|n| n.as_str().expect("str").to_owned())
        .collect()
}

#[test]
fn hardened_probe_resists_same_uid_attacker_and_hides_loader_env() {
    let o = attack(HARDENED);
    // The probe really runs as the attacker's uid: the denials below are not a uid mismatch.
    assert_eq!(o.probe_uid, NOBODY);
    // Inside view: PR_GET_DUMPABLE 0, RLIMIT_CORE 0/0.
    assert_eq!(o.target["dumpable"], 0);
    assert_eq!(o.target["core_limit"]["soft"], 0);
    assert_eq!(o.target["core_limit"]["hard"], 0);
    // Outside view: /proc/<pid> files belong to root, core limit 0 0.
    assert_eq!(
        o.environ_owner, 0,
        "non-dumpable process: /proc/<pid>/environ is root-owned"
    );
    assert_eq!(o.core_line, "Max core file size 0 0 bytes");
    // Attacks from the same uid: the exact denials.
    assert_eq!(o.attacks["proc_mem"]["result"], "EACCES", "{}", o.attacks);
    assert_eq!(
        o.attacks["process_vm_readv"]["result"], "EPERM",
        "{}",
        o.attacks
    );
    assert_eq!(
        o.attacks["ptrace_attach"]["result"], "EPERM",
        "{}",
        o.attacks
    );
    assert_eq!(
        o.attacks["proc_environ"]["result"], "EACCES",
        "{}",
        o.attacks
    );
    // No LD_* in /proc/<pid>/environ (root's view) nor in the probe's own environment; the
    // non-UTF-8 ordinary variable survived and the non-UTF-8 LD_ one is gone.
    let entries = env_entries(&o.environ);
    assert!(
        !entries.iter().any(|e| e.starts_with(b"LD_")),
        "LD_ entry in /proc/<pid>/environ"
    );
    assert!(
        !o.environ.windows(12).any(|w| w == b"/nonexistent"),
        "loader value left in memory"
    );
    assert!(entries.contains(&&b"\xffFOO=kept-value"[..]));
    let names = names_hex(&o.target["env_names_hex"]);
    assert!(
        !names.iter().any(|n| n.starts_with(&hex(b"LD_"))),
        "{names:?}"
    );
    assert!(names.contains(&hex(b"\xffFOO")));
    let report = &o.target["report"];
    assert_eq!(report["uid"], NOBODY);
    assert_eq!(report["euid"], NOBODY);
    assert_eq!(report["egid"], NOBODY);
    assert_eq!(report["groups"], serde_json::json!([]));
    assert_eq!(report["dumpable"], 0);
    assert_eq!(
        report["landlock"],
        Value::Null,
        "nothing recorded a Landlock status"
    );
    assert_eq!(o.target["report"]["pre_main"]["loader_env"], "strip");
    assert_eq!(o.target["report"]["pre_main"]["loader_vars_removed"], 3);
    assert_eq!(o.target["report"]["pre_main"]["loader_vars_wiped"], 3);
}

#[test]
fn control_plain_probe_is_open_to_the_same_attacks() {
    let o = attack(PLAIN);
    assert_eq!(o.probe_uid, NOBODY);
    assert_eq!(o.target["dumpable"], 1);
    assert_eq!(
        o.target["core_limit"]["soft"],
        Value::Null,
        "unlimited, set by the attacker"
    );
    assert_eq!(o.environ_owner, NOBODY);
    assert_eq!(o.core_line, "Max core file size unlimited unlimited bytes");
    assert_eq!(o.attacks["proc_mem"]["result"], "ok", "{}", o.attacks);
    assert_eq!(o.attacks["proc_mem"]["marker_read"], true);
    assert_eq!(
        o.attacks["process_vm_readv"]["result"], "ok",
        "{}",
        o.attacks
    );
    assert_eq!(o.attacks["process_vm_readv"]["marker_read"], true);
    assert_eq!(o.attacks["ptrace_attach"]["result"], "ok", "{}", o.attacks);
    assert_eq!(o.attacks["ptrace_attach"]["stopped"], true);
    assert_eq!(o.attacks["proc_environ"]["result"], "ok");
    assert_eq!(o.attacks["proc_environ"]["has_ld"], true);
    let entries = env_entries(&o.environ);
    assert!(entries.contains(&&b"LD_PRELOAD=/nonexistent/secure-main-test-preload.so"[..]));
    assert!(entries.contains(&&b"LD_\xff=x"[..]));
    let names = names_hex(&o.target["env_names_hex"]);
    assert!(names.contains(&hex(b"LD_\xff")));
    assert!(names.contains(&hex(b"LD_PRELOAD")));
    assert_eq!(o.target["report"]["pre_main"], Value::Null);
}

fn run_with_hostile_env(probe: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(probe);
    hostile_env(&mut cmd).args(args).stdin(Stdio::null());
    cmd.output().expect("run probe")
}

#[test]
fn keep_probe_hands_loader_env_back_only_to_children_that_ask() {
    let out = run_with_hostile_env(KEEP, &["children"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let kept: Vec<(String, String)> = v["kept_hex"]
        .as_array()
        .expect("kept")
        .iter()
        .map(|p| {
            (
                p[0].as_str().expect("k").to_owned(),
                p[1].as_str().expect("v").to_owned(),
            )
        })
        .collect();
    for (k, val) in [
        (
            &b"LD_PRELOAD"[..],
            &b"/nonexistent/secure-main-test-preload.so"[..],
        ),
        (b"LD_LIBRARY_PATH", b"/nonexistent/secure-main-test-lib"),
        (b"LD_\xff", b"x"),
    ] {
        assert!(kept.contains(&(hex(k), hex(val))), "{kept:?}");
    }
    assert_eq!(kept.len(), 3);
    let plain = names_hex(&v["plain_child_env_names_hex"]);
    let reinjected = names_hex(&v["reinjected_child_env_names_hex"]);
    assert!(
        !plain.iter().any(|n| n.starts_with(&hex(b"LD_"))),
        "{plain:?}"
    );
    for k in [&b"LD_PRELOAD"[..], b"LD_LIBRARY_PATH", b"LD_\xff"] {
        assert!(reinjected.contains(&hex(k)), "{reinjected:?}");
    }
    // Control: the strip-only probe keeps nothing.
    let out = run_with_hostile_env(HARDENED, &["children"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["kept_hex"], serde_json::json!([]));
    let reinjected = names_hex(&v["reinjected_child_env_names_hex"]);
    assert!(!reinjected.iter().any(|n| n.starts_with(&hex(b"LD_"))));
}

fn deny(what: &str, probe: &str) -> Output {
    require_root();
    Command::new(ATTACKER)
        .args(["deny", what, probe, "status"])
        .stdin(Stdio::null())
        .output()
        .expect("run attacker deny")
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn failing_dumpable_call_exits_5_before_main_with_one_line() {
    let out = deny("dumpable", HARDENED);
    assert_eq!(out.status.code(), Some(5), "{:?}", stderr_lines(&out));
    assert_eq!(
        stderr_lines(&out),
        [
            "secure-main: pre-main hardening failed: prctl(PR_SET_DUMPABLE, 0) failed: Operation not permitted (os error 1)"
        ]
    );
    assert!(out.stdout.is_empty(), "main must not run");
    // Control: the same filter does not stop a binary without the hardening.
    let out = deny("dumpable", PLAIN);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
    assert!(!out.stdout.is_empty());
}

#[test]
fn failing_core_rlimit_call_exits_7_before_main_with_one_line() {
    let out = deny("rlimit", HARDENED);
    assert_eq!(out.status.code(), Some(7), "{:?}", stderr_lines(&out));
    assert_eq!(
        stderr_lines(&out),
        [
            "secure-main: pre-main hardening failed: setrlimit(RLIMIT_CORE, 0, 0) failed: Operation not permitted (os error 1)"
        ]
    );
    assert!(out.stdout.is_empty(), "main must not run");
    let out = deny("rlimit", PLAIN);
    assert_eq!(out.status.code(), Some(0), "{:?}", stderr_lines(&out));
}

fn attacker_json(args: &[&str]) -> Value {
    require_root();
    common::attacker_json(args)
}

#[test]
fn mlock_failure_is_an_error_under_required_naming_mlock() {
    let v = attacker_json(&["mlock", "required"]);
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(
        v["errno"],
        libc::EPERM,
        "RLIMIT_MEMLOCK 0 without CAP_IPC_LOCK: EPERM"
    );
    let msg = v["error"].as_str().expect("error");
    assert!(
        msg.starts_with("failed to lock secret memory (mlock): "),
        "{msg}"
    );
    // Control: with a 1 MiB limit the same call locks.
    let v = attacker_json(&["mlock-control", "required"]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["lock_status"]["status"], "locked");
    assert_eq!(v["locked_secret_buffers"], 1);
}

#[test]
fn mlock_failure_is_tolerated_and_reported_under_allow_degraded() {
    let v = attacker_json(&["mlock", "degraded"]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["lock_status"]["status"], "degraded");
    assert_eq!(v["lock_status"]["errno"], libc::EPERM);
    assert_eq!(v["degraded_secret_buffers"], 1);
    assert_eq!(v["locked_secret_buffers"], 0);
    let v = attacker_json(&["mlock-control", "degraded"]);
    assert_eq!(v["lock_status"]["status"], "locked", "{v}");
    assert_eq!(v["degraded_secret_buffers"], 0);
}

#[test]
fn reassert_after_credential_change_restores_non_dumpable_and_core_limit() {
    let v = attacker_json(&["reassert"]);
    assert_eq!(v["euid"], NOBODY);
    // Before: what fs.suid_dumpable=1 and an inherited limit leave after a uid change.
    assert_eq!(v["dumpable_before"], 1, "{v}");
    assert_eq!(v["core_before"]["soft"], 1 << 20);
    assert_eq!(v["result"], Value::Null, "{v}");
    assert_eq!(v["dumpable_after"], 0);
    assert_eq!(v["core_after"]["soft"], 0);
    assert_eq!(v["core_after"]["hard"], 0);
}

/// Crashes `probe` (SIGQUIT, uid 65534, RLIMIT_CORE unlimited, cwd a directory it may write) and
/// returns (kernel says core dumped, a core file appeared).
fn crash(probe: &str) -> (bool, bool) {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).expect("chown tempdir");
    let v = attacker_json(&["crash", probe, dir.path().to_str().expect("utf-8 tempdir")]);
    assert_eq!(v["signal"], libc::SIGQUIT, "{v}");
    let files: Vec<_> = std::fs::read_dir(dir.path()).expect("read_dir").collect();
    (v["core_dumped"] == true, !files.is_empty())
}

#[test]
fn hardened_probe_leaves_no_core_dump_when_it_crashes() {
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").expect("core_pattern");
    assert_eq!((false, false), crash(HARDENED), "core_pattern {pattern:?}");
    // Control: the same crash of the plain probe dumps core (into its cwd with the default
    // pattern `core`; a piped pattern hands it to a handler, which still sets the wait flag).
    let (dumped, file) = crash(PLAIN);
    assert!(
        dumped,
        "control did not dump core; core_pattern {pattern:?}"
    );
    if pattern.trim() == "core" {
        assert!(file, "control: no core file in its cwd");
    }
}
