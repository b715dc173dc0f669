//! Directories for sandbox tests.

use std::path::{Path, PathBuf};

/// A base directory for sandbox tests that lies outside every default writable root of the
/// `workspace-write` policy (`/tmp`, `$TMPDIR`): `preferred` (usually `CARGO_TARGET_TMPDIR`)
/// unless it is below one of them (a checkout under `/tmp`), else `/var/tmp`.
///
/// Without this, a test that asserts "writing outside the roots is denied" would pass or fail
/// depending on where the repository was cloned.
pub fn outside_default_roots(preferred: &Path) -> PathBuf {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let pref = canon(preferred);
    let mut roots = vec![canon(Path::new("/tmp"))];
    if let Some(t) = std::env::var_os("TMPDIR").filter(|t| !t.is_empty()) {
        roots.push(canon(Path::new(&t)));
    }
    if roots.iter().any(|r| pref.starts_with(r)) {
        PathBuf::from("/var/tmp")
    } else {
        pref
    }
}
