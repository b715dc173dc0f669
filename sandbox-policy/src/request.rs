//! The one sandbox request builder: the three front doors (`codex sandbox linux`,
//! `codex sandbox macos`, `codex-linux-sandbox`) turn their flags and config into a
//! [`SandboxRequest`] and call [`SandboxRequest::build`]; validation, `~` expansion, the
//! `$CODEX_HOME` rule and the exit codes of a refused request live only here.
//!
//! | input | `codex sandbox linux` / `macos` | `codex-linux-sandbox` |
//! |---|---|---|
//! | policy | `--full-auto` (+ `--writable-root`) or read-only | `--sandbox-policy JSON` |
//! | network | config `sandbox_workspace_write.network_access` (workspace-write only) | the JSON's `network_access` |
//! | deny-read | config `sandbox.deny_read` (`~` expanded) + `--deny-read` | `--deny-read` |
//! | `$CODEX_HOME` | the CLI's (env, else `~/.codex`) | env `CODEX_HOME`, else `~/.codex` |

use std::path::{Path, PathBuf};

use crate::{EffectivePolicy, PolicyError, SandboxEnv, SandboxPolicy};

/// Exit codes of every sandbox front door, defined once. The command's own status passes
/// through; set-up failures sit in the 200s, where commands rarely exit.
pub mod exit {
    /// Bad usage (e.g. `--writable-root` without `--full-auto`); also clap's and the config's.
    pub const USAGE: i32 = 2;
    /// The command exists but cannot be executed.
    pub const NOT_EXECUTABLE: i32 = 126;
    /// The command was not found.
    pub const NOT_FOUND: i32 = 127;
    /// The policy is invalid (a writable root that is not a directory, a bad deny-read entry:
    /// empty, NUL, `~user`/`$VAR`/glob; no home at all; malformed policy JSON, an unknown or
    /// repeated key).
    pub const INVALID_POLICY: i32 = 200;
    /// Refused: this kernel or platform cannot enforce the policy (and
    /// `--dangerously-allow-weaker-sandbox` was not given), or Seatbelt outside macOS.
    pub const REFUSED: i32 = 201;
    /// The sandbox could not be set up.
    pub const SETUP_FAILED: i32 = 202;
}

/// Which policy the request names.
#[derive(Debug, Clone)]
pub enum PolicySource {
    /// `codex sandbox ...`: read-only, or workspace-write with `--full-auto`.
    Flags {
        full_auto: bool,
        writable_roots: Vec<PathBuf>,
        /// Config `sandbox_workspace_write.network_access` (ignored without `--full-auto`).
        network_access: bool,
    },
    /// `codex-linux-sandbox --sandbox-policy JSON`.
    Json(String),
}

/// Everything a front door knows, before validation.
#[derive(Debug, Clone)]
pub struct SandboxRequest {
    pub policy: PolicySource,
    /// Config `sandbox.deny_read` entries as written (`~` and `~/x` allowed).
    pub config_deny_read: Vec<String>,
    /// `--deny-read PATH` flags (taken literally).
    pub flag_deny_read: Vec<PathBuf>,
    /// The directory relative paths resolve against (the cwd, or `--sandbox-policy-cwd`).
    pub cwd: PathBuf,
    /// `HOME`, `CODEX_HOME`, `TMPDIR`.
    pub env: SandboxEnv,
    /// `--allow-writable-home` / `sandbox.allow_writable_home`: let a writable root be the
    /// user's home or a directory above it (refused by default: [`RequestError::WritableHome`]).
    pub allow_writable_home: bool,
}

/// The request cannot be turned into a policy.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("--writable-root {}: needs --full-auto (the default policy is read-only)", .0.display())]
    WritableRootWithoutFullAuto(PathBuf),
    #[error("sandbox.deny_read: an empty string is not a path")]
    EmptyDenyRead,
    #[error("deny-read {0}: ~ used but HOME is not set and this user has no passwd home")]
    TildeWithoutHome(String),
    #[error("sandbox.deny_read {0:?}: contains a NUL byte (no path can)")]
    NulInDenyRead(String),
    #[error(
        "deny-read {0:?}: {1} is not expanded here, so this entry would name a path below the \
         working directory and protect nothing; write the path out"
    )]
    Unexpanded(String, &'static str),
    #[error(
        "no home directory: HOME is unset or relative and uid {uid} has no passwd entry with one; \
         the credential defaults (~/.ssh, ~/.codex/auth.json, ...) cannot be placed (set HOME)"
    )]
    NoHome { uid: u32 },
    #[error(
        "refusing to run: {0}: the command could rewrite what runs outside the sandbox at your \
         next login, shell, git or editor start (~/.config, ~/.local/bin, ~/bin and the like); \
         start in a project directory, or pass --allow-writable-home (config \
         sandbox.allow_writable_home = true) to run anyway"
    )]
    WritableHome(HomeReach),
    #[error("{0}")]
    Policy(#[source] PolicyError),
}

