//! Test helper: attacks a probe (or this library) from the position of an unprivileged local
//! user, and reports what happened as JSON lines on stdout. Started as root by the integration
//! tests; it drops to uid/gid 65534 itself. Not a shipped tool.
//!
//! Commands:
//! - `attack PROBE`: set RLIMIT_CORE unlimited (so the control's limit is visibly non-zero), drop
//!   to 65534, start `PROBE status` as a child (the attacker is its parent, which also satisfies
//!   Yama ptrace_scope 1), then try `open(/proc/<pid>/mem)` + `pread` of the probe's marker,
//!   `process_vm_readv` of it, and `PTRACE_ATTACH`. Prints `{"target": ...}`, `{"attacks": ...}`,
//!   then `ready`, waits for a line on stdin (the test inspects /proc as root meanwhile), and
//!   ends the probe.
//! - `crash PROBE DIR`: set RLIMIT_CORE unlimited, drop to 65534, start `PROBE status` in DIR,
//!   send it SIGQUIT (default action: dump core), report whether the kernel dumped core.
//! - `mlock required|degraded`: set RLIMIT_MEMLOCK 0/0, drop to 65534, create a `SecretBuf`.
//! - `mlock-control`: same with RLIMIT_MEMLOCK 1 MiB (the control: locking succeeds).
//! - `reassert`: drop to 65534, make the process dumpable and its core limit non-zero (what
//!   fs.suid_dumpable=1 and an inherited limit would leave), call
//!   `reassert_after_credential_change`, print before/after.
//! - `guards`: create a `SecretBuf` and probe the byte below and above its data pages with
//!   `write(2)` to a socket (EFAULT = not readable), and its first and last data byte (control).
//! - `wipe-on-fork`: fork with a `SecretBuf` and a heap copy of the same bytes; report what the
//!   child sees in each.
//! - `eintr`: read a key through `FdReader` while SIGALRM (no SA_RESTART) fires every 20 ms;
//!   a plain read(2) under the same signals is the control (EINTR).
//! - `deny dumpable|rlimit PROBE ARGS...`: install a seccomp filter that makes
//!   `prctl(PR_SET_DUMPABLE)` or setting RLIMIT_CORE fail with EPERM, then exec `PROBE ARGS...`.

#[cfg(target_os = "linux")]
#[path = "common/attacker.rs"]
mod attacker;

#[cfg(target_os = "linux")]
fn main() {
    if let Err(e) = attacker::run() {
        eprintln!("secure-main-attacker: {e}");
        std::process::exit(3);
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("secure-main-attacker: the attack tests are Linux-only");
    std::process::exit(3);
}
