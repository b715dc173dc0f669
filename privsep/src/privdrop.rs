//! Dropping root for good.
//!
//! Decision table ([`RunAs::decide`]), "root" meaning any of the real/effective/saved uids is 0:
//!
//! | started as | `--user` | `--dangerously-run-as-root` | result |
//! |---|---|---|---|
//! | root | U (not uid 0) | no | drop to U |
//! | root | — | no | drop to [`DEFAULT_ACCOUNT`] (`nobody`) |
//! | root | — | yes | stay root (reported as dangerous) |
//! | any | uid 0 | — | refused: "use --dangerously-run-as-root" |
//! | any | U | yes | refused: contradictory |
//! | not root | — | — | nothing to drop |
//! | not root | U = us | no | nothing to drop (verified) |
//! | not root | other U | no | refused: only root can switch users |
//!
//! The drop ([`DropPlan::apply`]): `setgroups([])` (no supplementary groups), `setresgid(g,g,g)`,
//! `setresuid(u,u,u)` through glibc, which applies them to every thread; then it verifies that
//! real/effective/saved uid and gid are the target, there are no supplementary groups, no
//! capability is effective or permitted, and `setuid(0)`/`setgid(0)` fail with `EPERM`. The
//! kernel resets the dumpable flag on a credential change, so it re-asserts `PR_SET_DUMPABLE 0`
//! and `RLIMIT_CORE 0` (through `secure_main` when that is linked, and directly) and checks
//! `PR_GET_DUMPABLE` is 0. After a failure the process may be partly dropped: exit.

use std::io;

use serde::Serialize;

use crate::sys;
use crate::users::{self, Account, ResolveError};

/// The unprivileged account used when started as root without `--user`.
pub const DEFAULT_ACCOUNT: &str = "nobody";

/// Errors deciding or applying the drop.
#[derive(Debug, thiserror::Error)]
pub enum DropError {
    /// `--user` names uid 0.
    #[error("--user {0:?} is root: to keep root, use --dangerously-run-as-root instead")]
    UserIsRoot(String),
    /// Both `--user` and `--dangerously-run-as-root`.
    #[error("--user and --dangerously-run-as-root contradict each other")]
    Contradictory,
    /// `--user` when not root.
    #[error("--user {user:?} needs root: this process runs as uid {uid}")]
    NotRoot {
        /// The target.
        user: String,
        /// Our uid.
        uid: u32,
    },
    /// Resolving the account failed.
    #[error("--user: {0}")]
    Resolve(#[from] ResolveError),
    /// The default account could not be resolved.
    #[error(
        "started as root without --user, and the default account {DEFAULT_ACCOUNT:?} cannot be used: {0}"
    )]
    DefaultAccount(ResolveError),
    /// The default account is root (a broken passwd).
    #[error("the default account {DEFAULT_ACCOUNT:?} has uid 0: refusing; pass --user")]
    DefaultIsRoot,
    /// A syscall failed.
    #[error("{call} failed: {source}")]
    Syscall {
        /// The call, with arguments.
        call: String,
        /// The error.
        source: io::Error,
    },
    /// Re-asserting non-dumpable and the core limit failed.
    #[error("after the credential change: {0}")]
    Reassert(secure_main::HardeningError),
    /// The drop did not hold.
    #[error("privilege drop verification failed: {0}")]
    Verify(String),
}

/// Which account the process will run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunAs {
    /// Switch to this account.
    Drop(Account),
    /// Not root and not asked to switch: nothing to do.
    Unchanged,
    /// Stay root (`--dangerously-run-as-root`).
    DangerouslyRoot,
}

fn syscall_err(call: impl Into<String>) -> impl FnOnce(io::Error) -> DropError {
    let call = call.into();
    move |source| DropError::Syscall { call, source }
}

fn is_root() -> Result<bool, DropError> {
    let (r, e, s) = sys::getresuid().map_err(syscall_err("getresuid"))?;
    Ok(r == 0 || e == 0 || s == 0)
}

impl RunAs {
    /// Applies the decision table for this process.
    pub fn decide(user: Option<&str>, dangerously_run_as_root: bool) -> Result<Self, DropError> {
        Self::decide_for(is_root()?, user, dangerously_run_as_root)
    }

