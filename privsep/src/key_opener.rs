//! The key opener: a small process forked before the privilege drop that keeps root's **ownership**
//! of one file (and nothing else) so the unprivileged, confined proxy can re-read its root-owned
//! 0600 key file on SIGHUP (OpenSSH's privileged monitor, reduced to one operation).
//!
//! What it can do: on each request byte from the proxy it opens the one file it was given at fork
//! time, by its name in the directory the proxy opened then ([`crate::FileDir`]: every directory
//! from `/` root's, held open, so the path is never resolved again; outside review r99 F1), with
//! [`crate::open_key_file`]'s checks (regular file, owned by root or its uid, no group
//! or other bits, no symlink, no FIFO) and sends the **open descriptor** back over a
//! `SOCK_SEQPACKET` socketpair (`SCM_RIGHTS`), or the check's error message. It never reads the
//! key: the proxy reads it from the descriptor straight into its locked page, so no key byte is
//! ever in the opener's memory or in a socket buffer. The proxy cannot name another path: the
//! request carries no data.
//!
//! How it is confined, in this order, right after `fork` (the process is single-threaded, checked):
//! `PR_SET_PDEATHSIG(SIGKILL)` and a check that the parent is still the proxy; its socket moved to
//! descriptor 3 and every other descriptor closed (listeners, the sock_diag socket, the ledger;
//! `close_range`, or one `close` per number where a service manager's filter refuses it); every
//! capability dropped when it has any (it keeps uid 0, which is what opening a root-owned 0600 file
//! needs, but no `CAP_DAC_OVERRIDE`, `CAP_SETUID`...); no_new_privs; Landlock allowing only reading
//! files in the key's directory (a rule on the file itself would not cover a key replaced by
//! `rename`, which is how editors and `install` replace files); a seccomp allow-list of [`ALLOWED`]
//! (recv, open, fstat, sendmsg, close, exit and memory management), a refused call named on stderr
//! with exit 10. Keys in the proxy's locked pages are not in the child: `memfd_secret` pages are
//! `MADV_DONTFORK`, mlock'ed ones `MADV_WIPEONFORK` (zeros).
//!
//! SIGHUP and SIGINT are ignored (a closed terminal or `systemctl kill -s HUP` reaches the whole
//! group; rotating is the proxy's answer, not the opener's death). It says "ready" on the socket
//! only once confined; [`KeyOpener::spawn`] fails otherwise.
//!
//! How it ends: when the proxy exits (the parent-death signal, and the socket reads end of file)
//! and when a call outside its list is refused. A dead opener makes every later rotation fail with
//! [`KeyOpenerError::Gone`] (logged); the proxy keeps serving with the key it has.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use codex_confine::landlock::{Access, Compat, Landlock};
use codex_confine::seccomp::Condition::{Always, Eq32};
use codex_confine::seccomp::{self, Filter, Reporter, Rule, Unlisted};

use crate::sys;

/// How long the proxy waits for the opener's answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// The opener's exit code after its SIGSYS reporter named a refused call (the proxy's own).
pub const REFUSED_SYSCALL_EXIT: i32 = crate::seccomp_policy::REFUSED_SYSCALL_EXIT;

/// Every call the opener makes after its filter is installed, each with its reason.
pub const ALLOWED: &[Rule] = &[
    Rule::new(
        "recvfrom",
        libc::SYS_recvfrom,
        Always,
        "the proxy's request byte (recv)",
    ),
    Rule::new(
        "sendmsg",
        libc::SYS_sendmsg,
        Always,
        "the answer, with the descriptor",
    ),
    Rule::new("openat", libc::SYS_openat, Always, "opening the key file"),
    Rule::new(
        "fstat",
        libc::SYS_fstat,
        Always,
        "the key file's type, mode, owner",
    ),
    Rule::new("newfstatat", libc::SYS_newfstatat, Always, "see fstat"),
    Rule::new("statx", libc::SYS_statx, Always, "see fstat"),
    Rule::new(
        "geteuid",
        libc::SYS_geteuid,
        Always,
        "the key file's owner compared with ours",
    ),
    Rule::new(
        "getresuid",
        libc::SYS_getresuid,
        Always,
        "the owner check (root or us)",
    ),
    Rule::new("close", libc::SYS_close, Always, "the opened file"),
    Rule::new(
        "fcntl(F_GETFD)",
        libc::SYS_fcntl,
        Eq32 {
            arg: 1,
            value: libc::F_GETFD as u32,
        },
        "std's check that a descriptor is open before closing it (debug builds)",
    ),
    Rule::new(
        "write",
        libc::SYS_write,
        Always,
        "the SIGSYS report on stderr",
    ),
    Rule::new(
        "mmap",
        libc::SYS_mmap,
        Always,
        "the allocator (error messages)",
    ),
    Rule::new("munmap", libc::SYS_munmap, Always, "the allocator"),
    Rule::new("madvise", libc::SYS_madvise, Always, "the allocator"),
    Rule::new("mprotect", libc::SYS_mprotect, Always, "the allocator"),
    Rule::new("brk", libc::SYS_brk, Always, "the allocator"),
    Rule::new("futex", libc::SYS_futex, Always, "std's locks"),
    Rule::new(
        "rt_sigreturn",
        libc::SYS_rt_sigreturn,
        Always,
        "signal return",
    ),
    Rule::new("exit", libc::SYS_exit, Always, "ending"),
    Rule::new("exit_group", libc::SYS_exit_group, Always, "ending"),
];

