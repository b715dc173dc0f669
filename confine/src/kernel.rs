//! The kernel-feature table: what each confinement feature does, the first kernel that has it,
//! and what the running kernel offers. Read by the refusal messages of both enforcers, by
//! `codex sandbox check` and by the reports.

use std::fmt;

use crate::sys;

/// A kernel feature a guarantee needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Landlock filesystem access control (ABI 1).
    LandlockFs,
    /// Landlock control of truncate(2) (ABI 3).
    LandlockTruncate,
    /// Landlock TCP bind/connect restriction (ABI 4).
    LandlockTcp,
    /// Landlock control of device ioctls (ABI 5).
    LandlockIoctlDev,
    /// Landlock signal scoping (ABI 6).
    LandlockSignalScope,
    /// Landlock abstract unix socket scoping (ABI 6).
    LandlockAbstractUnixScope,
    /// seccomp-bpf.
    Seccomp,
    /// Unprivileged user + mount namespaces (the sandbox's read-only mounts: everything outside
    /// the writable roots, `.git`/`.codex` carve-outs).
    UserNamespaces,
    /// A pid namespace (the sandbox's whole process tree dies with it).
    PidNamespace,
    /// An IPC namespace (SysV IPC private to the sandbox).
    IpcNamespace,
}

impl Feature {
    /// Every Landlock feature up to the pinned ABI, oldest first.
    pub const LANDLOCK: [Feature; 6] = [
        Feature::LandlockFs,
        Feature::LandlockTruncate,
        Feature::LandlockTcp,
        Feature::LandlockIoctlDev,
        Feature::LandlockSignalScope,
        Feature::LandlockAbstractUnixScope,
    ];

    /// What the feature protects, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Feature::LandlockFs => {
                "Landlock filesystem restrictions (writes outside the allowed paths, deny-read list)"
            }
            Feature::LandlockTruncate => "Landlock truncate control (truncating read-only files)",
            Feature::LandlockTcp => "Landlock TCP bind/connect restriction",
            Feature::LandlockIoctlDev => "Landlock device ioctl control",
            Feature::LandlockSignalScope => {
                "Landlock signal scoping (signals to processes outside the sandbox)"
            }
            Feature::LandlockAbstractUnixScope => {
                "Landlock abstract unix socket scoping (connecting to abstract sockets outside the sandbox)"
            }
            Feature::Seccomp => {
                "seccomp filters (network sockets, ptrace, io_uring, namespaces, keyrings, bpf, TIOCSTI)"
            }
            Feature::UserNamespaces => {
                "unprivileged user namespaces (read-only mounts: file metadata outside the writable \
                 roots, .git and .codex inside them)"
            }
            Feature::PidNamespace => {
                "a pid namespace (every process of the sandbox dies with the command and the launcher)"
            }
            Feature::IpcNamespace => "an IPC namespace (SysV IPC private to the sandbox)",
        }
    }

    /// The first kernel (and configuration) that has it.
    pub fn requirement(self) -> &'static str {
        match self {
            Feature::LandlockFs => {
                "Landlock ABI 1, Linux 5.13 with CONFIG_SECURITY_LANDLOCK and landlock in lsm="
            }
            Feature::LandlockTruncate => "Landlock ABI 3, Linux 6.2",
            Feature::LandlockTcp => "Landlock ABI 4, Linux 6.7",
            Feature::LandlockIoctlDev => "Landlock ABI 5, Linux 6.10",
            Feature::LandlockSignalScope | Feature::LandlockAbstractUnixScope => {
                "Landlock ABI 6, Linux 6.12"
            }
            Feature::Seccomp => "Linux 3.5 with CONFIG_SECCOMP_FILTER",
            Feature::PidNamespace | Feature::IpcNamespace => {
                "Linux 3.8 with unprivileged user namespaces (or CAP_SYS_ADMIN)"
            }
            Feature::UserNamespaces => {
                "Linux 3.8; disabled by user.max_user_namespaces=0, kernel.unprivileged_userns_clone=0, \
                 kernel.apparmor_restrict_unprivileged_userns=1 or a container's seccomp profile"
            }
        }
    }

    /// The Landlock ABI that brings the feature, if it is a Landlock one.
    pub fn landlock_abi(self) -> Option<i32> {
        match self {
            Feature::LandlockFs => Some(1),
            Feature::LandlockTruncate => Some(3),
            Feature::LandlockTcp => Some(4),
            Feature::LandlockIoctlDev => Some(5),
            Feature::LandlockSignalScope | Feature::LandlockAbstractUnixScope => Some(6),
            Feature::Seccomp
            | Feature::UserNamespaces
            | Feature::PidNamespace
            | Feature::IpcNamespace => None,
        }
    }
}

