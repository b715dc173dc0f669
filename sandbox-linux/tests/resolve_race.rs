//! Issue 12 item 8: the check and the rules must not resolve a path twice. Another process of
//! the user (a command of an earlier run still running, or a parallel one) swaps an approved
//! writable root for a symbolic link to a secret directory *after* the policy was checked and
//! *before* the rules are made; the sandboxed command must not be able to write (or chmod) the
//! secret directory through it.
//!
//! The window is held open deterministically by the launcher's debug-build test hook
//! (`CODEX_SANDBOX_TEST_PAUSE_BEFORE_RULES`, `sandbox_linux::launch::TEST_PAUSE_VAR`). Controls:
//! with nothing swapped the root is writable; the same swap made before the launch is refused by
//! the policy's check. Run as nobody, with and without namespaces (the probe's `outer-deny
//! userns` filter).

// Test code: a failed set-up step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use suite_test_support::bins::sandbox_helper as helper;
const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-linux-probe");
const NOBODY: u32 = 65534;
const PAUSE_VAR: &str = sandbox_linux::launch::TEST_PAUSE_VAR;

/// `ws` (the cwd), `p/root` (an extra writable root), `home/stash/root` (the secret, mode 0700),
/// the hook's FIFOs; everything owned by nobody. The swap replaces `p` (a component on the way,
/// so that every path-based step, mounts included, follows it) with a link to `home/stash`.
struct Env {
    _dir: tempfile::TempDir,
    ws: PathBuf,
    root: PathBuf,
    home: PathBuf,
    secret: PathBuf,
    hook: PathBuf,
}

fn mkfifo(p: &Path) {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path borrowed for the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", p.display());
}

