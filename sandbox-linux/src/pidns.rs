//! The sandbox's init: the first process of the sandbox, which runs the command as its child,
//! forwards signals to it, reaps everything, and makes sure no process of the sandbox outlives
//! the command or the launcher.
//!
//! - **With a pid namespace** (the launcher cloned this process with `CLONE_NEWPID`), this
//!   process is pid 1: when the command exits it kills every other process of the namespace
//!   (setsid'd daemons included) with `kill(-1, SIGKILL)` and reaps them until `ECHILD`, closes
//!   its standard descriptors (the user's terminal), and only then tells the launcher the
//!   command's exit code through the status pipe; the launcher returns on that message without
//!   waiting for the kernel's teardown of the namespaces (a few ms of RCU grace periods after
//!   the init's exit, which nothing of the sandbox outlives). Should the init die first
//!   (something outside killed it), the kernel kills the namespace and the launcher's `waitpid`
//!   returns after that. Its parent-death signal is `SIGKILL`, so a SIGKILL of the launcher tears
//!   the namespace down too. Processes inside cannot kill it (the kernel drops `SIGKILL`/`SIGSTOP` sent to a pid
//!   namespace's init from inside; other signals only reach the handlers below, which forward
//!   them to the command).
//! - **Without one**, this process is a child subreaper (orphaned descendants are re-parented
//!   to it) whose parent-death signal is [`LAUNCHER_DIED`], a catchable signal (set here, in the
//!   init, and checked against the race where the launcher died first: `getppid()` must still be
//!   the launcher). It runs inside the sandbox's Landlock domain, whose signal scope
//!   (`LANDLOCK_SCOPE_SIGNAL`, ABI 6) lets it signal only processes of that domain and of domains
//!   nested in it: the command's tree and nothing else. So when the command exits, or the
//!   launcher dies (the handler itself does it, then the loop again), it ends the tree with
//!   `kill(-1, SIGKILL)`: the kernel walks the task list under the lock `fork` takes to add a
//!   child, so a process forking at that moment either is in the list or fails its fork (its
//!   SIGKILL is pending): one call reaches every process of the sandbox, including ones that
//!   fork in a loop and re-parent away (outside review r16 F7: a `/proc` sweep never finished
//!   against a pid-hopping loop). The init re-issues it and reaps (`waitpid(-1, WNOHANG)`) until
//!   `ECHILD`, for at most [`GIVE_UP`], and says which children were left when it gives up.
//!   Before relying on the scope it checks it: `kill(launcher, 0)` must fail with `EPERM`
//!   (the launcher is outside the domain, same uid). Without the scope (only with
//!   `--dangerously-allow-weaker-sandbox` on a kernel before ABI 6), `kill(-1)` would reach all
//!   of the user's processes, so the init falls back to SIGKILLing the descendants it finds in
//!   `/proc` (a loop that forks faster than the sweep can outrun it; bounded the same way).
//!   The launcher is a subreaper as well and sweeps after this process exits (bounded; only
//!   something outside the sandbox, such as the OOM killer or the user's own processes, can
//!   kill the init: the command runs in a nested domain that cannot signal it).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use crate::sys;

/// The parent-death signal of the init without a pid namespace (not forwarded, not sent by
/// terminals).
pub const LAUNCHER_DIED: libc::c_int = libc::SIGPWR;

/// How long the init (and the launcher's sweep) keeps killing and reaping before it reports the
/// processes it could not end and exits.
pub const GIVE_UP: Duration = Duration::from_secs(5);

static LAUNCHER_GONE: AtomicBool = AtomicBool::new(false);
/// `kill(-1)` reaches exactly the sandbox (the init is inside a Landlock signal scope).
static SCOPED: AtomicBool = AtomicBool::new(false);
/// The command (0 until it is forked).
static COMMAND: AtomicI32 = AtomicI32::new(0);
/// `kill(-1)` from this process reaches exactly the sandbox: pid 1 of a pid namespace, or a
/// subreaper inside the signal scope ([`SCOPED`]).
static FREEZE_OK: AtomicBool = AtomicBool::new(false);

