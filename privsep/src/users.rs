//! Resolving user and group names (or numeric ids) through the system databases (NSS).
//!
//! Resolution happens at start-up: after the privilege drop and Landlock, `/etc` is unreadable.

use std::ffi::OsStr;
use std::io;

use crate::sys;

/// Errors resolving a user or group given on the command line.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The user name is not in the passwd database.
    #[error("unknown user {0:?}: no such entry in the passwd database")]
    UnknownUser(String),
    /// The group name is not in the group database.
    #[error("unknown group {0:?}: no such entry in the group database")]
    UnknownGroup(String),
    /// A numeric uid without a passwd entry where one is needed (its primary group).
    #[error("uid {0} has no passwd entry: give a user name, or UID:GID")]
    UidWithoutEntry(u32),
    /// Empty or malformed specification.
    #[error("invalid {what} {given:?}: {reason}")]
    Invalid {
        /// "user" or "group".
        what: &'static str,
        /// What was given.
        given: String,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// The database lookup itself failed.
    #[error("{call} for {given:?} failed: {source}")]
    Lookup {
        /// The libc call.
        call: &'static str,
        /// What was looked up.
        given: String,
        /// The error.
        source: io::Error,
    },
}

/// A resolved account: the ids a privilege drop switches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The name, if the account has a passwd entry.
    pub name: Option<String>,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

fn parse_id(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn check_nonempty(what: &'static str, s: &str) -> Result<(), ResolveError> {
    if s.is_empty() {
        return Err(ResolveError::Invalid {
            what,
            given: s.to_owned(),
            reason: "empty",
        });
    }
    if s.contains('\0') {
        return Err(ResolveError::Invalid {
            what,
            given: s.to_owned(),
            reason: "contains a NUL byte",
        });
    }
    Ok(())
}

/// Resolves a user id: a name, or a numeric uid (which need not have a passwd entry).
pub fn resolve_uid(spec: &str) -> Result<u32, ResolveError> {
    check_nonempty("user", spec)?;
    if let Some(uid) = parse_id(spec) {
        return Ok(uid);
    }
    match sys::getpwnam(OsStr::new(spec)) {
        Ok(Some(pw)) => Ok(pw.uid),
        Ok(None) => Err(ResolveError::UnknownUser(spec.to_owned())),
        Err(source) => Err(ResolveError::Lookup {
            call: "getpwnam_r",
            given: spec.to_owned(),
            source,
        }),
    }
}

/// Resolves a group id: a name, or a numeric gid (which need not have a group entry).
pub fn resolve_gid(spec: &str) -> Result<u32, ResolveError> {
    check_nonempty("group", spec)?;
    if let Some(gid) = parse_id(spec) {
        return Ok(gid);
    }
    match sys::getgrnam(OsStr::new(spec)) {
        Ok(Some(gr)) => Ok(gr.gid),
        Ok(None) => Err(ResolveError::UnknownGroup(spec.to_owned())),
        Err(source) => Err(ResolveError::Lookup {
            call: "getgrnam_r",
            given: spec.to_owned(),
            source,
        }),
    }
}

/// Resolves an account to run as: `NAME`, `UID` (must have a passwd entry, for its primary
/// group) or `UID:GID` / `NAME:GROUP` (explicit primary group).
pub fn resolve_account(spec: &str) -> Result<Account, ResolveError> {
    check_nonempty("user", spec)?;
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    check_nonempty("user", user)?;
    let entry = if let Some(uid) = parse_id(user) {
        sys::getpwuid(uid).map_err(|source| ResolveError::Lookup {
            call: "getpwuid_r",
            given: user.to_owned(),
            source,
        })?
    } else {
        Some(
            sys::getpwnam(OsStr::new(user))
                .map_err(|source| ResolveError::Lookup {
                    call: "getpwnam_r",
                    given: user.to_owned(),
                    source,
                })?
                .ok_or_else(|| ResolveError::UnknownUser(user.to_owned()))?,
        )
    };
    let gid = match group {
        Some(g) => resolve_gid(g)?,
        None => match &entry {
            Some(pw) => pw.gid,
            None => {
                // Numeric uid without a passwd entry and no explicit group.
                return Err(ResolveError::UidWithoutEntry(parse_id(user).unwrap_or(0)));
            }
        },
    };
    let uid = match &entry {
        Some(pw) => pw.uid,
        None => parse_id(user).unwrap_or(0),
    };
    Ok(Account {
        name: entry.map(|pw| pw.name.to_string_lossy().into_owned()),
        uid,
        gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_root_and_numeric() {
        assert_eq!(resolve_uid("root").unwrap(), 0);
        assert_eq!(resolve_uid("4242").unwrap(), 4242);
        assert_eq!(resolve_gid("root").unwrap(), 0);
        assert_eq!(resolve_gid("777").unwrap(), 777);
    }

    #[test]
    fn unknown_names_are_clear_errors() {
        let e = resolve_uid("no-such-user-privsep-x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown user \"no-such-user-privsep-x\": no such entry in the passwd database"
        );
        let e = resolve_gid("no-such-group-privsep-x").unwrap_err();
        assert!(matches!(e, ResolveError::UnknownGroup(_)), "{e}");
        assert!(matches!(
            resolve_uid("").unwrap_err(),
            ResolveError::Invalid { .. }
        ));
    }

    #[test]
    fn accounts() {
        let nobody = resolve_account("nobody").unwrap();
        assert_eq!(nobody.uid, 65534);
        assert_eq!(nobody.name.as_deref(), Some("nobody"));
        let explicit = resolve_account("65534:0").unwrap();
        assert_eq!((explicit.uid, explicit.gid), (65534, 0));
        // A uid with no passwd entry needs an explicit group.
        assert!(matches!(
            resolve_account("3999999").unwrap_err(),
            ResolveError::UidWithoutEntry(3_999_999)
        ));
        let bare = resolve_account("3999999:3999999").unwrap();
        assert_eq!(
            (bare.uid, bare.gid, bare.name),
            (3_999_999, 3_999_999, None)
        );
    }
}
