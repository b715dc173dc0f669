//! Errors of the sandbox, one variant per failing operation, and their exit codes.

use std::io;
use std::path::PathBuf;

use crate::kernel::Missing;
use crate::landlock_rules::LandlockError;
use crate::mountns::MountNsError;
use crate::seccomp::SeccompError;

/// Everything that can stop the sandbox from running the command.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{source}")]
    Policy {
        #[source]
        source: sandbox_policy::PolicyError,
    },
    #[error("{}", refusal_message(missing))]
    Refused { missing: Vec<Missing> },
    /// A planned path could not be resolved to the descriptor its rule is added from
    /// ([`crate::resolve`]); a link not owned by root on the way is refused like the policy's.
    #[error("{source}")]
    Resolve {
        #[source]
        source: crate::resolve::ResolveError,
    },
    #[error(
        "failed to raise the open-file limit (RLIMIT_NOFILE) to {wanted} for the rules' descriptors: {source}"
    )]
    FileLimit {
        wanted: u64,
        #[source]
        source: io::Error,
    },
    #[error(
        "refusing to run: {}; a read-only mount would protect only what the path names now and the \
         command could swap it for a writable directory (make `.git`/`.codex` real directories, or \
         a `.git` file whose `gitdir:` path has no symlink and lies outside the writable roots or \
         under a root's own `.git`), or pass --dangerously-allow-weaker-sandbox to run with it \
         writable",
        items.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    ReplaceableCarveOut { items: Vec<Replaceable> },
    #[error("no command given (usage: ... -- COMMAND [ARGS...])")]
    NoCommand,
    #[error("failed to count this process's threads (/proc/self/task): {source}")]
    Threads {
        #[source]
        source: io::Error,
    },
    #[error("the launcher has {threads} threads; it must be single-threaded to fork the sandbox")]
    MultiThreaded { threads: usize },
    #[error("pipe2 failed: {source}")]
    Pipe {
        #[source]
        source: io::Error,
    },
    #[error("fork failed: {source}")]
    Fork {
        #[source]
        source: io::Error,
    },
    #[error("waitpid failed: {source}")]
    Wait {
        #[source]
        source: io::Error,
    },
    #[error("failed to set the parent-death signal (prctl PR_SET_PDEATHSIG): {source}")]
    ParentDeathSignal {
        #[source]
        source: io::Error,
    },
    #[error(
        "failed to make the launcher a child subreaper (prctl PR_SET_CHILD_SUBREAPER): {source}"
    )]
    Subreaper {
        #[source]
        source: io::Error,
    },
    #[error(
        "failed to prepare the sandbox's init (prctl PR_SET_CHILD_SUBREAPER / PR_SET_PDEATHSIG, sigaction): {source}"
    )]
    Init {
        #[source]
        source: io::Error,
    },
    #[error("failed to start a new session (setsid): {source}")]
    Setsid {
        #[source]
        source: io::Error,
    },
    #[error("{source}")]
    MountNs {
        #[source]
        source: MountNsError,
    },
    #[error("failed to set no_new_privs (prctl PR_SET_NO_NEW_PRIVS): {source}")]
    NoNewPrivs {
        #[source]
        source: io::Error,
    },
    #[error("{source}")]
    Landlock {
        #[source]
        source: LandlockError,
    },
    #[error("{source}")]
    Seccomp {
        #[source]
        source: SeccompError,
    },
    #[error("failed to restore the default SIGPIPE action (sigaction): {source}")]
    Sigpipe {
        #[source]
        source: io::Error,
    },
    #[error(
        "failed to mark inherited descriptors close-on-exec (close_range, Linux 5.11): {source}"
    )]
    InheritedFds {
        #[source]
        source: io::Error,
    },
    #[error("{what} contains a NUL byte")]
    Nul { what: &'static str },
    #[error("{}: command not found", command.display())]
    CommandNotFound { command: PathBuf },
    #[error("{}: cannot execute: {source}", command.display())]
    CommandNotExecutable {
        command: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "refusing to run: this kernel cannot mediate unix-socket connects ({feature}: {source}); \
         pass --dangerously-allow-weaker-sandbox to run with pathname unix sockets connectable"
    )]
    UnixConnectUnsupported {
        feature: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the command's own temporary directory in {}: {source}", root.display())]
    OwnTmp {
        root: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("unix-socket connect mediation: {what}: {source}")]
    UnixConnect {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(
        "sandbox network allow-list given while network access is fully on (network_access = true): \
         drop one of them"
    )]
    AllowListWithNetwork,
    #[error("sandbox network allow-list: {source}")]
    Domains {
        #[source]
        source: sandbox_policy::net_rules::PatternError,
    },
    #[error("name guard: the creator process: {source}")]
    NameGuard {
        #[source]
        source: io::Error,
    },
    /// The forked child failed and printed its own message.
    #[error("sandbox set-up failed in the child (exit code {code})")]
    Child { code: i32 },
}

