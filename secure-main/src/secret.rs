//! [`SecretBuf`]: fixed-capacity memory for secrets that is locked, kept out of core dumps,
//! fenced by guard pages and wiped on drop.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use zeroize::Zeroize;

use crate::sys::{self, GuardedPages, MapError};

/// What to do when `mlock(2)` fails (typically `RLIMIT_MEMLOCK` without `CAP_IPC_LOCK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockPolicy {
    /// `mlock` failure is an error: the buffer is not created.
    Required,
    /// `mlock` failure is tolerated and reported: the buffer works, [`SecretBuf::lock_status`]
    /// says [`LockStatus::Degraded`] with the errno, and [`crate::hardening_report`] counts it.
    /// The pages may then be swapped out; they are still excluded from core dumps and wiped.
    AllowDegraded,
}

/// Whether a [`SecretBuf`]'s pages are locked in RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum LockStatus {
    /// `mlock` succeeded: the pages cannot be swapped out.
    Locked,
    /// `mlock` failed with `errno` and the caller allowed it ([`LockPolicy::AllowDegraded`]).
    Degraded {
        /// The errno `mlock` returned (EPERM: limit 0 and no CAP_IPC_LOCK; ENOMEM: over the limit).
        errno: i32,
    },
}

/// A [`SecretBuf`] could not be created or grown. Messages never contain secret bytes.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The requested capacity overflows the address space once rounded to pages.
    #[error("secret buffer capacity {requested} is too large")]
    CapacityTooLarge {
        /// The capacity asked for.
        requested: usize,
    },
    /// `mmap(2)` of the buffer's pages failed.
    #[error("failed to map secret memory (mmap): {source}")]
    Mmap {
        /// The error mmap returned.
        source: io::Error,
    },
    /// `mprotect(PROT_NONE)` on a guard page failed.
    #[error("failed to protect a guard page of secret memory (mprotect PROT_NONE): {source}")]
    MprotectGuard {
        /// The error mprotect returned.
        source: io::Error,
    },
    /// `madvise(MADV_DONTDUMP)` failed.
    #[error("failed to exclude secret memory from core dumps (madvise MADV_DONTDUMP): {source}")]
    MadviseDontDump {
        /// The error madvise returned.
        source: io::Error,
    },
    /// `madvise(MADV_WIPEONFORK)` failed.
    #[error("failed to mark secret memory wipe-on-fork (madvise MADV_WIPEONFORK): {source}")]
    MadviseWipeOnFork {
        /// The error madvise returned.
        source: io::Error,
    },
    /// `mlock(2)` failed and the policy was [`LockPolicy::Required`].
    #[error("failed to lock secret memory (mlock): {source}")]
    Mlock {
        /// The error mlock returned.
        source: io::Error,
    },
    /// Appending would exceed the fixed capacity (a `SecretBuf` never reallocates).
    #[error(
        "secret does not fit: capacity {capacity} bytes, {len} used, {additional} more requested"
    )]
    CapacityExceeded {
        /// The buffer's capacity.
        capacity: usize,
        /// Bytes already stored.
        len: usize,
        /// Bytes the caller tried to add.
        additional: usize,
    },
}

/// Process-wide counters the report shows: buffers (and their pages/bytes) currently locked.
pub(crate) static LOCKED_BUFFERS: AtomicUsize = AtomicUsize::new(0);
/// Live buffers (of [`LOCKED_BUFFERS`]) whose pages are `memfd_secret` memory.
pub(crate) static SECRET_MEMORY_BUFFERS: AtomicUsize = AtomicUsize::new(0);
pub(crate) static LOCKED_PAGES: AtomicUsize = AtomicUsize::new(0);
pub(crate) static LOCKED_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Live buffers whose `mlock` failed under [`LockPolicy::AllowDegraded`].
pub(crate) static DEGRADED_BUFFERS: AtomicUsize = AtomicUsize::new(0);

