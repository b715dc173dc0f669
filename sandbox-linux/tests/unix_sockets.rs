//! Issue 12 item 1: code execution outside through pathname unix sockets. The attacker is the
//! sandboxed command running as uid 65534; the victim's servers listen outside the roots (also as
//! 65534, so the control — the same connect outside the sandbox — succeeds). Each attack runs
//! with and without user namespaces (the probe's outer filter takes them away).

// Test code: a failed set-up step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::os::unix::fs::{MetadataExt, chown};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use suite_test_support::bins::sandbox_helper as helper;
const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-linux-probe");
const NOBODY: u32 = 65534;
const EACCES: &str = "errno 13";

struct Env {
    _dir: tempfile::TempDir,
    ws: PathBuf,
    outside: PathBuf,
    home: PathBuf,
}

fn chown_r(p: &Path) {
    suite_test_support::dirs::chown_tree(p, NOBODY);
}

fn env() -> Env {
    let (dir, base) = suite_test_support::dirs::sandbox_scratch(
        "sbl-ux-",
        Path::new(env!("CARGO_TARGET_TMPDIR")),
    );
    let (ws, outside, home) = (base.join("ws"), base.join("outside"), base.join("home"));
    for d in [&ws, &outside, &home] {
        std::fs::create_dir_all(d).unwrap();
    }
    chown_r(&base);
    Env {
        _dir: dir,
        ws,
        outside,
        home,
    }
}

/// A listener bound by uid 65534 (so the control can connect as 65534), non-blocking.
fn listen(path: &Path) -> UnixListener {
    let l = UnixListener::bind(path).unwrap();
    chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    l.set_nonblocking(true).unwrap();
    l
}

fn accepted(l: &UnixListener) -> usize {
    let mut n = 0;
    while l.accept().is_ok() {
        n += 1;
    }
    n
}

#[derive(Clone, Copy, PartialEq)]
enum Ns {
    With,
    Without,
}

const BOTH: [Ns; 2] = [Ns::With, Ns::Without];

fn sandboxed(e: &Env, policy: &str, ns: Ns, extra: &[&str], cmd: &[&str]) -> Output {
    sandbox_command(e, &[], policy, ns, extra, cmd)
        .output()
        .unwrap()
}

/// The helper running `cmd` in the sandbox as uid 65534, started through `wrap` (a program and
/// its arguments, e.g. `prlimit ... --`; empty: none).
fn sandbox_command(
    e: &Env,
    wrap: &[&str],
    policy: &str,
    ns: Ns,
    extra: &[&str],
    cmd: &[&str],
) -> Command {
    let helper = helper();
    let mut argv: Vec<&str> = wrap.to_vec();
    if ns == Ns::Without {
        argv.extend([PROBE, "outer-deny", "userns", "--"]);
    }
    argv.push(&helper);
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..])
        .arg("--sandbox-policy-cwd")
        .arg(&e.ws)
        .arg("--sandbox-policy")
        .arg(policy)
        .args(extra);
    if ns == Ns::Without && policy == WS {
        // Without namespaces workspace-write is refused for the file-metadata guarantee
        // (tests/escapes.rs); connect mediation needs none, so accept that one gap here.
        c.arg("--dangerously-allow-weaker-sandbox");
    }
    c.arg("--")
        .args(cmd)
        .env("HOME", &e.home)
        .env_remove("TMPDIR")
        .current_dir(&e.ws)
        .env("PWD", &e.ws)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null());
    c
}

const WS: &str = r#"{"mode":"workspace-write"}"#;
const RO: &str = r#"{"mode":"read-only"}"#;

