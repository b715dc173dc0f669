//! [`HttpClient`]: the one HTTP(S) client of every OAuth request.
//!
//! Trust roots: the OS store via rustls-native-certs, which reads `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` instead when they are set. Loaded only when the client may speak https; a client
//! made with `tls = false` refuses every `https://` URL. Every URL is checked with
//! [`crate::validate_endpoint`] before a connection is made.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use zeroize::Zeroizing;

use crate::OAuthError;

/// Upper bound for one request, connect to last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read.
pub const MAX_BODY: usize = 1 << 20;

/// One answer: status, content type, body (zeroized on drop: it may hold tokens).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Zeroizing<Vec<u8>>,
    /// The `WWW-Authenticate` header (RFC 9110 §11.6.1), when present and printable; RFC 9728
    /// puts a protected resource's metadata URL there.
    pub www_authenticate: Option<String>,
}

impl Answer {
    /// `true` if the content type says JSON (`application/json`, `application/*+json`) or is
    /// absent.
    pub fn is_json(&self) -> bool {
        match &self.content_type {
            None => true,
            Some(ct) => {
                let main = ct.split(';').next().unwrap_or("").trim();
                main.eq_ignore_ascii_case("application/json")
                    || (main.len() > 5 && main[main.len() - 5..].eq_ignore_ascii_case("+json"))
            }
        }
    }

    /// A short printable description of a body that is not what was expected, for errors (the
    /// content type and the size; never the body itself).
    pub fn describe(&self) -> String {
        let ct = self
            .content_type
            .as_deref()
            .map(|c| crate::error::clean(c, 60))
            .unwrap_or_else(|| "no content type".to_string());
        let looks_html = self
            .body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b'<');
        format!(
            "{}{}, {} bytes",
            if looks_html { "html, " } else { "" },
            ct,
            self.body.len()
        )
    }
}

/// The TCP connector: on Linux a plain-http (loopback) endpoint must be served by this user
/// or root (outside review r37 F1: another local user listening on `127.0.0.1:P` of a
/// loopback issuer received the code and the PKCE verifier, relayed them and kept the tokens);
/// elsewhere who serves a loopback port cannot be asked (docs/security.md).
#[cfg(target_os = "linux")]
type Tcp = codex_privsep::owner_check::OwnerCheckedConnector;
#[cfg(not(target_os = "linux"))]
type Tcp = HttpConnector;

#[cfg(target_os = "linux")]
fn tcp_connector(http: HttpConnector) -> Tcp {
    use codex_privsep::owner_check::{ExpectedOwner, OwnerCheckedConnector};
    // Without sock_diag every plain-http request is refused (the owner cannot be checked);
    // https is not affected.
    let owner = ExpectedOwner::current_user("plain-http OAuth endpoint", "your uid")
        .unwrap_or_else(|_| ExpectedOwner::new(u32::MAX, "plain-http OAuth endpoint", "your uid"))
        .root_too();
    OwnerCheckedConnector::new(http, Arc::new(owner))
}

#[cfg(not(target_os = "linux"))]
fn tcp_connector(http: HttpConnector) -> Tcp {
    http
}

/// An HTTP(S) client for OAuth endpoints. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<Tcp>, Full<Bytes>>,
    tls: bool,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("tls", &self.tls)
            .finish()
    }
}

