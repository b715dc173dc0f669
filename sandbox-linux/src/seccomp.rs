//! The sandbox's seccomp profile: a table of `codex_confine::seccomp::Rule`s, one reason each.
//!
//! Default action: allow (Landlock confines the filesystem; this table removes kernel interfaces
//! that Landlock does not cover). A matching row fails with `EPERM`. The mechanism (the ABI filter
//! that kills foreign architectures, refuses x32 numbers and answers `clone3` with `ENOSYS`, the
//! compiler and the installer) is `codex-confine`'s.

use codex_confine::seccomp::Condition::{Always, Bits64, Eq32, NotIn32};
use codex_confine::seccomp::{Filter, Rule};

pub use codex_confine::seccomp::SeccompError;

// `Ioctl` is c_ulong on glibc and c_int on musl; the request numbers are small and positive.
#[allow(clippy::unnecessary_cast)]
const TIOCSTI: u32 = libc::TIOCSTI as u32;
#[allow(clippy::unnecessary_cast)]
const TIOCLINUX: u32 = libc::TIOCLINUX as u32;

/// Socket families without network access.
const FAMILIES_LOCAL: &[u32] = &[libc::AF_UNIX as u32];
/// Socket families with network access.
const FAMILIES_NETWORK: &[u32] = &[
    libc::AF_UNIX as u32,
    libc::AF_INET as u32,
    libc::AF_INET6 as u32,
];

/// `socket(domain, ...)` outside the allowed families.
const fn socket_rule(allowed: &'static [u32]) -> Rule {
    Rule::new(
        "socket",
        libc::SYS_socket,
        NotIn32 { arg: 0, allowed },
        "only AF_UNIX (and AF_INET/AF_INET6 with network access): no netlink, packet, vsock, bluetooth, etc.",
    )
}

/// `clone` with a namespace flag: one row per flag (rows are ORed), same reason as `unshare`.
const fn clone_rule(name: &'static str, flag: libc::c_int) -> Rule {
    Rule::new(
        name,
        libc::SYS_clone,
        Bits64 {
            arg: 0,
            mask: flag as u64,
        },
        "see unshare",
    )
}

