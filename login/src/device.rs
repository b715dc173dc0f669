//! Device-code sign-in (`codex login --device-auth`): for SSH sessions, containers and machines
//! without a browser.
//!
//! Two flows against the same issuer, chosen by its discovery document:
//!
//! - **RFC 8628**, when the issuer's metadata (RFC 8414 / OIDC discovery, see
//!   [`codex_oauth::discovery`]) advertises a `device_authorization_endpoint`: the standard
//!   device-code grant at the advertised `token_endpoint`;
//! - otherwise **openai/codex's own flow**, as the reference CLI does it:
//!   `POST <issuer>/api/accounts/deviceauth/usercode {client_id}` → `{device_auth_id, user_code,
//!   interval}`; the user opens `<issuer>/codex/device`; `POST
//!   <issuer>/api/accounts/deviceauth/token {device_auth_id, user_code}` answers 403/404 while
//!   pending, then `{authorization_code, code_challenge, code_verifier}`, and the code is exchanged
//!   at `<issuer>/oauth/token` with `redirect_uri = <issuer>/deviceauth/callback`. The codex flow
//!   has no `expires_in`; the reference gives up after 15 minutes, and so do we.
//!
//! A discovery failure that is a transport error (the network is down) ends the login; any other
//! discovery failure (no document, a malformed one) falls back to the codex flow at the same
//! issuer. Both flows share codex-oauth's [`PollSchedule`] (interval bounds, `slow_down`, expiry)
//! and end with the same [`TokenSet`] a browser login produces.

use std::time::Duration;

use codex_oauth::device::{self, DeviceAuthorization, PollSchedule, Sleeper};
use codex_oauth::{HttpClient, OAuthError, discovery};
use serde::Deserialize;
use zeroize::Zeroize;

use crate::error::LoginError;
use crate::exchange::{TokenClient, TokenSet};
use crate::issuer::Issuer;
use secure_main::SecretString;

/// How long the codex flow waits for approval (its server gives no expiry; the reference CLI
/// uses 15 minutes).
pub const CODEX_DEVICE_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Scope requested in the RFC 8628 flow.
const DEVICE_SCOPE: &str = crate::issuer::SCOPES;

/// Which device flow a [`DeviceCode`] belongs to.
#[derive(Debug)]
enum Flow {
    Codex {
        device_auth_id: SecretString,
    },
    Rfc8628 {
        auth: DeviceAuthorization,
        token_endpoint: String,
    },
}

/// A device login waiting for the user: show [`DeviceCode::verification_url`] and
/// [`DeviceCode::user_code`], then call [`complete_device_login`].
#[derive(Debug)]
pub struct DeviceCode {
    /// Where the user signs in.
    pub verification_url: String,
    /// The code the user types there (not a secret: useless without the user's own sign-in).
    pub user_code: String,
    /// How long the code is valid.
    pub expires_in: Duration,
    /// Seconds between polls, as bounded.
    pub interval: Duration,
    /// `true` for the RFC 8628 flow.
    pub rfc8628: bool,
    flow: Flow,
    issuer: Issuer,
    client_id: String,
    http: HttpClient,
}

#[derive(Deserialize)]
struct UserCodeResp {
    #[serde(default)]
    device_auth_id: Option<String>,
    #[serde(default, alias = "usercode")]
    user_code: Option<String>,
    #[serde(default)]
    interval: Option<serde_json::Value>,
}

impl Drop for UserCodeResp {
    fn drop(&mut self) {
        self.device_auth_id.zeroize();
    }
}

#[derive(Deserialize)]
struct CodeResp {
    authorization_code: String,
    code_challenge: String,
    code_verifier: String,
}

impl Drop for CodeResp {
    fn drop(&mut self) {
        self.authorization_code.zeroize();
        self.code_verifier.zeroize();
    }
}

fn body_error(endpoint: &str, reason: String) -> LoginError {
    LoginError::OAuth(OAuthError::Body {
        endpoint: endpoint.to_string(),
        reason,
    })
}

/// Ask the issuer for a device code (see the module docs for which flow).
pub async fn request_device_code(
    issuer: &Issuer,
    client_id: &str,
) -> Result<DeviceCode, LoginError> {
    crate::issuer::validate_client_id(client_id)?;
    let http = HttpClient::new(issuer.is_https())?;
    let metadata = match discovery::discover(&http, issuer.as_str()).await {
        Ok(m) => m,
        Err(e @ (OAuthError::Transport { .. } | OAuthError::Timeout { .. })) => {
            return Err(e.into());
        }
        Err(_) => None,
    };
    if let Some(meta) = metadata {
        if let Some(endpoint) = meta.device_authorization_endpoint {
            let token_endpoint = meta
                .token_endpoint
                .unwrap_or_else(|| issuer.token_endpoint());
            let auth = device::request_device_authorization(
                &http,
                &endpoint,
                client_id,
                Some(DEVICE_SCOPE),
                &[],
            )
            .await?;
            // printed on the user's terminal and sent to app-server clients: an issuer's URL
            // with control or invisible formatting characters is refused, not shown (outside
            // review r7 F1: escape sequences passed the endpoint check)
            if crate::claims::printable(&auth.verification_uri) != auth.verification_uri {
                return Err(LoginError::DeviceAnswer(
                    "verification_uri contains control or invisible formatting characters",
                ));
            }
            return Ok(DeviceCode {
                verification_url: auth.verification_uri.clone(),
                user_code: auth.user_code.clone(),
                expires_in: auth.expires_in,
                interval: auth.interval,
                rfc8628: true,
                flow: Flow::Rfc8628 {
                    auth,
                    token_endpoint,
                },
                issuer: issuer.clone(),
                client_id: client_id.to_string(),
                http,
            });
        }
    }
    codex_request(http, issuer, client_id).await
}

