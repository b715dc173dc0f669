//! Pre-main process hardening: not dumpable / no debugger attach, no core files, no loader
//! environment variables.

use std::ffi::OsString;
use std::io;
use std::io::Write as _;
use std::os::unix::ffi::OsStringExt as _;
use std::sync::Mutex;

use crate::sys;

/// Exit code when disabling the dumpable flag fails (Linux `PR_SET_DUMPABLE`).
pub const EXIT_DUMPABLE: i32 = 5;
/// Exit code when denying debugger attach fails (macOS `PT_DENY_ATTACH`).
pub const EXIT_PTRACE_DENY: i32 = 6;
/// Exit code when setting or verifying `RLIMIT_CORE` 0/0 fails.
pub const EXIT_RLIMIT: i32 = 7;
/// Exit code when loader variables are still in `environ` after removal (not expected to happen).
pub const EXIT_LOADER_ENV: i32 = 8;

/// What the pre-main hardening does with dynamic-loader environment variables (`LD_*` on Linux
/// and other Unix; `DYLD_*`, `MallocStackLogging*`, `MallocLogFile*` on macOS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoaderEnv {
    /// Remove them; nothing started by this process gets them back.
    Strip,
    /// Remove them, but remember them ([`kept_loader_env`]) so the program can hand them back to
    /// the user's own commands it starts, and only to those.
    StripAndKeepForChildren,
    /// Leave them in place (the process and all its children see them).
    Keep,
}

/// How [`pre_main_hardening`] treats this binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HardeningConfig {
    /// What happens to the loader environment variables.
    pub loader_env: LoaderEnv,
}

impl HardeningConfig {
    /// Strip the loader environment for good (the proxy).
    pub const STRIP: HardeningConfig = HardeningConfig {
        loader_env: LoaderEnv::Strip,
    };
    /// Strip it and keep it for the user's commands (the sandbox helper, the `codex` CLI).
    pub const STRIP_AND_KEEP_FOR_CHILDREN: HardeningConfig = HardeningConfig {
        loader_env: LoaderEnv::StripAndKeepForChildren,
    };
}

/// A hardening step failed. Each variant names the call; [`HardeningError::exit_code`] is the
/// exit status the pre-main hardening uses for it.
#[derive(Debug, thiserror::Error)]
pub enum HardeningError {
    /// `prctl(PR_SET_DUMPABLE, 0)` failed.
    #[error("prctl(PR_SET_DUMPABLE, 0) failed: {source}")]
    SetDumpable {
        /// The error prctl returned.
        source: io::Error,
    },
    /// `prctl(PR_GET_DUMPABLE)` failed.
    #[error("prctl(PR_GET_DUMPABLE) failed: {source}")]
    GetDumpable {
        /// The error prctl returned.
        source: io::Error,
    },
    /// `PR_GET_DUMPABLE` still reports a non-zero value after `PR_SET_DUMPABLE` 0.
    #[error("prctl(PR_SET_DUMPABLE, 0) did not take effect: PR_GET_DUMPABLE returned {value}")]
    StillDumpable {
        /// The value PR_GET_DUMPABLE returned.
        value: i32,
    },
    /// `ptrace(PT_DENY_ATTACH)` failed (macOS).
    #[error("ptrace(PT_DENY_ATTACH) failed: {source}")]
    PtraceDenyAttach {
        /// The error ptrace returned.
        source: io::Error,
    },
    /// `setrlimit(RLIMIT_CORE, 0, 0)` failed.
    #[error("setrlimit(RLIMIT_CORE, 0, 0) failed: {source}")]
    SetCoreLimit {
        /// The error setrlimit returned.
        source: io::Error,
    },
    /// `getrlimit(RLIMIT_CORE)` failed while verifying.
    #[error("getrlimit(RLIMIT_CORE) failed: {source}")]
    GetCoreLimit {
        /// The error getrlimit returned.
        source: io::Error,
    },
    /// `getrlimit(RLIMIT_CORE)` does not report 0/0 after setting it.
    #[error("setrlimit(RLIMIT_CORE, 0, 0) did not take effect: soft {soft}, hard {hard}")]
    CoreLimitNotZero {
        /// Soft limit read back.
        soft: u64,
        /// Hard limit read back.
        hard: u64,
    },
    /// More than one thread runs, so `environ` cannot be edited safely (another thread may be
    /// reading it): the loader variables were left alone and the process must not continue.
    #[error(
        "refusing to edit the environment: {threads} threads are running (pre-main hardening must run single-threaded)"
    )]
    NotSingleThreaded {
        /// Threads counted in /proc/self/task.
        threads: usize,
    },
    /// Loader variables are still in `environ` after removing them.
    #[error("loader environment variables remain after removal: {count} left")]
    LoaderEnvRemains {
        /// How many entries were still there.
        count: usize,
    },
}

