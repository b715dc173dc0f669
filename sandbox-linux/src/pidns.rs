//! The sandbox's init: the first process of the sandbox, which runs the command as its child,
//! forwards signals to it, reaps everything, and makes sure no process of the sandbox outlives
//! the command or the launcher.
//!
//! - **With a pid namespace** (the launcher cloned this process with `CLONE_NEWPID`), this
//!   process is pid 1: when it exits, the kernel kills every other process of the namespace
//!   (setsid'd daemons included) and reaps them before the launcher's `waitpid` returns. Its
//!   parent-death signal is `SIGKILL`, so a SIGKILL of the launcher tears the namespace down
//!   too. Processes inside cannot kill it (the kernel drops `SIGKILL`/`SIGSTOP` sent to a pid
//!   namespace's init from inside; other signals only reach the handlers below, which forward
//!   them to the command).
//! - **Without one**, this process is a child subreaper (orphaned descendants are re-parented
//!   to it) whose parent-death signal is [`LAUNCHER_DIED`], a catchable signal: when the command
//!   exits or the launcher dies it SIGKILLs every descendant it finds in `/proc` and reaps, until
//!   it has no child left. The launcher is a subreaper as well and does the same after this
//!   process exits (should the command have killed it: in this mode it shares the command's
//!   Landlock domain). Limit: a descendant that forks faster than the sweep kills is caught on a
//!   later pass; one that escapes the process tree entirely is impossible without privileges.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys;

/// The parent-death signal of the init without a pid namespace (not forwarded, not sent by
/// terminals).
pub const LAUNCHER_DIED: libc::c_int = libc::SIGPWR;

static LAUNCHER_GONE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_launcher_died(_sig: libc::c_int) {
    LAUNCHER_GONE.store(true, Ordering::SeqCst);
}

/// How this init is isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// pid 1 of a pid namespace.
    PidNamespace,
    /// A subreaper without a pid namespace.
    Subreaper,
}

/// Prepare the init before it forks the command (without a pid namespace: subreaper, and the
/// catchable parent-death signal). Returns `false` when the launcher is already gone.
pub fn prepare(mode: Mode, launcher_gone: impl Fn() -> bool) -> std::io::Result<bool> {
    if mode == Mode::Subreaper {
        sys::set_child_subreaper()?;
        sys::on_signal(LAUNCHER_DIED, on_launcher_died)?;
        sys::set_parent_death_signal(LAUNCHER_DIED)?;
    }
    Ok(!launcher_gone())
}

/// Wait for `command`, forwarding signals to it, and return its exit code (128 + signal when it
/// was killed). Without a pid namespace every descendant is killed before returning; with one,
/// the caller's exit does it.
///
/// `lifeline` (the name guard creator's) is dropped once the command is gone, before the sweep:
/// the creator then exits by itself (it is outside this process's signal scope).
pub fn supervise(mode: Mode, command: libc::pid_t, lifeline: Option<std::os::fd::OwnedFd>) -> i32 {
    let _ = sys::forward_signals_to(command);
    let mut code = None;
    while code.is_none() {
        if LAUNCHER_GONE.load(Ordering::SeqCst) {
            break;
        }
        match sys::wait_any() {
            Ok((pid, status)) if pid == command => {
                code = Some(sys::exit_code_from_status(status));
            }
            Ok(_) => {} // a re-parented orphan, reaped
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(_) => break, // ECHILD: nothing left to wait for
        }
    }
    drop(lifeline);
    if mode == Mode::Subreaper {
        kill_descendants(sys::getpid());
    }
    // The launcher gone: nobody reads the code.
    code.unwrap_or(128 + libc::SIGKILL)
}

/// SIGKILL every descendant of `of` and reap, until `of` has no child left (the caller must be a
/// subreaper, so that orphans come back to it).
pub fn kill_descendants(of: libc::pid_t) {
    loop {
        for pid in descendants(of) {
            let _ = sys::kill(pid, libc::SIGKILL);
        }
        match sys::wait_any() {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(_) => return, // ECHILD
        }
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
