//! Attack tests for `codex-privsep`, run as root.
//!
//! `harness = false`: this binary is its own test runner so that it can re-execute itself as a
//! *single-threaded* child (`PRIVSEP_SCENARIO=name`) for everything privileged or irreversible
//! (privilege drop, Landlock, seccomp, socket activation) and for clients that must run as
//! uid 65534. The parent stays root and unconfined. Each child reports with its exit status
//! (0 = every check held) and prints what failed on stderr.
//!
//! Filter: `cargo test -p codex-privsep --test privsep -- NAME_SUBSTRING`.

// Test code: unwrap/panic report failures; the probe table's type is spelled out once; `check`
// takes its detail by value or reference alike.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity,
    clippy::needless_borrows_for_generic_args
)]

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use codex_confine::seccomp::{Condition, Rule};
use codex_privsep::{
    AllowList, ConfineError, ConfineSpec, PeerError, PeerIdentifier, RunAs, UnixSocketError,
    UnixSocketSpec, bind_unix_listener, confine, listeners_from_systemd, peer_cred_unix,
};

const SCENARIO: &str = "PRIVSEP_SCENARIO";
const NOBODY: u32 = 65534;

// ---------------------------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------------------------

type Test = (&'static str, fn());

fn main() {
    if let Ok(name) = std::env::var(SCENARIO) {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let code = child_main(&name, &args);
        std::process::exit(code);
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let tests: &[Test] = &[
        ("kernel_features_present", kernel_features_present),
        (
            "so_peercred_sees_nobody_and_root",
            so_peercred_sees_nobody_and_root,
        ),
        ("sock_diag_v4_finds_owner", sock_diag_v4_finds_owner),
        ("sock_diag_v6_finds_owner", sock_diag_v6_finds_owner),
        (
            "sock_diag_unknown_tuple_refused",
            sock_diag_unknown_tuple_refused,
        ),
        (
            "sock_diag_closed_peer_is_not_root",
            sock_diag_closed_peer_is_not_root,
        ),
        (
            "sock_diag_time_wait_peer_is_not_root",
            sock_diag_time_wait_peer_is_not_root,
        ),
        (
            "allow_list_supplementary_groups",
            allow_list_supplementary_groups,
        ),
        (
            "privilege_drop_is_irreversible",
            privilege_drop_is_irreversible,
        ),
        ("default_drop_to_nobody", default_drop_to_nobody),
        (
            "seccomp_allow_list_serves_and_defers_to_the_abi_filter",
            seccomp_allow_list_serves_and_defers_to_the_abi_filter,
        ),
        (
            "seccomp_refuses_and_names_each_probe",
            seccomp_refuses_and_names_each_probe,
        ),
        (
            "seccomp_refuses_every_documented_call_by_name",
            seccomp_refuses_every_documented_call_by_name,
        ),
        #[cfg(target_arch = "x86_64")]
        ("seccomp_int_0x80_is_killed", seccomp_int_0x80_is_killed),
        (
            "landlock_limits_files_and_net",
            landlock_limits_files_and_net,
        ),
        (
            "confine_refuses_multithreaded",
            confine_refuses_multithreaded,
        ),
        (
            "dns_resolution_only_with_allow_dns",
            dns_resolution_only_with_allow_dns,
        ),
        (
            "dns_query_to_a_nameserver_under_the_allow_list",
            dns_query_to_a_nameserver_under_the_allow_list,
        ),
        (
            "dns_multi_address_sorting_under_the_allow_list",
            dns_multi_address_sorting_under_the_allow_list,
        ),
        (
            "a_panic_under_the_allow_list_reports_itself",
            a_panic_under_the_allow_list_reports_itself,
        ),
        (
            "identify_after_drop_and_confine",
            identify_after_drop_and_confine,
        ),
        ("unix_socket_stale_replaced", unix_socket_stale_replaced),
        ("unix_socket_live_refused", unix_socket_live_refused),
        (
            "unix_socket_non_socket_untouched",
            unix_socket_non_socket_untouched,
        ),
        ("unix_socket_mode_and_group", unix_socket_mode_and_group),
        (
            "unix_socket_unsafe_dir_refused",
            unix_socket_unsafe_dir_refused,
        ),
        (
            "unix_socket_unsafe_ancestor_refused",
            unix_socket_unsafe_ancestor_refused,
        ),
        ("activation_wrong_pid_refused", activation_wrong_pid_refused),
        (
            "activation_receives_listeners",
            activation_receives_listeners,
        ),
        (
            "activation_in_an_unsafe_directory_refused",
            activation_in_an_unsafe_directory_refused,
        ),
        (
            "key_opener_hands_over_the_checked_descriptor_and_is_confined",
            key_opener_hands_over_the_checked_descriptor_and_is_confined,
        ),
        (
            "key_opener_under_the_service_units_syscall_filter",
            key_opener_under_the_service_units_syscall_filter,
        ),
    ];
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, f) in tests {
        if !filter.is_empty() && !filter.iter().any(|s| name.contains(s.as_str())) {
            continue;
        }
        ran += 1;
        let start = Instant::now();
        let result = std::panic::catch_unwind(f);
        let ms = start.elapsed().as_millis();
        match result {
            Ok(()) => println!("test {name} ... ok ({ms} ms)"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    println!(
        "\nprivsep: {} passed, {} failed, {} filtered out",
        ran - failed.len(),
        failed.len(),
        tests.len() - ran
    );
    if !failed.is_empty() {
        println!("failed: {failed:?}");
        std::process::exit(1);
    }
}

fn child(scenario: &str, args: &[&str]) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.env(SCENARIO, scenario).args(args);
    c
}

fn child_as_nobody(scenario: &str, args: &[&str]) -> Command {
    let mut c = child(scenario, args);
    c.uid(NOBODY).gid(NOBODY);
    c
}

/// Runs a child scenario to completion and asserts it reported success.
fn run_ok(mut c: Command) {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "child failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tempdir_open() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Waits until the child wrote its ready line on stdout.
fn wait_ready(child: &mut Child) {
    let mut out = child.stdout.take().unwrap();
    let mut b = [0u8; 6];
    out.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ready\n");
}

// ---------------------------------------------------------------------------------------------
// Child scenarios (single-threaded, re-executed)
// ---------------------------------------------------------------------------------------------

struct Checks {
    failures: Vec<String>,
}

impl Checks {
    fn new() -> Self {
        Self {
            failures: Vec::new(),
        }
    }
    fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Debug) {
        if ok {
            eprintln!("  ok: {what}");
        } else {
            eprintln!("  FAILED: {what}: {detail:?}");
            self.failures.push(what.to_owned());
        }
    }
    /// `ret` is the raw return of a libc call; expects -1 with `errno`.
    fn errno(&mut self, what: &str, ret: i64, errno: i32) {
        let e = std::io::Error::last_os_error();
        self.check(
            what,
            ret == -1 && e.raw_os_error() == Some(errno),
            format!(
                "ret {ret}, errno {e}, wanted {}",
                std::io::Error::from_raw_os_error(errno)
            ),
        );
    }
    fn code(&self) -> i32 {
        i32::from(!self.failures.is_empty())
    }
}

fn child_main(name: &str, args: &[String]) -> i32 {
    match name {
        "unix-connect" => {
            let s = UnixStream::connect(&args[0]).unwrap();
            hold(s)
        }
        "tcp-connect" => {
            let mut s = TcpStream::connect(&args[0]).unwrap();
            s.write_all(b"x").unwrap();
            hold(s)
        }
        "tcp-connect-close" => {
            let mut s = TcpStream::connect(&args[0]).unwrap();
            s.write_all(b"x").unwrap();
            drop(s);
            0
        }
        "rename" => match std::fs::rename(&args[0], &args[1]) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("rename {} -> {}: {e}", args[0], args[1]);
                1
            }
        },
        "drop" => scenario_drop(args.first().map(String::as_str)),
        "no-drop-control" => scenario_no_drop_control(),
        "seccomp" => scenario_seccomp(),
        "seccomp-probe" => scenario_seccomp_probe(&args[0], args[1] == "confine"),
        "seccomp-call" => scenario_seccomp_call(args),
        #[cfg(target_arch = "x86_64")]
        "seccomp-int80" => scenario_int80(args[0] == "confine"),
        "landlock" => scenario_landlock(Path::new(&args[0]), args[1].parse().unwrap()),
        "threads" => scenario_threads(),
        "dns" => scenario_dns(args[0] == "allow"),
        "dns-fake" => scenario_dns_fake(),
        "dns-multi" => scenario_dns_multi(),
        "panic-confined" => scenario_panic_confined(args[0] == "hook"),
        "identify-confined" => scenario_identify_confined(),
        "activation-wrong-pid" => scenario_activation_wrong_pid(),
        "activation" => scenario_activation(false),
        "activation-unsafe-dir" => scenario_activation(true),
        "key-opener" => scenario_key_opener(),
        "key-opener-unit" => scenario_key_opener_unit(args[0] == "drop"),
        other => {
            eprintln!("unknown scenario {other}");
            2
        }
    }
}

/// Signals readiness, then keeps the connection open until the parent closes stdin.
fn hold<T>(s: T) -> i32 {
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut buf = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut buf);
    drop(s);
    0
}

