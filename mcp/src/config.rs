//! `[mcp_servers.NAME]`: the model, the parser and its validation.
//!
//! The files are parsed with `toml_edit` (which keeps positions), so every error names the file,
//! the line and the dotted field: `~/.codex/config.toml:7: mcp_servers.docs.url: ...`.
//!
//! Layers: the user's `$CODEX_HOME/config.toml`, then the managed config (an administrator's
//! file). A server the managed config defines is taken from there; the user's table of the same
//! name is ignored with a warning, and `add`/`remove` refuse that name (see [`crate::edit`]).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml_edit::{ImDocument, Item};

/// Longest server name accepted.
pub const MAX_NAME_LEN: usize = 64;
/// Largest `startup_timeout_sec` / `tool_timeout_sec` (one day).
pub const MAX_TIMEOUT_SEC: f64 = 86_400.0;

/// Keys of openai/codex's `[mcp_servers.NAME]` that this CLI accepts and does not use.
const ACCEPTED_UNUSED: &[&str] = &["enabled_tools", "disabled_tools", "required"];
const STDIO_KEYS: &[&str] = &["command", "args", "env", "cwd"];
const HTTP_KEYS: &[&str] = &[
    "url",
    "bearer_token_env_var",
    "http_headers",
    "env_http_headers",
    "oauth_client_id",
    "oauth_resource",
    "scopes",
];
const COMMON_KEYS: &[&str] = &["enabled", "startup_timeout_sec", "tool_timeout_sec"];

/// Where a server (or an error) was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    /// 1-based line of the server's table header (or key).
    pub line: usize,
    /// `true` when the file is the managed config.
    pub managed: bool,
}

/// One configured server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub name: String,
    pub transport: Transport,
    pub enabled: bool,
    pub startup_timeout_sec: Option<f64>,
    pub tool_timeout_sec: Option<f64>,
    pub source: Source,
}

/// How the server is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// A child process speaking MCP on stdin/stdout.
    Stdio {
        command: String,
        args: Vec<String>,
        /// Set in the child's environment. Values are never printed.
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    /// MCP streamable HTTP.
    Http(HttpServer),
}

/// A streamable HTTP server's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpServer {
    pub url: url::Url,
    /// The environment variable holding a bearer token (the token itself is never in the file).
    pub bearer_token_env_var: Option<String>,
    /// Static headers. Values are never printed.
    pub http_headers: BTreeMap<String, String>,
    /// Header name → environment variable holding its value.
    pub env_http_headers: BTreeMap<String, String>,
    /// A pre-registered OAuth client (no dynamic registration then).
    pub oauth_client_id: Option<String>,
    /// RFC 8707 resource indicator; default: the server URL.
    pub oauth_resource: Option<String>,
    /// Scopes to request at login (default: the server's advertised scopes).
    pub scopes: Option<Vec<String>>,
}

impl HttpServer {
    /// `true` for `http://` to a non-loopback host: anything secret would travel in clear.
    pub fn is_cleartext_remote(&self) -> bool {
        self.url.scheme() == "http" && !codex_oauth::is_loopback_url(&self.url)
    }
}

/// A configuration error, naming the file, the line and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}:{line}: {field}: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        field: String,
        reason: String,
    },
}

impl ConfigError {
    /// The dotted field, for [`ConfigError::Invalid`].
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}:{}",
            if self.managed { "managed " } else { "" },
            self.path.display(),
            self.line
        )
    }
}

/// 1-based line of byte offset `at` in `text`.
pub(crate) fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// `true` for a name made of `[A-Za-z0-9_-]`, 1 to [`MAX_NAME_LEN`] characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Check a name given on the command line.
pub fn check_name(name: &str) -> Result<(), String> {
    if valid_name(name) {
        Ok(())
    } else if name.is_empty() {
        Err("the server name is empty".to_string())
    } else {
        Err(format!(
            "invalid server name {:?}: use 1-{MAX_NAME_LEN} characters from [A-Za-z0-9_-]",
            name.chars()
                .filter(|c| !c.is_control())
                .take(80)
                .collect::<String>()
        ))
    }
}

/// `true` for a POSIX-ish environment variable name.
pub fn valid_env_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b) // RFC 9110 token
        })
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    managed: bool,
}

impl Ctx<'_> {
    fn err(&self, line: usize, field: String, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line,
            field,
            reason: reason.into(),
        }
    }

    fn line(&self, span: Option<std::ops::Range<usize>>, fallback: usize) -> usize {
        span.map_or(fallback, |s| line_of(self.text, s.start))
    }
}

