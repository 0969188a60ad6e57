#!/usr/bin/env bash
# Resource soak: steady dorm and lobby churn against two separate `roomrig serve` processes
# for DURATION (30m by default), sampling RSS, open file descriptors and CPU time of all four
# processes (two drivers, two servers) every INTERVAL seconds. It prints, for each process, the
# median over the first window after warm-up and over the last window, and exits 1 if either
# grew by more than the tolerance (10% + 8 MB of RSS, 10% + 16 fds), or if a run had a
# violation. The last window ends when the arrivals end (the drain after it is not compared).
# Samples go to reports/resource-soak-*/samples.csv.
#
#   bench/resource-soak.sh                          # 30 minutes
#   DURATION=5m WARMUP=60 bench/resource-soak.sh    # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30m}
INTERVAL=${INTERVAL:-10}
WARMUP=${WARMUP:-300}   # seconds: a client lives ~1 minute, the population is steady well before
WINDOW=${WINDOW:-300}   # seconds compared at each end
BIN=${BIN:-target/release/roomrig}
[ -n "${BIN_GIVEN:-}" ] || cargo build --release --quiet --bin roomrig
out=reports/resource-soak-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dorm_port=$(free_port); lobby_port=$(free_port)
dorm_users=40000; lobby_users=10000
"$BIN" serve --dialect dorm --listen 127.0.0.1:$dorm_port --generate-users $dorm_users \
  > "$out/dorm-server.log" 2>&1 &
dorm_server=$!
"$BIN" serve --dialect lobby --eio 3 --listen 127.0.0.1:$lobby_port --generate-users $lobby_users \
  > "$out/lobby-server.log" 2>&1 &
lobby_server=$!
trap 'kill $dorm_server $lobby_server 2>/dev/null || true' EXIT
sleep 1
export SOAK_DURATION=$DURATION SOAK_DORM_USERS=$dorm_users SOAK_LOBBY_USERS=$lobby_users
"$BIN" run scenarios/soak/dorm-resources.yaml --target http://127.0.0.1:$dorm_port \
  --no-progress --report-dir "$out/dorm" > "$out/dorm-driver.log" 2>&1 &
dorm_driver=$!
"$BIN" run scenarios/soak/lobby-resources.yaml --target http://127.0.0.1:$lobby_port --eio 3 \
  --no-progress --report-dir "$out/lobby" > "$out/lobby-driver.log" 2>&1 &
lobby_driver=$!

# One line per process per sample: seconds since start, process, RSS KiB, open fds, CPU s.
ticks=$(getconf CLK_TCK)
sample() { # name pid t
  local rss fds cpu
  rss=$(awk '/^VmRSS:/ {print $2}' /proc/$2/status 2>/dev/null) || return 0
  fds=$(ls /proc/$2/fd 2>/dev/null | wc -l)
  cpu=$(awk -v t=$ticks '{printf "%.2f", ($14+$15)/t}' /proc/$2/stat 2>/dev/null) || return 0
  echo "$3,$1,$rss,$fds,$cpu" >> "$out/samples.csv"
}
echo "t_s,process,rss_kib,fds,cpu_s" > "$out/samples.csv"
start=$(date +%s)
while kill -0 $dorm_driver 2>/dev/null || kill -0 $lobby_driver 2>/dev/null; do
  t=$(( $(date +%s) - start ))
  sample dorm-driver $dorm_driver $t; sample lobby-driver $lobby_driver $t
  sample dorm-server $dorm_server $t; sample lobby-server $lobby_server $t
  sleep "$INTERVAL"
done
set +e
wait $dorm_driver; dorm_code=$?
wait $lobby_driver; lobby_code=$?
set -e
python3 - "$out" "$WARMUP" "$WINDOW" "$dorm_code" "$lobby_code" "$DURATION" <<'PY'
import csv, json, statistics, sys
out, warmup, window, dorm_code, lobby_code = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
# The load is steady until the arrivals end; the drain after it (clients finishing) is not compared.
units = {"s": 1, "m": 60, "h": 3600}
steady_end = int(sys.argv[6][:-1]) * units[sys.argv[6][-1]]
rows = list(csv.DictReader(open(f"{out}/samples.csv")))
bad = False
print(f"{'process':<13} {'RSS MB after warm-up':>20} {'RSS MB at end':>14} {'peak':>7} "
      f"{'fds after warm-up':>18} {'fds at end':>11} {'CPU s':>7}  verdict")
for name in ["dorm-driver", "dorm-server", "lobby-driver", "lobby-server"]:
    s = [r for r in rows if r["process"] == name]
    end = min(max(int(r["t_s"]) for r in s), steady_end)
    early = [r for r in s if warmup <= int(r["t_s"]) < warmup + window]
    late = [r for r in s if end - window < int(r["t_s"]) <= end]
    if not early or not late or end < warmup + 2 * window:
        print(f"{name:<13} too short to judge (ran {end} s)"); continue
    med = lambda rs, k: statistics.median(float(r[k]) for r in rs)
    rss0, rss1 = med(early, "rss_kib") / 1024, med(late, "rss_kib") / 1024
    fd0, fd1 = med(early, "fds"), med(late, "fds")
    peak = max(float(r["rss_kib"]) for r in s) / 1024
    grew = rss1 > rss0 * 1.10 + 8 or fd1 > fd0 * 1.10 + 16
    bad |= grew
    print(f"{name:<13} {rss0:>20.1f} {rss1:>14.1f} {peak:>7.1f} {fd0:>18.0f} {fd1:>11.0f} "
          f"{float(s[-1]['cpu_s']):>7.1f}  {'GREW' if grew else 'flat'}")
for d, code in (("dorm", dorm_code), ("lobby", lobby_code)):
    try:
        sm = json.load(open(f"{out}/{d}/summary.json"))
        v = sm["violations"]
        print(f"{d}: exit {code}, clients {sm.get('clients', {}).get('connected', '?')}, "
              f"violations {v['total']} {dict((k, t['count']) for k, t in v['by_rule'].items())}")
        bad |= v["total"] != 0
    except Exception as e:
        print(f"{d}: exit {code}, no summary ({e})"); bad = True
sys.exit(1 if bad else 0)
PY
echo "samples in $out/samples.csv"
