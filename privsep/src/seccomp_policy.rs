//! The proxy's seccomp profile: an **allow-list** (Firecracker-jailer style). [`ALLOWED`] (and
//! [`ALLOWED_ARCH`]) hold every system call the confined proxy makes, each row with its reason,
//! some only with certain arguments (`socket` families, `clone` flags, `ioctl` requests, `prctl`
//! options, `fcntl` commands, `prlimit64` read-only); everything else is refused.
//!
//! **Refusal: `SECCOMP_RET_TRAP`, named, then exit.** A call outside the list is not made; the
//! kernel sends SIGSYS and `codex-confine`'s reporter (installed by [`crate::confine`] before the
//! filter) writes one line to stderr naming the call, its number and why (`not in the
//! allow-list`; `its arguments match no row of the allow-list`; or, for the rows of [`REFUSED`],
//! `denied by design: <reason>`), then `_exit(`[`REFUSED_SYSCALL_EXIT`]`)`. Chosen over
//! `SECCOMP_RET_KILL_PROCESS` (the proxy's own log would say nothing; the kernel's audit log names
//! the call only where auditd runs) and over `EPERM` (a missed path would fail silently in a
//! library that treats the error as "not available" and the gap would never be seen). An attacker
//! who replaces the handler (`rt_sigaction` is allowed: the runtime registers SIGTERM/SIGINT
//! after confinement) only survives the refusal: the call is still not made; a blocked or ignored
//! SIGSYS is reset to its default by the kernel, which kills.
//!
//! **Risk: a rare path outside the list kills the proxy.** The list was measured, not guessed:
//! `strace -f` of the proxy through its end-to-end tests (TLS and plain upstream, unix and TCP
//! listeners, socket activation, `/shutdown`, SIGTERM drain, dump dir, server-info, host-name
//! upstream through `getaddrinfo`), keeping what each confined proxy called after its filter was
//! installed (`docs/security.md`, "The proxy's seccomp allow-list", has the command). Paths that
//! depend on the machine rather than on the proxy, and how they are covered:
//! - glibc's resolver and NSS (`hosts: files dns`): `/etc/hosts` (files), the UDP query to the
//!   nameserver (`socket(AF_INET, SOCK_DGRAM)`, `connect`, `sendmmsg`, `poll`, `ioctl(FIONREAD)`, `recvfrom`), the
//!   nscd probe (`socket(AF_UNIX)` + `connect`, refused by Landlock's missing path rights or
//!   absent): tested under the filter by `privsep`'s `dns_*` scenarios, one of which queries a
//!   fake nameserver in private mount and network namespaces; NSS modules loaded with `dlopen` (mdns,
//!   resolve, myhostname) need `openat`/`mmap`/`mprotect` of libraries, all allowed; a module
//!   making a call outside this list is refused and named;
//! - glibc's address sorting (RFC 3484, `/etc/gai.conf`) whenever a name has more than one
//!   address (api.openai.com has several; Debian's `/etc/hosts` gives `localhost` both `127.0.0.1`
//!   and `::1`): `__check_pf` opens `socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)`, `bind`s it,
//!   `getsockname`, `sendto` a RTM_GETADDR dump, `recvmsg` the answer, then a UDP `connect` +
//!   `getsockname` per address. Missing until the outside review of round 5 (finding F1: every
//!   first request through a multi-address name killed the proxy with exit 10); tested under the
//!   filter by `privsep`'s `dns_multi_address_sorting_under_the_allow_list` (a two-address name
//!   in a private `/etc/hosts`). The row allows every netlink protocol, not only NETLINK_ROUTE
//!   (`codex-confine`'s conditions test one argument each); what is left to the confined process
//!   is what netlink gives an unprivileged uid without capabilities: reading routes, addresses,
//!   socket diagnostics and uevents; every change needs `CAP_NET_ADMIN` in the owning user
//!   namespace, and the proxy can make no namespace (`clone` namespace flags, `unshare` refused);
//! - glibc's thread start (`clone` → `set_robust_list`, `rseq`, `sigaltstack`, `prctl(PR_SET_NAME)`)
//!   and exit (`madvise`, `exit`); `clone3` never reaches the list (the ABI filter answers
//!   `ENOSYS` and glibc falls back to `clone`, whose flags this list checks);
//! - mimalloc's per-thread set-up probes NUMA nodes (`access("/sys/devices/system/node/...")`,
//!   refused by Landlock, allowed here so that it fails with `EACCES` instead of killing);
//! - mimalloc's memory from the kernel: every `mmap` it makes is followed by
//!   `prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, addr, len, "mimalloc")` (a label in
//!   `/proc/pid/maps`; `EINVAL` where the kernel lacks `CONFIG_ANON_VMA_NAME`). After
//!   confinement that happens whenever the heap first reaches a new 512 MiB stretch of address
//!   space (a 64 KiB page-map leaf; the 1 GiB arena starts at a random address, so the first
//!   boundary lies 0-512 MiB in), needs a new arena, or holds an object larger than an arena
//!   takes. Missing until the outside review of round 12 (finding F4: concurrent ~5 MB governed
//!   bodies killed the proxy with exit 10, at random, depending on where the arena landed);
//!   tested by the proxy's `large_governed_bodies_that_need_fresh_memory_from_the_kernel_keep_the_proxy_alive`
//!   (`MIMALLOC_ARENA_MAX_OBJECT_SIZE` makes every large buffer such a call). The row allows the
//!   option, not its sub-option (one argument per condition): `PR_SET_VMA_ANON_NAME` is the only
//!   one Linux has; it names the caller's own anonymous mappings and needs no privilege (glibc
//!   2.39+ makes the same call for thread stacks and malloc arenas when `glibc.mem.decorate_maps`
//!   is set);
//! - a panic prints its message and aborts (`rt_sigprocmask`, `tgkill`, `rt_sigaction`). The
//!   proxy replaces std's default hook with [`crate::confine::install_panic_hook`]: std's hook
//!   prints a backtrace when `RUST_BACKTRACE` is set (or on a panic during a panic), which calls
//!   `getcwd`, `readlink("/proc/self/exe")` and opens the binary: refused here and by Landlock,
//!   so a panic was reported as "seccomp refused getcwd", exit 10 (review round 5, F6). Those
//!   calls stay refused; the hook writes one line without a backtrace.
//!
//! A refusal while SIGSYS is blocked (glibc blocks every signal for the few instructions around
//! `clone` in `pthread_create`) cannot run the handler: the kernel kills the process with SIGSYS
//! and no line is written (the exit status still says SIGSYS). Observed once while building the
//! list: `clone3` (below).
//!
//! **Decision history.** Until issue 13 this table was a deny-list (`EPERM` for exec, ptrace,
//! namespaces, credential changes, machine administration...), chosen because an allow-list that
//! misses a rare libc path fails in production. Reversed: a deny-list leaves every interface
//! nobody thought of (and every new kernel's) open to an attacker who took over the key-holding
//! process; the measured list plus the named refusal turns a missed path into one log line and a
//! restart instead of a silent hole. The old deny rows stay as [`REFUSED`]: their reasons are
//! what the refusal line says, and the tests call each one.
//!
//! `codex-confine` adds the ABI filter in front: any other architecture's syscall ABI (e.g.
//! `int 0x80`) kills (no line: SIGSYS from `SECCOMP_RET_KILL_PROCESS`), x32 syscall numbers get
//! `EPERM`, `clone3` gets `ENOSYS` (its flags are in memory where seccomp cannot read them; glibc
//! then falls back to `clone`, whose flags are checked here). The allow-list program lets those
//! numbers through so that the ABI filter's answer stands (the kernel takes the most severe
//! answer of all filters: a trap would beat `ENOSYS`, and every thread start would die).

