//! Governance end to end (issue 17): the real proxy binary with `--policy` and `--state-dir`,
//! started as root (it drops to `nobody`), used by two real local users: clients run by `curl`
//! spawned with uid 65534 (user A) and uid 4243 (user B), identified by the kernel (sock_diag),
//! against the recording mock upstream. Needs `curl` (installed by `.ci/run`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Proxy, Spawn, policy_dir, usage_json, write_policy};
use suite_test_support::responses_mock::{MockResponse, MockUpstream, sse_frame};

const A: u32 = 65534;
const B: u32 = 4243;

/// A stream whose terminal event reports this usage.
fn stream_with_usage(input: u64, cached: u64, output: u64) -> MockResponse {
    MockResponse::SseChunked {
        frames: vec![
            sse_frame(
                "response.created",
                &serde_json::json!({"type":"response.created","response":{"id":"r1","usage":null}}),
            ),
            sse_frame(
                "response.output_text.delta",
                &serde_json::json!({"type":"response.output_text.delta","delta":"hello"}),
            ),
            sse_frame(
                "response.completed",
                &serde_json::json!({"type":"response.completed","response":{"id":"r1","model":"gpt-5",
                    "usage":{"input_tokens":input,"input_tokens_details":{"cached_tokens":cached},
                             "output_tokens":output,"total_tokens":input.saturating_add(output)}}}),
            ),
        ],
    }
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// `curl` as `uid` (None: root): POST `body` to `path`; status, head, body.
/// `n` POSTs of `body` to `/v1/responses` at once, from `uid`'s threads; their answers.
fn post_at_once(n: usize, uid: Option<u32>, port: u16, body: &str) -> Vec<Answer> {
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|_| s.spawn(move || post_as(uid, port, "/v1/responses", body)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn post_as(uid: Option<u32>, port: u16, path: &str, body: &str) -> Answer {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "-N",
        "-i",
        "--max-time",
        "30",
        "-H",
        "content-type: application/json",
        "--data-binary",
        body,
    ])
    .arg(format!("http://127.0.0.1:{port}{path}"));
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    let out = c
        .stdin(Stdio::null())
        .output()
        .expect("curl must be installed");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (mut head, mut body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    // curl sends `Expect: 100-continue` with a large body: skip the interim answer.
    while head.starts_with("HTTP/1.1 100") {
        (head, body) = body.split_once("\r\n\r\n").unwrap_or((body, ""));
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn row<'a>(report: &'a serde_json::Value, uid: u32, model: &str) -> &'a serde_json::Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["uid"] == uid && r["model"] == model)
        .unwrap_or_else(|| panic!("no row for uid {uid} model {model}: {report}"))
}

const POLICY: &str = r#"
[default]
models = ["gpt-5*"]
max_output_tokens = 500
day = { output_tokens = 100 }

[user."4243"]
models = ["gpt-5-mini"]
requests_per_minute = 3
day = { output_tokens = 1000 }
"#;

#[test]
fn two_users_each_get_their_own_limits_and_a_budget_ends_only_after_the_stream() {
    let d = policy_dir();
    let policy = write_policy(d.path(), POLICY);
    let state = d.path().join("state");
    let mock = MockUpstream::start().unwrap();
    mock.set_default(stream_with_usage(50, 10, 60));
    let proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .start();
    let body = r#"{"model":"gpt-5","input":"hi","stream":true}"#;

    // A, within budget: streams to the end.
    let r = post_as(Some(A), proxy.port, "/v1/responses", body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("response.completed"), "{}", r.body);
    // Upstream got store forced off and the ceiling inserted.
    let sent = mock.requests()[0].json().unwrap();
    assert_eq!(
        (sent["store"].clone(), sent["max_output_tokens"].clone()),
        (false.into(), 500.into())
    );
    assert_eq!(sent["input"], "hi");
    // A again: 60 < 100 spent, admitted; this stream takes A to 120 and is not cut.
    let r = post_as(Some(A), proxy.port, "/v1/responses", body);
    assert_eq!(r.status, 200);
    assert!(
        r.body.contains("response.completed"),
        "the stream was cut: {}",
        r.body
    );
    proxy.wait_log("tokens_out=60", 2);
    // A over budget: 429 naming the rule, the limit and the reset; Retry-After.
    let r = post_as(Some(A), proxy.port, "/v1/responses", body);
    assert_eq!(r.status, 429, "{}", r.body);
    let e = &r.json()["error"];
    assert_eq!(e["code"], "budget_exhausted");
    assert_eq!(e["rule"], "default.day.output_tokens");
    assert_eq!(e["limit"], 100);
    let resets = e["resets_at"].as_str().unwrap();
    assert!(resets.ends_with("T00:00:00Z"), "{resets}");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert_eq!(
        mock.requests().len(),
        2,
        "the refused request never went upstream"
    );

    // B: another policy. gpt-5 is not B's; gpt-5-mini is, with B's own budget (1000) and rate.
    let r = post_as(Some(B), proxy.port, "/v1/responses", body);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"]["rule"], "user.4243.models");
    let mini = r#"{"model":"gpt-5-mini","input":"hi","stream":true}"#;
    for _ in 0..3 {
        let r = post_as(Some(B), proxy.port, "/v1/responses", mini);
        assert_eq!(r.status, 200, "B is within its own budget: {}", r.body);
    }
    let r = post_as(Some(B), proxy.port, "/v1/responses", mini);
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "rate_limited");
    assert_eq!(r.json()["error"]["rule"], "user.4243.requests_per_minute");
    assert!(r.header("retry-after").is_some());
    // A is still refused by its budget, not B's rate.
    assert_eq!(
        post_as(Some(A), proxy.port, "/v1/responses", body).json()["error"]["rule"],
        "default.day.output_tokens"
    );

    // The audit lines carry model, tokens, decision and rule.
    let log = proxy.wait_log("tokens_out=60", 5);
    let allowed = log
        .lines()
        .find(|l| l.contains("uid=4243") && l.contains("status=200"))
        .unwrap();
    for want in [
        "model=\"gpt-5-mini\"",
        "tokens_in=50",
        "tokens_cached=10",
        "tokens_out=60",
        "decision=\"clamped\"",
        "rule=user.4243",
    ] {
        assert!(allowed.contains(want), "{want} missing: {allowed}");
    }
    let refused = log
        .lines()
        .find(|l| l.contains("status=429") && l.contains("uid=65534"))
        .unwrap();
    assert!(
        refused.contains("decision=\"refused\"")
            && refused.contains("rule=default.day.output_tokens"),
        "{refused}"
    );

    // The administrator's report: per user and model, from the ledger.
    let rep = usage_json(&state, &["--today"]);
    let a = row(&rep, A, "gpt-5");
    assert_eq!(
        (a["requests"].as_u64(), a["output_tokens"].as_u64()),
        (Some(2), Some(120))
    );
    assert_eq!(
        (
            a["input_tokens"].as_u64(),
            a["cached_input_tokens"].as_u64()
        ),
        (Some(100), Some(20))
    );
    assert_eq!(a["user"], "nobody");
    let b = row(&rep, B, "gpt-5-mini");
    assert_eq!(
        (b["requests"].as_u64(), b["output_tokens"].as_u64()),
        (Some(3), Some(180))
    );
    assert_eq!(
        rep["rows"].as_array().unwrap().len(),
        2,
        "refused requests cost nothing: {rep}"
    );
    let text = Command::new(BIN)
        .args(["usage", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("nobody") && text.contains("gpt-5-mini") && text.contains("total"),
        "{text}"
    );
    drop(proxy);

    // Budgets hold across a restart: the ledger is replayed.
    let proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .start();
    let r = post_as(Some(A), proxy.port, "/v1/responses", body);
    assert_eq!(
        (r.status, r.json()["error"]["rule"].clone()),
        (429, "default.day.output_tokens".into())
    );
    // Control: root (default rule, no spending yet) is served.
    assert_eq!(post_as(None, proxy.port, "/v1/responses", body).status, 200);
}

/// Compaction requests are checked by the same model and tool rules and their usage counts.
/// Outside review r96 F1: `store: false` and the `max_output_tokens` ceiling were added to a
/// compaction body (which the endpoint does not take), and a compaction reporting more output
/// than the ceiling was charged only the estimate (6,000 output tokens booked as 100). Now the
/// body goes upstream as the client sent it, and the reported usage is booked.
#[test]
fn compact_is_forwarded_under_the_same_rules_and_json_usage_counts() {
    let d = policy_dir();
    let policy = write_policy(
        d.path(),
        "[default]\nmodels = [\"gpt-5\"]\nmax_output_tokens = 100\nmonth = { input_tokens = 1000000 }\n",
    );
    let state = d.path().join("state");
    let mock = MockUpstream::start().unwrap();
    mock.set_default(MockResponse::json(serde_json::json!({
        "id": "cmp", "object": "response.compaction", "model": "gpt-5",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "\"usage\":{\"input_tokens\":999}"}]}],
        "usage": {"input_tokens": 700, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 6000, "total_tokens": 6700}
    })));
    let proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .start();
    let denied = post_as(
        Some(A),
        proxy.port,
        "/v1/responses/compact",
        r#"{"model":"o3","input":[]}"#,
    );
    assert_eq!(
        (denied.status, denied.json()["error"]["code"].clone()),
        (403, "model_not_allowed".into())
    );
    let ok = post_as(
        Some(A),
        proxy.port,
        "/v1/responses/compact",
        r#"{"model":"gpt-5","input":[]}"#,
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/responses/compact");
    assert_eq!(
        String::from_utf8_lossy(&reqs[0].body),
        r#"{"model":"gpt-5","input":[]}"#,
        "a compaction body goes upstream unchanged"
    );
    proxy.wait_log("tokens_in=700", 1);
    let rep = usage_json(&state, &[]);
    let a = row(&rep, A, "gpt-5");
    assert_eq!(
        (a["input_tokens"].as_u64(), a["output_tokens"].as_u64()),
        (Some(700), Some(6000))
    );
}

