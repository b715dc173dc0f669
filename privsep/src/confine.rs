//! Self-confinement after start-up: no_new_privs, Landlock, seccomp — in that order.
//!
//! **Thread requirement.** Call [`confine`] while the process is single-threaded (checked:
//! [`ConfineError::Threads`]), i.e. before the async runtime starts. Landlock before ABI 8 (this
//! kernel generation offers 7) restricts only the calling thread and the threads it creates
//! later, so a runtime started earlier would keep unconfined workers. The seccomp filter is
//! installed with `SECCOMP_FILTER_FLAG_TSYNC` all the same.
//!
//! **What the process keeps.** Landlock handles every filesystem right of ABI 6 and allows only:
//! read of [`ConfineSpec::read_paths`] (plus, with [`ConfineSpec::allow_dns`], the resolver's
//! files and the system library directories NSS modules are loaded from), and read/create/write
//! of regular files beneath [`ConfineSpec::write_dirs`] (the dump directory). TCP: `bind` denied
//! everywhere (listeners are bound before), `connect` only to [`ConfineSpec::connect_ports`]
//! (the upstream's port; 53 with DNS). Signals to and abstract unix sockets of processes outside
//! the domain are denied (scopes). Unix-socket `connect` by path is not covered by Landlock ABI 7.
//!
//! **Failure.** If any requested part cannot be enforced in full (old kernel, Landlock
//! disabled, a path missing), [`confine`] returns an error; the caller must exit. After an error
//! the process may be partly confined (e.g. no_new_privs set): do not continue serving.

use std::io;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch, sock_filter};
use serde::Serialize;

use crate::seccomp_policy;
use crate::sys;

/// The Landlock ABI whose rights the ruleset handles (TCP rules: 4, scopes: 6).
pub const LANDLOCK_ABI: ABI = ABI::V6;

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
    /// `prctl(PR_SET_NO_NEW_PRIVS)` failed.
    #[error("failed to set no_new_privs: {source}")]
    NoNewPrivs {
        /// The error.
        source: io::Error,
    },
    /// A path to allow could not be opened.
    #[error("landlock: cannot open {path} to allow it: {source}")]
    PathFd {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Landlock is not available in full.
    #[error("landlock cannot be enforced: {0}")]
    LandlockUnavailable(String),
    /// Building or applying the Landlock ruleset failed.
    #[error("landlock: {step} failed: {source}")]
    Landlock {
        /// The step.
        step: &'static str,
        /// The error.
        source: landlock::RulesetError,
    },
    /// Compiling the seccomp filter failed.
    #[error("seccomp: building the filter failed: {0}")]
    SeccompBuild(String),
    /// Installing the seccomp filter failed.
    #[error("seccomp: installing the {which} filter failed: {source}")]
    SeccompApply {
        /// Which filter.
        which: &'static str,
        /// The error.
        source: seccompiler::Error,
    },
    /// Reading the state back failed or disagreed.
    #[error("confinement verification failed: {0}")]
    Verify(String),
}

/// What was enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfineReport {
    /// `PR_GET_NO_NEW_PRIVS` afterwards.
    pub no_new_privs: bool,
    /// `PR_GET_SECCOMP` afterwards (2 = filter).
    pub seccomp_mode: i32,
    /// Syscalls denied unconditionally.
    pub seccomp_denied: Vec<&'static str>,
    /// Syscalls denied for some arguments, with what.
    pub seccomp_conditional: Vec<String>,
    /// The kernel's Landlock ABI.
    pub landlock_abi: i32,
    /// "fully enforced" (anything less is an error).
    pub landlock_status: &'static str,
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
            "no_new_privs={} seccomp=filter({} denied, {} argument rules) landlock=abi{} {} \
             (read: {}, write: {}, tcp connect: {:?}, tcp bind: denied, scopes: {})",
            self.no_new_privs,
            self.seccomp_denied.len(),
            self.seccomp_conditional.len(),
            self.landlock_abi,
            self.landlock_status,
            self.landlock_read.len(),
            self.landlock_write.len(),
            self.landlock_connect_ports,
            self.landlock_scopes.join("+"),
        )
    }
}

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
    sys::landlock_abi_version()
}

