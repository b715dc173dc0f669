//! A `.git` *file* (`git init --separate-git-dir`, worktrees, submodules) points git at a gitdir
//! somewhere else. The sandbox mounts that gitdir read-only, but a mount protects a place, and
//! git outside follows the `.git` file's *path*: if the sandboxed command can make that path lead
//! somewhere new, it plants a `core.fsmonitor` that the user's next `git status` runs outside
//! the sandbox (outside review, finding F1). Two ways to swap the path, both refused with 201:
//! - a symlink on the way (`gitdir: link/.git`, `link` in the writable root): re-point the link;
//! - a directory inside a writable root above the gitdir (`gitdir: ../other/repo.git`, `other`
//!   writable): rename it away and re-create it (the read-only mount moves with the renamed one).
//!
//! Each attack runs as the sandboxed command (uid 65534), with and without user namespaces; the
//! control runs the same attack with `--dangerously-allow-weaker-sandbox` and shows the victim's
//! `git status` outside then runs the planted command. Needs git (Debian `git`).

// Test code: a failed set-up step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use suite_test_support::bins::sandbox_helper as helper;
const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-linux-probe");
const NOBODY: u32 = 65534;

struct Env {
    _dir: tempfile::TempDir,
    base: PathBuf,
    ws: PathBuf,
    home: PathBuf,
}

fn env() -> Env {
    let (dir, base) = suite_test_support::dirs::sandbox_scratch(
        "sbl-git-",
        Path::new(env!("CARGO_TARGET_TMPDIR")),
    );
    let (ws, home) = (base.join("ws"), base.join("home"));
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    suite_test_support::dirs::chown_tree(&base, NOBODY);
    Env {
        _dir: dir,
        base,
        ws,
        home,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// git as the victim (uid 65534, outside any sandbox), in `dir`.
fn git(e: &Env, dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("PWD", dir)
        .env("HOME", &e.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .expect("git must be installed (apt-get install git)");
    assert!(out.status.success(), "git {args:?} in {dir:?}: {out:?}");
    out
}

/// `sh ARGS` as the victim (uid 65534) outside any sandbox, in the workspace: the controls.
fn outside(e: &Env, args: &[&str]) -> Output {
    Command::new("sh")
        .args(args)
        .current_dir(&e.ws)
        .env("PWD", &e.ws)
        .env("HOME", &e.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ns {
    With,
    Without,
}

/// `sh -c SCRIPT` in the workspace-write sandbox (cwd `ws`, `extra_root` writable as well).
fn sandboxed(e: &Env, ns: Ns, extra_root: Option<&Path>, dangerous: bool, script: &str) -> Output {
    command(e, ns, extra_root, dangerous, script)
        .output()
        .unwrap()
}

/// The command [`sandboxed`] runs, to add to.
fn command(e: &Env, ns: Ns, extra_root: Option<&Path>, dangerous: bool, script: &str) -> Command {
    command_with(e, ns, extra_root, dangerous, false, script)
}

/// [`command`], with the name guard off when `allow_git_writes` (the controls of attacks on the
/// carve-outs: the guard would refuse their `*.git` gitdirs on its own).
fn command_with(
    e: &Env,
    ns: Ns,
    extra_root: Option<&Path>,
    dangerous: bool,
    allow_git_writes: bool,
    script: &str,
) -> Command {
    let mut flags = Vec::new();
    if dangerous {
        flags.push("--dangerously-allow-weaker-sandbox");
    }
    if allow_git_writes {
        flags.push("--allow-git-writes");
    }
    command_flags(e, ns, extra_root, &flags, script)
}

/// [`command`] with the helper's `flags` (before `--`).
fn command_flags(
    e: &Env,
    ns: Ns,
    extra_root: Option<&Path>,
    flags: &[&str],
    script: &str,
) -> Command {
    let policy = match extra_root {
        Some(r) => format!(
            r#"{{"mode":"workspace-write","writable_roots":["{}"]}}"#,
            s(r)
        ),
        None => r#"{"mode":"workspace-write"}"#.to_string(),
    };
    let mut c = match ns {
        Ns::With => Command::new(helper()),
        Ns::Without => {
            let mut c = Command::new(PROBE);
            c.args(["outer-deny", "userns", "--", &helper()]);
            c
        }
    };
    c.arg("--sandbox-policy-cwd")
        .arg(&e.ws)
        .arg("--sandbox-policy")
        .arg(policy)
        .args(flags);
    c.args(["--", "sh", "-c", script])
        .current_dir(&e.ws)
        .env("PWD", &e.ws)
        .env("HOME", &e.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env_remove("TMPDIR")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null());
    c
}

/// The attacker's script: make `gitdir` (as the `.git` file names it) a fresh repository whose
/// fsmonitor writes `marker`, after `swap` has moved the protected one out of the way.
fn plant(swap: &str, gitdir: &str, marker: &Path) -> String {
    format!(
        "set -e; {swap}; git init -q --bare {gitdir}; \
         git --git-dir={gitdir} config core.bare false; \
         git --git-dir={gitdir} config core.fsmonitor 'id > {m}; true'; echo planted",
        m = s(marker)
    )
}

/// Runs the attack under the sandbox, with and without namespaces, and checks the refusal
/// (exit 201, nothing ran, nothing planted); then the control: the same attack with
/// `--dangerously-allow-weaker-sandbox` works, and the victim's `git status` outside runs it.
fn attack(e: &Env, extra_root: Option<&Path>, script: &str, expect_in_message: &str) {
    let marker = e.home.join("PWNED");
    for ns in [Ns::With, Ns::Without] {
        let out = sandboxed(e, ns, extra_root, false, script);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(201), "{ns:?}: {out:?}");
        // without namespaces the first refusal is that there is no mount namespace at all
        if ns == Ns::With {
            assert!(err.contains(expect_in_message), "{ns:?}: {err}");
        }
        assert!(
            out.stdout.is_empty(),
            "{ns:?}: the command must not have run"
        );
        git(e, &e.ws, &["status", "--short"]);
        assert!(!marker.exists(), "{ns:?}: refused, so nothing was planted");
    }
    let out = command_with(e, Ns::With, extra_root, true, true, script)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("WRITABLE symlinked carve-outs"), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "planted",
        "control: the attack must work when the refusal is waived: {out:?}"
    );
    git(e, &e.ws, &["status", "--short"]);
    assert!(
        marker.exists(),
        "control: the victim's git status outside ran the planted fsmonitor"
    );
}

/// For a directory on the way that the sandbox holds in place (carved out read-only: a mount
/// point cannot be renamed or replaced): the attack runs and fails inside, with namespaces
/// (without them workspace-write is refused, 201); the control runs the same script as the
/// victim outside the sandbox, and the victim's `git status` then runs the plant.
fn attack_held(e: &Env, extra_root: Option<&Path>, script: &str, expect_err: &str) {
    let marker = e.home.join("PWNED");
    let out = sandboxed(e, Ns::With, extra_root, false, script);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("planted"),
        "{out:?}"
    );
    assert!(err.contains(expect_err), "{err}");
    git(e, &e.ws, &["status", "--short"]);
    assert!(!marker.exists(), "held: nothing was planted");
    let out = sandboxed(e, Ns::Without, extra_root, false, script);
    assert_eq!(out.status.code(), Some(201), "{out:?}");
    // control: the same script outside the sandbox
    let out = outside(e, &["-c", script]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "planted",
        "{out:?}"
    );
    git(e, &e.ws, &["status", "--short"]);
    assert!(
        marker.exists(),
        "control: the victim's git status ran the plant"
    );
}

#[test]
fn a_gitdir_reached_through_a_symlink_in_the_root_is_refused() {
    let e = env();
    // the victim's layout: `git init --separate-git-dir` put the repository elsewhere, and the
    // `.git` file names it through a symlink that lives in the workspace
    let elsewhere = e.base.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    suite_test_support::dirs::chown_tree(&elsewhere, NOBODY);
    git(
        &e,
        &e.ws,
        &[
            "init",
            "-q",
            "--separate-git-dir",
            s(&elsewhere.join("repo.git")),
        ],
    );
    std::os::unix::fs::symlink(&elsewhere, e.ws.join("link")).unwrap();
    std::os::unix::fs::lchown(e.ws.join("link"), Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::write(e.ws.join(".git"), "gitdir: link/repo.git\n").unwrap();
    git(&e, &e.ws, &["status", "--short"]);
    let script = plant(
        "rm link; mkdir link",
        "link/repo.git",
        &e.home.join("PWNED"),
    );
    attack(
        &e,
        None,
        &script,
        &format!(
            "{} is a symbolic link on the way to the read-only",
            s(&e.ws.join("link"))
        ),
    );
}

#[test]
fn a_gitdir_under_a_renameable_directory_of_another_root_is_held_in_place() {
    let e = env();
    // the repository lives in another writable root, one level down: `other/repos` can be
    // renamed away (`other/repos/repo.git` itself is a mount point: EBUSY, see the next test)
    let other = e.base.join("other");
    let gitdir = other.join("repos/repo.git");
    std::fs::create_dir_all(other.join("repos")).unwrap();
    suite_test_support::dirs::chown_tree(&other, NOBODY);
    git(&e, &e.ws, &["init", "-q", "--separate-git-dir", s(&gitdir)]);
    let script = plant(
        &format!("mv {0}/repos {0}/old", s(&other)),
        s(&gitdir),
        &e.home.join("PWNED"),
    );
    // `other/repos` is carved out read-only (a rename would get EBUSY); the name guard refuses
    // first: it holds a repository (outside review r82 F3: a directory holding one at any
    // depth is not renamed)
    attack_held(&e, Some(&other), &script, "Permission denied");
}

#[test]
fn a_dotdot_out_of_a_directory_in_the_root_is_held_in_place() {
    // second review round, F2: `gitdir: x/../gd` looks like a gitdir directly in the root, but
    // git resolves `x` physically: make `x` a symlink and `..` lands in the attacker's directory
    let e = env();
    git(
        &e,
        &e.ws,
        &["init", "-q", "--separate-git-dir", s(&e.ws.join("gd"))],
    );
    std::fs::create_dir(e.ws.join("x")).unwrap();
    std::fs::write(e.ws.join(".git"), "gitdir: x/../gd\n").unwrap();
    suite_test_support::dirs::chown_tree(&e.ws, NOBODY);
    git(&e, &e.ws, &["status", "--short"]);
    let script = plant(
        &format!("rmdir x; mkdir -p evil/y; ln -s {}/evil/y x", s(&e.ws)),
        "evil/gd",
        &e.home.join("PWNED"),
    );
    // `x` is carved out read-only: `rmdir x` gets EBUSY
    attack_held(&e, None, &script, "Device or resource busy");
}

#[test]
fn a_gitdir_under_a_roots_own_git_directory_runs_and_stays_read_only() {
    // the common worktree layout: `repo` (a writable root, its `.git` a directory) and a
    // worktree `wt` whose `.git` file names `repo/.git/worktrees/wt`: nothing can be swapped
    let e = env();
    let repo = e.base.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    suite_test_support::dirs::chown_tree(&repo, NOBODY);
    git(&e, &repo, &["init", "-q"]);
    git(
        &e,
        &repo,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
    );
    std::fs::remove_dir(&e.ws).unwrap();
    git(&e, &repo, &["worktree", "add", "-q", s(&e.ws)]);
    let gitdir = repo.join(".git/worktrees/ws");
    let out = sandboxed(
        &e,
        Ns::With,
        Some(&repo),
        false,
        &format!(
            "echo x > {0}/HEAD 2>/dev/null || echo denied; mv {1}/.git {1}/g 2>/dev/null || echo busy",
            s(&gitdir),
            s(&repo)
        ),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "denied\nbusy\n",
        "{out:?}"
    );
    // control: outside, the same write works
    std::fs::write(gitdir.join("probe"), "x").unwrap();
}

/// `sh -c SCRIPT` under workspace-write with namespaces and `CODEX_HOME` set.
fn with_codex_home(e: &Env, codex_home: &Path, script: &str) -> Output {
    command(e, Ns::With, None, false, script)
        .env("CODEX_HOME", codex_home)
        .output()
        .unwrap()
}

#[test]
fn codex_home_inside_a_writable_root_stays_read_only() {
    // second review round F5: with CODEX_HOME in a root (as in CI) the command appended
    // `sandbox_workspace_write.network_access = true` to config.toml and the next run had network
    let e = env();
    let ch = e.ws.join("codex-home");
    std::fs::create_dir(&ch).unwrap();
    std::fs::write(ch.join("config.toml"), "").unwrap();
    suite_test_support::dirs::chown_tree(&ch, NOBODY);
    let append = format!(
        "{{ echo 'sandbox_workspace_write.network_access = true' >> {}/config.toml; }} 2>&1; \
         echo rc=$?",
        s(&ch)
    );
    let out = with_codex_home(&e, &ch, &append);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Read-only file system") && !text.contains("rc=0"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(ch.join("config.toml")).unwrap(), "");
    // deeper in the root: the directory below the root is held in place (renaming it is
    // EBUSY) and CODEX_HOME below it is read-only
    let deep = e.ws.join("a/codex-home");
    std::fs::create_dir_all(&deep).unwrap();
    suite_test_support::dirs::chown_tree(&e.ws, NOBODY);
    let out = with_codex_home(
        &e,
        &deep,
        &format!(
            "mv {0}/a {0}/b 2>&1; touch {1}/config.toml 2>&1; echo done",
            s(&e.ws),
            s(&deep)
        ),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        (text.contains("Device or resource busy") || text.contains("Permission denied"))
            && text.contains("Read-only file system")
            && !text.contains("rc=0"),
        "{out:?}"
    );
    // third review round F1: CODEX_HOME (or ~/.codex) a symlink outside the roots that points
    // into one (a dotfiles layout): the target is protected, not skipped
    let dots = e.ws.join("dots-codex");
    std::fs::create_dir(&dots).unwrap();
    std::fs::write(dots.join("config.toml"), "").unwrap();
    suite_test_support::dirs::chown_tree(&dots, NOBODY);
    let link = e.home.join(".codex-link");
    std::os::unix::fs::symlink(&dots, &link).unwrap();
    let via_link = append.replace(s(&ch), s(&link));
    let out = with_codex_home(&e, &link, &via_link);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Read-only file system") && !text.contains("rc=0"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dots.join("config.toml")).unwrap(),
        ""
    );
    // and CODEX_HOME that is itself the writable root: refused
    let out = with_codex_home(&e, &e.ws, "echo ran");
    assert_eq!(out.status.code(), Some(201), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("it is CODEX_HOME and itself a writable root"),
        "{out:?}"
    );
    // control: the same file is writable when it is not CODEX_HOME
    let out = with_codex_home(&e, &e.home.join(".codex"), &append);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rc=0"),
        "{out:?}"
    );
}

#[test]
fn a_bind_mount_of_the_workspace_inside_another_root_does_not_open_its_git() {
    // third review round F4: with the project bind-mounted below another writable root (/tmp),
    // `.git/config` was read-only at its own path and writable through the bind
    let e = env();
    git(&e, &e.ws, &["init", "-q"]);
    let other = e.base.join("other");
    let alias = other.join("wsbind");
    std::fs::create_dir_all(&alias).unwrap();
    suite_test_support::dirs::chown_tree(&other, NOBODY);
    let policy = format!(
        r#"{{"mode":"workspace-write","writable_roots":["{}"]}}"#,
        s(&other)
    );
    let run = |sandboxed: bool| {
        let write = format!(
            "{{ echo x >> '{}/.git/config'; }} 2>&1; echo rc=\\$?",
            s(&alias)
        );
        let cmd = if sandboxed {
            format!(
                "{} --sandbox-policy-cwd '{}' --sandbox-policy '{policy}' -- sh -c \"{write}\"",
                helper(),
                s(&e.ws)
            )
        } else {
            format!("sh -c \"{write}\"")
        };
        let script = format!(
            "mount --bind '{}' '{}' || exit 99; cd '{}'; setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups {cmd}",
            s(&e.ws),
            s(&alias),
            s(&e.ws)
        );
        let out = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .env("HOME", &e.home)
            .output()
            .expect("unshare and setpriv (util-linux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let inside = run(true);
    assert!(
        inside.contains("Read-only file system") && !inside.contains("rc=0"),
        "{inside}"
    );
    // control: outside the sandbox the alias writes
    assert!(run(false).contains("rc=0"));
}

// ---------------------------------------------------------------------------------------------
// The name guard (issue 12 item 3, round-2 review F1): `.git`, `.codex`, `.agents` cannot be
// created anywhere below a writable root, and nothing below an existing one is written, with or
// without namespaces. The control of each attack is the same script with `--allow-git-writes`.

/// `sh -c SCRIPT` as uid 65534 in the workspace-write sandbox; without namespaces the metadata
/// refusal is waived (`--dangerously-allow-weaker-sandbox`): the name guard does not need them.
fn guarded(e: &Env, ns: Ns, allow_git_writes: bool, script: &str) -> Output {
    command_with(e, ns, None, ns == Ns::Without, allow_git_writes, script)
        .output()
        .unwrap()
}

/// git as the victim that may fail (a directory that is not a repository).
fn git_status_may_fail(e: &Env, dir: &Path) {
    if !dir.is_dir() {
        return; // nothing was created there: nothing to run
    }
    let _ = Command::new("git")
        .args(["status", "--short"])
        .current_dir(dir)
        .env("PWD", dir)
        .env("HOME", &e.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .expect("git must be installed");
}

#[test]
fn git_init_below_the_root_and_an_fsmonitor_plant_are_refused() {
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let marker = e.home.join("PWNED");
        let script = format!(
            "mkdir -p deep/er; git init -q deep/er/src && \
             git -C deep/er/src config core.fsmonitor 'id > {}; true' && echo planted",
            s(&marker)
        );
        let out = guarded(&e, ns, false, &script);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("planted"),
            "{ns:?}: {out:?}"
        );
        assert!(err.contains("Permission denied"), "{ns:?}: {err}");
        assert!(!e.ws.join("deep/er/src/.git").exists(), "{ns:?}");
        git_status_may_fail(&e, &e.ws.join("deep/er/src"));
        assert!(!marker.exists(), "{ns:?}: nothing planted");
        // control: the escape hatch lets git init, and the victim's git status runs the plant
        let out = guarded(&e, ns, true, &script);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("planted"),
            "{ns:?}: {out:?}"
        );
        git_status_may_fail(&e, &e.ws.join("deep/er/src"));
        assert!(
            marker.exists(),
            "{ns:?}: control: the victim's git status ran it"
        );
    }
}

#[test]
fn an_existing_nested_repository_and_a_submodule_gitdir_file_stay_read_only() {
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let marker = e.home.join("PWNED");
        let sub = e.ws.join("lib/sub");
        std::fs::create_dir_all(&sub).unwrap();
        suite_test_support::dirs::chown_tree(&e.ws, NOBODY);
        git(&e, &sub, &["init", "-q"]);
        // a submodule-style `.git` file pointing at a gitdir under the top-level .git
        let modsub = e.ws.join("modsub");
        std::fs::create_dir_all(&modsub).unwrap();
        suite_test_support::dirs::chown_tree(&e.ws, NOBODY);
        git(
            &e,
            &e.ws,
            &["init", "-q", "--bare", "store/.git/modules/modsub"],
        );
        git(
            &e,
            &e.ws,
            &[
                "--git-dir=store/.git/modules/modsub",
                "config",
                "core.bare",
                "false",
            ],
        );
        std::fs::write(
            modsub.join(".git"),
            "gitdir: ../store/.git/modules/modsub\n",
        )
        .unwrap();
        suite_test_support::dirs::chown_tree(&e.ws, NOBODY);
        let script = format!(
            "cd lib/sub; git config core.fsmonitor 'id > {m}; true' && echo planted1; \
             printf '#!/bin/sh\\nid > {m}\\n' > .git/hooks/post-checkout && echo planted2; \
             cd ../../modsub; printf 'gitdir: /tmp/evil\\n' > .git && echo planted3; \
             git config core.fsmonitor 'id > {m}; true' && echo planted4; true",
            m = s(&marker)
        );
        let out = guarded(&e, ns, false, &script);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("planted"), "{ns:?}: {out:?}");
        git(&e, &sub, &["status", "--short"]);
        git(&e, &modsub, &["status", "--short"]);
        assert!(!marker.exists(), "{ns:?}: nothing planted");
        assert_eq!(
            std::fs::read_to_string(modsub.join(".git")).unwrap(),
            "gitdir: ../store/.git/modules/modsub\n"
        );
        // control
        let out = guarded(&e, ns, true, &script);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("planted1"),
            "{ns:?}: {out:?}"
        );
        git(&e, &sub, &["status", "--short"]);
        assert!(marker.exists(), "{ns:?}: control");
    }
}