/// Sent by the launcher to the init on Ctrl-Z: the init stops every process of the sandbox with
/// one `kill(-1, SIGSTOP)` (outside review r32 F7: the launcher's `/proc` sweep lost to a
/// pid-hopping loop, which went on running with the user's terminal while the job looked
/// stopped). The kernel walks the task list under the lock `fork` takes, and a fork that a
/// pending signal interrupts is restarted, so no process escapes it. Signals whose default
/// action is to ignore them, so that one arriving before the handlers are set does nothing.
pub const FREEZE: libc::c_int = libc::SIGURG;
/// Sent by the launcher on `SIGCONT`: the init continues every process of the sandbox.
pub const THAW: libc::c_int = libc::SIGWINCH;

extern "C" fn on_freeze(_sig: libc::c_int) {
    if FREEZE_OK.load(Ordering::SeqCst) {
        // async-signal-safe: kill(2) only
        let _ = sys::kill(-1, libc::SIGSTOP);
    }
}

extern "C" fn on_thaw(_sig: libc::c_int) {
    if FREEZE_OK.load(Ordering::SeqCst) {
        let _ = sys::kill(-1, libc::SIGCONT);
    }
}

extern "C" fn on_launcher_died(_sig: libc::c_int) {
    LAUNCHER_GONE.store(true, Ordering::SeqCst);
    // async-signal-safe: kill(2) only. The tree dies now, whatever the main loop is doing.
    if SCOPED.load(Ordering::SeqCst) {
        let _ = sys::kill(-1, libc::SIGKILL);
    }
    let command = COMMAND.load(Ordering::SeqCst);
    if command > 0 {
        // a blocked waitpid returns; the loop then sees the flag
        let _ = sys::kill(command, libc::SIGKILL);
    }
}

/// How this init is isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// pid 1 of a pid namespace.
    PidNamespace,
    /// A subreaper without a pid namespace.
    Subreaper,
}

/// Prepare the init before it forks the command (without a pid namespace: subreaper, the
/// catchable parent-death signal, the check that `launcher` is still the parent and the check
/// of the signal scope). Returns `false` when the launcher is already gone.
/// `scope_expected`: the kernel has the signal scope (Landlock ABI 6) and this process's
/// ruleset was enforced; the init then still checks the scope on the launcher.
pub fn prepare(
    mode: Mode,
    launcher: libc::pid_t,
    scope_expected: bool,
    launcher_gone: impl Fn() -> bool,
) -> std::io::Result<bool> {
    if mode == Mode::Subreaper {
        sys::set_child_subreaper()?;
        // decided before the handler can run (a launcher already gone answers ESRCH: no
        // kill(-1), and the check below ends this process anyway)
        SCOPED.store(
            scope_expected && signal_scope_in_force(launcher),
            Ordering::SeqCst,
        );
        sys::on_signal(LAUNCHER_DIED, on_launcher_died)?;
        sys::set_parent_death_signal(LAUNCHER_DIED)?;
        // the launcher died before the prctl: no signal will come
        if sys::getppid() != launcher {
            return Ok(false);
        }
    }
    FREEZE_OK.store(
        mode == Mode::PidNamespace || SCOPED.load(Ordering::SeqCst),
        Ordering::SeqCst,
    );
    sys::on_signal(FREEZE, on_freeze)?;
    sys::on_signal(THAW, on_thaw)?;
    Ok(!launcher_gone())
}

/// `true` when this process cannot signal `outside` (same uid, alive, outside our Landlock
/// domain): the signal scope is in force, so `kill(-1)` reaches only our domain.
fn signal_scope_in_force(outside: libc::pid_t) -> bool {
    matches!(sys::kill(outside, 0), Err(e) if e.raw_os_error() == Some(libc::EPERM))
}

/// `true` when the init ends the tree with `kill(-1)` (the signal scope was checked).
pub fn scoped_kill() -> bool {
    SCOPED.load(Ordering::SeqCst)
}

/// What [`supervise`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Supervised {
    /// The command's exit code (128 + signal when it was killed; 137 when the launcher died
    /// first).
    pub code: i32,
    /// Every other process of the sandbox was killed and reaped: this process has no child
    /// left (`ECHILD`).
    pub tree_ended: bool,
}

