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

impl SubUids {
    /// Reads `path` with the policy file's checks; a missing file is an empty table. `resolve`
    /// turns an owner name into its uid. `Err`: the file is unsafe or unreadable (named).
    pub fn load(path: &Path, resolve: impl Fn(&str) -> Option<u32>) -> Result<Self, String> {
        let mut file = match codex_privsep::open_config_file(path) {
            Ok(f) => f,
            Err(codex_privsep::CredentialError::Open { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
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
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut f = line.split(':');
            let (Some(owner), Some(start), Some(count), None) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                tracing::warn!(file = %path.display(), line = n + 1, "not OWNER:START:COUNT: skipped");
                continue;
            };
            let owner_uid = owner.parse::<u32>().ok().or_else(|| resolve(owner));
            match (owner_uid, start.parse::<u32>(), count.parse::<u32>()) {
                (Some(o), Ok(s), Ok(c)) if c > 0 => ranges.push((s, c, o)),
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

    /// The owner of the range `uid` lies in (not the owner itself: a range that holds its own
    /// owner's uid answers as that uid).
    pub fn owner_of(&self, uid: u32) -> Option<u32> {
        if self.ranges.is_empty() || self.real.contains(&uid) {
            return None;
        }
        self.ranges
            .iter()
            .find(|(s, c, o)| {
                uid >= *s && u64::from(uid) < u64::from(*s) + u64::from(*c) && *o != uid
            })
            .map(|(_, _, o)| *o)
    }
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
        assert_eq!(t.owner_of(100_000), Some(1000));
        assert_eq!(t.owner_of(165_535), Some(1000));
        assert_eq!(t.owner_of(165_536), Some(1001));
        assert_eq!(t.owner_of(231_071), Some(1001));
        assert_eq!(
            t.owner_of(231_072),
            None,
            "an owner that names no user is skipped"
        );
        assert_eq!(t.owner_of(99_999), None);
        assert_eq!(t.owner_of(1000), None);
        assert_eq!(t.owner_of(u32::MAX), None);
        let mut t = t;
        t.real.insert(100_001);
        assert_eq!(
            t.owner_of(100_001),
            None,
            "a user of /etc/passwd answers as itself"
        );
    }
}
