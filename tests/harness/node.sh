#!/usr/bin/env bash
# A real node next to kwok's fake one: containerd (runc from Debian, CNI bridge plugins from
# Debian), a kubelet registered to the control plane `cluster.sh up DIR` started, kube-proxy
# for Service ClusterIPs, and CoreDNS for cluster.local as a pod (node-addons.yaml). Its pods
# really run. NetworkPolicy is not enforced (see node-addons.yaml). It carries the taint penpot-operator.dev/real-node:NoSchedule, so only pods that
# ask for it (tests/node.rs) land there; everything else stays on kwok.
#
#   node.sh up DIR     start (needs root and `cluster.sh up DIR` first); appends to DIR/env
#   node.sh down DIR   delete the node's pods, stop kube-proxy, kubelet and containerd, undo what
#                      they set up
#
# No registry: images are OCI archives imported with `ctr` (tests/harness/images.sh), and pods
# use imagePullPolicy Never. Logs: DIR/logs/{containerd,kubelet}.log.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tests/harness/lib.sh
source "$here/lib.sh"

node_name=real-node
taint=penpot-operator.dev/real-node

up() {
  [[ "$(id -u)" == 0 ]] || die "the real node needs root"
  [[ -f "$dir/admin.kubeconfig" ]] || die "start the control plane first: cluster.sh up $dir"
  # shellcheck disable=SC1091
  source "$dir/env"
  local started=$SECONDS n="$dir/node"
  mkdir -p "$n/cni" "$n/containerd" "$n/kubelet" "$dir/logs" "$dir/pids"
  sysctl -n net.ipv4.ip_forward >"$n/ip_forward.before"
  # This machine's kernel refuses to lower oom_score_adj (no CAP_SYS_RESOURCE): without
  # restrict_oom_score_adj every sandbox fails with "can't get final child's PID from pipe".
  cat >"$n/containerd.toml" <<EOF
version = 3
root = "$n/containerd/root"
state = "$n/containerd/state"
[grpc]
  address = "$n/containerd.sock"
[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/sbin/runc"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$n/cni"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "registry.k8s.io/pause:3.10"
EOF
  cat >"$n/cni/10-penpot-e2e.conflist" <<'EOF'
{"cniVersion": "1.0.0", "name": "penpot-e2e", "plugins": [
  {"type": "bridge", "bridge": "penpot-e2e0", "isGateway": true, "ipMasq": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
  cat >"$n/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$n/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization: {mode: Webhook}
failSwapOn: false
resolvConf: /etc/resolv.conf
clusterDNS: [10.96.0.10]
clusterDomain: cluster.local
registerWithTaints:
- {key: $taint, effect: NoSchedule}
enforceNodeAllocatable: []
evictionHard: {}
imageGCHighThresholdPercent: 100
EOF
  # The shim is found on containerd's PATH.
  PATH="$PENPOT_E2E_BIN:$PATH" setsid "$PENPOT_E2E_BIN/containerd" --config "$n/containerd.toml" \
    </dev/null >"$dir/logs/containerd.log" 2>&1 &
  echo "$!" >"$dir/pids/containerd"
  local ctr=("$PENPOT_E2E_BIN/ctr" --address "$n/containerd.sock" -n k8s.io)
  for _ in $(seq 100); do "${ctr[@]}" version >/dev/null 2>&1 && break; sleep 0.1; done
  "$here/images.sh" pause "$n/containerd.sock"
  # The admin credentials: the control plane authorizes with RBAC only (no Node authorizer).
  setsid "$PENPOT_E2E_BIN/kubelet" --config "$n/kubelet.yaml" --kubeconfig "$dir/admin.kubeconfig" \
    --root-dir "$n/kubelet" --hostname-override "$node_name" --node-labels penpot-operator.dev/real-node=true \
    --v 1 </dev/null >"$dir/logs/kubelet.log" 2>&1 &
  echo "$!" >"$dir/pids/kubelet"
  local k=("$PENPOT_E2E_BIN/kubectl" --kubeconfig "$dir/admin.kubeconfig")
  for _ in $(seq 600); do
    "${k[@]}" wait --for=condition=Ready "node/$node_name" --timeout=1s >/dev/null 2>&1 && break
    sleep 0.1
  done
  "${k[@]}" wait --for=condition=Ready "node/$node_name" --timeout=1s >/dev/null ||
    die "the real node did not become Ready; see $dir/logs/kubelet.log"
  # Service ClusterIPs, in iptables mode (the nft backend of Debian's iptables). No conntrack
  # tuning: the VM's sysctls are not the node's to change.
  setsid "$PENPOT_E2E_BIN/kube-proxy" --kubeconfig "$dir/admin.kubeconfig" --hostname-override "$node_name" \
    --proxy-mode iptables --cluster-cidr 10.89.0.0/16 --conntrack-max-per-core 0 \
    --metrics-bind-address "127.0.0.1:$(free_port)" --healthz-bind-address "127.0.0.1:$(free_port)" --v 1 \
    </dev/null >"$dir/logs/kube-proxy.log" 2>&1 &
  echo "$!" >"$dir/pids/kube-proxy"
  # CoreDNS reaches the API server through the `kubernetes` Service, as any pod would.
  [[ -n "${PENPOT_E2E_HOST_IP:-}" ]] || die "the control plane has no host address for pods (cluster.sh: no global IPv4 address)"
  "$here/images.sh" system "$n/containerd.sock"
  "${k[@]}" apply -f "$here/node-addons.yaml" >/dev/null
  "${k[@]}" -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null ||
    die "CoreDNS did not become Ready; see kubectl -n kube-system logs deployment/coredns"
  cat >>"$dir/env" <<EOF
export PENPOT_E2E_NODE="$node_name"
export PENPOT_E2E_CONTAINERD="$n/containerd.sock"
EOF
  log "real node $node_name Ready in $((SECONDS - started)) s"
}

stop() { # NAME
  local f="$dir/pids/$1"
  [[ -f "$f" ]] || return 0
  kill "$(cat "$f")" 2>/dev/null || true
  reap "$f"
}

down() {
  local n="$dir/node"
  [[ -d "$n" ]] || return 0
  local k=("$PENPOT_E2E_BIN/kubectl" --kubeconfig "$dir/admin.kubeconfig" --request-timeout=10s)
  # Pods first, while the kubelet runs: it stops their containers and releases their network.
  if [[ -f "$dir/pids/kubelet" ]]; then
    "${k[@]}" delete pods -A --field-selector "spec.nodeName=$node_name" --grace-period=1 --wait=true \
      --timeout=60s >/dev/null 2>&1 || log "real node: not every pod was deleted"
  fi
  stop kube-proxy
  stop kubelet
  # Whatever still runs: the shims and their containers.
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io .*-address $n/containerd.sock" 2>/dev/null || true
  stop containerd
  # Mounts below the node's directories, deepest first (the kubelet bind-mounts its root).
  { grep -o " $n/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  ip link delete penpot-e2e0 2>/dev/null || true
  # The kubelet's iptables chains and the bridge plugin's masquerade chains. Twice: a chain
  # is only removable once nothing jumps to it, and the first pass removes the jumps.
  local table pass
  for pass in 1 2; do
    for table in filter nat mangle; do
      { iptables -t "$table" -S 2>/dev/null | grep -E '^-A .*(KUBE-|CNI-)' || true; } | sed 's/^-A/-D/' |
        while read -r rule; do eval "iptables -t $table $rule" 2>/dev/null || true; done
      { iptables -t "$table" -S 2>/dev/null | grep -oE '^-N (KUBE-|CNI-)[^ ]*' || true; } | cut -d' ' -f2 |
        while read -r chain; do iptables -t "$table" -F "$chain" 2>/dev/null; iptables -t "$table" -X "$chain" 2>/dev/null || true; done
    done
    [[ $pass == 1 ]] && sleep 1
  done
  [[ -f "$n/ip_forward.before" ]] && sysctl -qw "net.ipv4.ip_forward=$(cat "$n/ip_forward.before")" || true
  # Lazily unmounted directories can stay busy for a moment.
  for _ in 1 2 3 4 5; do rm -rf "$n" 2>/dev/null && break; sleep 1; done
  [[ -e "$n" ]] && log "real node: $n not fully removed"
  log "real node stopped"
}

cmd="${1:-}"
dir="${2:-}"
[[ -n "$cmd" && -n "$dir" ]] || die "usage: node.sh up|down DIR"
dir="$(cd "$dir" && pwd)"
case "$cmd" in
  up) up ;;
  down) down ;;
  *) die "usage: node.sh up|down DIR" ;;
esac
