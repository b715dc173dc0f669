#!/usr/bin/env bash
# `make -j2` of a 49-file C project from clean: bare, then under each codex binary given (default:
# this workspace's release build) with the name guard on and off, the variants INTERLEAVED run
# by run (a loaded machine drifts: consecutive blocks of one variant would see different loads).
# Prints the median wall time of each variant and its ratio to bare. Not run by CI.
# Usage: bash sandbox-linux/bench/make-j2.sh [CODEX_BINARY...]   (RUNS=15 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH="$PWD/sandbox-linux/bench"
RUNS=${RUNS:-15}
if [ $# -eq 0 ]; then
  cargo build --release -p codex-cli --bins >&2
  set -- "$PWD/target/release/codex"
fi
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/proj" "$W/.git"
source "$BENCH/c-project.sh"
write_c_project "$W/proj"
cd "$W"
MAKE_CMD=(make -s -C "$W/proj" all -j2)
variants=("bare")
for bin in "$@"; do variants+=("$bin|guard" "$bin|noguard"); done
run() {
  local v=$1
  case "$v" in
    bare) "${MAKE_CMD[@]}" ;;
    *"|guard") "${v%|guard}" sandbox linux --full-auto -- "${MAKE_CMD[@]}" ;;
    *"|noguard") "${v%|noguard}" sandbox linux --full-auto --allow-git-writes -- "${MAKE_CMD[@]}" ;;
  esac
}
make -s -C "$W/proj" clean; run bare >/dev/null   # warm the caches
for _ in $(seq "$RUNS"); do
  for idx in "${!variants[@]}"; do
    make -s -C "$W/proj" clean
    a=$(date +%s%N); run "${variants[$idx]}" >/dev/null; b=$(date +%s%N)
    echo "$idx $(( (b - a) / 1000 ))" >> "$W/times"
  done
done
python3 - "$W/times" "${variants[@]}" <<'PY'
import statistics, sys
names = sys.argv[2:]
t = {}
for line in open(sys.argv[1]):
    i, us = line.split()
    t.setdefault(int(i), []).append(int(us) / 1000)
base = statistics.median(t[0])
print(f"{'variant':60} {'median ms':>10} {'vs bare':>8}")
for i, n in enumerate(names):
    m = statistics.median(t[i])
    print(f"{n:60} {m:10.1f} {m / base:8.3f}")
PY
