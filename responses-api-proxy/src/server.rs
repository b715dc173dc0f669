//! Accept loops, the connection limit, per-connection serving and graceful shutdown.
//!
//! One task per listener accepts; one task per connection serves it (tasks on a small fixed
//! runtime, never a thread per connection). At `--max-connections`, a new connection makes room
//! by closing an idle connection (a keep-alive connection or one that never finished sending
//! headers) of the uid that holds the most (the newcomer's peer is identified first; outside
//! review r61 F1); when every connection is busy, the new one is closed. Accepting never stops, so a flood of silent connections cannot lock legitimate
//! clients out, and the header read timeout reaps the silent ones anyway.
//!
//! Busy connections cannot be evicted, so one local user could hold them all (outside review r18
//! F3: 1024 request bodies dribbled for ever). Two limits stop that: a request body must be
//! complete within `--body-total-timeout` (`body.rs`, 408), and one uid holds at most
//! `--max-connections-per-user` connections at once (default a quarter of `--max-connections`,
//! at least 32): once the peer is identified, a connection over its uid's cap makes room by
//! closing that uid's oldest connection with no request in flight, and is closed itself when all
//! of them are busy (never another uid's connection, never a request in flight). Peers whose uid
//! could not be found share one count.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::sync::{oneshot, watch};

use crate::access::{ConnectionInfo, PeerAuthorizer};
use crate::framing::{Framed, FramingLog};
use crate::listener::Listener;
use crate::proxy::{ConnCtx, ProxyState};

/// Longest the shutdown waits, after the drain, for the reads of abandoned governed responses.
const ABANDONED_READS_DEADLINE: Duration = crate::body::SHUTDOWN_READS_GRACE;

/// Longest the shutdown drain waits for in-flight requests (streams that keep making progress
/// included) before the proxy exits anyway. A client that stops reading is cut off sooner, by
/// the write stall limit (`--body-read-timeout`, see [`crate::framing::Framed`]).
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(600);

/// Serving limits.
#[derive(Clone, Debug)]
pub struct ServeLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// Largest request head (request line + headers) in bytes; larger gets 431.
    pub max_header_bytes: usize,
    /// SIGHUP drains like SIGTERM (`true`), or is left to key rotation (the `rotation` module).
    pub sighup_drains: bool,
    /// Most connections one local user (uid) holds at once (`--max-connections-per-user`).
    pub max_connections_per_user: usize,
}

struct ConnEntry {
    in_flight: Arc<AtomicUsize>,
    evict: Option<oneshot::Sender<()>>,
    /// The peer's uid once identified (`u32::MAX`: unknown); `None` until then.
    uid: Option<u32>,
}

/// Live connections by age (ids increase).
#[derive(Default)]
struct ConnTable {
    inner: Mutex<(u64, BTreeMap<u64, ConnEntry>)>,
}

impl ConnTable {
    /// Makes room for one more connection of `uid` if needed; `None` when every connection is
    /// busy. At the cap, the uid holding the most connections (the newcomer counted) gives up
    /// its oldest idle one: one user's burst of silent connections closes that user's own
    /// first, never another user's while it holds more (outside review r61 F1: the oldest idle
    /// connection of anyone was closed, before the newcomer was identified, so a burst of one
    /// uid closed other users' keep-alive connections between their requests).
    fn admit(
        &self,
        max: usize,
        uid: u32,
    ) -> Option<(u64, Arc<AtomicUsize>, oneshot::Receiver<()>)> {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (next, live) = &mut *guard;
        if live.len() >= max {
            let mut held: std::collections::HashMap<Option<u32>, usize> =
                std::collections::HashMap::new();
            for e in live.values() {
                *held.entry(e.uid).or_default() += 1;
            }
            *held.entry(Some(uid)).or_default() += 1;
            // the oldest idle connection of the heaviest holder (ids increase with age)
            let victim = live
                .iter()
                .filter(|(_, e)| e.in_flight.load(Ordering::Acquire) == 0)
                .map(|(id, e)| (held.get(&e.uid).copied().unwrap_or(0), *id))
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
                .map(|(_, id)| id);
            match victim {
                Some(id) => {
                    if let Some(mut entry) = live.remove(&id) {
                        if let Some(tx) = entry.evict.take() {
                            let _ = tx.send(());
                        }
                    }
                }
                None => return None,
            }
        }
        *next += 1;
        let id = *next;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = oneshot::channel();
        live.insert(
            id,
            ConnEntry {
                in_flight: in_flight.clone(),
                evict: Some(tx),
                uid: Some(uid),
            },
        );
        Some((id, in_flight, rx))
    }

