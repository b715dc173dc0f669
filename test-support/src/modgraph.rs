//! The module graph of a crate, read from its sources: which `crate::MODULE` each top-level
//! module names (outside its `#[cfg(test)]` tail). Used by tests that keep a crate free of import
//! circles, so its modules stay layered as its README describes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → the sibling modules it refers to as `crate::NAME`. A module is `src/NAME.rs` or
/// `src/NAME/` (all of its files); `lib.rs` and `main.rs` are the roots and left out.
pub fn module_graph(src: &Path) -> std::io::Result<BTreeMap<String, BTreeSet<String>>> {
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    for e in std::fs::read_dir(src)? {
        let p = e?.path();
        let Some(stem) = p.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        if stem == "lib" || stem == "main" || stem == "bin" {
            continue;
        }
        let text = if p.is_dir() {
            let mut all = String::new();
            for f in std::fs::read_dir(&p)? {
                all.push_str(&std::fs::read_to_string(f?.path())?);
            }
            all
        } else if p.extension().is_some_and(|x| x == "rs") {
            std::fs::read_to_string(&p)?
        } else {
            continue;
        };
        let text = match text.find("#[cfg(test)]") {
            Some(i) => text[..i].to_owned(),
            None => text,
        };
        texts.insert(stem, text);
    }
    let names: BTreeSet<String> = texts.keys().cloned().collect();
    Ok(texts
        .iter()
        .map(|(m, text)| {
            let deps = text
                .match_indices("crate::")
                .map(|(i, _)| {
                    text[i + 7..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect::<String>()
                })
                .filter(|d| d != m && names.contains(d))
                .collect();
            (m.clone(), deps)
        })
        .collect())
}

/// Every import circle of the graph, each as the path that closes it (`[a, b, a]`).
pub fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        u: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        out: &mut Vec<Vec<String>>,
    ) {
        if let Some(i) = path.iter().position(|p| p == u) {
            let mut c = path[i..].to_vec();
            c.push(u.to_owned());
            out.push(c);
            return;
        }
        if done.contains(u) {
            return;
        }
        path.push(u.to_owned());
        for v in g.get(u).into_iter().flatten() {
            visit(g, v, path, done, out);
        }
        path.pop();
        done.insert(u.to_owned());
    }
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(graph, m, &mut Vec::new(), &mut done, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_circle_is_found_and_a_layered_graph_has_none() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.rs"), "use crate::b::X;").unwrap();
        std::fs::write(d.path().join("b.rs"), "use crate::c::Y;").unwrap();
        std::fs::write(
            d.path().join("c.rs"),
            "fn f() {}\n#[cfg(test)]\nuse crate::a::Z;",
        )
        .unwrap();
        assert!(cycles(&module_graph(d.path()).unwrap()).is_empty());
        std::fs::write(d.path().join("c.rs"), "use crate::a::Z;").unwrap();
        let c = cycles(&module_graph(d.path()).unwrap());
        assert_eq!(c, vec![vec!["a", "b", "c", "a"]]);
    }
}
