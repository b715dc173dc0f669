//! Walks every seccomp table row by row, for both profiles (the sandbox's, with and without
//! network, and the proxy's), bubblewrap style: a forked child installs the filter and calls
//! each syscall with harmless bad arguments; a second forked child makes the same calls without
//! the filter (the control).
//!
//! For each row the call is made with arguments the row matches (the table's errno must come
//! back, and the control must have answered something else, so the errno is the filter's), and,
//! for rows with an argument condition, with arguments it does not match (the call must get the
//! kernel's own answer, EBADF/EFAULT/EINVAL..., exactly as in the control). What "matches" means
//! is decided here by an independent reading of the row ([`denied_by`]), not by the compiler
//! under test. Also: a 32-bit condition with the upper half of the argument set (flatpak's
//! CVE-2019-10063), x32 syscall numbers, `clone3`, calls outside the table, and (x86_64)
//! `int 0x80`, which must kill the process with SIGSYS.
//!
//! The proxy's allow-list is walked the other way round ([`allow_probes`]): every allowed row
//! matched (the kernel's own answer, as in the control), every argument-conditional row missed,
//! every row of `REFUSED` and some calls in no list (each in a child of its own, with a
//! `Reporter`: exit 77 and a stderr line naming the call and why), x32 numbers and `clone3` (the
//! ABI filter's answers must stand in front of the trap). The same reading of a row
//! ([`denied_by`], which for an allow-list means "allowed by").
//!
//! The arguments are chosen so that even the unfiltered control is harmless when run as root:
//! invalid flags, descriptors, pointers or magic numbers that the kernel rejects before acting,
//! or "leave unchanged" values (`setresuid(-1, -1, -1)`). Each child calls `setsid` first, so
//! `vhangup` has no terminal to hang up.

use codex_confine::arch;
use codex_confine::seccomp::{Condition, ENOSYS_RULES, Filter, Rule};

const MAX: u64 = u64::MAX;

/// What a probe is.
#[derive(Debug, Clone)]
struct Probe {
    label: String,
    nr: libc::c_long,
    args: [u64; 6],
    /// The errno the filter must answer, or `None`: the kernel's own answer (as in the control).
    want: Option<i32>,
}

/// Does `table` deny `nr(args)`? An independent reading of the rows.
fn denied_by(table: &[Rule], nr: libc::c_long, args: &[u64; 6]) -> bool {
    table
        .iter()
        .filter(|r| r.nr == nr)
        .any(|r| match r.condition {
            Condition::Always => true,
            Condition::Bits64 { arg, mask } => args[usize::from(arg)] & mask == mask,
            Condition::Eq32 { arg, value } => args[usize::from(arg)] as u32 == value,
            Condition::NotIn32 { arg, allowed } => {
                !allowed.contains(&(args[usize::from(arg)] as u32))
            }
            Condition::Masked64 { arg, mask, value } => args[usize::from(arg)] & mask == value,
            Condition::Masked32 {
                arg,
                mask,
                value,
                except,
            } => {
                let v = args[usize::from(arg)] as u32;
                v & mask == value && !except.contains(&v)
            }
        })
}