/// Fixed-capacity secret memory.
///
/// Layout: its own anonymous mapping, `[PROT_NONE guard page][data pages][PROT_NONE guard page]`,
/// so a linear overrun or underrun from neighbouring memory faults instead of reading the secret.
/// The data pages are:
/// - `mlock`ed (see [`LockPolicy`]), so they are never written to swap;
/// - `MADV_DONTDUMP` (Linux), so they are left out of core dumps even if a dump happens;
/// - `MADV_WIPEONFORK` (Linux), so a forked child sees zeros instead of the secret;
/// - overwritten with zeros (volatile writes, `zeroize`, the whole mapping's data pages) on drop,
///   before `munlock`/`munmap`.
///
/// A `SecretBuf` never reallocates: [`SecretBuf::extend_from_slice`] fails when the capacity is
/// exceeded, so no copy of the secret is ever left behind in freed memory. It is not `Clone`,
/// and `Debug`/`Display` print `[REDACTED]`. [`SecretBuf::expose_secret`] is the one way to read
/// the bytes.
pub struct SecretBuf {
    /// Wiped, unlocked and unmapped by its own `Drop`.
    pages: GuardedPages,
    len: usize,
    capacity: usize,
    lock: LockStatus,
    dont_dump: bool,
    account: Account,
}

impl SecretBuf {
    /// Maps, guards, advises and locks a buffer for `cap` bytes (rounded up to whole pages).
    ///
    /// On error nothing stays mapped. With [`LockPolicy::AllowDegraded`] an `mlock` failure is
    /// not an error; check [`SecretBuf::lock_status`].
    ///
    /// On Linux the data pages are a `memfd_secret(2)` mapping when the kernel offers it
    /// (5.14+, see [`SecretBuf::in_secret_memory`]): removed from the kernel's direct map, so not
    /// even root reading `/proc/<pid>/mem` sees them; unevictable (never swapped, charged to
    /// `RLIMIT_MEMLOCK` when mapped, so `mlock` is not called) and `MADV_DONTFORK` (a forked child
    /// has no such pages at all, rather than zeroed ones: `MADV_WIPEONFORK` only applies to
    /// private mappings). When the kernel refuses (ENOSYS, disabled, EAGAIN over the memlock
    /// limit), the mlock'ed anonymous pages are used; that is not an error.
    pub fn with_capacity(cap: usize, lock: LockPolicy) -> Result<SecretBuf, SecretError> {
        Self::new(cap, lock, true)
    }

    /// Like [`SecretBuf::with_capacity`] but never `memfd_secret`: always the mlock'ed,
    /// wipe-on-fork anonymous pages (readable by root through `/proc/<pid>/mem`).
    pub fn with_capacity_mlocked(cap: usize, lock: LockPolicy) -> Result<SecretBuf, SecretError> {
        Self::new(cap, lock, false)
    }

    fn new(cap: usize, lock: LockPolicy, try_secret: bool) -> Result<SecretBuf, SecretError> {
        if cap > isize::MAX as usize / 2 {
            return Err(SecretError::CapacityTooLarge { requested: cap });
        }
        let mut pages = GuardedPages::map(cap, try_secret).map_err(|e| match e {
            MapError::Mmap(source) => SecretError::Mmap { source },
            MapError::Mprotect(source) => SecretError::MprotectGuard { source },
        })?;
        let dont_dump = advise_platform(&pages)?;
        let lock = match if pages.is_secret() {
            Ok(()) // unevictable by construction
        } else {
            pages.lock()
        } {
            Ok(()) => LockStatus::Locked,
            Err(source) => match lock {
                LockPolicy::Required => return Err(SecretError::Mlock { source }),
                LockPolicy::AllowDegraded => LockStatus::Degraded {
                    errno: source.raw_os_error().unwrap_or(0),
                },
            },
        };
        let account = Account::open(lock, &pages);
        Ok(SecretBuf {
            pages,
            len: 0,
            capacity: cap,
            lock,
            dont_dump,
            account,
        })
    }

    /// Whether the bytes live in `memfd_secret(2)` memory (out of the kernel's direct map, not
    /// readable through `/proc/<pid>/mem`), rather than in mlock'ed anonymous pages.
    pub fn in_secret_memory(&self) -> bool {
        self.pages.is_secret()
    }

