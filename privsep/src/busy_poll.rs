//! Bounded busy polling before an event loop sleeps.
//!
//! A single-threaded event loop that finds nothing to do calls `epoll_wait` and sleeps; the next
//! packet then has to wake its CPU (an inter-processor interrupt and, in a virtual machine, a
//! halt exit on the sleeping vCPU and often an exit on the sender's) and the scheduler has to
//! switch back to it. [`Spinner::before_park`], run just before the loop parks, instead polls the
//! loop's own epoll descriptor (`poll(2)` with a zero timeout: the ready list is looked at,
//! nothing is consumed, so the loop's `epoll_wait` still sees every event) until it is ready
//! or a small budget has passed. An event that arrives within the budget is picked up without
//! a sleep or a wake-up; past the budget the loop sleeps as before. The price is CPU, bounded
//! (see [`Spinner`]): spinning takes at most half a CPU.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::sys;

/// How far up descriptor numbers are looked at: a runtime built early in a process gets low
/// numbers (the lowest free ones).
const SCAN_LIMIT: RawFd = 1024;

/// The descriptor numbers below [`SCAN_LIMIT`] that are epoll instances (probed with
/// [`sys::is_epoll`]: `/proc/self/fd` is not readable by a process that made itself
/// non-dumpable and dropped its privileges).
pub fn epoll_fds() -> io::Result<Vec<RawFd>> {
    let probe = sys::eventfd()?;
    let own = probe.as_raw_fd();
    Ok((0..SCAN_LIMIT)
        .filter(|fd| *fd != own && sys::is_epoll(*fd, probe.as_fd()))
        .collect())
}

/// The share of wall time spinning may take, as a fraction: half a CPU.
const SPIN_SHARE: u64 = 2;
/// The most spin time saved up while the loop had no need of it.
const CREDIT_CAP: Duration = Duration::from_millis(5);

/// Polls one epoll instance (a duplicate of its descriptor, owned here) before the loop sleeps,
/// for up to the budget, paid from a credit: every spin, whether it sees an event or not,
/// costs the time it ran, and the credit grows at half the rate of wall time (at most
/// [`CREDIT_CAP`] saved); with too little credit left the loop sleeps at once. So spinning
/// takes at most half a CPU, whatever the traffic: a client sending bytes just often enough to
/// keep every spin short of its budget (outside review r105 F2: a whole CPU with a 1 ms budget
/// when only spins that saw nothing were paid) buys no more than one that makes every spin
/// fail.
///
/// The spin does not yield between polls: with a CPU-bound process on the same CPU a yield
/// hands it the proxy's own share, a scheduler slice at a time (r105 F1: 130 requests a second
/// against 4,000 without busy polling). Without it the proxy competes for that CPU as any
/// process does, and the credit bounds what the spin takes from the other.
#[derive(Debug)]
pub struct Spinner {
    epoll: OwnedFd,
    budget: Duration,
    /// When the spinner was made: the origin of `refilled_at`.
    origin: Instant,
    /// Spin time still allowed, in nanoseconds.
    credit_ns: AtomicU64,
    /// When the credit was last topped up (nanoseconds since `origin`).
    refilled_at: AtomicU64,
}

impl Spinner {
    /// The epoll instance among the epoll descriptors that were not there in `before` (from
    /// [`epoll_fds`]): exactly one instance (under one or more numbers), else an error naming
    /// what was found.
    pub fn for_new_epoll(before: &[RawFd], budget: Duration) -> io::Result<Spinner> {
        let probe = sys::eventfd()?;
        let new: Vec<RawFd> = epoll_fds()?
            .into_iter()
            .filter(|fd| !before.contains(fd))
            .collect();
        // mio keeps a duplicate of its epoll descriptor for its registry: one instance, two
        // numbers.
        let one_instance = match new.as_slice() {
            [] => false,
            [first, rest @ ..] => rest.iter().try_fold(true, |all, fd| {
                Ok::<_, io::Error>(all && sys::same_epoll(*first, *fd, probe.as_fd())?)
            })?,
        };
        if !one_instance {
            return Err(io::Error::other(format!(
                "expected one new epoll instance, found descriptors {new:?}"
            )));
        }
        Ok(Spinner {
            epoll: sys::dup_raw_cloexec(new[0])?,
            budget,
            origin: Instant::now(),
            credit_ns: AtomicU64::new(nanos(CREDIT_CAP)),
            refilled_at: AtomicU64::new(0),
        })
    }

