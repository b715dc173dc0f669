//! Golden tests: the generated policy and parameters for each policy kind, from fixed fake paths,
//! compared with reviewed files in `tests/golden/`. `UPDATE_GOLDEN=1 cargo test -p sandbox-macos
//! --test golden` rewrites them; review the diff before committing.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

use std::path::{Path, PathBuf};

use sandbox_macos::{HostPaths, SeatbeltPolicy, generate, syntax};
use sandbox_policy::{EffectivePolicy, PolicyKind, ReadOnlySubpath, WritableRoot};

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn root(path: &str, subs: &[(&str, bool)]) -> WritableRoot {
    WritableRoot {
        root: p(path),
        read_only_subpaths: subs
            .iter()
            .map(|(s, exists)| ReadOnlySubpath {
                path: p(s),
                exists: *exists,
                replaceable_via: None,
            })
            .collect(),
    }
}

fn deny_read() -> Vec<PathBuf> {
    vec![
        p("/Users/alice/.codex/auth.json"),
        p("/Users/alice/.ssh"),
        p("/Users/alice/.gnupg"),
        p("/Users/alice/.aws"),
        p("/Users/alice/.config/gcloud"),
        // A configured path under /etc: must arrive as /private/etc.
        p("/etc/codex/secret.toml"),
    ]
}

fn workspace_roots() -> Vec<WritableRoot> {
    vec![
        root(
            "/Users/alice/proj",
            &[
                ("/Users/alice/proj/.git", true),
                ("/Users/alice/proj/.codex", false),
            ],
        ),
        // A linked worktree: .git is a file pointing at a gitdir outside the root.
        root(
            "/Users/alice/wt",
            &[
                ("/Users/alice/wt/.git", true),
                ("/Users/alice/repo/.git/worktrees/wt", true),
                ("/Users/alice/wt/.codex", false),
            ],
        ),
        root("/tmp", &[("/tmp/.git", false), ("/tmp/.codex", false)]),
        root(
            "/var/folders/zz/abc/T",
            &[
                ("/var/folders/zz/abc/T/.git", false),
                ("/var/folders/zz/abc/T/.codex", false),
            ],
        ),
    ]
}

fn case(name: &str) -> (EffectivePolicy, HostPaths) {
    let cache = HostPaths {
        darwin_user_cache_dir: Some(p("/var/folders/zz/abc/C")),
    };
    match name {
        "read-only" => (
            EffectivePolicy {
                kind: PolicyKind::ReadOnly,
                cwd: p("/Users/alice/proj"),
                writable_roots: vec![],
                deny_read: deny_read(),
                network: false,
                deny_read_unsearched: Vec::new(),
                sockets_through_links: Vec::new(),
                temp_roots: Vec::new(),
                writable_home: None,
            },
            cache,
        ),
        "workspace-write" => (
            EffectivePolicy {
                kind: PolicyKind::WorkspaceWrite,
                cwd: p("/Users/alice/proj"),
                writable_roots: workspace_roots(),
                deny_read: deny_read(),
                network: false,
                deny_read_unsearched: Vec::new(),
                sockets_through_links: Vec::new(),
                temp_roots: Vec::new(),
                writable_home: None,
            },
            cache,
        ),
        "workspace-write-network" => (
            EffectivePolicy {
                kind: PolicyKind::WorkspaceWrite,
                cwd: p("/Users/alice/proj"),
                writable_roots: workspace_roots(),
                deny_read: deny_read(),
                network: true,
                deny_read_unsearched: Vec::new(),
                sockets_through_links: Vec::new(),
                temp_roots: Vec::new(),
                writable_home: None,
            },
            cache,
        ),
        // The cwd under /tmp: a root nested in another root, and a deny-read path inside a root.
        "workspace-write-nested" => (
            EffectivePolicy {
                kind: PolicyKind::WorkspaceWrite,
                cwd: p("/private/tmp/proj"),
                writable_roots: vec![
                    root(
                        "/private/tmp/proj",
                        &[
                            ("/private/tmp/proj/.git", true),
                            ("/private/tmp/proj/.codex", true),
                        ],
                    ),
                    root("/tmp", &[("/tmp/.git", false), ("/tmp/.codex", false)]),
                ],
                deny_read: vec![p("/tmp/proj/secrets/key.pem")],
                network: false,
                deny_read_unsearched: Vec::new(),
                sockets_through_links: Vec::new(),
                temp_roots: Vec::new(),
                writable_home: None,
            },
            HostPaths::default(),
        ),
        "danger-full-access" => (
            EffectivePolicy {
                kind: PolicyKind::DangerFullAccess,
                cwd: p("/Users/alice/proj"),
                writable_roots: vec![],
                deny_read: vec![],
                network: true,
                deny_read_unsearched: Vec::new(),
                sockets_through_links: Vec::new(),
                temp_roots: Vec::new(),
                writable_home: None,
            },
            cache,
        ),
        other => panic!("unknown case {other}"),
    }
}

