//! Cost of identifying a loopback TCP peer with sock_diag, and what it does to connection
//! throughput (the issue requires allow-list throughput >= 0.95 of without).
//!
//! `cargo run --release -p codex-privsep --example sock_diag_bench [ITERATIONS]`
//!
//! Prints, in one run: (1) the cost of one lookup on an established connection; (2) connections
//! per second for connect + accept + 1-byte exchange + close, without and with the lookup and
//! the allow-list check, interleaved in rounds so machine load hits both alike. A real proxied
//! request (HTTP parsing, upstream TLS) costs far more than this loop, so the ratio here is a
//! lower bound for the proxy's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
// A benchmark binary: panics on set-up failure are its error report.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use codex_privsep::{AllowList, PeerIdentifier};

fn one_connection(l: &TcpListener, ident: Option<(&PeerIdentifier, &AllowList)>) {
    let addr = l.local_addr().unwrap();
    let mut c = TcpStream::connect(addr).unwrap();
    let (mut s, _) = l.accept().unwrap();
    if let Some((ident, allow)) = ident {
        let cred = ident.peer_of(&s).unwrap();
        assert!(allow.allows(cred.uid));
    }
    c.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).unwrap();
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let ident = PeerIdentifier::new().expect("sock_diag socket");
    let allow = AllowList::resolve(["root", "nobody"], Vec::<String>::new()).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();

    // (1) One lookup.
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    for _ in 0..1000 {
        ident.peer_of(&s).unwrap();
    }
    let t = Instant::now();
    for _ in 0..n {
        ident.peer_of(&s).unwrap();
    }
    let per_lookup = t.elapsed() / n;
    drop((c, s));
    println!("one sock_diag lookup (getsockname+getpeername+send+recv): {per_lookup:?}");

    // (2) Connection throughput, interleaved rounds.
    let rounds = 10;
    let per_round = (n / rounds).max(1);
    let (mut base, mut ours) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..200 {
        one_connection(&l, None);
        one_connection(&l, Some((&ident, &allow)));
    }
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..per_round {
            one_connection(&l, None);
        }
        base += t.elapsed();
        let t = Instant::now();
        for _ in 0..per_round {
            one_connection(&l, Some((&ident, &allow)));
        }
        ours += t.elapsed();
    }
    let total = f64::from(per_round * rounds);
    let base_rate = total / base.as_secs_f64();
    let ours_rate = total / ours.as_secs_f64();
    println!("connections/s without allow-list: {base_rate:>10.0}");
    println!("connections/s with allow-list:    {ours_rate:>10.0}");
    println!(
        "ratio: {:.3} (required >= 0.95 for proxied requests; this loop has no HTTP or upstream work)",
        ours_rate / base_rate
    );
}
