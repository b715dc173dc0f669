//! The seccomp filter: a reviewed table, one reason per rule.
//!
//! Default action: allow (Landlock confines the filesystem; this filter removes kernel interfaces
//! that Landlock does not cover). Denied calls fail with `EPERM`, except those in
//! [`ENOSYS_RULES`], which fail with `ENOSYS` so that libc falls back to an inspectable call.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, sock_filter,
};

/// When a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Every call.
    Always,
    /// The 32-bit argument `arg` has all bits of `mask` set.
    ArgHasBits { arg: u8, mask: u64 },
    /// The 32-bit argument `arg` equals `value`.
    ArgEq { arg: u8, value: u64 },
    /// `socket(domain, ...)` with a domain outside the allowed set (AF_UNIX, plus AF_INET and
    /// AF_INET6 when the policy allows network).
    SocketDomainNotAllowed,
}

/// One entry of the table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub name: &'static str,
    pub nr: libc::c_long,
    pub when: When,
    pub reason: &'static str,
}

const fn rule(name: &'static str, nr: libc::c_long, when: When, reason: &'static str) -> Rule {
    Rule {
        name,
        nr,
        when,
        reason,
    }
}

const NS_FLAGS: [(&str, libc::c_int); 7] = [
    ("CLONE_NEWUSER", libc::CLONE_NEWUSER),
    ("CLONE_NEWNS", libc::CLONE_NEWNS),
    ("CLONE_NEWPID", libc::CLONE_NEWPID),
    ("CLONE_NEWNET", libc::CLONE_NEWNET),
    ("CLONE_NEWUTS", libc::CLONE_NEWUTS),
    ("CLONE_NEWIPC", libc::CLONE_NEWIPC),
    ("CLONE_NEWCGROUP", libc::CLONE_NEWCGROUP),
];

// `Ioctl` is c_ulong on glibc and c_int on musl; the request numbers are small and positive.
#[allow(clippy::unnecessary_cast)]
const TIOCSTI: u64 = libc::TIOCSTI as u64;
#[allow(clippy::unnecessary_cast)]
const TIOCLINUX: u64 = libc::TIOCLINUX as u64;

