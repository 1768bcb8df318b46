# Shared settings for the e2e harness scripts; sourced, not run.
# The cache lives outside the checkout so fresh clones on one machine share it.
PENPOT_E2E_CACHE="${PENPOT_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/penpot-operator-e2e}"
PENPOT_E2E_BIN="$PENPOT_E2E_CACHE/bin"
export PENPOT_E2E_CACHE PENPOT_E2E_BIN

log() { printf '[harness %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }
