//! The login server against the mock issuer and the scripted browser.
// Test code: a failed unwrap is a failed test (clippy.toml allows it in #[test] fns only).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use codex_login::{
    Issuer, LoginError, LoginOptions, LoginOutcome, PortChoice, TokenSet, pkce, start,
};
use suite_test_support::oauth_mock::{self, MockIssuer};

type Stored = Arc<Mutex<Vec<TokenSet>>>;

fn opts(mock: &MockIssuer, timeout: Option<Duration>) -> LoginOptions {
    LoginOptions {
        issuer: Issuer::parse(&mock.url()).unwrap(),
        client_id: mock.client_id().to_string(),
        port: PortChoice::Preferred(0),
        timeout,
    }
}

async fn start_recording(o: LoginOptions) -> (codex_login::LoginServer, Stored) {
    let stored: Stored = Arc::default();
    let s = stored.clone();
    let server = start(o, move |t| async move {
        s.lock().unwrap().push(t);
        Ok(())
    })
    .await
    .unwrap();
    (server, stored)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn port_closed(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_stores_the_issued_tokens_and_closes_everything() {
    let mock = MockIssuer::start().unwrap();
    let (server, stored) = start_recording(opts(&mock, Some(Duration::from_secs(3600)))).await;
    let url = server.auth_url().to_string();
    let port = server.port();
    assert!(
        url.starts_with(&format!("{}/oauth/authorize?", mock.url())),
        "{url}"
    );
    assert_eq!(
        oauth_mock::query_param(&url, "redirect_uri").unwrap(),
        format!("http://localhost:{port}/auth/callback")
    );
    let seen = blocking(move || oauth_mock::browse(&url).unwrap()).await;
    assert_eq!(seen.authorize.status, 302);
    let cb = seen.callback.unwrap();
    assert_eq!(cb.status, 200, "{}", cb.body);
    assert!(
        cb.body.contains("Signed in as user@example.com"),
        "{}",
        cb.body
    );
    assert_eq!(cb.header("cache-control"), Some("no-store"));
    assert_eq!(cb.header("referrer-policy"), Some("no-referrer"));

    let outcome = server.wait().await;
    let LoginOutcome::Success(claims) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(claims.email.as_deref(), Some("user@example.com"));
    assert_eq!(claims.account_id.as_deref(), Some("acct_mock_123"));
    assert_eq!(claims.plan.as_deref(), Some("plus"));

    let issued = mock.issued();
    assert_eq!(issued.len(), 1);
    {
        let stored = stored.lock().unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(
            stored[0].access_token.expose_secret(),
            issued[0].access_token
        );
        assert_eq!(
            stored[0].refresh_token.expose_secret(),
            issued[0].refresh_token
        );
        assert_eq!(stored[0].id_token.expose_secret(), issued[0].id_token);
        assert!(
            !format!("{:?}", stored[0]).contains(&issued[0].access_token),
            "Debug leaks a token"
        );
    }

    // PKCE: the verifier sent to the token endpoint hashes to the challenge in the URL.
    let reqs = mock.token_requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["grant_type"], "authorization_code");
    assert_eq!(
        reqs[0]["redirect_uri"],
        format!("http://localhost:{port}/auth/callback")
    );

    // Nothing outlives the login: the port is closed, no task of ours is alive (the 1-hour timer
    // was a sleep inside the serve loop, dropped with it).
    assert!(port_closed(port));
    let metrics = tokio::runtime::Handle::current().metrics();
    let deadline = Instant::now() + Duration::from_secs(5);
    while metrics.num_alive_tasks() != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metrics.num_alive_tasks(), 0, "tasks outlived the login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_state_is_refused_and_the_login_keeps_waiting() {
    let mock = MockIssuer::start().unwrap();
    let (server, stored) = start_recording(opts(&mock, Some(Duration::from_secs(120)))).await;
    let url = server.auth_url().to_string();
    let (callback_url, code, state) =
        blocking(move || oauth_mock::authorize_only(&url).unwrap()).await;
    let port = server.port();

    // Attack: the right code with a forged state (login CSRF), and with no state.
    let forged = format!("http://localhost:{port}/auth/callback?code={code}&state=forged-{state}");
    let nostate = format!("http://localhost:{port}/auth/callback?code={code}");
    let a = blocking(move || oauth_mock::http_get(&forged, None).unwrap()).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("State mismatch"));
    let b = blocking(move || oauth_mock::http_get(&nostate, None).unwrap()).await;
    assert_eq!(b.status, 400);
    assert!(
        mock.token_requests().is_empty(),
        "a forged state reached the token endpoint"
    );
    assert!(stored.lock().unwrap().is_empty());

    // Control: the genuine callback still completes the same login.
    let ok = blocking(move || oauth_mock::http_get(&callback_url, None).unwrap()).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(server.wait().await.is_success());
    assert_eq!(stored.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_code_with_another_verifier_fails_the_login() {
    let mock = MockIssuer::start().unwrap();
    let (server, stored) = start_recording(opts(&mock, Some(Duration::from_secs(120)))).await;
    let port = server.port();
    let state = oauth_mock::query_param(server.auth_url(), "state").unwrap();
    let redirect = format!("http://localhost:{port}/auth/callback");
    // Attack: a code minted for the attacker's own PKCE pair, delivered with our state.
    let attacker = pkce::generate_pkce();
    let code = mock.mint_code(&attacker.challenge, &redirect);
    let cb = format!("{redirect}?code={code}&state={state}");
    let answer = blocking(move || oauth_mock::http_get(&cb, None).unwrap()).await;
    assert_eq!(answer.status, 502, "{}", answer.body);
    let outcome = server.wait().await;
    let LoginOutcome::Failed(reason) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        reason.contains("invalid_grant: pkce verification failed"),
        "{reason}"
    );
    assert!(stored.lock().unwrap().is_empty());
    assert!(mock.issued().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_loopback_host_is_forbidden_other_paths_are_404() {
    let mock = MockIssuer::start().unwrap();
    let (server, _stored) = start_recording(opts(&mock, Some(Duration::from_secs(120)))).await;
    let url = server.auth_url().to_string();
    let (callback_url, _, _) = blocking(move || oauth_mock::authorize_only(&url).unwrap()).await;
    let port = server.port();
    // DNS rebinding: an attacker page's request carries the attacker's host name.
    let cb = callback_url.clone();
    let host = format!("attacker.example:{port}");
    let rebound = blocking(move || oauth_mock::http_get(&cb, Some(&host)).unwrap()).await;
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    let cb = callback_url.clone();
    let other = blocking(move || oauth_mock::http_get(&cb, Some("localhost:1")).unwrap()).await;
    assert_eq!(other.status, 403, "wrong port in Host");
    let favicon = format!("http://127.0.0.1:{port}/favicon.ico");
    let local404 = blocking(move || oauth_mock::http_get(&favicon, None).unwrap()).await;
    assert_eq!(local404.status, 404);
    // refusals close their connection (r37 F2: a page's requests kept idle connections of the
    // user's own uid, which may push out the browser's)
    for r in [&rebound, &other, &local404] {
        assert_eq!(r.header("connection"), Some("close"), "{}", r.status);
    }
    // (asked to keep it alive, as a browser does, the server still closes it)
    let closed = blocking(move || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        write!(
            c,
            "GET /favicon.ico HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        )
        .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match c.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => break false,
            }
        }
    })
    .await;
    assert!(closed, "a keep-alive connection stayed open after a 404");
    assert!(mock.token_requests().is_empty());
    // Control: the same callback with our own Host completes the login.
    let ok = blocking(move || oauth_mock::http_get(&callback_url, None).unwrap()).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(server.wait().await.is_success());
}

#[tokio::test]
async fn timeout_ends_the_login_and_closes_the_port() {
    let mock = MockIssuer::start().unwrap();
    let (server, _) = start_recording(opts(&mock, Some(Duration::from_millis(300)))).await;
    let port = server.port();
    let t0 = Instant::now();
    assert_eq!(
        server.wait().await,
        LoginOutcome::TimedOut(Duration::from_millis(300))
    );
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(port_closed(port));
    assert_eq!(
        LoginOutcome::TimedOut(Duration::from_secs(1))
            .error_message()
            .unwrap(),
        "login timed out after 1s"
    );
}

#[tokio::test]
async fn cancel_twice_and_after_completion_is_harmless() {
    let mock = MockIssuer::start().unwrap();
    let (server, _) = start_recording(opts(&mock, None)).await;
    let port = server.port();
    let h = server.cancel_handle();
    let h2 = h.clone();
    h.cancel();
    h2.cancel();
    assert_eq!(server.wait().await, LoginOutcome::Cancelled);
    h.cancel();
    assert!(port_closed(port));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_the_token_exchange_stores_nothing() {
    let mock = MockIssuer::start().unwrap();
    mock.set_token_delay(Duration::from_secs(3));
    let (server, stored) = start_recording(opts(&mock, None)).await;
    let url = server.auth_url().to_string();
    let browser = tokio::task::spawn_blocking(move || oauth_mock::browse(&url));
    let deadline = Instant::now() + Duration::from_secs(30);
    while mock.token_requests().is_empty() {
        assert!(Instant::now() < deadline, "no token request");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.cancel_handle().cancel();
    assert_eq!(server.wait().await, LoginOutcome::Cancelled);
    // The browser's connection was dropped with the login.
    let _ = browser.await;
    assert!(stored.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_port_falls_back_or_fails_as_asked() {
    let mock = MockIssuer::start().unwrap();
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();

    let mut exact = opts(&mock, Some(Duration::from_secs(60)));
    exact.port = PortChoice::Exact(taken);
    let err = start(exact, |_t| async { Ok(()) }).await.unwrap_err();
    assert!(
        matches!(&err, LoginError::Bind { port, source, .. } if *port == taken && source.kind() == std::io::ErrorKind::AddrInUse),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{taken}")),
        "{err}"
    );

    let mut preferred = opts(&mock, Some(Duration::from_secs(60)));
    preferred.port = PortChoice::Preferred(taken);
    let (server, _) = start_recording(preferred).await;
    assert_ne!(server.port(), taken);
    let url = server.auth_url().to_string();
    let seen = blocking(move || oauth_mock::browse(&url).unwrap()).await;
    assert_eq!(seen.callback.unwrap().status, 200);
    assert!(server.wait().await.is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_failure_fails_the_login() {
    let mock = MockIssuer::start().unwrap();
    let server = start(opts(&mock, Some(Duration::from_secs(60))), |_t| async {
        Err("auth.json: permission denied".to_string())
    })
    .await
    .unwrap();
    let url = server.auth_url().to_string();
    let seen = blocking(move || oauth_mock::browse(&url).unwrap()).await;
    assert_eq!(seen.callback.unwrap().status, 500);
    assert_eq!(
        server.wait().await,
        LoginOutcome::Failed(
            "storing the credentials failed: auth.json: permission denied".to_string()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_error_in_the_callback_fails_the_login() {
    let mock = MockIssuer::start().unwrap();
    let (server, _) = start_recording(opts(&mock, Some(Duration::from_secs(60)))).await;
    let state = oauth_mock::query_param(server.auth_url(), "state").unwrap();
    let cb = format!(
        "http://localhost:{}/auth/callback?error=access_denied&error_description=user%20said%20no&state={state}",
        server.port()
    );
    let a = blocking(move || oauth_mock::http_get(&cb, None).unwrap()).await;
    assert_eq!(a.status, 400);
    assert_eq!(
        server.wait().await,
        LoginOutcome::Failed(
            "the issuer refused the sign-in: access_denied: user said no".to_string()
        )
    );
}

#[tokio::test]
async fn refresh_grant_against_the_mock() {
    let mock = MockIssuer::start().unwrap();
    let (server, stored) = start_recording(opts(&mock, Some(Duration::from_secs(60)))).await;
    let url = server.auth_url().to_string();
    blocking(move || oauth_mock::browse(&url).unwrap()).await;
    assert!(server.wait().await.is_success());
    let first = stored.lock().unwrap().pop().unwrap();
    let client = codex_login::TokenClient::new(&Issuer::parse(&mock.url()).unwrap()).unwrap();
    let fresh = client
        .refresh(mock.client_id(), &first.refresh_token, &first.id_token)
        .await
        .unwrap();
    assert_eq!(
        fresh.access_token.expose_secret(),
        mock.issued()[1].access_token
    );
    // The mock rotates refresh tokens: the new one is adopted, the old one is dead.
    assert_eq!(
        fresh.refresh_token.expose_secret(),
        mock.issued()[1].refresh_token
    );
    assert_ne!(
        fresh.refresh_token.expose_secret(),
        first.refresh_token.expose_secret()
    );
    let err = client
        .refresh(mock.client_id(), &first.refresh_token, &first.id_token)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LoginError::OAuth(e) if e.is_invalid_grant()),
        "{err}"
    );
    let bogus = codex_login::SecretString::new("nope".to_string());
    let err = client
        .refresh(mock.client_id(), &bogus, &first.id_token)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, LoginError::OAuth(e) if e.is_invalid_grant()),
        "{err}"
    );
}
