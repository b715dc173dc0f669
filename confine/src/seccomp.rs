//! One seccomp rule table type and its compiler.
//!
//! A profile is a table of [`Rule`]s (`name, nr, condition, reason`), each denied with `EPERM`;
//! everything else is allowed (a deny-list: Landlock confines files, the tables remove kernel
//! interfaces). Every filter this crate installs is two programs:
//!
//! 1. the **ABI filter** (hand-assembled, shared by every profile): a foreign architecture's
//!    syscall ABI (e.g. `int 0x80` on x86_64) kills the process; x32 numbers get
//!    [`crate::arch::X32_ERRNO`]; the rows of [`ENOSYS_RULES`] get `ENOSYS`; the rest goes on;
//! 2. the **table** of the profile, compiled by seccompiler, `EPERM` on a match.
//!
//! Argument widths follow the kernel's parameter type: an `int`/`unsigned int` parameter is
//! compared on its low 32 bits ([`Condition::Eq32`], [`Condition::NotIn32`]), because the kernel
//! ignores the upper half and a 64-bit equality could be bypassed by setting it (flatpak's
//! CVE-2019-10063, `ioctl(TIOCSTI | 1 << 32)`); an `unsigned long` one (the flags of `clone`)
//! on all 64 bits ([`Condition::Bits64`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

use crate::arch;
use crate::sys;

pub use crate::baseline::BASELINE;

/// When a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Every call.
    Always,
    /// The `unsigned long` argument `arg` has every bit of `mask` set (64-bit compare).
    Bits64 { arg: u8, mask: u64 },
    /// The `int`/`unsigned int` argument `arg` equals `value` (low 32 bits).
    Eq32 { arg: u8, value: u32 },
    /// The `int` argument `arg` is none of `allowed` (low 32 bits).
    NotIn32 { arg: u8, allowed: &'static [u32] },
}

/// One row of a table: the call, when it is denied, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The call, with the argument that matters where there is one (`"ioctl(TIOCSTI)"`).
    pub name: &'static str,
    /// Its number on this architecture.
    pub nr: libc::c_long,
    /// When it is denied.
    pub condition: Condition,
    /// Why, in one line.
    pub reason: &'static str,
}

impl Rule {
    /// A row (for `const` tables).
    pub const fn new(
        name: &'static str,
        nr: libc::c_long,
        condition: Condition,
        reason: &'static str,
    ) -> Self {
        Rule {
            name,
            nr,
            condition,
            reason,
        }
    }
}

/// The rows answered `ENOSYS` by the ABI filter, for every profile.
pub const ENOSYS_RULES: &[Rule] = &[Rule::new(
    "clone3",
    libc::SYS_clone3,
    Condition::Always,
    "its flags are in memory where seccomp cannot see the namespace flags; ENOSYS makes libc fall back to clone, whose flags the tables check",
)];

/// Errors compiling or installing a filter; each names the rule or the program.
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
    #[error(
        "failed to install the seccomp {which} filter (seccomp SECCOMP_SET_MODE_FILTER): {source}"
    )]
    Install {
        which: &'static str,
        #[source]
        source: io::Error,
    },
}

fn cond(
    name: &'static str,
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, SeccompError> {
    SeccompCondition::new(arg, len, op, value).map_err(|source| SeccompError::Rule { name, source })
}

fn conditions(r: &Rule) -> Result<Vec<SeccompCondition>, SeccompError> {
    use SeccompCmpArgLen::{Dword, Qword};
    Ok(match r.condition {
        Condition::Always => Vec::new(),
        Condition::Bits64 { arg, mask } => {
            vec![cond(
                r.name,
                arg,
                Qword,
                SeccompCmpOp::MaskedEq(mask),
                mask,
            )?]
        }
        Condition::Eq32 { arg, value } => {
            vec![cond(
                r.name,
                arg,
                Dword,
                SeccompCmpOp::Eq,
                u64::from(value),
            )?]
        }
        // All conditions of one seccompiler rule must hold (AND): "none of the allowed values".
        Condition::NotIn32 { arg, allowed } => allowed
            .iter()
            .map(|&v| cond(r.name, arg, Dword, SeccompCmpOp::Ne, u64::from(v)))
            .collect::<Result<_, _>>()?,
    })
}

/// The table program: `EPERM` on any matching row, allow otherwise. Rows of the same syscall are
/// ORed; an unconditional row wins over conditional ones.
fn table_program(table: &[Rule], errno: i32) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let mut map: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut always = BTreeSet::new();
    for r in table {
        let conds = conditions(r)?;
        let entry = map.entry(r.nr).or_default();
        if conds.is_empty() {
            always.insert(r.nr);
        } else {
            entry.push(
                SeccompRule::new(conds).map_err(|source| SeccompError::Rule {
                    name: r.name,
                    source,
                })?,
            );
        }
    }
    // seccompiler: an empty rule list matches the syscall unconditionally.
    for nr in always {
        map.insert(nr, Vec::new());
    }
    let filter = SeccompFilter::new(
        map,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch::TARGET_ARCH,
    )
    .map_err(|source| SeccompError::Filter { source })?;
    let prog: seccompiler::BpfProgram = filter
        .try_into()
        .map_err(|source| SeccompError::Filter { source })?;
    Ok(prog
        .into_iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect())
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn ret_errno(errno: i32) -> libc::sock_filter {
    stmt(
        BPF_RET_K,
        libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA),
    )
}

