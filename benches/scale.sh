#!/usr/bin/env bash
# Scale benchmark on the e2e control plane (run on demand, not in CI):
#   benches/scale.sh [N...]        default: 1 100 1000
# For each N: N Penpots with their relation Secrets, next to 10,000 unrelated Secrets and
# ConfigMaps, reconciled by one release-built operator under its own ServiceAccount. Prints
# one table: time to all Ready, the kubectl floor (render output applied server-side),
# operator peak RSS and CPU, API requests by verb (API server audit log), reaction latency
# to a Secret update, idle writes and reconciles over 5 minutes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tests/harness/lib.sh
source "$root/tests/harness/lib.sh"
cd "$root"
sizes=("$@")
((${#sizes[@]})) || sizes=(1 100 1000)
idle_seconds="${PENPOT_BENCH_IDLE:-300}"
updates="${PENPOT_BENCH_UPDATES:-100}"

cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$root/target}/release/penpot-operator"
dir="$(mktemp -d "${TMPDIR:-/tmp}/penpot-bench.XXXXXX")"
cleanup() { [[ -f "$dir/operator.pid" ]] && kill "$(cat "$dir/operator.pid")" 2>/dev/null; "$root/tests/harness/cluster.sh" down "$dir" >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$root/tests/harness/cluster.sh" up "$dir"
# shellcheck disable=SC1091
source "$dir/env"
install_operator "$dir"

log "creating 10,000 unrelated Secrets and ConfigMaps"
python3 "$root/benches/gen.py" noise >"$dir/noise.yaml"
for ns in $(seq 0 9); do kubectl create namespace "noise-$ns" >/dev/null; done
t0=$SECONDS
kubectl apply --server-side -f "$dir/noise.yaml" >/dev/null
log "noise applied in $((SECONDS - t0)) s"

http_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
KUBECONFIG="$dir/operator.kubeconfig" POD_NAMESPACE=penpot-operator RUST_LOG=warn \
  # The benchmark's relation hosts are made up: checking them would measure DNS failures.
  "$bin" run --http-addr "127.0.0.1:$http_port" --concurrency 16 --relation-checks=false >"$dir/logs/operator.log" 2>&1 &
echo $! >"$dir/operator.pid"
pid=$(cat "$dir/operator.pid")
sleep 2

user="system:serviceaccount:penpot-operator:penpot-operator"
audit_lines() { wc -l <"$dir/logs/audit.log"; }
verbs_since() { # LINE
  tail -n +"$(($1 + 1))" "$dir/logs/audit.log" | python3 -c '
import json, sys, collections
c = collections.Counter()
for line in sys.stdin:
    e = json.loads(line)
    if e.get("user", {}).get("username") == sys.argv[1]:
        c[e["verb"]] += 1
print(" ".join(f"{k}={v}" for k, v in sorted(c.items())) or "none")' "$user"
}
wait_all_ready() { # NS N
  while true; do
    ready=$(kubectl -n "$1" get penpots -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)
    ((ready >= $2)) && return
    sleep 0.5
  done
}
wait_sts_ready() { # NS N
  while true; do
    ready=$(kubectl -n "$1" get statefulsets -o jsonpath='{range .items[*]}{.status.readyReplicas}{"\n"}{end}' | grep -c '^1$' || true)
    ((ready >= $2)) && return
    sleep 0.5
  done
}
cpu_seconds() { awk -v t="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / t}' "/proc/$pid/stat"; }
peak_rss_mib() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }

results="$dir/results.txt"
printf '| N | operator to all Ready (s) | kubectl floor (s) | ratio | peak RSS (MiB) | CPU (s, cumulative) | operator API requests |\n|---|---|---|---|---|---|---|\n' >"$results"
for n in "${sizes[@]}"; do
  ns="bench-$n"; floor_ns="floor-$n"
  # Every row measures from a clean slate: the previous row's pods would crowd the fake node.
  kubectl create namespace "$ns" >/dev/null
  kubectl create namespace "$floor_ns" >/dev/null
  python3 "$root/benches/gen.py" instances "$n" >"$dir/inputs-$n.yaml"
  line=$(audit_lines)
  start=$(date +%s.%N)
  kubectl -n "$ns" apply --server-side -f "$dir/inputs-$n.yaml" >/dev/null
  wait_all_ready "$ns" "$n"
  took=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
  api=$(verbs_since "$line")
  # The floor: what the operator applies, rendered offline and applied by kubectl at once.
  python3 "$root/benches/gen.py" render "$n" "$bin" "$dir/inputs-$n.yaml" "$floor_ns" >"$dir/floor-$n.yaml"
  fstart=$(date +%s.%N)
  kubectl -n "$floor_ns" apply --server-side -f "$dir/floor-$n.yaml" >/dev/null
  wait_sts_ready "$floor_ns" "$n"
  floor=$(python3 -c "import time; print(f'{time.time() - $fstart:.1f}')")
  ratio=$(python3 -c "print(f'{$took / max($floor, 0.1):.2f}')")
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$took" "$floor" "$ratio" "$(peak_rss_mib)" "$(cpu_seconds)" "$api" >>"$results"
  log "N=$n: ready in $took s (floor $floor s), RSS $(peak_rss_mib) MiB"
done

last="${sizes[-1]}"
log "reaction latency: $updates updates of a relation Secret in bench-$last"
python3 "$root/benches/gen.py" latency "bench-$last" "$updates" >"$dir/latency.txt"

# Let the last latency rollout finish before the idle window opens.
wait_all_ready "bench-$last" "$last"
sleep 10
log "idle for $idle_seconds s with every instance settled"
scrape() { curl -s "http://127.0.0.1:$http_port/metrics" | awk '/^penpot_operator_reconciles_total/ {print $2}'; }
line=$(audit_lines); before=$(scrape)
sleep "$idle_seconds"
after=$(scrape)
idle_writes=$(tail -n +"$((line + 1))" "$dir/logs/audit.log" | python3 -c '
import json, sys
print(sum(1 for l in sys.stdin if (e := json.loads(l)).get("user", {}).get("username") == sys.argv[1]
          and e["verb"] in ("create", "update", "patch", "delete")))' "$user")
per_minute=$(python3 -c "print(f'{($after - $before) * 60 / $idle_seconds:.1f}')")
idle_requests=$(verbs_since "$line")

{
  echo
  cat "$dir/latency.txt"
  echo
  echo "Idle ${idle_seconds} s with ${last} instances: ${idle_writes} API writes by the operator, ${per_minute} reconciles per minute (resync every 300 s)."
  echo "Operator API requests while idle: ${idle_requests}."
  echo "Operator peak RSS $(peak_rss_mib) MiB, CPU $(cpu_seconds) s in total."
} >>"$results"
echo
cat "$results"
out="${PENPOT_BENCH_OUT:-$root/target/bench-results.md}"
mkdir -p "$(dirname "$out")"
cp "$results" "$out"
log "results saved in $out"
