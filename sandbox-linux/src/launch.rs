//! Policy → enforcement → exec, with the order enforced by types.
//!
//! [`Sandbox<Planned>`] is a checked plan (kernel probed, refusals decided, seccomp compiled).
//! [`Sandbox::spawn`] forks; the child calls [`Sandbox::apply`], which consumes the plan and
//! returns a [`Sandbox<Applied>`], the only type with an `exec` method. "exec before the sandbox
//! is applied" therefore does not compile:
//!
//! ```compile_fail
//! fn run(planned: sandbox_linux::Sandbox<sandbox_linux::Planned>) {
//!     let _ = planned.exec(&["true".into()]); // no `exec` before `apply`
//! }
//! ```
//!
//! ```no_run
//! use sandbox_policy::{SandboxEnv, SandboxPolicy};
//! let policy = SandboxPolicy::workspace_write()
//!     .resolve(std::path::Path::new("."), &SandboxEnv::from_process(), &[])?;
//! let opts = sandbox_linux::Options { program: "example".into(), ..Default::default() };
//! let code = sandbox_linux::Sandbox::plan(policy, opts)?.spawn(&["make".into()])?;
//! std::process::exit(code);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Order in the child (docs/security.md lists the same):
//! 1. `PR_SET_PDEATHSIG(SIGKILL)` and a check that the launcher is still alive;
//! 2. `setsid()`: no controlling terminal;
//! 3. user + mount namespace with read-only carve-outs (only when a writable root has one);
//! 4. `PR_SET_NO_NEW_PRIVS`;
//! 5. Landlock: filesystem rules, TCP bind/connect (network off), signal + abstract socket scopes;
//! 6. seccomp: the `connect` notification filter whose listener goes to the launcher's supervisor
//!    ([`crate::unix_connect`]), then (`codex-confine`, on every thread) the ABI filter and the EPERM table;
//! 7. SIGPIPE back to its default action, descriptors from 3 up close-on-exec, then `execvpe` with `CODEX_SANDBOX=linux` (+ `CODEX_SANDBOX_NETWORK_DISABLED=1`).
//!
//! The launcher (parent) stays outside the sandbox only to wait, forward SIGINT/SIGTERM/SIGHUP/
//! SIGQUIT/SIGUSR1/SIGUSR2, and turn the child's status into an exit code (128 + signal).

use std::ffi::{CString, OsString};
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use sandbox_policy::{EffectivePolicy, PolicyKind};

use crate::error::{Replaceable, SandboxError};
use crate::fs_rules;
use crate::kernel::{Feature, KernelSupport, Missing, missing_features};
use crate::landlock_rules;
use crate::mountns;
use crate::namespaces;
use crate::pidns;
use crate::report::{MountNsStatus, Report};
use crate::seccomp;
use crate::sys;
use crate::unix_connect;

/// The init's message on the status pipe (two bytes: this tag, then an exit code): the set-up
/// failed with that code (the init or the command's process printed why).
const STATUS_SETUP_FAILED: u8 = b'F';
/// The command exited with that code and every other process of the sandbox's pid namespace was
/// killed and reaped (only with a pid namespace).
const STATUS_TREE_ENDED: u8 = b'E';

/// What the launcher read on the status pipe.
#[derive(Debug, Clone, Copy)]
enum Reported {
    SetupFailed(i32),
    TreeEnded(i32),
    /// End of file: the init exited (or died) without a message.
    Nothing,
}

/// Caller choices.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Run even when the kernel cannot enforce the whole policy (prints what is missing).
    pub dangerously_allow_weaker_sandbox: bool,
    /// Print the enforcement report even when nothing is missing.
    pub verbose: bool,
    /// Extra variables for the command's environment (e.g. `secure_main::kept_loader_env()`, the
    /// loader variables our own pre-main hardening removed from this process). They pass through
    /// [`Options::env`] like this process's own (outside review r51 F1: `LD_AUTH_TOKEN` and an
    /// `LD_*` URL with a password were handed to the command past the secret filter).
    pub extra_env: Vec<(OsString, OsString)>,
    /// Prefix of messages (`codex-linux-sandbox` or `codex`).
    pub program: String,
    /// Which of this process's variables the command gets (`[shell_environment_policy]`; the
    /// default removes secrets and agent sockets: `sandbox_policy::env_policy`).
    pub env: sandbox_policy::EnvPolicy,
    /// Pathname unix sockets outside the writable roots the command may connect to
    /// (`--allow-unix-socket`, `sandbox.allow_unix_sockets`); see [`crate::unix_connect`].
    pub allow_unix_sockets: Vec<PathBuf>,
    /// Let the command create `.git`, `.codex` and `.agents` and write below existing ones
    /// inside its writable roots (`--allow-git-writes`; off by default): switches the name guard
    /// ([`crate::name_guard`]) off. The read-only carve-outs at the roots' top level stay.
    pub allow_git_writes: bool,
    /// The network allow-list (`--allow-domain`, `sandbox.network.allowed_domains`): with the
    /// network off, these hosts are reachable through the launcher's filtering proxy
    /// ([`crate::net_proxy`]) and nothing else is. Empty: no proxy.
    pub allow_domains: Vec<String>,
    /// `sandbox.network.denied_domains`: refused even when an allow pattern matches.
    pub deny_domains: Vec<String>,
}

/// State: checked plan, nothing applied yet.
pub struct Planned {
    fs: Option<fs_rules::FsPlan>,
    /// The rules of `fs` resolved once to descriptors ([`fs_rules::open`]); the Landlock rules
    /// are added from these, never from the paths again (issue 12 item 8).
    fs_open: Option<Vec<fs_rules::OpenRule>>,
    /// The open-file limit to put back once the descriptors are closed (raised for them).
    nofile_restore: Option<(u64, u64)>,
    /// What the mount namespace binds, as the launcher resolved it ([`mount_identities`]).
    mount_ids: Vec<mountns::Approved>,
    seccomp: Option<codex_confine::seccomp::Filter>,
    /// Set by [`Sandbox::spawn`] in the child it cloned into new namespaces (`None`: forked
    /// without namespaces).
    entered: Option<mountns::Entered>,
    /// Where the child sends its connect-notification listener (set by `spawn`).
    unix_connect: Option<unix_connect::ChildEnd>,
    /// The creator's ends of the name guard's channels (set by `spawn` when the guard is on).
    name_guard: Option<Vec<std::os::fd::OwnedFd>>,
    /// The network allow-list when it is in force (network off, allow-list not empty).
    net_rules: Option<sandbox_policy::net_rules::DomainRules>,
    /// The filtering proxy's listener (bound by `spawn` before the fork).
    net_proxy: Option<crate::net_proxy::Bound>,
    /// The proxy's variables for the command (`HTTP_PROXY`...): ours, set after the env policy.
    proxy_env: Vec<(OsString, OsString)>,
    /// The command's own directory in a temporary root (`crate::own_tmp`; set by `spawn`).
    own_tmp: Option<PathBuf>,
}

