//! One-command benchmark: `bash responses-api-proxy/bench/run.sh` (or
//! `cargo build --release -p responses-api-proxy --bins --examples &&
//! target/release/examples/bench`).
//!
//! In one run it starts the mock upstream (its own process), our proxy (release binary) and, when
//! installed, nginx configured as the equivalent Bearer-injecting reverse proxy (one worker,
//! `proxy_buffering off`, upstream keepalive). It drives each with the same load generator (a
//! hyper HTTP/1.1 keep-alive client, one connection per concurrent client) and prints req/s, p50,
//! p99 and RSS for {JSON, SSE burst, SSE paced, WebSocket} x concurrency {1, 16, 64}, then how
//! late each SSE event arrives through each target compared with direct.
//!
//! The `ws` rows: c WebSocket sessions (`GET /v1/responses` with `Upgrade: websocket`, the
//! Responses API's WebSocket mode; tokio-tungstenite client), each sending its next
//! `response.create` as soon as the previous response's `response.completed` arrived. "req/s"
//! there is responses/s, the latencies are per response (`response.create` sent to
//! `response.completed` received), the CPU per response; the sessions are opened before the
//! measured window and closed after it (a CLI holds one per conversation), and what a session's
//! set-up costs is a separate table (300 sessions one after another). The mock answers each with the
//! sse-burst payloads (14 deltas of ~210 bytes and `response.completed` with usage), each its
//! own text message, written at once. The proxy allows 16 sessions per local user
//! (`ws::SESSIONS_PER_USER`): sessions 17 and up are opened from other uids (the socket is
//! created under another fsuid, which is the uid the proxy's sock_diag lookup reports), so the
//! c=64 cell needs root.
//!
//! Options: `--secs N` per cell (default 3), `--threads N` for our proxy (default 1, as the proxy).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use suite_test_support::responses_mock::{MockResponse, MockUpstream, sse_frame};

const KEY: &str = "sk-bench-0123456789abcdefABCDEF";
const SCENARIOS: &[&str] = &["json", "sse-burst", "sse-paced", "ws"];
/// A session's `response.create` (the policy admits `gpt-bench` and rewrites the ceiling in).
const WS_CREATE: &str =
    r#"{"type":"response.create","model":"gpt-bench","input":"say hello","stream":true}"#;
/// First uid of the extra users WebSocket sessions beyond the proxy's per-user cap come from
/// (16 sessions each; no such users need to exist).
const WS_EXTRA_UID_BASE: u32 = 61000;
const CONCURRENCY: &[usize] = &[1, 16, 64];
/// The account the proxies drop to (the Debian package's).
const PROXY_ACCOUNT: &str = "responses-api-proxy";

