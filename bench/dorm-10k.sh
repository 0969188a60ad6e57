#!/usr/bin/env bash
# Benchmark (not a test): 10,000 clients in rooms of 4, one message every 5 s each for 60 s,
# against the reference server in its own process on this machine. Prints the driver's cost
# per client and per checked delivery, fan-out latency and violations.
#   bench/dorm-10k.sh [SCENARIO]
# SERVER_ARGS adds options to `roomrig serve` (the idle scenarios get pings every 10 s).
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-scenarios/dorm-10k.yaml}
cargo build --release --quiet
bin=target/release/roomrig
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
count=$(grep -Eo 'count: *[0-9]+' "$scenario" | head -1 | grep -Eo '[0-9]+')
size=$(grep -Eo 'room_size: *[0-9]+' "$scenario" | head -1 | grep -Eo '[0-9]+')
case "$scenario" in
  *idle*) default_server_args="--ping-interval-ms 10000 --ping-timeout-ms 10000" ;;
  *) default_server_args="" ;;
esac
# shellcheck disable=SC2086
"$bin" serve --dialect dorm --listen "127.0.0.1:$port" --generate-users "$count" --room-size "$size" \
  ${SERVER_ARGS-$default_server_args} >/tmp/roomrig-bench-server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q listening /tmp/roomrig-bench-server.log && break; sleep 0.1; done
report=$(mktemp -d)
set +e
"$bin" run "$scenario" --target "http://127.0.0.1:$port" --report-dir "$report" --no-progress
code=$?
set -e
server_cpu=$(awk '{printf "%.1f", ($14+$15)/100}' /proc/$server/stat)
server_rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' /proc/$server/status)
python3 - "$report/summary.json" "$server_cpu" "$server_rss" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
d, m = s["driver"], s["metrics"]
f = m.get("message.fanout", {})
print("\n== dorm-10k benchmark ==")
print(f"clients connected        {s['clients']['connected']} / {s['clients']['planned']}")
c = m.get("connect", {}).get("co", {})
print(f"connect latency co       p50 {c.get('p50_ms',0):.2f} ms   p99 {c.get('p99_ms',0):.2f} ms   max {c.get('max_ms',0):.2f} ms (from the intended arrival time)")
print(f"messages sent            {s['events']['sent']}   events received {s['events']['received']}")
print(f"driver peak RSS          {d['peak_rss_mb']:.1f} MB   ({d['rss_per_client_kib']:.1f} KiB per client)")
print(f"driver CPU               {d['cpu_s']:.2f} s   ({d['cpu_us_per_received_event']:.2f} µs per checked delivery)")
for k in ("co", "raw"):
    h = f.get(k, {})
    print(f"fan-out latency {k:<4}     p50 {h.get('p50_ms',0):.2f} ms   p99 {h.get('p99_ms',0):.2f} ms   max {h.get('max_ms',0):.2f} ms   (n={h.get('count',0)})")
print(f"violations               {s['violations']['total']} (MUST {s['violations']['must']})")
print(f"reference server         {sys.argv[2]} CPU s, peak RSS {sys.argv[3]} MB")
print(f"verdict                  {s['verdict']['status']}")
PY
exit $code
