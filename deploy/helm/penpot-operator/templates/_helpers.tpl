{{- define "penpot-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "penpot-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "penpot-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "penpot-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "penpot-operator.labels" -}}
{{ include "penpot-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: penpot
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "penpot-operator.serviceAccountName" -}}
{{- default (include "penpot-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "penpot-operator.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{/* The operator's rules; kept equal to deploy/rbac/clusterrole.yaml by a test. */}}
{{- define "penpot-operator.rules" -}}
# Watch Penpots (the controller's main watch) and read them in reconcile.
- apiGroups: [penpot-operator.dev]
  resources: [penpots]
  verbs: [get, list, watch]
# Write status with server-side apply.
- apiGroups: [penpot-operator.dev]
  resources: [penpots/status]
  verbs: [patch]
# Owner references set blockOwnerDeletion, which needs this where
# OwnerReferencesPermissionEnforcement is on (OpenShift).
- apiGroups: [penpot-operator.dev]
  resources: [penpots/finalizers]
  verbs: [update]
{{- if .Values.profiles.enabled }}
# PenpotProfiles: watch, finalizer (patch), status; get: a reconcile reads its resource
# fresh before running manage.py (the watch may not have delivered its last status yet).
- apiGroups: [penpot-operator.dev]
  resources: [penpotprofiles]
  verbs: [get, list, watch, patch]
- apiGroups: [penpot-operator.dev]
  resources: [penpotprofiles/status]
  verbs: [patch]
- apiGroups: [penpot-operator.dev]
  resources: [penpotprofiles/finalizers]
  verbs: [update]
# Profiles are sent to the backend's PREPL in a Ready pod of the Penpot's StatefulSet through
# the port-forward API (a WebSocket upgrade: a GET, which API servers since 1.30 also
# authorize as create). No pods/exec.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [""]
  resources: [pods/portforward]
  verbs: [get, create]
{{- end }}
# Relation and spec.caBundle Secrets (read, metadata watch), the secret-key Secret (created once) and the
# rendered configuration Secret (server-side apply). delete: prune removes a Secret this
# Penpot controls and no longer renders (never one it does not control; the uid is a
# precondition of every delete).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, delete]
# The ClusterIP and headless Services; delete for prune, as above.
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
# The Grafana dashboard ConfigMap (delete for prune), and the ConfigMap of spec.caBundle:
# read, and watched (metadata only) so a changed bundle rolls the pods.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch, delete]
# The pods' ServiceAccount when spec.serviceAccount gives annotations; delete for prune.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, list, watch, create, patch, delete]
# The assets claim of spec.storage.filesystem, read when applied. Never deleted: uploaded
# files outlive a switch to S3; the owner reference removes it with the Penpot.
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, create, patch]
# PodMonitor and PrometheusRule, applied only when the Prometheus Operator is installed;
# listed by label and deleted when spec.monitoring.enabled turns false.
- apiGroups: [monitoring.coreos.com]
  resources: [podmonitors, prometheusrules]
  verbs: [get, list, create, patch, delete]
# The HTTPRoute of spec.gateway, applied only when the Gateway API is installed; listed by
# label and deleted when spec.gateway is removed.
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, create, patch, delete]
# The pre-upgrade CloudNativePG Backup (spec.upgrade.backupBeforeUpgrade): made once, then read.
- apiGroups: [postgresql.cnpg.io]
  resources: [backups]
  verbs: [get, create]
# The workload; delete for prune.
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get, list, watch, create, patch, delete]
# The PodDisruptionBudget with more than one replica; deleted again at one.
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
# The NetworkPolicy, and the Ingress, deleted again when spec.ingress.host is removed.
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch, create, patch, delete]
# Events on phase changes and rollouts; each event is a new object, never a series update.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end -}}
