//! The sandbox policy shared by `sandbox-linux` and `sandbox-macos`.
//!
//! [`SandboxPolicy`] is the codex-compatible JSON form (`{"mode":"read-only"}`,
//! `{"mode":"workspace-write","writable_roots":[...],"network_access":false,...}`,
//! `{"mode":"danger-full-access"}`). [`SandboxPolicy::resolve`] turns it, together with the
//! working directory, the caller's environment and the deny-read list, into an
//! [`EffectivePolicy`]: absolute, canonical paths that each backend enforces with its own
//! mechanism. Both backends consume the same `EffectivePolicy`, so their guarantees are
//! listed side by side in `docs/security.md`.
//!
//! This crate does no I/O beyond `stat`, `readlink`/`canonicalize`, reading `.git` files, git
//! configs and `/proc/self/mountinfo`, and one passwd lookup (`home`).

pub mod env_policy;
pub mod home;
pub mod mounts;
pub mod net_rules;
pub mod request;
mod sys;
#[cfg(target_os = "linux")]
pub mod unix_diag;

pub use env_policy::EnvPolicy;
pub use request::{PolicySource, RequestError, SandboxRequest, expand_home};

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Any JSON value, refused if an object anywhere in it repeats a key.
struct NoDuplicateKeys;

impl<'de> Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = NoDuplicateKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, _: bool) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_i64<E>(self, _: i64) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_u64<E>(self, _: u64) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_f64<E>(self, _: f64) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_str<E>(self, _: &str) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_unit<E>(self) -> Result<NoDuplicateKeys, E> {
                Ok(NoDuplicateKeys)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<NoDuplicateKeys, A::Error> {
                while a.next_element::<NoDuplicateKeys>()?.is_some() {}
                Ok(NoDuplicateKeys)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<NoDuplicateKeys, A::Error> {
                let mut seen = std::collections::BTreeSet::new();
                while let Some(k) = a.next_key::<String>()? {
                    if !seen.insert(k.clone()) {
                        return Err(serde::de::Error::custom(format!("duplicate field `{k}`")));
                    }
                    a.next_value::<NoDuplicateKeys>()?;
                }
                Ok(NoDuplicateKeys)
            }
        }
        d.deserialize_any(V)
    }
}

/// The policy as written in JSON or selected on the command line (codex's `SandboxPolicy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SandboxPolicy {
    /// No confinement at all. Named as dangerous everywhere it is selected.
    #[serde(rename = "danger-full-access")]
    DangerFullAccess,
    /// Read everything except the deny-read list; write nothing but `/dev/null`; no network.
    #[serde(rename = "read-only")]
    ReadOnly,
    /// Also write the cwd, `/tmp`, `$TMPDIR` and `writable_roots`, except `.git` and `.codex`.
    #[serde(rename = "workspace-write")]
    WorkspaceWrite {
        /// Extra writable directories (must exist).
        #[serde(default)]
        writable_roots: Vec<PathBuf>,
        /// Allow outbound network.
        #[serde(default)]
        network_access: bool,
        /// Do not make `$TMPDIR` writable.
        #[serde(default)]
        exclude_tmpdir_env_var: bool,
        /// Do not make `/tmp` writable.
        #[serde(default)]
        exclude_slash_tmp: bool,
    },
}

impl SandboxPolicy {
    /// `workspace-write` with codex's defaults (what `--full-auto` selects).
    pub fn workspace_write() -> Self {
        SandboxPolicy::WorkspaceWrite {
            writable_roots: Vec::new(),
            network_access: false,
            exclude_tmpdir_env_var: false,
            exclude_slash_tmp: false,
        }
    }

    /// Parse the codex JSON form; the error names the offending field.
    ///
    /// Unknown fields are errors (a misspelt `network_acess` must not silently mean "off"); serde
    /// checks that for `workspace-write` but ignores extra fields beside a unit variant's tag, so
    /// `read-only` and `danger-full-access` are checked here.
    pub fn from_json(json: &str) -> Result<Self, PolicyError> {
        let err = |message: String| PolicyError::Json { message };
        // a duplicate key is an error, not "the last one wins": `{"mode":"read-only",
        // "mode":"danger-full-access"}` ran unconfined (second review round F7)
        serde_json::from_str::<NoDuplicateKeys>(json).map_err(|e| err(e.to_string()))?;
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| err(e.to_string()))?;
        if let Some(obj) = value.as_object() {
            let mode = obj.get("mode").and_then(|m| m.as_str());
            if matches!(mode, Some("read-only" | "danger-full-access")) {
                if let Some(k) = obj.keys().find(|k| *k != "mode") {
                    return Err(err(format!(
                        "unknown field `{k}`: mode `{}` takes no other field",
                        mode.unwrap_or_default()
                    )));
                }
            }
        }
        serde_json::from_value(value).map_err(|e| err(e.to_string()))
    }

    /// The kind of this policy, without its parameters.
    pub fn kind(&self) -> PolicyKind {
        match self {
            SandboxPolicy::DangerFullAccess => PolicyKind::DangerFullAccess,
            SandboxPolicy::ReadOnly => PolicyKind::ReadOnly,
            SandboxPolicy::WorkspaceWrite { .. } => PolicyKind::WorkspaceWrite,
        }
    }

    /// Resolve against the working directory and environment.
    ///
    /// Errors: `cwd` or a listed writable root that is not an existing directory. `/tmp` and
    /// `$TMPDIR` are skipped when they do not exist (nothing to grant).
    pub fn resolve(
        &self,
        cwd: &Path,
        env: &SandboxEnv,
        extra_deny_read: &[PathBuf],
    ) -> Result<EffectivePolicy, PolicyError> {
        let cwd_given = cwd;
        let mut cwd = canonical_dir(cwd, "cwd")?;
        let mut writable_roots: Vec<WritableRoot> = Vec::new();
        let mut socket_links: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut temp_roots: Vec<PathBuf> = Vec::new();
        let mut network = false;
        match self {
            SandboxPolicy::DangerFullAccess => network = true,
            SandboxPolicy::ReadOnly => {}
            SandboxPolicy::WorkspaceWrite {
                writable_roots: roots,
                network_access,
                exclude_tmpdir_env_var,
                exclude_slash_tmp,
            } => {
                network = *network_access;
                // The working directory is the main writable root; `getcwd` gives its real path,
                // so a link the user went through (`cd /tmp/ws` where an earlier run replaced
                // `ws` with a link to `$HOME`) shows only in `$PWD` (outside review r16 F5).
                //
                // The cwd as given (`--sandbox-policy-cwd`, `codex sandbox -C`) is walked like any
                // other writable root (outside review r19 F1).
                // The root is the path that walk built, not a second resolution (r19 F3).
                cwd = physical_dir(cwd_given, "cwd")?;
                // `$PWD` is only text: the root granted is the directory the process is in. When
                // the policy's cwd is the process's `.`, `$PWD` (when set and absolute) must name
                // that same file (dev, ino), else refuse: the user's shell may have entered `.`
                // through a link that was swapped for a real directory afterwards, so that the
                // walk of `$PWD` passes while `.` is `$HOME` (outside review r19 F2). Unset or
                // relative `$PWD`: nothing names how `.` was reached; only the physical path is
                // walked (a parent that changes directory for the launcher passes the directory
                // as `-C`/`--sandbox-policy-cwd` or sets `$PWD`).
                if let Some(pwd) = env.pwd.as_ref().filter(|p| p.is_absolute()) {
                    let cwd_is_dot = same_file(&cwd, Path::new("."));
                    if cwd_is_dot || std::fs::canonicalize(pwd).is_ok_and(|c| c == cwd) {
                        no_foreign_symlink(pwd, "cwd ($PWD)")?;
                    }
                    if cwd_is_dot && !same_file(pwd, Path::new(".")) {
                        return Err(PolicyError::PwdNotCwd {
                            pwd: pwd.clone(),
                            cwd: cwd.clone(),
                        });
                    }
                }
                let mut dirs = vec![cwd.clone()];
                for r in roots {
                    let abs = if r.is_absolute() {
                        r.clone()
                    } else {
                        cwd.join(r)
                    };
                    dirs.push(physical_dir(&abs, "writable_roots")?);
                }
                if !exclude_slash_tmp {
                    if let Ok(t) = canonical_dir(Path::new("/tmp"), "/tmp") {
                        temp_roots.push(t);
                    }
                }
                if !exclude_tmpdir_env_var {
                    if let Some(t) = env.tmpdir.as_ref() {
                        match physical_dir(t, "TMPDIR") {
                            Ok(t) => temp_roots.push(t),
                            Err(e @ PolicyError::ForeignSymlink { .. }) => return Err(e),
                            Err(_) => {}
                        }
                    }
                }
                dirs.extend(temp_roots.iter().cloned());
                let mut unique: Vec<PathBuf> = Vec::new();
                for d in dirs {
                    if !unique.contains(&d) {
                        unique.push(d);
                    }
                }
                for d in &unique {
                    writable_roots.push(WritableRoot::new(d.clone(), &unique));
                }
                protect_codex_home(&mut writable_roots, env, &unique);
                protect_home_startup_files(&mut writable_roots, env, &unique);
                // The sandbox's own parent directory counts as a temporary root here: a
                // server another run left in its directory holds that run's directory, not
                // the parent every run makes its own in (outside review r65 F2).
                let mut hold_roots = temp_roots.clone();
                for t in &temp_roots {
                    let own = t.join(own_tmp_parent_name(sys::uid()));
                    if std::fs::symlink_metadata(&own).is_ok_and(|m| m.is_dir()) {
                        hold_roots.push(own);
                    }
                }
                socket_links = protect_socket_dirs(&mut writable_roots, &hold_roots);
                protect_rendezvous_dirs(&mut writable_roots, &temp_roots);
            }
        }
        let mut unsearched: Vec<PathBuf> = Vec::new();
        let deny_read = if self.kind() == PolicyKind::DangerFullAccess {
            Vec::new()
        } else {
            let mut v: Vec<PathBuf> = Vec::new();
            let listed = env
                .default_deny_read()
                .into_iter()
                .chain(extra_deny_read.iter().cloned())
                .map(|p| if p.is_absolute() { p } else { cwd.join(p) });
            let mut dirs: Vec<PathBuf> = Vec::new();
            // (sets beside the lists, in their order: `Vec::contains` compared paths component
            // by component, about 14,000 times for the ~170 defaults: start-up)
            let mut seen: std::collections::HashSet<PathBuf> = Default::default();
            let mut seen_dirs: std::collections::HashSet<PathBuf> = Default::default();
            for (p, is_dir) in canonical_list_and_kinds(listed) {
                if is_dir && seen_dirs.insert(p.clone()) {
                    dirs.push(p.clone());
                }
                if seen.insert(p.clone()) {
                    v.push(p);
                }
            }
            let keep: Vec<PathBuf> = writable_roots
                .iter()
                .map(|w| w.root.clone())
                .chain([cwd.clone()])
                .collect();
            unsearched = deny_link_targets(&mut v, &dirs, env, &keep);
            v
        };
        Ok(EffectivePolicy {
            kind: self.kind(),
            cwd,
            writable_roots,
            deny_read,
            network,
            deny_read_unsearched: unsearched,
            writable_home: None,
            sockets_through_links: socket_links,
            temp_roots,
        })
    }
}

/// The policy kinds, for reports and golden files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyKind {
    DangerFullAccess,
    ReadOnly,
    WorkspaceWrite,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::DangerFullAccess => "danger-full-access",
            PolicyKind::ReadOnly => "read-only",
            PolicyKind::WorkspaceWrite => "workspace-write",
        }
    }
}

/// The parts of the caller's environment that a policy depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxEnv {
    /// What `~` means: `$HOME` when set and absolute, else the passwd entry's directory.
    pub home: Option<PathBuf>,
    /// Further homes whose credentials are protected as well: the passwd entry's directory when
    /// `HOME` names another one (see [`home`]).
    pub other_homes: Vec<PathBuf>,
    /// `$CODEX_HOME`, default `~/.codex`
    pub codex_home: Option<PathBuf>,
    /// `$TMPDIR`
    pub tmpdir: Option<PathBuf>,
    /// `$PWD`: how the user reached the working directory (a link the kernel's `getcwd` hides).
    pub pwd: Option<PathBuf>,
    /// Credential locations moved by the environment: `$XDG_CONFIG_HOME/{gh,gcloud,...}`,
    /// `$DOCKER_CONFIG/config.json`, each file of `$KUBECONFIG`, `$GNUPGHOME`,
    /// `$CARGO_HOME/credentials*` (fifth review round F7).
    pub credential_env: Vec<PathBuf>,
}

impl SandboxEnv {
    /// Read `HOME`, `CODEX_HOME` and `TMPDIR` from this process's environment (empty values
    /// count as unset) and the passwd entry's home (see [`home`]).
    pub fn from_process() -> Self {
        fn var(name: &str) -> Option<PathBuf> {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        }
        let mut homes = home::homes(var("HOME").as_deref()).into_iter();
        let absolute = |p: PathBuf| p.is_absolute().then_some(p);
        let mut credential_env = Vec::new();
        if let Some(x) = var("XDG_CONFIG_HOME").and_then(absolute) {
            for d in CREDENTIAL_PATHS {
                if let Some(rest) = d.strip_prefix(".config/") {
                    credential_env.push(x.join(rest));
                }
            }
        }
        if let Some(d) = var("DOCKER_CONFIG").and_then(absolute) {
            credential_env.push(d.join("config.json"));
        }
        if let Some(k) = std::env::var_os("KUBECONFIG") {
            credential_env.extend(std::env::split_paths(&k).filter(|p| p.is_absolute()));
        }
        if let Some(g) = var("GNUPGHOME").and_then(absolute) {
            credential_env.push(g);
        }
        if let Some(c) = var("CARGO_HOME").and_then(absolute) {
            credential_env.push(c.join("credentials"));
            credential_env.push(c.join("credentials.toml"));
        }
        // outside review r63 F5: credentials outside the home. MIT Kerberos keeps the user's
        // tickets in `/tmp/krb5cc_UID` (or where `KRB5CCNAME` says: `FILE:`/`DIR:` paths);
        // podman, buildah and skopeo their registry logins in `$XDG_RUNTIME_DIR/containers`
        // (or `$REGISTRY_AUTH_FILE`). Caches with a random suffix (`krb5cc_UID_XXXXXX`, sssd)
        // are not found: name them with `--deny-read`.
        credential_env.push(PathBuf::from(format!("/tmp/krb5cc_{}", sys::uid())));
        if let Some(k) = std::env::var_os("KRB5CCNAME") {
            let k = k.to_string_lossy();
            let path = k
                .strip_prefix("FILE:")
                .or_else(|| k.strip_prefix("DIR:"))
                .unwrap_or(&k);
            if let Some(p) = absolute(PathBuf::from(path)) {
                credential_env.push(p);
            }
        }
        if let Some(r) = var("XDG_RUNTIME_DIR").and_then(absolute) {
            credential_env.push(r.join("containers/auth.json"));
        }
        if let Some(a) = var("REGISTRY_AUTH_FILE").and_then(absolute) {
            credential_env.push(a);
        }
        SandboxEnv {
            home: homes.next(),
            other_homes: homes.collect(),
            codex_home: var("CODEX_HOME"),
            tmpdir: var("TMPDIR"),
            pwd: var("PWD"),
            credential_env,
        }
    }

