//! Outside review r16 F7: without user namespaces (the probe's `outer-deny userns` filter) the
//! sandbox's init swept `/proc` to kill the command's descendants, and a loop that forks, lets
//! the parent exit and `setsid`s in the child (a new pid every few µs) outran the sweep: the
//! launcher never returned, zombies piled up, and after SIGKILL of the launcher the init and the
//! loop lived on. The init now ends the tree with `kill(-1, SIGKILL)` from inside the Landlock
//! signal scope (`src/pidns.rs`).
//!
//! Each test runs the attack as uid 65534 (the hopper writes a byte to its stdout, a file of
//! this test, on every hop: the file must stop growing) and scans `/proc` for a marker in argv.
//! Controls: outside the sandbox the same hopper outlives its shell; an unrelated process of the
//! same uid, which that uid may signal (`kill -0` from outside succeeds), survives the init's
//! `kill(-1)`.

// Test code: a failed set-up step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use suite_test_support::bins::sandbox_helper as helper;
const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-linux-probe");
const NOBODY: u32 = 65534;

/// The reviewer's hopper (`hop.sh`), ending by itself after `argv[2]` seconds so that a failing
/// run cannot leave it behind for long. `argv[1]` is the marker.
const HOPPER: &str = r#"
import os, signal, sys, time
for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(s, signal.SIG_IGN)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    if os.fork():
        os._exit(0)
    os.setsid()
    os.write(1, b".")
"#;

/// How long a hopper inside the sandbox lives at most (the F7 failure shows as a launcher that
/// has not returned, and a beat file that grows, long before that).
const HOPPER_SECONDS: &str = "20";

struct Scratch {
    _dir: tempfile::TempDir,
    base: PathBuf,
    ws: PathBuf,
    hopper: PathBuf,
}

fn scratch() -> Scratch {
    let (dir, base) =
        suite_test_support::dirs::sandbox_scratch("sbr-", Path::new(env!("CARGO_TARGET_TMPDIR")));
    let ws = base.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    chown(&ws, Some(NOBODY), Some(NOBODY)).unwrap();
    let hopper = base.join("hop.py");
    std::fs::write(&hopper, HOPPER).unwrap();
    Scratch {
        _dir: dir,
        base,
        ws,
        hopper,
    }
}

/// A marker no other process has in its argv.
fn marker(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("f7hop{what}{}x{nanos}", std::process::id())
}

/// Live (not zombie) processes whose argv contains `marker`.
fn live_with(marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if !String::from_utf8_lossy(&cmdline).contains(marker) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("?");
        if state != "Z" && state != "X" && state != "?" {
            let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            out.push(format!(
                "{name} [{state}] {}",
                shown.chars().take(120).collect::<String>()
            ));
        }
    }
    out
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Waits until `beat` has not grown for 1 s (within `within`); `false` if it kept growing.
fn stops_growing(beat: &Path, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut last = size(beat);
    let mut since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = size(beat);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(1) {
            return true;
        }
    }
    false
}

/// `true` when `beat` grows within 1 s.
fn grows(beat: &Path) -> bool {
    let a = size(beat);
    std::thread::sleep(Duration::from_millis(1000));
    size(beat) > a
}