fn probe_in(e: &Env, policy: &str, ns: Ns, extra: &[&str], args: &[&str]) -> String {
    let mut cmd = vec![PROBE];
    cmd.extend_from_slice(args);
    let out = sandboxed(e, policy, ns, extra, &cmd);
    assert_eq!(
        out.status.code(),
        Some(0),
        "probe {args:?}: stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn probe_outside(args: &[&str]) -> String {
    let out = Command::new(PROBE)
        .args(args)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn an_outside_socket_is_denied_with_eacces_unless_the_policy_names_it() {
    let e = env();
    let sock = e.outside.join("agent.sock");
    let l = listen(&sock);
    assert_eq!(probe_outside(&["unix-connect", s(&sock)]), "ok", "control");
    assert_eq!(accepted(&l), 1);
    for ns in BOTH {
        for policy in [WS, RO] {
            assert_eq!(
                probe_in(&e, policy, ns, &[], &["unix-connect", s(&sock)]),
                EACCES
            );
            assert_eq!(accepted(&l), 0, "denied connect must not reach the server");
            // relative path through the cwd
            let out = sandboxed(
                &e,
                policy,
                ns,
                &[],
                &[
                    "sh",
                    "-c",
                    &format!("cd {} && {PROBE} unix-connect agent.sock", s(&e.outside)),
                ],
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), EACCES);
            let allow = ["--allow-unix-socket", s(&sock)];
            assert_eq!(
                probe_in(&e, policy, ns, &allow, &["unix-connect", s(&sock)]),
                "ok"
            );
            assert_eq!(accepted(&l), 1, "the allowed connect reached the server");
        }
    }
}

#[test]
fn own_sockets_socketpair_and_sendto_keep_working_and_symlinks_do_not_escape() {
    let e = env();
    let outside = e.outside.join("x.sock");
    let lo = listen(&outside);
    let link = e.ws.join("link.sock");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    for ns in BOTH {
        // a socket the command binds itself (born during the run) is its own
        let own = e.ws.join(if ns == Ns::With {
            "own1.sock"
        } else {
            "own2.sock"
        });
        let script = format!(
            "import socket\ns=socket.socket(socket.AF_UNIX); s.bind('{0}'); s.listen(1)\n\
             c=socket.socket(socket.AF_UNIX); c.connect('{0}'); c.send(b'x')\n\
             print('ok' if s.accept()[0].recv(1)==b'x' else 'bad')",
            s(&own)
        );
        let out = sandboxed(&e, WS, ns, &[], &["python3", "-c", &script]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{out:?}");
        assert_eq!(probe_in(&e, WS, ns, &[], &["socketpair"]), "ok");
        assert_eq!(
            probe_in(&e, WS, ns, &[], &["unix-connect", s(&link)]),
            EACCES
        );
        assert_eq!(accepted(&lo), 0);
    }
    // control: the same link outside the sandbox reaches the outside server
    assert_eq!(probe_outside(&["unix-connect", s(&link)]), "ok");
    assert_eq!(accepted(&lo), 1);
}

fn counts(out: &str) -> (usize, usize) {
    let w: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(w.len(), 4, "{out}");
    (w[1].parse().unwrap(), w[3].parse().unwrap())
}

#[test]
fn racing_the_address_bytes_or_a_symlink_never_connects_outside() {
    const N: &str = "3000";
    let e = env();
    let outside = e.outside.join("o.sock");
    let lo = listen(&outside);
    // the inside server is named by the policy (a socket that existed before the start is not
    // the command's own otherwise): the race is between an allowed and a denied address
    let inside = e.ws.join("i.sock");
    let li = listen(&inside);
    let allow = ["--allow-unix-socket", s(&inside)];
    for ns in BOTH {
        let out = probe_in(
            &e,
            WS,
            ns,
            &allow,
            &["race-connect-bytes", s(&inside), s(&outside), N],
        );
        let (ok, failed) = counts(&out);
        assert_eq!(
            accepted(&lo),
            0,
            "bytes race reached the outside server ({out})"
        );
        assert!(ok > 0 && failed > 0, "the race did not alternate: {out}");
        assert_eq!(accepted(&li), ok, "{out}");
        let link = e.ws.join("race.sock");
        let out = probe_in(
            &e,
            WS,
            ns,
            &allow,
            &["race-connect-symlink", s(&link), s(&inside), s(&outside), N],
        );
        let (ok, failed) = counts(&out);
        assert_eq!(
            accepted(&lo),
            0,
            "symlink race reached the outside server ({out})"
        );
        assert!(ok > 0 && failed > 0, "the race did not alternate: {out}");
        assert_eq!(accepted(&li), ok, "{out}");
        let _ = std::fs::remove_file(&link);
    }
    // control: the same races outside the sandbox do reach the outside server (a few tries: on
    // a loaded machine the rewriting thread may not run during one loop)
    let mut reached = 0;
    let mut last = String::new();
    for _ in 0..5 {
        last = probe_outside(&["race-connect-bytes", s(&inside), s(&outside), N]);
        counts(&last);
        reached = accepted(&lo);
        let _ = accepted(&li);
        if reached > 0 {
            break;
        }
    }
    assert!(reached > 0, "control: {last}");
}

fn tmux(e: &Env, sock: &Path, args: &[&str]) -> Output {
    Command::new("tmux")
        .arg("-S")
        .arg(sock)
        .args(args)
        .env("HOME", &e.home)
        // tmux runs a pane through $SHELL, else the passwd shell: nobody's is nologin, which
        // exits at once and takes the server with it (CI has no SHELL)
        .env("SHELL", "/bin/sh")
        .env_remove("TMUX")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .expect("tmux must be installed (apt-get install tmux)")
}

#[test]
fn the_tmux_run_shell_escape_fails_inside_and_works_outside() {
    let e = env();
    let sock = e.outside.join("tmux.sock");
    let escaped = e.home.join("ESCAPED");
    let start = tmux(
        &e,
        &sock,
        &["new-session", "-d", "-s", "victim", "sleep 600"],
    );
    assert!(start.status.success(), "{:?}", start);
    let cmd = format!("id > {}", s(&escaped));
    let alive = |when: &str| {
        let has = tmux(&e, &sock, &["has-session", "-t", "victim"]);
        assert!(
            has.status.success(),
            "the victim's tmux server is not running {when}: {has:?}"
        );
    };
    alive("before the attack");
    for ns in BOTH {
        for policy in [RO, WS] {
            let out = sandboxed(
                &e,
                policy,
                ns,
                &[],
                &["tmux", "-S", s(&sock), "run-shell", &cmd],
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
            assert!(!out.status.success(), "{out:?}");
            // the denial itself, not a server that happens to be gone
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("error connecting") && err.contains("Permission denied"),
                "tmux inside must fail on connect with EACCES: {out:?}"
            );
            assert!(!escaped.exists(), "tmux ran a command outside the sandbox");
        }
    }
    alive("after the attack");
    // control: the same command outside works
    let out = tmux(&e, &sock, &["run-shell", &cmd]);
    let _ = tmux(&e, &sock, &["kill-server"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        escaped.exists(),
        "control: tmux run-shell outside creates the file"
    );
}

#[test]
fn a_kernel_without_seccomp_user_notification_is_refused_with_201() {
    let e = env();
    let sock = e.outside.join("n.sock");
    let _l = listen(&sock);
    let mut c = Command::new(PROBE);
    c.args([
        "outer-deny",
        "notify",
        "--",
        &helper(),
        "--sandbox-policy-cwd",
    ])
    .arg(&e.ws)
    .args([
        "--sandbox-policy",
        RO,
        "--",
        PROBE,
        "unix-connect",
        s(&sock),
    ])
    .uid(NOBODY)
    .gid(NOBODY)
    .env("HOME", &e.home);
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(201), "{err}");
    assert!(
        err.contains("SECCOMP_FILTER_FLAG_NEW_LISTENER")
            && err.contains("--dangerously-allow-weaker-sandbox"),
        "{err}"
    );
    // control: with the dangerous flag it runs, warns, and the socket is connectable (weaker)
    let mut c = Command::new(PROBE);
    c.args([
        "outer-deny",
        "notify",
        "--",
        &helper(),
        "--sandbox-policy-cwd",
    ])
    .arg(&e.ws)
    .args([
        "--sandbox-policy",
        RO,
        "--dangerously-allow-weaker-sandbox",
        "--",
    ])
    .args([PROBE, "unix-connect", s(&sock)])
    .uid(NOBODY)
    .gid(NOBODY)
    .env("HOME", &e.home);
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{err}");
    assert!(err.contains("SECCOMP_FILTER_FLAG_NEW_LISTENER"), "{err}");
}

#[test]
fn a_socket_in_another_mount_namespace_is_not_reached_through_proc_pid_root() {
    // second review round F3: a same-uid server with a private /tmp (snap, flatpak, PrivateTmp,
    // rootless containers) was reached at /proc/PID/root/tmp/x.sock: the supervisor resolved
    // the magic link and judged the path string "/tmp/x.sock" to lie in the /tmp root
    let e = env();
    let server = "import socket,sys\n\
                  s=socket.socket(socket.AF_UNIX); s.bind('/tmp/x.sock'); s.listen(8)\n\
                  print('ready',flush=True)\n\
                  while True:\n    c,_=s.accept(); print('accepted',flush=True); c.close()\n";
    /// Kills the server even when an assertion fails (it holds the test's stdout pipe).
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Command::new("unshare")
        .args([
            "-Urm",
            "sh",
            "-c",
            "mount -t tmpfs tmpfs /tmp && exec python3 -c \"$0\"",
        ])
        .arg(server)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) and python3");
    let stdout = child.stdout.take().unwrap();
    let child = Kill(child);
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let via_proc = format!("/proc/{}/root/tmp/x.sock", child.0.id());
    // control: outside the sandbox the same uid connects through the magic link
    assert_eq!(probe_outside(&["unix-connect", &via_proc]), "ok", "control");
    assert_eq!(lines.next().unwrap().unwrap(), "accepted");
    for ns in BOTH {
        assert_eq!(
            probe_in(&e, WS, ns, &[], &["unix-connect", &via_proc]),
            EACCES,
            "{:?}",
            ns == Ns::With
        );
    }
    // nothing reached the server: one more control connect is the next line it prints
    assert_eq!(probe_outside(&["unix-connect", &via_proc]), "ok");
    assert_eq!(lines.next().unwrap().unwrap(), "accepted");
    drop(child);
}

#[test]
fn a_socket_that_existed_under_a_writable_root_before_the_start_is_not_the_commands() {
    // third review round F2: /tmp is a default writable root, and tmux, ssh-agent, X11 and
    // D-Bus put their sockets there: `tmux run-shell` through /tmp/tmux-UID/default ran outside
    let e = env();
    let sock = e.ws.join("server.sock");
    let l = listen(&sock);
    assert_eq!(probe_outside(&["unix-connect", s(&sock)]), "ok", "control");
    assert_eq!(accepted(&l), 1);
    for ns in BOTH {
        assert_eq!(
            probe_in(&e, WS, ns, &[], &["unix-connect", s(&sock)]),
            EACCES,
            "with namespaces: {}",
            ns == Ns::With
        );
        assert_eq!(accepted(&l), 0);
        // the policy may still name it
        let allow = ["--allow-unix-socket", s(&sock)];
        assert_eq!(
            probe_in(&e, WS, ns, &allow, &["unix-connect", s(&sock)]),
            "ok"
        );
        assert_eq!(accepted(&l), 1);
    }
}

#[test]
fn an_older_socket_linked_or_renamed_onto_an_allowed_name_is_not_allowed() {
    // fifth review round F2: `--allow-unix-socket /tmp/.s.PGSQL.5432` (under the /tmp root) let
    // the command `ln /tmp/tmux-UID/default /tmp/.s.PGSQL.5432` and reach tmux through the name
    let e = env();
    let old = e.ws.join("tmux-default.sock");
    let l = listen(&old);
    chown_r(&e.ws);
    for (allowed_exists, ns) in [(true, Ns::With), (false, Ns::With), (false, Ns::Without)] {
        let allowed = e.ws.join("pg.sock");
        let _ = std::fs::remove_file(&allowed);
        let _pg = allowed_exists.then(|| listen(&allowed));
        chown_r(&e.ws);
        let allow = ["--allow-unix-socket", s(&allowed)];
        let script = format!(
            "rm -f {a}; ln {o} {a} && {p} unix-connect {a}; mv {a} {a}.x; ln {o} {a}; mv {a}.x /dev/null 2>/dev/null; true",
            a = s(&allowed),
            o = s(&old),
            p = PROBE
        );
        let out = sandboxed(&e, WS, ns, &allow, &["sh", "-c", &script]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            EACCES,
            "allowed name existed: {allowed_exists}: {out:?}"
        );
        assert_eq!(accepted(&l), 0, "the older socket was not reached");
        let _ = std::fs::remove_file(&allowed);
    }
    // control: the socket that is at the allowed name at the start is reached through it
    let allowed = e.ws.join("pg.sock");
    let pg = listen(&allowed);
    chown_r(&e.ws);
    let allow = ["--allow-unix-socket", s(&allowed)];
    assert_eq!(
        probe_in(&e, WS, Ns::With, &allow, &["unix-connect", s(&allowed)]),
        "ok"
    );
    assert_eq!(accepted(&pg), 1);
}

/// Outside review r27 F4: another local user started a unix stream server under `/tmp` (a
/// writable root) after the sandbox started; the command connected and handed it the user's
/// terminal and a writable file (`SCM_RIGHTS`). r29 F1: an `ssh-agent` the user started during
/// the run (the user's own socket, new) was used. A socket below a writable root is the
/// command's own only if the command listened on it: one bound and listened on outside during
/// the run is refused whoever owns it (root, or the user). The control, a server the command
/// starts itself, is `own_sockets_socketpair_and_sendto_keep_working_and_symlinks_do_not_escape`;
/// the control that the same socket is reachable is the policy naming it.
#[test]
fn a_socket_another_process_listens_on_during_the_run_is_not_the_commands() {
    use std::os::unix::fs::PermissionsExt;
    let e = env();
    for ns in BOTH {
        for (owner, allow_it, expect) in [
            (0, false, EACCES),
            (NOBODY, false, EACCES),
            (NOBODY, true, "ok"),
        ] {
            let sock = e.ws.join("late.sock");
            let go = e.ws.join("go");
            let _ = std::fs::remove_file(&sock);
            let _ = std::fs::remove_file(&go);
            let script = format!(
                "while [ ! -e go ]; do sleep 0.02; done; exec {PROBE} unix-connect {}",
                s(&sock)
            );
            let sock_arg = s(&sock).to_string();
            let allow = ["--allow-unix-socket", sock_arg.as_str()];
            let extra: &[&str] = if allow_it { &allow } else { &[] };
            let mut c = sandbox_command(&e, &[], WS, ns, extra, &["sh", "-c", &script]);
            let child = std::thread::spawn(move || c.output().unwrap());
            // the sandbox is up (its start is before the bind): then the server appears
            std::thread::sleep(std::time::Duration::from_millis(300));
            let l = UnixListener::bind(&sock).unwrap();
            chown(&sock, Some(owner), Some(owner)).unwrap();
            // connectable by anyone, as the reviewer's was: the kernel's own permission check
            // is not what refuses it
            std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o777)).unwrap();
            l.set_nonblocking(true).unwrap();
            std::fs::write(&go, "").unwrap();
            let out = child.join().unwrap();
            let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert_eq!(
                got,
                expect,
                "owner {owner}, with namespaces {}: {}",
                ns == Ns::With,
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(accepted(&l), usize::from(expect == "ok"));
        }
    }
}

