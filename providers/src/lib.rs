//! `codex-providers`: the model provider config of the Codex CLI, resolved and checked.
//!
//! - [`ProviderInfo`]: one `[model_providers.<id>]` table with codex's keys (`name`, `base_url`,
//!   `env_key`, `env_key_instructions`, `wire_api`, `query_params`, `http_headers`,
//!   `env_http_headers`, `request_max_retries`, `stream_max_retries`, `stream_idle_timeout_ms`,
//!   `requires_openai_auth`), plus `requires_auth` (this suite's old name, a deprecated alias that
//!   warns) and `chatgpt_auth` (this suite's: a ChatGPT sign-in may authenticate).
//! - [`resolve`]: the provider selected by `model_provider`. **Built-in providers win over user
//!   entries** (as in codex): `[model_providers.openai]` in any config layer is ignored with a
//!   warning, so a config file cannot re-point the provider that receives the stored key; only
//!   `OPENAI_BASE_URL`, set in the user's own environment, moves it.
//! - [`Provider::request_url`], [`Provider::static_headers`], [`Provider::env_headers`],
//!   [`Provider::check_transport`]: what a request carries and where it may go (no credential over
//!   plain `http://` except to a loopback host).
//! - [`retry`]: capped exponential backoff with jitter, `Retry-After` / `retry-after-ms` honoured.
//!
//! Pure data and checks: no I/O except the environment lookups passed in by the caller.

mod error;
mod info;
mod provider;
pub mod retry;

pub use error::ProviderError;
pub use info::{ProviderInfo, WIRE_API_RESPONSES};
pub use provider::{
    AuthSource, BUILTIN_OPENAI, DEFAULT_IDLE_TIMEOUT_MS, OPENAI_DEFAULT_BASE_URL, Provider,
    Resolved, Transport, builtin_ids, resolve,
};
pub use retry::RetryPolicy;
