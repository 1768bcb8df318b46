#!/usr/bin/env bash
# After the e2e run: no secret value used by the suite may appear in any Event, any
# Penpot or PenpotProfile status, or any line the operator logged.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tests/harness/lib.sh
source "$here/lib.sh"
dir="$1"
# shellcheck disable=SC1091
source "$dir/env"
dump="$dir/leak-check.txt"
{
  kubectl get events.events.k8s.io -A -o json
  kubectl get events -A -o json
  kubectl get penpots.penpot-operator.dev -A -o jsonpath='{range .items[*]}{.status}{"\n"}{end}'
  kubectl get penpotprofiles.penpot-operator.dev -A -o jsonpath='{range .items[*]}{.status}{"\n"}{end}'
  cat "$dir"/logs/operator-*
} >"$dump"
events=$(grep -c '"reason"' "$dump" || true)
leaks=0
# The suite's fixed values, and the passwords and keys relations.sh made for its real servers.
for values in "$here/../e2e/secret-values.txt" "$dir/relations/secret-values.txt"; do
  [[ -f "$values" ]] || continue
  while IFS= read -r value; do
    [[ -z "$value" ]] && continue
    if grep -qF -- "$value" "$dump"; then
      log "LEAK: a secret value from $values appears in $dump"
      leaks=$((leaks + 1))
    fi
  done <"$values"
done
((leaks == 0)) || die "$leaks secret value(s) leaked into events, status or operator logs"
log "leak check: $(wc -l <"$dump") lines of events, status and operator logs ($events event reasons), no secret value found"
