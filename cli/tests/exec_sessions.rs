//! `codex exec` sessions end to end against the recording mock Responses API: the rollout file,
//! `codex exec resume` (by id, prefix, `--last`), `--json`, `--output-last-message`,
//! `codex sessions list`, and the bad inputs (unknown/ambiguous ids, torn or refused files,
//! `--last` with nothing recorded), plus a SIGKILL in the middle of a streamed turn.
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers outside #[test] functions

mod common;
use common::{codex, home};

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use suite_test_support::responses_mock::{
    MockResponse, MockUpstream, sse_frame, sse_text_response,
};

const KEY: &str = "sk-proj-SESSIONKEY0123456789abcdefQWERT";

fn provider_args(base_url: &str) -> Vec<String> {
    [
        format!("model_providers.mock.base_url={base_url}"),
        "model_provider=mock".into(),
        "model_providers.mock.request_max_retries=0".into(),
        "model_providers.mock.stream_max_retries=0".into(),
    ]
    .into_iter()
    .flat_map(|c| ["-c".to_owned(), c])
    .collect()
}

fn run(home: &Path, pre: &[String], args: &[&str]) -> Output {
    let mut c = codex(home);
    c.args(pre).args(args).stdin(Stdio::null());
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every `rollout-*.jsonl` under `$CODEX_HOME/sessions`.
fn session_files(home: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![home.join("sessions")];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "jsonl") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The id in the resume hint on stderr.
fn hinted_id(o: &Output) -> String {
    let e = stderr(o);
    let line = e
        .lines()
        .find(|l| l.starts_with("codex: to continue this session: codex exec resume "))
        .unwrap_or_else(|| panic!("no resume hint in {e}"));
    line.split_whitespace().nth(8).unwrap().to_owned()
}

fn message(role: &str, text: &str) -> serde_json::Value {
    let part = if role == "user" {
        "input_text"
    } else {
        "output_text"
    };
    serde_json::json!({"type": "message", "role": role, "content": [{"type": part, "text": text}]})
}

#[test]
fn a_session_is_recorded_privately_and_resumes_with_the_earlier_turns() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    mock.push_response(MockResponse::SseChunked {
        frames: sse_text_response("r1", "Paris is the capital."),
    });
    let pre = provider_args(&mock.base_url());
    let o = run(&h.path, &pre, &["exec", "Capital of France?"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let id = hinted_id(&o);

    // The file: codex's layout, modes and records; no credential or header in it.
    let files = session_files(&h.path);
    assert_eq!(files.len(), 1);
    let f = &files[0];
    let name = f.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("rollout-20") && name.ends_with(&format!("-{id}.jsonl")),
        "{name}"
    );
    assert_eq!(
        std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
        0o600
    );
    for d in [f.parent().unwrap(), &h.path.join("sessions")] {
        assert_eq!(
            std::fs::metadata(d).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
    let l = lines(f);
    assert_eq!(l.len(), 4, "{l:#?}");
    assert_eq!(l[0]["type"], "session_meta");
    assert_eq!(l[0]["payload"]["id"], id.as_str());
    assert_eq!(l[0]["payload"]["model_provider"], "mock");
    assert_eq!(l[0]["payload"]["model"], "gpt-5");
    assert_eq!(
        l[0]["payload"]["cwd"],
        std::env::current_dir().unwrap().display().to_string()
    );
    assert_eq!(l[1]["payload"], message("user", "Capital of France?"));
    assert_eq!(
        l[2]["payload"],
        message("assistant", "Paris is the capital.")
    );
    assert_eq!(l[3]["payload"]["type"], "token_count");
    assert_eq!(
        l[3]["payload"]["info"]["last_token_usage"]["total_tokens"],
        2
    );

    // Resume by id: the request carries the earlier turns, then the new input; same file.
    mock.push_response(MockResponse::SseChunked {
        frames: sse_text_response("r2", "About 2.1 million."),
    });
    let o = run(&h.path, &pre, &["exec", "resume", &id, "Population?"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(stdout(&o), "About 2.1 million.\n");
    assert_eq!(hinted_id(&o), id);
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].json().unwrap()["input"], "Capital of France?");
    assert_eq!(
        reqs[1].json().unwrap()["input"],
        serde_json::json!([
            message("user", "Capital of France?"),
            message("assistant", "Paris is the capital."),
            message("user", "Population?"),
        ])
    );
    assert!(
        reqs[1]
            .json()
            .unwrap()
            .get("previous_response_id")
            .is_none()
    );
    assert_eq!(session_files(&h.path), files, "appended to the same file");
    assert_eq!(lines(f).len(), 7);

    // Resume --last (this directory) and by a unique prefix: the third request has all four.
    mock.set_default(MockResponse::SseChunked {
        frames: sse_text_response("r3", "ok"),
    });
    let o = run(&h.path, &pre, &["exec", "resume", "--last", "Thanks"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let input = mock.requests()[2].json().unwrap()["input"].clone();
    assert_eq!(input.as_array().unwrap().len(), 5, "{input:#}");
    let o = run(&h.path, &pre, &["exec", "resume", &id[..8], "Bye"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        mock.requests()[3].json().unwrap()["input"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
}

#[test]
fn the_key_and_headers_never_reach_the_session_file() {
    let h = home();
    let mut c = codex(&h.path);
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
    let mock = MockUpstream::start().unwrap();
    mock.push_response(MockResponse::SseChunked {
        frames: sse_text_response("r", "fine"),
    });
    let mut pre = provider_args(&mock.base_url());
    pre.extend([
        "-c".into(),
        "model_providers.mock.requires_openai_auth=true".into(),
        "-c".into(),
        "model_providers.mock.http_headers.X-Team=blue".into(),
    ]);
    let o = run(&h.path, &pre, &["exec", "hello"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some(format!("Bearer {KEY}"))
    );
    let text = std::fs::read_to_string(&session_files(&h.path)[0]).unwrap();
    for needle in [KEY, "Bearer", "X-Team", "blue", "127.0.0.1"] {
        assert!(
            !text.contains(needle),
            "{needle} in the session file: {text}"
        );
    }
    assert!(!stdout(&o).contains(KEY) && !stderr(&o).contains(KEY));
}

#[test]
fn json_output_is_json_lines_in_the_documented_schema() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    let mut frames = sse_text_response("r", "two words");
    // The text carries terminal escapes: JSON escapes them (C0, DEL and C1).
    frames.insert(
        1,
        sse_frame(
            "response.output_text.delta",
            &serde_json::json!({"type": "response.output_text.delta", "delta": "\u{1b}]52;c;aGk=\u{7}\u{9b}"}),
        ),
    );
    mock.push_response(MockResponse::SseChunked { frames });
    let pre = provider_args(&mock.base_url());
    let o = run(&h.path, &pre, &["exec", "--json", "p"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{7}') && !out.contains('\u{9b}'),
        "{out:?}"
    );
    assert!(out.contains(r"\u001b]52;c;aGk=\u0007\u009b"), "{out}");
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "thread.started",
            "turn.started",
            "item.started",
            "item.delta",
            "item.delta",
            "item.delta",
            "item.completed",
            "turn.completed"
        ]
    );
    // The documented fields, with their types (docs/exec.md).
    let id = events[0]["thread_id"].as_str().unwrap();
    assert_eq!(hinted_id(&o), id);
    assert_eq!(
        events[2]["item"],
        serde_json::json!({"id": "item_0", "type": "agent_message", "text": ""})
    );
    let deltas: String = events[3..6]
        .iter()
        .map(|e| {
            assert_eq!(e["item_id"], "item_0");
            e["delta"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(deltas, "\u{1b}]52;c;aGk=\u{7}\u{9b}two words");
    assert_eq!(
        events[6]["item"],
        serde_json::json!({"id": "item_0", "type": "agent_message", "text": deltas})
    );
    assert_eq!(
        events[7]["usage"],
        serde_json::json!({"input_tokens": 1, "cached_input_tokens": 0, "output_tokens": 1})
    );
    for e in &events {
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        let allowed: &[&str] = match e["type"].as_str().unwrap() {
            "thread.started" => &["type", "thread_id"],
            "turn.started" => &["type"],
            "item.started" | "item.completed" => &["type", "item"],
            "item.delta" => &["type", "item_id", "delta"],
            "turn.completed" => &["type", "usage"],
            t => panic!("undocumented event {t}"),
        };
        assert!(keys.iter().all(|k| allowed.contains(&k.as_str())), "{e}");
    }
    assert!(
        !stderr(&o).contains("tokens used"),
        "usage is in turn.completed"
    );

    // A failed turn: turn.failed with the message, still JSON only on stdout.
    mock.push_response(MockResponse::Json {
        status: 400,
        body: serde_json::json!({"error": {"message": "bad model", "type": "invalid_request_error"}}),
    });
    let o = run(&h.path, &pre, &["exec", "--json", "p"]);
    assert_eq!(o.status.code(), Some(23), "{o:?}");
    let events: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = events.last().unwrap();
    assert_eq!(last["type"], "turn.failed");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("bad model"),
        "{last}"
    );
}

#[test]
fn output_last_message_is_written_0600_atomically() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    mock.push_response(MockResponse::SseChunked {
        frames: sse_text_response("r", "final answer"),
    });
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("last.txt");
    std::fs::write(&target, "old contents, world readable").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = run(
        &h.path,
        &provider_args(&mock.base_url()),
        &["exec", "-o", target.to_str().unwrap(), "p"],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "final answer");
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file left behind");
}

#[test]
fn sessions_list_shows_recent_sessions_as_text_and_json() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    mock.set_default(MockResponse::SseChunked {
        frames: sse_text_response("r", "ok"),
    });
    let pre = provider_args(&mock.base_url());
    let long = format!("first prompt {}", "x".repeat(100));
    let a = hinted_id(&run(&h.path, &pre, &["exec", &long]));
    std::thread::sleep(Duration::from_millis(30));
    let b = hinted_id(&run(&h.path, &pre, &["exec", "second\u{1b}[2J prompt"]));
    let o = run(&h.path, &[], &["sessions", "list"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows[0].starts_with(&b) && rows[1].starts_with(&a),
        "newest first: {out}"
    );
    assert!(
        rows[0].ends_with("second [2J prompt"),
        "controls neutralized: {out}"
    );
    assert!(
        rows[1].ends_with(&format!("first prompt {}...", "x".repeat(47))),
        "{out}"
    );
    let o = run(&h.path, &[], &["sessions", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v[0]["id"], b.as_str());
    assert_eq!(v[1]["first_prompt"], long.as_str());
    assert!(
        v[1]["path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{a}.jsonl"))
    );
    assert!(v[0]["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn unknown_and_ambiguous_ids_are_clear_errors_listing_candidates() {
    let h = home();
    let day = h.path.join("sessions/2025/01/02");
    std::fs::create_dir_all(&day).unwrap();
    for id in [
        "abcd0000-0000-4000-8000-000000000001",
        "abcd0000-0000-4000-8000-000000000002",
    ] {
        std::fs::write(
            day.join(format!("rollout-2025-01-02T03-04-05-{id}.jsonl")),
            "",
        )
        .unwrap();
    }
    let pre = provider_args("http://127.0.0.1:9/v1");
    let o = run(&h.path, &pre, &["exec", "resume", "abcd", "p"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(
        stderr(&o).trim(),
        "codex: session id abcd is ambiguous: it matches abcd0000-0000-4000-8000-000000000001, abcd0000-0000-4000-8000-000000000002"
    );
    let o = run(&h.path, &pre, &["exec", "resume", "ffff0000", "p"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "codex: no session with id ffff0000 under {}",
            h.path.join("sessions").display()
        )
    );
    let o = run(&h.path, &pre, &["exec", "resume", "../../etc/passwd", "p"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("invalid session id"), "{}", stderr(&o));
    let o = run(&h.path, &pre, &["exec", "resume", "p"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

#[test]
fn last_with_no_sessions_is_a_clear_error() {
    let h = home();
    let pre = provider_args("http://127.0.0.1:9/v1");
    let o = run(&h.path, &pre, &["exec", "resume", "--last", "p"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "codex: no recorded sessions in {} (--all: any directory) under {}",
            cwd.display(),
            h.path.join("sessions").display()
        )
    );
    let o = run(&h.path, &pre, &["exec", "resume", "--last", "--all", "p"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "codex: no recorded sessions under {}",
            h.path.join("sessions").display()
        )
    );
}

/// A recorded session (one complete turn) and its file.
fn one_turn(h: &Path, mock: &MockUpstream) -> (String, PathBuf) {
    mock.push_response(MockResponse::SseChunked {
        frames: sse_text_response("r", "answer one"),
    });
    let o = run(
        h,
        &provider_args(&mock.base_url()),
        &["exec", "question one"],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    (hinted_id(&o), session_files(h)[0].clone())
}

#[test]
fn a_torn_last_line_is_skipped_with_a_note_and_the_complete_lines_resume() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    let (id, file) = one_turn(&h.path, &mock);
    let torn: &[u8] = br#"{"timestamp":"2025-01-01T00:00:00.000Z","type":"response_item","payload":{"type":"message","role":"assistant","content":[{"type":"output_te"#;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    f.write_all(torn).unwrap();
    drop(f);
    mock.push_response(MockResponse::SseChunked {
        frames: sse_text_response("r2", "answer two"),
    });
    let o = run(
        &h.path,
        &provider_args(&mock.base_url()),
        &["exec", "resume", &id, "question two"],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stderr(&o).contains(&format!(
            "codex: warning: {}: line 5 skipped (torn: {} bytes without a newline (the writer was interrupted)); resuming with the complete lines",
            file.display(),
            torn.len()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        mock.requests()[1].json().unwrap()["input"],
        serde_json::json!([
            message("user", "question one"),
            message("assistant", "answer one"),
            message("user", "question two"),
        ])
    );
    // The torn tail was cut before appending: every line of the file parses now.
    assert_eq!(lines(&file).len(), 7);
}

#[test]
fn symlinked_and_loose_session_files_are_refused_like_auth_json() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    let (id, file) = one_turn(&h.path, &mock);
    let pre = provider_args(&mock.base_url());
    // Writable by others (its turns could be forged): refused, naming the file and the fix;
    // nothing sent.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = run(&h.path, &pre, &["exec", "resume", &id, "p"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "codex: refusing the session file {0}: mode 0666 lets other users change it (fix: chmod 600 {0})",
            file.display()
        )
    );
    assert_eq!(mock.requests().len(), 1);
    // Readable by others only (what the Codex CLI writes under umask 022): resumed, and
    // tightened to 0600 with a warning.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    mock.push_response(MockResponse::SseChunked {
        frames: sse_text_response("r", "ok"),
    });
    let o = run(&h.path, &pre, &["exec", "resume", &id, "p"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stderr(&o).contains(&format!(
            "codex: warning: {} was mode 0644 (readable by other users); it is now 0600",
            file.display()
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A symlink under the session's name (pointing at a file elsewhere): refused.
    let elsewhere = h.path.with_file_name("planted.jsonl");
    std::fs::rename(&file, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
    let o = run(&h.path, &pre, &["exec", "resume", &id, "p"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "codex: refusing the session file {}: it is a symbolic link",
            file.display()
        )
    );
    assert_eq!(mock.requests().len(), 2);
}

#[test]
fn a_sigkill_during_a_streamed_turn_leaves_a_session_that_resumes() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    mock.push_response(MockResponse::SsePaced {
        frames: sse_text_response("r1", "one two three four five six"),
        delay: Duration::from_millis(300),
    });
    let mut c = codex(&h.path);
    c.args(provider_args(&mock.base_url()))
        .args(["exec", "long question"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = [0u8; 4];
    out.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"one ", "the turn is streaming");
    assert!(mock.with_state(|s| s.streams_completed == 0));
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    let mut rest = String::new();
    let _ = out.read_line(&mut rest);

    let files = session_files(&h.path);
    assert_eq!(files.len(), 1);
    let l = lines(&files[0]); // every line is complete JSON
    assert_eq!(l.len(), 2, "header and the user input: {l:#?}");
    assert_eq!(l[1]["payload"], message("user", "long question"));
    let id = l[0]["payload"]["id"].as_str().unwrap().to_owned();

    mock.push_response(MockResponse::SseChunked {
        frames: sse_text_response("r2", "resumed"),
    });
    let o = run(
        &h.path,
        &provider_args(&mock.base_url()),
        &["exec", "resume", "--last", "go on"],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(stdout(&o), "resumed\n");
    assert_eq!(hinted_id(&o), id);
    assert_eq!(
        mock.requests()[1].json().unwrap()["input"],
        serde_json::json!([message("user", "long question"), message("user", "go on")])
    );
    assert_eq!(lines(&files[0]).len(), 5);
}

#[test]
fn ephemeral_records_nothing() {
    let h = home();
    let mock = MockUpstream::start().unwrap();
    mock.push_response(MockResponse::SseChunked {
        frames: sse_text_response("r", "ok"),
    });
    let o = run(
        &h.path,
        &provider_args(&mock.base_url()),
        &["exec", "--ephemeral", "p"],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(session_files(&h.path).is_empty());
    assert!(
        !stderr(&o).contains("to continue this session"),
        "{}",
        stderr(&o)
    );
}
