#!/usr/bin/env bash
# Benchmark (not a test): 10,000 socket clients in rooms of 10 and a backend pushing 1,000
# pushes/s over HTTP for 30 s (scenarios/push-10k.yaml), against the push reference server in
# its own process. Prints deliveries/s, the driver's CPU per delivery, HTTP push → socket
# latency, HTTP response time, violations, and the load average around the run.
#   bench/push-10k.sh [SCENARIO]
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-scenarios/push-10k.yaml}
# BIN=path/to/roomrig measures that build (and skips building this one).
if [ -z "${BIN:-}" ]; then cargo build --release --quiet --bin roomrig; fi
bin=${BIN:-${CARGO_TARGET_DIR:-target}/release/roomrig}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
count=$(grep -Eo 'count: *[0-9]+' "$scenario" | head -1 | grep -Eo '[0-9]+')
"$bin" serve --dialect push --listen "127.0.0.1:$port" --generate-users "$count" \
  >/tmp/roomrig-push-bench-server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q listening /tmp/roomrig-push-bench-server.log && break; sleep 0.1; done
report=$(mktemp -d)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
set +e
"$bin" run "$scenario" --target "http://127.0.0.1:$port" --report-dir "$report" --no-progress
code=$?
set -e
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
server_cpu=$(awk '{printf "%.1f", ($14+$15)/100}' /proc/$server/stat)
python3 - "$report/summary.json" "$server_cpu" "$load_before" "$load_after" "$scenario" <<'PY'
import json, re, sys
s = json.load(open(sys.argv[1]))
d, m = s["driver"], s["metrics"]
push = re.search(r"duration: *(\d+)s *}", open(sys.argv[5]).read().split("push:")[-1])
seconds = float(push.group(1)) if push else float("nan")
f, h = m.get("news.fanout", {}), m.get("push.http", {})
deliveries = f.get("co", {}).get("count", 0)
print("\n== push-10k benchmark ==")
print(f"clients connected        {s['clients']['connected']} / {s['clients']['planned']}")
print(f"pushes answered          {h.get('co', {}).get('count', 0)}   deliveries {deliveries} ({deliveries / seconds:.0f}/s over the {seconds:.0f} s of pushing)")
print(f"driver CPU               {d['cpu_s']:.2f} s in all, {d['cpu_s'] * 1e6 / max(deliveries, 1):.1f} µs per delivery (connection set-up, logins and heartbeats included)")
print(f"driver peak RSS          {d['peak_rss_mb']:.1f} MB")
for name, h2 in (("HTTP push -> socket", f), ("HTTP response", h)):
    for k in ("co", "raw"):
        x = h2.get(k, {})
        print(f"{name:<20} {k:<4} p50 {x.get('p50_ms',0):.2f} ms   p99 {x.get('p99_ms',0):.2f} ms   max {x.get('max_ms',0):.2f} ms   (n={x.get('count',0)})")
lat = m.get("send.lateness", {}).get("co", {})
print(f"send lateness            p99 {lat.get('p99_ms',0):.2f} ms   max {lat.get('max_ms',0):.2f} ms")
print(f"violations               {s['violations']['total']} (MUST {s['violations']['must']})")
print(f"reference server         {sys.argv[2]} CPU s")
print(f"load average             before {sys.argv[3]}, after {sys.argv[4]} (2 cores, shared with other jobs)")
print(f"verdict                  {s['verdict']['status']}")
PY
exit $code
