//! `codex mcp add` / `remove`: edit the user's `config.toml` in place.
//!
//! - `toml_edit` keeps the user's comments, ordering and formatting; only the server's own table
//!   is replaced or removed.
//! - The result is parsed and validated with [`crate::config::parse_servers`] before anything is
//!   written, so an edit never leaves a config that codex refuses.
//! - The write is atomic: a temporary file in the same directory (`O_CREAT|O_EXCL|O_NOFOLLOW`,
//!   the old file's mode, else 0600), `fsync`, `rename`, `fsync` of the directory. A writer killed
//!   at any point leaves the old or the new file. A `config.toml` that is a symlink (a dotfile
//!   manager's) is edited at its target, in the target's directory, so the link stays.
//! - The managed config is never opened for writing. A name the managed config defines cannot be
//!   added (it would be shadowed) or removed (the administrator owns it).

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, value};

use crate::config::{self, ConfigError, check_name};

/// Why an edit was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Name(String),
    #[error(
        "mcp server {name:?} is defined in the managed config {managed}; it cannot be {action} from the user config"
    )]
    Managed {
        name: String,
        managed: PathBuf,
        action: &'static str,
    },
    #[error("no mcp server named {name:?} in {path}")]
    NotFound { name: String, path: PathBuf },
    #[error("{path}: mcp_servers is not a table; refusing to edit")]
    NotATable { path: PathBuf },
    #[error("failed to {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    /// The new server breaks a rule; nothing was written.
    #[error("mcp server {name:?} not added: {field}: {reason}")]
    Rejected {
        name: String,
        field: String,
        reason: String,
    },
}

/// A new server, as given on the command line.
#[derive(Debug, Clone)]
pub enum NewServer {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
    Http {
        url: String,
        bearer_token_env_var: Option<String>,
        oauth_client_id: Option<String>,
        oauth_resource: Option<String>,
    },
}

/// What `add` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Created,
    Replaced,
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EditError + use<> {
    let path = path.to_owned();
    move |source| EditError::Io { op, path, source }
}

fn managed_defines(managed: Option<&Path>, name: &str) -> Result<Option<PathBuf>, EditError> {
    let Some(p) = managed else { return Ok(None) };
    let Some(text) = config::read_optional(p)? else {
        return Ok(None);
    };
    // A broken managed config is reported, never silently skipped.
    let servers = config::parse_servers(p, &text, true)?;
    Ok(servers.iter().any(|s| s.name == name).then(|| p.to_owned()))
}

fn load_doc(path: &Path) -> Result<(String, DocumentMut), EditError> {
    let text = config::read_optional(path)?.unwrap_or_default();
    let doc = toml_edit::ImDocument::parse(text.clone())
        .map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            line: e.span().map_or(1, |s| config::line_of(&text, s.start)),
            message: e.message().trim().replace('\n', " "),
        })?
        .into_mut();
    Ok((text, doc))
}