/// Review r15 F9: a usage object whose numbers are missing or out of range (negative, a
/// string, 1e300, null) is not booked as 0: each bad count is charged the request's estimate
/// (output: its `max_output_tokens`), like a response without usage, and flagged in the audit
/// line. Control: the good counts next to them, and a response with good numbers, are booked
/// as reported.
#[test]
fn bad_usage_numbers_from_upstream_are_charged_the_estimate_and_serving_goes_on() {
    let (_d, state, mock, proxy) = governed_proxy("[default]\nday = { output_tokens = 10000 }\n");
    let body = r#"{"model":"gpt-5","stream":true,"max_output_tokens":777}"#;
    for usage in [
        // input and output bad: both estimated
        serde_json::json!({"input_tokens": -5, "output_tokens": -1000}),
        // input good (1), output bad
        serde_json::json!({"input_tokens": 1, "output_tokens": "lots"}),
        // no usage object at all
        serde_json::json!(null),
        // input bad, output good (3)
        serde_json::json!({"input_tokens": 1e300, "output_tokens": 3}),
    ] {
        mock.push_response(MockResponse::SseBurst {
            frames: vec![sse_frame(
                "response.completed",
                &serde_json::json!({"type":"response.completed","response":{"usage": usage}}),
            )],
        });
        let r = post_as(Some(A), proxy.port, "/v1/responses", body);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let log = proxy.wait_log("usage_anomaly=", 4);
    assert!(log.contains("upstream usage not trusted in full"), "{log}");
    assert!(log.contains("bad usage numbers: estimated"), "{log}");
    let rep = usage_json(&state, &[]);
    let a = row(&rep, A, "gpt-5");
    assert_eq!(a["requests"].as_u64(), Some(4));
    // Three bad output counts at the estimate (777 each) and the good 3; not 3.
    assert_eq!(a["output_tokens"].as_u64(), Some(3 * 777 + 3), "{a}");
    // Three bad input counts at the estimate (forwarded body bytes / 4) and the good 1.
    let est_in = (body.len() as u64).div_ceil(4);
    assert!(a["input_tokens"].as_u64().unwrap() > 3 * est_in, "{a}");
    // Control: good numbers count as reported.
    mock.push_response(stream_with_usage(2, 0, 5));
    post_as(Some(A), proxy.port, "/v1/responses", body);
    proxy.wait_log("tokens_out=5 ", 1);
    // Implausible (outside review r18 F5): 2^64-1 and 10^12 (above the 10^8 ceiling of one
    // response), and 900 output tokens on a request that allowed 777 (beyond 5% + 64), are
    // bad counts: charged the estimate (777), flagged; A's day is not wiped out.
    for out in [u64::MAX, 1_000_000_000_000, 900] {
        mock.push_response(stream_with_usage(1, 0, out));
        let r = post_as(Some(A), proxy.port, "/v1/responses", body);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let log = proxy.wait_log("usage_anomaly=", 7);
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("tokens_out=777 ") && l.contains("usage_anomaly="))
            .count(),
        6,
        "{log}"
    );
    // Control: the ceiling of the tolerance (777 + 38 + 64 = 879) is booked as reported.
    mock.push_response(stream_with_usage(1, 0, 879));
    let r = post_as(Some(A), proxy.port, "/v1/responses", body);
    assert_eq!(r.status, 200, "{}", r.body);
    let log = proxy.wait_log("tokens_out=879 ", 1);
    let line = log.lines().find(|l| l.contains("tokens_out=879 ")).unwrap();
    assert!(!line.contains("usage_anomaly="), "{line}");
    mock.push_response(stream_with_usage(1, 0, 5));
    let r = post_as(Some(A), proxy.port, "/v1/responses", body);
    assert_eq!(r.status, 200, "A is still within its day: {}", r.body);
    proxy.wait_log("tokens_out=5 ", 2);
    let rep = usage_json(&state, &[]);
    let a = row(&rep, A, "gpt-5");
    assert_eq!(a["requests"].as_u64(), Some(10));
    assert_eq!(
        a["output_tokens"].as_u64(),
        Some(3 * 777 + 3 + 5 + 3 * 777 + 879 + 5),
        "{a}"
    );
}

/// Outside review r18 F7: parallel requests each admitted against the same unspent budget
/// booked 33 times a day's output budget. Every admitted request now reserves its worst case
/// (`max_output_tokens` after the clamp): of 12 requests sent at once against a day budget of
/// 3000 output tokens with a ceiling of 1000, exactly 3 are admitted (the mock holds their
/// answers for 3 s, so all 12 are decided while those 3 are in flight) and 9 get 429
/// `budget_reserved`; the ledger holds 3000. Control: the same requests one after another are
/// all served while under the budget (another user, 100 output tokens each). Then no leak: the
/// reservations of requests that end in an upstream 500, a client gone, or no response at all
/// (the upstream refuses connections: the guard's `Drop`) are all given back.
#[test]
fn parallel_requests_cannot_spend_a_budget_more_than_once() {
    const N: usize = 12;
    let d = policy_dir();
    let policy = write_policy(
        d.path(),
        "[default]\nmax_output_tokens = 1000\nday = { output_tokens = 3000 }\n",
    );
    let state = d.path().join("state");
    let mock = MockUpstream::start().unwrap();
    let held = |out: u64, delay: Duration| {
        let MockResponse::SseChunked { frames } = stream_with_usage(100, 0, out) else {
            unreachable!()
        };
        // response.created at once, the usage after `delay` (twice: the delta too).
        MockResponse::SsePaced { frames, delay }
    };
    let proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .start();
    let body = r#"{"model":"gpt-5","input":"hi","stream":true}"#;

    // Control: B, one after another, each response using 100: all 12 served.
    mock.set_default(held(100, Duration::from_millis(10)));
    for i in 0..N {
        let r = post_as(Some(B), proxy.port, "/v1/responses", body);
        assert_eq!(r.status, 200, "sequential request {i}: {}", r.body);
    }

    // Attack: A, 12 at once.
    mock.set_default(held(1000, Duration::from_millis(1500)));
    let port = proxy.port;
    let answers = post_at_once(N, Some(A), port, body);
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(
        ok,
        3,
        "statuses: {:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    for a in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(a.status, 429, "{}", a.body);
        let e = &a.json()["error"];
        assert_eq!(e["code"], "budget_reserved", "{}", a.body);
        assert_eq!(e["rule"], "default.day.output_tokens");
        assert_eq!(e["limit"], 3000);
        assert!(e["resets_at"].as_str().unwrap().ends_with("T00:00:00Z"));
        assert_eq!(a.header("retry-after").as_deref(), Some("5"));
    }
    for a in answers.iter().filter(|a| a.status == 200) {
        assert!(a.body.contains("response.completed"), "{}", a.body);
    }
    proxy.wait_log("tokens_out=1000 ", 3);
    let rep = usage_json(&state, &["--today"]);
    let a = row(&rep, A, "gpt-5");
    assert_eq!(
        (a["requests"].as_u64(), a["output_tokens"].as_u64()),
        (Some(3), Some(3000)),
        "the ledger stays within the budget: {a}"
    );
    let b = row(&rep, B, "gpt-5");
    assert_eq!(
        (b["requests"].as_u64(), b["output_tokens"].as_u64()),
        (Some(N as u64), Some(100 * N as u64))
    );
    // Spent now: refused as exhausted (the reservations were all given back, not leaked).
    let r = post_as(Some(A), proxy.port, "/v1/responses", body);
    assert_eq!(r.json()["error"]["code"], "budget_exhausted", "{}", r.body);

    // No path leaks a reservation (root, its own budget): an upstream error, a client that
    // leaves mid-stream (the rest read on, 0 output booked), then 4 at once: 3 fit, as for a
    // user who never sent anything. A leaked reservation would leave room for 2 or fewer.
    mock.push_response(MockResponse::Raw {
        status: 500,
        headers: vec![("content-type".into(), "application/json".into())],
        body: bytes::Bytes::from_static(br#"{"error":{"message":"upstream broke"}}"#),
    });
    assert_eq!(post_as(None, proxy.port, "/v1/responses", body).status, 500);
    mock.push_response(held(0, Duration::from_millis(300)));
    let part = post_and_leave(proxy.port, body, Some("response.created"));
    assert!(!part.contains("response.completed"), "{part}");
    proxy.wait_log("outcome=\"client_gone\"", 1);
    mock.set_default(held(0, Duration::from_millis(1500)));
    let statuses: Vec<u16> = post_at_once(4, None, port, body)
        .iter()
        .map(|a| a.status)
        .collect();
    let mut sorted = statuses.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![200, 200, 200, 429], "{statuses:?}");
    drop(proxy);

    // Requests that end without any response to book (the upstream refuses connections: 502)
    // give their reservation back when dropped: 5 in a row all reach the upstream attempt.
    // A leaked reservation (1000 each) would refuse the 4th with 429 `budget_reserved`.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/v1/responses", dead.local_addr().unwrap());
    drop(dead);
    let state2 = d.path().join("state2");
    let proxy = Spawn::new(&dead_url).governed(&policy, &state2).start();
    for i in 0..5 {
        let r = post_as(Some(A), proxy.port, "/v1/responses", body);
        assert_eq!(r.status, 502, "request {i}: {}", r.body);
    }
}

/// Exit 2 with a message naming file, line and key; nothing listening, no server-info file.
#[test]
fn bad_policy_files_are_refused_at_start_with_nothing_listening() {
    let mock = MockUpstream::start().unwrap();
    let d = policy_dir();
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        (
            "syntax",
            "[default]\nmodels = [\"gpt-5\"\n",
            vec!["line 2", "unclosed array", "policy.toml"],
        ),
        (
            "unknown key",
            "[default]\nmax_output_tokens = 5\nbudget = 5\n",
            vec!["line 3", "key budget", "unknown field"],
        ),
        (
            "negative",
            "[user.nobody]\nrequests_per_minute = -1\n",
            vec![
                "line 2",
                "key user.nobody.requests_per_minute",
                "at least 1",
            ],
        ),
        (
            "absurd",
            "[default]\nmax_output_tokens = 50000000\n",
            vec!["line 2", "key default.max_output_tokens", "absurd"],
        ),
        (
            "unknown glob",
            "[default]\nmodels = [\"gtp-5*\"]\n",
            vec!["line 2", "key default.models", "matches no known model"],
        ),
        (
            "unknown user",
            "[user.no-such-user-h17]\n",
            vec!["line 1", "unknown user"],
        ),
        (
            "budget without state dir",
            "[default]\nday = { output_tokens = 5 }\n",
            vec!["--state-dir"],
        ),
    ];
    for (what, text, wants) in cases {
        let policy = write_policy(d.path(), text);
        let err = Spawn::new(&mock.responses_url())
            .arg("--policy")
            .arg(policy.to_str().unwrap())
            .try_start();
        let Err((status, stderr)) = err else {
            panic!("{what}: started")
        };
        assert_eq!(status.code(), Some(2), "{what}: {stderr}");
        for w in wants {
            assert!(stderr.contains(w), "{what}: {w:?} missing in {stderr}");
        }
        assert!(!stderr.contains("listening"), "{what}: {stderr}");
    }
    // File checks: group/other-writable, a symlink, another owner; the control starts.
    let policy = write_policy(d.path(), "[default]\nmodels = [\"gpt-5\"]\n");
    let start = |p: &Path| {
        Spawn::new(&mock.responses_url())
            .arg("--policy")
            .arg(p.to_str().unwrap())
            .try_start()
    };
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (status, err) = start(&policy).err().unwrap();
    assert_eq!(status.code(), Some(2));
    assert!(
        err.contains("refusing policy file") && err.contains("lets group or others write it"),
        "{err}"
    );
    std::fs::set_permissions(&policy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = d.path().join("link.toml");
    std::os::unix::fs::symlink(&policy, &link).unwrap();
    let (status, err) = start(&link).err().unwrap();
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("it is a symlink"), "{err}");
    std::os::unix::fs::chown(&policy, Some(A), None).unwrap();
    let (status, err) = start(&policy).err().unwrap();
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("owned by uid 65534"), "{err}");
    std::os::unix::fs::chown(&policy, Some(0), None).unwrap();
    let p = start(&policy).expect("the control policy starts");
    assert!(common::is_listening(p.port));
}

