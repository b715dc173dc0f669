//! The story of SPEC §5, end to end, with real accounts and real processes (Linux, as root).
//!
//! An administrator (this test, root) starts `responses-api-proxy` with the key on stdin,
//! `--user` to a dedicated account, a unix socket and a TCP port, and `--allow-group` naming the
//! group user A is a supplementary member of. Then, as real processes under real uids:
//!
//! - A streams answers through both listeners (curl, the `openai` Python SDK) and with `codex exec`;
//! - B (not in the group) gets 403 on both, and B's `GET /shutdown` is refused while the proxy
//!   keeps serving (A's `GET /shutdown` at the end is the control: it stops the proxy);
//! - A and B try every way a local user has to get the key (`story-attacker`), each failing with
//!   the errno asserted here; where the syscall succeeds (cmdline, the 0644 server-info file) the
//!   key is absent from what it returned. Controls: the same attempts, as A, against a plain
//!   process of A's succeed and find a marker planted in its environment;
//! - the proxy's `/proc/PID/status` shows the dropped ids, `NoNewPrivs: 1`, `Seccomp: 2`;
//! - an `execve` run from inside the proxy (injected with ptrace by root, the test's instrument)
//!   is refused by the seccomp allow-list in every thread (a SIGSYS trap: never made), where the
//!   same injection in a plain process runs and gets ENOENT;
//!   an injected `openat(O_CREAT)` gets EACCES (Landlock) except in `--dump-dir`;
//! - a command run by A under `codex sandbox linux` cannot connect to the proxy's TCP port, read
//!   A's `auth.json`, write in A's home, or read/trace/signal A's process outside the sandbox,
//!   while A outside the sandbox can do each.
//!
//! Accounts are created with `groupadd`/`useradd` under unique names and removed by a guard, also
//! when the test fails. See `tests/README.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use suite_test_support::bins::workspace_bin;
use suite_test_support::responses_mock::{MockResponse, MockUpstream, sse_text_response};
use suite_test_support::tls::TestCa;
use suite_tests::report::{Attempt, Outcome};
use suite_tests::sys::{Identity, run_as};

const ATTACKER: &str = env!("CARGO_BIN_EXE_story-attacker");
/// Every external command gets this long before it is killed (a loaded 2-core machine).
const CMD_TIMEOUT: Duration = Duration::from_secs(120);
/// What the mock upstream streams back, one word per event.
const ANSWER: &str = "the story streams through the proxy";
/// Delay between streamed events, to see them arrive one by one.
const EVENT_DELAY: Duration = Duration::from_millis(150);

// ---------------------------------------------------------------------------------------------
// accounts

/// A local account made for this test.
#[derive(Clone, Debug)]
struct User {
    name: String,
    id: Identity,
    home: PathBuf,
}

/// Creates groups and users with unique names and deletes them on drop (test failure included).
/// Processes running as these users must be gone first: [`Story`] kills its children before.
#[derive(Default)]
struct Accounts {
    users: Vec<String>,
    groups: Vec<String>,
}

impl Accounts {
    fn groupadd(&mut self, name: &str) -> u32 {
        retry_locked(&["groupadd", name]);
        self.groups.push(name.to_string());
        let out = run_ok(Command::new("getent").args(["group", name]));
        out.split(':').nth(2).unwrap().trim().parse().unwrap()
    }

    /// A user with its own primary group (same name) and `supplementary` groups, home `home`
    /// (created here, 0700, owned by the user).
    fn useradd(&mut self, name: &str, supplementary: &[&str], home: &Path) -> User {
        let mut args = vec!["useradd", "-M", "-U", "-s", "/usr/sbin/nologin", "-d"];
        let home_s = home.to_str().unwrap().to_string();
        args.push(&home_s);
        let sup = supplementary.join(",");
        if !supplementary.is_empty() {
            args.push("-G");
            args.push(&sup);
        }
        args.push(name);
        retry_locked(&args);
        self.users.push(name.to_string());
        self.groups.push(name.to_string()); // -U: the user's own group, removed with it
        let uid: u32 = run_ok(Command::new("id").args(["-u", name]))
            .trim()
            .parse()
            .unwrap();
        let gid: u32 = run_ok(Command::new("id").args(["-g", name]))
            .trim()
            .parse()
            .unwrap();
        let groups: Vec<u32> = run_ok(Command::new("id").args(["-G", name]))
            .split_whitespace()
            .map(|g| g.parse().unwrap())
            .collect();
        fs::create_dir_all(home).unwrap();
        chown(home, uid, gid);
        fs::set_permissions(home, fs::Permissions::from_mode(0o700)).unwrap();
        User {
            name: name.to_string(),
            id: Identity { uid, gid, groups },
            home: home.to_path_buf(),
        }
    }
}

impl Drop for Accounts {
    fn drop(&mut self) {
        for u in self.users.drain(..).rev() {
            if !try_locked(&["userdel", &u]) {
                let _ = try_locked(&["userdel", "-f", &u]);
            }
        }
        for g in self.groups.drain(..).rev() {
            // userdel already removed a user's own group; ignore "does not exist".
            if Command::new("getent")
                .args(["group", &g])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                let _ = try_locked(&["groupdel", &g]);
            }
        }
    }
}

/// Runs a passwd/group tool, retrying while another test holds `/etc/passwd`'s lock.
fn try_locked(args: &[&str]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new(args[0]).args(&args[1..]).output();
        match out {
            Ok(o) if o.status.success() => return true,
            Ok(o) => {
                let err = String::from_utf8_lossy(&o.stderr).into_owned();
                let locked = err.contains("lock") || o.status.code() == Some(10);
                if !locked || Instant::now() > deadline {
                    eprintln!(
                        "story: {} failed ({}): {}",
                        args.join(" "),
                        o.status,
                        err.trim()
                    );
                    return false;
                }
            }
            Err(e) => {
                eprintln!("story: cannot run {}: {e}", args[0]);
                return false;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn retry_locked(args: &[&str]) {
    assert!(
        try_locked(args),
        "story set-up: `{}` failed (see stderr above); the story test needs root and the shadow \
         tools (useradd, groupadd, userdel, groupdel)",
        args.join(" ")
    );
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------------------------
// running commands

/// The outcome of one bounded command.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with stdout/stderr captured in files (so a child running as another user can write
/// them), killing it after `timeout`.
fn run_bounded(mut cmd: Command, timeout: Duration, what: &str) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let (out_p, err_p) = (dir.path().join("out"), dir.path().join("err"));
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_p).unwrap())
        .stderr(File::create(&err_p).unwrap());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    let status = wait_deadline(&mut child, timeout)
        .unwrap_or_else(|| panic!("{what}: {cmd:?} did not finish within {timeout:?}"));
    Ran {
        status,
        stdout: fs::read_to_string(&out_p).unwrap_or_default(),
        stderr: fs::read_to_string(&err_p).unwrap_or_default(),
    }
}

/// Waits for `child` at most `timeout`; kills and reaps it on timeout (returns `None`).
fn wait_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command that will run as `user` (groups included), in the user's home, with a minimal
/// environment that holds no key.
fn as_user(user: &User, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &user.home)
        .env("USER", &user.name)
        .current_dir(&user.home)
        .env("PWD", &user.home);
    run_as(&mut cmd, &user.id);
    cmd
}

