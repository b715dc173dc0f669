//! `codex sandbox check`: what this kernel can enforce and what each policy guarantees here.

use std::fmt::Write;

use sandbox_policy::{EffectivePolicy, PolicyKind, WritableRoot};

use codex_confine::Enforcement;

use crate::kernel::{self, Feature, KernelSupport, TARGET_LANDLOCK_ABI};

/// Probe (forks once for the user-namespace test) and render the report.
pub fn render() -> String {
    let kernel = KernelSupport::probe();
    let userns = kernel::probe_user_namespaces();
    render_for(&kernel, &userns)
}

/// Render for a given probe result.
pub fn render_for(kernel: &KernelSupport, userns: &Result<(), std::io::Error>) -> String {
    let mut s = String::new();
    let abi = kernel.landlock_abi;
    match &kernel.landlock_unavailable {
        None => {
            let _ = writeln!(
                s,
                "landlock: ABI {abi} (this build targets ABI {TARGET_LANDLOCK_ABI})"
            );
        }
        Some(why) => {
            let _ = writeln!(s, "landlock: unavailable: {why}");
        }
    }
    let _ = writeln!(
        s,
        "seccomp: {}",
        if kernel.seccomp {
            "available"
        } else {
            "unavailable"
        }
    );
    match userns {
        Ok(()) => {
            let _ = writeln!(s, "user namespaces: available");
        }
        Err(e) => {
            let _ = writeln!(s, "user namespaces: unavailable ({e})");
        }
    }
    for (kind, network) in [
        (PolicyKind::ReadOnly, false),
        (PolicyKind::WorkspaceWrite, false),
        (PolicyKind::WorkspaceWrite, true),
    ] {
        let policy = EffectivePolicy {
            kind,
            cwd: "/".into(),
            writable_roots: if kind == PolicyKind::WorkspaceWrite {
                vec![WritableRoot {
                    root: "/".into(),
                    read_only_subpaths: Vec::new(),
                }]
            } else {
                Vec::new()
            },
            deny_read: Vec::new(),
            network,
            deny_read_unsearched: Vec::new(),
            sockets_through_links: Vec::new(),
            temp_roots: Vec::new(),
            writable_home: None,
        };
        let mut missing = kernel::missing_features(kernel, &policy);
        if let Err(e) = userns {
            // workspace-write: file metadata outside the roots (and .git/.codex) need the
            // mount namespace; read-only: seccomp denies the metadata calls instead.
            missing.push(kernel::Missing {
                feature: Feature::UserNamespaces,
                required: kind == PolicyKind::WorkspaceWrite,
                detail: Some(e.to_string()),
            });
        }
        let name = if network {
            "workspace-write (network_access)".to_string()
        } else {
            kind.as_str().to_string()
        };
        let required: Vec<_> = missing.iter().filter(|m| m.required).collect();
        let verdict = if required.is_empty() {
            Enforcement::FullyEnforced.as_str()
        } else {
            "REFUSED unless --dangerously-allow-weaker-sandbox"
        };
        let _ = writeln!(s, "policy {name}: {verdict}");
        for line in guarantees(kind, network, kernel, userns.is_ok()) {
            let _ = writeln!(s, "  {line}");
        }
        for m in &missing {
            let _ = writeln!(
                s,
                "  missing{}: {m}",
                if m.required {
                    ""
                } else {
                    " (covered by another layer)"
                }
            );
        }
    }
    let _ = writeln!(s, "policy danger-full-access: no confinement");
    s
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "NO" }
}

