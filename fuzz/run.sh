#!/usr/bin/env bash
# Long coverage-guided runs (libFuzzer via cargo-fuzz, nightly toolchain). By hand, not in CI.
#
#   fuzz/run.sh                      # every target, one after another, 1800 s each
#   fuzz/run.sh key_reader 600       # one target, 600 s
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
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  cargo +nightly fuzz run -O "$t" "$work/$t" corpus/"$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
