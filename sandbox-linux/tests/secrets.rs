//! Issue 12 item 7: secrets by other routes. The attacker is the sandboxed command reading a
//! credential file; each read is paired with the same read outside (the control).
//! - `HOME` unset (`env -i`, cron) or naming another directory: the passwd entry's home is
//!   protected all the same (these tests run as root, whose passwd home is read from the system:
//!   a file is planted in its `.ssh` and removed afterwards);
//! - a killed writer's temp file of the credential store (`$CODEX_HOME/.auth-tmp/…`);
//! - the longer default list (`~/.netrc`, `~/.docker/config.json`, …).

// Test code: a failed set-up step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use suite_test_support::bins::sandbox_helper as helper;
const PROBE: &str = env!("CARGO_BIN_EXE_sandbox-linux-probe");
const EACCES: &str = "errno 13";

/// `codex-linux-sandbox` (read-only, cwd `/`) with `flags`, running `cmd`; `env` set (or, for
/// `None`, removed) for the helper. Exit 0 required; returns (stdout, stderr).
fn helper_run(
    flags: &[&str],
    cmd: &[&std::ffi::OsStr],
    env: &[(&str, Option<&std::ffi::OsStr>)],
) -> (String, String) {
    let mut c = Command::new(helper());
    c.args([
        "--sandbox-policy-cwd",
        "/",
        "--sandbox-policy",
        r#"{"mode":"read-only"}"#,
    ])
    .args(flags)
    .arg("--")
    .args(cmd)
    .stdin(Stdio::null());
    for (k, v) in env {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The probe's answer to `read PATH` in the read-only sandbox, with `env` applied to the helper.
fn read_inside(path: &Path, env: &[(&str, Option<&Path>)]) -> String {
    let env: Vec<_> = env
        .iter()
        .map(|(k, v)| (*k, v.map(Path::as_os_str)))
        .collect();
    let cmd = [PROBE.as_ref(), "read".as_ref(), path.as_os_str()];
    helper_run(&[], &cmd, &env).0.trim().to_string()
}

fn read_outside(path: &Path) -> String {
    let out = Command::new(PROBE).arg("read").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A file planted below the passwd home's `.ssh`, removed (with `.ssh` if it was created) on drop.
struct Planted {
    file: PathBuf,
    created_dir: Option<PathBuf>,
}

impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        if let Some(d) = &self.created_dir {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn passwd_home() -> PathBuf {
    // `getent` answers from the same NSS configuration as getpwuid_r
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap();
    let out = Command::new("getent")
        .args(["passwd", &uid])
        .output()
        .unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(
        line.trim()
            .split(':')
            .nth(5)
            .expect("a passwd entry for this uid"),
    )
}

fn plant_in_passwd_home() -> Planted {
    let ssh = passwd_home().join(".ssh");
    let created_dir = (!ssh.exists()).then(|| ssh.clone());
    std::fs::create_dir_all(&ssh).unwrap();
    let file = ssh.join(format!("codex-sandbox-test-{}", std::process::id()));
    std::fs::write(&file, "PRIVATE KEY").unwrap();
    Planted { file, created_dir }
}

#[test]
fn the_passwd_home_is_protected_when_home_is_unset_or_names_another_directory() {
    let planted = plant_in_passwd_home();
    let elsewhere = tempfile::tempdir().unwrap();
    for (what, home) in [
        ("HOME unset", None),
        ("HOME elsewhere", Some(elsewhere.path())),
        ("HOME relative", Some(Path::new("relative/home"))),
    ] {
        assert_eq!(
            read_inside(&planted.file, &[("HOME", home)]),
            EACCES,
            "{what}: the passwd home's .ssh must stay unreadable"
        );
    }
    // control: outside the sandbox the same file is readable
    assert_eq!(read_outside(&planted.file), "ok");
}

#[test]
fn a_stale_temp_file_of_the_credential_store_is_unreadable() {
    let codex_home = tempfile::tempdir().unwrap();
    let tmp = codex_home.path().join(".auth-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let stale = tmp.join(".auth.json.tmp.123.0.0");
    std::fs::write(&stale, r#"{"OPENAI_API_KEY":"sk-stale"}"#).unwrap();
    let env = [("CODEX_HOME", Some(codex_home.path()))];
    assert_eq!(read_inside(&stale, &env), EACCES);
    // control: outside readable; CODEX_HOME is denied whole (outside review r75 F2: editors'
    // copies of `config.toml` beside it), a file elsewhere stays readable inside
    assert_eq!(read_outside(&stale), "ok");
    let sibling = codex_home.path().join("history.jsonl");
    std::fs::write(&sibling, "").unwrap();
    assert_eq!(read_inside(&sibling, &env), EACCES);
    let beside = tempfile::tempdir().unwrap();
    let other = beside.path().join("notes.txt");
    std::fs::write(&other, "").unwrap();
    assert_eq!(read_inside(&other, &env), "ok");
}

#[test]
fn the_longer_default_list_covers_common_credential_files() {
    let home = tempfile::tempdir().unwrap();
    let env = [("HOME", Some(home.path()))];
    for rel in [
        ".netrc",
        ".git-credentials",
        ".docker/config.json",
        ".kube/config",
        ".config/gh/hosts.yml",
        ".cargo/credentials.toml",
        ".npmrc",
        ".pypirc",
        ".Xauthority",
        // fifth review round F7
        "snap/firefox/common/.mozilla/firefox/profiles.ini",
        ".var/app/com.google.Chrome/config/google-chrome/Default/Cookies",
        ".config/git/credentials",
        ".pgpass",
        ".vault-token",
        ".codex/.credentials.json",
        // outside review r10 F-S2
        ".config/github-copilot/apps.json",
        ".claude/.credentials.json",
        ".cache/huggingface/token",
        ".config/rclone/rclone.conf",
        ".databrickscfg",
        ".bash_history",
        ".psql_history",
        ".local/share/fish/fish_history",
        // outside review r63 F6
        ".config/containers/auth.json",
        ".docker/key.pem",
        ".minikube/profiles/minikube/client.key",
        ".pki/nssdb/key4.db",
        ".thunderbird/abc.default/logins.json",
        ".gemini/oauth_creds.json",
        ".config/glab-cli/config.yml",
        ".msmtprc",
        ".ansible/vault_pass.txt",
        // outside review r74 F1 (MCP servers' headers and env values) and I1
        ".codex/config.toml",
        ".hcloud/cli.toml",
        ".local/share/containers/auth.json",
        ".heroku/credentials",
        ".netlify/state.json",
        ".config/sentry/cli.ini",
        ".config/openai/auth.json",
        ".gitlab-token",
        ".jira.d/config.yml",
        // outside review r75 F3
        ".local/share/gem/credentials",
        ".kaggle/kaggle.json",
        ".passwd-s3fs",
        ".dbt/profiles.yml",
        ".snowflake/connections.toml",
        ".config/scw/config.yaml",
        ".talos/config",
        ".davfs2/secrets",
        ".ivy2/.credentials",
        ".qwen/oauth_creds.json",
        ".config/shell_gpt/.sgptrc",
        // codex's home is denied whole: editors' swap and backup copies of `config.toml`
        // (outside review r75 F2: vim's `.config.toml.swp` of a file open before the run gave
        // every MCP secret), its sessions
        ".codex/.config.toml.swp",
        ".codex/config.toml~",
        ".codex/sessions/s.jsonl",
    ] {
        let f = home.path().join(rel);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, "secret").unwrap();
        assert_eq!(read_inside(&f, &env), EACCES, "{rel}");
        assert_eq!(read_outside(&f), "ok", "control: {rel}");
    }
    // control: an ordinary file in the same home stays readable inside
    let f = home.path().join(".bashrc");
    std::fs::write(&f, "fine").unwrap();
    assert_eq!(read_inside(&f, &env), "ok");
}

/// The probe's answer to `read PATH` in the read-only sandbox with `HOME=home`, run without
/// user namespaces (the probe's outer filter refuses them to the helper) when `no_userns`.
fn read_inside_with_home(path: &Path, home: &Path, no_userns: bool) -> String {
    let out = read_only_run(
        home,
        no_userns,
        &[PROBE.as_ref(), "read".as_ref(), path.as_os_str()],
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `cmd` in the read-only sandbox with `HOME=home` (without user namespaces when
/// `no_userns`); asserts it exited 0.
fn read_only_run(home: &Path, no_userns: bool, cmd: &[&std::ffi::OsStr]) -> std::process::Output {
    let mut c = if no_userns {
        let mut c = Command::new(PROBE);
        c.args(["outer-deny", "userns", "--"]).arg(helper());
        c
    } else {
        Command::new(helper())
    };
    let out = c
        .args([
            "--sandbox-policy-cwd",
            "/",
            "--sandbox-policy",
            r#"{"mode":"read-only"}"#,
            "--",
        ])
        .args(cmd)
        .env("HOME", home)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    out
}

/// Outside review r35 F3: secrets kept as links inside a denied directory (`~/.ssh/id_ed25519
/// -> ../dotfiles/id`, `~/.aws/credentials -> /abs/dotfiles/aws`, a key two levels down in
/// `~/.gnupg`) were read through the links, with and without user namespaces: the deny held
/// the directory's own entries only. The links' targets are denied too now. Controls: each
/// target is read outside, and another file of the same `dotfiles` is read inside.
#[test]
fn a_secret_kept_as_a_link_in_a_denied_directory_stays_unreadable() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    for d in ["dotfiles/gnupg", ".ssh", ".aws", ".gnupg/private-keys-v1.d"] {
        std::fs::create_dir_all(h.join(d)).unwrap();
    }
    for f in ["id", "aws", "gnupg/k.key", "notes"] {
        std::fs::write(h.join("dotfiles").join(f), "secret").unwrap();
    }
    std::os::unix::fs::symlink("../dotfiles/id", h.join(".ssh/id_ed25519")).unwrap();
    std::os::unix::fs::symlink(h.join("dotfiles/aws"), h.join(".aws/credentials")).unwrap();
    std::os::unix::fs::symlink(
        "../../dotfiles/gnupg/k.key",
        h.join(".gnupg/private-keys-v1.d/k.key"),
    )
    .unwrap();
    for no_userns in [false, true] {
        for link in [
            ".ssh/id_ed25519",
            ".aws/credentials",
            ".gnupg/private-keys-v1.d/k.key",
        ] {
            let link = h.join(link);
            let target = std::fs::canonicalize(&link).unwrap();
            assert_eq!(read_outside(&link), "ok", "control: {link:?}");
            for p in [&link, &target] {
                assert_eq!(
                    read_inside_with_home(p, h, no_userns),
                    EACCES,
                    "{p:?} (without user namespaces: {no_userns})"
                );
            }
        }
        assert_eq!(
            read_inside_with_home(&h.join("dotfiles/notes"), h, no_userns),
            "ok",
            "control (without user namespaces: {no_userns})"
        );
    }
    // r40 F7: past the search's bound (4096 entries) the run says so, naming the directory;
    // control: the home above, within the bound, gets no such warning
    let warned = |home: &Path| {
        let out = read_only_run(home, false, &["true".as_ref()]);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(!warned(h).contains("deny-read"), "control");
    let big = tempfile::tempdir().unwrap();
    let store = big.path().join(".password-store");
    std::fs::create_dir_all(&store).unwrap();
    for i in 0..4100 {
        std::fs::File::create(store.join(format!("p{i}"))).unwrap();
    }
    let stderr = warned(big.path());
    assert!(
        stderr.contains("deny-read") && stderr.contains(".password-store"),
        "{stderr}"
    );
}

#[test]
fn credential_locations_moved_by_the_environment_are_unreadable() {
    // fifth review round F7: DOCKER_CONFIG, KUBECONFIG, GNUPGHOME, CARGO_HOME, XDG_CONFIG_HOME
    let dir = tempfile::tempdir().unwrap();
    let p = |rel: &str| {
        let f = dir.path().join(rel);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, "secret").unwrap();
        f
    };
    let docker = p("docker/config.json");
    let kube = p("kube/prod.yaml");
    let gnupg = p("gnupg/private-keys-v1.d/k.key");
    let cargo = p("cargo/credentials.toml");
    let gh = p("xdg/gh/hosts.yml");
    // outside review r63 F5: the Kerberos cache `KRB5CCNAME` names, podman's logins in
    // `$XDG_RUNTIME_DIR` and at `$REGISTRY_AUTH_FILE`
    let krb = p("krb5cc_test");
    let podman = p("runtime/containers/auth.json");
    let registry = p("registry-auth.json");
    let fine = p("docker/readme.txt");
    let env = [
        ("HOME", Some(dir.path().join("home"))),
        ("DOCKER_CONFIG", Some(dir.path().join("docker"))),
        ("KUBECONFIG", Some(kube.clone())),
        ("GNUPGHOME", Some(dir.path().join("gnupg"))),
        ("CARGO_HOME", Some(dir.path().join("cargo"))),
        ("XDG_CONFIG_HOME", Some(dir.path().join("xdg"))),
        (
            "KRB5CCNAME",
            Some(PathBuf::from(format!("FILE:{}", krb.display()))),
        ),
        ("XDG_RUNTIME_DIR", Some(dir.path().join("runtime"))),
        ("REGISTRY_AUTH_FILE", Some(registry.clone())),
    ];
    let env: Vec<(&str, Option<&Path>)> = env.iter().map(|(k, v)| (*k, v.as_deref())).collect();
    for f in [
        &docker, &kube, &gnupg, &cargo, &gh, &krb, &podman, &registry,
    ] {
        assert_eq!(read_inside(f, &env), EACCES, "{f:?}");
        assert_eq!(read_outside(f), "ok", "control: {f:?}");
    }
    // control: a file beside a moved one stays readable
    assert_eq!(read_inside(&fine, &env), "ok");
}

/// `env` inside the sandbox (read-only, `-v`), with `vars` set for the helper and `flags` added.
fn env_inside(vars: &[(&str, &str)], flags: &[&str]) -> (String, String) {
    let env: Vec<_> = vars.iter().map(|(k, v)| (*k, Some(v.as_ref()))).collect();
    let mut all = vec!["-v"];
    all.extend_from_slice(flags);
    helper_run(&all, &["env".as_ref()], &env)
}

#[test]
fn secrets_and_agent_sockets_in_the_environment_do_not_reach_the_command() {
    let vars = [
        ("OPENAI_API_KEY", "sk-env-secret"),
        ("GH_TOKEN", "ghp-env-secret"),
        ("SSH_AUTH_SOCK", "/run/user/1/ssh-agent"),
        ("GPG_AGENT_INFO", "/run/user/1/gpg"),
        ("DB_PASSWORD", "pw-env-secret"),
        // outside review r10 F-S2
        ("MYSQL_PWD", "mysql-env-secret"),
        ("DATABASE_URL", "postgres://u:url-env-secret@db/x"),
        ("HARMLESS_SETTING", "fine"),
    ];
    let (env, report) = env_inside(&vars, &[]);
    for (k, v) in &vars[..7] {
        assert!(
            !env.contains(v) && !env.contains(&format!("{k}=")),
            "{k} reached the command:\n{env}"
        );
    }
    assert!(env.contains("HARMLESS_SETTING=fine"), "{env}");
    // -v names what was removed, never a value
    assert!(
        report.contains(
            "env removed [DATABASE_URL, DB_PASSWORD, GH_TOKEN, GPG_AGENT_INFO, MYSQL_PWD, OPENAI_API_KEY, SSH_AUTH_SOCK]"
        ),
        "{report}"
    );
    assert!(!report.contains("secret"), "{report}");
    // control: --keep-env passes the one variable asked for, and only it
    let (env, _) = env_inside(&vars, &["--keep-env", "gh_token"]);
    assert!(env.contains("GH_TOKEN=ghp-env-secret"), "{env}");
    assert!(!env.contains("sk-env-secret"), "{env}");
}

/// In a private mount namespace (as root), bind `home` at `at`, then run the read-only sandbox
/// as nobody with HOME=`home` and the probe reading each of `paths`; returns the answers.
fn reads_with_a_bind_mount(
    home: &Path,
    at: &Path,
    paths: &[PathBuf],
    sandboxed: bool,
) -> Vec<String> {
    let mut script = format!(
        "mount --bind '{}' '{}' || exit 99; ",
        home.display(),
        at.display()
    );
    for p in paths {
        let read = format!("{PROBE} read '{}'", p.display());
        let cmd = if sandboxed {
            format!(
                "{} --sandbox-policy-cwd / --sandbox-policy '{{\"mode\":\"read-only\"}}' -- {read}",
                helper()
            )
        } else {
            read
        };
        script.push_str(&format!(
            "HOME='{}' setpriv --reuid=65534 --regid=65534 --clear-groups {cmd}; ",
            home.display()
        ));
    }
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("unshare and setpriv (util-linux)");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_bind_mount_of_the_home_is_no_second_way_to_a_denied_file() {
    // outside review F3 and second round F4: a bind of the home elsewhere read the key at the
    // second path; a bind *beside* the home even opened the canonical path (the rule granted to
    // the sibling mount point sat on the home's own inode)
    let (_dir, base) = suite_test_support::dirs::sandbox_scratch(
        "sbl-bind-",
        Path::new(env!("CARGO_TARGET_TMPDIR")),
    );
    let home = base.join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::write(home.join(".ssh/id_ed25519"), "PRIVATE KEY").unwrap();
    std::fs::write(home.join(".netrc"), "machine x password y").unwrap();
    std::fs::write(home.join("notes.txt"), "fine").unwrap();
    for (at, what) in [
        (base.join("mnt2"), "beside the home"),
        (base.join("elsewhere/m"), "in another directory"),
    ] {
        std::fs::create_dir_all(&at).unwrap();
        suite_test_support::dirs::chown_tree(&base, 65534);
        let paths = [
            home.join(".ssh/id_ed25519"),
            at.join(".ssh/id_ed25519"),
            home.join(".netrc"),
            at.join(".netrc"),
            at.join("notes.txt"),
        ];
        let inside = reads_with_a_bind_mount(&home, &at, &paths, true);
        assert_eq!(
            inside,
            [EACCES, EACCES, EACCES, EACCES, "ok"],
            "bind {what}: denied at both paths, the rest readable"
        );
        // control: without the sandbox every path reads
        let outside = reads_with_a_bind_mount(&home, &at, &paths, false);
        assert_eq!(outside, ["ok"; 5], "control, bind {what}");
    }
}

#[test]
fn descriptors_the_launcher_inherited_do_not_reach_the_command() {
    // third review round F7: `codex sandbox linux -- sh -c 'cat <&7; echo x >&8' 7<key 8>>rc`
    // read a deny-read key and appended to ~/.bashrc through inherited descriptors
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "PRIVATE KEY").unwrap();
    // The launcher itself must hold the descriptor: open it in the test's shell, then exec the
    // helper (fd 7 is inherited by the helper, as from a user's shell).
    let inside = Command::new("sh")
        .args([
            "-c",
            &format!(
                "exec 7<'{}'; exec {} --sandbox-policy-cwd / --sandbox-policy '{{\"mode\":\"read-only\"}}' -- sh -c 'cat <&7 2>/dev/null || echo closed'",
                key.display(),
                helper()
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&inside.stdout).trim(),
        "closed",
        "{inside:?}"
    );
    // control: without the sandbox the same descriptor reads the key
    let outside = Command::new("sh")
        .args([
            "-c",
            &format!(
                "exec 7<'{}'; sh -c 'cat <&7 2>/dev/null || echo closed'",
                key.display()
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&outside.stdout).trim(),
        "PRIVATE KEY"
    );
}