/// Outside review r62 F2: `--allow-unix-socket` named a path missing at the start; the user
/// started an ssh-agent elsewhere during the run, and the command renamed the agent's socket onto
/// the allowed name and used the agent (born during the run, so it passed). An allowed name
/// missing at the start now counts only for a socket bound at that very name. Control: a
/// server that binds the allowed name itself during the run is reached.
#[test]
fn a_new_socket_renamed_onto_an_allowed_name_is_not_allowed() {
    use std::os::unix::fs::PermissionsExt;
    let e = env();
    for (rename, expect) in [(true, EACCES), (false, "ok")] {
        let allowed = e.ws.join("allowed.sock");
        let agent = e.ws.join("agent.sock");
        let go = e.ws.join("go");
        for p in [&allowed, &agent, &go] {
            let _ = std::fs::remove_file(p);
        }
        let script = format!(
            "while [ ! -e go ]; do sleep 0.02; done; {}exec {PROBE} unix-connect {}",
            if rename {
                format!("mv {} {}; ", s(&agent), s(&allowed))
            } else {
                String::new()
            },
            s(&allowed)
        );
        let allow = ["--allow-unix-socket", s(&allowed)];
        let mut c = sandbox_command(&e, &[], WS, Ns::With, &allow, &["sh", "-c", &script]);
        let child = std::thread::spawn(move || c.output().unwrap());
        // the sandbox is up: then the user's server appears (the agent elsewhere, or a
        // service at the allowed name itself)
        std::thread::sleep(std::time::Duration::from_millis(300));
        let at = if rename { &agent } else { &allowed };
        let l = UnixListener::bind(at).unwrap();
        chown(at, Some(NOBODY), Some(NOBODY)).unwrap();
        std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o777)).unwrap();
        l.set_nonblocking(true).unwrap();
        std::fs::write(&go, "").unwrap();
        let out = child.join().unwrap();
        let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(
            got,
            expect,
            "renamed {rename}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(accepted(&l), usize::from(expect == "ok"));
    }
}

