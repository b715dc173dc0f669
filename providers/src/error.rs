//! Why a provider could not be resolved or used. Every message names the config key.

/// A provider configuration error (the CLI reports these as usage errors, exit 2, except
/// [`ProviderError::EnvKeyUnset`], an authentication error, exit 21).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error(
        "unknown model provider {id:?}: define model_providers.{id}.base_url (built in: {builtin})"
    )]
    Unknown { id: String, builtin: String },
    #[error("model_providers.{id}.base_url is not set")]
    MissingBaseUrl { id: String },
    #[error("model_providers.{id}: {message}")]
    Invalid { id: String, message: String },
    #[error(
        "model_providers.{id}.wire_api = {value:?} is not supported: this CLI speaks the Responses API only (wire_api = \"responses\")"
    )]
    UnsupportedWireApi { id: String, value: String },
    #[error("model_providers.{id}.{field}: {name:?} is not a valid HTTP header name")]
    BadHeaderName {
        id: String,
        field: &'static str,
        name: String,
    },
    #[error("model_providers.{id}.{field}.{name}: the value is not a valid HTTP header value")]
    BadHeaderValue {
        id: String,
        field: &'static str,
        name: String,
    },
    #[error(
        "model_providers.{id}.{field}.{name}: this header is set by the client itself and cannot be configured"
    )]
    ReservedHeader {
        id: String,
        field: &'static str,
        name: String,
    },
    #[error(
        "model_providers.{id}.experimental_bearer_token is not supported (a key in a config file): use env_key, or the credential store with requires_openai_auth = true"
    )]
    BearerTokenInConfig { id: String },
    #[error("model_providers.{id}.query_params: {message}")]
    BadQuery { id: String, message: String },
    #[error("model_providers.{id}.base_url {url:?} is not a URL: {message}")]
    BadUrl {
        id: String,
        url: String,
        message: String,
    },
    #[error("model_providers.{id}.base_url {url:?}: expected an http:// or https:// URL")]
    BadScheme { id: String, url: String },
    #[error(
        "refusing to send the API key over plain http to {host}: use https, or a loopback address for a local proxy (model_providers.{id}.base_url)"
    )]
    PlainHttpCredential { id: String, host: String },
    #[error(
        "model_providers.{id} would send your stored credential (requires_openai_auth) to {host}, which is not api.openai.com: a config file alone may not send it elsewhere; if {host} is yours, allow it from your own shell with CODEX_STORED_KEY_HOSTS={host}, or give the provider its own key with env_key"
    )]
    StoredKeyHost { id: String, host: String },
    #[error("provider {id} needs the environment variable {var} (env_key), which is not set{}", instructions.as_deref().map(|i| format!(": {i}")).unwrap_or_default())]
    EnvKeyUnset {
        id: String,
        var: String,
        instructions: Option<String>,
    },
}