#[test]
fn no_route_creates_a_protected_name_and_ordinary_files_still_work() {
    let attempts = "\
        mkdir .codex; mkdir -p a/b/.agents; mkdir d && mv d .GIT; \
        ln -s .git dangling && echo x > dangling; ln -s .codex dl2 && mkdir dl2; \
        touch f && ln f .git; ln -s anything .agents; mkfifo .git; \
        python3 -c 'import os; os.close(os.open(\".Codex\", os.O_CREAT|os.O_WRONLY, 0o600))'; \
        python3 -c 'import os; os.symlink(\"x\", \".git\")'; \
        python3 -c 'import ctypes,os; ctypes.CDLL(None).syscall(437, -100, b\".git\", 0, 0)'; \
        true";
    let ordinary = "\
        echo one > o1 && mkdir o2 && mv o1 o2/o3 && ln o2/o3 o4 && ln -s o4 o5 && echo two >> o5 && \
        mkfifo o6 && (cat o6 > o7 &) && echo piped > o6 && sleep 0.2 && \
        echo out > /dev/stdout && echo err 2>/dev/null >&2 && \
        python3 -c 'import os; t=os.open(\".\", os.O_TMPFILE|os.O_WRONLY, 0o600); os.write(t, b\"t\"); \
            os.link(\"/proc/self/fd/%d\" % t, \"o8\", follow_symlinks=True)' 2>/dev/null; \
        umask 077 && touch o9 && echo ordinary-ok";
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let out = guarded(&e, ns, false, &format!("{attempts}; {ordinary}"));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("ordinary-ok"),
            "{ns:?}: {out:?}"
        );
        let mut made: Vec<String> = Vec::new();
        for entry in walk(&e.ws) {
            let name = entry.file_name().unwrap().to_string_lossy().to_string();
            if [".git", ".codex", ".agents"].contains(&name.to_ascii_lowercase().as_str()) {
                made.push(entry.display().to_string());
            }
        }
        assert!(made.is_empty(), "{ns:?}: created {made:?}: {out:?}");
        assert_eq!(
            std::fs::read_to_string(e.ws.join("o4")).unwrap(),
            "one\ntwo\n"
        );
        assert_eq!(std::fs::read_to_string(e.ws.join("o7")).unwrap(), "piped\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(e.ws.join("o9"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600,
            "the command's umask applies to what the creator makes"
        );
        // control: the same attempts with the guard off create the names
        let out = guarded(&e, ns, true, attempts);
        assert!(out.status.success(), "{out:?}");
        assert!(e.ws.join(".codex").is_dir() && e.ws.join("a/b/.agents").is_dir());
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        out.push(p.clone());
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk(&p));
        }
    }
    out
}

/// The race the design rules out: one thread flips a path buffer between `okok` and `.git` while
/// another calls `mkdir` on it in a loop (the probe's `race-mkdir`). A supervisor that checked the
/// string and let the kernel re-read it (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`) would lose this race.
#[test]
fn flipping_the_path_during_the_call_never_creates_git() {
    let racer = format!("{PROBE} race-mkdir 3");
    let racer = racer.as_str();
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let out = guarded(&e, ns, false, racer);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("RACE-WON"), "{ns:?}: {out:?}");
        assert!(!e.ws.join(".git").exists(), "{ns:?}");
        let made: u64 = stdout
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(made > 100, "{ns:?}: the loop must have run: {out:?}");
        // control: without the guard the flipped name is created
        let out = guarded(&e, ns, true, racer);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("RACE-WON"),
            "{ns:?}: {out:?}"
        );
    }
}

#[test]
fn a_codex_home_that_does_not_exist_yet_cannot_be_created_or_swapped_in() {
    // fifth review round F6a: CODEX_HOME=<root>/sub/ch not existing at start: the command made
    // it and wrote a config.toml the next run read (allow_unix_sockets to tmux)
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let ch = e.ws.join("sub/ch");
        let attempts = format!(
            "mkdir -p sub/ch 2>/dev/null && echo made-ch; \
             mkdir -p prep/ch && echo x > prep/ch/config.toml && mv prep sub 2>/dev/null && echo moved-in; \
             ln -s {ws}/prep sub 2>/dev/null && echo linked-in; \
             mkdir -p other/ch && echo y > other/ch/config.toml && echo control-ok",
            ws = s(&e.ws)
        );
        let out = command(&e, ns, None, ns == Ns::Without, &attempts)
            .env("CODEX_HOME", &ch)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("control-ok"), "{ns:?}: {out:?}");
        for bad in ["made-ch", "moved-in", "linked-in"] {
            assert!(!text.contains(bad), "{ns:?}: {bad}: {out:?}");
        }
        assert!(!ch.exists(), "{ns:?}");
    }
}

#[test]
fn a_codex_home_file_symlinked_into_a_root_stays_read_only() {
    // fifth review round F6b: ~/.codex/config.toml -> ~/dotfiles/codex/config.toml, cwd ~/dotfiles
    let e = env();
    let ch = e.home.join(".codex");
    std::fs::create_dir_all(&ch).unwrap();
    let target = e.ws.join("codex/config.toml");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::create_dir_all(e.ws.join("elsewhere")).unwrap();
    std::fs::write(&target, "model = \"x\"\n").unwrap();
    std::os::unix::fs::symlink(&target, ch.join("config.toml")).unwrap();
    suite_test_support::dirs::chown_tree(&e.base, NOBODY);
    let append =
        "{ echo 'sandbox.allow_unix_sockets = [\"/x\"]' >> codex/config.toml; } 2>&1; echo rc=$?";
    let out = with_codex_home(&e, &ch, append);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Read-only file system") && !text.contains("rc=0"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "model = \"x\"\n");
    // control: the rest of the root is writable (the directory holding the target is held in
    // place, read-only, like every renameable directory above a carve-out; and codex's home is
    // on the deny-read list, its link's target with it (outside review r75 F2), so the
    // directories above the target take no new entries: Landlock's complement rules)
    let out = with_codex_home(&e, &ch, "echo y >> elsewhere/other.toml; echo rc=$?");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rc=0"),
        "{out:?}"
    );
}

#[test]
fn objects_borrowed_through_alternates_stay_read_only() {
    // fifth review round F5: `git clone --shared` (alternates) from a repository in another
    // writable root: rewriting an object there changed what the protected checkout checks out
    let e = env();
    let other = e.base.join("other");
    std::fs::create_dir_all(&other).unwrap();
    suite_test_support::dirs::chown_tree(&e.base, NOBODY);
    git(&e, &other, &["init", "-q", "--bare", "upstream"]);
    git(&e, &e.ws, &["init", "-q"]);
    let alternates = e.ws.join(".git/objects/info/alternates");
    std::fs::create_dir_all(alternates.parent().unwrap()).unwrap();
    std::fs::write(&alternates, format!("{}/upstream/objects\n", s(&other))).unwrap();
    suite_test_support::dirs::chown_tree(&e.base, NOBODY);
    let script = format!(
        "{{ echo x > {o}/upstream/objects/planted; }} 2>&1; echo rc=$?; echo y > {o}/fine && echo control-ok",
        o = s(&other)
    );
    let out = sandboxed(&e, Ns::With, Some(&other), false, &script);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Read-only file system") && !text.contains("rc=0"),
        "{out:?}"
    );
    assert!(text.contains("control-ok"), "{out:?}");
    assert!(!other.join("upstream/objects/planted").exists());
}

#[test]
fn a_repository_planted_under_another_name_is_refused() {
    // round-8 review F2: HEAD + objects/ + refs/ + config (core.worktree = ., fsmonitor) in a
    // directory with no `.git`: the victim's `git status` there ran the fsmonitor
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let marker = e.home.join("PWNED");
        let d = e.ws.join("d");
        let script = format!(
            "mkdir -p d/objects d/refs/heads && cd d && \
             printf '[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tworktree = .\\n\\tfsmonitor = \"id > {m}; false\"\\n' > config && \
             echo 'ref: refs/heads/main' > HEAD && echo planted",
            m = s(&marker)
        );
        let out = guarded(&e, ns, false, &script);
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("planted"),
            "{ns:?}: {out:?}"
        );
        assert!(!d.join("HEAD").exists(), "{ns:?}");
        git_status_may_fail(&e, &d);
        assert!(!marker.exists(), "{ns:?}: nothing ran");
        // control: with the guard off the same plant runs at the victim's git status
        let out = guarded(&e, ns, true, &script);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("planted"),
            "{ns:?}: {out:?}"
        );
        git_status_may_fail(&e, &d);
        assert!(
            marker.exists(),
            "{ns:?}: control: the victim's git status ran it"
        );
    }
}

#[test]
fn a_workspace_symlink_to_proc_self_fd_does_not_reach_the_guards_own_descriptors() {
    // round-8 review F5: `ln -s /proc/self/fd/N x` then an O_WRONLY open of x was resolved by the
    // guard in its own process (its /dev/null; its lifeline pipe, whose write killed it): the
    // open is refused now, for every N, and the guard keeps serving
    let attack = "for n in 0 1 2 3 4 5 6 7 8 9; do ln -sf /proc/self/fd/$n fd$n; done; python3 -c 'import os\n\
        for n in range(10):\n\
        \x20   try:\n\
        \x20       fd = os.open(\"fd%d\" % n, os.O_WRONLY); os.write(fd, b\"x\" * 65536); print(\"opened\", n)\n\
        \x20   except OSError as e:\n\
        \x20       print(\"refused\", e.errno)'; echo after > after.txt && echo guard-alive";
    // control: a descriptor named directly by /proc/self/fd is the command's own, re-opened from
    // it (a file of the workspace opened read-only, re-opened for writing)
    let control = "echo x > c.txt && python3 -c 'import os\nr = os.open(\"c.txt\", os.O_RDONLY)\nw = os.open(\"/proc/self/fd/%d\" % r, os.O_WRONLY | os.O_TRUNC)\nos.write(w, b\"direct-ok\")' && cat c.txt";
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let out = guarded(&e, ns, false, attack);
        let text = String::from_utf8_lossy(&out.stdout);
        // EACCES for a descriptor number the guard holds, ENOENT for one it does not
        assert_eq!(text.matches("refused").count(), 10, "{ns:?}: {out:?}");
        assert!(!text.contains("opened"), "{ns:?}: {out:?}");
        assert!(text.contains("guard-alive"), "{ns:?}: {out:?}");
        let out = guarded(&e, ns, false, control);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("direct-ok"),
            "{ns:?}: {out:?}"
        );
    }
}

/// `hg` (Debian `mercurial`) as the victim outside any sandbox, in `dir`; may fail.
fn hg_status(e: &Env, dir: &Path) {
    if !dir.is_dir() {
        return;
    }
    let _ = Command::new("/usr/bin/hg")
        .args(["status"])
        .current_dir(dir)
        .env("PWD", dir)
        .env("HOME", &e.home)
        .env("HGRCPATH", "")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .expect("Mercurial must be installed (apt-get install mercurial)");
}