/// Outside review r53 F2: 40 parallel streamed requests of a few hundred bytes, each naming a
/// file by URL that the upstream counted as 90,000 input tokens, were all admitted against an
/// input budget of 100,000 (each reserved its bytes / 4) and booked 3,600,000. Such a request
/// runs only alone now: one is served, the others get 429 `budget_unsized`, the ledger holds
/// one request's 90,000. Control: the same requests with their text inline are sized by their
/// bytes and all run in parallel.
#[test]
fn requests_naming_files_cannot_overshoot_an_input_budget_in_parallel() {
    const N: usize = 40;
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nday = { input_tokens = 100000 }\n");
    let state = d.path().join("state");
    let mock = MockUpstream::start().unwrap();
    let held = |input: u64| {
        let MockResponse::SseChunked { frames } = stream_with_usage(input, 0, 5) else {
            unreachable!()
        };
        MockResponse::SsePaced {
            frames,
            delay: Duration::from_millis(1500),
        }
    };
    let proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .start();
    let port = proxy.port;
    let at_once = |uid: u32, body: &str| post_at_once(N, Some(uid), port, body);
    let statuses = |a: &[Answer]| a.iter().map(|a| a.status).collect::<Vec<_>>();

    // Control: B's text inline, 10 input tokens each: all 40 at once.
    mock.set_default(held(10));
    let inline = r#"{"model":"gpt-5","stream":true,"input":[{"role":"user","content":[{"type":"input_text","text":"summarise the attached report, please"}]}]}"#;
    let answers = at_once(B, inline);
    assert!(
        answers.iter().all(|a| a.status == 200),
        "{:?}",
        statuses(&answers)
    );

    // Attack: A names a file by URL, 40 at once.
    mock.set_default(held(90_000));
    let file = r#"{"model":"gpt-5","stream":true,"input":[{"role":"user","content":[{"type":"input_file","file_url":"https://example.com/report.pdf"},{"type":"input_text","text":"summarise"}]}]}"#;
    let answers = at_once(A, file);
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(ok, 1, "statuses: {:?}", statuses(&answers));
    for a in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(a.status, 429, "{}", a.body);
        let e = &a.json()["error"];
        assert_eq!(e["code"], "budget_unsized", "{}", a.body);
        assert_eq!(e["rule"], "default.day.input_tokens");
        assert!(
            e["message"].as_str().unwrap().contains("a file"),
            "{}",
            a.body
        );
        assert_eq!(a.header("retry-after").as_deref(), Some("5"));
    }
    proxy.wait_log("tokens_in=90000 ", 1);
    let rep = usage_json(&state, &["--today"]);
    let a = row(&rep, A, "gpt-5");
    assert_eq!(
        (a["requests"].as_u64(), a["input_tokens"].as_u64()),
        (Some(1), Some(90_000)),
        "one request's worth: {a}"
    );
    let b = row(&rep, B, "gpt-5");
    assert_eq!(b["requests"].as_u64(), Some(N as u64), "{b}");

    // Outside review r57 F1: an item reference without its optional `type` (root, 40 at once).
    let typeless = r#"{"model":"gpt-5","stream":true,"input":[{"role":"user","content":"go on"},{"id":"msg_0123456789abcdef"}]}"#;
    let answers = at_once(0, typeless);
    assert_eq!(
        answers.iter().filter(|a| a.status == 200).count(),
        1,
        "statuses: {:?}",
        statuses(&answers)
    );
    assert!(
        answers
            .iter()
            .filter(|a| a.status != 200)
            .all(|a| a.json()["error"]["code"] == "budget_unsized"),
        "{:?}",
        statuses(&answers)
    );
}