    /// The credential paths that stay unreadable in `read-only` and `workspace-write`:
    /// `$CODEX_HOME` (all of it: `auth.json`, the credential stores, `config.toml` with MCP
    /// servers' secrets, editors' copies of it, sessions), and in every home
    /// [`CREDENTIAL_PATHS`].
    pub fn default_deny_read(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Some(ch) = &self.codex_home {
            // whole: `config.toml` holds MCP servers' static headers and `env` values (outside
            // review r74 F1), and editors' swap and backup copies of it sit beside it (r75 F2)
            v.push(ch.clone());
        }
        v.extend(self.credential_env.iter().cloned());
        for h in self.home.iter().chain(&self.other_homes) {
            for d in CREDENTIAL_PATHS {
                v.push(h.join(d));
            }
        }
        v
    }
}

/// The name of the directory in a temporary root that holds the Linux sandbox's per-run
/// temporary directories of user `uid` (its `$TMPDIR`; `sandbox-linux/src/own_tmp.rs`).
pub fn own_tmp_parent_name(uid: u32) -> String {
    format!("codex-sandbox-{uid}")
}

/// Paths below a home that hold credentials of common tools (issue 12 item 7): unreadable in
/// `read-only` and `workspace-write`. A path that does not exist costs nothing.
pub const CREDENTIAL_PATHS: &[&str] = &[
    // codex's home, whole (outside review r75 F2: after `config.toml` was denied, vim's swap
    // `.config.toml.swp` and `config.toml~`/`.bak`/`.orig` copies gave its MCP secrets away;
    // its sessions hold whole conversations)
    ".codex",
    // r75 F3: RubyGems' XDG key file (written by the real `gem`), and more tools' secrets
    ".local/share/gem/credentials",
    ".kaggle/kaggle.json",
    ".config/kaggle/kaggle.json",
    ".passwd-s3fs",
    ".dbt/profiles.yml",
    ".snowsql/config",
    ".snowflake/connections.toml",
    ".config/scw/config.yaml",
    ".config/argocd/config",
    ".talos/config",
    ".davfs2/secrets",
    ".config/linode-cli",
    ".ivy2/.credentials",
    ".sbt/.credentials",
    ".qwen/oauth_creds.json",
    ".config/shell_gpt/.sgptrc",
    // outside review r74 I1: named tools' files still readable, and more tools' keys
    ".hcloud/cli.toml",
    ".local/share/containers/auth.json",
    ".heroku",
    ".netlify",
    ".config/sentry",
    ".config/openai",
    ".gitlab-token",
    ".jira.d/config.yml",
    ".ssh",
    ".gnupg",
    ".aws",
    ".config/gcloud",
    ".azure",
    ".git-credentials",
    ".netrc",
    ".config/gh/hosts.yml",
    ".docker/config.json",
    ".kube/config",
    ".npmrc",
    ".pypirc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".local/share/keyrings",
    ".password-store",
    ".Xauthority",
    ".mozilla",
    ".config/google-chrome",
    ".config/chromium",
    ".config/BraveSoftware",
    ".config/microsoft-edge",
    ".config/op",
    // fifth review round F7: XDG, snap and flatpak locations, more browsers and tools
    ".config/git/credentials",
    ".config/hub",
    ".config/vivaldi",
    ".config/opera",
    ".librewolf",
    ".config/kwalletrc",
    ".local/share/kwalletd",
    "snap/firefox/common/.mozilla",
    "snap/chromium/common/chromium",
    ".var/app/org.mozilla.firefox",
    ".var/app/com.google.Chrome",
    ".var/app/org.chromium.Chromium",
    ".var/app/com.brave.Browser",
    ".pgpass",
    ".my.cnf",
    ".vault-token",
    ".terraform.d/credentials.tfrc.json",
    ".gem/credentials",
    ".s3cfg",
    ".boto",
    ".m2/settings.xml",
    ".m2/settings-security.xml",
    ".gradle/gradle.properties",
    // outside review r10 F-S2: more tools' tokens, and histories (passwords typed on command
    // lines, connection strings)
    ".config/github-copilot",
    ".claude/.credentials.json",
    ".cache/huggingface/token",
    ".huggingface/token",
    ".config/rclone/rclone.conf",
    ".config/doctl/config.yaml",
    ".config/hcloud/cli.toml",
    ".oci",
    ".databrickscfg",
    ".config/composer/auth.json",
    ".composer/auth.json",
    ".wrangler",
    ".config/.wrangler",
    ".config/heroku",
    ".config/configstore",
    ".config/netlify",
    ".local/share/com.vercel.cli",
    ".fly/config.yml",
    ".config/stripe",
    ".config/ngrok",
    ".ngrok2",
    ".config/sops",
    ".terraformrc",
    ".bash_history",
    ".zsh_history",
    ".zhistory",
    ".histfile",
    ".local/share/fish/fish_history",
    ".psql_history",
    ".mysql_history",
    ".sqlite_history",
    ".rediscli_history",
    ".python_history",
    ".node_repl_history",
    // outside review r60 F3: password managers' vaults and keys (with `BW_SESSION` in the
    // environment a Bitwarden vault decrypts offline), age keys
    ".config/Bitwarden CLI",
    ".config/Bitwarden",
    ".local/share/rbw",
    ".config/age",
    ".local/share/keepassxc",
    ".config/keepassxc",
    // outside review r63 F6: container and cluster client keys, NSS and mail clients' stores,
    // more CLIs' tokens, mail and SMB passwords, vault passwords, histories
    ".config/containers/auth.json",
    ".docker/key.pem",
    ".docker/contexts/tls",
    ".minikube/profiles",
    ".minikube/certs",
    ".minikube/ca.key",
    ".minikube/proxy-client-ca.key",
    ".pki/nssdb",
    ".thunderbird",
    ".purple",
    ".gemini/oauth_creds.json",
    ".claude.json",
    ".config/glab-cli",
    ".pulumi/credentials.json",
    ".supabase/access-token",
    ".railway/config.json",
    ".config/vercel/auth.json",
    ".sentryclirc",
    ".wakatime.cfg",
    ".yarnrc.yml",
    ".bundle/config",
    ".nuget/NuGet/NuGet.Config",
    ".config/pip/pip.conf",
    ".pip/pip.conf",
    ".config/helm/repositories.yaml",
    ".mc/config.json",
    ".circleci/cli.yml",
    ".fetchmailrc",
    ".msmtprc",
    ".mbsyncrc",
    ".muttrc",
    ".config/aerc/accounts.conf",
    ".smbcredentials",
    ".vault_pass",
    ".ansible/vault_pass.txt",
    ".config/goose/secrets.yaml",
    ".local/share/atuin",
    ".viminfo",
    ".lesshst",
    // outside review r65 F4: the same tools' other standard paths
    ".config/NuGet/NuGet.Config",
    ".mcli/config.json",
    ".config/msmtp/config",
    ".config/isync/mbsyncrc",
    ".mutt/muttrc",
    ".config/mutt/muttrc",
    ".authinfo",
    ".authinfo.gpg",
    ".mylogin.cnf",
    ".sh_history",
    ".yarnrc",
    ".config/pypoetry/auth.toml",
    // outside review r66 F3: IDE password stores and state, runners, more CLIs' and AI tools' keys
    ".config/JetBrains",
    ".gitlab-runner/config.toml",
    ".subversion/auth",
    ".config/filezilla",
    ".local/share/python_keyring",
    ".cloudflared",
    ".ollama/id_ed25519",
    ".config/io.datasette.llm/keys.json",
    ".local/share/opencode/auth.json",
    ".config/aichat",
    ".continue/config.json",
    ".continue/config.yaml",
    ".aider.conf.yml",
    ".config/Code/User/globalStorage/state.vscdb",
    ".config/Cursor/User/globalStorage/state.vscdb",
    ".wgetrc",
    ".expo/state.json",
    ".config/tea/config.yml",
    ".config/fish/fish_variables",
];

/// A writable directory and the paths below it that stay read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WritableRoot {
    /// Canonical absolute path of the root.
    pub root: PathBuf,
    /// `.git`, the gitdir a `.git` file points to (when it is below no other root it is still
    /// listed: it must not become writable through this root), and `.codex`. Each entry says
    /// whether it exists now: a backend that can only protect existing paths reports the others.
    pub read_only_subpaths: Vec<ReadOnlySubpath>,
}

/// A path under a writable root that must stay read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadOnlySubpath {
    pub path: PathBuf,
    pub exists: bool,
    /// A path on the way to this one that the sandboxed command could swap, so that protecting
    /// `path` would protect the wrong thing: a symlink component of a `.git` file's `gitdir:` path
    /// (anywhere: the command may own the link), or a directory inside a writable root above the
    /// gitdir (it can be renamed away and re-created; the read-only mount moves with it). A
    /// backend refuses to run while this is set (see `docs/security.md`, "Carve-outs").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaceable_via: Option<PathBuf>,
}

impl WritableRoot {
    /// `all_roots`: every writable root of the policy (a gitdir under any of them may be
    /// replaceable, not only under this one).
    fn new(root: PathBuf, all_roots: &[PathBuf]) -> Self {
        let mut subs = Vec::new();
        let dot_git = root.join(".git");
        match std::fs::symlink_metadata(&dot_git) {
            Ok(m) if m.is_file() => {
                subs.push(ReadOnlySubpath {
                    path: dot_git.clone(),
                    exists: true,
                    replaceable_via: None,
                });
                if let Some(gitdir) = read_gitdir_file(&dot_git) {
                    let (p, hazard) = carve_out_target(&gitdir, all_roots);
                    // a worktree's gitdir names the main repository's in `commondir`: git
                    // reads `config` and hooks from there (third review round F3)
                    let common = read_commondir(&p);
                    let mut add = |new: Vec<ReadOnlySubpath>| {
                        for n in new {
                            if !subs.iter().any(|s| s.path == n.path) {
                                subs.push(n);
                            }
                        }
                    };
                    let mut gitdirs = vec![p.clone()];
                    add(carve_outs_for(p, hazard));
                    if let Some(common) = common {
                        let (c, hazard) = carve_out_target(&common, all_roots);
                        gitdirs.push(c.clone());
                        add(carve_outs_for(c, hazard));
                    }
                    for g in gitdirs {
                        for alt in read_alternates(&g, all_roots) {
                            let (a, hazard) = carve_out_target(&alt, all_roots);
                            add(carve_outs_for(a, hazard));
                        }
                    }
                }
            }
            Ok(_) => {
                subs.push(ReadOnlySubpath {
                    path: dot_git.clone(),
                    exists: true,
                    replaceable_via: None,
                });
                // objects borrowed from another repository (`git clone --shared`, alternates):
                // rewriting them there changes what this checkout's git reads (fifth review
                // round F5)
                for alt in read_alternates(&dot_git, all_roots) {
                    let (a, hazard) = carve_out_target(&alt, all_roots);
                    for n in carve_outs_for(a, hazard) {
                        if !subs.iter().any(|s| s.path == n.path) {
                            subs.push(n);
                        }
                    }
                }
            }
            Err(_) => subs.push(ReadOnlySubpath {
                path: dot_git,
                exists: false,
                replaceable_via: None,
            }),
        }
        let dot_codex = root.join(".codex");
        let exists = std::fs::symlink_metadata(&dot_codex).is_ok();
        subs.push(ReadOnlySubpath {
            path: dot_codex,
            exists,
            replaceable_via: None,
        });
        WritableRoot {
            root,
            read_only_subpaths: subs,
        }
    }
}

/// The components of `p` the sandboxed command could swap, walking it as the kernel would:
/// every directory inside a writable root that a `..` steps back out of (`x/../gd`: git
/// outside resolves `x` physically, so a command that turns `x` into a symlink moves where `..`
/// lands; outside review, second round, F2; all of them, not only the first: r43 F4,
/// `~/a/b/../c/../../x` held `~/a/b` but not `~/a/c`), and last a symlink inside a root (or
/// one that cannot be read or ends a chain of 40), where the walk stops. `..` pops the walked
/// prefix, which is exact because links outside the roots are followed as the kernel does and
/// the walk stops at the first link inside one. A component that does not exist ends the
/// walk: nothing there to swap yet, and no mount is made.
fn swappables(p: &Path, roots: &[PathBuf]) -> Vec<PathBuf> {
    use std::path::Component;
    let in_a_root = |x: &Path| roots.iter().any(|r| x.starts_with(r) && x != r);
    // the components still to walk, last first
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    let push_path = |todo: &mut Vec<std::ffi::OsString>, q: &Path| {
        for c in q.components().rev() {
            todo.push(c.as_os_str().to_owned());
        }
    };
    push_path(&mut todo, p);
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    let mut found = Vec::new();
    while let Some(c) = todo.pop() {
        match Path::new(&c).components().next() {
            None | Some(Component::RootDir | Component::Prefix(_) | Component::CurDir) => {
                if Path::new(&c).has_root() {
                    cur = PathBuf::from("/");
                }
            }
            Some(Component::ParentDir) => {
                if in_a_root(&cur) && !found.contains(&cur) {
                    found.push(cur.clone());
                }
                cur.pop();
            }
            Some(Component::Normal(name)) => {
                cur.push(name);
                match std::fs::symlink_metadata(&cur) {
                    Ok(m) if m.file_type().is_symlink() => {
                        // a link inside a root can be re-pointed; one outside every root is
                        // read-only to the command: follow it (second review round, F1 of
                        // round 3: `~/.codex -> ~/dotfiles/codex` with the target in a root)
                        if in_a_root(&cur) {
                            found.push(cur);
                            return found;
                        }
                        links += 1;
                        let Ok(target) = std::fs::read_link(&cur) else {
                            found.push(cur);
                            return found;
                        };
                        if links > 40 {
                            found.push(cur);
                            return found;
                        }
                        cur.pop();
                        push_path(&mut todo, &target);
                    }
                    Ok(_) => {}
                    Err(_) => return found,
                }
            }
        }
    }
    found
}

