//! Test-only helpers shared across the workspace. Never a dependency of a shipped binary.
//!
//! Modules and their owners: `bins` (locating built binaries), `responses_mock` and `tls`
//! (a recording mock Responses API over HTTP and TLS, and a test CA), `oauth_mock` (a mock OAuth
//! issuer for the login tests), `mcp_mock` (an OAuth-protected MCP server and its authorization
//! server for the `codex mcp` tests).

pub mod bins;
pub mod dirs;
pub mod mcp_mock;
pub mod modgraph;
pub mod oauth_mock;
pub mod ports;
pub mod python;
pub mod responses_mock;
pub mod scripted_http;
pub mod tls;
pub mod ws_mock;
