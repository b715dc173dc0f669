//! One seccomp rule table type and its compiler.
//!
//! A profile is a table of [`Rule`]s (`name, nr, condition, reason`) read one of two ways:
//! - a **deny-list** ([`Filter::compile`]): each matching row is denied with `EPERM`, everything
//!   else is allowed (the sandbox's: Landlock confines files, the table removes kernel
//!   interfaces);
//! - an **allow-list** ([`Filter::compile_allow_list`]): each matching row is allowed, everything
//!   else (an unlisted call, or a listed call whose arguments match none of its rows) gets the
//!   [`Unlisted`] action (the proxy's, Firecracker-jailer style). With [`Unlisted::Trap`] a
//!   [`Reporter`] installed by [`install_reporter`] writes the refused call's name to stderr and
//!   exits.
//!
//! Every filter this crate installs is two programs:
//!
//! 1. the **ABI filter** (hand-assembled, shared by every profile): a foreign architecture's
//!    syscall ABI (e.g. `int 0x80` on x86_64) kills the process; x32 numbers get
//!    [`crate::arch::X32_ERRNO`]; the rows of [`ENOSYS_RULES`] get `ENOSYS`; the rest goes on;
//! 2. the **table** of the profile, compiled by seccompiler.
//!
//! Argument widths follow the kernel's parameter type: an `int`/`unsigned int` parameter is
//! compared on its low 32 bits ([`Condition::Eq32`], [`Condition::NotIn32`]), because the kernel
//! ignores the upper half and a 64-bit equality could be bypassed by setting it (flatpak's
//! CVE-2019-10063, `ioctl(TIOCSTI | 1 << 32)`); an `unsigned long` one (the flags of `clone`)
//! on all 64 bits ([`Condition::Bits64`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicPtr, Ordering};

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
    /// The `unsigned long` argument `arg`, masked with `mask`, equals `value` (64-bit compare):
    /// some bits required, others forbidden (`clone`: `CLONE_THREAD` set, no namespace flag).
    Masked64 { arg: u8, mask: u64, value: u64 },
    /// The `unsigned int` argument `arg` (low 32 bits), masked with `mask`, equals `value`, and
    /// is none of `except` (an ioctl family by its type byte, less the calls it may keep).
    Masked32 {
        arg: u8,
        mask: u32,
        value: u32,
        except: &'static [u32],
    },
}

/// One row of a table: the call, when it matches (denied in a deny-list, allowed in an
/// allow-list), and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The call, with the argument that matters where there is one (`"ioctl(TIOCSTI)"`).
    pub name: &'static str,
    /// Its number on this architecture.
    pub nr: libc::c_long,
    /// When the row matches.
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
    #[error("failed to install the SIGSYS handler (sigaction SIGSYS): {source}")]
    Handler {
        #[source]
        source: io::Error,
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
        Condition::Masked64 { arg, mask, value } => {
            vec![cond(
                r.name,
                arg,
                Qword,
                SeccompCmpOp::MaskedEq(mask),
                value,
            )?]
        }
        Condition::Masked32 {
            arg,
            mask,
            value,
            except,
        } => {
            let mut all = vec![cond(
                r.name,
                arg,
                Dword,
                SeccompCmpOp::MaskedEq(u64::from(mask)),
                u64::from(value),
            )?];
            for &v in except {
                all.push(cond(r.name, arg, Dword, SeccompCmpOp::Ne, u64::from(v))?);
            }
            all
        }
    })
}

/// What an allow-list does with a call no row matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlisted {
    /// `SECCOMP_RET_TRAP`: the call is not made; the kernel sends SIGSYS to the calling thread
    /// (forced: a blocked or ignored SIGSYS is reset to its default, which kills). With a
    /// [`Reporter`] installed the handler names the call on stderr and exits.
    Trap,
    /// `SECCOMP_RET_KILL_PROCESS`: the process dies of SIGSYS (the kernel's audit log names the
    /// call when auditing is on; nothing in the process's own log).
    KillProcess,
    /// `SECCOMP_RET_ERRNO`: the call fails with this errno and the process goes on.
    Errno(i32),
}

impl Unlisted {
    fn action(self) -> SeccompAction {
        match self {
            Unlisted::Trap => SeccompAction::Trap,
            Unlisted::KillProcess => SeccompAction::KillProcess,
            Unlisted::Errno(e) => SeccompAction::Errno(e as u32),
        }
    }
}

/// The table program: on a matching row `on_match`, otherwise `otherwise`. Rows of the same
/// syscall are ORed; an unconditional row wins over conditional ones.
fn table_program(
    table: &[Rule],
    on_match: SeccompAction,
    otherwise: SeccompAction,
) -> Result<Vec<libc::sock_filter>, SeccompError> {
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
    // seccompiler's `mismatch_action` also covers a listed call whose rules all fail.
    let filter = SeccompFilter::new(map, otherwise, on_match, arch::TARGET_ARCH)
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

/// What the SIGSYS handler says and does when an allow-list with [`Unlisted::Trap`] refuses a
/// call: one line on stderr (fd 2, one `write`), then `_exit(exit_code)`. Async-signal-safe:
/// the line is built on the stack from static data; the handler makes two system calls,
/// `write` and `exit_group`, which the allow-list must therefore hold.
#[derive(Debug)]
pub struct Reporter {
    /// The line's start (`"responses-api-proxy: "`).
    pub prefix: &'static str,
    /// The allow-list's rows: a refused call found here had arguments outside every row of it.
    pub allowed: &'static [&'static [Rule]],
    /// Calls refused by design: a refused call found here is named with the row's reason.
    pub refused: &'static [&'static [Rule]],
    /// The exit code after the line.
    pub exit_code: i32,
}

