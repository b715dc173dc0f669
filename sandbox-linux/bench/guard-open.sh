#!/usr/bin/env bash
# Cost of one mediated call of the name guard: N x open(O_CREAT|O_WRONLY|O_TRUNC) + close of the
# same file inside `codex sandbox linux --full-auto`, per call and in CPU time (perf stat
# task-clock), for each codex binary given (default: this workspace's release build), alternated
# ROUNDS times so that a loaded machine hits them alike. Not run by CI.
# Usage: bash sandbox-linux/bench/guard-open.sh [CODEX_BINARY...]   (N=2000 ROUNDS=4 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${N:-2000}
ROUNDS=${ROUNDS:-4}
command -v perf >/dev/null || { echo "bench: perf not installed (apt-get install -y linux-perf)" >&2; exit 1; }
if [ $# -eq 0 ]; then
  cargo build --release -p codex-cli --bins >&2
  set -- "$PWD/target/release/codex"
fi
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
cat > "$W/oc.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int n = atoi(argv[1]);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < n; i++) {
    int fd = open(argv[2], O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 1; }
    close(fd);
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.1f", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / n);
  return 0;
}
C
gcc -O2 -o "$W/oc" "$W/oc.c"
mkdir -p "$W/ws"
cd "$W/ws"
printf '%-60s %12s %14s\n' binary "us per call" "CPU ms (all)"
for _ in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    out=$(perf stat -x, -e task-clock -- "$bin" sandbox linux --full-auto -- "$W/oc" "$N" f 2>"$W/perf")
    cpu=$(cut -d, -f1 "$W/perf" | tail -1)
    printf '%-60s %12s %14s\n' "$bin" "$out" "$cpu"
  done
done