impl HttpClient {
    /// A client; `tls` loads the trust roots and allows `https://` URLs (loopback `http://` is
    /// always allowed).
    pub fn new(tls: bool) -> Result<Self, OAuthError> {
        let config = if tls {
            tls_client_config()?
        } else {
            config_with_roots(rustls::RootCertStore::empty())?
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp_connector(http));
        // No idle pool: a connection (and its task) ends with its answer.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Ok(Self {
            client,
            tls,
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// A client able to reach `url` (TLS when it is `https://`).
    pub fn for_url(url: &str) -> Result<Self, OAuthError> {
        let parsed = crate::validate_endpoint(url)?;
        Self::new(parsed.scheme() == "https")
    }

    /// The same client with another per-request timeout (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `POST url` with a form body (`application/x-www-form-urlencoded`).
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Result<Answer, OAuthError> {
        let body = {
            // Not `Sync`: must not live across the await below.
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in form {
                ser.append_pair(k, v);
            }
            Zeroizing::new(ser.finish().into_bytes())
        };
        self.send(
            http::Method::POST,
            url,
            Some(("application/x-www-form-urlencoded", body)),
        )
        .await
    }

    /// `POST url` with a JSON body.
    pub async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<Answer, OAuthError> {
        let bytes = Zeroizing::new(serde_json::to_vec(body).map_err(|e| OAuthError::Body {
            endpoint: url.to_string(),
            reason: format!("cannot encode the request: {e}"),
        })?);
        self.send(http::Method::POST, url, Some(("application/json", bytes)))
            .await
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<Answer, OAuthError> {
        self.send(http::Method::GET, url, None).await
    }

    /// `POST url` with a JSON body and extra headers, reading the status and headers only (the
    /// body, which may be an event stream that does not end, is dropped unread). For probing a
    /// protected resource: its 401 carries `WWW-Authenticate`.
    pub async fn probe_post_json(
        &self,
        url: &str,
        headers: &[(&'static str, &'static str)],
        body: &serde_json::Value,
    ) -> Result<Answer, OAuthError> {
        let bytes = Zeroizing::new(serde_json::to_vec(body).map_err(|e| OAuthError::Body {
            endpoint: url.to_string(),
            reason: format!("cannot encode the request: {e}"),
        })?);
        self.send_full(
            http::Method::POST,
            url,
            Some(("application/json", bytes)),
            headers,
            true,
        )
        .await
    }

    async fn send(
        &self,
        method: http::Method,
        url: &str,
        body: Option<(&'static str, Zeroizing<Vec<u8>>)>,
    ) -> Result<Answer, OAuthError> {
        self.send_full(method, url, body, &[], false).await
    }

    async fn send_full(
        &self,
        method: http::Method,
        url: &str,
        body: Option<(&'static str, Zeroizing<Vec<u8>>)>,
        headers: &[(&'static str, &'static str)],
        head_only: bool,
    ) -> Result<Answer, OAuthError> {
        let parsed = crate::validate_endpoint(url)?;
        if parsed.scheme() == "https" && !self.tls {
            return Err(OAuthError::Endpoint {
                url: url.to_string(),
                reason: "this client was made for loopback http:// only".to_string(),
            });
        }
        let endpoint = endpoint_name(&parsed);
        match tokio::time::timeout(
            self.timeout,
            self.send_inner(method, &parsed, body, headers, head_only),
        )
        .await
        {
            Ok(r) => r.map_err(|reason| OAuthError::Transport { endpoint, reason }),
            Err(_) => Err(OAuthError::Timeout {
                endpoint,
                secs: self.timeout.as_secs(),
            }),
        }
    }

    async fn send_inner(
        &self,
        method: http::Method,
        url: &url::Url,
        body: Option<(&'static str, Zeroizing<Vec<u8>>)>,
        headers: &[(&'static str, &'static str)],
        head_only: bool,
    ) -> Result<Answer, String> {
        let accept = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("accept"))
            .map_or("application/json", |(_, v)| *v);
        let mut req = http::Request::builder()
            .method(method)
            .uri(url.as_str())
            .header(http::header::ACCEPT, accept)
            .header(
                http::header::USER_AGENT,
                concat!("codex-oauth/", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("accept"))
        {
            req = req.header(*k, *v);
        }
        let payload = match body {
            Some((ct, bytes)) => {
                req = req.header(http::header::CONTENT_TYPE, ct);
                // The copy inside hyper's buffer is freed unzeroed; bounded by the request's
                // lifetime (documented in the README).
                Bytes::copy_from_slice(&bytes)
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(payload)).map_err(|e| e.to_string())?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| error_chain(&e))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let www_authenticate = www_authenticate(resp.headers());
        if head_only {
            // The body (maybe an endless event stream) is not read: dropping it closes the
            // connection.
            return Ok(Answer {
                status,
                content_type,
                body: Zeroizing::new(Vec::new()),
                www_authenticate,
            });
        }
        let collected = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        let body = Zeroizing::new(collected.to_bytes().to_vec());
        Ok(Answer {
            status,
            content_type,
            body,
            www_authenticate,
        })
    }
}

/// The `WWW-Authenticate` values joined with `, ` (a server may send several); non-ASCII or
/// longer than 8 KiB: ignored.
fn www_authenticate(headers: &http::HeaderMap) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let joined = values.join(", ");
    (!joined.is_empty() && joined.len() <= 8192).then_some(joined)
}

/// The rustls client configuration of every HTTPS request of the suite's OAuth and MCP clients:
/// ring, safe default protocol versions, the OS trust store (or `SSL_CERT_FILE` /
/// `SSL_CERT_DIR`); an empty store is an error.
pub fn tls_client_config() -> Result<rustls::ClientConfig, OAuthError> {
    let mut roots = rustls::RootCertStore::empty();
    let loaded = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let why = loaded
            .errors
            .first()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "the trust store is empty".to_string());
        return Err(OAuthError::Roots(std::io::Error::other(why)));
    }
    config_with_roots(roots)
}

fn config_with_roots(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, OAuthError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| OAuthError::Roots(std::io::Error::other(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// `scheme://host[:port]/path`: the URL without its query (a query could carry a secret).
pub(crate) fn endpoint_name(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(ct: Option<&str>, body: &[u8]) -> Answer {
        Answer {
            status: 200,
            content_type: ct.map(str::to_string),
            body: Zeroizing::new(body.to_vec()),
            www_authenticate: None,
        }
    }

    #[test]
    fn json_content_types() {
        assert!(answer(None, b"{}").is_json());
        assert!(answer(Some("application/json; charset=utf-8"), b"{}").is_json());
        assert!(answer(Some("application/problem+json"), b"{}").is_json());
        assert!(!answer(Some("text/html"), b"<html>").is_json());
        let d = answer(Some("text/html"), b"  <html>secret</html>").describe();
        assert_eq!(d, "html, text/html, 21 bytes");
    }
}
