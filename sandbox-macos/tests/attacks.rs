//! Attacks on the generated policy's file rules, decided by the Seatbelt model in `model/`
//! (last matching rule wins). Each denial has a control that the same action is allowed without
//! the protection, and each protection is shown to matter by removing its rules from the text.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

mod model;

use std::path::{Path, PathBuf};

use model::{Decision, Model};
use sandbox_macos::{GenOptions, HostPaths, generate, generate_with};
use sandbox_policy::{EffectivePolicy, PolicyKind, ReadOnlySubpath, WritableRoot};

fn root(path: &str, subs: &[&str]) -> WritableRoot {
    WritableRoot {
        root: PathBuf::from(path),
        read_only_subpaths: subs
            .iter()
            .map(|s| ReadOnlySubpath {
                path: PathBuf::from(s),
                exists: true,
                replaceable_via: None,
            })
            .collect(),
    }
}

fn nested() -> EffectivePolicy {
    EffectivePolicy {
        kind: PolicyKind::WorkspaceWrite,
        cwd: PathBuf::from("/private/tmp/proj"),
        writable_roots: vec![
            root(
                "/private/tmp/proj",
                &["/private/tmp/proj/.git", "/private/tmp/proj/.codex"],
            ),
            root("/tmp", &["/tmp/.git", "/tmp/.codex"]),
        ],
        deny_read: vec![
            PathBuf::from("/Users/a/.ssh"),
            PathBuf::from("/tmp/proj/keys/id.pem"),
        ],
        network: false,
        deny_read_unsearched: Vec::new(),
        sockets_through_links: Vec::new(),
        temp_roots: Vec::new(),
        writable_home: None,
    }
}

