//! The name guard's creator receives the filter's notifications itself and performs the
//! command's file calls; it shares the sandbox init's Landlock domain, which encloses the
//! command's, so it may read the command's memory. The reverse must never hold: the command
//! (uid 65534, the attacker) tries to signal, ptrace, read the memory of and take descriptors
//! from the creator and the init, and is refused every time, with and without user namespaces.
//! Control: the same calls against a process the command started itself succeed (except
//! `ptrace` and `process_vm_readv`, which the seccomp table denies everywhere). Afterwards the
//! guard still works (the creator is alive and serving).

// Test code: a failed set-up step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use suite_test_support::bins::sandbox_helper as helper;
const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-linux-probe");
const NOBODY: u32 = 65534;

/// Runs as the sandboxed command: every attack on one target, as `name=errno` words (0: it
/// worked).
const ATTACK: &str = r#"
import ctypes, os, signal, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
SYS_pidfd_open, SYS_pidfd_getfd = 434, 438

def err(f):
    ctypes.set_errno(0)
    try:
        r = f()
    except OSError as e:
        return e.errno
    return ctypes.get_errno() if r is not None and r < 0 else 0

def attack(pid):
    out = []
    out.append("kill0=%d" % err(lambda: os.kill(pid, 0)))
    out.append("ptrace=%d" % err(lambda: libc.ptrace(PTRACE_ATTACH, pid, 0, 0)))
    libc.ptrace(PTRACE_DETACH, pid, 0, 0)
    out.append("mem=%d" % err(lambda: os.close(os.open("/proc/%d/mem" % pid, os.O_RDONLY))))
    buf = ctypes.create_string_buffer(8)
    local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 8)
    remote = (ctypes.c_void_p * 2)(0x400000, 8)
    r = err(lambda: libc.process_vm_readv(pid, local, 1, remote, 1, 0))
    out.append("vmread=%d" % (r if r != 14 else 0))  # EFAULT: allowed, just unmapped
    pidfd = libc.syscall(SYS_pidfd_open, pid, 0)
    out.append("getfd=%d" % (err(lambda: libc.syscall(SYS_pidfd_getfd, pidfd, 0, 0)) if pidfd >= 0 else -1))
    out.append("kill9=%d" % err(lambda: os.kill(pid, signal.SIGKILL)))
    return " ".join(out)

init = os.getppid()
kids = set()
for t in os.listdir("/proc/%d/task" % init):
    kids |= {int(k) for k in open("/proc/%d/task/%s/children" % (init, t)).read().split()}
kids.discard(os.getpid())
if len(kids) != 1:
    print("creator not found: children of the init %r" % sorted(kids)); sys.exit(3)
creator = kids.pop()
own = subprocess.Popen(["sleep", "30"])
print("creator:", attack(creator))
print("init:", attack(init))
print("own:", attack(own.pid))
own.wait()
# the guard still answers: a plain file is created, a protected name is not
open("plain.txt", "w").write("x")
print("plain:", os.path.exists("plain.txt"))
print("mkdir-git=%d" % err(lambda: os.mkdir(".git")))
"#;

fn run(ws: &Path, without_userns: bool) -> String {
    run_script(ws, without_userns, ATTACK)
}

/// `python3 -c SCRIPT` as uid 65534 in the workspace-write sandbox (`ws` its cwd and root).
/// Python for [`script_in_both_modes`]: `os`, and `err(f)`, the errno `f()` raised (0: none).
const ERR_PRELUDE: &str = "import os\n\
def err(f):\n    try:\n        f()\n    except OSError as e:\n        return e.errno\n    return 0\n";

/// `script` (after [`ERR_PRELUDE`]) in a fresh workspace, with and then without user
/// namespaces: (without_userns, its output, an assertion context).
fn script_in_both_modes(script: &str) -> Vec<(bool, String, String)> {
    [false, true]
        .into_iter()
        .map(|without_userns| {
            let (_dir, ws) = workspace();
            let text = run_script(&ws, without_userns, &format!("{ERR_PRELUDE}{script}"));
            let ctx = format!("without_userns={without_userns}: {text}");
            (without_userns, text, ctx)
        })
        .collect()
}