fn proc_status_line(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

fn scenario_drop(user: Option<&str>) -> i32 {
    let mut c = Checks::new();
    // Start like a root shell with supplementary groups, so that keeping them would show.
    let extra: [libc::gid_t; 2] = [0, 4242];
    // SAFETY: the pointer and length describe the live array `extra`.
    let r = unsafe { libc::setgroups(extra.len(), extra.as_ptr()) };
    c.check("set-up: supplementary groups 0 and 4242", r == 0, r);
    c.check(
        "set-up: groups visible before the drop",
        proc_status_line("Groups:") == "0 4242",
        proc_status_line("Groups:"),
    );
    let plan = RunAs::decide(user, false).unwrap();
    let report = match plan.apply() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("drop failed: {e}");
            return 1;
        }
    };
    eprintln!("report: {report:?}");
    c.check("report says dropped", report.dropped, &report);
    // Independent checks, not trusting the library's own report.
    c.check(
        "/proc/self/status Uid all 65534",
        proc_status_line("Uid:") == "65534 65534 65534 65534",
        proc_status_line("Uid:"),
    );
    c.check(
        "/proc/self/status Gid all 65534",
        proc_status_line("Gid:") == "65534 65534 65534 65534",
        proc_status_line("Gid:"),
    );
    c.check(
        "no supplementary groups",
        proc_status_line("Groups:").is_empty(),
        proc_status_line("Groups:"),
    );
    c.check(
        "no effective capabilities",
        proc_status_line("CapEff:") == "0000000000000000",
        proc_status_line("CapEff:"),
    );
    // SAFETY: integer-only call.
    let r = unsafe { libc::setuid(0) };
    c.errno("setuid(0) after drop", r.into(), libc::EPERM);
    // SAFETY: integer-only call.
    let r = unsafe { libc::setresuid(0, 0, 0) };
    c.errno("setresuid(0,0,0) after drop", r.into(), libc::EPERM);
    // SAFETY: integer-only prctl.
    let d = unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) };
    c.check("PR_GET_DUMPABLE is 0", d == 0, d);
    // Attack: a root-only file is now out of reach.
    let e = std::fs::read("/etc/shadow").map_err(|e| e.raw_os_error());
    c.check("/etc/shadow unreadable", e == Err(Some(libc::EACCES)), &e);
    c.code()
}

fn scenario_no_drop_control() -> i32 {
    let mut c = Checks::new();
    // SAFETY: integer-only call; as root this succeeds and changes nothing.
    let r = unsafe { libc::setuid(0) };
    c.check("control: setuid(0) works without a drop", r == 0, r);
    let e = std::fs::read("/etc/shadow").map(|_| ());
    c.check("control: /etc/shadow readable as root", e.is_ok(), &e);
    c.code()
}

/// Calls refused by design, made through their libc wrappers with harmless bad arguments:
/// unconfined they fail with the natural errno (or succeed: the control); confined each must be
/// refused and named (`seccomp-probe`), `clone3` answered ENOSYS.
fn probes() -> Vec<(&'static str, Box<dyn Fn() -> i64>, i32)> {
    let bin_true = CString::new("/nonexistent/privsep-no-such-binary").unwrap();
    vec![
        (
            "execve",
            Box::new(move || {
                let argv = [bin_true.as_ptr(), std::ptr::null()];
                let envp = [std::ptr::null()];
                // SAFETY: NUL-terminated path and null-terminated argv/envp arrays, live here.
                i64::from(unsafe { libc::execve(bin_true.as_ptr(), argv.as_ptr(), envp.as_ptr()) })
            }),
            libc::ENOENT,
        ),
        (
            "ptrace(PTRACE_PEEKDATA, no such pid)",
            // SAFETY: a nonexistent pid: the kernel only looks it up.
            Box::new(|| unsafe {
                libc::syscall(libc::SYS_ptrace, libc::PTRACE_PEEKDATA, 0x3fff_fff0, 0, 0)
            }),
            libc::ESRCH,
        ),
        (
            "process_vm_readv(no such pid)",
            // SAFETY: zero iovecs, a nonexistent pid and an invalid flag (rejected with EINVAL
            // first): nothing is read or written. Every argument is 64 bits wide: a plain `0` in
            // this variadic call leaves the register's upper half undefined (the count was
            // sometimes garbage, sometimes 0 and the call then returned 0).
            Box::new(|| unsafe {
                libc::syscall(
                    libc::SYS_process_vm_readv,
                    0x3fff_fff0_i64,
                    std::ptr::null::<libc::iovec>(),
                    0_i64,
                    std::ptr::null::<libc::iovec>(),
                    0_i64,
                    1_i64,
                )
            }),
            libc::EINVAL,
        ),
        (
            "unshare(CLONE_NEWUSER|CLONE_FS-invalid)",
            // SAFETY: an invalid flag combination is rejected before anything changes
            // (unknown high bit).
            Box::new(|| unsafe { libc::syscall(libc::SYS_unshare, 0x1_0000_0000u64 as i64) }),
            libc::EINVAL,
        ),
        (
            "clone(CLONE_NEWUSER|CLONE_FS)",
            // SAFETY: CLONE_NEWUSER with CLONE_FS is rejected with EINVAL before any process is
            // created.
            Box::new(|| unsafe {
                libc::syscall(
                    libc::SYS_clone,
                    (libc::CLONE_NEWUSER | libc::CLONE_FS | libc::SIGCHLD) as i64,
                    0,
                    0,
                    0,
                    0,
                )
            }),
            libc::EINVAL,
        ),
        (
            "bpf(invalid cmd)",
            // SAFETY: an invalid command with a null attribute pointer.
            Box::new(|| unsafe { libc::syscall(libc::SYS_bpf, -1, 0, 0) }),
            libc::EINVAL,
        ),
        (
            "perf_event_open(NULL)",
            // SAFETY: a null attribute pointer is rejected with EFAULT.
            Box::new(|| unsafe { libc::syscall(libc::SYS_perf_event_open, 0, 0, -1, -1, 0) }),
            libc::EFAULT,
        ),
        (
            "keyctl(invalid op)",
            // SAFETY: an unknown operation is rejected.
            Box::new(|| unsafe { libc::syscall(libc::SYS_keyctl, 0x7fff, 0, 0, 0, 0) }),
            libc::EOPNOTSUPP,
        ),
        (
            "mount(NULL)",
            // SAFETY: null pointers are rejected with EFAULT.
            Box::new(|| unsafe { libc::syscall(libc::SYS_mount, 0, 0, 0, 0, 0) }),
            libc::EFAULT,
        ),
        (
            "socket(AF_PACKET)",
            Box::new(|| {
                // SAFETY: integer-only; a descriptor returned is closed below.
                let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, 0) };
                if fd >= 0 {
                    // SAFETY: `fd` was just created and is owned here.
                    unsafe { libc::close(fd) };
                    0
                } else {
                    -1
                }
            }),
            0,
        ),
        (
            "prctl(PR_SET_DUMPABLE, 0)",
            // SAFETY: integer-only prctl (sets the value we want anyway).
            Box::new(|| i64::from(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) })),
            0,
        ),
        (
            "ioctl(TIOCSTI) on fd -1",
            // SAFETY: fd -1 is rejected with EBADF; the pointer is never read.
            Box::new(|| i64::from(unsafe { libc::ioctl(-1, libc::TIOCSTI, c"x".as_ptr()) })),
            libc::EBADF,
        ),
        (
            "clone(CLONE_VM|CLONE_VFORK) spawning /bin/true",
            Box::new(|| match Command::new("/bin/true").status() {
                Ok(s) if s.success() => 0,
                _ => -1,
            }),
            0,
        ),
        (
            "clone3",
            // SAFETY: a null args pointer with size 0 is rejected with EINVAL.
            Box::new(|| unsafe { libc::syscall(libc::SYS_clone3, 0, 0) }),
            libc::EINVAL,
        ),
    ]
}

/// The kernel's name of the call a probe or row is about (`"ioctl(TIOCSTI) on fd -1"` → `ioctl`).
fn call_name(label: &str) -> &str {
    label.split(['(', ' ']).next().unwrap_or(label)
}

/// `seccomp-probe NAME confine|control`: one named probe, confined by the proxy's real
/// `confine()` or not. Confined, the probe must not return: the SIGSYS reporter names it and
/// exits with `REFUSED_SYSCALL_EXIT` (`clone3` excepted: the ABI filter answers ENOSYS).
fn scenario_seccomp_probe(name: &str, confined: bool) -> i32 {
    let mut c = Checks::new();
    let Some((_, probe, natural)) = probes().into_iter().find(|(n, _, _)| *n == name) else {
        eprintln!("no probe {name}");
        return 2;
    };
    if confined {
        if let Err(e) = confine(&ConfineSpec::default()) {
            eprintln!("confine failed: {e}");
            return 2;
        }
    }
    let r = probe();
    if !confined && natural == 0 {
        c.check(&format!("control: {name} succeeds"), r >= 0, r);
    } else if !confined {
        c.errno(&format!("control: {name}"), r, natural);
    } else if name == "clone3" {
        c.errno("confined: clone3 -> ENOSYS (ABI filter)", r, libc::ENOSYS);
    } else {
        c.check(&format!("confined: {name} was made"), false, r);
    }
    c.code()
}

