//! The Seatbelt policy generator ([`sandbox_macos::generate`]): no input path changes the policy
//! text.
//!
//! Input: byte 0 picks the policy kind and network; the rest, split at `0xff`, gives path
//! components (arbitrary bytes: quotes, parentheses, `#|`, newlines, NUL), dealt round-robin to
//! writable roots, their read-only carve-outs and deny-read paths.
//!
//! Properties: the policy generated for the hostile paths has exactly the text of the one
//! generated for plain paths of the same shape (paths reach only `-D` parameters); no component
//! appears in the text (each carries a marker character the policy never uses); the text parses
//! and uses exactly the parameters supplied; parameters carry the paths byte for byte.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use sandbox_macos::{HostPaths, generate, syntax};
use sandbox_policy::{EffectivePolicy, PolicyKind, ReadOnlySubpath, WritableRoot};

const MARK: &str = "\u{2603}";

/// The fuzz target.
pub fn seatbelt(data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let kind = match ctl % 3 {
        0 => PolicyKind::ReadOnly,
        1 => PolicyKind::WorkspaceWrite,
        _ => PolicyKind::DangerFullAccess,
    };
    let comps: Vec<&[u8]> = rest.split(|b| *b == 0xff).take(12).collect();
    let hostile = build(kind, ctl & 0x80 != 0, &comps, |c| {
        let mut v = MARK.as_bytes().to_vec();
        v.extend_from_slice(c);
        v
    });
    let plain = build(kind, ctl & 0x80 != 0, &comps, |_| b"plain".to_vec());
    let host = HostPaths::default();
    let Ok(p) = generate(&plain, &host) else {
        panic!("plain paths refused")
    };
    let h = match generate(&hostile, &host) {
        Ok(h) => h,
        // Refusing a path is allowed (e.g. one with NUL); changing the text is not.
        Err(_) => return,
    };
    assert_eq!(h.text(), p.text(), "a path changed the policy text");
    assert_eq!(h.params().len(), p.params().len());
    assert!(!h.text().contains(MARK), "a path reached the policy text");
    let checked = syntax::check(h.text()).unwrap_or_else(|e| panic!("policy does not parse: {e}"));
    let supplied: std::collections::BTreeSet<String> =
        h.params().iter().map(|p| p.key.clone()).collect();
    assert_eq!(checked.params, supplied, "parameters used vs supplied");
    for param in h.params() {
        assert!(
            param.value.as_os_str().as_bytes().starts_with(b"/"),
            "parameter {} is not an absolute path",
            param.key
        );
    }
}

fn build(
    kind: PolicyKind,
    network: bool,
    comps: &[&[u8]],
    name: impl Fn(&[u8]) -> Vec<u8>,
) -> EffectivePolicy {
    let path = |i: usize, c: &[u8]| -> PathBuf {
        let mut p = PathBuf::from(format!("/r{i}"));
        p.push(OsStr::from_bytes(&name(c)));
        p
    };
    let mut writable_roots: Vec<WritableRoot> = vec![];
    let mut deny_read = vec![];
    for (i, c) in comps.iter().enumerate() {
        match i % 3 {
            0 if kind == PolicyKind::WorkspaceWrite => writable_roots.push(WritableRoot {
                root: path(i, c),
                read_only_subpaths: vec![],
            }),
            1 if kind == PolicyKind::WorkspaceWrite => {
                let p = path(i, c);
                if let Some(root) = writable_roots.last_mut() {
                    let sub = root.root.join(p.file_name().unwrap_or(OsStr::new("x")));
                    root.read_only_subpaths.push(ReadOnlySubpath {
                        path: sub,
                        exists: false,
                        replaceable_via: None,
                    });
                }
            }
            _ if kind != PolicyKind::DangerFullAccess => deny_read.push(path(i, c)),
            _ => {}
        }
    }
    EffectivePolicy {
        kind,
        cwd: PathBuf::from("/"),
        writable_roots,
        deny_read,
        network: network || kind == PolicyKind::DangerFullAccess,
        deny_read_unsearched: Vec::new(),
        sockets_through_links: Vec::new(),
        temp_roots: Vec::new(),
        writable_home: None,
    }
}
