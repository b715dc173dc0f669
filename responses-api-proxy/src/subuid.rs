//! Subordinate uids: who answers for a peer uid (outside review r64 F1, F2).
//!
//! A user with a range in `/etc/subuid` (Debian's `useradd` gives every user 65,536) runs
//! processes under any uid of it without privilege once `newuidmap` is installed (rootless
//! Podman, Docker, LXC bring it): `unshare --user --map-users=…`, then `setuid`. The kernel
//! reports each such uid to the proxy as a peer of its own, so one user had 65,536 budgets
//! (r64 F1: 10.8x a day's input budget through five of them; a stricter `[user.X]` section
//! escaped as `default`) and 65,536 shares of `--max-connections` (F2: six uids with 256 slow
//! connections each locked every other user out). A uid inside a range **answers as the range's
//! owner**: its budgets, rules, rate, connection and session caps are the owner's; the audit
//! line names both. The allow-list (`--allow-user`/`--allow-group`) still judges the kernel's
//! uid (a subordinate uid is not the user it belongs to for access: it is refused unless named).
//!
//! `--subuid-file` (default `/etc/subuid`) is read once at start-up, before the privilege drop
//! and the confinement (as the policy's groups are), with the policy file's checks (not
//! group/other-writable, root's or the service's, never a symlink: a range written by another
//! user would make someone else's uid answer as them); a missing file is an empty table. Ranges
//! given to users afterwards count from the next start. Lines that do not parse, and owners
//! that name no user, are skipped with a warning. A uid listed in `/etc/passwd` always answers
//! as itself (a range that overlaps a real user's uid does not make them someone else).

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

/// The ranges of `/etc/subuid`: (first uid, count, owner's uid), and the uids `/etc/passwd`
/// lists.
#[derive(Debug, Default, Clone)]
pub struct SubUids {
    ranges: Vec<(u32, u32, u32)>,
    real: HashSet<u32>,
}

/// Who answers for a peer uid ([`SubUids::owner_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Itself,
    Owner(u32),
    /// Inside ranges of several owners (listed): refused.
    Ambiguous(Vec<u32>),
}

impl SubUids {
    /// Reads `path` with the policy file's checks; a missing file is an empty table. `resolve`
    /// turns an owner name into its uid. `Err`: the file is unsafe or unreadable (named).
    pub fn load(path: &Path, resolve: impl Fn(&str) -> Option<u32>) -> Result<Self, String> {
        let mut file = match codex_privsep::open_subuid_file(path) {
            Ok(f) => f,
            Err(codex_privsep::CredentialError::Open { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(Self::default());
            }
            Err(codex_privsep::CredentialError::Directory { source, .. })
                if matches!(&*source, codex_privsep::TrustedDirError::Open { source, .. }
                    if source.kind() == std::io::ErrorKind::NotFound) =>
            {
                return Ok(Self::default());
            }
            Err(e) => return Err(format!("--subuid-file: {e}")),
        };
        let mut text = String::new();
        file.by_ref()
            .take(16 << 20)
            .read_to_string(&mut text)
            .map_err(|e| format!("--subuid-file {}: read failed: {e}", path.display()))?;
        let mut t = Self::parse(&text, resolve, path);
        t.real = std::fs::read_to_string("/etc/passwd")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(':').nth(2)?.parse().ok())
            .collect();
        Ok(t)
    }

