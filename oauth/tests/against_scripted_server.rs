//! The token, device and discovery clients against a scripted HTTP server (real sockets, real
//! HTTP), including the bad answers of issue 15.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_oauth::device::{self, DeviceAuthorization, Sleeper};
use codex_oauth::discovery::discover;
use codex_oauth::{ErrorCode, HttpClient, OAuthError, SecretString, TokenClient};
use serde_json::json;
use suite_test_support::scripted_http::{Reply, ScriptedServer};

fn recording_sleeper() -> (Arc<Mutex<Vec<Duration>>>, Box<Sleeper>) {
    let log: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let l = log.clone();
    let sleeper: Box<Sleeper> = Box::new(move |d| {
        l.lock().unwrap().push(d);
        Box::pin(tokio::time::sleep(Duration::from_millis(1)))
    });
    (log, sleeper)
}

fn device_ok() -> Reply {
    Reply::Json(
        200,
        json!({"device_code": "DEV-SECRET", "user_code": "ABCD-EFGH",
               "verification_uri": "https://issuer.example/device", "expires_in": 600, "interval": 2}),
    )
}

fn tokens() -> Reply {
    Reply::Json(
        200,
        json!({"access_token": "AT-NEW", "refresh_token": "RT-NEW", "token_type": "Bearer", "expires_in": 3600}),
    )
}

fn pending() -> Reply {
    Reply::Json(400, json!({"error": "authorization_pending"}))
}

async fn authorize(srv: &ScriptedServer) -> Result<DeviceAuthorization, OAuthError> {
    let http = HttpClient::new(false).unwrap();
    device::request_device_authorization(
        &http,
        &format!("{}/device", srv.url()),
        "cid",
        Some("openid"),
        &[],
    )
    .await
}

async fn poll(
    srv: &ScriptedServer,
    auth: &DeviceAuthorization,
    sleeper: &Sleeper,
) -> Result<codex_oauth::TokenResponse, OAuthError> {
    let token = TokenClient::new(&format!("{}/token", srv.url())).unwrap();
    device::poll_for_token(&token, "cid", auth, &[], sleeper).await
}

#[tokio::test]
async fn device_flow_pending_slow_down_then_tokens() {
    let srv = ScriptedServer::start(vec![
        ("/device", vec![device_ok()]),
        (
            "/token",
            vec![
                pending(),
                Reply::Json(400, json!({"error": "slow_down"})),
                pending(),
                tokens(),
            ],
        ),
    ])
    .unwrap();
    let auth = authorize(&srv).await.unwrap();
    assert_eq!(auth.user_code, "ABCD-EFGH");
    assert_eq!(auth.interval, Duration::from_secs(2));
    assert_eq!(auth.expires_in, Duration::from_secs(600));
    assert!(!format!("{auth:?}").contains("DEV-SECRET"));
    let (log, sleeper) = recording_sleeper();
    let t = poll(&srv, &auth, &*sleeper).await.unwrap();
    assert_eq!(t.access_token.expose_secret(), "AT-NEW");
    // 2 s, 2 s, then slow_down: 7 s, 7 s.
    let secs: Vec<u64> = log.lock().unwrap().iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [2, 2, 7, 7]);
    let polls = srv.requests_to("/token");
    assert_eq!(polls.len(), 4);
    let f = polls[0].form();
    assert_eq!(f["grant_type"], device::DEVICE_CODE_GRANT);
    assert_eq!(f["device_code"], "DEV-SECRET");
    assert_eq!(f["client_id"], "cid");
    assert_eq!(srv.requests_to("/device")[0].form()["scope"], "openid");
}

#[tokio::test]
async fn device_flow_denied_expired_unknown_html_and_drop() {
    let (_log, sleeper) = recording_sleeper();
    type Check = fn(&OAuthError) -> bool;
    let cases: Vec<(Vec<Reply>, Check)> = vec![
        (
            vec![
                pending(),
                Reply::Json(400, json!({"error": "access_denied"})),
            ],
            |e| matches!(e, OAuthError::AccessDenied { .. }),
        ),
        (
            vec![Reply::Json(400, json!({"error": "expired_token"}))],
            |e| matches!(e, OAuthError::Expired { secs: 600 }),
        ),
        (
            vec![Reply::Json(
                400,
                json!({"error": "server_on_fire", "error_description": "try later"}),
            )],
            |e| {
                e.code() == Some(&ErrorCode::Other("server_on_fire".into()))
                    && e.to_string().contains("server_on_fire: try later")
            },
        ),
        (
            vec![
                pending(),
                Reply::html(200, "<html><body>Sign in</body></html>"),
            ],
            |e| matches!(e, OAuthError::Body { reason, .. } if reason.contains("html")),
        ),
        (
            vec![pending(), Reply::html(503, "<html>maintenance</html>")],
            |e| matches!(e, OAuthError::Status { status: 503, .. }),
        ),
        (vec![pending(), Reply::Drop], |e| {
            matches!(e, OAuthError::Transport { .. })
        }),
    ];
    for (i, (replies, check)) in cases.into_iter().enumerate() {
        let srv = ScriptedServer::start(vec![("/device", vec![device_ok()]), ("/token", replies)])
            .unwrap();
        let auth = authorize(&srv).await.unwrap();
        let e = poll(&srv, &auth, &*sleeper).await.unwrap_err();
        assert!(check(&e), "case {i}: {e:?}");
        assert!(!e.to_string().contains("DEV-SECRET"), "case {i}: {e}");
    }
}