impl Env {
    fn new() -> Env {
        let (dir, base) = suite_test_support::dirs::sandbox_scratch(
            "sbrr-",
            Path::new(env!("CARGO_TARGET_TMPDIR")),
        );
        let ws = base.join("ws");
        let root = base.join("p/root");
        let home = base.join("home");
        let secret = home.join("stash/root");
        let hook = base.join("hook");
        for d in [&ws, &root, &secret, &hook] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
        mkfifo(&hook.join("paused"));
        mkfifo(&hook.join("resume"));
        for p in [
            &base,
            &ws,
            &base.join("p"),
            &root,
            &home,
            &home.join("stash"),
            &secret,
            &hook,
            &hook.join("paused"),
            &hook.join("resume"),
        ] {
            chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        Env {
            _dir: dir,
            ws,
            root,
            home,
            secret,
            hook,
        }
    }

    /// What another process of the user does: `root` moved aside, a link to the secret put in
    /// its place (owned by the user, as the user's own process makes it).
    fn swap(&self) {
        let p = self.root.parent().unwrap();
        std::fs::rename(p, p.with_extension("old")).unwrap();
        std::os::unix::fs::symlink(self.secret.parent().unwrap(), p).unwrap();
        std::os::unix::fs::lchown(p, Some(NOBODY), Some(NOBODY)).unwrap();
    }

    fn secret_untouched(&self) -> bool {
        std::fs::read_dir(&self.secret).unwrap().next().is_none()
            && std::fs::metadata(&self.secret).unwrap().mode() & 0o7777 == 0o700
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ns {
    With,
    Without,
}

/// The sandbox, as nobody, with `root` as a writable root, running: write `root/f`, chmod
/// `root/` (through the link when swapped), print both results.
fn sandbox(env: &Env, ns: Ns, pause: bool) -> Command {
    let mut c = match ns {
        Ns::With => Command::new(helper()),
        Ns::Without => {
            let mut c = Command::new(PROBE);
            c.args(["outer-deny", "userns", "--", &helper()]);
            c
        }
    };
    let policy = format!(
        r#"{{"mode":"workspace-write","writable_roots":["{}"]}}"#,
        env.root.display()
    );
    c.arg("--sandbox-policy-cwd")
        .arg(&env.ws)
        .arg("--sandbox-policy")
        .arg(policy);
    if ns == Ns::Without {
        c.arg("--dangerously-allow-weaker-sandbox");
    }
    let root = env.root.display();
    let script = format!(
        "echo pwned > {root}/f 2>/dev/null; echo write=$?; chmod 0777 {root}/ 2>/dev/null; echo chmod=$?"
    );
    c.args(["--", "sh", "-c", &script]);
    c.current_dir(&env.ws)
        .env("PWD", &env.ws)
        .env("HOME", &env.home)
        .env_remove("TMPDIR")
        .env_remove(PAUSE_VAR)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if pause {
        c.env(PAUSE_VAR, &env.hook);
    }
    c
}

fn finish(child: Child) -> (Option<i32>, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// Wait (bounded) until the launcher is paused in the hook; fails with its output otherwise.
fn wait_paused(env: &Env, child: &mut Child) {
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(env.hook.join("paused"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut b = [0u8; 1];
    loop {
        match fifo.read(&mut b) {
            Ok(1) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("reading the hook's FIFO: {e}"),
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the launcher ended before the hook ({status}): is it a debug build?");
        }
        assert!(Instant::now() < deadline, "the launcher never paused");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn resume(env: &Env) {
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .open(env.hook.join("resume"))
        .unwrap();
    fifo.write_all(b"r").unwrap();
}

/// Swap while the launcher is paused between its check and its rules.
fn swap_in_the_window(env: &Env, ns: Ns) -> (Option<i32>, String, String) {
    let mut child = sandbox(env, ns, true).spawn().unwrap();
    wait_paused(env, &mut child);
    env.swap();
    resume(env);
    finish(child)
}

fn run(ns: Ns) {
    // Control 1: nothing swapped (hook on, window passed untouched): the root is writable.
    let e = Env::new();
    let mut child = sandbox(&e, ns, true).spawn().unwrap();
    wait_paused(&e, &mut child);
    resume(&e);
    let (code, out, err) = finish(child);
    assert_eq!(code, Some(0), "{ns:?}: {out} / {err}");
    assert!(
        out.contains("write=0"),
        "{ns:?}: control write: {out} / {err}"
    );
    assert_eq!(
        std::fs::read_to_string(e.root.join("f")).unwrap(),
        "pwned\n"
    );

    // Control 2: the same swap before the launch is refused by the policy's check.
    let e = Env::new();
    e.swap();
    let (code, out, err) = finish(sandbox(&e, ns, false).spawn().unwrap());
    assert_ne!(code, Some(0), "{ns:?}: {out} / {err}");
    assert!(
        err.contains("goes through the symbolic link")
            && err.contains(&e.root.parent().unwrap().display().to_string()),
        "{ns:?}: {err}"
    );
    assert!(e.secret_untouched(), "{ns:?}: control 2 wrote the secret");
    // (outside the sandbox nobody can write the secret through the link: the attack's target)
    let direct = Command::new("sh")
        .args([
            "-c",
            &format!("echo x > {}/probe && rm {0}/probe", e.root.display()),
        ])
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .unwrap();
    assert!(direct.success(), "{ns:?}: nobody writes the secret outside");

    // The attack: the swap in the window between the check and the rules.
    let e = Env::new();
    let (code, out, err) = swap_in_the_window(&e, ns);
    assert!(
        e.secret_untouched(),
        "{ns:?}: the command wrote or chmodded the secret through a link swapped in after the \
         check: exit {code:?}, {out} / {err}; secret now {:?}",
        std::fs::read_dir(&e.secret)
            .unwrap()
            .map(|d| d.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    // Either the launcher refused (the link met by the resolution) or the command ran and was
    // denied; never a silent success.
    if code == Some(0) {
        assert!(
            out.contains("write=1") || out.contains("write=2"),
            "{ns:?}: {out} / {err}"
        );
    }
}

#[test]
fn a_root_swapped_for_a_link_after_the_check_grants_nothing_with_namespaces() {
    run(Ns::With);
}

#[test]
fn a_root_swapped_for_a_link_after_the_check_grants_nothing_without_namespaces() {
    run(Ns::Without);
}
