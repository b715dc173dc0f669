//! `EffectivePolicy` → SBPL text + `-D KEY=VALUE` parameters.
//!
//! The text depends only on the *shape* of the policy (kind, how many roots, carve-outs and
//! deny-read paths, network); every path is a `(param "KEY")` whose value travels as a separate
//! `-D` argument. A path full of `"`, `)`, `;` or newlines therefore cannot change what the
//! policy says.
//!
//! Rule order matters: Seatbelt lets the last matching rule win, so every `deny` that narrows an
//! allow comes after all allows:
//!
//! 1. `(deny default)`, the constant rules of `rules.rs`;
//! 2. `(allow file-read*)`;
//! 3. writes: each writable root minus its carve-outs, codex's shape
//!    `(require-all (subpath ROOT) (require-not (subpath ROOT_RO_j)))`;
//! 4. network rules when the policy allows network;
//! 5. `(deny file-write* ...)` for every carve-out again (a root nested in another root, e.g. a
//!    cwd under `/tmp`, would otherwise re-open the inner root's `.git` through the outer root);
//!    then `(deny file-write* (regex ...))` for `.git`, `.hg`, `.sl`, `.jj`, `.codex`, `.agents` and `.claude` as a path
//!    component anywhere, any case (the Linux sandbox's name guard; never run live: no Mac here);
//! 6. `(deny file-write-unlink (literal ...))` for every directory between a writable root and a
//!    protected path, so a protected path cannot be moved out from under its rule by renaming
//!    its parent;
//! 7. `(deny file-read* ...)` and `(deny file-write* ...)` for the deny-read list (a credential
//!    file can be neither read nor replaced nor renamed away).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sandbox_policy::{EffectivePolicy, PolicyKind};

use crate::paths::seatbelt_path;
use crate::rules::{BASE_RULES, NETWORK_RULES, SYSCTL_READ, SYSCTL_WHY, SysctlMatch};
use crate::{Error, syntax};

/// Inputs that come from the macOS host rather than from the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPaths {
    /// `confstr(_CS_DARWIN_USER_CACHE_DIR)`: writable when the network is on (TLS and DNS
    /// caches). `None` leaves it out.
    pub darwin_user_cache_dir: Option<PathBuf>,
}

/// One `-D KEY=VALUE` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub key: String,
    pub value: PathBuf,
}

/// A generated policy: the SBPL text and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatbeltPolicy {
    kind: PolicyKind,
    network: bool,
    text: String,
    params: Vec<Param>,
}

impl SeatbeltPolicy {
    /// The SBPL text (no path from the policy appears in it).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The parameters, in the order they are passed.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The policy kind this was generated from.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// Whether the policy allows network access.
    pub fn network(&self) -> bool {
        self.network
    }

    /// The parameters as they are written to a golden file: `KEY=VALUE` lines.
    pub fn params_text(&self) -> String {
        let mut s = String::new();
        for p in &self.params {
            let _ = writeln!(s, "{}={}", p.key, p.value.display());
        }
        s
    }
}

/// Generate the Seatbelt policy for `policy`.
///
/// Errors: a path that is relative, not normalised or contains NUL (each names the field and
/// path); a generated text that fails [`syntax::check`] or whose parameters do not match (a bug
/// here, reported rather than shipped).
pub fn generate(policy: &EffectivePolicy, host: &HostPaths) -> Result<SeatbeltPolicy, Error> {
    generate_with(policy, host, &GenOptions::default())
}

/// Choices of the front door that change the generated policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenOptions {
    /// `--allow-git-writes`: leave out the protected-names deny (`.git`, `.hg`, `.sl`, `.jj`, `.codex`, `.agents`, `.claude`
    /// anywhere; the read-only carve-outs of the roots stay).
    pub allow_git_writes: bool,
}

