//! The locked pages keys live in (issue 17, key rotation). The confined proxy cannot map new
//! locked memory (its seccomp allow-list has no `memfd_secret`, `mlock` or `ftruncate`), so
//! every page a key can ever use is allocated at start-up, while root and unconfined, and reused:
//! a key is read with raw `read(2)` straight into a free page ([`KeyPages::load`], the start-up
//! checks: [`crate::key::read_options`]), shared by its handles ([`ApiKey`] clones), and the page
//! goes back to the pool **wiped** (every byte) when the last handle is dropped.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::HeaderValue;
use secure_main::{LockPolicy, RawRead, SecretBuf};

use crate::key::{ApiKey, KeyError, MAX_HEADER_LEN, read_options};

/// Locked pages allocated at start-up when the key can be rotated: the key in force plus three
/// older keys still used by streams in flight.
pub const KEY_PAGES: usize = 4;

/// Every page a key may live in, allocated before confinement; see the module docs.
pub struct KeyPages {
    free: Mutex<Vec<SecretBuf>>,
    total: usize,
    in_use: AtomicUsize,
    wiped: AtomicU64,
}

impl std::fmt::Debug for KeyPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPages")
            .field("total", &self.total)
            .field("in_use", &self.in_use())
            .finish()
    }
}

impl KeyPages {
    /// Maps `n` locked pages for keys (`mlock` failure is an error). `secret_memory: false`
    /// uses mlock'ed anonymous pages instead of `memfd_secret` (what kernels without it get),
    /// which root can read through `/proc/PID/mem`: the tests use it to watch the wipe.
    pub fn new(n: usize, secret_memory: bool) -> Result<Arc<Self>, KeyError> {
        let cap = MAX_HEADER_LEN + 2;
        let mut free = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            let buf = if secret_memory {
                SecretBuf::with_capacity(cap, LockPolicy::Required)
            } else {
                SecretBuf::with_capacity_mlocked(cap, LockPolicy::Required)
            }
            .map_err(|source| KeyError::Alloc { source })?;
            free.push(buf);
        }
        Ok(Arc::new(KeyPages {
            total: free.len(),
            free: Mutex::new(free),
            in_use: AtomicUsize::new(0),
            wiped: AtomicU64::new(0),
        }))
    }

    /// Pages holding a key that something still uses.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }

    /// Pages in the pool.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Pages wiped and returned since start-up (one per retired key).
    pub fn wiped(&self) -> u64 {
        self.wiped.load(Ordering::Acquire)
    }

    /// Reads `Bearer <key>` from `r` into a free page, with the start-up checks. On any error
    /// the page is wiped and returned.
    pub fn load<R: RawRead>(self: &Arc<Self>, r: &mut R) -> Result<ApiKey, KeyError> {
        self.load_with(r, secure_main::read_secret_into)
    }

    /// [`KeyPages::load`] for an input that must be the key alone (the admin socket's
    /// `POST /rotate-key` body): read to its end, and refused
    /// ([`KeyError::TrailingContent`]) if anything but line endings follows the key, as a key
    /// file is (outside review r15 F7).
    pub fn load_alone<R: RawRead>(self: &Arc<Self>, r: &mut R) -> Result<ApiKey, KeyError> {
        self.load_with(r, secure_main::read_secret_alone_into)
    }

    fn load_with<R: RawRead>(
        self: &Arc<Self>,
        r: &mut R,
        read: fn(
            &mut R,
            &mut SecretBuf,
            &secure_main::SecretReadOptions,
        ) -> Result<(), secure_main::ReadSecretError>,
    ) -> Result<ApiKey, KeyError> {
        let Some(mut buf) = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
            return Err(KeyError::PagesInUse { pages: self.total });
        };
        if let Err(e) = read(r, &mut buf, &read_options(LockPolicy::Required)) {
            // read_secret_into left the page wiped.
            self.give_back(buf);
            return Err(e.into());
        }
        self.in_use.fetch_add(1, Ordering::AcqRel);
        let owner = PooledKey {
            buf: Some(buf),
            pool: Arc::clone(self),
        };
        // No copy: the `Bytes` owns the page's handle and points into the page.
        let mut value = HeaderValue::from_maybe_shared(Bytes::from_owner(owner))
            .map_err(|_| KeyError::HeaderValue)?;
        value.set_sensitive(true);
        Ok(ApiKey::new(value))
    }

    fn give_back(&self, buf: SecretBuf) {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(buf);
    }
}

/// A page holding a key; wiped and returned to its pool when the last handle drops it.
struct PooledKey {
    buf: Option<SecretBuf>,
    pool: Arc<KeyPages>,
}

impl AsRef<[u8]> for PooledKey {
    fn as_ref(&self) -> &[u8] {
        self.buf.as_ref().map_or(&[], SecretBuf::expose_secret)
    }
}

impl Drop for PooledKey {
    fn drop(&mut self) {
        if let Some(mut buf) = self.buf.take() {
            buf.clear();
            self.pool.in_use.fetch_sub(1, Ordering::AcqRel);
            self.pool.wiped.fetch_add(1, Ordering::AcqRel);
            self.pool.give_back(buf);
            tracing::info!(
                pages_in_use = self.pool.in_use(),
                "key page wiped and returned to the pool (its key is no longer used by any request)"
            );
        }
    }
}
