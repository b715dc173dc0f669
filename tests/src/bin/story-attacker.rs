//! `story-attacker`: what a local user tries in order to get at another process's secrets, one
//! report line per attempt (see `suite_tests::report`). Run by the story test as user A, as user B
//! (against the proxy) and as A against a plain process of A's (the controls).
//!
//! ```text
//! story-attacker probe PID LOOTDIR ATTEMPT...   environ cmdline maps mem task-mem fd-dir
//!                                               ptrace-attach process-vm-readv pidfd-getfd
//!                                               kill-segv kill-abrt
//! story-attacker read-file NAME PATH LOOTDIR    open and read PATH (server-info, dumps, logs)
//! story-attacker write-file NAME PATH           create PATH (O_CREAT|O_EXCL) and write a line
//! story-attacker connect-tcp HOST:PORT          one TCP connect
//! story-attacker inject PID execve              (root, the test's instrument) make every thread
//!                                               of PID that sits in a syscall run
//!                                               execve("/nonexistent/...") and report its errno
//! story-attacker inject PID create PATH         (root) make one thread of PID create PATH
//! ```
//!
//! Whatever an attempt obtains goes to `LOOTDIR/<attempt>.bin` (never to stdout), so the test can
//! look for the key in it. Exit status 0 when every attempt was made (whatever its outcome), 2 for
//! bad usage.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use suite_tests::report::Attempt;
use suite_tests::sys;

/// Largest single region read through `/proc/PID/mem` or `process_vm_readv`.
const REGION_CAP: u64 = 16 << 20;
/// Largest total read through `/proc/PID/mem`.
const TOTAL_CAP: u64 = 256 << 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("probe") if args.len() >= 4 => match args[1].parse::<libc::pid_t>() {
            Ok(pid) => {
                let loot = PathBuf::from(&args[2]);
                for attempt in &args[3..] {
                    emit(probe(pid, &loot, attempt));
                }
                0
            }
            Err(_) => usage(),
        },
        Some("read-file") if args.len() == 4 => {
            emit(read_file(
                &args[1],
                Path::new(&args[2]),
                Path::new(&args[3]),
            ));
            0
        }
        Some("write-file") if args.len() == 3 => {
            emit(write_file(&args[1], Path::new(&args[2])));
            0
        }
        Some("connect-tcp") if args.len() == 2 => {
            emit(connect_tcp(&args[1]));
            0
        }
        Some("inject") if args.len() >= 3 => {
            let call = match (args[2].as_str(), args.get(3)) {
                ("execve", None) => inject::Call::Execve,
                ("create", Some(path)) => inject::Call::Create(path.as_bytes().to_vec()),
                _ => std::process::exit(usage()),
            };
            match args[1].parse::<libc::pid_t>() {
                Ok(pid) => {
                    for a in inject::run(pid, &call) {
                        emit(a);
                    }
                    0
                }
                Err(_) => usage(),
            }
        }
        _ => usage(),
    };
    std::process::exit(code);
}

fn usage() -> i32 {
    eprintln!(
        "usage: story-attacker probe PID LOOTDIR ATTEMPT... | read-file NAME PATH LOOTDIR | \
         write-file NAME PATH | \
         connect-tcp HOST:PORT | inject PID execve | inject PID create PATH"
    );
    2
}

fn emit(a: Attempt) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{a}");
    let _ = out.flush();
}

fn save_loot(loot: &Path, name: &str, bytes: &[u8]) {
    let path = loot.join(format!("{name}.bin"));
    if let Err(e) = std::fs::write(&path, bytes) {
        eprintln!("story-attacker: write {}: {e}", path.display());
    }
}