/// `useradd --system` of `name` unless it exists.
fn ensure_account(name: &str) {
    let exists = Command::new("id")
        .args(["-u", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        let ok = Command::new("useradd")
            .args(["--system", "--no-create-home", "--home-dir", "/"])
            .args(["--shell", "/usr/sbin/nologin", "--user-group", name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "useradd {name} failed: run the bench as root");
    }
}
const ROUNDS: usize = 6;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--mock") {
        run_mock();
        return;
    }
    kill_children_on_panic();
    let secs: u64 = flag(&args, "--secs").unwrap_or(3);
    let threads: u64 = flag(&args, "--threads").unwrap_or(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let exe = std::env::current_exe().unwrap();
    let release_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    // `--proxy-bin PATH`: another build of the proxy (an older one, to compare in back-to-back
    // runs of the same load generator).
    let proxy_bin = args
        .iter()
        .position(|a| a == "--proxy-bin")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| release_dir.join("responses-api-proxy"));
    // `--only ws,json`: those scenarios' rows only (and the SSE lateness table only with an SSE
    // scenario, the WebSocket set-up table only with `ws`).
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').map(str::to_string).collect());
    let selected = |s: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == s));
    assert!(
        proxy_bin.is_file(),
        "{} missing: run `cargo build --release -p responses-api-proxy --bins --examples`",
        proxy_bin.display()
    );
    let work = tempfile::Builder::new()
        .prefix("proxy-bench-")
        .tempdir()
        .unwrap();

    // Mock upstream in its own process, so it does not share this process's runtime.
    let mut mock = Command::new(&exe)
        .arg("--mock")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(mock.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    track(&mock);
    let mock_port: u16 = line.trim().parse().unwrap();
    let mock_pid = mock.id();
    let mock_guard = KillOnDrop(mock);

    // Ours, and ours with a governance policy (issue 17): a model list, an output ceiling (the
    // bench requests carry none, so every body is rewritten) and day/month budgets for every
    // user, with the ledger in a state dir.
    let policy = work.path().join("policy.toml");
    std::fs::write(
        &policy,
        "known_models = [\"gpt-bench\"]\n[default]\nmodels = [\"gpt-bench\", \"gpt-5*\"]\n\
         max_output_tokens = 4096\nday = { input_tokens = 1000000000000, output_tokens = 1000000000000 }\n\
         month = { output_tokens = 10000000000000 }\n",
    )
    .unwrap();
    let state = work.path().join("state");
    // `--ours-arg ARG` (repeatable): more flags for both of our proxies (e.g. `--ours-arg
    // --busy-poll-us --ours-arg 0` measures them without busy polling).
    let ours_args: Vec<String> = args
        .windows(2)
        .filter(|w| w[0] == "--ours-arg")
        .map(|w| w[1].clone())
        .collect();
    let start_ours = |name: &str, extra: &[&str]| {
        let info = work.path().join(format!("{name}.json"));
        let mut proxy = Command::new(&proxy_bin)
            .args([
                "--upstream-url",
                &format!("http://127.0.0.1:{mock_port}/v1/responses"),
                "--server-info",
                info.to_str().unwrap(),
                "--threads",
                &threads.to_string(),
            ])
            .args(extra)
            .args(&ours_args)
            // Audit logging stays on (one line per request, as in production), to /dev/null.
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        track(&proxy);
        proxy
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{KEY}\n").as_bytes())
            .unwrap();
        let port = wait_port_file(&info);
        let pid = proxy.id();
        (port, pid, KillOnDrop(proxy))
    };
    // The ledger never belongs to nobody: both proxies drop to the packages' dedicated account
    // (created here when missing; the bench runs as root).
    ensure_account(PROXY_ACCOUNT);
    let (proxy_port, proxy_pid, proxy_guard) = start_ours("ours", &["--user", PROXY_ACCOUNT]);
    let (policy_port, policy_pid, policy_guard) = start_ours(
        "policy",
        &[
            "--user",
            PROXY_ACCOUNT,
            "--policy",
            policy.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(200));
    let idle_rss = rss_kb(proxy_pid);
    let idle_threads = threads_of(proxy_pid);

    // nginx writes an access line per request, as ours writes its audit line (both to
    // /dev/null): the same work per request. `--nginx-no-log`: nginx's access log off.
    let nginx_log = !args.iter().any(|a| a == "--nginx-no-log");
    let nginx = start_nginx(work.path(), mock_port, nginx_log);
    let mut targets: Vec<(&str, u16, Vec<u32>)> = vec![("direct", mock_port, vec![])];
    if let Some((port, pids, _)) = &nginx {
        targets.push(("nginx", *port, pids.clone()));
    } else {
        eprintln!(
            "nginx not found: install it (`apt-get install -y nginx-light`) for the baseline column"
        );
    }
    targets.push(("ours", proxy_port, vec![proxy_pid]));
    targets.push(("policy", policy_port, vec![policy_pid]));

    // Pinning (default with 2+ CPUs; `--no-pin` to leave placement to the scheduler): the load
    // generator (this process) and the mock on CPU 0, every proxy under test (nginx's worker,
    // ours, ours with the policy) on CPU 1. Unpinned, which proxy shares a CPU with the load
    // generator changes from run to run and dominates the comparison: a proxy on the load
    // generator's CPU is preempted by it at nearly every write (one run: 0.6 involuntary
    // context switches per request for one proxy, 0.3 for the other, same code).
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let pin = cpus >= 2 && !args.iter().any(|a| a == "--no-pin");
    if pin {
        pin_to(std::process::id(), 0);
        pin_to(mock_pid, 0);
        for (name, _, pids) in &targets {
            if *name != "direct" {
                for p in pids {
                    pin_to(*p, 1);
                }
            }
        }
    }

    println!(
        "# responses-api-proxy benchmark: {secs} s per cell, our proxy with --threads {threads} (audit log on), nginx access log {}, {cpus} CPUs, {}",
        if nginx_log { "on" } else { "off" },
        if pin {
            "pinned: load generator and mock on CPU 0, the proxies on CPU 1"
        } else {
            "not pinned"
        }
    );
    println!("ours idle: RSS {} KiB, {} threads", idle_rss, idle_threads);
    println!();
    println!(
        "| scenario | c | direct req/s | nginx req/s | ours req/s | ours/nginx | ours/direct | direct p50/p99 ms | nginx p50/p99 ms | ours p50/p99 ms | nginx RSS KiB | ours RSS KiB | ours threads | with policy req/s | policy/ours | policy p50/p99 ms | nginx CPU µs/req | ours CPU µs/req | policy CPU µs/req |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for scenario in SCENARIOS.iter().filter(|s| selected(s)) {
        for &c in CONCURRENCY {
            let mut cells = Vec::new();
            let mut ours_threads = 0;
            // The machine is shared and its load drifts: targets take turns in short slices
            // (ROUNDS per cell, order rotating) so each sees the same conditions.
            let slice = Duration::from_millis(secs * 1000 / ROUNDS as u64);
            let mut acc: Vec<(Vec<u32>, f64)> = vec![(Vec::new(), 0.0); targets.len()];
            // CPU time the target process used (utime + stime, clock ticks) and requests served:
            // cost per request, which the machine's load drifts do not distort as much as req/s.
            // Sampled around the measured window only (after the warm-up; for ws, after the
            // sessions are open and before they close).
            let mut cpu: Vec<(u64, u64)> = vec![(0, 0); targets.len()];
            for round in 0..ROUNDS {
                for k in 0..targets.len() {
                    let i = (k + round) % targets.len();
                    let (name, port, pids) = &targets[i];
                    let sampler = (*name == "ours" && round == ROUNDS / 2).then(|| {
                        let pid = pids[0];
                        let half = slice / 2;
                        std::thread::spawn(move || {
                            std::thread::sleep(half);
                            threads_of(pid)
                        })
                    });
                    let ticks = || pids.iter().map(|p| cpu_ticks(*p)).sum::<u64>();
                    let (lat, elapsed, used) = if *scenario == "ws" {
                        rt.block_on(load_ws(*port, c, slice, &ticks))
                    } else {
                        rt.block_on(load(*port, scenario, c, slice, &ticks))
                    };
                    if let Some(s) = sampler {
                        ours_threads = s.join().unwrap();
                    }
                    cpu[i].0 += used;
                    cpu[i].1 += lat.len() as u64;
                    acc[i].0.extend(lat);
                    acc[i].1 += elapsed;
                }
            }
            for (i, (name, _, pids)) in targets.iter().enumerate() {
                let (lat, elapsed) = std::mem::take(&mut acc[i]);
                let rss: u64 = pids.iter().map(|p| rss_kb(*p)).sum();
                cells.push((*name, summarize(lat, elapsed), rss));
            }
            let cpu_us = |n: &str| {
                let i = targets.iter().position(|(name, _, _)| *name == n).unwrap();
                let (ticks, reqs) = cpu[i];
                ticks as f64 * 1e6 / clock_ticks() as f64 / reqs.max(1) as f64
            };
            let (ours_cpu, policy_cpu) = (cpu_us("ours"), cpu_us("policy"));
            let nginx_cpu = if targets.iter().any(|(name, _, _)| *name == "nginx") {
                format!("{:.1}", cpu_us("nginx"))
            } else {
                "-".into()
            };
            let get = |n: &str| cells.iter().find(|(name, _, _)| *name == n);
            let d = get("direct").unwrap();
            let o = get("ours").unwrap();
            let pol = get("policy").unwrap();
            let ng = get("nginx");
            let fmt_lat = |r: &LoadResult| format!("{:.3}/{:.3}", r.p50_ms, r.p99_ms);
            println!(
                "| {scenario} | {c} | {:.0} | {} | {:.0} | {} | {:.2} | {} | {} | {} | {} | {} | {} | {:.0} | {:.3} | {} | {} | {:.1} | {:.1} |",
                d.1.rps,
                ng.map(|n| format!("{:.0}", n.1.rps)).unwrap_or("-".into()),
                o.1.rps,
                ng.map(|n| format!("{:.2}", o.1.rps / n.1.rps))
                    .unwrap_or("-".into()),
                o.1.rps / d.1.rps,
                fmt_lat(&d.1),
                ng.map(|n| fmt_lat(&n.1)).unwrap_or("-".into()),
                fmt_lat(&o.1),
                ng.map(|n| n.2.to_string()).unwrap_or("-".into()),
                o.2,
                ours_threads,
                pol.1.rps,
                pol.1.rps / o.1.rps,
                fmt_lat(&pol.1),
                nginx_cpu,
                ours_cpu,
                policy_cpu,
            );
        }
    }

    println!();
    println!(
        "ws upgrades answered 429 (a closed session's per-user slot not yet free) and retried: {}",
        WS_RETRIES.swap(0, std::sync::atomic::Ordering::Relaxed)
    );
    if selected("sse-burst") || selected("sse-paced") {
        println!();
        println!(
            "SSE event lateness (arrival minus upstream send time, 5 events 2 ms apart, c=1, 300 streams):"
        );
        println!("| target | p50 ms | p99 ms | max ms | added p50 vs direct ms |");
        println!("|---|---|---|---|---|");
        let mut direct_p50 = 0.0;
        for (name, port, _) in &targets {
            let lat = rt.block_on(event_lateness(*port, 300));
            if *name == "direct" {
                direct_p50 = lat.0;
            }
            println!(
                "| {name} | {:.3} | {:.3} | {:.3} | {:.3} |",
                lat.0,
                lat.1,
                lat.2,
                lat.0 - direct_p50
            );
        }
    }
    if selected("ws") {
        println!();
        println!(
            "WebSocket session set-up (upgrade through the target, its upstream handshake included), 300 sessions one after another, each: open, one response, close:"
        );
        println!(
            "| target | upgrade p50 ms | upgrade p99 ms | CPU µs/session (open, 1 response, close) |"
        );
        println!("|---|---|---|---|");
        for (name, port, pids) in &targets {
            let ticks = || pids.iter().map(|p| cpu_ticks(*p)).sum::<u64>();
            let (p50, p99, cpu) = rt.block_on(ws_setup(*port, 300, &ticks));
            // Direct: the mock's CPU is not measured (as in the table).
            let cpu = if pids.is_empty() {
                "-".to_string()
            } else {
                format!("{cpu:.1}")
            };
            println!("| {name} | {p50:.3} | {p99:.3} | {cpu} |");
        }
        println!(
            "(upgrades answered 429 and retried: {})",
            WS_RETRIES.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    println!();
    println!(
        "ours after the run: peak RSS (VmHWM) {} KiB, RSS {} KiB, {} threads",
        hwm_kb(proxy_pid),
        rss_kb(proxy_pid),
        threads_of(proxy_pid)
    );
    drop(proxy_guard);
    drop(policy_guard);
    // The ledger saw every request of the policy column (a sanity check of the measurement).
    let (records, _) = codex_proxy_governance::ledger::read_range(
        &state,
        codex_proxy_governance::clock::day_of(codex_proxy_governance::clock::now_ms()) - 1,
        codex_proxy_governance::clock::day_of(codex_proxy_governance::clock::now_ms()),
    )
    .unwrap();
    let tokens: u64 = records.iter().map(|r| r.output_tokens).sum();
    println!(
        "policy ledger: {} records, {} output tokens counted",
        records.len(),
        tokens
    );
    if let Some((_, _, child)) = nginx {
        drop(child);
    }
    drop(mock_guard);
}

/// `taskset -a -p -c CPU PID`: every thread of `pid` on `cpu` (util-linux).
fn pin_to(pid: u32, cpu: usize) {
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "taskset could not pin pid {pid} to CPU {cpu} (util-linux's taskset; or run with --no-pin)"
    );
}

fn flag(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

/// Children to kill if this process panics (release builds abort: no destructors run).
static CHILDREN: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn track(child: &Child) {
    CHILDREN.lock().unwrap().push(child.id());
}

fn kill_children_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(pids) = CHILDREN.lock() {
            for pid in pids.iter() {
                let _ = Command::new("kill").arg(pid.to_string()).status();
            }
        }
        default(info);
    }));
}

