//! Metrics for the administrator's monitoring, in the Prometheus text format (0.0.4), served on the
//! admin socket (`GET /metrics`, the `admin` module): nothing on the client listeners.
//!
//! What is counted, and where: every request's end (its audit record's drop, `audit`): requests by
//! uid and status, tokens in/cached/out by uid (from the governance usage, with `--policy`);
//! requests in flight (records alive, streams included); the time from sending upstream to the
//! response head (`proxy`), as a histogram; key rotations and refusals, key pages in use and wiped
//! (the `rotation` and `key_pages` modules); refused admin connections. With a budget in the
//! policy, the remaining day and month budget of every uid seen, and what its requests in
//! flight reserve against it.
//!
//! What is never in it: the key, header values, bodies, paths, model names. Labels are a uid (a
//! number, or `unknown` when the peer was not identified), a status code, a fixed word; every label
//! value is still escaped per the text format ([`escape_label`]: `\`, `"`, newline) so that a
//! future label cannot break the exposition.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Key rotation's numbers at the time of a scrape (the `rotation` and `key_pages` modules).
#[derive(Debug, Clone, Copy, Default)]
pub struct RotationStats {
    pub rotations: u64,
    pub failures: u64,
    pub pages_in_use: usize,
    pub pages_wiped: u64,
}

/// What is left of one budget of one uid (computed by the caller from the governance state).
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetLeft {
    pub uid: u32,
    /// `day` or `month`.
    pub period: &'static str,
    /// `input`, `cached_input`, `output` or `cost`.
    pub kind: &'static str,
    /// The limit less what was spent (never below 0).
    pub left: f64,
    /// What the uid's requests in flight reserve against it now (their worst case, given back
    /// or replaced by the measured usage when each ends): admission refuses a request when
    /// `left` less this is below its own reservation (`budget_reserved`).
    pub reserved: f64,
}

/// A budget metric: its name after the prefix, its help text, and its value.
type BudgetGauge = (&'static str, &'static str, fn(&BudgetLeft) -> f64);

/// Upper bounds (seconds) of the upstream latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// The process's counters.
pub static METRICS: Metrics = Metrics::new();

/// Counters; see the module docs.
pub struct Metrics {
    in_flight: AtomicI64,
    /// (uid, status) → requests.
    requests: Mutex<BTreeMap<(Option<u32>, u16), u64>>,
    /// uid → (input, cached input, output) tokens.
    tokens: Mutex<BTreeMap<u32, [u64; 3]>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    admin_refused: AtomicU64,
    per_user_refused: AtomicU64,
}