async fn codex_request(
    http: HttpClient,
    issuer: &Issuer,
    client_id: &str,
) -> Result<DeviceCode, LoginError> {
    let endpoint = format!("{}/api/accounts/deviceauth/usercode", issuer.as_str());
    let answer = http
        .post_json(&endpoint, &serde_json::json!({ "client_id": client_id }))
        .await?;
    if answer.status == 404 {
        return Err(LoginError::DeviceNotEnabled {
            issuer: issuer.as_str().to_string(),
        });
    }
    if !(200..300).contains(&answer.status) {
        return Err(codex_oauth::error_from_answer(&endpoint, &answer).into());
    }
    if !answer.is_json() {
        return Err(body_error(
            &endpoint,
            format!("expected json, got {}", answer.describe()),
        ));
    }
    let mut raw: UserCodeResp = serde_json::from_slice(&answer.body).map_err(|e| {
        body_error(
            &endpoint,
            format!("not a user code answer: {}", codex_oauth::json_reason(&e)),
        )
    })?;
    let device_auth_id = raw
        .device_auth_id
        .take()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| body_error(&endpoint, "missing device_auth_id".to_string()))?;
    let device_auth_id = SecretString::new(device_auth_id);
    let user_code = raw
        .user_code
        .take()
        .ok_or_else(|| body_error(&endpoint, "missing user_code".to_string()))?;
    device::check_user_code(&user_code).map_err(|r| body_error(&endpoint, r))?;
    let interval = match raw.interval.take() {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| body_error(&endpoint, "interval is not an integer".to_string()))?,
        ),
    };
    let interval = device::bounded_interval(interval, CODEX_DEVICE_LIFETIME)
        .map_err(|r| body_error(&endpoint, r))?;
    Ok(DeviceCode {
        verification_url: format!("{}/codex/device", issuer.as_str()),
        user_code,
        expires_in: CODEX_DEVICE_LIFETIME,
        interval,
        rfc8628: false,
        flow: Flow::Codex { device_auth_id },
        issuer: issuer.clone(),
        client_id: client_id.to_string(),
        http,
    })
}

/// Poll until the user approves `code`, then return the tokens (nothing is stored here). Pass
/// [`codex_oauth::device::tokio_sleep`] as `sleep`. Dropping the future cancels the login.
pub async fn complete_device_login(
    code: DeviceCode,
    sleep: &Sleeper,
) -> Result<TokenSet, LoginError> {
    let tokens = TokenClient::with_http(code.http.clone(), &code.issuer)?;
    match &code.flow {
        Flow::Rfc8628 {
            auth,
            token_endpoint,
        } => {
            let client = codex_oauth::TokenClient::with_http(code.http.clone(), token_endpoint)?;
            let resp = device::poll_for_token(&client, &code.client_id, auth, &[], sleep).await?;
            tokens.token_set(resp, None)
        }
        Flow::Codex { device_auth_id } => {
            let endpoint = format!("{}/api/accounts/deviceauth/token", code.issuer.as_str());
            let mut schedule = PollSchedule::new(code.interval, code.expires_in);
            let got = loop {
                schedule.wait(sleep).await?;
                let answer = code
                    .http
                    .post_json(
                        &endpoint,
                        &serde_json::json!({
                            "device_auth_id": device_auth_id.expose_secret(),
                            "user_code": code.user_code,
                        }),
                    )
                    .await?;
                match answer.status {
                    200..=299 => {
                        if !answer.is_json() {
                            return Err(body_error(
                                &endpoint,
                                format!("expected json, got {}", answer.describe()),
                            ));
                        }
                        break serde_json::from_slice::<CodeResp>(&answer.body).map_err(|e| {
                            body_error(
                                &endpoint,
                                format!(
                                    "not an authorization code answer: {}",
                                    codex_oauth::json_reason(&e)
                                ),
                            )
                        })?;
                    }
                    // openai/codex: 403 and 404 mean "not approved yet".
                    403 | 404 => {}
                    _ => {
                        let err = codex_oauth::error_from_answer(&endpoint, &answer);
                        return Err(match err.code() {
                            Some(codex_oauth::ErrorCode::AccessDenied) => {
                                OAuthError::AccessDenied { endpoint }.into()
                            }
                            Some(codex_oauth::ErrorCode::ExpiredToken) => OAuthError::Expired {
                                secs: code.expires_in.as_secs(),
                            }
                            .into(),
                            Some(codex_oauth::ErrorCode::SlowDown) => {
                                schedule.slow_down();
                                continue;
                            }
                            _ => err.into(),
                        });
                    }
                }
            };
            if codex_oauth::pkce::challenge_for(&got.code_verifier) != got.code_challenge {
                return Err(body_error(
                    &endpoint,
                    "code_verifier does not match code_challenge".to_string(),
                ));
            }
            let verifier = SecretString::new(got.code_verifier.clone());
            let redirect_uri = format!("{}/deviceauth/callback", code.issuer.as_str());
            tokens
                .exchange_code(
                    &code.client_id,
                    &redirect_uri,
                    &got.authorization_code,
                    &verifier,
                )
                .await
        }
    }
}
