//! Model-name globs: `*` matches any run of characters (also none), `?` exactly one; everything
//! else matches itself, case-sensitively (model names are lower-case ASCII). No character
//! classes, no escapes: model names contain neither `*` nor `?`.

/// Model names the proxy knows without being told (OpenAI's Responses API models as of this
/// release). A glob in the policy file must match at least one of these or of the file's
/// `known_models`: a typo such as `gtp-5*` would otherwise allow or deny nothing, silently.
pub const KNOWN_MODELS: &[&str] = &[
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-5-pro",
    "gpt-5-codex",
    "gpt-5-chat-latest",
    "gpt-5.1",
    "gpt-5.1-mini",
    "gpt-5.1-codex",
    "gpt-5.1-codex-mini",
    "gpt-5.1-codex-max",
    "gpt-5.2",
    "gpt-5.2-pro",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o",
    "gpt-4o-mini",
    "o1",
    "o1-pro",
    "o3",
    "o3-mini",
    "o3-pro",
    "o3-deep-research",
    "o4-mini",
    "o4-mini-deep-research",
    "codex-mini-latest",
    "computer-use-preview",
    "gpt-oss-20b",
    "gpt-oss-120b",
];

/// Whether `name` matches `pattern` (iterative, linear in practice: the usual star-backtracking
/// matcher, which never recurses).
pub fn matches(pattern: &str, name: &str) -> bool {
    let p = pattern.as_bytes();
    let n = name.as_bytes();
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Whether `pattern` has a wildcard.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// How specific a pattern is: more literal characters first (for choosing among price entries).
pub fn specificity(pattern: &str) -> usize {
    pattern.bytes().filter(|&b| b != b'*' && b != b'?').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_documented() {
        assert!(matches("gpt-5*", "gpt-5"));
        assert!(matches("gpt-5*", "gpt-5-mini"));
        assert!(!matches("gpt-5*", "gpt-4o"));
        assert!(matches("*-pro", "o3-pro"));
        assert!(!matches("*-pro", "o3-pro-x"));
        assert!(matches("o?-mini", "o4-mini"));
        assert!(!matches("o?-mini", "o-mini"));
        assert!(matches("*", ""));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(matches("gpt-4o", "gpt-4o"));
        assert!(!matches("gpt-4o", "GPT-4O"));
        // Pathological pattern stays fast.
        let long = "a".repeat(10_000);
        assert!(!matches("*a*a*a*a*a*b", &long));
        assert_eq!(specificity("gpt-5*"), 5);
    }
}
