//! The peer allow-list: which local users may use the key.
//!
//! Resolved once at start-up, while the user and group databases are still readable: after the
//! privilege drop and Landlock, `/etc` is not. Membership of an allowed group is decided by the
//! *databases* (primary group in passwd, or a member list in group: `getgrouplist` of each
//! passwd entry), not by the peer process's current gids, so TCP peers (uid only) and unix
//! peers are judged alike. Limits: users that NSS does not enumerate (`getpwent`; e.g. sssd/LDAP
//! with enumeration off) are not found through their groups: name them with `--allow-user`.
//! Changes to the databases take effect at the next start.

use std::collections::BTreeSet;

use crate::sys;
use crate::users::{self, ResolveError};

/// Errors building an allow-list.
#[derive(Debug, thiserror::Error)]
pub enum AllowListError {
    /// A user or group could not be resolved.
    #[error("allow-list: {0}")]
    Resolve(#[from] ResolveError),
    /// Enumerating the passwd database failed.
    #[error("allow-list: getpwent failed: {source}")]
    Enumerate {
        /// The error.
        source: std::io::Error,
    },
    /// `getgrouplist` failed for a user.
    #[error("allow-list: getgrouplist for {user:?} failed: {source}")]
    GroupList {
        /// The user.
        user: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Who may connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowList {
    /// No `--allow-user`/`--allow-group` given: any local user (codex's behaviour).
    Everyone,
    /// Only these.
    Only {
        /// Allowed uids: named with `--allow-user`, plus every user whose groups (at start-up)
        /// include an allowed group.
        uids: BTreeSet<u32>,
        /// The allowed gids, for reporting.
        gids: BTreeSet<u32>,
    },
}

impl AllowList {
    /// Resolves `--allow-user` and `--allow-group` values (names or numeric ids). Both empty:
    /// [`AllowList::Everyone`].
    pub fn resolve<U, G>(users: U, groups: G) -> Result<Self, AllowListError>
    where
        U: IntoIterator,
        U::Item: AsRef<str>,
        G: IntoIterator,
        G::Item: AsRef<str>,
    {
        let mut uids = BTreeSet::new();
        for u in users {
            uids.insert(users::resolve_uid(u.as_ref())?);
        }
        let mut gids = BTreeSet::new();
        for g in groups {
            gids.insert(users::resolve_gid(g.as_ref())?);
        }
        if uids.is_empty() && gids.is_empty() {
            return Ok(Self::Everyone);
        }
        if !gids.is_empty() {
            let entries =
                sys::all_passwd_entries().map_err(|source| AllowListError::Enumerate { source })?;
            for pw in entries {
                let groups = sys::getgrouplist(&pw.name, pw.gid).map_err(|source| {
                    AllowListError::GroupList {
                        user: pw.name.to_string_lossy().into_owned(),
                        source,
                    }
                })?;
                if groups.iter().any(|g| gids.contains(g)) {
                    uids.insert(pw.uid);
                }
            }
        }
        Ok(Self::Only { uids, gids })
    }

    /// Whether an allow-list restricts access at all.
    pub fn is_restricted(&self) -> bool {
        matches!(self, Self::Only { .. })
    }

    /// Whether `uid` may use the key.
    pub fn allows(&self, uid: u32) -> bool {
        match self {
            Self::Everyone => true,
            Self::Only { uids, .. } => uids.contains(&uid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_everyone() {
        let a = AllowList::resolve(Vec::<String>::new(), Vec::<String>::new()).unwrap();
        assert_eq!(a, AllowList::Everyone);
        assert!(a.allows(12345));
        assert!(!a.is_restricted());
    }

    #[test]
    fn users_by_name_and_number() {
        let a = AllowList::resolve(["nobody", "4242"], Vec::<String>::new()).unwrap();
        assert!(a.allows(65534));
        assert!(a.allows(4242));
        assert!(!a.allows(0), "root is not allowed unless named");
        assert!(!a.allows(4243));
    }

    #[test]
    fn primary_group_counts() {
        // root's primary group is root (gid 0) in every passwd we run on.
        let a = AllowList::resolve(Vec::<String>::new(), ["root"]).unwrap();
        assert!(a.allows(0));
        assert!(!a.allows(65534));
    }

    #[test]
    fn unknown_names_fail_clearly() {
        let e = AllowList::resolve(["no-such-user-privsep-y"], Vec::<String>::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "allow-list: unknown user \"no-such-user-privsep-y\": no such entry in the passwd database"
        );
        let e = AllowList::resolve(Vec::<String>::new(), ["no-such-group-privsep-y"]).unwrap_err();
        assert!(e.to_string().contains("unknown group"), "{e}");
    }
}