use codex_confine::seccomp::Condition::{Always, Eq32, Masked64, NotIn32};
use codex_confine::seccomp::{BASELINE, Rule};

/// The proxy's exit code after its SIGSYS reporter named a refused call (Firecracker's jailer
/// has its own, 148; the proxy's others are 0-9, see `responses-api-proxy --help`).
pub const REFUSED_SYSCALL_EXIT: i32 = 10;

// `Ioctl` is c_ulong on glibc and c_int on musl; the request number is small and positive.
#[allow(clippy::unnecessary_cast)]
const FIONBIO: u32 = libc::FIONBIO as u32;
#[allow(clippy::unnecessary_cast)]
const FIONREAD: u32 = libc::FIONREAD as u32;

/// `sizeof(struct sockaddr_nl)`: the only address length `bind` accepts. The kernel refuses an
/// AF_INET bind shorter than 16 bytes and an AF_INET6 one shorter than 24 with `EINVAL`, so the
/// row cannot bind an inet port (Landlock denies TCP `bind` as well).
const SOCKADDR_NL_LEN: libc::c_int = std::mem::size_of::<libc::sockaddr_nl>() as libc::c_int;

/// `clone` that creates a thread: `CLONE_THREAD` set, no namespace flag (a fork, or a thread
/// in new namespaces, matches no row).
const CLONE_THREAD_ONLY: codex_confine::seccomp::Condition = Masked64 {
    arg: 0,
    mask: (libc::CLONE_THREAD
        | libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWCGROUP) as u64,
    value: libc::CLONE_THREAD as u64,
};