/// Outside review r10 F-S1: a Mercurial repository planted by the command (a `pre-status` hook
/// in `.hg/hgrc`) ran at the user's next `hg status`, and an existing `.hg/hgrc` was writable;
/// Jujutsu's and other agents' configuration are the same class. Refused with and without
/// namespaces; control: with `--allow-git-writes` the plant lands and the victim's `hg` runs it.
#[test]
fn a_mercurial_repository_and_other_tools_configuration_cannot_be_planted() {
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let marker = e.home.join("PWNED");
        let plant = format!(
            "mkdir -p sub/.hg/store && echo revlogv1 > sub/.hg/requires && \
             printf '[hooks]\\npre-status = id > {}\\n' > sub/.hg/hgrc && echo planted",
            s(&marker)
        );
        let out = guarded(&e, ns, false, &plant);
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("planted"),
            "{ns:?}: {out:?}"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "{ns:?}: {out:?}"
        );
        hg_status(&e, &e.ws.join("sub"));
        assert!(!marker.exists(), "{ns:?}: the hook ran");
        // an existing repository's hgrc stays read-only
        let repo = e.ws.join("existing");
        std::fs::create_dir_all(&repo).unwrap();
        // an existing darcs repository (its hooks file, empty)
        std::fs::create_dir_all(e.ws.join("olddarcs/_darcs/prefs")).unwrap();
        std::fs::write(e.ws.join("olddarcs/_darcs/prefs/defaults"), "").unwrap();
        // and an existing CVS checkout
        std::fs::create_dir_all(e.ws.join("oldcvs/CVS")).unwrap();
        std::fs::write(e.ws.join("oldcvs/CVS/Root"), ":local:/home/cvs\n").unwrap();
        // and an existing Subversion checkout
        std::fs::create_dir_all(e.ws.join("oldsvn/.svn")).unwrap();
        std::fs::write(e.ws.join("oldsvn/.svn/wc.db"), "db").unwrap();
        suite_test_support::dirs::chown_tree(&e.ws, NOBODY);
        let init = Command::new("/usr/bin/hg")
            .args(["init", s(&repo)])
            .env("HOME", &e.home)
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .expect("Mercurial must be installed (apt-get install mercurial)");
        assert!(init.status.success(), "hg init: {init:?}");
        let append = format!(
            "printf '[hooks]\\npre-status = id > {}\\n' >> existing/.hg/hgrc && echo planted",
            s(&marker)
        );
        let out = guarded(&e, ns, false, &append);
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("planted"),
            "{ns:?}: {out:?}"
        );
        hg_status(&e, &repo);
        assert!(!marker.exists(), "{ns:?}: the hook ran");
        // Jujutsu's repository config and another agent's project settings; darcs, pijul,
        // Breezy and fossil (outside review r74 F2: a `_darcs/prefs/defaults` planted by the
        // command ran its `ALL prehook` at the user's `darcs whatsnew`)
        let out = guarded(
            &e,
            ns,
            false,
            "mkdir -p .jj/repo 2>&1; mkdir .claude 2>&1; mkdir .sl 2>&1; \
             mkdir -p _darcs/prefs 2>&1; mkdir .pijul 2>&1; mkdir .bzr 2>&1; \
             touch .fslckout 2>&1; touch _FOSSIL_ 2>&1; \
             echo 'ALL prehook id' >> olddarcs/_darcs/prefs/defaults 2>&1; \
             mkdir CVS 2>&1; mkdir _MTN 2>&1; echo ':local:/tmp/x' > oldcvs/CVS/Root 2>&1; \
             mkdir .svn 2>&1; echo x >> oldsvn/.svn/wc.db 2>&1; \
             mkdir cvs && echo lower-ok; echo done",
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            said.matches("Permission denied").count()
                + said.matches("Read-only file system").count(),
            14,
            "{ns:?}: {said}"
        );
        assert_eq!(
            std::fs::read_to_string(e.ws.join("oldsvn/.svn/wc.db")).unwrap(),
            "db",
            "{ns:?}: an existing Subversion checkout's database was written (outside review r76 F1)"
        );
        // control: a project's own `cvs` directory (CVS reads only `CVS`)
        assert!(said.contains("lower-ok"), "{ns:?}: {said}");
        assert_eq!(
            std::fs::read_to_string(e.ws.join("oldcvs/CVS/Root")).unwrap(),
            ":local:/home/cvs\n",
            "{ns:?}: an existing CVS checkout was re-pointed (outside review r75 F1)"
        );
        for name in [
            ".jj",
            ".claude",
            ".sl",
            "_darcs",
            ".pijul",
            ".bzr",
            ".fslckout",
            "_FOSSIL_",
            "CVS",
            "_MTN",
            ".svn",
        ] {
            assert!(!e.ws.join(name).exists(), "{ns:?}: {name} was made");
        }
        assert_eq!(
            std::fs::read_to_string(e.ws.join("olddarcs/_darcs/prefs/defaults")).unwrap(),
            "",
            "{ns:?}: an existing darcs repository's hooks were written"
        );
        // control: the escape hatch lets the plant land, and the victim's hg status runs it
        let out = guarded(&e, ns, true, &plant);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("planted"),
            "{ns:?}: {out:?}"
        );
        hg_status(&e, &e.ws.join("sub"));
        assert!(
            marker.exists(),
            "{ns:?}: control: the victim's hg status ran the hook"
        );
    }
}

/// Outside review r21 F1: an existing bare repository under a writable root whose name does not
/// end in `.git` (a local remote, `git init --bare remote`). The name guard recognises it by
/// its contents when the command writes below it: the `hooks/pre-receive` and `config` writes
/// are refused (EACCES, with and without namespaces), and the victim's next `git push` runs
/// nothing. Controls: the same writes outside the sandbox succeed and the push then runs the
/// hook; a directory with `objects/` and `refs/` but no `HEAD` is not a repository and stays
/// writable.
#[test]
fn an_existing_bare_repository_under_another_name_stays_read_only() {
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let share = e.base.join("share");
        let remote = share.join("x/remote");
        let proj = e.base.join("proj");
        let marker = e.home.join("PWNED");
        std::fs::create_dir_all(share.join("x")).unwrap();
        std::fs::create_dir_all(&proj).unwrap();
        // a lookalike without HEAD (objects/ and refs/ only): no repository for git, writable
        std::fs::create_dir_all(share.join("headonly/objects")).unwrap();
        std::fs::create_dir_all(share.join("headonly/refs")).unwrap();
        suite_test_support::dirs::chown_tree(&e.base, NOBODY);
        git(&e, &share.join("x"), &["init", "-q", "--bare", "remote"]);
        git(&e, &proj, &["init", "-q"]);
        let commit = |msg: &str| {
            git(
                &e,
                &proj,
                &[
                    "-c",
                    "user.email=a@b",
                    "-c",
                    "user.name=v",
                    "commit",
                    "-q",
                    "--allow-empty",
                    "-m",
                    msg,
                ],
            )
        };
        commit("init");
        git(&e, &proj, &["remote", "add", "origin", s(&remote)]);
        git(&e, &proj, &["push", "-q", "origin", "HEAD:main"]);
        let script = format!(
            "r={r}; printf '#!/bin/sh\\nid > {m}\\n' > $r/hooks/pre-receive && chmod 755 \
             $r/hooks/pre-receive && echo planted-hook; \
             git config -f $r/config core.fsmonitor 'id > {m}' && echo wrote-config; \
             h={h}; mkdir $h/hooks && echo x > $h/hooks/pre-receive && echo x > $h/config && \
             echo headonly-writable; true",
            r = s(&remote),
            h = s(&share.join("headonly")),
            m = s(&marker)
        );
        let out = command_with(&e, ns, Some(&share), ns == Ns::Without, false, &script)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stdout.contains("planted-hook") && !stdout.contains("wrote-config"),
            "{ns:?}: {stdout} / {stderr}"
        );
        // the name guard's by-content check, with and without namespaces
        assert!(
            stderr.contains("Permission denied"),
            "{ns:?}: expected EACCES: {stderr}"
        );
        // control in the same run: a directory without HEAD is no repository
        assert!(
            stdout.contains("headonly-writable"),
            "{ns:?}: {stdout} / {stderr}"
        );
        assert!(!remote.join("hooks/pre-receive").exists(), "{ns:?}");
        commit("two");
        git(&e, &proj, &["push", "-q", "origin", "HEAD:main"]);
        assert!(!marker.exists(), "{ns:?}: the victim's push ran nothing");

        // control: the same writes outside the sandbox succeed, and the push runs the hook
        let outside = Command::new("sh")
            .args(["-c", &script])
            .env("HOME", &e.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .unwrap();
        let o = String::from_utf8_lossy(&outside.stdout);
        assert!(
            o.contains("planted-hook") && o.contains("wrote-config"),
            "{ns:?}: control outside: {outside:?}"
        );
        commit("three");
        git(&e, &proj, &["push", "-q", "origin", "HEAD:main"]);
        assert!(
            marker.exists(),
            "{ns:?}: control: the planted hook ran at the victim's push"
        );
    }
}

/// Outside review r22 F4: in a project directory shared with another user's group, the command
/// made a nested repository's `.git/config` group-writable and `.git/hooks` group-writable
/// (`chmod g+w`), so that user could plant `core.fsmonitor` or a hook run at the victim's next
/// `git status`. With the name guard on, no mode change below a protected name, nor inside a
/// repository recognised by its contents (a bare `remote`), is made: `EACCES`. Control in the
/// same run: the same `chmod` of an ordinary file succeeds; outside the sandbox the `chmod` of
/// the `.git/config` succeeds.
#[test]
fn no_mode_change_below_a_nested_git_or_inside_a_bare_repository() {
    let e = env();
    let sub = e.ws.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(e.ws.join("plain.txt"), "x").unwrap();
    suite_test_support::dirs::chown_tree(&e.base, NOBODY);
    git(&e, &sub, &["init", "-q"]);
    git(&e, &e.ws, &["init", "-q", "--bare", "remote"]);
    let script = "for f in sub/.git/config sub/.git/hooks remote/config remote/hooks; do \
                  chmod g+w $f 2>&1 || true; done; \
                  touch -d 2001-01-01 remote/config 2>&1 || true; \
                  chmod g+w plain.txt && echo plain-ok";
    let out = guarded(&e, Ns::With, false, script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ctx = format!("{stdout} / {stderr}");
    for f in [
        "sub/.git/config",
        "sub/.git/hooks",
        "remote/config",
        "remote/hooks",
    ] {
        assert!(
            stdout.contains(&format!("changing permissions of '{f}': Permission denied")),
            "{f}: {ctx}"
        );
        let mode = std::fs::metadata(e.ws.join(f)).unwrap().permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            mode.mode() & 0o020,
            0,
            "{f} stayed without group write: {ctx}"
        );
    }
    assert!(
        stdout.contains("cannot touch 'remote/config': Permission denied"),
        "{ctx}"
    );
    assert!(
        stdout.contains("plain-ok"),
        "control in the same run: {ctx}"
    );
    // control: outside the sandbox the same change is made
    let outside = Command::new("chmod")
        .args(["g+w", "sub/.git/config"])
        .current_dir(&e.ws)
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .unwrap();
    assert!(outside.success());
    use std::os::unix::fs::PermissionsExt;
    assert_ne!(
        std::fs::metadata(sub.join(".git/config"))
            .unwrap()
            .permissions()
            .mode()
            & 0o020,
        0
    );
}