/// `seccomp-call NR A0 .. A5 confine|control`: one raw call (arguments in hex); prints
/// `errno=N` (0: success) and exits 0 if it returns at all.
fn scenario_seccomp_call(args: &[String]) -> i32 {
    let nr: libc::c_long = args[0].parse().unwrap();
    let a: Vec<u64> = args[1..7]
        .iter()
        .map(|v| u64::from_str_radix(v, 16).unwrap())
        .collect();
    if args[7] == "confine" {
        if let Err(e) = confine(&ConfineSpec::default()) {
            eprintln!("confine failed: {e}");
            return 2;
        }
    }
    // SAFETY: the parent passes only harmless bad arguments (invalid pointers, descriptors,
    // flags or magic numbers the kernel rejects before acting; see `refused_args`).
    let r = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    let e = if r == -1 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    } else {
        0
    };
    println!("errno={e}");
    0
}

/// `int 0x80` with i386's getpid (20): the pid, or the process dies.
#[cfg(target_arch = "x86_64")]
fn int80_getpid() -> i64 {
    let mut ret: i64 = 20;
    // SAFETY: i386 getpid takes no arguments and touches no memory; `int 0x80` clobbers only
    // eax (declared) and the kernel preserves the other registers.
    unsafe { std::arch::asm!("int 0x80", inout("rax") ret, options(nostack)) };
    ret
}

/// `seccomp-int80 confine|control`: the i386 ABI answers getpid unconfined; confined the ABI
/// filter kills the process (the parent checks the SIGSYS death).
#[cfg(target_arch = "x86_64")]
fn scenario_int80(confined: bool) -> i32 {
    if confined {
        if let Err(e) = confine(&ConfineSpec::default()) {
            eprintln!("confine failed: {e}");
            return 2;
        }
    }
    let pid = i64::from(std::process::id());
    let got = int80_getpid();
    eprintln!("int 0x80 getpid = {got}, pid {pid}");
    i32::from(got != pid)
}

/// What serving needs still works under the allow-list; the ABI filter's answers stand.
fn scenario_seccomp() -> i32 {
    let mut c = Checks::new();
    // Control before: an x32 number is the kernel's (ENOSYS without x32 support, else a pid).
    #[cfg(target_arch = "x86_64")]
    // SAFETY: x32 getpid (39 | X32 bit) takes no arguments.
    let x32_before = unsafe { libc::syscall(39 | 0x4000_0000) };
    #[cfg(target_arch = "x86_64")]
    let x32_before_errno = std::io::Error::last_os_error().raw_os_error();
    let report = match confine(&ConfineSpec::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("confine failed: {e}");
            return 1;
        }
    };
    eprintln!("{}", report.summary());
    #[cfg(target_arch = "x86_64")]
    {
        c.check(
            "control: x32 getpid unconfined is not EPERM",
            x32_before != -1 || x32_before_errno != Some(libc::EPERM),
            (x32_before, x32_before_errno),
        );
        // SAFETY: as above.
        let r = unsafe { libc::syscall(39 | 0x4000_0000) };
        c.errno("confined: x32 getpid -> EPERM (ABI filter)", r, libc::EPERM);
        // SAFETY: as above, with ptrace's number: the refused call through the x32 door.
        let r = unsafe { libc::syscall(libc::SYS_ptrace | 0x4000_0000, 0, 0, 0, 0) };
        c.errno("confined: x32 ptrace -> EPERM (ABI filter)", r, libc::EPERM);
    }
    // SAFETY: a null args pointer with size 0 (EINVAL unconfined, see the probes' control).
    let r = unsafe { libc::syscall(libc::SYS_clone3, 0, 0) };
    c.errno("confined: clone3 -> ENOSYS (ABI filter)", r, libc::ENOSYS);
    let (a, mut b) = UnixStream::pair().unwrap();
    (&a).write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    b.read_exact(&mut buf).unwrap();
    c.check("confined: unix socketpair read/write", &buf == b"ping", buf);
    for (fam, name) in [
        (libc::AF_UNIX, "AF_UNIX"),
        (libc::AF_INET, "AF_INET"),
        (libc::AF_INET6, "AF_INET6"),
    ] {
        // SAFETY: integer-only; the descriptor is closed right away.
        let fd = unsafe { libc::socket(fam, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        c.check(&format!("confined: socket({name}) works"), fd >= 0, fd);
        // SAFETY: `fd` is ours (or -1, harmless).
        unsafe { libc::close(fd) };
    }
    let t = std::thread::Builder::new()
        .name("named".into())
        .spawn(|| 7)
        .unwrap()
        .join();
    c.check(
        "confined: threads start (clone3 -> ENOSYS -> clone(CLONE_THREAD)), are named and join",
        matches!(t, Ok(7)),
        (),
    );
    c.check("report: no_new_privs", report.no_new_privs, &report);
    c.check("report: seccomp mode 2", report.seccomp_mode == 2, &report);
    c.check(
        "report: the allow-list's rows",
        report.seccomp_allowed.len() == codex_privsep::seccomp_policy::table().len(),
        &report.seccomp_allowed,
    );
    c.code()
}

fn scenario_landlock(dump: &Path, port: u16) -> i32 {
    let mut c = Checks::new();
    // Controls before confinement.
    c.check(
        "control: /etc/passwd readable before",
        std::fs::read("/etc/passwd").is_ok(),
        (),
    );
    // An abstract unix socket created outside the (future) Landlock domain.
    use std::os::linux::net::SocketAddrExt;
    let name = format!("privsep-test-{}", std::process::id());
    let abs = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let abs_listener = UnixListener::bind_addr(&abs).unwrap();
    let before = UnixStream::connect_addr(&abs);
    c.check(
        "control: abstract socket reachable before",
        before.is_ok(),
        &before,
    );
    let readable = dump.with_extension("readable");
    let spec = ConfineSpec {
        read_paths: vec![readable.clone()],
        write_dirs: vec![dump.to_owned()],
        connect_ports: vec![port],
        allow_dns: false,
    };
    let report = match confine(&spec) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("confine failed: {e}");
            return 1;
        }
    };
    eprintln!("{}", report.summary());
    eprintln!("{}", secure_main::hardening_report());
    let e = std::fs::read("/etc/passwd")
        .map(|_| ())
        .map_err(|e| e.raw_os_error());
    c.check("/etc/passwd -> EACCES", e == Err(Some(libc::EACCES)), &e);
    let r = std::fs::read(&readable);
    c.check(
        "read_paths: the allowed file is readable",
        r.as_deref().ok() == Some(b"ok".as_slice()),
        &r,
    );
    let e = std::fs::write(&readable, b"x").map_err(|e| e.raw_os_error());
    c.check(
        "read_paths: but not writable -> EACCES",
        e == Err(Some(libc::EACCES)),
        &e,
    );
    let e = UnixStream::connect_addr(&abs)
        .map(|_| ())
        .map_err(|e| e.raw_os_error());
    c.check(
        "abstract socket from outside the domain -> EPERM (scope)",
        e == Err(Some(libc::EPERM)),
        &e,
    );
    drop(abs_listener);
    let e = std::fs::read_dir("/")
        .map(|_| ())
        .map_err(|e| e.raw_os_error());
    c.check("listing / -> EACCES", e == Err(Some(libc::EACCES)), &e);
    let f = dump.join("1-request.json");
    let w = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&f)
        .and_then(|mut h| h.write_all(b"{}"));
    c.check("dump dir: create + write works", w.is_ok(), &w);
    let r = std::fs::read(&f);
    c.check(
        "dump dir: read back",
        r.as_deref().ok() == Some(b"{}".as_slice()),
        &r,
    );
    // unlink, bind and kill would be Landlock's EACCES/EPERM, but the seccomp allow-list
    // installed by the same `confine()` refuses them first (not in the list: the process would
    // be stopped here); `seccomp_refuses_every_documented_call_by_name` makes each of them.
    let outside = dump.with_extension("outside");
    let e = std::fs::write(&outside, b"x").map_err(|e| e.raw_os_error());
    c.check(
        "write outside dump dir -> EACCES",
        e == Err(Some(libc::EACCES)),
        &e,
    );
    let ok = TcpStream::connect(("127.0.0.1", port));
    c.check("tcp connect to the allowed port works", ok.is_ok(), &ok);
    let other = if port == 1 { 2 } else { port - 1 };
    let e = TcpStream::connect(("127.0.0.1", other))
        .map(|_| ())
        .map_err(|e| e.raw_os_error());
    c.check(
        "tcp connect to another port -> EACCES",
        e == Err(Some(libc::EACCES)),
        &e,
    );
    c.code()
}

