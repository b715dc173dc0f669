//! The environment a sandboxed command receives (issue 12 item 7). A sandbox that keeps the
//! user's files away but hands the command `OPENAI_API_KEY`, `GH_TOKEN` or `SSH_AUTH_SOCK` in its
//! environment has protected nothing: the command reads its own `environ`.
//!
//! Codex's `[shell_environment_policy]` names and steps, with one difference in the default:
//! 1. start from `inherit`: `all` (default), `core` (HOME, LOGNAME, PATH, SHELL, USER, USERNAME,
//!    TMPDIR, TEMP, TMP, LANG, LC_*, TERM) or `none`;
//! 2. unless `ignore_default_excludes = true`, remove [`DEFAULT_EXCLUDES`]: names containing
//!    KEY, SECRET, TOKEN, PASSWORD, PASSWD, CREDENTIAL or JWT, ending in `_PWD`, `_PAT` or
//!    `_AUTH`, or containing `_AUTH_`,
//!    `SSH_AUTH_SOCK`, `GPG_AGENT_INFO` (agent sockets: a way to use keys without reading them),
//!    and any variable whose value is a URL with a password (`postgres://u:pw@db`) or a long
//!    user name (a token: `https://ghp_…@github.com`), or holds `password=`. Codex documents this step but defaults
//!    `ignore_default_excludes` to true; here it defaults to **false**;
//! 3. remove what `exclude` matches;
//! 4. add `set` (a set variable is never removed by the other steps);
//! 5. when `include_only` is not empty, keep only what it matches (and `set`).
//!
//! Beyond codex: `keep` (config `shell_environment_policy.keep`, flag `--keep-env`) lists
//! patterns exempt from the default excludes only: `keep = ["GH_TOKEN"]` passes that one token
//! and still removes the rest, where codex's only way is `ignore_default_excludes`, all or none.
//!
//! Patterns are globs (`*`, `?`) matched against the whole name, case-insensitively (as codex).
//! Removed names (never values) are reported by `-v` and `codex sandbox check`.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};

/// Removed unless `ignore_default_excludes`.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    "*KEY*",
    "*SECRET*",
    "*TOKEN*",
    "*PASSWORD*",
    "*CREDENTIAL*",
    "SSH_AUTH_SOCK",
    "GPG_AGENT_INFO",
    // outside review r10 F-S2: `MYSQL_PWD`, `*_PASSWD`, personal access tokens
    "*PASSWD*",
    "*_PWD",
    "*_PAT",
    // outside review r14 (informational): `npm_config__auth`, `DOCKER_AUTH_CONFIG`, `CI_JOB_JWT`
    "*_AUTH",
    "*_AUTH_*",
    "*JWT*",
    // outside review r16 F3
    "*_PASS",
    "*PASSPHRASE*",
    "*COOKIE*",
    "AUTHORIZATION",
    "GIT_CONFIG_VALUE_*",
    // outside review r60 F3: `sshpass -e`'s password, password managers' session keys, bare
    // names for a secret
    "SSHPASS",
    "PGPASS",
    "BW_SESSION",
    "OP_SESSION_*",
    "AUTH",
    "*CONNECTION_STRING*",
    "*CONNSTR*",
    "AZUREWEBJOBSSTORAGE",
    "*_DSN",
    "*WEBHOOK*",
    // outside review r63 F5/F7: `LDAP_BIND_PW`, `KUBE_BEARER`, the Kerberos ticket cache's name
    "*_PW",
    // outside review r74 I2: `LDAP_BINDPW` (OpenLDAP's spelling)
    "*BINDPW*",
    "*BEARER*",
    "KRB5CCNAME",
    // outside review r65 F3
    "PASS",
    "GPGPASS",
];

