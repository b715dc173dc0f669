//! Ctrl-Z freezes the sandbox (fifth review round F10).
//!
//! The command runs in a session of its own, so the terminal's job control never reaches it:
//! after Ctrl-Z the launcher stopped, the shell took the terminal back, and the command kept
//! running and reading the terminal it inherited (what the user typed next, a `sudo` password,
//! went to it). Now the launcher catches `SIGTSTP` (and `SIGTTIN`/`SIGTTOU`), stops every process
//! of the sandbox with `SIGSTOP` (its descendants in `/proc`, swept until a pass finds nothing
//! new and every one of them is seen stopped), and only then stops itself; `SIGCONT` (the
//! shell's `fg`/`bg`) continues the processes it stopped. First, the launcher asks the init to
//! stop the sandbox with one `kill(-1, SIGSTOP)` ([`crate::pidns::FREEZE`]; the sweep alone lost
//! to a pid-hopping loop: outside review r32 F7), and on `SIGCONT` to continue it (a process of
//! the sandbox that had stopped itself is continued too). The sandbox cannot catch,
//! block or ignore `SIGSTOP`. Limits: a `kill -STOP` of the launcher (uncatchable) does not
//! freeze the sandbox, and a command in a background job (`&`, or after `bg`) still reads the
//! terminal while the shell has it: a pty owned by the launcher is the fix for that, not built.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::sys;

/// Job control for the sandbox whose processes descend from `root` (the launcher itself: with
/// or without a pid namespace, every process of the sandbox is one of its descendants in the
/// host's `/proc`). `spare` (the init without a pid namespace) is not stopped: it must stay able
/// to end the tree if the launcher dies while the job is stopped.
///
/// No thread of its own (issue 12: start-up): the launcher's main thread, which waits on the
/// status pipe for the whole life of the command, waits on [`JobControl::fd`] too and calls
/// [`JobControl::handle`] when it is readable.
pub struct JobControl {
    pipe: std::fs::File,
    root: libc::pid_t,
    spare: Option<libc::pid_t>,
    /// What the last stop stopped (continued on `SIGCONT`).
    stopped: Vec<libc::pid_t>,
}

/// Catch `SIGTSTP`/`SIGTTIN`/`SIGTTOU`/`SIGCONT` from now on ([`JobControl::handle`] acts).
pub fn start(root: libc::pid_t, spare: Option<libc::pid_t>) -> std::io::Result<JobControl> {
    let pipe = sys::job_signal_pipe()?;
    Ok(JobControl {
        pipe: std::fs::File::from(pipe),
        root,
        spare,
        stopped: Vec::new(),
    })
}

impl JobControl {
    /// The descriptor that becomes readable when a job-control signal came.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.pipe.as_fd()
    }

    /// Act on one signal read from [`JobControl::fd`] (call when it is readable): on a stop
    /// signal stop every process of the sandbox, then this process; on `SIGCONT` continue
    /// exactly the processes it stopped. `false`: the pipe is closed (nothing more will come).
    pub fn handle(&mut self) -> bool {
        let mut b = [0u8; 1];
        loop {
            match self.pipe.read(&mut b) {
                Ok(1) => break,
                Ok(_) => return false,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        if i32::from(b[0]) == libc::SIGCONT {
            // the init continues what its kill(-1) stopped, then the sweep's own
            if let Some(init) = self.spare {
                let _ = sys::kill(init, crate::pidns::THAW);
            }
            for pid in self.stopped.drain(..) {
                let _ = sys::kill(pid, libc::SIGCONT);
            }
        } else {
            // the init stops the whole sandbox at once (a pid-hopping loop outruns a sweep:
            // outside review r32 F7); the sweep then waits until it sees every process stopped
            // and stops what the init could not reach (an init without the signal scope)
            if let Some(init) = self.spare {
                let _ = sys::kill(init, crate::pidns::FREEZE);
            }
            let mut skip = self.stopped.clone();
            skip.extend(self.spare);
            self.stopped.extend(freeze(self.root, &skip));
            // now this process (every thread): the shell sees the job stop
            let _ = sys::kill(sys::getpid(), libc::SIGSTOP);
        }
        true
    }
}

/// `SIGSTOP` every descendant of `root` not stopped yet; returns the pids it stopped. Sweeps
/// until a pass finds no new process and every stopped one is seen stopped (a process stopped
/// while forking leaves a child the next pass finds; the kernel restarts a fork that a pending
/// signal interrupts, so a stopping process makes no new child), for at most two seconds.
fn freeze(root: libc::pid_t, already: &[libc::pid_t]) -> Vec<libc::pid_t> {
    let mut stopped = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut fresh = false;
        for pid in crate::pidns::descendants(root) {
            if already.contains(&pid) || stopped.contains(&pid) {
                continue;
            }
            if state(pid) == Some('T') {
                continue; // stopped by itself: not ours to continue
            }
            if sys::kill(pid, libc::SIGSTOP).is_ok() {
                stopped.push(pid);
                fresh = true;
            }
        }
        let settled = stopped
            .iter()
            .all(|&p| matches!(state(p), Some('T') | None));
        if (!fresh && settled) || Instant::now() > deadline {
            return stopped;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The state letter of `/proc/<pid>/stat` (`None`: gone).
fn state(pid: libc::pid_t) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}
