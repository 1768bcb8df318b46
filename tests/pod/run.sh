#!/bin/bash
# Runs one rendered Penpot pod the way a kubelet would, without a kubelet: a network namespace
# for the pod; per container a mount namespace with a read-only root (stand-ins in Penpot's
# image layout, see tests/pod.rs), emptyDirs at /tmp and /pebble, the layer at /pebble/layers
# and the init container's volume read-only at /operator; every process as the images' user.
# The init container's step runs first: `penpot-operator prepare-pod` as that user.
#
# Usage (as root, inside `unshare --mount --net --propagation private --fork`):
#   run.sh ROOT WORK OPERATOR_BINARY PEBBLE_BINARY
# WORK holds layers/<container>/ and the checks' output goes to stdout.
set -euo pipefail
root=$1 work=$2 operator=$3 pebble=$4
uid=1001
as_user=(setpriv --reuid "$uid" --regid "$uid" --clear-groups)

ip link set lo up

# The root as a mount of its own, so it can be made read-only below; the volumes go on top.
mount --bind "$root" "$root"

# The shared read-only parts: the host's /usr (programs), the pod's /dev.
mount --bind /usr "$root/usr" && mount -o remount,bind,ro "$root/usr"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=0755,uid=$uid,gid=$uid tmpfs "$root/operator"

# Init container: Pebble and the nginx includes, from the pod's resolv.conf and network.
cp "$pebble" "$work/pebble" && chmod 0755 "$work/pebble"
cp "$root/etc/resolv.conf" "$work/resolv.conf"
"${as_user[@]}" "$operator" prepare-pod --into "$root/operator" --nginx-port 8080 --pebble "$work/pebble"
mount -o remount,bind,ro "$root/operator" 2>/dev/null || mount --bind -o ro "$root/operator" "$root/operator"

# The root filesystem itself is read-only from here on.
mount -o remount,bind,ro "$root"

start() { # container, pebble port
	local name=$1 port=$2
	unshare --mount --propagation private bash -c '
		set -eu
		root=$1 work=$2 uid=$3 name=$4 port=$5
		mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
		mount -t tmpfs -o mode=0755,uid=$uid,gid=$uid tmpfs "$root/pebble"
		mkdir "$root/pebble/layers"
		cp "$work/layers/$name/"* "$root/pebble/layers/"
		mount --bind "$root/pebble/layers" "$root/pebble/layers"
		mount -o remount,bind,ro "$root/pebble/layers"
		exec chroot --userspec=$uid:$uid "$root" /usr/bin/env -i \
			PATH=/usr/sbin:/usr/bin PEBBLE=/pebble HOME=/tmp \
			/operator/bin/pebble run --http ":$port" --verbose
	' _ "$root" "$work" "$uid" "$name" "$port" >"$work/$name.log" 2>&1 &
	echo "$!" >>"$work/pids"
}

start exporter 38813
start nginx 38814
start penpot 38815

ok() { echo "ok $*"; }
fail() { echo "FAIL $*"; }
wait_for() { # description, command...
	local what=$1; shift
	for _ in $(seq 1 100); do
		if "$@" >/dev/null 2>&1; then ok "$what"; return; fi
		sleep 0.1
	done
	fail "$what"
}

wait_for "nginx ready (frontend via Pebble)" curl -sf http://127.0.0.1:8080/_penpot/nginx-ready
wait_for "backend /readyz (stand-in via Pebble)" curl -sf http://127.0.0.1:6060/readyz
wait_for "exporter /readyz (stand-in via Pebble)" curl -sf http://127.0.0.1:6061/readyz
for port in 38813 38814 38815; do
	wait_for "pebble :$port alive" curl -sf "http://127.0.0.1:$port/v1/health?level=alive"
done
wait_for "IPv6 listen" curl -sf "http://[::1]:8080/_penpot/nginx-ready"
echo "api: $(curl -s -D - -o /dev/null http://127.0.0.1:8080/api/main/methods/get-profile | tr -d '\r' | grep -i '^x-stand-in' || true)"
echo "export: $(curl -s -D - -o /dev/null http://127.0.0.1:8080/api/export | tr -d '\r' | grep -i '^x-stand-in' || true)"
echo "config.js: $(curl -s http://127.0.0.1:8080/js/config.js | grep -c penpotFlags)"

# Stop as the kubelet would: SIGTERM to each container's PID 1 (Pebble), which stops its services.
while read -r pid; do kill -TERM "$pid" 2>/dev/null || true; done <"$work/pids"
wait || true
for name in exporter nginx penpot; do
	echo "--- $name"
	cat "$work/$name.log"
done