fn model_without(policy: &sandbox_macos::SeatbeltPolicy, section: &str) -> Model {
    // Drop the section whose header comment contains `section` (up to the next blank line).
    let mut out = String::new();
    let mut skipping = false;
    for line in policy.text().lines() {
        if line.starts_with("; ----") {
            skipping = line.contains(section);
        }
        if line.is_empty() {
            skipping = false;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert_ne!(out, policy.text(), "section {section} not found");
    Model::from_text(
        &out,
        policy
            .params()
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect(),
    )
}

const W: &str = "file-write-data";
const R: &str = "file-read-data";
const UNLINK: &str = "file-write-unlink";

#[test]
fn writes_inside_roots_only_and_never_into_git() {
    let sb = generate(&nested(), &HostPaths::default()).unwrap();
    let m = Model::new(&sb);
    // Controls: the workspace and /tmp are writable.
    assert_eq!(
        m.decide(W, Path::new("/private/tmp/proj/src/main.rs")),
        Decision::Allow
    );
    assert_eq!(
        m.decide(W, Path::new("/private/tmp/other")),
        Decision::Allow
    );
    // Outside every root: denied by default.
    assert_eq!(m.decide(W, Path::new("/Users/a/.bashrc")), Decision::Deny);
    assert_eq!(m.decide(W, Path::new("/private/etc/hosts")), Decision::Deny);
    // .git and .codex of the workspace: denied, even though /tmp (an outer root) allows them.
    assert_eq!(
        m.decide(W, Path::new("/private/tmp/proj/.git/hooks/pre-commit")),
        Decision::Deny
    );
    assert_eq!(
        m.decide(W, Path::new("/private/tmp/proj/.codex/config.toml")),
        Decision::Deny
    );
    // A .git that does not exist yet is protected too (Seatbelt matches paths, not inodes).
    assert_eq!(
        m.decide(W, Path::new("/private/tmp/.git/config")),
        Decision::Deny
    );
}

#[test]
fn without_the_trailing_carve_out_denies_an_outer_root_reopens_git() {
    // The protection matters: codex's shape alone (require-not under each root) lets the outer
    // root /tmp write the inner root's .git. (The protected-names rule would also deny it: left
    // out here to show the carve-out rule on its own.)
    let sb = generate_with(
        &nested(),
        &HostPaths::default(),
        &GenOptions {
            allow_git_writes: true,
        },
    )
    .unwrap();
    let m = model_without(&sb, "read-only carve-outs");
    assert_eq!(
        m.decide(W, Path::new("/private/tmp/proj/.git/hooks/pre-commit")),
        Decision::Allow
    );
}

#[test]
fn parents_of_protected_paths_cannot_be_renamed_away() {
    let sb = generate(&nested(), &HostPaths::default()).unwrap();
    let m = Model::new(&sb);
    // Renaming the workspace (under the /tmp root) would move its .git away from the rule.
    assert_eq!(
        m.decide(UNLINK, Path::new("/private/tmp/proj")),
        Decision::Deny
    );
    // Renaming the directory holding a deny-read file would move the file out from under it.
    assert_eq!(
        m.decide(UNLINK, Path::new("/private/tmp/proj/keys")),
        Decision::Deny
    );
    // Control: other files and directories in the roots can be removed and renamed.
    assert_eq!(
        m.decide(UNLINK, Path::new("/private/tmp/proj/src")),
        Decision::Allow
    );
    assert_eq!(
        m.decide(UNLINK, Path::new("/private/tmp/proj/keys/other.txt")),
        Decision::Allow
    );
    let without = model_without(&sb, "parents of protected paths");
    assert_eq!(
        without.decide(UNLINK, Path::new("/private/tmp/proj/keys")),
        Decision::Allow
    );
}

#[test]
fn credentials_are_unreadable_and_unreplaceable() {
    for kind in [PolicyKind::ReadOnly, PolicyKind::WorkspaceWrite] {
        let mut policy = nested();
        policy.kind = kind;
        if kind == PolicyKind::ReadOnly {
            policy.writable_roots.clear();
        }
        let sb = generate(&policy, &HostPaths::default()).unwrap();
        let m = Model::new(&sb);
        // Control: everything else is readable.
        assert_eq!(
            m.decide(R, Path::new("/Users/a/notes.txt")),
            Decision::Allow
        );
        assert_eq!(
            m.decide(R, Path::new("/Users/a/.sshx")),
            Decision::Allow,
            "subpath is per component"
        );
        assert_eq!(
            m.decide(R, Path::new("/Users/a/.ssh/id_ed25519")),
            Decision::Deny
        );
        assert_eq!(
            m.decide("file-read-metadata", Path::new("/Users/a/.ssh")),
            Decision::Deny
        );
        assert_eq!(
            m.decide(R, Path::new("/private/tmp/proj/keys/id.pem")),
            Decision::Deny
        );
        // Inside a writable root, a credential can be neither overwritten nor removed.
        assert_eq!(
            m.decide(W, Path::new("/private/tmp/proj/keys/id.pem")),
            Decision::Deny
        );
        assert_eq!(
            m.decide(UNLINK, Path::new("/private/tmp/proj/keys/id.pem")),
            Decision::Deny
        );
        let without = model_without(&sb, "deny-read list");
        assert_eq!(
            without.decide(R, Path::new("/Users/a/.ssh/id_ed25519")),
            Decision::Allow
        );
    }
}

#[test]
fn read_only_writes_nothing_but_dev_null() {
    let mut policy = nested();
    policy.kind = PolicyKind::ReadOnly;
    policy.writable_roots.clear();
    let sb = generate(&policy, &HostPaths::default()).unwrap();
    let m = Model::new(&sb);
    assert_eq!(m.decide(W, Path::new("/private/tmp/x")), Decision::Deny);
    assert_eq!(
        m.decide("file-write-create", Path::new("/private/tmp/proj/new")),
        Decision::Deny
    );
    assert!(
        sb.text()
            .contains("(allow file-write-data (require-all (literal \"/dev/null\")")
    );
    assert!(
        !sb.text().contains("network-outbound"),
        "no network in read-only"
    );
}

#[test]
fn danger_full_access_allows_everything() {
    let policy = EffectivePolicy {
        kind: PolicyKind::DangerFullAccess,
        cwd: PathBuf::from("/"),
        writable_roots: vec![],
        deny_read: vec![],
        network: true,
        deny_read_unsearched: Vec::new(),
        sockets_through_links: Vec::new(),
        temp_roots: Vec::new(),
        writable_home: None,
    };
    let sb = generate(&policy, &HostPaths::default()).unwrap();
    let m = Model::new(&sb);
    assert_eq!(m.decide(W, Path::new("/Users/a/.ssh/id")), Decision::Allow);
    assert!(sb.params().is_empty());
}

#[test]
fn a_replaceable_gitdir_is_refused_not_protected_by_path() {
    // review finding F1: a path rule on the gitdir protects the old place once the command has
    // re-pointed the symlink on the way to it; the generator refuses (the CLI exits 201)
    let mut p = nested();
    p.writable_roots[0]
        .read_only_subpaths
        .push(ReadOnlySubpath {
            path: PathBuf::from("/private/tmp/proj/link/repo.git"),
            exists: true,
            replaceable_via: Some(PathBuf::from("/private/tmp/proj/link")),
        });
    let err = generate(&p, &HostPaths::default()).unwrap_err();
    assert!(err.is_refusal(), "{err}");
    assert!(
        err.to_string()
            .contains("/private/tmp/proj/link/repo.git: /private/tmp/proj/link can be swapped"),
        "{err}"
    );
    // control: the same entry without the hazard is protected (a deny rule, no error)
    p.writable_roots[0]
        .read_only_subpaths
        .last_mut()
        .unwrap()
        .replaceable_via = None;
    let policy = generate(&p, &HostPaths::default()).unwrap();
    assert!(
        policy
            .params()
            .iter()
            .any(|x| x.value == Path::new("/private/tmp/proj/link/repo.git")),
        "{}",
        policy.text()
    );
}

#[test]
fn protected_names_cannot_be_created_or_written_anywhere_in_any_case() {
    let sb = generate(&nested(), &HostPaths::default()).unwrap();
    let m = Model::new(&sb);
    for p in [
        "/private/tmp/proj/lib/sub/.git/config",
        "/private/tmp/proj/lib/sub/.git",
        "/private/tmp/proj/deep/er/.GIT",
        "/private/tmp/proj/x/.Codex/config.toml",
        "/private/tmp/proj/x/.agents/skills/s.md",
        "/private/tmp/other/.git/hooks/post-checkout",
        "/private/tmp/proj/remote.git/hooks/post-receive",
        "/private/tmp/proj/d/HEAD",
        "/private/tmp/proj/sub/.hg/hgrc",
        "/private/tmp/proj/.sl/config",
        "/private/tmp/.Hg/hgrc",
        "/private/tmp/proj/.jj/repo/config.toml",
        "/private/tmp/proj/.claude/settings.json",
        // outside review r79 F1: a Fossil repository and the side files of Fossil databases
        "/private/tmp/proj/fos/proj.fossil",
        "/private/tmp/proj/fos/Proj.FOSSIL-journal",
        "/private/tmp/proj/fos/.fslckout-journal",
        "/private/tmp/proj/fos/_FOSSIL_-wal",
        // outside review r82 F1: a CVS repository's administrative files (commitinfo runs at
        // every commit)
        "/private/tmp/proj/cvsroot/CVSROOT/commitinfo",
        "/private/tmp/proj/CVS/Root",
        // outside review r85: a borrowed object store's objects, packs and alternates, and a
        // CVS module's master files, wherever they lie
        "/private/tmp/proj/objstore/9e/5adb72ac5f76b9918e4854618fd19a0b14ac34",
        "/private/tmp/proj/objstore/pack/pack-9e5adb72ac5f76b9918e4854618fd19a0b14ac34.pack",
        "/private/tmp/proj/objstore/info/alternates",
        "/private/tmp/proj/cvsmod/proj/build.sh,v",
    ] {
        assert_eq!(m.decide(W, Path::new(p)), Decision::Deny, "{p}");
    }
    // outside review r90 A-F1: no symbolic link named like an object store's directory (a link
    // named `pack` to a directory filled under another name); a directory or file may be made
    for p in [
        "/private/tmp/proj/objstore/pack",
        "/private/tmp/proj/objstore/info",
        "/private/tmp/proj/objstore/9e",
        "/private/tmp/proj/objstore/info/commit-graphs",
    ] {
        let path = Path::new(p);
        assert_eq!(m.decide_as(W, path, Some("SYMLINK")), Decision::Deny, "{p}");
        assert_eq!(
            m.decide_as(W, path, Some("DIRECTORY")),
            Decision::Allow,
            "{p}"
        );
    }
    for p in [
        "/private/tmp/proj/packs",
        "/private/tmp/proj/9e5",
        "/private/tmp/proj/infos",
    ] {
        assert_eq!(
            m.decide_as(W, Path::new(p), Some("SYMLINK")),
            Decision::Allow,
            "{p}"
        );
    }
    // controls: names that only start like a protected one, and the same paths when the
    // front door passes --allow-git-writes
    for p in [
        "/private/tmp/proj/.gitignore",
        "/private/tmp/proj/.github/workflows/ci.yml",
        "/private/tmp/proj/x/git/config",
        "/private/tmp/proj/x/.agentsrc",
        "/private/tmp/proj/.hgignore",
        "/private/tmp/proj/.claude.md",
        "/private/tmp/proj/HEADER.md",
        "/private/tmp/proj/digit/x",
        "/private/tmp/proj/fos/proj.fossil.bak",
        "/private/tmp/proj/fos/notes-journal",
        "/private/tmp/proj/cvsrootx/commitinfo",
        "/private/tmp/proj/cvsroot/commitinfo",
        "/private/tmp/proj/cache/9e/5adb72ac5f76b9918e4854618fd19a0b14ac3",
        "/private/tmp/proj/pack/index.js",
        "/private/tmp/proj/docs/a,v.txt",
    ] {
        assert_eq!(m.decide(W, Path::new(p)), Decision::Allow, "{p}");
    }
    let open = generate_with(
        &nested(),
        &HostPaths::default(),
        &GenOptions {
            allow_git_writes: true,
        },
    )
    .unwrap();
    let m = Model::new(&open);
    assert_eq!(
        m.decide(W, Path::new("/private/tmp/proj/lib/sub/.git/config")),
        Decision::Allow
    );
    // the roots' own carve-outs stay read-only with the hatch open
    assert_eq!(
        m.decide(W, Path::new("/private/tmp/proj/.git/hooks/pre-commit")),
        Decision::Deny
    );
}