/// The first of [`swappables`]: a path on the way to `p` that the sandboxed command could
/// re-point (the request's home check).
pub(crate) fn swappable_on_the_way(p: &Path, roots: &[PathBuf]) -> Option<PathBuf> {
    swappables(p, roots).into_iter().next()
}

/// Below a root's own `.git` *directory* nothing can be renamed: that directory is itself a
/// read-only carve-out (a mount point, so `rename` gets EBUSY) and everything under it is
/// read-only (a worktree's `gitdir: /repo/.git/worktrees/wt` with `/repo` a writable root).
fn renameable_ancestor(gitdir: &Path, roots: &[PathBuf]) -> Option<PathBuf> {
    roots.iter().find_map(|r| {
        let mut comps = gitdir.strip_prefix(r).ok()?.components();
        let (Some(first), Some(_)) = (comps.next(), comps.next()) else {
            return None;
        };
        let top = r.join(first);
        let carved = first.as_os_str() == ".git"
            && std::fs::symlink_metadata(&top).is_ok_and(|m| m.is_dir());
        (!carved).then_some(top)
    })
}

/// Where a carve-out named by a path (`gitdir:`, `$CODEX_HOME`) lands, and what on the way the
/// command could swap: a symlink or a `..` out of a directory in a root ([`swappables`];
/// the path is then reported as written), else a renameable directory above the canonical path
/// ([`renameable_ancestor`]).
fn carve_out_target(written: &Path, roots: &[PathBuf]) -> (PathBuf, Vec<PathBuf>) {
    // (the hazards, if any, are resolved by `carve_outs_for`)
    let mut hazards = swappables(written, roots);
    if let Some(link) = hazards.iter().find(|h| h.is_symlink()) {
        return (normalize_lexically(written), vec![link.clone()]);
    }
    let p = canonical_or_lexical(written);
    if let Some(dir) = renameable_ancestor(&p, roots) {
        if !hazards.contains(&dir) {
            hazards.push(dir);
        }
    }
    (p, hazards)
}

/// The carve-outs for `path` given what on the way could be swapped: a symlink cannot be held
/// in place by a mount (a mount follows it), so the entry carries it and the run is refused;
/// a directory (renameable, or one a `..` steps out of) is carved out itself: as a mount point
/// it cannot be renamed or replaced (EBUSY), and everything below it, `path` included, is
/// read-only. (Refusing instead made every `CODEX_HOME=/tmp/x/codex-home` fail under
/// `--full-auto`, `/tmp` being a default root.)
fn carve_outs_for(path: PathBuf, hazards: Vec<PathBuf>) -> Vec<ReadOnlySubpath> {
    let exists = path.exists();
    if let Some(link) = hazards.iter().find(|h| h.is_symlink()) {
        return vec![ReadOnlySubpath {
            path,
            exists,
            replaceable_via: Some(link.clone()),
        }];
    }
    let mut v: Vec<ReadOnlySubpath> = hazards
        .into_iter()
        .map(|dir| ReadOnlySubpath {
            exists: dir.exists(),
            path: dir,
            replaceable_via: None,
        })
        .collect();
    v.push(ReadOnlySubpath {
        path,
        exists,
        replaceable_via: None,
    });
    v
}

/// Files in `~` that make the user's next shell, login or `git` run what they say: read-only
/// carve-outs when `~` is inside a writable root (`codex` started in `~`, or a root above it;
/// outside review r29 F4: `core.fsmonitor` added to `~/.gitconfig` ran at the user's next
/// `git status`). Only top-level names: protecting a missing `~/.config/git` would refuse
/// creating `~/.config` itself. Not covered: `~/.config/*`, `~/.local/bin`, `~/bin` and the
/// rest of `~`, which such a root makes writable; a `~` strictly below a root (its directories
/// could be swapped: carving the files out would hold the whole home read-only, r30 F2);
/// without user namespaces existing ones stay writable (docs/security.md).
pub const HOME_STARTUP_FILES: &[&str] = &[
    ".bashrc",
    ".bashrc.d",
    ".bash_aliases",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zshenv",
    ".zprofile",
    ".zlogin",
    ".zlogout",
    ".gitconfig",
    ".ssh",
    ".pam_environment",
    ".xprofile",
    ".xsessionrc",
    ".xinitrc",
    // outside review r32 F6: the X session files Debian's Xsession, startx/xinit and Fedora's
    // Xclients run; csh/tcsh/ksh start-up; files that grant logins or run on mail delivery
    ".xsession",
    ".Xsession",
    ".xserverrc",
    ".Xclients",
    ".login",
    ".logout",
    ".cshrc",
    ".tcshrc",
    ".kshrc",
    ".mkshrc",
    ".forward",
    ".rhosts",
    ".shosts",
    ".k5login",
    // tools the user runs by hand that run commands their config names
    ".hgrc",
    ".vimrc",
    ".gvimrc",
    ".exrc",
    ".emacs",
    ".tmux.conf",
    ".screenrc",
    ".gdbinit",
    ".psqlrc",
    ".sqliterc",
    // outside review r35 F4: vim reads `~/.vim/vimrc` when `~/.vimrc` is missing and runs
    // `~/.vim/plugin/*` at every start; emacs reads `~/.emacs.d/init.el`
    ".vim",
    ".emacs.d",
    // outside review r38 F3: readline macros run at the next typed line (`.inputrc`), `less`
    // runs `LESSOPEN` from `.lesskey`; debuggers' and REPLs' start-up files
    ".inputrc",
    ".lesskey",
    ".lldbinit",
    ".irbrc",
    ".Rprofile",
    ".ghci",
    ".mailcap",
];

/// How far the deny-read walk for links goes: the entries looked at below one denied directory
/// (past the bound it is not searched further: docs/security.md).
const LINK_WALK_MAX_ENTRIES: usize = 4096;
/// The deny-read walk runs at every start: two levels (`~/.ssh/id_x`,
/// `~/.gnupg/private-keys-v1.d/k.key`), not a browser profile's whole tree.
const DENY_LINK_WALK_DEPTH: usize = 2;

/// How a bounded walk ([`walk_below`]) ended.
#[derive(Debug, PartialEq, Eq)]
enum WalkEnd {
    Complete,
    /// Directories were left below the last level.
    DepthBound,
    /// The entry budget ran out.
    EntryBound,
}

/// Breadth first over the entries below `dir` (links are not followed; the types come from
/// `getdents`, no `lstat` each), at most `depth` levels and `*budget` entries (the budget is
/// the caller's, shared by its walks); `visit` sees every entry that is not a directory.
fn walk_below(
    dir: &Path,
    depth: usize,
    budget: &mut usize,
    mut visit: impl FnMut(&std::fs::DirEntry, std::fs::FileType),
) -> WalkEnd {
    let mut level = vec![dir.to_path_buf()];
    for _ in 0..depth {
        if level.is_empty() {
            return WalkEnd::Complete;
        }
        let mut next = Vec::new();
        for d in &level {
            let Ok(entries) = std::fs::read_dir(d) else {
                continue;
            };
            for e in entries.flatten() {
                if *budget == 0 {
                    return WalkEnd::EntryBound;
                }
                *budget -= 1;
                match e.file_type() {
                    Ok(t) if t.is_dir() => next.push(e.path()),
                    Ok(t) => visit(&e, t),
                    Err(_) => {}
                }
            }
        }
        level = next;
    }
    if level.is_empty() {
        WalkEnd::Complete
    } else {
        WalkEnd::DepthBound
    }
}

/// The symbolic links below `dir`, within [`LINK_WALK_MAX_ENTRIES`] entries and `depth`
/// levels; `false` when the entry bound cut the search (links below the last level are not
/// reported: every browser profile would be).
fn links_below(dir: &Path, depth: usize) -> (Vec<PathBuf>, bool) {
    let mut links = Vec::new();
    let mut budget = LINK_WALK_MAX_ENTRIES;
    let end = walk_below(dir, depth, &mut budget, |e, t| {
        if t.is_symlink() {
            links.push(e.path());
        }
    });
    (links, end != WalkEnd::EntryBound)
}

/// What a startup directory leads to ([`scan_startup_dir`]).
struct StartupScan {
    /// The targets of the links found (a directory target is searched in turn).
    targets: Vec<PathBuf>,
    /// Regular files with more than one hard link.
    hard_linked: Vec<PathBuf>,
    /// The bound ([`STARTUP_SCAN_MAX_ENTRIES`] entries, [`STARTUP_SCAN_MAX_DEPTH`] levels) was
    /// reached: what lies beyond is unknown.
    incomplete: bool,
}

/// Bounds of [`scan_startup_dir`] (vim's package layout, `~/.vim/pack/*/start/*/plugin/x.vim`,
/// is five levels: outside review r38 F4).
const STARTUP_SCAN_MAX_ENTRIES: usize = 20_000;
const STARTUP_SCAN_MAX_DEPTH: usize = 8;

/// Searches a startup directory, and the directories its links lead to, for links (their
/// targets) and hard-linked files. Runs only when `~` is inside a writable root.
fn scan_startup_dir(dir: &Path, roots: &[PathBuf]) -> StartupScan {
    use std::os::unix::fs::MetadataExt;
    let mut scan = StartupScan {
        targets: Vec::new(),
        hard_linked: Vec::new(),
        incomplete: false,
    };
    let mut budget = STARTUP_SCAN_MAX_ENTRIES;
    let mut done: Vec<PathBuf> = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(top) = todo.pop() {
        if done.contains(&top) {
            continue;
        }
        done.push(top.clone());
        let end = walk_below(&top, STARTUP_SCAN_MAX_DEPTH, &mut budget, |e, t| {
            if t.is_symlink() {
                if let Some(target) = link_target(&e.path()) {
                    // (a directory target outside every root is not writable: not searched)
                    if target.is_dir() && roots.iter().any(|r| target.starts_with(r)) {
                        todo.push(target.clone());
                    }
                    scan.targets.push(target);
                }
            } else if t.is_file() && e.metadata().is_ok_and(|m| m.nlink() > 1) {
                scan.hard_linked.push(e.path());
            }
        });
        if end != WalkEnd::Complete {
            scan.incomplete = true;
            return scan;
        }
    }
    scan
}

/// Where the symbolic link `link` leads: its canonical target, or for a dangling link the
/// target as written (relative to the link's directory) with its existing part resolved: a
/// missing target can be created later, and is what a carve-out or a deny must name.
fn link_target(link: &Path) -> Option<PathBuf> {
    if let Ok(c) = std::fs::canonicalize(link) {
        return Some(c);
    }
    let t = std::fs::read_link(link).ok()?;
    let t = if t.is_absolute() {
        t
    } else {
        link.parent()?.join(t)
    };
    Some(canonical_or_lexical(&t))
}

/// Outside review r35 F3: a secret kept as a link inside a denied directory
/// (`~/.ssh/id_ed25519 -> ~/dotfiles/ssh/id_ed25519`) was read through the link: the deny
/// holds the directory's own entries, not what its links lead to. Each denied directory is
/// searched for links (bounded: [`links_below`]) and their targets are denied too, except a
/// target that is `/`, a home, or holds a writable root or the working directory (`keep`):
/// denying those would deny the command its own workspace.
fn deny_link_targets(
    deny: &mut Vec<PathBuf>,
    dirs: &[PathBuf],
    env: &SandboxEnv,
    keep: &[PathBuf],
) -> Vec<PathBuf> {
    let mut unsearched = Vec::new();
    if dirs.is_empty() {
        return unsearched;
    }
    let homes: Vec<PathBuf> = env
        .home
        .iter()
        .chain(&env.other_homes)
        .map(|h| std::fs::canonicalize(h).unwrap_or_else(|_| h.clone()))
        .collect();
    // the denied directories (known from the list's own walk: no `lstat` of the ~170 paths,
    // most of them missing), then the directories among the targets
    let mut todo: Vec<PathBuf> = dirs.to_vec();
    while let Some(d) = todo.pop() {
        let (links, complete) = links_below(&d, DENY_LINK_WALK_DEPTH);
        if !complete && !unsearched.contains(&d) {
            unsearched.push(d.clone());
        }
        for link in links {
            let Some(t) = link_target(&link) else {
                continue;
            };
            let too_wide = t.parent().is_none()
                || homes.contains(&t)
                || keep.iter().any(|k| k.starts_with(&t));
            if too_wide || deny.iter().any(|x| t.starts_with(x)) {
                continue;
            }
            if t.is_dir() {
                todo.push(t.clone());
            }
            deny.push(t);
        }
    }
    unsearched
}

