//! [`AuthManager`]: one auth state per process, shared by every caller.
//!
//! - **Loads once, serves from memory.** [`AuthManager::current`] costs one
//!   [`AuthStore::fingerprint`] (an `lstat` for the file store) and reloads only when the store
//!   changed, so a login, logout or refresh by another process is seen at the next call. Every
//!   change of the state bumps a generation that [`AuthManager::subscribe`] reports.
//! - **Refreshes ChatGPT tokens** when the access token expires within the margin (5 minutes by
//!   default; its `exp` claim is read unverified, for scheduling only; a token without `exp` is due
//!   when `last_refresh` is more than 8 days old, as openai/codex did) and on request
//!   ([`AuthManager::refresh`] with `force`).
//! - **Serialized across processes.** A refresh takes this process's refresh mutex, then the
//!   [`StoreLock`] beside the store, then RE-READS the store: when the stored refresh token is no
//!   longer the one this process saw and the stored access token is fresh, another process has
//!   already refreshed and its tokens are adopted (no second refresh: refresh tokens rotate, and the
//!   loser's copy would be dead). Logins and logouts through the manager take the same lock.
//! - **A writer that ignores the lock** (an older codex, an editor) and changes the store while
//!   the refresh request is in flight is detected by comparing fingerprints before saving: the
//!   store's new content wins, the refreshed tokens are dropped (outcome `Superseded`).
//! - **`invalid_grant`** (the refresh token is dead): the manager reports not logged in and
//!   [`ManagerError::SignInAgain`] until the store changes (a new login); the store itself is left
//!   untouched, so nothing another process relies on disappears under it and the account id
//!   stays for `codex login` to replace.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::Digest;
use tokio::sync::watch;

use crate::lock::{DEFAULT_LOCK_TIMEOUT, LockError, StoreLock};
use crate::store::{DeleteOutcome, Fingerprint, SaveOutcome};
use crate::{AuthDotJson, AuthError, AuthStore, SecretString, TokenData};

/// Refresh this long before the access token expires.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Without an `exp` claim: refresh when `last_refresh` is older than this.
pub const FALLBACK_REFRESH_AGE: Duration = Duration::from_secs(8 * 24 * 3600);

/// New tokens from a refresh.
#[derive(Debug)]
pub struct RefreshedTokens {
    pub id_token: SecretString,
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    /// `None`: keep the stored account id.
    pub account_id: Option<String>,
}

/// Why a refresh failed.
#[derive(Debug, thiserror::Error)]
pub enum RefreshFailure {
    /// The issuer answered `invalid_grant`: only a new sign-in helps.
    #[error("{0}")]
    InvalidGrant(String),
    /// Anything else (network, a malformed answer); the stored tokens stay as they are.
    #[error("{0}")]
    Other(String),
}

/// The future a [`TokenRefresher`] returns.
pub type RefreshFuture<'a> =
    Pin<Box<dyn Future<Output = Result<RefreshedTokens, RefreshFailure>> + Send + 'a>>;

/// Performs one refresh at the issuer (implemented by `codex-login`'s ChatGPT client).
pub trait TokenRefresher: Send + Sync {
    fn refresh<'a>(&'a self, tokens: &'a TokenData) -> RefreshFuture<'a>;
}

/// What [`AuthManager::refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// This process refreshed and stored new tokens.
    Refreshed,
    /// Another process had already refreshed; its tokens were adopted.
    Adopted,
    /// The tokens are not due (and no refresh was forced).
    NotNeeded,
    /// The stored credentials are not a ChatGPT sign-in (none, or an API key).
    NotChatGpt,
    /// The store was changed mid-refresh by a writer that does not take the lock; its content
    /// was adopted and the refreshed tokens dropped.
    Superseded,
}

/// Why the manager could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error(transparent)]
    Store(#[from] AuthError),
    #[error(transparent)]
    Lock(#[from] LockError),
    /// `invalid_grant`: the stored sign-in is dead.
    #[error(
        "your ChatGPT sign-in is no longer valid ({reason}): you are logged out; sign in again with `codex login`"
    )]
    SignInAgain { reason: String },
    /// The refresh failed for another reason; the stored tokens are unchanged.
    #[error("refreshing the ChatGPT tokens failed: {0}")]
    Refresh(String),
    #[error("token refresh is not configured for this process")]
    NoRefresher,
}

#[derive(Default)]
struct Cache {
    loaded: bool,
    fingerprint: Option<Fingerprint>,
    auth: Option<Arc<AuthDotJson>>,
    /// Set by `invalid_grant`: the fingerprint of the dead store content, and why.
    invalid: Option<(Fingerprint, String)>,
}

/// See the module docs.
pub struct AuthManager {
    store: AuthStore,
    refresher: Option<Arc<dyn TokenRefresher>>,
    cache: Mutex<Cache>,
    refresh_lock: tokio::sync::Mutex<()>,
    lock_path: PathBuf,
    lock_timeout: Duration,
    margin: Duration,
    generation: watch::Sender<u64>,
}