const fn eq(arg: u8, value: libc::c_int) -> codex_confine::seccomp::Condition {
    Eq32 {
        arg,
        value: value as u32,
    }
}

/// Every call the confined proxy makes, on every architecture; each with its reason.
pub const ALLOWED: &[Rule] = &[
    // Sockets: the listeners, the upstream, the sock_diag netlink socket (opened before).
    Rule::new(
        "accept4",
        libc::SYS_accept4,
        Always,
        "accepting clients on the listeners",
    ),
    Rule::new(
        "socket(AF_INET)",
        libc::SYS_socket,
        eq(0, libc::AF_INET),
        "upstream TCP connections; the resolver's UDP queries",
    ),
    Rule::new(
        "socket(AF_INET6)",
        libc::SYS_socket,
        eq(0, libc::AF_INET6),
        "see socket(AF_INET)",
    ),
    Rule::new(
        "socket(AF_UNIX)",
        libc::SYS_socket,
        eq(0, libc::AF_UNIX),
        "glibc's nscd probe during getaddrinfo",
    ),
    Rule::new(
        "socket(AF_NETLINK)",
        libc::SYS_socket,
        eq(0, libc::AF_NETLINK),
        "glibc's getaddrinfo asks NETLINK_ROUTE for the local addresses before sorting several answers (RFC 3484)",
    ),
    Rule::new(
        "bind(12-byte address)",
        libc::SYS_bind,
        eq(2, SOCKADDR_NL_LEN),
        "glibc binds that netlink socket (sockaddr_nl); too short for an inet or inet6 address",
    ),
    Rule::new(
        "socketpair(AF_UNIX)",
        libc::SYS_socketpair,
        eq(0, libc::AF_UNIX),
        "tokio's signal driver (a unix socket pair as self-pipe)",
    ),
    Rule::new(
        "connect",
        libc::SYS_connect,
        Always,
        "the upstream (Landlock limits TCP to its port and 53); the resolver's UDP socket",
    ),
    Rule::new(
        "getsockname",
        libc::SYS_getsockname,
        Always,
        "local address of accepted and upstream connections (sock_diag lookups)",
    ),
    Rule::new(
        "getpeername",
        libc::SYS_getpeername,
        Always,
        "the client's address (audit, sock_diag lookups)",
    ),
    Rule::new(
        "getsockopt",
        libc::SYS_getsockopt,
        Always,
        "SO_ERROR after a non-blocking connect; SO_PEERCRED of unix clients",
    ),
    Rule::new(
        "setsockopt",
        libc::SYS_setsockopt,
        Always,
        "TCP_NODELAY, keep-alive of upstream and client sockets",
    ),
    Rule::new(
        "shutdown",
        libc::SYS_shutdown,
        Always,
        "closing the write half of a connection",
    ),
    Rule::new(
        "sendto",
        libc::SYS_sendto,
        Always,
        "socket writes; sock_diag requests",
    ),
    Rule::new(
        "recvfrom",
        libc::SYS_recvfrom,
        Always,
        "socket reads; sock_diag answers; DNS answers",
    ),
    Rule::new(
        "sendmsg",
        libc::SYS_sendmsg,
        Always,
        "socket writes (vectored)",
    ),
    Rule::new(
        "recvmsg",
        libc::SYS_recvmsg,
        Always,
        "socket reads (vectored)",
    ),
    Rule::new(
        "sendmmsg",
        libc::SYS_sendmmsg,
        Always,
        "glibc's resolver sends the A and AAAA queries in one call",
    ),
    Rule::new(
        "ioctl(FIONREAD)",
        libc::SYS_ioctl,
        eq(1, FIONREAD as libc::c_int),
        "glibc's resolver asks the size of the pending DNS answer after poll",
    ),
    Rule::new(
        "ioctl(FIONBIO)",
        libc::SYS_ioctl,
        eq(1, FIONBIO as libc::c_int),
        "non-blocking mode of accepted sockets (std/mio)",
    ),
    // Event loop.
    Rule::new(
        "epoll_create1",
        libc::SYS_epoll_create1,
        Always,
        "tokio's reactor",
    ),
    Rule::new(
        "epoll_ctl",
        libc::SYS_epoll_ctl,
        Always,
        "tokio's reactor; busy polling's start-up probe (which descriptors are epoll instances)",
    ),
    Rule::new(
        "epoll_pwait",
        libc::SYS_epoll_pwait,
        Always,
        "tokio's reactor (the only epoll wait on aarch64/riscv64)",
    ),
    Rule::new(
        "eventfd2",
        libc::SYS_eventfd2,
        Always,
        "tokio's reactor waker; busy polling's start-up probe",
    ),
    Rule::new(
        "ppoll",
        libc::SYS_ppoll,
        Always,
        "glibc's resolver waits for the answer; busy polling looks at the event loop's epoll instance (poll on aarch64/riscv64)",
    ),
    // Descriptors and files (Landlock decides which paths).
    Rule::new(
        "read",
        libc::SYS_read,
        Always,
        "sockets, the signal pipe, resolver files",
    ),
    Rule::new(
        "write",
        libc::SYS_write,
        Always,
        "sockets, stderr (logs, audit lines), dump files",
    ),
    Rule::new("readv", libc::SYS_readv, Always, "sockets"),
    Rule::new(
        "writev",
        libc::SYS_writev,
        Always,
        "sockets (hyper's vectored writes to clients; the upstream request head around the key, gathered request-body chunks), stderr",
    ),
    Rule::new(
        "pread64",
        libc::SYS_pread64,
        Always,
        "NSS module loading (dlopen reads ELF headers)",
    ),
    Rule::new("close", libc::SYS_close, Always, "every descriptor"),
    Rule::new(
        "fcntl(F_GETFD)",
        libc::SYS_fcntl,
        eq(1, libc::F_GETFD),
        "std checks FD_CLOEXEC",
    ),
    Rule::new(
        "fcntl(F_SETFD)",
        libc::SYS_fcntl,
        eq(1, libc::F_SETFD),
        "close-on-exec of new descriptors",
    ),
    Rule::new(
        "fcntl(F_GETFL)",
        libc::SYS_fcntl,
        eq(1, libc::F_GETFL),
        "non-blocking mode",
    ),
    Rule::new(
        "fcntl(F_SETFL)",
        libc::SYS_fcntl,
        eq(1, libc::F_SETFL),
        "non-blocking mode (glibc's resolver, tokio)",
    ),
    Rule::new(
        "fcntl(F_DUPFD_CLOEXEC)",
        libc::SYS_fcntl,
        eq(1, libc::F_DUPFD_CLOEXEC),
        "try_clone of listeners and sockets",
    ),
    Rule::new(
        "openat",
        libc::SYS_openat,
        Always,
        "dump files; resolver files and NSS libraries (Landlock: only those)",
    ),
    Rule::new(
        "newfstatat",
        libc::SYS_newfstatat,
        Always,
        "glibc's resolver checks resolv.conf/nsswitch.conf for changes",
    ),
    Rule::new(
        "fstat",
        libc::SYS_fstat,
        Always,
        "std and glibc on open files",
    ),
    Rule::new("statx", libc::SYS_statx, Always, "std's metadata"),
    Rule::new("lseek", libc::SYS_lseek, Always, "reading resolver files"),
    Rule::new("fchmod", libc::SYS_fchmod, Always, "dump files made 0600"),
    Rule::new(
        "fdatasync",
        libc::SYS_fdatasync,
        Always,
        "the governance ledger in --state-dir made durable (at most once a second)",
    ),
    Rule::new("faccessat", libc::SYS_faccessat, Always, "see access"),
    Rule::new("faccessat2", libc::SYS_faccessat2, Always, "see access"),
    // Memory.
    Rule::new(
        "mmap",
        libc::SYS_mmap,
        Always,
        "allocators (mimalloc, glibc malloc in NSS), thread stacks, NSS libraries",
    ),
    Rule::new("munmap", libc::SYS_munmap, Always, "see mmap"),
    Rule::new(
        "mprotect",
        libc::SYS_mprotect,
        Always,
        "thread stack guard pages; NSS library relocation",
    ),
    Rule::new(
        "madvise",
        libc::SYS_madvise,
        Always,
        "allocators returning memory; glibc freeing a finished thread's stack",
    ),
    Rule::new(
        "mremap",
        libc::SYS_mremap,
        Always,
        "glibc realloc of large blocks (NSS, resolver)",
    ),
    Rule::new("brk", libc::SYS_brk, Always, "glibc malloc (NSS, resolver)"),
    // Threads and synchronisation.
    Rule::new(
        "clone(CLONE_THREAD, no namespace flag)",
        libc::SYS_clone,
        CLONE_THREAD_ONLY,
        "runtime workers and the blocking pool (getaddrinfo); never a new process",
    ),
    Rule::new(
        "set_robust_list",
        libc::SYS_set_robust_list,
        Always,
        "glibc's thread start",
    ),
    Rule::new(
        "rseq",
        libc::SYS_rseq,
        Always,
        "glibc's thread start (restartable sequences)",
    ),
    Rule::new(
        "futex",
        libc::SYS_futex,
        Always,
        "locks, condition variables, thread joins",
    ),
    Rule::new(
        "restart_syscall",
        libc::SYS_restart_syscall,
        Always,
        "resumes a timed wait (futex, nanosleep, poll) interrupted by SIGSTOP/SIGCONT or a ptrace stop; it only continues a call that was itself allowed",
    ),
    Rule::new(
        "sched_yield",
        libc::SYS_sched_yield,
        Always,
        "spin loops in the runtime and allocator",
    ),
    Rule::new(
        "sched_getaffinity",
        libc::SYS_sched_getaffinity,
        Always,
        "std's available_parallelism (runtime sizing)",
    ),
    Rule::new(
        "gettid",
        libc::SYS_gettid,
        Always,
        "glibc and std thread identity",
    ),
    Rule::new(
        "getpid",
        libc::SYS_getpid,
        Always,
        "glibc (raise, resolver query ids)",
    ),
    Rule::new(
        "exit",
        libc::SYS_exit,
        Always,
        "a thread ends (blocking-pool threads after idling)",
    ),
    Rule::new(
        "exit_group",
        libc::SYS_exit_group,
        Always,
        "the process ends (and the SIGSYS reporter's _exit)",
    ),
    Rule::new(
        "prctl(PR_SET_NAME)",
        libc::SYS_prctl,
        eq(0, libc::PR_SET_NAME),
        "thread names (proxy-worker)",
    ),
    Rule::new(
        "prctl(PR_GET_NO_NEW_PRIVS)",
        libc::SYS_prctl,
        eq(0, libc::PR_GET_NO_NEW_PRIVS),
        "confinement read-back and hardening report",
    ),
    Rule::new(
        "prctl(PR_GET_SECCOMP)",
        libc::SYS_prctl,
        eq(0, libc::PR_GET_SECCOMP),
        "confinement read-back and hardening report",
    ),
    Rule::new(
        "prctl(PR_GET_DUMPABLE)",
        libc::SYS_prctl,
        eq(0, libc::PR_GET_DUMPABLE),
        "hardening report",
    ),
    Rule::new(
        "prctl(PR_SET_VMA)",
        libc::SYS_prctl,
        eq(0, libc::PR_SET_VMA),
        "mimalloc names each mapping it takes from the kernel (PR_SET_VMA_ANON_NAME) after confinement too",
    ),
    // Signals.
    Rule::new(
        "rt_sigaction",
        libc::SYS_rt_sigaction,
        Always,
        "tokio registers SIGTERM/SIGINT/SIGHUP after confinement; abort",
    ),
    Rule::new(
        "rt_sigprocmask",
        libc::SYS_rt_sigprocmask,
        Always,
        "glibc's thread start; abort",
    ),
    Rule::new(
        "rt_sigreturn",
        libc::SYS_rt_sigreturn,
        Always,
        "return from a signal handler (SIGTERM drain)",
    ),
    Rule::new(
        "sigaltstack",
        libc::SYS_sigaltstack,
        Always,
        "std's stack-overflow guard on every thread",
    ),
    Rule::new(
        "tgkill",
        libc::SYS_tgkill,
        Always,
        "abort on a panic signals its own thread (Landlock scopes other processes)",
    ),
    // Time, randomness, identity.
    Rule::new(
        "clock_gettime",
        libc::SYS_clock_gettime,
        Always,
        "time (vDSO fallback)",
    ),
    Rule::new(
        "clock_nanosleep",
        libc::SYS_clock_nanosleep,
        Always,
        "std::thread::sleep",
    ),
    Rule::new(
        "nanosleep",
        libc::SYS_nanosleep,
        Always,
        "std::thread::sleep",
    ),
    Rule::new(
        "getrandom",
        libc::SYS_getrandom,
        Always,
        "TLS keys and nonces, hash seeds",
    ),
    Rule::new(
        "uname",
        libc::SYS_uname,
        Always,
        "glibc's resolver (gethostname for the search domain)",
    ),
    Rule::new("getuid", libc::SYS_getuid, Always, "hardening report"),
    Rule::new("geteuid", libc::SYS_geteuid, Always, "hardening report"),
    Rule::new("getgid", libc::SYS_getgid, Always, "hardening report"),
    Rule::new("getegid", libc::SYS_getegid, Always, "hardening report"),
    Rule::new("getgroups", libc::SYS_getgroups, Always, "hardening report"),
    Rule::new(
        "prlimit64(read only)",
        libc::SYS_prlimit64,
        Masked64 {
            arg: 2,
            mask: u64::MAX,
            value: 0,
        },
        "hardening report reads RLIMIT_CORE; no new limit (arg 2 NULL)",
    ),
];

