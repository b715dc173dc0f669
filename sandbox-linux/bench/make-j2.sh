#!/usr/bin/env bash
# `make -j2` of a 49-file C project from clean: bare, then under each codex binary given (default:
# this workspace's release build) with the name guard on and off, the variants INTERLEAVED run
# by run (a loaded machine drifts: consecutive blocks of one variant would see different loads).
# Prints the median wall time of each variant and its ratio to bare. Not run by CI.
# Usage: bash sandbox-linux/bench/make-j2.sh [CODEX_BINARY...]   (RUNS=15 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-15}
if [ $# -eq 0 ]; then
  cargo build --release -p codex-cli --bins >&2
  set -- "$PWD/target/release/codex"
fi
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/proj" "$W/.git"
for i in $(seq 48); do
  { echo "int f$i(int x) {"; for j in $(seq 40); do echo "  x = x * $j + $i; x ^= x >> 3;"; done
    echo "  return x; }"; } > "$W/proj/f$i.c"
done
{ echo 'int main(void) { int s = 0;'; for i in $(seq 48); do echo "  extern int f$i(int); s += f$i($i);"; done
  echo '  return s & 1; }'; } > "$W/proj/main.c"
printf 'OBJS := $(patsubst %%.c,%%.o,$(wildcard *.c))\nall: prog\nprog: $(OBJS)\n\t$(CC) -o $@ $^\n%%.o: %%.c\n\t$(CC) -O1 -c -o $@ $<\nclean:\n\trm -f *.o prog\n' > "$W/proj/Makefile"
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
