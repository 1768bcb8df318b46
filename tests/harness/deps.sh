#!/usr/bin/env bash
# Installs the Debian packages the test suite runs besides the Go-built control plane, when they
# are missing: nginx (tests/nginx.rs, the e2e `nginx -t`), lua5.4 (the Argo CD health check),
# iproute2 (loopback in the network namespace tests/pod.rs runs a pod in), runc, the CNI
# plugins, iptables and the CA bundle (the real node: node.sh, images.sh), a JDK and Node.js
# (tests/trust.rs: the JVM and Node trusting spec.caBundle), and the servers relations.sh runs
# for the relations' pre-flight checks: PostgreSQL 15, redis-server, aiosmtpd for SMTP and
# python3-venv for the venv that holds moto (S3). Needs root and apt only when something is
# missing. Run by test.sh; `.ci/run` runs it too.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tests/harness/lib.sh
source "$here/lib.sh"

# python3-venv's ensurepip sits in the versioned standard library of Debian's python3.
ensurepip="$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))' 2>/dev/null)/ensurepip"
missing=()
for pair in nginx:nginx lua5.4:lua5.4 ip:iproute2 /usr/sbin/runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
  iptables:iptables /etc/ssl/certs/ca-certificates.crt:ca-certificates javac:openjdk-17-jdk-headless \
  keytool:openjdk-17-jdk-headless node:nodejs /usr/lib/postgresql/15/bin/postgres:postgresql \
  redis-server:redis-server /usr/lib/python3/dist-packages/aiosmtpd:python3-aiosmtpd "$ensurepip:python3-venv"; do
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
for tool in go cargo openssl python3 curl unshare setpriv chroot flock; do
  command -v "$tool" >/dev/null || die "missing $tool"
done
