//! [`hardening_report`]: what is actually in force for this process.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use serde::Serialize;

use crate::hardening::{LoaderEnv, PRE_MAIN};
use crate::secret::{
    DEGRADED_BUFFERS, LOCKED_BUFFERS, LOCKED_BYTES, LOCKED_PAGES, SECRET_MEMORY_BUFFERS,
};
use crate::sys;

static LANDLOCK: Mutex<Option<Enforcement>> = Mutex::new(None);

/// How much of a requested confinement the kernel enforces (rust-landlock's `RulesetStatus`).
///
/// One type for every report that states it: the Linux sandbox's, the proxy's confinement report
/// and [`HardeningReport::landlock`]. It lives here, in the crate every binary already depends on,
/// because `codex-confine` (which produces it) depends on this crate. JSON: `"fully_enforced"`,
/// `"partially_enforced"`, `"not_enforced"`; text: the same words with spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Enforcement {
    /// Every requested restriction is in force.
    FullyEnforced,
    /// Some requested restrictions are in force, others are not supported by the kernel.
    PartiallyEnforced,
    /// Nothing is in force (e.g. the kernel has no Landlock).
    NotEnforced,
}

impl Enforcement {
    /// The words for text reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::FullyEnforced => "fully enforced",
            Enforcement::PartiallyEnforced => "partially enforced",
            Enforcement::NotEnforced => "not enforced",
        }
    }
}

impl fmt::Display for Enforcement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Records the Landlock status of this process (the kernel does not expose it). `codex-confine`
/// calls this after `landlock_restrict_self`. The last call wins.
pub fn record_landlock_status(status: Enforcement) {
    *LANDLOCK.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
}

/// Soft and hard `RLIMIT_CORE`; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CoreLimit {
    /// Soft limit in bytes.
    pub soft: Option<u64>,
    /// Hard limit in bytes.
    pub hard: Option<u64>,
}

/// What the pre-main hardening did, if it ran in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PreMainSummary {
    /// The binary's loader-environment decision.
    pub loader_env: LoaderEnv,
    /// Loader variables removed from the environment.
    pub loader_vars_removed: usize,
    /// Of those, how many were also overwritten in the kernel-provided environment block.
    pub loader_vars_wiped: usize,
}

/// Snapshot of the protections in force, from the kernel where it tells (prctl, getrlimit,
/// /proc/self/status) and from this crate's own records otherwise. A value that could not be read
/// is `None` and the reason is in `unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HardeningReport {
    /// `PR_GET_DUMPABLE` (0 = not dumpable; Linux only).
    pub dumpable: Option<i32>,
    /// `RLIMIT_CORE`.
    pub core_limit: Option<CoreLimit>,
    /// Whether `PT_DENY_ATTACH` was set before main (macOS only).
    pub ptrace_deny_attach: Option<bool>,
    /// `None` if the pre-main hardening did not run in this process.
    pub pre_main: Option<PreMainSummary>,
    /// Live `SecretBuf`s whose pages are locked (including leaked process-lifetime ones).
    pub locked_secret_buffers: usize,
    /// Of those, how many are `memfd_secret(2)` memory (out of the kernel's direct map; the
    /// others are mlock'ed anonymous pages, readable by root through /proc/<pid>/mem).
    pub secret_memory_buffers: usize,
    /// Pages locked for them.
    pub locked_secret_pages: usize,
    /// Bytes locked for them.
    pub locked_secret_bytes: usize,
    /// Live `SecretBuf`s whose `mlock` failed under `LockPolicy::AllowDegraded`.
    pub degraded_secret_buffers: usize,
    /// `PR_GET_NO_NEW_PRIVS` (Linux only).
    pub no_new_privs: Option<bool>,
    /// The `Seccomp:` line of /proc/self/status: `disabled`, `strict` or `filter` (Linux only).
    pub seccomp: Option<String>,
    /// What [`record_landlock_status`] recorded; `None` if nothing did.
    pub landlock: Option<Enforcement>,
    /// Real user id.
    pub uid: Option<u32>,
    /// Effective user id.
    pub euid: Option<u32>,
    /// Real group id.
    pub gid: Option<u32>,
    /// Effective group id.
    pub egid: Option<u32>,
    /// Supplementary groups.
    pub groups: Option<Vec<u32>>,
    /// Values that could not be read, each `"<field>: <call> failed: <error>"`.
    pub unavailable: Vec<String>,
}