/// The `EPERM` table.
pub const EPERM_RULES: &[Rule] = &[
    rule(
        "socket",
        libc::SYS_socket,
        When::SocketDomainNotAllowed,
        "only AF_UNIX (and AF_INET/AF_INET6 with network access): no netlink, packet, vsock, bluetooth, etc.",
    ),
    rule(
        "io_uring_setup",
        libc::SYS_io_uring_setup,
        When::Always,
        "io_uring performs socket/file operations without passing through this filter",
    ),
    rule(
        "io_uring_enter",
        libc::SYS_io_uring_enter,
        When::Always,
        "see io_uring_setup",
    ),
    rule(
        "io_uring_register",
        libc::SYS_io_uring_register,
        When::Always,
        "see io_uring_setup",
    ),
    rule(
        "ptrace",
        libc::SYS_ptrace,
        When::Always,
        "no tracing of any process (Landlock already scopes it; this removes the interface)",
    ),
    rule(
        "process_vm_readv",
        libc::SYS_process_vm_readv,
        When::Always,
        "reads another process's memory",
    ),
    rule(
        "process_vm_writev",
        libc::SYS_process_vm_writev,
        When::Always,
        "writes another process's memory",
    ),
    rule(
        "unshare",
        libc::SYS_unshare,
        When::Always,
        "new namespaces: a user namespace hands out capabilities, a mount namespace could hide carve-outs",
    ),
    rule(
        "setns",
        libc::SYS_setns,
        When::Always,
        "joining other namespaces",
    ),
    rule(
        "keyctl",
        libc::SYS_keyctl,
        When::Always,
        "kernel keyrings are per user and outlive the sandbox",
    ),
    rule("add_key", libc::SYS_add_key, When::Always, "see keyctl"),
    rule(
        "request_key",
        libc::SYS_request_key,
        When::Always,
        "see keyctl",
    ),
    rule(
        "bpf",
        libc::SYS_bpf,
        When::Always,
        "large kernel attack surface; not needed by commands",
    ),
    rule(
        "perf_event_open",
        libc::SYS_perf_event_open,
        When::Always,
        "observes other processes and the kernel; large attack surface",
    ),
    rule(
        "userfaultfd",
        libc::SYS_userfaultfd,
        When::Always,
        "widens kernel race windows for exploits",
    ),
    rule(
        "ioctl(TIOCSTI)",
        libc::SYS_ioctl,
        When::ArgEq {
            arg: 1,
            value: TIOCSTI,
        },
        "pushing input into a terminal (bubblewrap CVE-2017-5226)",
    ),
    rule(
        "ioctl(TIOCLINUX)",
        libc::SYS_ioctl,
        When::ArgEq {
            arg: 1,
            value: TIOCLINUX,
        },
        "TIOCLINUX subcodes paste into a virtual console like TIOCSTI",
    ),
    rule(
        "mount",
        libc::SYS_mount,
        When::Always,
        "the mount namespace's read-only carve-outs stay in place",
    ),
    rule("umount2", libc::SYS_umount2, When::Always, "see mount"),
    rule(
        "pivot_root",
        libc::SYS_pivot_root,
        When::Always,
        "see mount",
    ),
    rule(
        "move_mount",
        libc::SYS_move_mount,
        When::Always,
        "see mount",
    ),
    rule("open_tree", libc::SYS_open_tree, When::Always, "see mount"),
    rule("fsopen", libc::SYS_fsopen, When::Always, "see mount"),
    rule("fsmount", libc::SYS_fsmount, When::Always, "see mount"),
    rule("fsconfig", libc::SYS_fsconfig, When::Always, "see mount"),
    rule("fspick", libc::SYS_fspick, When::Always, "see mount"),
    rule(
        "mount_setattr",
        libc::SYS_mount_setattr,
        When::Always,
        "see mount",
    ),
    rule(
        "open_by_handle_at",
        libc::SYS_open_by_handle_at,
        When::Always,
        "opens files by handle, bypassing path-based Landlock checks (needs CAP_DAC_READ_SEARCH)",
    ),
    rule(
        "init_module",
        libc::SYS_init_module,
        When::Always,
        "a sandbox run as root keeps capabilities",
    ),
    rule(
        "finit_module",
        libc::SYS_finit_module,
        When::Always,
        "see init_module",
    ),
    rule(
        "delete_module",
        libc::SYS_delete_module,
        When::Always,
        "see init_module",
    ),
    rule(
        "kexec_load",
        libc::SYS_kexec_load,
        When::Always,
        "see init_module",
    ),
    rule(
        "kexec_file_load",
        libc::SYS_kexec_file_load,
        When::Always,
        "see init_module",
    ),
];

/// `clone` with a namespace flag: one rule per flag (rules are ORed), same reason as `unshare`.
pub fn clone_rules() -> impl Iterator<Item = (&'static str, libc::c_int)> {
    NS_FLAGS.into_iter()
}

/// The `ENOSYS` rules (hand-assembled BPF, see [`enosys_program`]).
pub const ENOSYS_RULES: &[Rule] = &[rule(
    "clone3",
    libc::SYS_clone3,
    When::Always,
    "its flags are in memory where seccomp cannot see CLONE_NEWUSER; ENOSYS makes libc fall back to clone",
)];

/// Errors building the filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("failed to build the seccomp rule for {name}: {source}")]
    Rule {
        name: &'static str,
        #[source]
        source: seccompiler::BackendError,
    },
    #[error("failed to build the seccomp filter: {source}")]
    Filter {
        #[source]
        source: seccompiler::BackendError,
    },
    #[error("seccomp does not support this architecture ({arch})")]
    Arch { arch: &'static str },
    #[error("failed to install the seccomp filter: {source}")]
    Install {
        #[source]
        source: seccompiler::Error,
    },
}

fn cond(
    arg: u8,
    op: SeccompCmpOp,
    value: u64,
    name: &'static str,
) -> Result<SeccompCondition, SeccompError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
        .map_err(|source| SeccompError::Rule { name, source })
}

fn arch() -> Result<seccompiler::TargetArch, SeccompError> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|_| SeccompError::Arch {
            arch: std::env::consts::ARCH,
        })
}

