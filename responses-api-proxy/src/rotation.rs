//! Key rotation without downtime (issue 17).
//!
//! **Where a new key goes** ([`crate::key_pages`]). The confined proxy cannot map new locked
//! memory: its seccomp allow-list has no `memfd_secret`, `mlock` or `ftruncate`, and widening it
//! for a rare admin action would hand the same calls to an attacker who took over the process. So
//! every page a key can ever live in is allocated at start-up, while still root and unconfined:
//! [`KeyPages`] holds [`KEY_PAGES`] locked pages (`memfd_secret` where the kernel has it) when a
//! rotation source is configured (a key file or credential, or `--admin-socket`), one otherwise. A
//! key is read with raw `read(2)` straight into a free page ([`KeyPages::load`], the same checks as
//! at start-up: [`crate::key::read_options`]); the page is shared by the key's handles ([`ApiKey`]
//! clones: requests in flight, the scrubber, the upstream writer) and goes back to the pool,
//! **wiped** (every byte of the page, `zeroize`), when the last of them is dropped (the page
//! owner's `Drop` in `key_pages`). A rotation while every page is still held by requests in flight
//! is refused (and logged), never served by an unlocked copy.
//!
//! **What swaps.** [`Rotator::rotate_from_source`] and [`Rotator::rotate_from_reader`] read the new
//! key first; only a key that passed every check replaces the one in the [`KeySlot`]. A bad key
//! (empty, too long, a byte outside `[A-Za-z0-9_-]`, extra content in the file or the admin
//! request's body (a second line: outside review r15 F7), a file that fails
//! its ownership/mode checks) keeps the old key and the log says why, never with a byte of either
//! key. Requests that took the old key before the swap finish with it (each request holds an
//! `Arc<ApiKey>` for its whole exchange, streams included); new requests take the new one. A
//! WebSocket session drops its `ApiKey` after the upstream handshake and, when [`KeySlot::replace`]
//! marks its key retired, closes after its response in flight (the `ws` module; outside review
//! r15 F4), so an idle session never keeps an old page.
//!
//! **Where the key comes from.** SIGHUP re-reads `--api-key-file` / `--api-key-credential` through
//! the key opener ([`codex_privsep::KeyOpener`]: a process forked before the privilege drop that
//! keeps root only to open that one file, confined to that) which hands the proxy an open
//! descriptor; the admin socket's `POST /rotate-key` (the `admin` module) reads the key from the
//! connection. With the key on stdin and the admin socket, SIGHUP logs that rotation needs a file
//! source and the proxy keeps serving; with the key on stdin alone it drains like SIGTERM
//! (`server`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use secure_main::RawRead;

use crate::key::{ApiKey, KeyError, KeySlot};
pub use crate::key_pages::{KEY_PAGES, KeyPages};
use crate::key_source::{KeySource, KeySourceError};

/// Why a rotation did not happen (the old key stays). Never contains a byte of a key.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The key is on stdin and there is no file to re-read.
    #[error(
        "key rotation needs a file source (--api-key-file or --api-key-credential) or the admin \
         socket (--admin-socket, `responses-api-proxy rotate-key`); the key was read from stdin, \
         which cannot be read again: the current key stays"
    )]
    NeedsFileSource,
    /// Reading or checking the new key failed.
    #[error("{0}; the current key stays")]
    Source(#[from] KeySourceError),
    /// The key opener could not open the file (its message names it) or is gone.
    #[error("{0}; the current key stays")]
    Opener(#[from] codex_privsep::KeyOpenerError),
    /// The key sent over the admin socket is bad.
    #[error(
        "the new key sent over the admin socket: {}; the current key stays",
        crate::key_source::key_problem(.0)
    )]
    Admin(KeyError),
    /// The new key is the same as the current one.
    #[error("the new key is the key already in force: nothing to rotate")]
    Unchanged,
}

/// A rotation that happened.
#[derive(Debug, Clone, Copy)]
pub struct Rotated {
    /// Rotations since start-up, this one included.
    pub rotations: u64,
    /// Pages holding a key in use (the new key, plus old keys held by requests in flight).
    pub pages_in_use: usize,
}