/// Well-known token formats (outside review r63 F7): a value that starts with one of these
/// prefixes and is at least as long as such tokens are (no blank in it) is a secret under any
/// name (`GH=ghp_…`, `OPENAI=sk-proj-…`), and so is a URL whose user name is one
/// (`https://ghp_…@github.com`). AWS access key ids: exactly `AKIA`/`ASIA` and 16 upper-case
/// letters or digits. Lower-case prefixes; (prefix, shortest real token).
pub const TOKEN_FORMATS: &[(&str, usize)] = &[
    ("ghp_", 40),
    ("gho_", 40),
    ("ghu_", 40),
    ("ghs_", 40),
    ("ghr_", 40),
    ("github_pat_", 60),
    ("glpat-", 26),
    ("gldt-", 26),
    ("sk-", 40),
    ("sk_live_", 30),
    ("rk_live_", 30),
    ("xoxb-", 30),
    ("xoxp-", 30),
    ("xoxa-", 30),
    ("xoxs-", 30),
    ("xapp-", 30),
    ("hf_", 30),
    ("npm_", 40),
    ("pypi-", 60),
    ("dop_v1_", 60),
    ("ya29.", 40),
    ("aiza", 39),
    ("shpat_", 38),
    ("glsa_", 40),
    ("lin_api_", 40),
    // outside review r65 F3
    ("hvs.", 30),
    ("hvb.", 30),
    ("dckr_pat_", 30),
    ("pul-", 44),
    ("ntn_", 40),
    ("secret_", 50),
    ("nrak-", 36),
    ("age-secret-key-1", 50),
    ("sg.", 60),
    // outside review r66 F3
    ("glrt-", 26),
    ("gsk_", 40),
];

/// Prefixes that mark a token wherever they appear in a value (`token ghp_…` inside a longer
/// value: outside review r65 F3), with the shortest real token.
const TOKENS_ANYWHERE: &[(&str, usize)] = &[
    ("ghp_", 40),
    ("gho_", 40),
    ("ghs_", 40),
    ("github_pat_", 60),
    ("glpat-", 26),
    ("xoxb-", 30),
    ("xoxp-", 30),
    ("sk-ant-", 40),
    ("sk-proj-", 40),
    ("hvs.", 30),
    ("dckr_pat_", 30),
    ("age-secret-key-1", 50),
];

/// Whether `lower` (a lower-cased value) holds a [`TOKENS_ANYWHERE`] token: the prefix, then
/// token characters (letters, digits, `_`, `-`, `.`) to the format's length.
fn contains_token(lower: &str) -> bool {
    TOKENS_ANYWHERE.iter().any(|(p, len)| {
        lower.match_indices(p).any(|(i, _)| {
            let run = lower[i..]
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || b"_-.".contains(b))
                .count();
            run >= *len
        })
    })
}

/// Token shapes without a prefix of their own (outside review r65 F3): a JWT (`eyJ….eyJ….`),
/// a Telegram bot token (`123456789:` and 35 characters), a Twilio API key (`SK` and 32 hex
/// digits).
fn is_shaped_token(v: &str) -> bool {
    let jwt = v.starts_with("eyJ") && v.len() >= 40 && v.matches('.').count() == 2;
    let telegram = v.split_once(':').is_some_and(|(id, rest)| {
        (8..=10).contains(&id.len())
            && id.bytes().all(|b| b.is_ascii_digit())
            && rest.len() == 35
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
    });
    let twilio =
        v.len() == 34 && v.starts_with("SK") && v[2..].bytes().all(|b| b.is_ascii_hexdigit());
    jwt || telegram || twilio
}

/// Whether `v` is a token of a [`TOKEN_FORMATS`] format or an AWS access key id.
fn is_token(v: &str) -> bool {
    if v.chars().any(char::is_whitespace) {
        return false;
    }
    let aws = v.len() == 20
        && (v.starts_with("AKIA") || v.starts_with("ASIA"))
        && v.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    let lower = v.to_ascii_lowercase();
    aws || TOKEN_FORMATS
        .iter()
        .any(|(p, len)| lower.starts_with(p) && v.len() >= *len)
}