/// Runs the attacker helper as `user`, returns its attempts by name.
fn attack(s: &Story, user: &User, args: &[&str], what: &str) -> BTreeMap<String, Attempt> {
    let mut cmd = as_user(user, s.bin.join("story-attacker"));
    cmd.args(args);
    let ran = run_bounded(cmd, CMD_TIMEOUT, what);
    assert!(
        ran.status.success(),
        "{what}: story-attacker failed ({}): {}",
        ran.status,
        ran.stderr
    );
    let attempts: BTreeMap<String, Attempt> = ran
        .stdout
        .lines()
        .filter_map(Attempt::parse)
        .map(|a| (a.name.clone(), a))
        .collect();
    eprintln!("story: {what}:\n{}", ran.stdout.trim_end());
    attempts
}

// ---------------------------------------------------------------------------------------------
// the key and leak scanning

/// A distinctive fake key: `sk-story-` and 32 random hex digits.
fn fresh_key() -> String {
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sk-story-{hex}")
}

/// Where in `hay` the key (or any 12-character piece of its random part) appears.
fn find_key(hay: &[u8], key: &str) -> Option<String> {
    let random = key.trim_start_matches("sk-story-").as_bytes();
    let mut needles: Vec<&[u8]> = vec![key.as_bytes()];
    needles.extend(random.windows(12));
    for n in needles {
        if let Some(pos) = hay.windows(n.len()).position(|w| w == n) {
            return Some(format!("{:?} at byte {pos}", String::from_utf8_lossy(n)));
        }
    }
    None
}

/// The leak detector itself can fail: whole key, a 12-character piece, not a shorter one.
#[test]
fn find_key_sees_the_key_and_its_pieces() {
    let key = fresh_key();
    assert_eq!(key.len(), "sk-story-".len() + 32);
    assert!(find_key(format!("x Bearer {key} y").as_bytes(), &key).is_some());
    let piece = &key[15..27];
    assert!(find_key(format!("..{piece}..").as_bytes(), &key).is_some());
    assert!(find_key(&key.as_bytes()[15..26], &key).is_none());
    assert!(find_key(b"sk-story-", &key).is_none());
}

fn assert_no_key(hay: &[u8], key: &str, what: &str) {
    if let Some(found) = find_key(hay, key) {
        panic!("KEY LEAK: {what} contains the key ({found})");
    }
}

// ---------------------------------------------------------------------------------------------
// the fixture

/// Everything the story runs on; dropping it kills every process it started, then removes the
/// accounts and files.
struct Story {
    // Drop order: processes first (explicit Drop), then the accounts, then the files.
    proxy: Option<Child>,
    controls: Vec<Child>,
    key: String,
    proxy_pid: u32,
    port: u16,
    sock: PathBuf,
    info: PathBuf,
    dump: PathBuf,
    log: PathBuf,
    root: PathBuf,
    /// World-readable copies of `story-attacker` and `codex` (the workspace's target directory
    /// may sit under a home that A and B cannot enter).
    bin: PathBuf,
    a: User,
    b: User,
    svc: User,
    mock: MockUpstream,
    _accounts: Accounts,
    _ca: TestCa,
    _dir: tempfile::TempDir,
}

impl Drop for Story {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "story: FAILED; the proxy's log so far:\n{}",
                fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        for c in self.controls.iter_mut().chain(self.proxy.as_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Accounts drop after this, files after them (field order).
    }
}

fn mkdir(path: &Path, mode: u32, owner: Option<(u32, u32)>) {
    fs::create_dir_all(path).unwrap();
    if let Some((u, g)) = owner {
        chown(path, u, g);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn preflight() {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().nth(2) == Some("0"),
        "the story test must run as root (it creates accounts and starts the proxy as an \
         administrator would): {uid_line}"
    );
    // The controls ptrace a non-child process of the same uid, which Yama scope >= 1 forbids.
    if let Ok(scope) = fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope") {
        assert_eq!(
            scope.trim(),
            "0",
            "kernel.yama.ptrace_scope is {}: the story's controls (A tracing A's own process) \
             need 0, or the controls could not show the attacks work without the proxy's hardening",
            scope.trim()
        );
    }
    for tool in [
        "useradd", "groupadd", "userdel", "groupdel", "getent", "id", "curl",
    ] {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists());
        assert!(
            found,
            "the story test needs `{tool}` (apt-get install passwd curl)"
        );
    }
}

