//! Outside review r14: metadata of files outside the roots through descriptors the command did
//! not open through the sandbox's mounts (F2), and POSIX message queues left behind without an
//! IPC namespace (F1). Each attack runs as the sandboxed command (uid 65534), with and without
//! namespaces (the probe's `outer-deny userns` filter), and each has a control: the same call
//! outside the sandbox succeeds and changes the file.

// Test code: a failed set-up step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use suite_test_support::bins::sandbox_helper as helper;
const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-linux-probe");
const NOBODY: u32 = 65534;
/// Another local user (the one who would read the terminal).
const OTHER: u32 = 65533;

const EPERM: &str = "errno 1";
const ENOENT: &str = "errno 2";
const EACCES: &str = "errno 13";
const EROFS: &str = "errno 30";

const READ_ONLY: &str = r#"{"mode":"read-only"}"#;
const WS_WRITE: &str = r#"{"mode":"workspace-write"}"#;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ns {
    With,
    Without,
}

/// `ws` (the cwd, the writable root of workspace-write) and `out` (outside every root) with a
/// 0600 `log` carrying the xattr `user.r14`, all owned by nobody.
struct Env {
    _dir: tempfile::TempDir,
    base: PathBuf,
    ws: PathBuf,
    out: PathBuf,
}

impl Env {
    fn new() -> Env {
        let (dir, base) = suite_test_support::dirs::sandbox_scratch(
            "sbfd-",
            Path::new(env!("CARGO_TARGET_TMPDIR")),
        );
        let ws = base.join("ws");
        let out = base.join("out");
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("log"), "private\n").unwrap();
        std::fs::write(ws.join("mine"), "mine\n").unwrap();
        for p in [&base, &ws, &out, &out.join("log"), &ws.join("mine")] {
            chown(p, Some(NOBODY), Some(NOBODY)).unwrap();
        }
        let e = Env {
            _dir: dir,
            base,
            ws,
            out,
        };
        e.reset();
        e
    }

    fn log(&self) -> PathBuf {
        self.out.join("log")
    }

    /// The log back to 0600 with its xattr (after a control changed it).
    fn reset(&self) {
        std::fs::set_permissions(self.log(), std::fs::Permissions::from_mode(0o600)).unwrap();
        set_xattr(&self.log(), "user.r14");
    }
}

fn set_xattr(p: &Path, name: &str) {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: NUL-terminated path and name; a one-byte value.
    let r = unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), c"1".as_ptr().cast(), 1, 0) };
    assert_eq!(r, 0, "setxattr {p:?}: {}", std::io::Error::last_os_error());
}

fn has_xattr(p: &Path, name: &str) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: NUL-terminated path and name; size 0 asks for the length only.
    unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
}