/// Outside review r31 F2: at a soft open-file limit of 1024 the launcher, which holds every
/// socket file the command listened on, ran out of descriptors at the command's 1010th
/// `listen`; after that every `connect` failed with `EMFILE`, to its own sockets too. The
/// launcher makes room in its limit first: 1015 listens, then a connect to the first, work.
#[test]
fn a_thousand_listens_at_a_soft_limit_of_1024_keep_the_commands_sockets_reachable() {
    let script = r#"
import socket, os
os.makedirs("s", exist_ok=True)
keep = socket.socket(socket.AF_UNIX); keep.bind("s/keep"); keep.listen(1)
failed = None
for i in range(1015):
    p = "s/%d" % i
    s = socket.socket(socket.AF_UNIX); s.bind(p)
    try:
        s.listen(1)
    except OSError as x:
        failed = (i, x.errno)
    s.close(); os.unlink(p)
    if failed: break
c = socket.socket(socket.AF_UNIX)
try:
    c.connect("s/keep"); print("listens-failed:", failed, "connect: ok")
except OSError as x:
    print("listens-failed:", failed, "connect:", x.errno)
"#;
    for ns in BOTH {
        let e = env();
        let out = sandbox_command(
            &e,
            &["prlimit", "--nofile=1024:20000", "--"],
            WS,
            ns,
            &[],
            &["python3", "-c", script],
        )
        .output()
        .expect("prlimit (util-linux) must be installed");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "listens-failed: None connect: ok",
            "with namespaces {}: {}",
            ns == Ns::With,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Outside review r44 F4 (fifth round F9): the command unlinked the user's tmux socket in
/// `/tmp/tmux-UID` (a temporary root) and listened in its place; the user's next `tmux` ran the
/// fake server's `MSG_LOCK` command outside the sandbox (and an ssh-agent's socket so replaced
/// received the key of the next `ssh-add`). The user's directories directly in a temporary
/// root that hold a socket at the start are read-only: the socket cannot be removed, replaced
/// or renamed, nor the directory moved. `$TMPDIR` is the temporary root here (the victim's
/// socket directory in it); with namespaces (the carve-outs are mounts; without them
/// workspace-write needs the weaker-sandbox flag, whose warning lists them). Controls: a
/// directory of the same user without a socket stays writable, and outside the sandbox the
/// same `rm` works.
#[test]
fn the_users_socket_directories_in_a_temporary_root_cannot_be_swapped() {
    let e = env();
    let tmp = e.ws.parent().unwrap().join("tmp");
    // directly in the root; deeper (r45 F3: `TMUX_TMPDIR=/tmp/x`); below a directory of
    // another user (root's `/tmp/user`, the victim's `/tmp/user/65534`)
    let (tmux_dir, deep, shared, plain) = (
        tmp.join("tmux-65534"),
        tmp.join("x/tmux-65534"),
        tmp.join("user/65534"),
        tmp.join("plain"),
    );
    for d in [&tmux_dir, &deep, &shared, &plain] {
        std::fs::create_dir_all(d).unwrap();
    }
    let socks = [
        tmux_dir.join("default"),
        deep.join("default"),
        shared.join("agent"),
    ];
    let _servers: Vec<_> = socks.iter().map(|p| listen(p)).collect();
    chown_r(&tmp);
    std::os::unix::fs::chown(tmp.join("user"), Some(0), Some(0)).unwrap();
    let mut script = String::new();
    for (sock, moved) in socks.iter().zip([&tmux_dir, &tmp.join("x"), &shared]) {
        script.push_str(&format!(
            "rm -f '{0}' 2>&1 && echo REMOVED; mv '{1}' '{1}.old' 2>&1 && echo MOVED; ",
            s(sock),
            s(moved)
        ));
    }
    script.push_str(&format!("touch '{}/x' && echo plain-writable", s(&plain)));
    let (_, stdout, ctx) = run_with_tmpdir(&e, &tmp, &script);
    assert!(!stdout.contains("REMOVED"), "{ctx}");
    assert!(stdout.contains("Read-only file system"), "{ctx}");
    assert!(!stdout.contains("MOVED"), "{ctx}");
    for sock in &socks {
        assert!(sock.exists(), "{}: {ctx}", sock.display());
    }
    assert!(stdout.contains("plain-writable"), "control: {ctx}");
    // control: outside the sandbox the user removes it
    removed_outside_by_the_user(&socks[0]);
}

/// Outside review r62 F1: with no tmux server of the user's running at the start, the command
/// listened at `/tmp/tmux-UID/default` (its configuration redefining `ls`, `new`, `attach`);
/// the user's next `tmux ls`, outside, appended to `~/.bashrc` and sent `~/.ssh/id_ed25519`
/// back on its orders. The user's rendezvous directories (`tmux-UID`, `emacsUID`) in every
/// temporary root are held read-only whether a server listens or not, made first when missing
/// (0700, the user's). Binding there fails (`EROFS`); controls: a socket of the command's own
/// elsewhere in the root binds, and outside the sandbox the user binds in the directory.
#[test]
fn the_users_tmux_and_emacs_directories_cannot_be_listened_in() {
    let e = env();
    let tmp = e.ws.parent().unwrap().join("tmp");
    std::fs::create_dir_all(tmp.join("plain")).unwrap();
    chown_r(&tmp);
    let bind = |p: &Path| {
        format!(
            "python3 -c 'import socket,sys\ntry: socket.socket(socket.AF_UNIX).bind(sys.argv[1]); print(\"BOUND\")\nexcept OSError as e: print(\"errno\", e.errno)' '{}'; ",
            s(p)
        )
    };
    let tmux = tmp.join("tmux-65534");
    let emacs = tmp.join("emacs65534");
    // the attacker makes the directories first when they are missing, as tmux does
    let script = format!(
        "mkdir -p '{}' '{}' 2>/dev/null; {}{}{}",
        s(&tmux),
        s(&emacs),
        bind(&tmux.join("default")),
        bind(&emacs.join("server")),
        bind(&tmp.join("plain/own.sock"))
    );
    let (_, stdout, ctx) = run_with_tmpdir(&e, &tmp, &script);
    assert_eq!(stdout, "errno 30\nerrno 30\nBOUND\n", "{ctx}");
    for d in [&tmux, &emacs] {
        let m = std::fs::symlink_metadata(d).unwrap();
        assert!(m.is_dir(), "{}", d.display());
        assert_eq!(
            (m.uid(), m.mode() & 0o777),
            (NOBODY, 0o700),
            "{}",
            d.display()
        );
    }
    // control: outside the sandbox the user listens there
    let out = Command::new("sh")
        .args(["-c", &bind(&tmux.join("default"))])
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "BOUND\n", "{out:?}");
}

/// `sh -c script` in workspace-write with namespaces and `TMPDIR=tmpdir`: the output, its
/// stdout, and the whole output for assertion messages.
fn run_with_tmpdir(e: &Env, tmpdir: &Path, script: &str) -> (Output, String, String) {
    let out = sandbox_command(e, &[], WS, Ns::With, &[], &["sh", "-c", script])
        .env("TMPDIR", tmpdir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let ctx = format!("{out:?}");
    (out, stdout, ctx)
}

/// Control: the user (65534), outside any sandbox, removes `sock`.
fn removed_outside_by_the_user(sock: &Path) {
    let out = Command::new("rm")
        .arg(sock)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert!(out.status.success() && !sock.exists(), "{out:?}");
}

/// Outside review r46 F1: with `$TMPDIR` a directory of the user's below `/tmp` (libpam-tmpdir's
/// `/tmp/user/UID`), the shallowest directory of the user's on the way to the agent's socket
/// was `$TMPDIR` itself, a writable root, and nothing was held: the command replaced the
/// socket and the next `ssh-add` handed it the key. The deepest temporary root now counts. In
/// the real `/tmp` (root's directory there stands for `/tmp/user`).
#[test]
fn a_socket_below_a_tmpdir_of_the_user_below_tmp_cannot_be_swapped() {
    let e = env();
    let shared = tempfile::Builder::new()
        .prefix("sbl-tmpuser-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let tmpdir = shared.path().join("65534");
    let agent_dir = tmpdir.join("ssh-agent");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let sock = agent_dir.join("agent.1");
    let _agent = listen(&sock);
    chown_r(&tmpdir);
    let script = format!(
        "rm -f '{0}' 2>&1 && echo REMOVED; mv '{1}' '{1}.old' 2>&1 && echo MOVED; \
         touch \"$TMPDIR/plain\" && echo tmpdir-writable",
        s(&sock),
        s(&agent_dir)
    );
    let (_, stdout, ctx) = run_with_tmpdir(&e, &tmpdir, &script);
    assert!(!stdout.contains("REMOVED"), "{ctx}");
    assert!(!stdout.contains("MOVED"), "{ctx}");
    assert!(sock.exists(), "{ctx}");
    assert!(stdout.contains("tmpdir-writable"), "control: {ctx}");
}

/// Outside review r47 F1: a socket of the user's directly in `$TMPDIR` (`vscode-ipc-*.sock`)
/// had no directory of the user's on the way to hold, and the command replaced it. And r46 F4:
/// the user's socket below a sticky directory of root's (`/tmp/.X11-unix/X0`) likewise (the
/// sticky bit lets its owner, the command's uid, remove it). The socket itself is now held (a
/// mount on it): `rm` and a `mv` over it fail, the user's listener stays reachable outside.
/// Controls: a plain file next to it is removed inside, and outside the sandbox the same `rm`
/// works.
#[test]
fn a_socket_directly_in_a_temporary_root_or_below_roots_sticky_directory_cannot_be_swapped() {
    let e = env();
    let tmp = e.ws.parent().unwrap().join("tmp");
    let x11 = tmp.join(".X11-unix");
    std::fs::create_dir_all(&x11).unwrap();
    let socks = [tmp.join("vscode-ipc-1.sock"), x11.join("X0")];
    let servers: Vec<_> = socks.iter().map(|p| listen(p)).collect();
    std::fs::write(tmp.join("plain"), "x").unwrap();
    // a second name of the socket does not make the hold refuse the run (a replaced second
    // name is not the user's socket)
    std::fs::hard_link(&socks[0], tmp.join("second-name.sock")).unwrap();
    chown_r(&tmp);
    chown(&x11, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&x11, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let mut script = String::new();
    for (i, sock) in socks.iter().enumerate() {
        script.push_str(&format!(
            "rm -f '{0}' 2>&1 && echo REMOVED{i}; touch '{1}/decoy{i}' && \
             mv '{1}/decoy{i}' '{0}' 2>&1 && echo REPLACED{i}; ",
            s(sock),
            s(&tmp)
        ));
    }
    // (the temporary root itself: the command's $TMPDIR is its own directory in it)
    script.push_str(&format!("rm '{}/plain' && echo plain-removed", s(&tmp)));
    let (out, stdout, ctx) = run_with_tmpdir(&e, &tmp, &script);
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    assert!(!stdout.contains("REMOVED"), "{ctx}");
    assert!(!stdout.contains("REPLACED"), "{ctx}");
    assert!(stdout.contains("Device or resource busy"), "{ctx}");
    for (sock, server) in socks.iter().zip(&servers) {
        // still the user's listener: a client outside is accepted by it
        std::os::unix::net::UnixStream::connect(sock)
            .unwrap_or_else(|err| panic!("{}: {err}: {ctx}", sock.display()));
        server.set_nonblocking(true).unwrap();
        assert!(server.accept().is_ok(), "{}: {ctx}", sock.display());
    }
    assert!(stdout.contains("plain-removed"), "control: {ctx}");
    // control: outside the sandbox the user removes them
    for sock in &socks {
        removed_outside_by_the_user(sock);
    }
}

/// Outside review r48 F1: a socket whose bound path no longer names it was not held.
/// OpenSSH's ControlMaster binds `/tmp/ssh-u@host:22.<random>`, links it to
/// `/tmp/ssh-u@host:22` and removes the first name; `/proc/net/unix` shows only the removed
/// one, and the command replaced the name every `ssh` uses (the victim's next `ssh` handed its
/// terminal to the command's fake master). Likewise a socket renamed after `bind`, a second
/// name in `$TMPDIR` of a socket bound in a held directory, and one bound by a relative path;
/// and (r49 F1) ssh's layout with another socket file made at the removed bound name. The names
/// are found by the node the socket is bound to (`unix_diag`), compared with the node at each
/// bound path. Control: a socket of
/// the user's nobody listens on is not held (it is removed inside).
#[test]
fn a_socket_renamed_or_linked_after_it_was_bound_cannot_be_swapped() {
    let e = env();
    let tmp = e.ws.parent().unwrap().join("tmp");
    let held_dir = tmp.join("agent-dir");
    std::fs::create_dir_all(&held_dir).unwrap();
    // ssh's ControlMaster: bind, link, remove the bound name
    let ssh = tmp.join("ssh-u@host:22");
    let bound = tmp.join("ssh-u@host:22.abc123");
    let ssh_server = listen(&bound);
    std::fs::hard_link(&bound, &ssh).unwrap();
    std::fs::remove_file(&bound).unwrap();
    // the same, and the bound name re-made as another socket file (outside review r49 F1: a
    // socket file there hid the rename; by another user, or by the command in an earlier run)
    let ssh2 = tmp.join("ssh-u@host2:22");
    let bound2 = tmp.join("ssh-u@host2:22.def456");
    let ssh2_server = listen(&bound2);
    std::fs::hard_link(&bound2, &ssh2).unwrap();
    std::fs::remove_file(&bound2).unwrap();
    drop(UnixListener::bind(&bound2).unwrap());
    // renamed after bind
    let renamed = tmp.join("renamed.sock");
    let renamed_server = listen(&tmp.join("before-rename.sock"));
    std::fs::rename(tmp.join("before-rename.sock"), &renamed).unwrap();
    // a second name in the temporary root of a socket bound in the user's directory
    let second = tmp.join("agent-link.sock");
    let agent_server = listen(&held_dir.join("agent.sock"));
    std::fs::hard_link(held_dir.join("agent.sock"), &second).unwrap();
    // bound by a relative path (from inside the temporary root)
    let relative = tmp.join("relative.sock");
    let mut relative_server = Command::new("python3")
        .args([
            "-c",
            "import socket, sys, time\n\
             s = socket.socket(socket.AF_UNIX); s.bind('relative.sock'); s.listen(4)\n\
             print('listening', flush=True); time.sleep(60)",
        ])
        .current_dir(&tmp)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(relative_server.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "listening");
    }
    // control: a stale socket of the user's (nobody listens)
    let stale = tmp.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    chown_r(&tmp);
    let names = [&ssh, &ssh2, &renamed, &second, &relative];
    let mut script = String::new();
    for (i, name) in names.iter().enumerate() {
        script.push_str(&format!(
            "touch \"$TMPDIR/decoy{i}\" && mv -T \"$TMPDIR/decoy{i}\" '{0}' 2>&1 && echo REPLACED{i}; \
             rm -f '{0}' 2>&1 && echo REMOVED{i}; ",
            s(name)
        ));
    }
    script.push_str(&format!("rm '{}' && echo stale-removed", s(&stale)));
    let (out, stdout, ctx) = run_with_tmpdir(&e, &tmp, &script);
    let _ = relative_server.kill();
    let _ = relative_server.wait();
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    assert!(!stdout.contains("REPLACED"), "{ctx}");
    assert!(!stdout.contains("REMOVED"), "{ctx}");
    for (name, server) in [
        (&ssh, &ssh_server),
        (&ssh2, &ssh2_server),
        (&renamed, &renamed_server),
        (&second, &agent_server),
    ] {
        std::os::unix::net::UnixStream::connect(name)
            .unwrap_or_else(|err| panic!("{}: {err}: {ctx}", name.display()));
        assert!(server.accept().is_ok(), "{}: {ctx}", name.display());
    }
    assert!(relative.exists(), "{ctx}");
    assert!(stdout.contains("stale-removed"), "control: {ctx}");
    // control: outside the sandbox the user replaces the name ssh uses
    removed_outside_by_the_user(&ssh);
}

/// Outside review r50 L1: a socket bound through a symbolic link of the user's in a temporary
/// root (`TMUX_TMPDIR=/tmp/link`, `/tmp/link -> /tmp/real`) is held, but the link clients go
/// through cannot be (a mount cannot hold a link; it lives in the sticky `/tmp`), and the
/// command re-points it. Not preventable: the launcher says so, naming the socket and the link.
/// Control: the same socket bound through the real directory gives no such warning.
#[test]
fn a_socket_reached_through_a_link_of_the_users_is_warned_about() {
    let e = env();
    let tmp = e.ws.parent().unwrap().join("tmp");
    let real = tmp.join("real");
    std::fs::create_dir_all(&real).unwrap();
    let link = tmp.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let through_link = link.join("agent.sock");
    let server = listen(&through_link);
    chown_r(&tmp);
    std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
    let (out, _, ctx) = run_with_tmpdir(&e, &tmp, "true");
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    let warning = format!(
        "warning: the socket {} is reached through your symbolic link {}: the command can re-point the link",
        through_link.display(),
        link.display()
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&warning),
        "{ctx}"
    );
    // control: bound through the real directory
    drop(server);
    std::fs::remove_file(real.join("agent.sock")).unwrap();
    let _server = listen(&real.join("agent.sock"));
    chown_r(&tmp);
    let (out, _, ctx) = run_with_tmpdir(&e, &tmp, "true");
    assert_eq!(out.status.code(), Some(0), "{ctx}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("symbolic link"),
        "control: {ctx}"
    );
}

/// Listens at each path (`$T` stands for `$TMPDIR`), prints `LISTEN` or `errno N` for each,
/// then connects to the socket listened on in `$TMPDIR` (the command's own IPC) and prints
/// `IPC ok`, and `TMPDIR <value>`.
const FIXED_NAMES_PY: &str = r#"import socket, sys, os
t = os.environ.get("TMPDIR", "?")
t_dir = t
own = None
for p in sys.argv[1:]:
    p = p.replace("$T", t)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(p); s.listen(1); print("LISTEN", flush=True)
        if p.startswith(t): own = (s, p)
    except OSError as e: print("errno", e.errno, flush=True)
if own:
    c = socket.socket(socket.AF_UNIX); c.connect(own[1]); own[0].accept(); print("IPC ok", flush=True)
    # outside review r65 F1: the listening socket (or its directory) given a fixed name after
    # the listen; controls: a plain file and a directory of the shared part move there
    fixed = sys.argv[1]
    def tr(name, f):
        try: f(); print(name, "ok", flush=True)
        except OSError as e: print(name, "errno", e.errno, flush=True)
    tr("ln", lambda: os.link(own[1], fixed + ".ln"))
    tr("ln-s", lambda: os.symlink(own[1], fixed + ".sym"))
    tr("mv", lambda: os.rename(own[1], fixed))
    open(t_dir + "/plain", "w").close()
    tr("mv-file", lambda: os.rename(t_dir + "/plain", fixed + ".plain"))
    os.mkdir(fixed + ".d1")
    tr("mv-shared-dir", lambda: os.rename(fixed + ".d1", fixed + ".d2"))
    tr("mv-dir", lambda: os.rename(t_dir, fixed + ".own"))
print("TMPDIR", os.path.dirname(t), flush=True)
"#;

/// Outside review r63 F1-F4: under workspace-write the command listened at names in `/tmp`
/// where the user's own programs outside look for their servers: an ssh `ControlPath` (the
/// user's next `ssh` handed over its terminal and the typed password), `ssh-agent -a
/// /tmp/agent.sock` (`ssh-add` sent the decrypted key), PostgreSQL's `/tmp/.s.PGSQL.5432`
/// (`psql` sent the `.pgpass` password), tmux under `$TMUX_TMPDIR` (`tmux ls` ran a command
/// outside). In a temporary root the command listens only in its own directory, which its
/// `$TMPDIR` names: `EACCES` at the fixed names, with and without user namespaces; controls:
/// the command's own `$TMPDIR` socket listens and is reached from inside, a workspace socket
/// listens, and outside the sandbox every name listens.
#[test]
fn servers_at_fixed_names_in_a_temporary_root_cannot_listen() {
    let e = env();
    let tag = std::process::id();
    let fixed = [
        format!("/tmp/ssh-sbl{tag}@host:22"),
        format!("/tmp/sbl{tag}-agent.sock"),
        format!("/tmp/.s.PGSQL.{}", 40000 + tag % 20000),
        format!("/tmp/sbl{tag}-tmux/tmux-65534/default"),
    ];
    let ws_sock = e.ws.join("ws.sock");
    let mut args: Vec<String> = vec!["python3".into(), "-c".into(), FIXED_NAMES_PY.into()];
    args.extend(fixed.iter().cloned());
    args.push("$T/own.sock".into());
    args.push(s(&ws_sock).into());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let clean = || {
        for p in &fixed {
            let _ = std::fs::remove_file(p);
        }
        let _ = std::fs::remove_dir_all(format!("/tmp/sbl{tag}-tmux"));
        let _ = std::fs::remove_file(&ws_sock);
        for p in &fixed {
            for ext in ["ln", "sym", "plain"] {
                let _ = std::fs::remove_file(format!("{p}.{ext}"));
            }
            let _ = std::fs::remove_dir(format!("{p}.d1"));
            let _ = std::fs::remove_dir(format!("{p}.d2"));
            let _ = std::fs::remove_dir_all(format!("{p}.own"));
        }
    };
    for ns in BOTH {
        clean();
        let out = sandboxed(&e, WS, ns, &[], &argv);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            stdout,
            "errno 13\nerrno 13\nerrno 13\nerrno 13\nLISTEN\nLISTEN\nIPC ok\n\
             ln errno 13\nln-s errno 13\nmv errno 13\nmv-file ok\nmv-shared-dir ok\n\
             mv-dir errno 13\nTMPDIR /tmp/codex-sandbox-65534\n",
            "ns {}: {out:?}",
            ns == Ns::With
        );
        let own = std::fs::symlink_metadata("/tmp/codex-sandbox-65534").unwrap();
        assert_eq!((own.uid(), own.mode() & 0o7777), (NOBODY, 0o700));
    }
    // control: the user, outside any sandbox, listens at every name
    clean();
    let outside_tmp = e.outside.join("tmp");
    std::fs::create_dir_all(&outside_tmp).unwrap();
    chown_r(&e.outside);
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .env("TMPDIR", &outside_tmp)
        .uid(NOBODY)
        .gid(NOBODY)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "LISTEN\nLISTEN\nLISTEN\nLISTEN\nLISTEN\nLISTEN\nIPC ok\n\
             ln ok\nln-s ok\nmv ok\nmv-file ok\nmv-shared-dir ok\nmv-dir ok\nTMPDIR {}\n",
            e.outside.display()
        ),
        "{out:?}"
    );
    clean();
}

