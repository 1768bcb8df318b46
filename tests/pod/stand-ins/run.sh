#!/bin/bash
# STAND-IN for Penpot's /opt/penpot/backend/run.sh: Penpot's JVM backend cannot be built or
# fetched here. Reports how Pebble started it, then answers like the backend's port 6060.
echo "facts uid=$(id -u) gid=$(id -g) cwd=$(pwd) home=$HOME database=${PENPOT_DATABASE_URI:+set}"
if touch ./written-by-backend 2>/dev/null; then echo "root writable"; else echo "root read-only"; fi
exec /usr/sbin/nginx -e stderr -c /opt/penpot/backend/stand-in.conf