static ALLOWED_TABLES: &[&[Rule]] = &[ALLOWED];

static REPORTER: Reporter = Reporter {
    prefix: "responses-api-proxy key opener: ",
    allowed: ALLOWED_TABLES,
    refused: &[],
    exit_code: REFUSED_SYSCALL_EXIT,
};

/// Starting or asking the opener failed. Never contains key bytes (the opener never reads any).
#[derive(Debug, thiserror::Error)]
pub enum KeyOpenerError {
    #[error(
        "the key opener must be started while the process is single-threaded ({threads} threads)"
    )]
    Threads { threads: usize },
    #[error("failed to count threads for the key opener: {source}")]
    ThreadCount { source: io::Error },
    /// The opener, which has no capability, cannot open the file root read at start-up (a key
    /// of mode 0000 or 0200, a directory without its owner's search bit): every rotation would
    /// fail (outside review r101 F1), so start-up fails instead.
    #[error(
        "the key opener (uid 0 without capabilities, which re-reads the key on SIGHUP) cannot open it: {message}; give the key file its owner's read bit (chmod 0400) and every directory on its path its owner's search bit"
    )]
    CannotOpen { message: String },
    /// The key file's directory is not safe (see [`crate::FileDir`]).
    #[error("{source}")]
    Directory { source: crate::CredentialError },
    #[error("failed to create the key opener's socket (socketpair): {source}")]
    Socketpair { source: io::Error },
    #[error("failed to fork the key opener: {source}")]
    Fork { source: io::Error },
    #[error("failed to set the key opener's answer timeout (setsockopt SO_RCVTIMEO): {source}")]
    Timeout { source: io::Error },
    #[error("failed to ask the key opener (send): {source}")]
    Send { source: io::Error },
    #[error("failed to read the key opener's answer (recvmsg): {source}")]
    Recv { source: io::Error },
    #[error("the key opener (pid {pid}) is gone: key rotation from {} is no longer possible until a restart", .path.display())]
    Gone { pid: i32, path: PathBuf },
    /// The opener's check refused the file; its message names the path and why.
    #[error("{message}")]
    Refused { message: String },
    #[error("the key opener answered without a descriptor")]
    NoDescriptor,
    /// The child exited before saying it was confined (its own line on stderr says why).
    #[error("the key opener (pid {pid}) could not confine itself (see its line on stderr)")]
    NotConfined { pid: i32 },
}

/// The proxy's end of the opener.
#[derive(Debug)]
pub struct KeyOpener {
    sock: OwnedFd,
    pid: i32,
    path: PathBuf,
}

