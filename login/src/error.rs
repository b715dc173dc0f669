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
    /// `bind(127.0.0.1:port)` failed.
    #[error("cannot bind the login callback server to 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: io::Error },
    /// `getsockname` on the bound listener failed.
    #[error("cannot read the login callback server's address: {0}")]
    LocalAddr(io::Error),
    /// The OS trust store (or SSL_CERT_FILE) could not be loaded for an https issuer.
    #[error("cannot load trusted root certificates: {0}")]
    Roots(io::Error),
    /// The token request could not be sent or its answer not read.
    #[error("token request to {endpoint} failed: {reason}")]
    TokenTransport { endpoint: String, reason: String },
    /// The token endpoint answered with an error status.
    #[error("token endpoint {endpoint} refused the request: http {status}: {detail}")]
    TokenRefused {
        endpoint: String,
        status: u16,
        detail: String,
    },
    /// The token endpoint's answer is not the expected JSON.
    #[error("token endpoint {endpoint} answered with an invalid body: {reason}")]
    TokenBody { endpoint: String, reason: String },
    /// The ID token is not a JWT with JSON claims.
    #[error("invalid id token: {0}")]
    IdToken(String),
}