const CASES: &[&str] = &[
    "read-only",
    "workspace-write",
    "workspace-write-network",
    "workspace-write-nested",
    "danger-full-access",
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn compare(file: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(file, actual).unwrap();
        return None;
    }
    match std::fs::read_to_string(file) {
        Ok(expected) if expected == actual => None,
        Ok(expected) => {
            let line = expected
                .lines()
                .zip(actual.lines())
                .position(|(a, b)| a != b);
            Some(format!(
                "{} differs (first differing line: {:?}); run with UPDATE_GOLDEN=1 and review the diff",
                file.display(),
                line.map(|l| l + 1)
            ))
        }
        Err(e) => Some(format!(
            "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
            file.display()
        )),
    }
}

#[test]
fn generated_policies_match_golden_files() {
    let mut failures = Vec::new();
    for name in CASES {
        let (policy, host) = case(name);
        let sb: SeatbeltPolicy = generate(&policy, &host).unwrap();
        syntax::check(sb.text()).unwrap();
        failures.extend(compare(
            &golden_dir().join(format!("{name}.sbpl")),
            sb.text(),
        ));
        failures.extend(compare(
            &golden_dir().join(format!("{name}.params")),
            &sb.params_text(),
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn golden_parameters_are_canonical_for_macos() {
    let (policy, host) = case("workspace-write-network");
    let sb = generate(&policy, &host).unwrap();
    let params = sb.params_text();
    for line in params.lines() {
        let (_, value) = line.split_once('=').unwrap();
        for alias in ["/tmp", "/var", "/etc"] {
            assert!(
                !(value == alias || value.starts_with(&format!("{alias}/"))),
                "{line}"
            );
        }
    }
    assert!(
        params.contains("WRITABLE_ROOT_2=/private/tmp\n"),
        "{params}"
    );
    assert!(
        params.contains("WRITABLE_ROOT_3=/private/var/folders/zz/abc/T\n"),
        "{params}"
    );
    assert!(
        params.contains("DENY_READ_5=/private/etc/codex/secret.toml\n"),
        "{params}"
    );
    assert!(
        params.contains("DARWIN_USER_CACHE_DIR=/private/var/folders/zz/abc/C\n"),
        "{params}"
    );
}

#[test]
fn nested_roots_and_mapping_collapse_duplicates() {
    // `/tmp` and `/private/tmp` are the same directory on macOS: one root, carve-outs merged.
    let policy = EffectivePolicy {
        kind: PolicyKind::WorkspaceWrite,
        cwd: p("/tmp"),
        writable_roots: vec![
            root("/tmp", &[("/tmp/.git", true)]),
            root("/private/tmp", &[("/private/tmp/.codex", false)]),
        ],
        deny_read: vec![p("/Users/a/.ssh"), p("/Users/a/.ssh/")],
        network: false,
        deny_read_unsearched: Vec::new(),
        sockets_through_links: Vec::new(),
        temp_roots: Vec::new(),
        writable_home: None,
    };
    let sb = generate(&policy, &HostPaths::default()).unwrap();
    assert_eq!(
        sb.params_text(),
        "WRITABLE_ROOT_0=/private/tmp\nWRITABLE_ROOT_0_RO_0=/private/tmp/.git\n\
         WRITABLE_ROOT_0_RO_1=/private/tmp/.codex\nPROTECTED_PARENT_0=/private/tmp\nDENY_READ_0=/Users/a/.ssh\n"
    );
}