/// The protected names, any case (APFS is case-insensitive by default), as a path component:
/// `.git` and any name ending in `.git` (bare repositories), `.hg`, `.sl`, `.jj`, `.codex`, `.agents`,
/// `.claude` (the Linux name guard's list, `sandbox_linux::name_guard::PROTECTED_NAMES`); and a last
/// component `HEAD` (without it git takes no directory for a repository); and as a last component
/// a Fossil database by its usual name, `*.fossil` (a repository: its `config` table holds the
/// hooks `fossil commit` runs, outside review r79 F1; Linux recognises it by its contents, which
/// Seatbelt cannot read), and the SQLite side files (`-journal`, `-wal`, `-shm`) of it and of
/// `.fslckout`/`_FOSSIL_` (a hot journal is played into its database by the next reader).
/// A local Subversion repository (r79 F2, recognised on Linux by `format` + `db`) has no name
/// to match here: not covered on macOS.
/// `[.]` rather than `\.`: no escape to get wrong in the regex literal.
pub const PROTECTED_NAMES_REGEX: &str = "(^|/)([.]([Cc][Oo][Dd][Ee][Xx]|[Aa][Gg][Ee][Nn][Tt][Ss]|[Hh][Gg]|[Ss][Ll]|[Jj][Jj]|[Cc][Ll][Aa][Uu][Dd][Ee]|[Pp][Ii][Jj][Uu][Ll]|[Bb][Zz][Rr]|[Ff][Ss][Ll][Cc][Kk][Oo][Uu][Tt]|[Ss][Vv][Nn])|_[Dd][Aa][Rr][Cc][Ss]|_[Ff][Oo][Ss][Ss][Ii][Ll]_|CVS|CVSROOT|_MTN|[^/]*[.][Gg][Ii][Tt])(/|$)|(^|/)[Hh][Ee][Aa][Dd]$|(^|/)([.][Ff][Ss][Ll][Cc][Kk][Oo][Uu][Tt]|_[Ff][Oo][Ss][Ss][Ii][Ll]_|[^/]*[.][Ff][Oo][Ss][Ss][Ii][Ll])(-journal|-wal|-shm)?$";

/// Files a version control system keeps history in, wherever they lie, as the Linux name guard
/// knows them by name (`sandbox_linux::name_guard::is_history_file`, outside review r85): a git
/// loose object (a two-hex-digit directory, then 38 or 62 hex digits), any pack git would load
/// and its indexes (`pack/*.pack`, `.idx`, ...: outside review r87 G2), `info/alternates`, the
/// commit graphs, and an RCS/CVS master file (`*,v`).
/// Written out without `{n}` counts, which Seatbelt's regex dialect is not known to take.
pub fn history_files_regex() -> String {
    let hex = |n: usize| "[0-9a-f]".repeat(n);
    format!(
        "(^|/){h2}/({h38}|{h62})$|(^|/)pack/([^/]*[.](pack|idx|rev|bitmap|keep|promisor|mtimes)|multi-pack-index[^/]*)$|(^|/)info/(alternates|http-alternates|packs|commit-graph)$|(^|/)commit-graphs/([^/]*[.]graph|commit-graph-chain)$|[^/],v$",
        h2 = hex(2),
        h38 = hex(38),
        h62 = hex(62),
    )
}

/// The names under which a directory's entries are history files, as the Linux name guard
/// knows them (`sandbox_linux::name_guard::is_store_directory_name`): no symbolic link gets one.
pub const STORE_DIRECTORY_NAMES_REGEX: &str = "(^|/)([0-9a-f][0-9a-f]|pack|info|commit-graphs)$";