/// State: every mechanism applied to this process.
pub struct Applied {
    report: Report,
    /// The name guard creator's lifeline ([`crate::name_guard::spawn_creator`]).
    creator_lifeline: Option<std::os::fd::OwnedFd>,
    /// See `Planned::proxy_env`.
    proxy_env: Vec<(OsString, OsString)>,
}

/// The sandbox in state `S`.
pub struct Sandbox<S> {
    policy: EffectivePolicy,
    kernel: KernelSupport,
    missing: Vec<Missing>,
    opts: Options,
    state: S,
}

impl Sandbox<Planned> {
    /// Probe the kernel and decide. Refuses (typed error naming the missing features) when a
    /// required feature is missing and `dangerously_allow_weaker_sandbox` is not set.
    pub fn plan(policy: EffectivePolicy, opts: Options) -> Result<Self, SandboxError> {
        let kernel = KernelSupport::probe();
        Self::plan_with_kernel(policy, opts, kernel)
    }

    /// [`Sandbox::plan`] with a given kernel description (tests).
    pub fn plan_with_kernel(
        policy: EffectivePolicy,
        opts: Options,
        kernel: KernelSupport,
    ) -> Result<Self, SandboxError> {
        let missing = missing_features(&kernel, &policy);
        if missing.iter().any(|m| m.required) && !opts.dangerously_allow_weaker_sandbox {
            return Err(SandboxError::Refused {
                missing: missing.into_iter().filter(|m| m.required).collect(),
            });
        }
        let confined = policy.kind != PolicyKind::DangerFullAccess;
        let rules =
            sandbox_policy::net_rules::DomainRules::parse(&opts.allow_domains, &opts.deny_domains)
                .map_err(|source| SandboxError::Domains { source })?;
        if confined && policy.network && !rules.is_empty() {
            // an allow-list would narrow nothing: say so rather than run wider than asked
            return Err(SandboxError::AllowListWithNetwork);
        }
        let net_rules = (confined && !policy.network && !rules.is_empty()).then_some(rules);
        let fs = (confined && kernel.landlock_abi > 0).then(|| fs_rules::plan(&policy));
        let mut nofile_restore = None;
        let fs_open = match &fs {
            Some(plan) => {
                // one descriptor per rule and one per directory of the walk's cache
                let wanted = 2 * plan.rules.len() as u64 + 256;
                if let Ok((soft, hard)) = sys::nofile_limit() {
                    if soft < wanted && soft < hard {
                        let raised = wanted.min(hard);
                        sys::set_nofile_limit(raised, hard).map_err(|source| {
                            SandboxError::FileLimit {
                                wanted: raised,
                                source,
                            }
                        })?;
                        nofile_restore = Some((soft, hard));
                    }
                }
                let opened = fs_rules::open(plan);
                let opened = match opened {
                    Ok(o) => o,
                    Err(source) => {
                        if let Some((soft, hard)) = nofile_restore {
                            let _ = sys::set_nofile_limit(soft, hard);
                        }
                        return Err(SandboxError::Resolve { source });
                    }
                };
                Some(opened)
            }
            None => None,
        };
        // debug builds: the window between the roots' walk and their carve-outs' (r21 F2 test)
        #[cfg(debug_assertions)]
        test_pause(TEST_PAUSE_CARVE_OUTS_VAR);
        let mount_ids = if confined {
            mount_identities(&policy, fs_open.as_deref())
        } else {
            Vec::new()
        };
        let seccomp = if confined && kernel.seccomp {
            Some(
                seccomp::compile(policy.network || net_rules.is_some())
                    .map_err(|source| SandboxError::Seccomp { source })?,
            )
        } else {
            None
        };
        Ok(Sandbox {
            policy,
            kernel,
            missing,
            opts,
            state: Planned {
                fs,
                fs_open,
                nofile_restore,
                mount_ids,
                seccomp,
                entered: None,
                unix_connect: None,
                name_guard: None,
                net_rules,
                net_proxy: None,
                proxy_env: Vec::new(),
                own_tmp: None,
            },
        })
    }

    /// The features the kernel lacks for this policy (required or not).
    pub fn missing(&self) -> &[Missing] {
        &self.missing
    }

