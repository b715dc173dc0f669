//! The outside review's escapes (issue 12, items 2, 4, 5 and 6), each run from the attacker's
//! position (the sandboxed command), with and without namespaces (the probe's `outer-deny
//! userns` filter refuses every namespace flag, as Docker's default profile does), each paired
//! with a control that succeeds outside the sandbox.
//!
//! Needs `setfacl` (Debian `acl`), `chattr` (Debian `e2fsprogs`) and `script` (Debian `bsdutils`); a missing tool fails the
//! test, it never skips.

// Test code: a failed set-up step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use suite_test_support::bins::sandbox_helper as helper;
const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-linux-probe");
const NOBODY: u32 = 65534;

const EPERM: &str = "errno 1";
const ENOENT: &str = "errno 2";
const EACCES: &str = "errno 13";
const EROFS: &str = "errno 30";
/// Setting an extended attribute: "not supported", as on a filesystem without them (so that
/// `cp -p` falls back to the plain mode; `meta_guard`).
const EOPNOTSUPP: &str = "errno 95";

const READ_ONLY: &str = r#"{"mode":"read-only"}"#;
const WS_WRITE: &str = r#"{"mode":"workspace-write"}"#;

/// `ws` (the cwd), `home` with `.bashrc` and a deny-read key, all owned by nobody.
struct Env {
    _dir: tempfile::TempDir,
    ws: PathBuf,
    home: PathBuf,
}

impl Env {
    fn new() -> Env {
        let (dir, base) = suite_test_support::dirs::sandbox_scratch(
            "sbe-",
            Path::new(env!("CARGO_TARGET_TMPDIR")),
        );
        let ws = base.join("ws");
        let home = base.join("home");
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::write(home.join(".bashrc"), "# rc\n").unwrap();
        std::fs::write(home.join(".ssh/id_ed25519"), "PRIVATE KEY").unwrap();
        std::fs::write(ws.join("mine"), "mine").unwrap();
        for p in [&home.join(".bashrc"), &home.join(".ssh/id_ed25519")] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        for p in [
            &base,
            &ws,
            &ws.join("mine"),
            &home,
            &home.join(".ssh"),
            &home.join(".bashrc"),
            &home.join(".ssh/id_ed25519"),
        ] {
            chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        Env {
            _dir: dir,
            ws,
            home,
        }
    }

    fn bashrc(&self) -> PathBuf {
        self.home.join(".bashrc")
    }

    fn key(&self) -> PathBuf {
        self.home.join(".ssh/id_ed25519")
    }
}

/// With namespaces, or without them (outer filter; `dangerous` adds the flag).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ns {
    With,
    Without { dangerous: bool },
}

fn sandbox(env: &Env, policy: &str, ns: Ns, cmd: &[&str]) -> Command {
    sandbox_with(env, policy, ns, false, cmd)
}

/// [`sandbox`], with the name guard off (`--allow-git-writes`) when `guard_off`.
fn sandbox_with(env: &Env, policy: &str, ns: Ns, guard_off: bool, cmd: &[&str]) -> Command {
    let mut c = match ns {
        Ns::With => Command::new(helper()),
        Ns::Without { .. } => {
            let mut c = Command::new(PROBE);
            c.args(["outer-deny", "userns", "--", &helper()]);
            c
        }
    };
    c.arg("--sandbox-policy-cwd")
        .arg(&env.ws)
        .arg("--sandbox-policy")
        .arg(policy);
    if ns == (Ns::Without { dangerous: true }) {
        c.arg("--dangerously-allow-weaker-sandbox");
    }
    if guard_off {
        c.arg("--allow-git-writes");
    }
    c.arg("--").args(cmd);
    c.current_dir(&env.ws)
        .env("PWD", &env.ws)
        .env("HOME", &env.home)
        .env_remove("TMPDIR")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null());
    c
}

