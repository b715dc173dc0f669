//! Body of `secure-main-attacker` (Linux only); see that file for the commands.

#[path = "attack_sys.rs"]
mod sys;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

const NOBODY: u32 = 65534;

pub type Res<T> = Result<T, String>;

fn errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM".to_owned(),
        Some(libc::EACCES) => "EACCES".to_owned(),
        Some(libc::ESRCH) => "ESRCH".to_owned(),
        Some(libc::EIO) => "EIO".to_owned(),
        Some(libc::ENOMEM) => "ENOMEM".to_owned(),
        Some(libc::EFAULT) => "EFAULT".to_owned(),
        Some(n) => format!("errno {n}"),
        None => e.to_string(),
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Outcome of one attack: `"ok"` with whether the marker was read back, or the errno name.
fn outcome(r: std::io::Result<Vec<u8>>, marker: &[u8]) -> Value {
    match r {
        Ok(bytes) => json!({"result": "ok", "marker_read": bytes == marker}),
        Err(e) => json!({"result": errno_name(&e)}),
    }
}

fn attack(probe: &OsString) -> Res<()> {
    sys::set_rlimit(sys::Resource::Core, u64::MAX, u64::MAX)
        .map_err(|e| format!("setrlimit(RLIMIT_CORE, unlimited): {e}"))?;
    sys::drop_to(NOBODY, NOBODY).map_err(|e| format!("dropping to {NOBODY}: {e}"))?;
    sys::default_sigquit().map_err(|e| format!("signal(SIGQUIT, SIG_DFL): {e}"))?;
    let mut child = Command::new(probe)
        .arg("status")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning the probe: {e}"))?;
    let stdout = child.stdout.take().ok_or("probe stdout missing")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = lines
        .next()
        .ok_or("the probe exited before reporting")?
        .map_err(|e| format!("reading the probe's status: {e}"))?;
    let target: Value =
        serde_json::from_str(&line).map_err(|e| format!("probe status is not JSON: {e}"))?;
    let pid = target["pid"].as_i64().ok_or("probe status: no pid")? as i32;
    let addr = target["marker_addr"]
        .as_u64()
        .ok_or("probe status: no marker_addr")? as usize;
    let marker = unhex(
        target["marker_hex"]
            .as_str()
            .ok_or("probe status: no marker_hex")?,
    );

    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).and_then(|f| {
        let mut buf = vec![0u8; marker.len()];
        f.read_exact_at(&mut buf, addr as u64)?;
        Ok(buf)
    });
    let vm = sys::process_vm_read(pid, addr, marker.len());
    let environ = std::fs::read(format!("/proc/{pid}/environ"));
    let ptrace = match sys::ptrace_attach(pid) {
        Ok(()) => {
            let stop = sys::wait_stop(pid).map_err(|e| format!("waitpid after attach: {e}"))?;
            sys::ptrace_detach(pid).map_err(|e| format!("PTRACE_DETACH: {e}"))?;
            json!({"result": "ok", "stopped": libc::WIFSTOPPED(stop)})
        }
        Err(e) => json!({"result": errno_name(&e)}),
    };
    let environ = match environ {
        Ok(bytes) => json!({"result": "ok", "has_ld": bytes.windows(3).any(|w| w == b"LD_")}),
        Err(e) => json!({"result": errno_name(&e)}),
    };
    let attacks = json!({
        "proc_mem": outcome(mem, &marker),
        "process_vm_readv": outcome(vm, &marker),
        "ptrace_attach": ptrace,
        "proc_environ": environ,
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", json!({"target": target}))
        .and_then(|()| writeln!(out, "{}", json!({"attacks": attacks})))
        .and_then(|()| writeln!(out, "ready"))
        .and_then(|()| out.flush())
        .map_err(|e| format!("writing stdout: {e}"))?;
    drop(out);
    let mut go = String::new();
    std::io::stdin()
        .read_line(&mut go)
        .map_err(|e| format!("reading stdin: {e}"))?;
    drop(child.stdin.take());
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the probe: {e}"))?;
    if !status.success() {
        return Err(format!("probe ended with {status}"));
    }
    Ok(())
}

fn crash(probe: &OsString, dir: &OsString) -> Res<()> {
    use std::os::unix::process::ExitStatusExt;
    sys::set_rlimit(sys::Resource::Core, u64::MAX, u64::MAX)
        .map_err(|e| format!("setrlimit(RLIMIT_CORE, unlimited): {e}"))?;
    sys::drop_to(NOBODY, NOBODY).map_err(|e| format!("dropping to {NOBODY}: {e}"))?;
    sys::default_sigquit().map_err(|e| format!("signal(SIGQUIT, SIG_DFL): {e}"))?;
    let mut child = Command::new(probe)
        .arg("status")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawning the probe: {e}"))?;
    let stdout = child.stdout.take().ok_or("probe stdout missing")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("reading the probe's status: {e}"))?;
    let pid = i32::try_from(child.id()).map_err(|e| format!("pid: {e}"))?;
    sys::sigquit(pid).map_err(|e| format!("kill(SIGQUIT): {e}"))?;
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the probe: {e}"))?;
    println!(
        "{}",
        json!({"signal": status.signal(), "core_dumped": status.core_dumped()})
    );
    Ok(())
}