/// Whether the process, as it is now (e.g. right after the privilege drop), may create files in
/// directory `path` (search and write permission on it and every ancestor; `faccessat` with the
/// effective ids). Lets a caller fail at start-up instead of at the first write.
pub fn check_writable_dir(path: &Path) -> io::Result<()> {
    sys::access(path, libc::W_OK | libc::X_OK)
}

/// Number of threads of this process (from `/proc/self/task`); 0 if it cannot be read.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn landlock_err(step: &'static str) -> impl FnOnce(landlock::RulesetError) -> ConfineError {
    move |source| ConfineError::Landlock { step, source }
}

fn path_fd(path: &Path) -> Result<PathFd, ConfineError> {
    PathFd::new(path).map_err(|e| ConfineError::PathFd {
        path: path.to_owned(),
        source: io::Error::other(e.to_string()),
    })
}

/// The second filter: architecture check, x32 numbers, `clone3` → `ENOSYS`.
fn abi_filter() -> BpfProgram {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH: u32 = 0xC000_00B7;
    let s = |code, k| sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let j = |code, k, jt, jf| sock_filter { code, jt, jf, k };
    let errno = |e: i32| libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA);
    let mut p = vec![
        s(LD_W_ABS, 4),                           // arch
        j(JEQ_K, AUDIT_ARCH, 1, 0),               // ours: skip the kill
        s(RET_K, libc::SECCOMP_RET_KILL_PROCESS), // another ABI (e.g. int 0x80)
        s(LD_W_ABS, 0),                           // syscall number
    ];
    #[cfg(target_arch = "x86_64")]
    {
        const JGE_K: u16 = 0x35;
        p.push(j(JGE_K, 0x4000_0000, 0, 1)); // x32 bit set
        p.push(s(RET_K, errno(libc::EPERM)));
    }
    p.push(j(JEQ_K, libc::SYS_clone3 as u32, 0, 1));
    p.push(s(RET_K, errno(libc::ENOSYS)));
    p.push(s(RET_K, libc::SECCOMP_RET_ALLOW));
    p
}

fn deny_filter() -> Result<(BpfProgram, Vec<&'static str>, Vec<String>), ConfineError> {
    let mut rules = std::collections::BTreeMap::new();
    let mut denied = Vec::new();
    for d in seccomp_policy::DENIED
        .iter()
        .chain(seccomp_policy::DENIED_ARCH)
    {
        rules.insert(d.nr, Vec::new());
        denied.push(d.name.trim_start_matches("SYS_"));
    }
    let mut conditional = Vec::new();
    for (nr, _name, r, why) in seccomp_policy::conditional() {
        rules.insert(nr, r);
        conditional.push(why);
    }
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| ConfineError::SeccompBuild(e.to_string()))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| ConfineError::SeccompBuild(e.to_string()))?;
    let prog: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| ConfineError::SeccompBuild(e.to_string()))?;
    Ok((prog, denied, conditional))
}

