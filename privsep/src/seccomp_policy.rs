//! The proxy's seccomp profile: one table of `codex_confine::seccomp::Rule`s (the same row type
//! as the sandbox's), each with its reason.
//!
//! Form: a deny-list answering `EPERM` (not a kill, so denials are testable and the proxy can
//! report them), with argument conditions. Decision: not an allow-list, because the proxy runs an
//! async runtime, a TLS stack and the system resolver (getaddrinfo, NSS modules), whose exact
//! syscall set depends on libc and kernel versions; an allow-list that misses a rare path fails
//! in production. What an attacker who took over the process would need to escalate or
//! exfiltrate beyond its sockets is denied here; files are Landlock's job, ids the drop's.
//!
//! `codex-confine` adds the ABI filter in front: any other architecture's syscall ABI (e.g.
//! `int 0x80`) kills, x32 syscall numbers get `EPERM`, `clone3` gets `ENOSYS` (its flags are in
//! memory where seccomp cannot read them; glibc then falls back to `clone`, whose flags are
//! checked here).

use codex_confine::seccomp::Condition::{Always, Bits64, Eq32, NotIn32};
use codex_confine::seccomp::Rule;

/// Syscalls denied whatever their arguments.
pub const DENIED: &[Rule] = &[
    Rule::new(
        "execve",
        libc::SYS_execve,
        Always,
        "no program may replace the key-holding process",
    ),
    Rule::new("execveat", libc::SYS_execveat, Always, "same as execve"),
    Rule::new(
        "ptrace",
        libc::SYS_ptrace,
        Always,
        "no tracing of other processes (or being used to read memory)",
    ),
    Rule::new(
        "process_vm_readv",
        libc::SYS_process_vm_readv,
        Always,
        "no reading other processes' memory",
    ),
    Rule::new(
        "process_vm_writev",
        libc::SYS_process_vm_writev,
        Always,
        "no writing other processes' memory",
    ),
    Rule::new(
        "unshare",
        libc::SYS_unshare,
        Always,
        "no new namespaces (user namespaces expose kernel attack surface)",
    ),
    Rule::new(
        "setns",
        libc::SYS_setns,
        Always,
        "no entering other namespaces",
    ),
    Rule::new("bpf", libc::SYS_bpf, Always, "no eBPF programs or maps"),
    Rule::new(
        "perf_event_open",
        libc::SYS_perf_event_open,
        Always,
        "no performance counters (side channels, kernel attack surface)",
    ),
    Rule::new(
        "userfaultfd",
        libc::SYS_userfaultfd,
        Always,
        "classic kernel-exploit primitive",
    ),
    Rule::new(
        "keyctl",
        libc::SYS_keyctl,
        Always,
        "no kernel keyring access",
    ),
    Rule::new(
        "add_key",
        libc::SYS_add_key,
        Always,
        "no kernel keyring access",
    ),
    Rule::new(
        "request_key",
        libc::SYS_request_key,
        Always,
        "no kernel keyring access",
    ),
    Rule::new("mount", libc::SYS_mount, Always, "no mounting"),
    Rule::new("umount2", libc::SYS_umount2, Always, "no unmounting"),
    Rule::new(
        "pivot_root",
        libc::SYS_pivot_root,
        Always,
        "no root changes",
    ),
    Rule::new("chroot", libc::SYS_chroot, Always, "no root changes"),
    Rule::new("fsopen", libc::SYS_fsopen, Always, "new mount API"),
    Rule::new("fsconfig", libc::SYS_fsconfig, Always, "new mount API"),
    Rule::new("fsmount", libc::SYS_fsmount, Always, "new mount API"),
    Rule::new("fspick", libc::SYS_fspick, Always, "new mount API"),
    Rule::new("move_mount", libc::SYS_move_mount, Always, "new mount API"),
    Rule::new("open_tree", libc::SYS_open_tree, Always, "new mount API"),
    Rule::new(
        "mount_setattr",
        libc::SYS_mount_setattr,
        Always,
        "new mount API",
    ),
    Rule::new(
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        Always,
        "opens files by handle, bypassing path checks",
    ),
    Rule::new(
        "name_to_handle_at",
        libc::SYS_name_to_handle_at,
        Always,
        "pairs with open_by_handle_at",
    ),
    Rule::new(
        "io_uring_setup",
        libc::SYS_io_uring_setup,
        Always,
        "io_uring bypasses seccomp for the operations it performs",
    ),
    Rule::new(
        "io_uring_enter",
        libc::SYS_io_uring_enter,
        Always,
        "io_uring",
    ),
    Rule::new(
        "io_uring_register",
        libc::SYS_io_uring_register,
        Always,
        "io_uring",
    ),
    Rule::new(
        "pidfd_getfd",
        libc::SYS_pidfd_getfd,
        Always,
        "no stealing other processes' descriptors",
    ),
    Rule::new(
        "process_madvise",
        libc::SYS_process_madvise,
        Always,
        "no influencing other processes' memory",
    ),
    Rule::new(
        "kcmp",
        libc::SYS_kcmp,
        Always,
        "no probing other processes' kernel objects",
    ),
    Rule::new(
        "setuid",
        libc::SYS_setuid,
        Always,
        "the drop is final: no credential changes",
    ),
    Rule::new("setgid", libc::SYS_setgid, Always, "no credential changes"),
    Rule::new(
        "setreuid",
        libc::SYS_setreuid,
        Always,
        "no credential changes",
    ),
    Rule::new(
        "setregid",
        libc::SYS_setregid,
        Always,
        "no credential changes",
    ),
    Rule::new(
        "setresuid",
        libc::SYS_setresuid,
        Always,
        "no credential changes",
    ),
    Rule::new(
        "setresgid",
        libc::SYS_setresgid,
        Always,
        "no credential changes",
    ),
    Rule::new(
        "setgroups",
        libc::SYS_setgroups,
        Always,
        "no credential changes",
    ),
    Rule::new(
        "setfsuid",
        libc::SYS_setfsuid,
        Always,
        "no credential changes",
    ),
    Rule::new(
        "setfsgid",
        libc::SYS_setfsgid,
        Always,
        "no credential changes",
    ),
    Rule::new(
        "memfd_create",
        libc::SYS_memfd_create,
        Always,
        "no anonymous executable files",
    ),
    Rule::new(
        "kexec_load",
        libc::SYS_kexec_load,
        Always,
        "machine administration",
    ),
    Rule::new(
        "kexec_file_load",
        libc::SYS_kexec_file_load,
        Always,
        "machine administration",
    ),
    Rule::new(
        "init_module",
        libc::SYS_init_module,
        Always,
        "machine administration",
    ),
    Rule::new(
        "finit_module",
        libc::SYS_finit_module,
        Always,
        "machine administration",
    ),
    Rule::new(
        "delete_module",
        libc::SYS_delete_module,
        Always,
        "machine administration",
    ),
    Rule::new("reboot", libc::SYS_reboot, Always, "machine administration"),
    Rule::new("swapon", libc::SYS_swapon, Always, "machine administration"),
    Rule::new(
        "swapoff",
        libc::SYS_swapoff,
        Always,
        "machine administration",
    ),
    Rule::new("acct", libc::SYS_acct, Always, "machine administration"),
    Rule::new(
        "quotactl",
        libc::SYS_quotactl,
        Always,
        "machine administration",
    ),
    Rule::new(
        "syslog",
        libc::SYS_syslog,
        Always,
        "no kernel log (address leaks)",
    ),
    Rule::new(
        "settimeofday",
        libc::SYS_settimeofday,
        Always,
        "machine administration",
    ),
    Rule::new(
        "clock_settime",
        libc::SYS_clock_settime,
        Always,
        "machine administration",
    ),
    Rule::new(
        "clock_adjtime",
        libc::SYS_clock_adjtime,
        Always,
        "machine administration",
    ),
    Rule::new(
        "adjtimex",
        libc::SYS_adjtimex,
        Always,
        "machine administration",
    ),
    Rule::new(
        "sethostname",
        libc::SYS_sethostname,
        Always,
        "machine administration",
    ),
    Rule::new(
        "setdomainname",
        libc::SYS_setdomainname,
        Always,
        "machine administration",
    ),
    Rule::new(
        "vhangup",
        libc::SYS_vhangup,
        Always,
        "terminal administration",
    ),
    Rule::new(
        "personality",
        libc::SYS_personality,
        Always,
        "no execution-domain changes (e.g. READ_IMPLIES_EXEC)",
    ),
];

