#!/usr/bin/env bash
# Benchmark (not a test): 10,000 chat clients (scenarios/chat-10k.yaml) against the reference
# server in its own process on this machine (one process cannot hold both ends of 10,000
# connections under the 20,000 open-file limit). Prints checked deliveries per second, the
# driver's CPU per delivery, the offline-sync latencies, violations, and the load average
# before and after (other work on the machine shows there).
#   bench/chat-10k.sh [SCENARIO]
# BIN=path/to/roomrig measures another build; SERVER_ARGS adds options to `roomrig serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-scenarios/chat-10k.yaml}
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin roomrig
  bin=${CARGO_TARGET_DIR:-target}/release/roomrig
else
  bin=$BIN
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
count=$(grep -Eo 'count: *[0-9]+' "$scenario" | head -1 | grep -Eo '[0-9]+')
size=$(grep -Eo 'room_size: *[0-9]+' "$scenario" | head -1 | grep -Eo '[0-9]+')
work=$(mktemp -d)
report=$(mktemp -d)   # kept: transcripts of any violation
# shellcheck disable=SC2086
"$bin" serve --dialect chat --listen "127.0.0.1:$port" --generate-users "$count" --room-size "$size" \
  --chat-db "$work/chat.sqlite3" ${SERVER_ARGS-} >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q listening "$work/server.log" && break; sleep 0.1; done
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
set +e
"$bin" run "$scenario" --target "http://127.0.0.1:$port" --report-dir "$report" --no-progress
code=$?
set -e
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
server_cpu=$(awk '{printf "%.1f", ($14+$15)/100}' /proc/$server/stat)
server_rss=$(awk '/VmHWM/ {printf "%.0f", $2/1024}' /proc/$server/status)
python3 - "$report/summary.json" "$server_cpu" "$server_rss" "$load_before" "$load_after" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
d, m = s["driver"], s["metrics"]
def h(name, k="co"):
    return m.get(name, {}).get(k, {})
# A checked delivery: a message (friend or group) received live, or handed over in a `saoff`.
live = sum(h(n).get("count", 0) for n in ("receivefsmg.fanout", "group-receivefsmg.fanout"))
kept = h("saoff.offline").get("count", 0)
deliveries = live + kept
secs = s["duration_s"]
print("\n== chat-10k benchmark ==")
print(f"clients connected        {s['clients']['connected']} / {s['clients']['planned']}")
c = h("connect")
print(f"connect latency co       p50 {c.get('p50_ms',0):.2f} ms   p99 {c.get('p99_ms',0):.2f} ms")
print(f"messages sent            {s['events']['sent_by_operation']}")
print(f"checked deliveries       {deliveries} ({live} live, {kept} handed over in saoff) in {secs:.1f} s: {deliveries/secs:.0f}/s")
print(f"driver CPU               {d['cpu_s']:.2f} s   ({d['cpu_s']*1e6/max(deliveries,1):.1f} µs per checked delivery, connection set-up, auth and heartbeats included)")
print(f"driver peak RSS          {d['peak_rss_mb']:.1f} MB   ({d['rss_per_client_kib']:.1f} KiB per client)")
for name in ("receivefsmg.fanout", "group-receivefsmg.fanout"):
    x = h(name)
    print(f"{name:<25}p50 {x.get('p50_ms',0):.2f} ms   p99 {x.get('p99_ms',0):.2f} ms   (n={x.get('count',0)})")
r = h("caoff.saoff")
print(f"offline sync caoff→saoff p50 {r.get('p50_ms',0):.2f} ms   p99 {r.get('p99_ms',0):.2f} ms   (n={r.get('count',0)}, from the intended send)")
o = h("saoff.offline")
print(f"kept send→saoff          p50 {o.get('p50_ms',0):.0f} ms   p99 {o.get('p99_ms',0):.0f} ms   (n={o.get('count',0)}: mostly the time the user was away)")
print(f"violations               {s['violations']['total']} (MUST {s['violations']['must']})")
print(f"reference server         {sys.argv[2]} CPU s, peak RSS {sys.argv[3]} MB")
print(f"load average             before {sys.argv[4]}   after {sys.argv[5]}   (2 cores, shared)")
print(f"verdict                  {s['verdict']['status']}")
PY
exit $code