/// Outside review r65 F2: every run shared `/tmp/codex-sandbox-UID` as its `$TMPDIR`, so a
/// server one run listened on there made the whole directory a read-only carve-out (the
/// user's socket directories) for a run started meanwhile: its `touch "$TMPDIR/x"` failed
/// with `EROFS`. Each run has a directory of its own in it now. And the other run's directory
/// is the shared part of a temporary root to the second run: it cannot serve there in the
/// first run's place (`EACCES` at `listen`).
#[test]
fn a_server_in_one_runs_tmpdir_leaves_the_next_runs_tmpdir_writable() {
    let e = env();
    let (mut first, first_tmp) = first_run_listening(&e, "srv");
    let script = format!(
        "touch \"$TMPDIR/x\" && echo own-ok; python3 -c 'import socket\ntry: s=socket.socket(socket.AF_UNIX); s.bind(\"{first_tmp}/srv2\"); s.listen(1); print(\"LISTEN\")\nexcept OSError as e: print(\"errno\", e.errno)'"
    );
    let out = sandboxed(&e, WS, Ns::With, &[], &["sh", "-c", &script]);
    let _ = first.kill();
    let _ = first.wait();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "own-ok\nerrno 13\n",
        "{out:?}"
    );
}

/// One `$TMPDIR` per run would pile up (agents run thousands of commands): a run that leaves
/// nothing in it has it removed when the command ends; what a run left stays, as `/tmp` files
/// do.
#[test]
fn an_empty_run_tmpdir_is_removed_and_a_used_one_kept() {
    let e = env();
    let out = sandboxed(&e, WS, Ns::With, &[], &["sh", "-c", "echo \"$TMPDIR\""]);
    let empty = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        empty.starts_with("/tmp/codex-sandbox-65534/run-"),
        "{out:?}"
    );
    assert!(!Path::new(&empty).exists(), "{empty} was left");
    let out = sandboxed(
        &e,
        WS,
        Ns::With,
        &[],
        &["sh", "-c", "touch \"$TMPDIR/kept\" && echo \"$TMPDIR\""],
    );
    let used = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(used.join("kept").exists(), "{out:?}");
    std::fs::remove_dir_all(&used).unwrap();
}

