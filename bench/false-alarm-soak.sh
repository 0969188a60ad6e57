#!/usr/bin/env bash
# False-alarm soak: the healthy reference server under loads that fill both cores, several
# seeds each. The server is healthy, so every violation is a false alarm of the judge; the
# script prints one line per run and exits 1 if any run had one.
#
#   bench/false-alarm-soak.sh                 # seeds 1..3 of each scenario, ~5 minutes
#   SEEDS="1 2 3 4 5" bench/false-alarm-soak.sh scenarios/soak/dorm-soak.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"1 2 3"}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(scenarios/soak/dorm-soak.yaml scenarios/soak/lobby-soak.yaml)
cargo build --release --quiet
out=reports/false-alarm-soak-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
bad=0
printf '%-28s %5s %5s %9s %11s %10s %10s %s\n' scenario seed exit clients deliveries violations lateness runtime.lag
for scenario in "${SCENARIOS[@]}"; do
  for seed in $SEEDS; do
    dir="$out/$(basename "$scenario" .yaml)-seed$seed"
    set +e
    target/release/roomrig run "$scenario" --seed "$seed" --no-progress --report-dir "$dir" \
      > "$dir.log" 2>&1
    code=$?
    set -e
    python3 - "$dir/summary.json" "$scenario" "$seed" "$code" <<'PY'
import json, sys
path, scenario, seed, code = sys.argv[1:]
s = json.load(open(path))
m = s["metrics"]
deliveries = sum(v["co"]["count"] for k, v in m.items() if k.endswith(".fanout") or k.endswith(".after-fault"))
clients = s.get("clients", {}).get("connected", "?")
p99 = lambda k: m.get(k, {}).get("co", {}).get("p99_ms", float("nan"))
print(f'{scenario.split("/")[-1]:<28} {seed:>5} {code:>5} {clients:>9} {deliveries:>11} '
      f'{s["violations"]["total"]:>10} {p99("send.lateness"):>8.1f}ms {p99("runtime.lag"):>8.1f}ms')
for rule, t in s["violations"]["by_rule"].items():
    print(f'    {rule} x{t["count"]}: {t["examples"][0]["expected"]} / {t["examples"][0]["received"]}')
PY
    total=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["violations"]["total"])' "$dir/summary.json")
    [ "$total" = 0 ] || bad=1
  done
done
echo "reports in $out"
exit $bad
