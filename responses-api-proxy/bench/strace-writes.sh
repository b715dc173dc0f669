#!/usr/bin/env bash
# Syscalls per request through the proxy, by strace -c: one proxy, the bench mock, N curl requests.
# Usage: bash responses-api-proxy/bench/strace-writes.sh PROXY_BIN BENCH_BIN SCENARIO N
#   e.g. target/release/responses-api-proxy target/release/examples/bench sse-burst 100
# Needs strace, curl, python3. Not run in CI.
set -u
BIN=$1; BENCH=$2; SC=$3; N=$4
D0=$(mktemp -d); $BENCH --mock > $D0/mockport 2>/dev/null &
MOCK=$!
sleep 0.5
MP=$(head -1 $D0/mockport)
D=$(mktemp -d)
echo sk-test-strace-0123456789 | $BIN --upstream-url http://127.0.0.1:$MP/v1/responses --server-info $D/info.json --listen 127.0.0.1:0 2>/dev/null &
P=$!
for i in $(seq 50); do [ -s $D/info.json ] && break; sleep 0.1; done
sleep 0.3
PORT=$(python3 -c "import json;print(json.load(open('$D/info.json'))['port'])")
# warm the pool
curl -s -o /dev/null -H "x-bench-scenario: $SC" -H 'content-type: application/json' -d '{}' http://127.0.0.1:$PORT/v1/responses
strace -f -qq -c -e trace=write,writev,sendto,sendmsg,read,readv,recvfrom,epoll_wait -p $P -o $D/st 2>/dev/null &
ST=$!
sleep 0.5
for i in $(seq $N); do curl -s -o /dev/null -H "x-bench-scenario: $SC" -H 'content-type: application/json' -d '{}' http://127.0.0.1:$PORT/v1/responses; done
sleep 0.3
kill -INT $ST; wait $ST 2>/dev/null
kill $P $MOCK; wait 2>/dev/null
awk -v n=$N 'NR>2 && $NF!="total" && NF>=5 {printf "  %-12s %6.2f per request\n", $NF, $(NF-1-($5~/^[0-9]+$/ && NF==6))/n}' $D/st
cat $D/st | sed -n 1,20p