    /// Counts connection `id` for `uid` (`--max-connections-per-user`): at the uid's cap, its
    /// oldest connection with no request in flight is closed to make room; otherwise the caller
    /// closes `id`: every other connection of the uid is busy, or `id` was closed meanwhile to
    /// make room under `--max-connections` (outside review r64: the log named the per-user cap
    /// for both).
    fn admit_uid(&self, id: u64, uid: u32, cap: usize) -> UidAdmission {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let live = &mut guard.1;
        let held = live
            .iter()
            .filter(|(other, e)| **other != id && e.uid == Some(uid))
            .count();
        if held >= cap {
            let victim = live
                .iter()
                .find(|(other, e)| {
                    **other != id && e.uid == Some(uid) && e.in_flight.load(Ordering::Acquire) == 0
                })
                .map(|(other, _)| *other);
            match victim {
                Some(other) => {
                    if let Some(mut entry) = live.remove(&other) {
                        if let Some(tx) = entry.evict.take() {
                            let _ = tx.send(());
                        }
                    }
                }
                None => return UidAdmission::UserCapBusy,
            }
        }
        match live.get_mut(&id) {
            Some(entry) => {
                entry.uid = Some(uid);
                UidAdmission::Admitted
            }
            // evicted meanwhile by a newcomer
            None => UidAdmission::EvictedMeanwhile,
        }
    }

    fn remove(&self, id: u64) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.1.remove(&id);
    }
}

/// The kinds of connection-refusal lines, each limited on its own (one kind's flood does not
/// hide another's lines).
#[derive(Debug, Clone, Copy)]
enum RefusalLine {
    AllBusy = 0,
    UserCap = 1,
    Evicted = 2,
}

/// At most [`REFUSAL_LINES_PER_SECOND`] warning lines of `kind` a second for connections closed
/// at a limit; the rest are counted and said in one line the next second (outside review r67:
/// one user's 1,600 retried connections wrote 203,038 lines, 40 MB, in 40 s).
fn refusal_line_allowed(kind: RefusalLine) -> bool {
    use std::sync::atomic::AtomicU64;
    static WINDOW: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
    static COUNT: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
    static SUPPRESSED: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
    let k = kind as usize;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if WINDOW[k].swap(now, Ordering::Relaxed) != now {
        COUNT[k].store(0, Ordering::Relaxed);
        let n = SUPPRESSED[k].swap(0, Ordering::Relaxed);
        if n > 0 {
            tracing::warn!(suppressed = n, kind = ?kind, "connections closed at a limit: {n} more lines of this kind suppressed in the last second");
        }
    }
    if COUNT[k].fetch_add(1, Ordering::Relaxed) < REFUSAL_LINES_PER_SECOND {
        true
    } else {
        SUPPRESSED[k].fetch_add(1, Ordering::Relaxed);
        false
    }
}

/// See [`refusal_line_allowed`].
const REFUSAL_LINES_PER_SECOND: u64 = 20;

/// What [`ConnTable::admit_uid`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UidAdmission {
    Admitted,
    /// The uid holds `--max-connections-per-user`, every one busy.
    UserCapBusy,
    /// Closed before it was counted, to make room under `--max-connections`.
    EvictedMeanwhile,
}

struct Remove<'a>(&'a ConnTable, u64);
impl Drop for Remove<'_> {
    fn drop(&mut self) {
        self.0.remove(self.1);
    }
}

