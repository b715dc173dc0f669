//! The proxy's seccomp policy: one table, each entry with its reason.
//!
//! Form: a deny-list answering `EPERM` (not a kill, so denials are testable and the proxy can
//! report them), plus argument filters. Decision: not an allow-list, because the proxy runs an
//! async runtime, a TLS stack and the system resolver (getaddrinfo, NSS modules), whose exact
//! syscall set depends on libc and kernel versions; an allow-list that misses a rare path fails
//! in production. What an attacker who took over the process would need to escalate or
//! exfiltrate beyond its sockets is denied here; files are Landlock's job, ids the drop's.
//!
//! A second, hand-written filter kills any other architecture's syscall ABI (e.g. `int 0x80`),
//! denies x32 syscall numbers on x86_64 (they would bypass a deny-list keyed on x86_64 numbers),
//! and answers `clone3` with `ENOSYS`: its flags are in memory where seccomp cannot read them,
//! and glibc then falls back to `clone`, whose flags are checked.

use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

/// A syscall denied unconditionally, with the reason.
pub struct Denied {
    /// Syscall number.
    pub nr: libc::c_long,
    /// Name, for reports.
    pub name: &'static str,
    /// Why it is denied.
    pub reason: &'static str,
}

macro_rules! deny {
    ($($name:ident: $reason:literal,)*) => {
        &[$(Denied { nr: libc::$name, name: stringify!($name), reason: $reason },)*]
    };
}

/// Syscalls denied with `EPERM` whatever their arguments.
pub const DENIED: &[Denied] = deny![
    SYS_execve: "no program may replace the key-holding process",
    SYS_execveat: "same as execve",
    SYS_ptrace: "no tracing of other processes (or being used to read memory)",
    SYS_process_vm_readv: "no reading other processes' memory",
    SYS_process_vm_writev: "no writing other processes' memory",
    SYS_unshare: "no new namespaces (user namespaces expose kernel attack surface)",
    SYS_setns: "no entering other namespaces",
    SYS_bpf: "no eBPF programs or maps",
    SYS_perf_event_open: "no performance counters (side channels, kernel attack surface)",
    SYS_userfaultfd: "classic kernel-exploit primitive",
    SYS_keyctl: "no kernel keyring access",
    SYS_add_key: "no kernel keyring access",
    SYS_request_key: "no kernel keyring access",
    SYS_mount: "no mounting",
    SYS_umount2: "no unmounting",
    SYS_pivot_root: "no root changes",
    SYS_chroot: "no root changes",
    SYS_fsopen: "new mount API",
    SYS_fsconfig: "new mount API",
    SYS_fsmount: "new mount API",
    SYS_fspick: "new mount API",
    SYS_move_mount: "new mount API",
    SYS_open_tree: "new mount API",
    SYS_mount_setattr: "new mount API",
    SYS_open_by_handle_at: "opens files by handle, bypassing path checks",
    SYS_name_to_handle_at: "pairs with open_by_handle_at",
    SYS_io_uring_setup: "io_uring bypasses seccomp for the operations it performs",
    SYS_io_uring_enter: "io_uring",
    SYS_io_uring_register: "io_uring",
    SYS_pidfd_getfd: "no stealing other processes' descriptors",
    SYS_process_madvise: "no influencing other processes' memory",
    SYS_kcmp: "no probing other processes' kernel objects",
    SYS_setuid: "the drop is final: no credential changes",
    SYS_setgid: "no credential changes",
    SYS_setreuid: "no credential changes",
    SYS_setregid: "no credential changes",
    SYS_setresuid: "no credential changes",
    SYS_setresgid: "no credential changes",
    SYS_setgroups: "no credential changes",
    SYS_setfsuid: "no credential changes",
    SYS_setfsgid: "no credential changes",
    SYS_memfd_create: "no anonymous executable files",
    SYS_kexec_load: "machine administration",
    SYS_kexec_file_load: "machine administration",
    SYS_init_module: "machine administration",
    SYS_finit_module: "machine administration",
    SYS_delete_module: "machine administration",
    SYS_reboot: "machine administration",
    SYS_swapon: "machine administration",
    SYS_swapoff: "machine administration",
    SYS_acct: "machine administration",
    SYS_quotactl: "machine administration",
    SYS_syslog: "no kernel log (address leaks)",
    SYS_settimeofday: "machine administration",
    SYS_clock_settime: "machine administration",
    SYS_clock_adjtime: "machine administration",
    SYS_adjtimex: "machine administration",
    SYS_sethostname: "machine administration",
    SYS_setdomainname: "machine administration",
    SYS_vhangup: "terminal administration",
    SYS_personality: "no execution-domain changes (e.g. READ_IMPLIES_EXEC)",
];

