//! Mode dispatch with an injected keyring: `auto` falls back to the file only with a warning,
//! `keyring` fails loudly and touches nothing, and a working keyring leaves no plaintext behind.

#![allow(clippy::unwrap_used)] // the injected keyrings are test code outside `#[test]` functions

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use codex_auth::{AuthError, AuthStore, Backend, KeyringBackend, KeyringError, StoreMode};
use common::*;
use zeroize::Zeroizing;

#[derive(Default)]
struct MemKeyring(Mutex<HashMap<(String, String), Vec<u8>>>);

impl KeyringBackend for MemKeyring {
    fn get(&self, s: &str, a: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyringError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(&(s.into(), a.into()))
            .cloned()
            .map(Zeroizing::new))
    }
    fn set(&self, s: &str, a: &str, v: &[u8]) -> Result<(), KeyringError> {
        self.0
            .lock()
            .unwrap()
            .insert((s.into(), a.into()), v.to_vec());
        Ok(())
    }
    fn delete(&self, s: &str, a: &str) -> Result<bool, KeyringError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .remove(&(s.into(), a.into()))
            .is_some())
    }
    fn name(&self) -> &'static str {
        "memory"
    }
}

struct DeadKeyring;

impl KeyringBackend for DeadKeyring {
    fn get(&self, _: &str, _: &str) -> Result<Option<Zeroizing<Vec<u8>>>, KeyringError> {
        Err(KeyringError("Permission denied".into()))
    }
    fn set(&self, _: &str, _: &str, _: &[u8]) -> Result<(), KeyringError> {
        Err(KeyringError("Permission denied".into()))
    }
    fn delete(&self, _: &str, _: &str) -> Result<bool, KeyringError> {
        Err(KeyringError("Permission denied".into()))
    }
    fn name(&self) -> &'static str {
        "dead"
    }
}

#[test]
fn auto_with_dead_keyring_falls_back_to_file_with_a_warning() {
    let (_d, home) = home();
    let store = AuthStore::with_keyring(home.clone(), StoreMode::Auto, Arc::new(DeadKeyring));
    let out = store.save(&key_auth("sk-fallback")).unwrap();
    assert_eq!(out.backend, Backend::File(home.join("auth.json")));
    let w = out.warning.expect("the fallback must carry a warning");
    assert!(w.starts_with("the OS keyring is unavailable (Permission denied); credentials were stored in the plaintext file"), "{w}");
    assert!(!w.contains("sk-fallback"));
    assert_eq!(mode_of(&home.join("auth.json")), 0o600);
    let loaded = store.load_with_source().unwrap();
    assert_eq!(stored_key(loaded.auth.as_ref().unwrap()), "sk-fallback");
    assert_eq!(loaded.backend, Some(Backend::File(home.join("auth.json"))));
    assert_eq!(loaded.warnings.len(), 1);
    assert!(
        loaded.warnings[0].contains("reading credentials from the plaintext file"),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn auto_with_working_keyring_stores_there_and_removes_plaintext() {
    let (_d, home) = home();
    // A plaintext file from an earlier `file` login.
    let _ = AuthStore::new(home.clone(), StoreMode::File)
        .save(&key_auth("old"))
        .unwrap();
    let kr = Arc::new(MemKeyring::default());
    let store = AuthStore::with_keyring(home.clone(), StoreMode::Auto, kr.clone());
    let out = store.save(&key_auth("sk-in-keyring")).unwrap();
    assert_eq!(
        out,
        codex_auth::SaveOutcome {
            backend: Backend::Keyring("memory"),
            warning: None
        }
    );
    assert!(
        !home.join("auth.json").exists(),
        "plaintext must not linger next to the keyring entry"
    );
    let loaded = store.load_with_source().unwrap();
    assert_eq!(stored_key(loaded.auth.as_ref().unwrap()), "sk-in-keyring");
    assert!(loaded.warnings.is_empty());
    assert!(store.delete().unwrap());
    assert!(kr.0.lock().unwrap().is_empty());
    assert!(store.load().unwrap().is_none());
}

#[test]
fn keyring_mode_with_dead_keyring_errors_and_keeps_existing_file() {
    let (_d, home) = home();
    let _ = AuthStore::new(home.clone(), StoreMode::File)
        .save(&key_auth("keep-me"))
        .unwrap();
    let before = std::fs::read(home.join("auth.json")).unwrap();
    let store = AuthStore::with_keyring(home.clone(), StoreMode::Keyring, Arc::new(DeadKeyring));
    let err = store.save(&key_auth("new")).unwrap_err();
    assert!(
        matches!(err, AuthError::Keyring { op: "write", .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "OS keyring write failed: Permission denied"
    );
    assert_eq!(
        std::fs::read(home.join("auth.json")).unwrap(),
        before,
        "nothing lost or overwritten"
    );
    let err = store.load().unwrap_err();
    assert_eq!(err.to_string(), "OS keyring read failed: Permission denied");
    assert!(store.delete().is_err());
    assert!(home.join("auth.json").exists());
}

#[test]
fn distinct_codex_homes_use_distinct_keyring_entries() {
    let kr = Arc::new(MemKeyring::default());
    let (_d1, h1) = home();
    let (_d2, h2) = home();
    let _ = AuthStore::with_keyring(h1.clone(), StoreMode::Keyring, kr.clone())
        .save(&key_auth("one"))
        .unwrap();
    let _ = AuthStore::with_keyring(h2.clone(), StoreMode::Keyring, kr.clone())
        .save(&key_auth("two"))
        .unwrap();
    let l1 = AuthStore::with_keyring(h1, StoreMode::Keyring, kr.clone())
        .load()
        .unwrap()
        .unwrap();
    let l2 = AuthStore::with_keyring(h2, StoreMode::Keyring, kr)
        .load()
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored_key(&l1), stored_key(&l2)),
        ("one".into(), "two".into())
    );
}