impl Metrics {
    const fn new() -> Self {
        Metrics {
            in_flight: AtomicI64::new(0),
            requests: Mutex::new(BTreeMap::new()),
            tokens: Mutex::new(BTreeMap::new()),
            latency_buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS.len()],
            latency_count: AtomicU64::new(0),
            latency_sum_us: AtomicU64::new(0),
            admin_refused: AtomicU64::new(0),
            per_user_refused: AtomicU64::new(0),
        }
    }

    /// A request began (its audit record was created).
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request ended (its audit record was dropped).
    pub fn request_finished(&self, uid: Option<u32>, status: u16, tokens: Option<[u64; 3]>) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((uid, status))
            .or_default() += 1;
        if let (Some(uid), Some(t)) = (uid, tokens) {
            let mut m = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
            let e = m.entry(uid).or_default();
            for i in 0..3 {
                e[i] = e[i].saturating_add(t[i]);
            }
        }
    }

    /// Time from sending a request upstream to its response head.
    pub fn upstream_latency(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            if s <= *le {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// A client connection was closed because its uid held `--max-connections-per-user`.
    pub fn connection_refused_per_user(&self) {
        self.per_user_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A peer that is neither root nor in the admin group was refused on the admin socket.
    pub fn admin_refused(&self) {
        self.admin_refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// Escapes a label value per the text format: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn uid_label(uid: Option<u32>) -> String {
    uid.map_or_else(|| "unknown".to_string(), |u| u.to_string())
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

impl Metrics {
    /// The uids with at least one finished request, ascending.
    pub fn seen_uids(&self) -> Vec<u32> {
        let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let mut uids: Vec<u32> = m.keys().filter_map(|(u, _)| *u).collect();
        uids.dedup();
        uids
    }
}

/// The exposition: every metric family with its HELP and TYPE lines. `budgets`: `None` without
/// a policy (the family is left out).
pub fn render(rotation: &RotationStats, budgets: Option<&[BudgetLeft]>) -> String {
    let m = &METRICS;
    let mut out = String::with_capacity(4096);
    let p = "responses_api_proxy";

    header(
        &mut out,
        &format!("{p}_requests_total"),
        "counter",
        "Finished requests by peer uid and HTTP status.",
    );
    let requests = m.requests.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for ((uid, status), n) in &requests {
        let _ = writeln!(
            out,
            "{p}_requests_total{{uid=\"{}\",status=\"{}\"}} {n}",
            escape_label(&uid_label(*uid)),
            status
        );
    }

    header(
        &mut out,
        &format!("{p}_tokens_total"),
        "counter",
        "Tokens reported by the upstream's usage, by peer uid and kind (with --policy).",
    );
    let tokens = m.tokens.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for (uid, t) in &tokens {
        for (kind, n) in ["input", "cached_input", "output"].iter().zip(t) {
            let _ = writeln!(
                out,
                "{p}_tokens_total{{uid=\"{}\",kind=\"{}\"}} {n}",
                escape_label(&uid.to_string()),
                escape_label(kind)
            );
        }
    }

    header(
        &mut out,
        &format!("{p}_requests_in_flight"),
        "gauge",
        "Requests whose response has not ended (open streams included).",
    );
    let _ = writeln!(
        out,
        "{p}_requests_in_flight {}",
        m.in_flight.load(Ordering::Relaxed).max(0)
    );

    let h = format!("{p}_upstream_response_seconds");
    header(
        &mut out,
        &h,
        "histogram",
        "Time from sending a request upstream to its response head.",
    );
    for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
        let _ = writeln!(
            out,
            "{h}_bucket{{le=\"{le}\"}} {}",
            m.latency_buckets[i].load(Ordering::Relaxed)
        );
    }
    let count = m.latency_count.load(Ordering::Relaxed);
    let _ = writeln!(out, "{h}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(
        out,
        "{h}_sum {}",
        m.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "{h}_count {count}");

    header(
        &mut out,
        &format!("{p}_key_rotations_total"),
        "counter",
        "Key rotations done (SIGHUP or the admin socket).",
    );
    let _ = writeln!(out, "{p}_key_rotations_total {}", rotation.rotations);
    header(
        &mut out,
        &format!("{p}_key_rotation_failures_total"),
        "counter",
        "Key rotations refused (bad key, unreadable file, every page busy); the old key stayed.",
    );
    let _ = writeln!(out, "{p}_key_rotation_failures_total {}", rotation.failures);
    header(
        &mut out,
        &format!("{p}_key_pages_in_use"),
        "gauge",
        "Locked key pages holding a key still in use (the current one and old ones held by requests in flight).",
    );
    let _ = writeln!(out, "{p}_key_pages_in_use {}", rotation.pages_in_use);
    header(
        &mut out,
        &format!("{p}_key_pages_wiped_total"),
        "counter",
        "Key pages wiped after their last request finished.",
    );
    let _ = writeln!(out, "{p}_key_pages_wiped_total {}", rotation.pages_wiped);
    header(
        &mut out,
        &format!("{p}_admin_refused_total"),
        "counter",
        "Connections to the admin socket refused (neither root nor the admin group).",
    );
    let _ = writeln!(
        out,
        "{p}_admin_refused_total {}",
        m.admin_refused.load(Ordering::Relaxed)
    );
    header(
        &mut out,
        &format!("{p}_connections_refused_per_user_total"),
        "counter",
        "Client connections closed because their uid held --max-connections-per-user.",
    );
    let _ = writeln!(
        out,
        "{p}_connections_refused_per_user_total {}",
        m.per_user_refused.load(Ordering::Relaxed)
    );

    if let Some(budgets) = budgets {
        let gauges: [BudgetGauge; 2] = [
            (
                "budget_remaining",
                "What is left of a budget (tokens, or cost units) by peer uid, period and kind: the limit less what was spent.",
                |b| b.left,
            ),
            (
                "budget_reserved",
                "What the uid's requests in flight reserve against a budget now (their worst case until each ends), by peer uid, period and kind.",
                |b| b.reserved,
            ),
        ];
        for (suffix, help, value) in gauges {
            let name = format!("{p}_{suffix}");
            header(&mut out, &name, "gauge", help);
            for b in budgets {
                let _ = writeln!(
                    out,
                    "{name}{{uid=\"{}\",period=\"{}\",kind=\"{}\"}} {}",
                    escape_label(&b.uid.to_string()),
                    escape_label(b.period),
                    escape_label(b.kind),
                    value(b)
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_per_the_text_format() {
        assert_eq!(escape_label("plain-1.2:3/4@5+6"), "plain-1.2:3/4@5+6");
        assert_eq!(escape_label("a\"b"), "a\\\"b");
        assert_eq!(escape_label("a\\b"), "a\\\\b");
        assert_eq!(escape_label("a\nb} 1\nfake 2"), "a\\nb} 1\\nfake 2");
    }

    #[test]
    fn the_histogram_is_cumulative() {
        let m = Metrics::new();
        m.upstream_latency(Duration::from_millis(3));
        m.upstream_latency(Duration::from_millis(300));
        let b: Vec<u64> = m
            .latency_buckets
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect();
        assert_eq!(b[0], 1, "5 ms bucket");
        assert_eq!(b[5], 1, "250 ms bucket");
        assert_eq!(b[6], 2, "500 ms bucket");
        assert_eq!(*b.last().unwrap(), 2);
        assert!(b.windows(2).all(|w| w[0] <= w[1]));
    }

    /// What the counters cost a request (run: `cargo test --release -p responses-api-proxy --lib
    /// metrics_cost -- --ignored --nocapture`): one start, one end with tokens, one latency
    /// sample, over 16 uids and 4 statuses.
    #[test]
    #[ignore = "measurement"]
    fn metrics_cost() {
        let m = Metrics::new();
        let n = 2_000_000u32;
        let t = std::time::Instant::now();
        for i in 0..n {
            m.request_started();
            m.upstream_latency(Duration::from_micros(u64::from(i % 5000)));
            m.request_finished(
                Some(i % 16),
                [200, 400, 429, 502][(i % 4) as usize],
                Some([700, 100, 30]),
            );
        }
        let per = t.elapsed().as_nanos() as f64 / f64::from(n);
        eprintln!("metrics per request: {per:.1} ns");
        let t = std::time::Instant::now();
        let mut len = 0;
        for _ in 0..1000 {
            len += render(&RotationStats::default(), None).len();
        }
        eprintln!(
            "render: {:.1} us per scrape ({} bytes)",
            t.elapsed().as_nanos() as f64 / 1000.0 / 1000.0,
            len / 1000
        );
    }
}