/// Whether `value` carries a password in a URL's user information (`scheme://user:pw@host`):
/// `DATABASE_URL=postgres://u:pw@db/x`, `REDIS_URL`, a proxy with credentials (outside review r10
/// F-S2). Such a variable is removed with the default excludes whatever its name.
pub fn value_has_url_password(value: &OsStr) -> bool {
    let v = value.to_string_lossy();
    let in_url = v.match_indices("://").any(|(i, _)| {
        let rest = &v[i + 3..];
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        // `user:pw@`, or a token as the user name (`https://ghp_…@github.com`: outside review
        // r14), told from a login name (`git@`) by its length.
        authority.rsplit_once('@').is_some_and(|(userinfo, _)| {
            userinfo.contains(':')
                || userinfo.len() >= 20
                // a known token prefix as the user name: a token whatever its length
                || TOKEN_FORMATS.iter().any(|(p, _)| {
                    userinfo.len() > p.len() + 3 && userinfo.to_ascii_lowercase().starts_with(p)
                })
        })
    });
    // A secret as a parameter or a header (`jdbc:…;password=pw`, `…?access_token=…`,
    // `Authorization: Bearer …`: outside reviews r14 and r16 F3).
    let lower = v.to_ascii_lowercase();
    let trimmed = lower.trim();
    in_url
        || is_token(v.trim())
        || is_shaped_token(v.trim())
        || contains_token(&lower)
        // outside review r65 F3: a credentials file in one variable, a PuTTY key
        || lower.contains("aws_secret_access_key")
        || lower.contains("\"private_key\"")
        || lower.contains("putty-user-key-file")
        || lower.contains("--password ")
        || lower.contains("--password=")
        // outside review r66 F3: Terraform Cloud tokens, a Docker `auths` document
        || lower.contains(".atlasv1.")
        || lower.contains("\"auths\"")
        // outside review r63 F7: an HTTP basic credential, a netrc line, a PEM private key
        || (trimmed.starts_with("basic ") && trimmed.len() > 10)
        || (lower.contains("machine ") && lower.contains(" password "))
        || (lower.contains("-----begin") && lower.contains("private key"))
        || [
            "password=",
            "passwd=",
            "pwd=",
            "secret=",
            "token=",
            "api_key=",
            "apikey=",
            "authorization:",
            "bearer ",
            // outside review r60 F3: Azure connection strings, SAS and presigned URLs
            "accountkey=",
            "sharedaccesskey=",
            "sharedaccesssignature=",
            "?sig=",
            "&sig=",
            "x-amz-signature=",
            "x-amz-security-token=",
            "x-goog-signature=",
            "hooks.slack.com/services/",
            // outside review r63 F7: Teams and Discord webhooks under any name
            "webhook.office.com/webhook",
            "discord.com/api/webhooks/",
            "discordapp.com/api/webhooks/",
        ]
        .iter()
        .any(|m| lower.contains(m))
}

/// Whether a proxy variable (a name containing `PROXY`, any case) holds credentials written
/// without a scheme: `http_proxy=u:pw@proxy:3128`, which curl, wget and pip read as `http://`
/// (outside review r58 F5). Other names keep such values (`mailto:a@b` is not a proxy).
pub fn proxy_value_has_password(name: &str, value: &OsStr) -> bool {
    let v = value.to_string_lossy();
    name.to_ascii_uppercase().contains("PROXY")
        && !v.contains("://")
        && !v.chars().any(char::is_whitespace)
        && v.rsplit_once('@').is_some_and(|(userinfo, host)| {
            userinfo.contains(':') && !userinfo.contains('/') && !host.is_empty()
        })
}

/// What `inherit = "core"` keeps (codex's list plus locale and terminal).
pub const CORE_VARS: &[&str] = &[
    "HOME", "LOGNAME", "PATH", "SHELL", "USER", "USERNAME", "TMPDIR", "TEMP", "TMP", "LANG",
    "LC_*", "TERM",
];

/// Step 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Inherit {
    #[default]
    All,
    Core,
    None,
}

impl std::str::FromStr for Inherit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(Inherit::All),
            "core" => Ok(Inherit::Core),
            "none" => Ok(Inherit::None),
            other => Err(format!("{other:?}: expected \"all\", \"core\" or \"none\"")),
        }
    }
}

/// `[shell_environment_policy]`, codex's keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvPolicy {
    pub inherit: Inherit,
    pub ignore_default_excludes: bool,
    pub exclude: Vec<String>,
    pub set: BTreeMap<String, String>,
    pub include_only: Vec<String>,
    /// Exempt from the default excludes (step 2) only.
    pub keep: Vec<String>,
}

