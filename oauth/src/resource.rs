//! RFC 9728 OAuth 2.0 Protected Resource Metadata: where a resource server (an MCP server) says
//! which authorization servers issue its tokens.
//!
//! The metadata URL comes from the `resource_metadata` parameter of the server's
//! `WWW-Authenticate: Bearer` challenge (§5.1), else from the well-known URL (§3.1): the
//! `/.well-known/oauth-protected-resource` segment inserted before the resource's path, then (as
//! MCP clients do) at the origin's root. The document's `resource` must be the resource asked for
//! (§3.3: else it speaks for someone else; compared without a trailing `/`), it must name at least
//! one authorization server, and every URL in it passes [`crate::validate_endpoint`].

use serde::Deserialize;

use crate::OAuthError;
use crate::http_client::HttpClient;
use crate::token::error_from_answer;

/// The metadata fields used. Unknown fields are ignored.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ResourceMetadata {
    pub resource: String,
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    #[serde(default)]
    pub scopes_supported: Option<Vec<String>>,
    #[serde(default)]
    pub bearer_methods_supported: Option<Vec<String>>,
}

/// A parsed `WWW-Authenticate: Bearer ...` challenge (RFC 6750 §3, RFC 9728 §5.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    pub resource_metadata: Option<String>,
    pub scope: Option<String>,
    pub error: Option<String>,
}

/// The `Bearer` challenge in a `WWW-Authenticate` value, `None` when there is none. Parameters
/// are `name=token` or `name="quoted string"` (backslash escapes), comma-separated; a challenge
/// of another scheme ends the Bearer parameters.
pub fn parse_bearer_challenge(header: &str) -> Option<BearerChallenge> {
    let lower = header.to_ascii_lowercase();
    let mut start = None;
    let mut search = 0;
    while let Some(i) = lower[search..].find("bearer") {
        let at = search + i;
        let before_ok = at == 0 || matches!(lower.as_bytes()[at - 1], b' ' | b',');
        let after = lower.as_bytes().get(at + 6).copied();
        if before_ok && matches!(after, None | Some(b' ') | Some(b',')) {
            start = Some(at + 6);
            break;
        }
        search = at + 6;
    }
    let mut rest = &header[start?..];
    let mut out = BearerChallenge::default();
    loop {
        rest = rest.trim_start_matches([' ', ',', '\t']);
        let Some(eq) = rest.find('=') else { break };
        let name = rest[..eq].trim();
        if name.is_empty() || name.contains(' ') {
            break; // the next challenge's scheme
        }
        let after = &rest[eq + 1..];
        let (value, remaining) = if let Some(q) = after.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            (v, &q[end.min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        match name.to_ascii_lowercase().as_str() {
            "resource_metadata" => out.resource_metadata = Some(value),
            "scope" => out.scope = Some(value),
            "error" => out.error = Some(value),
            _ => {}
        }
        rest = remaining;
    }
    Some(out)
}

/// The well-known metadata URLs for `resource`, in the order tried.
pub fn well_known_urls(resource: &url::Url) -> Vec<String> {
    let origin = resource.origin().ascii_serialization();
    let path = resource.path().trim_end_matches('/');
    let mut v = Vec::new();
    if !path.is_empty() {
        v.push(format!(
            "{origin}/.well-known/oauth-protected-resource{path}"
        ));
    }
    v.push(format!("{origin}/.well-known/oauth-protected-resource"));
    v
}

fn same_resource(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// Fetch and check the metadata at `metadata_url` for `resource`. `Ok(None)` on 404/410.
pub async fn fetch(
    http: &HttpClient,
    metadata_url: &str,
    resource: &str,
) -> Result<Option<ResourceMetadata>, OAuthError> {
    crate::validate_endpoint(metadata_url)?;
    let answer = http.get(metadata_url).await?;
    if answer.status == 404 || answer.status == 410 {
        return Ok(None);
    }
    if !(200..300).contains(&answer.status) {
        return Err(error_from_answer(metadata_url, &answer));
    }
    let bad = |reason: String| OAuthError::Body {
        endpoint: metadata_url.to_string(),
        reason,
    };
    if !answer.is_json() {
        return Err(bad(format!("expected json, got {}", answer.describe())));
    }
    let meta: ResourceMetadata = serde_json::from_slice(&answer.body).map_err(|e| {
        bad(format!(
            "not protected resource metadata: {}",
            crate::error::json_reason(&e)
        ))
    })?;
    if !same_resource(&meta.resource, resource) {
        return Err(OAuthError::ResourceMismatch {
            endpoint: metadata_url.to_string(),
            expected: resource.to_string(),
            found: crate::error::clean(&meta.resource, 200),
        });
    }
    if meta.authorization_servers.is_empty() {
        return Err(bad("authorization_servers is missing or empty".to_string()));
    }
    for s in &meta.authorization_servers {
        crate::validate_endpoint(s).map_err(|e| bad(format!("authorization_servers: {e}")))?;
    }
    Ok(Some(meta))
}

/// Discover the metadata of `resource`: the challenge's URL when given (which must then answer),
/// else the well-known URLs. `Ok(None)`: no metadata anywhere.
pub async fn discover(
    http: &HttpClient,
    resource: &str,
    challenge: Option<&BearerChallenge>,
) -> Result<Option<ResourceMetadata>, OAuthError> {
    let parsed = crate::validate_endpoint(resource)?;
    if let Some(url) = challenge.and_then(|c| c.resource_metadata.as_deref()) {
        // A URL on another origin could make us fetch anything: it must be the resource's own.
        let u = crate::validate_endpoint(url)?;
        if u.origin() != parsed.origin() {
            return Err(OAuthError::Endpoint {
                url: url.chars().take(200).collect(),
                reason: "resource_metadata is not on the resource's origin".to_string(),
            });
        }
        return match fetch(http, url, resource).await? {
            Some(m) => Ok(Some(m)),
            None => Err(OAuthError::Status {
                endpoint: url.to_string(),
                status: 404,
                detail: "the resource_metadata named by WWW-Authenticate does not exist"
                    .to_string(),
            }),
        };
    }
    for url in well_known_urls(&parsed) {
        if let Some(m) = fetch(http, &url, resource).await? {
            return Ok(Some(m));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_bearer_challenge(
            r#"Bearer realm="mcp", resource_metadata="https://h/.well-known/oauth-protected-resource/mcp", scope="a b""#,
        )
        .unwrap();
        assert_eq!(
            c.resource_metadata.as_deref(),
            Some("https://h/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(c.scope.as_deref(), Some("a b"));
        let c =
            parse_bearer_challenge(r#"Basic realm="x", Bearer error=invalid_token, scope="s\"q""#)
                .unwrap();
        assert_eq!(c.error.as_deref(), Some("invalid_token"));
        assert_eq!(c.scope.as_deref(), Some("s\"q"));
        assert_eq!(
            parse_bearer_challenge("Bearer").unwrap(),
            BearerChallenge::default()
        );
        assert!(parse_bearer_challenge(r#"Basic realm="bearer""#).is_none());
        assert!(parse_bearer_challenge("Bearerx a=b").is_none());
    }

    #[test]
    fn well_known_placement() {
        let u = url::Url::parse("https://h.example/mcp/").unwrap();
        assert_eq!(
            well_known_urls(&u),
            [
                "https://h.example/.well-known/oauth-protected-resource/mcp",
                "https://h.example/.well-known/oauth-protected-resource"
            ]
        );
        let u = url::Url::parse("https://h.example").unwrap();
        assert_eq!(
            well_known_urls(&u),
            ["https://h.example/.well-known/oauth-protected-resource"]
        );
    }
}
