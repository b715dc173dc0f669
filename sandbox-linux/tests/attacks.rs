//! Attacks from inside `codex-linux-sandbox`, each asserting the exact errno, each paired with a
//! control showing the same action succeeds without the protection.
//!
//! The probe binary (`sandbox-linux-probe`) performs one action and prints `ok` or `errno N`.
//! These tests need Landlock ABI >= 6, seccomp and unprivileged user namespaces; on a kernel
//! without them they FAIL (the helper refuses with exit 201), they never skip.

// Test code: a failed set-up step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use suite_test_support::bins::sandbox_helper as helper;
const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-linux-probe");
const NOBODY: u32 = 65534;

const EPERM: &str = "errno 1";
const EACCES: &str = "errno 13";
const EXDEV: &str = "errno 18";
const EBUSY: &str = "errno 16";
const EROFS: &str = "errno 30";
const ENOSYS: &str = "errno 38";
const EBADF: &str = "errno 9";
const ENOENT: &str = "errno 2";
const ESRCH: &str = "errno 3";

/// A test directory layout: `ws` (the cwd, a git checkout), `outside`, `home` (with credential
/// files), `codex_home`. World-traversable, owned by nobody, so tests can run the sandbox as 65534.
struct Env {
    _dir: tempfile::TempDir,
    base: PathBuf,
    ws: PathBuf,
    outside: PathBuf,
    home: PathBuf,
    codex_home: PathBuf,
}

fn chown_r(p: &Path) {
    suite_test_support::dirs::chown_tree(p, NOBODY);
}

fn env() -> Env {
    let (dir, base) =
        suite_test_support::dirs::sandbox_scratch("sbl-", Path::new(env!("CARGO_TARGET_TMPDIR")));
    let ws = base.join("ws");
    let outside = base.join("outside");
    let home = base.join("home");
    let codex_home = base.join("codex-home");
    for d in [&ws.join(".git"), &ws.join(".codex"), &outside, &codex_home] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(ws.join(".git/config"), "[core]\n").unwrap();
    std::fs::write(outside.join("public.txt"), "public").unwrap();
    std::fs::write(codex_home.join("auth.json"), "{\"secret\":1}").unwrap();
    for (p, c) in [
        (".ssh/id_ed25519", "PRIVATE KEY"),
        (".gnupg/secring.gpg", "gpg"),
        (".aws/credentials", "aws"),
        (".config/gcloud/credentials.db", "gcloud"),
        (".codex/auth.json", "{\"secret\":2}"),
        (".config/other/settings", "fine"),
        (".bashrc", "fine"),
    ] {
        let f = home.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, c).unwrap();
    }
    chown_r(&base);
    Env {
        _dir: dir,
        base,
        ws,
        outside,
        home,
        codex_home,
    }
}

struct Run<'a> {
    env: &'a Env,
    policy: String,
    cwd: PathBuf,
    nobody: bool,
    extra: Vec<String>,
    outer: Option<&'static str>,
    stdin: Option<&'static str>,
}