/// Probes the neighbours of a SecretBuf's data pages with write(2) (EFAULT = unreadable).
fn guards() -> Res<()> {
    let mut b = secure_main::SecretBuf::with_capacity(100, secure_main::LockPolicy::Required)
        .map_err(|e| e.to_string())?;
    b.extend_from_slice(b"sk-guarded")
        .map_err(|e| e.to_string())?;
    let page = sys::page_size();
    let data = b.data_addr_for_tests();
    // A socket (unlike /dev/null) copies the bytes, so the kernel really reads them.
    let (tx, _rx) =
        std::os::unix::net::UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let probe = |addr: usize| match sys::write_from(std::os::fd::AsFd::as_fd(&tx), addr, 1) {
        Ok(n) => json!({"result": "ok", "bytes": n}),
        Err(e) => json!({"result": errno_name(&e)}),
    };
    println!(
        "{}",
        json!({
            "first_data_byte": probe(data),
            "last_data_byte": probe(data + page - 1),
            "byte_below": probe(data - 1),
            "byte_above": probe(data + page),
        })
    );
    Ok(())
}

/// Forks with a SecretBuf and an ordinary heap buffer holding the same bytes; the child reports
/// what it sees in each (MADV_WIPEONFORK: the secret pages are zero in the child).
fn wipe_on_fork() -> Res<()> {
    let secret_bytes = b"sk-fork-secret";
    // The mlock'ed pages are the wipe-on-fork ones; memfd_secret pages are not copied into a
    // child at all (MADV_DONTFORK, checked by the smaps test).
    let mut b =
        secure_main::SecretBuf::with_capacity_mlocked(64, secure_main::LockPolicy::Required)
            .map_err(|e| e.to_string())?;
    b.extend_from_slice(secret_bytes)
        .map_err(|e| e.to_string())?;
    let heap = secret_bytes.to_vec();
    match sys::fork().map_err(|e| format!("fork: {e}"))? {
        sys::Forked::Child => {
            // Exit code bits: 1 = secret still visible, 2 = secret all zero, 4 = heap intact.
            let s = b.expose_secret();
            let mut code = 0;
            if s == secret_bytes {
                code |= 1;
            }
            if s.iter().all(|x| *x == 0) {
                code |= 2;
            }
            if std::hint::black_box(&heap)[..] == secret_bytes[..] {
                code |= 4;
            }
            sys::exit_now(code)
        }
        sys::Forked::Parent(pid) => {
            let code = sys::wait_exit(pid).map_err(|e| format!("waitpid: {e}"))?;
            println!(
                "{}",
                json!({
                    "child_sees_secret": code & 1 != 0,
                    "child_sees_zeros": code & 2 != 0,
                    "child_heap_intact": code & 4 != 0,
                    "parent_still_has_secret": b.expose_secret() == secret_bytes,
                })
            );
            Ok(())
        }
    }
}

