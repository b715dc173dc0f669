//! Self-confinement after start-up: no_new_privs, Landlock, seccomp — in that order.
//!
//! **Thread requirement.** Call [`confine`] while the process is single-threaded (checked:
//! [`ConfineError::Threads`]), i.e. before the async runtime starts. Landlock before ABI 8 (this
//! kernel generation offers 7) restricts only the calling thread and the threads it creates
//! later, so a runtime started earlier would keep unconfined workers. The seccomp filter is
//! installed with `SECCOMP_FILTER_FLAG_TSYNC` all the same.
//!
//! **What the process keeps.** Landlock (`codex-confine`'s builder, `Compat::HardRequirement`)
//! handles every filesystem right of ABI 6 and allows only:
//! read of [`ConfineSpec::read_paths`] (plus, with [`ConfineSpec::allow_dns`], the resolver's
//! files and the system library directories NSS modules are loaded from), and read/create/write
//! of regular files beneath [`ConfineSpec::write_dirs`] (the dump directory). TCP: `bind` denied
//! everywhere (listeners are bound before), `connect` only to [`ConfineSpec::connect_ports`]
//! (the upstream's port; 53 with DNS). Signals to and abstract unix sockets of processes outside
//! the domain are denied (scopes). Unix-socket `connect` by path is not covered by Landlock ABI 7.
//!
//! **Failure.** If any requested part cannot be enforced in full (old kernel, Landlock
//! disabled, a path missing), [`confine`] returns an error; the caller must exit. The mechanism
//! (syscalls, filters, ruleset, kernel-feature table) is `codex-confine`'s; this module holds the
//! proxy's profile: which paths and ports, and [`crate::seccomp_policy`]'s table. After an error
//! the process may be partly confined (e.g. no_new_privs set): do not continue serving.

use std::io;
use std::path::{Path, PathBuf};

use codex_confine::Enforcement;
use codex_confine::landlock::{Access, Compat, Landlock, LandlockError};
use codex_confine::seccomp::{self, Condition, Filter, Reporter, SeccompError, Unlisted};
use serde::Serialize;

use crate::seccomp_policy;
use crate::sys;

/// The Landlock ABI whose rights the ruleset handles (TCP rules: 4, scopes: 6): `codex-confine`'s.
pub use codex_confine::landlock::TARGET_ABI as LANDLOCK_ABI;

/// What the confined process may still do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfineSpec {
    /// Files or directories readable afterwards (e.g. nothing, or a config dir).
    pub read_paths: Vec<PathBuf>,
    /// Directories beneath which regular files may be created, written and read (the dump dir).
    pub write_dirs: Vec<PathBuf>,
    /// TCP ports `connect` may reach (the upstream's). Empty: no outgoing TCP at all.
    pub connect_ports: Vec<u16>,
    /// Keep name resolution working (resolver configuration files, NSS libraries, TCP port 53).
    pub allow_dns: bool,
}

/// Errors confining the process; each names the step.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// More than one thread is running.
    #[error("confinement must be applied before any thread starts: {threads} threads running")]
    Threads {
        /// Threads found.
        threads: usize,
    },
    /// `/proc/self/task` could not be read.
    #[error("failed to count this process's threads (/proc/self/task): {source}")]
    ThreadCount {
        /// The error.
        source: io::Error,
    },
    /// A `write_dirs` entry is not a directory (or cannot be examined).
    #[error("{} cannot be the dump directory: {source}", path.display())]
    WriteDir {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// `prctl(PR_SET_NO_NEW_PRIVS)` failed.
    #[error("failed to set no_new_privs: {source}")]
    NoNewPrivs {
        /// The error.
        source: io::Error,
    },
    /// Landlock could not be enforced in full (names the missing feature, path or step).
    #[error("{source}")]
    Landlock {
        /// The error.
        source: LandlockError,
    },
    /// The seccomp filter could not be built or installed.
    #[error("{source}")]
    Seccomp {
        /// The error.
        source: SeccompError,
    },
    /// Reading the state back failed.
    #[error("confinement verification failed: {call}: {source}")]
    VerifyCall {
        /// The call.
        call: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The state read back is not what was applied.
    #[error(
        "confinement verification failed: no_new_privs={no_new_privs} seccomp mode={seccomp_mode}"
    )]
    NotInForce {
        /// `PR_GET_NO_NEW_PRIVS`.
        no_new_privs: bool,
        /// `PR_GET_SECCOMP`.
        seccomp_mode: i32,
    },
}

