{{/* Chart name, at most 63 characters. */}}
{{- define "qorch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects, at most 63 characters (a DNS label). The release name
alone when it already contains the chart name.
*/}}
{{- define "qorch.fullname" -}}
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

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "qorch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "qorch.labels" -}}
helm.sh/chart: {{ include "qorch.chart" . }}
{{ include "qorch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: qorch
{{- end }}

{{/* Labels that select the release's objects; never change them (selectors are immutable). */}}
{{- define "qorch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qorch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels that select the operator pods. */}}
{{- define "qorch.operatorSelectorLabels" -}}
{{ include "qorch.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* The operator's ServiceAccount. */}}
{{- define "qorch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "qorch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference, tag defaulting to the chart's appVersion. */}}
{{- define "qorch.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding the operator's identity (created by the operator, not by Helm). */}}
{{- define "qorch.identitySecretName" -}}
{{- default (printf "%s-identity" (include "qorch.fullname" .)) .Values.operator.identitySecretName }}
{{- end }}

{{/* The Secret of trusted submitter keys, or nothing when jobs need no signature. */}}
{{- define "qorch.trustedSubmittersSecret" -}}
{{- if .Values.trustedSubmitters.existingSecret }}
{{- .Values.trustedSubmitters.existingSecret }}
{{- else if .Values.trustedSubmitters.keys }}
{{- printf "%s-trusted-submitters" (include "qorch.fullname" .) }}
{{- end }}
{{- end }}

{{/* "true" when DistributedJobs must be signed (some trusted submitter key is configured). */}}
{{- define "qorch.signedJobs" -}}
{{- $t := .Values.trustedSubmitters }}
{{- if or $t.keys $t.existingSecret $t.namespaces $t.required }}true{{ end }}
{{- end }}

{{/* The ConfigMap recording the nonces of admitted signed jobs. */}}
{{- define "qorch.nonceRecordName" -}}
{{- printf "%s-submitter-nonces" (include "qorch.fullname" .) }}
{{- end }}

{{/* Trusted key entries (<name>.pub, .notBefore, .notAfter) of a map of keys. */}}
{{- define "qorch.trustedKeyEntries" -}}
{{- range $name, $key := . }}
{{- if kindIs "map" $key }}
{{ printf "%s.pub" $name }}: {{ $key.publicKey | trim | quote }}
{{- with $key.notBefore }}
{{ printf "%s.notBefore" $name }}: {{ . | quote }}
{{- end }}
{{- with $key.notAfter }}
{{ printf "%s.notAfter" $name }}: {{ . | quote }}
{{- end }}
{{- else }}
{{ printf "%s.pub" $name }}: {{ $key | trim | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Watched namespaces as a JSON list (namespaced mode); the release namespace by default. */}}
{{- define "qorch.watchedNamespaces" -}}
{{- $namespaces := .Values.watch.namespaces | default (list .Release.Namespace) }}
{{- $namespaces | uniq | toJson }}
{{- end }}

{{/* Namespaces of the QPU agent pods, for their NetworkPolicies, as a JSON list. */}}
{{- define "qorch.agentNamespaces" -}}
{{- if .Values.networkPolicy.namespaces }}
{{- .Values.networkPolicy.namespaces | uniq | toJson }}
{{- else if .Values.watch.clusterWide }}
{{- list .Release.Namespace | toJson }}
{{- else }}
{{- include "qorch.watchedNamespaces" . }}
{{- end }}
{{- end }}

{{/*
The namespaces the operator reaches QPU agents in, as a NetworkPolicy namespaceSelector:
those of qorch.agentNamespaces, or any in cluster-wide mode unless networkPolicy.namespaces
names them.
*/}}
{{- define "qorch.agentNamespaceSelector" -}}
{{- if and .Values.watch.clusterWide (not .Values.networkPolicy.namespaces) -}}
{}
{{- else -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: In
    values: {{ include "qorch.agentNamespaces" . }}
{{- end }}
{{- end }}

{{/* The dashboard labels as `key=value` text, for NOTES.txt. */}}
{{- define "qorch.dashboardLabelText" -}}
{{- $pairs := list }}
{{- range $key, $value := .Values.dashboards.labels }}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/* The operator's leader-election Lease, in the release namespace. */}}
{{- define "qorch.leaseName" -}}
{{ include "qorch.fullname" . }}-leader
{{- end }}
