#!/usr/bin/env bash
# Installs the Debian packages the test suite runs besides the Go-built control plane, when they
# are missing: nginx (tests/nginx.rs, the e2e `nginx -t`), lua5.4 (the Argo CD health check),
# iproute2 (loopback in the network namespace tests/pod.rs runs a pod in), runc, the CNI
# plugins, iptables and the CA bundle (the real node: node.sh, images.sh), a JDK and Node.js
# (tests/trust.rs: the JVM and Node trusting spec.caBundle). Needs root and apt
# only when something is missing. Run by test.sh; `.ci/run` runs it too.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tests/harness/lib.sh
source "$here/lib.sh"

missing=()
for pair in nginx:nginx lua5.4:lua5.4 ip:iproute2 /usr/sbin/runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
  iptables:iptables /etc/ssl/certs/ca-certificates.crt:ca-certificates javac:openjdk-17-jdk-headless \
  keytool:openjdk-17-jdk-headless node:nodejs; do
  if [[ "${pair%%:*}" == /* ]]; then [[ -e "${pair%%:*}" ]]; else command -v "${pair%%:*}" >/dev/null; fi ||
    missing+=("${pair#*:}")
done
if ((${#missing[@]})); then
  if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
    die "missing packages: ${missing[*]} (install them as root: apt-get install ${missing[*]})"
  fi
  log "installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for tool in go cargo openssl python3 curl unshare setpriv chroot; do
  command -v "$tool" >/dev/null || die "missing $tool"
done