#[tokio::test]
async fn device_flow_gives_up_at_the_expiry() {
    let srv = ScriptedServer::start(vec![
        (
            "/device",
            vec![Reply::Json(
                200,
                json!({"device_code": "D", "user_code": "U", "verification_uri": "https://i.example/d",
                       "expires_in": 10, "interval": "3"}),
            )],
        ),
        ("/token", vec![pending()]),
    ])
    .unwrap();
    let auth = authorize(&srv).await.unwrap();
    let (log, sleeper) = recording_sleeper();
    let e = poll(&srv, &auth, &*sleeper).await.unwrap_err();
    assert!(matches!(e, OAuthError::Expired { secs: 10 }), "{e}");
    assert!(e.to_string().contains("start the sign-in again"), "{e}");
    // 3 + 3 + 3 = 9 s; a fourth wait would pass 10 s.
    assert_eq!(log.lock().unwrap().len(), 3);
    assert_eq!(srv.requests_to("/token").len(), 3);
}

#[tokio::test]
async fn bad_device_authorization_answers() {
    let base = json!({"device_code": "D", "user_code": "U", "verification_uri": "https://i.example/d", "expires_in": 600});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(Reply, &str)> = vec![
        (Reply::Json(200, without("user_code")), "missing user_code"),
        (
            Reply::Json(200, without("device_code")),
            "missing device_code",
        ),
        (
            Reply::Json(200, with("user_code", json!("AB\u{1b}[2JCD"))),
            "control characters",
        ),
        (Reply::Json(200, with("interval", json!(86_400))), "absurd"),
        (Reply::Json(200, with("interval", json!(-1))), "negative"),
        (
            Reply::Json(200, with("expires_in", json!(-30))),
            "not in the future",
        ),
        (
            Reply::Json(200, with("expires_in", json!(0))),
            "not in the future",
        ),
        (
            Reply::Json(
                200,
                with("verification_uri", json!("http://evil.example/d")),
            ),
            "verification_uri",
        ),
        (
            Reply::Json(400, json!({"error": "unknown_thing"})),
            "unknown_thing",
        ),
        (
            Reply::Json(
                400,
                json!({"error": "invalid_client", "error_description": "no such client"}),
            ),
            "invalid_client: no such client",
        ),
        (Reply::html(200, "<html>login page</html>"), "html"),
        (
            Reply::Raw {
                status: 200,
                content_type: "application/json".into(),
                body: "{not json".into(),
            },
            "not a device authorization answer",
        ),
    ];
    for (reply, want) in cases {
        let srv = ScriptedServer::start(vec![("/device", vec![reply.clone()])]).unwrap();
        let e = authorize(&srv).await.unwrap_err();
        assert!(e.to_string().contains(want), "{reply:?}: {e}");
    }
    // Interval 0: the RFC default of 5 s; an absurd expiry is capped.
    let srv = ScriptedServer::start(vec![(
        "/device",
        vec![Reply::Json(200, with("interval", json!(0)))],
    )])
    .unwrap();
    assert_eq!(
        authorize(&srv).await.unwrap().interval,
        device::DEFAULT_INTERVAL
    );
    let srv = ScriptedServer::start(vec![(
        "/device",
        vec![Reply::Json(200, with("expires_in", json!(999_999_999)))],
    )])
    .unwrap();
    assert_eq!(
        authorize(&srv).await.unwrap().expires_in,
        device::MAX_EXPIRES_IN
    );
}