impl Story {
    fn start() -> Story {
        preflight();
        let tag = std::process::id();
        let dir = tempfile::Builder::new().prefix("story-").tempdir().unwrap();
        let root = dir.path().to_path_buf();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        // A and B must reach the socket, the helpers and their homes under it.
        for dir in root.ancestors().skip(1) {
            let mode = fs::metadata(dir).unwrap().mode();
            assert!(
                mode & 0o001 != 0,
                "{} (mode {:o}) is not traversable by other users, so the story's users cannot \
                 reach {}: point TMPDIR at a directory like /tmp",
                dir.display(),
                mode & 0o7777,
                root.display()
            );
        }

        // Helper binaries where A and B can run them.
        let bin = root.join("bin");
        mkdir(&bin, 0o755, None);
        for (name, src) in [
            ("story-attacker", PathBuf::from(ATTACKER)),
            ("codex", workspace_bin("codex")),
        ] {
            let dst = bin.join(name);
            fs::copy(&src, &dst)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dst.display()));
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o755)).unwrap();
        }

        let mut accounts = Accounts::default();
        let group = format!("cxg{tag}");
        accounts.groupadd(&group);
        let homes = root.join("home");
        mkdir(&homes, 0o755, None);
        let a = accounts.useradd(&format!("cxa{tag}"), &[&group], &homes.join("a"));
        let b = accounts.useradd(&format!("cxb{tag}"), &[], &homes.join("b"));
        let svc = accounts.useradd(&format!("cxs{tag}"), &[], &homes.join("svc"));
        let group_gid: u32 = run_ok(Command::new("getent").args(["group", &group]))
            .split(':')
            .nth(2)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            a.id.groups.contains(&group_gid) && a.id.gid != group_gid,
            "user A must be a supplementary member of {group}: {:?}",
            a.id
        );
        assert!(
            !b.id.groups.contains(&group_gid),
            "B must not be in {group}"
        );

        // The upstream: TLS with a test CA, streaming ANSWER one event at a time.
        let ca = TestCa::new().unwrap();
        let mock = MockUpstream::start_tls(&ca).unwrap();
        mock.set_handler(|req| {
            let n = req.body.len();
            MockResponse::SsePaced {
                frames: sse_text_response(&format!("resp_story_{n}"), ANSWER),
                delay: EVENT_DELAY,
            }
        });

        // The administrator's layout: run/ for the socket and server-info (root, 0755),
        // dump/ owned by the service account (0755: the file modes must protect the dumps),
        // admin/proxy.log kept 0640 root:root.
        let run = root.join("run");
        mkdir(&run, 0o755, None);
        let dump = root.join("dump");
        mkdir(&dump, 0o755, Some((svc.id.uid, svc.id.gid)));
        let admin = root.join("admin");
        mkdir(&admin, 0o755, None);
        let log = admin.join("proxy.log");
        let log_file = File::create(&log).unwrap();
        fs::set_permissions(&log, fs::Permissions::from_mode(0o640)).unwrap();
        let sock = run.join("proxy.sock");
        let info = run.join("info.json");

        let key = fresh_key();
        let mut cmd = Command::new(workspace_bin("responses-api-proxy"));
        cmd.args(["--user", &svc.name])
            .args(["--listen", &format!("unix:{}", sock.display())])
            .args(["--listen", "127.0.0.1:0"])
            .args(["--socket-mode", "0666"])
            .args(["--allow-group", &group])
            .args(["--http-shutdown"])
            .args(["--upstream-url", &mock.responses_url()])
            .args(["--dump-dir", dump.to_str().unwrap()])
            .args(["--max-body-bytes", "4096"])
            .args(["--header-read-timeout", "3"])
            .arg("--server-info")
            .arg(&info)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("SSL_CERT_FILE", ca.ca_pem_path())
            .current_dir(&svc.home)
            .env("PWD", &svc.home)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log_file);
        let mut proxy = cmd.spawn().expect("start responses-api-proxy");
        {
            // `printenv OPENAI_API_KEY | sudo responses-api-proxy ...`: the key on stdin only.
            let mut stdin = proxy.stdin.take().unwrap();
            stdin.write_all(key.as_bytes()).unwrap();
        }

        // Ready when the server-info file is complete.
        let deadline = Instant::now() + Duration::from_secs(60);
        let (port, pid) = loop {
            let text = fs::read_to_string(&info).unwrap_or_default();
            if text.ends_with('\n') {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("server-info {}: {e}: {text}", info.display()));
                break (
                    v["port"].as_u64().expect("server-info port") as u16,
                    v["pid"].as_u64().expect("server-info pid") as u32,
                );
            }
            if let Some(status) = proxy.try_wait().unwrap() {
                panic!(
                    "the proxy exited during start-up ({status}): {}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the proxy wrote no server-info within 60 s: {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(pid, proxy.id(), "server-info pid is the proxy's own pid");

        Story {
            proxy: Some(proxy),
            controls: Vec::new(),
            key,
            proxy_pid: pid,
            port,
            sock,
            info,
            dump,
            log,
            root,
            bin,
            a,
            b,
            svc,
            mock,
            _accounts: accounts,
            _ca: ca,
            _dir: dir,
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One request with curl as `user`; `unix` picks the socket, else TCP. Returns status, body.
    fn curl(&self, user: &User, unix: bool, extra: &[&str], path: &str) -> (u16, String) {
        let mut cmd = as_user(user, "curl");
        cmd.args(["-sS", "-N", "--max-time", "60", "-w", "\n%{http_code}"]);
        let url = if unix {
            cmd.arg("--unix-socket").arg(&self.sock);
            format!("http://localhost{path}")
        } else {
            format!("http://127.0.0.1:{}{path}", self.port)
        };
        cmd.args(extra).arg(url);
        let ran = run_bounded(cmd, CMD_TIMEOUT, "curl");
        assert!(
            ran.status.success(),
            "curl as {} failed ({}): {}",
            user.name,
            ran.status,
            ran.stderr
        );
        let (body, code) = ran.stdout.rsplit_once('\n').unwrap();
        (code.trim().parse().unwrap(), body.to_string())
    }

    fn post_stream(&self, user: &User, unix: bool) -> (u16, String) {
        self.curl(
            user,
            unix,
            &[
                "-H",
                "Content-Type: application/json",
                "--data",
                r#"{"model":"gpt-story","input":"tell the story","stream":true}"#,
            ],
            "/v1/responses",
        )
    }

    fn forwarded(&self) -> usize {
        self.mock.requests().len()
    }

    /// A plain process of `user`'s (`sleep`), with a marker in its environment: the control
    /// target for the attacker helper.
    fn spawn_control(&mut self, user: &User, marker: &str) -> u32 {
        let mut cmd = as_user(user, "sleep");
        cmd.arg("600")
            .env("STORY_CONTROL_MARKER", marker)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("spawn control sleep");
        let pid = child.id();
        self.controls.push(child);
        // Past exec: the marker is in its environment, it runs as the user.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.starts_with("sleep"))
        {
            assert!(Instant::now() < deadline, "control sleep did not exec");
            std::thread::sleep(Duration::from_millis(10));
        }
        pid
    }

    fn take_control(&mut self, pid: u32) -> Child {
        let i = self
            .controls
            .iter()
            .position(|c| c.id() == pid)
            .expect("known control");
        self.controls.remove(i)
    }
}

fn loot_dir(user: &User, name: &str) -> PathBuf {
    let p = user.home.join(name);
    mkdir(&p, 0o700, Some((user.id.uid, user.id.gid)));
    p
}

fn expect_err(attempts: &BTreeMap<String, Attempt>, name: &str, errnos: &[&str], who: &str) {
    let a = attempts
        .get(name)
        .unwrap_or_else(|| panic!("{who}: attempt {name} was not reported"));
    let got = a.errno_name();
    assert!(
        got.is_some_and(|e| errnos.contains(&e)),
        "{who}: {name} must fail with {errnos:?}, got: {a}"
    );
}

fn expect_ok(attempts: &BTreeMap<String, Attempt>, name: &str, who: &str) -> u64 {
    let a = attempts
        .get(name)
        .unwrap_or_else(|| panic!("{who}: attempt {name} was not reported"));
    match a.outcome {
        Outcome::Ok { bytes } => bytes,
        _ => panic!("control {who}: {name} must succeed against an unhardened process, got: {a}"),
    }
}

/// The SSE text deltas of a streamed answer, concatenated.
fn sse_text(body: &str) -> String {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter(|v| v["type"] == "response.output_text.delta")
        .map(|v| v["delta"].as_str().unwrap_or_default().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// the story

#[test]
fn story_end_to_end() {
    let mut s = Story::start();
    let (a, b) = (s.a.clone(), s.b.clone());
    let key = s.key.clone();

    // --- 1. A, in the allowed group, streams an answer through both listeners --------------
    for unix in [true, false] {
        let (status, body) = s.post_stream(&a, unix);
        let via = if unix { "unix socket" } else { "TCP" };
        assert_eq!(status, 200, "A via {via}: {body}\nlog:\n{}", s.log_text());
        assert_eq!(
            sse_text(&body),
            ANSWER,
            "A via {via}: streamed text: {body}"
        );
        assert!(
            body.contains("event: response.completed"),
            "A via {via}: {body}"
        );
        assert_no_key(body.as_bytes(), &key, &format!("A's answer via {via}"));
    }
    let forwarded = s.forwarded();
    assert_eq!(forwarded, 2, "both of A's requests reached the upstream");
    for r in s.mock.requests() {
        assert_eq!(
            r.header("authorization").as_deref(),
            Some(format!("Bearer {key}").as_str()),
            "the proxy injects the administrator's key upstream"
        );
    }

    // --- 2. B, not in the group, is refused on both listeners; /shutdown too -----------------
    for unix in [true, false] {
        let via = if unix { "unix socket" } else { "TCP" };
        let (status, body) = s.post_stream(&b, unix);
        assert_eq!(status, 403, "B via {via} must be refused: {body}");
        assert_no_key(body.as_bytes(), &key, &format!("B's 403 body via {via}"));
        let (status, body) = s.curl(&b, unix, &[], "/shutdown");
        assert_eq!(
            status, 403,
            "B's GET /shutdown via {via} must be refused: {body}"
        );
        assert_no_key(
            body.as_bytes(),
            &key,
            &format!("B's /shutdown body via {via}"),
        );
    }
    assert_eq!(
        s.forwarded(),
        forwarded,
        "none of B's requests reached the upstream"
    );
    let (status, _) = s.post_stream(&a, false);
    assert_eq!(status, 200, "the proxy keeps serving A after B's /shutdown");
    assert!(
        s.proxy.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the proxy must still run after B's /shutdown"
    );

    // --- 3. the official Python SDK as A, streaming event by event over both listeners --------
    python_sdk_as(&s, &a);

    // --- 4. `codex exec` as A through the proxy, no key on A's side ---------------------------
    codex_exec_as(&s, &a);

    // --- 5. the proxy runs as the service account, no_new_privs, seccomp ----------------------
    proxy_status_is_confined(&s);

    // --- 6. execve and file creation from inside the proxy (ptrace-injected, root's instrument)
    execve_inside_proxy_is_denied(&mut s);
    file_creation_inside_proxy_is_confined(&mut s);

    // --- 7. A and B try every way a local user has to read the key ---------------------------
    process_attacks(&mut s);

    // --- 8. files: server-info, dumps, the audit log; error bodies; timing out ---------------
    file_attacks(&s);
    error_bodies_and_timeouts(&s);

    // --- 9. `codex sandbox linux`: no proxy port, no credentials, no writes, no signals -------
    sandboxed_commands_are_confined(&mut s);

    // --- 10. A (allowed) stops the proxy with GET /shutdown: the control for B's refusal ------
    let (status, body) = s.curl(&a, false, &[], "/shutdown");
    assert_eq!(status, 200, "A's GET /shutdown: {body}");
    let mut proxy = s.proxy.take().unwrap();
    let exit = wait_deadline(&mut proxy, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the proxy did not exit after A's /shutdown"));
    assert!(exit.success(), "the proxy exits 0 after /shutdown: {exit}");
    let log = s.log_text();
    assert_no_key(log.as_bytes(), &key, "the proxy's audit log (stderr)");
    // The audit log attributes each request to the kernel-identified uid.
    let a_uid = format!("uid={}", s.a.id.uid);
    let b_uid = format!("uid={}", s.b.id.uid);
    assert!(
        log.lines()
            .any(|l| l.contains(&a_uid) && l.contains("status=200")),
        "the audit log records A's forwarded requests ({a_uid} status=200)"
    );
    for path in ["path=/v1/responses", "path=/shutdown"] {
        assert!(
            log.lines()
                .any(|l| l.contains(&b_uid) && l.contains(path) && l.contains("status=403")),
            "the audit log records B's refused request ({b_uid} {path} status=403)"
        );
    }
    // No file the story left behind holds the key (the copied binaries aside).
    let mut stack = vec![s.root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let md = fs::symlink_metadata(&path).unwrap();
            if md.is_dir() && path != s.bin {
                stack.push(path);
            } else if md.is_file() {
                assert_no_key(&fs::read(&path).unwrap(), &key, &path.display().to_string());
            }
        }
    }
    eprintln!("story: complete; audit log:\n{log}");
}

fn python_sdk_as(s: &Story, a: &User) {
    // The SDK lives in root's Python; the script imports it and builds both clients as root, then
    // drops to A (groups, gid, uid) before any connection exists: the proxy sees uid A.
    const SCRIPT: &str = r#"
import http.server, json, os, sys, threading, time
import openai
try:
    import httpx2 as hx  # the transport newer SDKs use
except ImportError:
    import httpx as hx
uid, gid = int(sys.argv[1]), int(sys.argv[2])
groups = [int(g) for g in sys.argv[3].split(",") if g]

def stream(client):
    start = time.monotonic(); times = []; text = ""
    with client.responses.create(model="gpt-story", input="tell the story", stream=True) as s:
        for event in s:
            times.append(time.monotonic() - start)
            if event.type == "response.output_text.delta":
                text += event.delta
    return text, times

# Warm-up as root against a throw-away local server: the SDK imports modules lazily, and root's
# site-packages are unreadable once we are A.
class Canned(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = CANNED
        self.send_response(200); self.send_header("content-type", "text/event-stream")
        self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
CANNED = "".join(json.loads(sys.argv[6])).encode()  # the frames the upstream will stream
warm = http.server.HTTPServer(("127.0.0.1", 0), Canned)
threading.Thread(target=warm.serve_forever, daemon=True).start()
stream(openai.OpenAI(base_url="http://127.0.0.1:%d/v1" % warm.server_address[1], api_key="warm", max_retries=0, timeout=30))
warm.shutdown()

clients = {
    "tcp": openai.OpenAI(base_url=sys.argv[4], api_key="not-the-key", max_retries=0, timeout=60),
    "unix": openai.OpenAI(base_url="http://localhost/v1", api_key="not-the-key", max_retries=0,
        timeout=60, http_client=hx.Client(transport=hx.HTTPTransport(uds=sys.argv[5]))),
}
for c in clients.values():
    c.responses  # resolve the lazy resource before the drop
os.setgroups(groups); os.setresgid(gid, gid, gid); os.setresuid(uid, uid, uid)
assert os.getresuid() == (uid, uid, uid) and sorted(os.getgroups()) == sorted(groups)
for name, client in clients.items():
    text, times = stream(client)
    print(json.dumps({"listener": name, "uid": os.getuid(), "text": text, "times": times}))
"#;
    let groups: Vec<String> = a.id.groups.iter().map(u32::to_string).collect();
    let mut cmd = suite_test_support::python::with_openai_sdk();
    cmd.args(["-c", SCRIPT])
        .arg(a.id.uid.to_string())
        .arg(a.id.gid.to_string())
        .arg(groups.join(","))
        .arg(format!("http://127.0.0.1:{}/v1", s.port))
        .arg(&s.sock)
        .arg(serde_json::to_string(&sse_text_response("resp_warm", ANSWER)).unwrap())
        .env_remove("OPENAI_API_KEY")
        .env("HOME", &a.home)
        .current_dir(&a.home)
        .env("PWD", &a.home);
    let ran = run_bounded(cmd, CMD_TIMEOUT, "openai SDK");
    assert!(
        ran.status.success(),
        "the openai SDK as A failed ({}): {}\n{}",
        ran.status,
        ran.stderr,
        ran.stdout
    );
    let mut seen = Vec::new();
    for line in ran.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let listener = v["listener"].as_str().unwrap().to_string();
        assert_eq!(v["uid"], a.id.uid, "the SDK ran as A");
        assert_eq!(v["text"], ANSWER, "SDK via {listener}: streamed text");
        let times: Vec<f64> = v["times"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_f64().unwrap())
            .collect();
        // The upstream paces its events EVENT_DELAY apart; a buffering proxy would deliver them
        // together at the end.
        let spread = times.last().unwrap() - times.first().unwrap();
        let paced = EVENT_DELAY.as_secs_f64() * (times.len() as f64 - 1.0);
        assert!(
            times.len() >= 4 && spread >= paced * 0.5,
            "SDK via {listener}: events must arrive one by one (spread {spread:.3}s over \
             {} events, upstream paced them over {paced:.3}s): {times:?}",
            times.len()
        );
        seen.push(listener);
    }
    seen.sort();
    assert_eq!(seen, ["tcp", "unix"], "the SDK used both listeners");
    for r in s.mock.requests() {
        let auth = r.header("authorization").unwrap_or_default();
        assert!(
            !auth.contains("not-the-key"),
            "the client's own Authorization must never be forwarded: {auth}"
        );
    }
}

/// `codex exec "tell the story"` as `user`, with the user's own CODEX_HOME and the brief's `-c`
/// overrides (global options) pointing the CLI at the proxy.
fn codex_exec_cmd(s: &Story, user: &User) -> Command {
    let mut cmd = as_user(user, s.bin.join("codex"));
    cmd.env("CODEX_HOME", user.home.join(".codex"))
        .args([
            "-c",
            &format!(
                "model_providers.proxy.base_url=http://127.0.0.1:{}/v1",
                s.port
            ),
        ])
        .args(["-c", "model_provider=proxy"])
        .arg("exec")
        .arg("tell the story");
    cmd
}

fn codex_exec_as(s: &Story, a: &User) {
    // No key on A's side: no credentials in A's CODEX_HOME, none in the environment (as_user).
    assert!(
        !a.home.join(".codex").join("auth.json").exists(),
        "A has no stored credentials"
    );
    let before = s.forwarded();
    let cmd = codex_exec_cmd(s, a);
    let ran = run_bounded(cmd, CMD_TIMEOUT, "codex exec");
    assert!(
        ran.status.success(),
        "codex exec as A through the proxy failed ({}): {}\n{}",
        ran.status,
        ran.stderr,
        ran.stdout
    );
    assert!(
        ran.stdout.contains(ANSWER),
        "codex exec prints the streamed answer: {}",
        ran.stdout
    );
    eprintln!("story: codex exec as A:\n{}", ran.stdout.trim_end());
    let requests = s.mock.requests();
    assert_eq!(
        requests.len(),
        before + 1,
        "codex exec went through the proxy"
    );
    let sent = requests.last().unwrap();
    assert_eq!(
        sent.header("authorization").as_deref(),
        Some(format!("Bearer {}", s.key).as_str()),
        "the proxy, not A, supplied the key for codex exec"
    );
    assert!(
        String::from_utf8_lossy(&sent.body).contains("tell the story"),
        "the upstream received A's prompt"
    );
    assert_no_key(ran.stdout.as_bytes(), &s.key, "codex exec output");
    // B, the same command: refused, nothing forwarded, and the CLI says so.
    let b = &s.b;
    let cmd = codex_exec_cmd(s, b);
    let refused = run_bounded(cmd, CMD_TIMEOUT, "codex exec as B");
    eprintln!(
        "story: codex exec as B ({}):\n{}{}",
        refused.status, refused.stdout, refused.stderr
    );
    assert!(!refused.status.success(), "codex exec as B must fail");
    assert!(
        refused.stderr.contains("403") && refused.stderr.contains("--allow-group"),
        "codex exec as B reports the proxy's 403 and who can fix it: {}",
        refused.stderr
    );
    assert_eq!(
        s.forwarded(),
        before + 1,
        "B's codex exec was not forwarded"
    );
    assert_no_key(refused.stderr.as_bytes(), &s.key, "codex exec stderr as B");
    assert_no_key(ran.stderr.as_bytes(), &s.key, "codex exec stderr");
}

fn status_field<'a>(status: &'a str, field: &str) -> Vec<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("/proc status has no {field}"))
        .split_whitespace()
        .collect()
}

fn proxy_status_is_confined(s: &Story) {
    let uid = s.svc.id.uid.to_string();
    let gid = s.svc.id.gid.to_string();
    // Not dumpable: the kernel gives the /proc files of a non-dumpable process to root (they
    // would belong to the service account otherwise); no core file, soft and hard limit 0.
    let proc_dir = PathBuf::from(format!("/proc/{}", s.proxy_pid));
    for f in ["environ", "mem", "maps"] {
        let md = fs::metadata(proc_dir.join(f)).unwrap();
        assert_eq!(
            (md.uid(), md.gid()),
            (0, 0),
            "/proc/PID/{f} of a non-dumpable process belongs to root"
        );
    }
    let limits = fs::read_to_string(proc_dir.join("limits")).unwrap();
    let core: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&core[4..6], ["0", "0"], "core file size limit: {limits}");
    // Even root sees no key in the proxy's environment or argv: it came on stdin only.
    for f in ["environ", "cmdline"] {
        let bytes = fs::read(proc_dir.join(f)).unwrap();
        assert_no_key(&bytes, &s.key, &format!("/proc/PID/{f} as root"));
    }
    // Every thread: the drop and the seccomp filter (TSYNC) apply to all of them.
    let tasks: Vec<PathBuf> = fs::read_dir(format!("/proc/{}/task", s.proxy_pid))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!tasks.is_empty());
    for task in tasks {
        let status = fs::read_to_string(task.join("status")).unwrap();
        let who = task.display().to_string();
        assert_eq!(status_field(&status, "Uid:"), [&uid; 4], "{who}: uids");
        assert_eq!(status_field(&status, "Gid:"), [&gid; 4], "{who}: gids");
        let groups = status_field(&status, "Groups:");
        assert!(
            groups.iter().all(|g| *g == gid),
            "{who}: supplementary groups must be only the service account's: {groups:?}"
        );
        assert_eq!(status_field(&status, "NoNewPrivs:"), ["1"], "{who}");
        assert_eq!(status_field(&status, "Seccomp:"), ["2"], "{who}");
        for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapAmb:"] {
            assert_eq!(
                status_field(&status, cap),
                ["0000000000000000"],
                "{who}: {cap}"
            );
        }
    }
}