fn output(mut c: Command) -> Output {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

/// The probe's one-line answer inside the sandbox (exit 0 required).
fn probe_in(env: &Env, policy: &str, ns: Ns, args: &[&str]) -> String {
    let mut cmd = vec![PROBE];
    cmd.extend_from_slice(args);
    let out = output(sandbox(env, policy, ns, &cmd));
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "probe {args:?} ({ns:?}): stdout {stdout:?}, stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The probe outside any sandbox (the control), as nobody.
fn probe_out(args: &[&str]) -> String {
    let out = Command::new(PROBE)
        .args(args)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// mode, mtime, access ACL of `p`.
fn meta(p: &Path) -> (u32, i64, String) {
    let m = std::fs::metadata(p).unwrap();
    let acl = Command::new("getfacl")
        .args(["-cp"])
        .arg(p)
        .output()
        .expect("getfacl (Debian acl) is needed");
    (
        m.mode() & 0o7777,
        m.mtime(),
        String::from_utf8_lossy(&acl.stdout).to_string(),
    )
}

/// chmod, utime, a user xattr and `setfacl` on `target` inside the sandbox: each answer.
fn metadata_attacks(env: &Env, policy: &str, ns: Ns, target: &Path) -> Vec<String> {
    let t = s(target);
    let mut answers = vec![
        probe_in(env, policy, ns, &["chmod", &t, "0644"]),
        probe_in(env, policy, ns, &["utime", &t]),
        probe_in(env, policy, ns, &["setxattr", &t, "user.codex", "x"]),
    ];
    let out = output(sandbox(
        env,
        policy,
        ns,
        &[
            "sh",
            "-c",
            &format!("setfacl -m u:{NOBODY}:rw {t} 2>&1; echo rc=$?"),
        ],
    ));
    answers.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    // second review round F6: the inode-flag ioctls (chattr) were open without namespaces
    let out = output(sandbox(
        env,
        policy,
        ns,
        &["sh", "-c", &format!("chattr +d {t} 2>&1; echo rc=$?")],
    ));
    answers.push(String::from_utf8_lossy(&out.stdout).trim().to_string());
    answers
}

#[test]
fn metadata_outside_the_roots_and_of_deny_read_files_cannot_change() {
    let e = Env::new();
    let before = [meta(&e.bashrc()), meta(&e.key())];
    // with namespaces: read-only mounts, in both policies
    for policy in [READ_ONLY, WS_WRITE] {
        for target in [e.bashrc(), e.key()] {
            let a = metadata_attacks(&e, policy, Ns::With, &target);
            // extended attributes are refused before the mount is asked (`seccomp::MODES`)
            assert_eq!(&a[..3], &[EROFS, EROFS, EOPNOTSUPP], "{policy} {target:?}");
            assert!(
                a[3].contains("Operation not supported") && a[3].ends_with("rc=1"),
                "setfacl {policy} {target:?}: {}",
                a[3]
            );
            // chattr opens the file first: a deny-read file already fails there (EACCES)
            let want = if target == e.key() {
                "Permission denied"
            } else {
                "Read-only file system"
            };
            assert!(
                a[4].contains(want) && a[4].ends_with("rc=1"),
                "chattr {policy} {target:?}: {}",
                a[4]
            );
        }
    }
    // without namespaces, read-only: the calls are denied by seccomp
    for target in [e.bashrc(), e.key()] {
        let a = metadata_attacks(&e, READ_ONLY, Ns::Without { dangerous: false }, &target);
        assert_eq!(&a[..3], &[EPERM, EPERM, EOPNOTSUPP], "{target:?}");
        assert!(
            a[3].contains("Operation not supported") && a[3].ends_with("rc=1"),
            "{}",
            a[3]
        );
        let want = if target == e.key() {
            "Permission denied"
        } else {
            "Operation not permitted"
        };
        assert!(
            a[4].contains(want) && a[4].ends_with("rc=1"),
            "chattr without namespaces {target:?}: {}",
            a[4]
        );
    }
    assert_eq!(
        [meta(&e.bashrc()), meta(&e.key())],
        before,
        "mode, mtime or ACL changed"
    );
    // without namespaces, workspace-write cannot keep the guarantee: refused, naming it
    let out = output(sandbox(
        &e,
        WS_WRITE,
        Ns::Without { dangerous: false },
        &[PROBE, "chmod", &s(&e.bashrc()), "0644"],
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(201), "{err}");
    assert!(
        err.contains("chmod, chown, utime and xattrs/ACLs outside the writable roots")
            && err.contains("--dangerously-allow-weaker-sandbox"),
        "{err}"
    );
    assert_eq!(meta(&e.bashrc()), before[0]);
    // controls: inside the writable root chmod, utime and chattr work (with namespaces), and
    // outside the sandbox the same calls on the same files work. Extended attributes (ACLs
    // among them) are refused everywhere (`modes_that_open_the_users_files_
    // or_uid_to_others_are_refused`).
    let mine = e.ws.join("mine");
    let a = metadata_attacks(&e, WS_WRITE, Ns::With, &mine);
    assert_eq!(&a[..3], &["ok", "ok", EOPNOTSUPP]);
    assert!(
        a[3].contains("Operation not supported") && a[3].ends_with("rc=1"),
        "setfacl inside the root: {}",
        a[3]
    );
    assert_eq!(a[4], "rc=0", "chattr inside the root");
    assert_eq!(meta(&mine).0, 0o644, "no ACL mask in the group bits");
    for target in [e.bashrc(), e.key()] {
        let t = s(&target);
        assert_eq!(probe_out(&["chmod", &t, "0644"]), "ok");
        assert_eq!(probe_out(&["utime", &t]), "ok");
        assert_eq!(probe_out(&["setxattr", &t, "user.codex", "x"]), "ok");
        let st = Command::new("setfacl")
            .args(["-m", &format!("u:{NOBODY}:rw"), &t])
            .uid(NOBODY)
            .gid(NOBODY)
            .status()
            .unwrap();
        assert!(st.success(), "control setfacl outside");
        let st = Command::new("chattr")
            .args(["+d", &t])
            .uid(NOBODY)
            .gid(NOBODY)
            .status()
            .unwrap();
        assert!(st.success(), "control chattr outside");
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o777, 0o664);
    }
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn wait_for<F: Fn() -> bool>(f: F) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The reviewer's persistence loop, writing its pid first (so the control can be stopped by id).
fn persistence(tail: &str) -> String {
    format!(
        "( setsid sh -c 'echo $$ > loop.pid; while :; do date >> persist.log; sleep 0.1; done' & ){tail}"
    )
}

/// `true` when `log` grows within 1 s.
fn grows(log: &Path) -> bool {
    let a = size(log);
    std::thread::sleep(Duration::from_millis(1000));
    size(log) > a
}

#[test]
fn a_setsid_loop_dies_with_the_command_and_with_a_killed_launcher() {
    for ns in [Ns::With, Ns::Without { dangerous: true }] {
        let e = Env::new();
        let log = e.ws.join("persist.log");
        // the command returns once the loop it detached has written; it must not write again
        let out = output(sandbox(
            &e,
            WS_WRITE,
            ns,
            &["sh", "-c", &persistence("; sleep 0.5")],
        ));
        assert_eq!(out.status.code(), Some(0), "{ns:?}");
        assert!(size(&log) > 0, "{ns:?}: the loop never ran");
        assert!(!grows(&log), "{ns:?}: the loop survived the command");
        // SIGKILL of the launcher while the command still runs
        std::fs::remove_file(&log).ok();
        let mut launcher = sandbox(&e, WS_WRITE, ns, &["sh", "-c", &persistence("; sleep 100")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(wait_for(|| size(&log) > 0), "{ns:?}: loop never started");
        launcher.kill().unwrap();
        launcher.wait().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !grows(&log),
            "{ns:?}: the loop survived SIGKILL of the launcher"
        );
    }
    // control: the same command outside keeps writing after it returned
    let e = Env::new();
    let log = e.ws.join("persist.log");
    let st = Command::new("sh")
        .args(["-c", &persistence("")])
        .current_dir(&e.ws)
        .env("PWD", &e.ws)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(wait_for(|| e.ws.join("loop.pid").exists()));
    let grew = grows(&log);
    let pid: i32 = std::fs::read_to_string(e.ws.join("loop.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill takes integers; `pid` is the control loop this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(
        grew,
        "control: the detached loop keeps writing outside the sandbox"
    );
}

/// Under `script` (a pty as the user's terminal): run `inner`, print DONE when it returned,
/// then type SECRET and give a detached reader 1 s. Returns what the reader captured.
fn keystrokes_after_return(e: &Env, inner: &str) -> String {
    let captured = e.ws.join("captured");
    let shell = format!("{inner}; echo DONE; sleep 1.5");
    let mut script = Command::new("script")
        .args(["-qfec", &shell, "/dev/null"])
        .current_dir(&e.ws)
        .env("PWD", &e.ws)
        .env("HOME", &e.home)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script(1) (Debian bsdutils) is needed");
    let mut stdin = script.stdin.take().unwrap();
    let mut lines = BufReader::new(script.stdout.take().unwrap()).lines();
    let done = lines.any(|l| l.map(|l| l.contains("DONE")).unwrap_or(false));
    assert!(done, "the shell under script never printed DONE");
    // the launcher has returned: the user types a password
    stdin.write_all(b"SECRET\n").unwrap();
    stdin.flush().unwrap();
    drop(lines);
    script.wait().unwrap();
    std::fs::read_to_string(captured).unwrap_or_default()
}

/// A setsid child that keeps the terminal (its stdin) and copies what is typed later.
/// (A non-interactive shell gives background jobs /dev/null as stdin: keep the terminal on fd 3.)
const CAPTURE: &str =
    "echo > started; exec 3<&0; ( setsid sh -c 'sleep 0.3; exec cat <&3 > captured' & )";

#[test]
fn no_process_of_the_sandbox_reads_the_terminal_after_the_launcher_returned() {
    for ns in [Ns::With, Ns::Without { dangerous: true }] {
        let e = Env::new();
        let mut cmd = format!("{} --sandbox-policy-cwd {} ", helper(), e.ws.display());
        cmd.push_str(&format!("--sandbox-policy '{WS_WRITE}' "));
        if ns != Ns::With {
            cmd = format!("{PROBE} outer-deny userns -- {cmd} --dangerously-allow-weaker-sandbox ");
        }
        cmd.push_str(&format!("-- sh -c \"{CAPTURE}\" 2>/dev/null"));
        let got = keystrokes_after_return(&e, &cmd);
        assert!(
            e.ws.join("started").exists(),
            "{ns:?}: the command never ran"
        );
        assert!(!got.contains("SECRET"), "{ns:?}: captured {got:?}");
    }
    // control: the same command outside captures what is typed after it returned
    let e = Env::new();
    let got = keystrokes_after_return(&e, &format!("sh -c \"{CAPTURE}\""));
    assert!(got.contains("SECRET"), "control captured {got:?}");
}

/// `openpty` outside: the master (kept open) and the slave's path.
fn other_pty() -> (std::fs::File, String) {
    let mut master = 0;
    let mut slave = 0;
    // SAFETY: master/slave are live c_ints; name, termios and winsize may be NULL.
    let ret = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(ret, 0, "openpty: {}", std::io::Error::last_os_error());
    let path = std::fs::read_link(format!("/proc/self/fd/{slave}")).unwrap();
    // the victim's terminal belongs to the attacker's uid (same user, another terminal)
    chown(&path, Some(NOBODY), None).unwrap();
    // SAFETY: `slave` was returned by openpty and is not used again.
    unsafe { libc::close(slave) };
    // SAFETY: `master` was returned by openpty and is owned by the File from here on.
    let f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(master) };
    (f, s(&path))
}

#[test]
fn other_terminals_and_devices_cannot_be_opened() {
    let e = Env::new();
    let (_master, pts) = other_pty();
    // POSIX shared memory of a process outside (a file in /dev/shm)
    let shm = format!("/dev/shm/sbe-{}", std::process::id());
    std::fs::write(&shm, "shared").unwrap();
    chown(&shm, Some(NOBODY), Some(NOBODY)).unwrap();
    let denied = [pts.as_str(), "/dev/ptmx", "/dev/tty", shm.as_str()];
    for ns in [Ns::With, Ns::Without { dangerous: false }] {
        for dev in denied {
            assert_eq!(
                probe_in(&e, READ_ONLY, ns, &["open-noctty", dev]),
                EACCES,
                "{ns:?} {dev}"
            );
        }
        for dev in [
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/urandom",
            "/dev/random",
        ] {
            assert_eq!(
                probe_in(&e, READ_ONLY, ns, &["open-noctty", dev]),
                "ok",
                "{ns:?} {dev}"
            );
        }
    }
    // controls: outside, the same uid opens the other terminal, a new pty and the shm file
    assert_eq!(probe_out(&["open-noctty", &pts]), "ok");
    assert_eq!(probe_out(&["open-noctty", "/dev/ptmx"]), "ok");
    assert_eq!(probe_out(&["open-noctty", &shm]), "ok");
    std::fs::remove_file(&shm).unwrap();
}

/// Outside review r98 F1: a watch needs no open and Landlock does not mediate it; from the
/// sandbox, `inotify_add_watch` on another terminal reported each key typed there, and on a
/// deny-read key (or the directory holding it) each use of it outside. Refused (`EACCES`) in
/// both modes, fanotify refused (`EPERM`); watches in the workspace still report their events
/// (the supervisor adds them to the command's own instance); outside, the same uid watches all
/// of them (the controls). dnotify (`fcntl(F_NOTIFY)`, outside review r100 F1) is refused
/// everywhere.
#[test]
fn watches_on_other_terminals_and_deny_read_paths_are_refused() {
    let e = Env::new();
    let (_master, pts) = other_pty();
    let key = s(&e.key());
    let ssh = s(&e.home.join(".ssh"));
    let home = s(&e.home);
    // (and procfs, where nothing is to be watched and, without a pid namespace, `self` would
    // be the supervisor: r100 F4)
    let refused = [
        "/proc/uptime",
        pts.as_str(),
        "/dev/pts",
        "/dev",
        key.as_str(),
        ssh.as_str(),
        home.as_str(),
    ];
    for ns in [
        Ns::With,
        Ns::Without { dangerous: false },
        Ns::Without { dangerous: true },
    ] {
        for path in refused {
            assert_eq!(
                probe_in(&e, READ_ONLY, ns, &["watch", path]),
                EACCES,
                "{ns:?} {path}"
            );
        }
        assert_eq!(probe_in(&e, READ_ONLY, ns, &["fanotify"]), EPERM, "{ns:?}");
        // r100 F1: dnotify, which needs only a directory the command may list
        for dir in [home.as_str(), ssh.as_str(), &s(&e.ws)] {
            let got = probe_in(&e, READ_ONLY, ns, &["dnotify", dir]);
            assert!(got == EPERM || got == EACCES, "{ns:?} {dir}: {got}");
        }
        assert_eq!(
            probe_in(&e, READ_ONLY, ns, &["dnotify", &home]),
            EPERM,
            "{ns:?}"
        );
        // controls inside: a readable file outside the roots, and the workspace, whose watch
        // reports a file created in it
        assert_eq!(
            probe_in(&e, READ_ONLY, ns, &["watch", &s(&e.bashrc())]),
            "ok",
            "{ns:?}"
        );
        // (a writable root without namespaces only with the flag)
        if ns != (Ns::Without { dangerous: false }) {
            assert_eq!(
                probe_in(&e, WS_WRITE, ns, &["watch-create", &s(&e.ws)]),
                "event",
                "{ns:?}"
            );
            std::fs::remove_file(e.ws.join("probe-watched")).unwrap();
        }
    }
    // controls outside: the same uid watches the terminal and the key
    for path in [
        pts.as_str(),
        key.as_str(),
        ssh.as_str(),
        home.as_str(),
        "/proc/uptime",
    ] {
        assert_eq!(probe_out(&["watch", path]), "ok", "{path}");
    }
    assert_eq!(probe_out(&["fanotify"]), "ok");
    assert_eq!(probe_out(&["dnotify", &home]), "ok");
    assert_eq!(probe_out(&["dnotify", &ssh]), "ok");
}

/// A SysV segment created outside, one byte set; removed on drop.
struct Segment {
    id: i32,
    key: i32,
}

impl Segment {
    fn new() -> Segment {
        let key = 0x5b1c_0000 | (std::process::id() as i32 & 0xffff);
        // SAFETY: shmget takes integers only.
        let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o666) };
        assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
        // SAFETY: attach the segment just created at an address of the kernel's choice.
        let addr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
        assert_ne!(addr as isize, -1);
        // SAFETY: the segment is 4096 bytes, mapped writable at `addr` until shmdt.
        unsafe {
            *(addr as *mut u8) = 42;
            libc::shmdt(addr);
        }
        Segment { id, key }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: removing the segment this test created; no memory is passed.
        unsafe { libc::shmctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

#[test]
fn sysv_shared_memory_outside_is_unreachable() {
    let e = Env::new();
    let seg = Segment::new();
    let key = seg.key.to_string();
    // with an IPC namespace the key does not exist; without one the calls are denied
    assert_eq!(
        probe_in(&e, READ_ONLY, Ns::With, &["shm-read", &key]),
        ENOENT
    );
    assert_eq!(
        probe_in(
            &e,
            READ_ONLY,
            Ns::Without { dangerous: false },
            &["shm-read", &key]
        ),
        EPERM
    );
    // control: outside, the same uid reads the byte
    assert_eq!(probe_out(&["shm-read", &key]), "ok 42");
}

/// Round-5 review F1: without a pid namespace the command shared its init's Landlock domain, so
/// `kill -STOP $PPID` froze the init (the launcher then hung, and once killed the whole tree
/// survived it). The command now runs in a nested domain: it cannot signal the init; signals
/// to its own children still work (the control).
#[test]
fn the_command_cannot_stop_its_init_without_a_pid_namespace() {
    let env = Env::new();
    for ns in [Ns::Without { dangerous: true }, Ns::With] {
        let out_file = env.ws.join("stop.out");
        let script = format!(
            "kill -STOP $PPID 2>/dev/null; echo stop=$? > {o}; sleep 5 & kill -STOP $!; echo own=$? >> {o}; kill -KILL $!",
            o = out_file.display()
        );
        let child = sandbox(
            &env,
            r#"{"mode":"workspace-write"}"#,
            ns,
            &["sh", "-c", &script],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        // the launcher must return with the command (a stopped init would hang it)
        let child = std::cell::RefCell::new(child);
        let returned = wait_for(|| matches!(child.borrow_mut().try_wait(), Ok(Some(_))));
        let mut child = child.into_inner();
        if !returned {
            let _ = child.kill();
        }
        let _ = child.wait();
        let text = std::fs::read_to_string(&out_file).unwrap_or_default();
        assert!(returned, "{ns:?}: the launcher hung: {text}");
        assert!(text.contains("stop=1"), "{ns:?}: {text}");
        assert!(text.contains("own=0"), "{ns:?}: control: {text}");
    }
}

/// Round-5 review F8: without a pid namespace, `prlimit --cpu=1` on an outside process of the
/// same uid killed it; renice and affinity changed it. Denied now (EPERM); the control runs the
/// same commands outside the sandbox.
#[test]
fn outside_processes_cannot_be_reprioritised_or_limited_without_a_pid_namespace() {
    let env = Env::new();
    let mut victim = Command::new("sleep")
        .arg("60")
        .uid(NOBODY)
        .gid(NOBODY)
        .spawn()
        .unwrap();
    let pid = victim.id().to_string();
    let script = format!(
        "prlimit --pid {pid} --nofile=5:5 2>&1; echo prlimit=$?; renice -n 5 -p {pid} >/dev/null 2>&1; echo renice=$?; taskset -p 1 {pid} >/dev/null 2>&1; echo taskset=$?; prlimit --nofile=100:100 true; echo own=$?; python3 -c 'import os; os.setpriority(os.PRIO_USER, 0, 19)' 2>/dev/null; echo prio_user=$?; python3 -c 'import os; os.setpriority(os.PRIO_PROCESS, 0, 1)'; echo prio_own=$?"
    );
    let ro = r#"{"mode":"read-only"}"#;
    let out = output(sandbox(
        &env,
        ro,
        Ns::Without { dangerous: false },
        &["sh", "-c", &script],
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    // round-8 review F3: `setpriority(PRIO_USER, 0)` reniced every process of the user
    for want in [
        "prlimit=1",
        "renice=1",
        "taskset=1",
        "own=0",
        "prio_user=1",
        "prio_own=0",
    ] {
        assert!(text.contains(want), "{want}: {out:?}");
    }
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    assert!(!limits.contains("Max open files            5"), "{limits}");
    // control: outside the sandbox the same uid changes it
    let out = Command::new("sh")
        .args(["-c", &script])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("prlimit=0") && text.contains("renice=0"),
        "{out:?}"
    );
    let _ = victim.kill();
    let _ = victim.wait();
}

/// Round-8 F4 and what closing it found: a setuid or setgid file, or one writable by other users, made inside a
/// writable root hands the user's uid, group or files to every local user who can reach it
/// (`/tmp` is a default root). `chmod` with those bits is refused, a creation mode with
/// `S_ISUID`/`S_ISGID` is refused, `S_IWOTH` is cleared from what the name guard creates, and
/// ACLs cannot be set; with and without namespaces. Controls: ordinary modes work in the
/// sandbox, and the same calls work outside it.
#[test]
fn modes_that_open_the_users_files_or_uid_to_others_are_refused() {
    let e = Env::new();
    let victim = e.ws.join("tool");
    std::fs::copy(PROBE, &victim).unwrap();
    chown(&victim, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).unwrap();
    let t = s(&victim);
    let mode_of = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
    for ns in [Ns::With, Ns::Without { dangerous: true }] {
        for bad in ["4755", "2755", "6755", "0757", "0777", "0666"] {
            assert_eq!(
                probe_in(&e, WS_WRITE, ns, &["chmod", &t, bad]),
                EPERM,
                "chmod {bad} ({ns:?})"
            );
            assert_eq!(
                mode_of(&victim),
                0o755,
                "chmod {bad} changed the mode ({ns:?})"
            );
        }
        // control in the sandbox: ordinary modes
        assert_eq!(probe_in(&e, WS_WRITE, ns, &["chmod", &t, "0700"]), "ok");
        assert_eq!(probe_in(&e, WS_WRITE, ns, &["chmod", &t, "0775"]), "ok");
        assert_eq!(mode_of(&victim), 0o775);
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o755)).unwrap();
        // creation with setuid/setgid: refused by every creating call, guard on or off
        for guard_off in [false, true] {
            for kind in ["open", "openat", "creat", "mknod"] {
                for bad in ["4755", "2755"] {
                    let name = format!("c-{kind}-{bad}-{guard_off}-{}", ns == Ns::With);
                    let args = [PROBE, "create", kind, &name, bad, "022"];
                    let out = output(sandbox_with(&e, WS_WRITE, ns, guard_off, &args));
                    let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    assert_eq!(got, EPERM, "{kind} {bad} guard_off={guard_off} ({ns:?})");
                    assert!(!e.ws.join(&name).exists(), "{name} was created");
                }
            }
        }
        // umask 0 with the usual 0666/0777: the guard clears S_IWOTH (as a umask would)
        let tag = if ns == Ns::With { "ns" } else { "nons" };
        for (kind, mode, want) in [
            ("open", "0666", 0o664),
            ("creat", "0666", 0o664),
            ("mkdir", "0777", 0o775),
            ("mkfifo", "0666", 0o664),
            ("mknod", "0666", 0o664),
        ] {
            let name = format!("u-{kind}-{tag}");
            let got = probe_in(&e, WS_WRITE, ns, &["create", kind, &name, mode, "000"]);
            assert_eq!(
                got,
                format!("mode {want:04o}"),
                "{kind} {mode} umask 0 ({ns:?})"
            );
        }
        // ACLs: refused
        let out = output(sandbox(
            &e,
            WS_WRITE,
            ns,
            &[
                "sh",
                "-c",
                &format!("setfacl -m u:0:rw {t} 2>&1; echo rc=$?"),
            ],
        ));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("Operation not supported") && said.trim_end().ends_with("rc=1"),
            "setfacl ({ns:?}): {said}"
        );
    }
    // controls outside the sandbox, as the same user: every refused call works
    for bad in ["4755", "2755", "0777"] {
        assert_eq!(probe_out(&["chmod", &t, bad]), "ok", "control chmod {bad}");
    }
    assert_eq!(mode_of(&victim), 0o777);
    let ctl = e.ws.join("ctl-open");
    assert_eq!(
        probe_out(&["create", "open", &s(&ctl), "4777", "000"]),
        "mode 4777",
        "control: a setuid, world-writable creation outside"
    );
    let st = Command::new("setfacl")
        .args(["-m", "u:0:rw", &t])
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .unwrap();
    assert!(st.success(), "control setfacl outside");
}

/// The state letter of `/proc/<pid>/stat`.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// A launcher a test started, killed on every exit path (a stopped one never ends by itself).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        signal(self.0, libc::SIGKILL);
    }
}

/// `kill(pid, sig)` for a process the test started.
fn signal(pid: u32, sig: i32) {
    // SAFETY: kill takes integers and touches no memory of ours.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Ctrl-Z: `SIGTSTP` to the launcher `pid`, then waits until it is stopped.
fn ctrl_z(pid: u32, ns: Ns) {
    signal(pid, libc::SIGTSTP);
    assert!(
        wait_for(|| proc_state(pid) == Some('T')),
        "{ns:?}: the launcher did not stop"
    );
}

/// Outside review r32 F7: after Ctrl-Z the launcher's `/proc` sweep lost to a pid-hopping loop
/// (298 ticks in 3 s while the job looked stopped: a process with the user's terminal). The
/// init now stops the sandbox with one `kill(-1, SIGSTOP)`, and continues it on `SIGCONT`.
/// Control: it ticks before the stop and again after `SIGCONT`.
#[test]
fn ctrl_z_freezes_a_pid_hopping_loop() {
    for ns in [Ns::With, Ns::Without { dangerous: true }] {
        let e = Env::new();
        let ticks = e.ws.join("ticks");
        // the command itself stays (a hopper's first parent exits at once, which would end
        // the run); the probe's `hop` forks without pause and ticks every 10 ms
        let script = format!("{PROBE} hop ticks & sleep 60");
        let mut c = sandbox(&e, WS_WRITE, ns, &["sh", "-c", &script]);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut launcher = c.spawn().unwrap();
        let pid = launcher.id();
        let _guard = KillOnDrop(pid);
        assert!(wait_for(|| size(&ticks) > 0), "{ns:?}: never ticked");
        ctrl_z(pid, ns);
        let t0 = size(&ticks);
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(
            size(&ticks),
            t0,
            "{ns:?}: the hopping loop ran while stopped"
        );
        signal(pid, libc::SIGCONT);
        assert!(wait_for(|| size(&ticks) > t0), "{ns:?}: did not continue");
        launcher.kill().unwrap();
        launcher.wait().unwrap();
    }
}

/// A ticker and a detached reader of the command's stdin (which stands for the terminal: a
/// non-interactive shell gives background jobs /dev/null, so the reader takes fd 3).
const FREEZE_CMD: &str = "exec 3<&0; ( setsid sh -c 'exec cat <&3 >> captured' & ); \
     while :; do echo t >> ticks; sleep 0.02; done";

/// Fifth review round F10: after Ctrl-Z (the terminal sends `SIGTSTP` to the launcher's process
/// group) the command, in its own session, kept running and reading the terminal the user then
/// typed into. Now every process of the sandbox stops before the launcher does, and `SIGCONT`
/// continues them. Control: outside, a setsid'd process keeps running when its job is stopped.
#[test]
fn ctrl_z_freezes_every_process_of_the_sandbox_until_it_continues() {
    for ns in [Ns::With, Ns::Without { dangerous: true }] {
        let e = Env::new();
        let ticks = e.ws.join("ticks");
        let captured = e.ws.join("captured");
        let mut c = sandbox(&e, WS_WRITE, ns, &["sh", "-c", FREEZE_CMD]);
        c.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut launcher = c.spawn().unwrap();
        let pid = launcher.id();
        let mut stdin = launcher.stdin.take().unwrap();
        let _guard = KillOnDrop(pid);
        assert!(wait_for(|| size(&ticks) > 0), "{ns:?}: never ticked");
        stdin.write_all(b"before\n").unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        assert!(
            wait_for(|| read(&captured).contains("before")),
            "{ns:?}: the reader never read"
        );
        // Ctrl-Z
        ctrl_z(pid, ns);
        // the user types into the shell now
        stdin.write_all(b"SECRET\n").unwrap();
        let t0 = size(&ticks);
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(size(&ticks), t0, "{ns:?}: the sandbox ran while stopped");
        assert!(
            !read(&captured).contains("SECRET"),
            "{ns:?}: read while stopped"
        );
        // fg
        signal(pid, libc::SIGCONT);
        assert!(wait_for(|| size(&ticks) > t0), "{ns:?}: did not continue");
        assert!(
            wait_for(|| read(&captured).contains("SECRET")),
            "{ns:?}: the reader did not continue"
        );
        launcher.kill().unwrap();
        launcher.wait().unwrap();
    }
    // control: a job whose setsid'd child is not frozen by SIGTSTP
    let e = Env::new();
    let ticks = e.ws.join("ticks");
    let mut job = Command::new("sh")
        .args([
            "-c",
            "( setsid sh -c 'echo $$ > ticker.pid; while :; do echo t >> ticks; sleep 0.02; done' & ); sleep 100",
        ])
        .current_dir(&e.ws).env("PWD", &e.ws)
        .spawn()
        .unwrap();
    // whatever happens below, the ticker and the job are killed when the test ends
    struct KillAll(std::path::PathBuf, u32);
    impl Drop for KillAll {
        fn drop(&mut self) {
            if let Some(pid) = std::fs::read_to_string(&self.0)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                // SAFETY: kill takes integers; the ticker this test started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            // SAFETY: as above; the job this test started.
            unsafe { libc::kill(self.1 as i32, libc::SIGKILL) };
        }
    }
    let _cleanup = KillAll(e.ws.join("ticker.pid"), job.id());
    assert!(wait_for(|| size(&ticks) > 0));
    // SIGSTOP, not SIGTSTP: when the test runs in an orphaned process group (CI started in the
    // background) the kernel discards a SIGTSTP whose action is the default, and the job would
    // not stop at all; the launcher above catches SIGTSTP, so it is not affected
    // SAFETY: kill takes integers; the job this test started.
    unsafe { libc::kill(job.id() as i32, libc::SIGSTOP) };
    assert!(wait_for(|| proc_state(job.id()) == Some('T')));
    let grew = grows(&ticks);
    let ticker: i32 = std::fs::read_to_string(e.ws.join("ticker.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill takes integers; processes this test started.
    unsafe {
        libc::kill(ticker, libc::SIGKILL);
        libc::kill(job.id() as i32, libc::SIGKILL);
    }
    job.wait().unwrap();
    assert!(
        grew,
        "control: the setsid'd ticker ran on while its job was stopped"
    );
}

/// Listens on an abstract name, on nothing (the kernel refuses: `EINVAL`), and on `srv.sock`: prints
/// `errno N` or `ok` for each.
const LISTEN_PY: &str = r#"import socket
def t(addr):
    s = socket.socket(socket.AF_UNIX)
    try:
        if addr is not None: s.bind(addr)
        s.listen(4); print('ok')
    except OSError as e: print('errno', e.errno)
t('\0codex-r10-abstract'); t(None); t('srv.sock')
"#;

/// `script` (python) inside the workspace-write sandbox, with and without namespaces, must print
/// `inside`; the same as nobody outside any sandbox (the control) must print `outside`.
fn python_inside_and_out(script: &str, inside: &str, outside: &str) {
    for ns in [Ns::With, Ns::Without { dangerous: true }] {
        let e = Env::new();
        let out = output(sandbox(&e, WS_WRITE, ns, &["python3", "-c", script]));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            inside,
            "{ns:?}: {out:?}"
        );
    }
    let e = Env::new();
    let out = Command::new("python3")
        .args(["-c", script])
        .current_dir(&e.ws)
        .env("PWD", &e.ws)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        outside,
        "control outside: {out:?}"
    );
}

/// Outside review r10 F-S3: a command bound and listened on an abstract unix name, and clients
/// outside (any uid) connected in: a fake X server (`@/tmp/.X11-unix/X77`) received the user's
/// X cookie from `xdpyinfo`, and another local user read files through `@exfil`. Abstract
/// names (autobound ones too) are refused; a socket bound to
/// a path in the workspace still listens. Control: outside, the abstract listen works.
#[test]
fn the_command_cannot_listen_on_an_abstract_unix_name() {
    python_inside_and_out(LISTEN_PY, "errno 13\nerrno 22\nok\n", "ok\nerrno 22\nok\n");
}

/// Binds and listens with umask 0 (relative and absolute path), then with umask 022: prints
/// `errno N` or `ok` for each.
const UMASK_LISTEN_PY: &str = r#"import socket, os, sys
def t(path, mask):
    os.umask(mask)
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(path); s.listen(4); print('ok', flush=True)
    except OSError as e: print('errno', e.errno, flush=True)
    return s
keep = [t('open.sock', 0), t(os.path.join(os.getcwd(), 'open2.sock'), 0), t('priv.sock', 0o22)]
"#;

/// Outside review r11 F5: `bind` with umask 0 left a socket file `srwxrwxrwx`; another local
/// user connected to it and read the user's files through it with the network off. A
/// path-bound socket whose file others may write cannot listen (`EACCES`); with an ordinary
/// umask it listens. Control: outside the sandbox the umask-0 socket listens.
#[test]
fn a_socket_file_others_may_write_cannot_listen() {
    python_inside_and_out(UMASK_LISTEN_PY, "errno 13\nerrno 13\nok\n", "ok\nok\nok\n");
}

/// Creates unix sockets of each type with `socket` and `socketpair`, then (as the reviewer did)
/// sends its stdin descriptor with SCM_RIGHTS to a datagram socket bound outside: prints
/// `errno N` or `ok` for each step.
const DGRAM_PY: &str = r#"import socket, os, array
def t(f):
    try: f(); print('ok', flush=True)
    except OSError as e: print('errno', e.errno, flush=True)
t(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC))
t(lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM))
t(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_RAW))
t(lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_RAW | socket.SOCK_CLOEXEC))
t(lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET))
t(lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM))
def send():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_RAW)
    fds = array.array('i', [0])
    s.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)], 0, SINK)
