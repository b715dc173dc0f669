//! What was enforced, as one line (printed with `--verbose`, and always when something is missing).

use std::fmt;
use std::path::PathBuf;

use sandbox_policy::{EffectivePolicy, PolicyKind};

use codex_confine::Enforcement;

use crate::kernel::{KernelSupport, Missing, TARGET_LANDLOCK_ABI};

/// The mount namespace's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountNsStatus {
    /// No writable root has an existing `.git`/`.codex`.
    NotNeeded,
    /// Entered; carve-outs are read-only.
    Applied,
    /// Could not be created (message); carve-outs stayed writable (only with the dangerous flag).
    Unavailable(String),
}

/// The enforcement report.
#[derive(Debug, Clone)]
pub struct Report {
    pub policy: PolicyKind,
    pub network: bool,
    pub kernel_landlock_abi: i32,
    /// Landlock ruleset status, `None` when not applied.
    pub landlock: Option<Enforcement>,
    /// Number of seccomp table entries, `None` when not applied.
    pub seccomp_rules: Option<usize>,
    pub no_new_privs: bool,
    pub new_session: bool,
    pub mount_ns: MountNsStatus,
    /// `Some(own_proc)` when the sandbox runs in its own user/mount/pid/IPC namespaces (file
    /// metadata read-only outside the roots, the process tree dies with pid 1, SysV IPC private);
    /// `own_proc`: `/proc` shows the new pid namespace.
    pub namespaces: Option<bool>,
    pub read_only_carve_outs: Vec<PathBuf>,
    /// Carve-outs left writable because the mount namespace was unavailable.
    pub carve_outs_writable: Vec<PathBuf>,
    /// `.git`/`.codex` paths that did not exist: nothing to bind, their creation is not prevented.
    pub carve_outs_not_existing: Vec<PathBuf>,
    /// Carve-outs the command could swap (a symlink, or a symlink or renameable directory on the
    /// way to a gitdir), left writable by `--dangerously-allow-weaker-sandbox`: the swappable paths.
    pub carve_outs_symlinked: Vec<PathBuf>,
    pub list_only: Vec<PathBuf>,
    pub roots_inside_denied: Vec<PathBuf>,
    pub deny_read: Vec<PathBuf>,
    /// Names of inherited variables the env policy removed (never values).
    pub env_removed: Vec<String>,
    /// The name guard mediates creation of `.git`/`.codex`/`.agents` and writes below them.
    pub name_guard: bool,
    /// The network allow-list is in force (number of allow patterns).
    pub network_allow_list: Option<usize>,
    pub missing: Vec<Missing>,
}

impl Report {
    pub fn new(policy: &EffectivePolicy, kernel: &KernelSupport) -> Self {
        Report {
            policy: policy.kind,
            network: policy.network,
            kernel_landlock_abi: kernel.landlock_abi,
            landlock: None,
            seccomp_rules: None,
            no_new_privs: false,
            new_session: false,
            mount_ns: MountNsStatus::NotNeeded,
            namespaces: None,
            read_only_carve_outs: Vec::new(),
            carve_outs_writable: Vec::new(),
            carve_outs_not_existing: Vec::new(),
            carve_outs_symlinked: Vec::new(),
            list_only: Vec::new(),
            roots_inside_denied: Vec::new(),
            deny_read: policy.deny_read.clone(),
            env_removed: Vec::new(),
            name_guard: false,
            network_allow_list: None,
            missing: Vec::new(),
        }
    }

    /// Something the policy asked for is not enforced.
    pub fn is_degraded(&self) -> bool {
        self.policy == PolicyKind::DangerFullAccess
            || !self.missing.is_empty()
            || !self.carve_outs_writable.is_empty()
            || !self.carve_outs_symlinked.is_empty()
            || self.landlock != Some(Enforcement::FullyEnforced)
    }
}

fn paths(v: &[PathBuf]) -> String {
    v.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.policy == PolicyKind::DangerFullAccess {
            return write!(
                f,
                "policy danger-full-access: NO confinement (no landlock, no seccomp, network on)"
            );
        }
        write!(
            f,
            "policy {}, network {}",
            self.policy.as_str(),
            if self.network { "on" } else { "off" }
        )?;
        match self.landlock {
            Some(s) => write!(
                f,
                "; landlock {s} (kernel abi {}, target abi {TARGET_LANDLOCK_ABI})",
                self.kernel_landlock_abi
            )?,
            None => write!(f, "; landlock NOT applied")?,
        }
        match self.seccomp_rules {
            Some(n) => write!(f, "; seccomp {n} rules")?,
            None => write!(f, "; seccomp NOT applied")?,
        }
        write!(
            f,
            "; no_new_privs {}",
            if self.no_new_privs { "on" } else { "off" }
        )?;
        write!(
            f,
            "; new session {}",
            if self.new_session { "yes" } else { "no" }
        )?;
        if let Some(n) = self.network_allow_list {
            write!(
                f,
                "; network allow-list: {n} patterns through the filtering proxy (HTTP_PROXY)"
            )?;
        }
        write!(f, "; deny-read {} paths", self.deny_read.len())?;
        if !self.env_removed.is_empty() {
            write!(f, "; env removed [{}]", self.env_removed.join(", "))?;
        }
        match self.namespaces {
            Some(own_proc) => write!(
                f,
                "; namespaces user/mount/pid/ipc (read-only outside the roots, tree dies with pid 1{})",
                if own_proc { "" } else { ", host /proc" }
            )?,
            None => write!(
                f,
                "; no namespaces (init is a subreaper; SysV IPC and POSIX message queues denied by seccomp)"
            )?,
        }
        match &self.mount_ns {
            MountNsStatus::NotNeeded => write!(f, "; mount ns not needed")?,
            MountNsStatus::Applied => {
                write!(f, "; read-only [{}]", paths(&self.read_only_carve_outs))?
            }
            MountNsStatus::Unavailable(e) => write!(
                f,
                "; WRITABLE carve-outs [{}] (mount ns unavailable: {e})",
                paths(&self.carve_outs_writable)
            )?,
        }
        if !self.carve_outs_symlinked.is_empty() {
            write!(
                f,
                "; WRITABLE symlinked carve-outs [{}]",
                paths(&self.carve_outs_symlinked)
            )?;
        }
        if self.name_guard {
            write!(
                f,
                "; name guard on (.git/.codex/.agents: no creation, no writes below)"
            )?;
        } else if !self.carve_outs_not_existing.is_empty() {
            write!(
                f,
                "; not existing, creation not prevented [{}]",
                paths(&self.carve_outs_not_existing)
            )?;
        }
        if !self.roots_inside_denied.is_empty() {
            write!(
                f,
                "; roots inside deny-read paths not granted [{}]",
                paths(&self.roots_inside_denied)
            )?;
        }
        if !self.missing.is_empty() {
            let m: Vec<String> = self.missing.iter().map(|m| m.to_string()).collect();
            write!(f, "; MISSING: {}", m.join("; "))?;
        }
        Ok(())
    }
}
