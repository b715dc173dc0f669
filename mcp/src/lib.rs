//! `codex-mcp`: the codex CLI's MCP servers.
//!
//! - [`client`]: `codex mcp get --check`: `initialize` and `tools/list` with the official Rust SDK
//!   (`rmcp`) over stdio or streamable HTTP, with the stored credentials;
//! - [`config`]: `[mcp_servers.NAME]` in `config.toml` and the managed config: the model, and
//!   validation whose errors name the file, the line and the field;
//! - [`edit`]: `codex mcp add` / `remove`, editing `config.toml` in place (`toml_edit`: comments
//!   kept), atomically, never the managed config;
//! - [`store`]: the OAuth credential store (`mcp_oauth_credentials_store`): file, keyring, or
//!   auto with a visible warning;
//! - [`oauth`]: OAuth sign-in, refresh (serialized across processes) and logout for streamable
//!   HTTP servers;
//! - [`status`]: the auth status shown by `list` / `get`;
//! - [`view`]: what `list` / `get` print, without `env`, header or token values.
//!
//! Unix only (file modes, `O_NOFOLLOW`).
#![cfg(unix)]
#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod edit;
pub mod oauth;
pub mod status;
pub mod store;
pub mod view;

pub use config::{ConfigError, HttpServer, McpConfig, ServerConfig, Source, Transport};
pub use secure_main::SecretString;
