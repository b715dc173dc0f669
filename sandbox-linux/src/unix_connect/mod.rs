//! Pathname unix-socket `connect` mediation (issue 12, item 1).
//!
//! The child installs a stacked seccomp filter that turns every `connect(2)` into a user
//! notification (`SECCOMP_FILTER_FLAG_NEW_LISTENER`) and hands the listener to the launcher over
//! a socketpair (SCM_RIGHTS). A supervisor thread in the launcher, outside the sandbox, decides
//! and **performs** each connect itself on a duplicate of the child's socket (`pidfd_getfd`),
//! then answers with 0 or the errno. It never answers `SECCOMP_USER_NOTIF_FLAG_CONTINUE`: the
//! kernel never re-reads the child's memory after the decision.
//!
//! This filter is separate from the EPERM table (`codex-confine`); once the confine crate owns
//! the shared table it becomes a "notify" row there (the integrator folds it in). Decisions are
//! documented in `docs/security.md` ("Unix-socket connect mediation").

mod supervisor;
pub(crate) mod sys;

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use sandbox_policy::EffectivePolicy;

pub(crate) use supervisor::open_pidfd as supervisor_open_pidfd;
pub(crate) use supervisor::private_group;
pub use supervisor::{Decision, Rules};
pub(crate) use supervisor::{forward, pidfd_of_thread, pidfd_tid};

/// Errno of a denied connect.
pub const DENIED_ERRNO: i32 = libc::EACCES;

/// The child's end: where the listener goes.
#[derive(Debug)]
pub struct ChildEnd(OwnedFd);

/// The launcher's end: where the listener arrives.
#[derive(Debug)]
pub struct ParentEnd(OwnedFd);

/// A channel for the listener (create before fork).
pub fn channel() -> std::io::Result<(ParentEnd, ChildEnd)> {
    let (a, b) = sys::socketpair()?;
    Ok((ParentEnd(a), ChildEnd(b)))
}

/// In the child, after no_new_privs: install the notifying filter and send the listener to the
/// name guard's creator (`creator`: it receives the notifications) and to the launcher. Without
/// a receiver the listener is closed at once: every later mediated call then fails with ENOSYS
/// (fail closed).
pub fn install_in_child(
    channel: Option<ChildEnd>,
    creator: Option<&OwnedFd>,
    proxy_only: bool,
) -> Result<(), InstallError> {
    let guard_names = creator.is_some();
    if let Err(source) = sys::probe_pidfd_getfd() {
        return Err(InstallError::Unsupported {
            feature: "pidfd_getfd (Linux 5.6)",
            source,
        });
    }
    let listener = sys::install_connect_notifier(guard_names, proxy_only).map_err(|source| {
        if source.raw_os_error() == Some(libc::EINVAL) {
            InstallError::Unsupported {
                feature: "SECCOMP_FILTER_FLAG_NEW_LISTENER (Linux 5.0)",
                source,
            }
        } else {
            InstallError::Failed {
                what: "seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER)",
                source,
            }
        }
    })?;
    if let Some(handoff) = creator {
        sys::send_fd(handoff, &listener).map_err(|source| InstallError::Failed {
            what: "sendmsg(SCM_RIGHTS) of the listener to the name guard",
            source,
        })?;
    }
    if let Some(ChildEnd(sock)) = channel {
        sys::send_fd(&sock, &listener).map_err(|source| InstallError::Failed {
            what: "sendmsg(SCM_RIGHTS) of the listener",
            source,
        })?;
    }
    Ok(())
}

/// Why the notifying filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("this kernel lacks {feature}: {source}")]
    Unsupported {
        feature: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Failed {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl InstallError {
    /// The kernel lacks a feature (refusal, exit 201, unless weaker sandboxes are allowed).
    pub fn is_unsupported(&self) -> bool {
        matches!(self, InstallError::Unsupported { .. })
    }

    pub(crate) fn into_sandbox_error(self) -> crate::SandboxError {
        match self {
            InstallError::Unsupported { feature, source } => {
                crate::SandboxError::UnixConnectUnsupported { feature, source }
            }
            InstallError::Failed { what, source } => {
                crate::SandboxError::UnixConnect { what, source }
            }
        }
    }
}

/// In the launcher: receive the listener (blocking until the child sent it or closed its end)
/// and serve it on a thread. With the name guard, whose creator receives the notifications,
/// serve instead what it forwards: one thread at first, one per channel as the creator starts
/// using them. `Ok(None)`: the child never installed
/// the filter (it failed before, or the policy does not confine).
pub fn start_supervisor(
    parent: ParentEnd,
    rules: Rules,
    guard_channels: Vec<OwnedFd>,
) -> std::io::Result<Option<Vec<std::thread::JoinHandle<()>>>> {
    let Some(listener) = sys::recv_fd(&parent.0)? else {
        return Ok(None);
    };
    drop(parent);
    let listener = std::sync::Arc::new(listener);
    let mut rules = rules;
    rules.guard = !guard_channels.is_empty();
    rules.make_room_for_listened();
    let rules = std::sync::Arc::new(rules);
    let spawn = |f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name("sandbox-notify".into())
            .spawn(f)
    };
    if guard_channels.is_empty() {
        // Best effort: a kernel without the flag is only slower.
        let _ = sys::set_sync_wakeup(&listener);
        return Ok(Some(vec![spawn(Box::new(move || {
            supervisor::run(&listener, &rules)
        }))?]));
    }
    // one thread for every channel at first; more as the creator starts using them
    // (`supervisor::run_forwarded_all`)
    Ok(Some(vec![spawn(Box::new(move || {
        supervisor::run_forwarded_all(&listener, &rules, guard_channels)
    }))?]))
}

/// The rules of a policy: writable roots (minus read-only carve-outs and deny-read paths) and
/// the named sockets.
pub fn rules_for(policy: &EffectivePolicy, allow: &[PathBuf]) -> Rules {
    Rules::new(policy, allow)
}
