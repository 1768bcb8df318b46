#!/usr/bin/env bash
# Starts and stops the e2e control plane on this host: etcd, kube-apiserver (RBAC, service
# account tokens, audit log), kube-controller-manager, kube-scheduler and kwok with one fake
# Node. Everything lives in one run directory:
#
#   cluster.sh up DIR     start (builds the binaries first if they are not cached)
#   cluster.sh down DIR   stop every process started by `up`
#
# The API server also listens on the host's first global IPv4 address and advertises it, so
# the `kubernetes` Service (10.96.0.1) reaches it from pods on the real node (node.sh): the
# operator in a pod, CoreDNS. Without such an address it stays on 127.0.0.1 (kwok only).
#
# `up` writes DIR/env (KUBECONFIG, PATH with the built binaries, audit log path) for tests
# and humans to source. Logs: DIR/logs/<component>.log.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tests/harness/lib.sh
source "$here/lib.sh"

start() { # NAME COMMAND...
  local name="$1"
  shift
  "$@" >"$dir/logs/$name.log" 2>&1 &
  echo "$!" >"$dir/pids/$name"
}

# Like `start`, but restarts the process whenever it exits, as the kubelet restarts static
# pods: kube-scheduler exits on purpose when a relist after etcd compaction leaves its cache
# inconsistent ("Scheduler cache is corrupted"), and a real control plane brings it back.
# DIR/pids/NAME always names the running child; DIR/pids/NAME.supervisor the loop.
supervise() { # NAME COMMAND...
  local name="$1"
  shift
  (
    child=""
    trap '[[ -n "$child" ]] && kill "$child" 2>/dev/null; exit 0' TERM
    while :; do
      "$@" &
      child=$!
      echo "$child" >"$dir/pids/$name"
      status=0
      wait "$child" || status=$?
      echo "[harness $(date +%T)] $name exited with status $status; restarting in 1 s"
      echo "$(date +%T) $name $status" >>"$dir/logs/restarts"
      sleep 1
    done
    # The loop and every child write to the log. An inherited stdout would keep the caller's
    # pipe open, and `cluster.sh up | tail` would never end.
  ) </dev/null >>"$dir/logs/$name.log" 2>&1 &
  echo "$!" >"$dir/pids/$name.supervisor"
}

