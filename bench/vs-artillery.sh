#!/usr/bin/env bash
# Benchmark (not a test): roomrig side by side with Artillery 2.0.21 on the same workloads, each
# against a fresh reference server in its own process: dorm (Socket.IO; Artillery's socketio
# engine) and voice (plain WebSocket, md5-signed JSON frames; Artillery's ws engine, signing
# every frame in bench/artillery/voice.js). Per workload:
#   (1) capacity: clients connect at RATE/s, join their room of 4 and stay HOLD_S seconds;
#   (2) throughput: N clients in rooms of 4, one 64-byte message per client per second, N
#       stepped through STEPS until each tool saturates (dorm: `message`; voice: a signed
#       `send_topic_msg`, which reaches the 3 other members; voice clients also ping every 15 s,
#       the seed's interval the server advertises, and answer each `exit_room`).
# Prints one table (and writes it to OUT/table.md): clients held, messages per second, generator
# CPU per message, clients per core, generator RSS, fan-out p50/p99, errors.
#
#   bench/vs-artillery.sh            # full run, about 20 minutes
#   QUICK=1 bench/vs-artillery.sh    # smoke run, about 2 minutes
#
# Settings (environment): WORKLOADS ("dorm voice"), TOOLS ("roomrig artillery"), CAP_CLIENTS (19000; one generator
# process must hold them under the 20,000 open-file limit), HOLD_S (20), STEPS ("2000 5000 10000
# 15000 19000"), STEP_S (30: seconds every client of a step sends after the last one arrived),
# RATE (500 arrivals/s), P99_LIMIT_MS (1000), MIN_RATE_PCT (90), CAP_MAX_LATENESS_MS (1000:
# roomrig's --max-lateness-ms in the capacity run), OUT (reports/vs-artillery-DATE).
# A step saturates a tool when it has errors, holds fewer clients than planned, achieves less
# than MIN_RATE_PCT of the intended rate, its fan-out p99 exceeds P99_LIMIT_MS, or (roomrig) its
# verdict is `invalid` (it fell behind its schedule); the tool then stops stepping.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

if [[ ${QUICK:-0} == 1 ]]; then
    : "${CAP_CLIENTS:=1000}" "${HOLD_S:=3}" "${STEPS:=500 1000}" "${STEP_S:=6}"
fi
WORKLOADS=${WORKLOADS:-dorm voice}
TOOLS=${TOOLS:-roomrig artillery}
CAP_CLIENTS=${CAP_CLIENTS:-19000}
HOLD_S=${HOLD_S:-20}
STEPS=${STEPS-2000 5000 10000 15000 19000} # STEPS="" runs the capacity part only
STEP_S=${STEP_S:-30}
RATE=${RATE:-500}
P99_LIMIT_MS=${P99_LIMIT_MS:-1000}
MIN_RATE_PCT=${MIN_RATE_PCT:-90}
CAP_MAX_LATENESS_MS=${CAP_MAX_LATENESS_MS:-1000}
out=${OUT:-reports/vs-artillery-$(date -u +%Y%m%dT%H%M%SZ)}
ARTILLERY_VERSION=2.0.21
helper=(python3 "$root/bench/vs_artillery.py")

for n in $CAP_CLIENTS $STEPS; do
    if ((n > 19000)); then
        echo "at most 19,000 clients per run: one process holds them under the 20,000 open-file limit" >&2
        exit 2
    fi
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
rows=$out/rows.jsonl
: >"$rows"

