//! The file backend on the real filesystem: modes checked with stat, symlinks and planted files
//! attacked, a read attempted as another user.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Command;

use codex_auth::{AuthError, AuthStore, Backend, StoreMode};
use common::*;

fn file_store(home: &std::path::Path) -> AuthStore {
    AuthStore::new(home.to_path_buf(), StoreMode::File)
}

#[test]
fn save_writes_0600_and_round_trips() {
    let (_d, home) = home();
    let store = file_store(&home);
    let out = store.save(&key_auth("sk-test-0123456789abcdef")).unwrap();
    assert_eq!(out.backend, Backend::File(home.join("auth.json")));
    assert_eq!(out.warning, None);
    assert_eq!(mode_of(&home.join("auth.json")), 0o600);
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("auth.json")).unwrap()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"OPENAI_API_KEY": "sk-test-0123456789abcdef"})
    );
    assert_eq!(
        stored_key(&store.load().unwrap().unwrap()),
        "sk-test-0123456789abcdef"
    );
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&home)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("auth.json")]);
}

#[test]
fn every_write_enforces_0600_even_over_a_loose_file() {
    let (_d, home) = home();
    let path = home.join("auth.json");
    std::fs::write(&path, br#"{"OPENAI_API_KEY":"old"}"#).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _ = file_store(&home).save(&key_auth("new-key")).unwrap();
    assert_eq!(mode_of(&path), 0o600);
}

#[test]
fn missing_codex_home_is_created_0700() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("a/b/codex");
    let store = file_store(&home);
    assert!(
        store.load().unwrap().is_none(),
        "absent home means no credentials, not an error"
    );
    let _ = store.save(&key_auth("k")).unwrap();
    assert_eq!(mode_of(&home), 0o700);
}

