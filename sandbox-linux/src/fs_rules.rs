//! The filesystem part of the policy as a list of Landlock "allow beneath" rules.
//!
//! Landlock can only *allow*: a rule on a directory grants its rights on the whole tree below it.
//! To read "everything except the deny-read list" without namespaces, a rule that would cover a
//! denied path is replaced by its complement: the directory itself gets only the right to list
//! its entries (`ListOnly`), and each of its entries gets the full grant, recursively down to the
//! denied path, which gets nothing.
//!
//! Trade-offs (documented in the README and docs/security.md):
//! - entries created *after* the sandbox starts beside a denied path (in one of its ancestor
//!   directories) are unreadable, because no rule names them;
//! - the names inside a denied directory can be listed (the ancestors' list right is inherited),
//!   but no file below it can be opened, read, written or executed;
//! - a writable root that contains a denied path cannot create or remove entries directly in the
//!   ancestor directories of the denied path (for example `$HOME` itself when `~/.ssh` is denied);
//! - a deny-read path that does not exist when the sandbox starts is not protected (nothing to
//!   protect then; a command could create and read it);
//! - a symlink among the siblings that points into (or above) a denied path gets no rule.

use std::path::{Path, PathBuf};

use sandbox_policy::EffectivePolicy;

/// What a rule grants: `codex-confine`'s Landlock access sets.
pub use codex_confine::landlock::Access as Grant;

/// One Landlock rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsRule {
    pub path: PathBuf,
    pub grant: Grant,
    /// `path` is a symbolic link among the siblings of a denied path: the rule lands on its
    /// target, which must not hold or lie in a denied path (checked on the descriptor by
    /// [`open`]).
    pub link: bool,
}

/// The rules for a policy, and what had to be left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsPlan {
    pub rules: Vec<FsRule>,
    /// Writable roots that lie inside a deny-read path: the deny wins and the root is not granted.
    pub roots_inside_denied: Vec<PathBuf>,
    /// Directories that only got `ListOnly` because a denied path is below them.
    pub list_only: Vec<PathBuf>,
    /// The deny-read paths (with their aliases at other mount points) and `/dev`: no rule may
    /// land in them.
    pub hidden: Vec<PathBuf>,
}

/// A rule resolved to the object it is added from ([`open`]).
#[derive(Debug)]
pub struct OpenRule {
    /// The planned path (messages only: the rule is added from `fd`).
    pub path: PathBuf,
    pub grant: Grant,
    /// `O_PATH` descriptor from [`crate::resolve::open`].
    pub fd: std::os::fd::OwnedFd,
}

/// Resolve every rule of `plan` once ([`crate::resolve`]) and keep the descriptors: the
/// Landlock rules are added from them ([`crate::landlock_rules::prepare`]). A path that does not
/// exist (any more) gets no rule, which denies it; a link among the siblings of a denied path
/// that now lands in (or above) a denied path gets none either. A path that goes through a
/// symbolic link not owned by root is refused: it was swapped in after the policy was checked.
pub fn open(plan: &FsPlan) -> Result<Vec<OpenRule>, crate::resolve::ResolveError> {
    use crate::resolve::{self, LastLink};
    let mut out = Vec::with_capacity(plan.rules.len());
    let mut cache = resolve::Cache::default();
    for rule in &plan.rules {
        let last = if rule.link {
            LastLink::Follow
        } else {
            LastLink::Judge
        };
        let resolved = match resolve::open_cached(&rule.path, last, &mut cache) {
            Ok(r) => r,
            Err(e) if e.is_missing() => continue,
            Err(e) => return Err(e),
        };
        if rule.link {
            // judged by where the descriptor landed, not by a second look at the path
            match resolve::real_path(&resolved.fd) {
                Ok(target)
                    if !is_denied(&target, &plan.hidden)
                        && !is_strict_ancestor_of_denied(&target, &plan.hidden) => {}
                _ => continue,
            }
        }
        out.push(OpenRule {
            path: rule.path.clone(),
            grant: rule.grant,
            fd: resolved.fd,
        });
    }
    Ok(out)
}

/// Build the rules for `policy` (reads the directories along each denied path).
pub fn plan(policy: &EffectivePolicy) -> FsPlan {
    let mut plan = FsPlan::default();
    // A denied path that does not exist now holds nothing to protect; restricting its ancestors
    // would only cost writes (e.g. the cwd when $HOME is below it).
    let mut denied: Vec<PathBuf> = policy
        .deny_read
        .iter()
        .filter(|d| d.symlink_metadata().is_ok())
        .cloned()
        .collect();
    // the same files at other mount points (bind mounts) are denied there too
    let aliases = crate::mount_aliases::from_this_process(&denied);
    denied.extend(aliases);
    // `/dev` is denied like a deny-read path; only `devices::ALLOWED` get rules (other
    // terminals, input devices, /dev/shm stay unopenable).
    let mut hidden = denied.clone();
    hidden.push(PathBuf::from(crate::devices::DEV));
    plan.hidden = hidden.clone();
    let hidden = &hidden;
    expand(Path::new("/"), Grant::ReadExec, hidden, &mut plan);
    for root in &policy.writable_roots {
        if is_denied(&root.root, hidden) {
            plan.roots_inside_denied.push(root.root.clone());
            continue;
        }
        expand(&root.root, Grant::Full, hidden, &mut plan);
    }
    for (dev, grant, _reason) in crate::devices::ALLOWED {
        if !is_denied(Path::new(dev), &denied) {
            plan.rules.push(FsRule {
                path: PathBuf::from(dev),
                grant: *grant,
                link: false,
            });
        }
    }
    plan
}

fn is_denied(path: &Path, denied: &[PathBuf]) -> bool {
    denied.iter().any(|d| path.starts_with(d))
}

