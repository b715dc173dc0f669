//! Work on one large request body or WebSocket message that would hold the event loop too long
//! (checking, parsing or re-framing megabytes): done on a thread of tokio's blocking pool, one
//! job at a time per uid, so that one user keeps at most one pool thread busy and the event
//! loop none (outside reviews r73 F1, r77 F2). Work on anything up to [`INLINE_BYTES`], well
//! under a millisecond, stays on the loop (the hot path pays no thread hop).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

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

/// Each uid's jobs run one at a time, under a lock of its own (peers without a uid share one).
/// Locks were shared by `uid % 64` until found reviewing r83 F1's fix (session 19): with most
/// real request bodies now checked here, a user whose uid shared a slot with a flooding user's
/// waited behind that user's whole queue (256 connections of refused bodies). A lock exists
/// while a job of its uid runs or waits (at most one per connection).
static LOCKS: LazyLock<Mutex<HashMap<Option<u32>, Arc<Semaphore>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn locks() -> std::sync::MutexGuard<'static, HashMap<Option<u32>, Arc<Semaphore>>> {
    LOCKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `job` on the blocking pool once `uid`'s earlier jobs are done. A job whose caller went
/// away runs to its end (its uid's lock is held until then). `Err`: the job panicked.
pub async fn run<T, F>(uid: Option<u32>, job: F) -> Result<T, tokio::task::JoinError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let lock = Arc::clone(
        locks()
            .entry(uid)
            .or_insert_with(|| Arc::new(Semaphore::new(1))),
    );
    // The semaphores are never closed: `acquire_owned` cannot fail.
    let permit = Arc::clone(&lock).acquire_owned().await.ok();
    let forget = move || {
        let mut map = locks();
        // only the map's reference and this one left: nobody waits, nobody runs
        if Arc::strong_count(&lock) == 2 {
            map.remove(&uid);
        }
    };
    tokio::task::spawn_blocking(move || {
        let done = job();
        drop(permit);
        forget();
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
