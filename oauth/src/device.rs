//! RFC 8628 device authorization: request a user code, then poll the token endpoint with the
//! `urn:ietf:params:oauth:grant-type:device_code` grant until the user approves.
//!
//! Bounds (decisions, see the README): `interval` missing or `0` means the RFC's default of 5 s
//! (a zero interval would hammer the server); an `interval` above [`MAX_INTERVAL`] or not below
//! `expires_in` is refused as absurd. `expires_in` must be positive (an expiry in the past is an
//! error) and is capped at [`MAX_EXPIRES_IN`] (a code that claims to live for a year is treated
//! as living 30 minutes). `slow_down` adds 5 s to the interval (RFC 8628 §3.5), up to
//! [`MAX_INTERVAL`].

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;
use zeroize::Zeroize;

use crate::http_client::{HttpClient, endpoint_name};
use crate::token::error_from_answer;
use crate::{ErrorCode, OAuthError, SecretString, TokenClient, TokenResponse};

/// The RFC 8628 grant type.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Interval used when the server gives none, or 0 (RFC 8628 §3.2 default).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Largest interval accepted from a server, and the ceiling of `slow_down` increases.
pub const MAX_INTERVAL: Duration = Duration::from_secs(120);
/// What `slow_down` adds (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// Longest lifetime of a device code we wait for.
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(1800);
/// Longest user code accepted (it is printed on the user's terminal).
pub const MAX_USER_CODE: usize = 64;

/// A device authorization answer (RFC 8628 §3.2), checked.
#[derive(Debug)]
pub struct DeviceAuthorization {
    /// Secret: only the token endpoint sees it.
    pub device_code: SecretString,
    /// Shown to the user (not a secret: it is useless without the user's own sign-in).
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    /// After the caps of the module docs.
    pub expires_in: Duration,
    /// After the bounds of the module docs.
    pub interval: Duration,
}

#[derive(Deserialize)]
struct RawDevice {
    #[serde(default)]
    device_code: Option<String>,
    #[serde(default)]
    user_code: Option<String>,
    #[serde(default, alias = "verification_url")]
    verification_uri: Option<String>,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    interval: Option<serde_json::Value>,
}

impl Drop for RawDevice {
    fn drop(&mut self) {
        self.device_code.zeroize();
    }
}

/// A number, or a string holding one (some servers send `"5"`), as `i64`.
fn number(v: &serde_json::Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Check a user code: 1 to [`MAX_USER_CODE`] characters, no whitespace or control characters
/// (it goes to the user's terminal).
pub fn check_user_code(code: &str) -> Result<(), String> {
    if code.is_empty() {
        return Err("user_code is empty".to_string());
    }
    if code.chars().count() > MAX_USER_CODE {
        return Err(format!(
            "user_code is longer than {MAX_USER_CODE} characters"
        ));
    }
    if code.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("user_code contains whitespace or control characters".to_string());
    }
    Ok(())
}

/// The interval to use for a server's `interval` value (`None` when absent), per the module docs.
pub fn bounded_interval(raw: Option<i64>, expires_in: Duration) -> Result<Duration, String> {
    let interval = match raw {
        None | Some(0) => DEFAULT_INTERVAL,
        Some(n) if n < 0 => return Err(format!("interval {n} is negative")),
        Some(n) => Duration::from_secs(n.unsigned_abs()),
    };
    if interval > MAX_INTERVAL {
        return Err(format!(
            "interval {}s is absurd (more than {}s)",
            interval.as_secs(),
            MAX_INTERVAL.as_secs()
        ));
    }
    if interval >= expires_in {
        return Err(format!(
            "interval {}s is not shorter than expires_in {}s",
            interval.as_secs(),
            expires_in.as_secs()
        ));
    }
    Ok(interval)
}

