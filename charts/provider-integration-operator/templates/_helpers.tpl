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
{{/* The trust objects (spec.trust) of each cloud operator's kind, only when turned on. */}}
{{- if .Values.trust.ackRole }}
- apiGroups: ["iam.services.k8s.aws"]
  resources: ["roles"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}
{{- if .Values.trust.crossplaneRole }}
- apiGroups: ["iam.aws.m.upbound.io"]
  resources: ["roles"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}
{{- if .Values.trust.configConnectorPolicyMember }}
- apiGroups: ["iam.cnrm.cloud.google.com"]
  resources: ["iampolicymembers"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}
{{- if .Values.trust.crossplanePrincipal }}
- apiGroups: ["serviceprincipals.azuread.m.upbound.io"]
  resources: ["principals"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}
{{- end -}}

{{/* Namespaces are cluster-scoped: followed by one metadata-only watch (grants and pauses), granted
by a ClusterRole even in a namespace-scoped install. */}}
{{- define "pio.namespaceRules" -}}
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{/* Cluster-scoped trust objects, only when turned on (and used only where a Namespace is granted
them, pim.confluent.cloud/cluster-trust). */}}
{{- if .Values.trust.crossplaneClusterRole }}
- apiGroups: ["iam.aws.upbound.io"]
  resources: ["roles"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}
{{- if .Values.trust.crossplaneClusterPrincipal }}
- apiGroups: ["serviceprincipals.azuread.upbound.io"]
  resources: ["principals"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}
{{- end -}}
