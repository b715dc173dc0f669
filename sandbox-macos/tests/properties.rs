//! Property tests over random policies whose path components are full of `"`, `)`, `(`, `#"`,
//! `;`, `\` and newlines.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

mod model;

const TAG: char = '\u{2603}';

use std::ffi::OsString;
use std::path::PathBuf;

use proptest::prelude::*;
use sandbox_macos::syntax::{self, Sexp};
use sandbox_macos::{HostPaths, SeatbeltPolicy, generate};
use sandbox_policy::{EffectivePolicy, PolicyKind, ReadOnlySubpath, WritableRoot};

/// A policy's shape with component names still abstract.
#[derive(Debug, Clone)]
struct Shape {
    kind: PolicyKind,
    /// (root components, carve-out names below it)
    roots: Vec<(Vec<String>, Vec<String>)>,
    deny: Vec<Vec<String>>,
    network: bool,
    cache_dir: Option<Vec<String>>,
}

fn component() -> impl Strategy<Value = String> {
    // Hostile characters plus a few letters; `#"` and `")` come up often with this alphabet.
    "[ab\"()#;\\\\\n ]{1,6}"
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop_oneof![
            Just(PolicyKind::ReadOnly),
            Just(PolicyKind::WorkspaceWrite),
            Just(PolicyKind::WorkspaceWrite),
            Just(PolicyKind::DangerFullAccess)
        ],
        prop::collection::vec(
            (
                prop::collection::vec(component(), 1..3),
                prop::collection::vec(component(), 0..3),
            ),
            0..4,
        ),
        prop::collection::vec(prop::collection::vec(component(), 1..4), 0..4),
        any::<bool>(),
        prop::option::of(prop::collection::vec(component(), 1..3)),
    )
        .prop_map(|(kind, roots, deny, network, cache_dir)| Shape {
            kind,
            roots,
            deny,
            network,
            cache_dir,
        })
}

/// Build the policy, each component prefixed by `tag` (a character the policy text never uses),
/// so two tags give two policies of the same shape with different paths.
fn build(s: &Shape, tag: char) -> (EffectivePolicy, HostPaths) {
    let path = |comps: &[String]| -> PathBuf {
        let mut p = PathBuf::from("/");
        for c in comps {
            p.push(format!("{tag}{c}"));
        }
        p
    };
    let writable_roots = if s.kind == PolicyKind::WorkspaceWrite {
        s.roots
            .iter()
            .map(|(r, subs)| {
                let root = path(r);
                WritableRoot {
                    read_only_subpaths: subs
                        .iter()
                        .map(|n| ReadOnlySubpath {
                            path: root.join(format!("{tag}{n}")),
                            exists: false,
                            replaceable_via: None,
                        })
                        .collect(),
                    root,
                }
            })
            .collect()
    } else {
        vec![]
    };
    let deny_read = if s.kind == PolicyKind::DangerFullAccess {
        vec![]
    } else {
        s.deny.iter().map(|d| path(d)).collect()
    };
    let policy = EffectivePolicy {
        kind: s.kind,
        cwd: PathBuf::from("/"),
        writable_roots,
        deny_read,
        network: s.network || s.kind == PolicyKind::DangerFullAccess,
        deny_read_unsearched: Vec::new(),
        sockets_through_links: Vec::new(),
        temp_roots: Vec::new(),
        writable_home: None,
    };
    (
        policy,
        HostPaths {
            darwin_user_cache_dir: s.cache_dir.as_ref().map(|c| path(c)),
        },
    )
}

fn gen_policy(s: &Shape, tag: char) -> SeatbeltPolicy {
    let (p, h) = build(s, tag);
    generate(&p, &h).unwrap()
}

