#!/usr/bin/env bash
# The README's demo: a local control plane, the CRD, the operator running under its own
# ServiceAccount and ClusterRole, and the example Penpot reaching Ready. Stays up until
# Ctrl-C (or `make demo-down` from another shell).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=tests/harness/lib.sh
source "$here/lib.sh"
cd "$root"
dir="$PENPOT_E2E_CACHE/demo"

case "${1:-up}" in
  down)
    [[ -f "$dir/operator.pid" ]] && kill "$(cat "$dir/operator.pid")" 2>/dev/null || true
    "$here/cluster.sh" down "$dir"
    exit 0
    ;;
esac

log "building penpot-operator"
cargo build --quiet
# Wherever cargo puts it (CARGO_TARGET_DIR, .cargo/config.toml): ask cargo.
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/penpot-operator"
"$here/cluster.sh" down "$dir" >/dev/null 2>&1 || true
rm -rf "$dir"
"$here/cluster.sh" up "$dir"
# shellcheck disable=SC1091
source "$dir/env"

install_operator "$dir"

KUBECONFIG="$dir/operator.kubeconfig" POD_NAMESPACE=penpot-operator \
  "$bin" run --leader-elect --http-addr 127.0.0.1:0 >"$dir/logs/operator.log" 2>&1 &
echo $! >"$dir/operator.pid"
trap '"$0" down' EXIT INT TERM

kubectl create namespace penpot-demo >/dev/null
kubectl -n penpot-demo apply -f docs/examples/penpot.yaml
log "waiting for the Penpot to become Ready"
kubectl -n penpot-demo wait --for=condition=Ready penpot/penpot --timeout=180s
kubectl -n penpot-demo get penpot,statefulset,pods,services,ingress
cat <<MSG

The demo is running. In another shell:
  source $dir/env
  kubectl -n penpot-demo get penpot -o wide
  kubectl -n penpot-demo describe penpot penpot
  kubectl -n penpot-demo get secret penpot-config -o jsonpath='{.data.001-penpot\.yaml}' | base64 -d
  $bin render -f docs/examples/penpot.yaml
Operator log: $dir/logs/operator.log    Control plane logs: $dir/logs/
Press Ctrl-C (or run 'make demo-down') to stop.
MSG
while kill -0 "$(cat "$dir/operator.pid")" 2>/dev/null; do sleep 2; done
log "the operator exited; see $dir/logs/operator.log"