/// x86_64's calls that aarch64 and riscv64 do not have (glibc uses the `*at`/`p*` forms there).
#[cfg(target_arch = "x86_64")]
pub const ALLOWED_ARCH: &[Rule] = &[
    Rule::new(
        "epoll_wait",
        libc::SYS_epoll_wait,
        Always,
        "tokio's reactor",
    ),
    Rule::new(
        "poll",
        libc::SYS_poll,
        Always,
        "glibc's resolver waits for the answer; busy polling looks at the event loop's epoll instance (zero timeout)",
    ),
    Rule::new(
        "access",
        libc::SYS_access,
        Always,
        "mimalloc probes NUMA nodes in /sys when a thread starts (Landlock answers EACCES)",
    ),
];
/// No architecture-specific rows elsewhere.
#[cfg(not(target_arch = "x86_64"))]
pub const ALLOWED_ARCH: &[Rule] = &[];

/// The allow-list: [`ALLOWED`] and [`ALLOWED_ARCH`].
pub fn table() -> Vec<Rule> {
    ALLOWED.iter().chain(ALLOWED_ARCH).copied().collect()
}

/// Calls refused by design, kept with their reasons: the SIGSYS reporter names a refused call
/// with its row's reason, `docs/security.md` lists them, and the tests call each one and expect
/// the refusal (with a control where it works unconfined). None is in the allow-list (checked).
pub const REFUSED: &[&[Rule]] = &[BASELINE, DENIED, DENIED_ARCH, CONDITIONAL];

