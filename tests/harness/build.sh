#!/usr/bin/env bash
# Builds the e2e control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, kwok, pebble, helm) and the real node (kubelet, containerd, its runc shim, ctr, pause,
# kube-proxy, CoreDNS, the stand-ins) and promtool (which checks the rendered PrometheusRule in
# tests/promtool.rs) from pinned Go modules into a cache outside the repo, so a fresh clone on
# the same machine reuses it.
#
# Each component is keyed on its wrapper's go.mod/go.sum (and sources, for local programs), the
# Go version and the ldflags; a key that is already built is skipped. A cold build took 12m57s
# on 2 cores, module downloads included (2.0 GB peak RSS), before promtool; promtool adds
# about 3.5 minutes cold (48 s of module downloads, 2m43s compiling without its service
# discoveries; 0.95 GB peak). A warm build takes a second.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tests/harness/lib.sh
source "$here/lib.sh"

export GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0
export GOCACHE="${GOCACHE:-$PENPOT_E2E_CACHE/go-build}"
export GOMODCACHE="${GOMODCACHE:-$PENPOT_E2E_CACHE/go-mod}"
mkdir -p "$PENPOT_E2E_BIN"

go_version="$(go env GOVERSION)"
kube_version="v1.36.3"
kube_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=36"
  kube_ldflags+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=2026-07-23T00:00:00Z"
done
# Helm v3 renders .Capabilities.KubeVersion as 1.20 unless told the target.
helm_ldflags=""
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=36"
done

# build COMPONENT "LDFLAGS" OUTPUT=PACKAGE...
build() {
  local component="$1" ldflags="$2"
  shift 2
  local dir="$here/go/$component"
  local key
  # Local programs (pause, stand-in) are keyed on their source too.
  local sources=()
  [[ -n "$(compgen -G "$dir/*.go")" ]] && sources=("$dir"/*.go)
  key="$(cat "$dir/go.mod" "$dir/go.sum" "${sources[@]}" <(echo "$go_version $ldflags ${BUILD_TAGS:-} $*") |
    sha256sum | cut -c1-16)"
  local stamp="$PENPOT_E2E_BIN/.$component.$key"
  if [[ -f "$stamp" ]]; then
    log "$component: cached ($key)"
    return
  fi
  log "$component: building $* (a cold build of everything takes about 13 minutes on 2 cores)"
  local start=$SECONDS
  for spec in "$@"; do
    local out="${spec%%=*}" pkg="${spec#*=}"
    (cd "$dir" && go build -trimpath -tags "${BUILD_TAGS:-}" -ldflags "-s -w $ldflags" -o "$PENPOT_E2E_BIN/$out.tmp" "$pkg")
    mv "$PENPOT_E2E_BIN/$out.tmp" "$PENPOT_E2E_BIN/$out"
    log "$component: $out built ($((SECONDS - start)) s so far)"
  done
  rm -f "$PENPOT_E2E_BIN/.$component."*
  touch "$stamp"
}

build pebble "" pebble=github.com/canonical/pebble/cmd/pebble
build kwok "" kwok=sigs.k8s.io/kwok/cmd/kwok
build etcd "" etcd=go.etcd.io/etcd/server/v3
build helm "$helm_ldflags" helm=helm.sh/helm/v3/cmd/helm
build kube "$kube_ldflags" \
  kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
  kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
  kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
  kubectl=k8s.io/kubernetes/cmd/kubectl \
  kubelet=k8s.io/kubernetes/cmd/kubelet \
  kube-proxy=k8s.io/kubernetes/cmd/kube-proxy
# The real node (node.sh): containerd with the runc shim, and the sandbox's pause process.
BUILD_TAGS="no_btrfs no_devmapper no_zfs" build containerd "" \
  containerd=github.com/containerd/containerd/v2/cmd/containerd \
  containerd-shim-runc-v2=github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
  ctr=github.com/containerd/containerd/v2/cmd/ctr
build pause "" pause=.
# Cluster DNS, and the program that stands in for Penpot's backend and exporter, and for
# Loki, in the real node's images.
build coredns "" coredns=github.com/coredns/coredns
# `check rules` needs none of Prometheus's service discoveries: without them promtool builds
# in half the time and a third of the memory.
BUILD_TAGS="remove_all_sd" build promtool "" promtool=github.com/prometheus/prometheus/cmd/promtool
build stand-in "" stand-in=.
# Gateway API's own CRDs (tests/admin.rs installs them to check the HTTPRoute the operator
# makes), from its pinned module: the release's YAML ships inside it.
gateway_api_version="v1.6.3"
gateway_api_dir="$(go mod download -json "sigs.k8s.io/gateway-api@$gateway_api_version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
mkdir -p "$PENPOT_E2E_CACHE/crds"
for crd in gatewayclasses gateways httproutes; do
  cp "$gateway_api_dir/config/crd/standard/gateway.networking.k8s.io_$crd.yaml" "$PENPOT_E2E_CACHE/crds/"
done
log "all components built in $PENPOT_E2E_BIN; Gateway API $gateway_api_version CRDs in $PENPOT_E2E_CACHE/crds"