/// Harmless base arguments for `nr` (see the module docs).
fn base_args(nr: libc::c_long) -> [u64; 6] {
    let mut a = [MAX; 6];
    if nr == libc::SYS_clone {
        // CLONE_THREAD | CLONE_SIGHAND without CLONE_VM: EINVAL before anything is created, and
        // still EINVAL with CLONE_THREAD cleared (CLONE_SIGHAND needs CLONE_VM): never a fork.
        a[0] = (libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
    } else if nr == libc::SYS_init_module {
        // Length 0: ENOEXEC before any allocation.
        a[1] = 0;
    }
    a
}

/// One value of a condition's argument that the row matches.
fn matching(c: Condition, base: u64) -> u64 {
    match c {
        Condition::Always => base,
        Condition::Bits64 { mask, .. } => base | mask,
        Condition::Eq32 { value, .. } => u64::from(value),
        Condition::NotIn32 { allowed, .. } => [
            libc::AF_NETLINK,
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_PACKET,
            libc::AF_VSOCK,
        ]
        .into_iter()
        .map(|f| f as u32)
        .find(|f| !allowed.contains(f))
        .map(u64::from)
        .unwrap_or(u64::from(u32::MAX)),
        Condition::Masked64 { mask, value, .. } => (base & !mask) | value,
        Condition::Masked32 { mask, value, .. } => u64::from((base as u32 & !mask) | value),
    }
}

/// Values of a condition's argument that the row does not match.
fn missing(c: Condition, base: u64) -> Vec<u64> {
    match c {
        Condition::Always => Vec::new(),
        Condition::Bits64 { mask, .. } => vec![base & !mask],
        Condition::Eq32 { .. } => vec![u64::from(u32::MAX)],
        Condition::NotIn32 { allowed, .. } => allowed.iter().map(|&v| u64::from(v)).collect(),
        // Each bit of the mask flipped in turn.
        Condition::Masked64 { mask, value, .. } => (0..64)
            .map(|b| 1u64 << b)
            .filter(|b| mask & b != 0)
            .map(|b| ((base & !mask) | value) ^ b)
            .collect(),
        // Each bit of the mask flipped in turn, and each value the row keeps.
        Condition::Masked32 {
            mask,
            value,
            except,
            ..
        } => (0..32)
            .map(|b| 1u32 << b)
            .filter(|b| mask & b != 0)
            .map(|b| u64::from(((base as u32 & !mask) | value) ^ b))
            .chain(except.iter().map(|&v| u64::from(v)))
            .collect(),
    }
}

fn arg_of(c: Condition) -> Option<usize> {
    match c {
        Condition::Always => None,
        Condition::Bits64 { arg, .. }
        | Condition::Eq32 { arg, .. }
        | Condition::NotIn32 { arg, .. }
        | Condition::Masked64 { arg, .. }
        | Condition::Masked32 { arg, .. } => Some(usize::from(arg)),
    }
}

/// Every probe for `table`: each row matched, each conditional row missed, the shared rows.
fn probes(table: &[Rule]) -> Vec<Probe> {
    let mut out = Vec::new();
    for r in table {
        let mut args = base_args(r.nr);
        if let Some(i) = arg_of(r.condition) {
            args[i] = matching(r.condition, args[i]);
        }
        assert!(
            denied_by(table, r.nr, &args),
            "row {}: the probe arguments {args:x?} do not match it",
            r.name
        );
        out.push(Probe {
            label: format!("{} (matched)", r.name),
            nr: r.nr,
            args,
            want: Some(libc::EPERM),
        });
        if let (Some(i), Condition::Eq32 { .. }) = (arg_of(r.condition), r.condition) {
            // The kernel reads an int: the upper half must not let the call through.
            let mut upper = args;
            upper[i] |= 1 << 32;
            out.push(Probe {
                label: format!("{} (matched, upper 32 bits set)", r.name),
                nr: r.nr,
                args: upper,
                want: Some(libc::EPERM),
            });
        }
        if let Some(i) = arg_of(r.condition) {
            for v in missing(r.condition, base_args(r.nr)[i]) {
                let mut miss = base_args(r.nr);
                miss[i] = v;
                let want = denied_by(table, r.nr, &miss).then_some(libc::EPERM);
                out.push(Probe {
                    label: format!("{} (argument {i} = {v:#x})", r.name),
                    nr: r.nr,
                    args: miss,
                    want,
                });
            }
        }
    }
    for r in ENOSYS_RULES {
        out.push(Probe {
            label: format!("{} (ENOSYS row)", r.name),
            nr: r.nr,
            args: base_args(r.nr),
            want: Some(libc::ENOSYS),
        });
    }
    // Outside every table: the kernel's own answer.
    for (name, nr) in [
        ("read(-1)", libc::SYS_read),
        ("close(-1)", libc::SYS_close),
        ("fcntl(-1)", libc::SYS_fcntl),
    ] {
        assert!(!denied_by(table, nr, &[MAX; 6]), "{name} is in the table");
        out.push(Probe {
            label: name.to_string(),
            nr,
            args: [MAX; 6],
            want: None,
        });
    }
    if arch::HAS_X32 {
        // The x32 bit on getpid's number (39) and on a number the tables deny (ptrace's).
        for (name, nr) in [
            ("x32 bit | getpid", 39),
            ("x32 bit | ptrace", libc::SYS_ptrace),
        ] {
            out.push(Probe {
                label: name.to_string(),
                nr: nr | libc::c_long::from(arch::X32_SYSCALL_BIT as i32),
                args: [MAX; 6],
                want: Some(arch::X32_ERRNO),
            });
        }
    }
    out
}

/// The raw calls of this test (fork, pipe, syscall, _exit); every `unsafe` is here.
mod sys {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};

    /// `syscall(nr, args...)`: 0 on success, else the errno.
    pub fn call(nr: libc::c_long, a: &[u64; 6]) -> i32 {
        // SAFETY: every probe's arguments are invalid pointers/descriptors/flags the kernel
        // rejects, or values that leave the process unchanged (module docs); no memory of ours
        // is handed to the kernel.
        let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
        if r == -1 {
            // SAFETY: __errno_location returns this thread's errno slot, always valid.
            unsafe { *libc::__errno_location() }
        } else {
            0
        }
    }

    /// Fork; the child runs `child` (which must not allocate: the test harness has other
    /// threads), writes the returned `i32`s to a pipe and `_exit`s with the code it returns.
    /// The parent gets the values and the raw wait status.
    pub fn in_child(n: usize, child: impl FnOnce(&mut [i32]) -> i32) -> (Vec<i32>, libc::c_int) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: pipe2 succeeded; both descriptors are new and owned here.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut results = vec![0i32; n];
        // SAFETY: the child only makes system calls into preallocated memory and `_exit`s; it
        // never returns into the harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            drop(r);
            // SAFETY: setsid takes no arguments (a forked child is never a group leader).
            unsafe { libc::setsid() };
            let code = child(&mut results);
            let bytes = results.len() * 4;
            // SAFETY: `results` is a live buffer of exactly `bytes` bytes.
            unsafe {
                libc::write(
                    std::os::fd::AsRawFd::as_raw_fd(&w),
                    results.as_ptr().cast(),
                    bytes,
                );
                libc::_exit(code)
            }
        }
        drop(w);
        let mut buf = Vec::new();
        std::fs::File::from(r)
            .read_to_end(&mut buf)
            .expect("read the child's results");
        let mut status = 0;
        // SAFETY: `status` is a live c_int for waitpid to fill.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        let values = buf
            .chunks_exact(4)
            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        (values, status)
    }

    /// Fork; the child points its stderr at a pipe, runs `child` (no allocation) and `_exit`s
    /// with its code. Returns the child's stderr and the raw wait status.
    pub fn in_child_stderr(child: impl FnOnce() -> i32) -> (String, libc::c_int) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: pipe2 succeeded; both descriptors are new and owned here.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: the child only makes system calls and `_exit`s; it never returns.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: setsid takes no arguments; dup2 onto fd 2 of this child only.
            unsafe {
                libc::setsid();
                libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&w), 2);
            }
            let code = child();
            // SAFETY: _exit does not return.
            unsafe { libc::_exit(code) }
        }
        drop(w);
        let mut buf = Vec::new();
        std::fs::File::from(r)
            .read_to_end(&mut buf)
            .expect("read the child's stderr");
        let mut status = 0;
        // SAFETY: `status` is a live c_int for waitpid to fill.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        (String::from_utf8_lossy(&buf).into_owned(), status)
    }

    /// `int 0x80` with i386's getpid (20): the pid, or the process dies.
    #[cfg(target_arch = "x86_64")]
    pub fn int80_getpid() -> i64 {
        let mut ret: i64 = 20;
        // SAFETY: i386 getpid takes no arguments and touches no memory; `int 0x80` clobbers only
        // eax (declared) and the kernel preserves the other registers.
        unsafe { std::arch::asm!("int 0x80", inout("rax") ret, options(nostack)) };
        ret
    }
}