t(send)
"#;

/// Outside review r14 F4 (and r16 F1: the kernel makes an AF_UNIX `SOCK_RAW` a datagram socket,
/// and the refusal matched only `SOCK_DGRAM`): an unconnected datagram `sendmsg` names its destination per message
/// (never a `connect` the supervisor sees) and carries descriptors: the command handed another
/// user's socket the user's terminal and a writable workspace file. Unix datagram sockets are
/// refused (`socket` and `socketpair`); seqpacket and stream pairs keep working. Control:
/// outside, every step works (the sink, bound by root in /tmp, receives the descriptor).
#[test]
fn a_unix_datagram_socket_cannot_be_made_to_pass_descriptors_outside() {
    let dir = tempfile::Builder::new()
        .prefix("dgram-sink-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("sink");
    let sink = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    sink.set_nonblocking(true).unwrap();
    let script = format!("SINK = {:?}\n{DGRAM_PY}", path.to_str().unwrap());
    python_inside_and_out(
        &script,
        "errno 13\nerrno 13\nerrno 13\nerrno 13\nok\nok\nerrno 13\n",
        "ok\nok\nok\nok\nok\nok\nok\n",
    );
    let mut buf = [0u8; 8];
    assert_eq!(
        sink.recv(&mut buf).unwrap(),
        1,
        "the control's datagram arrived"
    );
    assert!(
        sink.recv(&mut buf).is_err(),
        "only the control's datagram arrived"
    );
}

/// `inner` under `script` (a terminal), then `stty -a` on the same terminal: what it prints.
fn tty_settings_after(e: &Env, inner: &str) -> String {
    std::fs::write(
        e.ws.join("nb.py"),
        "import fcntl, os, sys\nfl = fcntl.fcntl(0, fcntl.F_GETFL)\nif sys.argv[1:] == ['set']:\n    fcntl.fcntl(0, fcntl.F_SETFL, fl | os.O_NONBLOCK)\nelse:\n    print('nonblock' if fl & os.O_NONBLOCK else 'blocking')\n",
    )
    .unwrap();
    let shell = format!("{inner}; stty -a; python3 nb.py");
    let out = Command::new("script")
        .args(["-qfec", &shell, "/dev/null"])
        .current_dir(&e.ws)
        .env("PWD", &e.ws)
        .env("HOME", &e.home)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .expect("script(1) (Debian bsdutils) is needed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Outside review r14 F5: terminal settings the command changed outlived the sandbox
/// (`stty -echo -isig intr undef` left the user's terminal hiding what was typed and deaf to
/// Ctrl-C). The launcher puts the terminal's settings back when the command is done. Control:
/// the same `stty` outside leaves them changed.
#[test]
fn terminal_settings_the_command_changed_are_put_back() {
    // r16 F6: also the open terminal's status flags (O_NONBLOCK, shared with the shell).
    let changed = "stty -echo -isig intr undef 2>/dev/null; python3 nb.py set";
    let flags = |out: &str| {
        let words: Vec<&str> = out
            .split_whitespace()
            .map(|w| w.trim_end_matches(';'))
            .collect();
        (words.contains(&"-echo"), words.contains(&"-isig"))
    };
    for ns in [Ns::With, Ns::Without { dangerous: true }] {
        let e = Env::new();
        let mut cmd = format!("{} --sandbox-policy-cwd {} ", helper(), e.ws.display());
        cmd.push_str(&format!("--sandbox-policy '{WS_WRITE}' "));
        if ns != Ns::With {
            cmd = format!("{PROBE} outer-deny userns -- {cmd} --dangerously-allow-weaker-sandbox ");
        }
        cmd.push_str(&format!("-- sh -c '{changed}; echo > ran'"));
        let out = tty_settings_after(&e, &cmd);
        assert!(
            e.ws.join("ran").exists(),
            "{ns:?}: the command never ran: {out}"
        );
        assert_eq!(flags(&out), (false, false), "{ns:?}: {out}");
        assert!(
            out.contains("blocking") && !out.contains("nonblock"),
            "{ns:?}: {out}"
        );
    }
    let e = Env::new();
    let out = tty_settings_after(&e, changed);
    assert_eq!(flags(&out), (true, true), "control: {out}");
    assert!(out.contains("nonblock"), "control: {out}");
}

/// Binds and listens in `acl/` (a default ACL gives another user rwx), in `shared/` (a setgid
/// directory of the group `users`) with umask 002, and in the workspace with umask 002 (the
/// user's own private group): prints `errno N` or `ok` for each.
const ACL_LISTEN_PY: &str = r#"import socket, os
def t(path, mask):
    os.umask(mask)
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(path); s.listen(4); print('ok', flush=True)
    except OSError as e: print('errno', e.errno, flush=True)
    return s
keep = [t('acl/srv.sock', 0o22), t('shared/srv.sock', 0o02), t('own.sock', 0o02)]
"#;

/// Outside review r14 F3: the listen check looked only at `S_IWOTH`; a directory with a default
/// ACL granting another user rwx (`setfacl -d -m u:r14a:rwx`) gave the socket file that user's
/// access without the bit, and they read the user's files through it. A socket file with an ACL,
/// or group-writable for a group other than the user's private one, cannot listen; the user's
/// own group (umask 002 on a user-private-group system) still can. Control: outside, all three
/// listen.
#[test]
fn a_socket_file_an_acl_or_a_shared_group_opens_cannot_listen() {
    let prepare = |e: &Env| {
        let acl = e.ws.join("acl");
        let shared = e.ws.join("shared");
        std::fs::create_dir(&acl).unwrap();
        std::fs::create_dir(&shared).unwrap();
        chown(&acl, Some(NOBODY), Some(NOBODY)).unwrap();
        chown(&shared, Some(NOBODY), Some(100)).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o2775)).unwrap();
        let ok = Command::new("setfacl")
            .args(["-d", "-m", "u:4242:rwx"])
            .arg(&acl)
            .status()
            .expect("setfacl (Debian acl) is needed")
            .success();
        assert!(ok, "setfacl failed");
    };
    for ns in [Ns::With, Ns::Without { dangerous: true }] {
        let e = Env::new();
        prepare(&e);
        let out = output(sandbox(&e, WS_WRITE, ns, &["python3", "-c", ACL_LISTEN_PY]));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "errno 13\nerrno 13\nok\n",
            "{ns:?}: {out:?}"
        );
    }
    let e = Env::new();
    prepare(&e);
    let out = Command::new("python3")
        .args(["-c", ACL_LISTEN_PY])
        .current_dir(&e.ws)
        .env("PWD", &e.ws)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\nok\nok\n",
        "control outside: {out:?}"
    );
}