fn run_script(ws: &Path, without_userns: bool, script: &str) -> String {
    assert!(!script.contains('\''), "the script is quoted with '");
    let mut c = if without_userns {
        let mut c = Command::new(PROBE);
        c.args(["outer-deny", "userns", "--", &helper()]);
        c
    } else {
        Command::new(helper())
    };
    c.arg("--sandbox-policy-cwd")
        .arg(ws)
        .args(["--sandbox-policy", r#"{"mode":"workspace-write"}"#]);
    if without_userns {
        // the metadata refusal without namespaces is waived; the name guard does not need them
        c.arg("--dangerously-allow-weaker-sandbox");
    }
    let out = c
        .args(["--", "sh", "-c", &format!("exec python3 -c '{script}'")])
        .current_dir(ws)
        .env("PWD", ws)
        .env_remove("TMPDIR")
        .uid(NOBODY)
        .gid(NOBODY)
        .stdin(Stdio::null())
        .output()
        .expect("the sandbox helper must run (cargo build -p codex-sandbox-cli --bins)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "without_userns={without_userns}: {text}"
    );
    text
}

/// A fresh workspace owned by uid 65534 (the guard for its directory).
fn workspace() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("sbl-creator-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir(&ws).unwrap();
    suite_test_support::dirs::chown_tree(dir.path(), NOBODY);
    (dir, ws)
}

fn line<'a>(text: &'a str, who: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{who}: ")))
        .unwrap_or_else(|| panic!("no {who} line in {text}"))
}

#[test]
fn the_command_cannot_signal_trace_read_or_rob_the_creator_or_the_init() {
    for without_userns in [false, true] {
        let (_dir, ws) = workspace();
        let text = run(&ws, without_userns);
        let ctx = format!("without_userns={without_userns}: {text}");
        // Landlock's scope and ptrace rule (EPERM); /proc/PID/mem of a non-dumpable process that
        // ptrace may not reach: EACCES
        for who in ["creator", "init"] {
            assert_eq!(
                line(&text, who),
                "kill0=1 ptrace=1 mem=13 vmread=1 getfd=1 kill9=1",
                "{who}: {ctx}"
            );
        }
        // control: a process of the command's own, same uid, same sandbox. `ptrace` and
        // `process_vm_readv` are refused there too: the seccomp table denies them to every
        // sandboxed process (a second layer in front of the creator); the rest succeed
        assert_eq!(
            line(&text, "own"),
            "kill0=0 ptrace=1 mem=0 vmread=1 getfd=0 kill9=0",
            "{ctx}"
        );
        assert_eq!(line(&text, "plain"), "True", "{ctx}");
        assert!(text.contains("mkdir-git=13"), "{ctx}");
    }
}

/// Outside review r22 F2: a command that made itself non-dumpable (`PR_SET_DUMPABLE 0`, as ssh
/// and ssh-agent do) got `EFAULT` for every mediated call: the creator could not read its
/// memory. In the sandbox's user namespace the creator keeps `CAP_SYS_PTRACE` (nothing else),
/// so such a process creates files and is still refused `.git`. Without a user namespace the
/// creator has no capability and the call still fails (`EFAULT`, documented). Control: the
/// same calls of a dumpable process succeed in both modes.
#[test]
fn a_non_dumpable_command_still_creates_files_and_still_cannot_create_git() {
    const SCRIPT: &str = r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print("dumpable:", err(lambda: open("a.txt", "w").close()), err(lambda: os.mkdir(".git")))
libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
print("not-dumpable:", err(lambda: open("b.txt", "w").close()), err(lambda: os.mkdir(".git")))
"#;
    for (without_userns, text, ctx) in script_in_both_modes(SCRIPT) {
        assert_eq!(line(&text, "dumpable"), "0 13", "{ctx}");
        let expected = if without_userns { "14 14" } else { "0 13" };
        assert_eq!(line(&text, "not-dumpable"), expected, "{ctx}");
    }
}

/// The creator and the launcher start their serving threads as calls need them (one each at
/// first; `name_guard::creator::Pool`, `unix_connect::supervisor::run_forwarded_all`). The
/// very first guarded call of the command is still mediated (`EACCES` for `.git`, a plain file
/// created), never `ENOSYS` (a notification without a listener); then eight threads of the
/// command create files, `chmod` them (forwarded to the launcher over the creator's channels)
/// and try `.git` at once: every call answered right, none lost or hung (an alarm ends a
/// hang), and the creator has grown beyond its first serving thread, its main thread (at most
/// four).
#[test]
fn serving_threads_start_as_needed_and_the_first_call_is_mediated() {
    const SCRIPT: &str = r#"
first_git = err(lambda: os.mkdir(".git"))
first_file = err(lambda: open("first.txt", "w").close())
print("first: %d %d" % (first_git, first_file))
import signal, threading, sys
signal.alarm(30)
results = []
def work(t):
    out = []
    for i in range(40):
        name = "f-%d-%d" % (t, i)
        out.append(err(lambda: open(name, "w").close()))
        out.append(err(lambda: os.chmod(name, 0o640)))
        out.append(13 - err(lambda: os.mkdir(".git")))
    results.append(out)
threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
for t in threads: t.start()
for t in threads: t.join()
modes = {oct(os.stat("f-%d-%d" % (t, i)).st_mode & 0o777) for t in range(8) for i in range(40)}
print("calls: %d %s" % (sum(len(r) for r in results), sorted({e for r in results for e in r})))
print("modes:", sorted(modes))
init = os.getppid()
kids = set()
for t in os.listdir("/proc/%d/task" % init):
    kids |= {int(k) for k in open("/proc/%d/task/%s/children" % (init, t)).read().split()}
kids.discard(os.getpid())
creator = kids.pop()
print("creator-threads:", len(os.listdir("/proc/%d/task" % creator)))
"#;
    for (_, text, ctx) in script_in_both_modes(SCRIPT) {
        // EACCES for `.git` (not ENOSYS: 38), the plain file created
        assert_eq!(line(&text, "first"), "13 0", "{ctx}");
        // 8 threads x 40 x 3 calls, every one answered as expected (0: created, chmod'ed,
        // `.git` refused with EACCES)
        assert_eq!(line(&text, "calls"), "960 [0]", "{ctx}");
        assert_eq!(line(&text, "modes"), "['0o640']", "{ctx}");
        let threads: usize = line(&text, "creator-threads").parse().unwrap();
        // the main thread (serving, and watching its lifeline) + 1 to 3 more serving threads:
        // it grew past the first, and never beyond its four channels
        assert!((2..=4).contains(&threads), "{ctx}");
    }
}