/// The command's environment and the names taken out of the inherited one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filtered {
    pub vars: Vec<(OsString, OsString)>,
    /// Names removed by steps 1–3 and 5, sorted (for `-v`; values are never reported).
    pub removed: Vec<String>,
}

/// Whole-name glob match, ASCII case-insensitive; `*` any run, `?` one character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    if p.contains(&b'?') {
        backtracking(p, n)
    } else {
        stars_only(p, n)
    }
}

/// The general matcher (`*` and `?`).
fn backtracking(p: &[u8], n: &[u8]) -> bool {
    match p.split_first() {
        None => n.is_empty(),
        Some((b'*', rest)) => (0..=n.len()).any(|i| backtracking(rest, &n[i..])),
        Some((b'?', rest)) => !n.is_empty() && backtracking(rest, &n[1..]),
        Some((c, rest)) => n
            .split_first()
            .is_some_and(|(d, nr)| c.eq_ignore_ascii_case(d) && backtracking(rest, nr)),
    }
}

/// A pattern of literals and `*` only (every default exclude): the first literal is a prefix,
/// the last a suffix, the ones between found leftmost in order; no backtracking is needed
/// (a `*` absorbs whatever a later match would have skipped). The launcher matches every
/// inherited variable against every pattern, at each start: the backtracking matcher was the
/// largest user-space item of `codex sandbox linux -- /bin/true` (about 50 µs).
fn stars_only(p: &[u8], n: &[u8]) -> bool {
    let eq = |a: &[u8], b: &[u8]| a.eq_ignore_ascii_case(b);
    let Some(first_star) = p.iter().position(|&c| c == b'*') else {
        return eq(p, n);
    };
    let last_star = p.iter().rposition(|&c| c == b'*').unwrap_or(first_star);
    let (head, tail) = (&p[..first_star], &p[last_star + 1..]);
    if n.len() < head.len() + tail.len() || !eq(&n[..head.len()], head) {
        return false;
    }
    let mut rest = &n[head.len()..];
    if !eq(&rest[rest.len() - tail.len()..], tail) {
        return false;
    }
    rest = &rest[..rest.len() - tail.len()];
    for seg in p[first_star + 1..last_star.max(first_star + 1)]
        .split(|&c| c == b'*')
        .filter(|s| !s.is_empty())
    {
        match rest.windows(seg.len()).position(|w| eq(w, seg)) {
            Some(i) => rest = &rest[i + seg.len()..],
            None => return false,
        }
    }
    true
}

fn any_match(patterns: &[impl AsRef<str>], name: &str) -> bool {
    patterns.iter().any(|p| glob_match(p.as_ref(), name))
}

