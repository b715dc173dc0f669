//! Whose home the credential defaults protect. `HOME` is only a hint: it may be unset (`env -i`,
//! cron, systemd services), relative, or point somewhere else than the user's real home (`sudo`
//! keeping it, a tool setting `HOME=/tmp/x`). The deny-read defaults then protect nothing, or
//! the wrong tree, while `~/.ssh` of the passwd entry stays readable (outside review, issue 12
//! item 7). So the homes are `HOME` (when absolute) **and** the passwd entry's directory for
//! this process's real uid, both protected when they differ.

use std::path::{Path, PathBuf};

/// The homes to protect, `HOME` first (it is the one `~` in a config entry means), then the
/// passwd entry's when it differs. Empty only when `HOME` is unset or relative and the uid has
/// no passwd entry with an absolute directory.
pub fn homes(home_env: Option<&Path>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = Vec::new();
    if let Some(h) = home_env.filter(|h| h.is_absolute()) {
        v.push(h.to_path_buf());
    }
    if let Some(pw) = crate::sys::passwd_home().filter(|p| p.is_absolute()) {
        if !v.contains(&pw) {
            v.push(pw);
        }
    }
    v
}

/// `$HOME` when set and absolute, else the passwd entry's directory (what `~` means).
pub fn user_home(home_env: Option<&Path>) -> Option<PathBuf> {
    homes(home_env).into_iter().next()
}