/// `FdReader` under a stream of SIGALRMs without SA_RESTART: a plain read(2) fails with EINTR
/// (control), `read_secret` over `FdReader` retries and gets the key.
fn eintr() -> Res<()> {
    use std::os::fd::AsFd;
    use std::sync::atomic::Ordering;
    sys::install_counting_sigalrm().map_err(|e| format!("sigaction: {e}"))?;
    // The writer thread inherits a mask with SIGALRM blocked, so every alarm hits this thread.
    sys::mask_sigalrm(true).map_err(|e| format!("pthread_sigmask: {e}"))?;
    let (mut tx, rx) = std::os::unix::net::UnixStream::pair().map_err(|e| e.to_string())?;
    let writer = std::thread::spawn(move || {
        // Long enough that the reader is blocked in read(2), with alarms arriving, when this writes.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let r = tx.write_all(b"sk-eintr-key\n");
        (r, tx)
    });
    sys::mask_sigalrm(false).map_err(|e| format!("pthread_sigmask: {e}"))?;
    sys::alarm_every(20).map_err(|e| format!("setitimer: {e}"))?;

    let (_ctl_tx, ctl_rx) = std::os::unix::net::UnixStream::pair().map_err(|e| e.to_string())?;
    let mut one = [0u8; 1];
    let control = match sys::read_once(ctl_rx.as_fd(), &mut one) {
        Ok(n) => format!("read {n} bytes"),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => "EINTR".to_owned(),
        Err(e) => errno_name(&e),
    };

    let before = sys::SIGALRM_COUNT.load(Ordering::SeqCst);
    let opts = secure_main::SecretReadOptions {
        prefix: b"",
        max_len: 64,
        allowed: |b| b.is_ascii_graphic(),
        lock: secure_main::LockPolicy::Required,
    };
    let got = secure_main::read_secret(&mut secure_main::FdReader::new(rx.as_fd()), &opts);
    let during = sys::SIGALRM_COUNT.load(Ordering::SeqCst) - before;
    sys::alarm_every(0).map_err(|e| format!("setitimer: {e}"))?;
    let (write_result, _tx) = writer.join().map_err(|_| "writer thread panicked")?;
    write_result.map_err(|e| format!("writing the key: {e}"))?;
    println!(
        "{}",
        json!({
            "control": control,
            "read_ok": got.as_ref().map(|b| b.expose_secret() == b"sk-eintr-key").unwrap_or(false),
            "error": got.err().map(|e| e.to_string()),
            "signals_during_read": during,
        })
    );
    Ok(())
}

fn mlock(policy: &str, memlock: u64) -> Res<()> {
    sys::set_rlimit(sys::Resource::Memlock, memlock, memlock)
        .map_err(|e| format!("setrlimit(RLIMIT_MEMLOCK): {e}"))?;
    sys::drop_to(NOBODY, NOBODY).map_err(|e| format!("dropping to {NOBODY}: {e}"))?;
    let policy = match policy {
        "required" => secure_main::LockPolicy::Required,
        "degraded" => secure_main::LockPolicy::AllowDegraded,
        other => return Err(format!("unknown policy {other}")),
    };
    let line = match secure_main::SecretBuf::with_capacity(64, policy) {
        Ok(buf) => {
            let report = secure_main::hardening_report();
            json!({
                "ok": true,
                "lock_status": buf.lock_status(),
                "locked_secret_buffers": report.locked_secret_buffers,
                "degraded_secret_buffers": report.degraded_secret_buffers,
            })
        }
        Err(e) => json!({
            "ok": false,
            "error": e.to_string(),
            "errno": match &e {
                secure_main::SecretError::Mlock { source } => source.raw_os_error(),
                _ => None,
            },
        }),
    };
    println!("{line}");
    Ok(())
}

fn reassert() -> Res<()> {
    sys::set_rlimit(sys::Resource::Core, 1 << 20, u64::MAX)
        .map_err(|e| format!("setrlimit(RLIMIT_CORE, 1 MiB): {e}"))?;
    sys::drop_to(NOBODY, NOBODY).map_err(|e| format!("dropping to {NOBODY}: {e}"))?;
    sys::set_dumpable(true).map_err(|e| format!("prctl(PR_SET_DUMPABLE, 1): {e}"))?;
    let before = secure_main::hardening_report();
    let dumpable_before = sys::get_dumpable().map_err(|e| format!("PR_GET_DUMPABLE: {e}"))?;
    let result = secure_main::reassert_after_credential_change().map_err(|e| e.to_string());
    let after = secure_main::hardening_report();
    let dumpable_after = sys::get_dumpable().map_err(|e| format!("PR_GET_DUMPABLE: {e}"))?;
    println!(
        "{}",
        json!({
            "dumpable_before": dumpable_before,
            "core_before": before.core_limit,
            "result": result.err(),
            "dumpable_after": dumpable_after,
            "core_after": after.core_limit,
            "euid": after.euid,
        })
    );
    Ok(())
}