/// The rows that do not depend on the policy.
pub const RULES: &[Rule] = &[
    Rule::new(
        "io_uring_setup",
        libc::SYS_io_uring_setup,
        Always,
        "io_uring performs socket/file operations without passing through this filter",
    ),
    Rule::new(
        "io_uring_enter",
        libc::SYS_io_uring_enter,
        Always,
        "see io_uring_setup",
    ),
    Rule::new(
        "io_uring_register",
        libc::SYS_io_uring_register,
        Always,
        "see io_uring_setup",
    ),
    Rule::new(
        "ptrace",
        libc::SYS_ptrace,
        Always,
        "no tracing of any process (Landlock already scopes it; this removes the interface)",
    ),
    Rule::new(
        "process_vm_readv",
        libc::SYS_process_vm_readv,
        Always,
        "reads another process's memory",
    ),
    Rule::new(
        "process_vm_writev",
        libc::SYS_process_vm_writev,
        Always,
        "writes another process's memory",
    ),
    Rule::new(
        "unshare",
        libc::SYS_unshare,
        Always,
        "new namespaces: a user namespace hands out capabilities, a mount namespace could hide carve-outs",
    ),
    Rule::new("setns", libc::SYS_setns, Always, "joining other namespaces"),
    Rule::new(
        "keyctl",
        libc::SYS_keyctl,
        Always,
        "kernel keyrings are per user and outlive the sandbox",
    ),
    Rule::new("add_key", libc::SYS_add_key, Always, "see keyctl"),
    Rule::new("request_key", libc::SYS_request_key, Always, "see keyctl"),
    Rule::new(
        "bpf",
        libc::SYS_bpf,
        Always,
        "large kernel attack surface; not needed by commands",
    ),
    Rule::new(
        "perf_event_open",
        libc::SYS_perf_event_open,
        Always,
        "observes other processes and the kernel; large attack surface",
    ),
    Rule::new(
        "userfaultfd",
        libc::SYS_userfaultfd,
        Always,
        "widens kernel race windows for exploits",
    ),
    Rule::new(
        "ioctl(TIOCSTI)",
        libc::SYS_ioctl,
        Eq32 {
            arg: 1,
            value: TIOCSTI,
        },
        "pushing input into a terminal (bubblewrap CVE-2017-5226)",
    ),
    Rule::new(
        "ioctl(TIOCLINUX)",
        libc::SYS_ioctl,
        Eq32 {
            arg: 1,
            value: TIOCLINUX,
        },
        "TIOCLINUX subcodes paste into a virtual console like TIOCSTI",
    ),
    Rule::new(
        "mount",
        libc::SYS_mount,
        Always,
        "the mount namespace's read-only carve-outs stay in place",
    ),
    Rule::new("umount2", libc::SYS_umount2, Always, "see mount"),
    Rule::new("pivot_root", libc::SYS_pivot_root, Always, "see mount"),
    Rule::new("move_mount", libc::SYS_move_mount, Always, "see mount"),
    Rule::new("open_tree", libc::SYS_open_tree, Always, "see mount"),
    Rule::new("fsopen", libc::SYS_fsopen, Always, "see mount"),
    Rule::new("fsmount", libc::SYS_fsmount, Always, "see mount"),
    Rule::new("fsconfig", libc::SYS_fsconfig, Always, "see mount"),
    Rule::new("fspick", libc::SYS_fspick, Always, "see mount"),
    Rule::new(
        "mount_setattr",
        libc::SYS_mount_setattr,
        Always,
        "see mount",
    ),
    Rule::new(
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        Always,
        "opens files by handle, bypassing path-based Landlock checks (needs CAP_DAC_READ_SEARCH)",
    ),
    Rule::new(
        "init_module",
        libc::SYS_init_module,
        Always,
        "a sandbox run as root keeps capabilities",
    ),
    Rule::new(
        "finit_module",
        libc::SYS_finit_module,
        Always,
        "see init_module",
    ),
    Rule::new(
        "delete_module",
        libc::SYS_delete_module,
        Always,
        "see init_module",
    ),
    Rule::new(
        "kexec_load",
        libc::SYS_kexec_load,
        Always,
        "see init_module",
    ),
    Rule::new(
        "kexec_file_load",
        libc::SYS_kexec_file_load,
        Always,
        "see init_module",
    ),
    clone_rule("clone(CLONE_NEWUSER)", libc::CLONE_NEWUSER),
    clone_rule("clone(CLONE_NEWNS)", libc::CLONE_NEWNS),
    clone_rule("clone(CLONE_NEWPID)", libc::CLONE_NEWPID),
    clone_rule("clone(CLONE_NEWNET)", libc::CLONE_NEWNET),
    clone_rule("clone(CLONE_NEWUTS)", libc::CLONE_NEWUTS),
    clone_rule("clone(CLONE_NEWIPC)", libc::CLONE_NEWIPC),
    clone_rule("clone(CLONE_NEWCGROUP)", libc::CLONE_NEWCGROUP),
];

/// The whole table for a policy with or without network access.
pub fn table(network: bool) -> Vec<Rule> {
    let socket = socket_rule(if network {
        FAMILIES_NETWORK
    } else {
        FAMILIES_LOCAL
    });
    std::iter::once(socket)
        .chain(RULES.iter().copied())
        .collect()
}

/// Compile the table (and the shared ABI filter) before anything is restricted.
pub fn compile(network: bool) -> Result<Filter, SeccompError> {
    Filter::compile(&table(network))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tables_compile_and_every_rule_has_a_reason() {
        for network in [false, true] {
            for r in table(network) {
                assert!(!r.reason.is_empty(), "{}", r.name);
            }
            assert_eq!(compile(network).unwrap().rule_count(), RULES.len() + 2);
        }
    }
}
