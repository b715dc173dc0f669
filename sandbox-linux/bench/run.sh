#!/usr/bin/env bash
# Start-up benchmark of `codex sandbox linux --full-auto` against the bare command and bubblewrap.
# One command: `bash sandbox-linux/bench/run.sh` from the workspace root (needs hyperfine and
# bubblewrap: `apt-get install -y hyperfine bubblewrap`). Builds release binaries first.
# Not run by CI. Prints hyperfine's table, then medians, ratios and peak RSS.
set -euo pipefail
cd "$(dirname "$0")/../.."
BENCH="$PWD/sandbox-linux/bench"
command -v hyperfine >/dev/null || { echo "bench: hyperfine not installed (apt-get install -y hyperfine)" >&2; exit 1; }
command -v bwrap >/dev/null || { echo "bench: bubblewrap not installed (apt-get install -y bubblewrap)" >&2; exit 1; }
cargo build --release -p codex-cli -p codex-sandbox-cli --bins >&2
CODEX="$PWD/target/release/codex"
HELPER="$PWD/target/release/codex-linux-sandbox"
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/.git"
cd "$W"
POLICY='{"mode":"workspace-write"}'
LOOP='i=0; while [ $i -lt 100 ]; do /bin/true; i=$((i+1)); done'
BWRAP="bwrap --ro-bind / / --dev /dev --bind $W $W --unshare-all --die-with-parent --new-session --"
OUT="$W/results.json"
OUT2="$W/results-loop.json"
OUT3="$W/results-make.json"
# A C project for `make -j2`: 48 files of a few functions each, rebuilt from clean every run.
mkdir -p "$W/proj"
source "$BENCH/c-project.sh"
write_c_project "$W/proj"
MAKE_CMD="make -s -C $W/proj all -j2"
hyperfine -N --warmup 20 --runs 300 --export-json "$OUT" \
  -n bare "/bin/true" \
  -n bwrap "$BWRAP /bin/true" \
  -n "codex sandbox linux --full-auto" "$CODEX sandbox linux --full-auto -- /bin/true" \
  -n "codex, name guard off" "$CODEX sandbox linux --full-auto --allow-git-writes -- /bin/true" \
  -n "codex-linux-sandbox (helper)" "$HELPER --sandbox-policy-cwd $W --sandbox-policy '$POLICY' -- /bin/true"
hyperfine -N --warmup 3 --runs 30 --export-json "$OUT2" \
  -n "bare loop" "sh -c '$LOOP'" \
  -n "bwrap loop" "$BWRAP sh -c '$LOOP'" \
  -n "codex loop" "$CODEX sandbox linux --full-auto -- sh -c '$LOOP'"
hyperfine -N --warmup 1 --runs 10 --prepare "make -s -C $W/proj clean" --export-json "$OUT3" \
  -n "bare make -j2" "$MAKE_CMD" \
  -n "bwrap make -j2" "${BWRAP/--unshare-all/--bind /tmp /tmp --unshare-all} $MAKE_CMD" \
  -n "codex make -j2" "$CODEX sandbox linux --full-auto -- $MAKE_CMD" \
  -n "codex make -j2, name guard off" "$CODEX sandbox linux --full-auto --allow-git-writes -- $MAKE_CMD"
python3 - "$OUT" "$OUT2" "$OUT3" <<'PY'
import json, sys
for f in sys.argv[1:]:
    rs = json.load(open(f))["results"]
    base = rs[0]["median"]
    print(f"{'command':40} {'median ms':>10} {'vs bare':>8} {'vs bwrap':>9}")
    bw = rs[1]["median"]
    for r in rs:
        print(f"{r['command']:40} {r['median']*1000:10.2f} {r['median']/base:8.2f} {r['median']/bw:9.2f}")
    print()
PY
for name in "/bin/true" "$CODEX sandbox linux --full-auto -- /bin/true" "$BWRAP /bin/true"; do
  rss=$(/usr/bin/time -f %M $name 2>&1 >/dev/null | tail -1)
  echo "peak RSS (KiB, max of the process tree's largest): $rss  $name"
done
