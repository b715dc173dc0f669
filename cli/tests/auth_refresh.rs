//! The auth manager across real `codex` processes: expired ChatGPT access tokens refreshed once
//! for two processes at the same moment (the mock issuer really rotates refresh tokens: an old one
//! is rejected after use), `invalid_grant`, a refresh answer without a refresh token, a malformed
//! ID token, and `codex login status` for a ChatGPT sign-in.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use codex_auth::{AuthDotJson, AuthStore, StoreMode, TokenData};
use common::{codex, home};
use suite_test_support::oauth_mock::MockIssuer;
use suite_test_support::responses_mock::{MockResponse, MockUpstream, sse_text_response};

/// Sign in at the mock (authorization code + PKCE, as the browser login does) and store the
/// tokens in `home`. The access token expires `ttl` seconds from now (negative: already expired).
fn signed_in(mock: &MockIssuer, home: &Path, ttl: i64) {
    mock.set_access_ttl(ttl);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pkce = codex_login::pkce::generate_pkce();
    let redirect = "http://localhost:1455/auth/callback";
    let code = mock.mint_code(&pkce.challenge, redirect);
    let client =
        codex_login::TokenClient::new(&codex_login::Issuer::parse(&mock.url()).unwrap()).unwrap();
    let t = rt
        .block_on(client.exchange_code(mock.client_id(), redirect, &code, &pkce.verifier))
        .unwrap();
    let auth = AuthDotJson {
        openai_api_key: None,
        tokens: Some(TokenData {
            id_token: t.id_token,
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            account_id: t.claims.account_id,
        }),
        last_refresh: Some("2026-01-01T00:00:00Z".to_string()),
    };
    let _ = AuthStore::new(home.to_path_buf(), StoreMode::File)
        .save(&auth)
        .unwrap();
    mock.set_access_ttl(3600);
}

fn stored(home: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(home.join("auth.json")).unwrap()).unwrap()
}

