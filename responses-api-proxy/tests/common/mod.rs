//! Test harness: spawn the real proxy binary with a key on stdin, talk raw HTTP/1.1 to it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_responses-api-proxy");

/// A distinctive key: tests grep every output for it.
pub const KEY: &str = "sk-proj-TESTKEY_zq9X7vLeakCanary_3141592653";

pub struct Proxy {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub info: PathBuf,
    pub stderr_path: PathBuf,
}

pub struct Spawn<'a> {
    pub key: &'a [u8],
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// A command that sets something up and then execs the proxy (same pid): its argv, the
    /// proxy's path and arguments appended (e.g. `prlimit --nofile=N:N`).
    pub wrapper: Vec<String>,
    /// A governed proxy gets `--user LEDGER_ACCOUNT` unless the test names a user (or turns
    /// this off to see the proxy's own default).
    pub default_user: bool,
}

/// The dedicated account a governed proxy drops to in these tests (the packages' name).
pub const LEDGER_ACCOUNT: &str = "responses-api-proxy";

/// Creates [`LEDGER_ACCOUNT`] (a system account without a home or shell) if it is missing, and
/// returns its uid. Test binaries run at once may race: "already exists" is success.
pub fn ledger_account() -> u32 {
    let uid = || {
        let out = Command::new("id")
            .args(["-u", LEDGER_ACCOUNT])
            .output()
            .unwrap();
        out.status.success().then(|| {
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u32>()
                .unwrap()
        })
    };
    if let Some(u) = uid() {
        return u;
    }
    let _ = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--home-dir",
            "/",
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            LEDGER_ACCOUNT,
        ])
        .status();
    uid().expect("useradd responses-api-proxy (scripts/test installs passwd)")
}

impl<'a> Spawn<'a> {
    pub fn new(upstream: &str) -> Self {
        Spawn {
            key: KEY.as_bytes(),
            args: vec!["--upstream-url".into(), upstream.into()],
            env: vec![],
            wrapper: vec![],
            default_user: true,
        }
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }
    /// `--policy POLICY --state-dir STATE` (governance).
    pub fn governed(self, policy: &std::path::Path, state: &std::path::Path) -> Self {
        self.arg("--policy")
            .arg(policy.to_str().unwrap())
            .arg("--state-dir")
            .arg(state.to_str().unwrap())
    }

    /// `--dump-dir` with a fresh directory the dropped proxy (uid 65534) may write; keep the
    /// returned directory alive as long as the proxy.
    pub fn dumping(self) -> (Self, tempfile::TempDir) {
        let dumps = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dumps.path(), Some(65534), Some(65534)).unwrap();
        let s = self.arg("--dump-dir").arg(dumps.path().to_str().unwrap());
        (s, dumps)
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
    /// Started on CPU `cpu` only (`taskset -c`, which then execs it).
    #[allow(dead_code)] // not every test binary pins
    pub fn on_cpu(mut self, cpu: usize) -> Self {
        self.wrapper = vec!["taskset".into(), "-c".into(), cpu.to_string()];
        self
    }
    /// RLIMIT_NOFILE `soft:hard` to start the proxy with (`prlimit`, which then execs it).
    pub fn nofile(mut self, soft: u64, hard: u64) -> Self {
        self.wrapper = vec!["prlimit".into(), format!("--nofile={soft}:{hard}")];
        self
    }
    /// In a private mount namespace with `hosts` bind-mounted over /etc/hosts (`unshare -m`,
    /// then `sh` mounts and execs the proxy).
    pub fn with_hosts_file(mut self, hosts: &std::path::Path) -> Self {
        self.wrapper = vec![
            "unshare".into(),
            "--mount".into(),
            "--propagation".into(),
            "private".into(),
            "sh".into(),
            "-c".into(),
            format!(
                "mount --bind '{}' /etc/hosts && exec \"$0\" \"$@\"",
                hosts.display()
            ),
        ];
        self
    }
    pub fn key(mut self, key: &'a [u8]) -> Self {
        self.key = key;
        self
    }