/// Index of each top-level form, with its head, ops and param keys.
fn forms(text: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
    fn keys(e: &Sexp, out: &mut Vec<String>) {
        if let Sexp::List(items, _) = e {
            if e.head() == Some("param") {
                if let Some(Sexp::Str(k, _)) = items.get(1) {
                    out.push(k.clone());
                }
            }
            for i in items {
                keys(i, out);
            }
        }
    }
    syntax::parse(text)
        .unwrap()
        .iter()
        .skip(1)
        .map(|f| {
            let Sexp::List(items, _) = f else { panic!() };
            let ops = items[1..]
                .iter()
                .filter_map(|i| {
                    if let Sexp::Atom(a, _) = i {
                        Some(a.clone())
                    } else {
                        None
                    }
                })
                .collect();
            let mut k = Vec::new();
            keys(f, &mut k);
            (f.head().unwrap().to_string(), ops, k)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn text_depends_only_on_the_shape(s in shape()) {
        // Same shape, different paths: identical policy text. No path can change its meaning.
        let a = gen_policy(&s, '\u{2603}');
        let b = gen_policy(&s, '\u{2604}');
        prop_assert_eq!(a.text(), b.text());
        prop_assert_eq!(a.params().len(), b.params().len());
    }

    #[test]
    fn no_parameter_value_appears_in_the_text(s in shape()) {
        let sb = gen_policy(&s, '\u{2603}');
        prop_assert!(!sb.text().contains(TAG), "tag in text");
        for p in sb.params() {
            let v = p.value.to_string_lossy();
            prop_assert!(!sb.text().contains(v.as_ref()), "{} appears in the text", v);
        }
    }

    #[test]
    fn policy_parses_and_params_pass_verbatim(s in shape()) {
        let sb = gen_policy(&s, '\u{2603}');
        let checked = syntax::check(sb.text()).unwrap();
        let supplied: std::collections::BTreeSet<String> = sb.params().iter().map(|p| p.key.clone()).collect();
        prop_assert_eq!(checked.params, supplied);
        let cmd = vec![OsString::from("echo"), OsString::from("-D\")")];
        let args = sb.sandbox_exec_args(&cmd).unwrap();
        prop_assert_eq!(&args[0], "-p");
        prop_assert_eq!(args[1].to_str().unwrap(), sb.text());
        for (i, p) in sb.params().iter().enumerate() {
            let mut want = format!("-D{}=", p.key).into_bytes();
            want.extend_from_slice(p.value.as_os_str().as_encoded_bytes());
            prop_assert_eq!(args[2 + i].as_encoded_bytes(), &want[..]);
        }
        let n = 2 + sb.params().len();
        prop_assert_eq!(&args[n], "--");
        prop_assert_eq!(&args[n + 1..], &cmd[..]);
    }

    #[test]
    fn carve_outs_are_require_not_under_their_root(s in shape()) {
        let sb = gen_policy(&s, '\u{2603}');
        let forms = syntax::parse(sb.text()).unwrap();
        let allow_write: Vec<&Sexp> = forms.iter().filter(|f| {
            f.head() == Some("allow") && matches!(f, Sexp::List(items, _) if matches!(&items[1], Sexp::Atom(a, _) if a == "file-write*"))
        }).collect();
        let value = |k: &str| sb.params().iter().find(|p| p.key == k).unwrap().value.clone();
        if let Some(Sexp::List(items, _)) = allow_write.first() {
            for entry in &items[2..] {
                if entry.head() != Some("require-all") { continue; }
                let Sexp::List(parts, _) = entry else { unreachable!() };
                let root_key = param_of(&parts[1], "subpath").unwrap();
                let root = value(&root_key);
                prop_assert!(parts.len() > 2);
                for carve in &parts[2..] {
                    prop_assert_eq!(carve.head(), Some("require-not"));
                    let Sexp::List(inner, _) = carve else { unreachable!() };
                    let key = param_of(&inner[1], "subpath").unwrap();
                    prop_assert!(key.starts_with(&format!("{root_key}_RO_")), "{} not under {}", key, root_key);
                    prop_assert!(value(&key).starts_with(&root), "carve-out outside its root in this shape");
                }
            }
        }
    }

    #[test]
    fn denies_come_after_the_allows_they_narrow(s in shape()) {
        let sb = gen_policy(&s, '\u{2603}');
        let f = forms(sb.text());
        let last_allow = |prefix: &str| f.iter().rposition(|(h, ops, _)| h == "allow" && ops.iter().any(|o| o.starts_with(prefix) || o == "default"));
        for (i, (head, ops, keys)) in f.iter().enumerate() {
            if head != "deny" || ops.iter().any(|o| o == "default") { continue; }
            for op in ops {
                let family = if op.starts_with("file-read") { "file-read" } else { "file-write" };
                if let Some(last) = last_allow(family) {
                    prop_assert!(i > last, "deny {} at {} precedes allow at {}", op, i, last);
                }
            }
            if ops.iter().any(|o| o == "file-read*") {
                prop_assert!(keys.iter().all(|k| k.starts_with("DENY_READ_")));
            }
        }
        // Every deny-read path has its deny file-read* rule.
        for p in sb.params().iter().filter(|p| p.key.starts_with("DENY_READ_")) {
            prop_assert!(f.iter().any(|(h, ops, k)| h == "deny" && ops.iter().any(|o| o == "file-read*") && k.contains(&p.key)));
        }
        let denied = build(&s, '\u{2603}').0.deny_read;
        let model = model::Model::new(&sb);
        for d in denied {
            let target = sandbox_macos::paths::seatbelt_path("deny_read", &d).unwrap().join("x");
            prop_assert_eq!(model.decide("file-read-data", &target), model::Decision::Deny);
        }
    }
}

fn param_of(e: &Sexp, filter: &str) -> Option<String> {
    let Sexp::List(items, _) = e else { return None };
    if e.head() != Some(filter) {
        return None;
    }
    let Sexp::List(p, _) = &items[1] else {
        return None;
    };
    match &p[1] {
        Sexp::Str(k, _) => Some(k.clone()),
        _ => None,
    }
}

fn golden_text() -> String {
    let (p, h) = build(
        &Shape {
            kind: PolicyKind::WorkspaceWrite,
            roots: vec![(vec!["w".into()], vec![".git".into()])],
            deny: vec![vec!["h".into(), ".ssh".into()]],
            network: true,
            cache_dir: Some(vec!["c".into()]),
        },
        'x',
    );
    generate(&p, &h).unwrap().text().to_string()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn checker_rejects_any_single_dropped_paren(pick in any::<prop::sample::Index>()) {
        // Only parentheses outside comments and strings are structural.
        let text = golden_text();
        let mut positions = Vec::new();
        for (start, line) in text.split_inclusive('\n').scan(0usize, |off, l| { let s = *off; *off += l.len(); Some((s, l)) }) {
            let mut in_str = false;
            for (i, c) in line.char_indices() {
                match c {
                    '"' => in_str = !in_str,
                    ';' if !in_str => break,
                    '(' | ')' if !in_str => positions.push(start + i),
                    _ => {}
                }
            }
        }
        let at = positions[pick.index(positions.len())];
        let mut broken = text.clone();
        broken.remove(at);
        prop_assert!(syntax::check(&broken).is_err(), "dropping the paren at byte {} was accepted", at);
    }

    #[test]
    fn checker_rejects_a_misspelt_operation_or_filter(pick in any::<prop::sample::Index>(), ch in "[a-z]") {
        let text = golden_text();
        let forms = syntax::parse(&text).unwrap();
        // Every atom in head position of a rule (operations) or of a filter list.
        fn names(e: &Sexp, out: &mut Vec<(usize, usize, String)>, in_rule: bool) {
            if let Sexp::List(items, _) = e {
                for (i, it) in items.iter().enumerate() {
                    match it {
                        Sexp::Atom(a, p) if (i == 0 && !matches!(a.as_str(), "allow" | "deny" | "version")) || (in_rule && i > 0) => {
                            out.push((p.line, p.column, a.clone()));
                        }
                        Sexp::List(..) => names(it, out, false),
                        _ => {}
                    }
                }
            }
        }
        let mut atoms = Vec::new();
        for f in forms.iter().skip(1) {
            names(f, &mut atoms, true);
        }
        let (line, col, name) = &atoms[pick.index(atoms.len())];
        let bad = format!("{name}{ch}");
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let l = &mut lines[line - 1];
        let byte = l.char_indices().nth(col - 1).unwrap().0;
        l.replace_range(byte..byte + name.len(), &bad);
        let broken = lines.join("\n");
        let known = sandbox_macos::syntax::OPERATIONS.iter().any(|(n, _)| *n == bad);
        prop_assume!(!known && !matches!(bad.as_str(), "subpath" | "literal" | "regex" | "target"));
        prop_assert!(syntax::check(&broken).is_err(), "{} accepted", bad);
    }
}