/// Outside review r57 F2: server-side tools inside an input item (`additional_tools`) were
/// forwarded past the `server_tools` allow-list (web search, an MCP server at the attacker's
/// URL). Refused like top-level ones, never forwarded; control: a function tool there passes.
#[test]
fn server_tools_inside_input_items_are_refused_like_top_level_ones() {
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nmodels = [\"gpt-5\"]\n");
    let mock = MockUpstream::start().unwrap();
    mock.set_default(stream_with_usage(5, 0, 5));
    let proxy = Spawn::new(&mock.responses_url())
        .arg("--policy")
        .arg(policy.to_str().unwrap())
        .start();
    let with = |tool: &str| {
        format!(
            r#"{{"model":"gpt-5","stream":true,"input":[{{"role":"user","content":"x"}},{{"type":"additional_tools","role":"developer","tools":[{tool}]}}]}}"#
        )
    };
    for tool in [
        r#"{"type":"web_search"}"#,
        r#"{"type":"mcp","server_label":"x","server_url":"https://attacker.example/mcp","require_approval":"never"}"#,
    ] {
        let r = post_as(Some(A), proxy.port, "/v1/responses", &with(tool));
        assert_eq!(r.status, 403, "{tool}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "tool_not_allowed", "{}", r.body);
    }
    assert!(
        mock.requests().is_empty(),
        "a refused request was forwarded"
    );
    let r = post_as(
        Some(A),
        proxy.port,
        "/v1/responses",
        &with(r#"{"type":"function","name":"f","parameters":{}}"#),
    );
    assert_eq!(r.status, 200, "control: {}", r.body);
}

/// Outside review r53 F1: a `--state-dir` owned by another local user (who then deleted the
/// month's ledger, wrote one of their own, and after a restart had their spend reset and
/// another user's budget used up), or root's with mode `1777` (anyone makes the month's file
/// first), was accepted with only an error line. Refused now (exit 2, naming the directory, its
/// owner and mode); the controls start: a directory of the account the proxy drops to (nobody),
/// and root's own `0700`.
#[test]
fn a_state_dir_another_user_can_write_is_refused() {
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nday = { output_tokens = 1000 }\n");
    let mock = MockUpstream::start().unwrap();
    let dir = |name: &str, uid: u32, mode: u32| {
        let p = d.path().join(name);
        std::fs::create_dir(&p).unwrap();
        std::os::unix::fs::chown(&p, Some(uid), Some(uid)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    for (name, uid, mode, wants) in [
        ("another-users", B, 0o700, "owned by uid 4243 with mode 700"),
        ("root-sticky", 0, 0o1777, "owned by uid 0 with mode 1777"),
        // Outside review r59 F3: another user took the lock of a 0755 one (the proxy could not
        // start) and could watch the ledger change.
        ("readable", 0, 0o755, "owned by uid 0 with mode 755"),
    ] {
        let state = dir(name, uid, mode);
        let Err((status, stderr)) = Spawn::new(&mock.responses_url())
            .governed(&policy, &state)
            .try_start()
        else {
            panic!("{name}: started")
        };
        assert_eq!(status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(wants) && stderr.contains(&state.display().to_string()),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("listening"), "{name}: {stderr}");
    }
    let state = dir("dedicated", common::ledger_account(), 0o700);
    let p = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .start();
    assert!(common::is_listening(p.port), "dedicated");
    // Outside review r73 F4: root's 0700 directory was accepted for a proxy that drops to its
    // account, which opened this month's file as root and could not make next month's: exit 9
    // naming the directory and the fix. Control: the same directory for a proxy that stays root.
    let state = dir("roots", 0, 0o700);
    // (the check runs after the drop, once the listeners are bound and announced)
    let (status, stderr) = match Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .try_start()
    {
        Err(e) => e,
        Ok(mut p) => (
            p.wait_exit(Duration::from_secs(10))
                .expect("root's 0700 state dir was accepted for the dropped proxy"),
            p.stderr(),
        ),
    };
    assert_eq!(status.code(), Some(9), "{stderr}");
    assert!(
        stderr.contains("is not writable by the account the proxy runs as")
            && stderr.contains(&state.display().to_string())
            && stderr.contains("chown"),
        "{stderr}"
    );
    let p = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .arg("--dangerously-run-as-root")
        .start();
    assert!(common::is_listening(p.port), "roots, run as root");
    // Outside review r57 F3: with the default drop to nobody the state dir was handed to uid
    // 65534, which other daemons share: a uid-65534 process replaced the ledger (its own spend
    // erased, another user's forged). The ledger never belongs to nobody: refused with the
    // drop to nobody (explicit, or the default when --user is not given), and a directory
    // nobody owns is another user's for the dedicated account.
    for user in [Some("nobody"), None] {
        let state = d.path().join(format!("for-{user:?}"));
        let mut s = Spawn::new(&mock.responses_url()).governed(&policy, &state);
        match user {
            Some(u) => s = s.arg("--user").arg(u),
            // The harness adds the dedicated account by default: the proxy's own default here.
            None => s.default_user = false,
        }
        let Err((status, stderr)) = s.try_start() else {
            panic!("{user:?}: started")
        };
        assert_eq!(status.code(), Some(2), "{user:?}: {stderr}");
        assert!(
            stderr.contains("would belong to uid 65534 (nobody)") && stderr.contains("--user"),
            "{user:?}: {stderr}"
        );
        assert!(!state.exists(), "{user:?}: the directory was made");
    }
    let state = dir("nobodys", A, 0o700);
    let Err((status, stderr)) = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .try_start()
    else {
        panic!("a state dir of nobody's was accepted")
    };
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("owned by uid 65534"), "{stderr}");
    // Outside review r55 F2: the month's ledger in an accepted directory, owned by another
    // user, writable by others, or a hard link to another user's file, was replayed (and
    // rewritten by that user). Refused; the control (root's 0600) starts.
    let month = String::from_utf8(
        Command::new("date")
            .args(["-u", "+%Y-%m"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let ledger = format!("ledger-{}.log", month.trim());
    let theirs = d.path().join("theirs.log");
    std::fs::write(&theirs, "").unwrap();
    std::os::unix::fs::chown(&theirs, Some(B), Some(B)).unwrap();
    for (name, uid, mode, link, wants) in [
        ("theirs", B, 0o600, false, "owned by uid 4243 with mode 600"),
        ("open", 0, 0o666, false, "owned by uid 0 with mode 666"),
        ("linked", B, 0o600, true, "2 name(s)"),
        ("good", 0, 0o600, false, ""),
    ] {
        let state = dir(&format!("ledger-{name}"), 0, 0o700);
        let file = state.join(&ledger);
        if link {
            std::fs::hard_link(&theirs, &file).unwrap();
        } else {
            std::fs::write(&file, "").unwrap();
            std::os::unix::fs::chown(&file, Some(uid), Some(uid)).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let started = Spawn::new(&mock.responses_url())
            .governed(&policy, &state)
            .try_start();
        if wants.is_empty() {
            assert!(started.is_ok(), "{name}: the control is refused");
            continue;
        }
        let Err((status, stderr)) = started else {
            panic!("{name}: started")
        };
        assert_eq!(status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(wants) && stderr.contains(&ledger),
            "{name}: {stderr}"
        );
    }
}

/// Outside review r56 F1: a user who owned the month's ledger (before the refusal of r55 F2, or
/// in a state dir that was theirs) kept a descriptor open on it; the administrator chowned the
/// file to root instead of moving it aside; the proxy accepted it, and the user's descriptor
/// kept appending checksummed records (another user's spend, replayed at the next start). The
/// proxy now copies the month's records into a file it makes at each start and renames it over
/// the old name: the old descriptor still writes (the control: the write succeeds), into a
/// file no replay reads. And one proxy per state directory: a second one is refused.
#[test]
fn a_descriptor_held_on_an_old_ledger_writes_nowhere_the_proxy_reads() {
    use std::io::{BufRead, BufReader, Write};
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nday = { output_tokens = 1000 }\n");
    let mock = MockUpstream::start().unwrap();
    mock.set_default(stream_with_usage(5, 0, 5));
    let body = r#"{"model":"gpt-5","input":"hi","stream":true}"#;
    let state = d.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let month = String::from_utf8(
        Command::new("date")
            .args(["-u", "+%Y-%m"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let ledger = state.join(format!("ledger-{}.log", month.trim()));
    std::fs::write(&ledger, "").unwrap();
    std::os::unix::fs::chown(&ledger, Some(B), Some(B)).unwrap();
    std::fs::set_permissions(&ledger, std::fs::Permissions::from_mode(0o600)).unwrap();
    // B opens the file for appending while it could (the directory searchable, as it was
    // while it was theirs) and keeps the descriptor.
    let mut attacker = Command::new("sh");
    attacker
        .args([
            "-c",
            "exec 3>>\"$0\" && echo ready && read line && printf '%s\\n' \"$line\" >&3 && echo wrote",
        ])
        .arg(&ledger)
        .uid(B)
        .gid(B)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o711)).unwrap();
    let mut attacker = attacker.spawn().unwrap();
    let mut out = BufReader::new(attacker.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "B could not open the ledger");
    // The administrator: the directory private again (the proxy's account's: a root-owned one
    // is refused, outside review r73 F4), the file handed to root, not moved.
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let owner = common::ledger_account();
    std::os::unix::fs::chown(&state, Some(owner), Some(owner)).unwrap();
    std::os::unix::fs::chown(&ledger, Some(0), Some(0)).unwrap();

    let mut proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .start();
    assert_eq!(
        post_as(Some(A), proxy.port, "/v1/responses", body).status,
        200
    );
    // One proxy per state directory.
    let Err((status, stderr)) = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .try_start()
    else {
        panic!("a second proxy started on the same state dir")
    };
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("another responses-api-proxy is using it")
            && stderr.contains(&state.display().to_string()),
        "{stderr}"
    );

    // B writes a checksummed record through the old descriptor: A spent a million tokens.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let forged = codex_proxy_governance::Record::new(
        now_ms,
        A,
        "gpt-5",
        codex_proxy_governance::Usage {
            input_tokens: 0,
            cached_input_tokens: 0,
            output_tokens: 1_000_000,
        },
        200,
        0.0,
    )
    .line();
    let mut stdin = attacker.stdin.take().unwrap();
    stdin.write_all(&forged).unwrap();
    drop(stdin);
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "wrote\n", "control: the old descriptor still writes");
    assert!(attacker.wait().unwrap().success());

    // Replayed at the next start: A is still served, and the report knows nothing of it.
    proxy.signal("TERM");
    assert!(proxy.wait_exit(Duration::from_secs(10)).is_some());
    drop(proxy);
    let proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .start();
    let r = post_as(Some(A), proxy.port, "/v1/responses", body);
    assert_eq!(r.status, 200, "the forged record was replayed: {}", r.body);
    let rep = usage_json(&state, &["--today"]);
    let a = row(&rep, A, "gpt-5");
    assert!(
        a["output_tokens"].as_u64().unwrap() < 1000,
        "the forged record is in the ledger: {a}"
    );
}

/// Runs the proxy in a private mount namespace where the state dir is `mount_cmd`'s.
fn spawn_with_state_mount<'a>(
    mock: &MockUpstream,
    policy: &Path,
    state: &Path,
    mount_cmd: &str,
) -> Spawn<'a> {
    let mut s = Spawn::new(&mock.responses_url()).governed(policy, state);
    s.wrapper = vec![
        "unshare".into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        format!("{mount_cmd} && exec \"$0\" \"$@\""),
    ];
    s
}

#[test]
fn a_full_or_read_only_state_dir_fails_closed_for_budgets_only() {
    let d = policy_dir();
    // A (nobody) has a budget, root has none.
    let policy = write_policy(
        d.path(),
        "[user.nobody]\nday = { output_tokens = 1000000 }\n",
    );
    let mock = MockUpstream::start().unwrap();
    mock.set_default(stream_with_usage(5, 0, 5));
    let body = r#"{"model":"gpt-5","stream":true}"#;

    // Full: a 64 KiB tmpfs filled up once the ledger file exists.
    let state = d.path().join("full");
    std::fs::create_dir(&state).unwrap();
    // the dropped proxy's own directory (a root-owned one is refused: outside review r73 F4)
    let owner = common::ledger_account();
    let mount = format!(
        "mount -t tmpfs -o size=64k,mode=0700,uid={owner},gid={owner} tmpfs '{0}' && touch '{0}/'ledger-$(date -u +%Y-%m).log && chmod 600 '{0}'/ledger-* && (dd if=/dev/zero of='{0}/fill' bs=4k 2>/dev/null; true)",
        state.display()
    );
    let proxy = spawn_with_state_mount(&mock, &policy, &state, &mount).start();
    // The first request is served (the ledger was writable when it was admitted); its record
    // cannot be written.
    assert_eq!(
        post_as(Some(A), proxy.port, "/v1/responses", body).status,
        200
    );
    let log = proxy.wait_log("cannot write the usage ledger", 1);
    assert!(log.contains("No space left on device"), "{log}");
    // Now A is refused (no accounting, no spend) and told why; root, without budget, is served.
    let r = post_as(Some(A), proxy.port, "/v1/responses", body);
    assert_eq!(r.status, 503, "{}\n{}", r.body, proxy.stderr());
    assert_eq!(r.json()["error"]["code"], "ledger_unavailable");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("No space left"),
        "{}",
        r.body
    );
    assert_eq!(post_as(None, proxy.port, "/v1/responses", body).status, 200);
    // Space again (through the proxy's own mount namespace): the pending record is written and
    // A is served.
    std::fs::remove_file(format!(
        "/proc/{}/root{}/fill",
        proxy.pid(),
        state.display()
    ))
    .unwrap();
    assert_eq!(
        post_as(Some(A), proxy.port, "/v1/responses", body).status,
        200
    );
    let month = std::fs::read_dir(format!("/proc/{}/root{}", proxy.pid(), state.display()))
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("ledger-"))
        .unwrap();
    // the record is appended by the ledger's writer task after the answer: wait for it
    let count = |t: &str| t.lines().filter(|l| l.contains("\"u\":65534")).count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut text = std::fs::read_to_string(month.path()).unwrap();
    while count(&text) < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        text = std::fs::read_to_string(month.path()).unwrap();
    }
    assert_eq!(count(&text), 2, "{text}");
    drop(proxy);

    // Read-only from the start: A refused at once, root served.
    let state = d.path().join("ro");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    // the dropped proxy's own (as one it made itself), then read-only
    std::os::unix::fs::chown(&state, Some(owner), Some(owner)).unwrap();
    let mount = format!(
        "mount --bind '{0}' '{0}' && mount -o remount,bind,ro '{0}'",
        state.display()
    );
    let proxy = spawn_with_state_mount(&mock, &policy, &state, &mount).start();
    let r = post_as(Some(A), proxy.port, "/v1/responses", body);
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Read-only file system"),
        "{}",
        r.body
    );
    assert_eq!(post_as(None, proxy.port, "/v1/responses", body).status, 200);
    assert!(
        proxy.stderr().contains("usage ledger not writable"),
        "{}",
        proxy.stderr()
    );
}

#[test]
fn the_ledger_after_repeated_sigkill_mid_load_matches_the_mock() {
    let d = policy_dir();
    let policy = write_policy(
        d.path(),
        "[default]\nmonth = { output_tokens = 1000000000 }\n",
    );
    let state = d.path().join("state");
    let mock = MockUpstream::start().unwrap();
    mock.set_recording(false);
    mock.set_default(MockResponse::json(serde_json::json!({
        "id": "r", "model": "gpt-5", "usage": {"input_tokens": 3, "output_tokens": 7}
    })));
    const CLIENTS: usize = 4;
    const ROUNDS: usize = 4;
    for _ in 0..ROUNDS {
        let mut proxy = Spawn::new(&mock.responses_url())
            .governed(&policy, &state)
            .start();
        // Serving starts after the confinement step.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !proxy.stderr().contains("confined") {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
        let port = proxy.port;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let body = br#"{"model":"gpt-5"}"#;
                    let mut ok = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let raw = format!(
                            "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                            body.len(),
                            String::from_utf8_lossy(body)
                        );
                        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { break };
                        use std::io::{Read, Write};
                        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                        if s.write_all(raw.as_bytes()).is_err() { break }
                        let mut out = Vec::new();
                        let _ = s.read_to_end(&mut out);
                        if out.starts_with(b"HTTP/1.1 200") { ok += 1 }
                    }
                    ok
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(400));
        proxy.signal("KILL");
        let _ = proxy.wait_exit(Duration::from_secs(10));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let served: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
        assert!(served > 0, "no request was served in the round");
    }
    let upstream = mock.with_state(|s| s.requests_total) as u64;
    let rep = usage_json(&state, &[]);
    let rows = rep["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rep}");
    let ledger = rows[0]["requests"].as_u64().unwrap();
    // Every record whole (tokens add up), at most the requests in flight at each kill missing.
    assert_eq!(rows[0]["output_tokens"].as_u64(), Some(7 * ledger));
    assert_eq!(rows[0]["input_tokens"].as_u64(), Some(3 * ledger));
    let in_flight = (CLIENTS * ROUNDS) as u64;
    assert!(
        ledger <= upstream && upstream - ledger <= in_flight,
        "ledger {ledger} vs upstream {upstream} (± {in_flight} in flight)"
    );
    assert!(
        upstream > 20,
        "too little load to mean anything: {upstream}"
    );
}

