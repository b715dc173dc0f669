//! The auth manager: cache, reload on outside change, refresh serialized by the lock file (two
//! managers on one CODEX_HOME hold two open file descriptions, so flock separates them exactly
//! as it separates two processes), invalid_grant, a writer that ignores the lock.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use codex_auth::{
    AuthDotJson, AuthManager, AuthStore, ManagerError, RefreshFailure, RefreshFuture,
    RefreshOutcome, RefreshedTokens, SecretString, StoreMode, TokenData, TokenRefresher,
};

fn jwt(exp: i64) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.sig",
        e.encode(br#"{"alg":"none"}"#),
        e.encode(format!(r#"{{"exp":{exp},"n":{}}}"#, rand_n()))
    )
}

fn rand_n() -> u64 {
    static N: AtomicU32 = AtomicU32::new(0);
    u64::from(N.fetch_add(1, Ordering::SeqCst))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn chatgpt(access_exp: i64, refresh: &str) -> AuthDotJson {
    AuthDotJson {
        openai_api_key: None,
        tokens: Some(TokenData {
            id_token: SecretString::new(jwt(now() + 3600)),
            access_token: SecretString::new(jwt(access_exp)),
            refresh_token: SecretString::new(refresh.to_string()),
            account_id: Some("acct".to_string()),
        }),
        last_refresh: None,
    }
}

/// An issuer in miniature: rotating refresh tokens, an old one is rejected after use.
#[derive(Default)]
struct Issuer {
    live: Mutex<Vec<String>>,
    calls: AtomicU32,
    delay: Mutex<Duration>,
    on_call: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl TokenRefresher for Issuer {
    fn refresh<'a>(&'a self, tokens: &'a TokenData) -> RefreshFuture<'a> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(f) = self.on_call.lock().unwrap().as_ref() {
                f();
            }
            let d = *self.delay.lock().unwrap();
            tokio::time::sleep(d).await;
            let mut live = self.live.lock().unwrap();
            let presented = tokens.refresh_token.expose_secret().to_string();
            let Some(i) = live.iter().position(|t| *t == presented) else {
                return Err(RefreshFailure::InvalidGrant(
                    "invalid_grant: refresh token already used".to_string(),
                ));
            };
            live.remove(i);
            let new = format!("rt-{n}");
            live.push(new.clone());
            Ok(RefreshedTokens {
                id_token: SecretString::new(jwt(now() + 3600)),
                access_token: SecretString::new(jwt(now() + 3600)),
                refresh_token: SecretString::new(new),
                account_id: None,
            })
        })
    }
}

fn home() -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let h = d.path().join("home");
    std::fs::create_dir(&h).unwrap();
    std::fs::set_permissions(&h, std::fs::Permissions::from_mode(0o700)).unwrap();
    (d, h)
}

fn store(h: &std::path::Path) -> AuthStore {
    AuthStore::new(h.to_path_buf(), StoreMode::File)
}