/// Outside reviews r23 and r24: routes into an existing bare repository named `remote`.
/// - r23 F1: take it apart until git's test no longer sees a repository (`refs/` emptied and
///   removed), plant a hook and `core.fsmonitor`, put `refs/` back; r24 F1: remove its `HEAD`
///   (a `.bare` repository's worktrees still read its config and hooks). `unlink` and `rmdir`
///   inside a repository are refused now, so it stays a repository and unwritten.
/// - r24 F4: `chmod 000` of the repository's parent made the guard's look for `HEAD` fail and
///   count as "no repository": every doubt now counts as a repository.
/// - r23 F4: exchange it with another bare repository (`renameat2(RENAME_EXCHANGE)`): refused.
/// - r23 F2: reach a file through `/proc/1/cwd/...` (the init's cwd, a magic link the command
///   may not follow itself): refused, the creator follows no magic link mid-path either.
///
/// Controls: a directory holding only a file named `HEAD` is no repository and stays writable
/// (r24 F3: it froze every write below it); outside the sandbox the same dismantling and
/// planting, and the exchange, succeed.
#[test]
fn a_repository_taken_apart_swapped_or_reached_through_proc_stays_unwritten() {
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        std::fs::create_dir_all(e.ws.join("lone")).unwrap();
        // a lone HEAD git would not read (r27 F1: one it would is a repository in the making)
        std::fs::write(e.ws.join("lone/HEAD"), "not a ref\n").unwrap();
        suite_test_support::dirs::chown_tree(&e.base, NOBODY);
        git(&e, &e.ws, &["init", "-q", "--bare", "remote"]);
        git(&e, &e.ws, &["init", "-q", "--bare", "other"]);
        std::fs::create_dir_all(e.ws.join("box")).unwrap();
        suite_test_support::dirs::chown_tree(&e.ws.join("box"), NOBODY);
        git(&e, &e.ws.join("box"), &["init", "-q", "--bare", "remote2"]);
        let attack = r#"
cd remote
rm -rf refs/heads refs/tags 2>&1; rmdir refs 2>&1 && echo REMOVED-refs
rm HEAD 2>&1 && echo REMOVED-head
printf '#!/bin/sh\nid > PWNED\n' > hooks/pre-receive 2>&1 && echo PLANTED-hook
echo "[core]" >> config 2>&1 && echo PLANTED-config
python3 -c "import os; os.truncate(\"config\", 0)" 2>&1 && echo EMPTIED-config
cd ..
echo x > lone/file && echo lone-writable
echo x > lone/head && python3 -c "import os; os.truncate(\"lone/head\", 0)" && echo head-lowercase-ok
python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
r = libc.renameat2(-100, b"remote", -100, b"other", 2)
print("exchange", 0 if r == 0 else ctypes.get_errno())
d = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
try:
    os.close(os.open("1/cwd/viaproc.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=d))
    print("viaproc 0")
except OSError as x:
    print("viaproc", x.errno)
'
cd box/remote2 && chmod 000 .. && echo parent-000
printf 'x' > hooks/pre-receive 2>&1 && echo PLANTED-000
"#;
        let out = guarded(&e, ns, false, attack);
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(e.ws.join("box"), std::fs::Permissions::from_mode(0o755));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ctx = format!("{ns:?}: {stdout} / {stderr}");
        assert!(!stdout.contains("REMOVED"), "{ctx}");
        assert!(!stdout.contains("PLANTED"), "{ctx}");
        assert!(e.ws.join("remote/HEAD").exists(), "{ctx}");
        assert!(e.ws.join("remote/refs/heads").is_dir(), "{ctx}");
        assert!(!e.ws.join("remote/hooks/pre-receive").exists(), "{ctx}");
        // r24 F4's setting held (the parent was 000), the write was not made
        assert!(stdout.contains("parent-000"), "{ctx}");
        assert!(
            !e.ws.join("box/remote2/hooks/pre-receive").exists(),
            "{ctx}"
        );
        assert!(
            stdout.contains("lone-writable"),
            "control in the same run: {ctx}"
        );
        // r25 F1: truncate(path) inside a repository refused; r25 F2: `head` is no `HEAD`
        assert!(!stdout.contains("EMPTIED"), "{ctx}");
        assert_ne!(
            std::fs::metadata(e.ws.join("remote/config")).unwrap().len(),
            0,
            "{ctx}"
        );
        assert!(stdout.contains("head-lowercase-ok"), "{ctx}");
        assert!(stdout.contains("exchange 13"), "{ctx}");
        assert!(
            stdout.contains("viaproc 13") || stdout.contains("viaproc 2"),
            "{ctx}"
        );
        assert!(!e.ws.join("viaproc.txt").exists(), "{ctx}");
    }
    // control: outside the sandbox the same steps work
    let e = env();
    suite_test_support::dirs::chown_tree(&e.base, NOBODY);
    git(&e, &e.ws, &["init", "-q", "--bare", "remote"]);
    git(&e, &e.ws, &["init", "-q", "--bare", "other"]);
    let out = outside(
        &e,
        &[
            "-c",
            "cd remote && rm -rf refs/heads refs/tags && rmdir refs && \
             printf 'x' > hooks/pre-receive && echo PLANTED-hook && cd .. && \
             python3 -c 'import ctypes; l = ctypes.CDLL(None, use_errno=True); \
             print(\"exchange\", l.renameat2(-100, b\"remote\", -100, b\"other\", 2))'",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("PLANTED-hook") && stdout.contains("exchange 0"),
        "control: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Outside review r26: F4, a repository whose `objects` or `refs` is a symbolic link (git follows
/// it) had a hook planted; F1, a protected name itself (a submodule's `.git` file, an empty
/// `.git`, an `.agents` file) was removed; F2, `HEAD` + `objects/` + `refs/` planted by another
/// user in a sticky shared directory froze every write below it.
#[test]
fn linked_repository_parts_protected_names_and_shared_sticky_directories() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let setup = |e: &Env| {
        suite_test_support::dirs::chown_tree(&e.base, NOBODY);
        for r in ["objlink", "reflink"] {
            git(e, &e.ws, &["init", "-q", "--bare", r]);
        }
        std::fs::rename(e.ws.join("objlink/objects"), e.ws.join("store-o")).unwrap();
        symlink("../store-o", e.ws.join("objlink/objects")).unwrap();
        std::fs::rename(e.ws.join("reflink/refs"), e.ws.join("store-r")).unwrap();
        symlink("../store-r", e.ws.join("reflink/refs")).unwrap();
        for r in ["objlink", "reflink"] {
            // git takes both for repositories
            let out = git(e, &e.ws.join(r), &["rev-parse", "--is-bare-repository"]);
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "true", "{r}");
        }
        // F1's protected names, next to an ordinary file
        std::fs::create_dir_all(e.ws.join("proj/sub")).unwrap();
        std::fs::create_dir_all(e.ws.join("proj/empty/.git")).unwrap();
        std::fs::write(e.ws.join("proj/sub/.git"), "gitdir: ../../modules/sub\n").unwrap();
        std::fs::write(e.ws.join("proj/.agents"), "x\n").unwrap();
        std::fs::write(e.ws.join("proj/plain"), "x\n").unwrap();
        suite_test_support::dirs::chown_tree(&e.ws, NOBODY);
        // F2: root's sticky shared directory with a repository's shape, the victim's
        // workspace below it; and the same shape in a directory the victim owns
        let x = e.base.join("x");
        for (d, owner, mode) in [("shared", 0, 0o1777), ("own", NOBODY, 0o755)] {
            let d = x.join(d);
            std::fs::create_dir_all(d.join("objects")).unwrap();
            std::fs::create_dir_all(d.join("refs")).unwrap();
            std::fs::create_dir_all(d.join("w")).unwrap();
            std::fs::write(d.join("HEAD"), "ref: refs/heads/main\n").unwrap();
            suite_test_support::dirs::chown_tree(&d, owner);
            suite_test_support::dirs::chown_tree(&d.join("w"), NOBODY);
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        x
    };
    let attack = r#"
for r in objlink reflink; do
  printf '#!/bin/sh\nid > PWNED\n' > $r/hooks/pre-receive 2>&1 && echo PLANTED-hook-$r
  echo "[core]" >> $r/config 2>&1 && echo PLANTED-config-$r
done
rm proj/sub/.git 2>&1 && echo REMOVED-gitfile
rmdir proj/empty/.git 2>&1 && echo REMOVED-emptygit
rm proj/.agents 2>&1 && echo REMOVED-agents
rm proj/plain && echo plain-removed
X=$1
echo x > $X/shared/w/f && mkdir $X/shared/w/d && rm $X/shared/w/f && echo shared-writable
echo x > $X/own/w/f 2>&1 && echo OWN-WRITTEN
"#;
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let x = setup(&e);
        let mut c = command(&e, ns, Some(&x), ns == Ns::Without, attack);
        // `sh -c SCRIPT` then `$0` and `$1`
        c.args(["sh", s(&x)]);
        let out = c.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ctx = format!("{ns:?}: {stdout} / {stderr}");
        assert!(!stdout.contains("PLANTED"), "F4: {ctx}");
        assert!(!stdout.contains("REMOVED"), "F1: {ctx}");
        assert!(!stdout.contains("OWN-WRITTEN"), "{ctx}");
        assert!(stderr.contains("Permission denied"), "{ctx}");
        assert!(e.ws.join("proj/sub/.git").is_file(), "{ctx}");
        assert!(e.ws.join("proj/empty/.git").is_dir(), "{ctx}");
        assert!(e.ws.join("proj/.agents").is_file(), "{ctx}");
        assert!(!e.ws.join("objlink/hooks/pre-receive").exists(), "{ctx}");
        // controls in the same run: an ordinary file goes; the shared directory is no
        // repository (F2), while the same shape in the victim's own directory is
        assert!(stdout.contains("plain-removed"), "{ctx}");
        assert!(stdout.contains("shared-writable"), "F2: {ctx}");
    }
    // control: outside the sandbox the same steps succeed
    let e = env();
    let x = setup(&e);
    let out = outside(&e, &["-c", attack, "sh", s(&x)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for m in [
        "PLANTED-hook-objlink",
        "PLANTED-hook-reflink",
        "PLANTED-config-objlink",
        "REMOVED-gitfile",
        "REMOVED-emptygit",
        "REMOVED-agents",
        "OWN-WRITTEN",
    ] {
        assert!(stdout.contains(m), "control {m}: {stdout}");
    }
}

/// Outside review r27: F1, a directory with a lone `HEAD` (a bare fixture whose empty `refs/`
/// git did not track) had `config` and hooks planted before `objects`/`refs` were added; an
/// invalid `HEAD` must not become a valid one either (written, or linked to a second name);
/// F3, `mv lib lib.moved` took a submodule's `.git` file away with its directory; FP1, a
/// directory named `HEAD` could not be made.
#[test]
fn a_lone_head_a_directory_holding_git_and_head_directories() {
    let setup = |e: &Env| {
        std::fs::create_dir_all(e.ws.join("fixture")).unwrap();
        std::fs::write(e.ws.join("fixture/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::create_dir_all(e.ws.join("plain")).unwrap();
        std::fs::write(e.ws.join("plain/HEAD"), "hello\n").unwrap();
        std::fs::create_dir_all(e.ws.join("proj/lib")).unwrap();
        std::fs::create_dir_all(e.ws.join("proj/other")).unwrap();
        std::fs::write(e.ws.join("proj/lib/.git"), "gitdir: ../../modules/lib\n").unwrap();
        suite_test_support::dirs::chown_tree(&e.base, NOBODY);
    };
    let attack = r#"
printf '[core]\n\tfsmonitor = id\n' > fixture/config 2>&1 && echo PLANTED-config
mkdir fixture/hooks 2>&1 && echo PLANTED-hooks
echo x > fixture/commondir 2>&1 && echo PLANTED-commondir
echo 'ref: refs/heads/main' > plain/HEAD 2>&1 && echo WROTE-head
python3 -c 'open("plain/HEAD", "r+").write("ref: refs/heads/x")' 2>&1 && echo WROTE-head-in-place
ln plain/HEAD plain/h2 2>&1 && echo LINKED-head
echo x > plain/config && echo plain-writable
mv proj/lib proj/lib.moved 2>&1 && echo MOVED-lib
mv proj/other proj/other.moved && echo other-moved
mkdir -p tree/HEAD && echo x > tree/HEAD/file && echo head-dir-ok
"#;
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        setup(&e);
        let out = guarded(&e, ns, false, attack);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ctx = format!("{ns:?}: {stdout} / {stderr}");
        for bad in ["PLANTED", "WROTE", "LINKED", "MOVED"] {
            assert!(!stdout.contains(bad), "{bad}: {ctx}");
        }
        assert!(stderr.contains("Permission denied"), "{ctx}");
        assert!(e.ws.join("proj/lib/.git").is_file(), "{ctx}");
        assert_eq!(
            std::fs::read_to_string(e.ws.join("plain/HEAD")).unwrap(),
            "hello\n",
            "{ctx}"
        );
        // controls in the same run
        for ok in ["plain-writable", "other-moved", "head-dir-ok"] {
            assert!(stdout.contains(ok), "{ok}: {ctx}");
        }
    }
    let e = env();
    setup(&e);
    let out = outside(&e, &["-c", attack]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for m in [
        "PLANTED-config",
        "PLANTED-hooks",
        "WROTE-head",
        "WROTE-head-in-place",
        "LINKED-head",
        "MOVED-lib",
    ] {
        assert!(stdout.contains(m), "control {m}: {stdout}");
    }
}

/// Session 12: a writable root that is the home (the sandbox started in `~`) or holds it (`HOME`
/// below a root) refuses the run (201) before the command runs, naming both, with and without
/// user namespaces: the startup-file carve-outs could not cover everything in `~` that runs code
/// (every outside review r34-r42 found another entry). The attack: a desktop autostart entry in
/// `~/.config/autostart`, which no carve-out covers. Control: `--allow-writable-home` runs the
/// same script, and it plants the file.
#[test]
fn a_home_that_is_or_lies_below_a_writable_root_refuses_the_run() {
    let script = "mkdir -p \"$HOME/.config/autostart\" && \
                  echo '[Desktop Entry]' > \"$HOME/.config/autostart/x.desktop\" && echo PLANTED";
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        for (home, extra_root, root, word) in [
            (&e.ws, None, &e.ws, "is"),
            (&e.home, Some(e.base.as_path()), &e.base, "holds"),
        ] {
            let planted = home.join(".config/autostart/x.desktop");
            let out = command_flags(&e, ns, extra_root, &[], script)
                .env("HOME", home)
                .env("CODEX_HOME", "/nonexistent/codex-home")
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let ctx = format!("{ns:?} {word}: {out:?}");
            assert_eq!(out.status.code(), Some(201), "{ctx}");
            let want = format!(
                "the writable root {} {word} your home directory {}",
                root.display(),
                home.display()
            );
            assert!(stderr.contains(&want), "{ctx}");
            assert!(stderr.contains("--allow-writable-home"), "{ctx}");
            assert!(!planted.exists(), "{ctx}");
            // control: allowed, the same script plants the autostart entry (without
            // namespaces workspace-write also needs the weaker-sandbox flag)
            let mut flags = vec!["--allow-writable-home"];
            if ns == Ns::Without {
                flags.push("--dangerously-allow-weaker-sandbox");
            }
            // `$CODEX_HOME` elsewhere: a `~/.codex` below a root holds the home in place
            let out = command_flags(&e, ns, extra_root, &flags, script)
                .env("HOME", home)
                .env("CODEX_HOME", "/nonexistent/codex-home")
                .output()
                .unwrap();
            let ctx = format!("control {ns:?} {word}: {out:?}");
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("PLANTED"),
                "{ctx}"
            );
            assert!(planted.exists(), "{ctx}");
            // and the flag's cost is said, truly for the mode (outside review r47 F2: without
            // a mount namespace no startup file is held, and the warning said they were)
            let held = match ns {
                Ns::With => "only the startup files of docs/security.md are held read-only",
                Ns::Without => {
                    "without a mount namespace not even the startup files of docs/security.md are held read-only"
                }
            };
            let warning = format!("warning: --allow-writable-home: {want}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(&warning), "{ctx}");
            assert!(stderr.contains(held), "{ctx}");
            std::fs::remove_dir_all(home.join(".config")).unwrap();
        }
    }
}

/// Session 12: another name of the home (a bind mount of it) as the writable root is the home:
/// compared by device and inode, not only by path. And (outside review r43 F1) a mount of the
/// home *below* a writable root (`/srv/data/homes/u` = `~`, `--writable-root /srv/data`; a bind
/// of `/home` under `/tmp`) exposes it there: refused too, as are an overlay whose upper layer
/// is the home and a bind of part of it (`~/.config`) there (r44 F1, F2). Run as root in a private mount
/// namespace (`unshare -m`), with `HOME` the victim's home. Controls: `--allow-writable-home`,
/// and the command then writes the home through the mount.
#[test]
fn a_mount_of_the_home_as_or_below_the_writable_root_refuses_the_run() {
    let e = env();
    // `$1`: the mount command; the sandbox starts in `$2` and writes `$3/planted`
    let run = |mount: &str, cwd: &Path, at: &Path, flags: &str| {
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "eval \"$1\" && cd \"$2\" && \
                 \"$4\" --sandbox-policy-cwd \"$2\" --sandbox-policy '{{\"mode\":\"workspace-write\"}}' \
                 {flags} -- sh -c 'echo x > \"$0/planted\" && echo PLANTED' \"$3\""
            ))
            .args(["sh", mount, s(cwd), s(at), &helper()])
            .env("HOME", &e.home)
            .env("CODEX_HOME", "/nonexistent/codex-home")
            .env_remove("TMPDIR")
            .stdin(Stdio::null())
            .output()
            .expect("unshare (util-linux) must be installed")
    };
    let (alias, inside, ov, cfg, ov2, ovx, nest) = (
        e.base.join("alias"),
        e.ws.join("m"),
        e.ws.join("ov"),
        e.ws.join("cfg"),
        e.ws.join("ov2"),
        e.base.join("ovx"),
        e.ws.join("nest"),
    );
    for d in [&alias, &inside, &ov, &cfg, &ov2, &ovx, &nest] {
        std::fs::create_dir_all(d).unwrap();
    }
    for d in [".config", "up", "w"] {
        let d = &e.home.join(d);
        std::fs::create_dir_all(d).unwrap();
    }
    for d in ["low", "work"] {
        std::fs::create_dir_all(e.base.join(d)).unwrap();
    }
    let home_is = |at: &Path| {
        format!(
            "your home directory {} is mounted at {}, inside the writable root {}",
            e.home.display(),
            at.display(),
            e.ws.display()
        )
    };
    let cases = [
        // the root is a bind mount of the home
        (
            format!("mount --bind {} {}", s(&e.home), s(&alias)),
            &alias,
            &alias,
            e.home.join("planted"),
            format!(
                "the writable root {} is your home directory {}",
                alias.display(),
                e.home.display()
            ),
        ),
        // r43 F1: the home bound inside the root
        (
            format!("mount --bind {} {}", s(&e.home), s(&inside)),
            &e.ws,
            &inside,
            e.home.join("planted"),
            home_is(&inside),
        ),
        // r44 F1: an overlay whose upper layer is the home
        (
            format!(
                "mount -t overlay overlay -o lowerdir={},upperdir={},workdir={} {}",
                s(&e.base.join("low")),
                s(&e.home),
                s(&e.base.join("work")),
                s(&ov)
            ),
            &e.ws,
            &ov,
            e.home.join("planted"),
            home_is(&ov),
        ),
        // r44 F2: part of the home (`~/.config`) bound inside the root
        (
            format!("mount --bind {} {}", s(&e.home.join(".config")), s(&cfg)),
            &e.ws,
            &cfg,
            e.home.join(".config/planted"),
            format!(
                "{} (in your home directory {}) is mounted at {}, inside the writable root {}",
                e.home.join(".config").display(),
                e.home.display(),
                cfg.display(),
                e.ws.display()
            ),
        ),
        // r45 F2: an overlay whose layers are relative paths (as Docker's overlay2 gives them)
        (
            format!(
                "cd {} && mount -t overlay overlay -o lowerdir=low,upperdir=home,workdir=work {}",
                s(&e.base),
                s(&ov2)
            ),
            &e.ws,
            &ov2,
            e.home.join("planted"),
            format!(
                "the overlay mounted at {}, inside the writable root {}, has the layer home,",
                ov2.display(),
                e.ws.display()
            ),
        ),
        // r45 F2: what shows the home, shown again (an overlay whose upper layer is a bind of
        // the home outside the roots)
        (
            format!(
                "mount --bind {} {} && \
                 mount -t overlay overlay -o lowerdir={},upperdir={}/up,workdir={}/w {}",
                s(&e.home),
                s(&ovx),
                s(&e.base.join("low")),
                s(&ovx),
                s(&ovx),
                s(&nest)
            ),
            &e.ws,
            &nest,
            e.home.join("up/planted"),
            format!(
                "{} (in your home directory {}) is mounted at {}, inside the writable root {}",
                e.home.join("up").display(),
                e.home.display(),
                nest.display(),
                e.ws.display()
            ),
        ),
    ];
    for (mount, cwd, at, planted, says) in &cases {
        let out = run(mount, cwd, at, "");
        let ctx = format!("{says}: {out:?}");
        assert_eq!(out.status.code(), Some(201), "{ctx}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says.as_str()),
            "{ctx}"
        );
        assert!(!planted.exists(), "{ctx}");
        // control: allowed, the command writes the home through the mount
        let out = run(mount, cwd, at, "--allow-writable-home");
        let ctx = format!("control {says}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("PLANTED"),
            "{ctx}"
        );
        assert!(planted.exists(), "{ctx}");
        std::fs::remove_file(planted).unwrap();
    }
    // control: a project directory inside the home bound in the root is not refused when the
    // project is itself a root (`--writable-root`)
    let proj = e.home.join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind {} {} && cd {} && \"$1\" --sandbox-policy-cwd {} --sandbox-policy \
             '{{\"mode\":\"workspace-write\",\"writable_roots\":[\"{}\"]}}' -- true",
            s(&proj),
            s(&inside),
            s(&e.ws),
            s(&e.ws),
            s(&proj)
        ))
        .args(["sh", &helper()])
        .env("HOME", &e.home)
        .env("CODEX_HOME", "/nonexistent/codex-home")
        .env_remove("TMPDIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// Outside review r44 F1: an overlay with the home as a lower layer showed `~/.ssh` at its mount
/// point, readable in the sandbox while `~/.ssh` itself was denied: an overlay's layers count as
/// other names of what they show, for the deny-read list too. Read-only policy, as root in a
/// private mount namespace. Control: a file beside the secret reads through the overlay.
#[test]
fn a_secret_shown_by_an_overlay_layer_stays_unreadable() {
    let e = env();
    std::fs::create_dir_all(e.home.join(".ssh")).unwrap();
    std::fs::write(e.home.join(".ssh/id_ed25519"), "SECRET\n").unwrap();
    std::fs::write(e.home.join("notes"), "public\n").unwrap();
    let (low, ovr) = (e.base.join("low"), e.base.join("ovr"));
    for d in [&low, &ovr] {
        std::fs::create_dir_all(d).unwrap();
    }
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t overlay overlay -o lowerdir={}:{} {} && \"$1\" --sandbox-policy-cwd {} \
             --sandbox-policy '{{\"mode\":\"read-only\"}}' -- sh -c \
             'cat {}/.ssh/id_ed25519 2>&1; cat {}/notes'",
            s(&e.home),
            s(&low),
            s(&ovr),
            s(&e.ws),
            s(&ovr),
            s(&ovr)
        ))
        .args(["sh", &helper()])
        .current_dir(&e.ws)
        .env("PWD", &e.ws)
        .env("HOME", &e.home)
        .env("CODEX_HOME", "/nonexistent/codex-home")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("SECRET"), "{out:?}");
    assert!(stdout.contains("Permission denied"), "{out:?}");
    assert!(stdout.contains("public"), "control: {out:?}");
}

