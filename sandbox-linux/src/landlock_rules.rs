//! The sandbox's Landlock profile: the filesystem rules of [`crate::fs_rules`], TCP bind/connect
//! denied when the network is off, signal + abstract-unix-socket scoping. Best effort
//! (`codex_confine::landlock::Compat::BestEffort`): the caller has already refused kernels that
//! lack a required feature, and the returned status says what the kernel enforced. The ABI is
//! `codex-confine`'s ([`codex_confine::landlock::TARGET_ABI`]).

use codex_confine::landlock::{Compat, Created, Landlock};

pub use codex_confine::landlock::LandlockError;

use crate::fs_rules::FsPlan;

/// Build the ruleset (opens one `O_PATH` descriptor per rule). Paths that cannot be opened get no
/// rule, which denies them.
pub fn prepare(plan: &FsPlan, network: bool) -> Result<Created, LandlockError> {
    let mut ruleset = Landlock::new(Compat::BestEffort);
    if !network {
        ruleset = ruleset.restrict_tcp();
    }
    for rule in &plan.rules {
        ruleset = ruleset.allow_path(&rule.path, rule.grant);
    }
    ruleset.create()
}
