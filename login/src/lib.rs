//! `codex-login`: browser sign-in through a local OAuth 2.0 authorization-code flow with PKCE.
//!
//! [`start`] binds a callback server on 127.0.0.1 and [::1] (port 1455 by default, another port if
//! that one is taken, or exactly the port asked for), returns a [`LoginServer`] with the URL to
//! open, and serves `GET /auth/callback` until the login ends:
//!
//! - a callback whose `state` is not ours is answered 400 and the login keeps waiting;
//! - requests whose `Host` is not `localhost`, `127.0.0.1` or `[::1]` (on our port) get 403,
//!   so a DNS-rebinding page cannot drive the server; other paths get 404;
//! - the code is exchanged at `<issuer>/oauth/token` with the PKCE verifier (rustls, OS roots or
//!   `SSL_CERT_FILE`), the ID token's claims are read **unverified** (see [`claims`]), and the
//!   tokens go to the caller's persist callback — this crate does not store anything itself;
//! - the login ends as a typed [`LoginOutcome`]: success, cancelled, timed out, or failed with
//!   the reason.
//!
//! Threads: everything runs on the caller's tokio runtime; no thread is spawned. After
//! [`LoginServer::wait`] returns, the listener is closed and no task of the login remains.
//! After a failure nothing has been stored (the persist callback runs only with valid tokens).
//!
//! Not here: verifying the ID token's signature. The OAuth protocol pieces (PKCE, the token
//! endpoint, RFC 8628, discovery) live in `codex-oauth`.

pub mod claims;
pub mod device;
mod error;
pub mod exchange;
mod issuer;
mod refresher;
mod server;
#[cfg(target_os = "linux")]
mod sys;

pub use claims::IdTokenClaims;
pub use codex_oauth::pkce;
pub use codex_oauth::{ErrorCode, OAuthError};
pub use device::{DeviceCode, complete_device_login, request_device_code};
pub use error::LoginError;
pub use exchange::{TokenClient, TokenSet};
pub use issuer::{
    DEFAULT_CLIENT_ID, DEFAULT_ISSUER, Issuer, ORIGINATOR, SCOPES, authorize_url,
    validate_client_id,
};
pub use pkce::random_id;
pub use refresher::ChatGptRefresher;
pub use secure_main::SecretString;
pub use server::{
    BoundCallback, CALLBACK_PATH, CallbackCode, CancelHandle, CommitFn, DEFAULT_PORT, ExchangeFn,
    LoginOptions, LoginOutcome, LoginServer, PersistFuture, PortChoice, bind_callback, start,
};