fn exited_ok(status: libc::c_int) -> bool {
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

fn errno_name(e: i32) -> String {
    if e == 0 {
        "ok".into()
    } else {
        std::io::Error::from_raw_os_error(e).to_string()
    }
}

/// Walk `table`: filtered child against unfiltered control, every probe.
fn walk(profile: &str, table: &[Rule]) {
    let probes = probes(table);
    let filter = Filter::compile(table).expect("compile");
    let run = |p: &[Probe], out: &mut [i32]| {
        for (o, p) in out.iter_mut().zip(p) {
            *o = sys::call(p.nr, &p.args);
        }
    };
    let (control, status) = sys::in_child(probes.len(), |out| {
        run(&probes, out);
        0
    });
    assert!(
        exited_ok(status),
        "{profile}: control child status {status:#x}"
    );
    let (filtered, status) = sys::in_child(probes.len(), |out| {
        if codex_confine::set_no_new_privs().is_err() {
            return 2;
        }
        if filter.install().is_err() {
            return 3;
        }
        run(&probes, out);
        0
    });
    assert!(
        exited_ok(status),
        "{profile}: filtered child status {status:#x}"
    );
    assert_eq!(filtered.len(), probes.len());
    let mut failures = Vec::new();
    let (mut denied, mut allowed) = (0, 0);
    for ((p, &c), &f) in probes.iter().zip(&control).zip(&filtered) {
        let ok = match p.want {
            // The table's errno, which the kernel itself would not have answered.
            Some(want) => {
                denied += 1;
                f == want && c != want
            }
            // Allowed: the kernel's own answer.
            None => {
                allowed += 1;
                f == c
            }
        };
        if !ok {
            failures.push(format!(
                "{}: filtered {}, control {}, want {}",
                p.label,
                errno_name(f),
                errno_name(c),
                p.want.map_or("the control's answer".into(), errno_name)
            ));
        }
    }
    eprintln!(
        "{profile}: {} rows, {denied} denied and {allowed} allowed probes",
        table.len()
    );
    assert!(
        failures.is_empty(),
        "{profile}: {} of {} probes wrong:\n{}",
        failures.len(),
        probes.len(),
        failures.join("\n")
    );
}

#[test]
fn the_sandbox_table_without_network_is_enforced_row_by_row() {
    walk(
        "sandbox (network off)",
        &sandbox_linux::seccomp::table(false),
    );
}

#[test]
fn the_sandbox_table_with_network_is_enforced_row_by_row() {
    let table = sandbox_linux::seccomp::table(true);
    // The rows that differ: inet sockets allowed here, denied without network.
    let inet = [libc::AF_INET as u64, 1, 0, 0, 0, 0];
    assert!(!denied_by(&table, libc::SYS_socket, &inet));
    assert!(denied_by(
        &sandbox_linux::seccomp::table(false),
        libc::SYS_socket,
        &inet
    ));
    walk("sandbox (network on)", &table);
}

#[test]
fn the_sandbox_table_without_namespaces_is_enforced_row_by_row() {
    // SysV IPC and the file metadata calls are denied when no namespace could be created
    let table = sandbox_linux::seccomp::table_without_namespaces(false, true);
    assert!(denied_by(&table, libc::SYS_shmget, &[0; 6]));
    assert!(denied_by(&table, libc::SYS_fchmodat, &[0; 6]));
    // POSIX message queues too: mq_open creates the queue before Landlock refuses its file
    // (outside review r14 F1)
    assert!(denied_by(&table, libc::SYS_mq_open, &[0; 6]));
    walk("sandbox (no namespaces, read-only)", &table);
}

// ---------------------------------------------------------------------------------------------
// The proxy's allow-list
// ---------------------------------------------------------------------------------------------

use codex_confine::seccomp::{Reporter, Unlisted};
use codex_privsep::seccomp_policy::{ALLOWED, ALLOWED_ARCH, REFUSED};

/// The walk's reporter: the proxy's tables, its own exit code (the real one is tested by
/// `privsep`'s scenarios through `confine()`).
static WALK_REPORTER: Reporter = Reporter {
    prefix: "walk: ",
    allowed: &[ALLOWED, ALLOWED_ARCH],
    refused: REFUSED,
    exit_code: 77,
};

/// Allowed calls the walk does not make, and why (each is made by every confined proxy: the
/// e2e tests in `responses-api-proxy/tests` run under the same filter).
const NOT_CALLED: &[(libc::c_long, &str)] = &[
    (libc::SYS_exit, "ends the calling thread"),
    (
        libc::SYS_exit_group,
        "ends the process (each filtered child ends with it: _exit)",
    ),
    (
        libc::SYS_rt_sigreturn,
        "with no signal frame it kills the process",
    ),
];

/// What a probe of the allow-list expects.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// Allowed: the kernel's own answer, as in the control.
    Kernel,
    /// Trapped: exit 77 and a line naming the call with this explanation.
    Refused(&'static str),
    /// Answered by the ABI filter with this errno (x32 numbers, `clone3`).
    Abi(i32),
}

/// The syscall name a row is about (`"ioctl(TIOCSTI)"` → `"ioctl"`).
fn call_name(row: &str) -> &str {
    row.split('(').next().unwrap_or(row)
}

fn allow_probes(allowed: &[Rule]) -> Vec<(String, String, libc::c_long, [u64; 6], Want)> {
    let mut out = Vec::new();
    let is_allowed = |nr, args: &[u64; 6]| denied_by(allowed, nr, args);
    for r in allowed {
        if NOT_CALLED.iter().any(|(nr, _)| *nr == r.nr) {
            continue;
        }
        let mut args = base_args(r.nr);
        if let Some(i) = arg_of(r.condition) {
            args[i] = matching(r.condition, args[i]);
            for v in missing(r.condition, base_args(r.nr)[i]) {
                let mut miss = base_args(r.nr);
                miss[i] = v;
                let want = if is_allowed(r.nr, &miss) {
                    Want::Kernel
                } else {
                    Want::Refused("its arguments match no row of the allow-list")
                };
                out.push((
                    format!("{} (argument {i} = {v:#x})", r.name),
                    call_name(r.name).to_string(),
                    r.nr,
                    miss,
                    want,
                ));
            }
        }
        assert!(is_allowed(r.nr, &args), "{}: probe does not match", r.name);
        out.push((
            format!("{} (matched)", r.name),
            call_name(r.name).to_string(),
            r.nr,
            args,
            Want::Kernel,
        ));
    }
    for t in REFUSED {
        for r in *t {
            let mut args = base_args(r.nr);
            if let Some(i) = arg_of(r.condition) {
                args[i] = matching(r.condition, args[i]);
            }
            assert!(
                !is_allowed(r.nr, &args),
                "{} is refused by design but allowed",
                r.name
            );
            let why = if allowed.iter().any(|a| a.nr == r.nr) {
                "its arguments match no row of the allow-list"
            } else {
                "denied by design: "
            };
            out.push((
                format!("{} (refused by design)", r.name),
                call_name(r.name).to_string(),
                r.nr,
                args,
                Want::Refused(why),
            ));
        }
    }
    // In no list at all.
    for (name, nr) in [
        ("getcwd", libc::SYS_getcwd),
        ("chdir", libc::SYS_chdir),
        ("getppid", libc::SYS_getppid),
    ] {
        assert!(
            !allowed
                .iter()
                .chain(REFUSED.iter().flat_map(|t| t.iter()))
                .any(|r| r.nr == nr)
        );
        out.push((
            name.to_string(),
            name.to_string(),
            nr,
            [MAX; 6],
            Want::Refused("not in the allow-list"),
        ));
    }
    for r in ENOSYS_RULES {
        out.push((
            format!("{} (ABI filter)", r.name),
            r.name.to_string(),
            r.nr,
            base_args(r.nr),
            Want::Abi(libc::ENOSYS),
        ));
    }
    if arch::HAS_X32 {
        for (name, nr) in [
            ("x32 bit | getpid", 39),
            ("x32 bit | ptrace", libc::SYS_ptrace),
        ] {
            out.push((
                name.to_string(),
                name.to_string(),
                nr | libc::c_long::from(arch::X32_SYSCALL_BIT as i32),
                [MAX; 6],
                Want::Abi(arch::X32_ERRNO),
            ));
        }
    }
    out
}

/// Every row of the proxy's allow-list made with matching arguments (the kernel's own answer,
/// as in the unfiltered control), every argument-conditional row missed, every call refused by
/// design and a few unlisted ones (each in its own child: exit 77 and a line naming the call;
/// the control makes the same call and lives), x32 numbers (EPERM) and clone3 (ENOSYS).
#[test]
fn the_proxy_allow_list_is_enforced_row_by_row() {
    let allowed = codex_privsep::seccomp_policy::table();
    let filter = Filter::compile_allow_list(&allowed, Unlisted::Trap).expect("compile");
    let probes = allow_probes(&allowed);
    let mut failures = Vec::new();
    let (mut n_allowed, mut n_refused) = (0, 0);
    for (label, call, nr, args, want) in &probes {
        let (control, status) = sys::in_child(1, |out| {
            out[0] = sys::call(*nr, args);
            0
        });
        if !exited_ok(status) {
            failures.push(format!("{label}: control child status {status:#x}"));
            continue;
        }
        let control = control[0];
        let (err, status) = sys::in_child_stderr(|| {
            if codex_confine::set_no_new_privs().is_err()
                || codex_confine::seccomp::install_reporter(&WALK_REPORTER).is_err()
                || filter.install().is_err()
            {
                return 3;
            }
            let e = sys::call(*nr, args);
            // The errno, as the exit code (0-255), for the parent to compare.
            100 + e.min(150)
        });
        let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        let ok = match want {
            Want::Kernel => {
                n_allowed += 1;
                code == Some(100 + control.min(150))
            }
            Want::Abi(e) => {
                n_refused += 1;
                code == Some(100 + e) && control != *e
            }
            Want::Refused(why) => {
                n_refused += 1;
                let line = format!("walk: seccomp refused system call {call} (nr {nr}): {why}");
                code == Some(77) && err.contains(&line) && err.contains("exiting with code 77")
            }
        };
        if !ok {
            failures.push(format!(
                "{label}: want {want:?}; filtered exit {code:?} (status {status:#x}) stderr {err:?}; control {}",
                errno_name(control)
            ));
        }
    }
    eprintln!(
        "proxy allow-list: {} rows, {n_allowed} allowed and {n_refused} refused probes",
        allowed.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} probes wrong:\n{}",
        failures.len(),
        probes.len(),
        failures.join("\n")
    );
}