/// Wait for `command`, forwarding signals to it, then kill and reap every other process of the
/// sandbox (a warning on stderr, prefixed with `program`, names what was left after
/// [`GIVE_UP`]). In a pid namespace `kill(-1)` from pid 1 reaches exactly the namespace (and
/// the init's exit would do it too, but the kernel's teardown of the namespaces then runs before
/// the launcher's `waitpid` returns: this way the init can tell the launcher that the tree is
/// gone first, and the launcher need not wait for the teardown, as bwrap's monitor does not).
///
/// `lifeline` (the name guard creator's) is dropped once the command is gone, before the kill:
/// the creator then exits by itself (it shares this process's Landlock domain, so the kill of
/// the fallback reaches it too).
pub fn supervise(
    mode: Mode,
    command: libc::pid_t,
    lifeline: Option<std::os::fd::OwnedFd>,
    program: &str,
) -> Supervised {
    COMMAND.store(command, Ordering::SeqCst);
    let _ = sys::forward_signals_to(command);
    let mut code = None;
    while code.is_none() {
        if LAUNCHER_GONE.load(Ordering::SeqCst) {
            break;
        }
        match sys::wait_any() {
            Ok((pid, status)) if pid == command => {
                COMMAND.store(0, Ordering::SeqCst);
                code = Some(sys::exit_code_from_status(status));
            }
            Ok(_) => {} // a re-parented orphan, reaped
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(_) => break, // ECHILD: nothing left to wait for
        }
    }
    drop(lifeline);
    let ended = if mode == Mode::PidNamespace || scoped_kill() {
        kill_scope()
    } else {
        kill_descendants(sys::getpid())
    };
    if let Err(left) = &ended {
        warn_left(program, left);
    }
    Supervised {
        // The launcher gone: nobody reads the code.
        code: code.unwrap_or(128 + libc::SIGKILL),
        tree_ended: ended.is_ok(),
    }
}

/// Print which processes were still alive after [`GIVE_UP`].
pub fn warn_left(program: &str, left: &[libc::pid_t]) {
    eprintln!(
        "{program}: warning: {} process(es) of the sandbox still alive {} s after SIGKILL          (pids {left:?}); giving up",
        left.len(),
        GIVE_UP.as_secs()
    );
}

/// `kill(-1, SIGKILL)` (every process of the caller's Landlock domain and the nested ones, not
/// the caller; from pid 1 of a pid namespace, every process of the namespace) and reap, again
/// and again, until the caller has no child left. `Err`: the children still there after
/// [`GIVE_UP`]. Only for pid 1 of a pid namespace or a caller inside a signal scope
/// ([`scoped_kill`]).
fn kill_scope() -> Result<(), Vec<libc::pid_t>> {
    let deadline = Instant::now() + GIVE_UP;
    let mut pause = Duration::from_micros(20);
    loop {
        let _ = sys::kill(-1, libc::SIGKILL); // ESRCH: nothing left to signal
        if reap_ready() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(children(sys::getpid()));
        }
        // the killed processes become zombies within microseconds to a few ms (the launcher
        // waits for this: short pauses first)
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(1));
    }
}

/// Reap every child that has exited (zombies never pile up). `true`: no child left (`ECHILD`).
fn reap_ready() -> bool {
    loop {
        match sys::wait_any_nohang() {
            Ok(Some(_)) => {}
            Ok(None) => return false,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(_) => return true, // ECHILD
        }
    }
}

/// The direct children of `of` (`/proc/PID/task/*/children`).
fn children(of: libc::pid_t) -> Vec<libc::pid_t> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{of}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<libc::pid_t>().ok()),
        );
    }
    out
}

/// SIGKILL every descendant of `of` found in `/proc` and reap, until `of` has no child left (the
/// caller must be `of` and a subreaper, so that orphans come back to it). A process that forks
/// faster than the sweep can outrun it: `Err` with the children left after [`GIVE_UP`].
pub fn kill_descendants(of: libc::pid_t) -> Result<(), Vec<libc::pid_t>> {
    let deadline = Instant::now() + GIVE_UP;
    loop {
        for pid in descendants(of) {
            let _ = sys::kill(pid, libc::SIGKILL);
        }
        if reap_ready() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(children(of));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The descendants of `of` (from `/proc/*/stat`, parent links).
pub(crate) fn descendants(of: libc::pid_t) -> Vec<libc::pid_t> {
    let mut parent_of: Vec<(libc::pid_t, libc::pid_t)> = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<libc::pid_t>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut found = vec![of];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        for &(c, pp) in &parent_of {
            if pp == p && !found.contains(&c) {
                found.push(c);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}