/// x86_64-only legacy syscalls, also denied.
#[cfg(target_arch = "x86_64")]
pub const DENIED_ARCH: &[Rule] = &[
    Rule::new("iopl", libc::SYS_iopl, Always, "no raw I/O port access"),
    Rule::new("ioperm", libc::SYS_ioperm, Always, "no raw I/O port access"),
    Rule::new(
        "modify_ldt",
        libc::SYS_modify_ldt,
        Always,
        "legacy segment tables (kernel attack surface)",
    ),
    Rule::new("uselib", libc::SYS_uselib, Always, "legacy library loading"),
    Rule::new("_sysctl", libc::SYS__sysctl, Always, "legacy sysctl"),
    Rule::new("ustat", libc::SYS_ustat, Always, "legacy"),
    Rule::new("sysfs", libc::SYS_sysfs, Always, "legacy"),
];
/// No extra architecture-specific entries here.
#[cfg(not(target_arch = "x86_64"))]
pub const DENIED_ARCH: &[Rule] = &[];

/// `clone(2)` with a namespace flag (`CLONE_NEWTIME` shares its bit with the exit signal in
/// `clone`, and is only valid in `clone3`/`unshare`, both refused).
const fn clone_ns(name: &'static str, flag: libc::c_int) -> Rule {
    Rule::new(
        name,
        libc::SYS_clone,
        Bits64 {
            arg: 0,
            mask: flag as u64,
        },
        "no new namespaces",
    )
}