/// x86_64-only legacy syscalls, also denied.
#[cfg(target_arch = "x86_64")]
pub const DENIED_ARCH: &[Denied] = deny![
    SYS_iopl: "no raw I/O port access",
    SYS_ioperm: "no raw I/O port access",
    SYS_modify_ldt: "legacy segment tables (kernel attack surface)",
    SYS_uselib: "legacy library loading",
    SYS__sysctl: "legacy sysctl",
    SYS_ustat: "legacy",
    SYS_sysfs: "legacy",
];
/// No extra architecture-specific entries here.
#[cfg(not(target_arch = "x86_64"))]
pub const DENIED_ARCH: &[Denied] = &[];

/// Namespace flags refused in `clone(2)` (`CLONE_NEWTIME` shares its bit with the exit signal in
/// `clone`, and is only valid in `clone3`/`unshare`, both refused).
const CLONE_NS_FLAGS: &[(u64, &str)] = &[
    (libc::CLONE_NEWNS as u64, "CLONE_NEWNS"),
    (libc::CLONE_NEWCGROUP as u64, "CLONE_NEWCGROUP"),
    (libc::CLONE_NEWUTS as u64, "CLONE_NEWUTS"),
    (libc::CLONE_NEWIPC as u64, "CLONE_NEWIPC"),
    (libc::CLONE_NEWUSER as u64, "CLONE_NEWUSER"),
    (libc::CLONE_NEWPID as u64, "CLONE_NEWPID"),
    (libc::CLONE_NEWNET as u64, "CLONE_NEWNET"),
];

/// `prctl` options refused.
const PRCTL_DENIED: &[(u64, &str)] = &[
    (
        libc::PR_SET_DUMPABLE as u64,
        "PR_SET_DUMPABLE: stay non-dumpable (no core, no /proc/pid/mem for the uid)",
    ),
    (
        libc::PR_SET_PTRACER as u64,
        "PR_SET_PTRACER: no inviting a tracer",
    ),
    (
        libc::PR_SET_MM as u64,
        "PR_SET_MM: no rewriting the memory map",
    ),
];

/// `ioctl` requests refused (compared on the low 32 bits, as the kernel reads them).
// The request constants are `c_ulong` on glibc and `c_int` on musl: the cast is needed there.
#[allow(clippy::unnecessary_cast)]
const IOCTL_DENIED: &[(u64, &str)] = &[
    (libc::TIOCSTI as u64, "TIOCSTI: no typing into a terminal"),
    (
        libc::TIOCLINUX as u64,
        "TIOCLINUX: no console selection injection",
    ),
];

fn cond(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, val: u64) -> SeccompCondition {
    #[allow(clippy::expect_used)]
    // Argument index < 6, a constant here: `new` only fails for an index >= 6.
    SeccompCondition::new(arg, len, op, val).expect("argument index below 6")
}

fn rule(conds: Vec<SeccompCondition>) -> SeccompRule {
    #[allow(clippy::expect_used)]
    // `new` only fails for an empty condition list; every caller passes at least one.
    SeccompRule::new(conds).expect("non-empty condition list")
}

/// Syscalls denied only for some arguments: (number, name, rules (any matching rule denies),
/// description).
pub fn conditional() -> Vec<(libc::c_long, &'static str, Vec<SeccompRule>, String)> {
    let clone_rules = CLONE_NS_FLAGS
        .iter()
        .map(|&(flag, _)| {
            rule(vec![cond(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )])
        })
        .collect();
    let clone_names: Vec<&str> = CLONE_NS_FLAGS.iter().map(|&(_, n)| n).collect();

    // socket(domain, ...): anything but unix, IPv4 and IPv6 (the sock_diag socket is opened
    // before confinement).
    let socket_rule = rule(vec![
        cond(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            libc::AF_UNIX as u64,
        ),
        cond(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            libc::AF_INET as u64,
        ),
        cond(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            libc::AF_INET6 as u64,
        ),
    ]);

    let prctl_rules = PRCTL_DENIED
        .iter()
        .map(|&(opt, _)| {
            rule(vec![cond(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                opt,
            )])
        })
        .collect();
    let ioctl_rules = IOCTL_DENIED
        .iter()
        .map(|&(req, _)| {
            rule(vec![cond(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                req,
            )])
        })
        .collect();

    vec![
        (
            libc::SYS_clone,
            "clone",
            clone_rules,
            format!("clone with {}: no new namespaces", clone_names.join("|")),
        ),
        (
            libc::SYS_socket,
            "socket",
            vec![socket_rule],
            "socket of a family other than AF_UNIX/AF_INET/AF_INET6 (netlink, packet, vsock...)"
                .into(),
        ),
        (
            libc::SYS_prctl,
            "prctl",
            prctl_rules,
            PRCTL_DENIED
                .iter()
                .map(|&(_, r)| r)
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (
            libc::SYS_ioctl,
            "ioctl",
            ioctl_rules,
            IOCTL_DENIED
                .iter()
                .map(|&(_, r)| r)
                .collect::<Vec<_>>()
                .join("; "),
        ),
    ]
}