/// [`generate`] with the front door's [`GenOptions`].
pub fn generate_with(
    policy: &EffectivePolicy,
    host: &HostPaths,
    opts: &GenOptions,
) -> Result<SeatbeltPolicy, Error> {
    let mut g = Gen::default();
    g.line("(version 1)");
    g.line(&format!(
        "; codex sandbox: macOS Seatbelt policy for `{}`.",
        policy.kind.as_str()
    ));
    g.line("; Generated by the sandbox-macos crate. No path is part of this text: every path is a");
    g.line("; (param \"KEY\") passed to /usr/bin/sandbox-exec as -D KEY=VALUE. The last matching");
    g.line("; rule wins, so every deny below comes after the allows it narrows.");

    if policy.kind == PolicyKind::DangerFullAccess {
        g.blank();
        g.line("; danger-full-access: no confinement at all (named as dangerous wherever it is chosen).");
        g.line("(allow default)");
        g.deny_read(policy)?;
        return g.finish(policy);
    }

    g.blank();
    g.line("; Closed by default: whatever no rule below allows is denied.");
    g.line("(deny default)");

    g.blank();
    g.line("; ---- constant rules (sandbox-macos/src/rules.rs) ----");
    for r in BASE_RULES {
        g.comment(&format!("{}. Needed by: {}.", r.why, r.needed_by));
        g.line(r.sbpl);
    }
    g.comment(&format!("{SYSCTL_WHY}."));
    g.line("(allow sysctl-read");
    for s in SYSCTL_READ {
        let filter = match s.matching {
            SysctlMatch::Name => "sysctl-name",
            SysctlMatch::Prefix => "sysctl-name-prefix",
        };
        g.line(&format!("  ({filter} \"{}\") ; {}", s.name, s.needed_by));
    }
    g.line(")");

    g.blank();
    g.line("; ---- reads ----");
    g.line("; Read everything; the deny-read list at the end takes precedence.");
    g.line("(allow file-read*)");

    // Writable roots, mapped to the form Seatbelt compares, deduplicated after mapping.
    let mut roots: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    for w in &policy.writable_roots {
        let root = seatbelt_path("writable root", &w.root)?;
        let mut subs = Vec::new();
        for s in &w.read_only_subpaths {
            if let Some(via) = &s.replaceable_via {
                return Err(Error::ReplaceableCarveOut {
                    carve_out: s.path.clone(),
                    via: via.clone(),
                });
            }
            let p = seatbelt_path("read-only subpath", &s.path)?;
            if !subs.contains(&p) {
                subs.push(p);
            }
        }
        match roots.iter_mut().find(|(r, _)| *r == root) {
            Some((_, existing)) => {
                for p in subs {
                    if !existing.contains(&p) {
                        existing.push(p);
                    }
                }
            }
            None => roots.push((root, subs)),
        }
    }

    let mut carve_out_keys: Vec<String> = Vec::new();
    if !roots.is_empty() {
        g.blank();
        g.line("; ---- writes ----");
        g.line(
            "; Each writable root minus its read-only carve-outs: .git (and the gitdir a .git file",
        );
        g.line("; points to) and .codex, whether or not they exist yet.");
        g.line("(allow file-write*");
        for (i, (root, subs)) in roots.iter().enumerate() {
            let rk = g.param(format!("WRITABLE_ROOT_{i}"), root.clone());
            if subs.is_empty() {
                g.line(&format!("  (subpath (param \"{rk}\"))"));
                continue;
            }
            g.line("  (require-all");
            g.line(&format!("    (subpath (param \"{rk}\"))"));
            for (j, sub) in subs.iter().enumerate() {
                let sk = g.param(format!("WRITABLE_ROOT_{i}_RO_{j}"), sub.clone());
                g.line(&format!("    (require-not (subpath (param \"{sk}\")))"));
                carve_out_keys.push(sk);
            }
            g.line("  )");
        }
        g.line(")");
    }

    let mut cache_dir: Option<PathBuf> = None;
    if policy.network {
        g.blank();
        g.line("; ---- network (the policy allows it) ----");
        for r in NETWORK_RULES {
            g.comment(&format!("{}. Needed by: {}.", r.why, r.needed_by));
            g.line(r.sbpl);
        }
        if let Some(dir) = &host.darwin_user_cache_dir {
            let dir = seatbelt_path("DARWIN_USER_CACHE_DIR", dir)?;
            let k = g.param("DARWIN_USER_CACHE_DIR".to_string(), dir.clone());
            g.comment("The per-user cache directory: TLS session and DNS caches. Needed by: curl, swift, Security.framework.");
            g.line(&format!("(allow file-write* (subpath (param \"{k}\")))"));
            cache_dir = Some(dir);
        }
    }

    if !carve_out_keys.is_empty() {
        g.blank();
        g.line("; ---- read-only carve-outs, after every write allow ----");
        g.line(
            "; Again as denies, so a root nested in another root (a cwd under /tmp) cannot re-open",
        );
        g.line("; the inner root's .git through the outer root.");
        g.line("(deny file-write*");
        for k in &carve_out_keys {
            g.line(&format!("  (subpath (param \"{k}\"))"));
        }
        g.line(")");
    }

    if !opts.allow_git_writes && !roots.is_empty() {
        g.blank();
        g.line("; ---- protected names: no .git, .hg, .sl, .jj, .codex, .agents, .claude, _darcs, .pijul, .bzr, .fslckout, _FOSSIL_, *.fossil, .svn, CVS, CVSROOT or _MTN is created or written anywhere ----");
        g.line(
            "; (a nested repository's hooks or core.fsmonitor would run outside the sandbox at the",
        );
        g.line("; user's next git; --allow-git-writes leaves this rule out)");
        g.line(&format!(
            "(deny file-write* (regex #\"{PROTECTED_NAMES_REGEX}\"))"
        ));
        g.line("; history files anywhere: git objects, packs and info/alternates of object stores");
        g.line("; other repositories borrow, RCS/CVS *,v files (a repository's module linked elsewhere)");
        g.line(&format!(
            "(deny file-write* (regex #\"{}\"))",
            history_files_regex()
        ));
        g.line(
            "; no symbolic link named like an object store's directory (outside review r90 A-F1: a",
        );
        g.line("; link named pack/ to a directory filled under another name, and git loaded its packs)");
        g.line(&format!(
            "(deny file-write* (require-all (vnode-type SYMLINK) (regex #\"{STORE_DIRECTORY_NAMES_REGEX}\")))"
        ));
    }

    // Directories between a writable root and a protected path: renaming one would move the
    // protected path out from under its rule.
    let mut protected: Vec<PathBuf> = roots.iter().flat_map(|(_, s)| s.iter().cloned()).collect();
    for d in &policy.deny_read {
        protected.push(seatbelt_path("deny_read", d)?);
    }
    let mut writable: Vec<&Path> = roots.iter().map(|(r, _)| r.as_path()).collect();
    if let Some(dir) = &cache_dir {
        writable.push(dir);
    }
    let mut ancestors: Vec<PathBuf> = Vec::new();
    for p in &protected {
        for a in p.ancestors().skip(1) {
            if writable.iter().any(|w| a.starts_with(w)) && !ancestors.iter().any(|x| x == a) {
                ancestors.push(a.to_path_buf());
            }
        }
    }
    if !ancestors.is_empty() {
        g.blank();
        g.line("; ---- parents of protected paths inside writable roots ----");
        g.line("; They cannot be renamed or removed, so no protected path moves out from under its rule.");
        g.line("(deny file-write-unlink");
        for (n, a) in ancestors.into_iter().enumerate() {
            let k = g.param(format!("PROTECTED_PARENT_{n}"), a);
            g.line(&format!("  (literal (param \"{k}\"))"));
        }
        g.line(")");
    }

    g.deny_read(policy)?;
    g.finish(policy)
}