/// A DNS answer for `query`: A queries get 127.0.0.1, anything else no answer (NOERROR).
fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    // Header (12 bytes), then the question: labels up to a 0 byte, type and class.
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += usize::from(query[end]) + 1;
    }
    let qtype = u16::from_be_bytes([*query.get(end + 1)?, *query.get(end + 2)?]);
    end += 5;
    let a = qtype == 1;
    let mut r = Vec::new();
    r.extend_from_slice(&query[..2]); // id
    r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, u8::from(a), 0, 0, 0, 0]);
    r.extend_from_slice(query.get(12..end)?);
    if a {
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    }
    Some(r)
}

/// The glibc resolver's UDP path (`hosts: files dns`, the name not in /etc/hosts) under the
/// proxy's confinement, against a fake nameserver: private mount and network namespaces, a
/// resolv.conf naming 127.0.0.1 bind-mounted over /etc/resolv.conf, a forked responder on
/// 127.0.0.1:53. Control: the name resolves before confinement; then it must resolve confined
/// (every call of that path is in the allow-list, or the child is refused and exits 10).
fn scenario_dns_fake() -> i32 {
    use std::net::{ToSocketAddrs, UdpSocket};
    let mut c = Checks::new();
    let name = "upstream.privsep-test.invalid";
    // SAFETY: integer-only; this child is single-threaded and root.
    if unsafe { libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWNET) } != 0 {
        eprintln!("unshare: {}", std::io::Error::last_os_error());
        return 2;
    }
    let root = CString::new("/").unwrap();
    // SAFETY: NUL-terminated path; null source/type/data are allowed for a propagation change.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    // Loopback up in the new network namespace: ip(8) does the ioctl.
    let st = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status();
    assert!(
        st.as_ref().is_ok_and(|s| s.success()),
        "ip link set lo up: {st:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("resolv.conf");
    std::fs::write(
        &conf,
        "nameserver 127.0.0.1\noptions timeout:2 attempts:1\n",
    )
    .unwrap();
    let src = CString::new(conf.to_str().unwrap()).unwrap();
    let dst = CString::new("/etc/resolv.conf").unwrap();
    // SAFETY: NUL-terminated paths; a bind mount in our private mount namespace.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    assert_eq!(
        r,
        0,
        "bind resolv.conf: {}",
        std::io::Error::last_os_error()
    );
    let server = UdpSocket::bind("127.0.0.1:53").unwrap();
    server
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    // SAFETY: single-threaded: the forked responder only uses its socket and `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // The responder leaves the runner's pipes (which it would hold open) and ends when
        // idle: the confined scenario cannot signal it, and Landlock's signal scope also stops
        // the parent-death signal of a confined parent (observed: PR_SET_PDEATHSIG never came).
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        // SAFETY: dup2 onto this process's own stdout/stderr.
        unsafe {
            libc::dup2(null.as_raw_fd(), 1);
            libc::dup2(null.as_raw_fd(), 2);
        }
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = server.recv_from(&mut buf) {
            if let Some(answer) = dns_answer(&buf[..n]) {
                let _ = server.send_to(&answer, from);
            }
        }
        // SAFETY: _exit does not return.
        unsafe { libc::_exit(0) };
    }
    drop(server);
    let want: Vec<SocketAddr> = vec![([127, 0, 0, 1], 443).into()];
    let before = (name, 443).to_socket_addrs().map(|a| a.collect::<Vec<_>>());
    c.check(
        "control: the fake nameserver answers unconfined",
        before.as_ref().ok() == Some(&want),
        &before,
    );
    let spec = ConfineSpec {
        allow_dns: true,
        connect_ports: vec![443],
        ..ConfineSpec::default()
    };
    if let Err(e) = confine(&spec) {
        eprintln!("confine failed: {e}");
        return 1;
    }
    let after = (name, 443).to_socket_addrs().map(|a| a.collect::<Vec<_>>());
    c.check(
        "confined: the name resolves through the nameserver (UDP path of getaddrinfo)",
        after.as_ref().ok() == Some(&want),
        &after,
    );
    c.code()
}

/// A name with two addresses under the proxy's confinement (review round 5, F1): glibc sorts
/// them (RFC 3484) and for that asks the kernel for the local addresses over a NETLINK_ROUTE
/// socket. Private mount namespace; a hosts file giving the name 127.0.0.1 and 127.0.0.2
/// bind-mounted over /etc/hosts (`hosts: files` answers before any nameserver). Control: two
/// addresses unconfined; then both confined (a missing row: the reporter names it, exit 10).
fn scenario_dns_multi() -> i32 {
    use std::net::ToSocketAddrs;
    let mut c = Checks::new();
    let name = "multi.privsep-test.invalid";
    // SAFETY: integer-only; this child is single-threaded and root.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        eprintln!("unshare: {}", std::io::Error::last_os_error());
        return 2;
    }
    let root = CString::new("/").unwrap();
    // SAFETY: NUL-terminated path; null source/type/data are allowed for a propagation change.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n127.0.0.1 {name}\n127.0.0.2 {name}\n"),
    )
    .unwrap();
    let src = CString::new(hosts.to_str().unwrap()).unwrap();
    let dst = CString::new("/etc/hosts").unwrap();
    // SAFETY: NUL-terminated paths; a bind mount in our private mount namespace.
    let r = unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "bind hosts: {}", std::io::Error::last_os_error());
    let sorted = |v: Vec<SocketAddr>| {
        let mut v = v;
        v.sort();
        v
    };
    let want: Vec<SocketAddr> = vec![([127, 0, 0, 1], 443).into(), ([127, 0, 0, 2], 443).into()];
    let before = (name, 443).to_socket_addrs().map(|a| sorted(a.collect()));
    c.check(
        "control: two addresses unconfined",
        before.as_ref().ok() == Some(&want),
        &before,
    );
    let spec = ConfineSpec {
        allow_dns: true,
        connect_ports: vec![443],
        ..ConfineSpec::default()
    };
    if let Err(e) = confine(&spec) {
        eprintln!("confine failed: {e}");
        return 1;
    }
    let after = (name, 443).to_socket_addrs().map(|a| sorted(a.collect()));
    c.check(
        "confined: both addresses (glibc's RFC 3484 sorting ran under the filter)",
        after.as_ref().ok() == Some(&want),
        &after,
    );
    c.code()
}

/// A panic under the proxy's filter (review round 5, F6), with `RUST_BACKTRACE=1`: with
/// `hook` the proxy's panic hook, else std's (which asks for `getcwd` to print the backtrace).
fn scenario_panic_confined(hook: bool) -> i32 {
    if hook {
        codex_privsep::install_panic_hook("responses-api-proxy: ");
    }
    if let Err(e) = confine(&ConfineSpec::default()) {
        eprintln!("confine failed: {e}");
        return 1;
    }
    panic!("deliberate panic-canary-F6");
}

/// Name resolution under confinement: works with `allow_dns` (resolver files and NSS libraries
/// readable), fails without (control), while `/etc/passwd` stays unreadable either way.
fn scenario_dns(allow: bool) -> i32 {
    use std::net::ToSocketAddrs;
    let mut c = Checks::new();
    let before = ("localhost", 80).to_socket_addrs().map(|a| a.count());
    c.check(
        "control: localhost resolves before",
        before.is_ok(),
        &before,
    );
    let spec = ConfineSpec {
        allow_dns: allow,
        ..ConfineSpec::default()
    };
    if let Err(e) = confine(&spec) {
        eprintln!("confine failed: {e}");
        return 1;
    }
    let after = ("localhost", 80).to_socket_addrs().map(|a| a.count());
    if allow {
        c.check("allow_dns: localhost still resolves", after.is_ok(), &after);
    } else {
        c.check(
            "no allow_dns: localhost no longer resolves",
            after.is_err(),
            &after,
        );
    }
    let e = std::fs::read("/etc/passwd")
        .map(|_| ())
        .map_err(|e| e.raw_os_error());
    c.check("/etc/passwd -> EACCES", e == Err(Some(libc::EACCES)), &e);
    c.code()
}

fn scenario_threads() -> i32 {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    let r = confine(&ConfineSpec::default());
    drop(tx);
    t.join().unwrap();
    match r {
        Err(ConfineError::Threads { threads: 2 }) => {
            // And nothing was applied: no_new_privs still off.
            // SAFETY: integer-only prctl.
            let nnp = unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) };
            if nnp != 0 {
                eprintln!("no_new_privs was set despite the refusal");
                return 1;
            }
            0
        }
        other => {
            eprintln!("expected Threads {{ threads: 2 }}, got {other:?}");
            1
        }
    }
}

fn scenario_identify_confined() -> i32 {
    let mut c = Checks::new();
    let ident = PeerIdentifier::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let plan = RunAs::decide(Some("nobody"), false).unwrap();
    if let Err(e) = plan.apply() {
        eprintln!("drop failed: {e}");
        return 1;
    }
    if let Err(e) = confine(&ConfineSpec {
        connect_ports: vec![port],
        ..ConfineSpec::default()
    }) {
        eprintln!("confine failed: {e}");
        return 1;
    }
    let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (server, _) = listener.accept().unwrap();
    let r = ident.peer_of(&server);
    c.check(
        "sock_diag works after drop + confine: uid 65534",
        matches!(r, Ok(ref p) if p.uid == NOBODY),
        &r,
    );
    drop(client);
    c.code()
}

