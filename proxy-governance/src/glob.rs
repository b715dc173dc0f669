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

/// The model a dated snapshot name stands for: `gpt-5-pro` for `gpt-5-pro-2025-10-06` (OpenAI
/// names a model's snapshots `NAME-YYYY-MM-DD`); `None` for any other name.
pub fn snapshot_base(model: &str) -> Option<&str> {
    let (base, date) = model.split_at_checked(model.len().checked_sub(11)?)?;
    let d = date.as_bytes();
    let digits = |r: std::ops::Range<usize>| d[r].iter().all(u8::is_ascii_digit);
    (d[0] == b'-'
        && digits(1..5)
        && d[5] == b'-'
        && digits(6..8)
        && d[8] == b'-'
        && digits(9..11)
        && !base.is_empty())
    .then_some(base)
}

/// Whether a deny glob denies `model`: the name itself, or the model a dated snapshot stands
/// for (outside review r96 F3: `deny_models = ["gpt-5-pro"]` let `gpt-5-pro-2025-10-06` through).
pub fn denies(glob: &str, model: &str) -> bool {
    matches(glob, model) || snapshot_base(model).is_some_and(|base| matches(glob, base))
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;

    #[test]
    fn a_deny_covers_the_models_dated_snapshots() {
        assert_eq!(snapshot_base("gpt-5-pro-2025-10-06"), Some("gpt-5-pro"));
        assert_eq!(snapshot_base("gpt-4o-2024-08-06"), Some("gpt-4o"));
        assert_eq!(snapshot_base("gpt-5-pro"), None);
        assert_eq!(snapshot_base("-2025-10-06"), None);
        assert_eq!(snapshot_base("gpt-5-pro-2025-1x-06"), None);
        assert_eq!(snapshot_base("gpt-5-pro-latest"), None);
        assert!(denies("gpt-5-pro", "gpt-5-pro-2025-10-06"));
        assert!(denies("gpt-5-pro", "gpt-5-pro"));
        assert!(denies("*-pro", "o1-pro-2025-03-19"));
        assert!(!denies("gpt-5-pro", "gpt-5-pro-max"));
        assert!(!denies("gpt-5", "gpt-5-pro-2025-10-06"));
    }
}