    /// Bytes stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no bytes are stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The capacity asked for at creation (the mapping itself is rounded up to whole pages).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends `b`; fails (storing nothing) if the result would exceed the capacity.
    pub fn extend_from_slice(&mut self, b: &[u8]) -> Result<(), SecretError> {
        let end = self
            .len
            .checked_add(b.len())
            .filter(|end| *end <= self.capacity)
            .ok_or(SecretError::CapacityExceeded {
                capacity: self.capacity,
                len: self.len,
                additional: b.len(),
            })?;
        self.pages.data_mut()[self.len..end].copy_from_slice(b);
        self.len = end;
        Ok(())
    }

    /// The secret bytes. This is the one way to read them: every call site is a place where the
    /// secret leaves this type, so keep the returned slice short-lived and never copy it into
    /// ordinary (unlocked, dumpable) memory.
    pub fn expose_secret(&self) -> &[u8] {
        &self.pages.data()[..self.len]
    }

    /// Whether the pages are locked, or why not.
    pub fn lock_status(&self) -> LockStatus {
        self.lock
    }

    /// Whether the pages are excluded from core dumps (`MADV_DONTDUMP`; Linux only — elsewhere
    /// `RLIMIT_CORE` 0 from the pre-main hardening is the only protection, and this is `false`).
    pub fn excluded_from_core_dumps(&self) -> bool {
        self.dont_dump
    }

    /// Leaks the buffer for a secret that lives as long as the process (for example a header
    /// value built with `Bytes::from_static` that points into these pages, so no unlocked copy
    /// exists). The pages stay mapped, guarded, locked (as [`SecretBuf::lock_status`] said) and
    /// excluded from core dumps until the process exits; they are **never zeroized** (the kernel
    /// frees them at exit). The report keeps counting them as locked.
    pub fn into_static(self) -> &'static [u8] {
        let SecretBuf {
            pages,
            len,
            account,
            ..
        } = self;
        // The pages stay locked: keep them in the report's counters.
        std::mem::forget(account);
        &pages.leak()[..len]
    }

    /// Address of the first secret byte, for tests that inspect the mapping from outside.
    #[doc(hidden)]
    pub fn data_addr_for_tests(&self) -> usize {
        self.pages.data_addr()
    }

    /// Wipes the whole buffer (every data byte, not only the stored ones) and leaves it empty,
    /// ready to hold another secret: memory allocated while the process could still map locked
    /// pages can be reused after a seccomp filter refuses new ones.
    pub fn clear(&mut self) {
        self.pages.data_mut().zeroize();
        self.len = 0;
    }

    /// Shortens the stored secret to `new_len` bytes and wipes the bytes after it.
    pub(crate) fn truncate(&mut self, new_len: usize) {
        if new_len < self.len {
            let old = self.len;
            self.pages.data_mut()[new_len..old].zeroize();
            self.len = new_len;
        }
    }

    /// The unused capacity, for reading straight into the buffer (then [`Self::commit`]).
    pub(crate) fn spare_mut(&mut self) -> &mut [u8] {
        let (len, cap) = (self.len, self.capacity);
        &mut self.pages.data_mut()[len..cap]
    }

    /// Marks `n` more bytes of the spare capacity as stored (they were written through
    /// [`Self::spare_mut`]).
    pub(crate) fn commit(&mut self, n: usize) {
        self.len = self.len.saturating_add(n).min(self.capacity);
    }
}

/// Keeps the report's counters in step with the live buffers: counted at creation, uncounted
/// on drop (not on [`SecretBuf::into_static`], whose pages stay locked).
enum Account {
    Locked {
        pages: usize,
        bytes: usize,
        secret: bool,
    },
    Degraded,
}