/// Binds and listens in `shared/` (setgid, group `users`) with umask 022, then makes the socket
/// group-writable, then group-readable only, then moves it to another group: `ok` or `errno N`.
const SOCKET_CHMOD_PY: &str = r#"import socket, os
os.umask(0o22)
s = socket.socket(socket.AF_UNIX)
s.bind('shared/srv.sock'); s.listen(4)
def t(f):
    try: f(); print('ok', flush=True)
    except OSError as e: print('errno', e.errno, flush=True)
t(lambda: os.chmod('shared/srv.sock', 0o770))
t(lambda: os.chmod('shared/srv.sock', 0o750))
t(lambda: os.chown('shared/srv.sock', -1, 100))
"#;

/// Outside review r16 F4: the socket-file check was made once, at `listen`: a socket bound in
/// another user's setgid directory listened with mode 0755, then `chmod 0770` gave that group
/// the socket. A socket file cannot gain group write for a group other than the user's private
/// one, nor change its group; other mode changes still work. Control: outside, all succeed.
#[test]
fn a_listening_socket_cannot_be_opened_to_a_shared_group_afterwards() {
    let prepare = |e: &Env| {
        let shared = e.ws.join("shared");
        std::fs::create_dir(&shared).unwrap();
        chown(&shared, Some(NOBODY), Some(100)).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o2775)).unwrap();
    };
    for ns in [Ns::With, Ns::Without { dangerous: true }] {
        let e = Env::new();
        prepare(&e);
        let out = output(sandbox(
            &e,
            WS_WRITE,
            ns,
            &["python3", "-c", SOCKET_CHMOD_PY],
        ));
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{ns:?}: {out:?}");
        assert!(lines[0].starts_with("errno"), "{ns:?}: {out:?}");
        assert_eq!(lines[1], "ok", "{ns:?}: {out:?}");
    }
    let e = Env::new();
    prepare(&e);
    // Outside, nobody may also move it to `users` only when a member: the first two suffice.
    let out = Command::new("python3")
        .args(["-c", SOCKET_CHMOD_PY])
        .current_dir(&e.ws)
        .env("PWD", &e.ws)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("ok\nok\n"), "control outside: {out:?}");
}