#[test]
fn the_openai_python_sdk_through_the_proxy_with_a_policy() {
    let d = policy_dir();
    let policy = write_policy(
        d.path(),
        "[default]\nmodels = [\"gpt-5*\"]\nrequests_per_minute = 2\nmax_output_tokens = 64\n",
    );
    let mock = MockUpstream::start().unwrap();
    mock.set_default(stream_with_usage(11, 0, 13));
    let proxy = Spawn::new(&mock.responses_url())
        .arg("--policy")
        .arg(policy.to_str().unwrap())
        .start();
    let script = r#"
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="not-needed", max_retries=0)
out = {}
stream = client.responses.create(model="gpt-5", input="hello", stream=True)
out["types"] = [e.type for e in stream]
try:
    client.responses.create(model="o3", input="hello")
except openai.PermissionDeniedError as e:
    out["denied"] = [e.status_code, e.body["rule"] if "rule" in (e.body or {}) else e.body]
try:
    client.responses.create(model="gpt-5-mini", input="x", stream=True)
    client.responses.create(model="gpt-5-mini", input="x", stream=True)
except openai.RateLimitError as e:
    out["limited"] = [e.status_code, e.response.headers.get("retry-after"), e.body.get("code") if isinstance(e.body, dict) else e.body]
print(json.dumps(out))
"#;
    let out = suite_test_support::python::with_openai_sdk()
        .args(["-c", script, &format!("http://127.0.0.1:{}/v1", proxy.port)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "SDK failed: {}\nproxy: {}",
        String::from_utf8_lossy(&out.stderr),
        proxy.stderr()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["types"].as_array().unwrap().last().unwrap(),
        "response.completed",
        "{v}"
    );
    assert_eq!(v["denied"][0], 403, "{v}");
    assert_eq!(v["denied"][1], "default.models", "{v}");
    assert_eq!(v["limited"][0], 429, "{v}");
    assert!(
        v["limited"][1]
            .as_str()
            .is_some_and(|s| s.parse::<u64>().is_ok()),
        "{v}"
    );
    assert_eq!(v["limited"][2], "rate_limited", "{v}");
    assert_eq!(mock.requests()[0].json().unwrap()["max_output_tokens"], 64);
}

/// Regression (found while benchmarking this slice): the ledger's `fdatasync` runs on a tokio
/// blocking thread, which idles in a timed `futex` wait; a stop (SIGSTOP/SIGCONT, a debugger
/// attaching) makes the kernel resume that wait with `restart_syscall`, which the seccomp
/// allow-list refused: the proxy exited with code 10 ("seccomp refused system call
/// restart_syscall"). Fails without the `restart_syscall` row.
#[test]
fn a_stopped_and_continued_proxy_with_a_ledger_keeps_serving() {
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nday = { output_tokens = 1000000 }\n");
    let state = d.path().join("state");
    let mock = MockUpstream::start().unwrap();
    mock.set_default(stream_with_usage(1, 0, 1));
    let mut proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .start();
    let body = r#"{"model":"gpt-5","stream":true}"#;
    // A written record makes the sync task hand the file to a blocking thread within a second.
    let threads = |pid: u32| -> u32 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while threads(proxy.pid()) < 2 {
        assert_eq!(post_as(None, proxy.port, "/v1/responses", body).status, 200);
        assert!(
            Instant::now() < deadline,
            "no blocking thread appeared: the test cannot run its check"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the blocking thread finish its sync and idle in its timed wait.
    std::thread::sleep(Duration::from_millis(300));
    proxy.signal("STOP");
    std::thread::sleep(Duration::from_millis(200));
    proxy.signal("CONT");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        proxy.wait_exit(Duration::from_millis(10)).is_none(),
        "the proxy died after SIGSTOP/SIGCONT: {}",
        proxy.stderr()
    );
    assert_eq!(post_as(None, proxy.port, "/v1/responses", body).status, 200);
}

/// Review r12 F4: an allowed user's concurrent large governed bodies killed the proxy with exit
/// 10 ("seccomp refused system call prctl"). mimalloc names every mapping it takes from the
/// kernel with `prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, .., "mimalloc")`; after confinement it
/// takes one whenever the heap first reaches a new 512 MiB stretch of address space (a 64 KiB
/// page-map leaf; the default 1 GiB arena starts at a random address, so the first boundary lies
/// anywhere from 0 to 512 MiB in: a load-dependent, random crash), a new arena, or an object
/// larger than an arena takes. `MIMALLOC_ARENA_MAX_OBJECT_SIZE=1MiB` makes that deterministic
/// (every allocation above 1 MiB goes to the kernel): the buffered 3 MB bodies below each make
/// the call. Fails without the `prctl(PR_SET_VMA)` row.
#[test]
fn large_governed_bodies_that_need_fresh_memory_from_the_kernel_keep_the_proxy_alive() {
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nmodels = [\"gpt-5*\"]\n");
    let state = d.path().join("state");
    let big = d.path().join("big.json");
    let pad = "A".repeat(3 * 1024 * 1024);
    std::fs::write(
        &big,
        format!(r#"{{"model":"gpt-5","input":"hi","metadata":{{"pad":"{pad}"}}}}"#),
    )
    .unwrap();
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mock = MockUpstream::start().unwrap();
    let mut proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .env("MIMALLOC_ARENA_MAX_OBJECT_SIZE", "1MiB")
        .env("MIMALLOC_VERBOSE", "1")
        .start();
    // The knob reached the allocator (mimalloc prints its options at start when verbose);
    // without it this test would check nothing.
    let log = proxy.stderr();
    assert!(
        log.contains("option 'arena_max_object_size': 1024 KiB"),
        "mimalloc did not take MIMALLOC_ARENA_MAX_OBJECT_SIZE: the test cannot run its check:\n{}",
        &log[..log.len().min(4000)]
    );
    let arg = format!("@{}", big.display());
    let port = proxy.port;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let arg = arg.clone();
            std::thread::spawn(move || post_as(Some(A), port, "/v1/responses", &arg).status)
        })
        .collect();
    // A client whose connection the dying proxy reset panics in `post_as`: status 0.
    let statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap_or(0)).collect();
    let died = proxy.wait_exit(Duration::from_millis(300));
    let log = proxy.stderr();
    assert!(
        died.is_none() && !log.contains("seccomp refused"),
        "the proxy died ({died:?}) under large governed bodies: {}",
        log.lines()
            .filter(|l| l.contains("seccomp") || l.contains("panic"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(statuses, vec![200; 4]);
    assert_eq!(mock.requests().len(), 4);
    // And it still answers.
    assert_eq!(
        post_as(
            Some(A),
            port,
            "/v1/responses",
            r#"{"model":"gpt-5","input":"hi"}"#
        )
        .status,
        200
    );
}

/// Review r12 F4's memory side: each governed request body is held whole before it is checked,
/// so without a bound every connection could hold `--max-body-bytes` at once. Over
/// `--max-buffered-bytes` a request gets 503 `proxy_busy` (with `Retry-After`) instead. A
/// client holds 700 KB of a 900 KB body unsent; another request's 400 KB would go over the 1 MiB
/// cap: 503. Control: once the first client is gone the same request is served, and a small one
/// is served while the first is held.
#[test]
fn governed_bodies_held_at_once_are_capped_and_the_cap_frees_when_they_go() {
    let mock = MockUpstream::start().unwrap();
    let (d, proxy) = governed_with_buffer(&mock, "1048576", "1048576");
    let holder = hold_body(&proxy, 900_000, 700_000);
    // Wait until the proxy has read (and counted) what was sent: a small request passes meanwhile.
    std::thread::sleep(Duration::from_millis(300));
    let small = r#"{"model":"gpt-5","input":"hi"}"#;
    assert_eq!(
        post_as(None, proxy.port, "/v1/responses", small).status,
        200
    );
    let big = d.path().join("big.json");
    std::fs::write(
        &big,
        format!(r#"{{"model":"gpt-5","input":"{}"}}"#, "a".repeat(400_000)),
    )
    .unwrap();
    let arg = format!("@{}", big.display());
    let r = post_as(None, proxy.port, "/v1/responses", &arg);
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (503, "proxy_busy".into()),
        "{}\n{}",
        r.body,
        proxy.stderr()
    );
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert!(proxy.stderr().contains("buffer cap"), "{}", proxy.stderr());
    // The holder goes away: its bytes are given back.
    drop(holder);
    served_within_10s(&proxy, &arg, "the cap was never given back");
    assert_eq!(mock.requests().len(), 2);
}

/// One user's share of `--max-buffered-bytes` (a quarter, at least one `--max-body-bytes`):
/// without it a user who sent bodies slowly on a few connections held the whole buffer, and
/// every other user's governed request got 503. Root holds 200 KB of a 250 KB body unsent; a
/// second root body would take root past its 300 KB share: 503 naming the share, although the
/// proxy's 1.2 MB cap is far off. Controls: uid 65534's 250 KB body is served meanwhile, as is a
/// small root request (inside root's share), and root's big request once the holder is gone.
#[test]
fn one_user_holds_at_most_a_quarter_of_the_buffer_for_governed_bodies() {
    use std::io::Read;
    let mock = MockUpstream::start().unwrap();
    let (_d, proxy) = governed_with_buffer(&mock, "300000", "1200000");
    let holder = hold_body(&proxy, 250_000, 200_000);
    // Until the proxy has read (and counted) what was sent.
    std::thread::sleep(Duration::from_millis(300));
    let mut second = hold_body(&proxy, 250_000, 200_000);
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = second.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("your share of the proxy's buffer"),
        "{answer}\n{}",
        proxy.stderr()
    );
    assert!(
        proxy.stderr().contains("share of the buffer cap"),
        "{}",
        proxy.stderr()
    );
    // Another user's body of the same size is served while root holds its share.
    let files = tempfile::Builder::new().prefix("share-").tempdir().unwrap();
    std::fs::set_permissions(files.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let big = files.path().join("big.json");
    std::fs::write(
        &big,
        format!(r#"{{"model":"gpt-5","input":"{}"}}"#, "a".repeat(240_000)),
    )
    .unwrap();
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o644)).unwrap();
    let arg = format!("@{}", big.display());
    let r = post_as(Some(A), proxy.port, "/v1/responses", &arg);
    assert_eq!(r.status, 200, "{}\n{}", r.body, proxy.stderr());
    let small = r#"{"model":"gpt-5","input":"hi"}"#;
    assert_eq!(
        post_as(None, proxy.port, "/v1/responses", small).status,
        200
    );
    // The holder goes away: root's share is back.
    drop(holder);
    served_within_10s(&proxy, &arg, "root's share was never given back");
}

/// A proxy under a policy that allows `gpt-5*`, with `--max-body-bytes max_body` and
/// `--max-buffered-bytes max_buffered` (the policy's directory comes back with it).
fn governed_with_buffer(
    mock: &MockUpstream,
    max_body: &str,
    max_buffered: &str,
) -> (tempfile::TempDir, Proxy) {
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nmodels = [\"gpt-5*\"]\n");
    let proxy = Spawn::new(&mock.responses_url())
        .arg("--policy")
        .arg(policy.to_str().unwrap())
        .arg("--max-body-bytes")
        .arg(max_body)
        .arg("--max-buffered-bytes")
        .arg(max_buffered)
        .start();
    (d, proxy)
}

/// A root connection that announces a body of `length` bytes and sends `send` of them (held
/// by the proxy, counted against the buffer, until the connection goes).
fn hold_body(proxy: &Proxy, length: usize, send: usize) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    write!(
        s,
        "POST /v1/responses HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n",
        proxy.host()
    )
    .unwrap();
    s.write_all(&vec![b' '; send]).unwrap();
    s
}