/// The user's directories in a temporary root (`/tmp`, `$TMPDIR`) on the way to a unix socket
/// someone listens on when the sandbox starts (`/tmp/tmux-UID`, `/tmp/ssh-XXXX` of an
/// ssh-agent, emacs' and gpg's; the shallowest one the user owns, at any depth: r45 F3) are
/// read-only carve-outs: the command could unlink the socket and listen in its place, and the
/// user's next `tmux` ran the command's `MSG_LOCK` command outside the sandbox, and the next
/// `ssh-add` handed it a decrypted private key (fifth review round F9; outside review r44 F4).
/// The sockets are found in `/proc/net/unix` (the paths they were bound at; one read, where
/// looking into every directory of `/tmp` cost 450 system calls per start on a busy `/tmp`, and
/// a command could make 3000 directories to push the user's past that walk's bound: r45 F1).
/// Only directories the user owns (another user's cannot be written). With no such directory
/// on the way (the socket directly in the root, `$TMPDIR/vscode-ipc-*.sock`: outside review r47
/// F1; or below a directory of root's, `/tmp/.X11-unix/X0`: r46 F4; the sticky bit lets the
/// socket's owner, the command's uid, remove it), the user's socket itself is held (a
/// read-only mount on it: `unlink` and `rename` over it fail with `EBUSY`; connecting is
/// unchanged). A socket whose bound path no longer names it (renamed; linked elsewhere and the
/// bound name removed, as ssh's ControlMaster does; bound by a relative path) and the other
/// names of a held socket are found by the node it is bound to (`unix_diag`, one dump, only
/// then) in each temporary root's top level and in the directory it was bound in, and held
/// the same way (outside review r48 F1). Not held: a link to a socket (r45 F4: a mount cannot
/// hold a symbolic link), such a name anywhere deeper or in a directory renamed since, one in
/// another network namespace, and sockets in other roots (a project's own sockets are its
/// work). Cost: a command that starts its own tmux or ssh-agent in such a
/// directory must use another (`TMUX_TMPDIR`, `ssh-agent -a`).
/// Returns the held sockets reached through a link of the user's (socket, link).
#[cfg(target_os = "linux")]
fn protect_socket_dirs(
    roots: &mut [WritableRoot],
    temp_roots: &[PathBuf],
) -> Vec<(PathBuf, PathBuf)> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use unix_diag::kernel_dev;
    let mut links = Vec::new();
    if temp_roots.is_empty() {
        return links;
    }
    let Ok(table) = std::fs::read("/proc/net/unix") else {
        return links;
    };
    let uid = sys::uid();
    // `@name` is abstract, no path
    let mut bound: Vec<(Option<u32>, &[u8])> = Vec::new();
    for (inode, path) in proc_net_unix(&table) {
        if path.is_empty() || path.starts_with(b"@") {
            continue;
        }
        // a relative bind: its name is found by its node below
        if path.starts_with(b"/") {
            let p = Path::new(std::ffi::OsStr::from_bytes(path));
            if !temp_roots.iter().any(|r| p.starts_with(r)) {
                continue;
            }
        }
        bound.push((inode, path));
    }
    if bound.is_empty() {
        return links;
    }
    // The node each listening socket is bound to (`unix_diag`; unavailable: the bound paths
    // are taken at their word, as before r49 F1).
    let nodes = sys::listening_unix_nodes().unwrap_or_default();
    // Sockets whose bound path no longer names them (renamed, or linked elsewhere and the
    // bound name removed, as ssh's ControlMaster does; bound by a relative path; outside review
    // r49 F1: the bound name re-made as another socket file, which hid the rename): their nodes
    // and where they were bound. And the nodes of held sockets with other names too.
    let mut moved: Vec<((u32, u64), Option<PathBuf>)> = Vec::new();
    let mut linked: Vec<((u32, u64), PathBuf)> = Vec::new();
    for (inode, path) in bound {
        let node = inode.and_then(|i| nodes.get(&i).copied());
        if !path.starts_with(b"/") {
            if let Some(node) = node {
                moved.push((node, None));
            }
            continue;
        }
        let path = Path::new(std::ffi::OsStr::from_bytes(path));
        let here = std::fs::symlink_metadata(path)
            .ok()
            .filter(|m| m.file_type().is_socket());
        match (node, here) {
            (Some(node), Some(m)) if (kernel_dev(m.dev()), m.ino()) == node => {
                if m.nlink() > 1 && m.uid() == uid {
                    linked.push((node, path.to_path_buf()));
                }
            }
            (Some(node), _) => moved.push((node, Some(path.to_path_buf()))),
            // not listening (an accepted connection shows its listener's path) or no dump
            (None, _) => {}
        }
        hold_socket(roots, temp_roots, path, uid, &mut links);
    }
    if moved.is_empty() && linked.is_empty() {
        return links;
    }
    // Outside review r48 F1: the names clients use are found by the node the socket is bound
    // to, in each temporary root's top level and in the directories the sockets were bound in
    // (a directory renamed since, or a name deeper elsewhere: not searched).
    let mut wanted: Vec<(u32, u64)> = moved.iter().map(|(node, _)| *node).collect();
    wanted.extend(linked.iter().map(|(node, _)| *node));
    let mut dirs: Vec<PathBuf> = temp_roots.to_vec();
    let bound_in = moved
        .iter()
        .filter_map(|(_, p)| p.as_deref())
        .chain(linked.iter().map(|(_, p)| p.as_path()))
        .filter_map(Path::parent);
    for d in bound_in {
        if !dirs.iter().any(|x| x == d) {
            dirs.push(d.to_path_buf());
        }
    }
    for d in &dirs {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        for entry in entries.flatten() {
            // `d_type`: no system call for the entries that are not sockets
            if !entry.file_type().is_ok_and(|t| t.is_socket()) {
                continue;
            }
            let p = entry.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.uid() == uid && wanted.contains(&(kernel_dev(m.dev()), m.ino())) {
                hold_socket(roots, temp_roots, &p, uid, &mut links);
            }
        }
    }
    links
}

/// Elsewhere there is no `/proc/net/unix`: nothing to hold.
#[cfg(not(target_os = "linux"))]
fn protect_socket_dirs(_: &mut [WritableRoot], _: &[PathBuf]) -> Vec<(PathBuf, PathBuf)> {
    Vec::new()
}

/// Hold the user's socket at `path` (inside a temporary root): the shallowest directory of the
/// user's on the way below the deepest temporary root holding it, else the socket itself.
#[cfg(target_os = "linux")]
fn hold_socket(
    roots: &mut [WritableRoot],
    temp_roots: &[PathBuf],
    path: &Path,
    uid: u32,
    links: &mut Vec<(PathBuf, PathBuf)>,
) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    // the deepest temporary root holding it (r46 F1: with `TMPDIR=/tmp/user/UID` the walk
    // from `/tmp` stopped at `$TMPDIR`, a root, and held nothing)
    let Some(t) = temp_roots
        .iter()
        .filter(|r| path.starts_with(r))
        .max_by_key(|r| r.components().count())
    else {
        return;
    };
    // the shallowest of the user's directories on the way below the root: everything below
    // it, the socket included, is then read-only, and it cannot be renamed
    let Ok(rest) = path.strip_prefix(t) else {
        return;
    };
    let comps: Vec<_> = rest.components().collect();
    let mut dir = t.clone();
    let mut held: Option<PathBuf> = None;
    for c in comps.iter().take(comps.len().saturating_sub(1)) {
        dir.push(c);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() && m.uid() == uid => {
                held = Some(dir.clone());
                break;
            }
            Ok(m) if m.is_dir() => {}
            // a link of the user's on the way: the socket is held below, the link cannot be
            Ok(m) if m.file_type().is_symlink() && m.uid() == uid => {
                let pair = (path.to_path_buf(), dir.clone());
                if !links.contains(&pair) {
                    links.push(pair);
                }
                break;
            }
            _ => break,
        }
    }
    // No directory of the user's on the way (the socket directly in the temporary root,
    // `$TMPDIR/vscode-ipc-*.sock`, outside review r47 F1; or below a directory of root's,
    // `/tmp/.X11-unix/X0`, r46 F4): the user's socket itself is held (a mount on it: it
    // cannot be unlinked, renamed over or replaced; connecting goes on)
    let dir = match held {
        Some(dir) => dir,
        None => match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() && m.uid() == uid => path.to_path_buf(),
            _ => return,
        },
    };
    hold_in_temp_root(roots, t, dir);
}

/// `dir` (an existing path of the user's below the temporary root `t`) becomes a read-only
/// carve-out of `t`, unless it is a root itself or above one (the cwd `/tmp/proj`: its own
/// rules).
#[cfg(target_os = "linux")]
fn hold_in_temp_root(roots: &mut [WritableRoot], t: &Path, dir: PathBuf) {
    if roots.iter().any(|w| w.root.starts_with(&dir)) {
        return;
    }
    if let Some(w) = roots.iter_mut().find(|w| w.root == t) {
        if !w.read_only_subpaths.iter().any(|s| s.path == dir) {
            w.read_only_subpaths.push(ReadOnlySubpath {
                path: dir,
                exists: true,
                replaceable_via: None,
            });
        }
    }
}

/// The rows of `/proc/net/unix` (`Num RefCount Protocol Flags Type St Inode Path`): each
/// socket's inode and its path, the rest after seven fields (it may hold spaces; empty when
/// unbound).
#[cfg(target_os = "linux")]
fn proc_net_unix(table: &[u8]) -> impl Iterator<Item = (Option<u32>, &[u8])> {
    table.split(|&b| b == b'\n').skip(1).map(|line| {
        let mut rest = line;
        let mut inode = None;
        for i in 0..7 {
            let start = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
            rest = &rest[start..];
            let end = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
            if i == 6 {
                inode = std::str::from_utf8(&rest[..end])
                    .ok()
                    .and_then(|t| t.parse::<u32>().ok());
            }
            rest = &rest[end..];
        }
        (inode, rest.trim_ascii_start())
    })
}

/// Whether a socket listening on the node `(st_dev, st_ino)` was bound at `path` itself (its
/// name in `/proc/net/unix`, this network namespace), rather than bound elsewhere and renamed
/// or linked there (outside review r62 F2: the command renamed the user's new ssh-agent
/// socket onto an allowed name that was missing at the start). A socket bound by a relative
/// path, or an unreadable table, counts as not bound there.
#[cfg(target_os = "linux")]
pub fn unix_socket_bound_at(path: &Path, node: (u64, u64)) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(table) = std::fs::read("/proc/net/unix") else {
        return false;
    };
    let want = path.as_os_str().as_bytes();
    let socks: Vec<u32> = proc_net_unix(&table)
        .filter(|(_, p)| *p == want)
        .filter_map(|(inode, _)| inode)
        .collect();
    if socks.is_empty() {
        return false;
    }
    let node = (unix_diag::kernel_dev(node.0), node.1);
    sys::listening_unix_nodes()
        .map(|nodes| socks.iter().any(|s| nodes.get(s) == Some(&node)))
        .unwrap_or(false)
}

#[cfg(not(target_os = "linux"))]
pub fn unix_socket_bound_at(_: &Path, _: (u64, u64)) -> bool {
    false
}

/// The directories where the user's own clients look for their servers by default, in each
/// temporary root: `tmux-UID` (tmux's `/tmp/tmux-UID/default`) and `emacsUID` (emacsclient's
/// `${TMPDIR-/tmp}/emacsUID/server`).
pub const RENDEZVOUS_DIRS: &[&str] = &["tmux-", "emacs"];