impl<'a> Run<'a> {
    fn new(env: &'a Env, policy: &str) -> Self {
        Run {
            env,
            policy: policy.to_string(),
            cwd: env.ws.clone(),
            nobody: false,
            extra: Vec::new(),
            outer: None,
            stdin: None,
        }
    }
    fn ws_write(env: &'a Env) -> Self {
        Self::new(env, r#"{"mode":"workspace-write"}"#)
    }
    fn nobody(mut self) -> Self {
        self.nobody = true;
        self
    }
    fn flag(mut self, f: &str) -> Self {
        self.extra.push(f.to_string());
        self
    }
    fn cwd(mut self, p: &Path) -> Self {
        self.cwd = p.to_path_buf();
        self
    }
    fn outer(mut self, what: &'static str) -> Self {
        self.outer = Some(what);
        self
    }
    fn command(&self, cmd: &[&str]) -> Command {
        let mut c = match self.outer {
            Some(w) => {
                let mut c = Command::new(PROBE);
                c.args(["outer-deny", w, "--", &helper()]);
                c
            }
            None => Command::new(helper()),
        };
        c.arg("--sandbox-policy-cwd")
            .arg(&self.cwd)
            .arg("--sandbox-policy")
            .arg(&self.policy);
        c.args(&self.extra).arg("--").args(cmd);
        c.env("HOME", &self.env.home)
            .env("CODEX_HOME", &self.env.codex_home)
            .env_remove("TMPDIR");
        if self.nobody {
            c.uid(NOBODY).gid(NOBODY);
        }
        c.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        c
    }
    fn output(&self, cmd: &[&str]) -> Output {
        let mut child = self
            .command(cmd)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(s) = self.stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }
    /// Run the probe with `args` inside the sandbox; returns its one-line answer.
    fn probe(&self, args: &[&str]) -> String {
        let mut cmd = vec![PROBE];
        cmd.extend_from_slice(args);
        let out = self.output(&cmd);
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.code() == Some(0),
            "probe {args:?} in sandbox: status {:?}, stdout {stdout:?}, stderr {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

/// The probe outside any sandbox (the control), optionally as nobody.
fn probe_outside(args: &[&str], nobody: bool) -> String {
    let mut c = Command::new(PROBE);
    c.args(args).stdin(Stdio::null());
    if nobody {
        c.uid(NOBODY).gid(NOBODY);
    }
    let out = c.output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

#[test]
fn kernel_has_what_these_tests_need() {
    let k = sandbox_linux::KernelSupport::probe();
    assert!(
        k.landlock_abi >= 6,
        "these tests need Landlock ABI >= 6 (Linux 6.12), kernel has {}",
        k.landlock_abi
    );
    assert!(k.seccomp, "these tests need seccomp");
    sandbox_linux::kernel::probe_user_namespaces()
        .expect("these tests need unprivileged user namespaces");
}

#[test]
fn writes_outside_the_roots_are_denied_inside_work() {
    let e = env();
    // with namespaces everything outside the roots is a read-only mount (EROFS comes first);
    // without them Landlock answers (EACCES)
    let r = Run::ws_write(&e);
    assert_eq!(r.probe(&["write", &s(&e.outside.join("new"))]), EROFS);
    assert_eq!(
        r.probe(&["write", &s(&e.outside.join("public.txt"))]),
        EROFS
    );
    let weak = Run::ws_write(&e)
        .outer("userns")
        .flag("--dangerously-allow-weaker-sandbox");
    assert_eq!(weak.probe(&["write", &s(&e.outside.join("new"))]), EACCES);
    assert_eq!(r.probe(&["write", &s(&e.ws.join("new"))]), "ok");
    assert_eq!(r.probe(&["write", "/dev/null"]), "ok");
    assert_eq!(r.probe(&["read", &s(&e.outside.join("public.txt"))]), "ok");
    // read-only: not even the cwd
    let ro = Run::new(&e, r#"{"mode":"read-only"}"#);
    assert_eq!(ro.probe(&["write", &s(&e.ws.join("ro-new"))]), EROFS);
    let ro_no_ns = Run::new(&e, r#"{"mode":"read-only"}"#).outer("userns");
    assert_eq!(ro_no_ns.probe(&["write", &s(&e.ws.join("ro-new"))]), EACCES);
    assert_eq!(ro.probe(&["write", "/dev/null"]), "ok");
    // control: without the sandbox the outside write works
    assert_eq!(
        probe_outside(&["write", &s(&e.outside.join("new"))], false),
        "ok"
    );
}

#[test]
fn git_and_codex_stay_read_only_inside_a_writable_root() {
    let e = env();
    let r = Run::ws_write(&e).nobody();
    assert_eq!(r.probe(&["write", &s(&e.ws.join(".git/config"))]), EROFS);
    assert_eq!(r.probe(&["write", &s(&e.ws.join(".git/hooks-new"))]), EROFS);
    assert_eq!(r.probe(&["write", &s(&e.ws.join(".codex/x"))]), EROFS);
    assert_eq!(r.probe(&["read", &s(&e.ws.join(".git/config"))]), "ok");
    assert_eq!(r.probe(&["write", &s(&e.ws.join("src.rs"))]), "ok");
    // the command cannot undo the bind mount
    assert_eq!(r.probe(&["mount"]), EPERM);
    // control: outside the sandbox nobody can write .git/config
    assert_eq!(
        probe_outside(&["write", &s(&e.ws.join(".git/config"))], true),
        "ok"
    );
}

#[test]
fn a_symlinked_git_is_refused_because_the_link_could_be_replaced() {
    // A read-only mount on `.git -> elsewhere` protects only the target; the command could
    // delete the link and create a writable `.git`. The sandbox fails closed.
    let e = env();
    let real = e.ws.parent().unwrap().join("gitdir-elsewhere");
    std::fs::rename(e.ws.join(".git"), &real).unwrap();
    std::os::unix::fs::symlink(&real, e.ws.join(".git")).unwrap();
    let out = Run::ws_write(&e)
        .nobody()
        .output(&[PROBE, "write", &s(&e.ws.join("src.rs"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(201), "{err}");
    assert!(
        err.contains("is a symbolic link") && err.contains("--dangerously-allow-weaker-sandbox"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "the command must not have run");
    // with the dangerous flag it runs and says which carve-out is writable
    let weak = Run::ws_write(&e)
        .nobody()
        .flag("--dangerously-allow-weaker-sandbox");
    let out = weak.output(&[PROBE, "write", &s(&e.ws.join("src.rs"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{err}");
    assert!(err.contains("WRITABLE symlinked carve-outs"), "{err}");
    // control: the same checkout with a real `.git` directory runs (see
    // git_and_codex_stay_read_only_inside_a_writable_root for the protection itself)
    std::fs::remove_file(e.ws.join(".git")).unwrap();
    std::fs::rename(&real, e.ws.join(".git")).unwrap();
    let ok = Run::ws_write(&e).nobody();
    assert_eq!(ok.probe(&["write", &s(&e.ws.join(".git/config"))]), EROFS);
}

#[test]
fn deny_read_defaults_are_unreadable_and_their_siblings_readable() {
    let e = env();
    let denied = [
        e.codex_home.join("auth.json"),
        e.home.join(".codex/auth.json"),
        e.home.join(".ssh/id_ed25519"),
        e.home.join(".gnupg/secring.gpg"),
        e.home.join(".aws/credentials"),
        e.home.join(".config/gcloud/credentials.db"),
    ];
    for policy in [r#"{"mode":"read-only"}"#, r#"{"mode":"workspace-write"}"#] {
        let r = Run::new(&e, policy);
        for p in &denied {
            assert_eq!(
                r.probe(&["read", &s(p)]),
                EACCES,
                "{policy} {}",
                p.display()
            );
            // control: readable without the sandbox
            assert_eq!(probe_outside(&["read", &s(p)], false), "ok");
        }
        assert_eq!(r.probe(&["read", &s(&e.home.join(".bashrc"))]), "ok");
        assert_eq!(
            r.probe(&["read", &s(&e.home.join(".config/other/settings"))]),
            "ok"
        );
        assert_eq!(r.probe(&["readdir", &s(&e.home)]), "ok");
    }
    // cwd = $HOME as a writable root (allowed): ~/.ssh still unreadable and unwritable, the
    // rest writable
    let r = Run::ws_write(&e).cwd(&e.home).flag("--allow-writable-home");
    assert_eq!(
        r.probe(&["read", &s(&e.home.join(".ssh/id_ed25519"))]),
        EACCES
    );
    // a deny-read path inside a root is bound read-only
    assert_eq!(
        r.probe(&["write", &s(&e.home.join(".ssh/authorized_keys"))]),
        EROFS
    );
    assert_eq!(
        r.probe(&["write", &s(&e.home.join(".config/other/new"))]),
        "ok"
    );
    // --deny-read adds a path; without it the same file is readable
    let extra = e.outside.join("public.txt");
    assert_eq!(
        Run::ws_write(&e)
            .flag("--deny-read")
            .flag(&s(&extra))
            .probe(&["read", &s(&extra)]),
        EACCES
    );
    assert_eq!(Run::ws_write(&e).probe(&["read", &s(&extra)]), "ok");
}

#[test]
fn links_symlinks_and_renames_cannot_escape_a_root() {
    let e = env();
    let r = Run::ws_write(&e);
    std::fs::write(e.ws.join("mine"), "x").unwrap();
    // hard link of an outside file into the root (would make it writable): EXDEV
    assert_eq!(
        r.probe(&[
            "link",
            &s(&e.outside.join("public.txt")),
            &s(&e.ws.join("hl"))
        ]),
        EXDEV
    );
    // symlink inside the root pointing outside, then write through it
    assert_eq!(
        r.probe(&[
            "symlink-write",
            &s(&e.ws.join("sl")),
            &s(&e.outside.join("evil"))
        ]),
        EROFS
    );
    assert!(!e.outside.join("evil").exists());
    // rename out of the root, and into it from a read-only place: the root is its own mount
    // (EXDEV); without namespaces Landlock refuses (EACCES)
    let weak = Run::ws_write(&e)
        .outer("userns")
        .flag("--dangerously-allow-weaker-sandbox");
    for (r, errno) in [(&r, EXDEV), (&weak, EACCES)] {
        assert_eq!(
            r.probe(&[
                "rename",
                &s(&e.ws.join("mine")),
                &s(&e.outside.join("moved"))
            ]),
            errno
        );
        assert_eq!(
            r.probe(&[
                "rename",
                &s(&e.outside.join("public.txt")),
                &s(&e.ws.join("stolen"))
            ]),
            errno
        );
    }
    // controls: the same operations inside the root work
    assert_eq!(
        r.probe(&["link", &s(&e.ws.join("mine")), &s(&e.ws.join("hl2"))]),
        "ok"
    );
    assert_eq!(
        r.probe(&["rename", &s(&e.ws.join("hl2")), &s(&e.ws.join("renamed"))]),
        "ok"
    );
    assert_eq!(
        probe_outside(
            &[
                "link",
                &s(&e.outside.join("public.txt")),
                &s(&e.ws.join("hl"))
            ],
            false
        ),
        "ok"
    );
}

#[test]
fn network_sockets_are_denied_and_allowed_with_network_access() {
    let e = env();
    let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = v4.local_addr().unwrap().port().to_string();
    let v6 = std::net::TcpListener::bind("[::1]:0").ok();
    let r = Run::ws_write(&e);
    assert_eq!(
        r.probe(&["tcp4-connect", &port]),
        EPERM,
        "the proxy's port on 127.0.0.1"
    );
    if let Some(l) = &v6 {
        assert_eq!(
            r.probe(&["tcp6-connect", &l.local_addr().unwrap().port().to_string()]),
            EPERM
        );
    }
    assert_eq!(r.probe(&["tcp6-socket"]), EPERM);
    assert_eq!(r.probe(&["tcp4-bind"]), EPERM);
    assert_eq!(r.probe(&["udp4-sendto", &port]), EPERM);
    assert_eq!(r.probe(&["udp6-socket"]), EPERM);
    for kind in [
        "raw-socket",
        "packet-socket",
        "netlink-socket",
        "vsock-socket",
    ] {
        assert_eq!(r.probe(&[kind]), EPERM, "{kind}");
        assert_ne!(probe_outside(&[kind], false), EPERM, "control {kind}");
    }
    // controls: outside, and inside with network_access
    assert_eq!(probe_outside(&["tcp4-connect", &port], false), "ok");
    let net = Run::new(&e, r#"{"mode":"workspace-write","network_access":true}"#);
    assert_eq!(net.probe(&["tcp4-connect", &port]), "ok");
    assert_eq!(net.probe(&["tcp4-bind"]), "ok");
    assert_eq!(
        net.probe(&["netlink-socket"]),
        EPERM,
        "netlink stays denied with network access"
    );
    assert_eq!(
        net.probe(&["env", "CODEX_SANDBOX_NETWORK_DISABLED"]),
        "<unset>"
    );
}

#[test]
fn kernel_interfaces_are_denied() {
    let e = env();
    let r = Run::ws_write(&e);
    for (attack, denied, control) in [
        ("io-uring", EPERM, "ok"),
        ("tiocsti", EPERM, EBADF),
        ("tioclinux", EPERM, EBADF),
        // outside review r10 F-S4: N_NULL line discipline, output suspended, exclusive mode
        // outlive the sandbox on the user's terminal
        ("tiocsetd", EPERM, EBADF),
        ("tcxonc", EPERM, EBADF),
        ("tiocexcl", EPERM, EBADF),
        ("unshare-user", EPERM, "ok"),
        ("clone-newuser", EPERM, "ok"),
        ("clone3", ENOSYS, "errno 22"),
        ("keyctl", EPERM, "ok"),
        ("add-key", EPERM, "errno 14"),
        ("request-key", EPERM, "errno 14"),
        ("bpf", EPERM, "errno 22"),
        ("perf-event-open", EPERM, "errno 14"),
    ] {
        assert_eq!(r.probe(&[attack]), denied, "{attack} inside");
        assert_eq!(probe_outside(&[attack], false), control, "{attack} control");
    }
}

fn spawn_victim() -> std::process::Child {
    Command::new(PROBE)
        .args(["sleep", "120"])
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|st| {
            !st.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn same_uid_processes_outside_cannot_be_traced_signalled_or_read() {
    let e = env();
    let mut victim = spawn_victim();
    let pid = victim.id().to_string();
    // with a pid namespace (and its own /proc) the victim is not even visible
    let r = Run::ws_write(&e).nobody();
    assert_eq!(r.probe(&["ptrace", &pid]), EPERM);
    assert_eq!(r.probe(&["process-vm-readv", &pid]), EPERM);
    assert_eq!(r.probe(&["proc-mem", &pid]), ENOENT);
    assert_eq!(r.probe(&["kill", &pid]), ESRCH);
    // without namespaces Landlock's scopes and seccomp answer
    let r = Run::ws_write(&e)
        .nobody()
        .outer("userns")
        .flag("--dangerously-allow-weaker-sandbox");
    assert_eq!(r.probe(&["ptrace", &pid]), EPERM);
    assert_eq!(r.probe(&["process-vm-readv", &pid]), EPERM);
    assert_eq!(r.probe(&["proc-mem", &pid]), EACCES);
    assert_eq!(r.probe(&["kill", &pid]), EPERM);
    assert!(alive(victim.id()), "victim must survive");
    // controls, same uid, no sandbox: open /proc/PID/mem succeeds (read at 0 gives EIO),
    // process_vm_readv reaches the memory check (EFAULT), and kill works
    assert_eq!(probe_outside(&["proc-mem", &pid], true), "errno 5");
    assert_eq!(probe_outside(&["process-vm-readv", &pid], true), "errno 14");
    assert_eq!(probe_outside(&["kill", &pid], true), "ok");
    let st = victim.wait().unwrap();
    assert_eq!(st.signal(), Some(libc::SIGKILL));
}

#[test]
fn abstract_unix_socket_outside_is_unreachable_but_unix_ipc_works() {
    use std::os::linux::net::SocketAddrExt;
    let e = env();
    let name = format!("sbl-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _outside = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let r = Run::ws_write(&e);
    assert_eq!(r.probe(&["abstract-connect", &name]), EPERM);
    assert_eq!(probe_outside(&["abstract-connect", &name], false), "ok");
    // controls inside: socketpair + sendto, and connect/send/sendto/sendmsg on a named socket
    // (codex's Landlock runner broke sendto on connected sockets)
    assert_eq!(r.probe(&["socketpair"]), "ok");
    // (the server was started before the sandbox, so the policy names it: tests/unix_sockets.rs)
    let sock = e.ws.join("ipc.sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let r = Run::ws_write(&e)
        .flag("--allow-unix-socket")
        .flag(&s(&sock));
    assert_eq!(r.probe(&["unix-connect-send", &s(&sock)]), "ok");
}

#[test]
fn setuid_binary_gains_nothing() {
    let e = env();
    let suid = e.base.join("suid-probe");
    std::fs::copy(PROBE, &suid).unwrap();
    chown(&suid, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    assert_eq!(
        probe_outside_path(&suid),
        "0",
        "control: setuid works outside"
    );
    assert_eq!(
        Run::ws_write(&e).nobody().probe_path(&suid),
        NOBODY.to_string()
    );
}

fn probe_outside_path(p: &Path) -> String {
    // The copy was just written: a fork by another test thread may still hold its write
    // descriptor for a moment (ETXTBSY, "Text file busy"), so retry that error only.
    let mut tries = 0;
    let out = loop {
        match Command::new(p).arg("euid").uid(NOBODY).gid(NOBODY).output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.unwrap(),
        }
    };
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Run<'_> {
    fn probe_path(&self, p: &Path) -> String {
        let out = self.output(&[p.to_str().unwrap(), "euid"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

#[test]
fn exit_codes_and_stdio_pass_through() {
    let e = env();
    let r = Run::ws_write(&e);
    assert_eq!(r.output(&[PROBE, "exit", "0"]).status.code(), Some(0));
    assert_eq!(r.output(&[PROBE, "exit", "42"]).status.code(), Some(42));
    assert_eq!(
        r.output(&[PROBE, "signal", "15"]).status.code(),
        Some(128 + 15)
    );
    assert_eq!(
        r.output(&[PROBE, "signal", "11"]).status.code(),
        Some(128 + 11)
    );
    let mut r2 = Run::ws_write(&e);
    r2.stdin = Some("hello through\n");
    let out = r2.output(&[PROBE, "cat"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello through\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("to-stderr"));
    assert_eq!(r.probe(&["env", "CODEX_SANDBOX"]), "linux");
    // the launcher's runtime ignores SIGPIPE; the command must get the default back (grep is
    // not a Rust program, so it shows the inherited disposition)
    let out = r.output(&["grep", "SigIgn", "/proc/self/status"]);
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    let mask = u64::from_str_radix(line.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
    assert_eq!(
        mask & (1 << (libc::SIGPIPE - 1)),
        0,
        "SIGPIPE ignored in the command: {line}"
    );
    assert_eq!(r.probe(&["env", "CODEX_SANDBOX_NETWORK_DISABLED"]), "1");
}

#[test]
fn missing_or_unexecutable_command_is_a_clear_message() {
    let e = env();
    let r = Run::ws_write(&e);
    let out = r.output(&["no-such-command-xyz"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert!(
        err.contains("no-such-command-xyz: command not found"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    let noexec = e.ws.join("noexec.sh");
    std::fs::write(&noexec, "#!/bin/sh\n").unwrap();
    let out = r.output(&[noexec.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(126),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Run::new(&e, r#"{"mode":"yolo"}"#).output(&["true"]);
    assert_eq!(out.status.code(), Some(200));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid sandbox policy JSON"));
}

#[test]
fn without_user_namespaces_carve_outs_are_refused_unless_dangerously_allowed() {
    let e = env();
    let r = Run::ws_write(&e).nobody().outer("userns");
    let out = r.output(&[PROBE, "write", &s(&e.ws.join(".git/config"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(201), "{err}");
    assert!(
        err.contains("refusing to run") && err.contains("unprivileged user namespaces"),
        "{err}"
    );
    assert!(
        err.contains("Linux 3.8") && err.contains("--dangerously-allow-weaker-sandbox"),
        "{err}"
    );
    // with the dangerous flag: runs, says what is missing, and the rest still holds; `.git`
    // stays unwritten without a mount namespace too (the name guard), and the control shows the
    // write works once the guard is off (`--allow-git-writes`)
    let weak = Run::ws_write(&e)
        .nobody()
        .outer("userns")
        .flag("--dangerously-allow-weaker-sandbox");
    let out = weak.output(&[PROBE, "write", &s(&e.ws.join(".git/config"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), EACCES, "{err}");
    assert!(
        err.contains("name guard on") && err.contains("MISSING"),
        "{err}"
    );
    let open = Run::ws_write(&e)
        .nobody()
        .outer("userns")
        .flag("--dangerously-allow-weaker-sandbox")
        .flag("--allow-git-writes");
    let out = open.output(&[PROBE, "write", &s(&e.ws.join(".git/config"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok", "{err}");
    assert!(err.contains("WRITABLE carve-outs"), "{err}");
    assert_eq!(weak.probe(&["write", &s(&e.outside.join("x"))]), EACCES);
    // read-only needs no namespace: runs normally under the same outer filter
    let ro = Run::new(&e, r#"{"mode":"read-only"}"#)
        .nobody()
        .outer("userns");
    assert_eq!(ro.probe(&["read", &s(&e.outside.join("public.txt"))]), "ok");
}

#[test]
fn without_landlock_the_sandbox_refuses_unless_dangerously_allowed() {
    let e = env();
    let out = Run::ws_write(&e)
        .outer("landlock")
        .output(&[PROBE, "exit", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(201), "{err}");
    assert!(
        err.contains("Landlock filesystem restrictions") && err.contains("Linux 5.13"),
        "{err}"
    );
    assert!(
        err.contains("Landlock signal scoping") && err.contains("Linux 6.12"),
        "{err}"
    );
    let weak = Run::ws_write(&e)
        .outer("landlock")
        .flag("--dangerously-allow-weaker-sandbox");
    let out = weak.output(&[PROBE, "tcp4-bind"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        EPERM,
        "seccomp still applies: {err}"
    );
    assert!(
        err.contains("landlock NOT applied") && err.contains("MISSING"),
        "{err}"
    );
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if fields.get(1).and_then(|f| f.parse::<u32>().ok()) == Some(pid) {
            v.push(p);
        }
    }
    v
}

fn wait_for<F: Fn() -> bool>(f: F) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn the_command_dies_with_the_launcher_and_gets_forwarded_signals() {
    let e = env();
    let r = Run::ws_write(&e);
    // SIGKILL the launcher: PDEATHSIG kills the command
    let mut launcher = r.command(&[PROBE, "sleep", "120"]).spawn().unwrap();
    let lpid = launcher.id();
    assert!(
        wait_for(|| !children_of(lpid).is_empty()),
        "command never started"
    );
    let init = children_of(lpid)[0];
    assert!(
        wait_for(|| !children_of(init).is_empty()),
        "command never started"
    );
    let cmd = children_of(init)[0];
    launcher.kill().unwrap();
    launcher.wait().unwrap();
    assert!(
        wait_for(|| !alive(cmd)),
        "command {cmd} survived its launcher"
    );
    // SIGTERM the launcher: forwarded, and the exit code is 128 + 15
    let mut launcher = r.command(&[PROBE, "sleep", "120"]).spawn().unwrap();
    let lpid = launcher.id();
    assert!(wait_for(|| {
        children_of(lpid)
            .iter()
            .flat_map(|&init| children_of(init))
            .any(|c| {
                std::fs::read_link(format!("/proc/{c}/exe"))
                    .map(|p| p.ends_with("sandbox-linux-probe"))
                    .unwrap_or(false)
            })
    }));
    assert_eq!(
        probe_outside(&["kill", &lpid.to_string(), "15"], false),
        "ok"
    );
    let st = launcher.wait().unwrap();
    assert_eq!(st.code(), Some(128 + 15));
}

/// Runs `cmd` under `script(1)` so that it has a controlling terminal (a pty), like a user's shell.
fn under_pty(cmd: &str) -> String {
    let out = Command::new("script")
        .args(["-qc", cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script(1) from util-linux is needed for the terminal test");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn the_command_has_no_controlling_terminal() {
    // bubblewrap CVE-2017-5226: with the user's terminal as controlling tty, TIOCSTI injects
    // input. After setsid() the command has none, and /dev/tty is not among the devices
    // Landlock lets it open (EACCES, before the tty driver would answer ENXIO).
    let inside = under_pty(&format!(
        "{} --sandbox-policy-cwd / --sandbox-policy '{{\"mode\":\"read-only\"}}' -- {PROBE} read /dev/tty",
        helper()
    ));
    assert_eq!(inside, EACCES);
    // control: the same probe under the same pty without the sandbox opens its terminal
    assert_eq!(under_pty(&format!("{PROBE} read /dev/tty")), "ok");
}

#[test]
fn worktree_gitdir_named_by_a_dot_git_file_stays_read_only() {
    let e = env();
    // ws2 is a worktree: its .git is a file naming a gitdir inside another writable root, below
    // that root's own `.git` directory (a gitdir that could be renamed away is refused instead:
    // tests/git_dirs.rs)
    let ws2 = e.base.join("wt");
    let other = e.base.join("other");
    let gitdir = other.join(".git/worktrees/wt");
    std::fs::create_dir_all(&ws2).unwrap();
    std::fs::create_dir_all(&gitdir).unwrap();
    std::fs::write(ws2.join(".git"), "gitdir: ../other/.git/worktrees/wt\n").unwrap();
    chown_r(&e.base);
    let policy = format!(
        r#"{{"mode":"workspace-write","writable_roots":["{}"]}}"#,
        other.display()
    );
    let r = Run::new(&e, &policy).cwd(&ws2).nobody();
    assert_eq!(r.probe(&["write", &s(&gitdir.join("HEAD"))]), EROFS);
    assert_eq!(r.probe(&["write", &s(&ws2.join(".git"))]), EROFS);
    // controls: the rest of both roots is writable
    assert_eq!(r.probe(&["write", &s(&other.join("x"))]), "ok");
    assert_eq!(r.probe(&["write", &s(&ws2.join("y"))]), "ok");
}

#[test]
fn a_root_inside_another_root_cannot_be_renamed_away_from_its_read_only_git() {
    // The checkout (the cwd, with .git) lies inside the writable root `outer`: renaming it (or a
    // directory above it) away and creating a fresh .git in its place would plant git config or
    // hooks that the user's git later runs outside the sandbox.
    let e = env();
    let outer = e.base.join("outer");
    let inner = outer.join("mid/inner");
    std::fs::create_dir_all(inner.join(".git")).unwrap();
    std::fs::write(inner.join(".git/config"), "[core]\n").unwrap();
    std::fs::create_dir_all(outer.join("sib")).unwrap();
    chown_r(&e.base);
    let policy = format!(
        r#"{{"mode":"workspace-write","writable_roots":["{}"]}}"#,
        outer.display()
    );
    let r = Run::new(&e, &policy).cwd(&inner).nobody();
    // EBUSY from the mount point, or EACCES from the name guard (the directory is above a
    // carve-out that does not exist yet, inner/.codex): refused either way
    for (from, to) in [
        (inner.clone(), outer.join("mid/moved")),
        (outer.join("mid"), outer.join("mid2")),
    ] {
        let got = r.probe(&["rename", &s(&from), &s(&to)]);
        assert!(got == EBUSY || got == EACCES, "{from:?}: {got}");
        assert!(from.is_dir());
    }
    // the checkout's .git stays read-only through a path relative to the cwd too (the process
    // starts in the covered directory below the pin; the sandbox enters it again by path)
    let relative = |path: &str| {
        let out = r
            .command(&[PROBE, "write", path])
            .current_dir(&inner)
            .env("PWD", &inner)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(relative(".git/config"), EROFS);
    assert_eq!(relative("src.rs"), "ok");
    assert_eq!(r.probe(&["write", &s(&inner.join(".git/config"))]), EROFS);
    // controls: the outer root is writable (a sibling renames), and so is the checkout
    assert_eq!(
        r.probe(&["rename", &s(&outer.join("sib")), &s(&outer.join("sib2"))]),
        "ok"
    );
    assert_eq!(
        std::fs::read_to_string(inner.join(".git/config")).unwrap(),
        "[core]\n"
    );
}

/// Outside review r51 F1: the loader variables the launcher kept for the command were added
/// back after the secret filter, so `LD_AUTH_TOKEN`, `LD_API_KEY` and an `LD_*` URL with a
/// password reached the command. They go through the filter like every other variable now; an
/// ordinary loader variable still arrives (the control).
#[test]
fn loader_variables_pass_the_secret_filter_like_any_other() {
    let e = env();
    let mut c = Run::ws_write(&e).command(&["/usr/bin/env"]);
    c.env("LD_AUTH_TOKEN", "r51-token")
        .env("LD_API_KEY", "r51-key")
        .env("LD_CONN_URL", "postgres://u:r51-password@db/x")
        .env("LD_LIBRARY_PATH", "/nonexistent-r51-lib")
        .env("OTHER_TOKEN", "r51-other");
    let out = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for secret in ["r51-token", "r51-key", "r51-password", "r51-other"] {
        assert!(
            !seen.contains(secret),
            "{secret} reached the command:\n{seen}"
        );
    }
    assert!(
        seen.lines()
            .any(|l| l == "LD_LIBRARY_PATH=/nonexistent-r51-lib"),
        "the ordinary loader variable is gone too:\n{seen}"
    );
}

#[test]
fn loader_variables_removed_from_the_launcher_reach_the_command() {
    // secure-main strips LD_* from our own process before main and keeps them for children;
    // the sandbox hands them back to the user's command.
    let e = env();
    let mut c = Run::ws_write(&e).command(&[PROBE, "env", "LD_LIBRARY_PATH"]);
    c.env("LD_LIBRARY_PATH", "/nonexistent-sbl-lib");
    let out = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "/nonexistent-sbl-lib"
    );
}
