//! Issue 14's bad discovery documents, each against a scripted server over real sockets, with a
//! valid set as the control: protected resource metadata (RFC 9728) and authorization server
//! metadata (RFC 8414) that are not JSON, lack required fields, point to `http:` endpoints of a
//! remote host, or name a resource or issuer other than the one they were fetched for.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use codex_mcp::config::{Transport, parse_servers};
use codex_mcp::oauth::{self, Discovery, McpAuthError};
use codex_oauth::OAuthError;
use serde_json::{Value, json};
use suite_test_support::scripted_http::{Reply, ScriptedServer};

const PRM: &str = "/.well-known/oauth-protected-resource/mcp";
const ASM: &str = "/.well-known/oauth-authorization-server";

fn good_prm(base: &str) -> Value {
    json!({"resource": format!("{base}/mcp"), "authorization_servers": [base]})
}

fn good_asm(base: &str) -> Value {
    json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "registration_endpoint": format!("{base}/register"),
        "code_challenge_methods_supported": ["S256"],
    })
}

async fn discover_with(
    prm: impl Fn(&str) -> Reply,
    asm: impl Fn(&str) -> Reply,
) -> Result<Discovery, McpAuthError> {
    let srv = ScriptedServer::start(vec![]).unwrap();
    let base = srv.url();
    srv.set(
        "/mcp",
        vec![Reply::Json(401, json!({"error": "invalid_token"}))],
    );
    srv.set(PRM, vec![prm(&base)]);
    srv.set(ASM, vec![asm(&base)]);
    let text = format!("[mcp_servers.x]\nurl = \"{base}/mcp\"\n");
    let servers = parse_servers(Path::new("config.toml"), &text, false).unwrap();
    let Transport::Http(h) = &servers[0].transport else {
        panic!()
    };
    let http = oauth::http_client(&h.url, Duration::from_secs(5)).unwrap();
    let r = oauth::discover(&http, h).await;
    drop(srv);
    r
}

fn json_reply(v: Value) -> Reply {
    Reply::Json(200, v)
}

#[tokio::test]
async fn the_control_discovers_the_authorization_server() {
    let d = discover_with(|b| json_reply(good_prm(b)), |b| json_reply(good_asm(b)))
        .await
        .unwrap();
    let Discovery::OAuth(t) = d else {
        panic!("{d:?}")
    };
    assert!(t.resource.ends_with("/mcp"));
    assert!(t.metadata.token_endpoint.unwrap().ends_with("/token"));
}