/// The lifetime to use for a server's `expires_in`, per the module docs.
pub fn bounded_expiry(raw: i64) -> Result<Duration, String> {
    if raw <= 0 {
        return Err(format!("expires_in {raw} is not in the future"));
    }
    Ok(Duration::from_secs(raw.unsigned_abs()).min(MAX_EXPIRES_IN))
}

/// Ask `endpoint` (the `device_authorization_endpoint`) for a device and user code.
pub async fn request_device_authorization(
    http: &HttpClient,
    endpoint: &str,
    client_id: &str,
    scope: Option<&str>,
    extra: &[(&str, &str)],
) -> Result<DeviceAuthorization, OAuthError> {
    let mut form = vec![("client_id", client_id)];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    form.extend_from_slice(extra);
    let answer = http.post_form(endpoint, &form).await?;
    let name = url::Url::parse(endpoint)
        .map(|u| endpoint_name(&u))
        .unwrap_or_else(|_| endpoint.to_string());
    if !(200..300).contains(&answer.status) {
        return Err(error_from_answer(&name, &answer));
    }
    let bad = |reason: String| OAuthError::Body {
        endpoint: name.clone(),
        reason,
    };
    if !answer.is_json() {
        return Err(bad(format!("expected json, got {}", answer.describe())));
    }
    let mut raw: RawDevice = serde_json::from_slice(&answer.body).map_err(|e| {
        bad(format!(
            "not a device authorization answer: {}",
            crate::error::json_reason(&e)
        ))
    })?;
    let device_code = raw
        .device_code
        .take()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| bad("missing device_code".to_string()))?;
    let device_code = SecretString::new(device_code);
    let user_code = raw
        .user_code
        .take()
        .ok_or_else(|| bad("missing user_code".to_string()))?;
    check_user_code(&user_code).map_err(bad)?;
    let verification_uri = raw
        .verification_uri
        .take()
        .ok_or_else(|| bad("missing verification_uri".to_string()))?;
    crate::validate_endpoint(&verification_uri)
        .map_err(|e| bad(format!("verification_uri: {e}")))?;
    let verification_uri_complete = match raw.verification_uri_complete.take() {
        None => None,
        Some(u) => {
            crate::validate_endpoint(&u)
                .map_err(|e| bad(format!("verification_uri_complete: {e}")))?;
            Some(u)
        }
    };
    let expires_raw = raw
        .expires_in
        .as_ref()
        .ok_or_else(|| bad("missing expires_in".to_string()))?;
    let expires_in = number(expires_raw)
        .ok_or_else(|| bad("expires_in is not an integer".to_string()))
        .and_then(|n| bounded_expiry(n).map_err(&bad))?;
    let interval_raw = match raw.interval.as_ref() {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(number(v).ok_or_else(|| bad("interval is not an integer".to_string()))?),
    };
    let interval = bounded_interval(interval_raw, expires_in).map_err(&bad)?;
    Ok(DeviceAuthorization {
        device_code,
        user_code,
        verification_uri,
        verification_uri_complete,
        expires_in,
        interval,
    })
}

/// A sleep function: `tokio::time::sleep` in production; tests pass one that records the
/// requested durations and sleeps less.
pub type Sleeper = dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// `tokio::time::sleep`, boxed as a [`Sleeper`].
pub fn tokio_sleep(d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(tokio::time::sleep(d))
}

/// When to poll next and when to give up. Reusable by device flows that are not RFC 8628 (the
/// ChatGPT issuer's own device endpoints).
#[derive(Debug, Clone)]
pub struct PollSchedule {
    interval: Duration,
    lifetime: Duration,
    /// Wall-clock deadline.
    deadline: Instant,
    /// Sum of the waits asked for (so that a test sleeper that sleeps less still expires).
    waited: Duration,
}

impl PollSchedule {
    /// Poll every `interval` until `lifetime` has passed.
    pub fn new(interval: Duration, lifetime: Duration) -> Self {
        Self {
            interval,
            lifetime,
            deadline: Instant::now() + lifetime,
            waited: Duration::ZERO,
        }
    }