fn execve_inside_proxy_is_denied(s: &mut Story) {
    let bin = s.bin.clone();
    let inject = |pid: u32, what: &str| -> Vec<Attempt> {
        let mut cmd = Command::new(bin.join("story-attacker"));
        cmd.args(["inject", &pid.to_string(), "execve"]);
        let ran = run_bounded(cmd, CMD_TIMEOUT, what);
        assert!(ran.status.success(), "{what}: {}", ran.stderr);
        eprintln!("story: {what}:\n{}", ran.stdout.trim_end());
        ran.stdout.lines().filter_map(Attempt::parse).collect()
    };
    // Control: a plain process executes execve (ENOENT: the probe path does not exist).
    let a = s.a.clone();
    let control = s.spawn_control(&a, "inject-control");
    let got = inject(control, "execve injected into a plain process (control)");
    assert!(
        got.len() == 1 && got[0].errno_name() == Some("ENOENT"),
        "control: an execve injected into a plain process must run and fail with ENOENT \
         (the injection works), got {got:?}"
    );
    let mut child = s.take_control(control);
    let _ = child.kill();
    let _ = child.wait();

    let got = inject(s.proxy_pid, "execve injected into the proxy");
    assert!(
        !got.is_empty(),
        "no proxy thread could be stopped inside a system call for the execve injection"
    );
    // The allow-list traps execve (SECCOMP_RET_TRAP): the call is not made and the thread stops
    // for the SIGSYS, which the injector discards (outside ptrace the reporter would name the
    // call and exit 10: privsep's `seccomp_refuses_every_documented_call_by_name`).
    for attempt in &got {
        assert!(
            matches!(&attempt.outcome, Outcome::Err { syscall, .. } if syscall == "execve-sigsys"),
            "execve from inside the proxy must be refused by its seccomp allow-list: {attempt}"
        );
    }
    let (status, _) = s.post_stream(&s.a.clone(), false);
    assert_eq!(status, 200, "the proxy serves on after the injected execve");
}

