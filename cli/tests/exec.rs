//! `codex exec` against the recording mock Responses API (suite-test-support), over plain HTTP and
//! TLS: the request it sends, the streamed output, and one clear line + exit code per failure.
#![allow(clippy::unwrap_used)] // helpers outside #[test] functions

mod common;
use common::{codex, home};

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use suite_test_support::responses_mock::{
    MockResponse, MockUpstream, sse_frame, sse_text_response,
};
use suite_test_support::tls::TestCa;

const KEY: &str = "sk-proj-EXECKEY0123456789abcdefQWERT";

fn store_key(home: &Path) {
    let mut c = codex(home);
    c.args(["login", "--with-api-key"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{KEY}\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// A provider `mock` at `base_url`, without retries (the retry tests set their own).
fn proxy_args(base_url: &str) -> Vec<String> {
    vec![
        "-c".into(),
        format!("model_providers.mock.base_url={base_url}"),
        "-c".into(),
        "model_provider=mock".into(),
        "-c".into(),
        "model_providers.mock.request_max_retries=0".into(),
        "-c".into(),
        "model_providers.mock.stream_max_retries=0".into(),
    ]
}

fn exec(home: &Path, pre: &[String], prompt: &str) -> Output {
    let mut c = codex(home);
    c.args(pre).args(["exec", prompt]);
    c.output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr without the resume hint (checked by its own tests in exec_sessions.rs).
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| !l.starts_with("codex: to continue this session: codex exec resume "))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

#[test]
fn streams_text_and_usage_over_plain_http_without_a_key() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    mock.push_response(MockResponse::SseBurst {
        frames: sse_text_response("r1", "Hello from the mock"),
    });
    let o = exec(&h.path, &proxy_args(&mock.base_url()), "say hello");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(out(&o), "Hello from the mock\n");
    assert_eq!(err(&o), "tokens used: 2 (input 1, output 1)");
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("POST", "/v1/responses")
    );
    assert_eq!(
        reqs[0].json().unwrap(),
        serde_json::json!({"model": "gpt-5", "input": "say hello", "stream": true})
    );
    assert_eq!(
        reqs[0].header("authorization"),
        None,
        "requires_openai_auth defaults to false for a custom provider"
    );
    assert_eq!(
        reqs[0].header("accept").as_deref(),
        Some("text/event-stream")
    );
}

#[test]
fn a_stored_key_is_never_sent_to_a_provider_that_does_not_require_auth() {
    let h = home();
    store_key(&h.path);
    let mock = MockUpstream::start().unwrap();
    mock.push_response(MockResponse::SseBurst {
        frames: sse_text_response("r", "ok"),
    });
    let o = exec(&h.path, &proxy_args(&mock.base_url()), "x");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(mock.requests()[0].header("authorization"), None);
    // Control: the same provider with requires_openai_auth = true gets the stored key as Bearer.
    mock.push_response(MockResponse::SseBurst {
        frames: sse_text_response("r", "ok"),
    });
    let mut pre = proxy_args(&mock.base_url());
    pre.extend([
        "-c".into(),
        "model_providers.mock.requires_openai_auth=true".into(),
    ]);
    let o = exec(&h.path, &pre, "x");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        mock.requests()[1].header("authorization"),
        Some(format!("Bearer {KEY}"))
    );
    assert!(!out(&o).contains(KEY) && !err(&o).contains(KEY));
}

#[test]
fn model_flag_config_and_web_search_feature_shape_the_request() {
    let h = home();
    std::fs::write(h.path.join("config.toml"), "model = \"from-config\"\n").unwrap();
    let mock = MockUpstream::start().unwrap();
    mock.set_default(MockResponse::SseBurst {
        frames: sse_text_response("r", "ok"),
    });
    assert!(
        exec(&h.path, &proxy_args(&mock.base_url()), "p")
            .status
            .success()
    );
    let mut pre = proxy_args(&mock.base_url());
    pre.extend([
        "--enable".into(),
        "web_search_request".into(),
        "--disable".into(),
        "exec_usage_line".into(),
    ]);
    let mut c = codex(&h.path);
    c.args(&pre).args(["exec", "-m", "from-flag", "p"]);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(err(&o), "", "usage line disabled");
    let reqs = mock.requests();
    assert_eq!(reqs[0].json().unwrap()["model"], "from-config");
    assert_eq!(
        reqs[1].json().unwrap(),
        serde_json::json!({"model": "from-flag", "input": "p", "stream": true, "tools": [{"type": "web_search"}]})
    );
}

#[test]
fn prompt_from_stdin() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    mock.push_response(MockResponse::SseBurst {
        frames: sse_text_response("r", "ok"),
    });
    let mut c = codex(&h.path);
    c.args(proxy_args(&mock.base_url()))
        .args(["exec", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"multi\nline prompt\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        mock.requests()[0].json().unwrap()["input"],
        "multi\nline prompt\n"
    );
}