wait_for() { # DESCRIPTION SECONDS COMMAND...
  local what="$1" deadline=$((SECONDS + $2))
  shift 2
  while ((SECONDS < deadline)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "$what did not come up in time; see $dir/logs"
}

pki() {
  local p="$dir/pki"
  mkdir -p "$p"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=penpot-e2e-ca" \
    -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$p/apiserver.key" -out "$p/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,%sDNS:localhost' "${host_ip:+IP:$host_ip,}" >"$p/san.ext"
  printf ',DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' >>"$p/san.ext"
  openssl x509 -req -in "$p/apiserver.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 30 \
    -extfile "$p/san.ext" -out "$p/apiserver.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=e2e-admin" -keyout "$p/admin.key" -out "$p/admin.csr" 2>/dev/null
  # Extensions make these X.509 v3 certificates; rustls refuses v1.
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n' >"$p/client.ext"
  openssl x509 -req -in "$p/admin.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 30 \
    -extfile "$p/client.ext" -out "$p/admin.crt" 2>/dev/null
  # kwok's HTTPS server stands in for the kubelet (exec, logs); the API server dials it.
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kwok-kubelet" -keyout "$p/kubelet.key" -out "$p/kubelet.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$p/kubelet.ext"
  openssl x509 -req -in "$p/kubelet.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial -days 30 \
    -extfile "$p/kubelet.ext" -out "$p/kubelet.crt" 2>/dev/null
  openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
  openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
}

kubeconfig() { # FILE
  local k="$PENPOT_E2E_BIN/kubectl --kubeconfig=$1"
  $k config set-cluster e2e --server="https://127.0.0.1:$apiserver_port" --certificate-authority="$dir/pki/ca.crt" --embed-certs=true >/dev/null
  $k config set-credentials admin --client-certificate="$dir/pki/admin.crt" --client-key="$dir/pki/admin.key" --embed-certs=true >/dev/null
  $k config set-context e2e --cluster=e2e --user=admin >/dev/null
  $k config use-context e2e >/dev/null
}

up() {
  "$here/build.sh"
  mkdir -p "$dir/logs" "$dir/pids"
  local started=$SECONDS
  host_ip="$(ip -4 -o addr show scope global 2>/dev/null | awk '{ sub("/.*", "", $4); print $4; exit }')"
  local bind=(--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --endpoint-reconciler-type none)
  [[ -n "$host_ip" ]] && bind=(--bind-address 0.0.0.0 --advertise-address "$host_ip")
  pki
  local etcd_port etcd_peer apiserver_port kcm_port sched_port kwok_port
  etcd_port=$(free_port)
  etcd_peer=$(free_port)
  apiserver_port=$(free_port)
  kcm_port=$(free_port)
  sched_port=$(free_port)
  kwok_port=$(free_port)

  start etcd "$PENPOT_E2E_BIN/etcd" --name e2e --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "e2e=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync --logger zap --log-level warn
  wait_for etcd 30 curl -sf "http://127.0.0.1:$etcd_port/health"

  start kube-apiserver "$PENPOT_E2E_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    "${bind[@]}" --secure-port "$apiserver_port" \
    --tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
    --client-ca-file "$dir/pki/ca.crt" \
    --authorization-mode RBAC --allow-privileged=true \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-signing-key-file "$dir/pki/sa.key" --service-account-key-file "$dir/pki/sa.pub" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --audit-policy-file "$here/audit-policy.yaml" --audit-log-path "$dir/logs/audit.log" \
    --audit-log-format json --audit-log-mode blocking --audit-log-maxsize 100000 \
    --kubelet-preferred-address-types InternalIP \
    --kubelet-client-certificate "$dir/pki/admin.crt" --kubelet-client-key "$dir/pki/admin.key" \
    --enable-priority-and-fairness=false --v 1
  kubeconfig "$dir/admin.kubeconfig"
  wait_for kube-apiserver 60 "$PENPOT_E2E_BIN/kubectl" --kubeconfig "$dir/admin.kubeconfig" get --raw /readyz

  supervise kube-controller-manager "$PENPOT_E2E_BIN/kube-controller-manager" \
    --kubeconfig "$dir/admin.kubeconfig" --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" \
    --service-account-private-key-file "$dir/pki/sa.key" --root-ca-file "$dir/pki/ca.crt" \
    --use-service-account-credentials=false --v 1
  supervise kube-scheduler "$PENPOT_E2E_BIN/kube-scheduler" \
    --kubeconfig "$dir/admin.kubeconfig" --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port "$sched_port" --v 1
  # A port-forward to port 6063 (the backend's PREPL) of any pod runs the stand-in PREPL on
  # this host, the forwarded connection as its stdin and stdout.
  mkdir -p "$dir/prepl"
  cp "$here/fake-prepl.py" "$dir/prepl/prepl.py"
  cat >"$dir/kwok-port-forward.yaml" <<EOF
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: penpot-prepl
spec:
  forwards:
  - ports: [6063]
    command: [python3, $dir/prepl/prepl.py]
EOF
  supervise kwok "$PENPOT_E2E_BIN/kwok" --kubeconfig "$dir/admin.kubeconfig" \
    --config "$here/kwok-stages.yaml" --config "$dir/kwok-port-forward.yaml" \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --server-address "127.0.0.1:$kwok_port" --node-port "$kwok_port" \
    --tls-cert-file "$dir/pki/kubelet.crt" --tls-private-key-file "$dir/pki/kubelet.key"

  "$PENPOT_E2E_BIN/kubectl" --kubeconfig "$dir/admin.kubeconfig" apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
EOF
  wait_for "the fake node" 60 "$PENPOT_E2E_BIN/kubectl" --kubeconfig "$dir/admin.kubeconfig" \
    wait --for=condition=Ready node/kwok-node-0 --timeout=1s
  # The default ServiceAccount appears once KCM runs; pods need it.
  wait_for "the default ServiceAccount" 60 "$PENPOT_E2E_BIN/kubectl" --kubeconfig "$dir/admin.kubeconfig" \
    get serviceaccount default -n default

  cat >"$dir/env" <<EOF
export KUBECONFIG="$dir/admin.kubeconfig"
export PATH="$PENPOT_E2E_BIN:\$PATH"
export PENPOT_E2E_DIR="$dir"
export PENPOT_E2E_AUDIT_LOG="$dir/logs/audit.log"
export PENPOT_E2E_PREPL_LOG="$dir/prepl/calls.jsonl"
export PENPOT_E2E_HOST_IP="$host_ip"
EOF
  log "control plane up in $((SECONDS - started)) s: source $dir/env"
}

down() {
  [[ -d "$dir/pids" ]] || return 0
  # Supervisors first, so that nothing is restarted; then reverse start order, etcd last.
  local f
  for f in "$dir"/pids/*.supervisor; do
    [[ -f "$f" ]] || continue
    kill "$(cat "$f")" 2>/dev/null || true
    rm -f "$f"
  done
  for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    f="$dir/pids/$name"
    [[ -f "$f" ]] || continue
    kill "$(cat "$f")" 2>/dev/null || true
  done
  for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    f="$dir/pids/$name"
    if [[ -f "$f" ]]; then reap "$f" 50; fi
  done
  log "control plane in $dir stopped"
}

cmd="${1:-}"
dir="${2:-}"
[[ -n "$cmd" && -n "$dir" ]] || die "usage: cluster.sh up|down DIR"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
case "$cmd" in
  up) up ;;
  down) down ;;
  *) die "usage: cluster.sh up|down DIR" ;;
esac