/// Root makes one thread of `pid` run `openat(path, O_CREAT|O_EXCL|O_WRONLY)` (closed at once).
fn inject_create(bin: &Path, pid: u32, path: &Path, what: &str) -> Attempt {
    let mut cmd = Command::new(bin.join("story-attacker"));
    cmd.args(["inject", &pid.to_string(), "create"]).arg(path);
    let ran = run_bounded(cmd, CMD_TIMEOUT, what);
    assert!(ran.status.success(), "{what}: {}", ran.stderr);
    eprintln!("story: {what}:\n{}", ran.stdout.trim_end());
    let got: Vec<Attempt> = ran.stdout.lines().filter_map(Attempt::parse).collect();
    assert_eq!(got.len(), 1, "{what}: one injected openat: {got:?}");
    got.into_iter().next().unwrap()
}

/// Landlock: the proxy creates files only in --dump-dir, even where its account may write.
fn file_creation_inside_proxy_is_confined(s: &mut Story) {
    let bin = s.bin.clone();
    let svc = s.svc.clone();
    // Control: a plain process of the service account creates a file in the account's home.
    let control = s.spawn_control(&svc, "create-control");
    let made = svc.home.join("control-created");
    let got = inject_create(
        &bin,
        control,
        &made,
        "control: openat(O_CREAT) in a plain process",
    );
    assert!(
        got.succeeded(),
        "control: a plain process of the service account creates {}: {got}",
        made.display()
    );
    assert_eq!(
        fs::metadata(&made).unwrap().uid(),
        svc.id.uid,
        "control: created by the target"
    );
    let mut child = s.take_control(control);
    let _ = child.kill();
    let _ = child.wait();

    // The proxy, same account, same directory: refused.
    let denied = svc.home.join("proxy-created");
    let got = inject_create(
        &bin,
        s.proxy_pid,
        &denied,
        "openat(O_CREAT) inside the proxy, its home",
    );
    assert_eq!(
        got.errno_name(),
        Some("EACCES"),
        "the proxy must not create files outside --dump-dir (Landlock): {got}"
    );
    assert!(!denied.exists(), "{} must not exist", denied.display());

    // Its allowed twin: the dump directory.
    let allowed = s.dump.join("story-injected-probe");
    let got = inject_create(
        &bin,
        s.proxy_pid,
        &allowed,
        "openat(O_CREAT) inside the proxy, --dump-dir",
    );
    assert!(
        got.succeeded(),
        "the proxy may create files in --dump-dir: {got}"
    );
    assert_eq!(fs::metadata(&allowed).unwrap().uid(), svc.id.uid);
    fs::remove_file(&allowed).unwrap();
}