    /// Apply every mechanism to the calling process, in the documented order.
    ///
    /// The process must be single-threaded (the user namespace requires it, and Landlock and
    /// seccomp are applied to the calling thread only). After a failure the process may be
    /// partially restricted: callers run this in a child that exits on error.
    pub fn apply(self) -> Result<Sandbox<Applied>, SandboxError> {
        let Sandbox {
            policy,
            kernel,
            mut missing,
            opts,
            state,
        } = self;
        let Planned {
            fs: plan_fs,
            mut fs_open,
            mount_ids,
            nofile_restore,
            seccomp: plan_seccomp,
            entered,
            unix_connect: unix_channel,
            name_guard: guard_channels,
            net_rules,
            net_proxy,
            proxy_env,
            own_tmp,
        } = state;
        drop(net_proxy); // the launcher serves it; this process must not hold the listener
        let proxy_only = net_rules.is_some();
        let mut report = Report::new(&policy, &kernel);
        report.network_allow_list = net_rules.as_ref().map(|r| r.allowed.len());
        if policy.kind == PolicyKind::DangerFullAccess {
            return Ok(Sandbox {
                policy,
                kernel,
                missing,
                opts,
                state: Applied {
                    report,
                    creator_lifeline: None,
                    proxy_env,
                },
            });
        }
        sys::setsid().map_err(|source| SandboxError::Setsid { source })?;
        report.new_session = true;
        #[cfg(debug_assertions)]
        test_pause_before_rules();

        // session 12: the home reached by a writable root, allowed by the flag: say so (the
        // startup files are read-only carve-outs, which need the mount namespace: outside
        // review r47 F2)
        if let Some(why) = &policy.writable_home {
            let held = if entered.is_some() {
                "only the startup files of docs/security.md are held read-only"
            } else {
                "without a mount namespace not even the startup files of docs/security.md are held read-only"
            };
            eprintln!(
                "{}: warning: --allow-writable-home: {why}: the command can change what runs at your next login, shell or git start; {held}",
                opts.program
            );
        }
        // outside review r50 L1: a held socket reached through a link the command can re-point
        for (socket, link) in &policy.sockets_through_links {
            eprintln!(
                "{}: warning: the socket {} is reached through your symbolic link {}: the command can re-point the link (a mount holds the socket, not a link); see docs/security.md",
                opts.program,
                socket.display(),
                link.display()
            );
        }
        // outside review r40 F7: the deny-read search for links stops at its bound; say so
        for d in &policy.deny_read_unsearched {
            eprintln!(
                "{}: warning: deny-read: {} has more than 4096 entries in its top two levels: links past them were not searched, and a secret one leads to stays readable",
                opts.program,
                d.display()
            );
        }
        let mut carve_outs: Vec<PathBuf> = Vec::new();
        let mut replaceable: Vec<Replaceable> = Vec::new();
        for root in &policy.writable_roots {
            for sub in &root.read_only_subpaths {
                let meta = std::fs::symlink_metadata(&sub.path);
                let is_link = meta.as_ref().is_ok_and(|m| m.file_type().is_symlink());
                // A file with another name: a mount protects this name only, and the command
                // wrote the file through the other (outside review r35 F2: `~/.bashrc` a hard
                // link of `~/dotfiles/bashrc`): fail closed.
                // (A socket is held so that its name cannot be replaced; connecting through
                // another name of it reaches the same listener: not a way around the hold.)
                let hard_links = meta
                    .as_ref()
                    .ok()
                    .filter(|m| {
                        use std::os::unix::fs::FileTypeExt;
                        !m.is_dir() && !m.file_type().is_socket()
                    })
                    .map_or(0, std::os::unix::fs::MetadataExt::nlink);
                if is_link {
                    // A mount follows the link and protects only its target; the link itself
                    // lives in the writable root and can be replaced: fail closed.
                    replaceable.push(Replaceable {
                        carve_out: sub.path.clone(),
                        via: sub.path.clone(),
                        via_is_link: true,
                        hard_links: 0,
                    });
                } else if let Some(via) = &sub.replaceable_via {
                    // a symlink or renameable directory on the way to a `.git` file's gitdir
                    replaceable.push(Replaceable {
                        carve_out: sub.path.clone(),
                        via: via.clone(),
                        via_is_link: via.is_symlink(),
                        hard_links: 0,
                    });
                } else if hard_links > 1 {
                    replaceable.push(Replaceable {
                        carve_out: sub.path.clone(),
                        via: sub.path.clone(),
                        via_is_link: false,
                        hard_links,
                    });
                } else if sub.exists {
                    carve_outs.push(sub.path.clone());
                } else {
                    report.carve_outs_not_existing.push(sub.path.clone());
                }
            }
        }
        if !replaceable.is_empty() {
            if !opts.dangerously_allow_weaker_sandbox {
                return Err(SandboxError::ReplaceableCarveOut { items: replaceable });
            }
            report.carve_outs_symlinked = replaceable.into_iter().map(|r| r.via).collect();
        }
        match entered {
            Some(entered) => {
                // Every root Landlock grants stays writable; everything else becomes a read-only
                // mount (file metadata), and so do carve-outs and deny-read paths inside roots.
                let roots: Vec<PathBuf> = policy
                    .writable_roots
                    .iter()
                    .map(|r| r.root.clone())
                    .filter(|r| !policy.deny_read.iter().any(|d| r.starts_with(d)))
                    .filter(|r| r.symlink_metadata().is_ok())
                    .collect();
                let denied_in_roots: Vec<PathBuf> = policy
                    .deny_read
                    .iter()
                    .filter(|d| roots.iter().any(|r| d.starts_with(r)))
                    .filter(|d| {
                        d.symlink_metadata()
                            .is_ok_and(|m| !m.file_type().is_symlink())
                    })
                    .cloned()
                    .collect();
                // the same carve-outs at other mount points inside a root (a bind mount of the
                // project below /tmp) are held read-only as well (third review round F4)
                let mut held = carve_outs.clone();
                held.extend(
                    crate::mount_aliases::from_this_process(&carve_outs)
                        .into_iter()
                        .filter(|a| roots.iter().any(|r| a.starts_with(r))),
                );
                let pins = mountns::pins_for(&roots, &held);
                let mut read_only = held;
                read_only.extend(denied_in_roots);
                // the identities the launcher resolved: the roots' from their rules' descriptors,
                // then the carve-outs, deny-read paths and pins ([`mount_identities`])
                let mut approved: Vec<mountns::Approved> = fs_open
                    .iter()
                    .flatten()
                    .filter(|r| roots.contains(&r.path))
                    .filter_map(|r| {
                        use std::os::fd::AsFd;
                        let st = sys::fstat(r.fd.as_fd()).ok()?;
                        Some(mountns::Approved {
                            path: r.path.clone(),
                            id: (st.st_dev, st.st_ino),
                            anchor: Some(r.path.clone()),
                        })
                    })
                    .collect();
                approved.dedup_by(|a, b| a.path == b.path);
                approved.extend(mount_ids);
                let outcome = mountns::set_up(entered, &roots, &approved, &pins, &read_only)
                    .map_err(|source| SandboxError::MountNs { source })?;
                report.mount_ns = MountNsStatus::Applied;
                report.read_only_carve_outs = carve_outs;
                report.namespaces = Some(outcome.own_proc);
                if outcome.own_proc {
                    // `/proc` is now another procfs (of the new pid namespace): the launcher's
                    // descriptors name the old one, on which a rule would not cover the new.
                    // Re-resolved here, once, from `/` (root's, no link on the way).
                    if let Some(rules) = fs_open.as_mut() {
                        fs_rules::reopen_proc(rules)
                            .map_err(|source| SandboxError::Resolve { source })?;
                    }
                }
            }
            None if carve_outs.iter().all(|c| {
                // the name guard keeps anything below a `.git`/`.codex`/`.agents` unwritten
                guard_channels.is_some()
                    && crate::name_guard::has_protected_component(c.as_os_str().as_bytes())
            }) =>
            {
                report.mount_ns = MountNsStatus::NotNeeded;
            }
            None => {
                if guard_channels.is_some() {
                    carve_outs.retain(|c| {
                        !crate::name_guard::has_protected_component(c.as_os_str().as_bytes())
                    });
                }
                let why = "no mount namespace".to_string();
                let m = Missing {
                    feature: Feature::UserNamespaces,
                    required: true,
                    detail: Some(format!(
                        "the existing .git/.codex inside the writable roots would stay writable ({why})"
                    )),
                };
                if !opts.dangerously_allow_weaker_sandbox {
                    return Err(SandboxError::Refused { missing: vec![m] });
                }
                report.mount_ns = MountNsStatus::Unavailable(why);
                report.carve_outs_writable = carve_outs;
                missing.push(m);
            }
        }

        codex_confine::set_no_new_privs().map_err(|source| SandboxError::NoNewPrivs { source })?;
        report.no_new_privs = true;

        if let (Some(fs), Some(rules)) = (&plan_fs, fs_open.take()) {
            report.list_only = fs.list_only.clone();
            report.roots_inside_denied = fs.roots_inside_denied.clone();
            let prepared = landlock_rules::prepare(rules, policy.network)
                .map_err(|source| SandboxError::Landlock { source })?;
            let status = prepared
                .restrict_self()
                .map_err(|source| SandboxError::Landlock { source })?;
            report.landlock = Some(status);
        }
        // the rules are in the kernel: their descriptors and the raised file limit go
        drop(fs_open);
        if let Some((soft, hard)) = nofile_restore {
            sys::set_nofile_limit(soft, hard).map_err(|source| SandboxError::FileLimit {
                wanted: soft,
                source,
            })?;
        }
        // --- name guard (issue 12 item 3): the creator, forked in the init's Landlock domain
        // and before the seccomp filters (it receives the filter's notifications itself) ---
        let mut creator = None;
        if let Some(channels) = guard_channels {
            // carve-outs that do not exist yet: the guard keeps them from being created
            let protected: Vec<PathBuf> = report
                .carve_outs_not_existing
                .iter()
                .map(|p| canonical_prefix(p))
                .collect();
            // `/proc` names the creator's pid namespace unless the pid namespace kept the host's
            let proc_matches = report.namespaces.unwrap_or(true);
            // where no socket may be moved or linked to, nor a link made (outside review r65
            // F1: a socket listened on in $TMPDIR, then renamed or linked to /tmp/.s.PGSQL.5432)
            let shared = crate::own_tmp::SharedTemp {
                roots: policy
                    .writable_roots
                    .iter()
                    .map(|r| r.root.clone())
                    .collect(),
                temp_roots: policy.temp_roots.clone(),
                own: own_tmp.clone(),
            };
            creator = Some(
                crate::name_guard::spawn_creator(channels, protected, proc_matches, shared)
                    .map_err(|source| SandboxError::NameGuard { source })?,
            );
            report.name_guard = true;
        }
        // --- end name guard ---
        // --- unix_connect hook (issue 12 item 1): stacked notify filter before the table ---
        if plan_seccomp.is_some() {
            let handoff = creator.as_ref().map(|c| &c.handoff);
            match unix_connect::install_in_child(unix_channel, handoff, proxy_only) {
                Ok(()) => {}
                Err(e) if opts.dangerously_allow_weaker_sandbox && e.is_unsupported() => {
                    eprintln!("{}: warning: {e}", opts.program);
                }
                Err(e) => return Err(e.into_sandbox_error()),
            }
        }
        // --- end unix_connect hook ---
        let creator_lifeline = creator.map(|c| c.lifeline);
        if let Some(filter) = &plan_seccomp {
            filter
                .install()
                .map_err(|source| SandboxError::Seccomp { source })?;
            // setting an xattr: EOPNOTSUPP instead of the table's EPERM (`crate::meta_guard`)
            crate::meta_guard::sys::install_xattr_unsupported().map_err(|source| {
                SandboxError::UnixConnect {
                    what: "seccomp(SECCOMP_SET_MODE_FILTER) of the extended-attribute filter",
                    source,
                }
            })?;
            report.seccomp_rules = Some(filter.rule_count());
        }
        report.missing = missing.clone();
        Ok(Sandbox {
            policy,
            kernel,
            missing,
            opts,
            state: Applied {
                report,
                creator_lifeline,
                proxy_env,
            },
        })
    }

