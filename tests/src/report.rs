//! The attacker helper's report: one line per attempt, parsed back by the story test.
//!
//! ```text
//! attempt=environ target=4242 ok bytes=812
//! attempt=mem target=4242 err syscall=open errno=EACCES
//! ```
//!
//! What an attempt obtained (file contents, memory) is never printed: the helper writes it to a
//! loot file named after the attempt in a directory the test gives it, and the test scans the loot
//! for the key. Nothing in these lines can carry a secret.

use std::fmt;
use std::io;

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The syscalls succeeded; `bytes` were obtained (0 for attach/kill/connect).
    Ok { bytes: u64 },
    /// `syscall` failed with `errno`.
    Err { syscall: String, errno: i32 },
}

/// One line of the helper's report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub name: String,
    pub target: String,
    pub outcome: Outcome,
}

impl Attempt {
    pub fn ok(name: &str, target: &str, bytes: u64) -> Self {
        Attempt {
            name: name.to_string(),
            target: target.to_string(),
            outcome: Outcome::Ok { bytes },
        }
    }

    /// A failed attempt; an `io::Error` without an errno is reported as `EIO`.
    pub fn err(name: &str, target: &str, syscall: &str, e: &io::Error) -> Self {
        Attempt {
            name: name.to_string(),
            target: target.to_string(),
            outcome: Outcome::Err {
                syscall: syscall.to_string(),
                errno: e.raw_os_error().unwrap_or(libc::EIO),
            },
        }
    }

    /// The errno name when the attempt failed.
    pub fn errno_name(&self) -> Option<&'static str> {
        match &self.outcome {
            Outcome::Err { errno, .. } => Some(errno_name(*errno)),
            Outcome::Ok { .. } => None,
        }
    }

    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, Outcome::Ok { .. })
    }

    /// Parses one report line; `None` for lines that are not attempts.
    pub fn parse(line: &str) -> Option<Self> {
        let mut words = line.split_whitespace();
        let name = words.next()?.strip_prefix("attempt=")?.to_string();
        let target = words.next()?.strip_prefix("target=")?.to_string();
        let outcome = match words.next()? {
            "ok" => Outcome::Ok {
                bytes: words.next()?.strip_prefix("bytes=")?.parse().ok()?,
            },
            "err" => {
                let syscall = words.next()?.strip_prefix("syscall=")?.to_string();
                let errno = errno_from_name(words.next()?.strip_prefix("errno=")?)?;
                Outcome::Err { syscall, errno }
            }
            _ => return None,
        };
        Some(Attempt {
            name,
            target,
            outcome,
        })
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt={} target={} ", self.name, self.target)?;
        match &self.outcome {
            Outcome::Ok { bytes } => write!(f, "ok bytes={bytes}"),
            Outcome::Err { syscall, errno } => match ERRNOS.iter().find(|(n, _)| n == errno) {
                Some((_, name)) => write!(f, "err syscall={syscall} errno={name}"),
                None => write!(f, "err syscall={syscall} errno={errno}"),
            },
        }
    }
}

const ERRNOS: &[(i32, &str)] = &[
    (libc::EPERM, "EPERM"),
    (libc::ENOENT, "ENOENT"),
    (libc::ESRCH, "ESRCH"),
    (libc::EINTR, "EINTR"),
    (libc::EIO, "EIO"),
    (libc::EBADF, "EBADF"),
    (libc::EAGAIN, "EAGAIN"),
    (libc::ENOMEM, "ENOMEM"),
    (libc::EACCES, "EACCES"),
    (libc::EEXIST, "EEXIST"),
    (libc::EROFS, "EROFS"),
    (libc::EFAULT, "EFAULT"),
    (libc::EBUSY, "EBUSY"),
    (libc::EINVAL, "EINVAL"),
    (libc::ENOSYS, "ENOSYS"),
    (libc::ECONNREFUSED, "ECONNREFUSED"),
    (libc::ENETUNREACH, "ENETUNREACH"),
    (libc::ETIMEDOUT, "ETIMEDOUT"),
    (libc::EAFNOSUPPORT, "EAFNOSUPPORT"),
];

/// `EACCES` for 13; `EUNKNOWN` for numbers without a name here (the report line then carries
/// the number).
pub fn errno_name(errno: i32) -> &'static str {
    ERRNOS
        .iter()
        .find(|(n, _)| *n == errno)
        .map(|(_, name)| *name)
        .unwrap_or("EUNKNOWN")
}

fn errno_from_name(name: &str) -> Option<i32> {
    ERRNOS
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(e, _)| *e)
        .or_else(|| name.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let a = Attempt::err(
            "mem",
            "42",
            "open",
            &io::Error::from_raw_os_error(libc::EACCES),
        );
        assert_eq!(
            a.to_string(),
            "attempt=mem target=42 err syscall=open errno=EACCES"
        );
        assert_eq!(Attempt::parse(&a.to_string()), Some(a.clone()));
        assert_eq!(a.errno_name(), Some("EACCES"));
        let b = Attempt::ok("cmdline", "42", 17);
        assert_eq!(Attempt::parse(&b.to_string()), Some(b));
        let c = Attempt::err("x", "1", "y", &io::Error::from_raw_os_error(200));
        assert_eq!(Attempt::parse(&c.to_string()), Some(c));
        assert_eq!(Attempt::parse("something else"), None);
    }
}