/// The ABI filter (see the module docs).
pub fn abi_program() -> Vec<libc::sock_filter> {
    let mut p = vec![
        stmt(BPF_LD_W_ABS, OFFSET_ARCH),
        jump(BPF_JEQ_K, arch::AUDIT_ARCH, 1, 0),
        stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(BPF_LD_W_ABS, OFFSET_NR),
    ];
    if arch::HAS_X32 {
        p.push(jump(BPF_JGE_K, arch::X32_SYSCALL_BIT, 0, 1));
        p.push(ret_errno(arch::X32_ERRNO));
    }
    for r in ENOSYS_RULES {
        p.push(jump(BPF_JEQ_K, r.nr as u32, 0, 1));
        p.push(ret_errno(libc::ENOSYS));
    }
    p.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
    p
}

/// A profile's two programs, compiled before anything is restricted (a compile error leaves the
/// process untouched).
#[derive(Debug, Clone)]
pub struct Filter {
    abi: Vec<libc::sock_filter>,
    table: Vec<libc::sock_filter>,
    rules: usize,
}

impl Filter {
    /// Compile `table` (the profile's `EPERM` rows) and the ABI filter.
    pub fn compile(table: &[Rule]) -> Result<Self, SeccompError> {
        Self::compile_with_errno(table, libc::EPERM)
    }

    /// [`Filter::compile`] with matching rows answered `errno` instead of `EPERM` (the sandbox's
    /// tests use it to simulate a kernel without a feature, e.g. Landlock → `ENOSYS`).
    pub fn compile_with_errno(table: &[Rule], errno: i32) -> Result<Self, SeccompError> {
        Ok(Filter {
            abi: abi_program(),
            table: table_program(table, errno)?,
            rules: table.len() + ENOSYS_RULES.len(),
        })
    }

    /// Rows in force once installed (the profile's plus [`ENOSYS_RULES`]).
    pub fn rule_count(&self) -> usize {
        self.rules
    }

    /// Install the ABI filter, then the table, on every thread (`SECCOMP_FILTER_FLAG_TSYNC`).
    /// no_new_privs must be set (or the caller have `CAP_SYS_ADMIN`). After a failure of the
    /// second, the first stays installed.
    ///
    /// Makes two system calls and allocates nothing, so a forked child of a multi-threaded
    /// process may call it.
    pub fn install(&self) -> Result<(), SeccompError> {
        sys::seccomp_install_tsync(&self.abi).map_err(|source| SeccompError::Install {
            which: "architecture",
            source,
        })?;
        sys::seccomp_install_tsync(&self.table).map_err(|source| SeccompError::Install {
            which: "rule-table",
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unconditional_row_wins_over_a_conditional_row_of_the_same_call() {
        let both = [
            Rule::new(
                "ioctl(TIOCSTI)",
                libc::SYS_ioctl,
                Condition::Eq32 { arg: 1, value: 1 },
                "r",
            ),
            Rule::new("ioctl", libc::SYS_ioctl, Condition::Always, "r"),
        ];
        let only_always = [Rule::new("ioctl", libc::SYS_ioctl, Condition::Always, "r")];
        assert_eq!(
            table_program(&both, libc::EPERM).unwrap().len(),
            table_program(&only_always, libc::EPERM).unwrap().len()
        );
    }

    #[test]
    fn the_abi_filter_kills_foreign_arches_and_refuses_x32_and_clone3() {
        let p = abi_program();
        assert_eq!(p[1].k, arch::AUDIT_ARCH);
        assert_eq!(p[2].k, libc::SECCOMP_RET_KILL_PROCESS);
        if arch::HAS_X32 {
            assert_eq!(p[4].k, arch::X32_SYSCALL_BIT);
            assert_eq!(p[5].k, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32);
        }
        assert_eq!(p.last().unwrap().k, libc::SECCOMP_RET_ALLOW);
    }
}