    /// Fork; the child applies the sandbox and executes `command`; this process waits and
    /// returns the command's exit code (128 + signal when it was killed).
    ///
    /// Set-up failures in the child are printed there and returned as `SandboxError::Child`
    /// with the documented exit code.
    pub fn spawn(self, command: &[OsString]) -> Result<i32, SandboxError> {
        if command.is_empty() {
            return Err(SandboxError::NoCommand);
        }
        let threads =
            codex_confine::thread_count().map_err(|source| SandboxError::Threads { source })?;
        if threads > 1 {
            return Err(SandboxError::MultiThreaded { threads });
        }
        let (status_r, status_w) =
            sys::pipe_cloexec().map_err(|source| SandboxError::Pipe { source })?;
        let mut this = self;
        // --- unix_connect hook: the listener channel and the supervisor's rules ---
        let unix_parent = if this.state.seccomp.is_some() {
            let (p, c) = unix_connect::channel().map_err(|source| SandboxError::UnixConnect {
                what: "socketpair",
                source,
            })?;
            this.state.unix_connect = Some(c);
            if this.state.net_rules.is_some() {
                let bound =
                    crate::net_proxy::bind().map_err(|source| SandboxError::UnixConnect {
                        what: "bind the network proxy on 127.0.0.1",
                        source,
                    })?;
                for (k, v) in crate::net_proxy::proxy_env(bound.addr) {
                    this.state.proxy_env.push((k.into(), v.into()));
                }
                this.state.net_proxy = Some(bound);
            }
            let mut rules = unix_connect::rules_for(&this.policy, &this.opts.allow_unix_sockets);
            rules.proxy = this.state.net_proxy.as_ref().map(|b| b.addr);
            // In a temporary root the command listens only in a directory of its own, which
            // its $TMPDIR names (`crate::own_tmp`; outside review r63 F1-F4).
            if let Some(root) = this.policy.temp_roots.last() {
                let own = crate::own_tmp::ensure(root, &this.opts.program).map_err(|source| {
                    SandboxError::OwnTmp {
                        root: root.clone(),
                        source,
                    }
                })?;
                this.state
                    .proxy_env
                    .push(("TMPDIR".into(), own.clone().into_os_string()));
                this.state.own_tmp = Some(own.clone());
                rules.own_tmp = Some(own);
            }
            Some((p, rules))
        } else {
            None
        };
        let guard_launcher_ends = if unix_parent.is_some()
            && !this.policy.writable_roots.is_empty()
            && !this.opts.allow_git_writes
        {
            let ch = crate::name_guard::channels().map_err(|source| SandboxError::UnixConnect {
                what: "socketpair for the name guard",
                source,
            })?;
            this.state.name_guard = Some(ch.creator);
            ch.launcher
        } else {
            Vec::new()
        };
        // --- end unix_connect hook ---
        let confined = this.policy.kind != PolicyKind::DangerFullAccess;
        // The settings of the user's terminal, put back when the command is done (outside
        // review r14 F5: `stty -echo -isig intr undef` outlived the sandbox).
        let tty = (0..=2).find_map(|fd| sys::tty_settings(fd).map(|t| (fd, t)));
        // The status flags of the open files 0-2 share with the user's shell (`O_NONBLOCK` on
        // the terminal made the shell's next programs fail with EAGAIN: outside review r16 F6).
        let status_flags: Vec<(i32, i32)> = (0..=2)
            .filter_map(|fd| sys::file_status_flags(fd).map(|f| (fd, f)))
            .collect();
        // the init's parent (checked there against the race of the launcher dying first)
        let launcher = sys::getpid();
        // Whether the sandbox has its own pid namespace (then the init's exit ends every process
        // in it, and the launcher has nothing to sweep afterwards).
        let mut pid_namespace = false;
        let forked = if confined {
            match namespaces::clone_isolated() {
                Ok((fork, entered)) => {
                    pid_namespace = true;
                    if let sys::Fork::Child = fork {
                        this.state.entered = Some(entered);
                    }
                    fork
                }
                Err(unavailable) => {
                    this.without_namespaces(&unavailable)?;
                    // Orphans of the sandbox come back to the launcher, which kills them.
                    sys::set_child_subreaper()
                        .map_err(|source| SandboxError::Subreaper { source })?;
                    sys::fork().map_err(|source| SandboxError::Fork { source })?
                }
            }
        } else {
            sys::fork().map_err(|source| SandboxError::Fork { source })?
        };
        match forked {
            sys::Fork::Child => {
                drop(status_r);
                drop(unix_parent);
                drop(guard_launcher_ends);
                let status_w = std::fs::File::from(status_w);
                this.run_child(command, status_w, launcher)
            }
            sys::Fork::Parent { child } => {
                drop(status_w);
                // --- unix_connect hook: receive the listener, serve it on a thread ---
                drop(this.state.unix_connect.take());
                drop(this.state.name_guard.take());
                // the child holds the rules' descriptors now
                drop(this.state.fs_open.take());
                if let Some((soft, hard)) = this.state.nofile_restore.take() {
                    let _ = sys::set_nofile_limit(soft, hard);
                }
                if let (Some(bound), Some(rules)) =
                    (this.state.net_proxy.take(), this.state.net_rules.clone())
                {
                    let log = this.opts.verbose.then(|| this.opts.program.clone());
                    if let Err(source) = crate::net_proxy::serve(bound, rules, log) {
                        eprintln!(
                            "{}: warning: network proxy: {source} (every connect is refused)",
                            this.opts.program
                        );
                    }
                }
                if let Some((end, rules)) = unix_parent {
                    if let Err(source) =
                        unix_connect::start_supervisor(end, rules, guard_launcher_ends)
                    {
                        // The child's connects now fail with ENOSYS (fail closed).
                        eprintln!(
                            "{}: warning: unix-socket connect supervisor: {source}",
                            this.opts.program
                        );
                    }
                }
                // --- end unix_connect hook ---
                let mut status_r = std::fs::File::from(status_r);
                // Failure to install forwarding only loses Ctrl-C forwarding; the child still
                // dies with us (PDEATHSIG).
                let forwarding = sys::forward_signals_to(child);
                let mut job = None;
                if confined {
                    // Ctrl-Z stops the whole sandbox before the shell gets the terminal back.
                    // The init is never stopped (it only waits; it never touches the
                    // terminal): without a pid namespace its parent-death signal is catchable,
                    // and a stopped init would leave the frozen tree behind a SIGKILLed
                    // launcher.
                    let spare = Some(child);
                    match crate::job_control::start(sys::getpid(), spare) {
                        Ok(j) => job = Some(j),
                        Err(source) => eprintln!(
                            "{}: warning: Ctrl-Z will not freeze the sandbox: {source}",
                            this.opts.program
                        ),
                    }
                }
                let mut buf = [0u8; 2];
                let reported = loop {
                    // the status pipe stays open until the init exits: this thread waits here for
                    // the command's whole life, and serves job control meanwhile (no thread of
                    // its own: `job_control::JobControl`)
                    if let Some(j) = job.as_mut() {
                        use std::os::fd::AsFd;
                        let ready =
                            crate::unix_connect::sys::wait_any_ready(&[status_r.as_fd(), j.fd()]);
                        if let Ok(ready) = ready {
                            if ready.get(1) == Some(&true) {
                                if !j.handle() {
                                    job = None;
                                }
                                continue;
                            }
                        }
                    }
                    // one message of two bytes (a pipe write below PIPE_BUF is atomic)
                    match status_r.read(&mut buf) {
                        Ok(2) if buf[0] == STATUS_SETUP_FAILED => {
                            break Reported::SetupFailed(i32::from(buf[1]));
                        }
                        Ok(2) if buf[0] == STATUS_TREE_ENDED && pid_namespace => {
                            break Reported::TreeEnded(i32::from(buf[1]));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        _ => break Reported::Nothing,
                    }
                };
                // The tree is gone (the init's word): its own exit and the kernel's teardown of
                // the namespaces are not waited for (the init stays a zombie until this process
                // exits; `spawn` is the last thing a single-threaded launcher does).
                let wait = || sys::waitpid(child).map_err(|source| SandboxError::Wait { source });
                let outcome = match reported {
                    Reported::TreeEnded(code) => Ok(code),
                    Reported::SetupFailed(code) => wait().and(Err(SandboxError::Child { code })),
                    Reported::Nothing => wait().map(sys::exit_code_from_status),
                };
                if confined && !pid_namespace {
                    // Without a pid namespace: whatever the init left (only something outside
                    // the sandbox can kill it early; the command cannot signal it).
                    if let Err(left) = pidns::kill_descendants(sys::getpid()) {
                        pidns::warn_left(&this.opts.program, &left);
                    }
                }
                if confined {
                    for (fd, flags) in &status_flags {
                        if sys::file_status_flags(*fd) != Some(*flags) {
                            let _ = sys::set_file_status_flags(*fd, *flags);
                        }
                    }
                }
                if let (true, Some((fd, saved))) = (confined, tty.as_ref()) {
                    if let Err(e) = sys::restore_tty_settings(*fd, saved) {
                        eprintln!(
                            "{}: warning: could not restore the terminal's settings: {e}",
                            this.opts.program
                        );
                    }
                }
                if let Err(source) = forwarding {
                    eprintln!(
                        "{}: warning: signals are not forwarded to the command: {source}",
                        this.opts.program
                    );
                }
                // The run's $TMPDIR goes when the command left nothing in it (one directory
                // per run would pile up: agents run thousands of commands); what it left stays,
                // as /tmp files do.
                if let Some(own) = &this.state.own_tmp {
                    let _ = std::fs::remove_dir(own);
                }
                outcome
            }
        }
    }

    /// No namespaces could be created (`why`): refuse when a guarantee needs them (file metadata
    /// with writable roots), otherwise switch to the seccomp fallbacks (SysV IPC and POSIX mq denied; metadata
    /// calls denied when there is no writable root) and record what is missing.
    fn without_namespaces(&mut self, why: &std::io::Error) -> Result<(), SandboxError> {
        let no_root = self.policy.writable_roots.is_empty();
        let metadata = Missing {
            feature: Feature::UserNamespaces,
            required: !no_root,
            detail: Some(if no_root {
                format!("file metadata calls are denied by seccomp instead ({why})")
            } else {
                format!(
                    "chmod, chown, utime and xattrs/ACLs outside the writable roots cannot be refused \
                     without a mount namespace ({why})"
                )
            }),
        };
        if metadata.required && !self.opts.dangerously_allow_weaker_sandbox {
            return Err(SandboxError::Refused {
                missing: vec![metadata],
            });
        }
        self.missing.push(metadata);
        self.missing.push(Missing {
            feature: Feature::PidNamespace,
            required: false,
            detail: Some(
                if self.kernel.landlock_abi >= 6 {
                    "the sandbox's init, a subreaper inside the Landlock signal scope, ends every \
                     process of the sandbox with kill(-1, SIGKILL) when the command exits or the \
                     launcher dies"
                } else {
                    "the sandbox's init sweeps /proc for descendants to kill (no Landlock signal \
                     scope: a process forking in a loop can outrun it)"
                }
                .to_string(),
            ),
        });
        self.missing.push(Missing {
            feature: Feature::IpcNamespace,
            required: false,
            detail: Some(
                "the SysV IPC and POSIX message queue calls are denied by seccomp instead"
                    .to_string(),
            ),
        });
        if self.state.seccomp.is_some() {
            let inet = self.policy.network || self.state.net_rules.is_some();
            let table = seccomp::table_without_namespaces(inet, no_root);
            self.state.seccomp = Some(
                codex_confine::seccomp::Filter::compile(&table)
                    .map_err(|source| SandboxError::Seccomp { source })?,
            );
        }
        Ok(())
    }

    /// The sandbox's first process: apply, then run the command as a child under the init
    /// ([`pidns`]). `launcher` is the parent's pid (the parent-death race check without a pid
    /// namespace). Never returns.
    fn run_child(
        self,
        command: &[OsString],
        mut status_w: std::fs::File,
        launcher: libc::pid_t,
    ) -> ! {
        use std::os::fd::AsFd;
        let program = self.opts.program.clone();
        let fail = |e: SandboxError, w: &mut std::fs::File| -> ! {
            eprintln!("{program}: {e}");
            let code = e.exit_code();
            let _ = w.write_all(&[STATUS_SETUP_FAILED, code as u8]);
            sys::exit_now(code)
        };
        if let Err(source) = sys::set_parent_death_signal(libc::SIGKILL) {
            fail(SandboxError::ParentDeathSignal { source }, &mut status_w);
        }
        let mode = if self.state.entered.is_some() {
            pidns::Mode::PidNamespace
        } else {
            pidns::Mode::Subreaper
        };
        // The launcher died before the death signal was set: nobody would kill us. (In a pid
        // namespace getppid() is 0: the pipe tells.)
        if sys::pipe_reader_gone(status_w.as_fd())
            || (mode == pidns::Mode::Subreaper && sys::getppid() != launcher)
        {
            sys::exit_now(crate::EXIT_SETUP_FAILED);
        }
        let confined = self.policy.kind != PolicyKind::DangerFullAccess;
        let mut applied = match self.apply() {
            Ok(a) => a,
            Err(e) => fail(e, &mut status_w),
        };
        let creator_lifeline = applied.state.creator_lifeline.take();
        if !confined {
            let e = applied.exec(command);
            fail(e, &mut status_w)
        }
        // kill(-1) is used only inside a signal scope (else it would reach all of the user's
        // processes): ABI 6 and an enforced ruleset, then checked on the launcher
        let scope_expected = applied.kernel.landlock_abi >= 6
            && matches!(
                applied.state.report.landlock,
                Some(codex_confine::Enforcement::FullyEnforced)
                    | Some(codex_confine::Enforcement::PartiallyEnforced)
            );
        match pidns::prepare(mode, launcher, scope_expected, || {
            sys::pipe_reader_gone(status_w.as_fd())
        }) {
            Ok(true) => {}
            Ok(false) => sys::exit_now(crate::EXIT_SETUP_FAILED),
            Err(source) => fail(SandboxError::Init { source }, &mut status_w),
        }
        // The command's process: `clone(CLONE_VM | CLONE_VFORK)` (this process is single-threaded
        // and waits until the command has exec'ed or failed): no copy of this address space is
        // made and none is torn down again by the `execve` (issue 12: start-up).
        let child_w = &mut status_w;
        let spawned = sys::spawn_vfork(move || {
            let status_w = child_w;
            if let Err(source) = sys::set_parent_death_signal(libc::SIGKILL) {
                fail(SandboxError::ParentDeathSignal { source }, status_w);
            }
            // A nested Landlock domain for the command: it cannot signal (SIGSTOP) or
            // ptrace the init, whose domain encloses it (round-5 review F1: without a pid
            // namespace the command stopped its init and outlived the launcher).
            if confined {
                let nested = codex_confine::landlock::scopes_only()
                    .and_then(codex_confine::landlock::Created::restrict_self);
                if let Err(source) = nested {
                    fail(SandboxError::Landlock { source }, status_w);
                }
            }
            let e = applied.exec(command);
            fail(e, status_w)
        });
        match spawned {
            Ok(child) => {
                let done = pidns::supervise(mode, child, creator_lifeline, &program);
                if mode == pidns::Mode::PidNamespace && done.tree_ended {
                    // nothing of the sandbox is left but this process, which lets go of the
                    // user's terminal before the launcher returns
                    sys::close_stdio();
                    let _ = status_w.write_all(&[STATUS_TREE_ENDED, done.code as u8]);
                }
                drop(status_w);
                sys::exit_now(done.code)
            }
            Err(source) => fail(SandboxError::Fork { source }, &mut status_w),
        }
    }
}

impl Sandbox<Applied> {
    /// What was enforced.
    pub fn report(&self) -> &Report {
        &self.state.report
    }

