//! `~` expansion for `sandbox.deny_read` entries, shared by the Linux and macOS sandbox commands.
//! Its own file so that `sandbox-macos/scripts/check-macos.sh` compiles the real function for
//! macOS instead of a stand-in.

/// One `sandbox.deny_read` entry with `~` and `~/rest` expanded to `$HOME` and `$HOME/rest`; other
/// paths are returned as given. `None` when the entry uses `~` but `home` is unknown: taken
/// literally it would resolve below the cwd and leave the intended path readable without a word.
pub(super) fn expand_home(
    entry: &str,
    home: Option<&std::path::Path>,
) -> Option<std::path::PathBuf> {
    let rest = if entry == "~" {
        Some("")
    } else {
        entry.strip_prefix("~/")
    };
    match (rest, home) {
        (Some(rest), Some(h)) => Some(h.join(rest)),
        (Some(_), None) => None,
        (None, _) => Some(std::path::PathBuf::from(entry)),
    }
}