/// Parse the `[mcp_servers]` of one config file's text. `path` names the file in errors.
pub fn parse_servers(
    path: &Path,
    text: &str,
    managed: bool,
) -> Result<Vec<ServerConfig>, ConfigError> {
    let doc = ImDocument::parse(text).map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        line: e.span().map_or(1, |s| line_of(text, s.start)),
        message: e.message().trim().replace('\n', " "),
    })?;
    let ctx = Ctx {
        path,
        text,
        managed,
    };
    let root = doc.as_table();
    let Some((key, item)) = root.get_key_value("mcp_servers") else {
        return Ok(Vec::new());
    };
    let top_line = ctx.line(key.span(), 1);
    let Some(servers) = item.as_table_like() else {
        return Err(ctx.err(top_line, "mcp_servers".into(), "must be a table"));
    };
    let mut out = Vec::new();
    for (name, item) in servers.iter() {
        let key_span = servers.get_key_value(name).and_then(|(k, _)| k.span());
        let line = match item {
            Item::Table(t) => ctx.line(t.span(), ctx.line(key_span.clone(), top_line)),
            _ => ctx.line(key_span.clone(), top_line),
        };
        let field = format!("mcp_servers.{}", display_key(name));
        if let Err(reason) = check_name(name) {
            return Err(ctx.err(line, field, reason));
        }
        let Some(table) = item.as_table_like() else {
            return Err(ctx.err(line, field, "must be a table"));
        };
        out.push(parse_server(&ctx, name, table, line)?);
    }
    Ok(out)
}

fn display_key(name: &str) -> String {
    if valid_name(name) {
        name.to_string()
    } else {
        format!(
            "{:?}",
            name.chars()
                .filter(|c| !c.is_control())
                .take(80)
                .collect::<String>()
        )
    }
}