/// Races the rename check (outside reviews r65 F1, r68 F1): the main thread puts a plain file
/// and then a listening socket under one name in `$TMPDIR` (the socket gets the file's freed
/// inode number), two threads rename that name to a fixed name in a directory of `/tmp`, and a
/// third flips that directory between 0500 and 0700, for 1.5 s. Prints how many times a socket
/// stood at the fixed name, and whether plain files were moved. With a second argument the
/// name is in that directory instead (in `/tmp`'s shared part, where the socket is only bound:
/// outside review r72 N1).
const RENAME_RACE_PY: &str = r#"import os, socket, stat, sys, threading, time
t = sys.argv[2] if len(sys.argv) > 2 else os.environ["TMPDIR"]
os.makedirs(t, exist_ok=True)
d = sys.argv[1]
dst = d + "/default"
os.mkdir(d)
stop = time.time() + 1.5
def renamer():
    while time.time() < stop:
        try: os.rename(t + "/f", dst)
        except OSError: pass
def flipper():
    # outside review r68 F1: the directory made unwritable so that taking it back fails
    while time.time() < stop:
        os.chmod(d, 0o500); os.chmod(d, 0o700)
    os.chmod(d, 0o700)
ths = [threading.Thread(target=renamer), threading.Thread(target=renamer), threading.Thread(target=flipper)]
for th in ths: th.start()
landed = 0
moved = 0
while time.time() < stop:
    # a plain file to be checked, then a listening socket in its place (r65, r68: the freed
    # inode number goes to the socket)
    for p in (t + "/f", dst):
        try: os.unlink(p)
        except OSError: pass
    open(t + "/f", "w").close()
    time.sleep(0)
    if os.path.exists(dst): moved += 1
    try: os.unlink(t + "/f")
    except OSError: pass
    s = socket.socket(socket.AF_UNIX)
    try: s.bind(t + "/f")
    except OSError:
        s.close(); continue
    try: s.listen(1)
    except OSError: pass  # refused in the shared part: a bound socket counts all the same
    ino = os.lstat(t + "/f").st_ino if os.path.exists(t + "/f") else None
    try:
        if stat.S_ISSOCK(os.lstat(dst).st_mode): landed += 1
    except OSError: pass
    s.close()
for th in ths: th.join()
print("landed", landed, "plain files moved:", moved > 0, flush=True)
"#;