/// SIGTERM on drop (nginx's master then stops its workers), SIGKILL after 5 s.
struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_mock() {
    let mock = MockUpstream::start().unwrap();
    mock.set_recording(false);
    let json = serde_json::json!({
        "id": "resp_bench", "object": "response", "status": "completed",
        "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "hello from the benchmark mock upstream"}]}],
        "usage": {"input_tokens": 12, "output_tokens": 9, "total_tokens": 21}
    });
    let delta = |i: usize| {
        sse_frame(
            "response.output_text.delta",
            &serde_json::json!({"type": "response.output_text.delta", "delta": format!("token {i} "), "sequence_number": i}),
        )
    };
    // 14 events of ~250 bytes, each its own chunk, back to back (as a real upstream's when one
    // TLS record carries several events): the proxy must not write them one by one.
    let long_delta = |i: usize| {
        sse_frame(
            "response.output_text.delta",
            &serde_json::json!({"type": "response.output_text.delta", "item_id": "msg_bench", "output_index": 0, "content_index": 0, "delta": format!("token {i} of a benchmark burst, padded to about two hundred fifty bytes per event ......"), "sequence_number": i}),
        )
    };
    // Every stream ends with its usage, as the real API's do (the policy column counts it).
    let completed = sse_frame(
        "response.completed",
        &serde_json::json!({"type": "response.completed", "sequence_number": 99, "response": {"id": "resp_bench", "object": "response", "status": "completed", "model": "gpt-bench", "usage": {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 14, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 26}}}),
    );
    let mut burst: Vec<String> = (0..14).map(long_delta).collect();
    burst.push(completed.clone());
    // WebSocket mode: `response.created`, then the same events' JSON, each its own text message
    // (the SSE frame's data), with an id of its own per response as the real API gives (the
    // proxy books a terminal event once per id: with one id for all, the second response's
    // `response.completed` was taken for a repeat, never ended, and the session's close waited
    // for it until the idle timeout: the ws cells hung).
    let id = suite_test_support::responses_mock::RESPONSE_ID;
    let ws_messages: Vec<String> = std::iter::once(
        serde_json::json!({"type": "response.created", "sequence_number": 0, "response": {"id": id, "object": "response", "status": "in_progress", "model": "gpt-bench"}})
            .to_string(),
    )
    .chain(burst.iter().map(|f| {
        f.lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap()
            .replace("\"resp_bench\"", &format!("\"{id}\""))
    }))
    .collect();
    eprintln!(
        "mock: ws = {} messages of {}..{} bytes per response.create, written at once",
        ws_messages.len(),
        ws_messages.iter().map(String::len).min().unwrap_or(0),
        ws_messages.iter().map(String::len).max().unwrap_or(0)
    );
    eprintln!(
        "mock: sse-burst = {} events of {}..{} bytes, each its own chunk",
        burst.len(),
        burst.iter().map(String::len).min().unwrap_or(0),
        burst.iter().map(String::len).max().unwrap_or(0)
    );

    let mut paced: Vec<String> = (0..5).map(delta).collect();
    // In the last event's chunk: no extra pacing step.
    if let Some(last) = paced.last_mut() {
        last.push_str(&completed);
    }
    mock.set_handler(move |req| match req.header("x-bench-scenario").as_deref() {
        _ if req
            .header("upgrade")
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket")) =>
        {
            MockResponse::WebSocket {
                messages: ws_messages.clone(),
            }
        }
        Some("sse-burst") => MockResponse::SseChunked {
            frames: burst.clone(),
        },
        Some("sse-paced") => MockResponse::SsePaced {
            frames: paced.clone(),
            delay: Duration::from_millis(2),
        },
        Some("tick") => MockResponse::SseTimestamped {
            count: 5,
            delay: Duration::from_millis(2),
        },
        _ => MockResponse::json(json.clone()),
    });
    println!("{}", mock.addr().port());
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::park();
    }
}