/// What each policy guarantees on `kernel`, read from the kernel-feature table.
fn guarantees(
    kind: PolicyKind,
    network: bool,
    kernel: &KernelSupport,
    userns: bool,
) -> Vec<String> {
    let has = |f: Feature| yes(kernel.has(f));
    let seccomp = has(Feature::Seccomp);
    let mut v = vec![
        format!(
            "writes only to {}: {}",
            if kind == PolicyKind::ReadOnly {
                "/dev/null"
            } else {
                "the roots and /dev/null"
            },
            has(Feature::LandlockFs)
        ),
        format!("deny-read list unreadable: {}", has(Feature::LandlockFs)),
        format!(
            "read-only files cannot be truncated: {}",
            has(Feature::LandlockTruncate)
        ),
    ];
    if network {
        v.push("network: allowed (inet/inet6 sockets)".into());
    } else {
        v.push(format!("no inet/inet6 sockets: {}", seccomp));
        v.push(format!(
            "no TCP bind/connect (second layer): {}",
            has(Feature::LandlockTcp)
        ));
        v.push(format!(
            "with --allow-domain / sandbox.network.allowed_domains: only those hosts, through the \
             launcher's filtering proxy (connect supervisor: inet connects reach the proxy only; no \
             UDP or TCP Fast Open; no user namespaces needed): {seccomp}"
        ));
    }
    if kind != PolicyKind::ReadOnly {
        v.push(format!(
            "no .git/.codex/.agents created below the roots, nothing below one written (name guard, \
             no user namespaces needed): {seccomp}"
        ));
    }
    v.push(format!("no netlink/packet/vsock/raw sockets, io_uring, ptrace, process_vm_*, new namespaces, keyrings, bpf, perf, TIOCSTI: {}", seccomp));
    v.push(format!(
        "no signals to processes outside: {}",
        has(Feature::LandlockSignalScope)
    ));
    v.push(format!(
        "no abstract unix sockets outside: {}",
        has(Feature::LandlockAbstractUnixScope)
    ));
    v.push("setuid binaries gain nothing (no_new_privs): yes".into());
    v.push(format!(
        "no open of other terminals, input devices, /dev/shm (only null, zero, full, random, urandom): {}",
        has(Feature::LandlockFs)
    ));
    v.push(
        "no watch (inotify) of devices, other terminals, deny-read paths or the directories \
         holding them, or of procfs; no fanotify, no dnotify: yes (the supervisor adds each watch itself)"
            .into(),
    );
    v.push(format!(
        "no chmod/chown/utime/xattr/ACL/inode flags outside the roots and on deny-read paths, \
         also through inherited descriptors and /proc links: {}",
        if userns {
            "yes (read-only mounts; calls on descriptors mediated by the supervisor; xattrs never set)"
        } else if kind == PolicyKind::ReadOnly {
            "yes (seccomp denies the calls)"
        } else {
            "NO"
        }
    ));
    v.push(format!(
        "the process tree dies with the command and the launcher: {}",
        if userns {
            "yes (pid namespace)"
        } else if kernel.landlock_abi >= 6 {
            "yes (the init, inside the Landlock signal scope, ends the tree with kill(-1, SIGKILL))"
        } else {
            "NO (without the Landlock signal scope the init can only sweep /proc, which a \
             process forking in a loop outruns)"
        }
    ));
    v.push(format!(
        "no SysV IPC or POSIX message queues shared with processes outside: {}",
        if userns {
            "yes (IPC namespace)".to_string()
        } else {
            format!("{seccomp} (seccomp denies the calls)")
        }
    ));
    if kind == PolicyKind::WorkspaceWrite {
        v.push(format!(
            ".git and .codex read-only inside roots: {}",
            yes(userns)
        ));
        // a check of paths, mounts and links at start: no kernel feature needed
        v.push(
            "no writable root that is the home or reaches it (holds it, a mount of it below \
             the root, a link on its path): yes (refused with 201 unless --allow-writable-home)"
                .to_string(),
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(abi: i32, seccomp: bool) -> KernelSupport {
        KernelSupport {
            landlock_abi: abi,
            landlock_unavailable: (abi == 0).then(|| "the kernel has no Landlock".to_string()),
            seccomp,
        }
    }

    #[test]
    fn full_kernel_enforces_every_policy() {
        let out = render_for(&kernel(7, true), &Ok(()));
        assert!(
            out.contains("landlock: ABI 7 (this build targets ABI 6)"),
            "{out}"
        );
        assert!(out.contains("policy read-only: fully enforced"), "{out}");
        assert!(
            out.contains("policy workspace-write: fully enforced"),
            "{out}"
        );
        assert!(!out.contains("missing"), "{out}");
    }

    #[test]
    fn old_kernel_lists_what_is_missing_and_refuses() {
        let out = render_for(
            &kernel(3, true),
            &Err(std::io::Error::from_raw_os_error(libc::EPERM)),
        );
        assert!(out.contains("policy read-only: REFUSED"), "{out}");
        assert!(out.contains("Landlock signal scoping"), "{out}");
        assert!(out.contains("Landlock ABI 6, Linux 6.12"), "{out}");
        assert!(out.contains("user namespaces: unavailable"), "{out}");
        assert!(
            out.contains(".git and .codex read-only inside roots: NO"),
            "{out}"
        );
        assert!(
            out.contains("no writable root that is the home or reaches it"),
            "{out}"
        );
        assert!(
            out.contains(
                "no chmod/chown/utime/xattr/ACL/inode flags outside the roots and on deny-read \
                 paths, also through inherited descriptors and /proc links: NO"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "no SysV IPC or POSIX message queues shared with processes outside: yes (seccomp \
                 denies the calls)"
            ),
            "{out}"
        );
        assert!(out.contains("no signals to processes outside: NO"), "{out}");
        let none = render_for(&kernel(0, false), &Ok(()));
        assert!(
            none.contains("landlock: unavailable: the kernel has no Landlock"),
            "{none}"
        );
        assert!(none.contains("seccomp: unavailable"), "{none}");
    }
}