/// Kill what a failed run left (the hopper ends by itself after [`HOPPER_SECONDS`] anyway).
fn clean_up(marker: &str) {
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        for line in live_with(marker) {
            if let Some(pid) = line.split(' ').next().and_then(|p| p.parse::<i32>().ok()) {
                // SAFETY: kill takes integers; `pid` carries this test's marker.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ns {
    With,
    Without,
}

/// The launcher (read-only policy, uid 65534) running two `python3 hop.py MARKER N &` and `TAIL`,
/// its stdout (and the hopper's) into `beat`.
fn launch(s: &Scratch, ns: Ns, marker: &str, tail: &str, beat: &Path) -> Child {
    let mut c = match ns {
        Ns::With => Command::new(helper()),
        Ns::Without => {
            let mut c = Command::new(PROBE);
            c.args(["outer-deny", "userns", "--", &helper()]);
            c
        }
    };
    // two chains, as the reviewer's `hop.sh` ran two loops
    let hop = format!("python3 {} {marker} {HOPPER_SECONDS} &", s.hopper.display());
    let script = format!("{hop} {hop} {tail}");
    c.arg("--sandbox-policy-cwd")
        .arg(&s.ws)
        .arg("--sandbox-policy")
        .arg(r#"{"mode":"read-only"}"#)
        .args(["--", "sh", "-c", &script])
        .current_dir(&s.ws)
        .env("PWD", &s.ws)
        .env_remove("TMPDIR")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(beat).unwrap())
        .stderr(std::fs::File::create(s.base.join("stderr")).unwrap());
    c.spawn().unwrap()
}

fn wait_timeout(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `sleep` of uid 65534 started outside, which 65534 may signal (control: `kill -0` from
/// outside as 65534 succeeds).
fn bystander() -> Child {
    let child = Command::new("sleep")
        .arg("120")
        .uid(NOBODY)
        .gid(NOBODY)
        .spawn()
        .unwrap();
    let st = Command::new("sh")
        .args(["-c", &format!("kill -0 {}", child.id())])
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "control: uid 65534 outside may signal its own bystander"
    );
    child
}

fn assert_bystander_alive(b: &mut Child, when: &str) {
    assert!(
        b.try_wait().unwrap().is_none(),
        "an outside process of the same uid was killed ({when}): kill(-1) left the sandbox"
    );
}

#[test]
fn a_pid_hopping_loop_dies_when_the_command_exits() {
    let mut by = bystander();
    for ns in [Ns::Without, Ns::With] {
        let s = scratch();
        let m = marker("exit");
        let beat = s.base.join("beat");
        let started = Instant::now();
        let mut launcher = launch(&s, ns, &m, "sleep 0.5; exit 3", &beat);
        let status = wait_timeout(&mut launcher, Duration::from_secs(10));
        let took = started.elapsed();
        if status.is_none() {
            let alive = live_with(&m).len();
            let _ = launcher.kill();
            let _ = launcher.wait();
            clean_up(&m);
            panic!(
                "{ns:?}: the launcher had not returned 10 s after its command exited (0.5 s); \
                 {alive} processes of the tree alive"
            );
        }
        let stderr = std::fs::read_to_string(s.base.join("stderr")).unwrap_or_default();
        assert_eq!(status.unwrap().code(), Some(3), "{ns:?}: {stderr}");
        eprintln!("{ns:?}: the launcher returned after {took:?}");
        assert!(size(&beat) > 0, "{ns:?}: the hopper never ran: {stderr}");
        let stopped = stops_growing(&beat, Duration::from_secs(3));
        let alive = live_with(&m);
        if !stopped || !alive.is_empty() {
            clean_up(&m);
        }
        assert!(stopped, "{ns:?}: the hopper outlived the command");
        assert!(
            alive.is_empty(),
            "{ns:?}: alive after the launcher returned: {alive:?}"
        );
        assert_bystander_alive(&mut by, "command exit");
    }
    let _ = by.kill();
    let _ = by.wait();
}

#[test]
fn a_pid_hopping_loop_dies_with_a_killed_launcher() {
    let mut by = bystander();
    for ns in [Ns::Without, Ns::With] {
        let s = scratch();
        let m = marker("kill");
        let beat = s.base.join("beat");
        let mut launcher = launch(&s, ns, &m, "sleep 100", &beat);
        let deadline = Instant::now() + Duration::from_secs(10);
        while size(&beat) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let running = size(&beat) > 0 && grows(&beat);
        if !running {
            let _ = launcher.kill();
            let _ = launcher.wait();
            clean_up(&m);
            panic!("{ns:?}: the hopper never ran");
        }
        launcher.kill().unwrap();
        launcher.wait().unwrap();
        let killed = Instant::now();
        let stopped = stops_growing(&beat, Duration::from_secs(5));
        let alive = live_with(&m);
        eprintln!(
            "{ns:?}: after SIGKILL of the launcher, stopped={stopped} in {:?}",
            killed.elapsed()
        );
        if !stopped || !alive.is_empty() {
            clean_up(&m);
        }
        assert!(
            stopped,
            "{ns:?}: the hopper outlived SIGKILL of the launcher"
        );
        assert!(
            alive.is_empty(),
            "{ns:?}: alive after SIGKILL of the launcher: {alive:?}"
        );
        assert_bystander_alive(&mut by, "launcher killed");
    }
    let _ = by.kill();
    let _ = by.wait();
}

/// Control: outside the sandbox the same hopper keeps running after its shell returned (here
/// for its 3 s, then it ends by itself).
#[test]
fn control_the_hopper_outlives_its_shell_outside() {
    let s = scratch();
    let m = marker("control");
    let beat = s.base.join("beat");
    let st = Command::new("sh")
        .args([
            "-c",
            &format!("python3 {} {m} 3 & sleep 0.3", s.hopper.display()),
        ])
        .current_dir(&s.ws)
        .env("PWD", &s.ws)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::fs::File::create(&beat).unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    let grew = grows(&beat);
    assert!(
        grew,
        "control: the hopper keeps running after its shell returned"
    );
    assert!(stops_growing(&beat, Duration::from_secs(6)));
}

/// The state letter of `/proc/PID/stat`.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Ctrl-Z (SIGTSTP to the launcher: it stops the sandbox, then itself), then SIGKILL of the
/// stopped launcher: the tree must not stay behind, stopped or not. Without a pid namespace the
/// init is left running by the freeze so that its parent-death signal is handled.
#[test]
fn a_stopped_pid_hopping_loop_dies_with_a_killed_launcher() {
    let mut by = bystander();
    for ns in [Ns::Without, Ns::With] {
        let s = scratch();
        let m = marker("stop");
        let beat = s.base.join("beat");
        let mut launcher = launch(&s, ns, &m, "sleep 100", &beat);
        let deadline = Instant::now() + Duration::from_secs(10);
        while size(&beat) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: kill takes integers; the launcher is this test's child.
        unsafe { libc::kill(launcher.id() as i32, libc::SIGTSTP) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while state(launcher.id()) != Some('T') && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let stopped_launcher = state(launcher.id()) == Some('T');
        launcher.kill().unwrap();
        launcher.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut alive = live_with(&m);
        while !alive.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            alive = live_with(&m);
        }
        let stopped = stops_growing(&beat, Duration::from_secs(5));
        if !stopped || !alive.is_empty() {
            clean_up(&m);
        }
        assert!(
            stopped_launcher,
            "{ns:?}: the launcher did not stop on SIGTSTP"
        );
        assert!(
            stopped,
            "{ns:?}: the hopper outlived SIGKILL of the stopped launcher"
        );
        assert!(
            alive.is_empty(),
            "{ns:?}: alive after SIGKILL of the stopped launcher: {alive:?}"
        );
        assert_bystander_alive(&mut by, "stopped launcher killed");
    }
    let _ = by.kill();
    let _ = by.wait();
}

/// A uid no other test runs processes as (Debian's `irc`): should this test ever fail, an
/// unscoped `kill(-1)` would reach that uid's processes only.
const OTHER_UID: u32 = 39;

/// Without Landlock (outer filter: `landlock_*` → ENOSYS, run with
/// `--dangerously-allow-weaker-sandbox`) there is no signal scope, and `kill(-1)` would reach
/// every process of the uid: the init must not use it. The bystander of the same uid survives
/// (control: that uid may signal it), and the command's child still dies (the `/proc` sweep).
#[test]
fn without_the_signal_scope_the_init_never_kills_outside_processes() {
    let s = scratch();
    chown(&s.ws, Some(OTHER_UID), Some(OTHER_UID)).unwrap();
    let mut by = Command::new("sleep")
        .arg("120")
        .uid(OTHER_UID)
        .gid(OTHER_UID)
        .spawn()
        .unwrap();
    let st = Command::new("sh")
        .args(["-c", &format!("kill -0 {}", by.id())])
        .uid(OTHER_UID)
        .gid(OTHER_UID)
        .status()
        .unwrap();
    assert!(st.success(), "control: the uid may signal its bystander");
    let m = marker("noscope");
    let script = format!("python3 -c 'import time; time.sleep(30)' {m} & sleep 0.3; exit 4");
    let mut launcher = Command::new(PROBE)
        .args([
            "outer-deny",
            "landlock",
            "--",
            PROBE,
            "outer-deny",
            "userns",
            "--",
        ])
        .arg(helper())
        .arg("--sandbox-policy-cwd")
        .arg(&s.ws)
        .arg("--sandbox-policy")
        .arg(r#"{"mode":"read-only"}"#)
        .arg("--dangerously-allow-weaker-sandbox")
        .args(["--", "sh", "-c", &script])
        .current_dir(&s.ws)
        .env("PWD", &s.ws)
        .uid(OTHER_UID)
        .gid(OTHER_UID)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(s.base.join("stderr")).unwrap())
        .spawn()
        .unwrap();
    let status = wait_timeout(&mut launcher, Duration::from_secs(10));
    if status.is_none() {
        let _ = launcher.kill();
        let _ = launcher.wait();
    }
    let stderr = std::fs::read_to_string(s.base.join("stderr")).unwrap_or_default();
    let alive = live_with(&m);
    clean_up(&m);
    let by_alive = by.try_wait().unwrap().is_none();
    let _ = by.kill();
    let _ = by.wait();
    assert!(
        stderr.contains("landlock NOT applied") || stderr.contains("landlock not enforced"),
        "Landlock must be off for this test: {stderr}"
    );
    assert_eq!(status.and_then(|s| s.code()), Some(4), "{stderr}");
    assert!(
        by_alive,
        "an outside process of the same uid was killed: kill(-1) without a signal scope"
    );
    assert!(alive.is_empty(), "the command's child survived: {alive:?}");
}
