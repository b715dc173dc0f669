//! Bounded busy polling before an event loop sleeps.
//!
//! A single-threaded event loop that finds nothing to do calls `epoll_wait` and sleeps; the next
//! packet then has to wake its CPU (an inter-processor interrupt and, in a virtual machine, a
//! halt exit on the sleeping vCPU and often an exit on the sender's) and the scheduler has to
//! switch back to it. [`Spinner::spin`], run just before the loop parks, instead polls the
//! loop's own epoll descriptor (`poll(2)` with a zero timeout: the ready list is looked at,
//! nothing is consumed, so the loop's `epoll_wait` still sees every event) until it is ready
//! or a small budget has passed. An event that arrives within the budget is picked up without
//! a sleep or a wake-up; past the budget the loop sleeps as before, so an idle process costs
//! nothing. The price is CPU: at most the budget per idle moment.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
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

/// Polls one epoll instance (a duplicate of its descriptor, owned here) until it is ready.
#[derive(Debug)]
pub struct Spinner {
    epoll: OwnedFd,
    budget: Duration,
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
        })
    }

    /// Polls until the epoll instance has a ready event (true) or the budget has passed (false).
    pub fn spin(&self) -> bool {
        let start = Instant::now();
        loop {
            match sys::readable_now(self.epoll.as_fd()) {
                Ok(true) => return true,
                Ok(false) => {}
                // The loop's own wait reports whatever is wrong with the instance.
                Err(_) => return false,
            }
            // No `pause` hint: each round is a system call already, and a tight `pause` loop
            // is what a hypervisor's pause-loop exiting takes for a lock waiter to deschedule.
            if start.elapsed() >= self.budget {
                return false;
            }
        }
    }
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
            assert!(!spinner.spin());
            assert!(t.elapsed() >= budget, "{:?}", t.elapsed());
            let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            sender.send_to(b"ping", sock.local_addr().unwrap()).unwrap();
            let t = Instant::now();
            assert!(spinner.spin(), "a datagram is waiting");
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