/// How a writable root reaches the user's home ([`RequestError::WritableHome`]); its text
/// names the root, the home and the way (the refusal's message and the warning
/// `--allow-writable-home` prints).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HomeReach {
    /// The root is the home (by path or by device and inode: `same`) or a directory above it.
    #[error(
        "the writable root {} {} your home directory {}",
        root.display(),
        if *same { "is" } else { "holds" },
        home.display()
    )]
    Root {
        root: PathBuf,
        home: PathBuf,
        same: bool,
    },
    /// A mount of the home (or of a directory above it) inside the root (`mounted`), or a link
    /// or a directory a `..` steps out of on the way to it.
    #[error(
        "your home directory {} is {} {}, inside the writable root {}",
        home.display(),
        if *mounted { "mounted at" } else { "reached through" },
        via.display(),
        root.display()
    )]
    Through {
        home: PathBuf,
        via: PathBuf,
        root: PathBuf,
        mounted: bool,
    },
    /// A file or directory of the home (`part`) mounted inside the root.
    #[error(
        "{} (in your home directory {}) is mounted at {}, inside the writable root {}",
        part.display(),
        home.display(),
        at.display(),
        root.display()
    )]
    PartMounted {
        home: PathBuf,
        part: PathBuf,
        at: PathBuf,
        root: PathBuf,
    },
    /// An overlay inside the root with a layer whose place cannot be checked.
    #[error(
        "the overlay mounted at {}, inside the writable root {}, has the layer {}, whose place \
         cannot be checked (a relative path, or one through a link or `..`, or gone): it may \
         show your home directory",
        at.display(),
        root.display(),
        layer.display()
    )]
    UncertainOverlay {
        at: PathBuf,
        layer: PathBuf,
        root: PathBuf,
    },
}

impl RequestError {
    /// For the home refusal, what reaches the home ("the writable root W is your home
    /// directory H"): the warning printed when `--allow-writable-home` lets it run.
    pub fn home_reason(&self) -> Option<String> {
        match self {
            RequestError::WritableHome(reach) => Some(reach.to_string()),
            _ => None,
        }
    }

    /// [`exit::USAGE`] for a flag combination, [`exit::REFUSED`] for a writable home,
    /// [`exit::INVALID_POLICY`] for the rest.
    pub fn exit_code(&self) -> i32 {
        match self {
            RequestError::WritableRootWithoutFullAuto(_) => exit::USAGE,
            RequestError::WritableHome(_) => exit::REFUSED,
            _ => exit::INVALID_POLICY,
        }
    }
}

/// One `sandbox.deny_read` entry with `~` and `~/rest` expanded to `$HOME` and `$HOME/rest`;
/// other paths are returned as given (`~user/x` is not expanded). `None` when the entry uses
/// `~` but `home` is unknown: taken literally it would resolve below the cwd and leave the
/// intended path readable without a word.
pub fn expand_home(entry: &str, home: Option<&Path>) -> Option<PathBuf> {
    // `~//x` is `$HOME/x`, as in a shell: joining "/x" would replace the home with the root
    let rest = if entry == "~" {
        Some("")
    } else {
        entry.strip_prefix("~/").map(|r| r.trim_start_matches('/'))
    };
    match (rest, home) {
        (Some(rest), Some(h)) => Some(h.join(rest)),
        (Some(_), None) => None,
        (None, _) => Some(PathBuf::from(entry)),
    }
}

/// A deny-read entry that a reader would expect a shell to expand, and which taken literally is
/// a relative path under the cwd that does not exist (second review round F7): `~user/x`,
/// `$HOME/x`, `${X}`, globs. Refused (200) rather than silently protecting nothing.
fn check_expansion(entry: &str) -> Result<(), RequestError> {
    let what = if entry.starts_with('~') && entry != "~" && !entry.starts_with("~/") {
        Some("`~user`")
    } else if entry.contains('$') {
        Some("`$VARIABLE`")
    } else if entry.contains(['*', '?', '[']) {
        Some("a glob")
    } else {
        None
    };
    match what {
        Some(w) => Err(RequestError::Unexpanded(entry.to_owned(), w)),
        None => Ok(()),
    }
}