fn scenario_activation_wrong_pid() -> i32 {
    let mut c = Checks::new();
    let r = listeners_from_systemd();
    c.check(
        "LISTEN_PID of another process refused",
        matches!(r, Err(codex_privsep::ActivationError::WrongPid { .. })),
        r.as_ref().map(Vec::len).map_err(ToString::to_string),
    );
    c.check(
        "variables removed",
        std::env::var_os("LISTEN_FDS").is_none() && std::env::var_os("LISTEN_PID").is_none(),
        (),
    );
    c.code()
}

/// `unsafe_dir`: the unix socket's directory is mode 0777 without the sticky bit (another user
/// could replace the socket): the activation must be refused naming it; the control (false)
/// receives both listeners.
fn scenario_activation(unsafe_dir: bool) -> i32 {
    let mut c = Checks::new();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = tcp.local_addr().unwrap();
    let d = tempfile::tempdir().unwrap();
    let upath = d.path().join("a.sock");
    let unix = UnixListener::bind(&upath).unwrap();
    if unsafe_dir {
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    // Put them at 3 and 4 without FD_CLOEXEC, as systemd passes them: first move both out of
    // the way (copies at >= 100), then dup2 the copies onto 3 and 4 (dup2 clears FD_CLOEXEC).
    use std::os::fd::IntoRawFd;
    let (t, u) = (tcp.into_raw_fd(), unix.into_raw_fd());
    // SAFETY: `t` and `u` are descriptors this single-threaded child owns (released from the
    // std objects above); each is duplicated, then closed exactly once; 3 and 4 end up as the
    // only references, owned by nothing until `listeners_from_systemd` claims them.
    let ok = unsafe {
        let th = libc::fcntl(t, libc::F_DUPFD_CLOEXEC, 100);
        let uh = libc::fcntl(u, libc::F_DUPFD_CLOEXEC, 100);
        libc::close(t);
        libc::close(u);
        let ok = th >= 100 && uh >= 100 && libc::dup2(th, 3) == 3 && libc::dup2(uh, 4) == 4;
        libc::close(th);
        libc::close(uh);
        ok
    };
    if !ok {
        eprintln!("could not arrange descriptors 3 and 4");
        return 1;
    }
    // SAFETY: this re-executed child is single-threaded (it started no thread).
    unsafe {
        std::env::set_var("LISTEN_FDS", "2");
        std::env::set_var("LISTEN_PID", std::process::id().to_string());
        std::env::set_var("LISTEN_FDNAMES", "tcp:unix");
    }
    let got = match (listeners_from_systemd(), unsafe_dir) {
        (Ok(g), false) => g,
        (Err(e), true) => {
            let msg = e.to_string();
            c.check(
                "activated socket in a directory others can write is refused, naming it",
                msg.contains(&format!("unix socket {}", upath.display()))
                    && msg.contains("group or others can replace entries"),
                &msg,
            );
            return c.code();
        }
        (Ok(g), true) => {
            c.check("unsafe directory refused", false, g.len());
            return c.code();
        }
        (Err(e), false) => {
            eprintln!("activation failed: {e}");
            return 1;
        }
    };
    c.check("two listeners", got.len() == 2, got.len());
    match got.first() {
        Some(codex_privsep::ActivatedListener::Tcp(l)) => {
            c.check(
                "fd 3 is the TCP listener",
                l.local_addr().ok() == Some(addr),
                l,
            );
            // SAFETY: F_GETFD on a live descriptor only reads its flags.
            let fl = unsafe { libc::fcntl(l.as_fd().as_raw_fd(), libc::F_GETFD) };
            c.check("FD_CLOEXEC set on fd 3", fl & libc::FD_CLOEXEC != 0, fl);
        }
        other => c.check("fd 3 is TCP", false, other),
    }
    match got.get(1) {
        Some(codex_privsep::ActivatedListener::Unix(l)) => {
            let p = l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_owned));
            c.check(
                "fd 4 is the unix listener",
                p.as_deref() == Some(&upath),
                &p,
            );
        }
        other => c.check("fd 4 is unix", false, other),
    }
    c.check(
        "variables removed",
        std::env::var_os("LISTEN_FDS").is_none()
            && std::env::var_os("LISTEN_PID").is_none()
            && std::env::var_os("LISTEN_FDNAMES").is_none(),
        (),
    );
    c.code()
}

// ---------------------------------------------------------------------------------------------
// Tests (parent side)
// ---------------------------------------------------------------------------------------------

/// The suite needs these; a missing one fails here loudly instead of skipping elsewhere.
fn kernel_features_present() {
    // SAFETY: integer-only getter.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "these tests must run as root");
    let abi = codex_privsep::confine::landlock_abi();
    assert!(
        matches!(abi, Ok(v) if v >= codex_privsep::confine::LANDLOCK_ABI as i32),
        "landlock ABI >= 6 needed (TCP rules, scopes): {abi:?}"
    );
    assert!(
        PeerIdentifier::new().is_ok(),
        "NETLINK_SOCK_DIAG unavailable"
    );
}