impl std::fmt::Debug for AuthManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthManager")
            .field("store", &self.store)
            .field("margin", &self.margin)
            .finish()
    }
}

fn hash(s: &SecretString) -> [u8; 32] {
    sha2::Sha256::digest(s.expose_secret().as_bytes()).into()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The `exp` claim of a JWT (unix seconds), read without verifying anything.
pub fn jwt_exp(token: &str) -> Option<i64> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("exp")?.as_i64()
}

/// When the access token of `tokens` expires (unix seconds), if it says.
pub fn access_token_expiry(tokens: &TokenData) -> Option<i64> {
    jwt_exp(tokens.access_token.expose_secret())
}

/// `YYYY-MM-DDTHH:MM:SSZ` → unix seconds.
pub fn parse_rfc3339_utc(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC), as openai/codex writes `last_refresh`.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl AuthManager {
    /// A manager for `store`; without a refresher, tokens are served as stored and
    /// [`AuthManager::refresh`] fails with [`ManagerError::NoRefresher`].
    pub fn new(store: AuthStore, refresher: Option<Arc<dyn TokenRefresher>>) -> Self {
        let lock_path = StoreLock::path_for(store.codex_home());
        Self {
            store,
            refresher,
            cache: Mutex::new(Cache::default()),
            refresh_lock: tokio::sync::Mutex::new(()),
            lock_path,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            margin: DEFAULT_REFRESH_MARGIN,
            generation: watch::channel(0).0,
        }
    }

    /// Refresh this long before expiry instead of 5 minutes.
    pub fn with_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Wait this long for the cross-process lock instead of 60 s.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    pub fn store(&self) -> &AuthStore {
        &self.store
    }

    /// The lock file beside the store.
    pub fn lock_path(&self) -> &std::path::Path {
        &self.lock_path
    }

    /// A receiver whose value changes whenever the state does (login, logout, refresh, a change
    /// by another process noticed by [`AuthManager::current`], an `invalid_grant`).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn visible(c: &Cache) -> Option<Arc<AuthDotJson>> {
        match (&c.invalid, c.fingerprint) {
            (Some((dead, _)), Some(fp)) if *dead == fp => None,
            _ => c.auth.clone(),
        }
    }

    /// Why the manager reports not logged in although credentials are stored (`invalid_grant`).
    pub fn invalidated(&self) -> Option<String> {
        let c = self.cache();
        match (&c.invalid, c.fingerprint) {
            (Some((dead, why)), Some(fp)) if *dead == fp => Some(why.clone()),
            _ => None,
        }
    }

    /// Replace the cache with what the store holds now. Returns the content.
    fn reload(&self) -> Result<Option<Arc<AuthDotJson>>, ManagerError> {
        let fp = self.store.fingerprint()?;
        let loaded = self.store.load_with_source()?;
        for w in &loaded.warnings {
            eprintln!("codex: warning: {w}");
        }
        let mut c = self.cache();
        let changed = !c.loaded || c.fingerprint != Some(fp);
        c.loaded = true;
        c.fingerprint = Some(fp);
        c.auth = loaded.auth.map(Arc::new);
        let out = Self::visible(&c);
        drop(c);
        if changed {
            self.bump();
        }
        Ok(out)
    }

    /// The stored credentials (`None`: not logged in), from memory unless the store changed.
    pub fn current(&self) -> Result<Option<Arc<AuthDotJson>>, ManagerError> {
        let fp = self.store.fingerprint()?;
        {
            let c = self.cache();
            if c.loaded && c.fingerprint == Some(fp) {
                return Ok(Self::visible(&c));
            }
        }
        self.reload()
    }

    /// `true` when `tokens` should be refreshed now.
    pub fn is_due(&self, tokens: &TokenData, last_refresh: Option<&str>) -> bool {
        let now = unix_now();
        match access_token_expiry(tokens) {
            Some(exp) => exp - (self.margin.as_secs() as i64) <= now,
            None => last_refresh
                .and_then(parse_rfc3339_utc)
                .is_none_or(|t| now - t >= FALLBACK_REFRESH_AGE.as_secs() as i64),
        }
    }

    fn auth_is_due(&self, auth: &AuthDotJson) -> bool {
        auth.tokens
            .as_ref()
            .is_some_and(|t| self.is_due(t, auth.last_refresh.as_deref()))
    }

    /// The credentials to use for a request now: ChatGPT tokens that are due are refreshed first.
    pub async fn fresh(&self) -> Result<Option<Arc<AuthDotJson>>, ManagerError> {
        let cur = self.current()?;
        if cur.as_deref().is_some_and(|a| self.auth_is_due(a)) {
            self.refresh(false).await?;
            return self.current();
        }
        Ok(cur)
    }

    /// Refresh the ChatGPT tokens if they are due, or always with `force` (see the module docs
    /// for the cross-process protocol).
    pub async fn refresh(&self, force: bool) -> Result<RefreshOutcome, ManagerError> {
        let refresher = self.refresher.clone().ok_or(ManagerError::NoRefresher)?;
        if let Some(why) = self.invalidated() {
            if self.current()?.is_none() {
                return Err(ManagerError::SignInAgain { reason: why });
            }
        }
        let seen = {
            let cur = self.current()?;
            let Some(t) = cur.as_ref().and_then(|a| a.tokens.as_ref()) else {
                return Ok(RefreshOutcome::NotChatGpt);
            };
            if !force && !self.auth_is_due(cur.as_deref().unwrap_or(&AuthDotJson::default())) {
                return Ok(RefreshOutcome::NotNeeded);
            }
            hash(&t.refresh_token)
        };
        let _local = self.refresh_lock.lock().await;
        self.store.ensure_home()?;
        let _lock = StoreLock::acquire(&self.lock_path, self.lock_timeout).await?;
        // Re-read under the lock: another process may have refreshed (or logged in or out).
        let fp = self.store.fingerprint()?;
        let cur = self.reload()?;
        let Some(cur) = cur else {
            return match self.invalidated() {
                Some(reason) => Err(ManagerError::SignInAgain { reason }),
                None => Ok(RefreshOutcome::NotChatGpt),
            };
        };
        let Some(tokens) = cur.tokens.as_ref() else {
            return Ok(RefreshOutcome::NotChatGpt);
        };
        let due = self.auth_is_due(&cur);
        if hash(&tokens.refresh_token) != seen && !due {
            return Ok(RefreshOutcome::Adopted);
        }
        if !force && !due {
            return Ok(RefreshOutcome::NotNeeded);
        }
        let new = match refresher.refresh(tokens).await {
            Ok(new) => new,
            Err(RefreshFailure::InvalidGrant(reason)) => {
                self.cache().invalid = Some((fp, reason.clone()));
                self.bump();
                return Err(ManagerError::SignInAgain { reason });
            }
            Err(RefreshFailure::Other(reason)) => return Err(ManagerError::Refresh(reason)),
        };
        if self.store.fingerprint()? != fp {
            // Changed mid-refresh by a writer that does not take the lock: its content wins.
            self.reload()?;
            return Ok(RefreshOutcome::Superseded);
        }
        let auth = AuthDotJson {
            openai_api_key: None,
            tokens: Some(TokenData {
                id_token: new.id_token,
                access_token: new.access_token,
                refresh_token: new.refresh_token,
                account_id: new.account_id.or_else(|| tokens.account_id.clone()),
            }),
            last_refresh: Some(rfc3339_utc(SystemTime::now())),
        };
        let saved = self.save_locked(auth)?;
        if let Some(w) = saved.warning {
            eprintln!("codex: warning: {w}");
        }
        Ok(RefreshOutcome::Refreshed)
    }

    /// Save with the lock held and put `auth` into the cache.
    fn save_locked(&self, auth: AuthDotJson) -> Result<SaveOutcome, ManagerError> {
        let outcome = self.store.save(&auth)?;
        let fp = self.store.fingerprint()?;
        let mut c = self.cache();
        c.loaded = true;
        c.fingerprint = Some(fp);
        c.auth = Some(Arc::new(auth));
        c.invalid = None;
        drop(c);
        self.bump();
        Ok(outcome)
    }

    /// Store new credentials (a login), under the lock. The fallback warning in the outcome must
    /// be shown to the user.
    pub async fn save(&self, auth: AuthDotJson) -> Result<SaveOutcome, ManagerError> {
        let _local = self.refresh_lock.lock().await;
        self.store.ensure_home()?;
        let _lock = StoreLock::acquire(&self.lock_path, self.lock_timeout).await?;
        self.save_locked(auth)
    }

    /// Remove the stored credentials (a logout), under the lock.
    pub async fn logout(&self) -> Result<DeleteOutcome, ManagerError> {
        let _local = self.refresh_lock.lock().await;
        let _lock = if self.store.codex_home().is_dir() {
            Some(StoreLock::acquire(&self.lock_path, self.lock_timeout).await?)
        } else {
            None
        };
        let outcome = self.store.delete_with_warnings()?;
        self.reload()?;
        self.cache().invalid = None;
        self.bump();
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        for secs in [0u64, 951_782_400, 1_763_683_199, 4_102_444_800] {
            let s = rfc3339_utc(UNIX_EPOCH + Duration::from_secs(secs));
            assert_eq!(parse_rfc3339_utc(&s), Some(secs as i64), "{s}");
        }
        assert_eq!(parse_rfc3339_utc("2025-13"), None);
        assert_eq!(parse_rfc3339_utc("garbage-garbage-garbage"), None);
    }

    #[test]
    fn jwt_exp_reads_the_claim_or_nothing() {
        use base64::Engine;
        let p = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1234}"#);
        assert_eq!(jwt_exp(&format!("h.{p}.s")), Some(1234));
        assert_eq!(jwt_exp("opaque-token"), None);
        assert_eq!(jwt_exp("a.!!!.c"), None);
    }
}
