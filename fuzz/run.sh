#!/usr/bin/env bash
# Long coverage-guided runs (libFuzzer via cargo-fuzz, nightly toolchain). By hand, not in CI.
#
#   fuzz/run.sh                      # every target, one after another, 1800 CPU-seconds each
#   fuzz/run.sh key_reader 600       # one target, 600 CPU-seconds
#   JOBS=... not used: run several targets at once by starting several run.sh
#
# Needs: `cargo install cargo-fuzz --locked` and a nightly toolchain (`rustup toolchain install
# nightly`). New inputs go to $FUZZ_WORK/<target> (default target/fuzz-work), never into the repo's
# corpus; `fuzz/run.sh --minimize` merges them into fuzz/corpus/ afterwards (cargo fuzz cmin).
# Crashes land in fuzz/artifacts/<target>/: each becomes a corpus file and a regression test.
set -euo pipefail
cd "$(dirname "$0")"
work=${FUZZ_WORK:-$(pwd)/../target/fuzz-work}
targets=(proxy_request key_reader config app_server_line seatbelt)
if [ "${1:-}" = "--minimize" ]; then
  for t in "${targets[@]}"; do
    [ -d "$work/$t" ] || continue
    tmp=$(mktemp -d)
    cp -n corpus/"$t"/* "$tmp"/ 2>/dev/null || true
    cp -n "$work/$t"/* "$tmp"/ 2>/dev/null || true
    rm -rf corpus/"$t".new && mkdir corpus/"$t".new
    cargo +nightly fuzz cmin -O "$t" corpus/"$t".new "$tmp" >/dev/null 2>&1 \
      || { echo "cmin failed for $t" >&2; exit 1; }
    # keep the hand-written seeds (named) plus the minimized set
    cp -n corpus/"$t"/[a-z]* corpus/"$t".new/ 2>/dev/null || true
    rm -rf corpus/"$t" && mv corpus/"$t".new corpus/"$t" && rm -rf "$tmp"
    echo "$t: $(ls corpus/"$t" | wc -l) files, $(du -sh corpus/"$t" | cut -f1)"
  done
  exit 0
fi
secs=${2:-1800}
[ $# -ge 1 ] && targets=("$1")
# SECS is CPU time, not wall time: on a shared machine a wall-clock limit gives the fuzzer whatever
# the other jobs leave. The fuzzer runs in one process (no -fork/-jobs); its utime+stime is read
# from /proc/PID/stat every 5 s, and at SECS it gets SIGINT, on which libFuzzer prints its final
# stats and exits. -max_total_time (3 x SECS wall) is only a backstop.
tick=$(getconf CLK_TCK)
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  cargo +nightly fuzz build -O "$t" >/dev/null
  bin=$(ls -d target/*/release/"$t" | head -1)
  log="$work/$t.log"
  start=$(date +%s)
  "$bin" "$work/$t" corpus/"$t" -max_total_time=$((secs * 3)) -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=artifacts/"$t"/ >"$log" 2>&1 &
  pid=$!
  mkdir -p artifacts/"$t"
  cpu=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 5
    { read -r -a f < /proc/"$pid"/stat; } 2>/dev/null || break
    # fields 14 and 15 (utime, stime) counted from 1; the comm field has no spaces here
    cpu=$(( (f[13] + f[14]) / tick ))
    if [ "$cpu" -ge "$secs" ]; then kill -INT "$pid"; fi
  done
  rc=0; wait "$pid" || rc=$?
  # libFuzzer exits 72 on SIGINT (our CPU limit); anything else but 0 is a finding
  end="exit $rc"; [ "$rc" = 72 ] && [ "$cpu" -ge "$secs" ] && end="stopped at the CPU limit"
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  crashes=$(ls artifacts/"$t" 2>/dev/null | wc -l)
  echo "$t: cpu ${cpu}s wall $(( $(date +%s) - start ))s execs ${execs:-?} ${cov:-?} \
$end, artifacts $crashes (log $log)"
done