/// The check of a rename into a temporary root's shared part cannot be raced: the entry is
/// held open, checked and linked by descriptor, so a socket bound under the checked name never
/// stands at the fixed name, not even for a moment (r65's check-by-name let one land within
/// milliseconds; r68's won against a check-then-recheck by inode number in 45 s), from the
/// command's `$TMPDIR` and from within the shared part (r72 N1: renamed by name there, a socket
/// swapped in stood at the fixed name until the check after the call), with and without user
/// namespaces. Control: the plain files are moved.
#[test]
fn a_socket_swapped_in_during_the_rename_check_is_put_back() {
    let e = env();
    for ns in BOTH {
        for shared_source in [false, true] {
            let dir = format!("/tmp/sbl-race{}", std::process::id());
            let src = format!("{dir}-src");
            let mut argv = vec!["python3", "-c", RENAME_RACE_PY, &dir];
            if shared_source {
                argv.push(&src);
            }
            let out = sandboxed(&e, WS, ns, &[], &argv);
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_dir_all(&src);
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "landed 0 plain files moved: True\n",
                "ns {} shared source {shared_source}: {out:?}",
                ns == Ns::With
            );
        }
    }
}

/// Outside review r66 F1: bound by a relative name in `/tmp`, hard-linked into `$TMPDIR`,
/// listened on after a `chdir` there, the socket served at the fixed `/tmp` name (psql, ssh-add,
/// ssh and tmux reached it). A socket file with a second name cannot listen (`EACCES`), with
/// and without user namespaces; control: the same steps without the link listen (in
/// `$TMPDIR`, bound there by a relative name).
#[test]
fn a_socket_bound_in_tmp_and_linked_into_tmpdir_cannot_listen() {
    const PY: &str = r#"import os, socket, sys
t = os.environ["TMPDIR"]
name = sys.argv[1]
os.chdir("/tmp")
s = socket.socket(socket.AF_UNIX); s.bind(name)
try: os.link("/tmp/" + name, t + "/" + name); print("linked", flush=True)
except OSError as e: print("link errno", e.errno, flush=True)
os.chdir(t)
try: s.listen(1); print("LISTEN", flush=True)
except OSError as e: print("errno", e.errno, flush=True)
os.unlink("/tmp/" + name)
os.chdir(t)
c = socket.socket(socket.AF_UNIX); c.bind("own.sock")
try: c.listen(1); print("control LISTEN", flush=True)
except OSError as e: print("control errno", e.errno, flush=True)
"#;
    let e = env();
    for ns in BOTH {
        let name = format!(".s.PGSQL.r66-{}", std::process::id());
        let out = sandboxed(&e, WS, ns, &[], &["python3", "-c", PY, &name]);
        let _ = std::fs::remove_file(format!("/tmp/{name}"));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "linked\nerrno 13\ncontrol LISTEN\n",
            "ns {}: {out:?}",
            ns == Ns::With
        );
    }
}

/// Outside review r66 F2: a second run moved the first run's `$TMPDIR` (its server listening
/// in `tmux-UID/default`) to `/tmp/x67`, where the user's `TMUX_TMPDIR` pointed. Another run's
/// directory and what is in it are not moved into the shared part (`EACCES`); control: a
/// directory of the shared part moves.
#[test]
fn another_runs_tmpdir_cannot_be_moved_to_a_fixed_name() {
    let e = env();
    let (mut first, first_tmp) = first_run_listening(&e, "tmux-65534/default");
    let tag = std::process::id();
    let script = format!(
        "mv '{first_tmp}' /tmp/r66-{tag}-a 2>/dev/null && echo MOVED-RUN || echo refused; \
         mv '{first_tmp}/tmux-65534' /tmp/r66-{tag}-b 2>/dev/null && echo MOVED-SUB || echo refused; \
         mkdir /tmp/r66-{tag}-c && mv /tmp/r66-{tag}-c /tmp/r66-{tag}-d && echo control-moved"
    );
    let out = sandboxed(&e, WS, Ns::With, &[], &["sh", "-c", &script]);
    let _ = first.kill();
    let _ = first.wait();
    for s in ["a", "b", "c", "d"] {
        let _ = std::fs::remove_dir_all(format!("/tmp/r66-{tag}-{s}"));
    }
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "refused\nrefused\ncontrol-moved\n",
        "{out:?}"
    );
}