/// `FS_IOC_SETVERSION` on a file (the inode generation and its ctime), then
/// `fcntl(F_SET_RW_HINT)`, then ext4's own spelling of the first, `EXT4_IOC_SETVERSION`
/// (outside review r51 F3): `ok` or `errno N` for each.
const INODE_IOCTL_PY: &str = r#"import fcntl, os, struct
fd = os.open('mine', os.O_RDONLY)
def t(f):
    try: f(); print('ok', flush=True)
    except OSError as e: print('errno', e.errno, flush=True)
t(lambda: fcntl.ioctl(fd, 0x40087602, struct.pack('l', 424242)))
t(lambda: fcntl.fcntl(fd, 1036, struct.pack('Q', 2)))
t(lambda: fcntl.ioctl(fd, 0x40086604, struct.pack('l', 434343)))
"#;

/// Outside review r16 F2: inode state beyond mode/owner/times/xattrs (the generation and its
/// ctime through `FS_IOC_SETVERSION`, a write hint) changed through a descriptor the command was
/// handed. Refused everywhere (`EPERM`). Control: outside, both work on the same file system.
#[test]
fn inode_generation_and_hints_cannot_be_set() {
    for ns in [Ns::With, Ns::Without { dangerous: true }] {
        let e = Env::new();
        let out = output(sandbox(
            &e,
            WS_WRITE,
            ns,
            &["python3", "-c", INODE_IOCTL_PY],
        ));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "errno 1\nerrno 1\nerrno 1\n",
            "{ns:?}: {out:?}"
        );
    }
    let e = Env::new();
    let out = Command::new("python3")
        .args(["-c", INODE_IOCTL_PY])
        .current_dir(&e.ws)
        .env("PWD", &e.ws)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // the hint and ext4's generation call work outside on this file system (ext4 here: the
    // control fails loudly on another one)
    assert!(
        text.ends_with("ok\nok\n"),
        "control outside (the hint, EXT4_IOC_SETVERSION): {out:?}"
    );
}