/// What was enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfineReport {
    /// `PR_GET_NO_NEW_PRIVS` afterwards.
    pub no_new_privs: bool,
    /// `PR_GET_SECCOMP` afterwards (2 = filter).
    pub seccomp_mode: i32,
    /// The allow-list: every row's name (everything else is refused, named on stderr, and the
    /// process exits with [`crate::seccomp_policy::REFUSED_SYSCALL_EXIT`]).
    pub seccomp_allowed: Vec<&'static str>,
    /// The allow-list's rows with an argument condition: one `"row: reason"` each.
    pub seccomp_conditional: Vec<String>,
    /// The kernel's Landlock ABI.
    pub landlock_abi: i32,
    /// Always [`Enforcement::FullyEnforced`] (anything less is an error).
    pub landlock_status: Enforcement,
    /// Paths readable.
    pub landlock_read: Vec<PathBuf>,
    /// Directories writable (regular files).
    pub landlock_write: Vec<PathBuf>,
    /// TCP ports `connect` may reach; `bind` is denied.
    pub landlock_connect_ports: Vec<u16>,
    /// Landlock scopes in force.
    pub landlock_scopes: Vec<&'static str>,
}

impl ConfineReport {
    /// One line for logs.
    pub fn summary(&self) -> String {
        format!(
            "no_new_privs={} seccomp=allow-list({} rows, {} with argument conditions; \
             anything else refused, named, exit {}) landlock=abi{} {} \
             (read: {}, write: {}, tcp connect: {:?}, tcp bind: denied, scopes: {})",
            self.no_new_privs,
            self.seccomp_allowed.len(),
            self.seccomp_conditional.len(),
            seccomp_policy::REFUSED_SYSCALL_EXIT,
            self.landlock_abi,
            self.landlock_status,
            self.landlock_read.len(),
            self.landlock_write.len(),
            self.landlock_connect_ports,
            self.landlock_scopes.join("+"),
        )
    }
}

/// The SIGSYS reporter of the allow-list (see [`crate::seccomp_policy`]).
static REPORTER: Reporter = Reporter {
    prefix: "responses-api-proxy: ",
    allowed: &[seccomp_policy::ALLOWED, seccomp_policy::ALLOWED_ARCH],
    refused: seccomp_policy::REFUSED,
    exit_code: seccomp_policy::REFUSED_SYSCALL_EXIT,
};

/// Resolver files kept readable with [`ConfineSpec::allow_dns`] (those that exist; symlinks such
/// as systemd-resolved's `/etc/resolv.conf` are resolved so the target is allowed).
const DNS_FILES: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/ld.so.cache",
];
/// Library directories NSS modules are loaded from (read, for `dlopen`).
const LIB_DIRS: &[&str] = &["/lib", "/lib64", "/usr/lib", "/usr/lib64"];

fn existing_canonical(paths: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        let p = Path::new(p);
        if std::fs::symlink_metadata(p).is_err() {
            continue;
        }
        for q in [Some(p.to_path_buf()), std::fs::canonicalize(p).ok()]
            .into_iter()
            .flatten()
        {
            if q.exists() && !out.contains(&q) {
                out.push(q);
            }
        }
    }
    out
}

/// The running kernel's Landlock ABI version (`EOPNOTSUPP`: disabled; `ENOSYS`: absent).
pub fn landlock_abi() -> io::Result<i32> {
    let k = codex_confine::KernelSupport::probe();
    match k.landlock_unavailable {
        None => Ok(k.landlock_abi),
        Some(why) => Err(io::Error::other(why)),
    }
}

/// Whether the process, as it is now (e.g. right after the privilege drop), may create files in
/// directory `path` (search and write permission on it and every ancestor; `faccessat` with the
/// effective ids). Lets a caller fail at start-up instead of at the first write.
pub fn check_writable_dir(path: &Path) -> io::Result<()> {
    sys::access(path, libc::W_OK | libc::X_OK)
}