fn refusal_message(missing: &[Missing]) -> String {
    let list: Vec<String> = missing.iter().map(|m| m.to_string()).collect();
    format!(
        "refusing to run: this kernel cannot enforce the sandbox policy: missing {}; \
         pass --dangerously-allow-weaker-sandbox to run with a weaker sandbox anyway",
        list.join("; ")
    )
}

/// A carve-out the sandboxed command could swap (see [`SandboxError::ReplaceableCarveOut`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaceable {
    /// The path that should stay read-only.
    pub carve_out: PathBuf,
    /// What the command could swap: the carve-out itself (a symlink) or a path on the way to it.
    pub via: PathBuf,
    /// `via` is a symbolic link (seen when the plan was made; formatting does no I/O).
    pub via_is_link: bool,
    /// The carve-out is a file with this many hard links (more than one): the command could
    /// write it through another name (0: not this case).
    pub hard_links: u64,
}

impl std::fmt::Display for Replaceable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.hard_links > 1 {
            return write!(
                f,
                "{} has {} hard links: another name for it may lie in a writable root",
                self.carve_out.display(),
                self.hard_links
            );
        }
        match (self.via == self.carve_out, self.via_is_link) {
            (true, true) => write!(f, "{} is a symbolic link", self.via.display()),
            (true, false) => write!(
                f,
                "{} cannot be held read-only: it is CODEX_HOME and itself a writable root, or a startup directory too large to search for links and hard links (over 20000 entries or 8 levels)",
                self.via.display()
            ),
            (false, true) => write!(
                f,
                "{} is a symbolic link on the way to the read-only {} (a gitdir or CODEX_HOME)",
                self.via.display(),
                self.carve_out.display()
            ),
            (false, false) => write!(
                f,
                "{} is on the way to the read-only {} (a gitdir or CODEX_HOME) and lies in a writable root (it can be renamed or replaced)",
                self.via.display(),
                self.carve_out.display()
            ),
        }
    }
}

impl SandboxError {
    /// The documented exit code for this error (see the crate docs).
    pub fn exit_code(&self) -> i32 {
        match self {
            SandboxError::Policy { .. } | SandboxError::NoCommand | SandboxError::Nul { .. } => {
                crate::EXIT_INVALID_POLICY
            }
            SandboxError::Resolve {
                source:
                    crate::resolve::ResolveError::ForeignSymlink { .. }
                    | crate::resolve::ResolveError::PwdNotCwd { .. },
            } => crate::EXIT_INVALID_POLICY,
            SandboxError::Refused { .. }
            | SandboxError::ReplaceableCarveOut { .. }
            | SandboxError::UnixConnectUnsupported { .. } => crate::EXIT_REFUSED,
            SandboxError::Domains { .. } | SandboxError::AllowListWithNetwork => {
                crate::EXIT_INVALID_POLICY
            }
            SandboxError::CommandNotFound { .. } => crate::EXIT_NOT_FOUND,
            SandboxError::CommandNotExecutable { .. } => crate::EXIT_NOT_EXECUTABLE,
            SandboxError::Child { code } => *code,
            _ => crate::EXIT_SETUP_FAILED,
        }
    }
}