/// Outside review r43 F5: a home whose path as written (`HOME`, or the passwd entry) goes
/// through a link inside a writable root (`/data/v/home -> /data/real/v`, the sandbox started
/// in `/data/v`): the home itself is outside the root, but the command could re-point the link
/// and the victim's next login would run its profile. Refused (201) naming the link. Control:
/// `HOME` written as the real directory runs.
#[test]
fn a_home_reached_through_a_link_in_a_writable_root_refuses_the_run() {
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        std::os::unix::fs::symlink(&e.home, e.ws.join("homelink")).unwrap();
        suite_test_support::dirs::chown_tree(&e.base, NOBODY);
        let script = "ln -sfn /tmp homelink 2>&1; echo ran";
        // `$CODEX_HOME` elsewhere: `~/.codex` behind the link would refuse the run on its own
        let out = command_flags(&e, ns, None, &[], script)
            .env("HOME", e.ws.join("homelink"))
            .env("CODEX_HOME", "/nonexistent/codex-home")
            .output()
            .unwrap();
        let ctx = format!("{ns:?}: {out:?}");
        assert_eq!(out.status.code(), Some(201), "{ctx}");
        let says = format!(
            "is reached through {}, inside the writable root {}",
            e.ws.join("homelink").display(),
            e.ws.display()
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&says),
            "{ctx}"
        );
        assert_eq!(
            std::fs::read_link(e.ws.join("homelink")).unwrap(),
            e.home,
            "{ctx}"
        );
        // control: the same home written as the real directory
        let mut flags = vec![];
        if ns == Ns::Without {
            flags.push("--dangerously-allow-weaker-sandbox");
        }
        let out = command_flags(&e, ns, None, &flags, "echo ran")
            .env("HOME", &e.home)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "control {ns:?}: {out:?}");
    }
}

/// Outside review r29 F4: with the sandbox started in `~` (a writable root), `core.fsmonitor`
/// added to `~/.gitconfig` ran at the user's next `git status`. The startup files in `~` are
/// read-only carve-outs then, existing or not; other files in `~` stay writable.
#[test]
fn startup_files_in_a_home_that_is_a_writable_root_stay_read_only() {
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        std::fs::write(e.ws.join(".gitconfig"), "[user]\n\tname = v\n").unwrap();
        suite_test_support::dirs::chown_tree(&e.base, NOBODY);
        let script = "printf '[core]\\n\\tfsmonitor = id\\n' >> .gitconfig 2>&1 && echo WROTE-gitconfig; \
                      echo 'id' > .zshrc 2>&1 && echo CREATED-zshrc; \
                      echo 'id' > .xsession 2>&1 && echo CREATED-xsession; \
                      echo x > notes.txt && echo other-writable";
        let mut flags = vec!["--allow-writable-home"];
        if ns == Ns::Without {
            flags.push("--dangerously-allow-weaker-sandbox");
        }
        let out = command_flags(&e, ns, None, &flags, script)
            .env("HOME", &e.ws)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ctx = format!("{ns:?}: {stdout} / {stderr}");
        assert!(!stdout.contains("CREATED-zshrc"), "{ctx}");
        assert!(!e.ws.join(".zshrc").exists(), "{ctx}");
        // outside review r32 F6: the X session file Debian's Xsession runs
        assert!(!stdout.contains("CREATED-xsession"), "{ctx}");
        if ns == Ns::With {
            assert!(!stdout.contains("WROTE-gitconfig"), "{ctx}");
            assert_eq!(
                std::fs::read_to_string(e.ws.join(".gitconfig")).unwrap(),
                "[user]\n\tname = v\n",
                "{ctx}"
            );
        }
        assert!(stdout.contains("other-writable"), "control: {ctx}");
    }
    // outside review r30 F2: a `~` strictly below a writable root (`HOME=/tmp/x/home`) stays
    // writable: protecting its startup files there would hold the directories above them, the
    // whole home with them, read-only (not covered there; docs/security.md). A `~/.codex`
    // there still is (its swap rule, unchanged).
    let e = env();
    suite_test_support::dirs::chown_tree(&e.base, NOBODY);
    let out = command_flags(
        &e,
        Ns::With,
        Some(&e.base),
        &["--allow-writable-home"],
        "echo x > \"$HOME/notes.txt\" && echo home-writable",
    )
    // `$CODEX_HOME` elsewhere: a `~/.codex` there is held in place the same way, by design
    .env("CODEX_HOME", "/nonexistent/codex-home")
    .output()
    .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("home-writable"),
        "{out:?}"
    );
}

/// Outside review r29 F2: inside the roots `chmod g+w` (and `chgrp` to a group shared with
/// another local user) handed that group write access to the user's files. A group write bit is
/// not added, nor the group changed, unless the group is the user's private one. Control in the
/// same run: the same `chmod g+w` on a file of the user's own group (65534, no other member).
#[test]
fn no_group_write_handed_to_a_shared_group() {
    use std::os::unix::fs::MetadataExt;
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        std::fs::write(e.ws.join("shared.sh"), "echo hi\n").unwrap();
        std::fs::write(e.ws.join("own.sh"), "echo hi\n").unwrap();
        suite_test_support::dirs::chown_tree(&e.base, NOBODY);
        // the user's file, in group 100 (`users`: not the user's private group)
        std::os::unix::fs::chown(e.ws.join("shared.sh"), Some(NOBODY), Some(100)).unwrap();
        let script = "chmod g+w shared.sh 2>&1 && echo GROUP-WRITABLE; \
                      python3 -c 'import os; os.chmod(\"shared.sh\", 0o664)' 2>&1 && echo GROUP-WRITABLE-2; \
                      chmod g+w own.sh && echo own-ok";
        let out = command_with(&e, ns, None, ns == Ns::Without, false, script)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ctx = format!("{ns:?}: {stdout} / {stderr}");
        assert!(!stdout.contains("GROUP-WRITABLE"), "{ctx}");
        let mode = std::fs::metadata(e.ws.join("shared.sh")).unwrap().mode();
        assert_eq!(mode & 0o020, 0, "{ctx}");
        assert!(stdout.contains("own-ok"), "control: {ctx}");
        assert_ne!(
            std::fs::metadata(e.ws.join("own.sh")).unwrap().mode() & 0o020,
            0,
            "{ctx}"
        );
    }
}

/// Outside review r31 F1: another local user's setgid `2777` directory gives what the command
/// creates there that user's group; with `umask 002` a script made there was group-writable,
/// and `mv` put it over the workspace's `build.sh`. What the command creates in a setgid
/// directory of someone else loses the group write and setgid bits; control in the same run:
/// the same under `umask 002` in the user's own directory keeps its group write bit.
#[test]
fn nothing_created_in_another_users_setgid_directory_is_group_writable() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let x = e.base.join("x");
        let shared = x.join("shared");
        std::fs::create_dir_all(&shared).unwrap();
        suite_test_support::dirs::chown_tree(&e.base, NOBODY);
        // another user's (root's) setgid directory in group 100, writable by everyone
        std::os::unix::fs::chown(&shared, Some(0), Some(100)).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o2777)).unwrap();
        let script = format!(
            "umask 002; S={s}; echo 'echo hi' > $S/build.sh && chmod a+x $S/build.sh && \
             mkdir $S/d && echo x > own.sh && echo made",
            s = s(&shared)
        );
        let out = command_with(&e, ns, Some(&x), ns == Ns::Without, false, &script)
            .output()
            .unwrap();
        let ctx = printed_made(&out, ns);
        let file = std::fs::metadata(shared.join("build.sh")).unwrap();
        assert_eq!(file.gid(), 100, "{ctx}");
        assert_eq!(file.mode() & 0o7777, 0o755, "{ctx}");
        let dir = std::fs::metadata(shared.join("d")).unwrap();
        assert_eq!(dir.mode() & 0o2020, 0, "{ctx}");
        // control: umask 002 in the user's own directory
        let own = std::fs::metadata(e.ws.join("own.sh")).unwrap();
        assert_eq!(own.mode() & 0o020, 0o020, "{ctx}");
    }
}

/// Whether `path` has an ACL beyond its mode bits (a named entry, a mask, or default entries),
/// as `getfacl` (Debian `acl`) prints it.
fn has_acl(path: &Path) -> bool {
    let out = Command::new("getfacl")
        .args(["-c", "-p"])
        .arg(path)
        .output()
        .expect("getfacl (Debian acl) is needed");
    assert!(out.status.success(), "getfacl {}", path.display());
    String::from_utf8_lossy(&out.stdout).lines().any(|l| {
        l.starts_with("user:") && !l.starts_with("user::")
            || l.starts_with("mask::")
            || l.starts_with("default:")
    })
}

/// Outside review r32: what a directory passes on to what the command creates in it.
/// - F1: another user's directory with a default ACL (`setfacl -d -m u:1:rwx`): a file made
///   there inherited the entry, `chmod 0775` opened the ACL mask, and `mv` took it over the
///   workspace's `build.sh`. Now it is created with no inherited ACL (a directory neither), and
///   adding a group write bit to a file that has an ACL is refused (its group bits are the mask).
/// - F2: a directory made in another user's setgid directory keeps that group; what is made in
///   it under `umask 002` was group-writable. F4b: the user's own project in a group shared with
///   another user (a setgid directory whose group is not the user's private one): the same.
///   Now what is created in any setgid directory of a group not the user's private one has no
///   group write bit, from its creation on (F3: stripping it afterwards left a window).
///
/// Controls in the same run: `umask 002` in the user's own directory keeps its group write bit,
/// `chmod g+w` of a file without an ACL in the workspace succeeds.
#[test]
fn nothing_created_under_a_shared_group_or_a_default_acl_is_writable_by_another_user() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let x = e.base.join("x");
        let shared = x.join("shared");
        let acl = x.join("acl");
        let own_shared = x.join("own-shared");
        for d in [&shared, &acl, &own_shared] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(e.ws.join("acl-file"), "x").unwrap();
        std::fs::write(e.ws.join("plain"), "x").unwrap();
        suite_test_support::dirs::chown_tree(&e.base, NOBODY);
        // another user's (root's) setgid directory in group 100, writable by everyone
        std::os::unix::fs::chown(&shared, Some(0), Some(100)).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o2777)).unwrap();
        // the user's own directory, setgid in a group shared with others (F4b)
        std::os::unix::fs::chown(&own_shared, Some(NOBODY), Some(100)).unwrap();
        std::fs::set_permissions(&own_shared, std::fs::Permissions::from_mode(0o2775)).unwrap();
        // another user's directory with a default ACL naming uid 1
        std::os::unix::fs::chown(&acl, Some(0), Some(0)).unwrap();
        std::fs::set_permissions(&acl, std::fs::Permissions::from_mode(0o777)).unwrap();
        let setfacl = |args: &[&str], p: &Path| {
            let st = Command::new("setfacl")
                .args(args)
                .arg(p)
                .status()
                .expect("setfacl (Debian acl) is needed");
            assert!(st.success(), "setfacl {args:?} {}", p.display());
        };
        setfacl(&["-d", "-m", "u:1:rwx"], &acl);
        setfacl(&["-m", "u:1:r--"], &e.ws.join("acl-file"));
        let script = format!(
            "umask 002; S={s}; A={a}; O={o}; \
             mkdir $S/d2 && echo 'echo hi' > $S/d2/in.sh && \
             echo 'echo hi' > $O/build.sh && mkdir $O/sub && \
             echo 'echo hi' > $A/b.sh && chmod 0775 $A/b.sh && mkdir $A/sub && echo x > $A/sub/f && \
             mkfifo $A/fifo && \
             echo x > own.sh && chmod g+w plain && echo made; \
             chmod g+w acl-file 2>/dev/null; echo acl-chmod=$?",
            s = s(&shared),
            a = s(&acl),
            o = s(&own_shared)
        );
        let out = command_with(&e, ns, Some(&x), ns == Ns::Without, false, &script)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let ctx = printed_made(&out, ns);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
        // F2: in a directory made in another user's setgid directory
        assert_eq!(mode(&shared.join("d2")) & 0o2020, 0, "{ctx}");
        // (d2 is not setgid any more: what is made in it has the user's own group)
        let in_sh = std::fs::metadata(shared.join("d2/in.sh")).unwrap();
        assert!(
            in_sh.gid() != 100 || in_sh.mode() & 0o020 == 0,
            "{:o} gid {}: {ctx}",
            in_sh.mode(),
            in_sh.gid()
        );
        // F4b: the user's own setgid directory of a shared group
        assert_eq!(mode(&own_shared.join("build.sh")) & 0o020, 0, "{ctx}");
        assert_eq!(mode(&own_shared.join("sub")) & 0o2020, 0, "{ctx}");
        // F1: no inherited ACL, on a file, a directory, what is made in it, and a FIFO
        for p in ["b.sh", "sub", "sub/f", "fifo"] {
            assert!(!has_acl(&acl.join(p)), "{p} kept an ACL: {ctx}");
        }
        assert_eq!(mode(&acl.join("b.sh")), 0o775, "{ctx}");
        assert!(stdout.contains("acl-chmod=1"), "{ctx}");
        assert_eq!(mode(&e.ws.join("acl-file")) & 0o020, 0, "{ctx}");
        // controls
        assert_eq!(mode(&e.ws.join("own.sh")) & 0o020, 0o020, "{ctx}");
        assert_eq!(mode(&e.ws.join("plain")) & 0o020, 0o020, "{ctx}");
    }
}

/// Outside review r32 F4b, with a victim whose own directories are not the overflow uid's (the
/// other tests' victim, uid 65534, makes every directory it owns count as someone else's inside
/// a user namespace): root runs the sandbox in its own setgid directory of group 100 (a group
/// root does not have to itself); with `umask 002` what is made there gets no group write bit
/// and a directory no setgid bit. Control: root's own directory of its private group 0 keeps
/// both.
#[test]
fn a_users_own_setgid_directory_of_a_shared_group_passes_no_group_write_on() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let e = env();
    let x = e.base.join("x");
    let shared = x.join("shared-group");
    let private = x.join("private-group");
    for (d, gid) in [(&shared, 100), (&private, 0)] {
        std::fs::create_dir_all(d).unwrap();
        std::os::unix::fs::chown(d, Some(0), Some(gid)).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o2775)).unwrap();
    }
    let policy = format!(
        r#"{{"mode":"workspace-write","writable_roots":["{}"]}}"#,
        s(&x)
    );
    let out = Command::new(helper())
        .arg("--sandbox-policy-cwd")
        .arg(&e.ws)
        .arg("--sandbox-policy")
        .arg(policy)
        .args(["--", "sh", "-c"])
        .arg(format!(
            "umask 002; for d in {} {}; do echo x > $d/f && mkdir $d/d || exit 1; done; echo made",
            s(&shared),
            s(&private)
        ))
        .current_dir(&e.ws)
        .env("PWD", &e.ws)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let ctx = printed_made(&out, Ns::With);
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(shared.join("f")), 0o644, "{ctx}");
    assert_eq!(mode(shared.join("d")), 0o755, "{ctx}");
    assert_eq!(mode(private.join("f")), 0o664, "{ctx}");
    assert_eq!(mode(private.join("d")), 0o2775, "{ctx}");
}

/// Outside review r34 F1: a startup file that is a symlink (`~/.bashrc -> dotfiles/bashrc`, as
/// dotfile managers make) was skipped: the command wrote through it and re-pointed it. A mount
/// cannot hold a link in place, so the run is refused (201) naming it, and nothing is written.
/// Control: the same home with a regular `.bashrc` runs (the test above).
#[test]
fn a_startup_file_that_is_a_symlink_refuses_the_run() {
    let e = env();
    std::fs::create_dir_all(e.ws.join("dotfiles")).unwrap();
    std::fs::write(e.ws.join("dotfiles/bashrc"), "x\n").unwrap();
    std::os::unix::fs::symlink("dotfiles/bashrc", e.ws.join(".bashrc")).unwrap();
    suite_test_support::dirs::chown_tree(&e.base, NOBODY);
    let out = run_in_home(&e, "echo pwn >> .bashrc; echo ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ctx = format!("{} / {stderr}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(201), "{ctx}");
    assert!(stderr.contains(".bashrc"), "{ctx}");
    assert_eq!(
        std::fs::read_to_string(e.ws.join("dotfiles/bashrc")).unwrap(),
        "x\n",
        "{ctx}"
    );
}

/// The command run as the victim with `~` the workspace (a writable root: codex started in
/// `~`, allowed by `--allow-writable-home`), with namespaces.
fn run_in_home(e: &Env, script: &str) -> Output {
    command_flags(e, Ns::With, None, &["--allow-writable-home"], script)
        .env("HOME", &e.ws)
        .output()
        .unwrap()
}