    /// Replace this process with `command` (PATH lookup like a shell). Returns only on failure:
    /// `CommandNotFound` (127) or `CommandNotExecutable` (126).
    pub fn exec(mut self, command: &[OsString]) -> SandboxError {
        let filtered = self
            .opts
            .env
            .apply(std::env::vars_os().chain(self.opts.extra_env.iter().cloned()));
        self.state.report.env_removed = filtered.removed;
        let report = &self.state.report;
        if self.opts.verbose || report.is_degraded() {
            eprintln!("{}: {}", self.opts.program, report);
        }
        let Some(first) = command.first() else {
            return SandboxError::NoCommand;
        };
        let mut argv = Vec::with_capacity(command.len());
        for a in command {
            match CString::new(a.as_bytes()) {
                Ok(c) => argv.push(c),
                Err(_) => {
                    return SandboxError::Nul {
                        what: "command argument",
                    };
                }
            }
        }
        let envp = match child_env(&self.policy, filtered.vars, &self.state.proxy_env) {
            Ok(e) => e,
            Err(e) => return e,
        };
        if let Err(source) = sys::reset_sigpipe() {
            return SandboxError::Sigpipe { source };
        }
        if let Err(source) = sys::cloexec_from_3() {
            return SandboxError::InheritedFds { source };
        }
        let err = sys::execvpe(&argv[0], &argv, &envp);
        let name = PathBuf::from(first);
        match err.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => {
                SandboxError::CommandNotFound { command: name }
            }
            _ => SandboxError::CommandNotExecutable {
                command: name,
                source: err,
            },
        }
    }
}