/// Posts `arg` (a curl body argument) as root until it is served (503 meanwhile), within 10 s.
fn served_within_10s(proxy: &Proxy, arg: &str, never: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = post_as(None, proxy.port, "/v1/responses", arg);
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(Instant::now() < deadline, "{never}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A raw HTTP/1.1 client as root (uid 0, under `[default]`): sends `body`, reads until `until`
/// appears in what came back (or the end), then closes the socket. Returns what it read.
fn post_and_leave(port: u16, body: &str, until: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if until.is_some_and(|u| String::from_utf8_lossy(&got).contains(u)) {
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// r12 F1: a client that read the whole answer and closed the socket before
/// `response.completed` was charged 0 tokens (the upstream bills them: unlimited spend past any
/// budget). The proxy now reads the rest of the stream for its usage; a stream that never
/// reports its usage (cut upstream) is charged the estimate. Control: the same stream read to
/// its end is charged the same.
#[test]
fn a_client_that_leaves_before_the_usage_event_is_charged_all_the_same() {
    let d = policy_dir();
    let policy = write_policy(
        d.path(),
        "[default]\nmax_output_tokens = 500\nday = { output_tokens = 100000 }\n",
    );
    let state = d.path().join("state");
    let mock = MockUpstream::start().unwrap();
    let paced = |frames: Vec<String>| MockResponse::SsePaced {
        frames,
        delay: Duration::from_millis(150),
    };
    let mut frames = match stream_with_usage(40, 0, 300) {
        MockResponse::SseChunked { frames } => frames,
        _ => unreachable!(),
    };
    // The answer's text is all there before the terminal event.
    frames.insert(
        2,
        sse_frame(
            "response.output_text.done",
            &serde_json::json!({"type":"response.output_text.done","text":"hello"}),
        ),
    );
    let proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .start();
    let body = r#"{"model":"gpt-5","input":"hi","stream":true}"#;

    // Control: read to the end.
    mock.push_response(paced(frames.clone()));
    let all = post_and_leave(proxy.port, body, None);
    assert!(all.contains("response.completed"), "{all}");
    proxy.wait_log("tokens_out=300", 1);

    // The attack: leave once the text is done, before `response.completed`.
    mock.push_response(paced(frames.clone()));
    let part = post_and_leave(proxy.port, body, Some("output_text.done"));
    assert!(!part.contains("response.completed"), "{part}");
    let log = proxy.wait_log("tokens_out=300", 2);
    assert!(
        log.lines()
            .any(|l| l.contains("outcome=\"client_gone\"") && l.contains("tokens_out=300")),
        "{log}"
    );

    // A stream cut by the upstream before its usage: charged the estimate (the ceiling, 500).
    mock.push_response(MockResponse::ResetMidStream {
        frames: frames[..2].to_vec(),
        delay: Duration::from_millis(10),
    });
    post_and_leave(proxy.port, body, None);
    let log = proxy.wait_log("tokens_out=500", 1);
    assert!(log.contains("estimated"), "{log}");

    // Outside review r13 F3: a successful answer that ends normally without `usage` is charged
    // the estimate too (it was free).
    mock.push_response(MockResponse::json(
        serde_json::json!({"id": "r9", "object": "response", "output": []}),
    ));
    let plain = post_and_leave(proxy.port, r#"{"model":"gpt-5","input":"hi"}"#, None);
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    let log = proxy.wait_log("tokens_out=500", 2);
    assert!(
        log.contains("the response reported no usage: estimated"),
        "{log}"
    );

    let rep = usage_json(&state, &[]);
    let root = row(&rep, 0, "gpt-5");
    assert_eq!(root["requests"].as_u64(), Some(4), "{rep}");
    assert_eq!(
        root["output_tokens"].as_u64(),
        Some(300 + 300 + 500 + 500),
        "{rep}"
    );
    // 40 + 40 + the forwarded bodies' bytes / 4.
    assert!(root["input_tokens"].as_u64().unwrap() > 80, "{rep}");
}

/// Outside review r13 F1: streams abandoned when the proxy stops (a client that leaves as the
/// drain begins, or keeps streams open through a restart) were never booked. At shutdown the
/// proxy now waits a little for the reads of abandoned responses (booked with their real usage)
/// and books what is still open with its estimate. Control: the short stream gets its real
/// usage, not the estimate.
#[test]
fn responses_abandoned_when_the_proxy_stops_are_booked() {
    let d = policy_dir();
    let policy = write_policy(
        d.path(),
        "[default]\nmax_output_tokens = 500\nday = { output_tokens = 100000 }\n",
    );
    let state = d.path().join("state");
    let mock = MockUpstream::start().unwrap();
    let frames = |deltas: usize| {
        let mut f = match stream_with_usage(40, 0, 300) {
            MockResponse::SseChunked { frames } => frames,
            _ => unreachable!(),
        };
        let delta = f[1].clone();
        for _ in 0..deltas {
            f.insert(1, delta.clone());
        }
        MockResponse::SsePaced {
            frames: f,
            delay: Duration::from_millis(100),
        }
    };
    let mut proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .start();
    let body = r#"{"model":"gpt-5","input":"hi","stream":true}"#;
    // A short stream (ends in ~1 s) and a long one (~30 s), both left after their first delta.
    mock.push_response(frames(8));
    post_and_leave(proxy.port, body, Some("output_text.delta"));
    mock.push_response(frames(300));
    post_and_leave(proxy.port, body, Some("output_text.delta"));
    proxy.signal("TERM");
    let status = proxy
        .wait_exit(Duration::from_secs(40))
        .expect("the proxy stops within the abandoned-reads deadline");
    assert!(status.success(), "{status:?}: {}", proxy.stderr());
    let log = proxy.stderr();
    assert!(log.contains("each charged its estimate"), "{log}");
    let rep = usage_json(&state, &[]);
    let root = row(&rep, 0, "gpt-5");
    assert_eq!(root["requests"].as_u64(), Some(2), "{rep}");
    // 300 (the short one, read to its end) + 500 (the long one's estimate: the ceiling).
    assert_eq!(root["output_tokens"].as_u64(), Some(800), "{rep}");
}

/// Outside review r13 F4: past the global cap on reads of abandoned responses, an abandoned
/// response is charged the estimate, which under-charges a request whose input the upstream
/// expands (a file referenced by id); one user could fill the cap alone. A user with 32 such
/// reads in progress gets 429 `abandoned_reads` for new requests; another user is served.
#[test]
fn one_user_cannot_abandon_more_than_32_responses_at_once() {
    let d = policy_dir();
    // A ceiling: without one, output has no bound and a second request of root's would wait
    // for the first (r59 F5) before the abandoned-reads cap is reached.
    let policy = write_policy(
        d.path(),
        "[default]\nmax_output_tokens = 100\nday = { output_tokens = 1000000 }\n",
    );
    let state = d.path().join("state");
    let mock = MockUpstream::start().unwrap();
    let mut long = match stream_with_usage(40, 0, 300) {
        MockResponse::SseChunked { frames } => frames,
        _ => unreachable!(),
    };
    let delta = long[1].clone();
    for _ in 0..200 {
        long.insert(1, delta.clone());
    }
    for _ in 0..32 {
        mock.push_response(MockResponse::SsePaced {
            frames: long.clone(),
            delay: Duration::from_millis(100),
        });
    }
    mock.set_default(stream_with_usage(1, 0, 1));
    let proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .start();
    let body = r#"{"model":"gpt-5","input":"hi","stream":true}"#;
    for _ in 0..32 {
        post_and_leave(proxy.port, body, Some("output_text.delta"));
    }
    // The 33rd from the same user (root): refused while the 32 are read on.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let r = post_and_leave(proxy.port, body, None);
        if r.starts_with("HTTP/1.1 429") || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(refused.contains("abandoned_reads"), "{refused}");
    // Control: another local user is served meanwhile.
    let other = post_as(Some(A), proxy.port, "/v1/responses", body);
    assert_eq!(other.status, 200, "{}", other.body);
}

/// Outside review r64 F1: a user with a range in `/etc/subuid` (and `newuidmap`) ran clients
/// under uids of it; each got a `[default]` budget of its own (10.8x the day's input budget
/// through five of them) and escaped the user's own `[user.X]` section. A uid inside a range
/// answers as the range's owner now (`--subuid-file`): once the owner's budget is spent, its
/// subordinate uid is refused too (429 naming the owner's rule), and the ledger books it to the
/// owner. Control: with the range not listed, the same uid has a budget of its own.
#[test]
fn a_subordinate_uid_spends_its_owners_budget() {
    const SUB: u32 = 231_072;
    let d = policy_dir();
    let policy = write_policy(
        d.path(),
        "[default]\nmodels = [\"gpt-5*\"]\nmax_output_tokens = 500\nday = { output_tokens = 100 }\n",
    );
    let mock = MockUpstream::start().unwrap();
    mock.set_default(stream_with_usage(5, 0, 120));
    let body = r#"{"model":"gpt-5","input":"hi","stream":true}"#;
    let subuid = d.path().join("subuid");
    for (listed, sub_status) in [(true, 429), (false, 200)] {
        let ranges = if listed {
            format!("# test ranges\n{A}:{}:65536\n", SUB - 5)
        } else {
            String::new()
        };
        std::fs::write(&subuid, ranges).unwrap();
        let state = d.path().join(format!("state-{listed}"));
        let proxy = Spawn::new(&mock.responses_url())
            .governed(&policy, &state)
            .arg("--subuid-file")
            .arg(subuid.to_str().unwrap())
            .start();
        // the owner spends its day (120 > 100 output tokens)
        assert_eq!(
            post_as(Some(A), proxy.port, "/v1/responses", body).status,
            200
        );
        assert_eq!(
            post_as(Some(A), proxy.port, "/v1/responses", body).status,
            429
        );
        let r = post_as(Some(SUB), proxy.port, "/v1/responses", body);
        assert_eq!(r.status, sub_status, "listed {listed}: {}", r.body);
        if listed {
            assert!(r.body.contains("budget_exhausted"), "{}", r.body);
            drop(proxy);
            let rep = usage_json(&state, &[]);
            let uids: Vec<u64> = rep["rows"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| r["uid"].as_u64())
                .collect();
            assert_eq!(uids, [u64::from(A)], "{rep}");
        }
    }
}

/// `--subuid-file` is read with the policy file's checks: a file others may write (a range in
/// it would make another user's uid answer as whoever wrote it) stops the start (exit 2,
/// named); a missing file is no ranges.
#[test]
fn a_subuid_file_others_may_write_is_refused() {
    let d = policy_dir();
    let subuid = d.path().join("subuid");
    std::fs::write(&subuid, "65534:100000:65536\n").unwrap();
    std::fs::set_permissions(&subuid, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let mock = MockUpstream::start().unwrap();
    let Err((status, stderr)) = Spawn::new(&mock.responses_url())
        .arg("--subuid-file")
        .arg(subuid.to_str().unwrap())
        .try_start()
    else {
        panic!("a subuid file others may write was accepted");
    };
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--subuid-file"), "{stderr}");
    // control: missing is no ranges, the proxy serves
    let missing = d.path().join("none");
    let proxy = Spawn::new(&mock.responses_url())
        .arg("--subuid-file")
        .arg(missing.to_str().unwrap())
        .start();
    assert!(proxy.port > 0);
}

/// Outside review r67 F1: with two owners' ranges overlapping, the first line's owner answered
/// for their common uids, so one of them spent the other's budget under the other's rules
/// (`newuidmap` lets both map those uids). Such a uid is nobody's now: 403 for every request
/// (the audit reason names both owners), and the start-up log names the overlap. Control: the
/// same uid in one owner's range alone is served.
#[test]
fn a_uid_in_two_owners_ranges_is_refused() {
    const SUB: u32 = 231_072;
    let d = policy_dir();
    let policy = write_policy(
        d.path(),
        "[default]\nmodels = [\"gpt-5*\"]\nmax_output_tokens = 500\n",
    );
    let mock = MockUpstream::start().unwrap();
    mock.set_default(stream_with_usage(5, 0, 20));
    let body = r#"{"model":"gpt-5","input":"hi","stream":true}"#;
    let subuid = d.path().join("subuid");
    for (ranges, status) in [
        (
            format!("{B}:{}:100\n{A}:0x{:x}:100\n", SUB - 5, SUB - 50),
            403,
        ),
        (format!("{B}:{}:100\n", SUB - 5), 200),
    ] {
        std::fs::write(&subuid, &ranges).unwrap();
        let proxy = Spawn::new(&mock.responses_url())
            .arg("--policy")
            .arg(policy.to_str().unwrap())
            .arg("--subuid-file")
            .arg(subuid.to_str().unwrap())
            .start();
        let r = post_as(Some(SUB), proxy.port, "/v1/responses", body);
        assert_eq!(r.status, status, "{ranges}: {}", r.body);
        if status == 403 {
            assert!(proxy.stderr().contains("overlap"), "{}", proxy.stderr());
        }
    }
}

/// Outside review r73 F1: request bodies were checked on the event loop, so one user's large
/// body (a 10 MB `input` of 170,000 items took 0.3 s; 16 at once held every other user's
/// requests for 1.3 s, up to 4 s) stalled everyone. A body over 64 KiB is now checked on a
/// thread of the blocking pool, one at a time per user: uid 65534's 60 MB body of 2,000,000
/// items (seconds to check in a debug build; the test fails loudly if it took under 1 s) is
/// in flight while uid 4243 sends small requests one after another: none of them takes a
/// quarter of the large one's time, and all are served. (Checked on the loop, one small request
/// waited for the whole check.)
#[test]
fn a_large_body_is_checked_off_the_event_loop_while_other_users_are_served() {
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nmodels = [\"gpt-5*\"]\n");
    let state = d.path().join("state");
    let big = d.path().join("big.json");
    let items = vec![r#"{"role":"user","content":"x"}"#; 2_000_000].join(",");
    std::fs::write(&big, format!(r#"{{"model":"gpt-5","input":[{items}]}}"#)).unwrap();
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mock = MockUpstream::start().unwrap();
    let proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .arg("--max-body-bytes")
        .arg("67108864")
        .arg("--max-buffered-bytes")
        .arg("268435456")
        .start();
    let port = proxy.port;
    let start = std::time::Instant::now();
    let arg = format!("@{}", big.display());
    let large = std::thread::spawn(move || {
        let r = post_as(Some(A), port, "/v1/responses", &arg);
        (r.status, start.elapsed())
    });
    // uid 4243's small requests one after another while the large one is in flight (read,
    // then checked): the slowest of them
    let mut slowest = Duration::ZERO;
    let mut served = 0;
    while !large.is_finished() {
        let t = std::time::Instant::now();
        let r = post_as(
            Some(B),
            port,
            "/v1/responses",
            r#"{"model":"gpt-5","input":"hi"}"#,
        );
        assert_eq!(r.status, 200, "{}", proxy.stderr());
        slowest = slowest.max(t.elapsed());
        served += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let (large_status, large_at) = large.join().unwrap();
    assert_eq!(large_status, 200, "{}", proxy.stderr());
    assert!(
        large_at > Duration::from_secs(1) && served >= 2,
        "the large body took only {large_at:?} ({served} small requests meanwhile): the test cannot run its check"
    );
    assert!(
        slowest < large_at / 4,
        "a small request took {slowest:?} while the large body ({large_at:?}) was checked"
    );
}

/// Outside review r73 F2: a governed request with `Content-Encoding: br` and a plain body was
/// checked (and rewritten) as plain JSON and forwarded with the header: the upstream could read
/// another request than the one checked. A coded body is refused (415 `coded_body`, nothing
/// sent upstream); control: `identity` and no header are served.
#[test]
fn a_coded_request_body_is_refused_under_a_policy() {
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nmodels = [\"gpt-5*\"]\n");
    let state = d.path().join("state");
    let mock = MockUpstream::start().unwrap();
    let proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .start();
    let status_with = |coding: Option<&str>| {
        let mut c = Command::new("curl");
        c.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(["-H", "content-type: application/json"]);
        // `A|B`: two header lines
        for v in coding.into_iter().flat_map(|v| v.split('|')) {
            c.args(["-H", &format!("content-encoding: {v}")]);
        }
        let out = c
            .args(["--data-binary", r#"{"model":"gpt-5","input":"hi"}"#])
            .arg(format!("http://127.0.0.1:{}/v1/responses", proxy.port))
            .output()
            .expect("curl must be installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(status_with(Some("br")), "415");
    assert_eq!(status_with(Some("gzip")), "415");
    // outside review r77 F1: a second line, or a list
    assert_eq!(status_with(Some("identity|br")), "415");
    assert_eq!(status_with(Some("identity, gzip")), "415");
    assert!(mock.requests().is_empty(), "a coded body went upstream");
    assert_eq!(status_with(Some("identity")), "200");
    assert_eq!(status_with(None), "200");
    assert_eq!(mock.requests().len(), 2);
}

/// Outside review r81 F1: refusals are answered at once and hyper serves up to 16 pipelined
/// requests of a connection per turn of the event loop, so one user's 256 connections, each
/// full of pipelined requests the policy refuses, held another user's requests for whole
/// rounds (p50 162 ms through the upstream, 93-117 ms for requests the proxy answers itself).
/// A request that follows an error on its connection now waits for the loop's next turn. Here
/// root's 128 connections pipeline refused requests while uid 4243's requests (refused too:
/// the proxy's own work only) are timed against the same requests on the quiet proxy (debug
/// build, CI running beside it: 12 ms quiet, 62 ms with the turn, 611 ms without, run and seen).
#[test]
fn pipelined_refusals_on_many_connections_do_not_hold_another_user() {
    let body = r#"{"model":"o3","input":"hi"}"#;
    let (quiet, during) = another_user_during_flood(128, |port| {
        format!(
            "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .repeat(64)
    });
    assert!(
        during < quiet * 5 + Duration::from_millis(150),
        "another user's requests took {during:?} (median; {quiet:?} on the quiet proxy) while 128 connections pipelined refused requests"
    );
}

/// Root's `connections` connections to a governed proxy (`models = ["gpt-5*"]`) write
/// `payload(port)` over and over (their answers read and dropped) while uid 4243's refused
/// requests are timed: the median on the quiet proxy, and during the flood.
fn another_user_during_flood(
    connections: usize,
    payload: impl Fn(u16) -> String,
) -> (Duration, Duration) {
    another_user_during_flood_with(connections, payload, B, r#"{"model":"o3","input":"hi"}"#)
}

/// A governed proxy whose policy allows only `gpt-5*` (so model `o3` is refused with 403), its
/// policy and state directory, and its mock upstream.
fn refusing_proxy() -> (tempfile::TempDir, MockUpstream, Proxy) {
    let (d, _state, mock, proxy) = governed_proxy("[default]\nmodels = [\"gpt-5*\"]\n");
    (d, mock, proxy)
}

/// A proxy governed by the policy `text`: the directory holding the policy and the state
/// directory, the state directory, the mock upstream and the proxy.
fn governed_proxy(text: &str) -> (tempfile::TempDir, std::path::PathBuf, MockUpstream, Proxy) {
    let d = policy_dir();
    let policy = write_policy(d.path(), text);
    let state = d.path().join("state");
    let mock = MockUpstream::start().unwrap();
    let proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .start();
    (d, state, mock, proxy)
}

/// [`another_user_during_flood`] with the other user's uid and refused body.
fn another_user_during_flood_with(
    connections: usize,
    payload: impl Fn(u16) -> String,
    victim: u32,
    victim_body: &'static str,
) -> (Duration, Duration) {
    use std::io::{Read, Write};
    let (_d, _mock, proxy) = refusing_proxy();
    let port = proxy.port;
    let other = move || common::timed_refused_body(victim, port, victim_body);
    let quiet = common::median((0..10).map(|_| other()).collect());
    let payload = payload(port);
    let flooding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut threads = Vec::new();
    for _ in 0..connections {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut r = s.try_clone().unwrap();
        let (payload, flooding) = (payload.clone(), flooding.clone());
        let mut w = s;
        threads.push(std::thread::spawn(move || {
            while flooding.load(std::sync::atomic::Ordering::Relaxed) {
                if w.write_all(payload.as_bytes()).is_err() {
                    break;
                }
            }
        }));
        threads.push(std::thread::spawn(move || {
            let mut sink = [0u8; 65536];
            while matches!(r.read(&mut sink), Ok(n) if n > 0) {}
        }));
    }
    let during = common::timings_during_flood(other);
    flooding.store(false, std::sync::atomic::Ordering::Relaxed);
    let during_median = common::median(during.clone());
    drop(proxy);
    for t in threads {
        let _ = t.join();
    }
    eprintln!("quiet median {quiet:?}; during the flood: median {during_median:?}: {during:?}");
    (quiet, during_median)
}

/// Outside review r83 F1: refused bodies just under the size then checked off the event loop
/// (64 KiB: 0.23 ms of parsing each, release build) on 256 kept-alive connections held another
/// user's requests at p50 226 ms: every connection put one check on every turn of the loop. A
/// body over 1 KiB is now checked off the loop, one at a time per uid slot. Here root's 64
/// connections send refused bodies of 60 KiB back to back while uid 4243's refused requests
/// are timed against the quiet proxy (debug build, sandbox tests running beside it: median
/// 21 ms against 11 ms quiet; with the threshold at 64 KiB 344 ms against 8 ms, run and seen).
#[test]
fn refused_bodies_just_under_64_kib_on_many_connections_do_not_hold_another_user() {
    let tools = vec![r#"{"type":"x"}"#; 4800].join(",");
    let body = format!(r#"{{"model":"o3","input":"hi","tools":[{tools}]}}"#);
    assert!(body.len() > 60_000 && body.len() < 64 * 1024);
    let (quiet, during) = another_user_during_flood(64, |port| {
        format!(
            "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    });
    assert!(
        during < quiet * 5 + Duration::from_millis(150),
        "another user's requests took {during:?} (median; {quiet:?} on the quiet proxy) while 64 connections sent refused 60 KiB bodies"
    );
}

/// Outside review r78 F3: every refused request or message wrote an audit line, so one user's
/// flood of refusals (188 MB of log in 5 s from one WebSocket session) could fill the disk the
/// log is on, or push the journal into its rate limit, which then drops other users' lines. A
/// uid's refusal lines are now written one by one up to a burst of 100, then 20 a second; the
/// rest are counted in one summary line per uid and second. Here root's 400 pipelined refusals
/// give 100 (and a few) lines plus a summary whose count makes up the 400, while uid 4243's one
/// refusal is logged in full (with the limit off: 400 lines, run and seen).
#[test]
fn a_flood_of_refusals_is_summarised_in_the_log_and_another_users_refusal_is_not() {
    use std::io::{Read, Write};
    let (_d, _mock, proxy) = refusing_proxy();
    let port = proxy.port;
    let body = r#"{"model":"o3","input":"hi"}"#;
    let requests = format!(
        "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .repeat(400);
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(requests.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while String::from_utf8_lossy(&got)
        .matches("HTTP/1.1 403")
        .count()
        < 400
    {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "the proxy closed the connection");
        got.extend_from_slice(&buf[..n]);
    }
    common::timed_refused_request(B, port);
    let log = proxy.wait_log("refused_not_logged", 1);
    let logged = log
        .lines()
        .filter(|l| {
            l.contains("audit: request")
                && l.contains(" uid=0 ")
                && l.contains("outcome=\"refused\"")
        })
        .count();
    let summarised: u64 = log
        .lines()
        .filter(|l| l.contains("refused_not_logged") && l.contains("uid=0 "))
        .map(|l| {
            l.split("refused_not_logged=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert!(
        (100..150).contains(&logged),
        "{logged} refusal lines of uid 0 written one by one:\n{log}"
    );
    assert_eq!(logged as u64 + summarised, 400, "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(&format!(" uid={B} ")) && l.contains("outcome=\"refused\"")),
        "uid {B}'s refusal must be logged in full:\n{log}"
    );
}

/// Large bodies are checked off the loop one at a time per uid. The locks were shared by `uid %
/// 64`: with most real request bodies checked there since r83 F1's fix, a user whose uid
/// shared root's slot (uid 64 here) waited behind root's whole queue of refused 60 KiB bodies.
/// Each uid now has a lock of its own (debug build, root's 128 connections: uid 64's 2 KiB
/// refused requests took a median of 20 ms against 8 ms quiet; 321 ms with the shared slots,
/// run and seen).
#[test]
fn a_user_whose_uid_shares_a_slot_with_a_flooding_user_does_not_wait_behind_it() {
    static BODY: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!(r#"{{"model":"o3","input":"{}"}}"#, "x".repeat(2048)));
    let tools = vec![r#"{"type":"x"}"#; 4800].join(",");
    let body = format!(r#"{{"model":"o3","input":"hi","tools":[{tools}]}}"#);
    let (quiet, during) = another_user_during_flood_with(
        128,
        |port| {
            format!(
                "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        },
        64,
        BODY.as_str(),
    );
    assert!(
        during < quiet * 5 + Duration::from_millis(100),
        "uid 64's requests took {during:?} (median; {quiet:?} on the quiet proxy) while root's 128 connections sent refused 60 KiB bodies"
    );
}

/// Outside review r102 F1: the first response booked in a new UTC month opens that month's
/// ledger file while serving, under the seccomp allow-list, and the check of its owner called
/// `getresuid`, which the list refuses: the proxy exited 10 and nothing of the new month was
/// booked. Run under libfaketime (Debian `faketime`) from 23:59:57 UTC on 31 December:
/// responses on both sides of the change are served and booked, and the proxy lives.
#[test]
fn the_first_response_of_a_new_month_is_booked_and_the_proxy_lives() {
    const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} (Debian faketime) is needed: the test cannot run"
    );
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nday = { output_tokens = 1000000 }\n");
    let state = d.path().join("state");
    let mock = MockUpstream::start().unwrap();
    mock.set_default(MockResponse::json(serde_json::json!({
        "id": "resp_1",
        "usage": {"input_tokens": 1, "output_tokens": 2}
    })));
    let proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .env("LD_PRELOAD", LIBFAKETIME)
        .env("FAKETIME", "@2026-12-31 23:59:57")
        .start();
    let body = r#"{"model":"gpt-5","max_output_tokens":10}"#;
    let r = post_as(Some(A), proxy.port, "/v1/responses", body);
    assert_eq!(r.status, 200, "{}", r.body);
    std::thread::sleep(Duration::from_secs(4));
    for i in 0..3 {
        let r = post_as(Some(A), proxy.port, "/v1/responses", body);
        assert_eq!(
            r.status,
            200,
            "January request {i}: {}\n{}",
            r.body,
            proxy.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = proxy.stderr();
    assert!(!log.contains("seccomp refused"), "{log}");
    for (month, records) in [("2026-12", 1), ("2027-01", 3)] {
        let text = std::fs::read_to_string(state.join(format!("ledger-{month}.log")))
            .unwrap_or_else(|e| panic!("ledger-{month}.log: {e}\n{log}"));
        assert_eq!(
            text.lines().count(),
            records,
            "ledger-{month}.log: {text}\n{log}"
        );
    }
}

/// Outside review r102 F2: a start that failed after creating `--state-dir` (its port in use)
/// left the directory root's 0700, and every later start refused it (exit 9) until an
/// administrator chowned it. The directory is handed to the account as soon as it is made: the
/// failed start exits 4 and the next one serves.
#[test]
fn a_start_that_fails_after_creating_the_state_dir_leaves_it_to_the_next() {
    use std::os::unix::fs::MetadataExt;
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nday = { output_tokens = 100000 }\n");
    let state = d.path().join("state");
    let mock = MockUpstream::start().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = format!("127.0.0.1:{}", busy.local_addr().unwrap().port());
    let Err((status, stderr)) = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .arg("--listen")
        .arg(&taken)
        .try_start()
    else {
        panic!("started on a port in use")
    };
    assert_eq!(status.code(), Some(4), "{stderr}");
    let md = std::fs::metadata(&state).unwrap_or_else(|e| panic!("no state dir: {e}: {stderr}"));
    assert_eq!(md.uid(), common::ledger_account(), "{stderr}");
    // the next start (another port) uses it
    let proxy = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .start();
    let r = post_as(Some(A), proxy.port, "/v1/responses", r#"{"model":"gpt-5"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Outside review r103 F1: under a file-size limit (`LimitFSIZE=`, `prlimit --fsize`), the
/// first write past it (a dumped request body larger than the limit, or the ledger growing to
/// it) killed the proxy with SIGXFSZ, for every user, its last ledger record torn. SIGXFSZ is
/// ignored: the write fails with EFBIG like a full disk, and the proxy goes on answering.
#[test]
fn a_file_size_limit_never_kills_the_proxy() {
    let d = policy_dir();
    let policy = write_policy(d.path(), "[default]\nday = { output_tokens = 10000000 }\n");
    let state = d.path().join("state");
    let dumps = d.path().join("dumps");
    let mock = MockUpstream::start().unwrap();
    mock.set_default(MockResponse::json(serde_json::json!({
        "id": "resp_1",
        "usage": {"input_tokens": 1, "output_tokens": 2}
    })));
    let mut spawn = Spawn::new(&mock.responses_url())
        .governed(&policy, &state)
        .arg("--dump-dir")
        .arg(dumps.to_str().unwrap());
    spawn.wrapper = vec!["prlimit".into(), "--fsize=16384".into()];
    let proxy = spawn.start();
    // a body larger than the limit, dumped
    let big = format!(r#"{{"model":"gpt-5","input":"{}"}}"#, "a".repeat(40_000));
    let r = post_as(Some(A), proxy.port, "/v1/responses", &big);
    assert_ne!(
        r.status,
        0,
        "no answer to the large body\n{}",
        proxy.stderr()
    );
    // the ledger growing past the limit: every request is answered (served, or refused once
    // the ledger cannot be written: budgets fail closed)
    let small = r#"{"model":"gpt-5","max_output_tokens":10}"#;
    let mut served = 0;
    for i in 0..200 {
        let r = post_as(Some(A), proxy.port, "/v1/responses", small);
        assert_ne!(r.status, 0, "request {i} got no answer\n{}", proxy.stderr());
        served += usize::from(r.status == 200);
    }
    assert!(served > 0, "{}", proxy.stderr());
    let log = proxy.stderr();
    assert!(!log.contains("seccomp refused"), "{log}");
    // the ledger reached the limit (the attack's condition), and the proxy is alive
    let ledger = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("ledger-")
        })
        .unwrap();
    assert!(
        std::fs::metadata(&ledger).unwrap().len() >= 8192,
        "the ledger stayed small: the test did not reach the limit\n{log}"
    );
    assert!(
        std::path::Path::new(&format!("/proc/{}", proxy.pid())).exists(),
        "{log}"
    );
}