/// Replaces std's panic hook with one that works under [`confine`]'s filter: one line,
/// `<prefix>panic in thread NAME at FILE:LINE: MESSAGE`, written to stderr (errors ignored), no
/// backtrace. std's hook prints a backtrace when `RUST_BACKTRACE` is set or a panic happens
/// during a panic, which calls `getcwd`, `readlink("/proc/self/exe")` and opens the binary: the
/// allow-list refuses those (and Landlock the binary), so the panic was reported as a refused
/// `getcwd` and exit 10 instead of as itself (outside review round 5, F6). Install it before
/// confinement (it makes no system call; the hook itself only allocates and writes).
pub fn install_panic_hook(prefix: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        use std::io::Write;
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "?".into());
        let thread = std::thread::current();
        let line = format!(
            "{prefix}panic in thread {} at {at}: {msg}\n",
            thread.name().unwrap_or("?")
        );
        // Nowhere to report a failing stderr (e.g. a closed pipe).
        let _ = std::io::stderr().write_all(line.as_bytes());
    }));
}

/// Confines the calling process for good. See the module documentation.
pub fn confine(spec: &ConfineSpec) -> Result<ConfineReport, ConfineError> {
    let threads =
        codex_confine::thread_count().map_err(|source| ConfineError::ThreadCount { source })?;
    if threads != 1 {
        return Err(ConfineError::Threads { threads });
    }

    // Build everything that can fail before changing anything.
    let table = seccomp_policy::table();
    let filter = Filter::compile_allow_list(&table, Unlisted::Trap)
        .map_err(|source| ConfineError::Seccomp { source })?;
    let seccomp_allowed = table.iter().map(|r| r.name).collect();
    let seccomp_conditional = table
        .iter()
        .filter(|r| r.condition != Condition::Always)
        .map(|r| format!("{}: {}", r.name, r.reason))
        .collect();

    let mut read = spec.read_paths.clone();
    let mut ports = spec.connect_ports.clone();
    if spec.allow_dns {
        for p in existing_canonical(DNS_FILES)
            .into_iter()
            .chain(existing_canonical(LIB_DIRS))
        {
            if !read.contains(&p) {
                read.push(p);
            }
        }
        if !ports.contains(&53) {
            ports.push(53);
        }
    }
    let mut ruleset = Landlock::new(Compat::HardRequirement).restrict_tcp();
    for p in &read {
        ruleset = ruleset.allow_path(p, Access::Read);
    }
    for p in &spec.write_dirs {
        let md = std::fs::metadata(p).map_err(|source| ConfineError::WriteDir {
            path: p.clone(),
            source,
        })?;
        if !md.is_dir() {
            return Err(ConfineError::WriteDir {
                path: p.clone(),
                source: io::Error::other("not a directory"),
            });
        }
        ruleset = ruleset.allow_path(p, Access::CreateFiles);
    }
    for &port in &ports {
        ruleset = ruleset.allow_connect(port);
    }
    // Refuses (naming the missing feature and kernel) unless everything can be enforced.
    let ruleset = ruleset
        .create()
        .map_err(|source| ConfineError::Landlock { source })?;
    let kernel_abi = codex_confine::KernelSupport::probe().landlock_abi;

    // 1. no_new_privs (also required by Landlock and seccomp for an unprivileged process).
    codex_confine::set_no_new_privs().map_err(|source| ConfineError::NoNewPrivs { source })?;
    // 2. Landlock (anything but fully enforced is an error; the status is recorded for
    //    `secure_main::hardening_report`).
    let landlock_status = ruleset
        .restrict_self()
        .map_err(|source| ConfineError::Landlock { source })?;
    // 3. seccomp, on every thread: first the SIGSYS reporter that names a refused call.
    seccomp::install_reporter(&REPORTER).map_err(|source| ConfineError::Seccomp { source })?;
    filter
        .install()
        .map_err(|source| ConfineError::Seccomp { source })?;

    let no_new_privs =
        codex_confine::no_new_privs().map_err(|source| ConfineError::VerifyCall {
            call: "prctl(PR_GET_NO_NEW_PRIVS)",
            source,
        })?;
    let seccomp_mode =
        codex_confine::seccomp_mode().map_err(|source| ConfineError::VerifyCall {
            call: "prctl(PR_GET_SECCOMP)",
            source,
        })?;
    if !no_new_privs || seccomp_mode != 2 {
        return Err(ConfineError::NotInForce {
            no_new_privs,
            seccomp_mode,
        });
    }
    Ok(ConfineReport {
        no_new_privs,
        seccomp_mode,
        seccomp_allowed,
        seccomp_conditional,
        landlock_abi: kernel_abi,
        landlock_status,
        landlock_read: read,
        landlock_write: spec.write_dirs.clone(),
        landlock_connect_ports: ports,
        landlock_scopes: vec!["signal", "abstract-unix-socket"],
    })
}