fn stored_refresh(h: &std::path::Path) -> String {
    let a = store(h).load().unwrap().unwrap();
    a.tokens.unwrap().refresh_token.expose_secret().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_managers_expiring_at_once_refresh_once_and_both_adopt() {
    let (_d, h) = home();
    let _ = store(&h).save(&chatgpt(now() - 10, "rt-0")).unwrap();
    let issuer = Arc::new(Issuer::default());
    issuer.live.lock().unwrap().push("rt-0".to_string());
    *issuer.delay.lock().unwrap() = Duration::from_millis(300);
    let a = Arc::new(AuthManager::new(store(&h), Some(issuer.clone())));
    let b = Arc::new(AuthManager::new(store(&h), Some(issuer.clone())));
    // Both see the expired token before either refreshes.
    assert!(a.current().unwrap().is_some() && b.current().unwrap().is_some());
    let (ra, rb) = tokio::join!(
        {
            let a = a.clone();
            async move { a.fresh().await }
        },
        {
            let b = b.clone();
            async move { b.fresh().await }
        }
    );
    let (ra, rb) = (ra.unwrap().unwrap(), rb.unwrap().unwrap());
    assert_eq!(issuer.calls.load(Ordering::SeqCst), 1, "one refresh only");
    let ta = ra.tokens.as_ref().unwrap();
    let tb = rb.tokens.as_ref().unwrap();
    assert_eq!(ta.refresh_token.expose_secret(), "rt-1");
    assert_eq!(tb.refresh_token.expose_secret(), "rt-1");
    assert_eq!(
        ta.access_token.expose_secret(),
        tb.access_token.expose_secret()
    );
    assert_eq!(stored_refresh(&h), "rt-1");
    assert_eq!(ta.account_id.as_deref(), Some("acct"));
    assert!(h.join("auth.json.lock").exists());
}

#[tokio::test]
async fn control_without_the_lock_protocol_the_loser_holds_a_dead_token() {
    // The same race with the re-read skipped (each refreshes what it saw): the second refresh
    // presents a rotated-away token and fails. This is what the lock and re-read prevent.
    let (_d, h) = home();
    let _ = store(&h).save(&chatgpt(now() - 10, "rt-0")).unwrap();
    let issuer = Issuer::default();
    issuer.live.lock().unwrap().push("rt-0".to_string());
    let seen_a = store(&h).load().unwrap().unwrap();
    let seen_b = store(&h).load().unwrap().unwrap();
    assert!(
        issuer
            .refresh(seen_a.tokens.as_ref().unwrap())
            .await
            .is_ok()
    );
    let e = issuer
        .refresh(seen_b.tokens.as_ref().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, RefreshFailure::InvalidGrant(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_done_while_waiting_for_the_lock_is_adopted_even_when_forced() {
    let (_d, h) = home();
    let _ = store(&h).save(&chatgpt(now() + 3600, "rt-0")).unwrap();
    let issuer = Arc::new(Issuer::default());
    issuer.live.lock().unwrap().push("rt-0".to_string());
    let a = Arc::new(AuthManager::new(store(&h), Some(issuer.clone())));
    assert_eq!(a.refresh(false).await.unwrap(), RefreshOutcome::NotNeeded);
    // "Another process" holds the lock while it refreshes.
    let held = codex_auth::StoreLock::try_acquire(&h.join("auth.json.lock"))
        .unwrap()
        .unwrap();
    let task = {
        let a = a.clone();
        tokio::spawn(async move { a.refresh(true).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!task.is_finished(), "waits for the lock");
    let other = store(&h).load().unwrap().unwrap();
    let got = issuer
        .refresh(other.tokens.as_ref().unwrap())
        .await
        .unwrap();
    let _ = store(&h)
        .save(&AuthDotJson {
            openai_api_key: None,
            tokens: Some(TokenData {
                id_token: got.id_token,
                access_token: got.access_token,
                refresh_token: got.refresh_token,
                account_id: None,
            }),
            last_refresh: None,
        })
        .unwrap();
    drop(held);
    // `a` saw rt-0 before waiting; it must adopt rt-1, not present the dead rt-0.
    assert_eq!(task.await.unwrap().unwrap(), RefreshOutcome::Adopted);
    assert_eq!(issuer.calls.load(Ordering::SeqCst), 1);
    assert_eq!(stored_refresh(&h), "rt-1");
    assert_eq!(
        a.current()
            .unwrap()
            .unwrap()
            .tokens
            .as_ref()
            .unwrap()
            .refresh_token
            .expose_secret(),
        "rt-1"
    );
}

#[tokio::test]
async fn invalid_grant_logs_out_in_memory_and_leaves_the_store_untouched() {
    let (_d, h) = home();
    let _ = store(&h).save(&chatgpt(now() - 10, "rt-dead")).unwrap();
    let before = std::fs::read(h.join("auth.json")).unwrap();
    let issuer = Arc::new(Issuer::default());
    let m = AuthManager::new(store(&h), Some(issuer.clone()));
    let mut rx = m.subscribe();
    rx.borrow_and_update();
    let e = m.fresh().await.unwrap_err();
    assert!(matches!(e, ManagerError::SignInAgain { .. }), "{e}");
    assert!(
        e.to_string().contains("sign in again with `codex login`"),
        "{e}"
    );
    assert!(e.to_string().contains("invalid_grant"), "{e}");
    assert!(!e.to_string().contains("rt-dead"), "{e}");
    assert_eq!(std::fs::read(h.join("auth.json")).unwrap(), before);
    assert!(m.current().unwrap().is_none(), "status: not logged in");
    assert!(m.invalidated().is_some());
    assert!(rx.has_changed().unwrap());
    // No second attempt with the dead token.
    assert!(matches!(
        m.refresh(true).await,
        Err(ManagerError::SignInAgain { .. })
    ));
    assert_eq!(issuer.calls.load(Ordering::SeqCst), 1);
    // A new sign-in (by anyone) brings the manager back.
    issuer.live.lock().unwrap().push("rt-new".to_string());
    let _ = store(&h).save(&chatgpt(now() + 3600, "rt-new")).unwrap();
    assert!(m.current().unwrap().is_some());
    assert!(m.invalidated().is_none());
}

#[tokio::test]
async fn a_store_changed_mid_refresh_by_a_lockless_writer_wins() {
    let (_d, h) = home();
    let _ = store(&h).save(&chatgpt(now() - 10, "rt-0")).unwrap();
    let issuer = Arc::new(Issuer::default());
    issuer.live.lock().unwrap().push("rt-0".to_string());
    let h2 = h.clone();
    *issuer.on_call.lock().unwrap() = Some(Box::new(move || {
        // Another program writes an API key while the refresh request is in flight.
        let _ = store(&h2)
            .save(&AuthDotJson::from_api_key(SecretString::new(
                "sk-other-writer".into(),
            )))
            .unwrap();
    }));
    let m = AuthManager::new(store(&h), Some(issuer.clone()));
    assert_eq!(m.refresh(false).await.unwrap(), RefreshOutcome::Superseded);
    let a = store(&h).load().unwrap().unwrap();
    assert_eq!(a.openai_api_key.unwrap().expose_secret(), "sk-other-writer");
    assert!(a.tokens.is_none());
    let cur = m.current().unwrap().unwrap();
    assert!(cur.openai_api_key.is_some());
}

#[tokio::test]
async fn outside_changes_are_noticed_and_served_from_memory_otherwise() {
    let (_d, h) = home();
    let m = AuthManager::new(store(&h), None);
    assert!(m.current().unwrap().is_none());
    let mut rx = m.subscribe();
    rx.borrow_and_update();
    let _ = store(&h)
        .save(&AuthDotJson::from_api_key(SecretString::new("sk-1".into())))
        .unwrap();
    assert_eq!(
        m.current()
            .unwrap()
            .unwrap()
            .openai_api_key
            .as_ref()
            .unwrap()
            .expose_secret(),
        "sk-1"
    );
    assert!(rx.has_changed().unwrap());
    rx.borrow_and_update();
    let first = m.current().unwrap().unwrap();
    let again = m.current().unwrap().unwrap();
    assert!(Arc::ptr_eq(&first, &again), "served from memory");
    assert!(!rx.has_changed().unwrap());
    // Two saves in quick succession (same mtime tick) are still seen: new inode each time.
    let _ = store(&h)
        .save(&AuthDotJson::from_api_key(SecretString::new("sk-2".into())))
        .unwrap();
    assert_eq!(
        m.current()
            .unwrap()
            .unwrap()
            .openai_api_key
            .as_ref()
            .unwrap()
            .expose_secret(),
        "sk-2"
    );
    assert!(store(&h).delete().unwrap());
    assert!(m.current().unwrap().is_none());
    assert!(matches!(
        m.refresh(true).await,
        Err(ManagerError::NoRefresher)
    ));
}

#[tokio::test]
async fn the_lock_excludes_a_refresh_while_held() {
    let (_d, h) = home();
    let _ = store(&h).save(&chatgpt(now() - 10, "rt-0")).unwrap();
    let issuer = Arc::new(Issuer::default());
    issuer.live.lock().unwrap().push("rt-0".to_string());
    let held = codex_auth::StoreLock::try_acquire(&h.join("auth.json.lock"))
        .unwrap()
        .unwrap();
    let m = AuthManager::new(store(&h), Some(issuer.clone()))
        .with_lock_timeout(Duration::from_millis(300));
    let e = m.refresh(false).await.unwrap_err();
    assert!(e.to_string().contains("held the credential lock"), "{e}");
    assert_eq!(issuer.calls.load(Ordering::SeqCst), 0);
    drop(held);
    assert_eq!(m.refresh(false).await.unwrap(), RefreshOutcome::Refreshed);
}
