//! The MCP credential store: `.credentials.json` (0600, keyed by name and URL, locked
//! read-modify-write, corrupt file refused), the keyring, and `auto`'s visible fallback; the
//! keyring unavailable under each setting.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use codex_auth::{KeyringBackend, KeyringError, StoreMode};
use codex_mcp::store::{Backend, CredentialStore, StoreError, StoredEntry, entry_key};
use zeroize::Zeroizing;

#[derive(Default)]
struct MemKeyring {
    map: Mutex<HashMap<String, Vec<u8>>>,
    calls: AtomicUsize,
}

impl KeyringBackend for MemKeyring {
    fn get(&self, s: &str, a: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyringError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .map
            .lock()
            .unwrap()
            .get(&format!("{s}/{a}"))
            .cloned()
            .map(Zeroizing::new))
    }
    fn set(&self, s: &str, a: &str, v: &[u8]) -> Result<(), KeyringError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.map
            .lock()
            .unwrap()
            .insert(format!("{s}/{a}"), v.to_vec());
        Ok(())
    }
    fn delete(&self, s: &str, a: &str) -> Result<bool, KeyringError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .map
            .lock()
            .unwrap()
            .remove(&format!("{s}/{a}"))
            .is_some())
    }
    fn name(&self) -> &'static str {
        "memory"
    }
}

#[derive(Default)]
struct DeadKeyring {
    calls: AtomicUsize,
}

impl KeyringBackend for DeadKeyring {
    fn get(&self, _: &str, _: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyringError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(KeyringError("no keyring here".into()))
    }
    fn set(&self, _: &str, _: &str, _: &[u8]) -> Result<(), KeyringError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(KeyringError("no keyring here".into()))
    }
    fn delete(&self, _: &str, _: &str) -> Result<bool, KeyringError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(KeyringError("no keyring here".into()))
    }
    fn name(&self) -> &'static str {
        "dead"
    }
}

fn entry(name: &str, url: &str, token: &str) -> StoredEntry {
    let mut e = StoredEntry::default();
    e.server_name = name.into();
    e.server_url = url.into();
    e.client_id = "client-1".into();
    e.access_token = token.into();
    e.refresh_token = Some(format!("{token}-refresh"));
    e.expires_at = Some(4_000_000_000);
    e.token_endpoint = "https://as.example/token".into();
    e
}

fn home() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let h = d.path().join("home");
    std::fs::create_dir(&h).unwrap();
    std::fs::set_permissions(&h, std::fs::Permissions::from_mode(0o700)).unwrap();
    (d, h)
}

const A: &str = "https://a.example/mcp";
const B: &str = "https://b.example/mcp";

#[test]
fn file_mode_one_entry_per_name_and_url() {
    let (_d, h) = home();
    let kr = Arc::new(DeadKeyring::default());
    let s = CredentialStore::with_keyring(h.clone(), StoreMode::File, kr.clone());
    let saved = s.save("a", A, &entry("a", A, "tokA")).unwrap();
    assert_eq!(saved.backend, Backend::File(h.join(".credentials.json")));
    assert!(saved.warning.is_none());
    let _ = s.save("b", B, &entry("b", B, "tokB")).unwrap();
    let meta = std::fs::metadata(h.join(".credentials.json")).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(h.join(".credentials.json")).unwrap();
    assert!(
        text.contains(&entry_key("a", A)) && text.contains(&entry_key("b", B)),
        "{text}"
    );
    let got = s.load("a", A).unwrap();
    assert_eq!(got.entry.unwrap().access_token, "tokA");
    // the same name at another URL does not get a's token
    assert!(s.load("a", B).unwrap().entry.is_none());
    assert!(s.load("b", A).unwrap().entry.is_none());
    // file mode never touches the keyring
    assert_eq!(kr.calls.load(Ordering::SeqCst), 0);
    // delete one, the other stays; delete the last, the file goes
    assert!(s.delete("a", A).unwrap().removed);
    assert!(!s.delete("a", A).unwrap().removed);
    assert_eq!(s.load("b", B).unwrap().entry.unwrap().access_token, "tokB");
    assert!(s.delete("b", B).unwrap().removed);
    assert!(!h.join(".credentials.json").exists());
}

#[test]
fn a_corrupt_file_is_refused_never_overwritten() {
    let (_d, h) = home();
    let s =
        CredentialStore::with_keyring(h.clone(), StoreMode::File, Arc::new(DeadKeyring::default()));
    let path = h.join(".credentials.json");
    let garbage = b"{\"mcp_servers\": {\"other|x\": {\"access_token\": \"OTHERSECRET\", ";
    std::fs::write(&path, garbage).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = s.load("a", A).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{msg}");
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("line 1"),
        "{msg}"
    );
    assert!(!msg.contains("OTHERSECRET"), "{msg}");
    let e = s.save("a", A, &entry("a", A, "tokA")).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert!(s.delete("a", A).is_err());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        garbage,
        "the file is untouched"
    );
    // the control: once the file is valid again, the save works and keeps the other entry
    std::fs::write(
        &path,
        format!(
            "{{\"version\":1,\"mcp_servers\":{{\"{}\":{}}}}}",
            entry_key("b", B),
            serde_json::to_string(&entry("b", B, "tokB")).unwrap()
        ),
    )
    .unwrap();
    let _ = s.save("a", A, &entry("a", A, "tokA")).unwrap();
    assert_eq!(s.load("b", B).unwrap().entry.unwrap().access_token, "tokB");
}