/// The identity (`st_dev`, `st_ino`) of every path the mount namespace may bind inside a
/// writable root, resolved once here: the existing carve-outs, the deny-read paths inside a
/// root and every directory between the
/// outermost root above them and them (the pins). Each is reached from the descriptor of the
/// innermost root at or above it (`rules`, the walk the Landlock rules are added from), one
/// component at a time without following links ([`crate::resolve::open_beneath`]): root and
/// carve-out come from one walk, so a directory exchanged with another in between cannot give
/// a root from one and a carve-out from the other (outside review r21 F2). Without a
/// descriptor for the root (no Landlock rules) a path is walked from `/`
/// ([`crate::resolve`]). A path that does not resolve (missing, or through a link: the
/// carve-outs' own checks refuse those) gets none. The child reaches each path the same way and
/// compares ([`mountns::set_up`]).
fn mount_identities(
    policy: &EffectivePolicy,
    rules: Option<&[fs_rules::OpenRule]>,
) -> Vec<mountns::Approved> {
    use crate::resolve::{self, LastLink};
    use std::os::fd::AsFd;
    let mut cache = resolve::Cache::default();
    let roots: Vec<&PathBuf> = policy.writable_roots.iter().map(|r| &r.root).collect();
    let mut inside: Vec<PathBuf> = Vec::new();
    for root in &policy.writable_roots {
        inside.extend(
            root.read_only_subpaths
                .iter()
                .filter(|s| s.exists)
                .map(|s| s.path.clone()),
        );
    }
    inside.extend(
        policy
            .deny_read
            .iter()
            .filter(|d| roots.iter().any(|r| d.starts_with(r)))
            .cloned(),
    );
    let mut out: Vec<mountns::Approved> = Vec::new();
    for p in inside {
        // `p` and its ancestors up to the outermost root above it
        let Some(outer) = roots
            .iter()
            .filter(|r| p.starts_with(r) && p != ***r)
            .min_by_key(|r| r.components().count())
        else {
            continue;
        };
        let mut chain = vec![p.clone()];
        let mut a = p.clone();
        while a.pop() && a.starts_with(outer) && a != **outer {
            chain.push(a.clone());
        }
        for c in chain {
            if out.iter().any(|q| q.path == c) {
                continue;
            }
            // the innermost root at or above `c` with a descriptor (a root itself: its own)
            let anchor = roots
                .iter()
                .filter(|r| c.starts_with(r))
                .filter_map(|r| {
                    let fd = rules?.iter().find(|o| o.path == **r)?;
                    Some((*r, fd))
                })
                .max_by_key(|(r, _)| r.components().count());
            let approved = match anchor {
                Some((r, rule)) => {
                    let Ok(rel) = c.strip_prefix(r) else { continue };
                    match resolve::open_beneath(rule.fd.as_fd(), rel) {
                        Ok((_, st)) => mountns::Approved {
                            path: c.clone(),
                            id: (st.st_dev, st.st_ino),
                            anchor: Some(r.clone()),
                        },
                        // a link on the way (only one owned by root passes the walk from `/`,
                        // whose identity the child then checks by path, as before r21), or
                        // missing (no entry)
                        Err(_) => match resolve::open_cached(&c, LastLink::Judge, &mut cache) {
                            Ok(r) => mountns::Approved {
                                path: c.clone(),
                                id: (r.dev, r.ino),
                                anchor: None,
                            },
                            Err(_) => continue,
                        },
                    }
                }
                None => match resolve::open_cached(&c, LastLink::Judge, &mut cache) {
                    Ok(r) => mountns::Approved {
                        path: c.clone(),
                        id: (r.dev, r.ino),
                        anchor: None,
                    },
                    Err(_) => continue,
                },
            };
            out.push(approved);
        }
    }
    out
}