echo "== building roomrig (release) and installing Artillery $ARTILLERY_VERSION =="
cargo build --release --quiet
bin=$root/target/release/roomrig
art=$root/bench/artillery
# npm ci from the committed lockfile, again whenever the lockfile is newer than the install.
if [[ ! -f $art/node_modules/.package-lock.json || $art/package-lock.json -nt $art/node_modules/.package-lock.json ]]; then
    (cd "$art" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
installed=$(node -p "require('$art/node_modules/artillery/package.json').version")
if [[ $installed != "$ARTILLERY_VERSION" ]]; then
    echo "bench/artillery installed Artillery $installed, expected $ARTILLERY_VERSION" >&2
    exit 1
fi
export ARTILLERY_DISABLE_TELEMETRY=true
if (($(nproc) > 2)); then
    echo "note: Artillery runs $(($(nproc) - 1)) worker threads here; fan-out latency counts only receipts in the sender's worker" >&2
fi

server_pid=
mon_pid=
cleanup() {
    [[ -n $mon_pid ]] && kill -TERM "$mon_pid" 2>/dev/null && wait "$mon_pid" 2>/dev/null
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server DIR N WORKLOAD: a fresh reference server of that dialect with N generated users
# (rooms of 4), its default heartbeat; sets port.
start_server() {
    local dir=$1 n=$2 wl=$3
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    : >"$dir/server.log"
    "$bin" serve --dialect "$wl" --listen "127.0.0.1:$port" --generate-users "$n" --room-size 4 \
        --write-users "$dir/users.json" >"$dir/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 300); do
        grep -q '^listening on' "$dir/server.log" && return 0
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "the reference server did not start (see $dir/server.log)" >&2
    exit 1
}

# stop_server: prints the server's CPU seconds, then stops it.
stop_server() {
    awk -v t="$(getconf CLK_TCK)" '{printf "%.2f", ($14+$15)/t}' "/proc/$server_pid/stat"
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

# artillery_phases N: arrivals at RATE/s with rampTo (a plain arrivalRate phase keeps a core
# busy while it runs); the remainder of N / RATE in a two-second ramp.
artillery_phases() {
    local n=$1 full rem
    full=$((n / RATE)) rem=$((n % RATE))
    ((full > 0)) && echo "    - { name: arrive, duration: $full, arrivalRate: $RATE, rampTo: $RATE }"
    ((rem > 0)) && echo "    - { name: arrive-rest, duration: 2, arrivalRate: $((rem / 2)), rampTo: $((rem - rem / 2)) }"
    return 0
}

# write_dorm_scenarios DIR MODE N HOLD K: DIR/artillery.yaml and DIR/roomrig.yaml for one run.
# roomrig keeps its schedule (open loop), so a fixed think covers the ramp:
#   capacity: join, stay HOLD s (ramp + HOLD_S), leave;
#   throughput: join, wait 1-2 s, K messages at 1/s (ramp + STEP_S), leave.
# Artillery waits at a barrier until every client has joined:
#   capacity: join, barrier + HOLD_S, leave;  throughput: join, barrier, STEP_S messages, leave.
write_dorm_scenarios() {
    local dir=$1 mode=$2 n=$3 hold=$4 k=$5 ramp_ms
    ramp_ms=$(((n * 1000 + RATE - 1) / RATE))
    {
        cat <<EOF
# generated by bench/vs-artillery.sh: $mode, $n clients
config:
  target: http://127.0.0.1:$port
  processor: $root/bench/artillery/dorm.js
  socketio: { transports: [websocket] }   # as roomrig: no long-polling first
  payload: { path: $dir/users.csv, fields: [token], order: sequence }
  phases:
$(artillery_phases "$n")
scenarios:
  - name: dorm-$mode
    engine: socketio
    flow:
      - function: listen
      - emit: { channel: join_room, data: { token: "{{ token }}" } }
EOF
        # barrier (bench/artillery/dorm.js): wait until all clients have joined, then
        # BENCH_HOLD_S more; Artillery's arrivals can lag its phases (see the README).
        echo "      - function: barrier"
        if [[ $mode == throughput ]]; then
            cat <<EOF
      - function: spread
      - loop:
          - function: stamp
          - emit: { channel: message, data: { token: "{{ token }}", message: "{{ text }}" } }
          - think: 1
        count: $STEP_S
EOF
        fi
        echo '      - emit: { channel: leave_room, data: { token: "{{ token }}" } }'
    } >"$dir/artillery.yaml"
    {
        cat <<EOF
# generated by bench/vs-artillery.sh: $mode, $n clients
name: vs-artillery-$mode-$n
dialect: dorm
eio: 4
seed: $n
users:
  generate: { count: $n, room_size: 4 }
deadline: 2s
phases:
  - { name: arrive, duration: ${ramp_ms}ms, arrival_rate: $RATE }
clients:
  - name: member
    flow:
      - join_room
      - expect: { event: last_data, within: 10s }
EOF
        if [[ $mode == capacity ]]; then
            echo "      - think: ${hold}s"
        else
            cat <<EOF
      - think: { min: 1s, max: 2s }
      - loop:
          count: $k
          steps:
            - message: { size: 64 }
            - think: 1s
EOF
        fi
        echo "      - leave_room"
    } >"$dir/roomrig.yaml"
}

# write_voice_scenarios DIR MODE N HOLD K: the same runs on voice. Artillery's ws engine opens
# the WebSocket of the user's sid; bench/artillery/voice.js waits for its online_token, enters
# the user's channel and signs every frame. roomrig's flow ends with a clean close (voice has
# no leave action); so does Artillery's.
write_voice_scenarios() {
    local dir=$1 mode=$2 n=$3 hold=$4 k=$5 ramp_ms
    ramp_ms=$(((n * 1000 + RATE - 1) / RATE))
    {
        cat <<EOF
# generated by bench/vs-artillery.sh: voice $mode, $n clients
config:
  target: ws://127.0.0.1:$port
  processor: $root/bench/artillery/voice.js
  payload: { path: $dir/users.csv, fields: [token, room, user_id], order: sequence }
  phases:
$(artillery_phases "$n")
scenarios:
  - name: voice-$mode
    engine: ws
    flow:
      - connect: "ws://127.0.0.1:$port/?sid={{ token }}"
      - function: listen
      - function: enterRoom
      - function: barrier
EOF
        if [[ $mode == throughput ]]; then
            cat <<EOF
      - function: spread
      - loop:
          - function: sendTopic
          - think: 1
        count: $STEP_S
EOF
        fi
        echo "      - function: finish"
    } >"$dir/artillery.yaml"
    {
        cat <<EOF
# generated by bench/vs-artillery.sh: voice $mode, $n clients
name: vs-artillery-voice-$mode-$n
dialect: voice
seed: $n
users:
  generate: { count: $n, room_size: 4 }
deadline: 2s
phases:
  - { name: arrive, duration: ${ramp_ms}ms, arrival_rate: $RATE }
clients:
  - name: member
    flow:
      - enter_room
      - expect: { event: enter_room, within: 10s }
EOF
        if [[ $mode == capacity ]]; then
            echo "      - think: ${hold}s"
        else
            cat <<EOF
      - think: { min: 1s, max: 2s }
      - loop:
          count: $k
          steps:
            - send_topic_msg: { size: 64 }
            - think: 1s
EOF
        fi
    } >"$dir/roomrig.yaml"
}

# run_one WORKLOAD TOOL MODE N: one run against a fresh server; appends a row; returns 1 if
# saturated.
run_one() {
    local wl=$1 tool=$2 mode=$3 n=$4 dir ramp_s hold=0 k=0 limit server_cpu saturated
    dir=$out/$wl-$mode-$n-$tool
    mkdir -p "$dir"
    ramp_s=$(((n + RATE - 1) / RATE))
    # Artillery's barrier gives up waiting for joins after 5 ramps + 60 s.
    local barrier_s=$((5 * ramp_s + 60))
    if [[ $mode == capacity ]]; then
        hold=$((ramp_s + HOLD_S)) # every client stays until the last one has been in HOLD_S
        limit=$((barrier_s + HOLD_S + 120))
    else
        k=$((ramp_s + STEP_S)) # every client sends for STEP_S after the last one arrived
        limit=$((barrier_s + STEP_S + 120))
    fi
    start_server "$dir" "$n" "$wl"
    local fields=token
    [[ $wl == voice ]] && fields=token,room_id,user_id
    "${helper[@]}" csv "$dir/users.json" "$n" --fields "$fields" >"$dir/users.csv"
    "write_${wl}_scenarios" "$dir" "$mode" "$n" "$hold" "$k"
    local cmd report
    if [[ $tool == roomrig ]]; then
        cmd=("$bin" run "$dir/roomrig.yaml" --target "http://127.0.0.1:$port"
            --report-dir "$dir/report" --no-progress)
        # capacity counts clients held, not timing: allow joins to be late by CAP_MAX_LATENESS_MS
        # (the run stops only at 10 times that), as when the server accepts slowly
        if [[ $mode == capacity ]]; then cmd+=(--max-lateness-ms "$CAP_MAX_LATENESS_MS"); fi
        report=$dir/report/summary.json
    else
        cmd=(env BENCH_CLIENTS="$n" BENCH_HOLD_S="$([[ $mode == capacity ]] && echo "$HOLD_S" || echo 0)"
            BENCH_BARRIER_S="$barrier_s" "$art/node_modules/.bin/artillery" run
            --output "$dir/artillery-report.json" "$dir/artillery.yaml")
        report=$dir/artillery-report.json
        if [[ $mode == throughput ]]; then k=$STEP_S; fi # messages per Artillery client
    fi
    printf '%-5s %-10s %-10s %6d clients ... ' "$wl" "$mode" "$tool" "$n"
    "${helper[@]}" monitor --out "$dir/monitor.json" --log "$dir/$tool.log" --port "$port" \
        --timeout "$limit" -- "${cmd[@]}" &
    mon_pid=$!
    wait "$mon_pid" || true
    mon_pid=
    server_cpu=$(stop_server)
    "${helper[@]}" row --workload "$wl" --tool "$tool" --mode "$mode" --clients "$n" --messages "$k" \
        --monitor "$dir/monitor.json" --report "$report" --server-cpu "$server_cpu" \
        --min-rate "0.$MIN_RATE_PCT" --p99-limit-ms "$P99_LIMIT_MS" | tee -a "$rows" >"$dir/row.json"
    python3 - "$dir/row.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rate = f"{r['achieved_rate']:,.0f} msgs/s, " if r["mode"] == "throughput" else ""
p = "" if r["p99_ms"] is None else f"p50/p99 {r['p50_ms']:.2f}/{r['p99_ms']:.2f} ms, "
print(f"held {r['held']:,}, {rate}{p}CPU {r['load_cpu_s']:.1f} s ({r['gen_cpu_s']:.1f} s with start-up), RSS {r['gen_rss_mb']:.0f} MB, "
      f"errors {r['errors']}, server CPU {r['server_cpu_s']:.1f} s"
      + (f"  SATURATED: {r['saturated']}" if r["saturated"] else ""))
PY
    saturated=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["saturated"])' "$dir/row.json")
    [[ -z $saturated ]]
}

echo "== results in $out =="
for wl in $WORKLOADS; do
    echo "== $wl (1) connection capacity: up to $CAP_CLIENTS clients at $RATE/s, join, hold ${HOLD_S}s =="
    for tool in $TOOLS; do
        run_one "$wl" "$tool" capacity "$CAP_CLIENTS" || true
    done

    [[ -n $STEPS ]] && echo "== $wl (2) throughput: 1 message per client per second, ${STEP_S}s with all clients, steps: $STEPS =="
    declare -A done_tool=()
    for n in $STEPS; do
        for tool in $TOOLS; do
            [[ -n ${done_tool[$tool]:-} ]] && continue
            run_one "$wl" "$tool" throughput "$n" || done_tool[$tool]=1
        done
    done
    unset done_tool
done

{
    echo "roomrig $("$bin" --version | awk '{print $2}') vs Artillery $ARTILLERY_VERSION (Node $(node --version)), $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -r), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    "${helper[@]}" table "$rows"
} | tee "$out/table.md"
