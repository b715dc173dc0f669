//! The Debian package an administrator installs: built from the binaries this test run built,
//! unpacked into a scratch root, then checked file by file (modes, owners, no setuid, no
//! world-writable), man pages rendered without warnings, and the installed systemd units
//! verified by `systemd-analyze verify --root` against the unpacked tree, with a control that a
//! broken unit does fail verification. Needs dpkg-deb, groff and systemd-analyze (scripts/test
//! installs them); a missing tool fails the test.
//!
//! Maintainer scripts are not run here (`dpkg -x`, not `dpkg --root -i`: a scratch root has no
//! shell or dpkg database to run them in); their effect (systemd-sysusers on the shipped
//! sysusers.d file) is checked by running systemd-sysusers against the scratch root.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use suite_test_support::bins::workspace_bin;

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (scripts/test installs it)"))
}

fn build_deb(out: &Path) -> PathBuf {
    let bin_dir = workspace_bin("codex").parent().unwrap().to_path_buf();
    workspace_bin("gen-assets");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/deb/build.sh");
    // Uncompressed: the debug binaries are large and xz would dominate the test's time.
    let o = run(Command::new("bash")
        .env("DEB_COMPRESSION", "none")
        .arg(&script)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out-dir")
        .arg(out));
    assert!(
        o.status.success(),
        "build.sh failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
}

/// `systemd-analyze verify --root ROOT UNITS`: Ok when it exits 0 and says nothing.
fn verify(root: &Path, units: &[&str]) -> Result<(), String> {
    let o = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .args(units.iter().map(|u| format!("/usr/lib/systemd/system/{u}")))
        .env("SYSTEMD_LOG_LEVEL", "warning"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if o.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(said)
    }
}

#[test]
fn the_package_installs_with_safe_modes_and_its_units_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let deb = build_deb(tmp.path());
    let root = tmp.path().join("root");
    let o = run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // What the archive says dpkg will create: every entry root:root.
    let o = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let listing = String::from_utf8(o.stdout).unwrap();
    assert!(listing.lines().count() > 20, "{listing}");
    for line in listing.lines() {
        assert!(line.contains(" root/root "), "not owned by root: {line}");
    }

    // Every installed file: expected mode, owner root, never setuid/setgid/world-writable.
    let expect_exec = [
        "usr/bin/codex",
        "usr/bin/codex-linux-sandbox",
        "usr/bin/responses-api-proxy",
    ];
    let mut seen = 0;
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mode = m.permissions().mode() & 0o7777;
            assert_eq!((m.uid(), m.gid()), (0, 0), "{rel} not root:root");
            assert_eq!(mode & 0o6000, 0, "{rel} is setuid/setgid ({mode:o})");
            assert_eq!(mode & 0o002, 0, "{rel} is world-writable ({mode:o})");
            if m.is_dir() {
                let want = if rel == "etc/responses-api-proxy" {
                    0o700
                } else {
                    0o755
                };
                assert_eq!(mode, want, "{rel}: {mode:o}");
                stack.push(p);
            } else {
                let want = if expect_exec.contains(&rel.as_str()) {
                    0o755
                } else {
                    0o644
                };
                assert_eq!(mode, want, "{rel}: {mode:o}");
                seen += 1;
            }
        }
    }
    for f in [
        "usr/lib/systemd/system/responses-api-proxy.service",
        "usr/lib/systemd/system/responses-api-proxy.socket",
        "usr/lib/sysusers.d/responses-api-proxy.conf",
        "usr/share/man/man1/codex.1.gz",
        "usr/share/man/man1/codex-sandbox-linux.1.gz",
        "usr/share/man/man1/codex-linux-sandbox.1.gz",
        "usr/share/man/man8/responses-api-proxy.8.gz",
        "usr/share/bash-completion/completions/codex",
        "usr/share/zsh/vendor-completions/_codex",
        "usr/share/fish/vendor_completions.d/codex.fish",
        "usr/share/doc/codex-suite/security.md",
        "usr/share/doc/codex-suite/copyright",
    ] {
        assert!(root.join(f).is_file(), "{f} missing");
    }
    assert!(seen >= 30, "only {seen} files");

    // Every man page renders without a single groff warning; three say what they document.
    let mut pages = 0;
    for section in ["man1", "man8"] {
        for e in std::fs::read_dir(root.join("usr/share/man").join(section)).unwrap() {
            let path = e.unwrap().path();
            let page = path.file_name().unwrap().to_string_lossy().into_owned();
            let o = run(Command::new("sh").arg("-c").arg(format!(
                "gzip -dc '{}' | groff -man -Tascii -P-cbou -ww",
                path.display()
            )));
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success() && err.trim().is_empty(), "{page}: {err}");
            let text = String::from_utf8_lossy(&o.stdout);
            let must_say = match page.as_str() {
                "codex-sandbox-linux.1.gz" => "dangerously-allow-weaker-sandbox",
                "codex-linux-sandbox.1.gz" => "sandbox-policy-cwd",
                "responses-api-proxy.8.gz" => "api-key-credential",
                _ => "",
            };
            assert!(text.contains(must_say), "{page} lacks {must_say:?}: {text}");
            pages += 1;
        }
    }
    assert!(pages >= 10, "only {pages} man pages");
    // Control: the same renderer reports a page with an undefined macro.
    let o = run(Command::new("sh")
        .arg("-c")
        .arg("printf '.TH X 1\\n.SH NAME\\n.BOGUS x\\n' | groff -man -Tascii -P-cbou -ww"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("BOGUS"),
        "groff said nothing of a broken page: {err}"
    );

    // The maintainer scripts: shipped executable, valid sh, and none of them enables or starts
    // the proxy (it has no key at install time; the administrator starts it).
    let ctrl = tmp.path().join("control");
    let o = run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&ctrl));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for script in ["postinst", "prerm", "postrm"] {
        let path = ctrl.join(script);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755, "{script}: {mode:o}");
        let o = run(Command::new("sh").arg("-n").arg(&path));
        assert!(
            o.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = std::fs::read_to_string(&path).unwrap();
        for word in ["systemctl start", "systemctl enable", "systemctl restart"] {
            assert!(!text.contains(word), "{script} runs {word:?}");
        }
    }

    // The units verify against the installed tree (ExecStart must exist there) once systemd's
    // own units are beside them, as on a real system.
    let sys = root.join("usr/lib/systemd/system");
    let o = run(Command::new("cp")
        .arg("-rn")
        .arg("/usr/lib/systemd/system/.")
        .arg(&sys));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    verify(
        &root,
        &["responses-api-proxy.service", "responses-api-proxy.socket"],
    )
    .unwrap_or_else(|e| panic!("installed units do not verify:\n{e}"));

    // Control: the same check catches a broken unit (a misspelled hardening key, then a missing
    // binary), so the pass above means something.
    let unit = sys.join("responses-api-proxy.service");
    let good = std::fs::read_to_string(&unit).unwrap();
    // The socket's directory belongs to the socket unit: a service RuntimeDirectory= for it
    // would delete the listening socket whenever the service stops (review F7).
    let socket = std::fs::read_to_string(sys.join("responses-api-proxy.socket")).unwrap();
    assert!(
        socket.contains("ListenStream=/run/responses-api-proxy/")
            && !good
                .lines()
                .any(|l| l.trim_start().starts_with("RuntimeDirectory")),
        "the service must not own /run/responses-api-proxy:\n{good}"
    );
    std::fs::write(&unit, good.replace("ProtectSystem=", "ProtectSystm=")).unwrap();
    let e = verify(&root, &["responses-api-proxy.service"]).unwrap_err();
    assert!(e.contains("ProtectSystm"), "{e}");
    std::fs::write(&unit, &good).unwrap();
    std::fs::remove_file(root.join("usr/bin/responses-api-proxy")).unwrap();
    let e = verify(&root, &["responses-api-proxy.service"]).unwrap_err();
    assert!(e.contains("not executable"), "{e}");

    // The sysusers.d entry creates the service account and the users' group.
    let o = run(Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.display()))
        .arg(root.join("usr/lib/sysusers.d/responses-api-proxy.conf")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("responses-api-proxy:"))
        .unwrap_or_else(|| panic!("no account in {passwd}"));
    assert!(line.ends_with(":/:/usr/sbin/nologin"), "{line}");
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(
        group.lines().any(|l| l.starts_with("codex-users:")),
        "{group}"
    );
}