    /// The decision table for a process that is (or is not) root.
    pub fn decide_for(
        root: bool,
        user: Option<&str>,
        dangerously_run_as_root: bool,
    ) -> Result<Self, DropError> {
        match (user, dangerously_run_as_root) {
            (Some(_), true) => Err(DropError::Contradictory),
            (Some(spec), false) => {
                let account = users::resolve_account(spec)?;
                if account.uid == 0 {
                    return Err(DropError::UserIsRoot(spec.to_owned()));
                }
                if !root {
                    let (r, e, s) = sys::getresuid().map_err(syscall_err("getresuid"))?;
                    let (gr, ge, gs) = sys::getresgid().map_err(syscall_err("getresgid"))?;
                    let ours = [r, e, s].iter().all(|&x| x == account.uid)
                        && [gr, ge, gs].iter().all(|&x| x == account.gid);
                    if ours {
                        return Ok(Self::Unchanged);
                    }
                    return Err(DropError::NotRoot {
                        user: spec.to_owned(),
                        uid: e,
                    });
                }
                Ok(Self::Drop(account))
            }
            (None, true) => Ok(if root {
                Self::DangerouslyRoot
            } else {
                Self::Unchanged
            }),
            (None, false) if root => {
                let account =
                    users::resolve_account(DEFAULT_ACCOUNT).map_err(DropError::DefaultAccount)?;
                if account.uid == 0 {
                    return Err(DropError::DefaultIsRoot);
                }
                Ok(Self::Drop(account))
            }
            (None, false) => Ok(Self::Unchanged),
        }
    }

    /// Performs the decision. Call after reading the key, binding every listener and writing the
    /// server-info file, and before starting threads that are not created by glibc-aware code
    /// (glibc's set*id broadcast covers every pthread).
    pub fn apply(&self) -> Result<DropReport, DropError> {
        match self {
            Self::Drop(account) => drop_to(account),
            Self::Unchanged | Self::DangerouslyRoot => {
                reassert_not_dumpable()?;
                current_report(matches!(self, Self::DangerouslyRoot), false)
            }
        }
    }
}

/// What the process runs as afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropReport {
    /// Whether ids were changed by this call.
    pub dropped: bool,
    /// Whether the process still is root (only with `--dangerously-run-as-root`).
    pub dangerously_root: bool,
    /// Account name, if known.
    pub user: Option<String>,
    /// (real, effective, saved) uid.
    pub uid: (u32, u32, u32),
    /// (real, effective, saved) gid.
    pub gid: (u32, u32, u32),
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// `setuid(0)` was tried and refused with `EPERM`.
    pub regain_root_refused: bool,
    /// `PR_GET_DUMPABLE` afterwards.
    pub dumpable: i32,
    /// `RLIMIT_CORE` (soft, hard) afterwards.
    pub core_limit: (u64, u64),
}

fn reassert_not_dumpable() -> Result<(), DropError> {
    secure_main_reassert()?;
    sys::set_not_dumpable().map_err(syscall_err("prctl(PR_SET_DUMPABLE, 0)"))?;
    sys::set_core_limit_zero().map_err(syscall_err("setrlimit(RLIMIT_CORE, 0)"))?;
    Ok(())
}

/// `secure_main`'s re-assertion after a credential change (dumpable 0, core limit 0, read back).
fn secure_main_reassert() -> Result<(), DropError> {
    secure_main::reassert_after_credential_change().map_err(DropError::Reassert)
}

fn current_report(
    dangerously_root: bool,
    regain_root_refused: bool,
) -> Result<DropReport, DropError> {
    let uid = sys::getresuid().map_err(syscall_err("getresuid"))?;
    let gid = sys::getresgid().map_err(syscall_err("getresgid"))?;
    let groups = sys::getgroups().map_err(syscall_err("getgroups"))?;
    let dumpable = sys::get_dumpable().map_err(syscall_err("prctl(PR_GET_DUMPABLE)"))?;
    let core_limit = sys::get_core_limit().map_err(syscall_err("getrlimit(RLIMIT_CORE)"))?;
    let user = sys::getpwuid(uid.1)
        .ok()
        .flatten()
        .map(|p| p.name.to_string_lossy().into_owned());
    Ok(DropReport {
        dropped: false,
        dangerously_root,
        user,
        uid,
        gid,
        groups,
        regain_root_refused,
        dumpable,
        core_limit,
    })
}