impl HardeningError {
    /// The exit status pre-main hardening uses for this failure: 5 dumpable, 6 ptrace deny,
    /// 7 rlimit, 8 loader environment.
    pub fn exit_code(&self) -> i32 {
        match self {
            HardeningError::SetDumpable { .. }
            | HardeningError::GetDumpable { .. }
            | HardeningError::StillDumpable { .. } => EXIT_DUMPABLE,
            HardeningError::PtraceDenyAttach { .. } => EXIT_PTRACE_DENY,
            HardeningError::SetCoreLimit { .. }
            | HardeningError::GetCoreLimit { .. }
            | HardeningError::CoreLimitNotZero { .. } => EXIT_RLIMIT,
            HardeningError::LoaderEnvRemains { .. } | HardeningError::NotSingleThreaded { .. } => {
                EXIT_LOADER_ENV
            }
        }
    }
}

/// What the pre-main hardening did, for [`crate::hardening_report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PreMainRecord {
    pub(crate) loader_env: LoaderEnv,
    /// Entries removed from `environ`.
    pub(crate) loader_vars_removed: usize,
    /// Of those, entries overwritten in the kernel-provided environment block.
    pub(crate) loader_vars_wiped: usize,
    #[cfg_attr(not(target_vendor = "apple"), allow(dead_code))]
    pub(crate) ptrace_deny_attach: bool,
}

pub(crate) static PRE_MAIN: Mutex<Option<PreMainRecord>> = Mutex::new(None);
static KEPT: Mutex<Vec<(OsString, OsString)>> = Mutex::new(Vec::new());

/// Hardens the process; meant to run before `main` through [`crate::harden_process!`], while the
/// process is still single-threaded (it edits `environ` without the standard library's lock).
///
/// Steps, in order:
/// 1. Linux: `prctl(PR_SET_DUMPABLE, 0)`, verified with `PR_GET_DUMPABLE` (exit 5). macOS:
///    `ptrace(PT_DENY_ATTACH)` (exit 6).
/// 2. `setrlimit(RLIMIT_CORE, 0, 0)`, verified with `getrlimit` (exit 7).
/// 3. Unless [`LoaderEnv::Keep`]: remove every loader variable from `environ` (names compared as
///    bytes, non-UTF-8 names are fine), overwrite the removed strings with NUL bytes when they are
///    in the kernel-provided environment block (so `/proc/<pid>/environ` no longer shows them),
///    remember them for [`kept_loader_env`] under [`LoaderEnv::StripAndKeepForChildren`], and
///    verify that none is left (exit 8). If /proc/self/stat shows more than one thread (a
///    library constructor started one), the environment is not edited and the process exits 8.
///    Without any loader variable nothing is edited and nothing more is read.
///
/// On failure it writes one line naming the call and the errno to stderr and ends the process
/// with `_exit` and the code above; it never returns with partial hardening. State after a
/// failure: none (the process is gone).
pub fn pre_main_hardening(cfg: HardeningConfig) {
    if let Err(e) = harden(cfg) {
        let _ = writeln!(io::stderr(), "secure-main: pre-main hardening failed: {e}");
        sys::exit_immediately(e.exit_code());
    }
}

fn harden(cfg: HardeningConfig) -> Result<(), HardeningError> {
    let ptrace_deny_attach = deny_debuggers()?;
    core_limit_zero()?;
    let (removed, wiped) = match cfg.loader_env {
        LoaderEnv::Keep => (0, 0),
        LoaderEnv::Strip | LoaderEnv::StripAndKeepForChildren => {
            strip_loader_env(cfg.loader_env == LoaderEnv::StripAndKeepForChildren)?
        }
    };
    let record = PreMainRecord {
        loader_env: cfg.loader_env,
        loader_vars_removed: removed,
        loader_vars_wiped: wiped,
        ptrace_deny_attach,
    };
    *PRE_MAIN.lock().unwrap_or_else(|p| p.into_inner()) = Some(record);
    Ok(())
}

