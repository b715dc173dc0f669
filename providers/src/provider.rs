//! Resolving `model_provider` to a [`Provider`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::error::ProviderError;
use crate::info::{ProviderInfo, WIRE_API_RESPONSES};
use crate::retry::RetryPolicy;

/// The built-in provider's id.
pub const BUILTIN_OPENAI: &str = "openai";
/// Its base URL unless `OPENAI_BASE_URL` is set.
pub const OPENAI_DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// Default `stream_idle_timeout_ms`.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 300_000;

/// Ids of the built-in providers (the Codex CLI also has `ollama` and `lmstudio`, local servers
/// without a key; they are not built in here: define them under `[model_providers]`).
pub fn builtin_ids() -> &'static [&'static str] {
    &[BUILTIN_OPENAI]
}

/// Where the provider's credential comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthSource {
    /// No credential is sent (e.g. `responses-api-proxy`, which holds its own key).
    None,
    /// The credential store (`codex login`); `chatgpt`: a ChatGPT sign-in may be used.
    Stored { chatgpt: bool },
    /// The environment variable `var` (`env_key`).
    EnvKey {
        var: String,
        instructions: Option<String>,
    },
}

impl AuthSource {
    pub fn sends_credential(&self) -> bool {
        !matches!(self, AuthSource::None)
    }
}

/// A resolved provider. `Debug` shows header names, not values.
#[derive(Clone, PartialEq, Eq)]
pub struct Provider {
    pub id: String,
    pub name: String,
    pub builtin: bool,
    pub base_url: String,
    pub auth: AuthSource,
    pub query_params: BTreeMap<String, String>,
    /// `http_headers`, validated.
    pub http_headers: BTreeMap<String, String>,
    /// `env_http_headers`: header name → variable.
    pub env_http_headers: BTreeMap<String, String>,
    pub retry: RetryPolicy,
    pub idle_timeout: Duration,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("builtin", &self.builtin)
            .field("base_url", &self.base_url)
            .field("auth", &self.auth)
            .field("query_params", &self.query_params)
            .field(
                "http_headers",
                &self
                    .http_headers
                    .keys()
                    .map(|k| (k, "[REDACTED]"))
                    .collect::<Vec<_>>(),
            )
            .field("env_http_headers", &self.env_http_headers)
            .field("retry", &self.retry)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

/// How a request to the provider travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Https,
    /// Plain http to a loopback host: a credential may go only to a listener owned by the
    /// current user (the caller checks the socket's owner).
    PlainLoopback,
    /// Plain http elsewhere: no credential.
    Plain,
}

/// A provider and the warnings its resolution produced (deprecated keys, ignored entries).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub provider: Provider,
    pub warnings: Vec<String>,
}

/// Headers the client sets itself.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "content-type",
    "te",
    "upgrade",
];