#[derive(Default)]
struct Gen {
    text: String,
    params: Vec<Param>,
}

impl Gen {
    fn line(&mut self, l: &str) {
        self.text.push_str(l);
        self.text.push('\n');
    }

    fn blank(&mut self) {
        self.text.push('\n');
    }

    /// A `;` comment. Comment text is constant (from `rules.rs` or this file), never a path.
    fn comment(&mut self, c: &str) {
        self.line(&format!("; {c}"));
    }

    fn param(&mut self, key: String, value: PathBuf) -> String {
        self.params.push(Param {
            key: key.clone(),
            value,
        });
        key
    }

    fn deny_read(&mut self, policy: &EffectivePolicy) -> Result<(), Error> {
        let mut keys = Vec::new();
        let mut seen: Vec<PathBuf> = Vec::new();
        for d in &policy.deny_read {
            let p = seatbelt_path("deny_read", d)?;
            if seen.contains(&p) {
                continue;
            }
            seen.push(p.clone());
            keys.push(self.param(format!("DENY_READ_{}", keys.len()), p));
        }
        if keys.is_empty() {
            return Ok(());
        }
        self.blank();
        self.line("; ---- deny-read list, after the read allow ----");
        self.line(
            "; The user's credentials ($CODEX_HOME/auth.json, ~/.ssh, ... and sandbox.deny_read):",
        );
        self.line(
            "; not readable, and not writable either, so they cannot be replaced or renamed away.",
        );
        for k in &keys {
            self.line(&format!("(deny file-read* (subpath (param \"{k}\")))"));
        }
        for k in &keys {
            self.line(&format!("(deny file-write* (subpath (param \"{k}\")))"));
        }
        Ok(())
    }

    fn finish(self, policy: &EffectivePolicy) -> Result<SeatbeltPolicy, Error> {
        let checked = syntax::check(&self.text).map_err(Error::InvalidPolicy)?;
        let supplied: std::collections::BTreeSet<String> =
            self.params.iter().map(|p| p.key.clone()).collect();
        if supplied.len() != self.params.len() {
            return Err(Error::ParamMismatch(
                "a parameter key is supplied twice".into(),
            ));
        }
        if checked.params != supplied {
            let missing: Vec<_> = checked.params.difference(&supplied).collect();
            let unused: Vec<_> = supplied.difference(&checked.params).collect();
            return Err(Error::ParamMismatch(format!(
                "used but not supplied: {missing:?}; supplied but unused: {unused:?}"
            )));
        }
        Ok(SeatbeltPolicy {
            kind: policy.kind,
            network: policy.network,
            text: self.text,
            params: self.params,
        })
    }
}