/// Sets the protections that a credential change can undo, again, and verifies them.
///
/// When the effective uid/gid (or fsuid/fsgid, or capabilities) change, Linux resets the dumpable
/// flag to the `fs.suid_dumpable` sysctl: 0 by default (still protected), but 1 on machines that
/// set it, which would make the process dumpable and ptrace-able by its new uid again. Call this
/// right after `setresuid`/`setresgid`. It sets `PR_SET_DUMPABLE` 0 (macOS: `PT_DENY_ATTACH`) and
/// `RLIMIT_CORE` 0/0 and reads both back. On error the process may be partly protected; treat the
/// error as fatal.
pub fn reassert_after_credential_change() -> Result<(), HardeningError> {
    deny_debuggers()?;
    core_limit_zero()
}

/// Linux: not dumpable (which also makes /proc/<pid> files root-owned and refuses ptrace,
/// process_vm_readv and /proc/<pid>/mem to the same uid). Returns whether PT_DENY_ATTACH was set.
#[cfg(target_os = "linux")]
fn deny_debuggers() -> Result<bool, HardeningError> {
    sys::set_dumpable(false).map_err(|source| HardeningError::SetDumpable { source })?;
    let value = sys::get_dumpable().map_err(|source| HardeningError::GetDumpable { source })?;
    if value != 0 {
        return Err(HardeningError::StillDumpable { value });
    }
    Ok(false)
}

/// macOS: PT_DENY_ATTACH (there is no dumpable flag; core files are handled by RLIMIT_CORE).
#[cfg(target_vendor = "apple")]
fn deny_debuggers() -> Result<bool, HardeningError> {
    sys::ptrace_deny_attach().map_err(|source| HardeningError::PtraceDenyAttach { source })?;
    Ok(true)
}

/// Other Unix: no portable anti-debugging call; RLIMIT_CORE and loader stripping still apply.
#[cfg(not(any(target_os = "linux", target_vendor = "apple")))]
fn deny_debuggers() -> Result<bool, HardeningError> {
    Ok(false)
}

fn core_limit_zero() -> Result<(), HardeningError> {
    sys::set_core_limit(0, 0).map_err(|source| HardeningError::SetCoreLimit { source })?;
    let lim = sys::get_core_limit().map_err(|source| HardeningError::GetCoreLimit { source })?;
    if lim.soft != 0 || lim.hard != 0 {
        return Err(HardeningError::CoreLimitNotZero {
            soft: lim.soft,
            hard: lim.hard,
        });
    }
    Ok(())
}

/// Whether the `environ` entry `NAME=value` is a loader variable on this platform (by name bytes).
pub(crate) fn is_loader_var(entry: &[u8]) -> bool {
    let name = entry.split(|b| *b == b'=').next().unwrap_or(entry);
    LOADER_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(target_vendor = "apple")]
const LOADER_PREFIXES: &[&[u8]] = &[b"DYLD_", b"MallocStackLogging", b"MallocLogFile"];
#[cfg(not(target_vendor = "apple"))]
const LOADER_PREFIXES: &[&[u8]] = &[b"LD_"];

/// Removes the loader variables; returns (removed, wiped in place).
fn strip_loader_env(keep: bool) -> Result<(usize, usize), HardeningError> {
    // Nothing to remove (the common case): the environment is not edited, so neither the
    // environment block's place (/proc/self/stat) nor the thread count is needed. Both reads
    // cost about 40 µs at every start of every binary (measured in `codex sandbox linux`'s
    // start-up, issue 12).
    if !sys::env_entries().iter().any(|e| is_loader_var(e)) {
        return Ok((0, 0));
    }
    let stat = proc_self_stat();
    // An unknown count (no /proc, e.g. a chroot without it) does not stop the hardening, as
    // before; the proxy and the sandbox check again, as an error, before they confine.
    #[cfg(target_os = "linux")]
    if let Ok(threads) = crate::thread_count() {
        if threads != 1 {
            return Err(HardeningError::NotSingleThreaded { threads });
        }
    }
    let block = stat.as_deref().and_then(parse_env_block);
    let removed = sys::remove_env_entries(&is_loader_var, block.clone());
    let wiped = match &block {
        Some(_) => removed.iter().filter(|(_, wiped)| *wiped).count(),
        None => 0,
    };
    let left = sys::env_entries()
        .iter()
        .filter(|e| is_loader_var(e))
        .count();
    if left != 0 {
        return Err(HardeningError::LoaderEnvRemains { count: left });
    }
    if keep {
        let mut kept = KEPT.lock().unwrap_or_else(|p| p.into_inner());
        for (entry, _) in &removed {
            // An entry without '=' has no value for the loader to use: not handed back.
            if let Some(eq) = entry.iter().position(|b| *b == b'=') {
                kept.push((
                    OsString::from_vec(entry[..eq].to_vec()),
                    OsString::from_vec(entry[eq + 1..].to_vec()),
                ));
            }
        }
    }
    Ok((removed.len(), wiped))
}

