{{- define "pio.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pio.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "pio.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "pio.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "pio.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pio.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pio.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pio.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Secret with default credentials, if any. */}}
{{- define "pio.credentialsSecret" -}}
{{- if .Values.defaultCredentials.existingSecret -}}
{{- .Values.defaultCredentials.existingSecret -}}
{{- else if .Values.defaultCredentials.create -}}
{{- printf "%s-credentials" (include "pio.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* RBAC rules: exactly the calls listed in src/rbac.rs (checked by .ci/charts). */}}
{{- define "pio.rules" -}}
- apiGroups: ["pim.confluent.cloud"]
  resources: ["providerintegrations"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["pim.confluent.cloud"]
  resources: ["providerintegrations/status"]
  verbs: ["patch"]
- apiGroups: ["pim.confluent.cloud"]
  resources: ["providerintegrations/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* Namespaces are cluster-scoped: followed by one metadata-only watch (grants and pauses), granted
by a ClusterRole even in a namespace-scoped install. */}}
{{- define "pio.namespaceRules" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end -}}