/// Resolves provider `id` from the effective `[model_providers]` table. `env` looks up
/// environment variables (`OPENAI_BASE_URL`).
pub fn resolve(
    id: &str,
    user: Option<&toml::Table>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, ProviderError> {
    let mut warnings = Vec::new();
    if let Some(user) = user {
        for builtin in builtin_ids() {
            if user.contains_key(*builtin) {
                warnings.push(format!(
                    "model_providers.{builtin} in the config is ignored: built-in providers cannot be \
                     redefined (its base URL changes only with OPENAI_BASE_URL); define the provider \
                     under another id"
                ));
            }
        }
    }
    let (info, builtin) = if id == BUILTIN_OPENAI {
        (openai(env), true)
    } else {
        let Some(v) = user.and_then(|u| u.get(id)) else {
            return Err(ProviderError::Unknown {
                id: id.to_owned(),
                builtin: builtin_ids().join(", "),
            });
        };
        (ProviderInfo::from_toml(id, v)?, false)
    };
    let err_id = || id.to_owned();
    if info.experimental_bearer_token.is_some() {
        return Err(ProviderError::BearerTokenInConfig { id: err_id() });
    }
    if let Some(w) = &info.wire_api {
        if w != WIRE_API_RESPONSES {
            return Err(ProviderError::UnsupportedWireApi {
                id: err_id(),
                value: w.clone(),
            });
        }
    }
    let base_url = info
        .base_url
        .clone()
        .ok_or_else(|| ProviderError::MissingBaseUrl { id: err_id() })?;
    if info.requires_auth.is_some() {
        warnings.push(format!(
            "model_providers.{id}.requires_auth is deprecated: use requires_openai_auth (codex's name)"
        ));
    }
    let chatgpt = info.chatgpt_auth.unwrap_or(false);
    let stored = chatgpt
        || info
            .requires_openai_auth
            .or(info.requires_auth)
            .unwrap_or(false);
    let auth = match (&info.env_key, stored) {
        (Some(var), _) => AuthSource::EnvKey {
            var: var.clone(),
            instructions: info.env_key_instructions.clone(),
        },
        (None, true) => AuthSource::Stored { chatgpt },
        (None, false) => AuthSource::None,
    };
    let http_headers = info.http_headers.clone().unwrap_or_default();
    for (name, value) in &http_headers {
        check_header(id, "http_headers", name)?;
        if http::HeaderValue::from_str(value).is_err() {
            return Err(ProviderError::BadHeaderValue {
                id: err_id(),
                field: "http_headers",
                name: name.clone(),
            });
        }
    }
    let env_http_headers = info.env_http_headers.clone().unwrap_or_default();
    for name in env_http_headers.keys() {
        check_header(id, "env_http_headers", name)?;
    }
    let provider = Provider {
        id: id.to_owned(),
        name: info.name.clone().unwrap_or_else(|| id.to_owned()),
        builtin,
        base_url,
        auth,
        query_params: info.query_params.clone().unwrap_or_default(),
        http_headers,
        env_http_headers,
        retry: RetryPolicy::from_config(info.request_max_retries, info.stream_max_retries),
        idle_timeout: Duration::from_millis(
            info.stream_idle_timeout_ms
                .filter(|n| *n > 0)
                .unwrap_or(DEFAULT_IDLE_TIMEOUT_MS),
        ),
    };
    let url = provider.request_url()?;
    // (plain http to a remote host is refused by `check_transport`, with its own message)
    if let (AuthSource::Stored { .. }, false, "https") = (&provider.auth, builtin, url.scheme()) {
        stored_key_destination_allowed(id, &url, env)?;
    }
    Ok(Resolved { provider, warnings })
}

/// The host of [`OPENAI_DEFAULT_BASE_URL`].
const OPENAI_HOST: &str = "api.openai.com";

/// `localhost` or a loopback IP literal (a URL's host, brackets around IPv6 allowed).
fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_matches(|c| c == '[' || c == ']');
    bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The environment variable that lets the stored key go to a host of the user's choosing.
pub const STORED_KEY_HOSTS_ENV: &str = "CODEX_STORED_KEY_HOSTS";

/// A provider defined in a config file that asks for the stored credential
/// (`requires_openai_auth`, `chatgpt_auth`) may receive it only at OpenAI's own host, a loopback
/// address (the owner check applies there), or a host the user named in their own shell
/// (`CODEX_STORED_KEY_HOSTS=host1,host2`): any config layer can define a provider, and a new id
/// with an attacker's `base_url` received `Authorization: Bearer <stored key>` (outside review r11
/// F4; the issue-16 fix covered only a re-pointed built-in id).
fn stored_key_destination_allowed(
    id: &str,
    url: &url::Url,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ProviderError> {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let named = env(STORED_KEY_HOSTS_ENV).is_some_and(|v| {
        v.split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .any(|h| !h.is_empty() && h == host)
    });
    if host == OPENAI_HOST || is_loopback_host(&host) || named {
        return Ok(());
    }
    Err(ProviderError::StoredKeyHost {
        id: id.to_owned(),
        host,
    })
}

/// The built-in `openai` provider (codex's `create_openai_provider`).
fn openai(env: &dyn Fn(&str) -> Option<String>) -> ProviderInfo {
    let base_url = env("OPENAI_BASE_URL")
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| OPENAI_DEFAULT_BASE_URL.to_owned());
    ProviderInfo {
        name: Some("OpenAI".into()),
        base_url: Some(base_url),
        wire_api: Some(WIRE_API_RESPONSES.into()),
        env_http_headers: Some(BTreeMap::from([
            ("OpenAI-Organization".into(), "OPENAI_ORGANIZATION".into()),
            ("OpenAI-Project".into(), "OPENAI_PROJECT".into()),
        ])),
        requires_openai_auth: Some(true),
        ..ProviderInfo::default()
    }
}

fn check_header(id: &str, field: &'static str, name: &str) -> Result<(), ProviderError> {
    let Ok(h) = http::HeaderName::from_bytes(name.as_bytes()) else {
        return Err(ProviderError::BadHeaderName {
            id: id.to_owned(),
            field,
            name: name.to_owned(),
        });
    };
    if RESERVED_HEADERS.contains(&h.as_str()) {
        return Err(ProviderError::ReservedHeader {
            id: id.to_owned(),
            field,
            name: name.to_owned(),
        });
    }
    Ok(())
}

impl Provider {
    /// `<base_url>/responses?<query_params>` (parameters URL-encoded, in key order).
    pub fn request_url(&self) -> Result<url::Url, ProviderError> {
        let raw = format!("{}/responses", self.base_url.trim_end_matches('/'));
        let mut url = url::Url::parse(&raw).map_err(|e| ProviderError::BadUrl {
            id: self.id.clone(),
            url: self.base_url.clone(),
            message: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ProviderError::BadScheme {
                id: self.id.clone(),
                url: self.base_url.clone(),
            });
        }
        if url.query().is_some() && !self.query_params.is_empty() {
            return Err(ProviderError::BadQuery {
                id: self.id.clone(),
                message: "base_url already has a query: put every parameter in query_params".into(),
            });
        }
        if !self.query_params.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in &self.query_params {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// How a request travels; with a credential, plain http only to a loopback host.
    pub fn check_transport(&self, sends_credential: bool) -> Result<Transport, ProviderError> {
        let url = self.request_url()?;
        if url.scheme() == "https" {
            return Ok(Transport::Https);
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        match (is_loopback_host(&host), sends_credential) {
            (true, _) => Ok(Transport::PlainLoopback),
            (false, false) => Ok(Transport::Plain),
            (false, true) => Err(ProviderError::PlainHttpCredential {
                id: self.id.clone(),
                host,
            }),
        }
    }

    /// `env_http_headers` whose variable is set and not empty: `(name, value)`. A value that is
    /// not a valid header value is an error naming the header (the value is not shown).
    pub fn env_headers(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<(String, String)>, ProviderError> {
        let mut out = Vec::new();
        for (name, var) in &self.env_http_headers {
            let Some(v) = env(var).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            if http::HeaderValue::from_str(&v).is_err() {
                return Err(ProviderError::BadHeaderValue {
                    id: self.id.clone(),
                    field: "env_http_headers",
                    name: name.clone(),
                });
            }
            out.push((name.clone(), v));
        }
        Ok(out)
    }

    /// `http_headers`: `(name, value)`.
    pub fn static_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.http_headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The `env_key` variable's value; unset or empty is [`ProviderError::EnvKeyUnset`].
    /// `None` when the provider has no `env_key`.
    pub fn env_key_value(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<String>, ProviderError> {
        let AuthSource::EnvKey { var, instructions } = &self.auth else {
            return Ok(None);
        };
        match env(var).filter(|v| !v.trim().is_empty()) {
            Some(v) => Ok(Some(v)),
            None => Err(ProviderError::EnvKeyUnset {
                id: self.id.clone(),
                var: var.clone(),
                instructions: instructions.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn builtin_openai_wins_over_a_user_entry_and_only_openai_base_url_moves_it() {
        let user = table(
            "[openai]\nbase_url = \"https://attacker.example/v1\"\nrequires_openai_auth = true\n",
        );
        let r = resolve("openai", Some(&user), &no_env).unwrap();
        assert_eq!(r.provider.base_url, OPENAI_DEFAULT_BASE_URL);
        assert_eq!(r.provider.auth, AuthSource::Stored { chatgpt: false });
        assert!(r.warnings[0].starts_with("model_providers.openai in the config is ignored"));
        let env = |k: &str| (k == "OPENAI_BASE_URL").then(|| "http://127.0.0.1:9/v1".to_owned());
        let r = resolve("openai", Some(&user), &env).unwrap();
        assert_eq!(r.provider.base_url, "http://127.0.0.1:9/v1");
    }

    #[test]
    fn codex_azure_provider_with_env_key_query_params_and_headers() {
        let user = table(
            r#"[azure]
name = "Azure"
base_url = "https://x.openai.azure.com/openai"
env_key = "AZURE_OPENAI_API_KEY"
env_key_instructions = "get one at portal.azure.com"
wire_api = "responses"
query_params = { api-version = "2025-04-01-preview" }
http_headers = { "X-Example" = "v" }
env_http_headers = { "X-Env" = "EXAMPLE_VAR" }
request_max_retries = 2
stream_max_retries = 1000
"#,
        );
        let r = resolve("azure", Some(&user), &no_env).unwrap();
        let p = r.provider;
        assert_eq!(
            p.request_url().unwrap().as_str(),
            "https://x.openai.azure.com/openai/responses?api-version=2025-04-01-preview"
        );
        assert_eq!(p.retry.request_max_retries, 2);
        assert_eq!(p.retry.stream_max_retries, 100, "capped like codex");
        let e = p.env_key_value(&no_env).unwrap_err().to_string();
        assert_eq!(
            e,
            "provider azure needs the environment variable AZURE_OPENAI_API_KEY (env_key), which is not set: get one at portal.azure.com"
        );
        let env = |k: &str| match k {
            "AZURE_OPENAI_API_KEY" => Some("k".to_owned()),
            "EXAMPLE_VAR" => Some("ev".to_owned()),
            _ => None,
        };
        assert_eq!(p.env_key_value(&env).unwrap().as_deref(), Some("k"));
        assert_eq!(
            p.env_headers(&env).unwrap(),
            vec![("X-Env".to_owned(), "ev".to_owned())]
        );
        assert!(p.env_headers(&no_env).unwrap().is_empty());
    }

    #[test]
    fn bad_provider_entries_are_clear_errors() {
        let e = |s: &str| {
            resolve("p", Some(&table(s)), &no_env)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("[p]\nbase_url = \"https://h/v1\"\nwire_api = \"chat\"\n"),
            "model_providers.p.wire_api = \"chat\" is not supported: this CLI speaks the Responses API only (wire_api = \"responses\")"
        );
        assert_eq!(
            e("[p]\nname = \"x\"\n"),
            "model_providers.p.base_url is not set"
        );
        assert!(
            e("[p]\nbase_url = \"https://h/v1\"\nhttp_headers = { \"bad name\" = \"v\" }\n")
                .contains("is not a valid HTTP header name")
        );
        assert!(
            e("[p]\nbase_url = \"https://h/v1\"\nhttp_headers = { Host = \"v\" }\n")
                .contains("set by the client itself")
        );
        assert!(
            e("[p]\nbase_url = \"https://h/v1\"\nexperimental_bearer_token = \"sk-x\"\n")
                .contains("not supported")
        );
        assert!(
            !e("[p]\nbase_url = \"https://h/v1\"\nexperimental_bearer_token = \"sk-x\"\n")
                .contains("sk-x")
        );
        assert_eq!(
            e("[q]\nbase_url = \"https://h/v1\"\n"),
            "unknown model provider \"p\": define model_providers.p.base_url (built in: openai)"
        );
        assert!(
            e("[p]\nbase_url = \"ftp://h/v1\"\n").contains("expected an http:// or https:// URL")
        );
    }

    #[test]
    fn debug_never_shows_header_values_or_an_inline_token() {
        let user = table(
            "[p]\nbase_url = \"https://h/v1\"\nhttp_headers = { api-key = \"SECRET-HEADER\" }\n",
        );
        let p = resolve("p", Some(&user), &no_env).unwrap().provider;
        let d = format!("{p:?}");
        assert!(d.contains("api-key") && !d.contains("SECRET-HEADER"), "{d}");
        let info = ProviderInfo::from_toml(
            "p",
            &toml::Value::Table(table(
                "experimental_bearer_token = \"SECRET-TOKEN\"\nhttp_headers = { k = \"SECRET-HEADER\" }\n",
            )),
        )
        .unwrap();
        let d = format!("{info:?}");
        assert!(!d.contains("SECRET"), "{d}");
    }

    #[test]
    fn the_openai_host_is_the_default_base_urls() {
        let u = url::Url::parse(OPENAI_DEFAULT_BASE_URL).unwrap();
        assert_eq!(u.host_str(), Some(OPENAI_HOST));
    }

    #[test]
    fn the_stored_key_goes_to_another_host_only_when_the_user_names_it() {
        let cfg =
            table("[p]\nbase_url = \"https://attacker.example/v1\"\nrequires_openai_auth = true\n");
        let e = resolve("p", Some(&cfg), &no_env).unwrap_err().to_string();
        assert!(
            e.contains("would send your stored credential") && e.contains("attacker.example"),
            "{e}"
        );
        // named in the user's own shell: allowed
        let named = |k: &str| {
            (k == STORED_KEY_HOSTS_ENV).then(|| "gw.example, attacker.example".to_owned())
        };
        assert!(resolve("p", Some(&cfg), &named).is_ok());
        // controls: OpenAI's host, a loopback proxy, and a provider with its own env_key
        for ok in [
            "[p]\nbase_url = \"https://api.openai.com/v1\"\nrequires_openai_auth = true\n",
            "[p]\nbase_url = \"https://localhost:8443/v1\"\nrequires_openai_auth = true\n",
            "[p]\nbase_url = \"https://attacker.example/v1\"\nenv_key = \"P_KEY\"\n",
        ] {
            assert!(resolve("p", Some(&table(ok)), &no_env).is_ok(), "{ok}");
        }
    }

    #[test]
    fn requires_auth_is_a_deprecated_alias() {
        let r = resolve(
            "p",
            Some(&table(
                "[p]\nbase_url = \"https://127.0.0.1:9/v1\"\nrequires_auth = true\n",
            )),
            &no_env,
        )
        .unwrap();
        assert_eq!(r.provider.auth, AuthSource::Stored { chatgpt: false });
        assert!(
            r.warnings[0].contains("requires_auth is deprecated"),
            "{:?}",
            r.warnings
        );
        let r = resolve(
            "p",
            Some(&table("[p]\nbase_url = \"https://h/v1\"\n")),
            &no_env,
        )
        .unwrap();
        assert_eq!(r.provider.auth, AuthSource::None);
        assert!(r.warnings.is_empty());
    }

    #[test]
    fn plain_http_credential_only_to_loopback() {
        let p = |url: &str| {
            resolve(
                "p",
                Some(&table(&format!("[p]\nbase_url = \"{url}\"\n"))),
                &no_env,
            )
            .unwrap()
            .provider
        };
        assert_eq!(
            p("http://127.0.0.1:9/v1").check_transport(true).unwrap(),
            Transport::PlainLoopback
        );
        assert_eq!(
            p("http://[::1]:9/v1").check_transport(true).unwrap(),
            Transport::PlainLoopback
        );
        assert_eq!(
            p("http://localhost:9/v1/").check_transport(true).unwrap(),
            Transport::PlainLoopback
        );
        assert_eq!(
            p("http://example.com/v1")
                .check_transport(true)
                .unwrap_err()
                .to_string(),
            "refusing to send the API key over plain http to example.com: use https, or a loopback address for a local proxy (model_providers.p.base_url)"
        );
        assert_eq!(
            p("http://example.com/v1").check_transport(false).unwrap(),
            Transport::Plain
        );
        assert_eq!(
            p("https://example.com/v1").check_transport(true).unwrap(),
            Transport::Https
        );
    }
}