/// Serves `listeners` until shutdown is requested (`state.shutdown`, SIGTERM, SIGINT, SIGHUP), then
/// stops accepting, lets in-flight requests finish (streams included) and returns.
pub async fn serve(
    listeners: Vec<Listener>,
    state: Arc<ProxyState>,
    authorizer: Arc<dyn PeerAuthorizer>,
    limits: ServeLimits,
) {
    let mut shutdown_rx = state.shutdown.subscribe();
    let audit = crate::audit::AuditWriter::start();
    spawn_timer_anchor();
    spawn_signal_watch(state.shutdown.clone(), limits.sighup_drains);

    let graceful = Arc::new(GracefulShutdown::new());
    let table = Arc::new(ConnTable::default());
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let builder = Arc::new(builder);

    let mut accept_tasks = Vec::new();
    for listener in listeners {
        let ctx = AcceptCtx {
            state: state.clone(),
            authorizer: authorizer.clone(),
            graceful: graceful.clone(),
            table: table.clone(),
            builder: builder.clone(),
            max_connections: limits.max_connections,
            per_user: limits.max_connections_per_user.max(1),
            shutdown: state.shutdown.subscribe(),
        };
        accept_tasks.push(tokio::spawn(accept_loop(listener, ctx)));
    }

    let _ = shutdown_rx.wait_for(|v| *v).await;
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    for t in accept_tasks {
        let _ = t.await;
    }
    match Arc::try_unwrap(graceful) {
        Ok(g) => {
            if tokio::time::timeout(DRAIN_DEADLINE, g.shutdown())
                .await
                .is_err()
            {
                tracing::warn!(
                    deadline = ?DRAIN_DEADLINE,
                    "drain deadline reached; closing the connections still open"
                );
            }
        }
        Err(_) => tracing::warn!("graceful shutdown handle still shared; not waiting"),
    }
    // Responses whose clients left are read on for their usage (governance): give them a
    // little time to end; the rest are booked with their estimate after the runtime stops.
    crate::body::wait_for_abandoned_reads(ABANDONED_READS_DEADLINE).await;
    audit.stop().await;
    tracing::info!("all connections closed");
}

struct AcceptCtx {
    state: Arc<ProxyState>,
    authorizer: Arc<dyn PeerAuthorizer>,
    graceful: Arc<GracefulShutdown>,
    table: Arc<ConnTable>,
    builder: Arc<http1::Builder>,
    max_connections: usize,
    per_user: usize,
    shutdown: watch::Receiver<bool>,
}