/// Compile the `EPERM` table for a policy with or without network access.
pub fn eperm_program(network: bool) -> Result<BpfProgram, SeccompError> {
    let mut map: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for r in EPERM_RULES {
        let conditions = match r.when {
            When::Always => Vec::new(),
            When::ArgEq { arg, value } => vec![cond(arg, SeccompCmpOp::Eq, value, r.name)?],
            When::ArgHasBits { arg, mask } => {
                vec![cond(arg, SeccompCmpOp::MaskedEq(mask), mask, r.name)?]
            }
            When::SocketDomainNotAllowed => {
                let mut c = vec![cond(0, SeccompCmpOp::Ne, libc::AF_UNIX as u64, r.name)?];
                if network {
                    c.push(cond(0, SeccompCmpOp::Ne, libc::AF_INET as u64, r.name)?);
                    c.push(cond(0, SeccompCmpOp::Ne, libc::AF_INET6 as u64, r.name)?);
                }
                c
            }
        };
        // seccompiler: an empty rule list matches the syscall unconditionally.
        let entry = map.entry(r.nr).or_default();
        if !conditions.is_empty() {
            entry.push(
                SeccompRule::new(conditions).map_err(|source| SeccompError::Rule {
                    name: r.name,
                    source,
                })?,
            );
        }
    }
    let clone = map.entry(libc::SYS_clone).or_default();
    for (name, flag) in clone_rules() {
        let mask = flag as u64;
        clone.push(
            SeccompRule::new(vec![cond(0, SeccompCmpOp::MaskedEq(mask), mask, name)?])
                .map_err(|source| SeccompError::Rule { name, source })?,
        );
    }
    let filter = SeccompFilter::new(
        map,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch()?,
    )
    .map_err(|source| SeccompError::Filter { source })?;
    filter
        .try_into()
        .map_err(|source| SeccompError::Filter { source })
}

/// BPF_LD | BPF_W | BPF_ABS (all-zero class and size bits).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x05 | 0x10;
const BPF_JGE_K: u16 = 0x05 | 0x30;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "riscv64")]
const AUDIT_ARCH: u32 = 243 | 0x8000_0000 | 0x4000_0000;

/// x86_64's x32 ABI sets this bit in the syscall number: the same audit arch, different numbers
/// that a table keyed by x86_64 numbers would miss. Refused as a whole.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The `ENOSYS` filter: wrong architecture → kill; x32 syscall numbers → ENOSYS; [`ENOSYS_RULES`]
/// → ENOSYS; everything else → allow (the `EPERM` filter decides).
pub fn enosys_program() -> BpfProgram {
    let enosys = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    let mut p = vec![
        stmt(BPF_LD_W_ABS, OFFSET_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, OFFSET_NR),
    ];
    if cfg!(target_arch = "x86_64") {
        p.push(jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1));
        p.push(stmt(BPF_RET_K, enosys));
    }
    for r in ENOSYS_RULES {
        p.push(jump(BPF_JEQ_K, r.nr as u32, 0, 1));
        p.push(stmt(BPF_RET_K, enosys));
    }
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    p
}

/// Both programs, compiled before anything is restricted (so a compile error leaves the process
/// untouched).
pub struct Programs {
    eperm: BpfProgram,
    enosys: BpfProgram,
}

impl Programs {
    pub fn compile(network: bool) -> Result<Self, SeccompError> {
        Ok(Programs {
            eperm: eperm_program(network)?,
            enosys: enosys_program(),
        })
    }

    /// Install both filters on the calling thread (no_new_privs must already be set). After a
    /// failure of the second, the first stays installed.
    pub fn install(&self) -> Result<(), SeccompError> {
        seccompiler::apply_filter(&self.enosys)
            .map_err(|source| SeccompError::Install { source })?;
        seccompiler::apply_filter(&self.eperm).map_err(|source| SeccompError::Install { source })
    }

    /// The number of table entries (for the report).
    pub fn rule_count() -> usize {
        EPERM_RULES.len() + NS_FLAGS.len() + ENOSYS_RULES.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tables_compile_and_every_rule_has_a_reason() {
        for r in EPERM_RULES.iter().chain(ENOSYS_RULES) {
            assert!(!r.reason.is_empty(), "{}", r.name);
        }
        eperm_program(false).unwrap();
        eperm_program(true).unwrap();
        assert!(enosys_program().len() > 5);
    }
}