fn so_peercred_sees_nobody_and_root() {
    let d = tempdir_open();
    let path = d.path().join("s.sock");
    let l = UnixListener::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let mut ch = child_as_nobody("unix-connect", &[path.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(&mut ch);
    let (s, _) = l.accept().unwrap();
    let cred = peer_cred_unix(s.as_fd()).unwrap();
    assert_eq!(cred.uid, NOBODY);
    assert_eq!(cred.gid, Some(NOBODY));
    assert_eq!(cred.pid, Some(ch.id() as i32));
    drop(ch.stdin.take());
    assert!(ch.wait().unwrap().success());
    // Control: root's own connection.
    let _c = UnixStream::connect(&path).unwrap();
    let (s, _) = l.accept().unwrap();
    let cred = peer_cred_unix(s.as_fd()).unwrap();
    assert_eq!((cred.uid, cred.gid), (0, Some(0)));
    assert_eq!(cred.pid, Some(std::process::id() as i32));
}

fn sock_diag_finds_owner(bind: &str) {
    let ident = PeerIdentifier::new().unwrap();
    let l = TcpListener::bind(bind).unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let mut ch = child_as_nobody("tcp-connect", &[&addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(&mut ch);
    let (mut s, _) = l.accept().unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
    let cred = ident.peer_of(&s).unwrap();
    assert_eq!(cred.uid, NOBODY, "{bind}: nobody's connection");
    drop(ch.stdin.take());
    assert!(ch.wait().unwrap().success());
    // Control: root's connection.
    let _c = TcpStream::connect(&addr).unwrap();
    let (s, _) = l.accept().unwrap();
    assert_eq!(
        ident.peer_of(&s).unwrap().uid,
        0,
        "{bind}: root's connection"
    );
}

fn sock_diag_v4_finds_owner() {
    sock_diag_finds_owner("127.0.0.1:0");
}

fn sock_diag_v6_finds_owner() {
    sock_diag_finds_owner("[::1]:0");
}

fn sock_diag_unknown_tuple_refused() {
    let ident = PeerIdentifier::new().unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let local = l.local_addr().unwrap();
    // Nobody is connected from port 1.
    let fake: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let e = ident.peer_uid_tcp(local, fake).unwrap_err();
    assert!(matches!(e, PeerError::NotFound { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        format!("no local TCP socket 127.0.0.1:1 -> {local} (peer gone, or not on this host)")
    );
    let fake6: SocketAddr = "[::1]:1".parse().unwrap();
    let l6 = TcpListener::bind("[::1]:0").unwrap();
    let e = ident
        .peer_uid_tcp(l6.local_addr().unwrap(), fake6)
        .unwrap_err();
    assert!(matches!(e, PeerError::NotFound { .. }), "{e}");
}

/// A loopback TCP connection from uid 65534 (`nobody`) that the peer already closed, accepted here.
fn accept_closed_nobody_connection() -> TcpStream {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let st = child_as_nobody("tcp-connect-close", &[&addr])
        .status()
        .unwrap();
    assert!(st.success());
    l.accept().unwrap().0
}

/// A peer that connected and closed: the kernel keeps its socket (FIN_WAIT/TIME_WAIT) without an
/// owner and reports uid 0 for time-wait sockets. It must be refused, never taken for root.
fn sock_diag_closed_peer_is_not_root() {
    let ident = PeerIdentifier::new().unwrap();
    let s = accept_closed_nobody_connection();
    let r = ident.peer_of(&s);
    assert!(
        matches!(
            r,
            Err(PeerError::NotOwned { .. }) | Err(PeerError::NotFound { .. })
        ),
        "closed peer must not be identified: {r:?}"
    );
}

/// The peer closes first and we close too: its socket goes to TIME_WAIT, which the kernel reports
/// with uid 0. A closed nobody connection must never come out as root.
fn sock_diag_time_wait_peer_is_not_root() {
    let ident = PeerIdentifier::new().unwrap();
    let mut s = accept_closed_nobody_connection();
    let (local, peer) = (s.local_addr().unwrap(), s.peer_addr().unwrap());
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap(); // the peer's FIN
    drop(s); // our FIN: the peer socket enters TIME_WAIT
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = ident.peer_uid_tcp(local, peer);
        match r {
            Err(PeerError::NotOwned { state: 6, .. }) => break, // TIME_WAIT seen and refused
            Err(PeerError::NotOwned { .. }) | Err(PeerError::NotFound { .. }) => {}
            other => panic!("closed peer identified: {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "peer never reached TIME_WAIT: {r:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

struct TempAccount {
    user: String,
    group: String,
}

impl Drop for TempAccount {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.user).status();
        let _ = Command::new("groupdel").arg(&self.group).status();
    }
}

fn retry(what: &str, mut f: impl FnMut() -> std::io::Result<std::process::ExitStatus>) {
    let mut last = None;
    for _ in 0..20 {
        match f() {
            Ok(st) if st.success() => return,
            other => last = Some(other),
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!("{what} kept failing: {last:?}");
}

fn allow_list_supplementary_groups() {
    let tag = format!(
        "{}{}",
        std::process::id() % 100_000,
        Instant::now().elapsed().subsec_nanos() % 1000
    );
    let acct = TempAccount {
        user: format!("psu{tag}"),
        group: format!("psg{tag}"),
    };
    // Other tests on this machine may hold /etc/passwd's lock briefly: retry.
    retry("groupadd", || {
        Command::new("groupadd").arg(&acct.group).status()
    });
    retry("useradd", || {
        Command::new("useradd")
            .args([
                "-M",
                "-N",
                "-g",
                "nogroup",
                "-G",
                &acct.group,
                "-s",
                "/usr/sbin/nologin",
            ])
            .arg(&acct.user)
            .status()
    });
    let uid = codex_privsep::users::resolve_uid(&acct.user).unwrap();
    // The group is only a *supplementary* group of the user (primary: nogroup).
    let a = AllowList::resolve(Vec::<String>::new(), [acct.group.as_str()]).unwrap();
    assert!(a.allows(uid), "member via supplementary group allowed");
    assert!(
        !a.allows(NOBODY),
        "nobody (primary group nogroup too) refused"
    );
    assert!(!a.allows(0), "root refused");
    // Control: the primary group nogroup admits both.
    let b = AllowList::resolve(Vec::<String>::new(), ["nogroup"]).unwrap();
    assert!(b.allows(uid) && b.allows(NOBODY));
    // Numeric gid works the same.
    let gid = codex_privsep::users::resolve_gid(&acct.group).unwrap();
    let c = AllowList::resolve(Vec::<String>::new(), [gid.to_string()]).unwrap();
    assert!(c.allows(uid) && !c.allows(NOBODY));
}

fn privilege_drop_is_irreversible() {
    run_ok(child("drop", &["nobody"]));
    run_ok(child("no-drop-control", &[]));
}

fn default_drop_to_nobody() {
    run_ok(child("drop", &[]));
}

/// The refusal line the proxy's SIGSYS reporter writes for `call` (the start of it).
fn refusal_line(call: &str, nr: libc::c_long) -> String {
    format!("responses-api-proxy: seccomp refused system call {call} (nr {nr}): ")
}

/// Runs a confined child expected to be refused: exit `REFUSED_SYSCALL_EXIT`, and stderr
/// holding the line that names the call and says why. Returns a failure description.
fn expect_refused(mut c: Command, what: &str, line: &str, why: &str) -> Option<String> {
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let code = codex_privsep::seccomp_policy::REFUSED_SYSCALL_EXIT;
    let tail = format!("; exiting with code {code}");
    let ok = out.status.code() == Some(code)
        && err
            .lines()
            .any(|l| l.starts_with(line) && l[line.len()..].starts_with(why) && l.ends_with(&tail));
    (!ok).then(|| {
        format!(
            "{what}: status {}, stderr {err:?}, wanted {line}{why}...",
            out.status
        )
    })
}

fn seccomp_allow_list_serves_and_defers_to_the_abi_filter() {
    run_ok(child("seccomp", &[]));
}

/// Each named probe: the control makes the call (natural errno), the proxy's confinement
/// refuses it with the line naming it and exit 10.
fn seccomp_refuses_and_names_each_probe() {
    let mut failures = Vec::new();
    for (name, _, _) in probes() {
        run_ok(child("seccomp-probe", &[name, "control"]));
        if name == "clone3" {
            run_ok(child("seccomp-probe", &[name, "confine"]));
            continue;
        }
        if name.contains("spawning") {
            // posix_spawn blocks every signal around its clone: the kernel cannot run the
            // reporter and kills with SIGSYS instead (documented in seccomp_policy): refused,
            // without the line.
            use std::os::unix::process::ExitStatusExt;
            let out = child("seccomp-probe", &[name, "confine"]).output().unwrap();
            if out.status.signal() != Some(libc::SIGSYS) {
                failures.push(format!("{name}: {} (wanted death by SIGSYS)", out.status));
            }
            continue;
        }
        // The nr is in the line; find the call's by its name through the row tables.
        let nr = match call_name(name) {
            "execve" => libc::SYS_execve,
            "ptrace" => libc::SYS_ptrace,
            "process_vm_readv" => libc::SYS_process_vm_readv,
            "unshare" => libc::SYS_unshare,
            "clone" => libc::SYS_clone,
            "bpf" => libc::SYS_bpf,
            "perf_event_open" => libc::SYS_perf_event_open,
            "keyctl" => libc::SYS_keyctl,
            "mount" => libc::SYS_mount,
            "socket" => libc::SYS_socket,
            "prctl" => libc::SYS_prctl,
            "ioctl" => libc::SYS_ioctl,
            other => panic!("probe {other}: no number"),
        };
        let line = refusal_line(call_name(name), nr);
        failures.extend(expect_refused(
            child("seccomp-probe", &[name, "confine"]),
            name,
            &line,
            "",
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Harmless bad arguments matching a refused row (the same choice as codex-confine's table
/// walk): all-ones everywhere; the row's argument set to a value it matches.
fn refused_args(r: &Rule) -> [u64; 6] {
    let mut a = [u64::MAX; 6];
    if r.nr == libc::SYS_clone {
        a[0] = (libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
    } else if r.nr == libc::SYS_init_module {
        a[1] = 0;
    }
    match r.condition {
        Condition::Always => {}
        Condition::Bits64 { arg, mask } => a[usize::from(arg)] |= mask,
        Condition::Eq32 { arg, value } => a[usize::from(arg)] = u64::from(value),
        Condition::NotIn32 { arg, .. } => a[usize::from(arg)] = libc::AF_PACKET as u64,
        Condition::Masked64 { arg, mask, value } => {
            a[usize::from(arg)] = (a[usize::from(arg)] & !mask) | value
        }
        Condition::Masked32 {
            arg, mask, value, ..
        } => a[usize::from(arg)] = u64::from(!mask | value),
    }
    a
}

fn call_child(nr: libc::c_long, a: &[u64; 6], mode: &str) -> Command {
    let mut args: Vec<String> = vec![nr.to_string()];
    args.extend(a.iter().map(|v| format!("{v:x}")));
    args.push(mode.to_string());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    child("seccomp-call", &refs)
}

/// Every call the docs list as refused (`seccomp_policy::REFUSED`: the baseline and the proxy's
/// own rows) and one call in no list: made unconfined (the control: the call returns) and under
/// the proxy's real `confine()` (refused, named with its reason, exit 10).
fn seccomp_refuses_every_documented_call_by_name() {
    use codex_privsep::seccomp_policy::{REFUSED, table};
    let allowed = table();
    let mut failures = Vec::new();
    let mut n = 0;
    let mut rows: Vec<(String, libc::c_long, [u64; 6], String)> = Vec::new();
    for r in REFUSED.iter().flat_map(|t| t.iter()) {
        let why = if allowed.iter().any(|a| a.nr == r.nr) {
            "its arguments match no row of the allow-list".to_string()
        } else {
            format!("denied by design: {}", r.reason)
        };
        rows.push((r.name.to_string(), r.nr, refused_args(r), why));
    }
    // In no list: what the proxy never does (Landlock would refuse the first ones as well).
    for (name, nr) in [
        ("unlinkat", libc::SYS_unlinkat),
        ("listen", libc::SYS_listen),
        ("kill", libc::SYS_kill),
        ("getppid", libc::SYS_getppid),
        ("getcwd", libc::SYS_getcwd),
    ] {
        assert!(!allowed.iter().any(|a| a.nr == nr), "{name} is allowed");
        rows.push((
            name.into(),
            nr,
            [u64::MAX; 6],
            "not in the allow-list".into(),
        ));
    }
    // Allowed only with a 12-byte address (glibc's netlink socket): a sockaddr_in-sized bind
    // (what an inet port needs) matches no row.
    let mut a = [u64::MAX; 6];
    a[2] = std::mem::size_of::<libc::sockaddr_in>() as u64;
    rows.push((
        "bind".into(),
        libc::SYS_bind,
        a,
        "its arguments match no row of the allow-list".into(),
    ));
    for (name, nr, a, why) in &rows {
        n += 1;
        let out = call_child(*nr, a, "control").output().unwrap();
        if !out.status.success() || !String::from_utf8_lossy(&out.stdout).starts_with("errno=") {
            failures.push(format!("control {name}: {}", out.status));
        }
        failures.extend(expect_refused(
            call_child(*nr, a, "confine"),
            name,
            &refusal_line(call_name(name), *nr),
            why,
        ));
    }
    eprintln!("  {n} refused calls, each with its control");
    assert!(n > 70, "only {n} rows");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `int 0x80` (i386 ABI, other numbers) kills the confined proxy with SIGSYS; control: the
/// i386 getpid answers unconfined.
#[cfg(target_arch = "x86_64")]
fn seccomp_int_0x80_is_killed() {
    use std::os::unix::process::ExitStatusExt;
    run_ok(child("seccomp-int80", &["control"]));
    let out = child("seccomp-int80", &["confine"]).output().unwrap();
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSYS),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn landlock_limits_files_and_net() {
    let d = tempfile::tempdir().unwrap();
    let dump = d.path().join("dump");
    std::fs::create_dir(&dump).unwrap();
    std::fs::write(dump.with_extension("readable"), b"ok").unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    run_ok(child(
        "landlock",
        &[dump.to_str().unwrap(), &port.to_string()],
    ));
    assert!(!dump.with_extension("outside").exists());
    assert!(dump.join("1-request.json").exists());
}

fn dns_resolution_only_with_allow_dns() {
    run_ok(child("dns", &["allow"]));
    run_ok(child("dns", &["deny"]));
}

fn dns_query_to_a_nameserver_under_the_allow_list() {
    run_ok(child("dns-fake", &[]));
}

fn dns_multi_address_sorting_under_the_allow_list() {
    run_ok(child("dns-multi", &[]));
}

fn a_panic_under_the_allow_list_reports_itself() {
    let run = |mode: &str| {
        let out = child("panic-confined", &[mode])
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The proxy's hook: the panic reports itself (one line), std's exit 101, no refusal.
    let (status, err) = run("hook");
    assert!(
        err.contains("responses-api-proxy: panic in thread main at ")
            && err.contains("deliberate panic-canary-F6"),
        "{err}"
    );
    assert!(!err.contains("seccomp refused"), "{err}");
    assert_eq!(status.code(), Some(101), "{err}");
    // Control: std's hook under the same filter ends in a refusal and exit 10 (what the review
    // saw as "seccomp refused getcwd").
    let (status, err) = run("std");
    assert!(err.contains("seccomp refused system call"), "{err}");
    assert_eq!(status.code(), Some(10), "{err}");
}

fn confine_refuses_multithreaded() {
    run_ok(child("threads", &[]));
}

fn identify_after_drop_and_confine() {
    run_ok(child("identify-confined", &[]));
}

fn spec(path: PathBuf, mode: u32, group: Option<u32>) -> UnixSocketSpec {
    UnixSocketSpec { path, mode, group }
}

fn unix_socket_stale_replaced() {
    let d = tempdir_open();
    let path = d.path().join("p.sock");
    drop(UnixListener::bind(&path).unwrap()); // leaves a stale socket file
    assert!(path.exists());
    let e = UnixStream::connect(&path)
        .map(drop)
        .map_err(|e| e.raw_os_error());
    assert_eq!(e, Err(Some(libc::ECONNREFUSED)), "stale: nobody listens");
    let l = bind_unix_listener(&spec(path.clone(), 0o600, None)).unwrap();
    let _c = UnixStream::connect(&path).unwrap();
    l.accept().unwrap();
}

fn unix_socket_live_refused() {
    let d = tempdir_open();
    let path = d.path().join("p.sock");
    let live = UnixListener::bind(&path).unwrap();
    let e = bind_unix_listener(&spec(path.clone(), 0o600, None)).unwrap_err();
    assert!(matches!(e, UnixSocketError::InUse { .. }), "{e}");
    // The running server still owns its socket.
    let _c = UnixStream::connect(&path).unwrap();
    live.accept().unwrap();
}

/// Binding at `path` is refused with `NotASocket` naming `kind` (what is there instead).
fn assert_not_a_socket(path: &Path, kind: &str) {
    let e = bind_unix_listener(&spec(path.to_path_buf(), 0o600, None)).unwrap_err();
    assert!(
        matches!(&e, UnixSocketError::NotASocket { kind: k, .. } if *k == kind),
        "{e}"
    );
}

fn unix_socket_non_socket_untouched() {
    let d = tempdir_open();
    // Regular file.
    let file = d.path().join("f.sock");
    std::fs::write(&file, b"precious").unwrap();
    assert_not_a_socket(&file, "regular file");
    assert_eq!(std::fs::read(&file).unwrap(), b"precious");
    // Symlink to a file: neither the link nor its target change.
    let target = d.path().join("target");
    std::fs::write(&target, b"target").unwrap();
    let link = d.path().join("l.sock");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_not_a_socket(&link, "symlink");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"target");
    // Symlink to a stale socket: still a symlink, refused (never followed).
    let sock = d.path().join("real.sock");
    drop(UnixListener::bind(&sock).unwrap());
    let link2 = d.path().join("l2.sock");
    std::os::unix::fs::symlink(&sock, &link2).unwrap();
    assert_not_a_socket(&link2, "symlink");
    assert!(sock.exists(), "the symlink's target socket was not removed");
    // Directory.
    let dir = d.path().join("d.sock");
    std::fs::create_dir(&dir).unwrap();
    assert_not_a_socket(&dir, "directory");
    // Control: a fresh path binds.
    bind_unix_listener(&spec(d.path().join("new.sock"), 0o600, None)).unwrap();
}

fn unix_socket_mode_and_group() {
    let d = tempdir_open();
    let path = d.path().join("g.sock");
    let _l = bind_unix_listener(&spec(path.clone(), 0o660, Some(NOBODY))).unwrap();
    let md = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o660);
    assert_eq!(md.gid(), NOBODY);
    assert_eq!(md.uid(), 0);
    // Attack/control: nobody (in group 65534) can connect to 0660; with 0600 it cannot.
    let path2 = d.path().join("p.sock");
    let _l2 = bind_unix_listener(&spec(path2.clone(), 0o600, Some(NOBODY))).unwrap();
    let md2 = std::fs::symlink_metadata(&path2).unwrap();
    assert_eq!(md2.mode() & 0o7777, 0o600);
    let mut ch = child_as_nobody("unix-connect", &[path.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_ready(&mut ch);
    drop(ch.stdin.take());
    assert!(
        ch.wait().unwrap().success(),
        "group member connects to 0660"
    );
    let out = child_as_nobody("unix-connect", &[path2.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "0600 keeps the group out");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn unix_socket_unsafe_dir_refused() {
    let d = tempdir_open();
    let open = d.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = bind_unix_listener(&spec(open.join("x.sock"), 0o600, None)).unwrap_err();
    assert!(matches!(e, UnixSocketError::UnsafeParent { .. }), "{e}");
    assert!(e.to_string().contains("no sticky bit"), "{e}");
    assert!(!open.join("x.sock").exists());
    // Control: sticky + root-owned (like /tmp) is accepted.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    bind_unix_listener(&spec(open.join("x.sock"), 0o600, None)).unwrap();
    // A directory owned by another user is refused.
    let theirs = d.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let e = bind_unix_listener(&spec(theirs.join("x.sock"), 0o600, None)).unwrap_err();
    assert!(e.to_string().contains("owned by uid 65534"), "{e}");
}

/// The socket's own directory is safe (root, 0700) but a directory above it is not: whoever can
/// write that one can rename the subtree away and put their own (with their server) in its place.
fn unix_socket_unsafe_ancestor_refused() {
    let d = tempdir_open();
    let base = std::fs::canonicalize(d.path()).unwrap();
    let mkdir = |p: &Path, mode: u32| {
        std::fs::create_dir(p).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // Attack 1: the level above is owned by uid 65534 (mode 0755).
    let up = base.join("up");
    mkdir(&up, 0o755);
    std::os::unix::fs::chown(&up, Some(NOBODY), Some(NOBODY)).unwrap();
    let sock_dir = up.join("sock");
    mkdir(&sock_dir, 0o700);
    let path = sock_dir.join("x.sock");
    let e = bind_unix_listener(&spec(path.clone(), 0o600, None)).unwrap_err();
    match &e {
        UnixSocketError::UnsafeAncestor {
            path: bad,
            socket_dir,
            ..
        } => {
            assert_eq!(bad, &up, "{e}");
            assert_eq!(socket_dir, &sock_dir, "{e}");
        }
        other => panic!("expected UnsafeAncestor, got {other}"),
    }
    let msg = e.to_string();
    assert!(msg.contains(&format!("ancestor {}", up.display())), "{msg}");
    assert!(msg.contains("uid 65534 with mode 0755"), "{msg}");
    assert!(!path.exists(), "nothing was bound");
    // The threat is real: uid 65534 can move the root-owned socket directory away (and would put
    // its own in its place); it is moved back for the rest of the test.
    let moved = up.join("moved");
    let rename_as_nobody = |from: &Path, to: &Path| {
        child_as_nobody("rename", &[from.to_str().unwrap(), to.to_str().unwrap()])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = rename_as_nobody(&sock_dir, &moved);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(moved.is_dir() && !sock_dir.exists());
    run_ok(child_as_nobody(
        "rename",
        &[moved.to_str().unwrap(), sock_dir.to_str().unwrap()],
    ));
    // Reached through a symlink, the real path is walked: still refused, naming `up`.
    let link = base.join("link");
    std::os::unix::fs::symlink(&sock_dir, &link).unwrap();
    let e = bind_unix_listener(&spec(link.join("x.sock"), 0o600, None)).unwrap_err();
    assert!(
        matches!(&e, UnixSocketError::UnsafeAncestor { path: bad, .. } if bad == &up),
        "{e}"
    );
    // Two levels up is checked as well: the socket dir and its parent are root 0700/0755.
    let deep = sock_dir.join("deeper");
    mkdir(&deep, 0o700);
    let e = bind_unix_listener(&spec(deep.join("x.sock"), 0o600, None)).unwrap_err();
    assert!(
        matches!(&e, UnixSocketError::UnsafeAncestor { path: bad, .. } if bad == &up),
        "{e}"
    );
    // Control: the same layout with the ancestor owned by root (0755) binds, also via the
    // symlink, and the socket is created at the real path.
    std::os::unix::fs::chown(&up, Some(0), Some(0)).unwrap();
    let out = rename_as_nobody(&sock_dir, &moved);
    assert!(
        !out.status.success(),
        "root-owned ancestor: uid 65534 cannot move the directory"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let l = bind_unix_listener(&spec(path.clone(), 0o600, None)).unwrap();
    let _c = UnixStream::connect(&path).unwrap();
    l.accept().unwrap();
    let l2 = bind_unix_listener(&spec(link.join("y.sock"), 0o600, None)).unwrap();
    assert!(
        std::fs::symlink_metadata(sock_dir.join("y.sock"))
            .unwrap()
            .file_type()
            .is_socket()
    );
    drop(l2);
    bind_unix_listener(&spec(deep.join("x.sock"), 0o600, None)).unwrap();

    // Attack 2: the level above is root's but group-writable without the sticky bit (0775).
    let gw = base.join("gw");
    mkdir(&gw, 0o775);
    let gw_sock = gw.join("sock");
    mkdir(&gw_sock, 0o700);
    let e = bind_unix_listener(&spec(gw_sock.join("x.sock"), 0o600, None)).unwrap_err();
    assert!(
        matches!(&e, UnixSocketError::UnsafeAncestor { path: bad, .. } if bad == &gw),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("uid 0 with mode 0775"), "{msg}");
    assert!(msg.contains("no sticky bit"), "{msg}");
    // Control: sticky and world-writable like /tmp (root 1777) is accepted as an ancestor.
    std::fs::set_permissions(&gw, std::fs::Permissions::from_mode(0o1777)).unwrap();
    bind_unix_listener(&spec(gw_sock.join("x.sock"), 0o600, None)).unwrap();
}

fn activation_wrong_pid_refused() {
    let mut c = child("activation-wrong-pid", &[]);
    c.env("LISTEN_FDS", "1").env("LISTEN_PID", "1");
    run_ok(c);
}

fn activation_receives_listeners() {
    run_ok(child("activation", &[]));
}

fn activation_in_an_unsafe_directory_refused() {
    run_ok(child("activation-unsafe-dir", &[]));
}

// ---------------------------------------------------------------------------------------------
// The key opener
// ---------------------------------------------------------------------------------------------

/// The key opener (forked from a single-threaded root child): hands over a descriptor of the
/// checked key file (control: it reads the key), refuses a loose mode with the check's message,
/// follows a key replaced by `rename`, runs with no capability under no_new_privs and seccomp,
/// exits when its socket closes; spawning it from a multi-threaded process is refused.
fn key_opener_hands_over_the_checked_descriptor_and_is_confined() {
    run_ok(child("key-opener", &[]));
}

fn scenario_key_opener() -> i32 {
    use codex_privsep::{KeyOpener, KeyOpenerError};
    let mut c = Checks::new();
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("k");
    let write = |content: &str, mode: u32| {
        let tmp = d.path().join("k.tmp");
        std::fs::write(&tmp, content).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).unwrap();
        std::fs::rename(&tmp, &key).unwrap();
    };
    write("sk-first\n", 0o600);
    let opener = match KeyOpener::spawn(&key) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("spawn: {e}");
            return 1;
        }
    };
    let read = |o: &KeyOpener| -> Result<String, KeyOpenerError> {
        let mut f = o.open()?;
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        Ok(s)
    };
    let r = read(&opener);
    c.check(
        "the descriptor reads the key",
        matches!(&r, Ok(s) if s == "sk-first\n"),
        &r,
    );
    write("sk-second\n", 0o600);
    let r = read(&opener);
    c.check(
        "a key replaced by rename is opened (Landlock covers the directory)",
        matches!(&r, Ok(s) if s == "sk-second\n"),
        &r,
    );
    write("sk-third\n", 0o644);
    let r = read(&opener);
    c.check(
        "a loose mode is refused with the check's message",
        matches!(&r, Err(KeyOpenerError::Refused { message }) if message.contains("chmod 0400")),
        &r,
    );
    let pid = opener.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    c.check(
        "the opener keeps uid 0",
        field("Uid:").starts_with("0\t0\t0\t0"),
        field("Uid:"),
    );
    for cap in ["CapEff:", "CapPrm:", "CapInh:"] {
        c.check(cap, field(cap) == "0000000000000000", field(cap));
    }
    c.check(
        "no_new_privs",
        field("NoNewPrivs:") == "1",
        field("NoNewPrivs:"),
    );
    c.check(
        "seccomp filter",
        field("Seccomp:") == "2",
        field("Seccomp:"),
    );
    // Its socket closes: it exits by itself (reaped here; it is our child).
    drop(opener);
    let mut wstatus = 0;
    // SAFETY: waitpid on our own child's pid with a pointer to a live int.
    let reaped = unsafe { libc::waitpid(pid, &mut wstatus, 0) };
    c.check(
        "it exits 0 when the socket closes",
        reaped == pid && libc::WIFEXITED(wstatus) && libc::WEXITSTATUS(wstatus) == 0,
        (reaped, wstatus),
    );
    // Multi-threaded: refused (a fork would copy locks held by other threads).
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let _ = rx.recv();
    });
    let r = KeyOpener::spawn(&key);
    c.check(
        "spawn refuses a multi-threaded process",
        matches!(r, Err(KeyOpenerError::Threads { threads: 2 })),
        r.map(|o| o.pid()),
    );
    drop(tx);
    t.join().unwrap();
    c.code()
}

/// The shipped service unit starts the proxy as its own account without capabilities and with
/// `SystemCallFilter=~@privileged` (capset answers EPERM; older systemd versions do not know
/// close_range either). Simulated: those two calls get EPERM. Started that way (uid 65534, no
/// capability, key file its own) the opener starts and hands over the key; control: with
/// capabilities (root) and capset refused it does not start (an opener that keeps them never
/// runs).
fn key_opener_under_the_service_units_syscall_filter() {
    run_ok(child("key-opener-unit", &["drop"]));
    run_ok(child("key-opener-unit", &["root"]));
}

fn scenario_key_opener_unit(drop_first: bool) -> i32 {
    use codex_confine::seccomp::Filter;
    use codex_privsep::{KeyOpener, KeyOpenerError};
    let mut c = Checks::new();
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("k");
    std::fs::write(&key, "sk-unit\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
    if drop_first {
        std::os::unix::fs::chown(d.path(), Some(NOBODY), Some(NOBODY)).unwrap();
        std::os::unix::fs::chown(&key, Some(NOBODY), Some(NOBODY)).unwrap();
        // SAFETY: integer-only calls; this child is single-threaded.
        let r = unsafe {
            libc::setgroups(0, std::ptr::null())
                | libc::setresgid(NOBODY, NOBODY, NOBODY)
                | libc::setresuid(NOBODY, NOBODY, NOBODY)
        };
        c.check("dropped to 65534", r == 0, std::io::Error::last_os_error());
    }
    codex_confine::set_no_new_privs().unwrap();
    let refused = [
        Rule::new("capset", libc::SYS_capset, Condition::Always, "unit filter"),
        Rule::new(
            "close_range",
            libc::SYS_close_range,
            Condition::Always,
            "older unit filter",
        ),
    ];
    Filter::compile_with_errno(&refused, libc::EPERM)
        .unwrap()
        .install()
        .unwrap();
    let r = KeyOpener::spawn(&key);
    if drop_first {
        match r {
            Ok(o) => {
                let got = o.open().map(|mut f| {
                    let mut s = String::new();
                    f.read_to_string(&mut s).unwrap();
                    s
                });
                c.check(
                    "the opener hands over the key file",
                    matches!(&got, Ok(s) if s == "sk-unit\n"),
                    &got,
                );
            }
            Err(e) => c.check("the opener starts without capabilities", false, e),
        }
    } else {
        c.check(
            "with capabilities and capset refused, the opener does not start",
            matches!(r, Err(KeyOpenerError::NotConfined { .. })),
            r.map(|o| o.pid()),
        );
    }
    c.code()
}