/// A feature a profile wants and the kernel lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub feature: Feature,
    /// A guarantee is lost without it (false: another layer covers it, e.g. seccomp already
    /// refuses inet sockets when Landlock's TCP rules are missing).
    pub required: bool,
    /// Extra detail (e.g. the errno of the failed probe).
    pub detail: Option<String>,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (needs {})",
            self.feature.describe(),
            self.feature.requirement()
        )?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// Landlock and seccomp support of the running kernel (user namespaces cost a fork to probe:
/// the sandbox probes them itself where it needs them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelSupport {
    /// The kernel's Landlock ABI (0 = none).
    pub landlock_abi: i32,
    /// Why Landlock is unavailable, when it is (`ENOSYS`: not built, `EOPNOTSUPP`: not enabled).
    pub landlock_unavailable: Option<String>,
    /// seccomp filters are available.
    pub seccomp: bool,
}

impl KernelSupport {
    /// Probe with two cheap system calls (no fork).
    pub fn probe() -> Self {
        let (landlock_abi, landlock_unavailable) = match sys::landlock_abi_version() {
            Ok(v) => (v, None),
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => (
                0,
                Some(
                    "Landlock is built into the kernel but not enabled at boot (add landlock to lsm=)"
                        .to_string(),
                ),
            ),
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => (
                0,
                Some("the kernel has no Landlock (landlock_create_ruleset: ENOSYS)".to_string()),
            ),
            Err(e) => (0, Some(format!("landlock_create_ruleset: {e}"))),
        };
        KernelSupport {
            landlock_abi,
            landlock_unavailable,
            seccomp: sys::seccomp_mode().is_ok(),
        }
    }

    /// Whether the kernel has `feature` (user namespaces are not probed here: `false`).
    pub fn has(&self, feature: Feature) -> bool {
        match feature {
            Feature::Seccomp => self.seccomp,
            Feature::UserNamespaces | Feature::PidNamespace | Feature::IpcNamespace => false,
            f => f
                .landlock_abi()
                .is_some_and(|need| self.landlock_abi >= need),
        }
    }

    /// `feature` as missing here, with the detail the probe found (`required` as given).
    pub fn missing(&self, feature: Feature, required: bool) -> Missing {
        let detail = if feature.landlock_abi().is_none() {
            None
        } else if self.landlock_abi == 0 {
            self.landlock_unavailable.clone()
        } else {
            Some(format!(
                "this kernel has Landlock ABI {}",
                self.landlock_abi
            ))
        };
        Missing {
            feature,
            required,
            detail,
        }
    }

    /// Those of `wanted` (feature, required) that the kernel lacks.
    pub fn missing_of(&self, wanted: &[(Feature, bool)]) -> Vec<Missing> {
        wanted
            .iter()
            .filter(|(f, _)| !self.has(*f))
            .map(|&(f, required)| self.missing(f, required))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_3_lacks_tcp_and_scopes_and_says_which_abi_it_has() {
        let k = KernelSupport {
            landlock_abi: 3,
            landlock_unavailable: None,
            seccomp: true,
        };
        let wanted: Vec<(Feature, bool)> = Feature::LANDLOCK.iter().map(|&f| (f, true)).collect();
        let m = k.missing_of(&wanted);
        let lacking: Vec<Feature> = m.iter().map(|m| m.feature).collect();
        assert_eq!(
            lacking,
            vec![
                Feature::LandlockTcp,
                Feature::LandlockIoctlDev,
                Feature::LandlockSignalScope,
                Feature::LandlockAbstractUnixScope
            ]
        );
        let text = m[2].to_string();
        assert!(
            text.contains("Landlock ABI 6, Linux 6.12")
                && text.contains("this kernel has Landlock ABI 3"),
            "{text}"
        );
    }

    #[test]
    fn no_landlock_names_the_probe_result() {
        let k = KernelSupport {
            landlock_abi: 0,
            landlock_unavailable: Some("the kernel has no Landlock".into()),
            seccomp: false,
        };
        let m = k.missing_of(&[(Feature::LandlockFs, true), (Feature::Seccomp, true)]);
        assert_eq!(m.len(), 2);
        assert!(
            m[0].to_string().ends_with(": the kernel has no Landlock"),
            "{}",
            m[0]
        );
        assert_eq!(m[1].detail, None);
    }
}