/// A file system image mounted (loop) for one test, unmounted when dropped. `mkfs` is
/// `mkfs.btrfs` or `mkfs.ext4` with its options; a missing tool or loop device fails the test.
struct Mounted {
    _dir: tempfile::TempDir,
    at: PathBuf,
}

impl Mounted {
    fn new(mkfs: &[&str], size: &str) -> Mounted {
        let (dir, base) = suite_test_support::dirs::sandbox_scratch(
            "sbfs-",
            Path::new(env!("CARGO_TARGET_TMPDIR")),
        );
        let img = base.join("fs.img");
        let at = base.join("mnt");
        std::fs::create_dir(&at).unwrap();
        run_ok(Command::new("truncate").args(["-s", size]).arg(&img));
        run_ok(Command::new(mkfs[0]).args(&mkfs[1..]).arg(&img));
        run_ok(
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(&img)
                .arg(&at),
        );
        Mounted { _dir: dir, at }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

fn run_ok(c: &mut Command) {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(out.status.success(), "{c:?}: {out:?}");
}

/// In the cwd: a snapshot of `$HOME` (a subvolume the user owns, opened read-only) named
/// `snap`, then subvolumes `.git` and `plain` (`BTRFS_IOC_SNAP_CREATE_V2`,
/// `BTRFS_IOC_SUBVOL_CREATE_V2`), whether the snapshot holds the key, then a reflink copy
/// (`FICLONE`): `ok` or `errno N` for each.
const BTRFS_PY: &str = r#"import fcntl, os, struct
def t(f):
    try: f(); print('ok', flush=True)
    except OSError as e: print('errno', e.errno, flush=True)
here = os.open('.', os.O_RDONLY | os.O_DIRECTORY)
home = os.open(os.environ['HOME'], os.O_RDONLY | os.O_DIRECTORY)
def args(fd, name): return bytearray(struct.pack('qQQ32s4040s', fd, 0, 0, b'', name))
t(lambda: fcntl.ioctl(here, 0x50009417, args(home, b'snap')))
t(lambda: fcntl.ioctl(here, 0x50009418, args(0, b'.git')))
t(lambda: fcntl.ioctl(here, 0x50009418, args(0, b'plain')))
print(os.path.exists('snap/.ssh/id_ed25519'), flush=True)
src = os.open('mine', os.O_RDONLY)
dst = os.open('copy', os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
t(lambda: fcntl.ioctl(dst, 0x40049409, src))
"#;

/// Outside review r58 F1/F2: on btrfs, a snapshot of the user's home subvolume made inside a
/// writable root carried the deny-read key with it, and subvolumes named `.git` passed the name
/// guard (a snapshot named `.hg` with an `hgrc` hook ran it at the user's next `hg status`);
/// without namespaces they were made outside every root. The btrfs ioctl family is refused
/// (`EPERM`) but for the clones (`cp --reflink` still works: the last answer). Control: outside,
/// the same calls work on the same file system.
#[test]
fn btrfs_snapshots_and_subvolumes_cannot_be_made() {
    let fs = Mounted::new(&["mkfs.btrfs", "-q"], "160M");
    run_ok(
        Command::new("btrfs")
            .args(["-q", "subvolume", "create"])
            .arg(fs.at.join("home")),
    );
    let home = fs.at.join("home");
    let ws = home.join("ws");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), "PRIVATE KEY").unwrap();
    std::fs::write(ws.join("mine"), "mine").unwrap();
    suite_test_support::dirs::chown_tree(&fs.at, NOBODY);
    let e = Env {
        _dir: tempfile::tempdir().unwrap(),
        ws: ws.clone(),
        home: home.clone(),
    };
    for ns in [Ns::With, Ns::Without { dangerous: true }] {
        let out = output(sandbox(&e, WS_WRITE, ns, &["python3", "-c", BTRFS_PY]));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "errno 1\nerrno 1\nerrno 1\nFalse\nok\n",
            "{ns:?}: {out:?}"
        );
        assert!(!ws.join(".git").exists() && !ws.join("snap").exists());
        let _ = std::fs::remove_file(ws.join("copy"));
    }
    let out = Command::new("python3")
        .args(["-c", BTRFS_PY])
        .current_dir(&ws)
        .env("HOME", &home)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\nok\nok\nTrue\nok\n",
        "control outside: {out:?}"
    );
}

