//! The Landlock ruleset: filesystem rules from [`crate::fs_rules`], TCP bind/connect denial when
//! the network is off, and signal + abstract-unix-socket scoping. Targets ABI
//! [`crate::kernel::TARGET_LANDLOCK_ABI`] best-effort; the caller has already refused kernels
//! that lack a required feature, and the returned status says what the kernel enforced.

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, RestrictionStatus, Ruleset, RulesetAttr,
    RulesetCreated, RulesetCreatedAttr, RulesetError, RulesetStatus, Scope, path_beneath_rules,
};

use crate::fs_rules::{FsPlan, Grant};

const ABI_PINNED: ABI = ABI::V6;

/// Errors while building or applying the ruleset.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("failed to create the landlock ruleset: {source}")]
    Create {
        #[source]
        source: RulesetError,
    },
    #[error("failed to add a landlock rule for {path}: {source}")]
    AddRule {
        path: std::path::PathBuf,
        #[source]
        source: RulesetError,
    },
    #[error("failed to enforce the landlock ruleset (landlock_restrict_self): {source}")]
    Restrict {
        #[source]
        source: RulesetError,
    },
}

fn access(grant: Grant) -> BitFlags<AccessFs> {
    match grant {
        Grant::ReadExec => AccessFs::from_read(ABI_PINNED),
        Grant::ListOnly => AccessFs::ReadDir.into(),
        Grant::Full => AccessFs::from_all(ABI_PINNED),
        Grant::ReadWriteFile => AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate,
    }
}

/// A ruleset with all rules added, not yet enforced.
pub struct Prepared {
    ruleset: RulesetCreated,
}

/// Build the ruleset (opens one `O_PATH` descriptor per rule). Paths that cannot be opened get no
/// rule, which denies them.
pub fn prepare(plan: &FsPlan, network: bool) -> Result<Prepared, LandlockError> {
    let create = |source| LandlockError::Create { source };
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI_PINNED))
        .map_err(create)?;
    if !network {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(ABI_PINNED))
            .map_err(create)?;
    }
    let mut created = ruleset
        .scope(Scope::from_all(ABI_PINNED))
        .map_err(create)?
        .create()
        .map_err(create)?;
    for rule in &plan.rules {
        created = created
            .add_rules(path_beneath_rules([&rule.path], access(rule.grant)))
            .map_err(|source| LandlockError::AddRule {
                path: rule.path.clone(),
                source,
            })?;
    }
    Ok(Prepared { ruleset: created })
}

impl Prepared {
    /// `landlock_restrict_self`: from here on this thread (and what it executes) is confined.
    pub fn restrict_self(self) -> Result<RestrictionStatus, LandlockError> {
        self.ruleset
            .restrict_self()
            .map_err(|source| LandlockError::Restrict { source })
    }
}

/// A short word for the status.
pub fn status_word(status: &RulesetStatus) -> &'static str {
    match status {
        RulesetStatus::FullyEnforced => "fully enforced",
        RulesetStatus::PartiallyEnforced => "partially enforced",
        RulesetStatus::NotEnforced => "not enforced",
    }
}