fn parse_server(
    ctx: &Ctx<'_>,
    name: &str,
    t: &dyn toml_edit::TableLike,
    line: usize,
) -> Result<ServerConfig, ConfigError> {
    let base = format!("mcp_servers.{name}");
    let key_line = |k: &str| -> usize {
        let span = t.get_key_value(k).and_then(|(key, item)| {
            key.span()
                .or_else(|| item.span())
                .or_else(|| item.as_value().and_then(|v| v.span()))
        });
        ctx.line(span, line)
    };
    let f = |k: &str| format!("{base}.{k}");
    for (k, _) in t.iter() {
        let known = STDIO_KEYS.contains(&k)
            || HTTP_KEYS.contains(&k)
            || COMMON_KEYS.contains(&k)
            || ACCEPTED_UNUSED.contains(&k);
        if !known {
            return Err(ctx.err(
                key_line(k),
                format!("{base}.{}", display_key(k)),
                "unknown field (expected command, args, env, cwd, url, bearer_token_env_var, \
                 http_headers, env_http_headers, oauth_client_id, oauth_resource, scopes, enabled, \
                 startup_timeout_sec, tool_timeout_sec)",
            ));
        }
    }
    let has = |k: &str| t.contains_key(k);
    let get_str = |k: &str| -> Result<Option<String>, ConfigError> {
        match t.get(k) {
            None => Ok(None),
            Some(i) => match i.as_str() {
                Some(s) => Ok(Some(s.to_string())),
                None => Err(ctx.err(key_line(k), f(k), "must be a string")),
            },
        }
    };
    let get_str_map = |k: &str| -> Result<BTreeMap<String, String>, ConfigError> {
        let Some(i) = t.get(k) else {
            return Ok(BTreeMap::new());
        };
        let Some(tab) = i.as_table_like() else {
            return Err(ctx.err(key_line(k), f(k), "must be a table of strings"));
        };
        let mut m = BTreeMap::new();
        for (kk, v) in tab.iter() {
            let Some(s) = v.as_str() else {
                // The value is not quoted: it may be a secret.
                return Err(ctx.err(
                    key_line(k),
                    format!("{}.{}", f(k), display_key(kk)),
                    "must be a string",
                ));
            };
            m.insert(kk.to_string(), s.to_string());
        }
        Ok(m)
    };
    let get_str_list = |k: &str| -> Result<Option<Vec<String>>, ConfigError> {
        let Some(i) = t.get(k) else { return Ok(None) };
        let Some(arr) = i.as_array() else {
            return Err(ctx.err(key_line(k), f(k), "must be an array of strings"));
        };
        let mut v = Vec::new();
        for (n, x) in arr.iter().enumerate() {
            match x.as_str() {
                Some(s) => v.push(s.to_string()),
                None => {
                    return Err(ctx.err(key_line(k), format!("{}[{n}]", f(k)), "must be a string"));
                }
            }
        }
        Ok(Some(v))
    };
    let get_timeout = |k: &str| -> Result<Option<f64>, ConfigError> {
        let Some(i) = t.get(k) else { return Ok(None) };
        let v = i
            .as_float()
            .or_else(|| i.as_integer().map(|n| n as f64))
            .ok_or_else(|| ctx.err(key_line(k), f(k), "must be a number of seconds"))?;
        if !(v > 0.0 && v <= MAX_TIMEOUT_SEC) {
            return Err(ctx.err(
                key_line(k),
                f(k),
                format!("must be above 0 and at most {MAX_TIMEOUT_SEC} seconds"),
            ));
        }
        Ok(Some(v))
    };

    let enabled = match t.get("enabled") {
        None => true,
        Some(i) => i
            .as_bool()
            .ok_or_else(|| ctx.err(key_line("enabled"), f("enabled"), "must be true or false"))?,
    };
    let startup_timeout_sec = get_timeout("startup_timeout_sec")?;
    let tool_timeout_sec = get_timeout("tool_timeout_sec")?;

    let transport = match (has("command"), has("url")) {
        (true, true) => {
            return Err(ctx.err(
                key_line("url"),
                f("url"),
                "cannot be combined with command: a server is either stdio (command) or streamable HTTP (url)",
            ));
        }
        (false, false) => {
            return Err(ctx.err(
                line,
                base.clone(),
                "needs either command (a stdio server) or url (a streamable HTTP server)",
            ));
        }
        (true, false) => {
            if let Some(k) = HTTP_KEYS.iter().find(|k| has(k)) {
                return Err(ctx.err(
                    key_line(k),
                    f(k),
                    "is a streamable HTTP setting and cannot be used with command (stdio)",
                ));
            }
            let command = get_str("command")?.unwrap_or_default();
            if command.trim().is_empty() {
                return Err(ctx.err(key_line("command"), f("command"), "is empty"));
            }
            let env = get_str_map("env")?;
            if let Some(bad) = env.keys().find(|k| !valid_env_name(k)) {
                return Err(ctx.err(
                    key_line("env"),
                    format!("{}.{}", f("env"), display_key(bad)),
                    "is not a valid environment variable name",
                ));
            }
            Transport::Stdio {
                command,
                args: get_str_list("args")?.unwrap_or_default(),
                env,
                cwd: get_str("cwd")?.map(PathBuf::from),
            }
        }
        (false, true) => {
            if let Some(k) = STDIO_KEYS.iter().find(|k| has(k)) {
                return Err(ctx.err(
                    key_line(k),
                    f(k),
                    "is a stdio setting and cannot be used with url (streamable HTTP)",
                ));
            }
            let raw = get_str("url")?.unwrap_or_default();
            let url = parse_server_url(&raw)
                .map_err(|reason| ctx.err(key_line("url"), f("url"), reason))?;
            let bearer_token_env_var = get_str("bearer_token_env_var")?;
            if let Some(v) = &bearer_token_env_var
                && !valid_env_name(v)
            {
                return Err(ctx.err(
                    key_line("bearer_token_env_var"),
                    f("bearer_token_env_var"),
                    "must name an environment variable ([A-Za-z_][A-Za-z0-9_]*), not hold the token",
                ));
            }
            let http_headers = get_str_map("http_headers")?;
            let env_http_headers = get_str_map("env_http_headers")?;
            for (k, map) in [
                ("http_headers", &http_headers),
                ("env_http_headers", &env_http_headers),
            ] {
                if let Some(bad) = map.keys().find(|h| !valid_header_name(h)) {
                    return Err(ctx.err(
                        key_line(k),
                        format!("{}.{}", f(k), display_key(bad)),
                        "is not a valid header name",
                    ));
                }
            }
            if let Some((h, _)) = env_http_headers.iter().find(|(_, v)| !valid_env_name(v)) {
                return Err(ctx.err(
                    key_line("env_http_headers"),
                    format!("{}.{h}", f("env_http_headers")),
                    "must name an environment variable",
                ));
            }
            let oauth_client_id = get_str("oauth_client_id")?;
            if let Some(id) = &oauth_client_id
                && (id.is_empty() || id.len() > 256 || id.chars().any(|c| c.is_control()))
            {
                return Err(ctx.err(
                    key_line("oauth_client_id"),
                    f("oauth_client_id"),
                    "must be 1-256 printable characters",
                ));
            }
            let oauth_resource = get_str("oauth_resource")?;
            if let Some(r) = &oauth_resource {
                parse_server_url(r).map_err(|reason| {
                    ctx.err(key_line("oauth_resource"), f("oauth_resource"), reason)
                })?;
            }
            let server = HttpServer {
                url,
                bearer_token_env_var,
                http_headers,
                env_http_headers,
                oauth_client_id,
                oauth_resource,
                scopes: get_str_list("scopes")?,
            };
            if server.is_cleartext_remote() {
                // The token would travel in clear: refuse every credential-bearing setting.
                let credential_key = [
                    "bearer_token_env_var",
                    "oauth_client_id",
                    "oauth_resource",
                    "scopes",
                    "env_http_headers",
                ]
                .into_iter()
                .find(|k| has(k))
                .or_else(|| {
                    server
                        .http_headers
                        .keys()
                        .any(|h| h.eq_ignore_ascii_case("authorization"))
                        .then_some("http_headers")
                });
                if let Some(k) = credential_key {
                    return Err(ctx.err(
                        key_line(k),
                        f(k),
                        format!(
                            "refused for a plain http:// URL to a non-loopback host ({}): the credential \
                             would travel in clear text; use https://",
                            server.url.host_str().unwrap_or("")
                        ),
                    ));
                }
            }
            Transport::Http(server)
        }
    };
    Ok(ServerConfig {
        name: name.to_string(),
        transport,
        enabled,
        startup_timeout_sec,
        tool_timeout_sec,
        source: Source {
            path: ctx.path.to_owned(),
            line,
            managed: ctx.managed,
        },
    })
}

