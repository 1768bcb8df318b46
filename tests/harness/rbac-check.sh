#!/usr/bin/env bash
# After the e2e run: the operator's rights against what its e2e instances actually did.
# Every (API group, resource, verb) that deploy/rbac/clusterrole.yaml and
# leader-election.yaml grant must appear in the API server's audit log for some operator
# ServiceAccount (`system:serviceaccount:*:penpot-operator`), except the few listed below
# with the reason the suite cannot exercise them. A right nothing used is a right to remove.
# (Calls beyond the rules need no check here: they fail the e2e tests with 403.)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=tests/harness/lib.sh
source "$here/lib.sh"
dir="$1"
# shellcheck disable=SC1091
source "$dir/env"
rules="$dir/rbac-rules.json"
kubectl create --dry-run=client -o json -f "$PENPOT_REPO/deploy/rbac/clusterrole.yaml" \
  -f "$PENPOT_REPO/deploy/rbac/leader-election.yaml" >"$rules"
python3 - "$rules" "$dir/logs/audit.log" <<'PY'
import json, sys

# Granted, and needed, but not exercised by this suite.
UNEXERCISED = {
    ("penpot-operator.dev", "penpots/finalizers", "update"):
        "blockOwnerDeletion needs it only where OwnerReferencesPermissionEnforcement is on (OpenShift)",
    ("penpot-operator.dev", "penpotprofiles/finalizers", "update"): "the same, for the PenpotProfile's password Secret",
}

# kubectl prints one JSON object per input object, one after the other.
text, items, at = open(sys.argv[1]).read(), [], 0
decoder = json.JSONDecoder()
while at < len(text.rstrip()):
    while text[at].isspace():
        at += 1
    obj, at = decoder.raw_decode(text, at)
    items.extend(obj.get("items", [obj]))
granted = set()
for item in items:
    for rule in item.get("rules", []):
        for group in rule.get("apiGroups", []):
            for resource in rule.get("resources", []):
                for verb in rule.get("verbs", []):
                    granted.add((group, resource, verb))

used = set()
for line in open(sys.argv[2]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    user = e.get("user", {}).get("username", "")
    if not (user.startswith("system:serviceaccount:") and user.endswith(":penpot-operator")):
        continue
    ref = e.get("objectRef") or {}
    resource = ref.get("resource", "")
    if ref.get("subresource"):
        resource += "/" + ref["subresource"]
    group, verb = ref.get("apiGroup", ""), e.get("verb", "")
    used.add((group, resource, verb))
    # A server-side apply that creates its object is audited as a patch (201) and authorized
    # as a create too.
    if verb == "patch" and (e.get("responseStatus") or {}).get("code") == 201:
        used.add((group, resource, "create"))
    # The port-forward WebSocket is a GET, which API servers since 1.30 also authorize as a create.
    if resource == "pods/portforward" and verb == "get":
        used.add((group, resource, "create"))

unused = sorted(g for g in granted - used if g not in UNEXERCISED)
for g in sorted(granted & set(UNEXERCISED)):
    print(f"rbac check: {g[1]} {g[2]} not exercised here: {UNEXERCISED[g]}")
if unused:
    for group, resource, verb in unused:
        print(f"UNUSED RIGHT: {verb} {resource}" + (f".{group}" if group else ""))
    sys.exit(f"{len(unused)} granted right(s) were never used by the e2e suite's operators: remove them or test them")
print(f"rbac check: {len(granted)} granted rights, each used by the e2e suite's operators or listed with a reason")
PY