/// All the process attempts, in the order the helper runs them (kills last).
const PROCESS_ATTEMPTS: &[&str] = &[
    "environ",
    "cmdline",
    "maps",
    "mem",
    "task-mem",
    "fd-dir",
    "ptrace-attach",
    "process-vm-readv",
    "pidfd-getfd",
    "kill-segv",
    "kill-abrt",
];

fn process_attacks(s: &mut Story) {
    let pid = s.proxy_pid.to_string();
    for user in [s.a.clone(), s.b.clone()] {
        let who = format!("{} (uid {}) against the proxy", user.name, user.id.uid);
        let loot = loot_dir(&user, "loot-proxy");
        let mut args = vec!["probe", pid.as_str(), loot.to_str().unwrap()];
        args.extend_from_slice(PROCESS_ATTEMPTS);
        let got = attack(s, &user, &args, &who);
        // The proxy is not dumpable and runs as another uid: its /proc files are root's.
        for name in ["environ", "maps", "mem", "task-mem"] {
            expect_err(&got, name, &["EACCES"], &who);
        }
        expect_err(&got, "fd-dir", &["EACCES"], &who);
        for name in [
            "ptrace-attach",
            "process-vm-readv",
            "pidfd-getfd",
            "kill-segv",
            "kill-abrt",
        ] {
            expect_err(&got, name, &["EPERM"], &who);
        }
        // cmdline is world-readable: it must not hold the key.
        expect_ok(&got, "cmdline", &who);
        let cmdline = fs::read(loot.join("cmdline.bin")).unwrap();
        assert!(
            String::from_utf8_lossy(&cmdline).contains("responses-api-proxy"),
            "{who}: the cmdline loot is the proxy's"
        );
        assert_no_key(&cmdline, &s.key, &format!("{who}: /proc/PID/cmdline"));
        for f in fs::read_dir(&loot).unwrap() {
            let f = f.unwrap().path();
            assert_no_key(
                &fs::read(&f).unwrap(),
                &s.key,
                &format!("{who}: {}", f.display()),
            );
        }
    }
    assert!(
        s.proxy.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the proxy survives the attacks (no signal was delivered)"
    );

    // Controls: the same helper, as A, against a plain process of A's with a marker in its
    // environment: every attempt works and the marker is found.
    let a = s.a.clone();
    let marker = format!(
        "story-marker-{}",
        &s.key[9..21].chars().rev().collect::<String>()
    );
    let control = s.spawn_control(&a, &marker);
    let loot = loot_dir(&a, "loot-control");
    let target = control.to_string();
    let mut args = vec!["probe", target.as_str(), loot.to_str().unwrap()];
    args.extend(
        PROCESS_ATTEMPTS
            .iter()
            .copied()
            .filter(|n| *n != "kill-segv"),
    );
    let got = attack(s, &a, &args, "control: A against A's plain process");
    for name in PROCESS_ATTEMPTS.iter().filter(|n| **n != "kill-segv") {
        expect_ok(&got, name, "A against A's plain process");
    }
    for name in ["environ", "mem", "process-vm-readv"] {
        let bytes = fs::read(loot.join(format!("{name}.bin"))).unwrap();
        assert!(
            bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
            "control: {name} of a plain process yields its environment (marker missing)"
        );
    }
    let mut child = s.take_control(control);
    let st = wait_deadline(&mut child, Duration::from_secs(30)).expect("control exits");
    assert_eq!(
        st.signal(),
        Some(libc::SIGABRT),
        "control: kill delivers SIGABRT"
    );
    let control = s.spawn_control(&a, &marker);
    let target = control.to_string();
    let got = attack(
        s,
        &a,
        &["probe", &target, loot.to_str().unwrap(), "kill-segv"],
        "control: A signals A's plain process",
    );
    expect_ok(&got, "kill-segv", "A against A's plain process");
    let mut child = s.take_control(control);
    let st = wait_deadline(&mut child, Duration::from_secs(30)).expect("control exits");
    assert_eq!(
        st.signal(),
        Some(libc::SIGSEGV),
        "control: kill delivers SIGSEGV"
    );
}

