#!/usr/bin/env bash
# Benchmark (not a test): the reference server's memory under clients that stop reading.
#
# A lobby server in its own process; SLOW websocket clients connect, log in, answer pings
# blindly and never read again, while one client sends public messages of SIZE bytes (each
# reaches every connected socket) as fast as they come back, for SECONDS. The server's RSS is
# sampled every 0.5 s; the script prints the baseline (all clients connected), the peak, the
# end, how many slow clients the server closed, and fails (exit 1) if the peak RSS exceeds
# BOUND_MB. Without the outgoing byte caps (reference-server/src/outbound.rs) 200 slow clients
# took the server to 1.73 GB (about 8.6 MB each, socketioxide's 1,024 queued packets).
#   bench/slow-readers.sh     # defaults: SLOW=2000 SIZE=8192 SECONDS_=30 BOUND_MB=512
#   BIN=target/debug/roomrig bench/slow-readers.sh    # another build
# Needs about SLOW+50 open files in each of the two processes.
set -euo pipefail
cd "$(dirname "$0")/.."
slow=${SLOW:-2000}
size=${SIZE:-8192}
seconds=${SECONDS_:-30}
bound=${BOUND_MB:-512}
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
fi
bin=${BIN:-target/release/roomrig}
ulimit -n "$(( $(ulimit -Hn) < 20000 ? $(ulimit -Hn) : 20000 ))"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
work=$(mktemp -d)
ROOMRIG_LOG=info "$bin" serve --dialect lobby --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do grep -q listening "$work/server.log" && break; sleep 0.1; done
rss() { awk '/^VmRSS/ {print int($2/1024)}' "/proc/$server/status"; }
fds() { ls "/proc/$server/fd" | wc -l; }
tcp_kernel_mb() { awk '/^TCP:/ {for (i=1;i<NF;i++) if ($i=="mem") print int($(i+1)*4/1024)}' /proc/net/sockstat; }
echo "server pid $server, rss at start $(rss) MB"

python3 bench/slow_readers.py 127.0.0.1 "$port" "$slow" "$size" "$seconds" >"$work/clients.log" 2>&1 &
clients=$!
peak=0
baseline=""
while kill -0 "$clients" 2>/dev/null; do
  r=$(rss)
  [ "$r" -gt "$peak" ] && peak=$r
  if [ -z "$baseline" ] && grep -q '^@connected' "$work/clients.log"; then
    baseline=$r
    echo "$slow slow clients connected and logged in: rss $r MB, $(fds) fds"
  fi
  sleep 0.5
done
wait "$clients" || { echo "clients failed:"; tail -20 "$work/clients.log"; exit 2; }
grep '^@tick' "$work/clients.log" | awk 'NR % 5 == 0' | sed 's/^@tick /  /'
closed=$(grep -c 'does not read fast enough' "$work/server.log" || true)
echo "$(grep '^@done' "$work/clients.log" | sed 's/^@done //')"
echo "rss: baseline ${baseline:-?} MB, peak $peak MB (+$((peak - ${baseline:-0})) MB), end $(rss) MB (bound $bound MB)"
echo "slow clients closed by the server: $closed of $slow; server fds at end: $(fds); kernel TCP memory now: $(tcp_kernel_mb) MB"
if [ "$peak" -gt "$bound" ]; then
  echo "FAIL: peak rss $peak MB exceeds $bound MB"
  exit 1
fi
echo "ok: peak rss within $bound MB"