impl EnvPolicy {
    /// Applies steps 1–5 to `vars` (usually `std::env::vars_os()`). A name that is not UTF-8 is
    /// matched in its lossy form. The sandbox's own markers (`CODEX_SANDBOX`,
    /// `CODEX_SANDBOX_NETWORK_DISABLED`) are dropped silently: each enforcer sets them itself, so
    /// an inherited value cannot lie.
    pub fn apply(&self, vars: impl IntoIterator<Item = (OsString, OsString)>) -> Filtered {
        let mut out = Filtered::default();
        for (k, v) in vars {
            if k == "CODEX_SANDBOX" || k == "CODEX_SANDBOX_NETWORK_DISABLED" {
                continue;
            }
            let name = k.to_string_lossy().into_owned();
            if self.set.contains_key(&name) {
                continue; // step 4 replaces it
            }
            let default_excluded = !self.ignore_default_excludes
                && (any_match(DEFAULT_EXCLUDES, &name)
                    || value_has_url_password(&v)
                    || proxy_value_has_password(&name, &v))
                && !any_match(&self.keep, &name);
            let keep = match self.inherit {
                Inherit::All => true,
                Inherit::Core => any_match(CORE_VARS, &name),
                Inherit::None => false,
            } && !default_excluded
                && !any_match(&self.exclude, &name)
                && (self.include_only.is_empty() || any_match(&self.include_only, &name));
            if keep {
                out.vars.push((k, v));
            } else {
                out.removed.push(name);
            }
        }
        for (k, v) in &self.set {
            out.vars
                .push((OsStr::new(k).to_owned(), OsStr::new(v).to_owned()));
        }
        out.removed.sort();
        out.removed.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The fast matcher agrees with the backtracking one on every pattern and name over a small
    /// alphabet (lengths up to 5 and 6): all `*` placements, overlaps, case.
    #[test]
    fn the_star_matcher_agrees_with_the_backtracking_one() {
        fn all(alphabet: &[u8], max: usize) -> Vec<Vec<u8>> {
            let mut out = vec![Vec::new()];
            let mut frontier = vec![Vec::new()];
            for _ in 0..max {
                let mut next = Vec::new();
                for w in &frontier {
                    for &c in alphabet {
                        let mut v: Vec<u8> = w.clone();
                        v.push(c);
                        next.push(v);
                    }
                }
                out.extend(next.iter().cloned());
                frontier = next;
            }
            out
        }
        let patterns = all(b"ab*", 5);
        let names = all(b"abA", 6);
        for p in &patterns {
            for n in &names {
                assert_eq!(stars_only(p, n), backtracking(p, n), "{p:?} {n:?}");
            }
        }
    }

    /// Outside review r60 F3: secrets under names and in values the filter did not know.
    /// Controls: lookalike names that hold nothing secret stay.
    #[test]
    fn password_manager_sessions_and_cloud_connection_strings_are_removed() {
        let f = EnvPolicy::default().apply(vars(&[
            ("SSHPASS", "pw"),
            ("BW_SESSION", "abc"),
            ("OP_SESSION_my", "abc"),
            ("AZURE_STORAGE_CONNECTION_STRING", "x"),
            (
                "AzureWebJobsStorage",
                "DefaultEndpointsProtocol=https;AccountKey=k==",
            ),
            ("SENTRY_DSN", "https://k@o1.ingest.sentry.io/1"),
            ("BLOB", "https://a.blob.core.windows.net/c?sv=1&sig=s"),
            ("SLACK", "https://hooks.slack.com/services/T/B/X"),
            ("AUTH", "t"),
            ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1/bus"),
            ("XDG_SESSION_ID", "3"),
            ("COMPASS", "n"),
            ("AUTHOR", "me"),
        ]));
        assert_eq!(
            f.removed,
            [
                "AUTH",
                "AZURE_STORAGE_CONNECTION_STRING",
                "AzureWebJobsStorage",
                "BLOB",
                "BW_SESSION",
                "OP_SESSION_my",
                "SENTRY_DSN",
                "SLACK",
                "SSHPASS",
            ]
        );
    }

    /// Outside review r58 F5: proxy credentials written without a scheme.
    #[test]
    fn proxy_credentials_without_a_scheme_are_seen() {
        for (n, v) in [
            ("http_proxy", "u:pw1@proxy:3128"),
            ("HTTPS_PROXY", "user:pw2@10.0.0.1:8080"),
            ("PROXY", "u:pw16@proxy:3128"),
            ("all_proxy", ":pw@proxy"),
        ] {
            assert!(proxy_value_has_password(n, OsStr::new(v)), "{n}={v}");
        }
        for (n, v) in [
            ("http_proxy", "proxy:3128"),
            ("http_proxy", "user@proxy:3128"),
            ("no_proxy", "localhost,127.0.0.1"),
            ("http_proxy", "a:b @c"),
            ("CONTACT", "mailto:a@b"),
            ("GIT_REMOTE", "git@github.com:org/repo.git"),
        ] {
            assert!(!proxy_value_has_password(n, OsStr::new(v)), "{n}={v}");
        }
        let f = EnvPolicy::default().apply(vars(&[
            ("http_proxy", "u:pw1@proxy:3128"),
            ("no_proxy", "localhost"),
        ]));
        assert_eq!(f.removed, ["http_proxy"]);
    }

    #[test]
    fn url_passwords_are_seen_and_nothing_else() {
        for v in [
            "postgres://u:pw@db:5432/x",
            "redis://:pw@cache",
            "see http://a:b@h/x?y",
            "https://ghp_0123456789abcdefghijKLMN@github.com/o/r.git",
            "jdbc:sqlserver://db:1433;user=u;password=pw",
            "Server=s;Uid=sa;Pwd=pw;",
            "https://h/v1?access_token=SECRET",
            "AUTHORIZATION: basic eDphY2Nlc3M=",
            // outside review r60 F3
            "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc==;EndpointSuffix=core.windows.net",
            "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=abc=",
            "https://a.blob.core.windows.net/c/b?sv=2022-11-02&se=2030&sp=r&sig=abc%3D",
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc",
            "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
            // outside review r63 F7
            "https://glpat-SECRET03@gitlab.com/org/repo",
            "https://acme.webhook.office.com/webhookb2/SECRET35",
            "https://discord.com/api/webhooks/1234/SECRETA2",
            "-----BEGIN RSA PRIVATE KEY----- SECRET44",
            "ghp_SECRETA3aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sk-proj-SECRETA4aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "xoxb-1234567890-1234567890123-SECRETA5abcdefgh",
            "AKIAIOSFODNN7EXAMPLE",
            "glpat-SECRETA7aaaaaaaaaaaaaa",
            "hf_SECRETA8aaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sk-ant-api03-SECRETA9aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "Basic dXNlcjpTRUNSRVRDMw==",
            "machine h login u password SECRETC4",
            // outside review r65 F3
            "hvs.CAESIJlWh9xSECRETaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "123456789:AAHSECRETbbbbbbbbbbbbbbbbbbbbbbbbbb",
            "SK0123456789abcdef0123456789abcdef",
            "dckr_pat_SECRETaaaaaaaaaaaaaaaaaaaaaaaa",
            "AGE-SECRET-KEY-1QQQSECRETQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SECRETsig",
            "PuTTY-User-Key-File-3: ssh-ed25519",
            "[default]\naws_access_key_id = AKIA\naws_secret_access_key = SECRET",
            "token ghp_0123456789abcdefghijklmnopqrstuvwxyz in a sentence",
            "mysql --password secret",
            // outside review r66 F3
            "glrt-SECRETaaaaaaaaaaaaaaaaaaaaa",
            "gsk_SECRETaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "abcdefghij1234.atlasv1.SECRETaaaaaaaaaaaaaaaaaaaaa",
            "{\"auths\":{\"ghcr.io\":{\"auth\":\"dTpw\"}}}",
        ] {
            assert!(value_has_url_password(OsStr::new(v)), "{v}");
        }
        for v in [
            "https://example.com/a@b",
            "ssh://git@github.com/x",
            "mailto:a@b",
            "/usr/bin:/bin",
            "http://h/path?x=a:b@c",
            // prefixes inside words, short values, prose: kept
            "desk-top-layout",
            "sk-1",
            "hf_hub",
            "basic",
            "xterm-256color",
            "/home/u/.npm_cache",
            "Asia/Kolkata",
            "Asia/Ho_Chi_Minh_City_Extra",
            "sk-short-value",
            "AKIAlowercase0000000",
            "sg.example.com",
            "eyJnot.a.jwt",
            "12:00:00",
            "SKIP_THIS_VALUE_PLEASE",
        ] {
            assert!(!value_has_url_password(OsStr::new(v)), "{v}");
        }
        let f = EnvPolicy::default().apply(vars(&[
            ("DATABASE_URL", "postgres://u:pw@db/x"),
            ("MYSQL_PWD", "pw"),
            ("GITHUB_PAT", "p"),
            ("npm_config__auth", "dXNlcjpwdw=="),
            ("DOCKER_AUTH_CONFIG", "{}"),
            ("CI_JOB_JWT", "eyJ"),
            ("AUTHOR", "me"),
            ("XAUTHORITY", "/home/u/.Xauthority"),
            ("PWD", "/home/u"),
            ("OLDPWD", "/"),
            ("PATH", "/bin"),
            // outside review r63 F5/F7
            ("LDAP_BIND_PW", "pw"),
            ("LDAP_BINDPW", "pw"),
            ("KUBE_BEARER", "b"),
            ("KRB5CCNAME", "FILE:/tmp/krb5cc_1000"),
            ("GH", "ghp_0123456789abcdefghijklmnopqrstuvwxyz"),
            ("TZ", "Asia/Kolkata"),
            ("TERM", "xterm-256color"),
        ]));
        assert_eq!(
            f.removed,
            [
                "CI_JOB_JWT",
                "DATABASE_URL",
                "DOCKER_AUTH_CONFIG",
                "GH",
                "GITHUB_PAT",
                "KRB5CCNAME",
                "KUBE_BEARER",
                "LDAP_BINDPW",
                "LDAP_BIND_PW",
                "MYSQL_PWD",
                "npm_config__auth"
            ]
        );
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn names(f: &Filtered) -> Vec<String> {
        f.vars
            .iter()
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn globs_match_whole_names_case_insensitively() {
        assert!(glob_match("*KEY*", "OPENAI_API_KEY"));
        assert!(glob_match("*key*", "OPENAI_API_KEY"));
        assert!(glob_match("*TOKEN*", "gh_token"));
        assert!(glob_match("LC_*", "LC_ALL"));
        assert!(glob_match("A?C", "abc"));
        assert!(!glob_match("KEY", "OPENAI_API_KEY"));
        assert!(!glob_match("LC_*", "XLC_ALL"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn the_default_removes_secrets_and_agent_sockets_and_keeps_the_rest() {
        let f = EnvPolicy::default().apply(vars(&[
            ("OPENAI_API_KEY", "sk-1"),
            ("GH_TOKEN", "t"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("SSH_AUTH_SOCK", "/run/ssh"),
            ("GPG_AGENT_INFO", "x"),
            ("DB_PASSWORD", "p"),
            ("PATH", "/bin"),
            ("HOME", "/h"),
            ("LANG", "C"),
        ]));
        assert_eq!(names(&f), ["PATH", "HOME", "LANG"]);
        assert_eq!(
            f.removed,
            [
                "AWS_SECRET_ACCESS_KEY",
                "DB_PASSWORD",
                "GH_TOKEN",
                "GPG_AGENT_INFO",
                "OPENAI_API_KEY",
                "SSH_AUTH_SOCK"
            ]
        );
        // control: with the default excludes ignored everything stays
        let all = EnvPolicy {
            ignore_default_excludes: true,
            ..EnvPolicy::default()
        }
        .apply(vars(&[("OPENAI_API_KEY", "sk-1"), ("PATH", "/bin")]));
        assert_eq!(names(&all), ["OPENAI_API_KEY", "PATH"]);
        assert!(all.removed.is_empty());
        // `keep` exempts one name from the defaults, not the others
        let kept = EnvPolicy {
            keep: vec!["gh_token".into()],
            ..EnvPolicy::default()
        }
        .apply(vars(&[("GH_TOKEN", "t"), ("OPENAI_API_KEY", "sk-1")]));
        assert_eq!(names(&kept), ["GH_TOKEN"]);
        assert_eq!(kept.removed, ["OPENAI_API_KEY"]);
    }

    #[test]
    fn core_none_exclude_set_and_include_only_follow_codex_order() {
        let input = vars(&[
            ("PATH", "/bin"),
            ("HOME", "/h"),
            ("LC_ALL", "C"),
            ("EDITOR", "vi"),
            ("MYAPP_URL", "u"),
            ("MYAPP_KEY", "k"),
        ]);
        let core = EnvPolicy {
            inherit: Inherit::Core,
            ..EnvPolicy::default()
        }
        .apply(input.clone());
        assert_eq!(names(&core), ["PATH", "HOME", "LC_ALL"]);
        let none = EnvPolicy {
            inherit: Inherit::None,
            set: [("X".to_string(), "1".to_string())].into(),
            ..EnvPolicy::default()
        }
        .apply(input.clone());
        assert_eq!(names(&none), ["X"]);
        let p = EnvPolicy {
            exclude: vec!["editor".into()],
            include_only: vec!["MYAPP_*".into(), "PATH".into()],
            set: [("MYAPP_KEY".to_string(), "explicit".to_string())].into(),
            ..EnvPolicy::default()
        }
        .apply(input);
        // MYAPP_KEY: the inherited value is dropped, the `set` one kept (step 4 wins)
        assert_eq!(names(&p), ["PATH", "MYAPP_URL", "MYAPP_KEY"]);
        assert_eq!(p.vars[2].1, OsString::from("explicit"));
        assert_eq!(p.removed, ["EDITOR", "HOME", "LC_ALL"]);
    }
}
