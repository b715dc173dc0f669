//! Domain rules of the sandbox's network allow-list (`[sandbox.network]`, `--allow-domain`):
//! which host a sandboxed command may reach through the launcher's filtering proxy, and which
//! resolved addresses are acceptable for it. Pure: no I/O; the proxy (`sandbox-linux`) resolves.
//!
//! Patterns: `example.com` (that name only), `*.example.com` (any name below it, not the name
//! itself), `**.example.com` (the name and any name below it), `*` is refused (that is
//! `network_access = true`). Names compare in ASCII lower case without a trailing dot. An IP
//! literal or `localhost` is allowed only by a pattern that names it exactly.
//!
//! Order: a deny rule that matches wins over every allow rule; then the first allow rule that
//! matches; else refused ("not in the allow-list").
//!
//! Addresses: a name allowed by a pattern may connect only to public addresses; loopback,
//! private (RFC 1918, fc00::/7), link-local (169.254.0.0/16 with the metadata service,
//! fe80::/10), CGNAT (100.64.0.0/10), multicast, broadcast, unspecified and the IPv4-mapped forms
//! of those are refused, unless the host is an IP literal or `localhost` named exactly by an allow
//! rule (no DNS-rebinding route to local services).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One validated pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPattern {
    text: String,
    kind: PatternKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternKind {
    Exact(String),
    /// `*.suffix`: strictly below.
    Below(String),
    /// `**.suffix`: the name or below.
    AtOrBelow(String),
}

/// Why a pattern is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("{pattern:?}: empty")]
    Empty { pattern: String },
    #[error("{pattern:?}: `*` alone allows every host; use network_access = true for that")]
    Everything { pattern: String },
    #[error(
        "{pattern:?}: a wildcard is allowed only as a whole first label (`*.example.com`, `**.example.com`)"
    )]
    Wildcard { pattern: String },
    #[error(
        "{pattern:?}: not a host name (letters, digits, `-`, `.`, or an IP address; no scheme, path or port)"
    )]
    Characters { pattern: String },
    #[error("{pattern:?}: an empty or over-long label (`a..b`, a leading dot)")]
    Labels { pattern: String },
}

impl DomainPattern {
    pub fn parse(raw: &str) -> Result<Self, PatternError> {
        let text = raw.trim().to_ascii_lowercase();
        let text = text.strip_suffix('.').unwrap_or(&text).to_string();
        let err_pattern = raw.to_string();
        if text.is_empty() {
            return Err(PatternError::Empty {
                pattern: err_pattern,
            });
        }
        if text == "*" || text == "**" {
            return Err(PatternError::Everything {
                pattern: err_pattern,
            });
        }
        let (kind, rest) = if let Some(r) = text.strip_prefix("**.") {
            (1, r)
        } else if let Some(r) = text.strip_prefix("*.") {
            (2, r)
        } else {
            (0, text.as_str())
        };
        if rest.contains('*') || rest.is_empty() {
            return Err(PatternError::Wildcard {
                pattern: err_pattern,
            });
        }
        let is_ip = rest.parse::<IpAddr>().is_ok()
            || rest
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .is_some_and(|r| r.parse::<Ipv6Addr>().is_ok());
        if !is_ip
            && !rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(PatternError::Characters {
                pattern: err_pattern,
            });
        }
        if !is_ip
            && rest
                .split('.')
                .any(|label| label.is_empty() || label.len() > 63)
        {
            return Err(PatternError::Labels {
                pattern: err_pattern,
            });
        }
        let rest = rest
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let kind = match kind {
            1 => PatternKind::AtOrBelow(rest),
            2 => PatternKind::Below(rest),
            _ => PatternKind::Exact(rest),
        };
        Ok(DomainPattern { text, kind })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn matches(&self, host: &str) -> bool {
        match &self.kind {
            PatternKind::Exact(n) => host == n,
            PatternKind::Below(s) => host.len() > s.len() + 1 && host.ends_with(&format!(".{s}")),
            PatternKind::AtOrBelow(s) => host == s || host.ends_with(&format!(".{s}")),
        }
    }

    fn is_exact(&self, host: &str) -> bool {
        matches!(&self.kind, PatternKind::Exact(n) if n == host)
    }
}

/// The allow and deny lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainRules {
    pub allowed: Vec<DomainPattern>,
    pub denied: Vec<DomainPattern>,
}

/// The outcome for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostDecision {
    /// Allowed by this rule; `local_ok`: the host is an IP literal or `localhost` named exactly.
    Allowed { rule: String, local_ok: bool },
    /// Refused, with the reason shown to the command (403 body) and in the log.
    Denied { reason: String },
}