impl SandboxRequest {
    /// Validates the request and resolves the policy (canonical roots, carve-outs, the
    /// deny-read list with the credential defaults).
    pub fn build(&self) -> Result<EffectivePolicy, RequestError> {
        let policy = match &self.policy {
            PolicySource::Flags {
                full_auto: false,
                writable_roots,
                ..
            } => match writable_roots.first() {
                Some(r) => return Err(RequestError::WritableRootWithoutFullAuto(r.clone())),
                None => SandboxPolicy::ReadOnly,
            },
            PolicySource::Flags {
                full_auto: true,
                writable_roots,
                network_access,
            } => SandboxPolicy::WorkspaceWrite {
                writable_roots: writable_roots.clone(),
                network_access: *network_access,
                exclude_tmpdir_env_var: false,
                exclude_slash_tmp: false,
            },
            PolicySource::Json(json) => {
                SandboxPolicy::from_json(json).map_err(RequestError::Policy)?
            }
        };
        if self.env.home.is_none() && !matches!(policy, SandboxPolicy::DangerFullAccess) {
            return Err(RequestError::NoHome {
                uid: crate::sys::uid(),
            });
        }
        let mut deny_read = Vec::new();
        for entry in &self.config_deny_read {
            if entry.is_empty() {
                return Err(RequestError::EmptyDenyRead);
            }
            if entry.contains('\0') {
                return Err(RequestError::NulInDenyRead(entry.clone()));
            }
            check_expansion(entry)?;
            let path = expand_home(entry, self.env.home.as_deref())
                .ok_or_else(|| RequestError::TildeWithoutHome(entry.clone()))?;
            deny_read.push(path);
        }
        // `--deny-read '~/x'` (quoted, so the shell did not expand it) follows the same rule: taken
        // literally it would be `<cwd>/~/x` and leave `$HOME/x` readable.
        for flag in &self.flag_deny_read {
            let path = match flag.to_str() {
                Some(s) => {
                    check_expansion(s)?;
                    expand_home(s, self.env.home.as_deref())
                }
                .ok_or_else(|| RequestError::TildeWithoutHome(s.to_owned()))?,
                None => flag.clone(),
            };
            deny_read.push(path);
        }
        let mut effective = policy
            .resolve(&self.cwd, &self.env, &deny_read)
            .map_err(RequestError::Policy)?;
        match refuse_writable_home(&effective, &self.env) {
            Err(e) if !self.allow_writable_home => return Err(e),
            Err(e) => effective.writable_home = e.home_reason(),
            Ok(()) => {}
        }
        Ok(effective)
    }
}