// The ioctl request constants are `c_ulong` on glibc and `c_int` on musl: the cast is needed there.
#[allow(clippy::unnecessary_cast)]
const TIOCSTI: u32 = libc::TIOCSTI as u32;
#[allow(clippy::unnecessary_cast)]
const TIOCLINUX: u32 = libc::TIOCLINUX as u32;

/// Syscalls denied only for some arguments.
pub const CONDITIONAL: &[Rule] = &[
    clone_ns("clone(CLONE_NEWNS)", libc::CLONE_NEWNS),
    clone_ns("clone(CLONE_NEWCGROUP)", libc::CLONE_NEWCGROUP),
    clone_ns("clone(CLONE_NEWUTS)", libc::CLONE_NEWUTS),
    clone_ns("clone(CLONE_NEWIPC)", libc::CLONE_NEWIPC),
    clone_ns("clone(CLONE_NEWUSER)", libc::CLONE_NEWUSER),
    clone_ns("clone(CLONE_NEWPID)", libc::CLONE_NEWPID),
    clone_ns("clone(CLONE_NEWNET)", libc::CLONE_NEWNET),
    Rule::new(
        "socket",
        libc::SYS_socket,
        NotIn32 {
            arg: 0,
            allowed: &[
                libc::AF_UNIX as u32,
                libc::AF_INET as u32,
                libc::AF_INET6 as u32,
            ],
        },
        "a family other than AF_UNIX/AF_INET/AF_INET6 (netlink, packet, vsock...); the sock_diag socket is opened before confinement",
    ),
    Rule::new(
        "prctl(PR_SET_DUMPABLE)",
        libc::SYS_prctl,
        Eq32 {
            arg: 0,
            value: libc::PR_SET_DUMPABLE as u32,
        },
        "stay non-dumpable (no core, no /proc/pid/mem for the uid)",
    ),
    Rule::new(
        "prctl(PR_SET_PTRACER)",
        libc::SYS_prctl,
        Eq32 {
            arg: 0,
            value: libc::PR_SET_PTRACER as u32,
        },
        "no inviting a tracer",
    ),
    Rule::new(
        "prctl(PR_SET_MM)",
        libc::SYS_prctl,
        Eq32 {
            arg: 0,
            value: libc::PR_SET_MM as u32,
        },
        "no rewriting the memory map",
    ),
    Rule::new(
        "ioctl(TIOCSTI)",
        libc::SYS_ioctl,
        Eq32 {
            arg: 1,
            value: TIOCSTI,
        },
        "no typing into a terminal",
    ),
    Rule::new(
        "ioctl(TIOCLINUX)",
        libc::SYS_ioctl,
        Eq32 {
            arg: 1,
            value: TIOCLINUX,
        },
        "no console selection injection",
    ),
];

/// The whole table.
pub fn table() -> Vec<Rule> {
    DENIED
        .iter()
        .chain(DENIED_ARCH)
        .chain(CONDITIONAL)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_compiles_and_every_row_has_a_reason() {
        let t = table();
        for r in &t {
            assert!(!r.reason.is_empty(), "{}", r.name);
        }
        codex_confine::seccomp::Filter::compile(&t).unwrap();
    }
}