#[tokio::test]
async fn refresh_adopts_rotation_and_keeps_the_old_token_otherwise() {
    let srv = ScriptedServer::start(vec![(
        "/token",
        vec![
            tokens(),
            Reply::Json(200, json!({"access_token": "AT-2"})),
            Reply::Json(400, json!({"error": "invalid_grant", "error_description": "refresh token already used"})),
            Reply::Json(200, json!({"access_token": "AT-3", "id_token": "not-a-jwt"})),
        ],
    )])
    .unwrap();
    let client = TokenClient::new(&format!("{}/token", srv.url())).unwrap();
    let old = SecretString::new("RT-OLD".to_string());
    let r = client
        .refresh("cid", &old, Some("openid"), &[])
        .await
        .unwrap();
    assert_eq!(r.refresh_token.unwrap().expose_secret(), "RT-NEW");
    assert!(r.refresh_rotated);
    let r = client.refresh("cid", &old, None, &[]).await.unwrap();
    assert_eq!(r.refresh_token.unwrap().expose_secret(), "RT-OLD");
    assert!(!r.refresh_rotated);
    let e = client.refresh("cid", &old, None, &[]).await.unwrap_err();
    assert!(e.is_invalid_grant(), "{e}");
    assert!(!e.to_string().contains("RT-OLD"));
    // The id token is opaque to this crate: the ChatGPT layer checks it is a JWT.
    let r = client.refresh("cid", &old, None, &[]).await.unwrap();
    assert_eq!(r.id_token.unwrap().expose_secret(), "not-a-jwt");
    let reqs = srv.requests_to("/token");
    let f = reqs[0].form();
    assert_eq!(f["grant_type"], "refresh_token");
    assert_eq!(f["refresh_token"], "RT-OLD");
    assert_eq!(f["scope"], "openid");
    assert!(!reqs[1].form().contains_key("scope"));
}

#[tokio::test]
async fn code_exchange_sends_the_verifier() {
    let srv = ScriptedServer::start(vec![("/token", vec![tokens()])]).unwrap();
    let client = TokenClient::new(&format!("{}/token", srv.url())).unwrap();
    let pkce = codex_oauth::pkce::generate_pkce();
    let r = client
        .exchange_code(
            "cid",
            "http://127.0.0.1:1/cb",
            "CODE",
            &pkce.verifier,
            &[("resource", "https://mcp.example")],
        )
        .await
        .unwrap();
    assert_eq!(r.expires_in, Some(3600));
    let f = srv.requests_to("/token")[0].form();
    assert_eq!(f["grant_type"], "authorization_code");
    assert_eq!(f["code_verifier"], pkce.verifier.expose_secret());
    assert_eq!(f["resource"], "https://mcp.example");
}

#[tokio::test]
async fn discovery_rfc8414_oidc_none_and_mismatch() {
    let srv = ScriptedServer::start(vec![]).unwrap();
    let issuer = srv.url();
    let http = HttpClient::new(false).unwrap();
    // Neither document: None.
    assert_eq!(discover(&http, &issuer).await.unwrap(), None);
    // OIDC only.
    srv.set(
        "/.well-known/openid-configuration",
        vec![Reply::Json(
            200,
            json!({"issuer": issuer, "token_endpoint": format!("{issuer}/token"),
            "device_authorization_endpoint": format!("{issuer}/device")}),
        )],
    );
    let m = discover(&http, &issuer).await.unwrap().unwrap();
    assert_eq!(
        m.device_authorization_endpoint.unwrap(),
        format!("{issuer}/device")
    );
    // RFC 8414 wins when present.
    srv.set(
        "/.well-known/oauth-authorization-server",
        vec![Reply::Json(
            200,
            json!({"issuer": issuer, "token_endpoint": format!("{issuer}/t2")}),
        )],
    );
    let m = discover(&http, &issuer).await.unwrap().unwrap();
    assert_eq!(m.token_endpoint.unwrap(), format!("{issuer}/t2"));
    assert_eq!(m.device_authorization_endpoint, None);
    // Someone else's metadata.
    srv.set(
        "/.well-known/oauth-authorization-server",
        vec![Reply::Json(200, json!({"issuer": "https://evil.example"}))],
    );
    let e = discover(&http, &issuer).await.unwrap_err();
    assert!(matches!(e, OAuthError::IssuerMismatch { .. }), "{e}");
    // A cleartext endpoint off loopback.
    srv.set(
        "/.well-known/oauth-authorization-server",
        vec![Reply::Json(
            200,
            json!({"issuer": issuer, "token_endpoint": "http://evil.example/token"}),
        )],
    );
    let e = discover(&http, &issuer).await.unwrap_err();
    assert!(e.to_string().contains("token_endpoint"), "{e}");
    // HTML.
    srv.set(
        "/.well-known/oauth-authorization-server",
        vec![Reply::html(200, "<html></html>")],
    );
    let e = discover(&http, &issuer).await.unwrap_err();
    assert!(matches!(e, OAuthError::Body { .. }), "{e}");
}

#[tokio::test]
async fn https_client_refuses_plain_http_off_loopback_and_http_client_refuses_https() {
    let http = HttpClient::new(false).unwrap();
    let e = http.get("https://127.0.0.1:1/x").await.unwrap_err();
    assert!(matches!(e, OAuthError::Endpoint { .. }), "{e}");
    let e = http.get("http://192.0.2.1/x").await.unwrap_err();
    assert!(matches!(e, OAuthError::Endpoint { .. }), "{e}");
}
