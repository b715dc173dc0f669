//! A test-only model of how Seatbelt decides file operations, for the subset of SBPL this crate
//! generates: the last matching rule wins; `subpath` matches the path and everything below it;
//! `literal` matches exactly; `file-write*` matches every `file-write-...` operation. It is a
//! model of documented Seatbelt behaviour, not Seatbelt: it lets the tests attack the *shape* of
//! the generated policy on Linux (which rule wins for which path); the kernel is not involved.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sandbox_macos::SeatbeltPolicy;
use sandbox_macos::syntax::{Sexp, parse};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

pub struct Model {
    rules: Vec<(Decision, Vec<String>, Vec<Sexp>)>,
    params: HashMap<String, PathBuf>,
}

impl Model {
    pub fn new(policy: &SeatbeltPolicy) -> Model {
        Model::from_text(
            policy.text(),
            policy
                .params()
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect(),
        )
    }

    pub fn from_text(text: &str, params: HashMap<String, PathBuf>) -> Model {
        let forms = parse(text).unwrap();
        let mut rules = Vec::new();
        for f in forms.iter().skip(1) {
            let Sexp::List(items, _) = f else {
                panic!("not a rule")
            };
            let decision = match f.head() {
                Some("allow") => Decision::Allow,
                Some("deny") => Decision::Deny,
                other => panic!("{other:?}"),
            };
            let mut ops = Vec::new();
            let mut filters = Vec::new();
            for i in &items[1..] {
                match i {
                    Sexp::Atom(a, _) => ops.push(a.clone()),
                    other => filters.push(other.clone()),
                }
            }
            rules.push((decision, ops, filters));
        }
        Model { rules, params }
    }

    /// The decision for `op` (e.g. `file-write-data`) on `path` (already in Seatbelt's form).
    pub fn decide(&self, op: &str, path: &Path) -> Decision {
        self.decide_as(op, path, None)
    }

    /// [`Model::decide`] for a vnode of type `vnode` (`SYMLINK`, `DIRECTORY`, ...): the rules
    /// with a `vnode-type` filter match only when it is given and the same.
    pub fn decide_as(&self, op: &str, path: &Path, vnode: Option<&str>) -> Decision {
        let mut d = Decision::Deny;
        for (decision, ops, filters) in &self.rules {
            let op_matches = ops.iter().any(|o| {
                o == "default"
                    || o == op
                    || (o.ends_with('*') && op.starts_with(o.trim_end_matches('*')))
            });
            if op_matches
                && (filters.is_empty() || filters.iter().any(|f| self.matches(f, path, vnode)))
            {
                d = *decision;
            }
        }
        d
    }

    fn path_arg(&self, a: &Sexp) -> PathBuf {
        match a {
            Sexp::Str(s, _) => PathBuf::from(s),
            Sexp::List(items, _) => match &items[1] {
                Sexp::Str(k, _) => self
                    .params
                    .get(k)
                    .unwrap_or_else(|| panic!("param {k} not supplied"))
                    .clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    fn matches(&self, f: &Sexp, path: &Path, vnode: Option<&str>) -> bool {
        let Sexp::List(items, _) = f else {
            panic!("filter {f:?}")
        };
        let args = &items[1..];
        match f.head().unwrap() {
            "require-all" => args.iter().all(|a| self.matches(a, path, vnode)),
            "require-any" => args.iter().any(|a| self.matches(a, path, vnode)),
            "require-not" => !self.matches(&args[0], path, vnode),
            "subpath" => path.starts_with(self.path_arg(&args[0])),
            "literal" => path == self.path_arg(&args[0]),
            "regex" => match &args[0] {
                Sexp::Regex(r, _) => regex::Regex::new(r)
                    .unwrap_or_else(|e| panic!("regex {r}: {e}"))
                    .is_match(&path.to_string_lossy()),
                other => panic!("regex takes a #\"...\" literal: {other:?}"),
            },
            "vnode-type" => match (&args[0], vnode) {
                (Sexp::Atom(a, _), Some(v)) => a == v,
                _ => false,
            },
            // Device rules: the tests never ask about /dev paths.
            "extension" => false,
            other => panic!("filter {other} on a file operation"),
        }
    }
}
