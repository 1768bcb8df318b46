#!/usr/bin/env bash
# The README's demo: a local control plane, the CRD, the operator, and the example Penpot
# reaching Ready. Stays up until Ctrl-C (or `make demo-down` from another shell).
#
# As root (what the real node needs) the pods really run: the real node (node.sh) takes every
# pod, the operator is installed by its Helm chart from its locally built image, and the
# Penpot runs the STAND-IN images of images.sh (Penpot's JVM and Node builds cannot be made
# here). Otherwise, or with PENPOT_DEMO_NODE=off, kwok fakes the pods and the operator binary
# runs on this host under its own ServiceAccount and ClusterRole.
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
    "$here/node.sh" down "$dir" 2>/dev/null || true
    "$here/cluster.sh" down "$dir"
    exit 0
    ;;
esac

log "building penpot-operator"
cargo build --quiet
# Wherever cargo puts it (CARGO_TARGET_DIR, .cargo/config.toml): ask cargo.
bin="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/penpot-operator"
"$here/node.sh" down "$dir" >/dev/null 2>&1 || true
"$here/cluster.sh" down "$dir" >/dev/null 2>&1 || true
rm -rf "$dir"
real_node=""
[[ "$(id -u)" == 0 && "${PENPOT_DEMO_NODE:-}" != off ]] && real_node=1
trap '"$0" down' EXIT INT TERM
"$here/cluster.sh" up "$dir"
if [[ -n "$real_node" ]]; then
  "$here/deps.sh"
  "$here/node.sh" up "$dir"
fi
# shellcheck disable=SC1091
source "$dir/env"

if [[ -n "$real_node" ]]; then
  # Every pod on the real node: its taint off, kwok's node cordoned.
  kubectl taint node "$PENPOT_E2E_NODE" penpot-operator.dev/real-node- >/dev/null
  kubectl cordon kwok-node-0 >/dev/null
  "$here/images.sh" penpot "$PENPOT_E2E_CONTAINERD" "$bin" 2.17.0
  version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
  log "installing the operator with its Helm chart"
  helm install penpot-operator deploy/helm/penpot-operator --namespace penpot-operator --create-namespace \
    --set "image.tag=$version,image.pullPolicy=Never,logFormat=text" --wait --timeout 180s >/dev/null
  operator_log="kubectl -n penpot-operator logs deployment/penpot-operator"
else
  install_operator "$dir"
  KUBECONFIG="$dir/operator.kubeconfig" POD_NAMESPACE=penpot-operator \
    "$bin" run --leader-elect --http-addr 127.0.0.1:0 >"$dir/logs/operator.log" 2>&1 &
  echo $! >"$dir/operator.pid"
  operator_log="$dir/logs/operator.log"
fi

kubectl create namespace penpot-demo >/dev/null
kubectl -n penpot-demo apply -f docs/examples/penpot.yaml
log "waiting for the Penpot to become Ready"
kubectl -n penpot-demo wait --for=condition=Ready penpot/penpot --timeout=180s
kubectl -n penpot-demo get penpot,statefulset,pods,services,ingress
if [[ -n "$real_node" ]]; then
  ip="$(kubectl -n penpot-demo get service penpot -o jsonpath='{.spec.clusterIP}')"
  cat <<MSG

The pods run on the real node (Penpot's images are stand-ins; docs/development.md):
  curl http://$ip:8080/js/config.js
  kubectl -n penpot-demo exec penpot-0 -c penpot -- /operator/bin/pebble services
  kubectl -n penpot-demo logs penpot-0 -c penpot
MSG
fi
cat <<MSG

The demo is running. In another shell:
  source $dir/env
  kubectl -n penpot-demo get penpot -o wide
  kubectl -n penpot-demo describe penpot penpot
  kubectl -n penpot-demo get secret penpot-config -o jsonpath='{.data.001-penpot\.yaml}' | base64 -d
  $bin render -f docs/examples/penpot.yaml
Operator log: $operator_log    Control plane logs: $dir/logs/
Press Ctrl-C (or run 'make demo-down') to stop.
MSG
if [[ -n "$real_node" ]]; then
  while kubectl -n penpot-operator get deployment penpot-operator >/dev/null 2>&1; do sleep 5; done
  log "the operator's Deployment is gone"
else
  while kill -0 "$(cat "$dir/operator.pid")" 2>/dev/null; do sleep 2; done
  log "the operator exited; see $operator_log"
fi