/// Outside review r62 F1: with no tmux server of the user's running at the start (so nothing
/// for [`protect_socket_dirs`] to hold), the command listened at `/tmp/tmux-UID/default` with a
/// configuration that redefined `ls`, `new` and `attach`; the user's next `tmux ls`, outside,
/// connected to it and, on its orders, appended to `~/.bashrc` and sent `~/.ssh/id_ed25519`
/// back (a tmux client does the file I/O its server asks for). The user's rendezvous
/// directories ([`RENDEZVOUS_DIRS`]) in every temporary root are read-only carve-outs whether
/// a server listens or not; a missing one is made first (0700, the user's, as tmux and emacs
/// make it), so there is a directory to hold. One that is not the user's own directory (another
/// user's, a symlink, a file) is left alone: tmux and emacs refuse to use it. Cost: a command
/// that starts its own tmux or emacs server there must use another directory
/// (`TMUX_TMPDIR`, `tmux -S`, `server-socket-dir`).
#[cfg(target_os = "linux")]
fn protect_rendezvous_dirs(roots: &mut [WritableRoot], temp_roots: &[PathBuf]) {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let uid = sys::uid();
    for t in temp_roots {
        for prefix in RENDEZVOUS_DIRS {
            let dir = t.join(format!("{prefix}{uid}"));
            if let Err(e) = std::fs::symlink_metadata(&dir) {
                if e.kind() == std::io::ErrorKind::NotFound {
                    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
                }
            }
            let ours = std::fs::symlink_metadata(&dir)
                .is_ok_and(|m| m.file_type().is_dir() && m.uid() == uid);
            if ours {
                hold_in_temp_root(roots, t, dir);
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn protect_rendezvous_dirs(_: &mut [WritableRoot], _: &[PathBuf]) {}

/// See [`HOME_STARTUP_FILES`]; the same swap rules as `$CODEX_HOME`.
/// Every home counts ([`home::homes`]: `$HOME` and the passwd entry's directory), each by its
/// canonical path (outside review r32 F5: with `HOME=/tmp/elsewhere`, or `HOME=/home/u/ws/..`,
/// and the command started in the real home, the real home's `.bashrc` and `.profile` were
/// writable: the carve-outs followed `$HOME`'s text only).
fn protect_home_startup_files(roots: &mut [WritableRoot], env: &SandboxEnv, all_roots: &[PathBuf]) {
    let mut homes: Vec<PathBuf> = Vec::new();
    for h in home::homes(env.home.as_deref()) {
        let h = std::fs::canonicalize(&h).unwrap_or(h);
        if !homes.contains(&h) {
            homes.push(h);
        }
    }
    for home in &homes {
        protect_startup_files_of(roots, home, all_roots);
    }
}

fn protect_startup_files_of(roots: &mut [WritableRoot], home: &Path, all_roots: &[PathBuf]) {
    if !roots.iter().any(|w| home.starts_with(&w.root)) {
        return;
    }
    for name in HOME_STARTUP_FILES {
        let (path, hazard) = carve_out_target(&home.join(name), all_roots);
        if hazard.iter().any(|h| h.is_symlink()) {
            // a startup file that is a symlink (dotfiles kept elsewhere, `stow`): a mount
            // cannot hold a link in place, so the entry carries it and the run is refused,
            // naming it, as for `$CODEX_HOME` (outside review r34 F1: the link was skipped
            // with the directories below, and the command wrote through `~/.bashrc` and
            // re-pointed `~/.profile`)
            for w in roots.iter_mut() {
                if path.starts_with(&w.root) || home.starts_with(&w.root) {
                    w.read_only_subpaths
                        .extend(carve_outs_for(path.clone(), hazard));
                    break;
                }
            }
            continue;
        }
        if !hazard.is_empty() {
            // `~` strictly below a root (`HOME=/tmp/x/home`): protecting these would hold the
            // directories above them read-only, the whole home with them (outside review r30
            // F2); not covered there (docs/security.md)
            continue;
        }
        for w in roots.iter_mut() {
            if path.starts_with(&w.root)
                && path != w.root
                && !w.read_only_subpaths.iter().any(|s| s.path == path)
            {
                w.read_only_subpaths
                    .extend(carve_outs_for(path.clone(), Vec::new()));
            }
        }
        // What the startup file leads to is the same startup file (outside review r35 F1, a
        // stow layout: `~/.ssh/config -> ../dotfiles/ssh_config` and `~/.bashrc.d/x.sh ->
        // ../dotfiles/x.sh` were written through; `~/.gitconfig`'s `[include] path =
        // ~/dotfiles/gitconfig.local` got `core.fsmonitor`): the targets of the links inside a
        // startup directory, and the files git's `include`/`includeIf` name, are carved out
        // too wherever they lie in a writable root.
        let mut led_to: Vec<PathBuf> = Vec::new();
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            let scan = scan_startup_dir(&path, all_roots);
            led_to.extend(scan.targets.iter().cloned());
            refuse_hard_links_and_unsearched(roots, &path, &scan);
        }
        if name == &".gitconfig" {
            let (files, dirs) = git_includes(&path, home);
            led_to.extend(files);
            for d in dirs {
                let scan = scan_startup_dir(&d, all_roots);
                led_to.extend(scan.targets.iter().cloned());
                refuse_hard_links_and_unsearched(roots, &d, &scan);
            }
        }
        carve_out_led_to(roots, led_to, all_roots);
    }
}

/// A file with another name inside a searched directory (outside review r38 F2: `~/.ssh/config`
/// or `~/.bashrc.d/a.sh` a hard link of a file elsewhere in `~`) is carved out by name, so that
/// the launcher refuses it ("has N hard links"); a directory too large to search is refused
/// whole.
fn refuse_hard_links_and_unsearched(roots: &mut [WritableRoot], dir: &Path, scan: &StartupScan) {
    // (a directory outside every root goes with the first root: only the refusal matters)
    let i = roots
        .iter()
        .position(|w| dir.starts_with(&w.root))
        .unwrap_or(0);
    let Some(w) = roots.get_mut(i) else {
        return;
    };
    for f in &scan.hard_linked {
        w.read_only_subpaths.push(ReadOnlySubpath {
            path: f.clone(),
            exists: true,
            replaceable_via: None,
        });
    }
    if scan.incomplete {
        w.read_only_subpaths.push(ReadOnlySubpath {
            path: dir.to_path_buf(),
            exists: true,
            replaceable_via: Some(dir.to_path_buf()),
        });
    }
}

/// Carves out each of `targets` that lies strictly inside a writable root (with the swap rules
/// of [`carve_out_target`]).
fn carve_out_led_to(roots: &mut [WritableRoot], targets: Vec<PathBuf>, all_roots: &[PathBuf]) {
    for target in targets {
        let (t, hazard) = carve_out_target(&target, all_roots);
        for w in roots.iter_mut() {
            if t.starts_with(&w.root)
                && t != w.root
                && !w.read_only_subpaths.iter().any(|s| s.path == t)
            {
                for c in carve_outs_for(t.clone(), hazard.clone()) {
                    if !w.read_only_subpaths.contains(&c) {
                        w.read_only_subpaths.push(c);
                    }
                }
            }
        }
    }
}

/// The files a git config file includes (`[include]` and `[includeIf "..."]` sections, their
/// `path` keys; `~/` is `home`, `~user/` that user's passwd home, a relative path is relative to
/// the including file's directory), followed into the files they include, ten levels deep,
/// and the hooks directory `core.hooksPath` names (outside review r38 F3b). Conditions are not
/// evaluated: every `includeIf` counts. Read with git's own syntax ([`git_config_values`]:
/// outside review r38 F1, a key on the section's line, quotes, comments and continuation
/// lines hid includes from a line-based reading).
fn git_includes(config: &Path, home: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    use std::os::unix::ffi::OsStrExt;
    let mut out: Vec<PathBuf> = Vec::new();
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut todo = vec![(config.to_path_buf(), 0usize)];
    while let Some((file, depth)) = todo.pop() {
        // bytes, as git reads them (outside review r40 F2: one byte that is not UTF-8 made the
        // file unreadable here and every include in it unprotected)
        let Ok(text) = std::fs::read(&file) else {
            continue;
        };
        let values = git_config_values(&text, |_, _, _| true);
        for (section, key, v) in values {
            let is_include = (section == "include" || section == "includeif") && key == "path";
            // directories git runs files from: searched like startup directories (r40 F1:
            // links and hard links inside `core.hooksPath`; F5: `init.templateDir`'s hooks are
            // copied into every new repository)
            let dir_value = section == "core" && key == "hookspath"
                || section == "init" && key == "templatedir";
            // Any other value: every word that is an absolute, `~` or `$HOME` path of an
            // existing file (outside review r41 F1: `sh ~/tools/x`, `!f() { ~/tools/x; }; f`,
            // `ssh -o ProxyCommand=/home/u/tools/x`; git hands such values to `sh -c`, so any
            // word can be a program): a program git runs or a file it reads, held read-only
            // like the config itself (a directory value, `safe.directory`, is not).
            let candidates: Vec<Vec<u8>> = if is_include || dir_value {
                vec![v]
            } else {
                shell_path_words(&v)
            };
            let only_files = !(is_include || dir_value);
            for v in candidates {
                let p = if let Some(rest) = v.strip_prefix(b"~/") {
                    home.join(std::ffi::OsStr::from_bytes(rest))
                } else if v == b"~" {
                    home.to_path_buf()
                } else if let Some(user) = v.strip_prefix(b"~") {
                    let (name, rest) = match user.iter().position(|&c| c == b'/') {
                        Some(i) => (&user[..i], &user[i + 1..]),
                        None => (user, &b""[..]),
                    };
                    match std::str::from_utf8(name).ok().and_then(passwd_home_of) {
                        Some(h) => h.join(std::ffi::OsStr::from_bytes(rest)),
                        None => continue,
                    }
                } else if v.starts_with(b"/") {
                    PathBuf::from(std::ffi::OsStr::from_bytes(&v))
                } else {
                    file.parent()
                        .unwrap_or(Path::new("/"))
                        .join(std::ffi::OsStr::from_bytes(&v))
                };
                // As written, not resolved (outside review r41 F2: a link on the way, e.g.
                // `~/.gitconfig.local -> dotfiles/...` or `~/.config/git -> ../.dotfiles/git`,
                // was re-pointed while only its target was held): the carve-out's swap rules
                // see the link and refuse the run, as for a startup file that is a link.
                // `..` kept too (outside review r42 F2: `~/a/../tools/x` was held as
                // `~/tools/x` while `~/a` could become a link): the swap rules hold a
                // directory a `..` steps out of in place
                let lexical = p;
                let expanded = if only_files {
                    expand_glob(&lexical)
                } else {
                    vec![lexical]
                };
                for p in expanded {
                    if only_files && !p.is_file() {
                        continue;
                    }
                    if dir_value && p.is_dir() {
                        let real = canonical_or_lexical(&p);
                        if !dirs.contains(&real) {
                            dirs.push(real);
                        }
                    }
                    if !out.contains(&p) {
                        // git stops with an error past 10 levels of includes (r40 F3: five
                        // were followed here, and the sixth was writable)
                        if is_include && depth < GIT_MAX_INCLUDE_DEPTH {
                            todo.push((p.clone(), depth + 1));
                        }
                        out.push(p);
                    }
                }
            }
        }
    }
    (out, dirs)
}

/// The paths a value git hands to `sh -c` may name, read roughly as the shell would (outside
/// review r42 F1: `${HOME}/x`, `"$HOME"/x`, `${HOME:-/y}/x`, quotes and backslashes inside a
/// word, a quoted path with a space, globs): `$HOME`/`${HOME}`/`${HOME:-...}` become `~`,
/// quotes and backslashes are dropped, and every run that starts with `/` or `~` after a blank
/// or an operator is taken up to the next operator, whole and up to its first blank; a word
/// with glob characters is matched against the directories it names ([`expand_glob`]).
fn shell_path_words(v: &[u8]) -> Vec<Vec<u8>> {
    // 1. $HOME forms
    let mut t: Vec<u8> = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i..].starts_with(b"${HOME") {
            if let Some(end) = v[i..].iter().position(|&c| c == b'}') {
                t.push(b'~');
                i += end + 1;
                continue;
            }
        }
        if v[i..].starts_with(b"$HOME")
            && !v
                .get(i + 5)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            t.push(b'~');
            i += 5;
            continue;
        }
        t.push(v[i]);
        i += 1;
    }
    // 2. quotes and escapes
    let mut u: Vec<u8> = Vec::with_capacity(t.len());
    let mut i = 0;
    while i < t.len() {
        match t[i] {
            b'"' | b'\'' => {}
            b'\\' if i + 1 < t.len() => {
                i += 1;
                u.push(t[i]);
            }
            c => u.push(c),
        }
        i += 1;
    }
    // 3. runs that start a path
    let operator = |c: u8| b";|&(){}<>=,`!\n".contains(&c);
    let mut out: Vec<Vec<u8>> = Vec::new();
    for i in 0..u.len() {
        if !(u[i] == b'/' || u[i] == b'~') {
            continue;
        }
        if i > 0 && !(u[i - 1].is_ascii_whitespace() || operator(u[i - 1])) {
            continue;
        }
        // an operator ends the run, except inside a bracket expression (r43 F2: the `!` of
        // `s.[!x]h` ended it)
        let mut end = u.len();
        let mut bracket: Option<usize> = None;
        for (k, &c) in u.iter().enumerate().skip(i) {
            match bracket {
                Some(open) if c == b']' && k > open + 1 => bracket = None,
                Some(_) => {}
                None if c == b'[' => bracket = Some(k),
                None if operator(c) => {
                    end = k;
                    break;
                }
                None => {}
            }
        }
        let whole = u[i..end].trim_ascii_end().to_vec();
        let word = whole
            .split(|c| c.is_ascii_whitespace())
            .next()
            .unwrap_or(b"")
            .to_vec();
        for w in [whole, word] {
            if !w.is_empty() && !out.contains(&w) {
                out.push(w);
            }
        }
    }
    out
}

/// The existing paths a glob pattern (`*`, `?`, `[...]` in its components) matches, component
/// by component (at most 4096 matches); a path without glob characters is returned as it is.
fn expand_glob(p: &Path) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let is_glob = |b: &[u8]| b.iter().any(|c| b"*?[".contains(c));
    if !is_glob(p.as_os_str().as_bytes()) {
        return vec![p.to_path_buf()];
    }
    let mut found = vec![PathBuf::from("/")];
    for comp in p.components().skip(1) {
        let name = comp.as_os_str().as_bytes();
        let mut next = Vec::new();
        for base in &found {
            if !is_glob(name) {
                next.push(base.join(comp));
                continue;
            }
            let Ok(entries) = std::fs::read_dir(base) else {
                continue;
            };
            for e in entries.flatten() {
                if wildcard_match(name, e.file_name().as_bytes()) {
                    next.push(e.path());
                }
            }
        }
        next.truncate(4096);
        found = next;
    }
    found
}

/// `sh`'s pattern matching of one name: `*`, `?`, `[...]` (with `!`/`^` and ranges); a
/// leading `.` is not matched by a wildcard.
fn wildcard_match(pat: &[u8], name: &[u8]) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some(b'?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some(b'[') => {
                let Some(close) = bracket_end(p) else {
                    return n.first() == Some(&b'[') && go(&p[1..], &n[1..]);
                };
                let Some(&c) = n.first() else { return false };
                let mut set = &p[1..close];
                let negate = matches!(set.first(), Some(b'!' | b'^'));
                if negate {
                    set = &set[1..];
                }
                let mut hit = false;
                let mut k = 0;
                while k < set.len() {
                    if set[k..].starts_with(b"[:") {
                        // a character class (r43 F2: `[[:alpha:]]` was not read)
                        let Some(e) = set[k + 2..].windows(2).position(|w| w == b":]") else {
                            break;
                        };
                        hit |= in_class(&set[k + 2..k + 2 + e], c);
                        k += e + 4;
                    } else if k + 2 < set.len() && set[k + 1] == b'-' {
                        hit |= set[k] <= c && c <= set[k + 2];
                        k += 3;
                    } else {
                        hit |= set[k] == c;
                        k += 1;
                    }
                }
                hit != negate && go(&p[close + 1..], &n[1..])
            }
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    /// The index of the `]` that closes the bracket expression `p` starts (`p[0]` is `[`): a
    /// `]` first in the set (after `!`/`^`) is a member, `[:class:]` is skipped whole.
    fn bracket_end(p: &[u8]) -> Option<usize> {
        let mut k = 1;
        if matches!(p.get(k), Some(b'!' | b'^')) {
            k += 1;
        }
        if p.get(k) == Some(&b']') {
            k += 1;
        }
        while k < p.len() {
            if p[k..].starts_with(b"[:") {
                let e = p[k + 2..].windows(2).position(|w| w == b":]")?;
                k += e + 4;
                continue;
            }
            if p[k] == b']' {
                return Some(k);
            }
            k += 1;
        }
        None
    }
    fn in_class(name: &[u8], c: u8) -> bool {
        match name {
            b"alpha" => c.is_ascii_alphabetic(),
            b"digit" => c.is_ascii_digit(),
            b"alnum" => c.is_ascii_alphanumeric(),
            b"upper" => c.is_ascii_uppercase(),
            b"lower" => c.is_ascii_lowercase(),
            b"space" => c.is_ascii_whitespace() || c == 0x0b,
            b"blank" => c == b' ' || c == b'\t',
            b"punct" => c.is_ascii_punctuation(),
            b"xdigit" => c.is_ascii_hexdigit(),
            b"print" => (0x20..0x7f).contains(&c),
            b"graph" => c.is_ascii_graphic(),
            b"cntrl" => c.is_ascii_control(),
            // an unknown class: count it as matching (a path held that need not be, never one
            // missed)
            _ => true,
        }
    }
    if name.first() == Some(&b'.') && pat.first() != Some(&b'.') {
        return false;
    }
    go(pat, name)
}