/// A writable root that is one of the user's homes (`HOME` and the passwd entry's directory:
/// [`SandboxEnv::home`] and [`SandboxEnv::other_homes`], each by its canonical path) or holds one: refused (exit 201). The carve-outs for `~` as a writable root
/// (`HOME_STARTUP_FILES`, what they lead to, git's includes and the programs its values name)
/// enumerate what runs code from `~`, and each outside review of them found another entry
/// (r34-r42: `~/.config/*`, `~/.local/bin` on `PATH`, `~/.cargo/config.toml`, a repository's own
/// `.git/config` naming a program in `~`); a home strictly below a root (`HOME=/tmp/x/home`)
/// got none at all. Refusing closes the class; `--allow-writable-home` keeps the carve-outs as
/// the only defence, as before.
/// Compared by path and by identity (device and inode of the home and each directory above it),
/// so that another name of the same directory (a bind mount of the home, `/proc/self/root/...`
/// resolved elsewhere) is the home too. Also refused: a mount of the home or of a directory
/// above it *below* a root (outside review r43 F1: a bind of `/home` under `/tmp` made `~`
/// writable through the implicit `/tmp` root), and a home whose path as written (`HOME`, the
/// passwd entry) goes through a link, or a directory a `..` steps out of, inside a root (r43
/// F5: the command re-pointed `/data/v/home -> ...` and the next login ran its profile).
fn refuse_writable_home(policy: &EffectivePolicy, env: &SandboxEnv) -> Result<(), RequestError> {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let roots: Vec<(&Path, Option<(u64, u64)>)> = policy
        .writable_roots
        .iter()
        .map(|w| (w.root.as_path(), id(&w.root)))
        .collect();
    if roots.is_empty() {
        return Ok(());
    }
    let root_paths: Vec<PathBuf> = roots.iter().map(|(r, _)| r.to_path_buf()).collect();
    let root_of = |p: &Path| root_paths.iter().find(|r| p.starts_with(r)).cloned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| crate::mounts::parse(&t))
        .unwrap_or_default();
    // an overlay inside a root whose layers cannot be placed may show the home (r45 F2)
    for m in &mounts {
        if let (Some(root), Some(layer)) =
            (root_of(&m.mount_point), crate::mounts::uncertain_layer(m))
        {
            return Err(RequestError::WritableHome(HomeReach::UncertainOverlay {
                at: m.mount_point.clone(),
                layer: layer.to_path_buf(),
                root,
            }));
        }
    }
    for written in env.home.iter().chain(&env.other_homes) {
        // a home that does not exist (yet) is placed by its longest existing ancestor, with
        // `..` applied: its text alone (`/nonexistent/../tmp/h`) would start with no root
        let home = crate::canonical_or_lexical(written);
        let above: Vec<(u64, u64)> = home.ancestors().filter_map(id).collect();
        let held = roots.iter().find(|(root, root_id)| {
            home.starts_with(root) || root_id.is_some_and(|i| above.contains(&i))
        });
        if let Some((root, root_id)) = held {
            let same = *root == home.as_path() || (root_id.is_some() && *root_id == id(&home));
            return Err(RequestError::WritableHome(HomeReach::Root {
                root: root.to_path_buf(),
                home,
                same,
            }));
        }
        // what shows the home, and what shows that (a bind of an overlay of it...), each with
        // the part of the home it is: at most 64 places
        let mut todo: Vec<(PathBuf, PathBuf)> = vec![(home.clone(), home.clone())];
        let mut visited: Vec<PathBuf> = vec![home.clone()];
        while let Some((p, part_of_p)) = todo.pop() {
            for x in crate::mounts::exposures(&p, &mounts) {
                if !x.writable || visited.contains(&x.at) || visited.len() > 64 {
                    continue;
                }
                visited.push(x.at.clone());
                let part = match x.part.strip_prefix(&p) {
                    Ok(below) => part_of_p.join(below),
                    Err(_) => part_of_p.clone(),
                };
                let Some(root) = root_of(&x.at) else {
                    todo.push((x.at, part));
                    continue;
                };
                if part == home {
                    return Err(RequestError::WritableHome(HomeReach::Through {
                        home,
                        via: x.at,
                        root,
                        mounted: true,
                    }));
                }
                // part of the home (`~/.config`, `~/.bashrc`) mounted in a root: refused
                // unless that part is itself inside a root (a project bound elsewhere; r44 F2)
                if !root_paths.iter().any(|r| part.starts_with(r)) {
                    return Err(RequestError::WritableHome(HomeReach::PartMounted {
                        home,
                        part,
                        at: x.at,
                        root,
                    }));
                }
            }
        }
        if let Some(via) = crate::swappable_on_the_way(written, &root_paths) {
            return Err(RequestError::WritableHome(HomeReach::Through {
                home: written.clone(),
                root: root_of(&via).unwrap_or_default(),
                via,
                mounted: false,
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn req(policy: PolicySource, deny: &[&str], home: Option<&Path>) -> SandboxRequest {
        SandboxRequest {
            policy,
            config_deny_read: deny.iter().map(|s| s.to_string()).collect(),
            flag_deny_read: vec![],
            cwd: std::env::temp_dir(),
            env: SandboxEnv {
                home: home.map(Path::to_path_buf),
                other_homes: Vec::new(),
                codex_home: None,
                tmpdir: None,
                pwd: None,
                credential_env: Vec::new(),
            },
            allow_writable_home: false,
        }
    }

    fn flags(full_auto: bool, roots: &[&str], network_access: bool) -> PolicySource {
        PolicySource::Flags {
            full_auto,
            writable_roots: roots.iter().map(PathBuf::from).collect(),
            network_access,
        }
    }

    #[test]
    fn expand_home_expands_tilde_and_tilde_slash_only() {
        let h = Some(Path::new("/h"));
        assert_eq!(expand_home("~", h), Some(PathBuf::from("/h/")));
        assert_eq!(expand_home("~/.netrc", h), Some(PathBuf::from("/h/.netrc")));
        assert_eq!(expand_home("~bob/x", h), Some(PathBuf::from("~bob/x")));
        // review F5: `~//x` is `$HOME/x`, not `/x`
        assert_eq!(expand_home("~//x", h), Some(PathBuf::from("/h/x")));
        assert_eq!(expand_home("~///", h), Some(PathBuf::from("/h/")));
        assert_eq!(expand_home("/srv/x", None), Some(PathBuf::from("/srv/x")));
        assert_eq!(expand_home("~", None), None);
        assert_eq!(expand_home("~/.netrc", None), None);
    }

    #[test]
    fn refusals_and_their_exit_codes() {
        let e = req(flags(false, &["/tmp"], false), &[], Some(Path::new("/h")))
            .build()
            .unwrap_err();
        assert_eq!(e.exit_code(), exit::USAGE, "{e}");
        let e = req(flags(false, &[], false), &[""], Some(Path::new("/h")))
            .build()
            .unwrap_err();
        assert_eq!(e.exit_code(), exit::INVALID_POLICY, "{e}");
        // no home at all (HOME unset and no passwd home): the defaults cannot be placed
        let e = req(flags(false, &[], false), &["~/x"], None)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("no home directory"), "{e}");
        assert_eq!(e.exit_code(), exit::INVALID_POLICY);
        let e = req(
            flags(false, &[], false),
            &["/srv/\0x"],
            Some(Path::new("/h")),
        )
        .build()
        .unwrap_err();
        assert!(e.to_string().contains("NUL"), "{e}");
        assert_eq!(e.exit_code(), exit::INVALID_POLICY);
        let e = req(PolicySource::Json("{".into()), &[], Some(Path::new("/h")))
            .build()
            .unwrap_err();
        assert_eq!(e.exit_code(), exit::INVALID_POLICY, "{e}");
        let e = req(
            flags(true, &["/nonexistent/dir"], false),
            &[],
            Some(Path::new("/h")),
        )
        .build()
        .unwrap_err();
        assert_eq!(e.exit_code(), exit::INVALID_POLICY, "{e}");
    }

    /// A writable root that is the home or holds it is refused (201) unless allowed; a root
    /// inside the home is not. The homes are `HOME` and the passwd entry's (`other_homes`).
    #[test]
    fn a_writable_root_that_is_or_holds_the_home_is_refused() {
        // outside /tmp: the implicit `/tmp` root would hold a home there
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let home = dir.path().canonicalize().unwrap().join("home");
        std::fs::create_dir_all(home.join("proj")).unwrap();
        let h = home.to_str().unwrap();
        let parent = dir.path().canonicalize().unwrap();
        let proj = home.join("proj");
        for (root, word) in [(h, "is"), (parent.to_str().unwrap(), "holds")] {
            let e = req(flags(true, &[root], false), &[], Some(&home))
                .build()
                .unwrap_err();
            assert_eq!(e.exit_code(), exit::REFUSED, "{e}");
            let want = format!("the writable root {root} {word} your home directory {h}");
            assert!(e.to_string().contains(&want), "{e}");
            assert!(e.to_string().contains("--allow-writable-home"), "{e}");
            // the flag lets it run (with the carve-outs)
            let mut r = req(flags(true, &[root], false), &[], Some(&home));
            r.allow_writable_home = true;
            r.build().unwrap();
        }
        // a home that does not exist yet, named with `..`, is placed where it would be
        let missing = format!("{}/nothing/../home/new", dir.path().display());
        let e = req(flags(true, &[h], false), &[], Some(Path::new(&missing)))
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("holds your home directory"), "{e}");
        // the passwd home counts when HOME names another directory
        let mut r = req(
            flags(true, &[h], false),
            &[],
            Some(Path::new("/nonexistent/h")),
        );
        r.env.other_homes = vec![home.clone()];
        assert_eq!(r.build().unwrap_err().exit_code(), exit::REFUSED);
        // control: a project directory inside the home is the normal case
        req(
            flags(true, &[proj.to_str().unwrap()], false),
            &[],
            Some(&home),
        )
        .build()
        .unwrap();
    }

    #[test]
    fn network_only_with_full_auto_and_deny_read_expanded() {
        // outside /tmp: the implicit `/tmp` root would hold the home (refused)
        let h = tempfile::tempdir_in("/var/tmp").unwrap();
        let p = req(flags(true, &[], true), &["~/secret"], Some(h.path()))
            .build()
            .unwrap();
        assert!(p.network);
        assert!(
            p.deny_read.iter().any(|d| d.ends_with("secret")),
            "{:?}",
            p.deny_read
        );
        let p = req(flags(false, &[], true), &[], Some(h.path()))
            .build()
            .unwrap();
        assert!(!p.network, "read-only has no network");
        // A quoted `--deny-read '~/x'` follows the same rule as the config.
        let mut r = req(flags(false, &[], false), &[], Some(h.path()));
        r.flag_deny_read = vec![PathBuf::from("~/flagged")];
        let p = r.build().unwrap();
        assert!(
            p.deny_read
                .iter()
                .any(|d| d.ends_with("flagged") && d.starts_with(h.path())),
            "{:?}",
            p.deny_read
        );
        r.env.home = None;
        assert_eq!(r.build().unwrap_err().exit_code(), exit::INVALID_POLICY);
    }
}
