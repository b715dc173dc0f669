//! Paths as Seatbelt compares them.
//!
//! Seatbelt matches the *resolved* path of a file. On macOS `/var`, `/tmp` and `/etc` are
//! symlinks into `/private`, so a rule about `/tmp/x` would never match: every path parameter
//! goes through [`seatbelt_path`], which applies that mapping explicitly. The mapping is done
//! here, by hand, rather than by `canonicalize`, so that it is the same (and testable) on Linux,
//! where those directories are not symlinks.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::Error;

/// The top-level names that macOS keeps as compatibility symlinks into `/private`.
pub const PRIVATE_ALIASES: [&str; 3] = ["var", "tmp", "etc"];

/// Validate `path` and map it to the form Seatbelt compares: absolute, no `.`/`..`, no NUL,
/// `/var`, `/tmp`, `/etc` (and everything below them) moved under `/private`. Idempotent.
///
/// `field` names the path in errors (`writable root`, `deny_read`, ...).
pub fn seatbelt_path(field: &'static str, path: &Path) -> Result<PathBuf, Error> {
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(Error::NulByte {
            field,
            path: path.to_path_buf(),
        });
    }
    if !path.is_absolute() {
        return Err(Error::RelativePath {
            field,
            path: path.to_path_buf(),
        });
    }
    let mut names: Vec<&OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => names.push(n),
            Component::CurDir | Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::NotCanonical {
                    field,
                    path: path.to_path_buf(),
                });
            }
        }
    }
    let mut out = PathBuf::from("/");
    if let Some(first) = names.first() {
        if PRIVATE_ALIASES.iter().any(|a| OsStr::new(a) == *first) {
            out.push("private");
        }
    }
    for n in names {
        out.push(n);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(p: &str) -> PathBuf {
        seatbelt_path("test", Path::new(p)).unwrap()
    }

    #[test]
    fn private_aliases_are_mapped() {
        assert_eq!(map("/tmp"), PathBuf::from("/private/tmp"));
        assert_eq!(
            map("/var/folders/ab/T"),
            PathBuf::from("/private/var/folders/ab/T")
        );
        assert_eq!(map("/etc/hosts"), PathBuf::from("/private/etc/hosts"));
    }

    #[test]
    fn mapping_is_idempotent_and_exact_on_component_boundaries() {
        assert_eq!(map("/private/tmp/x"), PathBuf::from("/private/tmp/x"));
        assert_eq!(
            map(&map("/var/x").to_string_lossy()),
            PathBuf::from("/private/var/x")
        );
        // Only whole components are aliases: `/variable`, `/tmpx`, `/Users/var` stay as they are.
        assert_eq!(map("/variable"), PathBuf::from("/variable"));
        assert_eq!(map("/tmpx/y"), PathBuf::from("/tmpx/y"));
        assert_eq!(map("/Users/u/var"), PathBuf::from("/Users/u/var"));
        assert_eq!(map("/"), PathBuf::from("/"));
        // Trailing slashes and doubled separators disappear.
        assert_eq!(map("/Users//u/"), PathBuf::from("/Users/u"));
    }

    #[test]
    fn bad_paths_are_errors_naming_field_and_path() {
        let e = seatbelt_path("deny_read", Path::new("rel/x"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "deny_read: rel/x: not an absolute path");
        let e = seatbelt_path("writable root", Path::new("/a/../b"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("writable root: /a/../b: contains `.` or `..`"),
            "{e}"
        );
        let nul = PathBuf::from(
            <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(b"/a\0b".to_vec()),
        );
        let e = seatbelt_path("deny_read", &nul).unwrap_err();
        assert!(
            matches!(
                e,
                Error::NulByte {
                    field: "deny_read",
                    ..
                }
            ),
            "{e}"
        );
    }
}
