#!/usr/bin/env bash
# Benchmark (not a test): the highest sustained fan-out rate with zero violations.
#
# One reference server in its own process; CLIENTS clients in rooms of 4, each sending
# messages for SECONDS at a rate that steps up (RATES, messages per client per second; every
# message is delivered to the 4 members of the room, the sender included). Each step is one
# `roomrig run` against the same server. Per step it prints deliveries per second, the
# driver's CPU per delivery, the server's CPU (cores), fan-out p50/p99 and violations, and it
# stops at the first step that is invalid (the driver fell behind), has a violation, or where
# the server is saturated (its CPU, or driver + server together, at the machine's cores).
#   bench/dorm-rate.sh       # defaults: CLIENTS=2000 SECONDS_PER_STEP=20 RATES="4 8 12 16 24 32 48 64"
#   BIN=path/to/roomrig bench/dorm-rate.sh    # another build (e.g. to compare two commits)
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${CLIENTS:-2000}
seconds=${SECONDS_PER_STEP:-20}
rates=${RATES:-"4 8 12 16 24 32 48 64"}
cores=$(nproc)
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
fi
bin=${BIN:-target/release/roomrig}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --dialect dorm --listen "127.0.0.1:$port" --generate-users "$clients" --room-size 4 >/tmp/roomrig-rate-server.log 2>&1 &
server=$!
work=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do grep -q listening /tmp/roomrig-rate-server.log && break; sleep 0.1; done
ticks=$(getconf CLK_TCK)
best=""
server_ticks() { awk '{print $14+$15}' "/proc/$server/stat"; }

printf '%-6s %12s %12s %10s %10s %9s %9s %6s  %s\n' "msg/s" "deliveries/s" "driver us/d" "driver" "server" "p50 ms" "p99 ms" "viol" "verdict"
printf '%-6s %12s %12s %10s %10s %9s %9s %6s\n' "/client" "" "" "cores" "cores" "" "" ""
for rate in $rates; do
  period_us=$((1000000 / rate))
  scenario="$work/dorm-rate-$rate.yaml"
  cat >"$scenario" <<EOF
name: dorm-rate-$rate
dialect: dorm
eio: 4
seed: 4242
users:
  generate: { count: $clients, room_size: 4 }
deadline: 2s
phases:
  - { name: arrive, duration: 2s, arrival_rate: $((clients / 2)) }
clients:
  - name: chatter
    flow:
      - join_room
      - expect: { event: last_data, within: 5s }
      - think: { min: 1s, max: $((1000000 + period_us))us }
      - loop:
          duration: ${seconds}s
          steps:
            - message: { size: 64 }
            - think: ${period_us}us
      - leave_room
thresholds:
  - violations == 0
EOF
  before=$(server_ticks)
  start=$(date +%s.%N)
  set +e
  "$bin" run "$scenario" --target "http://127.0.0.1:$port" --report-dir "$work/r$rate" --no-progress >"$work/run-$rate.log" 2>&1
  code=$?
  set -e
  end=$(date +%s.%N)
  after=$(server_ticks)
  line=$(python3 - "$work/r$rate/summary.json" "$before" "$after" "$ticks" "$start" "$end" "$seconds" "$code" "$cores" "$rate" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
before, after, ticks = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
wall = float(sys.argv[6]) - float(sys.argv[5])
seconds, code, cores, rate = float(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9]), sys.argv[10]
d, m = s["driver"], s["metrics"]
f = m.get("message.fanout", {}).get("co", {})
deliveries = f.get("count", 0)
server_cores = (after - before) / ticks / wall
driver_cores = d["cpu_s"] / wall
viol = s["violations"]["total"]
verdict = s["verdict"]["status"]
saturated = server_cores >= 0.9 * cores or driver_cores + server_cores >= 0.95 * cores
stop = code != 0 or viol > 0 or saturated
note = verdict + (" (saturated)" if saturated else "")
print(f"{rate:<6} {deliveries / seconds:12.0f} {d['cpu_s'] * 1e6 / max(deliveries, 1):12.2f} "
      f"{driver_cores:10.2f} {server_cores:10.2f} {f.get('p50_ms', 0):9.2f} {f.get('p99_ms', 0):9.2f} "
      f"{viol:6d}  {note}|{'stop' if stop else 'go'}")
PY
)
  echo "${line%|*}"
  if [ "${line##*|}" = stop ]; then
    break
  fi
  best="$rate msg/s per client: $(echo "$line" | awk '{print $2}') deliveries/s"
done
echo "highest sustained rate with zero violations: ${best:-none}"