fn is_strict_ancestor_of_denied(path: &Path, denied: &[PathBuf]) -> bool {
    denied
        .iter()
        .any(|d| d.starts_with(path) && d.as_path() != path)
}

fn expand(path: &Path, grant: Grant, denied: &[PathBuf], plan: &mut FsPlan) {
    if is_denied(path, denied) {
        return;
    }
    if !is_strict_ancestor_of_denied(path, denied) {
        plan.rules.push(FsRule {
            path: path.to_path_buf(),
            grant,
            link: false,
        });
        return;
    }
    plan.rules.push(FsRule {
        path: path.to_path_buf(),
        grant: Grant::ListOnly,
        link: false,
    });
    if !plan.list_only.iter().any(|p| p == path) {
        plan.list_only.push(path.to_path_buf());
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for entry in entries.flatten() {
        let child = path.join(entry.file_name());
        let is_symlink = entry.file_type().map(|t| t.is_symlink()).unwrap_or(false);
        if is_symlink {
            // The rule would land on the symlink's target: skip targets that hold or lie in a
            // denied path (and dangling links, which grant nothing).
            match std::fs::canonicalize(&child) {
                Ok(target)
                    if !is_denied(&target, denied)
                        && !is_strict_ancestor_of_denied(&target, denied) =>
                {
                    plan.rules.push(FsRule {
                        path: child,
                        grant,
                        link: true,
                    });
                }
                _ => {}
            }
            continue;
        }
        expand(&child, grant, denied, plan);
    }
}

/// After a procfs of the sandbox's pid namespace covers `/proc`: the rules below `/proc`
/// resolved again, in this process (the old descriptors name the launcher's procfs, a rule on
/// which does not cover the new one). `/` and `/proc` are root's: no link to judge on the way.
pub fn reopen_proc(rules: &mut Vec<OpenRule>) -> Result<(), crate::resolve::ResolveError> {
    use crate::resolve::{self, LastLink};
    let mut kept = Vec::with_capacity(rules.len());
    for mut rule in rules.drain(..) {
        if rule.path.starts_with("/proc") {
            match resolve::open(&rule.path, LastLink::Judge) {
                Ok(r) => rule.fd = r.fd,
                Err(e) if e.is_missing() => continue,
                Err(e) => return Err(e),
            }
        }
        kept.push(rule);
    }
    *rules = kept;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sandbox_policy::{PolicyKind, WritableRoot};

    fn policy(deny: Vec<PathBuf>, roots: Vec<PathBuf>) -> EffectivePolicy {
        EffectivePolicy {
            kind: PolicyKind::WorkspaceWrite,
            cwd: PathBuf::from("/"),
            writable_roots: roots
                .into_iter()
                .map(|root| WritableRoot {
                    root,
                    read_only_subpaths: Vec::new(),
                })
                .collect(),
            deny_read: deny,
            network: false,
            deny_read_unsearched: Vec::new(),
            sockets_through_links: Vec::new(),
            temp_roots: Vec::new(),
            writable_home: None,
        }
    }

    #[test]
    fn without_a_deny_list_only_dev_is_complemented_and_only_harmless_devices_granted() {
        let p = plan(&policy(vec![], vec![PathBuf::from("/tmp")]));
        let has = |path: &str, grant: Grant| {
            p.rules
                .iter()
                .any(|r| r.path == Path::new(path) && r.grant == grant)
        };
        assert!(has("/", Grant::ListOnly));
        assert!(has("/usr", Grant::ReadExec));
        assert!(has("/tmp", Grant::Full));
        assert!(has("/dev/null", Grant::ReadWriteFile));
        assert!(has("/dev/urandom", Grant::Read));
        assert!(!p.rules.iter().any(|r| r.path == Path::new("/dev")));
        for other in [
            "/dev/pts",
            "/dev/tty",
            "/dev/ptmx",
            "/dev/input",
            "/dev/shm",
        ] {
            assert!(
                !p.rules.iter().any(|r| r.path.starts_with(other)),
                "{other} must get no rule"
            );
        }
    }

    #[test]
    fn complement_names_siblings_but_not_the_denied_path() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let home = base.join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::create_dir_all(home.join("src")).unwrap();
        std::fs::write(home.join(".bashrc"), "x").unwrap();
        std::os::unix::fs::symlink(home.join(".ssh"), home.join("keys")).unwrap();
        std::os::unix::fs::symlink(home.join("src"), home.join("code")).unwrap();
        let p = plan(&policy(vec![home.join(".ssh")], vec![home.clone()]));
        let has =
            |path: &Path, grant: Grant| p.rules.iter().any(|r| r.path == path && r.grant == grant);
        assert!(has(Path::new("/"), Grant::ListOnly));
        assert!(has(&home, Grant::ListOnly));
        assert!(has(&home.join(".bashrc"), Grant::ReadExec));
        assert!(has(&home.join("src"), Grant::Full));
        assert!(
            has(&home.join("code"), Grant::Full),
            "harmless symlink keeps its rule"
        );
        assert!(
            !p.rules
                .iter()
                .any(|r| r.path.starts_with(home.join(".ssh")))
        );
        assert!(
            !p.rules.iter().any(|r| r.path == home.join("keys")),
            "symlink into a denied path"
        );
        assert!(
            !p.rules
                .iter()
                .any(|r| r.path == home && r.grant == Grant::Full)
        );
    }

    #[test]
    fn root_inside_denied_path_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(dir.path()).unwrap();
        let p = plan(&policy(vec![d.clone()], vec![d.join("x")]));
        assert_eq!(p.roots_inside_denied, vec![d.join("x")]);
        assert!(!p.rules.iter().any(|r| r.grant == Grant::Full));
    }
}