/// Normalise a host from a request (`Host`, CONNECT authority): lower case, no trailing dot, no
/// brackets around an IPv6 literal. `None` for something that is not a host.
pub fn normalise_host(host: &str) -> Option<String> {
    let h = host.trim().to_ascii_lowercase();
    let h = h.strip_suffix('.').unwrap_or(&h);
    let h = h.trim_start_matches('[').trim_end_matches(']');
    if h.is_empty() || h.len() > 253 {
        return None;
    }
    if h.parse::<IpAddr>().is_ok() {
        return Some(h.to_string());
    }
    if h.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !h.starts_with('.')
        && !h.contains("..")
    {
        Some(h.to_string())
    } else {
        None
    }
}

impl DomainRules {
    /// Parse both lists; the first bad pattern is the error.
    pub fn parse(allowed: &[String], denied: &[String]) -> Result<Self, PatternError> {
        Ok(DomainRules {
            allowed: allowed
                .iter()
                .map(|p| DomainPattern::parse(p))
                .collect::<Result<_, _>>()?,
            denied: denied
                .iter()
                .map(|p| DomainPattern::parse(p))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.allowed.is_empty()
    }

    /// Decide on a normalised host (see [`normalise_host`]).
    pub fn decide(&self, host: &str) -> HostDecision {
        if let Some(d) = self.denied.iter().find(|d| d.matches(host)) {
            return HostDecision::Denied {
                reason: format!("{host} matches denied_domains entry {:?}", d.as_str()),
            };
        }
        match self.allowed.iter().find(|a| a.matches(host)) {
            Some(a) => HostDecision::Allowed {
                rule: a.as_str().to_string(),
                local_ok: a.is_exact(host)
                    && (host == "localhost" || host.parse::<IpAddr>().is_ok()),
            },
            None => HostDecision::Denied {
                reason: format!("{host} is not in allowed_domains"),
            },
        }
    }
}

/// Whether `ip` is a local, private or otherwise non-public address (see the module docs).
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 64:ff9b::/96 reaches IPv4 anywhere
                || (s[0] == 0x2002) // 6to4 embeds an IPv4 address
        }
    }
}

fn non_public_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_multicast()
        || v4.is_broadcast()
        || v4.is_unspecified()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || o[0] >= 240 // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(a: &[&str], d: &[&str]) -> DomainRules {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        DomainRules::parse(&s(a), &s(d)).unwrap()
    }

    #[test]
    fn patterns_match_as_documented_and_deny_wins() {
        let r = rules(
            &["pypi.org", "*.pythonhosted.org", "**.crates.io"],
            &["evil.crates.io"],
        );
        let allowed = |h: &str| matches!(r.decide(h), HostDecision::Allowed { .. });
        assert!(allowed("pypi.org"));
        assert!(!allowed("www.pypi.org"), "exact means exact");
        assert!(allowed("files.pythonhosted.org"));
        assert!(!allowed("pythonhosted.org"), "*. is strictly below");
        assert!(!allowed("xpythonhosted.org"));
        assert!(allowed("crates.io") && allowed("static.crates.io"));
        assert!(!allowed("evil.crates.io"), "deny wins");
        match r.decide("example.com") {
            HostDecision::Denied { reason } => assert!(reason.contains("not in allowed_domains")),
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn bad_patterns_are_errors_naming_them() {
        for (p, what) in [
            ("", "empty"),
            ("*", "network_access"),
            ("a.*.com", "wildcard"),
            ("exa mple.com", "not a host"),
            ("foo*.com", "wildcard"),
            ("*.", "network_access"),
            ("a..b", "empty"),
            (".pypi.org", "empty"),
            ("https://pypi.org", "no scheme"),
            ("pypi.org:99999", "no scheme, path or port"),
        ] {
            let e = DomainPattern::parse(p).unwrap_err().to_string();
            assert!(e.contains(what), "{p}: {e}");
        }
    }

    #[test]
    fn only_an_exact_ip_or_localhost_rule_allows_local_addresses() {
        let r = rules(&["localhost", "127.0.0.1", "**.example.com"], &[]);
        assert_eq!(
            r.decide("localhost"),
            HostDecision::Allowed {
                rule: "localhost".into(),
                local_ok: true
            }
        );
        assert!(matches!(
            r.decide("127.0.0.1"),
            HostDecision::Allowed { local_ok: true, .. }
        ));
        assert!(matches!(
            r.decide("a.example.com"),
            HostDecision::Allowed {
                local_ok: false,
                ..
            }
        ));
    }

    #[test]
    fn non_public_addresses() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
        ] {
            assert!(is_non_public(a.parse().unwrap()), "{a}");
        }
        for a in ["93.184.216.34", "151.101.0.223", "2606:4700::6810:85e5"] {
            assert!(!is_non_public(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn hosts_are_normalised_or_refused() {
        assert_eq!(normalise_host("PyPI.org.").as_deref(), Some("pypi.org"));
        assert_eq!(normalise_host("[::1]").as_deref(), Some("::1"));
        assert_eq!(normalise_host("a..b"), None);
        assert_eq!(normalise_host("a/b"), None);
        assert_eq!(normalise_host(""), None);
    }
}
