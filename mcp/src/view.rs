//! What `codex mcp list` and `get` show: the configuration without any secret value.
//!
//! Printed: names, the command and its arguments, the URL (query values replaced by `***`: a
//! query may carry a key), the *names* of `env` variables and headers, and the *names* of the
//! environment variables that hold a bearer token or header values. Never printed: the values of
//! `env`, of `http_headers`, of the variables named, and tokens. openai/codex 0.171 printed `env`
//! values in `list --json`; this is the test-covered opposite.

use serde_json::{Value, json};

use crate::config::{ServerConfig, Transport};

/// `url` with every query value replaced by `***`.
pub fn redacted_url(url: &url::Url) -> String {
    if url.query().is_none() {
        return url.to_string();
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, _)| (k.into_owned(), "***".to_string()))
        .collect();
    let mut u = url.clone();
    u.set_query(None);
    if !pairs.is_empty() {
        let mut q = u.query_pairs_mut();
        for (k, v) in &pairs {
            q.append_pair(k, v);
        }
    }
    u.to_string()
}

/// The transport name used in output.
pub fn transport_name(s: &ServerConfig) -> &'static str {
    match s.transport {
        Transport::Stdio { .. } => "stdio",
        Transport::Http(_) => "streamable_http",
    }
}

/// The JSON object of one server (without the auth status, which the caller adds).
pub fn server_json(s: &ServerConfig) -> Value {
    let transport = match &s.transport {
        Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } => json!({
            "type": "stdio",
            "command": command,
            "args": args,
            "env_vars": env.keys().collect::<Vec<_>>(),
            "cwd": cwd.as_ref().map(|p| p.display().to_string()),
        }),
        Transport::Http(h) => json!({
            "type": "streamable_http",
            "url": redacted_url(&h.url),
            "bearer_token_env_var": h.bearer_token_env_var,
            "http_headers": h.http_headers.keys().collect::<Vec<_>>(),
            "env_http_headers": h.env_http_headers,
            "oauth_client_id": h.oauth_client_id,
            "oauth_resource": h.oauth_resource,
            "scopes": h.scopes,
        }),
    };
    json!({
        "name": s.name,
        "enabled": s.enabled,
        "transport": transport,
        "startup_timeout_sec": s.startup_timeout_sec,
        "tool_timeout_sec": s.tool_timeout_sec,
        "source": {
            "path": s.source.path.display().to_string(),
            "line": s.source.line,
            "managed": s.source.managed,
        },
    })
}

/// `K=*****, L=*****`, or `-`.
pub fn masked_names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<String> = names.map(|k| format!("{k}=*****")).collect();
    if v.is_empty() {
        "-".to_string()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_masked() {
        let u = url::Url::parse("https://h.example/mcp?key=SECRET&x=1").unwrap();
        let r = redacted_url(&u);
        assert!(!r.contains("SECRET"), "{r}");
        assert_eq!(r, "https://h.example/mcp?key=***&x=***");
        let u = url::Url::parse("https://h.example/mcp").unwrap();
        assert_eq!(redacted_url(&u), "https://h.example/mcp");
    }
}
