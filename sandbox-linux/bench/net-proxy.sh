#!/usr/bin/env bash
# The network allow-list's costs (issue 18), by hand, not in CI: `bash sandbox-linux/bench/net-proxy.sh`
# from the workspace root (needs hyperfine and python3). Prints:
# 1. start-up: `codex sandbox linux -- /bin/true` with and without `--allow-domain` (hyperfine);
# 2. 100 sequential CONNECT tunnels through the filtering proxy (inside the sandbox) against 100
#    direct TCP connections to the same local echo server (inside the sandbox with network on),
#    each a connect, one byte each way, close.
set -euo pipefail
command -v hyperfine >/dev/null || { echo "bench: hyperfine not installed" >&2; exit 1; }
cargo build --release -p codex-cli --bins >&2
CODEX="$PWD/target/release/codex"
W="$(mktemp -d)"
trap 'kill $ECHO 2>/dev/null; rm -rf "$W"' EXIT
cd "$W"
python3 - <<'PY' &
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 18777)); s.listen(128)
def serve(c):
    try:
        while True:
            d = c.recv(4096)
            if not d: break
            c.sendall(d)
    finally:
        c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
ECHO=$!
sleep 0.5
hyperfine -N --warmup 10 --runs 100 \
  -n "codex sandbox linux (network off)" "$CODEX sandbox linux -- /bin/true" \
  -n "codex sandbox linux --allow-domain localhost" "$CODEX sandbox linux --allow-domain localhost -- /bin/true"
cat > client.py <<'PY'
import os, socket, sys, time
mode = sys.argv[1]
proxy = os.environ.get("HTTPS_PROXY", "")
def once():
    if mode == "proxy":
        host, port = proxy.removeprefix("http://").rsplit(":", 1)
        c = socket.create_connection((host, int(port)))
        c.sendall(b"CONNECT localhost:18777 HTTP/1.1\r\nHost: localhost:18777\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += c.recv(4096)
        assert buf.startswith(b"HTTP/1.1 200"), buf
    else:
        c = socket.create_connection(("127.0.0.1", 18777))
    c.sendall(b"x"); assert c.recv(1) == b"x"; c.close()
for _ in range(5): once()
t = time.perf_counter()
for _ in range(100): once()
print(f"{mode:6} 100 sequential tunnels: {(time.perf_counter()-t)*1000:.1f} ms")
PY
"$CODEX" sandbox linux --allow-domain localhost -- python3 client.py proxy
"$CODEX" -c sandbox_workspace_write.network_access=true sandbox linux --full-auto -- python3 client.py direct