/// git's `MAX_INCLUDE_DEPTH`: deeper includes make every git command fail.
const GIT_MAX_INCLUDE_DEPTH: usize = 10;

/// The home directory `/etc/passwd` gives the user `name`.
fn passwd_home_of(name: &str) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 5 && f[0] == name && f[5].starts_with('/')).then(|| PathBuf::from(f[5]))
    })
}

/// The values of the keys `wanted(section, subsection, key)` picks in git config `text`
/// (section and key lower-cased), as git's parser reads them: `[section "sub"]` and
/// `[section.sub]` headers, a key on the header's line, `key = value` or a bare `key`,
/// values with double quotes anywhere, `\` escapes, a `\` before the newline continuing the
/// line, `#`/`;` comments outside quotes, surrounding blanks trimmed. Returns
/// `(section, key, value)`, both names lower-cased. Where git would stop with a syntax error
/// the reading stops too.
fn git_config_values(
    text: &[u8],
    wanted: impl Fn(&str, Option<&str>, &str) -> bool,
) -> Vec<(String, String, Vec<u8>)> {
    // a UTF-8 byte-order mark is skipped, as git does (outside review r40 F4)
    let b = text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text);
    let mut i = 0;
    let mut section = String::new();
    let mut sub: Option<String> = None;
    let mut out = Vec::new();
    let skip_blank = |i: &mut usize| {
        while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t' || b[*i] == b'\r') {
            *i += 1;
        }
    };
    let skip_line = |i: &mut usize| {
        while *i < b.len() && b[*i] != b'\n' {
            *i += 1;
        }
    };
    while i < b.len() {
        skip_blank(&mut i);
        if i >= b.len() {
            break;
        }
        match b[i] {
            b'\n' => i += 1,
            b'#' | b';' => skip_line(&mut i),
            b'[' => {
                i += 1;
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b'.')
                {
                    i += 1;
                }
                let name = String::from_utf8_lossy(&b[start..i]).to_ascii_lowercase();
                let (sec, dotted) = match name.split_once('.') {
                    Some((a, c)) => (a.to_string(), Some(c.to_string())),
                    None => (name, None),
                };
                section = sec;
                sub = dotted;
                skip_blank(&mut i);
                if i < b.len() && b[i] == b'"' {
                    i += 1;
                    let mut v: Vec<u8> = Vec::new();
                    while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                        if b[i] == b'\\' && i + 1 < b.len() {
                            i += 1;
                        }
                        v.push(b[i]);
                        i += 1;
                    }
                    if i >= b.len() || b[i] != b'"' {
                        return out;
                    }
                    i += 1;
                    sub = Some(String::from_utf8_lossy(&v).into_owned());
                }
                if i >= b.len() || b[i] != b']' {
                    return out;
                }
                i += 1;
            }
            c if c.is_ascii_alphabetic() => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-') {
                    i += 1;
                }
                let key = String::from_utf8_lossy(&b[start..i]).to_ascii_lowercase();
                skip_blank(&mut i);
                let value = if i < b.len() && b[i] == b'=' {
                    i += 1;
                    skip_blank(&mut i);
                    let mut v: Vec<u8> = Vec::new();
                    let mut quoted = false;
                    let mut pending_blank = 0usize;
                    loop {
                        if i >= b.len() {
                            break;
                        }
                        let c = b[i];
                        i += 1;
                        match c {
                            b'\n' if !quoted => break,
                            b'\n' => return out,
                            b'#' | b';' if !quoted => {
                                skip_line(&mut i);
                                break;
                            }
                            b' ' | b'\t' if !quoted => {
                                if !v.is_empty() {
                                    pending_blank += 1;
                                }
                            }
                            b'"' => {
                                v.extend(std::iter::repeat_n(b' ', pending_blank));
                                pending_blank = 0;
                                quoted = !quoted;
                            }
                            b'\\' => {
                                let Some(&e) = b.get(i) else { return out };
                                i += 1;
                                let ch = match e {
                                    b'\n' => continue,
                                    b'\r' if b.get(i) == Some(&b'\n') => {
                                        i += 1;
                                        continue;
                                    }
                                    b't' => b'\t',
                                    b'n' => b'\n',
                                    b'b' => 8,
                                    b'\\' | b'"' => e,
                                    _ => return out,
                                };
                                v.extend(std::iter::repeat_n(b' ', pending_blank));
                                pending_blank = 0;
                                v.push(ch);
                            }
                            b'\r' if !quoted => {}
                            _ => {
                                v.extend(std::iter::repeat_n(b' ', pending_blank));
                                pending_blank = 0;
                                v.push(c);
                            }
                        }
                    }
                    Some(v)
                } else {
                    None
                };
                if let Some(v) = value {
                    if wanted(&section, sub.as_deref(), &key) {
                        out.push((section.clone(), key, v));
                    }
                }
            }
            _ => return out,
        }
    }
    out
}

/// `$CODEX_HOME` (else `~/.codex`) inside a writable root becomes a read-only carve-out of that
/// root: its `config.toml` decides the next run's sandbox (network, unix sockets, deny-read),
/// so a command that could write it would widen its own next sandbox (second review round F5;
/// issue 12 item 3: "$CODEX_HOME is read-only wherever it lives"). Outside every root it is
/// read-only already. The same swap rules as a gitdir apply: a symlink on the way, or a
/// renameable directory above it inside a root, makes the run refuse (201).
fn protect_codex_home(roots: &mut [WritableRoot], env: &SandboxEnv, all_roots: &[PathBuf]) {
    let written = match (&env.codex_home, &env.home) {
        (Some(ch), _) => ch.clone(),
        (None, Some(h)) => h.join(".codex"),
        (None, None) => return,
    };
    let (path, hazard) = carve_out_target(&written, all_roots);
    for w in roots.iter_mut() {
        if path == w.root {
            // CODEX_HOME is itself writable: nothing can be carved out of it, so refuse
            // (`cd ~/.codex && codex sandbox linux --full-auto`, `--writable-root ~/.codex`)
            w.read_only_subpaths.push(ReadOnlySubpath {
                path: path.clone(),
                exists: true,
                replaceable_via: Some(path.clone()),
            });
            continue;
        }
        // strictly inside the root, and not the root's own `.codex` (already a carve-out)
        if !path.starts_with(&w.root) || path == w.root.join(".codex") {
            continue;
        }
        w.read_only_subpaths
            .extend(carve_outs_for(path.clone(), hazard.clone()));
    }
    // A file of CODEX_HOME that is a symlink into a writable root (`~/.codex/config.toml ->
    // ~/dotfiles/codex/config.toml`, stow or chezmoi style) is the same config: its target is
    // carved out too (fifth review round F6b: the command rewrote it for the next run).
    // (a dangling link's target too: the command could create it)
    let Ok(entries) = std::fs::read_dir(&path) else {
        return;
    };
    let targets = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_symlink())
        .filter_map(|p| link_target(&p))
        .collect();
    carve_out_led_to(roots, targets, all_roots);
}

/// The object directories `<gitdir>/objects/info/alternates` names (one per line, absolute or
/// relative to `<gitdir>/objects`, `#` comments), those inside a writable root only.
fn read_alternates(gitdir: &Path, roots: &[PathBuf]) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let objects = gitdir.join("objects");
    let Ok(bytes) = std::fs::read(objects.join("info/alternates")) else {
        return Vec::new();
    };
    bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty() && !l.starts_with(b"#"))
        .map(|l| {
            let p = PathBuf::from(std::ffi::OsStr::from_bytes(l));
            if p.is_absolute() { p } else { objects.join(p) }
        })
        .map(|p| canonical_or_lexical(&p))
        .filter(|p| roots.iter().any(|r| p.starts_with(r)))
        .collect()
}

/// `<gitdir>/commondir`, relative to the gitdir, with trailing line endings removed.
fn read_commondir(gitdir: &Path) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = std::fs::read(gitdir.join("commondir")).ok()?;
    let end = bytes
        .iter()
        .rposition(|b| *b != b'\n' && *b != b'\r')
        .map_or(0, |i| i + 1);
    if end == 0 {
        return None;
    }
    let p = PathBuf::from(std::ffi::OsStr::from_bytes(&bytes[..end]));
    Some(if p.is_absolute() { p } else { gitdir.join(p) })
}

/// A `.git` *file* (worktrees, submodules) says `gitdir: <path>`, relative to its directory.
/// Parsed as git parses it (`read_gitfile_gently`): the whole file, the exact prefix
/// `gitdir: `, only trailing `\n`/`\r` removed, so spaces belong to the path (third review
/// round F6: a trimmed `/tmp/x ` protected `/tmp/x` while git used `/tmp/x `).
fn read_gitdir_file(dot_git: &Path) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = std::fs::read(dot_git).ok()?;
    let rest = bytes.strip_prefix(b"gitdir: ")?;
    let end = rest
        .iter()
        .rposition(|b| *b != b'\n' && *b != b'\r')
        .map_or(0, |i| i + 1);
    let rest = &rest[..end];
    if rest.is_empty() {
        return None;
    }
    let p = PathBuf::from(std::ffi::OsStr::from_bytes(rest));
    Some(if p.is_absolute() {
        p
    } else {
        dot_git.parent()?.join(p)
    })
}

/// Everything a backend needs, with absolute canonical paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectivePolicy {
    pub kind: PolicyKind,
    /// Canonical working directory.
    pub cwd: PathBuf,
    /// Empty for `read-only` and `danger-full-access`.
    pub writable_roots: Vec<WritableRoot>,
    /// Paths that stay unreadable (canonical where they exist, else lexically normalised).
    /// Empty for `danger-full-access`.
    pub deny_read: Vec<PathBuf>,
    /// Outbound network allowed.
    pub network: bool,
    /// Denied directories whose links were not all searched (more than 4096 entries in their
    /// top two levels): secrets links past the bound lead to stay readable (outside review r40
    /// F7). The backends warn about them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny_read_unsearched: Vec<PathBuf>,
    /// Set when `--allow-writable-home` let a writable root reach the home (what the refusal
    /// would have said, e.g. "the writable root /home/u is your home directory /home/u"). The
    /// backends warn about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writable_home: Option<String>,
    /// Sockets held in a temporary root whose path goes through a symbolic link of the user's
    /// there: (socket path, link). A mount holds the socket, not the link, which the command
    /// can re-point (outside review r50 L1). The backends warn about them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sockets_through_links: Vec<(PathBuf, PathBuf)>,
    /// The temporary roots among the writable roots (`/tmp`, `$TMPDIR`; canonical): shared with
    /// every program of the user's, which finds servers there at fixed names. The Linux backend
    /// lets the command listen there only in a directory of its own (outside review r63
    /// F1-F4).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub temp_roots: Vec<PathBuf>,
}

/// Policy errors: each names the field or path at fault.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid sandbox policy JSON: {message}")]
    Json { message: String },
    #[error("{field}: {path}: {source}")]
    Path {
        field: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{field}: {path}: not a directory")]
    NotADirectory { field: &'static str, path: PathBuf },
    #[error(
        "{field}: {path} goes through the symbolic link {link}, owned by uid {owner}: a command in \
         an earlier sandbox could have made it to point a writable root at another directory; \
         name the real directory instead"
    )]
    ForeignSymlink {
        field: &'static str,
        path: PathBuf,
        link: PathBuf,
        owner: u32,
    },
    #[error(
        "cwd ($PWD): the working directory {cwd} is not the directory $PWD names ({pwd}): the \
         shell may have entered it through a symbolic link that was replaced since; change to \
         the directory again (cd), or run with -C naming the real directory"
    )]
    PwdNotCwd { pwd: PathBuf, cwd: PathBuf },
}