/// BPF `ld [off]`: load the 32-bit word at `off` in `struct seccomp_data`.
fn ld(off: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
        jt: 0,
        jf: 0,
        k: off,
    }
}

/// BPF `jeq #k, jt, jf`: skip `jt` instructions if the accumulator equals `k`, else `jf`.
fn jeq(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

/// BPF `ret #k`: the seccomp action `k`.
fn ret(k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

/// BPF program: EPERM for `prctl(PR_SET_DUMPABLE, ...)`, allow everything else.
fn deny_dumpable_filter() -> Vec<libc::sock_filter> {
    vec![
        ld(4),                                             // 0: arch
        jeq(AUDIT_ARCH, 0, 5),                             // 1: other arch -> 7
        ld(0),                                             // 2: nr
        jeq(libc::SYS_prctl as u32, 0, 3),                 // 3: not prctl -> 7
        ld(16),                                            // 4: args[0] (low half)
        jeq(libc::PR_SET_DUMPABLE as u32, 0, 1),           // 5: not PR_SET_DUMPABLE -> 7
        ret(libc::SECCOMP_RET_ERRNO | libc::EPERM as u32), // 6
        ret(libc::SECCOMP_RET_ALLOW),                      // 7
    ]
}

/// BPF program: EPERM for `setrlimit` and for `prlimit64(_, RLIMIT_CORE, new != NULL, _)`.
fn deny_core_rlimit_filter() -> Vec<libc::sock_filter> {
    vec![
        ld(4),                                 // 0: arch
        jeq(AUDIT_ARCH, 0, 10),                // 1: other arch -> 12
        ld(0),                                 // 2: nr
        jeq(libc::SYS_setrlimit as u32, 7, 0), // 3: setrlimit -> 11
        jeq(libc::SYS_prlimit64 as u32, 0, 7), // 4: not prlimit64 -> 12
        ld(24),                                // 5: args[1] (low half): resource
        #[allow(clippy::unnecessary_cast)] // c_int on musl
        jeq(libc::RLIMIT_CORE as u32, 0, 5), // 6: not RLIMIT_CORE -> 12
        ld(32),                                // 7: args[2] (low half): new limit
        jeq(0, 0, 2),                          // 8: non-NULL low half -> 11
        ld(36),                                // 9: args[2] (high half)
        jeq(0, 1, 0),                          // 10: NULL -> 12, else 11
        ret(libc::SECCOMP_RET_ERRNO | libc::EPERM as u32), // 11
        ret(libc::SECCOMP_RET_ALLOW),          // 12
    ]
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;
#[cfg(target_arch = "riscv64")]
const AUDIT_ARCH: u32 = 0xC000_00F3;

fn deny(what: &str, rest: &[OsString]) -> Res<()> {
    let prog = match what {
        "dumpable" => deny_dumpable_filter(),
        "rlimit" => deny_core_rlimit_filter(),
        other => return Err(format!("unknown deny target {other}")),
    };
    let (probe, args) = rest.split_first().ok_or("deny: missing PROBE")?;
    sys::install_filter(&prog).map_err(|e| format!("installing the seccomp filter: {e}"))?;
    let err = Command::new(probe).args(args).exec();
    Err(format!("exec {}: {err}", probe.to_string_lossy()))
}

pub fn run() -> Res<()> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let cmd = args.first().and_then(|a| a.to_str()).unwrap_or_default();
    match (cmd, args.get(1)) {
        ("attack", Some(probe)) => attack(probe),
        ("mlock", Some(p)) => mlock(&p.to_string_lossy(), 0),
        ("mlock-control", Some(p)) => mlock(&p.to_string_lossy(), 1 << 20),
        ("reassert", _) => reassert(),
        ("guards", _) => guards(),
        ("eintr", _) => eintr(),
        ("wipe-on-fork", _) => wipe_on_fork(),
        ("crash", Some(probe)) => crash(probe, args.get(2).ok_or("crash: missing DIR")?),
        ("deny", Some(what)) => deny(&what.to_string_lossy(), &args[2..]),
        _ => Err("usage: secure-main-attacker attack PROBE | mlock required|degraded | mlock-control required|degraded | reassert | guards | wipe-on-fork | eintr | crash PROBE DIR | deny dumpable|rlimit PROBE ARGS...".to_owned()),
    }
}
