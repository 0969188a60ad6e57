#!/usr/bin/env bash
# Benchmark (not a test): 50,000 concurrent clients in rooms of 4 on this machine, split
# across driver processes (--workers, whole rooms each, one loopback source address each) and
# reference-server processes (--server-procs; each process holds under 20,000 sockets).
#   bench/dorm-50k.sh [SCENARIO] [WORKERS] [SERVER_PROCS]
# Prints the peak of open connections, the connect rate, the cost per client of the drivers
# and of the servers, fan-out latency and violations.
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:-scenarios/dorm-50k.yaml}
workers=${2:-4}
servers=${3:-$workers}
cargo build --release --quiet
report=$(mktemp -d)
set +e
target/release/roomrig run "$scenario" --workers "$workers" --server-procs "$servers" \
    --report-dir "$report" --no-progress
code=$?
set -e
python3 - "$report/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
d, m, p = s["driver"], s["metrics"], s["processes"]
c = s["clients"]
co, raw = m.get("message.fanout", {}).get("co", {}), m.get("message.fanout", {}).get("raw", {})
conn = m.get("connect", {}).get("co", {})
phases = s["scenario"]["config"]["phases"]
print(f"\n== {s['scenario']['name']} benchmark: {len(p['workers'])} workers, {len(p['servers'])} server processes ==")
print(f"clients connected        {c['connected']} / {c['planned']}   connect errors {c['connect_errors']}   closed by server {c['unexpected_closes']}")
print(f"peak open connections    {p.get('peak_open', 0)} (sum of the workers' live counts, sampled twice a second)")
print(f"arrival schedule         {phases}")
print(f"connect latency (co)     p50 {conn.get('p50_ms',0):.2f} ms   p99 {conn.get('p99_ms',0):.2f} ms   max {conn.get('max_ms',0):.2f} ms")
print(f"messages sent            {s['events']['sent']}   events received {s['events']['received']}")
print(f"drivers (summed)         CPU {d['cpu_s']:.1f} s   peak RSS {d['peak_rss_mb']:.0f} MB   {d['rss_per_client_kib']:.1f} KiB per client   {d['cpu_us_per_received_event']:.1f} µs CPU per checked event")
scpu = sum(x["cpu_s"] for x in p["servers"]); srss = sum(x["peak_rss_mb"] for x in p["servers"])
print(f"servers (summed)         CPU {scpu:.1f} s   peak RSS {srss:.0f} MB   {srss*1024/max(c['connected'],1):.1f} KiB per client")
for w in p["workers"]:
    print(f"  worker {w['worker']} {w['source_addr'] or '-':<10} planned {w['planned']:>6} connected {w['connected']:>6} CPU {w['cpu_s']:6.1f} s peak {w['peak_rss_mb']:6.0f} MB  {w['status']}")
for k in ("co", "raw"):
    h = m.get("message.fanout", {}).get(k, {})
    print(f"fan-out latency {k:<4}     p50 {h.get('p50_ms',0):.2f} ms   p99 {h.get('p99_ms',0):.2f} ms   max {h.get('max_ms',0):.2f} ms   (n={h.get('count',0)})")
lat = m.get("send.lateness", {}).get("co", {})
print(f"send lateness            p99 {lat.get('p99_ms',0):.2f} ms   max {lat.get('max_ms',0):.2f} ms")
print(f"violations               {s['violations']['total']} (MUST {s['violations']['must']})")
print(f"duration                 {s['duration_s']:.1f} s")
print(f"verdict                  {s['verdict']['status']} {s['verdict']['reasons']}")
print(f"report                   {sys.argv[1]}")
PY
exit $code