fn limit(v: u64) -> Option<u64> {
    (v != u64::MAX).then_some(v)
}

/// Reads what is in force now. Never fails: unreadable values are `None`, with the reason in
/// [`HardeningReport::unavailable`].
pub fn hardening_report() -> HardeningReport {
    let mut unavailable = Vec::new();
    let pre = *PRE_MAIN.lock().unwrap_or_else(|p| p.into_inner());

    #[cfg(target_os = "linux")]
    let dumpable = match sys::get_dumpable() {
        Ok(v) => Some(v),
        Err(e) => {
            unavailable.push(format!("dumpable: prctl(PR_GET_DUMPABLE) failed: {e}"));
            None
        }
    };
    #[cfg(not(target_os = "linux"))]
    let dumpable = None;

    let core_limit = match sys::get_core_limit() {
        Ok(l) => Some(CoreLimit {
            soft: limit(l.soft),
            hard: limit(l.hard),
        }),
        Err(e) => {
            unavailable.push(format!("core_limit: getrlimit(RLIMIT_CORE) failed: {e}"));
            None
        }
    };

    #[cfg(target_vendor = "apple")]
    let ptrace_deny_attach = Some(pre.is_some_and(|p| p.ptrace_deny_attach));
    #[cfg(not(target_vendor = "apple"))]
    let ptrace_deny_attach = None;

    #[cfg(target_os = "linux")]
    let (no_new_privs, seccomp) = {
        let nnp = match sys::get_no_new_privs() {
            Ok(v) => Some(v),
            Err(e) => {
                unavailable.push(format!(
                    "no_new_privs: prctl(PR_GET_NO_NEW_PRIVS) failed: {e}"
                ));
                None
            }
        };
        // prctl first: after Landlock confinement /proc/self/status may be unreadable.
        let seccomp = match sys::get_seccomp_mode() {
            Ok(mode) => Some(seccomp_mode_name(mode)),
            Err(prctl_err) => match std::fs::read_to_string("/proc/self/status") {
                Ok(status) => {
                    let mode = parse_seccomp(&status);
                    if mode.is_none() {
                        unavailable
                            .push("seccomp: /proc/self/status has no Seccomp line".to_owned());
                    }
                    mode
                }
                Err(e) => {
                    unavailable.push(format!(
                        "seccomp: prctl(PR_GET_SECCOMP) failed: {prctl_err}; reading /proc/self/status failed: {e}"
                    ));
                    None
                }
            },
        };
        (nnp, seccomp)
    };
    #[cfg(not(target_os = "linux"))]
    let (no_new_privs, seccomp) = (None, None);

    let (uid, euid, gid, egid, groups) = match sys::ids() {
        Ok(ids) => (
            Some(ids.uid),
            Some(ids.euid),
            Some(ids.gid),
            Some(ids.egid),
            Some(ids.groups),
        ),
        Err(e) => {
            unavailable.push(format!("ids: getgroups failed: {e}"));
            (None, None, None, None, None)
        }
    };

    HardeningReport {
        dumpable,
        core_limit,
        ptrace_deny_attach,
        pre_main: pre.map(|p| PreMainSummary {
            loader_env: p.loader_env,
            loader_vars_removed: p.loader_vars_removed,
            loader_vars_wiped: p.loader_vars_wiped,
        }),
        locked_secret_buffers: LOCKED_BUFFERS.load(Ordering::Relaxed),
        secret_memory_buffers: SECRET_MEMORY_BUFFERS.load(Ordering::Relaxed),
        locked_secret_pages: LOCKED_PAGES.load(Ordering::Relaxed),
        locked_secret_bytes: LOCKED_BYTES.load(Ordering::Relaxed),
        degraded_secret_buffers: DEGRADED_BUFFERS.load(Ordering::Relaxed),
        no_new_privs,
        seccomp,
        landlock: *LANDLOCK.lock().unwrap_or_else(|p| p.into_inner()),
        uid,
        euid,
        gid,
        egid,
        groups,
        unavailable,
    }
}

/// The seccomp mode from the `Seccomp:` line of /proc/<pid>/status.
pub(crate) fn parse_seccomp(status: &str) -> Option<String> {
    let value = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))?
        .trim();
    Some(match value.parse::<i32>() {
        Ok(mode) => seccomp_mode_name(mode),
        Err(_) => value.to_owned(),
    })
}