/// Refused whatever their arguments, beyond the baseline.
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

/// x86_64-only legacy syscalls, also refused.
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

/// Refused for some arguments (no allow row matches them), beyond the baseline.
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
                libc::AF_NETLINK as u32,
            ],
        },
        "a family other than AF_UNIX/AF_INET/AF_INET6/AF_NETLINK (packet, vsock, bluetooth...)",
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

#[cfg(test)]
mod tests {
    use super::*;
    use codex_confine::seccomp::{Condition, Filter, Unlisted};

    #[test]
    fn the_table_compiles_and_every_row_has_a_reason() {
        let t = table();
        for r in t.iter().chain(REFUSED.iter().flat_map(|t| t.iter())) {
            assert!(!r.reason.is_empty(), "{}", r.name);
        }
        Filter::compile_allow_list(&t, Unlisted::Trap).unwrap();
    }

    /// docs/security.md's allow-list table names exactly the rows of the code (x86_64's
    /// architecture rows included, marked "(x86_64 only)").
    #[test]
    fn the_docs_list_every_allowed_row() {
        let doc = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/security.md"),
        )
        .unwrap();
        let start = doc.find("| row | why the proxy needs it |").unwrap();
        let section = &doc[start..];
        let section = &section[..section.find("\n\n").unwrap_or(section.len())];
        let documented: Vec<&str> = section
            .lines()
            .skip(2)
            .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
            .collect();
        let mut code: Vec<&str> = ALLOWED.iter().map(|r| r.name).collect();
        if cfg!(target_arch = "x86_64") {
            code.extend(ALLOWED_ARCH.iter().map(|r| r.name));
            assert_eq!(
                documented, code,
                "docs/security.md's allow-list drifted from the code"
            );
        } else {
            assert!(
                code.iter().all(|n| documented.contains(n)),
                "{documented:?}"
            );
        }
        for r in ALLOWED.iter().chain(ALLOWED_ARCH) {
            assert!(
                section.contains(r.reason),
                "docs/security.md: row {} without its reason",
                r.name
            );
        }
    }

    #[test]
    fn no_call_refused_by_design_is_allowed_unconditionally() {
        let t = table();
        for r in REFUSED.iter().flat_map(|t| t.iter()) {
            let allowed: Vec<_> = t.iter().filter(|a| a.nr == r.nr).collect();
            assert!(
                allowed.iter().all(|a| a.condition != Condition::Always),
                "{} is refused by design but allowed by {:?}",
                r.name,
                allowed
            );
        }
    }
}
