//! One Landlock builder: the ABI pinned once, a compatibility level per profile.
//!
//! Every ruleset handles all filesystem rights of [`TARGET_ABI`] and both scopes (signals,
//! abstract unix sockets), optionally TCP bind/connect; what is not allowed by a rule is denied.
//!
//! - [`Compat::BestEffort`] (the sandbox): the kernel enforces what it can, the returned
//!   [`Enforcement`] says how much; a path that cannot be opened gets no rule (it stays denied).
//!   The caller refuses weaker kernels beforehand with the [`crate::kernel`] table.
//! - [`Compat::HardRequirement`] (the proxy): any feature the kernel lacks, or a path that cannot
//!   be opened, is an error before anything is restricted; anything but
//!   [`Enforcement::FullyEnforced`] is an error.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use landlock::{
    ABI, Access as _, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath,
    PathFd, Ruleset, RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetError, RulesetStatus,
    Scope,
};

use crate::Enforcement;
use crate::kernel::{Feature, KernelSupport, Missing};

/// The Landlock ABI this crate is written and tested against: rights of later ABIs are not
/// handled (rust-landlock's advice: pin the ABI you have tested). The only place it is named.
pub const TARGET_ABI: ABI = ABI::V6;
/// [`TARGET_ABI`] as a number, for messages.
pub const TARGET_ABI_VERSION: i32 = 6;

/// What to do when the kernel cannot enforce everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compat {
    /// Enforce what the kernel offers and report it.
    BestEffort,
    /// Fail unless everything is enforced.
    HardRequirement,
}

/// Rights on a path (on a file, the file rights among them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read files, list directories, execute.
    ReadExec,
    /// Read files, list directories.
    Read,
    /// List the directory only.
    ListOnly,
    /// Read, write and truncate an existing file (`/dev/null`).
    ReadWriteFile,
    /// Read, list, create regular files and write them (no removal, no directories).
    CreateFiles,
    /// Every right.
    Full,
}

impl Access {
    fn bits(self) -> BitFlags<AccessFs> {
        match self {
            Access::ReadExec => AccessFs::from_read(TARGET_ABI),
            Access::Read => AccessFs::ReadFile | AccessFs::ReadDir,
            Access::ListOnly => AccessFs::ReadDir.into(),
            Access::ReadWriteFile => AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate,
            Access::CreateFiles => {
                AccessFs::ReadFile | AccessFs::ReadDir | AccessFs::WriteFile | AccessFs::MakeReg
            }
            Access::Full => AccessFs::from_all(TARGET_ABI),
        }
    }
}

/// Errors while building or applying a ruleset; each names the step or the path.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("landlock cannot be enforced in full: missing {}", list(missing))]
    Unsupported { missing: Vec<Missing> },
    #[error("failed to open {} for a landlock rule: {source}", path.display())]
    PathFd {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to create the landlock ruleset: {source}")]
    Create {
        #[source]
        source: RulesetError,
    },
    #[error("failed to add a landlock rule for {}: {source}", path.display())]
    AddRule {
        path: PathBuf,
        #[source]
        source: RulesetError,
    },
    #[error("failed to add a landlock rule for tcp port {port}: {source}")]
    AddPort {
        port: u16,
        #[source]
        source: RulesetError,
    },
    #[error("failed to enforce the landlock ruleset (landlock_restrict_self): {source}")]
    Restrict {
        #[source]
        source: RulesetError,
    },
    #[error("the landlock ruleset is {status}, not fully enforced")]
    NotFullyEnforced { status: Enforcement },
}

fn list(missing: &[Missing]) -> String {
    missing
        .iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Where a rule's directory or file comes from.
#[derive(Debug)]
enum Beneath {
    /// Opened by [`Landlock::create`] (`O_PATH`, links followed).
    Path(PathBuf),
    /// Opened and checked by the caller; the path only names it in messages.
    Fd { fd: OwnedFd, name: PathBuf },
}

/// The descriptor a rule is added from.
enum RuleFd {
    Opened(PathFd),
    Owned(OwnedFd),
}

impl AsFd for RuleFd {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            RuleFd::Opened(fd) => fd.as_fd(),
            RuleFd::Owned(fd) => fd.as_fd(),
        }
    }
}

/// A ruleset description; descriptors given with [`Landlock::allow_fd`] are held, paths are not
/// opened yet.
#[derive(Debug)]
pub struct Landlock {
    compat: Compat,
    restrict_tcp: bool,
    paths: Vec<(Beneath, Access)>,
    connect_ports: Vec<u16>,
}

impl Landlock {
    /// All filesystem rights and both scopes handled; nothing allowed yet.
    pub fn new(compat: Compat) -> Self {
        Landlock {
            compat,
            restrict_tcp: false,
            paths: Vec::new(),
            connect_ports: Vec::new(),
        }
    }

    /// Also handle TCP: `bind` denied everywhere, `connect` only to [`Landlock::allow_connect`]
    /// ports.
    pub fn restrict_tcp(mut self) -> Self {
        self.restrict_tcp = true;
        self
    }

    /// Allow `access` beneath `path` (opened, following links, by [`Landlock::create`]).
    pub fn allow_path(mut self, path: impl Into<PathBuf>, access: Access) -> Self {
        self.paths.push((Beneath::Path(path.into()), access));
        self
    }