fn drop_to(account: &Account) -> Result<DropReport, DropError> {
    let (uid, gid) = (account.uid, account.gid);
    if uid == 0 {
        return Err(DropError::UserIsRoot(uid.to_string()));
    }
    sys::setgroups(&[]).map_err(syscall_err("setgroups([])"))?;
    sys::setresgid(gid).map_err(syscall_err(format!("setresgid({gid}, {gid}, {gid})")))?;
    sys::setresuid(uid).map_err(syscall_err(format!("setresuid({uid}, {uid}, {uid})")))?;

    // Verify, then re-assert what the credential change reset.
    let ids = sys::getresuid().map_err(syscall_err("getresuid"))?;
    if ids != (uid, uid, uid) {
        return Err(DropError::Verify(format!(
            "uids are {ids:?}, wanted all {uid}"
        )));
    }
    let gids = sys::getresgid().map_err(syscall_err("getresgid"))?;
    if gids != (gid, gid, gid) {
        return Err(DropError::Verify(format!(
            "gids are {gids:?}, wanted all {gid}"
        )));
    }
    let groups = sys::getgroups().map_err(syscall_err("getgroups"))?;
    if !groups.is_empty() {
        return Err(DropError::Verify(format!(
            "supplementary groups {groups:?} remain"
        )));
    }
    let (eff, perm) = sys::capget().map_err(syscall_err("capget"))?;
    if eff != 0 || perm != 0 {
        return Err(DropError::Verify(format!(
            "capabilities remain: effective {eff:#x}, permitted {perm:#x}"
        )));
    }
    match sys::setuid(0) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        Err(e) => {
            return Err(DropError::Verify(format!(
                "setuid(0) failed with {e}, expected EPERM"
            )));
        }
        Ok(()) => {
            return Err(DropError::Verify(
                "setuid(0) succeeded: root regained".into(),
            ));
        }
    }
    match sys::setgid(0) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
        Err(e) => {
            return Err(DropError::Verify(format!(
                "setgid(0) failed with {e}, expected EPERM"
            )));
        }
        Ok(()) => {
            return Err(DropError::Verify(
                "setgid(0) succeeded: group 0 regained".into(),
            ));
        }
    }
    reassert_not_dumpable()?;
    let mut report = current_report(false, true)?;
    if report.core_limit != (0, 0) {
        return Err(DropError::Verify(format!(
            "RLIMIT_CORE is {:?} after re-asserting 0",
            report.core_limit
        )));
    }
    if report.dumpable != 0 {
        return Err(DropError::Verify(format!(
            "PR_GET_DUMPABLE is {} after re-asserting 0",
            report.dumpable
        )));
    }
    report.dropped = true;
    report.user = account.name.clone().or(report.user);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_table() {
        let nobody = users::resolve_account("nobody").unwrap();
        assert_eq!(
            RunAs::decide_for(true, None, false).unwrap(),
            RunAs::Drop(nobody.clone())
        );
        assert_eq!(
            RunAs::decide_for(true, Some("nobody"), false).unwrap(),
            RunAs::Drop(nobody)
        );
        assert_eq!(
            RunAs::decide_for(true, None, true).unwrap(),
            RunAs::DangerouslyRoot
        );
        let e = RunAs::decide_for(true, Some("root"), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--user \"root\" is root: to keep root, use --dangerously-run-as-root instead"
        );
        assert!(matches!(
            RunAs::decide_for(true, Some("0"), false).unwrap_err(),
            DropError::UserIsRoot(_)
        ));
        assert!(matches!(
            RunAs::decide_for(true, Some("nobody"), true).unwrap_err(),
            DropError::Contradictory
        ));
        let e = RunAs::decide_for(true, Some("no-such-user-privsep-z"), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--user: unknown user \"no-such-user-privsep-z\": no such entry in the passwd database"
        );
        assert_eq!(
            RunAs::decide_for(false, None, false).unwrap(),
            RunAs::Unchanged
        );
    }
}
