//! `[model_providers.<id>]` as written in a config file.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The only `wire_api` this CLI speaks.
pub const WIRE_API_RESPONSES: &str = "responses";

/// One provider table, codex's keys. Unknown keys are ignored (codex has more, for features this
/// CLI does not have); known keys are type-checked when the config is loaded.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ProviderInfo {
    /// Display name.
    pub name: Option<String>,
    /// `https://host/v1`; `<base_url>/responses` is requested.
    pub base_url: Option<String>,
    /// Environment variable holding this provider's API key (sent as `Authorization: Bearer`).
    pub env_key: Option<String>,
    /// Added to the error when `env_key` is unset.
    pub env_key_instructions: Option<String>,
    /// Codex's inline key; refused here (see [`crate::ProviderError::BearerTokenInConfig`]).
    pub experimental_bearer_token: Option<String>,
    /// `"responses"` (codex also knows `"chat"`, which this CLI does not speak).
    pub wire_api: Option<String>,
    /// Appended to the request URL (Azure's `api-version`).
    pub query_params: Option<BTreeMap<String, String>>,
    /// Extra headers, name → value.
    pub http_headers: Option<BTreeMap<String, String>>,
    /// Extra headers, name → environment variable (unset or empty: header not sent).
    pub env_http_headers: Option<BTreeMap<String, String>>,
    /// Retries of a failed request (connect error, 429, 5xx); default 4, at most 100.
    pub request_max_retries: Option<u64>,
    /// Retries of a stream that broke before any output; default 5, at most 100.
    pub stream_max_retries: Option<u64>,
    /// Idle timeout of a streaming response; default 300000.
    pub stream_idle_timeout_ms: Option<u64>,
    /// The stored credential (`codex login`) authenticates this provider.
    pub requires_openai_auth: Option<bool>,
    /// Deprecated alias of `requires_openai_auth` (this suite's old name).
    pub requires_auth: Option<bool>,
    /// This suite's: a ChatGPT sign-in may authenticate (implies `requires_openai_auth`).
    pub chatgpt_auth: Option<bool>,
}

impl ProviderInfo {
    /// Parses one table (type errors name the key).
    pub fn from_toml(id: &str, v: &toml::Value) -> Result<Self, crate::ProviderError> {
        v.clone()
            .try_into::<ProviderInfo>()
            .map_err(|e| crate::ProviderError::Invalid {
                id: id.to_owned(),
                message: e.message().trim().replace('\n', " "),
            })
    }
}

/// `Debug` without secrets: `experimental_bearer_token` and the `http_headers` values (an Azure
/// `api-key` header is a key) are `[REDACTED]`.
impl std::fmt::Debug for ProviderInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderInfo")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("env_key", &self.env_key)
            .field(
                "experimental_bearer_token",
                &self
                    .experimental_bearer_token
                    .as_ref()
                    .map(|_| "[REDACTED]"),
            )
            .field("wire_api", &self.wire_api)
            .field("query_params", &self.query_params)
            .field(
                "http_headers",
                &self
                    .http_headers
                    .as_ref()
                    .map(|h| h.keys().map(|k| (k, "[REDACTED]")).collect::<Vec<_>>()),
            )
            .field("env_http_headers", &self.env_http_headers)
            .field("request_max_retries", &self.request_max_retries)
            .field("stream_max_retries", &self.stream_max_retries)
            .field("stream_idle_timeout_ms", &self.stream_idle_timeout_ms)
            .field("requires_openai_auth", &self.requires_openai_auth)
            .field("requires_auth", &self.requires_auth)
            .field("chatgpt_auth", &self.chatgpt_auth)
            .finish()
    }
}
