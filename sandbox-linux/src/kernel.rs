//! Which kernel features each policy needs. The feature table itself (what each feature
//! protects, the first kernel that has it, the probe) is `codex-confine`'s [`codex_confine::kernel`].

use std::io;

use sandbox_policy::{EffectivePolicy, PolicyKind};

pub use codex_confine::kernel::{Feature, KernelSupport, Missing};

use crate::sys;

/// The Landlock ABI the sandbox targets (`codex-confine` pins it).
pub const TARGET_LANDLOCK_ABI: i32 = codex_confine::landlock::TARGET_ABI_VERSION;

/// Whether unprivileged user namespaces can be created here (forks a probe child).
pub fn probe_user_namespaces() -> Result<(), io::Error> {
    sys::probe_user_namespace().and_then(|r| r)
}

/// The Landlock and seccomp features `policy` needs that `kernel` lacks. User namespaces are
/// checked when the mount namespace is set up (see `mountns`), because probing costs a fork.
pub fn missing_features(kernel: &KernelSupport, policy: &EffectivePolicy) -> Vec<Missing> {
    if policy.kind == PolicyKind::DangerFullAccess {
        return Vec::new();
    }
    let mut wanted = vec![
        (Feature::LandlockFs, true),
        (Feature::LandlockTruncate, true),
    ];
    if !policy.network {
        // seccomp refuses inet sockets when the network is off; Landlock's TCP rules are a second layer.
        wanted.push((Feature::LandlockTcp, false));
    }
    wanted.extend([
        // seccomp refuses TIOCSTI/TIOCLINUX; other device ioctls need write access to a device,
        // which only /dev/null has.
        (Feature::LandlockIoctlDev, false),
        (Feature::LandlockSignalScope, true),
        (Feature::LandlockAbstractUnixScope, true),
        (Feature::Seccomp, true),
    ]);
    kernel.missing_of(&wanted)
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
