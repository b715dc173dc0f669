//! Outside review r19 F1/F2: the working directory is the main writable root, so how it was
//! reached is judged like every other writable root.
//!
//! - F1: a policy cwd (`--sandbox-policy-cwd`, the helper's spelling of `codex sandbox -C`) that
//!   goes through a link an earlier sandboxed command planted (`ws/sub -> $HOME`) is refused
//!   (exit 200, naming the link); control: the real directory runs.
//! - F2: the user's shell `cd`s through `ws/sub -> $HOME`, then the link is swapped for a real
//!   directory, then the launcher starts: `$PWD` (`ws/sub`) now names a real directory that is
//!   not `.` (`$HOME`), so the run is refused (exit 200, naming both); control: a `$PWD` that
//!   names `.` runs.
//!
//! Run as nobody, with and without namespaces (the probe's `outer-deny userns` filter).

// Test code: a failed set-up step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use suite_test_support::bins::sandbox_helper as helper;
const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-linux-probe");
const NOBODY: u32 = 65534;
const POLICY: &str = r#"{"mode":"workspace-write"}"#;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ns {
    With,
    Without,
}

/// `home` (the victim's home), `ws/real`, and `ws/sub -> home` (the planted link), all nobody's.
struct Env {
    _dir: tempfile::TempDir,
    home: PathBuf,
    ws: PathBuf,
}

impl Env {
    fn new() -> Env {
        let (dir, base) = suite_test_support::dirs::sandbox_scratch(
            "sbcwd-",
            Path::new(env!("CARGO_TARGET_TMPDIR")),
        );
        let home = base.join("home");
        let ws = base.join("ws");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(ws.join("real")).unwrap();
        std::os::unix::fs::symlink(&home, ws.join("sub")).unwrap();
        for p in [&home, &ws, &ws.join("real")] {
            chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        std::os::unix::fs::lchown(ws.join("sub"), Some(NOBODY), Some(NOBODY)).unwrap();
        Env {
            _dir: dir,
            home,
            ws,
        }
    }
}

/// The helper's argv (with the probe's no-userns filter in front for `Ns::Without`), running
/// `sh -c 'echo pwned > marker'` (or `> target` when given).
fn helper_argv(ns: Ns, policy_cwd: &Path, target: &str) -> Vec<String> {
    let mut v = Vec::new();
    if ns == Ns::Without {
        v.extend([
            PROBE.to_string(),
            "outer-deny".into(),
            "userns".into(),
            "--".into(),
        ]);
    }
    v.push(helper());
    v.extend([
        "--sandbox-policy-cwd".into(),
        policy_cwd.display().to_string(),
        "--sandbox-policy".into(),
        POLICY.into(),
    ]);
    if ns == Ns::Without {
        v.push("--dangerously-allow-weaker-sandbox".into());
    }
    v.extend([
        "--".into(),
        "sh".into(),
        "-c".into(),
        format!("echo pwned > {target}"),
    ]);
    v
}

fn as_nobody(mut c: Command, env: &Env) -> (Option<i32>, String) {
    let out = c
        .env("HOME", &env.home)
        .env_remove("TMPDIR")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn a_policy_cwd_through_a_users_link_is_refused_and_the_real_directory_runs() {
    for ns in [Ns::With, Ns::Without] {
        let env = Env::new();
        let sub = env.ws.join("sub");
        let marker = env.home.join("marker");
        // attack: the link as the cwd (its target, $HOME, would be the writable root)
        let argv = helper_argv(ns, &sub, &marker.display().to_string());
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]).current_dir(&env.ws).env("PWD", &env.ws);
        let (code, err) = as_nobody(c, &env);
        assert_eq!(code, Some(200), "{ns:?}: refused: {err}");
        assert!(
            err.contains("goes through the symbolic link")
                && err.contains(&sub.display().to_string()),
            "{ns:?}: names the link: {err}"
        );
        assert!(!marker.exists(), "{ns:?}: $HOME written through the link");
        // the same path with `..` after the link (`ws/sub/..` is the link target's parent)
        let argv = helper_argv(ns, &sub.join(".."), &marker.display().to_string());
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]).current_dir(&env.ws).env("PWD", &env.ws);
        let (code, err) = as_nobody(c, &env);
        assert_eq!(code, Some(200), "{ns:?}: link/.. refused: {err}");
        // control: the real directory is the writable root
        let real = env.ws.join("real");
        let argv = helper_argv(ns, &real, &real.join("marker").display().to_string());
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]).current_dir(&env.ws).env("PWD", &env.ws);
        let (code, err) = as_nobody(c, &env);
        assert_eq!(code, Some(0), "{ns:?}: control runs: {err}");
        assert!(
            real.join("marker").exists(),
            "{ns:?}: control wrote its cwd"
        );
    }
}

/// The user's shell (nobody) `cd`s into `dir`, then, when `swap`, what a concurrently running
/// sandboxed command does: the link `dir` replaced by a real directory; then the launcher with
/// the policy cwd `.`, writing `marker` in `.`.
fn cd_then_launch(env: &Env, ns: Ns, dir: &Path, swap: bool) -> (Option<i32>, String) {
    let script = if swap {
        r#"cd "$0" || exit 90; rm -- "$0" && mkdir -- "$0" || exit 91; exec "$@""#
    } else {
        r#"cd "$0" || exit 90; exec "$@""#
    };
    let mut c = Command::new("sh");
    c.arg("-c").arg(script).arg(dir);
    c.args(helper_argv(ns, Path::new("."), "marker"));
    c.current_dir(&env.ws).env("PWD", &env.ws);
    as_nobody(c, env)
}

#[test]
fn a_stale_pwd_after_a_link_swap_is_refused_and_a_matching_pwd_runs() {
    for ns in [Ns::With, Ns::Without] {
        let env = Env::new();
        let sub = env.ws.join("sub");
        let (code, err) = cd_then_launch(&env, ns, &sub, true);
        assert!(
            std::fs::symlink_metadata(&sub).unwrap().is_dir(),
            "{ns:?}: the swap happened"
        );
        assert_eq!(code, Some(200), "{ns:?}: refused: {err}");
        assert!(
            err.contains("is not the directory $PWD names")
                && err.contains(&sub.display().to_string())
                && err.contains(&env.home.display().to_string()),
            "{ns:?}: names $PWD and the working directory: {err}"
        );
        assert!(
            !env.home.join("marker").exists(),
            "{ns:?}: $HOME written through the stale $PWD"
        );
        // control: a $PWD that names `.` runs (the directory the swap left, entered again)
        let (code, err) = cd_then_launch(&env, ns, &sub, false);
        assert_eq!(code, Some(0), "{ns:?}: control runs: {err}");
        assert!(sub.join("marker").exists(), "{ns:?}: control wrote its cwd");
        let real = env.ws.join("real");
        let (code, err) = cd_then_launch(&env, ns, &real, false);
        assert_eq!(code, Some(0), "{ns:?}: control runs in real: {err}");
        assert!(real.join("marker").exists(), "{ns:?}: control wrote real");
        assert!(!env.home.join("marker").exists());
    }
}