    fn refill(&self) -> u64 {
        let now = nanos(self.origin.elapsed());
        let last = self.refilled_at.swap(now, Ordering::Relaxed);
        let earned = now.saturating_sub(last) / SPIN_SHARE;
        let credit = self
            .credit_ns
            .load(Ordering::Relaxed)
            .saturating_add(earned)
            .min(nanos(CREDIT_CAP));
        self.credit_ns.store(credit, Ordering::Relaxed);
        credit
    }

    /// Just before the loop parks: spins for up to the budget (less if the credit is lower);
    /// returns whether an event became ready (the loop's wait then returns at once).
    pub fn before_park(&self) -> bool {
        let credit = self.refill();
        let window = self.budget.min(Duration::from_nanos(credit));
        if window < self.budget / 4 {
            return false;
        }
        let start = Instant::now();
        let seen = self.spin(window);
        let spent = nanos(start.elapsed());
        self.credit_ns
            .store(credit.saturating_sub(spent), Ordering::Relaxed);
        seen
    }

    /// Polls until the epoll instance has a ready event (true) or `window` has passed (false).
    pub fn spin(&self, window: Duration) -> bool {
        let start = Instant::now();
        loop {
            match sys::readable_now(self.epoll.as_fd()) {
                Ok(true) => return true,
                Ok(false) => {}
                // The loop's own wait reports whatever is wrong with the instance.
                Err(_) => return false,
            }
            // No `pause` hint either: each round is a system call already, and a tight
            // `pause` loop is what a hypervisor's pause-loop exiting takes for a lock waiter.
            if start.elapsed() >= window {
                return false;
            }
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The two tests count the process's epoll instances: one at a time.
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// The spinner finds the epoll instance of a runtime built after `epoll_fds`, waits out
    /// its budget while nothing is ready, and returns at once when a socket registered with
    /// the runtime has data (without consuming the event: the runtime still reads it).
    #[test]
    fn finds_the_runtime_epoll_waits_its_budget_and_sees_readiness() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let before = epoll_fds().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .unwrap();
        let budget = Duration::from_millis(30);
        let spinner = Spinner::for_new_epoll(&before, budget).unwrap();
        rt.block_on(async {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            // The runtime's own wait takes the new socket's first readiness (writable; mio
            // registers edge-triggered) off the ready list.
            tokio::time::sleep(Duration::from_millis(1)).await;
            // Nothing ready: the whole budget, then false.
            let t = Instant::now();
            assert!(!spinner.spin(budget));
            assert!(t.elapsed() >= budget, "{:?}", t.elapsed());
            let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sender.send_to(b"ping", sock.local_addr().unwrap()).unwrap();
            let t = Instant::now();
            assert!(spinner.spin(budget), "a datagram is waiting");
            assert!(t.elapsed() < budget, "{:?}", t.elapsed());
            // The runtime's own wait still delivers it.
            let mut buf = [0u8; 8];
            let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&buf[..n], b"ping");
        });
    }

    /// Spins are paid from a credit that grows at half of wall time: a run of them drains it
    /// (then the loop sleeps at once), and waiting earns it back.
    #[test]
    fn spins_are_bounded_by_a_credit_of_half_of_wall_time() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let before = epoll_fds().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let budget = Duration::from_millis(1);
        let spinner = Spinner::for_new_epoll(&before, budget).unwrap();
        let full = (0..30)
            .filter(|_| {
                let t = Instant::now();
                assert!(!spinner.before_park(), "nothing is registered");
                t.elapsed() >= budget
            })
            .count();
        // 5 ms of credit at the start plus half of the time spent: about 10 full spins (fewer
        // when the machine is busy: a preempted spin costs its whole time).
        assert!((1..=14).contains(&full), "{full} full spins of 30");
        let t = Instant::now();
        assert!(!spinner.before_park());
        assert!(t.elapsed() < budget, "drained: {:?}", t.elapsed());
        // 8 ms of waiting earns 4 ms: full spins again.
        std::thread::sleep(Duration::from_millis(8));
        let t = Instant::now();
        assert!(!spinner.before_park());
        assert!(t.elapsed() >= budget, "{:?}", t.elapsed());
        drop(rt);
    }

    /// Descriptors that are not epoll instances are not taken for one, and two runtimes are
    /// two instances: refused rather than guessed.
    #[test]
    fn only_one_new_epoll_instance_is_accepted() {
        let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let before = epoll_fds().unwrap();
        let _sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let _file = tempfile::tempfile().unwrap();
        let err = Spinner::for_new_epoll(&before, Duration::from_micros(1)).unwrap_err();
        assert!(err.to_string().contains("found descriptors []"), "{err}");
        let a = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let b = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let err = Spinner::for_new_epoll(&before, Duration::from_micros(1)).unwrap_err();
        assert!(
            err.to_string().contains("expected one new epoll instance"),
            "{err}"
        );
        drop((a, b));
    }
}