fn file_attacks(s: &Story) {
    // The dumps: written by the service account, 0600; one per request and response.
    let dumps: Vec<PathBuf> = fs::read_dir(&s.dump)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        dumps.len() >= 2,
        "the proxy dumped the exchanges into {}",
        s.dump.display()
    );
    for d in &dumps {
        let md = fs::metadata(d).unwrap();
        assert_eq!(md.mode() & 0o777, 0o600, "{}: mode", d.display());
        assert_eq!(md.uid(), s.svc.id.uid, "{}: owner", d.display());
        assert_no_key(
            &fs::read(d).unwrap(),
            &s.key,
            &format!("dump file {}", d.display()),
        );
    }
    let request_dump = dumps
        .iter()
        .find(|d| d.to_string_lossy().ends_with("-request.json"))
        .expect("a request dump");
    let text = fs::read_to_string(request_dump).unwrap();
    assert!(
        text.to_ascii_lowercase().contains("authorization"),
        "the request dump records the (redacted) authorization header: {text}"
    );

    // The log as the administrator keeps it: root's, 0640.
    assert_no_key(s.log_text().as_bytes(), &s.key, "the proxy's audit log");

    for user in [s.a.clone(), s.b.clone()] {
        let who = format!("{} (uid {})", user.name, user.id.uid);
        let loot = loot_dir(&user, "loot-files");
        let l = loot.to_str().unwrap();
        let info = s.info.to_str().unwrap();
        let got = attack(s, &user, &["read-file", "server-info", info, l], &who);
        expect_ok(&got, "server-info", &who);
        let bytes = fs::read(loot.join("server-info.bin")).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains("\"port\""));
        assert_no_key(&bytes, &s.key, &format!("{who}: the server-info file"));

        let dump = request_dump.to_str().unwrap();
        let got = attack(s, &user, &["read-file", "dump", dump, l], &who);
        expect_err(&got, "dump", &["EACCES"], &who);

        let log = s.log.to_str().unwrap();
        let got = attack(s, &user, &["read-file", "audit-log", log, l], &who);
        expect_err(&got, "audit-log", &["EACCES"], &who);
    }
    // Control: the dump directory is listable (0755), so only the file mode stops A and B; the
    // service account itself can read its dump.
    let loot = loot_dir(&s.svc, "loot");
    let got = attack(
        s,
        &s.svc,
        &[
            "read-file",
            "dump",
            request_dump.to_str().unwrap(),
            loot.to_str().unwrap(),
        ],
        "control: the service account reads its own dump",
    );
    expect_ok(&got, "dump", "the service account");
}