fn probe(pid: libc::pid_t, loot: &Path, attempt: &str) -> Attempt {
    let t = pid.to_string();
    let proc_file = |f: &str| PathBuf::from(format!("/proc/{pid}/{f}"));
    match attempt {
        "environ" | "cmdline" | "maps" => {
            let mut r = read_file(attempt, &proc_file(attempt), loot);
            r.target = t;
            r
        }
        "mem" => read_mem(attempt, &t, &proc_file("mem"), &proc_file("maps"), loot),
        "task-mem" => {
            // The last thread (not the main one when there are several): every thread's `mem` is
            // the same address space behind its own permission check.
            let tid = match last_tid(pid) {
                Ok(tid) => tid,
                Err(e) => return Attempt::err(attempt, &t, "readdir-task", &e),
            };
            match File::open(proc_file(&format!("task/{tid}/mem"))) {
                Ok(_) => Attempt::ok(attempt, &format!("{pid}/{tid}"), 0),
                Err(e) => Attempt::err(attempt, &format!("{pid}/{tid}"), "open", &e),
            }
        }
        "fd-dir" => match std::fs::read_dir(proc_file("fd")) {
            Ok(entries) => Attempt::ok(attempt, &t, entries.count() as u64),
            Err(e) => Attempt::err(attempt, &t, "opendir", &e),
        },
        "ptrace-attach" => match sys::ptrace_attach(pid) {
            Ok(()) => {
                let _ = sys::waitpid_all(pid);
                match sys::ptrace_detach(pid) {
                    Ok(()) => Attempt::ok(attempt, &t, 0),
                    Err(e) => Attempt::err(attempt, &t, "ptrace-detach", &e),
                }
            }
            Err(e) => Attempt::err(attempt, &t, "ptrace-attach", &e),
        },
        "process-vm-readv" => {
            // With the maps readable, the whole stack (where the environment lives); without them,
            // a guess: a permission denial comes before any address check (EPERM, not EFAULT).
            let (addr, len) = std::fs::read_to_string(proc_file("maps"))
                .ok()
                .and_then(|m| stack_region(&m))
                .unwrap_or((0x10000, 4096));
            match sys::process_vm_readv(pid, addr, len.min(REGION_CAP) as usize) {
                Ok(bytes) => {
                    save_loot(loot, attempt, &bytes);
                    Attempt::ok(attempt, &t, bytes.len() as u64)
                }
                Err(e) => Attempt::err(attempt, &t, "process_vm_readv", &e),
            }
        }
        "pidfd-getfd" => match sys::pidfd_open(pid) {
            // fd 0: the proxy's stdin, the pipe the key came through.
            Ok(pidfd) => match sys::pidfd_getfd(&pidfd, 0) {
                Ok(_) => Attempt::ok(attempt, &t, 0),
                Err(e) => Attempt::err(attempt, &t, "pidfd_getfd", &e),
            },
            Err(e) => Attempt::err(attempt, &t, "pidfd_open", &e),
        },
        "kill-segv" | "kill-abrt" => {
            let sig = if attempt == "kill-segv" {
                libc::SIGSEGV
            } else {
                libc::SIGABRT
            };
            match sys::kill(pid, sig) {
                Ok(()) => Attempt::ok(attempt, &t, 0),
                Err(e) => Attempt::err(attempt, &t, "kill", &e),
            }
        }
        other => Attempt::err(
            other,
            &t,
            "unknown-attempt",
            &io::Error::from_raw_os_error(libc::EINVAL),
        ),
    }
}

fn read_file(name: &str, path: &Path, loot: &Path) -> Attempt {
    let target = path.display().to_string();
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) => return Attempt::err(name, &target, "open", &e),
    };
    let mut bytes = Vec::new();
    match f.read_to_end(&mut bytes) {
        Ok(_) => {
            save_loot(loot, name, &bytes);
            Attempt::ok(name, &target, bytes.len() as u64)
        }
        Err(e) => Attempt::err(name, &target, "read", &e),
    }
}

fn write_file(name: &str, path: &Path) -> Attempt {
    let target = path.display().to_string();
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => return Attempt::err(name, &target, "open", &e),
    };
    match f.write_all(b"written by story-attacker\n") {
        Ok(()) => Attempt::ok(name, &target, 26),
        Err(e) => Attempt::err(name, &target, "write", &e),
    }
}

/// Opens `/proc/PID/mem`; when that works, reads every readable mapping into the loot.
fn read_mem(name: &str, t: &str, mem: &Path, maps: &Path, loot: &Path) -> Attempt {
    let f = match File::open(mem) {
        Ok(f) => f,
        Err(e) => return Attempt::err(name, t, "open", &e),
    };
    let maps = match std::fs::read_to_string(maps) {
        Ok(m) => m,
        Err(e) => return Attempt::err(name, t, "read-maps", &e),
    };
    let mut out = Vec::new();
    for (start, len) in readable_regions(&maps) {
        if out.len() as u64 >= TOTAL_CAP {
            break;
        }
        let mut buf = vec![0u8; len.min(REGION_CAP) as usize];
        if let Ok(n) = f.read_at(&mut buf, start) {
            out.extend_from_slice(&buf[..n]);
        }
    }
    if out.is_empty() {
        return Attempt::err(name, t, "pread", &io::Error::from_raw_os_error(libc::EIO));
    }
    save_loot(loot, name, &out);
    Attempt::ok(name, t, out.len() as u64)
}

/// `(start, len)` of every readable mapping except `[vvar]`-like special ones.
fn readable_regions(maps: &str) -> Vec<(u64, u64)> {
    maps.lines()
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let range = cols.next()?;
            let perms = cols.next()?;
            let name = line.split_whitespace().nth(5).unwrap_or("");
            if !perms.starts_with('r') || name.starts_with("[vvar") || name == "[vsyscall]" {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let a = u64::from_str_radix(a, 16).ok()?;
            let b = u64::from_str_radix(b, 16).ok()?;
            Some((a, b.checked_sub(a)?))
        })
        .collect()
}

