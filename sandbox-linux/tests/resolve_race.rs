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

// --- outside review r21 F2: a root and its carve-out come from one walk ---

const CARVE_PAUSE_VAR: &str = sandbox_linux::launch::TEST_PAUSE_CARVE_OUTS_VAR;

/// `proj` and `decoy`, two repositories (nobody's) with a `marker` each, and the hook's FIFOs.
struct Pair {
    _dir: tempfile::TempDir,
    proj: PathBuf,
    decoy: PathBuf,
    hook: PathBuf,
}

impl Pair {
    fn new() -> Pair {
        let (dir, base) = suite_test_support::dirs::sandbox_scratch(
            "sbrx-",
            Path::new(env!("CARGO_TARGET_TMPDIR")),
        );
        let (proj, decoy, hook) = (base.join("proj"), base.join("decoy"), base.join("hook"));
        for (d, m) in [(&proj, "PROJ"), (&decoy, "DECOY")] {
            std::fs::create_dir_all(d).unwrap();
            let out = Command::new("git")
                .args(["init", "-q"])
                .current_dir(d)
                .output()
                .expect("git must be installed (apt-get install git)");
            assert!(out.status.success(), "git init: {out:?}");
            std::fs::write(d.join("marker"), m).unwrap();
        }
        std::fs::create_dir_all(&hook).unwrap();
        mkfifo(&hook.join("paused"));
        mkfifo(&hook.join("resume"));
        suite_test_support::dirs::chown_tree(&base, NOBODY);
        Pair {
            _dir: dir,
            proj,
            decoy,
            hook,
        }
    }

    /// What a concurrent command of the user does (the reviewer's `xchg.c`): exchange the two
    /// directories, `renameat2(RENAME_EXCHANGE)`.
    fn exchange(&self) {
        let a = CString::new(self.proj.as_os_str().as_bytes()).unwrap();
        let b = CString::new(self.decoy.as_os_str().as_bytes()).unwrap();
        // SAFETY: both paths are NUL-terminated and borrowed for the call.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        assert_eq!(rc, 0, "renameat2: {}", std::io::Error::last_os_error());
    }
}

/// The sandbox with `--allow-git-writes` (the root's own `.git` carve-out is then the only
/// layer, as in the reviewer's run), cwd `proj`, both pause hooks on: the command writes its
/// cwd repository's `.git/config` and a file in its cwd, and says in which of the two it is.
/// At each of the three pauses (launcher between the walks; child before the mounts; child
/// between the roots' mounts and the carve-outs') `swaps[i]` says whether to exchange.
fn carve_out_race(p: &Pair, swaps: [bool; 3]) -> (Option<i32>, String, String) {
    let mut c = Command::new(helper());
    c.arg("--sandbox-policy-cwd")
        .arg(&p.proj)
        .arg("--sandbox-policy")
        .arg(r#"{"mode":"workspace-write"}"#)
        .arg("--allow-git-writes")
        .arg("-v")
        .args([
            "--",
            "sh",
            "-c",
            "m=$(cat marker); if echo '# w' >> .git/config; then echo \"wrote($m)\"; \
             else echo \"ro($m)\"; fi; echo x > file && echo \"file-ok($m)\"",
        ])
        .current_dir(&p.proj)
        .env("PWD", &p.proj)
        .env_remove("TMPDIR")
        .env(PAUSE_VAR, &p.hook)
        .env(CARVE_PAUSE_VAR, &p.hook)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let env = Env {
        _dir: tempfile::tempdir().unwrap(),
        ws: PathBuf::new(),
        root: PathBuf::new(),
        home: PathBuf::new(),
        secret: PathBuf::new(),
        hook: p.hook.clone(),
    };
    for swap in swaps {
        wait_paused(&env, &mut child);
        if swap {
            p.exchange();
        }
        resume(&env);
    }
    finish(child)
}

#[test]
fn a_directory_exchanged_between_the_walks_of_a_root_and_its_carve_out_gets_no_writable_git() {
    use std::os::unix::fs::MetadataExt;
    // Control: nothing exchanged (the pauses passed untouched): the cwd repository's
    // `.git/config` is read-only, the cwd itself writable.
    let p = Pair::new();
    let (code, out, err) = carve_out_race(&p, [false, false, false]);
    assert_eq!(code, Some(0), "control: {out} / {err}");
    assert!(
        out.contains("ro(PROJ)") && out.contains("file-ok(PROJ)"),
        "control: {out} / {err}"
    );
    assert!(err.contains("Read-only file system"), "control: {err}");
    // (outside the sandbox the same write succeeds: the carve-out is what refuses it)
    let outside = Command::new("sh")
        .args(["-c", "echo '# outside' >> .git/config"])
        .current_dir(&p.proj)
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .unwrap();
    assert!(
        outside.success(),
        "control: nobody writes .git/config outside"
    );

    // The reviewer's winning interleaving, made deterministic: exchanged between the launcher's
    // walk of the root and of its carve-out, back before the child's mounts, and again between
    // the child's root mount and the carve-out's. Reached from one path walk each, the root was
    // `proj` and the carve-out `decoy/.git`, and the command wrote `proj/.git/config`.
    let p = Pair::new();
    let proj_ino = std::fs::metadata(&p.proj).unwrap().ino();
    let config_before = std::fs::read(p.proj.join(".git/config")).unwrap();
    let (code, out, err) = carve_out_race(&p, [true, true, true]);
    // the three exchanges happened: the directory first at `proj` is now at `decoy`
    assert_eq!(std::fs::metadata(&p.decoy).unwrap().ino(), proj_ino);
    assert_eq!(code, Some(0), "{out} / {err}");
    assert!(
        out.contains("file-ok(PROJ)"),
        "the command runs in the approved directory: {out} / {err}"
    );
    assert!(
        out.contains("ro(PROJ)") && !out.contains("wrote"),
        "the carve-out must cover the .git of the directory the command runs in: {out} / {err}"
    );
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(
        std::fs::read(p.decoy.join(".git/config")).unwrap(),
        config_before,
        "the approved repository's .git/config (now at decoy) is unchanged"
    );
}