/// Add (or replace) server `name` in the user config at `user_path`.
pub fn add(
    user_path: &Path,
    managed_path: Option<&Path>,
    name: &str,
    server: &NewServer,
) -> Result<Added, EditError> {
    check_name(name).map_err(EditError::Name)?;
    if let Some(managed) = managed_defines(managed_path, name)? {
        return Err(EditError::Managed {
            name: name.to_string(),
            managed,
            action: "added or overridden",
        });
    }
    let target = resolve_target(user_path)?;
    let (text, mut doc) = load_doc(&target)?;
    // The file as it is must be valid (errors carry its real lines); a broken entry is fixed or
    // removed first.
    config::parse_servers(&target, &text, false)?;
    let root = doc.as_table_mut();
    if !root.contains_key("mcp_servers") {
        let mut t = Table::new();
        t.set_implicit(true); // no empty `[mcp_servers]` header: `[mcp_servers.NAME]` only
        root.insert("mcp_servers", Item::Table(t));
    }
    let servers = root
        .get_mut("mcp_servers")
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| EditError::NotATable {
            path: user_path.to_owned(),
        })?;
    let existed = servers.contains_key(name);
    let mut t = Table::new();
    match server {
        NewServer::Stdio { command, args, env } => {
            t.insert("command", value(command.as_str()));
            if !args.is_empty() {
                let mut a = Array::new();
                for x in args {
                    a.push(x.as_str());
                }
                t.insert("args", value(a));
            }
            if !env.is_empty() {
                let mut e = InlineTable::new();
                for (k, v) in env {
                    e.insert(k, v.as_str().into());
                }
                t.insert("env", value(e));
            }
        }
        NewServer::Http {
            url,
            bearer_token_env_var,
            oauth_client_id,
            oauth_resource,
        } => {
            t.insert("url", value(url.as_str()));
            for (k, v) in [
                ("bearer_token_env_var", bearer_token_env_var),
                ("oauth_client_id", oauth_client_id),
                ("oauth_resource", oauth_resource),
            ] {
                if let Some(v) = v {
                    t.insert(k, value(v.as_str()));
                }
            }
        }
    }
    servers.insert(name, Item::Table(t));
    let out = doc.to_string();
    // Validate the new server as codex will read it; the message names the flag's field.
    let parsed = config::parse_servers(&target, &out, false).map_err(|e| match e {
        ConfigError::Invalid { field, reason, .. } => EditError::Rejected {
            name: name.to_string(),
            field,
            reason,
        },
        other => EditError::Config(other),
    })?;
    if !parsed.iter().any(|s| s.name == name) {
        return Err(EditError::Invalid(format!(
            "mcp server {name:?} was not found after the edit"
        )));
    }
    write_atomic(&target, out.as_bytes())?;
    Ok(if existed {
        Added::Replaced
    } else {
        Added::Created
    })
}

/// Remove server `name` from the user config. Only TOML syntax is required of the rest of the
/// file, so that a broken server can be removed.
pub fn remove(user_path: &Path, managed_path: Option<&Path>, name: &str) -> Result<(), EditError> {
    if let Some(managed) = managed_defines(managed_path, name)? {
        return Err(EditError::Managed {
            name: name.to_string(),
            managed,
            action: "removed",
        });
    }
    let target = resolve_target(user_path)?;
    let (_, mut doc) = load_doc(&target)?;
    let not_found = || EditError::NotFound {
        name: name.to_string(),
        path: user_path.to_owned(),
    };
    let root = doc.as_table_mut();
    let servers = match root.get_mut("mcp_servers") {
        None => return Err(not_found()),
        Some(i) => i.as_table_like_mut().ok_or_else(|| EditError::NotATable {
            path: user_path.to_owned(),
        })?,
    };
    if servers.remove(name).is_none() {
        return Err(not_found());
    }
    if servers.is_empty() {
        root.remove("mcp_servers");
    }
    write_atomic(&target, doc.to_string().as_bytes())
}

/// The file to write: `path`, or the target of the symlink `path` (followed to the end).
fn resolve_target(path: &Path) -> Result<PathBuf, EditError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => fs::canonicalize(path).map_err(io("resolve", path)),
        Ok(m) if !m.is_file() => Err(EditError::Io {
            op: "edit",
            path: path.to_owned(),
            source: std::io::Error::other("not a regular file"),
        }),
        _ => Ok(path.to_owned()),
    }
}

/// Replace `path` with `bytes` atomically (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EditError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // A missing CODEX_HOME is created private, as the credential store creates it.
    std::os::unix::fs::DirBuilderExt::mode(fs::DirBuilder::new().recursive(true), 0o700)
        .create(dir)
        .map_err(io("create directory", dir))?;
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.toml".to_string());
    let mut attempt = 0u32;
    let (tmp, mut f) = loop {
        let tmp = dir.join(format!(
            ".{file_name}.tmp.{}.{}",
            std::process::id(),
            codex_oauth::pkce::random_id()
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 8 => attempt += 1,
            Err(e) => return Err(io("create", &tmp)(e)),
        }
    };
    let result = (|| {
        f.write_all(bytes).map_err(io("write", &tmp))?;
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io("chmod", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        fs::rename(&tmp, path).map_err(io("rename into place", path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if let Ok(d) = fs::File::open(dir) {
        d.sync_all().map_err(io("fsync", dir))?;
    }
    Ok(())
}