static REPORTER: AtomicPtr<Reporter> = AtomicPtr::new(std::ptr::null_mut());

/// Installs the process-wide SIGSYS handler that reports through `reporter`. Call before
/// installing a filter compiled with [`Unlisted::Trap`]; a later call replaces the reporter.
pub fn install_reporter(reporter: &'static Reporter) -> Result<(), SeccompError> {
    REPORTER.store(std::ptr::from_ref(reporter).cast_mut(), Ordering::SeqCst);
    sys::install_sigsys_handler().map_err(|source| SeccompError::Handler { source })
}

/// A line buffer that truncates instead of failing (the handler must not panic).
struct Line<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Line<'_> {
    fn push(&mut self, s: &[u8]) {
        for &b in s {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    fn push_num(&mut self, n: i64) {
        if n < 0 {
            self.push(b"-");
        }
        let mut v = n.unsigned_abs();
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }
}

fn find(tables: &[&[Rule]], nr: libc::c_long) -> Option<&'static str> {
    tables
        .iter()
        .flat_map(|t| t.iter())
        .find(|r| r.nr == nr)
        .map(|r| r.reason)
}

/// The reporter's line for a trapped call (`seccomp` true: `si_code` is `SYS_SECCOMP`) into
/// `buf`; returns its length and the exit code. Used by the SIGSYS handler: no allocation.
pub(crate) fn refusal(buf: &mut [u8], seccomp: bool, nr: i32, audit_arch: u32) -> (usize, i32) {
    let r = REPORTER.load(Ordering::SeqCst);
    let reporter: Option<&'static Reporter> = sys::static_ref(r);
    let mut line = Line { buf, len: 0 };
    line.push(reporter.map_or("", |r| r.prefix).as_bytes());
    let nr = libc::c_long::from(nr);
    if !seccomp {
        line.push(b"SIGSYS not sent by seccomp");
    } else {
        line.push(b"seccomp refused system call ");
        let name = u32::try_from(nr)
            .ok()
            .filter(|_| audit_arch == arch::AUDIT_ARCH)
            .and_then(crate::syscall_names::name);
        line.push(name.unwrap_or("?").as_bytes());
        line.push(b" (nr ");
        line.push_num(nr);
        if audit_arch != arch::AUDIT_ARCH {
            line.push(b", audit arch ");
            line.push_num(i64::from(audit_arch));
        }
        line.push(b")");
        if let Some(rep) = reporter {
            if find(rep.allowed, nr).is_some() {
                line.push(b": its arguments match no row of the allow-list");
            } else if let Some(reason) = find(rep.refused, nr) {
                line.push(b": denied by design: ");
                line.push(reason.as_bytes());
            } else {
                line.push(b": not in the allow-list");
            }
        }
    }
    let code = reporter.map_or(159, |r| r.exit_code);
    line.push(b"; exiting with code ");
    line.push_num(i64::from(code));
    line.push(b"\n");
    (line.len, code)
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

/// The allow-list's prefix: the numbers the ABI filter answers (x32, [`ENOSYS_RULES`]) are
/// allowed here so that the ABI filter's answer stands.
fn abi_deferral() -> Vec<libc::sock_filter> {
    let mut p = vec![stmt(BPF_LD_W_ABS, OFFSET_NR)];
    if arch::HAS_X32 {
        p.push(jump(BPF_JGE_K, arch::X32_SYSCALL_BIT, 0, 1));
        p.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
    }
    for r in ENOSYS_RULES {
        p.push(jump(BPF_JEQ_K, r.nr as u32, 0, 1));
        p.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
    }
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
    /// Compile `table` as a deny-list (the profile's `EPERM` rows) and the ABI filter.
    pub fn compile(table: &[Rule]) -> Result<Self, SeccompError> {
        Self::compile_with_errno(table, libc::EPERM)
    }

    /// Compile `table` as an allow-list: a call matching a row is allowed, any other gets
    /// `unlisted`. The ABI filter in front is the same as for a deny-list.
    ///
    /// The kernel runs every filter and takes the most severe answer (kill > trap > errno >
    /// allow), so the table's refusal of an x32 number or of `clone3` would override the ABI
    /// filter's `EPERM`/`ENOSYS` (glibc's thread start would be trapped instead of falling back
    /// to `clone`): the table program first lets those numbers through, deferring to the ABI
    /// filter's answer.
    pub fn compile_allow_list(table: &[Rule], unlisted: Unlisted) -> Result<Self, SeccompError> {
        let mut program = abi_deferral();
        program.extend(table_program(
            table,
            SeccompAction::Allow,
            unlisted.action(),
        )?);
        Ok(Filter {
            abi: abi_program(),
            table: program,
            rules: table.len() + ENOSYS_RULES.len(),
        })
    }

    /// [`Filter::compile`] with matching rows answered `errno` instead of `EPERM` (the sandbox's
    /// tests use it to simulate a kernel without a feature, e.g. Landlock → `ENOSYS`).
    pub fn compile_with_errno(table: &[Rule], errno: i32) -> Result<Self, SeccompError> {
        Ok(Filter {
            abi: abi_program(),
            table: table_program(
                table,
                SeccompAction::Errno(errno as u32),
                SeccompAction::Allow,
            )?,
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
        let deny = SeccompAction::Errno(libc::EPERM as u32);
        assert_eq!(
            table_program(&both, deny.clone(), SeccompAction::Allow)
                .unwrap()
                .len(),
            table_program(&only_always, deny, SeccompAction::Allow)
                .unwrap()
                .len()
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
