//! The proxy's seccomp profile: one table of `codex_confine::seccomp::Rule`s (the same row type
//! as the sandbox's), each with its reason: `codex-confine`'s baseline rows (io_uring, ptrace,
//! process_vm_*, namespaces, keyrings, bpf, perf, userfaultfd, TIOCSTI/TIOCLINUX, the mount API,
//! open_by_handle_at, modules, kexec) and the proxy's own below.
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

use codex_confine::seccomp::Condition::{Always, Eq32, NotIn32};
use codex_confine::seccomp::{BASELINE, Rule};

/// Syscalls denied whatever their arguments, beyond the baseline.
pub const DENIED: &[Rule] = &[
    Rule::new(
        "execve",
        libc::SYS_execve,
        Always,
        "no program may replace the key-holding process",
    ),
    Rule::new("execveat", libc::SYS_execveat, Always, "same as execve"),
    Rule::new("chroot", libc::SYS_chroot, Always, "no root changes"),
    Rule::new(
        "name_to_handle_at",
        libc::SYS_name_to_handle_at,
        Always,
        "pairs with open_by_handle_at",
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

/// Syscalls denied only for some arguments, beyond the baseline.
pub const CONDITIONAL: &[Rule] = &[
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
];

/// The whole table: `codex-confine`'s baseline rows and the proxy's own.
pub fn table() -> Vec<Rule> {
    BASELINE
        .iter()
        .chain(DENIED)
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
