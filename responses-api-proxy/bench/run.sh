#!/usr/bin/env bash
# One-command benchmark of responses-api-proxy against direct upstream access and nginx.
# Optional baseline: apt-get install -y nginx-light. Not run in CI.
# Usage: bash responses-api-proxy/bench/run.sh [--secs N] [--threads N] [--no-pin] [--nginx-no-log]
#   [--only ws,json,...] [--proxy-bin PATH] [--ours-arg ARG]...
# (pinned by default: the load generator and the mock on CPU 0, the proxies on CPU 1; nginx
# writes an access line per request to /dev/null as ours writes its audit line, by default)
# The ws rows (WebSocket sessions) open sessions 17 and up from other uids: run as root.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p responses-api-proxy --bins --examples
# More file descriptors for c=64 plus pools; harmless when already higher.
ulimit -n 65536 2>/dev/null || true
exec target/release/examples/bench "$@"