/// Swaps the key: reads the new one, checks it, puts it in the slot.
pub struct Rotator {
    pages: Arc<KeyPages>,
    source: KeySource,
    opener: Option<Mutex<codex_privsep::KeyOpener>>,
    rotations: AtomicU64,
    failures: AtomicU64,
    /// One rotation at a time (SIGHUP and the admin socket may race).
    busy: Mutex<()>,
    /// The keys rotated out, oldest first, as handles that can cut their holders (they hold no
    /// key): a rotation that finds every page in use cuts the oldest (see [`Rotator::make_room`]).
    retired: Mutex<std::collections::VecDeque<crate::key::KeyCutter>>,
}

/// How long a rotation waits for the page of a key whose holders it cut.
const CUT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl std::fmt::Debug for Rotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotator")
            .field("source", &self.source)
            .field("rotations", &self.rotations())
            .finish()
    }
}

impl Rotator {
    pub fn new(
        pages: Arc<KeyPages>,
        source: KeySource,
        opener: Option<codex_privsep::KeyOpener>,
    ) -> Self {
        Rotator {
            pages,
            source,
            opener: opener.map(Mutex::new),
            rotations: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            busy: Mutex::new(()),
            retired: Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// Every page in use (the key in force and three retired keys still held by requests in
    /// flight): the holders of one retired key are cut (their connections closed, their
    /// WebSocket sessions ended) and the rotation waits up to [`CUT_WAIT`] for its page, then
    /// the next. The administrator's rotation wins over clients that keep old keys busy
    /// (outside review r18 F1: one slow request per key generation blocked every rotation after
    /// the third). The key cut is the one whose **greediest holder** holds the most retired
    /// keys, then the one held by the fewest local users, then the oldest
    /// ([`choose_key_to_cut`]; outside review r20 L2: "always the oldest" let a user who kept
    /// a slow stream on every retired key choose whose stream was cut; r28 F1: "fewest users,
    /// then fewest connections" let a user who stayed off the victim's key and padded the
    /// connection counts of their own keys choose it). Blocking: both callers run on blocking
    /// threads.
    fn make_room(&self) {
        loop {
            if self.pages.in_use() < self.pages.total() {
                return;
            }
            let chosen = {
                let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
                let users: Vec<Vec<u32>> = retired.iter().map(|k| k.users()).collect();
                choose_key_to_cut(&users).and_then(|i| retired.remove(i))
            };
            let Some(chosen) = chosen else {
                return;
            };
            let users = chosen.users().len();
            let told = chosen.cut();
            tracing::warn!(
                holders = told,
                users,
                pages = self.pages.total(),
                "rotation: every key page is in use; cutting the connections that hold the retired key of the user holding the most"
            );
            if told == 0 {
                continue;
            }
            let deadline = std::time::Instant::now() + CUT_WAIT;
            while self.pages.in_use() >= self.pages.total() && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }

    /// The pool the keys live in.
    pub fn pages(&self) -> &Arc<KeyPages> {
        &self.pages
    }

    /// Rotations done since start-up.
    pub fn rotations(&self) -> u64 {
        self.rotations.load(Ordering::Acquire)
    }

    /// Rotations refused since start-up (bad key, unreadable file, no free page).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Acquire)
    }

    /// Whether SIGHUP can rotate (a file or credential source with its opener).
    pub fn hangup_rotates(&self) -> bool {
        self.opener.is_some()
    }

    /// SIGHUP: re-reads the key file through the opener. Blocking (the opener answers within
    /// its timeout): run it off the event loop.
    pub fn rotate_from_source(&self, slot: &KeySlot) -> Result<Rotated, RotateError> {
        let _one = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        let result = (|| {
            let Some(opener) = &self.opener else {
                return Err(RotateError::NeedsFileSource);
            };
            self.make_room();
            let file = opener.lock().unwrap_or_else(|e| e.into_inner()).open()?;
            let key = self.source.read_opened(&file, &self.pages)?;
            self.swap(slot, key)
        })();
        self.count(&result);
        result
    }

    /// The admin socket's `POST /rotate-key`: the key read from `r` (the connection, limited to
    /// the body) straight into a free page. The body must be the key alone, as a key file
    /// must: one line, line endings after it, nothing else ([`KeyPages::load_alone`]).
    pub fn rotate_from_reader<R: RawRead>(
        &self,
        slot: &KeySlot,
        r: &mut R,
    ) -> Result<Rotated, RotateError> {
        let _one = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        self.make_room();
        let result = self
            .pages
            .load_alone(r)
            .map_err(RotateError::Admin)
            .and_then(|key| self.swap(slot, key));
        self.count(&result);
        result
    }

    fn count(&self, result: &Result<Rotated, RotateError>) {
        match result {
            Ok(_) => {}
            Err(_) => {
                self.failures.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    fn swap(&self, slot: &KeySlot, key: ApiKey) -> Result<Rotated, RotateError> {
        let current = slot.current();
        // Comparing in place (both in locked pages); an unchanged key is not a rotation.
        if current.header().as_bytes() == key.header().as_bytes() {
            return Err(RotateError::Unchanged);
        }
        drop(current);
        // The old key's `Arc` goes here; requests in flight hold their own.
        let old = slot.replace(key);
        {
            let mut retired = self.retired.lock().unwrap_or_else(|e| e.into_inner());
            retired.push_back(old.cutter());
            while retired.len() > self.pages.total() {
                retired.pop_front();
            }
        }
        drop(old);
        let rotations = self.rotations.fetch_add(1, Ordering::AcqRel) + 1;
        Ok(Rotated {
            rotations,
            pages_in_use: self.pages.in_use(),
        })
    }
}

/// Which retired key (oldest first; `users[i]`: the uids holding key `i`) a rotation that
/// finds every page in use cuts: the one whose greediest holder holds the most retired keys,
/// then the one the fewest users hold, then the oldest (a key no one holds any more first).
/// A user can only push their own keys
/// up the order: holding more keys raises their own count, and connections do not count at
/// all (r28 F1: idle keep-alive connections that once made a request under a key padded it).
/// Users on several accounts, or a key only other users hold, can still be chosen.
pub(crate) fn choose_key_to_cut(users: &[Vec<u32>]) -> Option<usize> {
    let mut held: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    for key in users {
        for uid in key {
            *held.entry(*uid).or_default() += 1;
        }
    }
    let greediest = |key: &Vec<u32>| key.iter().map(|u| held[u]).max().unwrap_or(0);
    users
        .iter()
        .enumerate()
        // a key no one holds any more first (cutting it hurts no one), then the largest
        // greediest-holder count, then the fewest users; `min_by_key` keeps the first of
        // equals: the oldest
        .min_by_key(|(_, key)| {
            (
                !key.is_empty(),
                std::cmp::Reverse(greediest(key)),
                key.len(),
            )
        })
        .map(|(i, _)| i)
}

/// SIGHUP while the key can be rotated: re-read the key file (through the opener, on a blocking
/// thread) or, with the key from stdin and the admin socket, say that rotation needs a file
/// source. The proxy keeps serving either way.
pub fn spawn_hangup_rotation(state: Arc<crate::proxy::ProxyState>, rotator: Arc<Rotator>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGHUP handler for key rotation");
            return;
        }
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if !rotator.hangup_rotates() {
                tracing::warn!(
                    "SIGHUP received: {}; still serving",
                    RotateError::NeedsFileSource
                );
                continue;
            }
            let (state, rotator) = (Arc::clone(&state), Arc::clone(&rotator));
            let done =
                tokio::task::spawn_blocking(move || rotator.rotate_from_source(&state.key)).await;
            match done {
                Ok(Ok(r)) => tracing::info!(
                    rotations = r.rotations,
                    pages_in_use = r.pages_in_use,
                    "SIGHUP: key rotated: new requests use the new key; requests in flight finish with theirs"
                ),
                Ok(Err(e)) => tracing::warn!(error = %e, "SIGHUP: key rotation refused"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: key rotation task failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::MAX_HEADER_LEN;

    struct Bytes1<'a>(&'a [u8]);
    impl RawRead for Bytes1<'_> {
        fn read_raw(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_page_is_wiped_and_reused_when_the_last_handle_goes() {
        let pages = KeyPages::new(2, false).unwrap();
        let slot = KeySlot::new(pages.load(&mut Bytes1(b"sk-first\n")).unwrap());
        let r = Rotator::new(Arc::clone(&pages), KeySource::Stdin, None);
        assert_eq!(pages.in_use(), 1);
        let in_flight = slot.current();
        let done = r
            .rotate_from_reader(&slot, &mut Bytes1(b"sk-second\n"))
            .unwrap();
        assert_eq!((done.rotations, done.pages_in_use), (1, 2));
        assert_eq!(slot.current().header().as_bytes(), b"Bearer sk-second");
        // The request that took the first key still has it.
        assert_eq!(in_flight.header().as_bytes(), b"Bearer sk-first");
        // Both pages busy: a third key is refused and the second stays.
        let e = r
            .rotate_from_reader(&slot, &mut Bytes1(b"sk-third\n"))
            .unwrap_err();
        assert!(
            matches!(e, RotateError::Admin(KeyError::PagesInUse { pages: 2 })),
            "{e}"
        );
        assert_eq!(slot.current().header().as_bytes(), b"Bearer sk-second");
        drop(in_flight);
        assert_eq!((pages.in_use(), pages.wiped()), (1, 1));
        r.rotate_from_reader(&slot, &mut Bytes1(b"sk-third\n"))
            .unwrap();
        assert_eq!(slot.current().header().as_bytes(), b"Bearer sk-third");
        assert_eq!((r.rotations(), r.failures()), (2, 1));
    }

    /// Outside review r20 L2: user A keeps one slow stream on every retired key, user B one on
    /// the oldest. With every page in use, the next rotation cuts a key only A holds, not the
    /// oldest (which would have cut B's stream).
    #[test]
    fn a_full_rotation_cuts_the_key_held_by_the_fewest_users_not_the_oldest() {
        let (a, b) = (Some(1000), Some(1001));
        let pages = KeyPages::new(4, false).unwrap();
        let slot = KeySlot::new(pages.load(&mut Bytes1(b"sk-gen0\n")).unwrap());
        let r = Rotator::new(Arc::clone(&pages), KeySource::Stdin, None);
        let notify = || Arc::new(tokio::sync::Notify::new());
        // generation 0: held by B and by A; generations 1 and 2 by A alone
        let (b0, a0, a1, a2) = (notify(), notify(), notify(), notify());
        let mut in_flight = Vec::new();
        for (g, holders) in [
            (&b"sk-gen1\n"[..], vec![(&b0, b), (&a0, a)]),
            (b"sk-gen2\n", vec![(&a1, a)]),
            (b"sk-gen3\n", vec![(&a2, a)]),
        ] {
            let key = slot.current();
            for (n, uid) in holders {
                key.held_by(n, uid);
            }
            in_flight.push(key);
            r.rotate_from_reader(&slot, &mut Bytes1(g)).unwrap();
        }
        assert_eq!(pages.in_use(), 4);
        // what A's generation-1 connection does when cut: its request ends, the key goes
        let gen1 = in_flight.remove(1);
        let cut_a1 = Arc::clone(&a1);
        let ender = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(cut_a1.notified());
            drop(gen1);
        });
        r.rotate_from_reader(&slot, &mut Bytes1(b"sk-gen4\n"))
            .unwrap();
        ender.join().unwrap();
        assert_eq!(slot.current().header().as_bytes(), b"Bearer sk-gen4");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let was_cut = |n: &Arc<tokio::sync::Notify>| {
            rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_millis(1), n.notified()).await
            })
            .is_ok()
        };
        assert!(!was_cut(&b0), "B's stream on the oldest key was cut");
        assert!(
            !was_cut(&a0) && !was_cut(&a2),
            "only one key's holders are cut"
        );
        // the oldest key is still in use by B's stream
        assert_eq!(in_flight[0].header().as_bytes(), b"Bearer sk-gen0");
        // generations 0 and 2 (still held) and 4 (in force); 1 was cut, 3 held by nobody
        assert_eq!(pages.in_use(), 3);
    }

    /// r28 F1: A stays off B's key and holds the two others, padding their connection counts;
    /// the cut falls on one of A's keys, never on B's (older or newer).
    #[test]
    fn the_cut_falls_on_the_user_holding_the_most_keys() {
        let (a, b, c) = (1000, 1001, 1002);
        // B's key between A's, and B's the oldest
        assert_eq!(choose_key_to_cut(&[vec![a], vec![b], vec![a]]), Some(0));
        assert_eq!(choose_key_to_cut(&[vec![b], vec![a], vec![a]]), Some(1));
        // A shares B's key: A's own key goes (fewest users among A's)
        assert_eq!(choose_key_to_cut(&[vec![a, b], vec![a], vec![a]]), Some(1));
        // one key per user: the oldest
        assert_eq!(choose_key_to_cut(&[vec![b], vec![a], vec![c]]), Some(0));
        // a key nobody holds any more goes before any held one
        assert_eq!(choose_key_to_cut(&[vec![b], vec![], vec![a]]), Some(1));
        assert_eq!(choose_key_to_cut(&[]), None);
    }

    #[test]
    fn a_bad_key_keeps_the_old_one_and_never_shows_a_byte() {
        let pages = KeyPages::new(2, false).unwrap();
        let slot = KeySlot::new(pages.load(&mut Bytes1(b"sk-first\n")).unwrap());
        let r = Rotator::new(Arc::clone(&pages), KeySource::Stdin, None);
        for bad in [
            &b""[..],
            b"\n",
            b"sk-SECRET with space\n",
            b"sk-SECRET\x01\n",
            // Review r15 F7: a second line is refused, not cut off.
            b"sk-SECRETONE\nsk-SECRETTWO\n",
            b"sk-SECRETONE\r\nsk-SECRETTWO",
        ] {
            let e = r.rotate_from_reader(&slot, &mut Bytes1(bad)).unwrap_err();
            let msg = e.to_string();
            assert!(!msg.contains("SECRET") && !msg.contains("first"), "{msg}");
            assert!(msg.contains("the current key stays"), "{msg}");
            assert_eq!(slot.current().header().as_bytes(), b"Bearer sk-first");
            assert_eq!(
                pages.in_use(),
                1,
                "a refused key's page is back in the pool"
            );
        }
        let e = r
            .rotate_from_reader(&slot, &mut Bytes1(b"sk-SECRETONE\nsk-SECRETTWO\n"))
            .unwrap_err();
        assert!(e.to_string().contains("holds more than the API key"), "{e}");
        // Control: the key alone, with line endings after it, rotates.
        r.rotate_from_reader(&slot, &mut Bytes1(b"sk-SECRETONE\r\n\n"))
            .unwrap();
        assert_eq!(slot.current().header().as_bytes(), b"Bearer sk-SECRETONE");
        r.rotate_from_reader(&slot, &mut Bytes1(b"sk-first"))
            .unwrap();
        let long = vec![b'k'; MAX_HEADER_LEN];
        assert!(r.rotate_from_reader(&slot, &mut Bytes1(&long)).is_err());
        let e = r
            .rotate_from_reader(&slot, &mut Bytes1(b"sk-first\n"))
            .unwrap_err();
        assert!(matches!(e, RotateError::Unchanged), "{e}");
        assert_eq!(r.rotations(), 2);
        let e = r.rotate_from_source(&slot).unwrap_err();
        assert!(matches!(e, RotateError::NeedsFileSource), "{e}");
    }
}
