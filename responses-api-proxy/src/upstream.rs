//! The upstream side: one pooled hyper client, rustls with the system roots (or `SSL_CERT_FILE`
//! / `SSL_CERT_DIR` when set: rustls-native-certs reads those instead of the system store),
//! HTTP/2 when the server offers it by ALPN, `TCP_NODELAY` on every upstream connection.

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use http::uri::{Authority, Scheme};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::upstream_owner::{OwnerCheckedConnector, UpstreamOwner};

/// Setting up the upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("invalid --upstream-url {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("no usable root certificates: {detail}")]
    NoRoots { detail: String },
    #[error("failed to configure TLS: {source}")]
    Tls { source: rustls::Error },
}

/// Where requests go: scheme, authority (also the rewritten `Host`) and path.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    /// Path (and query, if the URL has one) of `--upstream-url`.
    pub path_and_query: String,
    /// The URL's path without its final `/responses`: an allowed extra path `/v1/X` goes to
    /// `scheme://authority` + `base_path` + `/X`.
    pub base_path: String,
    /// The whole `--upstream-url`, where `POST /v1/responses` goes (built once).
    pub responses_uri: Uri,
}

/// `url` for an error message, with any `user:password@` replaced: a refused URL's
/// credentials must not reach stderr or the journal.
fn without_userinfo(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}[REDACTED]{}", &url[..start], &url[start + at..]),
        None => url.to_string(),
    }
}

/// `127.0.0.0/8`, `::1` or `localhost` (which resolves to one of them; the owner check then
/// applies to whichever address the connection reached).
fn host_is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Upstream {
    /// Parses `--upstream-url`: `http` or `https`, an authority, no user info.
    pub fn parse(url: &str) -> Result<Self, UpstreamError> {
        let bad = |reason: &str| UpstreamError::Url {
            url: without_userinfo(url),
            reason: reason.to_string(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| bad("missing scheme"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(bad("scheme must be http or https"));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| bad("missing host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user info is not allowed in the URL"));
        }
        if scheme == Scheme::HTTP && !host_is_loopback(authority.host()) {
            return Err(bad(
                "plain http is only allowed to a loopback host (127.0.0.0/8, [::1], localhost): \
                 the key would cross the network in clear text",
            ));
        }
        let path_and_query = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".to_string());
        let path = uri.path();
        let base_path = path
            .strip_suffix("/responses")
            .unwrap_or(path)
            .trim_end_matches('/')
            .to_string();
        Ok(Self {
            scheme,
            authority,
            path_and_query,
            base_path,
            responses_uri: uri,
        })
    }

    /// The upstream URI for an admitted client path: `/v1/responses` maps to `--upstream-url`;
    /// another allowed path `/v1/X` maps to the URL's base + `/X`.
    pub fn uri_for(&self, client_path: &str) -> Result<Uri, http::Error> {
        if client_path == "/v1/responses" {
            return Ok(self.responses_uri.clone());
        }
        let rest = client_path.strip_prefix("/v1").unwrap_or(client_path);
        let path = format!("{}{}", self.base_path, rest);
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
    }
}

// Governance: the body is the client's, streamed, or the checked one, buffered.
pub type UpstreamClient =
    Client<HttpsConnector<OwnerCheckedConnector>, crate::governed::UpstreamBody>;

/// Builds the pooled client. Roots: `SSL_CERT_FILE`/`SSL_CERT_DIR` if set, else the system store.
/// `owner`: who must own a plain-http upstream's socket (checked on every new connection).
pub fn build_client(owner: Arc<UpstreamOwner>) -> Result<UpstreamClient, UpstreamError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let detail = if loaded.errors.is_empty() {
            "the system certificate store is empty (set SSL_CERT_FILE)".to_string()
        } else {
            loaded
                .errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(UpstreamError::NoRoots { detail });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| UpstreamError::Tls { source })?
        .with_root_certificates(roots)
        .with_no_client_auth();

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(30)));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(OwnerCheckedConnector::new(http, owner));
    Ok(Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        // Copy a request's head and body chunk into one buffer and send it with one write
        // instead of a writev of several slices: measured ~3 % more throughput with small bodies
        // (README, Benchmark); the copy is cheap next to the network.
        .http1_writev(false)
        .build(https))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_urls() {
        let u = Upstream::parse("https://api.openai.com/v1/responses").unwrap();
        assert_eq!(u.authority.as_str(), "api.openai.com");
        assert_eq!(
            u.uri_for("/v1/responses").unwrap().to_string(),
            "https://api.openai.com/v1/responses"
        );
        assert_eq!(
            u.uri_for("/v1/responses/compact").unwrap().to_string(),
            "https://api.openai.com/v1/responses/compact"
        );
        let m = Upstream::parse("http://127.0.0.1:9/mock/v1/responses").unwrap();
        assert_eq!(m.authority.as_str(), "127.0.0.1:9");
        assert_eq!(
            m.uri_for("/v1/models").unwrap().to_string(),
            "http://127.0.0.1:9/mock/v1/models"
        );
        assert!(Upstream::parse("ftp://x/y").is_err());
        let err = Upstream::parse("https://user:pw-secret@x/y")
            .unwrap_err()
            .to_string();
        assert!(err.contains("user info is not allowed"), "{err}");
        assert!(err.contains("https://[REDACTED]@x/y"), "{err}");
        assert!(
            !err.contains("pw-secret") && !err.contains("user:"),
            "{err}"
        );
        assert!(Upstream::parse("/relative").is_err());
    }
}
