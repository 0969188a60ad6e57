#!/usr/bin/env bash
# Benchmark (not a test): the highest sustained fan-out rate with zero violations, found by
# `roomrig capacity` (README, "capacity"): scenarios/dorm-throughput.yaml (2,000 clients in
# rooms of 4, 4 messages per client per second for 30 s at load ×1) with each client's send
# rate stepped up from ×1 by ×2 and bisected to 5 %. Each step is a full run against a fresh
# reference server in its own process, whose CPU the step table shows beside the driver's.
# Extra arguments go to `roomrig capacity` (e.g. --slo "message.fanout.p99 < 250ms",
# --max 4, --report-dir DIR).
#   bench/dorm-rate.sh                         # builds in release mode first
#   BIN=path/to/roomrig bench/dorm-rate.sh     # another build (e.g. to compare two commits)
#   SECONDS_PER_STEP=20 bench/dorm-rate.sh     # each step's sending loop (default: the scenario's 30 s)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
fi
bin=${BIN:-target/release/roomrig}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
set +e
"$bin" capacity scenarios/dorm-throughput.yaml --vary rate \
  ${SECONDS_PER_STEP:+--set "clients[0].flow[3].loop.duration=${SECONDS_PER_STEP}s"} "$@"
code=$?
set -e
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(×1 = 4 messages per client per second = 32,000 deliveries/s; ×2 = 8 = 64,000/s)"
exit $code