#[test]
fn symlinked_auth_json_is_refused_for_write_and_the_target_is_untouched() {
    let (d, home) = home();
    let victim = d.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, home.join("auth.json")).unwrap();
    let err = file_store(&home).save(&key_auth("k")).unwrap_err();
    assert!(matches!(err, AuthError::Symlink { .. }), "{err:?}");
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(
        std::fs::symlink_metadata(home.join("auth.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // Control: with the symlink gone the same save succeeds.
    std::fs::remove_file(home.join("auth.json")).unwrap();
    let _ = file_store(&home).save(&key_auth("k")).unwrap();
}

#[test]
fn symlinked_auth_json_is_refused_for_read_and_delete() {
    // An attacker pointing auth.json at credentials they control (their key receives the prompts).
    let (d, home) = home();
    let planted = d.path().join("planted.json");
    std::fs::write(&planted, br#"{"OPENAI_API_KEY":"attacker-key"}"#).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&planted, home.join("auth.json")).unwrap();
    let err = file_store(&home).load().unwrap_err();
    assert!(matches!(err, AuthError::Symlink { .. }), "{err:?}");
    let err = file_store(&home).delete().unwrap_err();
    assert!(matches!(err, AuthError::Symlink { .. }), "{err:?}");
    assert!(planted.exists());
    // Control: the same content as a regular file loads.
    std::fs::remove_file(home.join("auth.json")).unwrap();
    std::fs::copy(&planted, home.join("auth.json")).unwrap();
    assert_eq!(
        stored_key(&file_store(&home).load().unwrap().unwrap()),
        "attacker-key"
    );
}

#[test]
fn loose_mode_is_read_with_a_warning() {
    let (_d, home) = home();
    let path = home.join("auth.json");
    std::fs::write(&path, br#"{"OPENAI_API_KEY":"sk-loose"}"#).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = file_store(&home).load_with_source().unwrap();
    assert_eq!(stored_key(out.auth.as_ref().unwrap()), "sk-loose");
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(
        out.warnings[0].contains("has mode 0644"),
        "{:?}",
        out.warnings
    );
    assert!(!out.warnings[0].contains("sk-loose"));
    // Control: mode 0600 gives no warning.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(
        file_store(&home)
            .load_with_source()
            .unwrap()
            .warnings
            .is_empty()
    );
}

#[test]
fn file_owned_by_another_user_is_refused() {
    let (_d, home) = home();
    let path = home.join("auth.json");
    std::fs::write(&path, br#"{"OPENAI_API_KEY":"planted"}"#).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let err = file_store(&home).load().unwrap_err();
    assert!(
        matches!(err, AuthError::ForeignOwner { owner: 65534, .. }),
        "{err:?}"
    );
    // Control: owned by us it loads.
    std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    assert_eq!(
        stored_key(&file_store(&home).load().unwrap().unwrap()),
        "planted"
    );
}

#[test]
fn codex_home_that_is_a_file_is_refused_and_untouched() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("not-a-dir");
    std::fs::write(&f, b"data").unwrap();
    let store = file_store(&f);
    for err in [
        store.save(&key_auth("k")).unwrap_err(),
        store.load().unwrap_err(),
    ] {
        assert!(matches!(err, AuthError::HomeNotDirectory { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("CODEX_HOME {} is not a directory", f.display())
        );
    }
    assert_eq!(std::fs::read(&f).unwrap(), b"data");
}

#[test]
fn group_or_world_writable_codex_home_is_refused() {
    for mode in [0o777, 0o770, 0o1777] {
        let (_d, home) = home();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = file_store(&home).save(&key_auth("k")).unwrap_err();
        assert!(matches!(err, AuthError::UnsafeHome { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("lets other users replace auth.json"),
            "{err}"
        );
        assert!(!home.join("auth.json").exists());
    }
    // Control: 0755 (readable, not writable by others) is accepted.
    let (_d, home) = home();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = file_store(&home).save(&key_auth("k")).unwrap();
}

#[test]
fn codex_home_owned_by_another_user_is_refused() {
    let (_d, home) = home();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    let err = file_store(&home).save(&key_auth("k")).unwrap_err();
    assert!(
        err.to_string().contains("directory owned by uid 65534"),
        "{err}"
    );
}

#[test]
fn symlinked_codex_home_is_allowed_and_resolved() {
    let (d, home) = home();
    let link = d.path().join("link-home");
    std::os::unix::fs::symlink(&home, &link).unwrap();
    let _ = file_store(&link).save(&key_auth("via-link")).unwrap();
    assert_eq!(
        stored_key(&file_store(&home).load().unwrap().unwrap()),
        "via-link"
    );
    assert_eq!(
        std::fs::metadata(home.join("auth.json")).unwrap().mode() & 0o777,
        0o600
    );
}

#[test]
fn corrupt_file_error_names_file_and_position_and_is_kept() {
    let (_d, home) = home();
    let path = home.join("auth.json");
    let content =
        b"{\n  \"OPENAI_API_KEY\": \"sk-SECRET-VALUE\",\n  \"tokens\": \"sk-SECRET-VALUE\"\n}";
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = file_store(&home).load().unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "failed to parse {}: unexpected field type or value at line 3",
            path.display()
        )),
        "{err}"
    );
    assert!(!err.contains("SECRET"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        content,
        "a failed read changes nothing"
    );
}

#[test]
fn auth_json_that_is_a_directory_is_refused_on_save() {
    let (_d, home) = home();
    std::fs::create_dir(home.join("auth.json")).unwrap();
    let err = file_store(&home).save(&key_auth("k")).unwrap_err();
    assert!(matches!(err, AuthError::NotRegularFile { .. }), "{err:?}");
    // No temporary file was left.
    assert_eq!(std::fs::read_dir(&home).unwrap().count(), 1);
}

#[test]
fn another_user_cannot_read_the_saved_file() {
    // Make every directory on the way traversable by `nobody`, so only the file mode protects it.
    let d = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = d.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = file_store(&home)
        .save(&key_auth("sk-nobody-must-not-see"))
        .unwrap();
    let read_as_nobody = || {
        Command::new("/bin/cat")
            .arg(home.join("auth.json"))
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    let out = read_as_nobody();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{out:?}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("sk-nobody"));
    // Control: the same read succeeds when the file is 0644 (what a plain `fs::write` would give).
    std::fs::set_permissions(
        home.join("auth.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out = read_as_nobody();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("sk-nobody-must-not-see"));
}

#[test]
fn delete_removes_and_reports() {
    let (_d, home) = home();
    let store = file_store(&home);
    assert!(!store.delete().unwrap());
    let _ = store.save(&key_auth("k")).unwrap();
    assert!(store.delete().unwrap());
    assert!(!home.join("auth.json").exists());
    assert!(store.load().unwrap().is_none());
}
