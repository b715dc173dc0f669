//! The URL rule for every OAuth endpoint: `https://` with a host, or `http://` on a loopback host
//! (`localhost`, `127.0.0.0/8`, `[::1]`) so that tests can run a mock without a certificate. A
//! non-loopback `http://` endpoint is refused: codes, verifiers and tokens would cross the network
//! in clear text. User info (`user:pw@`) and fragments are refused everywhere.

use std::net::IpAddr;

use url::Url;

use crate::OAuthError;

/// `true` when `url`'s host is `localhost` or a loopback address.
pub fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Parse and check `url` against the rule in the module docs.
pub fn validate_endpoint(url: &str) -> Result<Url, OAuthError> {
    let refused = |reason: &'static str| OAuthError::Endpoint {
        url: url.chars().take(200).collect(),
        reason: reason.to_string(),
    };
    let parsed = Url::parse(url).map_err(|e| OAuthError::Endpoint {
        url: url.chars().take(200).collect(),
        reason: e.to_string(),
    })?;
    if parsed.fragment().is_some() {
        return Err(refused("an endpoint has no fragment"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(refused("an endpoint has no user name or password"));
    }
    match parsed.scheme() {
        "https" if parsed.host_str().is_some_and(|h| !h.is_empty()) => Ok(parsed),
        "https" => Err(refused("no host")),
        "http" if is_loopback_url(&parsed) => Ok(parsed),
        "http" => Err(refused(
            "http:// is accepted only for a loopback host (tests); use https://",
        )),
        _ => Err(refused("the scheme must be https")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        for ok in [
            "https://auth.openai.com/oauth/token",
            "http://127.0.0.1:8080/x",
            "http://127.9.9.9/",
            "http://[::1]:1/",
            "http://LOCALHOST:1/",
        ] {
            assert!(validate_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://auth.openai.com/token",
            "http://10.0.0.1/",
            "http://127.0.0.1.evil.example/",
            "http://localhost.evil.example/",
            "ftp://127.0.0.1/",
            "https://user:pw@auth.openai.com/",
            "https://auth.openai.com/#frag",
            "not a url",
            "file:///etc/passwd",
        ] {
            let e = validate_endpoint(bad).unwrap_err();
            assert!(matches!(e, OAuthError::Endpoint { .. }), "{bad}: {e}");
        }
    }
}
