#!/usr/bin/env bash
# Builds images for the real node (node.sh) from this machine's binaries, as OCI archives
# (oci.py), and imports them into its containerd. Nothing is pulled.
#
#   images.sh pause SOCKET
#       registry.k8s.io/pause:3.10, the sandbox image (the harness's static `pause`).
#   images.sh system SOCKET
#       The node's add-on (node-addons.yaml), CoreDNS; and e2e.penpot-operator.dev/stand-in:e2e,
#       the go/stand-in program alone, for tests' helper pods: a STAND-IN for Loki (`loki`).
#   images.sh penpot SOCKET OPERATOR_BINARY VERSION
#       ghcr.io/penpot-operator/penpot-operator:<crate version>: the operator binary, the
#       static Pebble and the CA bundle, as in its rock; and STAND-INS for docker.io/penpotapp/{frontend,backend,
#       exporter}:VERSION in the upstream layout (tests/upstream/): the images' user 1001, real
#       nginx in the frontend; Penpot's JVM backend (and its PREPL) and its Node exporter
#       cannot be built here, so the program of go/stand-in plays them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tests/harness/lib.sh
source "$here/lib.sh"

what="${1:-}" socket="${2:-}"
[[ -n "$what" && -S "$socket" ]] || die "usage: images.sh pause|system|penpot SOCKET ..."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

import() { # ROOTFS NAME [ENTRYPOINT...]
  local rootfs=$1 name=$2
  shift 2
  python3 "$here/oci.py" "$rootfs" "$name" "$work/image.tar" "$@" >/dev/null
  "$PENPOT_E2E_BIN/ctr" --address "$socket" -n k8s.io images import --platform linux/amd64 "$work/image.tar" \
    >/dev/null 2>&1 || die "ctr could not import $name"
}

# libs_of ROOT PROGRAM: the shared libraries PROGRAM links (and the loader), at their paths.
libs_of() {
  local root=$1 lib
  for lib in $(ldd "$2" 2>/dev/null | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# with_libs ROOT PROGRAM...: each program at its path, and the shared libraries it links.
with_libs() {
  local root=$1 prog
  shift
  for prog in "$@"; do
    mkdir -p "$root$(dirname "$prog")"
    cp -L "$(readlink -f "$prog")" "$root$prog"
    libs_of "$root" "$prog"
  done
}

# The base of the three stand-ins: the images' user and a shell.
stand_in_base() { # ROOT
  local root=$1
  mkdir -p "$root/etc" "$root/tmp"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/bash\npenpot:x:1001:1001::/opt/penpot:/bin/bash\n' >"$root/etc/passwd"
  printf 'root:x:0:\npenpot:x:1001:\n' >"$root/etc/group"
  with_libs "$root" /bin/bash /usr/bin/env /usr/bin/id
}

# A static program alone in an image.
single() { # BINARY PATH NAME [ENTRYPOINT...]
  local binary=$1 path=$2 name=$3 root
  shift 3
  root="$work/$(basename "$path")"
  mkdir -p "$root$(dirname "$path")"
  cp "$binary" "$root$path"
  import "$root" "$name" "$@"
}

case "$what" in
  pause)
    mkdir -p "$work/pause"
    cp "$PENPOT_E2E_BIN/pause" "$work/pause/pause"
    import "$work/pause" registry.k8s.io/pause:3.10 /pause
    ;;
  system)
    single "$PENPOT_E2E_BIN/coredns" /coredns registry.k8s.io/coredns/coredns:e2e /coredns
    single "$PENPOT_E2E_BIN/stand-in" /stand-in e2e.penpot-operator.dev/stand-in:e2e /stand-in
    ;;
  penpot)
    operator="${3:?operator binary}" version="${4:?Penpot version}"
    stand_in="$PENPOT_E2E_BIN/stand-in"
    crate_version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$PENPOT_REPO/Cargo.toml" | head -1)"

    op="$work/operator"
    mkdir -p "$op/usr/bin"
    # A debug build is large; its symbols do not belong in an image.
    strip -o "$op/usr/bin/penpot-operator" "$operator" 2>/dev/null || cp "$operator" "$op/usr/bin/penpot-operator"
    libs_of "$op" "$operator"
    cp "$PENPOT_E2E_BIN/pebble" "$op/usr/bin/pebble"
    # The rock's ca-certificates_data slice: the CA bundle OIDC discovery verifies against.
    mkdir -p "$op/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$op/etc/ssl/certs/ca-certificates.crt"
    import "$op" "ghcr.io/penpot-operator/penpot-operator:$crate_version"

    fe="$work/frontend"
    stand_in_base "$fe"
    with_libs "$fe" /usr/sbin/nginx
    # /opt/data/assets: both upstream images have it (owned by 1001) for filesystem storage.
    mkdir -p "$fe/etc/nginx" "$fe/var/www/app/js" "$fe/opt/data/assets"
    chown 1001:1001 "$fe/opt/data/assets"
    cp /etc/nginx/mime.types "$fe/etc/nginx/mime.types"
    echo '<html>Penpot frontend stand-in</html>' >"$fe/var/www/app/index.html"
    echo '//var penpotFlags = "";' >"$fe/var/www/app/js/config.js"
    import "$fe" "docker.io/penpotapp/frontend:$version"

    be="$work/backend"
    stand_in_base "$be"
    mkdir -p "$be/opt/penpot/backend" "$be/usr/bin" "$be/opt/data/assets"
    install -m 0755 "$stand_in" "$be/opt/penpot/backend/stand-in"
    # Where upstream's manage.py lives (the operator does not run it: it talks to the PREPL).
    printf '# STAND-IN: upstream'"'"'s manage.py sits here.\n' >"$be/opt/penpot/backend/manage.py"
    printf '#!/bin/bash\n# STAND-IN for Penpot'"'"'s run.sh (the JVM backend cannot be built here).\nexec /opt/penpot/backend/stand-in backend "$@"\n' \
      >"$be/opt/penpot/backend/run.sh"
    chmod 0755 "$be/opt/penpot/backend/run.sh"
    chown -R 1001:1001 "$be/opt/penpot" "$be/opt/data"
    import "$be" "docker.io/penpotapp/backend:$version"

    ex="$work/exporter"
    stand_in_base "$ex"
    mkdir -p "$ex/opt/penpot/exporter" "$ex/opt/node/bin"
    install -m 0755 "$stand_in" "$ex/opt/node/bin/node"
    echo '// exporter stand-in: /opt/node/bin/node plays it' >"$ex/opt/penpot/exporter/app.js"
    chown -R 1001:1001 "$ex/opt/penpot"
    import "$ex" "docker.io/penpotapp/exporter:$version"
    ;;
  *) die "usage: images.sh pause|system|penpot SOCKET ..." ;;
esac
