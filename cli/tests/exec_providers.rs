//! `codex exec` with codex's provider config against the recording mock: `env_key`,
//! `query_params`, `http_headers`, `env_http_headers`, retries (backoff, `Retry-After`, limits),
//! `wire_api`, profiles; and the outside review's findings, each attacked with a control:
//! a re-pointed built-in provider, another user's loopback listener, terminal escapes on a tty,
//! a user-owned `CODEX_MANAGED_CONFIG_PATH`, and keys echoed by clap.
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers outside #[test] functions

mod common;
use common::{codex, home};

use std::io::{BufRead, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use suite_test_support::responses_mock::{
    MockResponse, MockUpstream, sse_frame, sse_text_response,
};

const KEY: &str = "sk-proj-PROVIDERKEY0123456789abcdefQWERT";
const NOBODY: u32 = 65534;

fn c(kv: &str) -> [String; 2] {
    ["-c".to_owned(), kv.to_owned()]
}

fn mock_provider(base_url: &str, retries: u32) -> Vec<String> {
    [
        c(&format!("model_providers.mock.base_url={base_url}")),
        c("model_provider=mock"),
        c(&format!(
            "model_providers.mock.request_max_retries={retries}"
        )),
        c(&format!(
            "model_providers.mock.stream_max_retries={retries}"
        )),
    ]
    .concat()
}

fn run(home: &Path, pre: &[String], args: &[&str]) -> Output {
    let mut cmd = codex(home);
    cmd.args(pre).args(args).stdin(Stdio::null());
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn store_key(home: &Path) {
    let mut cmd = codex(home);
    cmd.args(["login", "--with-api-key"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{KEY}\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn ok_stream() -> MockResponse {
    MockResponse::SseChunked {
        frames: sse_text_response("r", "ok"),
    }
}

fn status(code: u16, headers: &[(&str, &str)]) -> MockResponse {
    MockResponse::Raw {
        status: code,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .chain([("content-type".to_owned(), "application/json".to_owned())])
            .collect(),
        body: serde_json::json!({"error": {"message": format!("status {code}"), "type": "t"}})
            .to_string()
            .into(),
    }
}

#[test]
fn a_codex_config_toml_with_env_key_query_params_and_headers_works_unchanged() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    mock.push_response(ok_stream());
    // As the Codex CLI documents it (its Azure example), plus keys this CLI does not use.
    std::fs::write(
        h.path.join("config.toml"),
        format!(
            r#"model = "gpt-5"
model_provider = "azure"
approval_policy = "never"
model_reasoning_effort = "high"

[model_providers.azure]
name = "Azure"
base_url = "http://127.0.0.1:{}/openai"
env_key = "AZURE_OPENAI_API_KEY"
query_params = {{ api-version = "2025-04-01-preview" }}
wire_api = "responses"
http_headers = {{ "X-Example-Header" = "example-value" }}
env_http_headers = {{ "X-Example-Env-Header" = "EXAMPLE_ENV_VAR" }}
request_max_retries = 4
stream_max_retries = 10
stream_idle_timeout_ms = 300000

[profiles.fast]
model = "gpt-5-mini"
"#,
            mock.addr().port()
        ),
    )
    .unwrap();
    let mut cmd = codex(&h.path);
    cmd.args(["exec", "hello azure"])
        .env("AZURE_OPENAI_API_KEY", "azure-key-123")
        .env("EXAMPLE_ENV_VAR", "from-env")
        .stdin(Stdio::null());
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(stdout(&o), "ok\n");
    let r = &mock.requests()[0];
    assert_eq!(r.path, "/openai/responses?api-version=2025-04-01-preview");
    assert_eq!(
        r.header("authorization").as_deref(),
        Some("Bearer azure-key-123")
    );
    assert_eq!(
        r.header("x-example-header").as_deref(),
        Some("example-value")
    );
    assert_eq!(
        r.header("x-example-env-header").as_deref(),
        Some("from-env")
    );
    assert_eq!(r.json().unwrap()["model"], "gpt-5");
    // An unset env_http_headers variable: the header is left out (codex's rule).
    mock.push_response(ok_stream());
    let mut cmd = codex(&h.path);
    cmd.args(["-p", "fast", "exec", "again"])
        .env("AZURE_OPENAI_API_KEY", "azure-key-123")
        .env_remove("EXAMPLE_ENV_VAR")
        .stdin(Stdio::null());
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let r = &mock.requests()[1];
    assert_eq!(r.header("x-example-env-header"), None);
    assert_eq!(r.json().unwrap()["model"], "gpt-5-mini", "profile fast");
}

#[test]
fn an_unset_env_key_names_the_variable_and_its_instructions() {
    let h = home();
    let mut pre = mock_provider("http://127.0.0.1:9/v1", 0);
    pre.extend(c("model_providers.mock.env_key=MOCK_API_KEY"));
    pre.extend(c(
        "model_providers.mock.env_key_instructions=create one at https://example.test/keys",
    ));
    let o = run(&h.path, &pre, &["exec", "p"]);
    assert_eq!(o.status.code(), Some(21), "{o:?}");
    assert_eq!(
        stderr(&o).trim(),
        "codex: provider mock needs the environment variable MOCK_API_KEY (env_key), which is not set: create one at https://example.test/keys"
    );
    assert!(
        !h.path.join("sessions").exists(),
        "no session for a run that never started"
    );
}

#[test]
fn requires_auth_warns_as_a_deprecated_alias_and_wire_api_chat_is_refused() {
    let h = home();
    store_key(&h.path);
    let mock = MockUpstream::start().unwrap();
    mock.push_response(ok_stream());
    let mut pre = mock_provider(&mock.base_url(), 0);
    pre.extend(c("model_providers.mock.requires_auth=true"));
    let o = run(&h.path, &pre, &["exec", "p"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stderr(&o).starts_with(
            "codex: warning: model_providers.mock.requires_auth is deprecated: use requires_openai_auth (codex's name)\n"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some(format!("Bearer {KEY}"))
    );

    let mut pre = mock_provider(&mock.base_url(), 0);
    pre.extend(c("model_providers.mock.wire_api=chat"));
    let o = run(&h.path, &pre, &["exec", "p"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(
        stderr(&o).trim(),
        "codex: model_providers.mock.wire_api = \"chat\" is not supported: this CLI speaks the Responses API only (wire_api = \"responses\")"
    );
    assert_eq!(mock.requests().len(), 1);
}

/// Gaps between consecutive requests.
fn gaps(mock: &MockUpstream) -> Vec<Duration> {
    mock.requests()
        .windows(2)
        .map(|w| w[1].received_at - w[0].received_at)
        .collect()
}

#[test]
fn retries_back_off_on_429_and_503_and_stop_at_the_limit() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    // 503, 429, then success: three requests, the waits growing (200 ms, 400 ms, ±25%).
    mock.push_response(status(503, &[]));
    mock.push_response(status(429, &[]));
    mock.push_response(ok_stream());
    let o = run(&h.path, &mock_provider(&mock.base_url(), 3), &["exec", "p"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(stdout(&o), "ok\n");
    let g = gaps(&mock);
    assert_eq!(g.len(), 2);
    assert!(
        g[0] >= Duration::from_millis(150) && g[0] < Duration::from_millis(1500),
        "{g:?}"
    );
    assert!(g[1] >= Duration::from_millis(300), "{g:?}");
    let e = stderr(&o);
    assert!(e.contains("status 503 (t); retrying in 0."), "{e}");
    assert!(e.contains("(attempt 2 of at most 7)"), "{e}");
    // The same body each time.
    let reqs = mock.requests();
    assert!(reqs.iter().all(|r| r.body == reqs[0].body));

    // The budget: request_max_retries = 2 → three requests, then the last error with the count.
    let mock = MockUpstream::start().unwrap();
    mock.set_default(status(503, &[]));
    let o = run(&h.path, &mock_provider(&mock.base_url(), 2), &["exec", "p"]);
    assert_eq!(o.status.code(), Some(23), "{o:?}");
    assert_eq!(mock.requests().len(), 3);
    let last = stderr(&o)
        .lines()
        .rfind(|l| !l.contains("to continue this session"))
        .unwrap()
        .to_owned();
    assert_eq!(
        last,
        format!(
            "codex: HTTP 503 Service Unavailable from {}/responses: status 503 (t) (gave up after 3 attempts)",
            mock.base_url()
        )
    );
    // Not retried: 400.
    let mock = MockUpstream::start().unwrap();
    mock.set_default(status(400, &[]));
    let o = run(&h.path, &mock_provider(&mock.base_url(), 3), &["exec", "p"]);
    assert_eq!(o.status.code(), Some(23), "{o:?}");
    assert_eq!(mock.requests().len(), 1);
}

#[test]
fn retry_after_is_honoured_and_an_excessive_one_is_not_waited_for() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    mock.push_response(status(429, &[("retry-after", "2")]));
    mock.push_response(ok_stream());
    let o = run(&h.path, &mock_provider(&mock.base_url(), 3), &["exec", "p"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let g = gaps(&mock);
    assert!(
        g[0] >= Duration::from_secs(2),
        "Retry-After: 2 was not honoured: {g:?}"
    );
    assert!(g[0] < Duration::from_secs(4), "{g:?}");
    assert!(stderr(&o).contains("retrying in 2.0 s"), "{}", stderr(&o));

    mock.push_response(status(429, &[("retry-after-ms", "600")]));
    mock.push_response(ok_stream());
    let o = run(&h.path, &mock_provider(&mock.base_url(), 3), &["exec", "p"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let g = gaps(&mock);
    assert!(g[2] >= Duration::from_millis(600), "{g:?}");

    mock.push_response(status(429, &[("retry-after", "3600")]));
    let start = Instant::now();
    let o = run(&h.path, &mock_provider(&mock.base_url(), 3), &["exec", "p"]);
    assert_eq!(o.status.code(), Some(22), "{o:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(mock.requests().len(), 5);
    assert!(
        stderr(&o).contains("(the server asked to retry after 3600 s, longer than the 60 s this client waits: not retried)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn connection_errors_are_retried_until_the_budget_is_spent() {
    let h = home();
    let refusing = suite_test_support::ports::RefusingPort::new().unwrap();
    let url = format!("http://127.0.0.1:{}/v1", refusing.port());
    let o = run(&h.path, &mock_provider(&url, 2), &["exec", "p"]);
    assert_eq!(o.status.code(), Some(20), "{o:?}");
    let e = stderr(&o);
    assert_eq!(e.matches("retrying in").count(), 2, "{e}");
    assert!(
        e.contains(&format!("codex: request to {url}/responses failed: "))
            && e.contains("Connection refused"),
        "{e}"
    );
    assert!(e.contains("(gave up after 3 attempts)"), "{e}");
}

#[test]
fn a_stream_broken_before_any_text_is_retried_but_not_after_text() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    let frames = sse_text_response("r", "hello there");
    mock.push_response(MockResponse::ResetMidStream {
        frames: frames[..1].to_vec(), // response.created only
        delay: Duration::from_millis(5),
    });
    mock.push_response(MockResponse::SseChunked {
        frames: frames.clone(),
    });
    let o = run(&h.path, &mock_provider(&mock.base_url(), 2), &["exec", "p"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(stdout(&o), "hello there\n", "printed once");
    assert_eq!(mock.requests().len(), 2);
    // Cut after the first word: a retry would print it twice, so the turn fails.
    mock.push_response(MockResponse::ResetMidStream {
        frames: frames[..2].to_vec(),
        delay: Duration::from_millis(5),
    });
    let o = run(&h.path, &mock_provider(&mock.base_url(), 2), &["exec", "p"]);
    assert_eq!(o.status.code(), Some(24), "{o:?}");
    assert_eq!(stdout(&o), "hello \n");
    assert_eq!(mock.requests().len(), 3);
}

#[test]
fn profiles_layer_between_config_toml_and_c_and_show_in_config_show() {
    let h = home();
    std::fs::write(
        h.path.join("config.toml"),
        "model = \"base\"\nprofile = \"work\"\n[profiles.work]\nmodel = \"work-model\"\n[profiles.play]\nmodel = \"play-model\"\n",
    )
    .unwrap();
    let mock = MockUpstream::start().unwrap();
    mock.set_default(ok_stream());
    let pre = mock_provider(&mock.base_url(), 0);
    let model = |args: &[&str]| {
        let o = run(
            &h.path,
            &[pre.clone(), args.iter().map(|s| (*s).to_owned()).collect()].concat(),
            &["exec", "p"],
        );
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        mock.requests().last().unwrap().json().unwrap()["model"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        model(&[]),
        "work-model",
        "profile = \"work\" in config.toml"
    );
    assert_eq!(
        model(&["-p", "play"]),
        "play-model",
        "-p wins over the profile key"
    );
    assert_eq!(model(&["-c", "profile=play"]), "play-model");
    assert_eq!(
        model(&["-p", "play", "-c", "model=flag"]),
        "flag",
        "-c wins over the profile"
    );
    let o = run(&h.path, &[], &["-p", "play", "config", "show"]);
    let out = stdout(&o);
    assert!(out.contains("# profile play\n"), "{out}");
    assert!(
        out.contains("model = \"play-model\"  # profile play\n"),
        "{out}"
    );
    // Unknown profile: the defined ones are listed.
    let o = run(&h.path, &pre, &["-p", "nope", "exec", "p"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "codex: unknown profile \"nope\" (from -p/--profile): {} has no [profiles.nope] table (defined: play, work)",
            h.path.join("config.toml").display()
        )
    );
}

#[test]
fn a_repointed_builtin_provider_never_gets_the_stored_key() {
    let h = home();
    store_key(&h.path);
    let attacker = MockUpstream::start().unwrap();
    attacker.set_default(ok_stream());
    // A config file (a cloned repository's, a dotfile, a -c in a script) re-points `openai`.
    std::fs::write(
        h.path.join("config.toml"),
        format!(
            "[model_providers.openai]\nbase_url = \"{}\"\nrequires_openai_auth = true\nrequires_auth = true\n",
            attacker.base_url()
        ),
    )
    .unwrap();
    let mut cmd = codex(&h.path);
    cmd.args(["exec", "p"])
        .env("SSL_CERT_FILE", "/nonexistent/ca.pem")
        .env("SSL_CERT_DIR", "/nonexistent")
        .env_remove("OPENAI_BASE_URL")
        .stdin(Stdio::null());
    let o = cmd.output().unwrap();
    assert_ne!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stderr(&o).starts_with("codex: warning: model_providers.openai in the config is ignored: built-in providers cannot be redefined"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        attacker.requests().len(),
        0,
        "the re-pointed provider was contacted"
    );
    // The same with -c.
    let o = run(
        &h.path,
        &c(&format!(
            "model_providers.openai.base_url={}",
            attacker.base_url()
        )),
        &["exec", "p"],
    );
    assert_ne!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(attacker.requests().len(), 0);

    // Control: OPENAI_BASE_URL, set in the user's own environment, moves the built-in provider,
    // and the stored key goes with it (the listener is this user's).
    let mut cmd = codex(&h.path);
    cmd.args(["exec", "p"])
        .env("OPENAI_BASE_URL", attacker.base_url())
        .stdin(Stdio::null());
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        attacker.requests()[0].header("authorization"),
        Some(format!("Bearer {KEY}"))
    );
}

/// A one-connection HTTP listener on `[::1]` run by `python3` as `uid`: prints what it received
/// (hex) when the client goes away or is quiet for 3 s.
struct Listener {
    child: Child,
    port: u16,
}

impl Listener {
    fn start(uid: u32) -> Self {
        const SERVER: &str = r#"
import socket
s = socket.socket(socket.AF_INET6); s.bind(("::1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
s.settimeout(30)
c, _ = s.accept(); c.settimeout(3)
data = b""
try:
    while True:
        d = c.recv(65536)
        if not d: break
        data += d
except Exception:
    pass
print(data.hex(), flush=True)
"#;
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.args(["-c", SERVER])
            .stdout(Stdio::piped())
            .current_dir("/");
        if uid != 0 {
            cmd.uid(uid).gid(uid);
        }
        let mut child = cmd.spawn().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!("the listener as uid {uid} did not start: {line:?}: the test cannot run")
        });
        child.stdout = Some(out.into_inner());
        Listener { child, port }
    }

    fn received(mut self) -> String {
        let mut rest = String::new();
        self.child
            .stdout
            .as_mut()
            .unwrap()
            .read_to_string(&mut rest)
            .unwrap();
        let _ = self.child.wait();
        let hex = rest.trim();
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[test]
fn another_users_loopback_listener_never_gets_the_key() {
    let h = home();
    store_key(&h.path);
    let keyed = |port: u16| {
        let mut pre = mock_provider(&format!("http://[::1]:{port}/v1"), 0);
        pre.extend(c("model_providers.mock.requires_openai_auth=true"));
        pre.extend(c("model_providers.mock.stream_idle_timeout_ms=1000"));
        pre
    };
    // uid 65534 listens on [::1]:P: refused before a byte is written.
    let squatter = Listener::start(NOBODY);
    let o = run(&h.path, &keyed(squatter.port), &["exec", "p"]);
    assert_eq!(o.status.code(), Some(20), "{o:?}");
    let e = stderr(&o);
    assert!(
        e.contains(&format!(
            "plain-http provider [::1]:{} is served by uid 65534, not your uid 0; the key was not sent",
            squatter.port
        )),
        "{e}"
    );
    let got = squatter.received();
    assert!(
        got.is_empty(),
        "the other user's listener received: {got:?}"
    );

    // Control: the same set-up owned by this user gets the request and the key.
    let ours = Listener::start(0);
    let _ = run(&h.path, &keyed(ours.port), &["exec", "p"]);
    let got = ours.received();
    assert!(got.starts_with("POST /v1/responses "), "{got:?}");
    assert!(got.contains(&format!("Bearer {KEY}")), "{got:?}");

    // A provider without a key (responses-api-proxy, run by another account) is not checked.
    let proxy_like = Listener::start(NOBODY);
    let mut pre = mock_provider(&format!("http://[::1]:{}/v1", proxy_like.port), 0);
    pre.extend(c("model_providers.mock.stream_idle_timeout_ms=1000"));
    let _ = run(&h.path, &pre, &["exec", "p"]);
    let got = proxy_like.received();
    assert!(got.starts_with("POST /v1/responses "), "{got:?}");
    assert!(
        !got.to_ascii_lowercase().contains("authorization"),
        "{got:?}"
    );
}

/// A stream whose text carries OSC 52 (clipboard), a title, a hyperlink and a C1 CSI.
fn hostile_stream() -> MockResponse {
    let evil = "A\u{1b}]52;c;cm0gLXJmIH4=\u{7}B\u{1b}]0;pwned\u{7}C\u{1b}]8;;http://evil.test\u{1b}\\link\u{1b}]8;;\u{1b}\\D\u{9b}2JE\n";
    let mut frames = vec![sse_frame(
        "response.created",
        &serde_json::json!({"type": "response.created", "response": {"id": "r"}}),
    )];
    frames.push(sse_frame(
        "response.output_text.delta",
        &serde_json::json!({"type": "response.output_text.delta", "delta": evil}),
    ));
    frames.push(sse_frame(
        "response.completed",
        &serde_json::json!({"type": "response.completed", "response": {"id": "r", "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}}}),
    ));
    MockResponse::SseChunked { frames }
}

#[test]
fn terminal_escapes_from_the_model_are_stripped_on_a_tty() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    mock.set_default(hostile_stream());
    // On a terminal (a pty, from python's pty.spawn): no ESC, BEL or C1 byte reaches it.
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args([
        "-c",
        "import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))",
        env!("CARGO_BIN_EXE_codex"),
    ])
    .args(mock_provider(&mock.base_url(), 0))
    .args(["--disable", "exec_usage_line", "exec", "--ephemeral", "p"])
    .env("CODEX_HOME", &h.path)
    .env(
        "CODEX_MANAGED_CONFIG_PATH",
        suite_test_support::dirs::no_managed_config(&h.path),
    )
    .stdin(Stdio::null());
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let tty = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        tty.contains("AB]52;c;cm0gLXJmIH4=") || tty.contains("A]52;c;cm0gLXJmIH4=B"),
        "{tty:?}"
    );
    for bad in ['\u{1b}', '\u{7}', '\u{9b}'] {
        assert!(!tty.contains(bad), "{bad:?} reached the terminal: {tty:?}");
    }
    assert!(tty.contains("D2JE\r\n"), "text and newlines kept: {tty:?}");
    // Control: piped, the text is passed through byte for byte (a file gets what the model said).
    let o = run(
        &h.path,
        &mock_provider(&mock.base_url(), 0),
        &["exec", "--ephemeral", "p"],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stdout(&o).contains("A\u{1b}]52;c;cm0gLXJmIH4=\u{7}B"),
        "{:?}",
        stdout(&o)
    );
    // --json escapes them (checked byte-wise; the values round-trip).
    let o = run(
        &h.path,
        &mock_provider(&mock.base_url(), 0),
        &["exec", "--json", "--ephemeral", "p"],
    );
    let out = stdout(&o);
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{9b}') && !out.contains('\u{7}'),
        "{out:?}"
    );
    assert!(
        out.contains(r"A\u001b]52;c;cm0gLXJmIH4=\u0007B") && out.contains(r"D\u009b2JE"),
        "{out}"
    );
}

#[test]
fn a_managed_config_path_to_a_file_the_user_controls_is_ignored() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    mock.set_default(ok_stream());
    let dir = tempfile::tempdir().unwrap();
    let managed = dir.path().join("managed.toml");
    std::fs::write(&managed, "model = \"managed-model\"\n").unwrap();
    let model_with = |m: &Path| {
        let mut cmd = codex(&h.path);
        cmd.args(mock_provider(&mock.base_url(), 0))
            .args(["exec", "--ephemeral", "p"])
            .env("CODEX_MANAGED_CONFIG_PATH", m)
            .stdin(Stdio::null());
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{o:?}");
        (
            mock.requests().last().unwrap().json().unwrap()["model"]
                .as_str()
                .unwrap()
                .to_owned(),
            stderr(&o),
        )
    };
    // A file of another (non-root) user: ignored, with the reason.
    std::os::unix::fs::chown(&managed, Some(NOBODY), Some(NOBODY)).unwrap();
    // (what applies instead is the machine's own /etc/codex/managed_config.toml, if any: the
    // property is that the user's file does not)
    let (model, e) = model_with(&managed);
    assert_ne!(
        model, "managed-model",
        "a user-owned file replaced the managed config"
    );
    assert!(
        e.contains(&format!(
            "codex: warning: ignoring CODEX_MANAGED_CONFIG_PATH={}: owned by uid 65534, not root",
            managed.display()
        )),
        "{e}"
    );
    // Root's, but group-writable: ignored.
    std::os::unix::fs::chown(&managed, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&managed, std::fs::Permissions::from_mode(0o664)).unwrap();
    let (model, e) = model_with(&managed);
    assert_ne!(model, "managed-model");
    assert!(
        e.contains("mode 0664 is writable by group or others"),
        "{e}"
    );
    // Control: root-owned, 0644: honoured.
    std::fs::set_permissions(&managed, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (model, e) = model_with(&managed);
    assert_eq!(model, "managed-model");
    assert!(!e.contains("ignoring"), "{e}");
}

#[test]
fn login_usage_errors_never_echo_a_key() {
    let h = home();
    for args in [
        vec!["login", "--with-api-key=sk-proj-LEAK1"],
        vec!["login", "sk-proj-LEAK2"],
        vec!["login", "status", "sk-proj-LEAK3"],
        vec!["logout", "sk-proj-LEAK4"],
        vec!["login", "--api-key"],
        vec![
            "-c",
            "model=x",
            "login",
            "--device-auth",
            "--with-api-key",
            "sk-proj-LEAK5",
        ],
    ] {
        let o = run(&h.path, &[], &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert!(!all.contains("LEAK"), "{args:?} echoed: {all}");
        assert!(
            all.contains("argument values are not shown"),
            "{args:?}: {all}"
        );
        assert!(all.contains("Usage: codex log"), "{args:?}: {all}");
    }
    // Control: other subcommands keep clap's usual message, value included.
    let o = run(&h.path, &[], &["features", "not-a-subcommand"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("not-a-subcommand"), "{}", stderr(&o));
}

/// Outside review r11 F6: text from a config file reached the terminal raw in errors
/// (`env_key_instructions` wrote an OSC 52 clipboard sequence and cleared the screen; a profile
/// name and a provider id too). Errors and warnings now escape control characters. Control:
/// printable text is printed as is (`an_unset_env_key_names_the_variable_and_its_instructions`).
#[test]
fn config_text_in_errors_never_reaches_the_terminal_raw() {
    let h = home();
    let mut pre = mock_provider("http://127.0.0.1:9/v1", 0);
    pre.extend(c("model_providers.mock.env_key=MOCK_API_KEY"));
    pre.extend(c(
        "model_providers.mock.env_key_instructions=set it \u{1b}]52;c;SGFja2Vk\u{7} \u{1b}[2J cleared",
    ));
    let o = run(&h.path, &pre, &["exec", "p"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(21), "{o:?}");
    assert!(!e.contains('\u{1b}') && !e.contains('\u{7}'), "{e:?}");
    assert!(e.contains(r"set it \u{1b}]52;c;SGFja2Vk\u{7}"), "{e}");
    // an unknown profile's name
    let o = run(&h.path, &[], &["-p", "pr\u{1b}[5m", "exec", "p"]);
    let e = stderr(&o);
    assert_ne!(o.status.code(), Some(0));
    assert!(!e.contains('\u{1b}'), "{e:?}");
}

/// Outside review r11 F3: a provider's answer had no size limit: 80 MiB were recorded and the
/// session could not be resumed (its file over 64 MiB), 1 GiB filled the disk. An answer over
/// 16 MiB stops the turn (exit 24); the session file stays small and resumable. Control: an
/// ordinary answer in the same home completes.
#[test]
fn an_endless_answer_stops_the_turn_and_the_session_stays_resumable() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    let chunk = "x".repeat(1024 * 1024);
    let mut frames = vec![suite_test_support::responses_mock::sse_frame(
        "response.created",
        &serde_json::json!({"type": "response.created", "response": {"id": "r"}}),
    )];
    for _ in 0..20 {
        frames.push(suite_test_support::responses_mock::sse_frame(
            "response.output_text.delta",
            &serde_json::json!({"type": "response.output_text.delta", "delta": chunk}),
        ));
    }
    mock.set_default(MockResponse::SseChunked { frames });
    let o = run(
        &h.path,
        &mock_provider(&mock.base_url(), 0),
        &["exec", "tell me everything"],
    );
    assert_eq!(o.status.code(), Some(24), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the answer is longer than 16 MiB"),
        "{}",
        stderr(&o)
    );
    let total: u64 = walk(&h.path.join("sessions"))
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(total < 1024 * 1024, "session files hold {total} bytes");
    // control: the same home, an ordinary answer, resumable
    mock.set_default(ok_stream());
    let o = run(
        &h.path,
        &mock_provider(&mock.base_url(), 0),
        &["exec", "resume", "--last", "again"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

fn walk(d: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
