//! Device-code login against the mock issuer (both flows, a scripted approver) and against a
//! scripted server for the bad answers of issue 15.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_login::device::{complete_device_login, request_device_code};
use codex_login::{Issuer, LoginError, OAuthError};
use codex_oauth::device::Sleeper;
use serde_json::json;
use suite_test_support::oauth_mock::MockIssuer;
use suite_test_support::scripted_http::{Reply, ScriptedServer};

fn fast_sleeper() -> (Arc<Mutex<Vec<Duration>>>, Box<Sleeper>) {
    let log: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let l = log.clone();
    let sleeper: Box<Sleeper> = Box::new(move |d| {
        l.lock().unwrap().push(d);
        Box::pin(tokio::time::sleep(Duration::from_millis(5)))
    });
    (log, sleeper)
}

/// Approve (or deny) the first pending user code as soon as it appears, after `polls` polls.
fn approver(mock: &MockIssuer, approve: bool, code: String) {
    for _ in 0..2000 {
        if mock.device_polls(&code) >= 2 {
            if approve {
                assert!(mock.approve_device(&code));
            } else {
                assert!(mock.deny_device(&code));
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the client never polled for {code}");
}

async fn run_against_mock(
    rfc8628: bool,
    approve: bool,
) -> Result<codex_login::TokenSet, LoginError> {
    let mock = Arc::new(MockIssuer::start().unwrap());
    mock.set_advertise_device(rfc8628);
    let issuer = Issuer::parse(&mock.url()).unwrap();
    let code = request_device_code(&issuer, mock.client_id())
        .await
        .unwrap();
    assert_eq!(code.rfc8628, rfc8628);
    assert_eq!(mock.pending_user_codes(), vec![code.user_code.clone()]);
    if rfc8628 {
        assert_eq!(code.verification_url, format!("{}/device", mock.url()));
    } else {
        assert_eq!(
            code.verification_url,
            format!("{}/codex/device", mock.url())
        );
        assert_eq!(code.interval, Duration::from_secs(1));
    }
    let (_log, sleeper) = fast_sleeper();
    let m = mock.clone();
    let uc = code.user_code.clone();
    let t = std::thread::spawn(move || approver(&m, approve, uc));
    let result = complete_device_login(code, &*sleeper).await;
    t.join().unwrap();
    if let Ok(tokens) = &result {
        let issued = mock.issued();
        assert_eq!(issued.len(), 1);
        assert_eq!(tokens.access_token.expose_secret(), issued[0].access_token);
        assert_eq!(
            tokens.refresh_token.expose_secret(),
            issued[0].refresh_token
        );
        assert_eq!(tokens.claims.email.as_deref(), Some("user@example.com"));
        let reqs = mock.token_requests();
        let last = reqs.last().unwrap();
        if rfc8628 {
            assert_eq!(last["grant_type"], codex_oauth::device::DEVICE_CODE_GRANT);
        } else {
            assert_eq!(last["grant_type"], "authorization_code");
            assert_eq!(
                last["redirect_uri"],
                format!("{}/deviceauth/callback", mock.url())
            );
        }
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_flow_with_a_scripted_approver() {
    run_against_mock(false, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8628_flow_when_the_issuer_advertises_it() {
    run_against_mock(true, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusal_is_access_denied_in_both_flows() {
    for rfc in [false, true] {
        let e = run_against_mock(rfc, false).await.unwrap_err();
        assert!(
            matches!(e, LoginError::OAuth(OAuthError::AccessDenied { .. })),
            "rfc8628={rfc}: {e}"
        );
    }
}

fn usercode(v: serde_json::Value) -> Reply {
    Reply::Json(200, v)
}

fn good_usercode() -> Reply {
    usercode(json!({"device_auth_id": "DAID-SECRET", "user_code": "BCDF-GHJK", "interval": "2"}))
}

async fn codex_against(srv: &ScriptedServer) -> Result<codex_login::TokenSet, LoginError> {
    let issuer = Issuer::parse(&srv.url()).unwrap();
    let code = request_device_code(&issuer, "cid").await?;
    let (_log, sleeper) = fast_sleeper();
    complete_device_login(code, &*sleeper).await
}

const UC: &str = "/api/accounts/deviceauth/usercode";
const TOKEN: &str = "/api/accounts/deviceauth/token";

#[tokio::test]
async fn codex_flow_bad_user_code_answers() {
    let cases: Vec<(Reply, &str)> = vec![
        (
            Reply::Json(404, json!({"detail": "Not Found"})),
            "device code login is not enabled",
        ),
        (
            Reply::Json(400, json!({"error": "mystery_error"})),
            "mystery_error",
        ),
        (
            usercode(json!({"device_auth_id": "D", "interval": "5"})),
            "missing user_code",
        ),
        (
            usercode(json!({"user_code": "U"})),
            "missing device_auth_id",
        ),
        (
            usercode(json!({"device_auth_id": "D", "user_code": "U", "interval": "99999"})),
            "absurd",
        ),
        (
            usercode(json!({"device_auth_id": "D", "user_code": "U", "interval": "soon"})),
            "interval",
        ),
        (Reply::html(200, "<html>sign in</html>"), "html"),
    ];
    for (reply, want) in cases {
        let srv = ScriptedServer::start(vec![(UC, vec![reply.clone()])]).unwrap();
        let e = codex_against(&srv).await.unwrap_err();
        assert!(e.to_string().contains(want), "{reply:?}: {e}");
        assert!(srv.requests_to(TOKEN).is_empty());
    }
    // Interval "0" is the RFC default of 5 s, not a busy loop.
    let srv = ScriptedServer::start(vec![(
        UC,
        vec![usercode(
            json!({"device_auth_id": "D", "user_code": "U", "interval": "0"}),
        )],
    )])
    .unwrap();
    let code = request_device_code(&Issuer::parse(&srv.url()).unwrap(), "cid")
        .await
        .unwrap();
    assert_eq!(code.interval, Duration::from_secs(5));
}

#[tokio::test]
async fn codex_flow_bad_poll_answers_and_network_drop() {
    let pending = Reply::Json(403, json!({"error": "pending"}));
    let cases: Vec<(Reply, &str)> = vec![
        (Reply::html(200, "<html>oops</html>"), "html"),
        (Reply::html(500, "<html>error</html>"), "http 500"),
        (
            Reply::Json(400, json!({"error": "weird_failure"})),
            "weird_failure",
        ),
        (Reply::Drop, "request to"),
        (
            Reply::Json(
                200,
                json!({"authorization_code": "C", "code_challenge": "nope", "code_verifier": "v"}),
            ),
            "code_verifier does not match",
        ),
    ];
    for (reply, want) in cases {
        let srv = ScriptedServer::start(vec![
            (UC, vec![good_usercode()]),
            (TOKEN, vec![pending.clone(), reply.clone()]),
        ])
        .unwrap();
        let e = codex_against(&srv).await.unwrap_err();
        assert!(e.to_string().contains(want), "{reply:?}: {e}");
        assert!(!e.to_string().contains("DAID-SECRET"), "{e}");
        assert_eq!(srv.requests_to(TOKEN).len(), 2, "{reply:?}");
        assert!(srv.requests_to("/oauth/token").is_empty());
        // The poll carries the device id and the user code, as openai/codex sends them.
        let body: serde_json::Value =
            serde_json::from_str(&srv.requests_to(TOKEN)[0].body).unwrap();
        assert_eq!(
            body,
            json!({"device_auth_id": "DAID-SECRET", "user_code": "BCDF-GHJK"})
        );
    }
}

#[tokio::test]
async fn codex_flow_expires_after_15_minutes_of_pending() {
    let srv = ScriptedServer::start(vec![
        (
            UC,
            vec![usercode(
                json!({"device_auth_id": "D", "user_code": "U", "interval": "60"}),
            )],
        ),
        (TOKEN, vec![Reply::Json(404, json!({}))]),
    ])
    .unwrap();
    let issuer = Issuer::parse(&srv.url()).unwrap();
    let code = request_device_code(&issuer, "cid").await.unwrap();
    let (log, sleeper) = fast_sleeper();
    let e = complete_device_login(code, &*sleeper).await.unwrap_err();
    assert!(
        matches!(e, LoginError::OAuth(OAuthError::Expired { secs: 900 })),
        "{e}"
    );
    assert_eq!(log.lock().unwrap().len(), 15);
}

#[tokio::test]
async fn rfc8628_expiry_in_the_past_and_discovery_network_failure() {
    let srv = ScriptedServer::start(vec![]).unwrap();
    let url = srv.url();
    srv.set(
        "/.well-known/openid-configuration",
        vec![Reply::Json(
            200,
            json!({"issuer": url, "token_endpoint": format!("{url}/t"),
            "device_authorization_endpoint": format!("{url}/dev")}),
        )],
    );
    srv.set(
        "/dev",
        vec![Reply::Json(
            200,
            json!({"device_code": "D", "user_code": "U",
            "verification_uri": format!("{url}/v"), "expires_in": -1}),
        )],
    );
    let e = codex_against(&srv).await.unwrap_err();
    assert!(e.to_string().contains("not in the future"), "{e}");
    // The codex flow was not tried.
    assert!(srv.requests_to(UC).is_empty());
    // Discovery that cannot connect ends the login (no silent fallback).
    let srv2 = ScriptedServer::start(vec![(
        "/.well-known/oauth-authorization-server",
        vec![Reply::Drop],
    )])
    .unwrap();
    let e = codex_against(&srv2).await.unwrap_err();
    assert!(
        matches!(e, LoginError::OAuth(OAuthError::Transport { .. })),
        "{e}"
    );
    assert!(srv2.requests_to(UC).is_empty());
}

#[tokio::test]
async fn a_verification_uri_with_terminal_escapes_is_refused_not_printed() {
    // outside review r7 F1: the URL passed the endpoint check and its escape sequences reached
    // the victim's terminal (screen clear, window title, OSC 52 clipboard)
    for (uri_tail, refused) in [
        ("/dev\u{1b}[2J\u{1b}]0;pwned\u{7}ice", true),
        ("/a\r\n\n  FAKE LINE", true),
        ("/x\u{202e}", true),
        ("/device", false),
    ] {
        let srv = ScriptedServer::start(vec![]).unwrap();
        let url = srv.url();
        srv.set(
            "/.well-known/openid-configuration",
            vec![Reply::Json(
                200,
                json!({"issuer": url, "token_endpoint": format!("{url}/t"),
                "device_authorization_endpoint": format!("{url}/dev")}),
            )],
        );
        srv.set(
            "/dev",
            vec![Reply::Json(
                200,
                json!({"device_code": "D", "user_code": "U",
                "verification_uri": format!("{url}{uri_tail}"), "expires_in": 600, "interval": 5}),
            )],
        );
        let issuer = Issuer::parse(&url).unwrap();
        let got = request_device_code(&issuer, "cid").await;
        match (refused, got) {
            (true, Err(e)) => assert!(e.to_string().contains("verification_uri"), "{e}"),
            (false, Ok(code)) => assert_eq!(code.verification_url, format!("{url}/device")),
            (r, g) => panic!(
                "{uri_tail:?}: refused {r}, got {:?}",
                g.map(|c| c.verification_url)
            ),
        }
    }
}
