# Shared settings for the e2e harness scripts; sourced, not run.
# The cache lives outside the checkout so fresh clones on one machine share it.
PENPOT_E2E_CACHE="${PENPOT_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/penpot-operator-e2e}"
PENPOT_E2E_BIN="$PENPOT_E2E_CACHE/bin"
PENPOT_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PENPOT_E2E_CACHE PENPOT_E2E_BIN

# operator_kubeconfig NAMESPACE SERVICEACCOUNT OUT: a copy of $KUBECONFIG that authenticates
# with only that ServiceAccount's token, so the operator gets exactly its RBAC.
operator_kubeconfig() {
  local token
  token="$(kubectl -n "$1" create token "$2" --duration=24h)"
  cp "$KUBECONFIG" "$3"
  kubectl --kubeconfig "$3" config set-credentials "$2" --token="$token" >/dev/null
  kubectl --kubeconfig "$3" config set-context e2e --user="$2" >/dev/null
}

# install_operator DIR: the CRDs, the operator's namespace and RBAC, and DIR/operator.kubeconfig
# holding only its ServiceAccount token (for the demo and the benchmark).
install_operator() {
  kubectl apply --server-side -f "$PENPOT_REPO/crds/penpot.yaml" >/dev/null
  kubectl wait --for=condition=Established -f "$PENPOT_REPO/crds/penpot.yaml" --timeout=60s >/dev/null
  kubectl create namespace penpot-operator >/dev/null
  kubectl apply -f "$PENPOT_REPO/deploy/rbac/" >/dev/null
  operator_kubeconfig penpot-operator penpot-operator "$1/operator.kubeconfig"
}

# A TCP port nobody listens on right now, for the control plane's and the node's listeners.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# reap PIDFILE [TENTHS]: waits up to TENTHS tenths of a second (default 100) for the process
# PIDFILE names to exit, kills it only if it still runs (an exited one's pid may belong to
# another process by now), and removes PIDFILE.
reap() {
  local pid tenths="${2:-100}"
  pid=$(cat "$1")
  for _ in $(seq "$tenths"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -f "$1"
}

log() { printf '[harness %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
