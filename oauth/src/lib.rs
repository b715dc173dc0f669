//! `codex-oauth`: the OAuth 2.0 client pieces that ChatGPT sign-in (`codex-login`) and MCP
//! sign-in share. Nothing here knows about ChatGPT or about where tokens are stored.
//!
//! - [`pkce`]: RFC 7636 S256 verifier/challenge, `state`, random ids;
//! - [`endpoint`]: the URL rule every endpoint obeys: `https://`, or `http://` on a loopback host
//!   only (tests), no user info, no fragment;
//! - [`HttpClient`]: hyper + rustls (ring; OS roots or `SSL_CERT_FILE`), 30 s per request, answers
//!   capped at 1 MiB and kept in zeroizing buffers, no idle connection pool;
//! - [`TokenClient`]: the token endpoint (RFC 6749): authorization-code exchange, refresh (a
//!   rotated refresh token is adopted, an answer without one keeps the old one), and RFC 6749
//!   §5.2 error bodies parsed into [`ErrorCode`] (`invalid_grant`, ...);
//! - [`device`]: RFC 8628 device authorization: the user-code request with bounds on `interval`
//!   and `expires_in`, and a poll loop honouring `authorization_pending`, `slow_down` (+5 s),
//!   `access_denied` and `expired_token`; its [`device::PollSchedule`] is reusable by non-standard
//!   device flows;
//! - [`discovery`]: authorization-server metadata (RFC 8414, then OpenID Connect discovery);
//! - [`resource`]: RFC 9728 protected resource metadata, from a `WWW-Authenticate: Bearer`
//!   challenge or the well-known URL;
//! - [`registration`]: RFC 7591 dynamic client registration;
//! - [`revocation`]: RFC 7009 token revocation.
//!
//! Tokens are [`SecretString`]s (zeroized on drop, `Debug` = `[REDACTED]`); error messages never
//! quote a token or a raw answer body, only the RFC 6749 `error` code and a cleaned, bounded
//! `error_description`.

pub mod device;
pub mod discovery;
pub mod endpoint;
mod error;
mod http_client;
pub mod pkce;
pub mod registration;
pub mod resource;
pub mod revocation;
mod token;

pub use endpoint::{is_loopback_url, validate_endpoint};
pub use error::{ErrorCode, OAuthError, json_reason};
pub use http_client::{Answer, HttpClient, MAX_BODY, REQUEST_TIMEOUT, tls_client_config};
pub use secure_main::SecretString;
pub use token::{MAX_EXPIRES_IN, TokenClient, TokenResponse, error_from_answer};