/// fscrypt as the user: `add DIR` adds a v2 key (`FS_IOC_ADD_ENCRYPTION_KEY`) and encrypts the
/// empty DIR with it, printing the key's identifier; `status|remove MNT ID` reads or removes
/// the key (`FS_IOC_GET_ENCRYPTION_KEY_STATUS`, `FS_IOC_REMOVE_ENCRYPTION_KEY`); `addkey MNT`
/// adds a key only. `ok`/`status N` or `errno N`.
const FSCRYPT_PY: &str = r#"import fcntl, os, struct, sys
def t(f):
    try: r = f(); print(r if r else 'ok', flush=True)
    except OSError as e: print('errno', e.errno, flush=True)
op, path = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDONLY)
def spec(ident): return struct.pack('II32s', 2, 0, ident)
def add():
    buf = bytearray(spec(b'') + struct.pack('II32s', 64, 0, b'') + os.urandom(64))
    fcntl.ioctl(fd, 0xc0506617, buf)
    return bytes(buf[8:24])
if op == 'add':
    ident = add()
    fcntl.ioctl(fd, 0x800c6613, struct.pack('BBBB4s16s', 2, 1, 4, 2, b'', ident))
    print(ident.hex(), flush=True)
elif op == 'addkey':
    t(lambda: add() and None)