async fn accept_loop(listener: Listener, mut ctx: AcceptCtx) {
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.wait_for(|v| *v) => break,
            a = listener.accept() => a,
        };
        let (conn, addrs) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE/ENFILE/ECONNABORTED: do not spin; try again shortly.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        // The peer is identified first: the connection limit makes room from the heaviest
        // holder (r61 F1). Peers whose uid is unknown share one count.
        let decision = {
            use std::os::fd::AsFd;
            ctx.authorizer.authorize(&ConnectionInfo {
                addrs: &addrs,
                socket: conn.as_fd(),
            })
        };
        let uid = decision.identity().uid.unwrap_or(u32::MAX);
        let Some((id, in_flight, evicted)) = ctx.table.admit(ctx.max_connections, uid) else {
            if refusal_line_allowed(RefusalLine::AllBusy) {
                tracing::warn!(peer = %addrs.peer_label(), "connection limit reached with every connection busy; closing new connection");
            }
            drop(conn);
            continue;
        };
        let state = ctx.state.clone();
        let watcher = ctx.graceful.watcher();
        let table = ctx.table.clone();
        let builder = ctx.builder.clone();
        let per_user = ctx.per_user;
        tokio::spawn(async move {
            let _remove = Remove(&table, id);
            match table.admit_uid(id, uid, per_user) {
                UidAdmission::Admitted => {}
                UidAdmission::UserCapBusy => {
                    crate::metrics::METRICS.connection_refused_per_user();
                    if refusal_line_allowed(RefusalLine::UserCap) {
                        tracing::warn!(
                            peer = %addrs.peer_label(),
                            uid = decision.identity().uid,
                            cap = per_user,
                            "this local user holds --max-connections-per-user connections, all busy; closing its new connection"
                        );
                    }
                    return;
                }
                UidAdmission::EvictedMeanwhile => {
                    if refusal_line_allowed(RefusalLine::Evicted) {
                        tracing::warn!(
                            peer = %addrs.peer_label(),
                            uid = decision.identity().uid,
                            "--max-connections reached: this connection was closed to make room for a newer one of the heaviest holder"
                        );
                    }
                    return;
                }
            }
            let framing = Arc::new(FramingLog::default());
            let conn = Framed::new(conn, framing.clone(), state.body_read_timeout);
            let conn_ctx = Arc::new(ConnCtx {
                // a subordinate uid is named beside its owner's (the audit line's `uid`)
                peer_label: match decision.identity().kernel_uid {
                    Some(k) => format!("{} (subordinate uid {k})", addrs.peer_label()).into(),
                    None => addrs.peer_label().into(),
                },
                addrs,
                decision,
                in_flight,
                framing,
                session: Default::default(),
                key_cut: Arc::default(),
                rotation_cut: Arc::default(),
                after_error: Default::default(),
            });
            let session_ctx = conn_ctx.clone();
            let key_cut = conn_ctx.key_cut.clone();
            let shutdown = state.shutdown.subscribe();
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let conn_ctx = conn_ctx.clone();
                async move {
                    // A request after an error on the same connection is handled at the event
                    // loop's next turn: refusals are answered at once, and hyper serves up to 16
                    // pipelined requests of a connection per turn, so one user's 256
                    // connections of pipelined refused requests held every other user's request
                    // for whole rounds of 16 each (outside review r81 F1: another user's p50
                    // 162 ms). One request per turn per such connection; no cost otherwise.
                    if conn_ctx.after_error.swap(false, Ordering::Relaxed) {
                        tokio::task::yield_now().await;
                    }
                    let resp = crate::proxy::handle(req, state, &conn_ctx).await;
                    if resp.status().is_client_error() || resp.status().is_server_error() {
                        conn_ctx.after_error.store(true, Ordering::Relaxed);
                    }
                    Ok::<_, Infallible>(resp)
                }
            });
            // With upgrades (the WebSocket mode); the session it may switch to is waited for.
            let serving = crate::ws::serve_connection(
                builder
                    .serve_connection(TokioIo::new(conn), service)
                    .with_upgrades(),
                watcher,
                shutdown,
                &session_ctx.session,
            );
            // Pinned out here so that a cut sets `rotation_cut` before the connection and its
            // responses in flight are dropped (their audit outcome is then `rotated`).
            let mut serving = std::pin::pin!(serving);
            tokio::select! {
                _ = &mut serving => {}
                _ = evicted => {}
                // A rotation found no free key page and cut this key's holders.
                _ = key_cut.notified() => {
                    // before the connection (and the responses in flight) is dropped
                    session_ctx.rotation_cut.store(true, std::sync::atomic::Ordering::Release);
                    tracing::warn!(peer = %session_ctx.peer_label, "connection closed: it held a retired key whose page a rotation needed");
                }
            }
            // (`serving`, pinned in this task, is dropped when the task ends: after the flag)
        });
    }
}

/// Keeps a timer due within a second, so the timer driver's next wake-up is never later than
/// that. Without it, the header-read timeout hyper arms for every request (10 s ahead) is the
/// earliest timer whenever the previous one was just cancelled, and inserting it costs an
/// `eventfd` write to wake the driver (tokio's rule for a new earliest timer): one extra syscall
/// per request at low concurrency. Costs one wake-up per second when idle.
fn spawn_timer_anchor() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
        }
    });
}

