//! The network allow-list (issue 18): with the network off and `--allow-domain`, the command
//! reaches the allowed hosts through the launcher's filtering proxy and nothing else, with and
//! without user namespaces. Attacks from the sandboxed command's position, each with a control.
//! The client is Python's urllib (it honours `HTTP_PROXY` as real tools do); the server is a
//! plain HTTP server on 127.0.0.1 started by the test.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use suite_test_support::bins::sandbox_helper as helper;
const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-linux-probe");
const EACCES: &str = "errno 13";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Ns {
    With,
    Without,
}

/// A server answering every request with `hello-through-proxy` (one thread per connection).
fn server() -> u16 {
    let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut c = c;
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = "hello-through-proxy";
                let _ = write!(
                    c,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// The helper with `policy` and `flags`, running `cmd`, in `dir` (namespaces or not).
fn run(ns: Ns, dir: &Path, policy: &str, flags: &[&str], cmd: &[&str]) -> Output {
    let mut c = match ns {
        Ns::With => Command::new(helper()),
        Ns::Without => {
            let mut c = Command::new(PROBE);
            c.args(["outer-deny", "userns", "--", &helper()]);
            c
        }
    };
    c.arg("--sandbox-policy-cwd")
        .arg(dir)
        .args(["--sandbox-policy", policy])
        .args(flags)
        .arg("--")
        .args(cmd)
        .current_dir(dir)
        .env("PWD", dir)
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

const READ_ONLY: &str = r#"{"mode":"read-only"}"#;
const NETWORK_ON: &str = r#"{"mode":"workspace-write","network_access":true}"#;

/// `python3 -c` fetching `url` with urllib: prints `200 BODY` or `HTTP CODE BODY` or `ERR ...`.
fn fetch(url: &str) -> Vec<String> {
    let script = format!(
        "import urllib.request, urllib.error\n\
         try:\n    r = urllib.request.urlopen('{url}', timeout=10); print(r.status, r.read().decode())\n\
         except urllib.error.HTTPError as e: print('HTTP', e.code, e.read().decode())\n\
         except Exception as e: print('ERR', e)\n"
    );
    vec!["python3".into(), "-c".into(), script]
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn an_allowed_host_is_reached_through_the_proxy_and_another_gets_a_403_naming_the_rule() {
    let port = server();
    let dir = tempfile::tempdir().unwrap();
    for ns in [Ns::With, Ns::Without] {
        let ok = run(
            ns,
            dir.path(),
            READ_ONLY,
            &["--allow-domain", "localhost"],
            &strs(&fetch(&format!("http://localhost:{port}/x"))),
        );
        assert_eq!(
            stdout(&ok).trim(),
            "200 hello-through-proxy",
            "{ns:?}: {ok:?}"
        );
        // curl honours the same variables
        let curl = run(
            ns,
            dir.path(),
            READ_ONLY,
            &["--allow-domain", "localhost"],
            &["curl", "-s", &format!("http://localhost:{port}/x")],
        );
        assert_eq!(stdout(&curl), "hello-through-proxy", "{ns:?}: {curl:?}");
        let refused = run(
            ns,
            dir.path(),
            READ_ONLY,
            &["--allow-domain", "localhost"],
            &strs(&fetch(&format!("http://127.0.0.1:{port}/x"))),
        );
        let text = stdout(&refused);
        assert!(
            text.starts_with("HTTP 403") && text.contains("127.0.0.1 is not in allowed_domains"),
            "{ns:?}: {refused:?}"
        );
        // control: the same host named in the allow-list is reached
        let control = run(
            ns,
            dir.path(),
            READ_ONLY,
            &["--allow-domain", "127.0.0.1"],
            &strs(&fetch(&format!("http://127.0.0.1:{port}/x"))),
        );
        assert_eq!(
            stdout(&control).trim(),
            "200 hello-through-proxy",
            "{ns:?}: {control:?}"
        );
    }
}

#[test]
fn a_command_that_ignores_the_proxy_reaches_nothing() {
    let port = server().to_string();
    let dir = tempfile::tempdir().unwrap();
    for ns in [Ns::With, Ns::Without] {
        for probe in [
            "tcp4-connect",
            "tcp6-connect",
            "udp4-sendto",
            "tcp4-fastopen",
        ] {
            let out = run(
                ns,
                dir.path(),
                READ_ONLY,
                &["--allow-domain", "localhost"],
                &[PROBE, probe, &port],
            );
            assert_eq!(stdout(&out).trim(), EACCES, "{ns:?} {probe}: {out:?}");
        }
    }
    // control: with the network on, the same direct connect reaches the server
    let out = run(
        Ns::With,
        dir.path(),
        NETWORK_ON,
        &[],
        &[PROBE, "tcp4-connect", &port],
    );
    assert_eq!(stdout(&out).trim(), "ok", "{out:?}");
}

#[test]
fn a_name_that_resolves_to_a_local_address_is_refused_unless_named_exactly() {
    let port = server();
    let dir = tempfile::tempdir().unwrap();
    // `**.localhost` matches `localhost`, but only an exact rule opens a local address: a name
    // that resolves to loopback (DNS rebinding) is not a way to local services
    let out = run(
        Ns::With,
        dir.path(),
        READ_ONLY,
        &["--allow-domain", "**.localhost"],
        &strs(&fetch(&format!("http://localhost:{port}/x"))),
    );
    let text = stdout(&out);
    assert!(
        text.starts_with("HTTP 403") && text.contains("non-public"),
        "{out:?}"
    );
}

#[test]
fn a_bad_pattern_is_an_invalid_policy_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for (pattern, what) in [
        ("*", "allows every host"),
        ("*.", "allows every host"),
        ("a.*.com", "wildcard"),
        ("a..b", "empty"),
        ("https://pypi.org", "no scheme"),
        ("pypi.org:99999", "port"),
    ] {
        let out = run(
            Ns::With,
            dir.path(),
            READ_ONLY,
            &["--allow-domain", pattern],
            &["true"],
        );
        assert_eq!(out.status.code(), Some(200), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(pattern) && err.contains(what), "{err}");
    }
    // an allow-list with the network already fully on narrows nothing: refused, nothing started
    let out = run(
        Ns::With,
        dir.path(),
        NETWORK_ON,
        &["--allow-domain", "pypi.org"],
        &["sh", "-c", "echo started"],
    );
    assert_eq!(out.status.code(), Some(200), "{out:?}");
    assert!(stdout(&out).is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("network access is fully on"),
        "{out:?}"
    );
}

#[test]
fn a_listening_inet_socket_is_refused_and_unix_servers_still_listen() {
    // round-8 review F1: listen() on an unbound inet socket autobound to 0.0.0.0:<port> and
    // accepted connections from anywhere
    let dir = tempfile::tempdir().unwrap();
    let script = "import socket, os\n\
        for fam in (socket.AF_INET, socket.AF_INET6):\n\
        \x20   s = socket.socket(fam, socket.SOCK_STREAM)\n\
        \x20   try:\n\
        \x20       s.listen(1); print('inet-listen', s.getsockname())\n\
        \x20   except OSError as e:\n\
        \x20       print('inet-refused', e.errno)\n\
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n\
        p = os.path.join(os.getcwd(), 'srv.sock')\n\
        if os.path.exists(p): os.unlink(p)\n\
        u.bind(p); u.listen(1); print('unix-listen ok')\n";
    for ns in [Ns::With, Ns::Without] {
        let out = run(
            ns,
            dir.path(),
            r#"{"mode":"workspace-write"}"#,
            &[
                "--allow-domain",
                "localhost",
                "--dangerously-allow-weaker-sandbox",
            ],
            &["python3", "-c", script],
        );
        let text = stdout(&out);
        assert_eq!(
            text.matches("inet-refused 13").count(),
            2,
            "{ns:?}: {out:?}"
        );
        assert!(!text.contains("inet-listen"), "{ns:?}: {out:?}");
        assert!(text.contains("unix-listen ok"), "{ns:?}: control: {out:?}");
    }
}

/// Round-8 review: the proxy's loopback port belongs to nobody, so another local user who found
/// it reached the allowed hosts as this user. Now a connection whose socket another uid owns
/// gets 403 naming that uid; control: the same request from this uid is tunnelled.
#[test]
fn another_local_user_cannot_use_the_sandboxs_proxy() {
    use std::os::unix::process::CommandExt;
    let port = server();
    let dir = tempfile::tempdir().unwrap();
    for ns in [Ns::With, Ns::Without] {
        let marker = dir.path().join(format!("proxy-{ns:?}.txt"));
        let _ = std::fs::remove_file(&marker);
        let mut c = match ns {
            Ns::With => Command::new(helper()),
            Ns::Without => {
                let mut c = Command::new(PROBE);
                c.args(["outer-deny", "userns", "--", &helper()]);
                c
            }
        };
        c.arg("--sandbox-policy-cwd")
            .arg(dir.path())
            .args(["--sandbox-policy", r#"{"mode":"workspace-write"}"#])
            .args(["--allow-domain", "127.0.0.1"]);
        if ns == Ns::Without {
            // a writable root without namespaces keeps fewer guarantees: say so
            c.arg("--dangerously-allow-weaker-sandbox");
        }
        c.arg("--")
            .args([
                "sh",
                "-c",
                &format!("echo \"$HTTP_PROXY\" > {}; sleep 30", marker.display()),
            ])
            .current_dir(dir.path())
            .env("PWD", dir.path())
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let _guard = Kill(c.spawn().unwrap());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let proxy = loop {
            if let Ok(s) = std::fs::read_to_string(&marker) {
                if s.ends_with('\n') {
                    break s.trim().trim_start_matches("http://").to_string();
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{ns:?}: no proxy address"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let request = format!(
            "CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n\
             GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        );
        let script = format!(
            "import socket,sys\n\
             s=socket.create_connection(('{}',{}))\n\
             s.sendall(sys.argv[1].encode())\n\
             out=b''\n\
             while True:\n    d=s.recv(4096)\n    if not d: break\n    out+=d\n\
             print(out.decode(errors='replace'))\n",
            proxy.rsplit_once(':').unwrap().0,
            proxy.rsplit_once(':').unwrap().1
        );
        let attacker = Command::new("python3")
            .args(["-c", &script, &request])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&attacker.stdout);
        assert!(
            said.starts_with("HTTP/1.1 403")
                && said.contains("connection from uid 65534 refused")
                && !said.contains("hello-through-proxy"),
            "{ns:?}: {said} {}",
            String::from_utf8_lossy(&attacker.stderr)
        );
        // control: this uid (the sandbox's) is tunnelled
        let me = Command::new("python3")
            .args(["-c", &script, &request])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&me.stdout);
        assert!(
            said.starts_with("HTTP/1.1 200 Connection established")
                && said.contains("hello-through-proxy"),
            "{ns:?} control: {said}"
        );
    }
}

/// Round-8 review: an allowed name that resolves to one of this machine's own public addresses
/// (DNS rebinding) reached services listening on every interface. Run in a network and mount
/// namespace of the test's own: `lo` also holds the public address 5.6.7.8, a server
/// listens there, and `/etc/hosts` maps `own.test` to it. Control: the address named exactly
/// is reached.
#[test]
fn an_allowed_name_resolving_to_this_machines_own_public_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n5.6.7.8 own.test\n").unwrap();
    let helper = helper();
    for ns in [Ns::With, Ns::Without] {
        let wrap = match ns {
            Ns::With => String::new(),
            Ns::Without => format!("{PROBE} outer-deny userns -- "),
        };
        let fetch_cmd = |url: &str| {
            let f = fetch(url);
            format!("python3 -c {}", shell_quote(&f[2]))
        };
        let script = format!(
            "set -e\n\
             mount --bind {hosts} /etc/hosts\n\
             ip link set lo up\n\
             ip addr add 5.6.7.8/32 dev lo\n\
             python3 -c 'import socket,os,sys\n\
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"5.6.7.8\", 8080)); s.listen(8)\n\
open(sys.argv[1], \"w\").close()\n\
while True:\n    c,_=s.accept(); c.recv(4096); c.sendall(b\"HTTP/1.1 200 OK\\r\\nContent-Length: 10\\r\\nConnection: close\\r\\n\\r\\nown-secret\"); c.close()' {ready} >/dev/null 2>&1 &\n\
             srv=$!\n\
             trap 'kill $srv 2>/dev/null' EXIT\n\
             while [ ! -e {ready} ]; do sleep 0.05; done\n\
             echo ATTACK; {wrap}{helper} --sandbox-policy-cwd {d} --sandbox-policy '{ro}' --allow-domain own.test -- {attack} || true\n\
             echo CONTROL; {wrap}{helper} --sandbox-policy-cwd {d} --sandbox-policy '{ro}' --allow-domain 5.6.7.8 -- {control} || true\n\
             true\n",
            hosts = hosts.display(),
            ready = dir.path().join(format!("ready-{ns:?}")).display(),
            d = dir.path().display(),
            ro = READ_ONLY,
            attack = fetch_cmd("http://own.test:8080/"),
            control = fetch_cmd("http://5.6.7.8:8080/"),
        );
        let out = Command::new("unshare")
            .args(["--net", "--mount", "--", "sh", "-c", &script])
            .current_dir(dir.path())
            .env("PWD", dir.path())
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = stdout(&out);
        let (attack, control) = text
            .split_once("CONTROL")
            .unwrap_or_else(|| panic!("{ns:?}: {out:?}"));
        assert!(
            attack.contains("HTTP 403")
                && attack.contains("this machine's own")
                && !attack.contains("own-secret"),
            "{ns:?}: {out:?}"
        );
        assert!(
            control.contains("200 own-secret"),
            "{ns:?} control: {out:?}"
        );
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Outside review r10 F-S5: about 1000 idle connections of another user to the proxy held a
/// thread and a descriptor each, exhausted the launcher's descriptors and stalled the command.
/// Now another uid is answered and closed on the accepting thread: while 1200 such connections
/// are held open by the attacker, the command's own request through the proxy still works.
#[test]
fn another_users_connection_flood_does_not_stall_the_sandbox() {
    use std::os::unix::process::CommandExt;
    let port = server();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("proxy.txt");
    let go = dir.path().join("go");
    let fetch_py = fetch(&format!("http://127.0.0.1:{port}/x"))[2].clone();
    let script = format!(
        "echo \"$HTTP_PROXY\" > {m}; while [ ! -e {g} ]; do sleep 0.05; done; python3 -c \"$F\" > {d}/result; sleep 8",
        m = marker.display(),
        g = go.display(),
        d = dir.path().display()
    );
    let mut c = Command::new(helper());
    c.arg("--sandbox-policy-cwd")
        .arg(dir.path())
        .args(["--sandbox-policy", r#"{"mode":"workspace-write"}"#])
        .args(["--allow-domain", "127.0.0.1", "--", "sh", "-c", &script])
        .current_dir(dir.path())
        .env("PWD", dir.path())
        .env("F", &fetch_py)
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // a user's usual descriptor limit (the reviewer's launcher had 1024)
    // SAFETY: setrlimit is async-signal-safe; the struct lives for the call.
    unsafe {
        c.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut sandbox = c.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let proxy = loop {
        if let Ok(s) = std::fs::read_to_string(&marker) {
            if s.ends_with('\n') {
                break s.trim().trim_start_matches("http://").to_string();
            }
        }
        assert!(std::time::Instant::now() < deadline, "no proxy address");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let (host, p) = proxy.rsplit_once(':').unwrap();
    // the attacker: 1200 connections held open (more than the launcher's 1024 descriptors), then a signal to the sandbox (its fetch runs now), each read until the proxy closes it (3 s in all), then 12 s more
    let flood = format!(
        "import socket, os, time, resource\n\
         h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]\n\
         resource.setrlimit(resource.RLIMIT_NOFILE, (min(h, 4096), h))\n\
         held = []\n\
         for i in range(1200):\n    \
             try: held.append(socket.create_connection(('{host}', {p}), timeout=5))\n    \
             except OSError: pass\n\
         print('held', len(held), flush=True)\n\
         open('{g}', 'w').close()\n\
         t0 = time.time(); closed = 0\n\
         for s in held:\n    \
             s.settimeout(max(0.1, 3 - (time.time() - t0)))\n    \
             try:\n        \
                 d = s.recv(4096)\n        \
                 while d: d = s.recv(4096)\n        \
                 closed += 1\n    \
             except OSError: pass\n\
         print('closed', closed, flush=True)\n\
         time.sleep(12)\n",
        g = go.display()
    );
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let attacker = Command::new("python3")
        .args(["-c", &flood])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&attacker.stdout).starts_with("held"),
        "{attacker:?}"
    );
    let said = String::from_utf8_lossy(&attacker.stdout).to_string();
    let held: usize = said.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        held > 1000 && said.contains(&format!("closed {held}")),
        "every connection of the other uid is answered and closed at once: {said}"
    );
    let status = sandbox.wait().unwrap();
    let result = std::fs::read_to_string(dir.path().join("result")).unwrap_or_default();
    assert_eq!(
        result.trim(),
        "200 hello-through-proxy",
        "the command's request during the flood ({status:?}, {})",
        String::from_utf8_lossy(&attacker.stdout)
    );
}