/// Confines the calling process for good. See the module documentation.
pub fn confine(spec: &ConfineSpec) -> Result<ConfineReport, ConfineError> {
    let threads = thread_count();
    if threads != 1 {
        return Err(ConfineError::Threads { threads });
    }

    // Build everything that can fail before changing anything.
    let kernel_abi = match sys::landlock_abi_version() {
        Ok(v) => v,
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            return Err(ConfineError::LandlockUnavailable(
                "landlock is built into the kernel but not enabled (add landlock to lsm=)".into(),
            ));
        }
        Err(e) => {
            return Err(ConfineError::LandlockUnavailable(format!(
                "landlock_create_ruleset(LANDLOCK_CREATE_RULESET_VERSION) failed: {e} \
                 (linux >= 6.12 with CONFIG_SECURITY_LANDLOCK needed)"
            )));
        }
    };
    if kernel_abi < LANDLOCK_ABI as i32 {
        return Err(ConfineError::LandlockUnavailable(format!(
            "kernel landlock ABI {kernel_abi} < {} (TCP rules and scopes need linux >= 6.12)",
            LANDLOCK_ABI as i32
        )));
    }
    let (deny_prog, denied, conditional) = deny_filter()?;
    let abi_prog = abi_filter();

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

    let read_access = AccessFs::ReadFile | AccessFs::ReadDir;
    let write_access =
        AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::WriteFile | AccessFs::MakeReg;
    let file_only = AccessFs::from_file(LANDLOCK_ABI);
    let mut rules = Vec::new();
    for p in &read {
        let fd = path_fd(p)?;
        let access = if p.is_dir() {
            read_access
        } else {
            read_access & file_only
        };
        rules.push(PathBeneath::new(fd, access));
    }
    for p in &spec.write_dirs {
        let md = std::fs::metadata(p).map_err(|source| ConfineError::PathFd {
            path: p.clone(),
            source,
        })?;
        if !md.is_dir() {
            return Err(ConfineError::PathFd {
                path: p.clone(),
                source: io::Error::other("not a directory"),
            });
        }
        rules.push(PathBeneath::new(path_fd(p)?, write_access));
    }

    let ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(LANDLOCK_ABI))
        .map_err(landlock_err("handling filesystem rights"))?
        .handle_access(AccessNet::from_all(LANDLOCK_ABI))
        .map_err(landlock_err("handling network rights"))?
        .scope(Scope::from_all(LANDLOCK_ABI))
        .map_err(landlock_err("scoping signals and abstract sockets"))?
        .create()
        .map_err(landlock_err("landlock_create_ruleset"))?
        .add_rules(rules.into_iter().map(Ok::<_, landlock::RulesetError>))
        .map_err(landlock_err("adding path rules"))?
        .add_rules(ports.iter().map(|&port| {
            Ok::<_, landlock::RulesetError>(NetPort::new(port, AccessNet::ConnectTcp))
        }))
        .map_err(landlock_err("adding port rules"))?;

    // 1. no_new_privs (also required by Landlock and seccomp for an unprivileged process).
    sys::set_no_new_privs().map_err(|source| ConfineError::NoNewPrivs { source })?;
    // 2. Landlock.
    let status = ruleset
        .restrict_self()
        .map_err(landlock_err("landlock_restrict_self"))?;
    if status.ruleset != RulesetStatus::FullyEnforced {
        return Err(ConfineError::LandlockUnavailable(format!(
            "ruleset {:?}",
            status.ruleset
        )));
    }
    secure_main::record_landlock_status(&format!(
        "fully_enforced (abi {kernel_abi}; fs: read {} paths, write {} dirs; tcp: bind denied, \
         connect {:?}; scopes: signal, abstract unix socket)",
        read.len(),
        spec.write_dirs.len(),
        ports
    ));
    // 3. seccomp, on every thread.
    seccompiler::apply_filter_all_threads(&abi_prog).map_err(|source| {
        ConfineError::SeccompApply {
            which: "architecture",
            source,
        }
    })?;
    seccompiler::apply_filter_all_threads(&deny_prog).map_err(|source| {
        ConfineError::SeccompApply {
            which: "deny-list",
            source,
        }
    })?;

    let no_new_privs = sys::get_no_new_privs()
        .map_err(|e| ConfineError::Verify(format!("prctl(PR_GET_NO_NEW_PRIVS): {e}")))?;
    let seccomp_mode = sys::get_seccomp_mode()
        .map_err(|e| ConfineError::Verify(format!("prctl(PR_GET_SECCOMP): {e}")))?;
    if !no_new_privs || seccomp_mode != 2 {
        return Err(ConfineError::Verify(format!(
            "no_new_privs={no_new_privs} seccomp mode={seccomp_mode}"
        )));
    }
    Ok(ConfineReport {
        no_new_privs,
        seccomp_mode,
        seccomp_denied: denied,
        seccomp_conditional: conditional,
        landlock_abi: kernel_abi,
        landlock_status: "fully enforced",
        landlock_read: read,
        landlock_write: spec.write_dirs.clone(),
        landlock_connect_ports: ports,
        landlock_scopes: vec!["signal", "abstract-unix-socket"],
    })
}