impl Account {
    fn open(lock: LockStatus, pages: &GuardedPages) -> Account {
        match lock {
            LockStatus::Locked => {
                let (n, bytes) = (pages.data_len() / pages.page(), pages.data_len());
                LOCKED_BUFFERS.fetch_add(1, Ordering::Relaxed);
                LOCKED_PAGES.fetch_add(n, Ordering::Relaxed);
                LOCKED_BYTES.fetch_add(bytes, Ordering::Relaxed);
                let secret = pages.is_secret();
                if secret {
                    SECRET_MEMORY_BUFFERS.fetch_add(1, Ordering::Relaxed);
                }
                Account::Locked {
                    pages: n,
                    bytes,
                    secret,
                }
            }
            LockStatus::Degraded { .. } => {
                DEGRADED_BUFFERS.fetch_add(1, Ordering::Relaxed);
                Account::Degraded
            }
        }
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        match *self {
            Account::Locked {
                pages,
                bytes,
                secret,
            } => {
                if secret {
                    SECRET_MEMORY_BUFFERS.fetch_sub(1, Ordering::Relaxed);
                }
                LOCKED_BUFFERS.fetch_sub(1, Ordering::Relaxed);
                LOCKED_PAGES.fetch_sub(pages, Ordering::Relaxed);
                LOCKED_BYTES.fetch_sub(bytes, Ordering::Relaxed);
            }
            Account::Degraded => {
                DEGRADED_BUFFERS.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// Linux: `MADV_DONTDUMP` and `MADV_WIPEONFORK` on the data pages (both required; the kernel
/// has had them since 3.4 and 4.14). Returns whether the pages are excluded from core dumps.
#[cfg(target_os = "linux")]
fn advise_platform(pages: &GuardedPages) -> Result<bool, SecretError> {
    pages
        .advise(sys::MADV_DONTDUMP)
        .map_err(|source| SecretError::MadviseDontDump { source })?;
    // A memfd_secret mapping is shared: WIPEONFORK does not apply (EINVAL); DONTFORK leaves the
    // child without the pages at all.
    let fork_advice = if pages.is_secret() {
        sys::MADV_DONTFORK
    } else {
        sys::MADV_WIPEONFORK
    };
    pages
        .advise(fork_advice)
        .map_err(|source| SecretError::MadviseWipeOnFork { source })?;
    Ok(true)
}

/// Other systems have no portable "exclude from core dump" advice; `RLIMIT_CORE` 0 (pre-main
/// hardening) is what keeps the secret out of dumps there.
#[cfg(not(target_os = "linux"))]
fn advise_platform(_pages: &GuardedPages) -> Result<bool, SecretError> {
    Ok(false)
}

impl fmt::Debug for SecretBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for SecretBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

// Linux-only: they look at memory through /proc/self/mem and use MADV_DONTDUMP.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::testutil::{all_zero, peek, region_after};

    #[test]
    #[cfg(target_os = "linux")]
    fn secret_memory_is_unreadable_through_proc_mem_even_for_root() {
        use std::os::unix::fs::FileExt;
        let read = |b: &SecretBuf| {
            let f = std::fs::File::open("/proc/self/mem").expect("open /proc/self/mem");
            let mut out = vec![0u8; b.len()];
            f.read_exact_at(&mut out, b.data_addr_for_tests() as u64)
                .map(|()| out)
        };
        // The reader with the most rights: the suite runs as root.
        assert_eq!(euid_from_proc(), 0, "this test must run as root");
        let mut b = SecretBuf::with_capacity(64, LockPolicy::Required).unwrap();
        b.extend_from_slice(b"sk-memfd-secret-canary").unwrap();
        assert!(
            b.in_secret_memory(),
            "memfd_secret is not available on this kernel: cannot check the claim"
        );
        assert_eq!(b.lock_status(), LockStatus::Locked);
        let err = read(&b).expect_err("root read memfd_secret memory through /proc/self/mem");
        assert!(
            matches!(err.raw_os_error(), Some(libc::EIO) | Some(libc::EFAULT)),
            "{err}"
        );
        // The process itself still reads it.
        assert_eq!(b.expose_secret(), b"sk-memfd-secret-canary");
        // Control: the mlock'ed fallback is readable by root.
        let mut m = SecretBuf::with_capacity_mlocked(64, LockPolicy::Required).unwrap();
        m.extend_from_slice(b"sk-memfd-secret-canary").unwrap();
        assert!(!m.in_secret_memory());
        assert_eq!(read(&m).unwrap(), b"sk-memfd-secret-canary");
        // The report counts the secret-memory buffer.
        assert!(crate::hardening_report().secret_memory_buffers >= 1);
    }

    #[cfg(target_os = "linux")]
    fn euid_from_proc() -> u32 {
        let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .expect("effective uid in /proc/self/status")
    }

    #[test]
    fn drop_wipes_the_whole_data_region_before_unmapping() {
        let (before, after) = region_after(|| {
            let mut b = SecretBuf::with_capacity(100, LockPolicy::Required).unwrap();
            b.extend_from_slice(b"sk-top-secret-value").unwrap();
            // Control: the same /proc/self/mem read sees the secret while the buffer lives.
            let before = peek(b.data_addr_for_tests(), 19);
            drop(b);
            before
        });
        assert_eq!(before, b"sk-top-secret-value");
        assert!(all_zero(&after), "secret left in memory after drop");
        assert_eq!(after.len() % crate::sys::page_size(), 0);
    }

    #[test]
    fn capacity_is_fixed_and_overflow_stores_nothing() {
        let mut b = SecretBuf::with_capacity(8, LockPolicy::Required).unwrap();
        assert!(b.is_empty());
        b.extend_from_slice(b"12345").unwrap();
        let err = b.extend_from_slice(b"6789").unwrap_err();
        assert!(matches!(
            err,
            SecretError::CapacityExceeded {
                capacity: 8,
                len: 5,
                additional: 4
            }
        ));
        assert_eq!(
            err.to_string(),
            "secret does not fit: capacity 8 bytes, 5 used, 4 more requested"
        );
        assert_eq!(b.expose_secret(), b"12345");
        b.extend_from_slice(b"678").unwrap();
        assert_eq!(b.expose_secret(), b"12345678");
        assert_eq!((b.len(), b.capacity()), (8, 8));
        assert!(SecretBuf::with_capacity(usize::MAX, LockPolicy::Required).is_err());
    }

    #[test]
    fn truncate_wipes_the_tail() {
        crate::testutil::no_secret_memory();
        let mut b = SecretBuf::with_capacity(32, LockPolicy::Required).unwrap();
        b.extend_from_slice(b"keep\nsecond-secret").unwrap();
        b.truncate(4);
        assert_eq!(b.expose_secret(), b"keep");
        assert!(all_zero(&peek(b.data_addr_for_tests() + 4, 28)));
    }

    #[test]
    fn debug_and_display_are_redacted() {
        let mut b = SecretBuf::with_capacity(16, LockPolicy::Required).unwrap();
        b.extend_from_slice(b"sk-visible").unwrap();
        assert_eq!(format!("{b:?}"), "[REDACTED]");
        assert_eq!(format!("{b}"), "[REDACTED]");
        assert_eq!(format!("{:?}", Some(&b)), "Some([REDACTED])");
    }

    #[test]
    fn locked_buffers_are_counted_while_alive_and_static_ones_forever() {
        // Counters are process-wide and other tests run in parallel: compare a snapshot taken
        // around this thread's own operations only through the pages it adds, which is at least
        // one page per buffer.
        let page = crate::sys::page_size();
        let b = SecretBuf::with_capacity(page + 1, LockPolicy::Required).unwrap();
        assert_eq!(b.lock_status(), LockStatus::Locked);
        assert!(b.excluded_from_core_dumps());
        assert!(LOCKED_BYTES.load(Ordering::Relaxed) >= 2 * page);
        let mut s = SecretBuf::with_capacity(4, LockPolicy::Required).unwrap();
        s.extend_from_slice(b"life").unwrap();
        let addr = s.data_addr_for_tests();
        let leaked: &'static [u8] = s.into_static();
        assert_eq!(leaked, b"life");
        assert_eq!(
            leaked.as_ptr() as usize,
            addr,
            "no copy: the slice points into the pages"
        );
        drop(b);
        assert!(LOCKED_BUFFERS.load(Ordering::Relaxed) >= 1);
    }
}