#[test]
fn deltas_are_printed_as_they_arrive() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    mock.push_response(MockResponse::SsePaced {
        frames: sse_text_response("r", "first second third fourth"),
        delay: Duration::from_millis(400),
    });
    let mut c = codex(&h.path);
    c.args(proxy_args(&mock.base_url()))
        .args(["exec", "p"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = c.spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = [0u8; 6];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    let first_at = start.elapsed();
    assert_eq!(&first, b"first ");
    // The stream has 7 frames 400 ms apart: the first word must be out long before the end.
    assert!(
        mock.with_state(|s| s.streams_completed == 0),
        "the first delta was only printed after the stream completed ({first_at:?})"
    );
    let mut rest = String::new();
    while stdout.read_line(&mut rest).unwrap() > 0 {}
    assert_eq!(rest, "second third fourth\n");
    assert!(child.wait().unwrap().success());
    assert!(
        start.elapsed() >= Duration::from_millis(2000),
        "paced stream finished too early"
    );
}

#[test]
fn tls_with_the_ca_from_ssl_cert_file() {
    let h = home();
    let ca = TestCa::new().unwrap();
    let mock = MockUpstream::start_tls(&ca).unwrap();
    mock.set_default(MockResponse::SseBurst {
        frames: sse_text_response("r", "over TLS"),
    });
    let mut c = codex(&h.path);
    c.args(proxy_args(&mock.base_url_localhost()))
        .args(["exec", "p"])
        .env("SSL_CERT_FILE", ca.ca_pem_path())
        .env_remove("SSL_CERT_DIR");
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(out(&o), "over TLS\n");
    // Control: another CA (the mock's certificate is not trusted) fails to connect, exit 20.
    let other = TestCa::new().unwrap();
    let mut c = codex(&h.path);
    c.args(proxy_args(&mock.base_url_localhost()))
        .args(["exec", "p"])
        .env("SSL_CERT_FILE", other.ca_pem_path())
        .env_remove("SSL_CERT_DIR");
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(20), "{o:?}");
    assert!(
        err(&o).starts_with(&format!(
            "codex: request to {}/responses failed:",
            mock.base_url_localhost()
        )),
        "{}",
        err(&o)
    );
    // (Both test CAs share a name, so rustls reports BadSignature rather than UnknownIssuer.)
    assert!(err(&o).contains("invalid peer certificate"), "{}", err(&o));
    assert_eq!(
        mock.requests().len(),
        1,
        "no request reached the mock over the untrusted connection"
    );
}

#[test]
fn connection_refused_is_exit_20() {
    let h = home();
    // Held bound but not listening for the whole test: every connection is refused.
    let refusing = suite_test_support::ports::RefusingPort::new().unwrap();
    let port = refusing.port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let o = exec(&h.path, &proxy_args(&url), "p");
    assert_eq!(o.status.code(), Some(20), "{o:?}");
    let e = err(&o);
    assert!(
        e.starts_with(&format!("codex: request to {url}/responses failed:")),
        "{e}"
    );
    assert!(e.contains("Connection refused"), "{e}");
    assert_eq!(e.lines().count(), 1);
}

fn error_body(message: &str, ty: &str, code: &str) -> serde_json::Value {
    serde_json::json!({"error": {"message": message, "type": ty, "code": code, "param": null}})
}

#[test]
fn http_errors_are_one_line_with_the_api_message_and_distinct_codes() {
    let h = home();
    store_key(&h.path);
    let mock = MockUpstream::start().unwrap();
    let mut pre = proxy_args(&mock.base_url());
    pre.extend([
        "-c".into(),
        "model_providers.mock.requires_openai_auth=true".into(),
    ]);
    for (status, exit, msg, ty, code) in [
        (
            401,
            21,
            "Incorrect API key provided",
            "invalid_request_error",
            "invalid_api_key",
        ),
        (
            403,
            21,
            "Project does not have access",
            "invalid_request_error",
            "forbidden",
        ),
        (
            429,
            22,
            "Rate limit reached",
            "requests",
            "rate_limit_exceeded",
        ),
        (
            500,
            23,
            "The server had an error",
            "server_error",
            "internal",
        ),
        (
            503,
            23,
            "Overloaded\u{1b}[2J\nsecond line",
            "server_error",
            "overloaded",
        ),
    ] {
        mock.push_response(MockResponse::Json {
            status,
            body: error_body(msg, ty, code),
        });
        let o = exec(&h.path, &pre, "p");
        assert_eq!(o.status.code(), Some(exit), "{status}: {o:?}");
        let e = err(&o);
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(e.starts_with(&format!("codex: HTTP {status} ")), "{e}");
        let shown = msg.replace(['\u{1b}', '\n'], " ");
        assert!(e.contains(&format!("{shown} ({ty}, {code})")), "{e}");
        assert!(
            !e.contains('\u{1b}'),
            "terminal escapes from the server are neutralized"
        );
        assert!(!e.contains(KEY) && !out(&o).contains(KEY));
        if exit == 21 {
            assert!(e.contains("codex login status"), "{e}");
        }
    }
}