/// Outside review r35 F1 and F4: with `~` a writable root, a dotfile-manager layout gave the
/// command writable startup files by other names: `~/.ssh/config -> ../dotfiles/ssh_config`
/// and `~/.bashrc.d/a.sh -> ../dotfiles/a.sh` (links inside startup directories), the file
/// `~/.gitconfig` includes (`[include] path = ~/gitinc/local`), and vim's
/// `~/.vim/plugin/`. All stay unwritten now (the link targets and included files are carve-outs
/// too; `.vim` is a startup directory; `~/dotfiles`, which could be renamed away with them,
/// is held read-only whole, as for `$CODEX_HOME`'s links). Control: a file of `~` is written
/// (an existing one: with `~/.ssh` denied inside the root, `~` itself takes no new names).
#[test]
fn files_startup_files_lead_to_stay_read_only() {
    let e = env();
    let h = &e.ws;
    for d in [
        "dotfiles",
        ".ssh",
        ".bashrc.d",
        "gitinc",
        ".vim/plugin",
        "tools",
        "tools2",
        "tools3",
        "tools4",
        "tools5",
        "hk",
        "scripts",
        "tpl/hooks",
    ] {
        std::fs::create_dir_all(h.join(d)).unwrap();
    }
    for f in [
        "dotfiles/ssh_config",
        "dotfiles/a.sh",
        "gitinc/local",
        "tools/fsmon",
        "scripts/pc",
        "tools2/s.sh",
        "tools3/x",
        "tools4/t.sh",
        "tools5/g.sh",
    ] {
        std::fs::write(h.join(f), "x\n").unwrap();
    }
    // r40 F1: a hook in `core.hooksPath` that is a link leads to a file that is the hook
    std::os::unix::fs::symlink("../scripts/pc", h.join("hk/pre-commit")).unwrap();
    std::fs::write(h.join("notes.txt"), "x\n").unwrap();
    std::fs::write(h.join(".inputrc"), "set bell-style none\n").unwrap();
    std::os::unix::fs::symlink("../dotfiles/ssh_config", h.join(".ssh/config")).unwrap();
    std::os::unix::fs::symlink("../dotfiles/a.sh", h.join(".bashrc.d/a.sh")).unwrap();
    // r38 F1: the key on the section's line, a spelling git reads; a program git runs, named
    // by a value; r40 F2/F4: a byte-order mark and a Latin-1 name (git reads both: they hid
    // every include); r40 F1/F5: `core.hooksPath` and `init.templateDir`
    let mut gitconfig = b"\xef\xbb\xbf[user]\n\tname = Jos\xe9\n".to_vec();
    gitconfig.extend_from_slice(
        b"[include]path = ~/gitinc/local ; shared\n\
          [core]\n\tfsmonitor = ~/tools/fsmon --quiet\n\thooksPath = ~/hk\n\
          [init]\n\ttemplateDir = ~/tpl\n\
          [credential]\n\thelper = \"!f() { $HOME/tools3/x; }; f\"\n\
          [core]\n\tpager = sh ~/tools2/s.sh\n\
          [diff \"x\"]\n\ttextconv = \\\"${HOME}\\\"/tools4/t.sh\n\
          [gpg]\n\tprogram = ~/tools5/g.s[h]\n",
    );
    std::fs::write(h.join(".gitconfig"), gitconfig).unwrap();
    suite_test_support::dirs::chown_tree(&e.base, NOBODY);
    let script = "for f in dotfiles/ssh_config dotfiles/a.sh gitinc/local tools/fsmon scripts/pc \
                    tpl/hooks/post-checkout tools2/s.sh tools3/x tools4/t.sh tools5/g.sh; do \
                    echo pwn >> $f 2>/dev/null && echo WROTE-$f; done; \
                  echo pwn > .vim/plugin/p.vim 2>/dev/null && echo WROTE-vim; \
                  echo pwn >> .inputrc 2>/dev/null && echo WROTE-inputrc; \
                  echo y >> notes.txt && echo other-writable";
    let out = run_in_home(&e, script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ctx = format!("{stdout} / {}", String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.contains("WROTE"), "{ctx}");
    for f in [
        "dotfiles/ssh_config",
        "dotfiles/a.sh",
        "gitinc/local",
        "tools/fsmon",
        "scripts/pc",
        "tools2/s.sh",
        "tools3/x",
        "tools4/t.sh",
        "tools5/g.sh",
    ] {
        assert_eq!(
            std::fs::read_to_string(h.join(f)).unwrap(),
            "x\n",
            "{f}: {ctx}"
        );
    }
    assert!(!h.join(".vim/plugin/p.vim").exists(), "{ctx}");
    assert!(!h.join("tpl/hooks/post-checkout").exists(), "{ctx}");
    assert!(stdout.contains("other-writable"), "control: {ctx}");
}

/// Outside review r42 F2: `~/a/../t/e.sh` named in `~/.gitconfig` was held as `~/t/e.sh`
/// while `~/a` could be replaced by a link (then `..` leads elsewhere). The path is kept as
/// written, and the swap rules hold `~/a` in place. (No deny-read entry directly in `~` here:
/// one would block every rename in `~` and hide the check.)
#[test]
fn a_directory_a_git_value_steps_out_of_with_dotdot_stays_in_place() {
    let e = env();
    for d in ["a/b", "a/c", "t"] {
        std::fs::create_dir_all(e.ws.join(d)).unwrap();
    }
    std::fs::write(e.ws.join("t/e.sh"), "x\n").unwrap();
    suite_test_support::dirs::chown_tree(&e.base, NOBODY);
    // r43 F4: every directory a `..` steps out of, not only the first (`a/c` was not held)
    for (value, held) in [
        ("[core]\n\teditor = ~/a/b/../c/../../t/e.sh\n", "a/c"),
        ("[sequence]\n\teditor = ~/a/../t/e.sh\n", "a"),
    ] {
        std::fs::write(e.ws.join(".gitconfig"), value).unwrap();
        let out = run_in_home(
            &e,
            &format!(
                "mv {held} {held}.old 2>&1 && ln -s /tmp {held} && echo SWAPPED; \
                 echo x > other && echo other-ok"
            ),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let ctx = format!(
            "{value}: {stdout} / {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.contains("SWAPPED"), "{ctx}");
        let d = e.ws.join(held);
        assert!(d.is_dir() && !d.is_symlink(), "{ctx}");
        assert!(stdout.contains("other-ok"), "control: {ctx}");
    }
}

/// Outside review r41 F2: a path `~/.gitconfig` names that is a link, or passes through one
/// (`~/.gitconfig.local -> dotfiles/gitconfig.local`, stow's layout), was re-pointed while only
/// its target was held read-only; the victim's `git status` ran the new include. Such a path
/// refuses the run (201) naming the link, as a startup file that is a link does. Control: the
/// same include as a regular file runs.
#[test]
fn a_git_include_through_a_link_refuses_the_run() {
    let e = env();
    std::fs::create_dir_all(e.ws.join("dotfiles")).unwrap();
    std::fs::write(
        e.ws.join("dotfiles/gitconfig.local"),
        "[user]\n\tname = v\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("dotfiles/gitconfig.local", e.ws.join(".gitconfig.local")).unwrap();
    std::fs::write(
        e.ws.join(".gitconfig"),
        "[include]\n\tpath = ~/.gitconfig.local\n",
    )
    .unwrap();
    suite_test_support::dirs::chown_tree(&e.base, NOBODY);
    let run = |e: &Env| run_in_home(e, "echo ran");
    let out = run(&e);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(201), "{stderr}");
    assert!(stderr.contains(".gitconfig.local"), "{stderr}");
    // control: a regular file there
    std::fs::remove_file(e.ws.join(".gitconfig.local")).unwrap();
    std::fs::write(e.ws.join(".gitconfig.local"), "[user]\n\tname = v\n").unwrap();
    suite_test_support::dirs::chown_tree(&e.base, NOBODY);
    let out = run(&e);
    assert_eq!(out.status.code(), Some(0), "control: {out:?}");
}

/// Outside review r41 F4: with `~` a writable root, `chmod 711 ~` let another local user read
/// `~/.npmrc` (mode 0644 behind the home's 0700), a deny-read file the command itself could not
/// read. A directory above a deny-read path gains no group or other read or search bit now.
/// Control: the same `chmod` on a directory above no denied path.
#[test]
fn a_directory_above_a_denied_file_is_not_opened_to_others() {
    use std::os::unix::fs::PermissionsExt;
    let e = env();
    std::fs::write(e.ws.join(".npmrc"), "//registry/:_authToken=SECRET\n").unwrap();
    std::fs::set_permissions(e.ws.join(".npmrc"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::create_dir_all(e.ws.join("sub")).unwrap();
    suite_test_support::dirs::chown_tree(&e.base, NOBODY);
    std::fs::set_permissions(&e.ws, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(e.ws.join("sub"), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = run_in_home(
        &e,
        "chmod 711 . 2>&1; echo home=$?; chmod 755 sub && echo sub-ok",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ctx = format!("{stdout} / {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("home=1"), "{ctx}");
    assert!(stdout.contains("Operation not permitted"), "{ctx}");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&e.ws), 0o700, "{ctx}");
    assert!(stdout.contains("sub-ok"), "control: {ctx}");
    assert_eq!(mode(&e.ws.join("sub")), 0o755, "control: {ctx}");
}

/// Outside review r35 F2: `~/.bashrc` a hard link of `~/dotfiles/bashrc`: the read-only mount
/// holds one name, and the command appended to the other. A carve-out with more than one link
/// refuses the run (201) naming it; nothing is written. Control: the same home with the link
/// count back at one runs (the test above covers the carve-out itself).
#[test]
fn a_hard_linked_startup_file_refuses_the_run() {
    let e = env();
    std::fs::create_dir_all(e.ws.join("dotfiles")).unwrap();
    std::fs::write(e.ws.join("dotfiles/bashrc"), "x\n").unwrap();
    std::fs::hard_link(e.ws.join("dotfiles/bashrc"), e.ws.join(".bashrc")).unwrap();
    suite_test_support::dirs::chown_tree(&e.base, NOBODY);
    let run = |e: &Env| run_in_home(e, "echo pwn >> dotfiles/bashrc; echo ran");
    let out = run(&e);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ctx = format!("{} / {stderr}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(out.status.code(), Some(201), "{ctx}");
    assert!(
        stderr.contains(".bashrc") && stderr.contains("hard links"),
        "{ctx}"
    );
    assert_eq!(
        std::fs::read_to_string(e.ws.join(".bashrc")).unwrap(),
        "x\n",
        "{ctx}"
    );
    // control: one link
    std::fs::remove_file(e.ws.join("dotfiles/bashrc")).unwrap();
    let out = run(&e);
    assert_eq!(out.status.code(), Some(0), "control: {out:?}");
    // outside review r38 F2: a hard-linked file inside a startup directory refuses the run too
    std::fs::create_dir_all(e.ws.join(".bashrc.d")).unwrap();
    std::fs::write(e.ws.join("dotfiles/a.sh"), "x\n").unwrap();
    std::fs::hard_link(e.ws.join("dotfiles/a.sh"), e.ws.join(".bashrc.d/a.sh")).unwrap();
    suite_test_support::dirs::chown_tree(&e.base, NOBODY);
    let out = run(&e);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(201), "{stderr}");
    assert!(
        stderr.contains(".bashrc.d/a.sh") && stderr.contains("hard links"),
        "{stderr}"
    );
    // r38 F4: a startup directory too large to search refuses the run (it failed open)
    std::fs::remove_file(e.ws.join(".bashrc.d/a.sh")).unwrap();
    for i in 0..20_001 {
        std::fs::File::create(e.ws.join(format!(".bashrc.d/f{i}"))).unwrap();
    }
    let out = run(&e);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(201), "{stderr}");
    assert!(stderr.contains("too large to search"), "{stderr}");
}

/// Outside review r32 F5: the startup-file carve-outs of a home that is a writable root
/// followed `$HOME`'s text only: with `HOME` pointing elsewhere, or naming the home by an
/// un-normalised path, and the command started in the real (passwd) home, `~/.bashrc` and
/// `~/.profile` were writable. Every home counts now, by its canonical path. Run as root in
/// root's passwd home (the only check is `test -w`, which writes nothing); control: a file of
/// the home that is no startup file stays writable.
#[test]
fn startup_files_of_the_passwd_home_stay_read_only_whatever_home_says() {
    let home = std::path::PathBuf::from("/root");
    let startup = [".bashrc", ".profile", ".gitconfig"]
        .into_iter()
        .find(|n| home.join(n).is_file())
        .expect("root's home has no .bashrc, .profile or .gitconfig to check");
    // outside `/tmp`: the implicit `/tmp` root would hold it (refused for that first)
    let elsewhere = tempfile::Builder::new()
        .prefix("sbl-home-elsewhere-")
        .tempdir_in(suite_test_support::dirs::outside_default_roots(Path::new(
            env!("CARGO_TARGET_TMPDIR"),
        )))
        .unwrap();
    for fake_home in [elsewhere.path().to_path_buf(), home.join(".")] {
        let fake_home = if fake_home.ends_with(".") {
            // `/root/./` is not a path `Path` keeps; an un-normalised name of /root
            PathBuf::from("/root/.cargo/..")
        } else {
            fake_home
        };
        let run = |flags: &[&str]| {
            Command::new(helper())
                .arg("--sandbox-policy-cwd")
                .arg(&home)
                .arg("--sandbox-policy")
                .arg(r#"{"mode":"workspace-write"}"#)
                .args(flags)
                .args(["--", "sh", "-c"])
                .arg(format!(
                    "test -w /root/{startup} && echo STARTUP-WRITABLE; test -w /root/.cargo && echo other-writable"
                ))
                .current_dir(&home)
                .env("PWD", &home)
                .env("HOME", &fake_home)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        };
        // the passwd home as the writable root is refused whatever `HOME` says (session 12)
        let out = run(&[]);
        assert_eq!(out.status.code(), Some(201), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("is your home directory /root"),
            "{out:?}"
        );
        let out = run(&["--allow-writable-home"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let ctx = format!(
            "HOME={}: {stdout} / {}",
            fake_home.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.contains("STARTUP-WRITABLE"), "{ctx}");
        assert!(stdout.contains("other-writable"), "control: {ctx}");
    }
}

/// Asserts that the command printed `made` (its set-up ran); returns its stdout and stderr,
/// labelled with `ns`, for the messages of the checks that follow.
fn printed_made(out: &std::process::Output, ns: Ns) -> String {
    let ctx = format!(
        "{ns:?}: {} / {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("made"),
        "{ctx}"
    );
    ctx
}

/// What every race script of [`two_sandboxes`] starts with: `role` (`A` or `B`), the racing
/// directory `T` and a loose object's 38-hex-digit name `H`; `exch(a, b)`, an exchange
/// (`renameat2(RENAME_EXCHANGE)`: 0 or the errno); `signal(name)` and `wait_for(name)`, the two
/// roles' hand-shake beside `T` (at most 30 s); `watching(path)`, a thread counting every moment
/// `path` exists until its `stop()`: `(seen, stop)`.
const RACE_PRELUDE: &str = r#"
import os, sys, time, ctypes, errno, threading
libc = ctypes.CDLL(None, use_errno=True)
role = sys.argv[1]; T = 't'; H = 'ab' * 19
def exch(a, b):
    return 0 if libc.renameat2(-100, a.encode(), -100, b.encode(), 2) == 0 else ctypes.get_errno()
def signal(name):
    open(T + '/../' + name + '-ready', 'w').close()
def wait_for(name):
    t0 = time.time()
    while not os.path.exists(T + '/../' + name + '-ready') and time.time() - t0 < 30: time.sleep(0.01)
def watching(path):
    seen = [0]; racing = [True]
    def watch():
        while racing[0]:
            if os.path.lexists(path): seen[0] += 1
    threading.Thread(target=watch, daemon=True).start()
    def stop(): racing[0] = False
    return seen, stop
"#;

/// The python `race` (after [`RACE_PRELUDE`]) as role `A` and as role `B` in two sandboxes at
/// once on `e`'s workspace: what each printed (stdout and stderr); both must have printed
/// `done`.
fn two_sandboxes(e: &Env, ns: Ns, race: &str) -> (String, String) {
    let script =
        |role: &str| format!("python3 -c \"$(cat <<'PY'\n{RACE_PRELUDE}{race}\nPY\n)\" {role}");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| guarded(e, ns, false, &script("A")));
        let b = s.spawn(|| guarded(e, ns, false, &script("B")));
        (a.join().unwrap(), b.join().unwrap())
    });
    let said = |o: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let (a, b) = (said(&a), said(&b));
    assert!(
        a.contains("done") && b.contains("done"),
        "{ns:?}: {a} / {b}"
    );
    (a, b)
}

/// A race's reports (`a` by the role that watched): it was run (at least 50 tries) and its
/// watcher never saw the forbidden name (`seen 0`).
fn raced_and_never_seen(ns: Ns, a: &str, b: &str) {
    assert!(
        a.contains(" seen 0"),
        "{ns:?}: seen for a moment: {a} / {b}"
    );
    assert!(
        number_after(a, "tries") >= 50,
        "{ns:?}: the race was not run: {a} / {b}"
    );
}

/// The number after the word `key` in a race's report (0 when there is none).
fn number_after(report: &str, key: &str) -> u64 {
    report
        .split_whitespace()
        .skip_while(|w| *w != key)
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A shell as the victim (uid 65534) in the workspace, outside the sandbox.
/// Runs `attack` under the guard (mode `ns`): it ran to its end (`done`) and no step printed
/// `HOOKED`; its stdout and stderr together.
fn attack_planted_nothing(e: &Env, ns: Ns, attack: &str) -> String {
    let out = guarded(e, ns, false, attack);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("done"), "{ns:?}: {said}");
    assert!(
        !said.contains("HOOKED"),
        "{ns:?}: a hook was planted: {said}"
    );
    said
}

fn victim_sh(e: &Env, script: &str) -> Output {
    Command::new("sh")
        .args(["-c", script])
        .current_dir(&e.ws)
        .env("PWD", &e.ws)
        .env("HOME", &e.home)
        .env("USER", "nobody")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Outside review r79, both modes: **F1** a Fossil repository file inside its checkout (where
/// `fossil open URL` leaves it) had a `before-commit` hook added from inside (`fossil hook add
/// -R proj.fossil`), which the victim's next `fossil commit` ran outside; **F2** a local
/// Subversion repository under a writable root had `hooks/start-commit` written from inside,
/// run at the victim's next `svn commit` over `file://`. Fossil databases are recognised by
/// their contents (SQLite `application_id`), Subversion repositories by `format` + `db`: the
/// hook writes, an append, a hot journal beside the repository, a copy renamed over it, its
/// removal, renaming `hooks` away, all refused; the victim's commits run nothing and the files
/// are as they were. Control: with `--allow-git-writes` (no name guard) the same script plants
/// both hooks and the same commits run them.
#[test]
fn a_fossil_repository_and_a_local_subversion_repository_cannot_get_hooks_planted() {
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let marker = e.home.join("PWNED");
        let ws = s(&e.ws);
        let setup = victim_sh(
            &e,
            &format!(
                "set -e; printf 'id >> {m}\\n' > hook.sh; mkdir fos; cd fos; \
                 fossil init proj.fossil >/dev/null; fossil open --force proj.fossil >/dev/null; \
                 echo a > a.txt; fossil add a.txt >/dev/null; \
                 fossil commit -m one --no-warnings >/dev/null; cd ..; \
                 mkdir repos co2; fossil init repos/other.fossil >/dev/null; cd co2; \
                 fossil open --force ../repos/other.fossil >/dev/null; cd ..; \
                 mkdir x; svnadmin create x/svnrepo; ln -s x/svnrepo svnrepo; \
                 svn checkout -q file://{ws}/x/svnrepo svnwc; \
                 echo a > svnwc/a.txt; svn add -q svnwc/a.txt; svn commit -q -m one svnwc",
                m = s(&marker)
            ),
        );
        assert!(
            setup.status.success(),
            "fossil and subversion must be installed: {setup:?}"
        );
        let repo = std::fs::read(e.ws.join("fos/proj.fossil")).unwrap();
        let plant = "fossil hook add -R fos/proj.fossil --command \"sh $PWD/hook.sh\" \
             --type before-commit --sequence 1 >/dev/null 2>&1 && echo HOOKED-FOSSIL; \
             printf '#!/bin/sh\\nsh %s/hook.sh\\n' \"$PWD\" > svnrepo/hooks/start-commit && \
             chmod 755 svnrepo/hooks/start-commit && echo HOOKED-SVN; ";
        let attack = format!(
            "{plant} printf x >> fos/proj.fossil; printf x > fos/proj.fossil-journal; \
             printf x > fos/.fslckout-journal; \
             cp fos/proj.fossil fos/copy.fossil; mv -f fos/copy.fossil fos/proj.fossil; \
             rm -f fos/proj.fossil; mv svnrepo/hooks svnrepo/hooks.old; rm -f svnrepo/format; \
             mv repos repos.old; mv x x.old; \
             mkdir -p proj/db proj/format && mkdir proj/src && echo FP1-OK; \
             mkdir -p proj2/db && printf '#!/bin/sh\\n' > proj2/format && mkdir proj2/src && echo FP2-OK; \
             echo done"
        );
        let commit = "cd fos && echo b >> a.txt && fossil commit -m two --no-warnings; cd ..; \
             echo b >> svnwc/a.txt && svn commit -q -m two svnwc";
        let said = attack_planted_nothing(&e, ns, &attack);
        // the append, the journal, the checkout's journal, the rename over, the removal, the
        // svn hook, renaming `hooks`, removing `format`; renaming the directories holding a
        // repository (outside review r80 F1/F2: a copy the command made in a new `repos` was
        // what the victim's checkout, naming `../repos/other.fossil`, then opened)
        assert_eq!(
            said.matches("Permission denied").count(),
            10,
            "{ns:?}: {said}"
        );
        // a project's own `db/` and `format/` (or a `format` script) are no repository
        // (outside review r80 F3: they froze the project)
        assert!(
            said.contains("FP1-OK") && said.contains("FP2-OK"),
            "{ns:?}: {said}"
        );
        assert!(e.ws.join("repos/other.fossil").is_file() && e.ws.join("x/svnrepo").is_dir());
        assert_eq!(
            std::fs::read(e.ws.join("fos/proj.fossil")).unwrap(),
            repo,
            "{ns:?}: the Fossil repository was changed"
        );
        for gone in [
            "fos/proj.fossil-journal",
            "fos/.fslckout-journal",
            "svnrepo/hooks/start-commit",
        ] {
            assert!(!e.ws.join(gone).exists(), "{ns:?}: {gone} was made");
        }
        assert!(e.ws.join("svnrepo/format").exists() && e.ws.join("svnrepo/hooks").is_dir());
        let _ = victim_sh(&e, commit);
        assert!(
            !marker.exists(),
            "{ns:?}: a planted hook ran at the victim's commit"
        );
        // control: without the name guard the same hooks are planted, and the same commits
        // run them
        let out = guarded(&e, ns, true, plant);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("HOOKED-FOSSIL") && said.contains("HOOKED-SVN"),
            "{ns:?}: control: {out:?}"
        );
        let committed = victim_sh(&e, commit);
        let ran = std::fs::read_to_string(&marker).unwrap_or_default();
        assert_eq!(
            ran.matches("uid=65534").count(),
            2,
            "{ns:?}: control: both hooks ran at the victim's commits: {ran:?} {committed:?}"
        );
    }
}

/// Outside review r82, both modes: **F1** a local CVS repository's `CVSROOT/commitinfo` made
/// writable with `chmod u+w` and given a line that ran at the victim's next `cvs commit`, from
/// a checkout outside the writable roots; **F2** a Fossil repository the victim's checkout
/// names through a symbolic link in the workspace (`links/m.fossil -> ~/museum/m.fossil`):
/// the link removed and the command's copy with a hook put at its path (or a file renamed
/// over a link, found testing the fix); **F3** a Subversion
/// repository two levels down (`svn/repos/proj`): `mv svn svn.old`, a copy with a hook made at
/// the old path, which the victim's working copy outside the workspace names by its absolute
/// `file://` URL; **F4** `chmod 000` / `touch -d` of a Fossil database. Now `CVSROOT` is a
/// protected name, a directory holding a repository at any depth is not renamed, a link whose
/// target is or holds one is not removed or renamed, and a Fossil database's metadata does not
/// change. Outside review r84 (re-attack): **F2** an existing `-wal` of a Fossil repository
/// in WAL mode was written (frames adding a hook, recovered by the next `fossil`): a Fossil
/// database's side files are not written, removed or replaced; **F3** a CVS repository's
/// module files beside `CVSROOT` were written (`cvs import` from inside): nothing below a
/// directory holding `CVSROOT` is. Outside review r85: **F1** an object of a store another
/// repository borrows (`objects/info/alternates`; here a repository outside the roots) replaced
/// by the command's, which the victim's `git worktree add` then wrote out; **F2** a CVS module
/// directory linked out of the repository written; **F3** `chmod 000` of a Fossil database's
/// `-shm`: git objects, packs, `info/alternates` and `*,v` files are protected by name wherever
/// they lie, and a Fossil side file's metadata is held. Outside review r90 **A-F1**: a symbolic
/// link named `pack` (or `info`) put in a borrowed store, to a directory filled under another
/// name, and git loaded its pack: no link gets an object store's directory name (made, renamed
/// or hard-linked). Control: with `--allow-git-writes` (no
/// name guard) the same script plants all four, the victim's commits and checkout run them,
/// and nothing is refused.
#[test]
fn a_repository_cannot_be_replaced_through_a_link_or_an_ancestor_nor_cvsroot_written() {
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let marker = e.home.join("PWNED");
        let (ws, home) = (s(&e.ws), s(&e.home));
        let setup = victim_sh(
            &e,
            &format!(
                "set -e; printf 'id >> {m}\\n' > {home}/hook.sh; \
                 cvs -Q -d {ws}/cvsroot init; mkdir {home}/imp; cd {home}/imp; echo a > a.txt; \
                 cvs -Q -d {ws}/cvsroot import -m init proj vend start; cd {home}; \
                 cvs -Q -d {ws}/cvsroot checkout -d cvsco proj; \
                 mkdir {home}/museum {ws}/links {ws}/mco; fossil init {home}/museum/m.fossil >/dev/null; \
                 ln -s {home}/museum/m.fossil {ws}/links/m.fossil; ln -s ../../home/museum/m.fossil {ws}/links/m2.fossil; \
                 cd {ws}/mco; \
                 fossil open --force {ws}/links/m.fossil >/dev/null; echo a > a.txt; \
                 fossil add a.txt >/dev/null; fossil commit -m one --no-warnings >/dev/null; \
                 mkdir -p {ws}/svn/repos {ws}/fos2; svnadmin create {ws}/svn/repos/proj; \
                 svn checkout -q file://{ws}/svn/repos/proj {home}/wc; echo a > {home}/wc/a.txt; \
                 svn add -q {home}/wc/a.txt; svn commit -q -m one {home}/wc; \
                 fossil init {ws}/fos2/p.fossil >/dev/null; \
                 touch {ws}/fos2/p.fossil-wal {ws}/fos2/p.fossil-shm; \
                 mkdir {ws}/cvsmod; mv {ws}/cvsroot/proj {ws}/cvsmod/proj; \
                 ln -s ../cvsmod/proj {ws}/cvsroot/proj; \
                 mkdir {ws}/objstore; git init -q {home}/app; cd {home}/app; \
                 printf 'echo hi\\n' > build.sh; git add build.sh; \
                 git -c user.email=v@x -c user.name=v commit -qm one; \
                 cp -r .git/objects/. {ws}/objstore/; rm -rf .git/objects/??; \
                 echo {ws}/objstore > .git/objects/info/alternates; git fsck 2>&1 >/dev/null",
                m = s(&marker)
            ),
        );
        assert!(
            setup.status.success(),
            "cvs, fossil and subversion must be installed: {setup:?}"
        );
        let hook = format!("sh {home}/hook.sh");
        let attack = format!(
            "chmod u+w cvsroot/CVSROOT/commitinfo && echo 'ALL {hook}' >> cvsroot/CVSROOT/commitinfo \
               && echo HOOKED-CVS; \
             {{ mv cvsroot cvsroot.old 2>/dev/null && mv cvsroot.old cvsroot; }} || echo REFUSED-CVS-MOVE; \
             rm links/m.fossil && python3 -c \"import sys;b=bytearray(open(sys.argv[1],'rb').read());\
b[68:72]=bytes(4);open(sys.argv[2],'wb').write(b)\" {home}/museum/m.fossil links/m.fossil \
               && fossil hook add -R links/m.fossil --command '{hook}' --type before-commit \
                  --sequence 1 >/dev/null 2>&1 && echo HOOKED-LINK; \
             {{ mv links links.old 2>/dev/null && mv links.old links; }} || echo REFUSED-LINK-DIR-MOVE; \
             printf x > f; mv -f f links/m2.fossil 2>/dev/null || echo REFUSED-RENAME-OVER-LINK; \
             mv svn svn.old && cp -r svn.old svn \
               && printf '#!/bin/sh\\n{hook}\\n' > svn/repos/proj/hooks/start-commit \
               && chmod 755 svn/repos/proj/hooks/start-commit && echo HOOKED-SVN; \
             chmod 000 fos2/p.fossil 2>/dev/null || echo REFUSED-CHMOD; \
             touch -d 2001-01-01 fos2/p.fossil 2>/dev/null || echo REFUSED-TOUCH; \
             python3 -c \"import os; os.open('fos2/p.fossil-wal', os.O_WRONLY)\" 2>/dev/null \
               || echo REFUSED-WAL-WRITE; \
             printf x > cvsroot/proj/new.txt,v 2>/dev/null || echo REFUSED-CVS-MODULE-WRITE; \
             printf x > cvsmod/proj/new2.txt,v 2>/dev/null || echo REFUSED-CVS-LINKED-MODULE-WRITE; \
             chmod 000 fos2/p.fossil-shm 2>/dev/null || echo REFUSED-SHM-CHMOD; \
             rm -f fos2/p.fossil-shm 2>/dev/null || echo REFUSED-SHM-REMOVE; \
             oid=$(git -c safe.directory='*' -C {home}/app rev-parse HEAD:build.sh) && python3 -c \"import zlib,sys,os; \
d=b'#!/bin/sh\\n{hook}\\n'; o=sys.argv[1]; t='objstore/%s/tmp%d' % (o[:2], os.getpid()); \
open(t,'wb').write(zlib.compress(b'blob %d\\0' % len(d) + d)); os.chmod(t, 0o444); \
os.rename(t, 'objstore/%s/%s' % (o[:2], o[2:]))\" $oid && echo HOOKED-ALTERNATE; \
             d=$(echo $oid | cut -c1-2); {{ mv objstore/$d objstore/$d.old 2>/dev/null \
               && mv objstore/$d.old objstore/$d; }} || echo REFUSED-OBJECT-DIR-MOVE; \
             mkdir -p stage/pk && printf x > stage/pk/evil.keep \
               && {{ mv -T stage/pk objstore/pack 2>/dev/null || echo REFUSED-PACK-DIR-MOVE; }}; \
             printf x > objstore/pack/evil.keep 2>/dev/null || echo REFUSED-PACK-WRITE; \
             mkdir -p stage/lk; rmdir objstore/info; \
             ln -s ../stage/lk objstore/info 2>/dev/null || echo REFUSED-INFO-LINK; \
             ln -s ../stage/lk objstore/cg && {{ mv -T objstore/cg objstore/commit-graphs \
               2>/dev/null || echo REFUSED-LINK-RENAME; }}; \
             h=$(for x in 0 1 2 3 4 5 6 7 8 9 a b c d e f; do [ -e objstore/f$x ] || {{ echo f$x; break; }}; done); \
             ln -s ../stage/lk stage/l3 && {{ ln -P stage/l3 objstore/$h 2>/dev/null \
               || echo REFUSED-LINK-HARDLINK; }}; \
             mkdir -p big/a/b/c && echo x > big/a/b/c/f && mv big big2 && echo MOVED-PLAIN; \
             echo done"
        );
        let commit = format!(
            "cd {home}/cvsco && echo b >> a.txt && cvs -Q commit -m two; \
             cd {ws}/mco && echo b >> a.txt && fossil commit -m two --no-warnings; \
             cd {home}/wc && echo b >> a.txt && svn commit -q -m two; \
             git -C {home}/app worktree add -q {home}/wt$$ HEAD && sh {home}/wt$$/build.sh"
        );
        let said = attack_planted_nothing(&e, ns, &attack);
        for refused in [
            "REFUSED-CVS-MOVE",
            "REFUSED-LINK-DIR-MOVE",
            "REFUSED-RENAME-OVER-LINK",
            "REFUSED-CHMOD",
            "REFUSED-TOUCH",
            "REFUSED-WAL-WRITE",
            "REFUSED-SHM-REMOVE",
            "REFUSED-CVS-MODULE-WRITE",
            "REFUSED-CVS-LINKED-MODULE-WRITE",
            "REFUSED-SHM-CHMOD",
            "REFUSED-OBJECT-DIR-MOVE",
            "REFUSED-PACK-WRITE",
            "REFUSED-PACK-DIR-MOVE",
            "REFUSED-INFO-LINK",
            "REFUSED-LINK-RENAME",
            "REFUSED-LINK-HARDLINK",
        ] {
            assert!(said.contains(refused), "{ns:?}: {refused}: {said}");
        }
        // a directory with no repository below it still moves
        assert!(said.contains("MOVED-PLAIN"), "{ns:?}: {said}");
        assert!(
            std::fs::symlink_metadata(e.ws.join("links/m.fossil"))
                .unwrap()
                .file_type()
                .is_symlink()
                && e.ws.join("svn/repos/proj/format").is_file(),
            "{ns:?}: {said}"
        );
        let _ = victim_sh(&e, &commit);
        assert!(
            !marker.exists(),
            "{ns:?}: a planted hook ran at the victim's commit"
        );
        // control: without the name guard the same script plants the three hooks, and the
        // same commits run them
        let out = guarded(&e, ns, true, &attack);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("HOOKED-CVS")
                && said.contains("HOOKED-LINK")
                && said.contains("HOOKED-SVN")
                && said.contains("HOOKED-ALTERNATE"),
            "{ns:?}: control: {out:?}"
        );
        assert!(!said.contains("REFUSED"), "{ns:?}: control: {out:?}");
        let committed = victim_sh(&e, &commit);
        let ran = std::fs::read_to_string(&marker).unwrap_or_default();
        assert_eq!(
            ran.matches("uid=65534").count(),
            4,
            "{ns:?}: control: the four plants ran at the victim's commits and checkout: {ran:?} {committed:?}"
        );
    }
}

/// Outside review r91 **C-F1** (both modes): a directory `D` holding `a` and `b` renamed to a
/// store's `pack` while two other threads renamed `a` to `e.idx` and `b` to `e.pack` through a
/// descriptor of `D`. Each inner rename was checked while `D` still had its neutral name and
/// done after it was `pack`: in about one try in 400 both landed (git then loaded the pack and
/// the victim's `git worktree add` wrote the command's script). A rename to an object store's
/// directory name now holds the creator alone, so the calls in flight finish first and the
/// ones after it see the new name. The attack: 4 s of tries; none may leave an `e.*` file
/// under `pack` (with the lock removed it lands within the time, run and seen).
#[test]
fn a_directory_renamed_to_pack_while_its_entries_are_renamed_lands_no_pack() {
    let race = r#"
import os, threading, time, random
os.makedirs('st/stage', exist_ok=True)
P = 'st/pack'
res = {}
def inner(d, s, t, bar):
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    bar.wait()
    for _ in range(random.randint(0, 300)): pass
    try:
        os.rename(s, t, src_dir_fd=fd, dst_dir_fd=fd); res[t] = 'ok'
    except OSError as e:
        res[t] = e.errno
    os.close(fd)
t0 = time.time(); n = 0; moved = 0; landed = 0; both_inner = 0
while time.time() - t0 < 4:
    n += 1
    d = 'st/stage/D%d' % n
    os.mkdir(d)
    for x in ('a', 'b'):
        open(d + '/' + x, 'wb').write(b'x')
    bar = threading.Barrier(3)
    th = [threading.Thread(target=inner, args=(d, s, t, bar)) for s, t in (('a', 'e.idx'), ('b', 'e.pack'))]
    for t in th: t.start()
    bar.wait()
    for _ in range(random.randint(0, 300)): pass
    try:
        os.rename(d, P); moved += 1
    except OSError:
        pass
    for t in th: t.join()
    if res.get('e.idx') == 'ok' and res.get('e.pack') == 'ok': both_inner += 1
    if os.path.isdir(P):
        if any(x.startswith('e.') for x in os.listdir(P)):
            landed += 1; print('LANDED', n, os.listdir(P)); break
        os.rename(P, 'st/stage/done%d' % n)
print('tries', n, 'moved', moved, 'both-inner', both_inner, 'landed', landed)
print('done')
"#;
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let out = guarded(
            &e,
            ns,
            false,
            &format!("python3 -c \"$(cat <<'PY'\n{race}\nPY\n)\""),
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("done"), "{ns:?}: {said}");
        assert!(!said.contains("LANDED"), "{ns:?}: {said}");
        // the race was run: many tries, and both ways out of it seen (the directory moved
        // with neutral names, or refused with the new ones)
        let num = |key: &str| number_after(&said, key);
        assert!(num("tries") > 100, "{ns:?}: {said}");
        assert!(num("moved") > 0 && num("both-inner") > 0, "{ns:?}: {said}");
    }
}

/// Outside review r92 **D-F1** (W mode end to end): two sandboxes on one workspace, each with a
/// name guard of its own. One renames a directory `D` to a store's two-hex-digit name, the
/// other renames a file in `D` to a 38-hex-digit object name through a descriptor of `D`: the
/// second was checked under `D`'s old name, and the object landed in the store (the victim's
/// `git worktree add` then wrote the command's script). Now what a call named is checked again
/// after it, by its directory's path then, and taken back; outside review r93 **E-F2**: in the
/// moment between such a call and its check, a victim's `git cat-file` outside read the
/// object (1 read in 3,908). Now the directory a call names something in is held with
/// `flock(LOCK_SH)` and a directory renamed to a store's name with `LOCK_EX`, the same inodes
/// for every sandbox. The two roles run in two sandboxes at once for 400 tries, coordinated
/// through a shared mapping in the workspace, a third thread watching the store's directory
/// all along: no object may stay, nor be seen for a moment (with the check after the call
/// removed it lands at the second or third try; with the directory locks removed the watcher
/// sees it in every run, 4 of 4; both run and seen).
#[test]
fn two_sandboxes_racing_a_directory_rename_land_no_object() {
    let race = r#"
import os, sys, time, random, mmap, struct, threading
role = sys.argv[1]
st = 'race'; P = st + '/ab'; name = 'cd' * 19; shm = st + '/shm'
if role == 'A':
    os.makedirs(st, exist_ok=True)
    open(shm + '.new', 'wb').write(b'\0' * 64); os.rename(shm + '.new', shm)
else:
    t = time.time()
    while not os.path.exists(shm):
        if time.time() - t > 20: sys.exit('no partner')
        time.sleep(0.01)
m = mmap.mmap(os.open(shm, os.O_RDWR), 64)
get = lambda i: struct.unpack_from('q', m, 8 * i)[0]
def put(i, v): struct.pack_into('q', m, 8 * i, v)
if role == 'B':
    put(5, 1)
t0 = time.time()
while get(5) != 1 and time.time() - t0 < 30: time.sleep(0.001)
t0 = time.time(); secs = 30.0
seen = [0]; racing = [True]
def watch():
    # what a git outside reading the store at any moment would find
    while racing[0]:
        if os.path.lexists(P + '/' + name): seen[0] += 1
if role == 'A':
    threading.Thread(target=watch, daemon=True).start()
    n = 0; moved = 0; landed = 0
    while time.time() - t0 < secs and n < 400:
        n += 1; d = st + '/D%d' % n; os.mkdir(d); open(d + '/a', 'wb').write(b'x')
        put(0, n)
        while get(1) != n and time.time() - t0 < secs + 5: pass
        put(2, n)
        for _ in range(random.randint(0, 3000)): pass
        try:
            os.rename(d, P); moved += 1
        except OSError:
            pass
        while get(3) != n and time.time() - t0 < secs + 5: pass
        if os.path.isdir(P):
            if name in os.listdir(P):
                landed += 1; print('LANDED', n); break
            os.rename(P, st + '/done%d' % n)
    put(0, -1); racing[0] = False
    print('tries', n, 'moved', moved, 'landed', landed, 'seen', seen[0])
else:
    last = 0; renamed = 0
    while time.time() - t0 < secs + 10:
        n = get(0)
        if n < 0: break
        if n == last or n == 0: continue
        last = n; fd = os.open(st + '/D%d' % n, os.O_RDONLY | os.O_DIRECTORY)
        put(1, n)
        while get(2) != n: pass
        for _ in range(random.randint(0, 3000)): pass
        try:
            os.rename('a', name, src_dir_fd=fd, dst_dir_fd=fd); renamed += 1
        except OSError:
            pass
        os.close(fd); put(3, n)
    print('B renamed', renamed)
print('done')
"#;
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let (a, b) = two_sandboxes(&e, ns, race);
        assert!(!a.contains("LANDED"), "{ns:?}: {a} / {b}");
        raced_and_never_seen(ns, &a, &b);
        assert!(
            !e.ws.join("race/ab").join("cd".repeat(19)).exists(),
            "{ns:?}: {a} / {b}"
        );
    }
}

/// The directory locks of the name guard (r93 E-F2) are `flock`s on directories, and anyone who
/// can read a directory can `flock` it: another local user holding the workspace (or `/tmp`)
/// locked must not stall the sandbox's ordinary file creation there (review of session 21:
/// with a lock for every naming call, `flock -x /tmp sleep` by any user made every sandbox's
/// `open(O_CREAT)` in `/tmp` wait 5 s and fail). Only names that a store's directory name would
/// make history files wait for the lock. The attack: uid 65533 holds the workspace locked while
/// the sandboxed command creates `main.o` (made at once) and, the control that the lock is held
/// and honoured, `evil.idx` (waits, then `EBUSY`), both modes.
#[test]
fn another_users_lock_on_the_workspace_stalls_no_ordinary_creation() {
    const OTHER: u32 = 65533;
    let script = r#"python3 -c "
import os, time, errno
t = time.time(); open('main.o', 'w').close(); print('made main.o in', round(time.time() - t, 1))
t = time.time()
try:
    open('evil.idx', 'w').close(); print('made evil.idx')
except OSError as e:
    print('evil.idx', errno.errorcode[e.errno], 'after', round(time.time() - t, 1))
""#;
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let mut holder = Command::new("flock")
            .args(["--exclusive", s(&e.ws), "sleep", "60"])
            .uid(OTHER)
            .gid(OTHER)
            .stdin(Stdio::null())
            .spawn()
            .expect("flock (util-linux) is needed");
        let held = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            let probe = Command::new("flock")
                .args(["--nonblock", "--shared", s(&e.ws), "true"])
                .status()
                .unwrap();
            !probe.success()
        });
        let out = if held {
            Some(guarded(&e, ns, false, script))
        } else {
            None
        };
        let _ = holder.kill();
        let _ = holder.wait();
        assert!(held, "{ns:?}: uid {OTHER} could not lock the workspace");
        let out = out.unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("made main.o in"), "{ns:?}: {said}");
        assert!(said.contains("evil.idx EBUSY"), "{ns:?}: {said}");
        assert!(e.ws.join("main.o").exists() && !e.ws.join("evil.idx").exists());
    }
}