/// Test-only hook, compiled into debug builds only (the tests' `target/debug` binaries; release
/// builds ignore the variable): with `CODEX_SANDBOX_TEST_PAUSE_BEFORE_RULES=DIR`, the sandbox's
/// first process, after the plan is checked and its paths resolved and before any mount or
/// Landlock rule is made from them, writes a byte to the FIFO `DIR/paused` and waits for one on
/// `DIR/resume`. The race test (`tests/escapes.rs`, issue 12 item 8) swaps a writable root for a
/// symbolic link in that window. The variable is not passed to the command ([`child_env`]); a
/// command that sets it for a nested sandbox only pauses that sandbox's own set-up.
pub const TEST_PAUSE_VAR: &str = "CODEX_SANDBOX_TEST_PAUSE_BEFORE_RULES";

/// Test-only hook like [`TEST_PAUSE_VAR`] (debug builds only), pausing at two more places
/// (outside review r21 F2, `tests/resolve_race.rs`): in the launcher between the walk of the
/// roots and the walk of their carve-outs, and in the sandbox's first process between the
/// re-attached roots and the carve-outs' mounts. Not passed to the command either.
pub const TEST_PAUSE_CARVE_OUTS_VAR: &str = "CODEX_SANDBOX_TEST_PAUSE_CARVE_OUTS";