    /// The current interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// `slow_down`: 5 s more, up to [`MAX_INTERVAL`].
    pub fn slow_down(&mut self) {
        self.interval = (self.interval + SLOW_DOWN_STEP).min(MAX_INTERVAL);
    }

    /// Wait one interval with `sleep`; [`OAuthError::Expired`] instead when the next poll would
    /// come after the deadline.
    pub async fn wait(&mut self, sleep: &Sleeper) -> Result<(), OAuthError> {
        let now = Instant::now();
        if now + self.interval > self.deadline || self.waited + self.interval > self.lifetime {
            return Err(OAuthError::Expired {
                secs: self.lifetime.as_secs(),
            });
        }
        sleep(self.interval).await;
        self.waited += self.interval;
        Ok(())
    }
}

/// Poll `token` until the user approves `auth` (RFC 8628 §3.4-3.5). A transport failure (the
/// network dropping mid-poll) ends the login with that error: retrying would hide it from the
/// user until the code expires.
pub async fn poll_for_token(
    token: &TokenClient,
    client_id: &str,
    auth: &DeviceAuthorization,
    extra: &[(&str, &str)],
    sleep: &Sleeper,
) -> Result<TokenResponse, OAuthError> {
    let mut schedule = PollSchedule::new(auth.interval, auth.expires_in);
    let mut form = vec![
        ("grant_type", DEVICE_CODE_GRANT),
        ("device_code", auth.device_code.expose_secret()),
        ("client_id", client_id),
    ];
    form.extend_from_slice(extra);
    loop {
        schedule.wait(sleep).await?;
        let err = match token.grant(&form).await {
            Ok(t) => return Ok(t),
            Err(e) => e,
        };
        match err.code() {
            Some(ErrorCode::AuthorizationPending) => {}
            Some(ErrorCode::SlowDown) => schedule.slow_down(),
            Some(ErrorCode::AccessDenied) => {
                let endpoint = match &err {
                    OAuthError::Server { endpoint, .. } => endpoint.clone(),
                    _ => token.endpoint().to_string(),
                };
                return Err(OAuthError::AccessDenied { endpoint });
            }
            Some(ErrorCode::ExpiredToken) => {
                return Err(OAuthError::Expired {
                    secs: auth.expires_in.as_secs(),
                });
            }
            _ => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_and_expiry_bounds() {
        let e = Duration::from_secs(600);
        assert_eq!(bounded_interval(None, e).unwrap(), DEFAULT_INTERVAL);
        assert_eq!(bounded_interval(Some(0), e).unwrap(), DEFAULT_INTERVAL);
        assert_eq!(
            bounded_interval(Some(7), e).unwrap(),
            Duration::from_secs(7)
        );
        assert!(bounded_interval(Some(-1), e).is_err());
        assert!(
            bounded_interval(Some(86_400), e)
                .unwrap_err()
                .contains("absurd")
        );
        assert!(bounded_interval(Some(30), Duration::from_secs(20)).is_err());
        assert!(bounded_expiry(0).unwrap_err().contains("not in the future"));
        assert!(bounded_expiry(-30).is_err());
        assert_eq!(bounded_expiry(10_000_000).unwrap(), MAX_EXPIRES_IN);
        assert_eq!(bounded_expiry(900).unwrap(), Duration::from_secs(900));
    }

    #[test]
    fn user_codes() {
        assert!(check_user_code("WDJB-MJHT").is_ok());
        for bad in ["", "A B", "AB\u{1b}[2J", &"X".repeat(65)] {
            assert!(check_user_code(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn slow_down_is_capped() {
        let mut s = PollSchedule::new(Duration::from_secs(5), Duration::from_secs(600));
        s.slow_down();
        assert_eq!(s.interval(), Duration::from_secs(10));
        for _ in 0..100 {
            s.slow_down();
        }
        assert_eq!(s.interval(), MAX_INTERVAL);
    }
}
