#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use super::*;

fn new_session() -> NewSession {
    NewSession {
        cwd: "/work".into(),
        model_provider: Some("mock".into()),
        model: Some("gpt-5".into()),
        originator: "codex_exec".into(),
        cli_version: "0.1.0".into(),
    }
}

fn user(t: &str) -> Message {
    Message {
        role: Role::User,
        text: t.into(),
    }
}

fn assistant(t: &str) -> Message {
    Message {
        role: Role::Assistant,
        text: t.into(),
    }
}

#[test]
fn create_append_resume_roundtrip_with_private_modes() {
    let home = tempfile::tempdir().unwrap();
    let store = SessionStore::new(home.path());
    let mut rec = store.create(new_session()).unwrap();
    rec.append(user("hello").to_item()).unwrap();
    rec.append(assistant("hi there").to_item()).unwrap();
    rec.sync().unwrap();
    let path = rec.path().to_path_buf();
    drop(rec);

    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with("rollout-") && name.ends_with(".jsonl"),
        "{name}"
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    let mut d = path.parent().unwrap();
    for _ in 0..4 {
        assert_eq!(mode(d), 0o700, "{}", d.display());
        d = d.parent().unwrap();
    }

    let (t, mut rec) = store.resume(&path).unwrap();
    assert_eq!(t.messages, vec![user("hello"), assistant("hi there")]);
    assert!(t.skipped.is_empty());
    assert_eq!(t.meta.model_provider.as_deref(), Some("mock"));
    rec.append(user("again").to_item()).unwrap();
    drop(rec);
    let t = store.load(&path).unwrap();
    assert_eq!(t.messages.len(), 3);
    assert_eq!(store.find(&t.meta.id).unwrap(), path);
    assert_eq!(store.find(&t.meta.id[..8]).unwrap(), path);
}

#[test]
fn torn_last_line_is_skipped_reported_and_cut_before_appending() {
    let home = tempfile::tempdir().unwrap();
    let store = SessionStore::new(home.path());
    let mut rec = store.create(new_session()).unwrap();
    rec.append(user("q1").to_item()).unwrap();
    let path = rec.path().to_path_buf();
    drop(rec);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(br#"{"timestamp":"t","type":"response_item","payload":{"type":"mess"#)
        .unwrap();
    drop(f);
    let (t, mut rec) = store.resume(&path).unwrap();
    assert_eq!(t.messages, vec![user("q1")]);
    assert_eq!(t.skipped.len(), 1);
    assert_eq!(t.skipped[0].line, 3);
    assert!(t.skipped[0].reason.starts_with("torn:"), "{:?}", t.skipped);
    rec.append(user("q2").to_item()).unwrap();
    drop(rec);
    let t = store.load(&path).unwrap();
    assert_eq!(t.messages, vec![user("q1"), user("q2")]);
    assert!(
        t.skipped.is_empty(),
        "the torn tail was cut: {:?}",
        t.skipped
    );
}

#[test]
fn a_corrupt_middle_line_is_skipped_with_its_number() {
    let home = tempfile::tempdir().unwrap();
    let store = SessionStore::new(home.path());
    let mut rec = store.create(new_session()).unwrap();
    let path = rec.path().to_path_buf();
    rec.append(user("a").to_item()).unwrap();
    drop(rec);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"garbage\n").unwrap();
    drop(f);
    let mut rec = store.resume(&path).unwrap().1;
    rec.append(assistant("b").to_item()).unwrap();
    drop(rec);
    let t = store.load(&path).unwrap();
    assert_eq!(t.messages, vec![user("a"), assistant("b")]);
    assert_eq!(t.skipped.len(), 1);
    assert_eq!(t.skipped[0].line, 3);
}

#[test]
fn symlinks_foreign_and_loose_files_are_refused_like_auth_json() {
    let home = tempfile::tempdir().unwrap();
    let store = SessionStore::new(home.path());
    let rec = store.create(new_session()).unwrap();
    let path = rec.path().to_path_buf();
    drop(rec);
    // writable by others: refused
    for m in [0o620, 0o602, 0o666] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
        let e = store.resume(&path).unwrap_err();
        assert!(
            matches!(e, SessionError::LooseMode { mode, .. } if mode == m),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }
    // readable by others (codex's 0644): used, and tightened on resume
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        store.load(&path).unwrap().tightened_from,
        None,
        "load changes nothing"
    );
    let (t, _) = store.resume(&path).unwrap();
    assert_eq!(t.tightened_from, Some(0o644));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(store.resume(&path).is_ok(), "control: 0600 loads");
    // a symlink with a session name pointing at the real file
    let link = path.with_file_name(format!(
        "rollout-2020-01-01T00-00-00-{}.jsonl",
        SessionId::new()
    ));
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let e = store.resume(&link).unwrap_err();
    assert!(matches!(e, SessionError::Symlink { .. }), "{e}");
    // listed as refused, not as a session
    let listing = store.list().unwrap();
    assert_eq!(listing.sessions.len(), 1);
    assert_eq!(listing.refused.len(), 1, "{:?}", listing.refused);
}