fn assert_body(r: Result<Discovery, McpAuthError>, needle: &str) {
    match r {
        Err(McpAuthError::OAuth(e @ OAuthError::Body { .. })) => {
            assert!(e.to_string().contains(needle), "{e}")
        }
        other => panic!("expected a body error with {needle:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn resource_metadata_that_is_not_json() {
    assert_body(
        discover_with(
            |_| Reply::html(200, "<html>login</html>"),
            |b| json_reply(good_asm(b)),
        )
        .await,
        "expected json",
    );
    assert_body(
        discover_with(
            |_| Reply::Raw {
                status: 200,
                content_type: "application/json".into(),
                body: "{not json".into(),
            },
            |b| json_reply(good_asm(b)),
        )
        .await,
        "not protected resource metadata",
    );
}

#[tokio::test]
async fn resource_metadata_missing_fields() {
    assert_body(
        discover_with(
            |b| json_reply(json!({"authorization_servers": [b]})),
            |b| json_reply(good_asm(b)),
        )
        .await,
        "resource",
    );
    assert_body(
        discover_with(
            |b| json_reply(json!({"resource": format!("{b}/mcp")})),
            |b| json_reply(good_asm(b)),
        )
        .await,
        "authorization_servers",
    );
}

#[tokio::test]
async fn resource_metadata_for_another_resource() {
    let r = discover_with(
        |_| json_reply(json!({"resource": "https://other.example/mcp", "authorization_servers": ["https://as.example"]})),
        |b| json_reply(good_asm(b)),
    )
    .await;
    assert!(
        matches!(
            r,
            Err(McpAuthError::OAuth(OAuthError::ResourceMismatch { .. }))
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn resource_metadata_pointing_to_cleartext_remote_servers() {
    assert_body(
        discover_with(
            |b| json_reply(json!({"resource": format!("{b}/mcp"), "authorization_servers": ["http://as.example.com"]})),
            |b| json_reply(good_asm(b)),
        )
        .await,
        "http:// is accepted only for a loopback host",
    );
}

#[tokio::test]
async fn authorization_server_metadata_that_is_not_json_or_names_another_issuer() {
    assert_body(
        discover_with(
            |b| json_reply(good_prm(b)),
            |_| Reply::html(200, "<html>hi</html>"),
        )
        .await,
        "expected json",
    );
    let r = discover_with(
        |b| json_reply(good_prm(b)),
        |b| {
            let mut m = good_asm(b);
            m["issuer"] = json!("https://evil.example");
            json_reply(m)
        },
    )
    .await;
    assert!(
        matches!(
            r,
            Err(McpAuthError::OAuth(OAuthError::IssuerMismatch { .. }))
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn authorization_server_metadata_with_cleartext_remote_endpoints() {
    for field in [
        "token_endpoint",
        "authorization_endpoint",
        "registration_endpoint",
        "revocation_endpoint",
    ] {
        assert_body(
            discover_with(
                |b| json_reply(good_prm(b)),
                |b| {
                    let mut m = good_asm(b);
                    m[field] = json!("http://as.example.com/x");
                    json_reply(m)
                },
            )
            .await,
            field,
        );
    }
}

#[tokio::test]
async fn authorization_server_metadata_missing_fields() {
    for (field, needle) in [
        ("token_endpoint", "no token_endpoint"),
        ("authorization_endpoint", "no authorization_endpoint"),
        (
            "code_challenge_methods_supported",
            "PKCE support is not advertised",
        ),
    ] {
        let r = discover_with(
            |b| json_reply(good_prm(b)),
            |b| {
                let mut m = good_asm(b);
                m.as_object_mut().unwrap().remove(field);
                json_reply(m)
            },
        )
        .await;
        match r {
            Err(e @ McpAuthError::Metadata { .. }) => {
                assert!(e.to_string().contains(needle), "{e}")
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    let r = discover_with(
        |b| json_reply(good_prm(b)),
        |b| {
            let mut m = good_asm(b);
            m["code_challenge_methods_supported"] = json!(["plain"]);
            json_reply(m)
        },
    )
    .await;
    assert!(
        matches!(&r, Err(e @ McpAuthError::Metadata { .. }) if e.to_string().contains("S256")),
        "{r:?}"
    );
    // no issuer at all in the document
    assert_body(
        discover_with(
            |b| json_reply(good_prm(b)),
            |b| {
                let mut m = good_asm(b);
                m.as_object_mut().unwrap().remove("issuer");
                json_reply(m)
            },
        )
        .await,
        "issuer",
    );
}

#[tokio::test]
async fn a_server_answering_neither_success_nor_401() {
    let srv = ScriptedServer::start(vec![(
        "/mcp",
        vec![Reply::html(502, "<html>bad gateway</html>")],
    )])
    .unwrap();
    let text = format!("[mcp_servers.x]\nurl = \"{}/mcp\"\n", srv.url());
    let servers = parse_servers(Path::new("c"), &text, false).unwrap();
    let Transport::Http(h) = &servers[0].transport else {
        panic!()
    };
    let http = oauth::http_client(&h.url, Duration::from_secs(5)).unwrap();
    let r = oauth::discover(&http, h).await;
    assert!(
        matches!(
            r,
            Err(McpAuthError::OAuth(OAuthError::Status { status: 502, .. }))
        ),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_challenge_naming_metadata_on_another_origin_is_refused() {
    // the resource_metadata parameter could make the client fetch anything
    let c = codex_oauth::resource::parse_bearer_challenge(
        r#"Bearer resource_metadata="http://127.0.0.2:9/.well-known/oauth-protected-resource""#,
    )
    .unwrap();
    let http = codex_oauth::HttpClient::new(false).unwrap();
    let e = codex_oauth::resource::discover(&http, "http://127.0.0.1:9/mcp", Some(&c))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("not on the resource's origin"),
        "{e}"
    );
}