impl KeyOpener {
    /// Forks the opener for `path`. Call while single-threaded and before the privilege drop
    /// (the child keeps the uid it was forked with).
    pub fn spawn(path: &Path) -> Result<Self, KeyOpenerError> {
        let threads =
            crate::thread_count().map_err(|source| KeyOpenerError::ThreadCount { source })?;
        if threads != 1 {
            return Err(KeyOpenerError::Threads { threads });
        }
        // Checked here to name a problem; the opener walks again for itself.
        crate::FileDir::open(path, crate::FileKind::Key)
            .map_err(|source| KeyOpenerError::Directory { source })?;
        let (ours, theirs) =
            sys::seqpacket_pair().map_err(|source| KeyOpenerError::Socketpair { source })?;
        let parent = std::process::id() as libc::pid_t;
        match sys::fork().map_err(|source| KeyOpenerError::Fork { source })? {
            None => {
                drop(ours);
                child(theirs, path, parent)
            }
            Some(pid) => {
                drop(theirs);
                sys::set_recv_timeout(ours.as_fd(), ANSWER_TIMEOUT)
                    .map_err(|source| KeyOpenerError::Timeout { source })?;
                // The child says "ready" once confined; anything else (it exited) is an error:
                // an unconfined opener is never used.
                let mut ready = [0u8; 1];
                match sys::recv_with_fd(ours.as_fd(), &mut ready) {
                    Ok((1, None)) if ready[0] == b'r' => {}
                    Ok(_) | Err(_) => return Err(KeyOpenerError::NotConfined { pid }),
                }
                let opener = KeyOpener {
                    sock: ours,
                    pid,
                    path: path.to_path_buf(),
                };
                // Once now, as every rotation will (the descriptor is closed unread).
                match opener.open() {
                    Ok(_) => Ok(opener),
                    Err(KeyOpenerError::Refused { message }) => {
                        Err(KeyOpenerError::CannotOpen { message })
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// The opener's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Asks the opener to open the key file; blocks for at most [`ANSWER_TIMEOUT`].
    pub fn open(&self) -> Result<File, KeyOpenerError> {
        let gone = || KeyOpenerError::Gone {
            pid: self.pid,
            path: self.path.clone(),
        };
        // An answer that came after an earlier request timed out is stale: drop it (closing
        // its descriptor) so that this request gets its own answer.
        let mut stale = [0u8; 1024];
        loop {
            match sys::recv_with_fd_flags(self.sock.as_fd(), &mut stale, libc::MSG_DONTWAIT) {
                Ok((0, _)) => return Err(gone()),
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        match sys::send_with_fd(self.sock.as_fd(), b"o", None) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => return Err(gone()),
            Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return Err(gone()),
            Err(source) => return Err(KeyOpenerError::Send { source }),
        }
        let mut buf = [0u8; 1024];
        let (n, fd) = match sys::recv_with_fd(self.sock.as_fd(), &mut buf) {
            Ok(a) => a,
            Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return Err(gone()),
            Err(source) => return Err(KeyOpenerError::Recv { source }),
        };
        match (n, buf.first(), fd) {
            (0, _, _) => Err(gone()),
            (_, Some(0), Some(fd)) => Ok(File::from(fd)),
            (_, Some(0), None) => Err(KeyOpenerError::NoDescriptor),
            _ => Err(KeyOpenerError::Refused {
                message: String::from_utf8_lossy(&buf[1..n]).into_owned(),
            }),
        }
    }
}

/// The opener itself; never returns.
fn child(sock: OwnedFd, path: &Path, parent: libc::pid_t) -> ! {
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "responses-api-proxy key opener: {what}: {e}; exiting"
        );
        sys::exit_now(9)
    };
    if let Err(e) = sys::set_parent_death_kill() {
        fail("prctl(PR_SET_PDEATHSIG)", &e);
    }
    if sys::getppid() != parent {
        sys::exit_now(0);
    }
    if let Err(e) = sys::dup2(sock.as_fd(), 3) {
        fail("dup2", &e);
    }
    // Every descriptor but stdio and the socket (now 3; `sock`'s own number is closed too).
    // Where close_range is refused (a service manager's syscall filter that predates it), one
    // close per number up to the descriptor limit.
    if sys::close_from(4).is_err() {
        let limit = sys::get_nofile_limit().map_or(65_536, |(soft, _)| soft.min(1 << 20));
        for fd in 4..limit {
            sys::close_unowned(fd as std::os::fd::RawFd);
        }
    }
    std::mem::forget(sock);
    let sock = sys::claim_inherited_fd(3);
    // The key's directory, walked again by the opener itself (the parent's walk, which named
    // any problem, was closed above with the parent's other descriptors) before Landlock.
    let file_dir = match crate::FileDir::open(path, crate::FileKind::Key) {
        Ok(d) => d,
        Err(e) => fail("the key file's directory", &e),
    };
    let _ = sys::set_name(c"key-opener");
    // A hang-up or interrupt for the whole group (a closed terminal, `systemctl kill -s HUP`,
    // Ctrl-C) is the proxy's to handle; the opener goes when the proxy does.
    for sig in [libc::SIGHUP, libc::SIGINT] {
        if let Err(e) = sys::ignore_signal(sig) {
            fail("sigaction(SIG_IGN)", &e);
        }
    }
    // Started without capabilities (a service unit's `User=`, `CapabilityBoundingSet=`, whose
    // `SystemCallFilter=~@privileged` refuses capset): nothing to drop. With any, capset must
    // succeed or the opener does not run.
    match sys::capget() {
        Ok((0, 0)) => {}
        _ => {
            if let Err(e) = sys::drop_all_capabilities() {
                fail("capset", &e);
            }
        }
    }
    if let Err(e) = codex_confine::set_no_new_privs() {
        fail("prctl(PR_SET_NO_NEW_PRIVS)", &e);
    }
    let ruleset = Landlock::new(Compat::HardRequirement)
        .allow_path(file_dir.dir_path(), Access::Read)
        .create()
        .and_then(|r| r.restrict_self());
    if let Err(e) = ruleset {
        fail("landlock", &e);
    }
    let filter = Filter::compile_allow_list(ALLOWED, Unlisted::Trap)
        .and_then(|f| seccomp::install_reporter(&REPORTER).map(|()| f))
        .and_then(|f| f.install());
    if let Err(e) = filter {
        fail("seccomp", &e);
    }
    if sys::send_with_fd(sock.as_fd(), b"r", None).is_err() {
        sys::exit_now(0);
    }
    let mut req = [0u8; 1];
    loop {
        match sys::recv(sock.as_fd(), &mut req) {
            Ok(0) => sys::exit_now(0),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => sys::exit_now(0),
        }
        let sent = match file_dir.open_file() {
            Ok(file) => sys::send_with_fd(sock.as_fd(), &[0], Some(file.as_fd())),
            Err(e) => {
                let mut msg = vec![1u8];
                msg.extend(e.to_string().bytes().take(1000));
                sys::send_with_fd(sock.as_fd(), &msg, None)
            }
        };
        if sent.is_err() {
            sys::exit_now(0);
        }
    }
}