/// Outside review r94 **F1** (two sandboxes on one workspace): the rename of `t/D` to `t/ab`
/// checked and locked the directory `t/D` named, but the kernel looks the name up again, and
/// in between a second sandbox exchanged `t/D` with `t/D2` (two neutral names, allowed), which
/// holds a 38-hex-digit file: `t/D2` became `t/ab`, and the object was readable until the check
/// after the call moved it aside (a victim's `git cat-file` found it 25 times in 560,000
/// look-ups). Now the checked directory is first renamed to a staging name no sandbox may name,
/// compared with what was checked there, and only then given the store's name. Sandbox A
/// renames `t/D` to `t/ab` and back while sandbox B exchanges `t/D` and `t/D2`, 6 s, a thread of
/// A watching `t/ab/<38 hex>` all along: never seen, both modes (with the staging step removed
/// the watcher sees it, run and seen). Also: an exchange that would give a directory a store's
/// name is refused (`EACCES`), one of two neutral directories works (the control), and a
/// `RENAME_WHITEOUT` rename to a store's name is refused (r95 G1: its whiteout was left at
/// the staging name, which no sandbox may remove, and froze the directory).
#[test]
fn a_directory_swapped_in_before_a_rename_to_a_store_name_is_never_seen_there() {
    let race = r#"
if role == 'A':
    os.makedirs(T + '/D'); os.makedirs(T + '/X'); os.makedirs(T + '/ab')
    print('exchange to a store name', errno.errorcode.get(exch(T + '/X', T + '/ab'), 'ok'))
    os.rmdir(T + '/ab')
    os.makedirs(T + '/Y')
    print('exchange of neutral names', errno.errorcode.get(exch(T + '/X', T + '/Y'), 'ok'))
    # r95 G1: a whiteout left at the staging name froze its directory
    r = libc.renameat2(-100, (T + '/Y').encode(), -100, (T + '/cd').encode(), 4)
    print('whiteout rename to a store name', errno.errorcode.get(0 if r == 0 else ctypes.get_errno(), 'ok'))
    # r97 F1: two names of one file, one renamed onto the other (a store's name): the kernel
    # does nothing and succeeds, and the staging name was left behind
    open(T + '/hl', 'w').close(); os.link(T + '/hl', T + '/ee')
    os.rename(T + '/hl', T + '/ee')
    print('rename onto its own hard link', 'kept' if os.path.exists(T + '/hl') else 'gone')
    print('staging names left', len([n for n in os.listdir(T) if n.startswith('.codex-staging')]))
    signal('A'); wait_for('B')
    seen, stop = watching(T + '/ab/' + H)
    n = moved = refused = 0; end = time.time() + 6
    while time.time() < end:
        n += 1
        try:
            os.rename(T + '/D', T + '/ab'); moved += 1
        except OSError as e:
            refused += e.errno == errno.EACCES; continue
        try: os.rename(T + '/ab', T + '/D')
        except OSError:
            try: os.rename(T + '/ab', T + '/old%d' % n)
            except OSError: pass
    stop()
    print('tries', n, 'moved', moved, 'refused', refused, 'seen', seen[0])
else:
    wait_for('A')
    def ensure():
        for d in ('D', 'D2'):
            if not os.path.lexists(T + '/' + d):
                try: os.mkdir(T + '/' + d)
                except OSError: pass
        if not os.path.lexists(T + '/D/' + H) and not os.path.lexists(T + '/D2/' + H):
            try: open(T + '/D2/' + H, 'wb').write(b'x')
            except OSError: pass
    ensure(); signal('B')
    n = swapped = 0; end = time.time() + 7
    while time.time() < end:
        n += 1
        if exch(T + '/D', T + '/D2') == 0: swapped += 1
        else: ensure()
    print('B swaps', n, swapped)
print('done')
"#;
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let (a, b) = two_sandboxes(&e, ns, race);
        assert!(a.contains("exchange to a store name EACCES"), "{ns:?}: {a}");
        assert!(a.contains("exchange of neutral names ok"), "{ns:?}: {a}");
        assert!(
            a.contains("whiteout rename to a store name EACCES"),
            "{ns:?}: {a}"
        );
        assert!(
            a.contains("rename onto its own hard link kept"),
            "{ns:?}: {a}"
        );
        assert!(a.contains("staging names left 0"), "{ns:?}: {a}");
        raced_and_never_seen(ns, &a, &b);
        assert!(!e.ws.join("t/ab").join("ab".repeat(19)).exists());
    }
}