#[test]
fn a_refusal_from_a_keyless_provider_does_not_blame_the_users_key() {
    // A proxy answering 403 (user not allowed): exit 21, the proxy's message, no "check the key".
    let h = home();
    let mock = MockUpstream::start().unwrap();
    mock.push_response(MockResponse::Json {
        status: 403,
        body: error_body("peer uid 1001 is not allowed", "access_denied", "forbidden"),
    });
    let o = exec(&h.path, &proxy_args(&mock.base_url()), "p");
    assert_eq!(o.status.code(), Some(21), "{o:?}");
    assert_eq!(
        err(&o),
        format!(
            "codex: HTTP 403 Forbidden from {}/responses: peer uid 1001 is not allowed (access_denied, forbidden)",
            mock.base_url()
        )
    );
}

#[test]
fn a_stream_that_ends_early_is_exit_24_and_keeps_the_partial_text() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    let mut frames = sse_text_response("r", "partial answer here");
    frames.pop(); // no response.completed
    mock.push_response(MockResponse::SseBurst {
        frames: frames.clone(),
    });
    let o = exec(&h.path, &proxy_args(&mock.base_url()), "p");
    assert_eq!(o.status.code(), Some(24), "{o:?}");
    assert_eq!(out(&o), "partial answer here\n");
    assert!(
        err(&o).contains("ended before response.completed (19 bytes of text received)"),
        "{}",
        err(&o)
    );
    // Cut off mid-stream by the server.
    mock.push_response(MockResponse::ResetMidStream {
        frames: frames[..2].to_vec(),
        delay: Duration::from_millis(10),
    });
    let o = exec(&h.path, &proxy_args(&mock.base_url()), "p");
    assert_eq!(o.status.code(), Some(24), "{o:?}");
    assert_eq!(out(&o), "partial \n");
    assert_eq!(err(&o).lines().count(), 1, "{}", err(&o));
}

#[test]
fn response_failed_and_malformed_events_are_exit_24() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    mock.push_response(MockResponse::SseBurst {
        frames: vec![sse_frame(
            "response.failed",
            &serde_json::json!({"type": "response.failed", "response": {"error": {"message": "model exploded"}}}),
        )],
    });
    let o = exec(&h.path, &proxy_args(&mock.base_url()), "p");
    assert_eq!(
        (o.status.code(), err(&o)),
        (
            Some(24),
            "codex: the response failed: model exploded".to_owned()
        )
    );
    mock.push_response(MockResponse::SseBurst {
        frames: vec!["event: response.output_text.delta\ndata: {not json\n\n".into()],
    });
    let o = exec(&h.path, &proxy_args(&mock.base_url()), "p");
    assert_eq!(o.status.code(), Some(24), "{o:?}");
    assert!(
        err(&o).starts_with("codex: malformed response.output_text.delta event:"),
        "{}",
        err(&o)
    );
}

#[test]
fn idle_stream_times_out_with_exit_24() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    mock.push_response(MockResponse::SsePaced {
        frames: sse_text_response("r", "a b"),
        delay: Duration::from_secs(5),
    });
    let mut pre = proxy_args(&mock.base_url());
    pre.extend([
        "-c".into(),
        "model_providers.mock.stream_idle_timeout_ms=500".into(),
    ]);
    let o = exec(&h.path, &pre, "p");
    assert_eq!(o.status.code(), Some(24), "{o:?}");
    assert!(err(&o).contains("was idle for 500 ms"), "{}", err(&o));
}

#[test]
fn builtin_openai_without_a_key_fails_before_any_connection() {
    let h = home();
    let o = exec(&h.path, &[], "p");
    assert_eq!(o.status.code(), Some(21), "{o:?}");
    assert_eq!(
        err(&o),
        "codex: provider openai requires an API key and no API key is stored: run `printenv OPENAI_API_KEY | codex login --with-api-key` (or use a provider with requires_openai_auth = false)"
    );
}

#[test]
fn key_is_never_sent_over_plain_http_to_a_remote_host() {
    let h = home();
    store_key(&h.path);
    let mut pre = proxy_args("http://203.0.113.7/v1");
    pre.extend([
        "-c".into(),
        "model_providers.mock.requires_openai_auth=true".into(),
    ]);
    let o = exec(&h.path, &pre, "p");
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        err(&o).starts_with("codex: refusing to send the API key over plain http to 203.0.113.7"),
        "{}",
        err(&o)
    );
}

#[test]
fn unknown_provider_is_a_usage_error() {
    let h = home();
    let o = exec(
        &h.path,
        &["-c".into(), "model_provider=nowhere".into()],
        "p",
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(
        err(&o),
        "codex: unknown model provider \"nowhere\": define model_providers.nowhere.base_url (built in: openai)"
    );
}