    /// Allow `access` beneath the directory or file `fd` refers to (an `O_PATH` descriptor the
    /// caller opened and checked): the rule lands on that object, whatever its path names by the
    /// time the ruleset is created. `name` is used in messages only.
    pub fn allow_fd(mut self, fd: OwnedFd, access: Access, name: impl Into<PathBuf>) -> Self {
        self.paths.push((
            Beneath::Fd {
                fd,
                name: name.into(),
            },
            access,
        ));
        self
    }

    /// Allow TCP `connect` to `port` (with [`Landlock::restrict_tcp`]).
    pub fn allow_connect(mut self, port: u16) -> Self {
        self.connect_ports.push(port);
        self
    }

    /// The features this ruleset needs to be fully enforced.
    pub fn features(&self) -> Vec<Feature> {
        Feature::LANDLOCK
            .into_iter()
            .filter(|&f| f != Feature::LandlockTcp || self.restrict_tcp)
            .collect()
    }

    /// Open one `O_PATH` descriptor per path and create the ruleset (nothing is restricted yet).
    pub fn create(self) -> Result<Created, LandlockError> {
        let hard = self.compat == Compat::HardRequirement;
        if hard {
            let wanted: Vec<(Feature, bool)> =
                self.features().into_iter().map(|f| (f, true)).collect();
            let missing = KernelSupport::probe().missing_of(&wanted);
            if !missing.is_empty() {
                return Err(LandlockError::Unsupported { missing });
            }
        }
        let create = |source| LandlockError::Create { source };
        let mut ruleset = Ruleset::default()
            .set_compatibility(match self.compat {
                Compat::BestEffort => CompatLevel::BestEffort,
                Compat::HardRequirement => CompatLevel::HardRequirement,
            })
            .handle_access(AccessFs::from_all(TARGET_ABI))
            .map_err(create)?;
        if self.restrict_tcp {
            ruleset = ruleset
                .handle_access(AccessNet::from_all(TARGET_ABI))
                .map_err(create)?;
        }
        let mut created = ruleset
            .scope(Scope::from_all(TARGET_ABI))
            .map_err(create)?
            .create()
            .map_err(create)?;
        for (beneath, access) in self.paths {
            let (fd, path) = match beneath {
                Beneath::Fd { fd, name } => (RuleFd::Owned(fd), name),
                Beneath::Path(path) => match PathFd::new(&path) {
                    Ok(fd) => (RuleFd::Opened(fd), path),
                    Err(e) if hard => {
                        return Err(LandlockError::PathFd {
                            path,
                            source: io::Error::other(e.to_string()),
                        });
                    }
                    // Best effort: no rule, so the path stays denied.
                    Err(_) => continue,
                },
            };
            let is_dir = fd
                .as_fd()
                .try_clone_to_owned()
                .and_then(|owned| std::fs::File::from(owned).metadata())
                .map(|m| m.is_dir());
            let bits = match is_dir {
                Ok(false) => access.bits() & AccessFs::from_file(TARGET_ABI),
                Ok(true) => access.bits(),
                Err(source) if hard => return Err(LandlockError::PathFd { path, source }),
                // Best effort, as rust-landlock's `path_beneath_rules`: the requested rights.
                Err(_) => access.bits(),
            };
            created = created
                .add_rule(PathBeneath::new(fd, bits))
                .map_err(|source| LandlockError::AddRule { path, source })?;
        }
        for port in self.connect_ports {
            created = created
                .add_rule(NetPort::new(port, AccessNet::ConnectTcp))
                .map_err(|source| LandlockError::AddPort { port, source })?;
        }
        Ok(Created {
            ruleset: created,
            compat: self.compat,
        })
    }
}

/// A layer that handles no access right and only the scopes (signals, abstract unix sockets):
/// enforced on top of a process's domain, it puts what the process runs next in a *nested*
/// domain, which cannot signal (nor ptrace) the processes of the enclosing one. Needs ABI 6;
/// best effort like [`Compat::BestEffort`] (nothing is restricted on older kernels).
pub fn scopes_only() -> Result<Created, LandlockError> {
    let create = |source| LandlockError::Create { source };
    let created = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .scope(Scope::from_all(TARGET_ABI))
        .map_err(create)?
        .create()
        .map_err(create)?;
    Ok(Created {
        ruleset: created,
        compat: Compat::BestEffort,
    })
}

/// A ruleset with all rules added, not yet enforced.
pub struct Created {
    ruleset: RulesetCreated,
    compat: Compat,
}

impl Created {
    /// `landlock_restrict_self`: from here on this thread (and what it creates and executes) is
    /// confined. The status is also recorded for `secure_main::hardening_report`.
    pub fn restrict_self(self) -> Result<Enforcement, LandlockError> {
        let status = self
            .ruleset
            .restrict_self()
            .map_err(|source| LandlockError::Restrict { source })?;
        let status = enforcement(&status.ruleset);
        secure_main::record_landlock_status(status);
        if self.compat == Compat::HardRequirement && status != Enforcement::FullyEnforced {
            return Err(LandlockError::NotFullyEnforced { status });
        }
        Ok(status)
    }
}

/// rust-landlock's status as ours.
pub fn enforcement(status: &RulesetStatus) -> Enforcement {
    match status {
        RulesetStatus::FullyEnforced => Enforcement::FullyEnforced,
        RulesetStatus::PartiallyEnforced => Enforcement::PartiallyEnforced,
        RulesetStatus::NotEnforced => Enforcement::NotEnforced,
    }
}