/// The loader variables that [`LoaderEnv::StripAndKeepForChildren`] removed before `main`, in
/// their original order, for handing back to the user's own commands (for example with
/// `Command::envs`). Empty under the other modes or without the pre-main hardening. Entries that
/// had no `=` are not included.
pub fn kept_loader_env() -> Vec<(OsString, OsString)> {
    KEPT.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// /proc/self/stat (Linux); `None` if /proc is unavailable (then nothing is wiped in place and
/// the thread count is not checked) and on other systems.
#[cfg(target_os = "linux")]
fn proc_self_stat() -> Option<Vec<u8>> {
    std::fs::read("/proc/self/stat").ok()
}

#[cfg(not(target_os = "linux"))]
fn proc_self_stat() -> Option<Vec<u8>> {
    None
}

/// Field `n` (1-based, as in proc(5)) of a /proc/<pid>/stat line, for n >= 3.
fn stat_field(stat: &[u8], n: usize) -> Option<&str> {
    // The command name (field 2) is in parentheses and may contain spaces and ')': split after
    // the last ')'. The first field after it is field 3 (state).
    let close = stat.iter().rposition(|b| *b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    rest.split_ascii_whitespace().nth(n.checked_sub(3)?)
}

/// The kernel-provided environment block `[env_start, env_end)`: fields 50 and 51 (Linux 3.5+).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_env_block(stat: &[u8]) -> Option<std::ops::Range<usize>> {
    let start: usize = stat_field(stat, 50)?.parse().ok()?;
    let end: usize = stat_field(stat, 51)?.parse().ok()?;
    (start != 0 && start < end).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &[u8] = b"4242 (we ird) name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 3 0 123 4096 200 18446744073709551615 94000 95000 140000 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 96000 97000 98000 140720000000000 140720000000100 140720000000100 140720000000500 0\n";

    #[test]
    fn stat_fields_are_found_after_the_last_parenthesis() {
        assert_eq!(
            parse_env_block(STAT),
            Some(140720000000100..140720000000500)
        );
        assert_eq!(parse_env_block(b"1 (x) S 1"), None);
        assert_eq!(parse_env_block(b"garbage"), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn this_process_stat_parses() {
        let stat = std::fs::read("/proc/self/stat").unwrap();
        let block = parse_env_block(&stat).unwrap();
        assert!(block.start < block.end);
    }

    #[test]
    fn loader_variables_are_matched_by_name_bytes() {
        assert!(is_loader_var(b"LD_PRELOAD=/x.so"));
        assert!(is_loader_var(b"LD_\xff=x"));
        assert!(is_loader_var(b"LD_NOVALUE"));
        assert!(!is_loader_var(b"\xffLD_=x"));
        assert!(!is_loader_var(b"OLD_PRELOAD=x"));
        assert!(!is_loader_var(b"X=LD_PRELOAD"));
        assert!(!is_loader_var(b"ld_preload=x"));
    }

    #[test]
    fn exit_codes_follow_the_spec() {
        let e = || io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(HardeningError::SetDumpable { source: e() }.exit_code(), 5);
        assert_eq!(HardeningError::StillDumpable { value: 1 }.exit_code(), 5);
        assert_eq!(
            HardeningError::PtraceDenyAttach { source: e() }.exit_code(),
            6
        );
        assert_eq!(HardeningError::SetCoreLimit { source: e() }.exit_code(), 7);
        assert_eq!(
            HardeningError::CoreLimitNotZero { soft: 1, hard: 1 }.exit_code(),
            7
        );
        assert_eq!(
            HardeningError::NotSingleThreaded { threads: 2 }.exit_code(),
            8
        );
        assert_eq!(
            HardeningError::SetDumpable { source: e() }.to_string(),
            "prctl(PR_SET_DUMPABLE, 0) failed: Operation not permitted (os error 1)"
        );
    }
}