#[cfg(debug_assertions)]
fn test_pause_before_rules() {
    test_pause(TEST_PAUSE_VAR);
}

/// The hook: with `var=DIR` set, write a byte to the FIFO `DIR/paused` and wait for one on
/// `DIR/resume` (debug builds only).
#[cfg(debug_assertions)]
pub(crate) fn test_pause(var: &str) {
    let Some(dir) = std::env::var_os(var) else {
        return;
    };
    let dir = PathBuf::from(dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("paused"))
    {
        let _ = f.write_all(b"p");
    }
    if let Ok(mut f) = std::fs::File::open(dir.join("resume")) {
        let mut b = [0u8; 1];
        let _ = f.read(&mut b);
    }
}

/// `p` with its longest existing ancestor resolved (symlinks followed), the rest appended.
fn canonical_prefix(p: &std::path::Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut cur = p.to_path_buf();
    loop {
        if let Ok(c) = std::fs::canonicalize(&cur) {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out;
        }
        match (cur.file_name().map(|n| n.to_owned()), cur.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                cur = parent.to_path_buf();
            }
            _ => return p.to_path_buf(),
        }
    }
}

/// The command's environment: ours as the env policy filtered it (without the test hook's
/// variable), plus the sandbox markers, plus `extra` (the network proxy's variables).
fn child_env(
    policy: &EffectivePolicy,
    mut vars: Vec<(OsString, OsString)>,
    extra: &[(OsString, OsString)],
) -> Result<Vec<CString>, SandboxError> {
    vars.retain(|(k, _)| k != TEST_PAUSE_VAR && k != TEST_PAUSE_CARVE_OUTS_VAR);
    if policy.kind != PolicyKind::DangerFullAccess {
        vars.push(("CODEX_SANDBOX".into(), "linux".into()));
    }
    if !policy.network {
        vars.push(("CODEX_SANDBOX_NETWORK_DISABLED".into(), "1".into()));
    }
    for (k, v) in extra {
        vars.retain(|(old, _)| old != k);
        vars.push((k.clone(), v.clone()));
    }
    vars.into_iter()
        .map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).map_err(|_| SandboxError::Nul {
                what: "environment variable",
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_policy::{SandboxEnv, SandboxPolicy};

    #[test]
    fn old_landlock_abi_is_refused_with_the_kernel_named_unless_dangerous() {
        let policy = SandboxPolicy::ReadOnly
            .resolve(std::path::Path::new("/"), &SandboxEnv::default(), &[])
            .unwrap();
        let old = KernelSupport {
            landlock_abi: 5,
            landlock_unavailable: None,
            seccomp: true,
        };
        let Err(e) = Sandbox::plan_with_kernel(policy.clone(), Options::default(), old.clone())
        else {
            panic!("ABI 5 must be refused");
        };
        let msg = e.to_string();
        assert_eq!(e.exit_code(), crate::EXIT_REFUSED);
        assert!(msg.starts_with("refusing to run"), "{msg}");
        assert!(
            msg.contains("Landlock ABI 6, Linux 6.12")
                && msg.contains("this kernel has Landlock ABI 5"),
            "{msg}"
        );
        assert!(msg.contains("--dangerously-allow-weaker-sandbox"), "{msg}");
        let opts = Options {
            dangerously_allow_weaker_sandbox: true,
            ..Default::default()
        };
        let planned = Sandbox::plan_with_kernel(policy, opts, old).unwrap();
        assert_eq!(planned.missing().iter().filter(|m| m.required).count(), 2);
    }
}
