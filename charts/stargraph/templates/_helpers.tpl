{{/*
Names. Object names are capped at 63 characters because Service names (and label values) may not be longer.
*/}}
{{- define "stargraph.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "stargraph.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "stargraph.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "stargraph.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Labels. The selector labels must never change between releases (a Deployment's selector is immutable), so they
hold only the name and the instance; everything else goes into the common labels.
*/}}
{{- define "stargraph.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stargraph.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "stargraph.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "stargraph.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stargraph
{{- end }}

{{- define "stargraph.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The httpGet of the operator's probes; call with (dict "root" . "path" "/healthz"). The kubelet probes the Pod's IP
unless told otherwise, and a host-network Pod's IP is the node's address: its probes would then depend on the node
answering itself on that address (a firewall, an address that changes). The kubelet shares the node's network and
the operator listens on every address (--host=0.0.0.0), so a host-network Pod is probed on loopback: the same
socket, without leaving the node. Pod Security puts probe hosts and host networking in the same "privileged" level.
*/}}
{{- define "stargraph.probeGet" -}}
httpGet:
  {{- if .root.Values.hostNetwork }}
  host: 127.0.0.1
  {{- end }}
  path: {{ .path }}
  port: http
{{- end }}

{{/*
The namespaces the operator watches, as a JSON list; empty means the whole cluster. Both the RBAC templates and the
operator's --watch-namespace flags are derived from this one list, so permissions and behaviour cannot drift apart.
*/}}
{{- define "stargraph.watchNamespaces" -}}
{{- $mode := .Values.watch.mode }}
{{- $listed := .Values.watch.namespaces | default list }}
{{- if and $listed (ne $mode "namespaces") }}
{{- fail (printf "watch.namespaces is set but watch.mode is %q: set watch.mode=namespaces, or empty the list (otherwise the operator would watch more than the listed namespaces)" $mode) }}
{{- end }}
{{- if eq $mode "cluster" }}
{{- list | toJson }}
{{- else if eq $mode "namespaces" }}
{{- if not $listed }}
{{- fail "watch.mode=namespaces needs at least one entry in watch.namespaces" }}
{{- end }}
{{- $listed | uniq | toJson }}
{{- else if eq $mode "release" }}
{{- list .Release.Namespace | toJson }}
{{- else }}
{{- fail (printf "watch.mode must be cluster, namespaces or release, not %q" $mode) }}
{{- end }}
{{- end }}

{{/* "true" when this release elects a leader for cron firing, else empty. */}}
{{- define "stargraph.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicas) 1) }}true{{ end }}
{{- end }}

{{- define "stargraph.leaseName" -}}
{{- default (include "stargraph.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "stargraph.terminationGracePeriodSeconds" -}}
{{- $drain := int .Values.operator.drainSeconds }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $drain 30 }}
{{- else if le (int .Values.terminationGracePeriodSeconds) $drain }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be larger than operator.drainSeconds (%d), or the kubelet kills the operator mid-drain" (int .Values.terminationGracePeriodSeconds) $drain) }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
What the operator does in every namespace it watches; bound cluster-wide in cluster mode, per namespace otherwise.
Each rule is one thing the code calls — see the chart README's RBAC table before adding anything here.
*/}}
{{- define "stargraph.watchRules" -}}
# kopf watches both trigger kinds; the manual-run API reads the trigger a Run is requested for.
- apiGroups: ["stargraph.io"]
  resources: ["crontriggers", "webhooktriggers"]
  verbs: ["get", "list", "watch"]
# Conditions, next/last schedule times and webhook paths are written to the status subresource only, so the
# operator can never change what a user declared in spec.
- apiGroups: ["stargraph.io"]
  resources: ["crontriggers/status", "webhooktriggers/status"]
  verbs: ["patch"]
# Backfills are read like triggers; their progress is written to the status subresource only.
- apiGroups: ["stargraph.io"]
  resources: ["backfills"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["stargraph.io"]
  resources: ["backfills/status"]
  verbs: ["patch"]
# Runs are the operator's output: an informer indexes them for dedupe and catch-up, a create answered 409 is read
# back to return the existing Run, and Runs beyond the history limits are deleted.
- apiGroups: ["stargraph.io"]
  resources: ["runs"]
  verbs: ["get", "list", "watch", "create", "delete"]
# A Run's phase, times and conditions come from its Job (or from an executor of the user's own).
- apiGroups: ["stargraph.io"]
  resources: ["runs/status"]
  verbs: ["patch"]
# Each Run with a jobTemplate runs as one Job, which the operator creates, watches (by the stargraph.io/run label)
# and reads back when a create is answered 409. It never deletes one: a Job goes with its Run (garbage collection,
# through the Job's owner reference), so no delete is granted.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create"]
# WebhookTriggers name the Secret holding their signing keys. list+watch: Secrets by metadata only, so a deleted or
# rotated key takes effect within seconds without polling; get: the keys of a named Secret when it appears or changes.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# Fires, skips and bad specs are reported as Events on the trigger.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- range .Values.extraTriggerKinds }}
# A third-party trigger kind installed next to the operator: watched like the built-in kinds, status only written.
- apiGroups: [{{ .group | quote }}]
  resources: [{{ .plural | quote }}]
  verbs: ["get", "list", "watch"]
- apiGroups: [{{ .group | quote }}]
  resources: [{{ printf "%s/status" .plural | quote }}]
  verbs: ["patch"]
{{- end }}
{{- end }}

{{/*
The Secret holding the admission webhook's serving certificate (tls.crt, tls.key; ca.crt when Helm made it).
*/}}
{{- define "stargraph.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "stargraph.fullname" .) }}
{{- end }}