    /// Spawns and waits for the server-info file; on early exit returns status and stderr.
    pub fn try_start(self) -> Result<Proxy, (ExitStatus, String)> {
        let dir = tempfile::Builder::new()
            .prefix("proxy-test-")
            .tempdir()
            .unwrap();
        let info = dir.path().join("run/info.json");
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = match self.wrapper.split_first() {
            None => Command::new(BIN),
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
        };
        cmd.args(&self.args);
        // The ledger never belongs to nobody (r57 F3): a governed proxy drops to the dedicated
        // account unless the test names one.
        if self.default_user
            && self.args.iter().any(|a| a == "--state-dir")
            && !self
                .args
                .iter()
                .any(|a| a == "--user" || a == "--dangerously-run-as-root")
        {
            ledger_account();
            cmd.args(["--user", LEDGER_ACCOUNT]);
        }
        // Hermetic: the machine's /etc/subuid is not the test's (a range there would make a test
        // uid answer as someone else); tests that need ranges pass their own file.
        if !self.args.iter().any(|a| a == "--subuid-file") {
            cmd.args(["--subuid-file", "/nonexistent/subuid"]);
        }
        cmd.arg("--server-info")
            .arg(&info)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        {
            let mut stdin = child.stdin.take().unwrap();
            let _ = stdin.write_all(self.key);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&info) {
                if text.ends_with('\n') {
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    let port = v["port"].as_u64().unwrap() as u16;
                    return Ok(Proxy {
                        child,
                        port,
                        dir,
                        info,
                        stderr_path,
                    });
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                return Err((status, err));
            }
            assert!(Instant::now() < deadline, "proxy did not start in 30 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn start(self) -> Proxy {
        match self.try_start() {
            Ok(p) => p,
            Err((status, err)) => panic!("proxy exited during start-up ({status}): {err}"),
        }
    }
}

impl Proxy {
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits (up to 10 s) until the log on stderr has `n` lines containing `needle`; the log.
    pub fn wait_log(&self, needle: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.stderr();
            if log.lines().filter(|l| l.contains(needle)).count() >= n {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {n} lines with {needle:?} in:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// One request on a fresh connection with `Connection: close`; `Host` is ours unless given.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> RawResponse {
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {}\r\n", self.host()));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !headers.iter().any(|(k, _)| {
            k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding")
        }) {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        parse_response(&send_raw(self.port, &raw))
    }

    pub fn post(&self, body: &str) -> RawResponse {
        self.request(
            "POST",
            "/v1/responses",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `raw`, reads until the server closes (30 s cap).
pub fn send_raw(port: u16, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub raw: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// `error.code` of a proxy JSON error.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

pub fn parse_response(raw: &[u8]) -> RawResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    RawResponse {
        status,
        headers,
        body,
        raw: raw.to_vec(),
    }
}

pub fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
}

/// Whether something accepts connections on `port` (loopback).
pub fn is_listening(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// Where copies of a byte string sit in a process's memory.
#[derive(Debug, Default)]
pub struct Residency {
    /// Copies in locked mappings (`lo`).
    pub locked: usize,
    /// Copies anywhere else: one line each (address, permissions, name, flags).
    pub outside: Vec<String>,
    /// Readable-by-permission mappings the kernel refused to read (memfd_secret pages: EIO).
    pub unreadable: Vec<String>,
}

pub fn residency(pid: u32, needle: &[u8]) -> Residency {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/smaps ({e}): the test needs root"));
    let mem = std::fs::File::open(format!("/proc/{pid}/mem"))
        .unwrap_or_else(|e| panic!("cannot open /proc/{pid}/mem ({e}): the test needs root"));
    struct Vma {
        start: u64,
        end: u64,
        perms: String,
        name: String,
        flags: String,
    }
    let mut vmas: Vec<Vma> = Vec::new();
    for line in smaps.lines() {
        let mut parts = line.split_whitespace();
        let first = parts.next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16))
            {
                let perms = parts.next().unwrap_or("").to_string();
                let name = parts.nth(3).unwrap_or("[anon]").to_string();
                vmas.push(Vma {
                    start,
                    end,
                    perms,
                    name,
                    flags: String::new(),
                });
                continue;
            }
        }
        if let Some(flags) = line.strip_prefix("VmFlags:") {
            if let Some(v) = vmas.last_mut() {
                v.flags = flags.trim().to_string();
            }
        }
    }
    assert!(vmas.len() > 5, "no mappings parsed from smaps");
    let finder = memchr::memmem::Finder::new(needle);
    // Only pages that exist are read: mimalloc reserves a 1 GiB arena, and reading untouched
    // pages through /proc/PID/mem would only return zeros, slowly. A page exists when pagemap
    // says present (bit 63) or swapped (bit 62); swapped ones are read too (that is the point).
    let pagemap = std::fs::File::open(format!("/proc/{pid}/pagemap"))
        .unwrap_or_else(|e| panic!("cannot open /proc/{pid}/pagemap ({e}): the test needs root"));
    const PAGE: u64 = 4096;
    let mut out = Residency::default();
    for v in vmas.iter().filter(|v| v.perms.starts_with('r')) {
        let locked = v.flags.split_whitespace().any(|f| f == "lo");
        let pages = ((v.end - v.start) / PAGE) as usize;
        let mut entries = vec![0u8; pages * 8];
        pagemap
            .read_exact_at(&mut entries, v.start / PAGE * 8)
            .unwrap_or_else(|e| panic!("pagemap of {:#x}: {e}", v.start));
        let exists = |i: usize| {
            let e = u64::from_le_bytes(entries[i * 8..i * 8 + 8].try_into().unwrap());
            e >> 62 != 0
        };
        let mut i = 0;
        while i < pages {
            if !exists(i) {
                i += 1;
                continue;
            }
            let run_start = i;
            while i < pages && exists(i) {
                i += 1;
            }
            let at = v.start + run_start as u64 * PAGE;
            let mut buf = vec![0u8; (i - run_start) * PAGE as usize];
            match mem.read_at(&mut buf, at) {
                Ok(n) => {
                    for hit in finder.find_iter(&buf[..n]) {
                        if locked {
                            out.locked += 1;
                        } else {
                            out.outside.push(format!(
                                "{:#x} {} {} flags={}",
                                at + hit as u64,
                                v.perms,
                                v.name,
                                v.flags
                            ));
                        }
                    }
                }
                Err(e) => {
                    out.unreadable.push(format!(
                        "{:#x}-{:#x} {} {} ({e}) flags={}",
                        v.start, v.end, v.perms, v.name, v.flags
                    ));
                    break;
                }
            }
        }
    }
    out
}

/// A directory everyone may traverse (the proxy runs as nobody; the policy is read as root).
pub fn policy_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new()
        .prefix("proxy-policy-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// `policy.toml` in `dir`, mode 0644 (root-owned: the file checks pass).
pub fn write_policy(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("policy.toml");
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    p
}

/// `responses-api-proxy usage --state-dir STATE --json EXTRA...`, parsed.
pub fn usage_json(state: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .arg("usage")
        .arg("--state-dir")
        .arg(state)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "usage failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Write system calls `pid` has made (`syscw` in `/proc/PID/io`; needs root).
#[allow(dead_code)] // not every test binary counts writes
pub fn syscw(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/io ({e}): the test needs root"));
    io.lines()
        .find_map(|l| l.strip_prefix("syscw:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("no syscw in /proc/PID/io")
}

/// How long a request of `uid` that the proxy on `port` refuses itself takes end to end (curl;
/// a model no test policy allows: 403, the proxy's own work only); no answer within 5 s (curl's
/// exit 28) counts as those 5 s. For the tests that time one user's requests while another
/// floods the proxy.
pub fn timed_refused_request(uid: u32, port: u16) -> Duration {
    timed_refused_body(uid, port, r#"{"model":"o3","input":"hi"}"#)
}

/// [`timed_refused_request`] with `body` (one the test's policy refuses with 403).
pub fn timed_refused_body(uid: u32, port: u16, body: &str) -> Duration {
    use std::os::unix::process::CommandExt;
    let t = Instant::now();
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .args(["-H", "content-type: application/json"])
        .args(["--data-binary", body])
        .arg(format!("http://127.0.0.1:{port}/v1/responses"))
        .uid(uid)
        .gid(uid)
        .output()
        .expect("curl must be installed");
    let code = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        code == "403" || out.status.code() == Some(28),
        "{code:?} {out:?}"
    );
    t.elapsed()
}

/// The median of `v` (not empty).
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Twenty timings of `request`, 50 ms apart, after half a second for a flood just started to
/// get going (the flood tests: another user's requests timed while one user floods the proxy).
pub fn timings_during_flood(request: impl Fn() -> Duration) -> Vec<Duration> {
    std::thread::sleep(Duration::from_millis(500));
    (0..20)
        .map(|_| {
            let t = request();
            std::thread::sleep(Duration::from_millis(50));
            t
        })
        .collect()
}
