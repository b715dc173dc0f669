//! [`OAuthError`] and the RFC 6749 §5.2 / RFC 8628 §3.5 error codes.

use std::fmt;

/// An OAuth error code from an authorization server's error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    /// The code, refresh token or device code is invalid, expired, revoked or already used.
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    /// RFC 8628: the user has not approved yet; poll again at the same interval.
    AuthorizationPending,
    /// RFC 8628: poll again, 5 seconds slower.
    SlowDown,
    /// RFC 8628: the user refused.
    AccessDenied,
    /// RFC 8628: the device code expired.
    ExpiredToken,
    /// Any other code (cleaned: printable, at most 64 characters).
    Other(String),
}

impl ErrorCode {
    /// The code for `s`, as sent on the wire.
    pub fn parse(s: &str) -> Self {
        match s {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "authorization_pending" => Self::AuthorizationPending,
            "slow_down" => Self::SlowDown,
            "access_denied" => Self::AccessDenied,
            "expired_token" => Self::ExpiredToken,
            other => Self::Other(clean(other, 64)),
        }
    }

    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `s` without control characters, at most `max` characters: safe to print on a terminal.
/// Why an answer did not parse, without quoting it: serde_json's type errors quote the value
/// they met (`invalid type: string "..."`), which may be a token or an echoed secret (outside
/// review r7 F4). A missing field is named (no value in that message); anything else is reduced
/// to its kind and position.
pub fn json_reason(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    if e.is_data() && msg.starts_with("missing field") {
        return msg;
    }
    let kind = if e.is_syntax() {
        "not json"
    } else if e.is_eof() {
        "truncated json"
    } else {
        "json of the wrong shape"
    };
    format!("{kind} (line {} column {})", e.line(), e.column())
}

pub(crate) fn clean(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// Why an OAuth request failed. Messages name the endpoint and the failing field; they never
/// quote tokens or raw answer bodies.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// An endpoint URL breaks the rule of [`crate::endpoint`].
    #[error("endpoint {url:?} refused: {reason}")]
    Endpoint { url: String, reason: String },
    /// The OS trust store (or `SSL_CERT_FILE`) could not be loaded.
    #[error("cannot load trusted root certificates: {0}")]
    Roots(std::io::Error),
    /// The request could not be sent, or the answer not read (connection refused or reset,
    /// TLS failure, answer larger than the limit).
    #[error("request to {endpoint} failed: {reason}")]
    Transport { endpoint: String, reason: String },
    /// No complete answer within the request timeout.
    #[error("request to {endpoint} failed: no answer within {secs}s")]
    Timeout { endpoint: String, secs: u64 },
    /// An RFC 6749 §5.2 error answer.
    #[error("{endpoint} refused the request: {code}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Server {
        endpoint: String,
        status: u16,
        code: ErrorCode,
        /// `error_description`, cleaned and at most 200 characters.
        description: Option<String>,
    },
    /// An error status without an OAuth error body (an HTML error page, a proxy's answer).
    #[error("{endpoint} answered http {status} ({detail})")]
    Status {
        endpoint: String,
        status: u16,
        detail: String,
    },
    /// A success status whose body is not what the protocol says (HTML, not JSON, a missing or
    /// out-of-range field).
    #[error("{endpoint} answered with an invalid body: {reason}")]
    Body { endpoint: String, reason: String },
    /// RFC 8628: the user refused the device authorization (`access_denied`).
    #[error("the sign-in was refused at {endpoint} (access_denied)")]
    AccessDenied { endpoint: String },
    /// RFC 8628: the device code expired before the user approved it (`expired_token`, or the
    /// local deadline from `expires_in` passed).
    #[error(
        "the device code expired after {secs}s without being approved; start the sign-in again"
    )]
    Expired { secs: u64 },
    /// RFC 9728: the metadata's `resource` is not the resource asked for (§3.3).
    #[error("metadata at {endpoint} names resource {found:?}, expected {expected:?}")]
    ResourceMismatch {
        endpoint: String,
        expected: String,
        found: String,
    },
    /// Discovery: the metadata's `issuer` is not the issuer asked for (RFC 8414 §3.3).
    #[error("metadata at {endpoint} names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        endpoint: String,
        expected: String,
        found: String,
    },
}

impl OAuthError {
    /// The OAuth error code, for a [`OAuthError::Server`] error.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Self::Server { code, .. } => Some(code),
            _ => None,
        }
    }

    /// `true` for an `invalid_grant` answer: the code or refresh token is dead; only a new
    /// sign-in helps.
    pub fn is_invalid_grant(&self) -> bool {
        self.code() == Some(&ErrorCode::InvalidGrant)
    }
}

#[cfg(test)]
mod json_reason_tests {
    use super::json_reason;

    #[test]
    fn a_value_in_the_answer_is_never_quoted() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            access_token: String,
        }
        for body in [
            &br#""REFRESH-ECHO-RTSECRET""#[..],
            br#"{"access_token": 123456789}"#,
            br#"{"access_token": "SECRET"#,
            b"<html>SECRET</html>",
        ] {
            let e = serde_json::from_slice::<T>(body).unwrap_err();
            let r = json_reason(&e);
            assert!(!r.contains("SECRET") && !r.contains("123456789"), "{r}");
        }
        let e = serde_json::from_slice::<T>(b"{}").unwrap_err();
        assert_eq!(
            json_reason(&e),
            "missing field `access_token` at line 1 column 2"
        );
    }
}
