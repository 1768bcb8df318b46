#!/usr/bin/env bash
# Everything CI runs: formatting, clippy, a fuzz smoke run, unit tests and the e2e suite on a
# real control plane. The control plane is stopped on exit, pass or fail.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=tests/harness/lib.sh
source "$here/lib.sh"
cd "$root"

# Each part's wall time, printed at the end (and when the run stops early).
timings=()
timed() { # NAME COMMAND...
  local name=$1 start=$SECONDS
  shift
  log "$name"
  "$@"
  timings+=("$(printf '%5d s  %s' $((SECONDS - start)) "$name")")
}
report_timings() {
  ((${#timings[@]})) || return 0
  log "time per part:"
  printf '  %s\n' "${timings[@]}" >&2
}

timed "cargo fmt --check" cargo fmt --check
timed "cargo fmt --check (fuzz)" cargo fmt --check --manifest-path fuzz/Cargo.toml
timed "cargo clippy --all-targets -- -D warnings" cargo clippy --all-targets --quiet -- -D warnings

# The Debian packages, installed when missing: a fresh machine needs no set-up by hand.
timed "Debian packages (deps.sh)" "$here/deps.sh"

# Smoke run: every fuzz target for FUZZ_SECONDS (30) seconds; longer runs: docs/development.md.
timed "fuzz smoke run (fuzz.sh)" "$here/fuzz.sh" "${FUZZ_SECONDS:-30}"

run_dir="$(mktemp -d "${TMPDIR:-/tmp}/penpot-e2e.XXXXXX")"
cleanup() {
  # Components that exited on their own and were restarted (cluster.sh supervise).
  if [[ -s "$run_dir/logs/restarts" ]]; then
    log "control-plane components restarted during the run (time, name, exit status):"
    cat "$run_dir/logs/restarts"
  fi
  "$here/relations.sh" down "$run_dir" || true
  "$here/node.sh" down "$run_dir" || true
  "$here/cluster.sh" down "$run_dir" || true
  if [[ "${PENPOT_E2E_KEEP:-}" != 1 ]]; then rm -rf "$run_dir"; fi
  report_timings
}
trap cleanup EXIT
# Builds the Go components first when they are not cached (cold: about 13 minutes).
timed "control plane (cluster.sh up)" "$here/cluster.sh" up "$run_dir"
# The real node (kubelet, containerd, runc, CoreDNS) next to kwok's: tests/node.rs runs pods on it.
timed "real node (node.sh up)" "$here/node.sh" up "$run_dir"
# Real PostgreSQL, Redis, SMTP and S3 servers on loopback: tests/checks.rs and the e2e of
# status.checks run the pre-flight checks against them.
timed "relation servers (relations.sh up)" "$here/relations.sh" up "$run_dir"
export PENPOT_RELATIONS_ENV="$run_dir/relations/env"
# shellcheck disable=SC1091
source "$run_dir/env"

# Namespaces stay until the control plane goes, so the leak check sees every event.
run_tests() { PENPOT_E2E_REQUIRED=1 PENPOT_E2E_KEEP=1 cargo test --all-targets -- "$@" 2>&1 | tee "$run_dir/cargo-test.log"; }
timed "cargo test (unit and e2e; e2e logs under $run_dir/logs)" run_tests "$@"
timed "leak check" "$here/leak-check.sh" "$run_dir"
timed "RBAC check" "$here/rbac-check.sh" "$run_dir"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "all suites: %d passed, %d failed\n", p, f }' "$run_dir/cargo-test.log"
