//! Errors of starting a login. A login that has started ends in a [`crate::LoginOutcome`] instead.

use std::io;

/// Why a login could not start, or why a token request failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The issuer is not a URL.
    #[error("invalid issuer url {url:?}: {source}")]
    IssuerUrl {
        url: String,
        source: url::ParseError,
    },
    /// The issuer's scheme or host is not allowed (https anywhere, http only on loopback).
    #[error("issuer {url:?} refused: {reason}")]
    IssuerRefused { url: String, reason: &'static str },
    /// The client id is empty or has characters that do not belong in a client id.
    #[error("invalid client id {0:?}: expected 1-200 characters from [A-Za-z0-9._-]")]
    ClientId(String),
    /// `bind(127.0.0.1:port)` or `bind([::1]:port)` failed. The callback server listens on both
    /// loopback families on one port, so that no other local user can own `localhost:port` on
    /// the family the browser tries first.
    #[error("cannot bind the login callback server to {host}:{port}: {source}")]
    Bind {
        host: &'static str,
        port: u16,
        source: io::Error,
    },
    /// `getsockname` on the bound listener failed.
    #[error("cannot read the login callback server's address: {0}")]
    LocalAddr(io::Error),
    /// The OS trust store (or SSL_CERT_FILE) could not be loaded for an https issuer.
    #[error("cannot load trusted root certificates: {0}")]
    Roots(io::Error),
    /// A request to the issuer failed (transport, an OAuth error answer such as
    /// `invalid_grant`, a malformed answer). [`OAuthError::is_invalid_grant`] tells a dead
    /// refresh token from the rest.
    #[error(transparent)]
    OAuth(#[from] codex_oauth::OAuthError),
    /// The token answer lacks a field the ChatGPT sign-in needs.
    #[error("token endpoint {endpoint} answered without {field}")]
    MissingToken {
        endpoint: String,
        field: &'static str,
    },
    /// The issuer has no device-code endpoint (404).
    #[error(
        "device code login is not enabled for the issuer {issuer}: use the browser login (`codex login`) or check auth.issuer"
    )]
    DeviceNotEnabled { issuer: String },
    /// The ID token is not a JWT with JSON claims.
    #[error("invalid id token: {0}")]
    IdToken(String),
    /// The issuer's device authorization answer cannot be shown to the user.
    #[error("the issuer's device authorization answer is refused: {0}")]
    DeviceAnswer(&'static str),
}
