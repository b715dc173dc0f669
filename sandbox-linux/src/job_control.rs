//! Ctrl-Z freezes the sandbox (fifth review round F10).
//!
//! The command runs in a session of its own, so the terminal's job control never reaches it:
//! after Ctrl-Z the launcher stopped, the shell took the terminal back, and the command kept
//! running and reading the terminal it inherited (what the user typed next, a `sudo` password,
//! went to it). Now the launcher catches `SIGTSTP` (and `SIGTTIN`/`SIGTTOU`), stops every process
//! of the sandbox with `SIGSTOP` (its descendants in `/proc`, swept until a pass finds nothing
//! new and every one of them is seen stopped), and only then stops itself; `SIGCONT` (the
//! shell's `fg`/`bg`) continues exactly the processes it stopped. The sandbox cannot catch,
//! block or ignore `SIGSTOP`. Limits: a `kill -STOP` of the launcher (uncatchable) does not
//! freeze the sandbox, and a command in a background job (`&`, or after `bg`) still reads the
//! terminal while the shell has it: a pty owned by the launcher is the fix for that, not built.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::sys;

/// Start the job-control thread for the sandbox whose processes descend from `root` (the
/// launcher itself: with or without a pid namespace, every process of the sandbox is one of
/// its descendants in the host's `/proc`). `spare` (the init without a pid namespace) is not
/// stopped: it must stay able to end the tree if the launcher dies while the job is stopped.
pub fn start(root: libc::pid_t, spare: Option<libc::pid_t>) -> std::io::Result<()> {
    let pipe = sys::job_signal_pipe()?;
    std::thread::Builder::new()
        .name("sandbox-job-control".into())
        .spawn(move || serve(pipe, root, spare))?;
    Ok(())
}

fn serve(pipe: OwnedFd, root: libc::pid_t, spare: Option<libc::pid_t>) {
    let mut pipe = std::fs::File::from(pipe);
    let mut stopped: Vec<libc::pid_t> = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match pipe.read(&mut b) {
            Ok(1) => {}
            Ok(_) => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
        if i32::from(b[0]) == libc::SIGCONT {
            for pid in stopped.drain(..) {
                let _ = sys::kill(pid, libc::SIGCONT);
            }
        } else {
            let mut skip = stopped.clone();
            skip.extend(spare);
            stopped.extend(freeze(root, &skip));
            // now this process (every thread): the shell sees the job stop
            let _ = sys::kill(sys::getpid(), libc::SIGSTOP);
        }
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