fn error_bodies_and_timeouts(s: &Story) {
    let a = s.a.clone();
    let big = s.root.join("big.json");
    fs::write(&big, format!("{{\"input\":\"{}\"}}", "x".repeat(8192))).unwrap();
    fs::set_permissions(&big, fs::Permissions::from_mode(0o644)).unwrap();
    let big_arg = format!("@{}", big.display());
    let json = ["-H", "Content-Type: application/json"];
    let cases: Vec<(&str, Vec<&str>, &str, u16)> = vec![
        (
            "a path that is not forwarded",
            vec!["-X", "POST"],
            "/v1/models",
            403,
        ),
        ("GET on the forwarded path", vec![], "/v1/responses", 403),
        (
            "a browser Origin",
            vec![
                "-H",
                "Origin: http://evil.example",
                json[0],
                json[1],
                "--data",
                "{}",
            ],
            "/v1/responses",
            403,
        ),
        (
            "a foreign Host (DNS rebinding)",
            vec!["-H", "Host: evil.example", json[0], json[1], "--data", "{}"],
            "/v1/responses",
            403,
        ),
        (
            "a body over --max-body-bytes",
            vec![json[0], json[1], "--data-binary", &big_arg],
            "/v1/responses",
            413,
        ),
    ];
    for (what, args, path, want) in cases {
        let (status, body) = s.curl(&a, false, &args, path);
        assert_eq!(status, want, "A sends {what}: {body}");
        assert_no_key(
            body.as_bytes(),
            &s.key,
            &format!("the error body for {what}"),
        );
    }

    // Timing the proxy out: headers never finished. The proxy gives up after
    // --header-read-timeout (3 s) and whatever it sends back holds no key.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    conn.write_all(b"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let _ = conn.read_to_end(&mut got);
    assert!(
        start.elapsed() < Duration::from_secs(50),
        "the proxy must close a connection whose headers never end"
    );
    assert_no_key(&got, &s.key, "the answer to a timed-out request");
}

/// Runs the attacker helper as `user` under `codex sandbox linux` (the default read-only policy).
fn attack_sandboxed(
    s: &Story,
    user: &User,
    args: &[&str],
    what: &str,
) -> BTreeMap<String, Attempt> {
    let mut cmd = as_user(user, s.bin.join("codex"));
    cmd.env("CODEX_HOME", user.home.join(".codex"))
        .args(["sandbox", "linux", "--"])
        .arg(s.bin.join("story-attacker"))
        .args(args);
    let ran = run_bounded(cmd, CMD_TIMEOUT, what);
    eprintln!("story: {what}:\n{}{}", ran.stdout, ran.stderr);
    let got: BTreeMap<String, Attempt> = ran
        .stdout
        .lines()
        .filter_map(Attempt::parse)
        .map(|a| (a.name.clone(), a))
        .collect();
    assert!(
        !got.is_empty(),
        "{what}: the sandboxed helper must run and report (status {}): {}",
        ran.status,
        ran.stderr
    );
    got
}

/// SPEC §5's last sentence, as A with A's real home: a command under `codex sandbox linux`
/// cannot reach the proxy's TCP port, read A's credential file, write outside its roots, or
/// signal/trace A's processes outside the sandbox. Each has an unsandboxed control.
fn sandboxed_commands_are_confined(s: &mut Story) {
    let a = s.a.clone();
    let who = "A under codex sandbox linux";

    // The proxy's TCP port.
    let target = format!("127.0.0.1:{}", s.port);
    let got = attack(
        s,
        &a,
        &["connect-tcp", &target],
        "A connects outside the sandbox",
    );
    expect_ok(&got, "connect-tcp", "A outside the sandbox");
    let got = attack_sandboxed(s, &a, &["connect-tcp", &target], "A's sandboxed connect");
    expect_err(&got, "connect-tcp", &["EACCES", "EPERM"], who);

    // A's own credentials ($CODEX_HOME/auth.json).
    let codex_home = a.home.join(".codex");
    mkdir(&codex_home, 0o700, Some((a.id.uid, a.id.gid)));
    let auth = codex_home.join("auth.json");
    fs::write(&auth, "{\"OPENAI_API_KEY\":\"sk-user-a-own-credential\"}\n").unwrap();
    chown(&auth, a.id.uid, a.id.gid);
    fs::set_permissions(&auth, fs::Permissions::from_mode(0o600)).unwrap();
    let loot = loot_dir(&a, "loot-sandbox");
    let (auth_s, loot_s) = (auth.to_str().unwrap(), loot.to_str().unwrap());
    let got = attack(
        s,
        &a,
        &["read-file", "auth", auth_s, loot_s],
        "A reads its auth.json",
    );
    expect_ok(&got, "auth", "A outside the sandbox");
    let got = attack_sandboxed(
        s,
        &a,
        &["read-file", "auth", auth_s, loot_s],
        "sandboxed read",
    );
    expect_err(&got, "auth", &["EACCES", "EPERM", "ENOENT"], who);

    // Writing outside its roots (read-only: anywhere).
    let outside = a.home.join("written-from-the-sandbox");
    let outside_s = outside.to_str().unwrap();
    let got = attack_sandboxed(
        s,
        &a,
        &["write-file", "write", outside_s],
        "sandboxed write",
    );
    expect_err(&got, "write", &["EACCES", "EPERM", "EROFS"], who);
    assert!(!outside.exists(), "{outside_s} must not exist");
    let got = attack(
        s,
        &a,
        &["write-file", "write", outside_s],
        "A writes in its home",
    );
    expect_ok(&got, "write", "A outside the sandbox");

    // A's process outside the sandbox.
    let victim = s.spawn_control(&a, "sandbox-victim");
    let v = victim.to_string();
    let got = attack_sandboxed(
        s,
        &a,
        &["probe", &v, loot_s, "environ", "ptrace-attach", "kill-segv"],
        "sandboxed command against A's process outside",
    );
    // In its own pid namespace (and procfs) the outside pid does not exist at all (ENOENT, ESRCH);
    // without one, Landlock's scoping and seccomp refuse (EACCES, EPERM).
    expect_err(&got, "environ", &["EACCES", "EPERM", "ENOENT"], who);
    expect_err(&got, "ptrace-attach", &["EPERM", "ESRCH"], who);
    expect_err(&got, "kill-segv", &["EPERM", "ESRCH"], who);
    let got = attack(
        s,
        &a,
        &["probe", &v, loot_s, "kill-segv"],
        "A signals its process",
    );
    expect_ok(&got, "kill-segv", "A outside the sandbox");
    let mut child = s.take_control(victim);
    let st = wait_deadline(&mut child, Duration::from_secs(30)).expect("victim exits");
    assert_eq!(
        st.signal(),
        Some(libc::SIGSEGV),
        "control: the unsandboxed kill is what ended the victim"
    );
}
