//! The issuer (authorization server) and the authorize URL.
//!
//! The issuer must be `https://`, except on a loopback host where `http://` is accepted so that
//! tests can run a mock issuer without a certificate. A non-loopback `http://` issuer is refused:
//! the authorization code and the PKCE verifier would cross the network in clear text.

use url::Url;

use crate::error::LoginError;

/// OpenAI's issuer, the default.
pub const DEFAULT_ISSUER: &str = "https://auth.openai.com";
/// The codex CLI's public OAuth client id, the default.
pub const DEFAULT_CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
/// Scopes requested, as openai/codex does.
pub const SCOPES: &str = "openid profile email offline_access";
/// The `originator` parameter openai/codex sends.
pub const ORIGINATOR: &str = "codex_cli_rs";

/// A validated issuer base URL (no trailing slash, no query, no fragment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    base: String,
}

impl Issuer {
    /// Validate `url` (see the module docs for the rules).
    pub fn parse(url: &str) -> Result<Self, LoginError> {
        let parsed = Url::parse(url).map_err(|source| LoginError::IssuerUrl {
            url: url.to_string(),
            source,
        })?;
        let refused = |reason| LoginError::IssuerRefused {
            url: url.to_string(),
            reason,
        };
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(refused("an issuer has no query or fragment"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(refused("an issuer has no user name or password"));
        }
        match parsed.scheme() {
            "https" => {
                if parsed.host_str().is_none_or(str::is_empty) {
                    return Err(refused("no host"));
                }
            }
            "http" => {
                if !is_loopback_host(&parsed) {
                    return Err(refused(
                        "http:// is accepted only for a loopback host (tests); use https://",
                    ));
                }
            }
            _ => return Err(refused("the scheme must be https")),
        }
        let base = parsed.as_str().trim_end_matches('/').to_string();
        Ok(Self { base })
    }

    /// The issuer URL, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// `<issuer>/oauth/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth/token", self.base)
    }

    /// `true` for an `https://` issuer.
    pub fn is_https(&self) -> bool {
        self.base.starts_with("https://")
    }
}

fn is_loopback_host(url: &Url) -> bool {
    codex_oauth::is_loopback_url(url)
}

/// Check a client id: 1-200 characters from `[A-Za-z0-9._-]`.
pub fn validate_client_id(id: &str) -> Result<(), LoginError> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(LoginError::ClientId(id.to_string()))
    }
}

/// `<issuer>/oauth/authorize?...` with the parameters openai/codex sends.
pub fn authorize_url(
    issuer: &Issuer,
    client_id: &str,
    redirect_uri: &str,
    code_challenge: &str,
    state: &str,
) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", SCOPES)
        .append_pair("code_challenge", code_challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("id_token_add_organizations", "true")
        .append_pair("codex_cli_simplified_flow", "true")
        .append_pair("state", state)
        .append_pair("originator", ORIGINATOR)
        .finish();
    format!("{}/oauth/authorize?{query}", issuer.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        assert_eq!(
            Issuer::parse("https://auth.openai.com/").unwrap().as_str(),
            DEFAULT_ISSUER
        );
        assert!(Issuer::parse("http://127.0.0.1:8080").is_ok());
        assert!(Issuer::parse("http://[::1]:8080").is_ok());
        assert!(Issuer::parse("http://localhost:1").is_ok());
        for bad in [
            "http://auth.openai.com",
            "http://10.0.0.1",
            "http://127.0.0.1.evil.example",
            "ftp://127.0.0.1",
            "https://auth.openai.com/?x=1",
            "https://user:pw@auth.openai.com",
        ] {
            let err = Issuer::parse(bad).unwrap_err();
            assert!(
                matches!(err, LoginError::IssuerRefused { .. }),
                "{bad}: {err}"
            );
        }
        assert!(matches!(
            Issuer::parse("not a url").unwrap_err(),
            LoginError::IssuerUrl { .. }
        ));
    }

    #[test]
    fn client_id_charset() {
        assert!(validate_client_id(DEFAULT_CLIENT_ID).is_ok());
        assert!(validate_client_id("").is_err());
        assert!(validate_client_id("a&redirect_uri=x").is_err());
    }

    #[test]
    fn authorize_url_has_codex_parameters() {
        let issuer = Issuer::parse("https://auth.openai.com").unwrap();
        let url = authorize_url(
            &issuer,
            "cid",
            "http://localhost:1455/auth/callback",
            "CH",
            "ST",
        );
        let parsed = Url::parse(&url).unwrap();
        assert_eq!(parsed.path(), "/oauth/authorize");
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "cid");
        assert_eq!(q["redirect_uri"], "http://localhost:1455/auth/callback");
        assert_eq!(q["scope"], SCOPES);
        assert_eq!(q["code_challenge"], "CH");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], "ST");
        assert_eq!(q["id_token_add_organizations"], "true");
        assert_eq!(q["codex_cli_simplified_flow"], "true");
    }
}
