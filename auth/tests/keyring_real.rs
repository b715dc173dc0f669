//! The keyring backend available here, for real: Linux kernel keyutils (session keyring linked to
//! the persistent keyring). Each test uses its own CODEX_HOME, hence its own entry, and deletes it.

mod common;

use codex_auth::{AuthStore, Backend, KeyringBackend, OsKeyring, StoreMode};
use common::*;

#[test]
fn keyring_mode_round_trip_on_the_real_keyring() {
    let (_d, home) = home();
    let store = AuthStore::new(home.clone(), StoreMode::Keyring);
    assert!(store.load().unwrap().is_none());
    let out = store.save(&key_auth("sk-real-keyring-0123456789")).unwrap();
    assert_eq!(out.backend, Backend::Keyring(OsKeyring.name()));
    assert_eq!(out.warning, None);
    assert!(
        !home.join("auth.json").exists(),
        "keyring mode writes no file"
    );
    // A second store (as a new process would) reads it back.
    let again = AuthStore::new(home.clone(), StoreMode::Keyring)
        .load()
        .unwrap()
        .unwrap();
    assert_eq!(stored_key(&again), "sk-real-keyring-0123456789");
    // Replace, then delete.
    let _ = store.save(&key_auth("sk-second")).unwrap();
    assert_eq!(stored_key(&store.load().unwrap().unwrap()), "sk-second");
    assert!(store.delete().unwrap());
    assert!(store.load().unwrap().is_none());
    assert!(!store.delete().unwrap());
}

#[test]
fn auto_mode_uses_the_real_keyring_without_warning() {
    let (_d, home) = home();
    let store = AuthStore::new(home.clone(), StoreMode::Auto);
    let out = store.save(&key_auth("sk-auto-real")).unwrap();
    assert_eq!(out.backend, Backend::Keyring(OsKeyring.name()));
    assert_eq!(out.warning, None);
    assert!(!home.join("auth.json").exists());
    let loaded = store.load_with_source().unwrap();
    assert!(loaded.warnings.is_empty());
    assert_eq!(stored_key(loaded.auth.as_ref().unwrap()), "sk-auto-real");
    assert!(store.delete().unwrap());
}

#[test]
fn real_keyring_entry_holds_the_auth_json_document() {
    let (_d, home) = home();
    let store = AuthStore::new(home.clone(), StoreMode::Keyring);
    let _ = store.save(&key_auth("sk-doc")).unwrap();
    let raw = OsKeyring
        .get(
            codex_auth::keyring_store::KEYRING_SERVICE,
            &codex_auth::keyring_store::account_for(&home),
        )
        .unwrap()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(v, serde_json::json!({"OPENAI_API_KEY": "sk-doc"}));
    assert!(store.delete().unwrap());
}
