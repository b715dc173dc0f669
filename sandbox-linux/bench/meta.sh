#!/usr/bin/env bash
# Cost of the metadata mediation (outside review r14 F2): per call (N x fchmod on a descriptor,
# N x utimensat on a path) and for `tar x` of FILES small files with their modes and times,
# bare and under each `codex-linux-sandbox` binary given (workspace-write, the cwd as the root),
# alternated ROUNDS times so that a loaded machine hits them alike. Not run by CI.
# Usage: bash sandbox-linux/bench/meta.sh HELPER_BEFORE HELPER_AFTER   (N=20000 FILES=3000 ROUNDS=3)
set -euo pipefail
N=${N:-20000}
FILES=${FILES:-3000}
ROUNDS=${ROUNDS:-3}
[ $# -ge 1 ] || { echo "usage: $0 HELPER..." >&2; exit 2; }
W="$(mktemp -d /var/tmp/metabench.XXXXXX)"
# as root, on a tmpfs of its own: the disk's writeback otherwise dominates `tar x`
if [ "$(id -u)" = 0 ]; then mount -t tmpfs -o size=256m,mode=0755 metabench "$W"; fi
trap 'mountpoint -q "$W" && umount "$W"; rm -rf "$W"' EXIT
cat > "$W/m.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
static double us(struct timespec a, struct timespec b, int n) {
  return ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3 / n;
}
int main(int argc, char **argv) {
  int n = atoi(argv[1]);
  int fd = open("f", O_CREAT | O_WRONLY, 0600);
  if (fd < 0) { perror("open"); return 1; }
  struct timespec a, b, c;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < n; i++)
    if (fchmod(fd, i & 1 ? 0644 : 0600)) { perror("fchmod"); return 1; }
  clock_gettime(CLOCK_MONOTONIC, &b);
  for (int i = 0; i < n; i++)
    if (utimensat(AT_FDCWD, "f", NULL, 0)) { perror("utimensat"); return 1; }
  clock_gettime(CLOCK_MONOTONIC, &c);
  printf("fchmod %.1f us, utimensat(path) %.1f us", us(a, b, n), us(b, c, n));
  return 0;
}
C
gcc -O2 -o "$W/m" "$W/m.c"
mkdir -p "$W/src/tree"
for i in $(seq 1 "$FILES"); do
  d="$W/src/tree/d$((i % 30))"; mkdir -p "$d"; echo "$i" > "$d/f$i"; chmod $(( i % 2 ? 644 : 755 )) "$d/f$i"
done
tar -C "$W/src" -cf "$W/t.tar" tree
mkdir -p "$W/ws"
run() { # $1: helper or "bare"; the rest: the command
  local h=$1; shift
  if [ "$h" = bare ]; then (cd "$W/ws" && "$@"); else
    (cd "$W/ws" && "$h" --sandbox-policy-cwd "$W/ws" --sandbox-policy '{"mode":"workspace-write"}' -- "$@"); fi
}
for r in $(seq 1 "$ROUNDS"); do
  for h in bare "$@"; do
    rm -rf "$W/ws/x"; mkdir "$W/ws/x"
    per=$(run "$h" "$W/m" "$N")
    t0=$(date +%s%N); run "$h" tar -xf "$W/t.tar" -C x; t1=$(date +%s%N)
    printf 'round %s %-60s %s; tar x of %s files %.0f ms\n' "$r" "$h" "$per" "$FILES" "$(( (t1 - t0) / 1000 ))e-3"
  done
done