/// The same race with a **file** at the old name when it is checked (review of session 21's
/// change, after r94 F1): a file renamed to `ab` needed no look inside, so nothing pinned what
/// the rename would move, and a second sandbox exchanging `t/F` (a file) with `t/D2` (a
/// directory holding a 38-hex-digit file) got the directory renamed to `t/ab` unchecked until
/// the check after the call. Now whatever is renamed to a store's directory name goes through
/// the staging name and is compared with what was checked, file or directory. A renames `t/F`
/// to `t/ab` and back while B exchanges `t/F` and `t/D2`, 6 s, a thread of A watching
/// `t/ab/<38 hex>`: never seen, both modes.
#[test]
fn a_directory_swapped_in_for_a_file_renamed_to_a_store_name_is_never_seen_there() {
    let race = r#"
if role == 'A':
    os.makedirs(T); open(T + '/F', 'w').close()
    signal('A'); wait_for('B')
    seen, stop = watching(T + '/ab/' + H)
    n = moved = 0; end = time.time() + 6
    while time.time() < end:
        n += 1
        if not os.path.lexists(T + '/F') and not os.path.lexists(T + '/D2'):
            try: open(T + '/F', 'w').close()
            except OSError: pass
        try:
            os.rename(T + '/F', T + '/ab'); moved += 1
        except OSError:
            continue
        try: os.rename(T + '/ab', T + '/F')
        except OSError:
            try: os.rename(T + '/ab', T + '/old%d' % n)
            except OSError: pass
    stop()
    aside = len([x for x in os.listdir(T) if x.startswith('.refused-')])
    print('tries', n, 'moved', moved, 'seen', seen[0], 'moved-aside', aside)
else:
    wait_for('A')
    def ensure():
        if not os.path.lexists(T + '/D2') and not os.path.isdir(T + '/F'):
            try:
                os.mkdir(T + '/D2'); open(T + '/D2/' + H, 'wb').write(b'x')
            except OSError: pass
    ensure(); signal('B')
    n = swapped = 0; end = time.time() + 7
    while time.time() < end:
        n += 1
        if exch(T + '/F', T + '/D2') == 0: swapped += 1
        else: ensure()
    print('B swaps', n, swapped)
print('done')
"#;
    for ns in [Ns::With, Ns::Without] {
        let e = env();
        let (a, b) = two_sandboxes(&e, ns, race);
        raced_and_never_seen(ns, &a, &b);
        // nothing unchecked got the name even for a moment: the check after the call moved
        // nothing aside (before the fix: one in each mode, run and seen)
        assert!(a.contains("moved-aside 0"), "{ns:?}: {a} / {b}");
        assert!(!e.ws.join("t/ab").join("ab".repeat(19)).exists());
    }
}
