//! A writer SIGKILLed mid-write never leaves a truncated auth.json.
//!
//! The test binary re-executes itself as the writer (env `CODEX_AUTH_CRASH_WRITER`), which saves
//! two large versions alternately, forever; the parent kills it at varying moments and checks that
//! `auth.json` still parses as one whole version. The control runs the same harness against a
//! naive in-place writer and must see a truncated file: it proves the harness can detect one.

// The writer role and the harness are test code outside `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use codex_auth::{AuthStore, StoreMode};
use common::*;

const ENV_ROLE: &str = "CODEX_AUTH_CRASH_WRITER";
const ENV_HOME: &str = "CODEX_AUTH_CRASH_HOME";
const SIZE: usize = 3 * 1024 * 1024;

fn version(c: char) -> String {
    std::iter::repeat_n(c, SIZE).collect()
}

/// Child role: write forever. Returns only in the parent role.
fn maybe_run_writer() {
    let Ok(role) = std::env::var(ENV_ROLE) else {
        return;
    };
    let home = std::path::PathBuf::from(std::env::var(ENV_HOME).unwrap());
    let (a, b) = (version('a'), version('b'));
    let store = AuthStore::new(home.clone(), StoreMode::File);
    let mut stdout = std::io::stdout();
    for i in 0u64.. {
        let v = if i % 2 == 0 { &a } else { &b };
        if role == "atomic" {
            let _ = store.save(&key_auth(v)).unwrap();
        } else {
            // Naive: truncate in place, write in chunks.
            let mut f = std::fs::File::create(home.join("auth.json")).unwrap();
            let json = format!("{{\"OPENAI_API_KEY\":\"{v}\"}}");
            for chunk in json.as_bytes().chunks(64 * 1024) {
                f.write_all(chunk).unwrap();
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        if i == 0 {
            writeln!(stdout, "ready").unwrap();
            stdout.flush().unwrap();
        }
    }
}

/// The temp files of both writers: the naive one's in `home`, the real one's in `.auth-tmp`.
fn temp_dirs(home: &Path) -> Vec<std::path::PathBuf> {
    let mut v = vec![home.to_path_buf()];
    let t = home.join(codex_auth::file_store::TEMP_DIR_NAME);
    if t.is_dir() {
        v.push(t);
    }
    v
}

fn has_temp(home: &Path) -> bool {
    temp_dirs(home)
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".auth.json.tmp.")
        })
}

/// Run the kill cycles `rounds` (the round number varies the moment of the kill); returns
/// (corrupt results, kills that left a partial temp file).
fn harness(role: &str, home: &Path, rounds: std::ops::Range<u32>) -> (u32, u32) {
    let exe = std::env::current_exe().unwrap();
    let test_name = if role == "atomic" {
        "killed_writer_leaves_old_or_new"
    } else {
        "control_naive_writer_is_caught_truncated"
    };
    let (mut corrupt, mut mid_write) = (0, 0);
    for round in rounds {
        let mut child = Command::new(&exe)
            .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
            .env(ENV_ROLE, role)
            .env(ENV_HOME, home)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        // libtest prints `test NAME ... ` without a newline before our `ready`.
        while !line.trim_end().ends_with("ready") {
            line.clear();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "writer exited before writing"
            );
        }
        if role == "naive" || round % 2 == 0 {
            // Kill at a varying moment of the write cycle.
            std::thread::sleep(Duration::from_micros(u64::from(round) * 2_300 % 50_000));
        } else {
            // Kill as soon as a temporary file appears: inside the write/fsync/rename window
            // (serializing 3 MiB takes longer than writing it, so a timer rarely lands there).
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            // (A writer that never makes a temporary file is killed after 2 s anyway: the
            // checks below then judge what it left.)
            while !has_temp(home) && std::time::Instant::now() < deadline {}
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let temps: Vec<_> = temp_dirs(home)
            .iter()
            .flat_map(|d| std::fs::read_dir(d).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".auth.json.tmp.")
            })
            .collect();
        if !temps.is_empty() {
            for t in &temps {
                // A partial temporary file: the kill landed during write(2)/fsync.
                if std::fs::metadata(t).unwrap().len() < SIZE as u64 {
                    mid_write += 1;
                }
                assert_eq!(
                    mode_of(t),
                    0o600,
                    "temporary file {} must be 0600 from creation",
                    t.display()
                );
                std::fs::remove_file(t).unwrap();
            }
        }
        let bytes = std::fs::read(home.join("auth.json")).unwrap();
        let ok = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["OPENAI_API_KEY"].as_str().map(str::to_owned))
            .is_some_and(|k| k.len() == SIZE && (k == version('a') || k == version('b')));
        if !ok {
            corrupt += 1;
        }
    }
    (corrupt, mid_write)
}

#[test]
fn killed_writer_leaves_old_or_new() {
    maybe_run_writer();
    // On disk (not tmpfs), so fsync takes real time and kills land inside the write window.
    let d = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let home = d.path().to_path_buf();
    // Batches of 30 kills until one has landed mid-write (at most 120: a clean-clone CI run saw
    // 30 kills miss the window once, the write finishing between the poll and the kill).
    let (mut corrupt, mut mid_write, mut kills) = (0, 0, 0);
    while mid_write == 0 && kills < 120 {
        let (c, m) = harness("atomic", &home, kills..kills + 30);
        (corrupt, mid_write, kills) = (corrupt + c, mid_write + m, kills + 30);
    }
    eprintln!("atomic writer: {corrupt} corrupt, {mid_write} of {kills} kills mid-write");
    assert_eq!(corrupt, 0, "auth.json was truncated or mixed after a kill");
    assert!(
        mid_write > 0,
        "no kill landed mid-write: the test did not exercise the crash window"
    );
    // And the file still loads through the store.
    let loaded = AuthStore::new(home, StoreMode::File)
        .load()
        .unwrap()
        .unwrap();
    assert_eq!(stored_key(&loaded).len(), SIZE);
}

#[test]
fn control_naive_writer_is_caught_truncated() {
    maybe_run_writer();
    let (_d, home) = home();
    let (corrupt, _) = harness("naive", &home, 0..10);
    eprintln!("naive writer: {corrupt} of 10 kills left a corrupt file");
    assert!(
        corrupt > 0,
        "the harness never saw a truncated file from an in-place writer"
    );
}