/// A first run (workspace-write, namespaces) that listens at `rel` below its `$TMPDIR` and
/// stays 20 s; the child and that `$TMPDIR`.
fn first_run_listening(e: &Env, rel: &str) -> (std::process::Child, String) {
    use std::io::BufRead;
    let script = format!(
        "import socket,os,time\np=os.environ['TMPDIR']+'/{rel}'\nos.makedirs(os.path.dirname(p), exist_ok=True)\ns=socket.socket(socket.AF_UNIX); s.bind(p); s.listen(1)\nprint(os.environ['TMPDIR'], flush=True); time.sleep(20)"
    );
    let mut first = sandbox_command(e, &[], WS, Ns::With, &[], &["python3", "-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(first.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let tmp = line.trim().to_string();
    assert!(tmp.starts_with("/tmp/codex-sandbox-65534/"), "{line}");
    (first, tmp)
}

/// Outside review r70 F1: a second run's workspace lies in `/tmp`, where it may listen; to a
/// first run started before it, that workspace is the shared part of `/tmp`, and it moved the
/// directory holding the second run's server to `$TMUX_TMPDIR/tmux-UID`: the user's `tmux ls`
/// ran a command outside. A directory with anything in it does not move within the shared part
/// (`EXDEV`: `mv` copies instead, and a copied socket has no server), with and without user
/// namespaces; control: an empty directory moves, and the server stays reachable at its own
/// name.
#[test]
fn another_runs_workspace_in_tmp_cannot_have_its_server_moved_to_a_fixed_name() {
    use std::io::BufRead;
    const FIRST: &str = r#"import os, sys, time
src, dst = sys.argv[1], sys.argv[2]
print("ready", flush=True)
for _ in range(300):
    if os.path.exists(src + "/default"): break
    time.sleep(0.05)
try: os.rename(src, dst); print("MOVED", flush=True)
except OSError as e: print("errno", e.errno, flush=True)
os.mkdir(dst + ".e"); os.rename(dst + ".e", dst + ".f"); print("control moved", flush=True)
"#;
    const SECOND: &str = r#"import os, socket, sys, time
os.makedirs("d", mode=0o700)
s = socket.socket(socket.AF_UNIX); s.bind("d/default"); s.listen(4)
print("listening", flush=True); time.sleep(20)
"#;
    let e = env();
    for ns in BOTH {
        let tag = format!("{}-{}", std::process::id(), ns == Ns::With);
        let base = PathBuf::from(format!("/tmp/sbl-r70-{tag}"));
        let second_ws = base.join("ws");
        std::fs::create_dir_all(&second_ws).unwrap();
        std::fs::create_dir_all(format!("{}-y", base.display())).unwrap();
        chown_r(&base);
        chown_r(Path::new(&format!("{}-y", base.display())));
        let src = second_ws.join("d");
        let fixed = format!("{}-y/tmux-65534", base.display());
        let (first, lines, mut second) = concurrent_runs(
            &e,
            ns,
            &["python3", "-c", FIRST, s(&src), &fixed],
            &second_ws,
            &["python3", "-c", SECOND],
        );
        let mut second_lines = std::io::BufReader::new(second.stdout.take().unwrap()).lines();
        let listening = second_lines.next().map(|l| l.unwrap());
        let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
        let first_out = first.wait_with_output().unwrap();
        // the victim, outside any sandbox, at the fixed name; the server at its own name
        let at_fixed = std::os::unix::net::UnixStream::connect(format!("{fixed}/default"));
        let at_own = std::os::unix::net::UnixStream::connect(src.join("default"));
        let _ = second.kill();
        let _ = second.wait();
        let _ = std::fs::remove_dir_all(&base);
        let _ = std::fs::remove_dir_all(format!("{}-y", base.display()));
        assert_eq!(
            listening.as_deref(),
            Some("listening"),
            "ns {}",
            ns == Ns::With
        );
        assert_eq!(
            rest,
            ["errno 18", "control moved"],
            "ns {}: {first_out:?}",
            ns == Ns::With
        );
        assert!(
            at_fixed.is_err(),
            "the victim reached the server at {fixed}"
        );
        assert!(at_own.is_ok(), "control: {at_own:?}");
    }
}

/// Outside review r71 F1: the second run (workspace in `/tmp`) shuttles its listening socket
/// into an empty directory `E` of its workspace and back; the first run shuttles `E` (empty,
/// so it may move) between that workspace and a fixed name. A rename checked while `E` was
/// in the workspace landed after `E` had moved: the socket stayed at the fixed name and the
/// user's `psql` sent its password (within about a second). The first fix (checked empty,
/// renamed, checked again and put back) put the directory the other run had filled meanwhile
/// back to the fixed name. A directory now moves within the shared part as a new empty one
/// made at the new name and the old one removed by `rmdir` (which fails when anything is in
/// it), and a rename, link or symlink looks again, after the call, at where its entry landed:
/// no landing lasts, with and without user namespaces; control: both shuttles keep moving.
/// (Without both changes the socket stayed at the fixed name in the first seconds: run and seen.)
#[test]
fn a_socket_renamed_into_a_directory_moved_meanwhile_to_a_fixed_name_is_put_back() {
    const FIRST: &str = r#"import os, sys, time
src, dst = sys.argv[1], sys.argv[2]
print("ready", flush=True)
while not os.path.exists(os.path.dirname(src) + "/H/s"): time.sleep(0.01)
end = time.time() + 4; moves = 0; stuck = 0
while time.time() < end:
    try: os.rename(src, dst)
    except OSError: continue
    moves += 1
    if os.listdir(dst):
        time.sleep(0.05)
        if os.listdir(dst): print("stuck with", os.listdir(dst), flush=True); stuck += 1; break
    for _ in range(10):
        try: os.rename(dst, src); break
        except OSError: time.sleep(0.05)
    else:
        print("stuck with", os.listdir(dst), flush=True); stuck += 1; break
print("moves", moves > 20, "stuck", stuck, flush=True)
"#;
    const SECOND: &str = r#"import os, socket, time
os.makedirs("H"); os.makedirs("E", mode=0o700)
h = os.open("H", os.O_RDONLY | os.O_DIRECTORY); e = os.open("E", os.O_RDONLY | os.O_DIRECTORY)
s = socket.socket(socket.AF_UNIX); s.bind("H/s"); s.listen(4)
print("listening", flush=True)
end = time.time() + 4.5; moves = 0
while time.time() < end:
    try: os.rename("s", "s", src_dir_fd=h, dst_dir_fd=e)
    except OSError:
        # `E` moved: a new directory at each move (its old descriptor sees it deleted)
        try: n = os.open("E", os.O_RDONLY | os.O_DIRECTORY); os.close(e); e = n
        except OSError: pass
        continue
    moves += 1
    # landed where the other run moved `E`: stay there (the attacker's aim)
    if not os.readlink("/proc/self/fd/%d" % e).startswith(os.getcwd()):
        print("landed", flush=True); time.sleep(1); break
    try: os.rename("s", "s", src_dir_fd=e, dst_dir_fd=h)
    except OSError: time.sleep(0.2)
print("moves", moves > 20, flush=True)
"#;
    let e = env();
    for ns in BOTH {
        let tag = format!("{}-{}", std::process::id(), ns == Ns::With);
        let base = PathBuf::from(format!("/tmp/sbl-r71-{tag}"));
        let fixed_dir = PathBuf::from(format!("/tmp/sbl-r71-{tag}-y"));
        let second_ws = base.join("ws");
        std::fs::create_dir_all(&second_ws).unwrap();
        std::fs::create_dir_all(&fixed_dir).unwrap();
        chown_r(&base);
        chown_r(&fixed_dir);
        let fixed = fixed_dir.join("pg");
        let (first, lines, second) = concurrent_runs(
            &e,
            ns,
            &["python3", "-c", FIRST, s(&second_ws.join("E")), s(&fixed)],
            &second_ws,
            &["python3", "-c", SECOND],
        );
        let first_rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
        let first_out = first.wait_with_output().unwrap();
        let second_out = second.wait_with_output().unwrap();
        let _ = std::fs::remove_dir_all(&base);
        let _ = std::fs::remove_dir_all(&fixed_dir);
        assert_eq!(
            first_rest,
            ["moves True stuck 0"],
            "ns {}: {first_out:?}",
            ns == Ns::With
        );
        assert_eq!(
            String::from_utf8_lossy(&second_out.stdout),
            "listening\nmoves True\n",
            "ns {}: {second_out:?}",
            ns == Ns::With
        );
    }
}

/// Two concurrent runs (workspace-write, `ns`): the first in the usual workspace, started and
/// waited for until it prints `ready`; then the second with its workspace at `second_ws`. The
/// first child, the rest of its output lines, and the second child (its output piped).
fn concurrent_runs(
    e: &Env,
    ns: Ns,
    first: &[&str],
    second_ws: &Path,
    second: &[&str],
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    std::process::Child,
) {
    use std::io::BufRead;
    let mut first = sandbox_command(e, &[], WS, ns, &[], first)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(first.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let second_env = Env {
        _dir: tempfile::tempdir().unwrap(),
        ws: second_ws.to_path_buf(),
        outside: e.outside.clone(),
        home: e.home.clone(),
    };
    let second = sandbox_command(&second_env, &[], WS, ns, &[], second)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    (first, lines, second)
}

/// A directory moved within `/tmp`'s shared part is made anew at its new name (outside review
/// r71 F1): made there as `mkdir` makes one, a default ACL of the directory it lands in is not
/// passed on to it (outside review r32 F1's rule: another user's entry would grant that user
/// the directory), with and without user namespaces. Control: the same `mkdir` outside the
/// sandbox inherits the ACL.
#[test]
fn a_directory_moved_within_tmp_inherits_no_default_acl() {
    let e = env();
    let has_acl = |p: &Path| {
        let out = Command::new("getfacl")
            .args(["-c", "-p"])
            .arg(p)
            .output()
            .expect("getfacl (Debian acl) is needed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with("user:1:") || l.starts_with("default:"))
    };
    for ns in BOTH {
        let base = PathBuf::from(format!(
            "/tmp/sbl-acl-{}-{}",
            std::process::id(),
            ns == Ns::With
        ));
        let acl = base.join("acl");
        std::fs::create_dir_all(&acl).unwrap();
        chown_r(&base);
        let st = Command::new("setfacl")
            .args(["-d", "-m", "u:1:rwx"])
            .arg(&acl)
            .status()
            .expect("setfacl (Debian acl) is needed");
        assert!(st.success());
        let script = format!(
            "mkdir {b}/src && mv {b}/src {a}/moved && echo moved",
            b = s(&base),
            a = s(&acl)
        );
        let out = sandboxed(&e, WS, ns, &[], &["sh", "-c", &script]);
        let moved = has_acl(&acl.join("moved"));
        // control: made there outside the sandbox
        std::fs::create_dir(acl.join("outside")).unwrap();
        let outside = has_acl(&acl.join("outside"));
        let _ = std::fs::remove_dir_all(&base);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "moved\n",
            "ns {}: {out:?}",
            ns == Ns::With
        );
        assert!(
            !moved,
            "ns {}: the moved directory took the ACL",
            ns == Ns::With
        );
        assert!(
            outside,
            "control: mkdir outside the sandbox inherits the default ACL"
        );
    }
}

/// A rename into or within `/tmp`'s shared part is made by linking the held file and removing
/// its old name (outside reviews r68 F1, r72 N1); a file renamed onto itself, or onto another
/// name of the same file, stays, as `rename(2)` leaves it (both names), with and without user
/// namespaces; control: a rename to a new name moves it.
#[test]
fn a_file_renamed_onto_itself_in_tmp_stays() {
    const PY: &str = r#"import os, sys
d = sys.argv[1]
os.mkdir(d)
open(d + "/f", "w").write("x")
os.rename(d + "/f", d + "/f")
print("self", os.path.exists(d + "/f"))
os.link(d + "/f", d + "/g")
os.rename(d + "/f", d + "/g")
print("link", os.path.exists(d + "/f"), os.path.exists(d + "/g"))
os.rename(d + "/g", d + "/h")
print("moved", os.path.exists(d + "/g"), os.path.exists(d + "/h"))
"#;
    let e = env();
    for ns in BOTH {
        let d = format!("/tmp/sbl-self-{}-{}", std::process::id(), ns == Ns::With);
        let out = sandboxed(&e, WS, ns, &[], &["python3", "-c", PY, &d]);
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "self True\nlink True True\nmoved False True\n",
            "ns {}: {out:?}",
            ns == Ns::With
        );
    }
}