/// Parse a server URL: `http(s)://` with a host, no user info, no fragment.
pub fn parse_server_url(raw: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme {:?} is not http or https",
            url.scheme().chars().take(20).collect::<String>()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_string());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a URL with a user name or password is refused (it would be printed and logged); use bearer_token_env_var".to_string());
    }
    if url.fragment().is_some() {
        return Err("a server URL has no #fragment".to_string());
    }
    Ok(url)
}

/// The servers of every layer, after the managed config's precedence.
#[derive(Debug, Clone, Default)]
pub struct McpConfig {
    pub servers: Vec<ServerConfig>,
    /// Shown to the user (a user table shadowed by the managed config).
    pub warnings: Vec<String>,
    pub user_path: PathBuf,
    pub managed_path: Option<PathBuf>,
}

impl McpConfig {
    /// A server by name.
    pub fn get(&self, name: &str) -> Option<&ServerConfig> {
        self.servers.iter().find(|s| s.name == name)
    }
}

/// Read a file; `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// Load the user's `config.toml` and the managed config (either may be absent).
pub fn load(user_path: &Path, managed_path: Option<&Path>) -> Result<McpConfig, ConfigError> {
    let user = match read_optional(user_path)? {
        Some(text) => parse_servers(user_path, &text, false)?,
        None => Vec::new(),
    };
    let managed = match managed_path {
        Some(p) => match read_optional(p)? {
            Some(text) => parse_servers(p, &text, true)?,
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    let mut warnings = Vec::new();
    let mut servers: Vec<ServerConfig> = Vec::new();
    for s in user {
        if let Some(m) = managed.iter().find(|m| m.name == s.name) {
            warnings.push(format!(
                "mcp_servers.{} at {} is ignored: the managed config {} defines this server",
                s.name, s.source, m.source
            ));
            continue;
        }
        servers.push(s);
    }
    servers.extend(managed);
    servers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(McpConfig {
        servers,
        warnings,
        user_path: user_path.to_owned(),
        managed_path: managed_path.map(Path::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "docs-1", "A_b", &"x".repeat(64)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "a b", "a.b", "é", "a/b", &"x".repeat(65), "a\n"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn env_names() {
        assert!(valid_env_name("GITHUB_TOKEN") && valid_env_name("_x1"));
        assert!(!valid_env_name("1X") && !valid_env_name("") && !valid_env_name("ghp_abc-def"));
    }

    #[test]
    fn line_numbers() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 99), 3);
    }
}