/// Everything a metadata change shows: mode, owner, mtime, ctime (changed by every metadata
/// call, xattrs and inode flags included), and the xattr.
fn stamp(p: &Path) -> (u32, u32, u32, i64, i64, i64, i64, bool) {
    let m = std::fs::metadata(p).unwrap();
    (
        m.mode(),
        m.uid(),
        m.gid(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        has_xattr(p, "user.r14"),
    )
}

/// The helper (under a filter that denies user namespaces for `Ns::Without`) with `policy`,
/// its workspace and working directory `env`'s; the command still to be appended after `--`.
fn sandbox_cmd(env: &Env, policy: &str, ns: Ns) -> Command {
    let mut c = match ns {
        Ns::With => Command::new(helper()),
        Ns::Without => {
            let mut c = Command::new(PROBE);
            c.args(["outer-deny", "userns", "--", &helper()]);
            c
        }
    };
    c.arg("--sandbox-policy-cwd")
        .arg(&env.ws)
        .arg("--sandbox-policy")
        .arg(policy)
        .current_dir(&env.ws)
        .env("PWD", &env.ws);
    c
}

/// The probe in the sandbox as nobody with `stdin` as its fd 0; its one-line answer.
fn probe_in(
    env: &Env,
    policy: &str,
    ns: Ns,
    extra: &[&str],
    stdin: Stdio,
    args: &[&str],
) -> String {
    let mut c = sandbox_cmd(env, policy, ns);
    c.args(extra)
        .arg("--")
        .arg(PROBE)
        .args(args)
        .env_remove("TMPDIR")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(stdin);
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "probe {args:?} ({policy} {ns:?}): stdout {stdout:?}, stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The probe outside any sandbox (the control), as `uid`, with `stdin`.
fn probe_out(uid: u32, stdin: Stdio, args: &[&str]) -> String {
    let out = Command::new(PROBE)
        .args(args)
        .uid(uid)
        .gid(uid)
        .stdin(stdin)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn open_ro(p: &Path) -> Stdio {
    Stdio::from(File::open(p).unwrap())
}

/// Calls on the descriptor itself (the probe's `meta` names).
const FD_CALLS: &[&str] = &[
    "fchmod",
    "dup-fchmod",
    "fchown",
    "futimens",
    "fremovexattr",
    "setflags",
    "fchmodat2-empty",
    "fchownat-empty",
    "utimensat-empty",
];
/// Path calls, made on `/proc/self/fd/0` and `/dev/stdin` (magic links to the descriptor).
#[cfg(target_arch = "x86_64")]
const PATH_CALLS: &[&str] = &[
    "chmod",
    "fchmodat",
    "chown",
    "lchown",
    "fchownat",
    "utimensat",
    "utimes",
    "removexattr",
];
#[cfg(not(target_arch = "x86_64"))]
const PATH_CALLS: &[&str] = &["fchmodat", "fchownat", "utimensat", "removexattr"];

/// The policies each mode runs (without namespaces workspace-write is refused: exit 201,
/// `escapes.rs`).
fn modes() -> Vec<(&'static str, Ns)> {
    vec![
        (READ_ONLY, Ns::With),
        (WS_WRITE, Ns::With),
        (READ_ONLY, Ns::Without),
    ]
}

#[test]
fn a_file_outside_the_roots_keeps_its_metadata_through_inherited_descriptors() {
    let e = Env::new();
    let log = e.log();
    let before = stamp(&log);
    for (policy, ns) in modes() {
        for call in FD_CALLS {
            let a = probe_in(&e, policy, ns, &[], open_ro(&log), &["meta", call, "fd:0"]);
            assert_eq!(a, EPERM, "{call} on fd 0 ({policy} {ns:?})");
        }
        for call in PATH_CALLS {
            for target in ["fd:0", "/dev/stdin"] {
                let a = probe_in(&e, policy, ns, &[], open_ro(&log), &["meta", call, target]);
                // with namespaces: /proc/self names no process for the supervisor (ENOENT), a
                // magic link is refused, and lchown of /dev/stdin is the symlink's own, on a
                // read-only mount; without: seccomp refuses the call
                let want = match (ns, *call, target) {
                    (Ns::Without, _, _) => EPERM,
                    (Ns::With, "lchown", "/dev/stdin") => EROFS,
                    (Ns::With, _, _) => ENOENT,
                };
                assert_eq!(a, want, "{call} on {target} ({policy} {ns:?})");
            }
        }
        // a directory outside as fd 0: relative to it, and after fchdir into it
        for call in ["at-chmod", "at-utimensat", "fchdir-chmod"] {
            let a = probe_in(
                &e,
                policy,
                ns,
                &[],
                open_ro(&e.out),
                &["meta", call, "fd:0", "log"],
            );
            let want = if ns == Ns::With { EROFS } else { EPERM };
            assert_eq!(a, want, "{call} in the outside directory ({policy} {ns:?})");
        }
    }
    assert_eq!(stamp(&log), before, "the log's metadata changed");
    // controls: outside the sandbox, the same uid with the same descriptor changes it all
    // (lchown acts on the /proc link itself there)
    for call in FD_CALLS
        .iter()
        .chain(PATH_CALLS)
        .filter(|c| **c != "lchown")
    {
        e.reset();
        assert_eq!(
            probe_out(NOBODY, open_ro(&log), &["meta", call, "fd:0"]),
            "ok",
            "control {call}"
        );
    }
    e.reset();
    assert_eq!(
        probe_out(
            NOBODY,
            open_ro(&e.out),
            &["meta", "at-chmod", "fd:0", "log"]
        ),
        "ok"
    );
    assert_eq!(std::fs::metadata(&log).unwrap().mode() & 0o777, 0o644);
    assert_eq!(
        probe_out(NOBODY, open_ro(&log), &["meta", "futimens", "fd:0"]),
        "ok"
    );
    assert_eq!(std::fs::metadata(&log).unwrap().mtime(), 0);
}

/// The reviewer's attack: `fchmod(0, 0644)` on the user's terminal made it readable by every
/// local user, who then read what the user typed after the sandbox returned.
#[test]
fn the_users_terminal_stays_private_to_the_user() {
    use std::os::unix::fs::OpenOptionsExt;
    let e = Env::new();
    let (master, slave) = pty();
    chown(&slave, Some(NOBODY), Some(NOBODY)).unwrap();
    std::fs::set_permissions(&slave, std::fs::Permissions::from_mode(0o600)).unwrap();
    let tty = |p: &Path| {
        Stdio::from(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open(p)
                .unwrap(),
        )
    };
    let before = std::fs::metadata(&slave).unwrap();
    let slave_s = slave.display().to_string();
    for (policy, ns) in modes() {
        for call in ["fchmod", "fchown", "futimens", "fchmodat2-empty"] {
            let a = probe_in(&e, policy, ns, &[], tty(&slave), &["meta", call, "fd:0"]);
            assert_eq!(a, EPERM, "{call} on the terminal ({policy} {ns:?})");
        }
        let a = probe_in(
            &e,
            policy,
            ns,
            &[],
            tty(&slave),
            &["meta", "fchmodat", "fd:0"],
        );
        assert_ne!(a, "ok", "chmod /proc/self/fd/0 ({policy} {ns:?})");
        // the terminal is still private: another local user cannot open it
        assert_eq!(
            probe_out(OTHER, Stdio::null(), &["open-noctty", &slave_s]),
            EACCES,
            "{policy} {ns:?}"
        );
    }
    let after = std::fs::metadata(&slave).unwrap();
    assert_eq!(
        (after.mode(), after.uid(), after.mtime(), after.mtime_nsec()),
        (
            before.mode(),
            before.uid(),
            before.mtime(),
            before.mtime_nsec()
        )
    );
    // control: outside, the same call opens the terminal to the other user
    assert_eq!(
        probe_out(NOBODY, tty(&slave), &["meta", "fchmod", "fd:0"]),
        "ok"
    );
    assert_eq!(
        probe_out(OTHER, Stdio::null(), &["open-noctty", &slave_s]),
        "ok"
    );
    drop(master);
}

/// Sets `TOSTOP` (and clears `ECHO`) on the terminal at fd 0 through each of the three
/// settings calls (`struct termios` by `tcsetattr`, `struct termio` by `TCSETA`, `struct
/// termios2` by `TCSETS2`), reads each back, then sets the window size.
const TERMINAL_PY: &str = r#"import fcntl, struct, termios
T = termios.TOSTOP
def reset():
    a = termios.tcgetattr(0); a[3] &= ~T; termios.tcsetattr(0, termios.TCSANOW, a)
a = termios.tcgetattr(0); a[3] |= T; a[3] &= ~termios.ECHO
termios.tcsetattr(0, termios.TCSANOW, a)
b = termios.tcgetattr(0)
print('termios', int(b[3] & T != 0), 'echo', int(b[3] & termios.ECHO != 0)); reset()
buf = fcntl.ioctl(0, 0x5405, bytes(18)); f = list(struct.unpack('HHHH', buf[:8])); f[3] |= T
fcntl.ioctl(0, 0x5406, struct.pack('HHHH', *f) + buf[8:])
print('termio', int(struct.unpack('HHHH', fcntl.ioctl(0, 0x5405, bytes(18))[:8])[3] & T != 0)); reset()
buf = fcntl.ioctl(0, 0x802C542A, bytes(44)); f = list(struct.unpack('IIII', buf[:16])); f[3] |= T
fcntl.ioctl(0, 0x402C542B, struct.pack('IIII', *f) + buf[16:])
print('termios2', int(struct.unpack('IIII', fcntl.ioctl(0, 0x802C542A, bytes(44))[:16])[3] & T != 0)); reset()
K = (termios.VINTR, termios.VQUIT, termios.VSUSP, termios.VSTOP, termios.VSTART)
a = termios.tcgetattr(0); was = list(a[6])
for i in K: a[6][i] = b'R'
termios.tcsetattr(0, termios.TCSANOW, a)
print('chars', sum(termios.tcgetattr(0)[6][i] == b'R' for i in K))
a[6] = was; termios.tcsetattr(0, termios.TCSANOW, a)
buf = bytearray(fcntl.ioctl(0, 0x5405, bytes(18))); buf[9] = ord('R')
fcntl.ioctl(0, 0x5406, bytes(buf))
print('termio intr', int(termios.tcgetattr(0)[6][termios.VINTR] == b'R'))
a[6] = was; termios.tcsetattr(0, termios.TCSANOW, a)
a = termios.tcgetattr(0); a[0] |= termios.ISTRIP; termios.tcsetattr(0, termios.TCSANOW, a)
print('istrip', int(termios.tcgetattr(0)[0] & termios.ISTRIP != 0))
a[0] &= ~termios.ISTRIP; termios.tcsetattr(0, termios.TCSANOW, a)
try:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', 11, 22, 0, 0)); print('winsz ok')
except OSError as e:
    print('winsz errno', e.errno)
"#;

/// Outside review r51 F2: the terminal the command holds is the user's; `stty tostop` there
/// stopped the user's own background jobs (`SIGTTOU` at their next write, outside the
/// sandbox), and a new window size sent `SIGWINCH` to the terminal's foreground job. The
/// settings calls are performed by the supervisor without `TOSTOP`, whatever the structure,
/// and (r54 F1, F2) without changing VINTR, VQUIT, VSUSP, VSTOP or VSTART (set to `R`, the
/// terminal's answer to a cursor position query signalled the foreground job, or stopped the
/// output for good); every other setting still applies (`ECHO` cleared: readline and editors
/// keep working); `TIOCSWINSZ` is refused. Control: outside, the same script sets `TOSTOP`
/// three ways, the five characters both ways, and the window size.
#[test]
fn the_users_terminal_cannot_be_made_to_signal_the_users_other_jobs() {
    use std::os::unix::fs::OpenOptionsExt;
    let e = Env::new();
    let (master, slave) = pty();
    chown(&slave, Some(NOBODY), Some(NOBODY)).unwrap();
    let tty = || {
        Stdio::from(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open(&slave)
                .unwrap(),
        )
    };
    // `python3 -c TERMINAL_PY` appended to `c`, as nobody on the terminal: its stdout, and its
    // stderr (for the messages)
    let run = |mut c: Command| {
        let out = c
            .args(["-c", TERMINAL_PY])
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(tty())
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (policy, ns) in modes() {
        let mut c = sandbox_cmd(&e, policy, ns);
        c.args(["--", "python3"]);
        let (out, err) = run(c);
        assert_eq!(
            out,
            "termios 0 echo 0\ntermio 0\ntermios2 0\nchars 0\ntermio intr 0\nistrip 0\nwinsz errno 1\n",
            "{policy} {ns:?}: {err}"
        );
    }
    let (out, err) = run(Command::new("python3"));
    assert_eq!(
        out, "termios 1 echo 0\ntermio 1\ntermios2 1\nchars 5\ntermio intr 1\nistrip 1\nwinsz ok\n",
        "control outside: {err}"
    );
    drop(master);
}

/// A descriptor received over an allowed unix socket (SCM_RIGHTS) is no way out either.
#[test]
fn a_received_descriptor_is_no_way_to_an_outside_files_metadata() {
    let e = Env::new();
    let sock = e.base.join("fd.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    chown(&sock, Some(NOBODY), Some(NOBODY)).unwrap();
    let log = e.log();
    const CALLS: &[&str] = &["fchmod", "futimens", "fchown", "fremovexattr", "fchmodat"];
    let server = {
        let log = log.clone();
        // one connection per attack (calls × modes) and one for the control
        let n = CALLS.len() * modes().len() + 1;
        std::thread::spawn(move || {
            for conn in listener.incoming().take(n) {
                let conn = conn.unwrap();
                send_fd(&conn, &File::open(&log).unwrap());
            }
        })
    };
    let before = stamp(&log);
    let allow = ["--allow-unix-socket", sock.to_str().unwrap()];
    let sock_s = sock.display().to_string();
    for (policy, ns) in modes() {
        for call in CALLS {
            let a = probe_in(
                &e,
                policy,
                ns,
                &allow,
                Stdio::null(),
                &["recv-meta", &sock_s, call],
            );
            let want = match (*call, ns) {
                ("fchmodat", Ns::With) => ENOENT,
                _ => EPERM,
            };
            assert_eq!(a, want, "{call} on a received descriptor ({policy} {ns:?})");
        }
    }
    assert_eq!(stamp(&log), before);
    // control: outside, the received descriptor changes the mode (and ends the server)
    assert_eq!(
        probe_out(NOBODY, Stdio::null(), &["recv-meta", &sock_s, "fchmod"]),
        "ok"
    );
    server.join().unwrap();
    assert_eq!(std::fs::metadata(&log).unwrap().mode() & 0o777, 0o644);
}

/// The path is copied once by the supervisor and the call made on what it resolved: a thread
/// flipping the path between a file of the root and `/dev/stdin` (the outside log) while
/// another calls `chmod` never reaches the log (with `CONTINUE` after the check, the kernel's
/// second read of the path would).
#[test]
fn a_path_rewritten_during_the_call_never_reaches_the_outside_file() {
    let e = Env::new();
    let log = e.log();
    let before = stamp(&log);
    let out = probe_in(
        &e,
        WS_WRITE,
        Ns::With,
        &[],
        open_ro(&log),
        &["race-chmod", "2"],
    );
    let changed: u64 = out
        .strip_prefix("changed ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("race-chmod said {out:?}"));
    assert!(
        changed > 0,
        "no chmod of the root's file went through: {out}"
    );
    assert_eq!(stamp(&log), before, "the outside log changed ({out})");
    // control: outside the sandbox the same race changes the log
    e.reset();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let reset = stamp(&log);
    let out = Command::new(PROBE)
        .args(["race-chmod", "1"])
        .current_dir(&e.ws)
        .env("PWD", &e.ws)
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(open_ro(&log))
        .output()
        .unwrap();
    assert!(out.status.success());
    let after = stamp(&log);
    assert_ne!(
        (after.5, after.6),
        (reset.5, reset.6),
        "control: the race reached the log"
    );
}

/// Inside the writable root the ordinary tools keep working: `chmod +x`, `touch`, `cp -p`,
/// `tar x` (modes and times restored), and the descriptor calls on the command's own files.
#[test]
fn metadata_inside_the_writable_root_still_works() {
    let e = Env::new();
    let script = "set -e; echo a > f; chmod +x f; test -x f; touch -d @1000000000 f; \
                  cp -p f g; test \"$(stat -c %Y:%a g)\" = 1000000000:$(stat -c %a f); \
                  mkdir -p d/e; echo z > d/e/z; chmod 640 d/e/z; touch -d @1100000000 d/e/z; \
                  tar cf t.tar d f; mkdir x; tar xf t.tar -C x; \
                  test \"$(stat -c %Y:%a x/d/e/z)\" = 1100000000:640; \
                  test \"$(stat -c %Y x/f)\" = 1000000000; ln -s f lnk; chmod 600 lnk; \
                  test \"$(stat -c %a f)\" = 600; touch -h lnk; echo ALL-OK";
    for ns in [Ns::With, Ns::Without] {
        let dir = e.ws.join(format!("c-{ns:?}"));
        std::fs::create_dir(&dir).unwrap();
        chown(&dir, Some(NOBODY), Some(NOBODY)).unwrap();
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
            .arg(WS_WRITE);
        if ns == Ns::Without {
            c.arg("--dangerously-allow-weaker-sandbox");
        }
        let out = c
            .args(["--", "sh", "-c", script])
            .current_dir(&dir)
            .env("PWD", &dir)
            .env_remove("TMPDIR")
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "ALL-OK",
            "{ns:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // the descriptor calls on a file of the root (with namespaces: mediated and performed)
    let mine = e.ws.join("mine");
    for call in FD_CALLS.iter().chain(PATH_CALLS) {
        set_xattr(&mine, "user.r14");
        let m = mine.display().to_string();
        assert_eq!(
            probe_in(
                &e,
                WS_WRITE,
                Ns::With,
                &[],
                Stdio::null(),
                &["meta", call, &m]
            ),
            "ok",
            "{call} inside the root"
        );
    }
    let m = std::fs::metadata(&mine).unwrap();
    assert_eq!((m.mode() & 0o777, m.mtime()), (0o644, 0));
}

/// Without an IPC namespace `mq_open(O_CREAT)` created the queue in the machine's namespace
/// before Landlock refused its file (r14 F1); the queue stayed, mode 0666.
#[test]
fn no_posix_message_queue_is_left_in_the_machines_ipc_namespace() {
    let e = Env::new();
    let mq = Mqueue::mount(&e.base.join("mq"));
    for ns in [Ns::Without, Ns::With] {
        let name = format!("codex-r14-{}-{ns:?}", std::process::id());
        let a = probe_in(&e, READ_ONLY, ns, &[], Stdio::null(), &["mq-create", &name]);
        // with namespaces Landlock refuses the queue's file after the kernel created it in the
        // sandbox's own IPC namespace (gone with it); without, seccomp refuses the call first
        let want = if ns == Ns::With { EACCES } else { EPERM };
        assert!(
            !mq.dir.join(&name).exists(),
            "{ns:?}: the queue outlived the sandbox (answer {a})"
        );
        assert_eq!(a, want, "{ns:?}");
    }
    // control: outside, the same call creates the queue, 0666 with umask 0
    let name = format!("codex-r14-{}-control", std::process::id());
    assert_eq!(
        probe_out(NOBODY, Stdio::null(), &["mq-create", &name]),
        "ok"
    );
    let q = mq.dir.join(&name);
    assert_eq!(std::fs::metadata(&q).unwrap().mode() & 0o777, 0o666);
    std::fs::remove_file(&q).unwrap();
}

/// The mqueue filesystem of the machine's IPC namespace mounted at `dir` (unmounted on drop).
struct Mqueue {
    dir: PathBuf,
}

impl Mqueue {
    fn mount(dir: &Path) -> Mqueue {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "mqueue", "none"])
            .arg(dir)
            .status()
            .expect("mount(8) is needed");
        assert!(st.success(), "mount -t mqueue (the tests run as root)");
        Mqueue {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Mqueue {
    fn drop(&mut self) {
        // a failed run's queues (the machine's IPC namespace outlives the test)
        let mine = format!("codex-r14-{}-", std::process::id());
        for q in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if q.file_name().to_string_lossy().starts_with(&mine) {
                let _ = std::fs::remove_file(q.path());
            }
        }
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// A new pty: the master and the slave's path.
fn pty() -> (OwnedFd, PathBuf) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain calls on the descriptor just opened; ptsname_r writes at most buf.len().
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(m >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = OwnedFd::from_raw_fd(m);
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut buf = [0 as libc::c_char; 64];
        assert_eq!(libc::ptsname_r(m, buf.as_mut_ptr(), buf.len()), 0);
        let name = std::ffi::CStr::from_ptr(buf.as_ptr());
        (master, PathBuf::from(name.to_str().unwrap()))
    }
}

/// Send `f` over `conn` (SCM_RIGHTS).
fn send_fd(conn: &std::os::unix::net::UnixStream, f: &File) {
    let byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut libc::c_void,
        iov_len: 1,
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain data; the control buffer holds one cmsg with one int, written
    // through CMSG_* on the buffer set just before; all pointers outlive the sendmsg.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), f.as_raw_fd());
        let _ = libc::sendmsg(conn.as_raw_fd(), &msg, 0);
    }
}