#[test]
fn ambiguous_prefix_lists_candidates_and_unknown_ids_are_not_found() {
    let home = tempfile::tempdir().unwrap();
    let store = SessionStore::new(home.path());
    let day = home.path().join("sessions/2025/01/02");
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
    match store.find("abcd").unwrap_err() {
        SessionError::Ambiguous { candidates, .. } => assert_eq!(
            candidates,
            vec![
                "abcd0000-0000-4000-8000-000000000001",
                "abcd0000-0000-4000-8000-000000000002"
            ]
        ),
        e => panic!("{e}"),
    }
    assert!(store.find("abcd0000-0000-4000-8000-000000000002").is_ok());
    assert!(matches!(
        store.find("ffff").unwrap_err(),
        SessionError::NotFound { .. }
    ));
    assert!(matches!(
        store.find("../../etc").unwrap_err(),
        SessionError::InvalidId { .. }
    ));
}

#[test]
fn latest_filters_by_cwd_and_reports_none() {
    let home = tempfile::tempdir().unwrap();
    let store = SessionStore::new(home.path());
    assert!(matches!(
        store.latest(None).unwrap_err(),
        SessionError::NoSessions { .. }
    ));
    let a = store.create(new_session()).unwrap();
    let a_id = a.id().to_owned();
    drop(a);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut other = new_session();
    other.cwd = "/elsewhere".into();
    let b = store.create(other).unwrap();
    let b_id = b.id().to_owned();
    drop(b);
    assert_eq!(store.latest(None).unwrap().0.id, b_id);
    assert_eq!(store.latest(Some("/work")).unwrap().0.id, a_id);
    let e = store.latest(Some("/nowhere")).unwrap_err().to_string();
    assert!(e.starts_with("no recorded sessions in /nowhere"), "{e}");
}

#[test]
fn a_missing_codex_home_is_created_private_and_an_unsafe_sessions_dir_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let home = base.path().join("a/b/.codex");
    let store = SessionStore::new(&home);
    store.create(new_session()).unwrap();
    assert_eq!(
        std::fs::metadata(&home).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // A group-writable sessions directory (others could plant files): refused, control above.
    std::fs::set_permissions(
        home.join("sessions"),
        std::fs::Permissions::from_mode(0o770),
    )
    .unwrap();
    let e = store.create(new_session()).unwrap_err().to_string();
    assert!(
        e.contains("mode 0770 lets other users add or replace session files"),
        "{e}"
    );
}

/// Outside review r11 F2: the id inside a session file was printed raw (`sessions list`, the
/// resume hint); an id with an escape sequence reached the terminal. A file whose id is not the
/// UUID of its own name is refused by list and resume. Control: the untouched file is listed.
#[test]
fn a_session_whose_id_is_not_the_uuid_of_its_name_is_refused() {
    let home = tempfile::tempdir().unwrap();
    let store = SessionStore::new(home.path());
    let mut rec = store.create(new_session()).unwrap();
    rec.append(user("hello").to_item()).unwrap();
    rec.sync().unwrap();
    let path = rec.path().to_path_buf();
    let id = rec.id().to_owned();
    drop(rec);
    let listing = store.list().unwrap();
    assert_eq!(listing.sessions.len(), 1, "control: {:?}", listing.refused);
    let text = std::fs::read_to_string(&path).unwrap();
    for bad in [
        format!("{id}\\u001b]0;TITLE\\u0007"), // JSON-escaped, as a crafted file has it
        "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".to_owned(),
    ] {
        std::fs::write(&path, text.replacen(&id, &bad, 1)).unwrap();
        let listing = store.list().unwrap();
        assert!(listing.sessions.is_empty(), "{bad:?} listed");
        assert!(
            listing.refused[0].contains("its id is not the UUID in its file name"),
            "{:?}",
            listing.refused
        );
        assert!(!listing.refused[0].contains('\u{1b}'));
        assert!(store.resume(&path).is_err());
    }
}