fn stack_region(maps: &str) -> Option<(u64, u64)> {
    let line = maps.lines().find(|l| l.ends_with("[stack]"))?;
    readable_regions(line).into_iter().next()
}

fn last_tid(pid: libc::pid_t) -> io::Result<libc::pid_t> {
    let mut tids: Vec<libc::pid_t> = std::fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    tids.pop()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))
}

fn connect_tcp(addr: &str) -> Attempt {
    let parsed: std::net::SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(_) => {
            return Attempt::err(
                "connect-tcp",
                addr,
                "parse",
                &io::Error::from_raw_os_error(libc::EINVAL),
            );
        }
    };
    match std::net::TcpStream::connect_timeout(&parsed, Duration::from_secs(20)) {
        Ok(_) => Attempt::ok("connect-tcp", addr, 0),
        Err(e) => Attempt::err("connect-tcp", addr, "connect", &e),
    }
}

/// The test's instrument for "a system call attempted from inside the proxy": with root's
/// `CAP_SYS_PTRACE`, stop a thread that is inside a system call, point it back at its `syscall`
/// instruction with the registers of the call to make, single-step, read the result, restore the
/// registers and the borrowed stack words, and let it go on with its original (restarted) call.
///
/// - `execve("/nonexistent/...")` in every thread: under the proxy's seccomp filter `-EPERM`; in a
///   plain process `-ENOENT` (execve allowed, the file is missing). Nothing is ever executed.
/// - `openat(PATH, O_CREAT|O_EXCL|O_WRONLY)` in one thread, closed again at once when it worked:
///   Landlock's answer about creating files.
mod inject {
    use super::*;

    pub enum Call {
        Execve,
        Create(Vec<u8>),
    }

