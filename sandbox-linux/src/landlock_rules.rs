//! The sandbox's Landlock profile: the filesystem rules of [`crate::fs_rules`], TCP bind/connect
//! denied when the network is off, signal + abstract-unix-socket scoping. Best effort
//! (`codex_confine::landlock::Compat::BestEffort`): the caller has already refused kernels that
//! lack a required feature, and the returned status says what the kernel enforced. The ABI is
//! `codex-confine`'s ([`codex_confine::landlock::TARGET_ABI`]).

use codex_confine::landlock::{Compat, Created, Landlock};

pub use codex_confine::landlock::LandlockError;

use crate::fs_rules::OpenRule;

/// Build the ruleset from the descriptors [`crate::fs_rules::open`] resolved and checked (they
/// are closed once the rules are in the kernel). No path is opened again here (issue 12 item 8).
pub fn prepare(rules: Vec<OpenRule>, network: bool) -> Result<Created, LandlockError> {
    let mut ruleset = Landlock::new(Compat::BestEffort);
    if !network {
        ruleset = ruleset.restrict_tcp();
    }
    for rule in rules {
        ruleset = ruleset.allow_fd(rule.fd, rule.grant, rule.path);
    }
    ruleset.create()
}

/// [`prepare`] from duplicates of `rules` (the name guard's creator, whose process shares the
/// descriptors with nothing but needs them only borrowed).
pub fn prepare_borrowed(rules: &[OpenRule], network: bool) -> Result<Created, LandlockError> {
    let mut owned = Vec::with_capacity(rules.len());
    for rule in rules {
        let fd = rule
            .fd
            .try_clone()
            .map_err(|source| LandlockError::PathFd {
                path: rule.path.clone(),
                source,
            })?;
        owned.push(OpenRule {
            path: rule.path.clone(),
            grant: rule.grant,
            fd,
        });
    }
    prepare(owned, network)
}
