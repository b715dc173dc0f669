//! Work on one large request body or WebSocket message that would hold the event loop too long
//! (checking, parsing or re-framing megabytes): done on a thread of tokio's blocking pool, one
//! job at a time per uid slot, so that one user keeps at most one pool thread busy and the event
//! loop none (outside reviews r73 F1, r77 F2). Work on anything up to [`INLINE_BYTES`], well
//! under a millisecond, stays on the loop (the hot path pays no thread hop).

use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;

/// Bodies and messages larger than this are worked on off the event loop.
pub const INLINE_BYTES: usize = 64 * 1024;

/// Request bodies and `response.create` messages larger than this are *checked against the
/// policy* off the event loop: the check parses the whole body (about 3.6 ns a byte, release
/// build), and a body refused at once leaves its connection free for the next one at once, so
/// one user's connections could each put a check on every turn of the loop (outside review r83
/// F1: 256 kept-alive connections sending refused bodies just under 64 KiB, 0.23 ms each, held
/// another user's requests at p50 226 ms, one at a time per connection still 70 ms). A check of
/// up to 1 KiB costs about 4 µs; the hop costs a real request (tens of KiB and up, answered in
/// hundreds of milliseconds) nothing it would notice.
pub const CHECK_INLINE_BYTES: usize = 1024;

/// A uid's jobs take the slot `uid % SLOTS`, one at a time (two users whose uids share a slot
/// take turns for their large bodies; peers without a uid share slot 0).
const SLOTS: usize = 64;

static SLOT_LOCKS: LazyLock<Vec<Arc<Semaphore>>> =
    LazyLock::new(|| (0..SLOTS).map(|_| Arc::new(Semaphore::new(1))).collect());

/// Runs `job` on the blocking pool once `uid`'s slot is free. A job whose caller went away runs
/// to its end (its slot is held until then). `Err`: the job panicked.
pub async fn run<T, F>(uid: Option<u32>, job: F) -> Result<T, tokio::task::JoinError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let slot = uid.map_or(0, |u| u as usize % SLOTS);
    // The semaphores are never closed: `acquire_owned` cannot fail.
    let permit = Arc::clone(&SLOT_LOCKS[slot]).acquire_owned().await.ok();
    tokio::task::spawn_blocking(move || {
        let done = job();
        drop(permit);
        done
    })
    .await
}

/// `job` in place when `len` is at most [`INLINE_BYTES`], else as [`run`] does.
pub async fn run_if_large<T, F>(
    uid: Option<u32>,
    len: usize,
    job: F,
) -> Result<T, tokio::task::JoinError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if len <= INLINE_BYTES {
        Ok(job())
    } else {
        run(uid, job).await
    }
}