fn exec_cmd(home: &Path, issuer: &str, api: &str) -> std::process::Command {
    let mut c = codex(home);
    c.args([
        "-c",
        &format!("auth.issuer={issuer}"),
        "-c",
        &format!("model_providers.mock.base_url={api}"),
        "-c",
        "model_providers.mock.chatgpt_auth=true",
        "-c",
        "model_provider=mock",
        "exec",
        "hello",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn api() -> MockUpstream {
    let api = MockUpstream::start().unwrap();
    api.set_default(MockResponse::SseBurst {
        frames: sse_text_response("r1", "hi"),
    });
    api
}

#[test]
fn two_processes_whose_token_expired_at_once_both_work_and_keep_the_newest_refresh_token() {
    let h = home();
    let mock = MockIssuer::start().unwrap();
    signed_in(&mock, &h.path, -60);
    let first_refresh = stored(&h.path)["tokens"]["refresh_token"].clone();
    // Slow refresh answers, so the second process arrives while the first is refreshing.
    mock.set_token_delay(Duration::from_millis(500));
    let api = api();
    let t0 = std::time::Instant::now();
    let a = exec_cmd(&h.path, &mock.url(), &api.base_url())
        .spawn()
        .unwrap();
    let b = exec_cmd(&h.path, &mock.url(), &api.base_url())
        .spawn()
        .unwrap();
    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    eprintln!(
        "two processes, one refresh (issuer answer delayed 500 ms): both done in {:?}",
        t0.elapsed()
    );
    assert_eq!(oa.status.code(), Some(0), "{}", text(&oa));
    assert_eq!(ob.status.code(), Some(0), "{}", text(&ob));
    // One refresh at the issuer; the other process adopted its result.
    assert_eq!(mock.refresh_grants(), 1);
    let s = stored(&h.path);
    let newest = mock.newest_refresh_token().unwrap();
    assert_eq!(s["tokens"]["refresh_token"], newest.as_str());
    assert_ne!(s["tokens"]["refresh_token"], first_refresh);
    let issued = mock.issued();
    let fresh_access = &issued.last().unwrap().access_token;
    assert_eq!(s["tokens"]["access_token"], fresh_access.as_str());
    let reqs = api.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(
            r.header("authorization").unwrap(),
            format!("Bearer {fresh_access}")
        );
    }
    // The first refresh token is dead at the issuer (rotation is real).
    let form: Vec<_> = mock
        .token_requests()
        .into_iter()
        .filter(|f| f.get("grant_type").map(String::as_str) == Some("refresh_token"))
        .collect();
    assert_eq!(form.len(), 1);
    for o in [&oa, &ob] {
        let all = text(o);
        assert!(
            !all.contains(fresh_access.as_str()) && !all.contains(newest.as_str()),
            "{all}"
        );
    }
    // A third process uses the stored tokens from memory without refreshing.
    let oc = exec_cmd(&h.path, &mock.url(), &api.base_url())
        .output()
        .unwrap();
    assert_eq!(oc.status.code(), Some(0), "{}", text(&oc));
    assert_eq!(mock.refresh_grants(), 1);
}

#[test]
fn invalid_grant_says_sign_in_again_and_leaves_the_store_untouched() {
    let h = home();
    let mock = MockIssuer::start().unwrap();
    signed_in(&mock, &h.path, -60);
    // Someone else used (and so killed) the stored refresh token.
    let rt = stored(&h.path)["tokens"]["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let rt_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = codex_oauth::TokenClient::new(&format!("{}/oauth/token", mock.url())).unwrap();
    rt_runtime
        .block_on(client.refresh(
            mock.client_id(),
            &codex_oauth::SecretString::new(rt),
            None,
            &[],
        ))
        .unwrap();
    let before = std::fs::read(h.path.join("auth.json")).unwrap();
    let api = api();
    let o = exec_cmd(&h.path, &mock.url(), &api.base_url())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(21), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("your ChatGPT sign-in is no longer valid"), "{e}");
    assert!(e.contains("invalid_grant"), "{e}");
    assert!(e.contains("sign in again with `codex login`"), "{e}");
    assert_eq!(std::fs::read(h.path.join("auth.json")).unwrap(), before);
    assert!(
        api.requests().is_empty(),
        "no API request with a dead token"
    );
}

#[test]
fn a_refresh_answer_without_a_refresh_token_keeps_the_old_one() {
    let h = home();
    let mock = MockIssuer::start().unwrap();
    signed_in(&mock, &h.path, -60);
    mock.set_rotate_refresh(false);
    let before = stored(&h.path);
    let api = api();
    let o = exec_cmd(&h.path, &mock.url(), &api.base_url())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let after = stored(&h.path);
    assert_eq!(
        after["tokens"]["refresh_token"],
        before["tokens"]["refresh_token"]
    );
    assert_ne!(
        after["tokens"]["access_token"],
        before["tokens"]["access_token"]
    );
    assert_eq!(mock.refresh_grants(), 1);
}

#[test]
fn a_malformed_id_token_in_the_refresh_answer_fails_and_stores_nothing() {
    let h = home();
    let mock = MockIssuer::start().unwrap();
    signed_in(&mock, &h.path, -60);
    mock.set_refresh_id_token(Some("this-is-not-a-jwt"));
    let before = std::fs::read(h.path.join("auth.json")).unwrap();
    let api = api();
    let o = exec_cmd(&h.path, &mock.url(), &api.base_url())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(21), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("refreshing the ChatGPT tokens failed: invalid id token"),
        "{e}"
    );
    assert_eq!(std::fs::read(h.path.join("auth.json")).unwrap(), before);
    assert!(api.requests().is_empty());
}

#[test]
fn login_status_shows_email_plan_and_expiry_never_a_token() {
    let h = home();
    let mock = MockIssuer::start().unwrap();
    signed_in(&mock, &h.path, 3600);
    let o = codex(&h.path).args(["login", "status"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("Logged in using ChatGPT as user@example.com (plan: plus), account acct_mock_123, access token expires at 20"),
        "{out}"
    );
    let s = stored(&h.path);
    for k in ["access_token", "refresh_token", "id_token"] {
        assert!(
            !text(&o).contains(s["tokens"][k].as_str().unwrap()),
            "{k} printed"
        );
    }
}