    impl Call {
        fn name(&self) -> &'static str {
            match self {
                Call::Execve => "inject-execve",
                Call::Create(_) => "inject-create",
            }
        }
    }

    pub fn run(pid: libc::pid_t, call: &Call) -> Vec<Attempt> {
        let tids: Vec<libc::pid_t> = match std::fs::read_dir(format!("/proc/{pid}/task")) {
            Ok(d) => d
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect(),
            Err(e) => {
                return vec![Attempt::err(
                    call.name(),
                    &pid.to_string(),
                    "readdir-task",
                    &e,
                )];
            }
        };
        let mut out = Vec::new();
        for tid in tids {
            // A thread running in user space cannot be redirected safely: try it a few times.
            for _ in 0..20 {
                if let Some(a) = one_thread(tid, call) {
                    out.push(a);
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(call, Call::Create(_)) && !out.is_empty() {
                break; // one file is enough
            }
        }
        out
    }

    #[cfg(target_arch = "x86_64")]
    fn one_thread(tid: libc::pid_t, call: &Call) -> Option<Attempt> {
        let t = tid.to_string();
        let name = call.name();
        if let Err(e) = sys::ptrace_seize(tid) {
            return Some(Attempt::err(name, &t, "ptrace-seize", &e));
        }
        let result = (|| -> Result<Option<Attempt>, Attempt> {
            let fail = |what: &str, e: io::Error| Attempt::err(name, &t, what, &e);
            sys::ptrace_interrupt(tid).map_err(|e| fail("ptrace-interrupt", e))?;
            sys::waitpid_all(tid).map_err(|e| fail("waitpid", e))?;
            let saved = sys::ptrace_getregs(tid).map_err(|e| fail("ptrace-getregs", e))?;
            // Inside a system call: orig_rax is its number and rip follows a `syscall` (0f 05).
            if saved.orig_rax as i64 == -1 {
                return Ok(None);
            }
            let insn = sys::ptrace_peekdata(tid, saved.rip - 2).map_err(|e| fail("peek", e))?;
            if insn & 0xffff != 0x050f {
                return Ok(None);
            }
            let ret = match call {
                Call::Execve => syscall_in(
                    tid,
                    &saved,
                    libc::SYS_execve,
                    [0, 0],
                    b"/nonexistent/story-execve-probe\0",
                ),
                Call::Create(path) => {
                    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
                    let mut p = path.clone();
                    p.push(0);
                    let fd = syscall_in(tid, &saved, libc::SYS_openat, [flags as u64, 0o600], &p);
                    if let Ok(opened @ 0..) = fd {
                        // Close the descriptor we made the target open.
                        let _ = syscall_in_fd(tid, &saved, libc::SYS_close, opened as u64);
                    }
                    fd
                }
            };
            let restored = sys::ptrace_setregs(tid, &saved);
            let ret = ret.map_err(|e| fail("ptrace-singlestep", e))?;
            restored.map_err(|e| fail("ptrace-setregs", e))?;
            let syscall = match call {
                Call::Execve => "execve",
                Call::Create(_) => "openat",
            };
            Ok(Some(if ret == TRAPPED {
                // Reported as `syscall=<call>-sigsys errno=ENOSYS`: refused by a seccomp trap.
                Attempt::err(
                    name,
                    &t,
                    &format!("{syscall}-sigsys"),
                    &io::Error::from_raw_os_error(libc::ENOSYS),
                )
            } else if ret < 0 {
                Attempt::err(
                    name,
                    &t,
                    syscall,
                    &io::Error::from_raw_os_error(-ret as i32),
                )
            } else {
                Attempt::ok(name, &t, 0)
            }))
        })();
        let _ = sys::ptrace_detach(tid);
        match result {
            Ok(a) => a,
            Err(a) => Some(a),
        }
    }

    /// Runs syscall `nr` in the stopped thread: for execve `(path, 0, 0)`, for openat
    /// `(AT_FDCWD, path, extra[0], extra[1])`, with `path` written to borrowed stack words below
    /// the red zone. Returns the raw result (`-errno` on failure). The caller restores registers.
    #[cfg(target_arch = "x86_64")]
    fn syscall_in(
        tid: libc::pid_t,
        saved: &sys::Regs,
        nr: libc::c_long,
        extra: [u64; 2],
        path: &[u8],
    ) -> io::Result<i64> {
        let at = (saved.rsp - 2048) & !7;
        let words: Vec<u64> = path
            .chunks(8)
            .map(|c| {
                let mut w = [0u8; 8];
                w[..c.len()].copy_from_slice(c);
                u64::from_ne_bytes(w)
            })
            .collect();
        let mut old = Vec::new();
        for i in 0..words.len() as u64 {
            old.push(sys::ptrace_peekdata(tid, at + 8 * i)?);
        }
        for (i, w) in words.iter().enumerate() {
            sys::ptrace_pokedata(tid, at + 8 * i as u64, *w)?;
        }
        let mut regs = *saved;
        if nr == libc::SYS_openat {
            regs.rdi = libc::AT_FDCWD as u64;
            regs.rsi = at;
            regs.rdx = extra[0];
            regs.r10 = extra[1];
        } else {
            regs.rdi = at;
            regs.rsi = extra[0];
            regs.rdx = extra[1];
        }
        let ret = step(tid, saved, regs, nr);
        for (i, w) in old.iter().enumerate() {
            let _ = sys::ptrace_pokedata(tid, at + 8 * i as u64, *w);
        }
        ret
    }

    /// Runs `nr(fd)` in the stopped thread (close).
    #[cfg(target_arch = "x86_64")]
    fn syscall_in_fd(
        tid: libc::pid_t,
        saved: &sys::Regs,
        nr: libc::c_long,
        fd: u64,
    ) -> io::Result<i64> {
        let mut regs = *saved;
        regs.rdi = fd;
        step(tid, saved, regs, nr)
    }

    /// `step`'s answer when the injected call was refused by a seccomp trap (SIGSYS stop).
    #[cfg(target_arch = "x86_64")]
    const TRAPPED: i64 = i64::MIN;

    #[cfg(target_arch = "x86_64")]
    fn step(
        tid: libc::pid_t,
        saved: &sys::Regs,
        mut regs: sys::Regs,
        nr: libc::c_long,
    ) -> io::Result<i64> {
        regs.rax = nr as u64;
        regs.orig_rax = u64::MAX; // no syscall restart on resume
        regs.rip = saved.rip - 2;
        sys::ptrace_setregs(tid, &regs)?;
        sys::ptrace_singlestep(tid)?;
        let status = sys::waitpid_all(tid)?;
        // A seccomp SECCOMP_RET_TRAP refusal: the call was not made, the thread stops for the
        // SIGSYS (resuming without it discards the signal: the proxy's reporter never runs).
        // The single-step's SIGTRAP is still pending and would kill the thread after the
        // detach: restore the thread, let it stop for that SIGTRAP before it runs anything,
        // and the detach (signal 0) discards it.
        if libc::WIFSTOPPED(status) && libc::WSTOPSIG(status) == libc::SIGSYS {
            sys::ptrace_setregs(tid, saved)?;
            sys::ptrace_singlestep(tid)?;
            sys::waitpid_all(tid)?;
            return Ok(TRAPPED);
        }
        Ok(sys::ptrace_getregs(tid)?.rax as i64)
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn one_thread(tid: libc::pid_t, call: &Call) -> Option<Attempt> {
        Some(Attempt::err(
            call.name(),
            &tid.to_string(),
            "unsupported-arch",
            &io::Error::from_raw_os_error(libc::ENOSYS),
        ))
    }
}