#[test]
fn a_symlinked_credentials_file_is_refused() {
    let (d, h) = home();
    let target = d.path().join("elsewhere.json");
    std::fs::write(&target, "{}").unwrap();
    std::os::unix::fs::symlink(&target, h.join(".credentials.json")).unwrap();
    let s = CredentialStore::with_keyring(h, StoreMode::File, Arc::new(DeadKeyring::default()));
    let e = s.save("a", A, &entry("a", A, "tokA")).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "{}");
}

#[test]
fn keyring_unavailable_under_each_setting() {
    // file: works, keyring never asked
    let (_d, h) = home();
    let dead = Arc::new(DeadKeyring::default());
    let s = CredentialStore::with_keyring(h.clone(), StoreMode::File, dead.clone());
    let _ = s.save("a", A, &entry("a", A, "t")).unwrap();
    assert_eq!(dead.calls.load(Ordering::SeqCst), 0);

    // keyring: an error naming the setting; nothing written anywhere
    let (_d2, h2) = home();
    let s = CredentialStore::with_keyring(
        h2.clone(),
        StoreMode::Keyring,
        Arc::new(DeadKeyring::default()),
    );
    let e = s.save("a", A, &entry("a", A, "t")).unwrap_err();
    assert!(
        e.to_string().contains("no keyring here") && e.to_string().contains("\"keyring\""),
        "{e}"
    );
    assert!(!h2.join(".credentials.json").exists());
    assert!(s.load("a", A).is_err());

    // auto: the file, with a warning that says so
    let (_d3, h3) = home();
    let s = CredentialStore::with_keyring(
        h3.clone(),
        StoreMode::Auto,
        Arc::new(DeadKeyring::default()),
    );
    let saved = s.save("a", A, &entry("a", A, "t")).unwrap();
    assert_eq!(saved.backend, Backend::File(h3.join(".credentials.json")));
    let w = saved.warning.expect("a fallback warning");
    assert!(
        w.contains("keyring is unavailable") && w.contains("plaintext file"),
        "{w}"
    );
    let loaded = s.load("a", A).unwrap();
    assert!(loaded.entry.is_some());
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("keyring is unavailable")),
        "{:?}",
        loaded.warnings
    );
    let d = s.delete("a", A).unwrap();
    assert!(d.removed && !d.warnings.is_empty());
}

#[test]
fn keyring_and_auto_with_a_working_keyring_write_no_plaintext() {
    let (_d, h) = home();
    let kr = Arc::new(MemKeyring::default());
    let s = CredentialStore::with_keyring(h.clone(), StoreMode::Keyring, kr.clone());
    let saved = s.save("a", A, &entry("a", A, "tokA")).unwrap();
    assert_eq!(saved.backend, Backend::Keyring("memory"));
    assert!(!h.join(".credentials.json").exists());
    assert_eq!(s.load("a", A).unwrap().entry.unwrap().access_token, "tokA");
    {
        let map = kr.map.lock().unwrap();
        let key = map.keys().next().unwrap().clone();
        assert!(
            key.starts_with("Codex MCP Credentials/") && key.contains("|a|"),
            "{key}"
        );
    }
    // auto removes a plaintext entry left by an earlier fallback, keeping the others
    let file = CredentialStore::with_keyring(h.clone(), StoreMode::File, kr.clone());
    let _ = file.save("a", A, &entry("a", A, "old")).unwrap();
    let _ = file.save("b", B, &entry("b", B, "tokB")).unwrap();
    let auto = CredentialStore::with_keyring(h.clone(), StoreMode::Auto, kr.clone());
    let _ = auto.save("a", A, &entry("a", A, "new")).unwrap();
    let text = std::fs::read_to_string(h.join(".credentials.json")).unwrap();
    assert!(!text.contains("\"old\"") && text.contains("tokB"), "{text}");
    assert_eq!(
        auto.load("a", A).unwrap().entry.unwrap().access_token,
        "new"
    );
}

#[test]
fn concurrent_saves_of_different_servers_lose_none() {
    let (_d, h) = home();
    let mut threads = Vec::new();
    for i in 0..8 {
        let h = h.clone();
        threads.push(std::thread::spawn(move || {
            let s =
                CredentialStore::with_keyring(h, StoreMode::File, Arc::new(DeadKeyring::default()));
            for j in 0..10 {
                let name = format!("s{i}");
                let url = format!("https://h{i}.example/mcp");
                let _ = s
                    .save(&name, &url, &entry(&name, &url, &format!("t{i}-{j}")))
                    .unwrap();
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    let s = CredentialStore::with_keyring(h, StoreMode::File, Arc::new(DeadKeyring::default()));
    for i in 0..8 {
        let e = s
            .load(&format!("s{i}"), &format!("https://h{i}.example/mcp"))
            .unwrap();
        assert_eq!(e.entry.unwrap().access_token, format!("t{i}-9"));
    }
}

#[test]
fn debug_never_shows_tokens() {
    let e = entry("a", A, "SECRETACCESS");
    let d = format!("{e:?}");
    assert!(!d.contains("SECRETACCESS"), "{d}");
}