/// `int 0x80` (the i386 ABI) bypasses a table keyed by x86_64 numbers: the ABI filter kills it.
#[cfg(target_arch = "x86_64")]
#[test]
fn int_0x80_is_killed_and_works_without_the_filter() {
    for (profile, filter) in [
        (
            "sandbox",
            Filter::compile(&sandbox_linux::seccomp::table(false)).expect("compile"),
        ),
        (
            "proxy",
            Filter::compile_allow_list(&codex_privsep::seccomp_policy::table(), Unlisted::Trap)
                .expect("compile"),
        ),
    ] {
        // Control: without the filter the i386 getpid answers our pid.
        let (v, status) = sys::in_child(1, |out| {
            // SAFETY: getpid has no preconditions.
            let pid = i64::from(unsafe { libc::getpid() });
            out[0] = i32::from(sys::int80_getpid() == pid);
            0
        });
        assert!(
            exited_ok(status) && v == [1],
            "control: int 0x80 getpid must work without the filter (ia32 emulation needed \
             for this check): status {status:#x}, {v:?}"
        );
        let (_, status) = sys::in_child(1, |out| {
            if codex_confine::set_no_new_privs().is_err() || filter.install().is_err() {
                return 3;
            }
            out[0] = sys::int80_getpid() as i32;
            0
        });
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS,
            "{profile}: int 0x80 under the filter must die of SIGSYS, status {status:#x}"
        );
    }
}