fn wait_port_file(path: &Path) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(t) = std::fs::read_to_string(path) {
            if t.ends_with('\n') {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                return v["port"].as_u64().unwrap() as u16;
            }
        }
        assert!(Instant::now() < deadline, "proxy did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
/// utime + stime of `pid` in clock ticks (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name's closing parenthesis: field 3 onwards.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    n(11) + n(12)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

fn rss_kb(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}
fn hwm_kb(pid: u32) -> u64 {
    status_field(pid, "VmHWM:")
}
fn threads_of(pid: u32) -> u64 {
    status_field(pid, "Threads:")
}

fn find_nginx() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// nginx as the equivalent reverse proxy; returns its port, its pids and the child.
fn start_nginx(dir: &Path, upstream: u16, log: bool) -> Option<(u16, Vec<u32>, KillOnDrop)> {
    let bin = find_nginx()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let d = dir.join("nginx");
    std::fs::create_dir_all(d.join("tmp")).ok()?;
    let conf = format!(
        r#"
daemon off;
master_process on;
worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    {access_log}
    keepalive_requests 10000000;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    upstream api {{ server 127.0.0.1:{upstream}; keepalive 128; }}
    # WebSocket upgrades pass through (the ws rows); every other request keeps the upstream
    # keep-alive ("Connection: " empty, no Upgrade header sent).
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    server {{
        listen 127.0.0.1:{port};
        location = /v1/responses {{
            proxy_pass http://api;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Authorization "Bearer {KEY}";
            proxy_set_header Cookie "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
        location / {{ return 403; }}
    }}
}}
"#,
        d = d.display(),
        access_log = if log {
            "access_log /dev/null combined;"
        } else {
            "access_log off;"
        },
    );
    let conf_path = d.join("nginx.conf");
    std::fs::write(&conf_path, conf).ok()?;
    let child = Command::new(bin)
        .args(["-p", d.to_str()?, "-c", conf_path.to_str()?, "-e", "stderr"])
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let master = child.id();
    track(&child);
    let guard = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut pids = vec![master];
    if let Ok(children) = std::fs::read_to_string(format!("/proc/{master}/task/{master}/children"))
    {
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    Some((port, pids, guard))
}

struct LoadResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn connect(port: u16) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

fn request(port: u16, scenario: &str) -> http::Request<Full<Bytes>> {
    http::Request::builder()
        .method("POST")
        .uri("/v1/responses")
        .header("host", format!("127.0.0.1:{port}"))
        .header("content-type", "application/json")
        .header("x-bench-scenario", scenario)
        .body(Full::new(Bytes::from_static(
            br#"{"model":"gpt-bench","input":"say hello","stream":false}"#,
        )))
        .unwrap()
}

/// `c` keep-alive connections sending back-to-back requests for `dur`: latencies, the window's
/// length, and the target's CPU ticks (`ticks`) used in it.
async fn load(
    port: u16,
    scenario: &str,
    c: usize,
    dur: Duration,
    ticks: &dyn Fn() -> u64,
) -> (Vec<u32>, f64, u64) {
    // Warm-up: open the upstream keep-alive pool.
    {
        let mut s = connect(port).await;
        for _ in 0..20 {
            s.ready().await.unwrap();
            let r = s.send_request(request(port, scenario)).await.unwrap();
            let _ = r.into_body().collect().await;
        }
    }
    let cpu0 = ticks();
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for _ in 0..c {
        let scenario = scenario.to_string();
        tasks.push(tokio::spawn(async move {
            let mut s = connect(port).await;
            let mut lat = Vec::with_capacity(100_000);
            while Instant::now() < deadline {
                let t = Instant::now();
                if s.ready().await.is_err() {
                    // The server closed the keep-alive connection: reconnect (counted in latency).
                    s = connect(port).await;
                }
                let r = s.send_request(request(port, &scenario)).await.unwrap();
                assert_eq!(r.status(), 200, "{scenario} on {port}");
                let _ = r.into_body().collect().await.unwrap();
                lat.push(t.elapsed().as_micros() as u32);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    (all, elapsed, ticks().saturating_sub(cpu0))
}

fn summarize(mut all: Vec<u32>, elapsed: f64) -> LoadResult {
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    LoadResult {
        rps: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

/// For `n` streams of timestamped events: how late each event arrives (p50, p99, max in ms).
async fn event_lateness(port: u16, n: usize) -> (f64, f64, f64) {
    let mut s = connect(port).await;
    let mut late = Vec::new();
    for _ in 0..n {
        s.ready().await.unwrap();
        let r = s.send_request(request(port, "tick")).await.unwrap();
        let mut body = r.into_body();
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_micros() as i64;
            if let Ok(f) = frame {
                if let Some(d) = f.data_ref() {
                    buf.extend_from_slice(d);
                }
            }
            // Every complete frame in the buffer arrived (at the latest) now.
            while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let frame: Vec<u8> = buf.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&frame);
                if let Some(ts) = text.split("\"ts_us\":").nth(1).and_then(|t| {
                    t.trim_end_matches(|c: char| !c.is_ascii_digit())
                        .parse::<i64>()
                        .ok()
                }) {
                    late.push(now - ts);
                }
            }
        }
    }
    late.sort_unstable();
    let pct = |p: f64| late[((late.len() as f64 * p) as usize).min(late.len() - 1)] as f64 / 1000.0;
    (pct(0.5), pct(0.99), *late.last().unwrap() as f64 / 1000.0)
}

type WsStream = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// The uid WebSocket session number `i` of a cell is opened from: this process's for the first
/// `SESSIONS_PER_USER`, then one extra uid per further group of that many.
fn ws_uid(i: usize) -> Option<u32> {
    let group = i / responses_api_proxy::ws::SESSIONS_PER_USER;
    (group > 0).then(|| WS_EXTRA_UID_BASE + group as u32)
}

/// Upgrades answered 429 and retried (reported with the tables).
static WS_RETRIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Opens a WebSocket session to `port`'s `/v1/responses`, its socket owned by `uid` (None: this
/// process's). Retries a `429` for up to 5 s (the proxy frees a closed session's per-user slot
/// just after the close handshake).
async fn ws_connect(port: u16, uid: Option<u32>) -> WsStream {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let socket = match uid {
            Some(uid) => sys::with_fsuid(uid, tokio::net::TcpSocket::new_v4),
            None => tokio::net::TcpSocket::new_v4(),
        }
        .unwrap();
        socket.set_nodelay(true).unwrap();
        let tcp = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        match tokio_tungstenite::client_async(format!("ws://127.0.0.1:{port}/v1/responses"), tcp)
            .await
        {
            Ok((ws, _)) => return ws,
            Err(tokio_tungstenite::tungstenite::Error::Http(r))
                if r.status() == 429 && Instant::now() < deadline =>
            {
                WS_RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!(
                "websocket upgrade on {port} (uid {uid:?}) failed: {e} (sessions past 16 are \
                 opened from other uids, which needs root)"
            ),
        }
    }
}

/// One response on `ws`: sends `response.create`, reads until `response.completed`.
async fn ws_response(ws: &mut WsStream, port: u16) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text(WS_CREATE)).await.unwrap();
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let t = t.as_str();
                if t.contains(r#""type":"response.completed""#) {
                    return;
                }
                assert!(
                    !t.contains(r#""type":"error""#),
                    "ws on {port}: error event {t}"
                );
            }
            Some(Ok(Message::Close(f))) => panic!("ws on {port}: closed mid-response: {f:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("ws on {port}: {e}"),
            None => panic!("ws on {port}: ended mid-response"),
        }
    }
}

/// Closes `ws` and waits for the other side's close (so the proxy has ended the session).
async fn ws_close(mut ws: WsStream) {
    use futures_util::StreamExt;
    let _ = ws.close(None).await;
    while let Some(Ok(_)) = ws.next().await {}
}

/// `c` WebSocket sessions, each sending its next `response.create` as soon as the previous
/// response completed, for `dur`: latencies per response, the window's length and the target's
/// CPU ticks in it. The sessions are opened before the window and closed after it (the
/// upgrade's cost is measured on its own: [`ws_setup`]).
async fn load_ws(
    port: u16,
    c: usize,
    dur: Duration,
    ticks: &dyn Fn() -> u64,
) -> (Vec<u32>, f64, u64) {
    // Warm-up, as for HTTP: one session, 20 responses.
    {
        let mut ws = ws_connect(port, None).await;
        for _ in 0..20 {
            ws_response(&mut ws, port).await;
        }
        ws_close(ws).await;
    }
    // The fsuid switch in `ws_connect` covers one socket() call with no await inside (the
    // runtime is single-threaded: no other task runs under that fsuid).
    let sessions =
        futures_util::future::join_all((0..c).map(|i| ws_connect(port, ws_uid(i)))).await;
    let cpu0 = ticks();
    let start = Instant::now();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for mut ws in sessions {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            while Instant::now() < deadline {
                let t = Instant::now();
                ws_response(&mut ws, port).await;
                lat.push(t.elapsed().as_micros() as u32);
            }
            (lat, ws)
        }));
    }
    let mut all = Vec::new();
    let mut open = Vec::new();
    for t in tasks {
        let (lat, ws) = t.await.unwrap();
        all.extend(lat);
        open.push(ws);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let used = ticks().saturating_sub(cpu0);
    futures_util::future::join_all(open.into_iter().map(ws_close)).await;
    (all, elapsed, used)
}

/// `n` WebSocket sessions one after another, each opened, used for one response and closed:
/// p50 and p99 of the upgrade (connect to `101`) in ms, and the target's CPU µs per session
/// (upgrade, one response, close).
async fn ws_setup(port: u16, n: usize, ticks: &dyn Fn() -> u64) -> (f64, f64, f64) {
    let cpu0 = ticks();
    let mut lat = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let mut ws = ws_connect(port, None).await;
        lat.push(t.elapsed().as_micros() as u32);
        ws_response(&mut ws, port).await;
        ws_close(ws).await;
    }
    let used = ticks().saturating_sub(cpu0);
    let r = summarize(lat, 1.0);
    (
        r.p50_ms,
        r.p99_ms,
        used as f64 * 1e6 / clock_ticks() as f64 / n as f64,
    )
}

/// The one system call the bench makes itself.
mod sys {
    /// Runs `f` with this thread's filesystem uid set to `uid`, then restores it. A socket
    /// created meanwhile is owned by `uid` (`sock_alloc` takes the inode's owner from the fsuid),
    /// which is what sock_diag reports to the proxy. Needs CAP_SETUID (root); without it the
    /// fsuid stays and the proxy sees this process's uid.
    pub fn with_fsuid<T>(uid: u32, f: impl FnOnce() -> T) -> T {
        // SAFETY: setfsuid takes no pointers and changes only the calling thread's filesystem
        // uid; it is restored below before anything else runs on this thread.
        let previous = unsafe { libc::setfsuid(uid) };
        let out = f();
        // SAFETY: as above; `previous` is the fsuid this thread had.
        unsafe { libc::setfsuid(previous as libc::uid_t) };
        out
    }
}