    fn parse(text: &str, resolve: impl Fn(&str) -> Option<u32>, path: &Path) -> Self {
        let mut ranges = Vec::new();
        // Lines end at `\n` only and are not trimmed: shadow reads ` victim:…`, `…:65536 ` and
        // `…\r` as no range of victim's (outside review r69 F2: counted here, they made an
        // overlap that refused the real owner's uids).
        for (n, line) in text.split('\n').enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // read as shadow's `newuidmap` reads it (outside review r67 F2): the first three
            // fields (more are ignored), numbers as `strtoul(s, 0)` (`0x` hex, a leading `0`
            // octal)
            let mut f = line.split(':');
            let (Some(owner), Some(start), Some(count)) = (f.next(), f.next(), f.next()) else {
                tracing::warn!(file = %path.display(), line = n + 1, "not OWNER:START:COUNT: skipped");
                continue;
            };
            // the owner as written: a user name, or a uid in plain digits (no blank, no sign)
            let owner_uid = if !owner.is_empty() && owner.bytes().all(|b| b.is_ascii_digit()) {
                owner.parse::<u32>().ok()
            } else {
                resolve(owner)
            };
            match (owner_uid, c_ulong(start), c_ulong(count)) {
                (Some(o), Some(s), Some(c)) if c > 0 => ranges.push((s, c, o)),
                _ => {
                    tracing::warn!(file = %path.display(), line = n + 1, "owner unknown or range unreadable: skipped")
                }
            }
        }
        SubUids {
            ranges,
            real: HashSet::new(),
        }
    }

    /// Who answers for `uid`: itself (no range holds it, `/etc/passwd` lists it, or it is its
    /// range's owner), the one owner of the ranges that hold it, or nobody when ranges of
    /// several owners hold it (outside review r67 F1: the first line's owner answered, so a
    /// user whose range overlapped another's spent that user's budget under that user's rules;
    /// `newuidmap` lets every owner of an overlapping range map those uids).
    pub fn owner_of(&self, uid: u32) -> Answer {
        if self.ranges.is_empty() || self.real.contains(&uid) {
            return Answer::Itself;
        }
        // per connection: no allocation unless two owners claim the uid (refused, rare)
        let mut owners = self
            .ranges
            .iter()
            .filter(|(s, c, _)| uid >= *s && u64::from(uid) < u64::from(*s) + u64::from(*c))
            .map(|(_, _, o)| *o);
        let Some(first) = owners.next() else {
            return Answer::Itself;
        };
        if owners.clone().all(|o| o == first) {
            return if first == uid {
                Answer::Itself
            } else {
                Answer::Owner(first)
            };
        }
        let mut all: Vec<u32> = std::iter::once(first).chain(owners).collect();
        all.sort_unstable();
        all.dedup();
        Answer::Ambiguous(all)
    }

    /// Pairs of owners whose ranges overlap (said at start-up).
    pub fn overlaps(&self) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for (i, (s1, c1, o1)) in self.ranges.iter().enumerate() {
            for (s2, c2, o2) in &self.ranges[i + 1..] {
                let (a, b) = (u64::from(*s1), u64::from(*s2));
                if o1 != o2 && a < b + u64::from(*c2) && b < a + u64::from(*c1) {
                    out.push(((*o1).min(*o2), (*o1).max(*o2)));
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// `strtoul(s, &end, 0)` with the whole string consumed, as shadow reads `/etc/subuid`:
/// leading blanks skipped, a sign (`-` negates modulo 2^64, as `strtoul` does: outside review
/// r69 F1, `-18446744073709451616` is 100000 to `newuidmap`), `0x`/`0X` hexadecimal, a leading
/// `0` octal, else decimal; beyond 64 bits (`ERANGE`) or above `u32::MAX`: none.
fn c_ulong(s: &str) -> Option<u32> {
    let s = s.trim_start();
    let (negative, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let n = u64::from_str_radix(digits, radix).ok()?;
    let n = if negative { n.wrapping_neg() } else { n };
    u32::try_from(n).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_in_a_range_answers_as_its_owner() {
        let t = SubUids::parse(
            "# comment\nalice:100000:65536\n1001:165536:65536\nbad line\nghost:231072:65536\nbob:x:1\n",
            |n| (n == "alice").then_some(1000),
            Path::new("/etc/subuid"),
        );
        assert_eq!(t.owner_of(100_000), Answer::Owner(1000));
        assert_eq!(t.owner_of(165_535), Answer::Owner(1000));
        assert_eq!(t.owner_of(165_536), Answer::Owner(1001));
        assert_eq!(t.owner_of(231_071), Answer::Owner(1001));
        assert_eq!(
            t.owner_of(231_072),
            Answer::Itself,
            "an owner that names no user is skipped"
        );
        assert_eq!(t.owner_of(99_999), Answer::Itself);
        assert_eq!(t.owner_of(1000), Answer::Itself);
        assert_eq!(t.owner_of(u32::MAX), Answer::Itself);
        let mut t = t;
        t.real.insert(100_001);
        assert_eq!(
            t.owner_of(100_001),
            Answer::Itself,
            "a user of /etc/passwd answers as itself"
        );
        assert!(t.overlaps().is_empty());
    }

    /// Outside review r67 F1, F2: overlapping ranges of two owners make their common uids
    /// nobody's (refused), and numbers and fields are read as `newuidmap` reads them.
    #[test]
    fn overlaps_are_nobodys_and_numbers_are_read_as_shadow_reads_them() {
        let t = SubUids::parse(
            "4300:100000:65536\n4242:100000:65536\n4242:0100000:16\n4243:0x30000:8:extra\n",
            |_| None,
            Path::new("/etc/subuid"),
        );
        assert_eq!(t.owner_of(100_005), Answer::Ambiguous(vec![4242, 4300]));
        assert_eq!(t.overlaps(), vec![(4242, 4300)]);
        assert_eq!(
            t.owner_of(0o100000),
            Answer::Owner(4242),
            "a leading 0 is octal"
        );
        assert_eq!(
            t.owner_of(0x30007),
            Answer::Owner(4243),
            "hex, and a fourth field"
        );
        assert_eq!(c_ulong("08"), None);
        assert_eq!(c_ulong("0"), Some(0));
        assert_eq!(c_ulong("4294967296"), None);
        // outside review r69 F1, F2
        assert_eq!(c_ulong("-18446744073709451616"), Some(100_000));
        assert_eq!(c_ulong("-1"), None);
        assert_eq!(c_ulong("\t 100000"), Some(100_000));
        assert_eq!(c_ulong("100000 "), None);
        let t = SubUids::parse(
            " 4300:100000:65536\n4300:100000:65536 \n4300:100000:65536\r\n4242:100000:65536\n",
            |_| None,
            Path::new("/etc/subuid"),
        );
        assert_eq!(
            t.owner_of(100_005),
            Answer::Owner(4242),
            "lines shadow ignores"
        );
    }
}