else:
    ident = bytes.fromhex(sys.argv[3])
    if op == 'status':
        buf = bytearray(spec(ident) + bytes(24) + bytes(64))
        fcntl.ioctl(fd, 0xc080661a, buf)
        print('status', struct.unpack_from('I', buf, 64)[0], flush=True)
    else:
        t(lambda: fcntl.ioctl(fd, 0xc0406618, bytearray(spec(ident) + bytes(24))) and None)
"#;

/// Outside review r58 F3/F4: fscrypt keys live in the file system's keyring, not the
/// sandbox's: `FS_IOC_REMOVE_ENCRYPTION_KEY` from inside locked the user's unlocked encrypted
/// directory for good (every policy, with and without namespaces), and
/// `FS_IOC_ADD_ENCRYPTION_KEY` filled the user's kernel key quota. Both refused (`EPERM`); the
/// key stays present and the user's file readable. Control: outside, the removal works.
#[test]
fn fscrypt_keys_of_the_user_cannot_be_removed_or_added() {
    let fs = Mounted::new(&["mkfs.ext4", "-q", "-O", "encrypt"], "32M");
    let private = fs.at.join("private");
    let ws = fs.at.join("ws");
    let home = fs.at.join("home");
    for d in [&private, &ws, &home] {
        std::fs::create_dir(d).unwrap();
        chown(d, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let as_user = |args: &[&str]| {
        let out = Command::new("python3")
            .args(["-c", FSCRYPT_PY])
            .args(args)
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let ident = as_user(&["add", &s(&private)]);
    assert_eq!(ident.len(), 32, "{ident}");
    let notes = private.join("notes");
    run_ok(
        Command::new("sh")
            .args(["-c", "echo SECRET > \"$0\""])
            .arg(&notes)
            .uid(NOBODY)
            .gid(NOBODY),
    );
    let mnt = s(&fs.at);
    assert_eq!(as_user(&["status", &mnt, &ident]), "status 2");
    let e = Env {
        _dir: tempfile::tempdir().unwrap(),
        ws,
        home,
    };
    for ns in [Ns::With, Ns::Without { dangerous: true }] {
        for (policy, op) in [
            (READ_ONLY, "remove"),
            (WS_WRITE, "remove"),
            (READ_ONLY, "addkey"),
        ] {
            let out = output(sandbox(
                &e,
                policy,
                ns,
                &["python3", "-c", FSCRYPT_PY, op, &mnt, &ident],
            ));
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "errno 1\n",
                "{ns:?} {policy} {op}: {out:?}"
            );
        }
        assert_eq!(as_user(&["status", &mnt, &ident]), "status 2", "{ns:?}");
    }
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "SECRET\n");
    // Control: outside, the user's own process removes the key (the directory locks).
    assert_eq!(as_user(&["remove", &mnt, &ident]), "ok");
    assert_eq!(as_user(&["status", &mnt, &ident]), "status 1");
}

/// `FS_IOC_GET_ENCRYPTION_PWSALT` on standard input: `ok` or `errno N`.
const PWSALT_PY: &str = r#"import fcntl
try: fcntl.ioctl(0, 0x40106614, bytearray(16)); print('ok')
except OSError as e: print('errno', e.errno)
"#;

/// Outside review r60 F1: on ext4 with `encrypt` and no salt yet, the first
/// `FS_IOC_GET_ENCRYPTION_PWSALT` writes a new salt into the superblock, through any
/// descriptor: here a read-only one handed over as standard input (`< file`), with and
/// without namespaces. Refused (`EPERM`); the superblock keeps no salt. Control: outside, the
/// same call writes it.
#[test]
fn the_superblock_salt_cannot_be_written_through_a_read_only_descriptor() {
    let fs = Mounted::new(&["mkfs.ext4", "-q", "-O", "encrypt"], "32M");
    let given = fs.at.join("given");
    std::fs::write(&given, "x").unwrap();
    chown(&given, Some(NOBODY), Some(NOBODY)).unwrap();
    let e = Env::new();
    for ns in [Ns::With, Ns::Without { dangerous: true }] {
        let mut c = sandbox(&e, READ_ONLY, ns, &["python3", "-c", PWSALT_PY]);
        c.stdin(std::fs::File::open(&given).unwrap());
        let out = output(c);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "errno 1\n",
            "{ns:?}: {out:?}"
        );
    }
    let out = Command::new("python3")
        .args(["-c", PWSALT_PY])
        .stdin(std::fs::File::open(&given).unwrap())
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "control: {out:?}"
    );
}

/// Outside review r58 F6: a read lease (`F_SETLEASE`) on a file the user owns held the user's
/// own writers outside until the command exited. Refused (`EPERM`) with and without
/// namespaces. Control: outside, the lease is granted.
#[test]
fn leases_on_the_users_files_are_refused() {
    const LEASE_PY: &str = r#"import fcntl, os
fd = os.open(os.path.join(os.environ['HOME'], '.bashrc'), os.O_RDONLY)
try: fcntl.fcntl(fd, 1024, fcntl.F_RDLCK); print('ok')
except OSError as e: print('errno', e.errno)
"#;
    let e = Env::new();
    for ns in [Ns::With, Ns::Without { dangerous: true }] {
        for policy in [READ_ONLY, WS_WRITE] {
            let out = output(sandbox(&e, policy, ns, &["python3", "-c", LEASE_PY]));
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "errno 1\n",
                "{ns:?} {policy}: {out:?}"
            );
        }
    }
    let out = Command::new("python3")
        .args(["-c", LEASE_PY])
        .env("HOME", &e.home)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "control: {out:?}"
    );
}