/// A writable root's directory: [`no_foreign_symlink`]'s walk, then the path that walk built
/// (each component a directory when `lstat`ed, a root-owned link replaced by its canonical
/// target), not a second resolution of `p`: a `canonicalize` after the walk followed a link
/// swapped in between (outside review r19 F3: `ws/sub` flipped between a directory and a link to
/// `$HOME`, the walk saw the directory, `canonicalize` returned `$HOME`, a path with no link left
/// for the descriptor walk to refuse). A component swapped for a link after this walk is met by
/// the launcher's descriptor walk of the returned path (`sandbox-linux/src/resolve.rs`).
fn physical_dir(p: &Path, field: &'static str) -> Result<PathBuf, PolicyError> {
    let Some(walked) = walk_no_foreign_symlink(p, field)? else {
        return Err(PolicyError::Path {
            field,
            path: p.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    };
    match std::fs::symlink_metadata(&walked) {
        Ok(m) if m.is_dir() => Ok(walked),
        Ok(_) => Err(PolicyError::NotADirectory {
            field,
            path: p.to_path_buf(),
        }),
        Err(source) => Err(PolicyError::Path {
            field,
            path: p.to_path_buf(),
            source,
        }),
    }
}

/// `a` and `b` exist and are the same file (device and inode, links followed).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// A writable root must not be reached through a symbolic link that anyone but root owns
/// (outside review r14 F6: a sandboxed command replaced a directory under `/tmp` with a link to
/// `$HOME`; the next run with that path as `TMPDIR` or `--writable-root` made the home
/// writable). System links (`/var/run`, `/lib`) are root's and pass.
fn no_foreign_symlink(p: &Path, field: &'static str) -> Result<(), PolicyError> {
    walk_no_foreign_symlink(p, field).map(|_| ())
}

/// [`no_foreign_symlink`]'s walk, returning the path it walked to (`None`: a component is
/// missing).
fn walk_no_foreign_symlink(p: &Path, field: &'static str) -> Result<Option<PathBuf>, PolicyError> {
    use std::os::unix::fs::MetadataExt;
    // Component by component as the kernel walks it: a link is met (and judged) before a `..`
    // that follows it is applied (outside review r16 F5: `link/..` was normalised away first).
    let mut cur = if p.is_absolute() {
        PathBuf::from("/")
    } else {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
    };
    for c in p.components() {
        match c {
            std::path::Component::RootDir | std::path::Component::CurDir => {}
            std::path::Component::Prefix(_) => {}
            std::path::Component::ParentDir => {
                cur.pop();
            }
            std::path::Component::Normal(name) => {
                let next = cur.join(name);
                let Ok(m) = std::fs::symlink_metadata(&next) else {
                    return Ok(None); // the caller reports what is missing
                };
                if m.file_type().is_symlink() {
                    if m.uid() != 0 {
                        return Err(PolicyError::ForeignSymlink {
                            field,
                            path: p.to_path_buf(),
                            link: next,
                            owner: m.uid(),
                        });
                    }
                    // A root-owned link: go on from where it leads.
                    match std::fs::canonicalize(&next) {
                        Ok(c) => cur = c,
                        Err(_) => return Ok(None),
                    }
                } else {
                    cur = next;
                }
            }
        }
    }
    Ok(Some(cur))
}

fn canonical_dir(p: &Path, field: &'static str) -> Result<PathBuf, PolicyError> {
    let c = std::fs::canonicalize(p).map_err(|source| PolicyError::Path {
        field,
        path: p.to_path_buf(),
        source,
    })?;
    if !c.is_dir() {
        return Err(PolicyError::NotADirectory {
            field,
            path: p.to_path_buf(),
        });
    }
    Ok(c)
}

/// Canonicalise when the path exists; otherwise canonicalise the longest existing ancestor and
/// append the rest, normalised lexically (`.` dropped, `..` applied).
pub fn canonical_or_lexical(p: &Path) -> PathBuf {
    if p.is_absolute() && !p.components().any(|c| c == Component::ParentDir) {
        return canonical_or_lexical_forward(p);
    }
    canonical_or_lexical_by_ancestors(p)
}

/// [`canonical_or_lexical`] for an absolute path without `..`, in one walk from the root: one
/// `lstat` per component up to the first missing one, links resolved where they are met.
/// (Trying the whole path, then each ancestor, cost a `readlink` per component per try: about
/// 300 of them for the default deny-read list at every start.) The same answer: without `..`,
/// a missing component means every longer prefix is missing, so the longest existing ancestor
/// is the prefix before it.
fn canonical_or_lexical_forward(p: &Path) -> PathBuf {
    canonical_or_lexical_forward_in(p, &mut Lookups::default())
}

/// What one walk learnt of each path it looked at (`lstat`, then the link resolved): the
/// resolved path, `None` when missing. Shared by the walks of one list ([`canonical_list`]):
/// the default deny-read list's ~100 paths under `$HOME` looked `$HOME` (and `~/.config`,
/// `~/.local`...) up once each instead of once per path (issue 12: start-up).
/// (The value: the resolved path and whether it is a directory; `None` when missing.)
type Lookups = std::collections::HashMap<PathBuf, Option<(PathBuf, bool)>>;

fn canonical_or_lexical_forward_in(p: &Path, seen: &mut Lookups) -> PathBuf {
    canonical_forward_and_kind(p, seen).0
}

/// [`canonical_or_lexical_forward_in`], and whether the path exists as a directory (known from
/// the walk's own `lstat`s: no further call).
fn canonical_forward_and_kind(p: &Path, seen: &mut Lookups) -> (PathBuf, bool) {
    let mut cur = PathBuf::from("/");
    let mut is_dir = true;
    let mut names = p.components().filter_map(|c| match c {
        Component::Normal(n) => Some(n),
        _ => None,
    });
    while let Some(name) = names.next() {
        let next = cur.join(name);
        let resolved = seen
            .entry(next)
            .or_insert_with_key(|next| match std::fs::symlink_metadata(next) {
                Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(next)
                    .ok()
                    .map(|c| (c.clone(), c.is_dir())),
                Ok(m) => Some((next.clone(), m.is_dir())),
                Err(_) => None,
            })
            .clone();
        match resolved {
            Some((r, d)) => {
                cur = r;
                is_dir = d;
            }
            None => {
                // missing (or a dangling link): the rest is appended as written
                cur.push(name);
                cur.extend(names);
                return (cur, false);
            }
        }
    }
    (cur, is_dir)
}

/// [`canonical_or_lexical`] of every path of a list, in order, each ancestor looked up once
/// for the whole list.
pub fn canonical_list(paths: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
    canonical_list_and_kinds(paths)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// [`canonical_list`], with whether each path exists as a directory.
fn canonical_list_and_kinds(paths: impl IntoIterator<Item = PathBuf>) -> Vec<(PathBuf, bool)> {
    let mut seen = Lookups::default();
    paths
        .into_iter()
        .map(|p| {
            if p.is_absolute() && !p.components().any(|c| c == Component::ParentDir) {
                canonical_forward_and_kind(&p, &mut seen)
            } else {
                let c = canonical_or_lexical_by_ancestors(&p);
                let d = std::fs::symlink_metadata(&c).is_ok_and(|m| m.is_dir());
                (c, d)
            }
        })
        .collect()
}

fn canonical_or_lexical_by_ancestors(p: &Path) -> PathBuf {
    if let Ok(c) = std::fs::canonicalize(p) {
        return c;
    }
    let norm = normalize_lexically(p);
    let mut tail: Vec<OsString> = Vec::new();
    let mut cur = norm.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(cur) {
            let mut out = c;
            for t in tail.iter().rev() {
                out.push(t);
            }
            return out;
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                tail.push(name.to_os_string());
                cur = parent;
            }
            _ => return norm,
        }
    }
}

fn normalize_lexically(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outside review r42 F1: shell spellings of a home path in a value git runs.
    #[test]
    fn shell_path_words_reads_home_paths_as_sh_would() {
        let words = |v: &str| -> Vec<String> {
            shell_path_words(v.as_bytes())
                .into_iter()
                .map(|w| String::from_utf8(w).unwrap())
                .collect()
        };
        for v in [
            "${HOME}/tools/s.sh",
            "\"$HOME\"/tools/s.sh",
            "\"${HOME}/tools/s.sh\"",
            "${HOME:-/x}/tools/s.sh",
            "true;${HOME}/tools/s.sh",
            "~/tools/s''.sh",
            "~/tools/s\\.sh",
            "~/\"tools\"/s.sh",
            "!f() { ~/tools/s.sh; }; f",
        ] {
            assert!(
                words(v).contains(&"~/tools/s.sh".to_string()),
                "{v}: {:?}",
                words(v)
            );
        }
        assert!(words("\"/home/u/my tools/s.sh\"").contains(&"/home/u/my tools/s.sh".to_string()));
        assert!(wildcard_match(b"s.s[h]", b"s.sh"));
        assert!(wildcard_match(b"*.sh", b"s.sh"));
        assert!(wildcard_match(b"s.s?", b"s.sh"));
        assert!(!wildcard_match(b"*", b".hidden"));
        assert!(!wildcard_match(b"s.s[!h]", b"s.sh"));
        // outside review r43 F2: `[!x]` in a value (the `!` ended the word) and classes
        for v in [
            "~/tools/s.[!x]h",
            "~/tools/s.[[:alpha:]]h",
            "~/tool[!x]/s.sh",
        ] {
            assert!(words(v).contains(&v.to_string()), "{v}: {:?}", words(v));
        }
        assert!(wildcard_match(b"s.[!x]h", b"s.sh"));
        assert!(wildcard_match(b"s.[[:alpha:]]h", b"s.sh"));
        assert!(wildcard_match(b"s.[^[:digit:]]h", b"s.sh"));
        assert!(!wildcard_match(b"s.[[:digit:]]h", b"s.sh"));
        assert!(wildcard_match(b"[]x]", b"]"));
    }

    /// Outside review r40 F3: git follows ten levels of includes; five were followed here.
    #[test]
    fn git_includes_follow_ten_levels() {
        let home = tempfile::tempdir().unwrap();
        let h = home.path();
        std::fs::write(h.join(".gitconfig"), "[include]\n\tpath = ~/c1/f\n").unwrap();
        for n in 1..=10 {
            std::fs::create_dir_all(h.join(format!("c{n}"))).unwrap();
            std::fs::write(
                h.join(format!("c{n}/f")),
                format!("[include]\n\tpath = ~/c{}/f\n", n + 1),
            )
            .unwrap();
        }
        let (files, _) = git_includes(&h.join(".gitconfig"), h);
        for n in 1..=10 {
            assert!(
                files.iter().any(|f| f.ends_with(format!("c{n}/f"))),
                "c{n}: {files:?}"
            );
        }
    }

    /// Outside review r38 F1: the spellings git reads that a line-based reading missed.
    #[test]
    fn git_config_values_reads_what_git_reads() {
        let text = "[user]\n\tname = v\n\
            [include]path = ~/a\n\
            [includeIf \"gitdir:~/ws/\"]path = b ; comment\n\
            [include]\n\tpath = \"~/c\" ; c\n\
            \tpath = ~/\"d d\"/e # x\n\
            \tPATH = ~/f\\\n\tg\n\
            [include.sub]\n path=h\n\
            [core]\n\thooksPath = ~/hooks\n\
            [other]\n\tpath = not-me\n";
        let got = git_config_values(text.as_bytes(), |s, _, k| {
            (s == "include" || s == "includeif") && k == "path" || s == "core" && k == "hookspath"
        });
        let got: Vec<(bool, String)> = got
            .into_iter()
            .map(|(s, _, v)| {
                (
                    s == "include" || s == "includeif",
                    String::from_utf8(v).unwrap(),
                )
            })
            .collect();
        let want: Vec<(bool, String)> = [
            (true, "~/a"),
            (true, "b"),
            (true, "~/c"),
            (true, "~/d d/e"),
            (true, "~/f g"),
            (true, "h"),
            (false, "~/hooks"),
        ]
        .into_iter()
        .map(|(i, v)| (i, v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    /// `workspace-write` with `extra` as the only roots besides the cwd (no /tmp, no $TMPDIR:
    /// the tests' temp dirs live there).
    fn only_roots(extra: Vec<PathBuf>) -> SandboxPolicy {
        SandboxPolicy::WorkspaceWrite {
            writable_roots: extra,
            network_access: false,
            exclude_tmpdir_env_var: true,
            exclude_slash_tmp: true,
        }
    }

    #[test]
    fn codex_json_forms_parse() {
        assert_eq!(
            SandboxPolicy::from_json(r#"{"mode":"read-only"}"#).unwrap(),
            SandboxPolicy::ReadOnly
        );
        assert_eq!(
            SandboxPolicy::from_json(r#"{"mode":"danger-full-access"}"#).unwrap(),
            SandboxPolicy::DangerFullAccess
        );
        let p = SandboxPolicy::from_json(
            r#"{"mode":"workspace-write","writable_roots":["/x"],"network_access":true}"#,
        )
        .unwrap();
        assert_eq!(
            p,
            SandboxPolicy::WorkspaceWrite {
                writable_roots: vec![PathBuf::from("/x")],
                network_access: true,
                exclude_tmpdir_env_var: false,
                exclude_slash_tmp: false
            }
        );
        let err = SandboxPolicy::from_json(r#"{"mode":"yolo"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("yolo"), "{err}");
    }

    #[test]
    fn workspace_write_resolves_roots_and_carve_outs() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(ws.join(".git")).unwrap();
        let env = SandboxEnv {
            home: Some(dir.path().join("home")),
            other_homes: Vec::new(),
            codex_home: Some(dir.path().join("ch")),
            tmpdir: None,
            pwd: None,
            credential_env: Vec::new(),
        };
        let eff = SandboxPolicy::workspace_write()
            .resolve(&ws, &env, &[])
            .unwrap();
        let ws_c = std::fs::canonicalize(&ws).unwrap();
        assert_eq!(eff.writable_roots[0].root, ws_c);
        let subs = &eff.writable_roots[0].read_only_subpaths;
        assert_eq!(
            subs[0],
            ReadOnlySubpath {
                path: ws_c.join(".git"),
                exists: true,
                replaceable_via: None,
            }
        );
        assert_eq!(
            subs[1],
            ReadOnlySubpath {
                path: ws_c.join(".codex"),
                exists: false,
                replaceable_via: None,
            }
        );
        assert!(
            eff.writable_roots
                .iter()
                .any(|w| w.root == Path::new("/tmp"))
        );
        assert!(!eff.network);
        let base = std::fs::canonicalize(dir.path()).unwrap();
        assert!(eff.deny_read.contains(&base.join("ch")));
        assert!(eff.deny_read.contains(&base.join("home/.ssh")));
    }

    #[test]
    fn gitdir_file_is_followed() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("wt");
        let real = dir.path().join("repo.git/worktrees/wt");
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(&real).unwrap();
        std::fs::write(ws.join(".git"), "gitdir: ../repo.git/worktrees/wt\n").unwrap();
        let eff = SandboxPolicy::workspace_write()
            .resolve(&ws, &SandboxEnv::default(), &[])
            .unwrap();
        let subs = &eff.writable_roots[0].read_only_subpaths;
        assert!(
            subs.iter()
                .any(|s| s.path == std::fs::canonicalize(&real).unwrap() && s.exists)
        );
    }

    /// The gitdir entry (index 1) of the root at `ws`, resolved with `ws` and `extra` as the only
    /// writable roots (no /tmp: the temp dir lives there).
    fn gitdir_entry(ws: &Path, extra: &[PathBuf]) -> ReadOnlySubpath {
        let p = only_roots(extra.to_vec());
        let eff = p.resolve(ws, &SandboxEnv::default(), &[]).unwrap();
        eff.writable_roots[0].read_only_subpaths[1].clone()
    }

    /// The directory carved out to hold a gitdir in place (entries: `.git`, it, the gitdir,
    /// `.codex`), if any.
    fn guarded_by(ws: &Path, extra: &[PathBuf]) -> Option<PathBuf> {
        let p = only_roots(extra.to_vec());
        let eff = p.resolve(ws, &SandboxEnv::default(), &[]).unwrap();
        let subs = &eff.writable_roots[0].read_only_subpaths;
        assert!(subs.iter().all(|s| s.replaceable_via.is_none()), "{subs:?}");
        (subs.len() == 4).then(|| subs[1].path.clone())
    }

    #[test]
    fn a_symlink_on_the_way_to_a_gitdir_marks_it_replaceable() {
        // review finding F1: `gitdir: link/real.git` with `link` in the writable root; the mount
        // would land on the link's target and the command could re-point the link
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(ws.join("sub")).unwrap();
        std::fs::create_dir_all(elsewhere.join("real.git")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, ws.join("link")).unwrap();
        std::fs::write(ws.join(".git"), "gitdir: ./link/real.git\n").unwrap();
        let sub = gitdir_entry(&ws, &[]);
        let ws = std::fs::canonicalize(&ws).unwrap();
        assert_eq!(sub.replaceable_via, Some(ws.join("link")));
        // the path reported is the one written, not the link's target
        assert_eq!(sub.path, ws.join("link/real.git"));
        // an absolute path through a symlinked directory outside the roots is caught as well
        std::fs::write(
            ws.join(".git"),
            format!("gitdir: {}\n", ws.join("link/real.git").display()),
        )
        .unwrap();
        assert_eq!(
            gitdir_entry(&ws, &[]).replaceable_via,
            Some(ws.join("link"))
        );
        // control: the same gitdir named without the link is not replaceable
        let real = std::fs::canonicalize(elsewhere.join("real.git")).unwrap();
        std::fs::write(ws.join(".git"), format!("gitdir: {}\n", real.display())).unwrap();
        let sub = gitdir_entry(&ws, &[]);
        assert_eq!(sub.replaceable_via, None);
        assert_eq!(sub.path, real);
    }

    #[test]
    fn a_worktree_gitdirs_commondir_is_carved_out_too() {
        // third review round F3: git reads config and hooks from `<gitdir>/commondir`
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let (ws, tmp) = (base.join("ws"), base.join("tmp"));
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(tmp.join("g")).unwrap();
        std::fs::create_dir_all(tmp.join("c/main/.git")).unwrap();
        std::fs::write(tmp.join("g/commondir"), "../c/main/.git\n").unwrap();
        std::fs::write(
            ws.join(".git"),
            format!("gitdir: {}\n", tmp.join("g").display()),
        )
        .unwrap();
        let p = only_roots(vec![tmp.clone()]);
        let eff = p.resolve(&ws, &SandboxEnv::default(), &[]).unwrap();
        let paths: Vec<PathBuf> = eff.writable_roots[0]
            .read_only_subpaths
            .iter()
            .map(|s| s.path.clone())
            .collect();
        // the common dir below a renameable `c`: `c` is held and the common dir read-only
        assert!(paths.contains(&tmp.join("c/main/.git")), "{paths:?}");
        assert!(paths.contains(&tmp.join("c")), "{paths:?}");
        assert!(paths.contains(&tmp.join("g")), "{paths:?}");
    }

    #[test]
    fn a_gitdir_file_is_read_as_git_reads_it() {
        // third review round F6: git keeps spaces in the path; only \n and \r are trimmed
        let dir = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(dir.path()).unwrap().join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::write(ws.join(".git"), "gitdir: gd \r\n").unwrap();
        assert_eq!(gitdir_entry(&ws, &[]).path, ws.join("gd "));
        // `gitdir:` without its space is not a gitdir file to git either
        std::fs::write(ws.join(".git"), "gitdir:gd\n").unwrap();
        let p = only_roots(vec![]);
        let eff = p.resolve(&ws, &SandboxEnv::default(), &[]).unwrap();
        assert_eq!(
            eff.writable_roots[0].read_only_subpaths.len(),
            2,
            "only .git and .codex"
        );
    }

    #[test]
    fn a_dotdot_out_of_a_directory_in_a_root_carves_that_directory_out() {
        // second review round, F2: `gitdir: x/../gd` normalises to `gd` (directly in the root),
        // but git resolves `x` physically: a command that makes `x` a symlink moves `..`
        let dir = tempfile::tempdir().unwrap();
        let ws = std::fs::canonicalize(dir.path()).unwrap().join("ws");
        std::fs::create_dir_all(ws.join("x")).unwrap();
        std::fs::create_dir_all(ws.join("gd")).unwrap();
        std::fs::write(ws.join(".git"), "gitdir: x/../gd\n").unwrap();
        assert_eq!(guarded_by(&ws, &[]), Some(ws.join("x")));
        std::fs::write(
            ws.join(".git"),
            format!("gitdir: {}/x/../gd\n", ws.display()),
        )
        .unwrap();
        assert_eq!(guarded_by(&ws, &[]), Some(ws.join("x")));
        // control: `..` out of the root itself (a worktree beside the repository) is fine: the
        // root's parent is outside every root
        let other = ws.parent().unwrap().join("repo.git");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(ws.join(".git"), "gitdir: ../repo.git\n").unwrap();
        let sub = gitdir_entry(&ws, &[]);
        assert_eq!(sub.replaceable_via, None);
        assert_eq!(sub.path, other);
        // and without `..` the same gitdir is fine
        std::fs::write(ws.join(".git"), "gitdir: gd\n").unwrap();
        assert_eq!(gitdir_entry(&ws, &[]).replaceable_via, None);
    }

    /// Outside review r43 F4: every directory a `..` steps out of is a hazard, not only the
    /// first (`~/a/b/../c/../../t` held `~/a/b` and `~/a`, but `~/a/c` could become a link).
    #[test]
    fn every_directory_a_dotdot_steps_out_of_is_swappable() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for d in ["a/b", "a/c", "t"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        let roots = [root.clone()];
        assert_eq!(
            swappables(&root.join("a/b/../c/../../t"), &roots),
            [root.join("a/b"), root.join("a/c"), root.join("a")]
        );
        // a link inside the root ends the walk, last
        std::os::unix::fs::symlink("t", root.join("l")).unwrap();
        assert_eq!(
            swappables(&root.join("a/b/../../l/x"), &roots),
            [root.join("a/b"), root.join("a"), root.join("l")]
        );
        // control: no `..` and no link, nothing
        assert!(swappables(&root.join("a/c"), &roots).is_empty());
    }

    #[test]
    fn a_gitdir_deep_in_a_writable_root_is_held_by_carving_out_its_top_directory() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let (ws, other) = (base.join("wt"), base.join("other"));
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(other.join("repo.git/worktrees/wt")).unwrap();
        std::fs::create_dir_all(other.join(".git/worktrees/wt")).unwrap();
        // a bare repository inside another root: `other/repo.git` can be renamed away
        std::fs::write(ws.join(".git"), "gitdir: ../other/repo.git/worktrees/wt\n").unwrap();
        assert_eq!(
            guarded_by(&ws, std::slice::from_ref(&other)),
            Some(other.join("repo.git"))
        );
        // inside the same root: `sub` can be renamed
        std::fs::create_dir_all(ws.join("sub/real.git")).unwrap();
        std::fs::write(ws.join(".git"), "gitdir: sub/real.git\n").unwrap();
        assert_eq!(guarded_by(&ws, &[]), Some(ws.join("sub")));
        // directly in a root: the gitdir itself becomes a mount point (rename gets EBUSY)
        std::fs::create_dir_all(ws.join("direct.git")).unwrap();
        std::fs::write(ws.join(".git"), "gitdir: direct.git\n").unwrap();
        assert_eq!(gitdir_entry(&ws, &[]).replaceable_via, None);
        // under the other root's own `.git` directory (a carve-out): nothing can be renamed
        std::fs::write(ws.join(".git"), "gitdir: ../other/.git/worktrees/wt\n").unwrap();
        assert_eq!(
            gitdir_entry(&ws, std::slice::from_ref(&other)).replaceable_via,
            None
        );
        // control: the bare repository when `other` is not writable
        std::fs::write(ws.join(".git"), "gitdir: ../other/repo.git/worktrees/wt\n").unwrap();
        assert_eq!(gitdir_entry(&ws, &[]).replaceable_via, None);
    }

    /// Outside review r14 F6: a command of an earlier sandbox replaced a directory under `/tmp`
    /// with a link to `$HOME`; the next run with that path as `--writable-root` or `TMPDIR`
    /// made the home writable. A link owned by anyone but root on the way is refused, naming
    /// it. Control: the same link owned by root (as system links are) passes.
    #[test]
    fn a_writable_root_through_a_link_a_user_owns_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let home = base.join("home");
        std::fs::create_dir(&home).unwrap();
        let link = base.join("build");
        std::os::unix::fs::symlink(&home, &link).unwrap();
        let as_root = only_roots(vec![link.join(".")])
            .resolve(Path::new("/"), &SandboxEnv::default(), &[])
            .unwrap();
        assert!(as_root.writable_roots.iter().any(|r| r.root == home));
        std::os::unix::fs::lchown(&link, Some(65534), Some(65534)).unwrap();
        let err = only_roots(vec![link.clone()])
            .resolve(Path::new("/"), &SandboxEnv::default(), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("goes through the symbolic link") && err.contains("uid 65534"),
            "{err}"
        );
        // r16 F5: `link/..` is the link's target's parent for the kernel; the link is judged
        // before the `..` (it was normalised away first).
        let err = only_roots(vec![link.join("..")])
            .resolve(Path::new("/"), &SandboxEnv::default(), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("goes through the symbolic link"), "{err}");
        // ... and the working directory reached through the link (`$PWD`; `getcwd` hides it).
        let through_pwd = SandboxEnv {
            pwd: Some(link.clone()),
            ..Default::default()
        };
        let err = only_roots(vec![])
            .resolve(&home, &through_pwd, &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("cwd ($PWD): "), "{err}");
        // Control: `$PWD` naming the real directory passes.
        let real_pwd = SandboxEnv {
            pwd: Some(home.clone()),
            ..Default::default()
        };
        only_roots(vec![]).resolve(&home, &real_pwd, &[]).unwrap();
        let env = SandboxEnv {
            tmpdir: Some(link.join("sub")),
            ..Default::default()
        };
        let with_tmpdir = SandboxPolicy::WorkspaceWrite {
            writable_roots: vec![],
            network_access: false,
            exclude_tmpdir_env_var: false,
            exclude_slash_tmp: true,
        };
        let err = with_tmpdir
            .resolve(Path::new("/"), &env, &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("TMPDIR: "), "{err}");
    }

    #[test]
    fn missing_writable_root_is_an_error_naming_it() {
        let p = only_roots(vec![PathBuf::from("/nonexistent/xyz")]);
        let err = p
            .resolve(Path::new("/"), &SandboxEnv::default(), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("writable_roots: /nonexistent/xyz:"),
            "{err}"
        );
    }

    #[test]
    fn read_only_has_no_roots_and_full_access_no_deny_list() {
        let env = SandboxEnv {
            home: Some("/root".into()),
            other_homes: Vec::new(),
            ..Default::default()
        };
        let ro = SandboxPolicy::ReadOnly
            .resolve(Path::new("/"), &env, &[])
            .unwrap();
        assert!(ro.writable_roots.is_empty() && !ro.network && !ro.deny_read.is_empty());
        let full = SandboxPolicy::DangerFullAccess
            .resolve(Path::new("/"), &env, &[])
            .unwrap();
        assert!(full.deny_read.is_empty() && full.network);
    }

    #[test]
    fn the_forward_walk_answers_as_the_walk_by_ancestors() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(base.join("real/sub")).unwrap();
        std::fs::write(base.join("real/file"), "x").unwrap();
        std::os::unix::fs::symlink(base.join("real"), base.join("abs")).unwrap();
        std::os::unix::fs::symlink("real/sub", base.join("rel")).unwrap();
        std::os::unix::fs::symlink("nowhere/deeper", base.join("dangling")).unwrap();
        std::os::unix::fs::symlink("abs", base.join("chain")).unwrap();
        for tail in [
            "real/sub",
            "real/sub/missing/deeper",
            "abs/sub/missing",
            "rel/x/y",
            "chain/sub",
            "chain/file/below",
            "dangling/z",
            "real/file",
            "real/file/below",
            "missing/real/sub",
            "./real/./sub/./m",
        ] {
            let p = base.join(tail);
            assert_eq!(
                canonical_or_lexical_forward(&p),
                canonical_or_lexical_by_ancestors(&p),
                "{tail}"
            );
        }
        assert_eq!(
            canonical_or_lexical(&base.join("abs/sub/m")),
            base.join("real/sub/m")
        );
        assert_eq!(
            canonical_or_lexical(&base.join("dangling/z")),
            base.join("dangling/z")
        );
    }

    #[test]
    fn a_list_resolves_as_each_path_alone() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(base.join("real/sub")).unwrap();
        std::os::unix::fs::symlink(base.join("real"), base.join("abs")).unwrap();
        std::os::unix::fs::symlink("nowhere", base.join("dangling")).unwrap();
        let list: Vec<PathBuf> = [
            "abs/sub/x",
            "abs/sub",
            "real/sub/missing/deeper",
            "dangling/z",
            "abs/../real/sub",
            "missing/a",
            "missing/b",
        ]
        .iter()
        .map(|t| base.join(t))
        .chain([PathBuf::from("relative/x")])
        .collect();
        let alone: Vec<PathBuf> = list.iter().map(|p| canonical_or_lexical(p)).collect();
        assert_eq!(canonical_list(list), alone);
        assert_eq!(alone[0], base.join("real/sub/x"));
    }

    #[test]
    fn lexical_fallback_normalises() {
        assert_eq!(
            canonical_or_lexical(Path::new("/nonexistent-a/./b/../c")),
            PathBuf::from("/nonexistent-a/c")
        );
    }
}
