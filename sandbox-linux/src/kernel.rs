//! What the running kernel offers, and which of the policy's guarantees need what.

use std::fmt;
use std::io;

use sandbox_policy::{EffectivePolicy, PolicyKind};

use crate::sys;

/// The Landlock ABI this crate is written and tested against. Features of later ABIs are not
/// requested (rust-landlock's advice: pin the ABI you have tested).
pub const TARGET_LANDLOCK_ABI: i32 = 6;

/// Landlock, seccomp and user-namespace support of the running kernel.
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
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                (0, Some("Landlock is built into the kernel but not enabled at boot (add landlock to lsm=)".to_string()))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                (0, Some("the kernel has no Landlock (landlock_create_ruleset: ENOSYS)".to_string()))
            }
            Err(e) => (0, Some(format!("landlock_create_ruleset: {e}"))),
        };
        let seccomp = sys::seccomp_mode().is_ok();
        KernelSupport {
            landlock_abi,
            landlock_unavailable,
            seccomp,
        }
    }
}

/// Whether unprivileged user namespaces can be created here (forks a probe child).
pub fn probe_user_namespaces() -> Result<(), io::Error> {
    sys::probe_user_namespace().and_then(|r| r)
}

/// A kernel feature that a guarantee needs.
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
    /// Unprivileged user + mount namespaces (read-only `.git`/`.codex` carve-outs).
    UserNamespaces,
}

impl Feature {
    /// What the feature protects, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Feature::LandlockFs => {
                "Landlock filesystem restrictions (writes outside the roots, deny-read list)"
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
                "unprivileged user namespaces (read-only .git and .codex inside writable roots)"
            }
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
            Feature::Seccomp | Feature::UserNamespaces => None,
        }
    }
}

/// A feature the policy wants and the kernel lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub feature: Feature,
    /// A guarantee of the policy is lost without it (false: another layer covers it, e.g. seccomp
    /// already refuses inet sockets when Landlock's TCP rules are missing).
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

/// The Landlock and seccomp features `policy` needs that `kernel` lacks. User namespaces are
/// checked when the mount namespace is set up (see `mountns`), because probing costs a fork.
pub fn missing_features(kernel: &KernelSupport, policy: &EffectivePolicy) -> Vec<Missing> {
    let mut out = Vec::new();
    if policy.kind == PolicyKind::DangerFullAccess {
        return out;
    }
    let abi = kernel.landlock_abi;
    let landlock = [
        (Feature::LandlockFs, true),
        (Feature::LandlockTruncate, true),
        // seccomp refuses inet sockets when the network is off; Landlock's TCP rules are a second layer.
        (Feature::LandlockTcp, false),
        // seccomp refuses TIOCSTI/TIOCLINUX; other device ioctls need write access to a device,
        // which only /dev/null has.
        (Feature::LandlockIoctlDev, false),
        (Feature::LandlockSignalScope, true),
        (Feature::LandlockAbstractUnixScope, true),
    ];
    for (feature, required) in landlock {
        if feature == Feature::LandlockTcp && policy.network {
            continue;
        }
        if feature.landlock_abi().is_some_and(|need| abi < need) {
            let detail = if abi == 0 {
                kernel.landlock_unavailable.clone()
            } else {
                Some(format!("this kernel has Landlock ABI {abi}"))
            };
            out.push(Missing {
                feature,
                required,
                detail,
            });
        }
    }
    if !kernel.seccomp {
        out.push(Missing {
            feature: Feature::Seccomp,
            required: true,
            detail: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_policy::{SandboxEnv, SandboxPolicy};

    fn policy(p: SandboxPolicy) -> EffectivePolicy {
        p.resolve(std::path::Path::new("/"), &SandboxEnv::default(), &[])
            .unwrap()
    }

    #[test]
    fn abi_3_misses_scopes_as_required_and_tcp_as_covered() {
        let k = KernelSupport {
            landlock_abi: 3,
            landlock_unavailable: None,
            seccomp: true,
        };
        let m = missing_features(&k, &policy(SandboxPolicy::ReadOnly));
        let req: Vec<Feature> = m.iter().filter(|m| m.required).map(|m| m.feature).collect();
        assert_eq!(
            req,
            vec![
                Feature::LandlockSignalScope,
                Feature::LandlockAbstractUnixScope
            ]
        );
        assert!(
            m.iter()
                .any(|m| m.feature == Feature::LandlockTcp && !m.required)
        );
        assert!(
            m[0].to_string().contains("this kernel has Landlock ABI 3"),
            "{}",
            m[0]
        );
    }

    #[test]
    fn full_access_needs_nothing_and_network_skips_tcp() {
        let k = KernelSupport {
            landlock_abi: 0,
            landlock_unavailable: None,
            seccomp: false,
        };
        assert!(missing_features(&k, &policy(SandboxPolicy::DangerFullAccess)).is_empty());
        let k = KernelSupport {
            landlock_abi: 3,
            landlock_unavailable: None,
            seccomp: true,
        };
        let net = SandboxPolicy::WorkspaceWrite {
            writable_roots: vec![],
            network_access: true,
            exclude_tmpdir_env_var: true,
            exclude_slash_tmp: true,
        };
        assert!(
            !missing_features(&k, &policy(net))
                .iter()
                .any(|m| m.feature == Feature::LandlockTcp)
        );
    }
}