/// The name of a seccomp mode number (`prctl(PR_GET_SECCOMP)`, `Seccomp:` in /proc).
fn seccomp_mode_name(mode: i32) -> String {
    match mode {
        0 => "disabled".to_owned(),
        1 => "strict".to_owned(),
        2 => "filter".to_owned(),
        other => other.to_string(),
    }
}

struct Opt<'a, T>(&'a Option<T>);

impl<T: fmt::Display> fmt::Display for Opt<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

fn fmt_limit(v: Option<u64>) -> String {
    v.map_or_else(|| "unlimited".to_owned(), |v| v.to_string())
}

impl fmt::Display for HardeningReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dumpable: {}", Opt(&self.dumpable))?;
        match &self.core_limit {
            Some(l) => writeln!(
                f,
                "core file size limit: soft {}, hard {}",
                fmt_limit(l.soft),
                fmt_limit(l.hard)
            )?,
            None => writeln!(f, "core file size limit: unknown")?,
        }
        if let Some(p) = self.ptrace_deny_attach {
            writeln!(f, "ptrace deny attach: {p}")?;
        }
        match &self.pre_main {
            Some(p) => writeln!(
                f,
                "pre-main hardening: ran (loader environment: {:?}, {} removed, {} wiped in place)",
                p.loader_env, p.loader_vars_removed, p.loader_vars_wiped
            )?,
            None => writeln!(f, "pre-main hardening: did not run")?,
        }
        writeln!(
            f,
            "locked secret memory: {} buffers ({} in memfd_secret, the rest mlock'ed), {} pages, {} bytes ({} degraded buffers)",
            self.locked_secret_buffers,
            self.secret_memory_buffers,
            self.locked_secret_pages,
            self.locked_secret_bytes,
            self.degraded_secret_buffers
        )?;
        writeln!(f, "no_new_privs: {}", Opt(&self.no_new_privs))?;
        writeln!(f, "seccomp: {}", Opt(&self.seccomp))?;
        match self.landlock {
            Some(status) => writeln!(f, "landlock: {status}")?,
            None => writeln!(f, "landlock: not recorded")?,
        }
        writeln!(
            f,
            "uid: {}, euid: {}, gid: {}, egid: {}",
            Opt(&self.uid),
            Opt(&self.euid),
            Opt(&self.gid),
            Opt(&self.egid)
        )?;
        match &self.groups {
            Some(g) => {
                let list: Vec<String> = g.iter().map(u32::to_string).collect();
                writeln!(f, "groups: [{}]", list.join(", "))?;
            }
            None => writeln!(f, "groups: unknown")?,
        }
        for u in &self.unavailable {
            writeln!(f, "unavailable: {u}")?;
        }
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn seccomp_modes_are_named() {
        assert_eq!(
            parse_seccomp("Name:\tx\nSeccomp:\t2\n").as_deref(),
            Some("filter")
        );
        assert_eq!(parse_seccomp("Seccomp:\t0\n").as_deref(), Some("disabled"));
        assert_eq!(parse_seccomp("Seccomp:\t1\n").as_deref(), Some("strict"));
        assert_eq!(parse_seccomp("Name:\tx\n"), None);
    }

    #[test]
    fn report_reads_this_process_and_records_landlock() {
        record_landlock_status(Enforcement::FullyEnforced);
        let r = hardening_report();
        assert_eq!(r.landlock, Some(Enforcement::FullyEnforced));
        let json = serde_json::to_value(&r).expect("serialize");
        assert_eq!(json["landlock"], "fully_enforced");
        // The unit-test process is not hardened: dumpable and without pre-main record.
        assert_eq!(r.dumpable, Some(1));
        assert_eq!(r.pre_main, None);
        // The harness may itself run under a seccomp filter or no_new_privs (containers): the
        // values must be read, whatever they are.
        assert!(matches!(
            r.seccomp.as_deref(),
            Some("disabled" | "strict" | "filter")
        ));
        assert!(r.no_new_privs.is_some());
        assert!(r.uid.is_some() && r.groups.is_some());
        assert!(r.unavailable.is_empty(), "{:?}", r.unavailable);
        let text = r.to_string();
        assert!(text.contains("landlock: fully enforced"), "{text}");
        assert!(text.contains("seccomp: "), "{text}");
    }
}