fn spawn_signal_watch(shutdown: watch::Sender<bool>, sighup_drains: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install SIGTERM handler");
            return;
        }
    };
    let mut int = match signal(SignalKind::interrupt()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install SIGINT handler");
            return;
        }
    };
    // SIGHUP drains like SIGTERM (review round 5, F5: it used to kill at once, mid-stream)
    // unless the key can be rotated (a key file or credential, or the admin socket): then
    // the `rotation` module handles it. A terminal that goes away ends a stdin-keyed proxy cleanly.
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install SIGHUP handler");
            return;
        }
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
            _ = hup.recv(), if sighup_drains => tracing::info!(
                "SIGHUP received: draining like SIGTERM (key rotation needs --api-key-file, \
                 --api-key-credential or --admin-socket)"
            ),
        }
        shutdown.send_replace(true);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outside review r61 F1: at `--max-connections`, one uid's burst of silent connections
    /// closed another uid's idle keep-alive connection (the oldest idle one of anyone). The
    /// heaviest holder gives up its own oldest idle connection; control: a user who holds the
    /// most connections loses its own, and with nothing idle the newcomer is refused.
    #[test]
    fn at_the_connection_limit_the_heaviest_holder_gives_up_its_own_idle_connection() {
        let table = ConnTable::default();
        let (_v, _idle_v, mut rv) = table.admit(4, 8).unwrap();
        let mut attacker = Vec::new();
        for _ in 0..3 {
            attacker.push(table.admit(4, 7).unwrap());
        }
        // the cap is reached: 100 more of uid 7 each close one of uid 7's own
        for _ in 0..100 {
            attacker.push(table.admit(4, 7).unwrap());
        }
        assert!(
            rv.try_recv().is_err(),
            "another uid's idle connection was closed"
        );
        let mut closed = 0;
        for (_, _, r) in attacker.iter_mut() {
            if r.try_recv().is_ok() {
                closed += 1;
            }
        }
        assert_eq!(closed, 100);
        // uid 7 still holds 3, uid 8 one: a newcomer of uid 8 evicts from uid 7 (the heavier),
        // uid 8's own stays
        let _v2 = table.admit(4, 8).unwrap();
        assert!(rv.try_recv().is_err());
        // everything busy: refused
        for (_, busy, _) in &attacker {
            busy.store(1, Ordering::Release);
        }
        _idle_v.store(1, Ordering::Release);
        _v2.1.store(1, Ordering::Release);
        assert!(table.admit(4, 9).is_none());
    }

    /// Outside review r67 (observation): one user's retried connections wrote 203,038 warning
    /// lines in 40 s. At most 20 a second are written (a second boundary in the loop may allow
    /// two windows' worth).
    #[test]
    fn refusal_lines_are_limited_per_second() {
        let allowed = (0..10_000)
            .filter(|_| refusal_line_allowed(RefusalLine::AllBusy))
            .count() as u64;
        assert!(
            (1..=2 * REFUSAL_LINES_PER_SECOND).contains(&allowed),
            "{allowed}"
        );
        // another kind is not starved by that flood
        assert!(refusal_line_allowed(RefusalLine::UserCap));
    }

    #[test]
    fn a_uid_at_its_cap_evicts_its_own_oldest_idle_connection_never_a_busy_one_or_another_uids() {
        let table = ConnTable::default();
        let (a1, busy_a1, _r1) = table.admit(10, 7).unwrap();
        let (a2, _idle_a2, mut r2) = table.admit(10, 7).unwrap();
        let (b1, _idle_b1, mut rb) = table.admit(10, 8).unwrap();
        busy_a1.store(1, Ordering::Release);
        assert_eq!(table.admit_uid(a1, 7, 2), UidAdmission::Admitted);
        assert_eq!(table.admit_uid(a2, 7, 2), UidAdmission::Admitted);
        assert_eq!(table.admit_uid(b1, 8, 2), UidAdmission::Admitted);
        // uid 7 at its cap: its idle a2 makes room, not the busy a1 nor uid 8's b1
        let (a3, busy_a3, _r3) = table.admit(10, 7).unwrap();
        assert_eq!(table.admit_uid(a3, 7, 2), UidAdmission::Admitted);
        assert!(r2.try_recv().is_ok(), "a2 was not evicted");
        assert!(
            rb.try_recv().is_err(),
            "another uid's connection was evicted"
        );
        // every connection of uid 7 busy: the newcomer is refused
        busy_a3.store(1, Ordering::Release);
        let (a4, _idle_a4, _r4) = table.admit(10, 7).unwrap();
        assert_eq!(table.admit_uid(a4, 7, 2), UidAdmission::UserCapBusy);
        // uid 8 is unaffected
        let (b2, _idle_b2, _rb2) = table.admit(10, 8).unwrap();
        assert_eq!(table.admit_uid(b2, 8, 2), UidAdmission::Admitted);
        // closed meanwhile under --max-connections: said so, not the per-user cap
        table.remove(b2);
        assert_eq!(table.admit_uid(b2, 8, 2), UidAdmission::EvictedMeanwhile);
    }
}
