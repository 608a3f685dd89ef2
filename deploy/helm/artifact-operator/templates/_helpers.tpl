{{- define "artifact-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "artifact-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "artifact-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "artifact-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "artifact-operator.labels" -}}
{{ include "artifact-operator.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "artifact-operator.serviceAccountName" -}}
{{ include "artifact-operator.fullname" . }}
{{- end -}}

{{/* The rules of the manager role: what the operator does, nothing more. */}}
{{- define "artifact-operator.managerRules" -}}
- apiGroups: [workload.dev]
  resources: [artifacts]
  verbs: [get, list, watch, patch]
- apiGroups: [workload.dev]
  resources: [artifacts/status]
  verbs: [get, patch]
- apiGroups: [workload.dev]
  resources: [artifacts/finalizers]
  verbs: [update]
# Approvals are only read: admins write them (artifact-admin), never the operator.
- apiGroups: [workload.dev]
  resources: [artifactapprovals]
  verbs: [get, list, watch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services, persistentvolumeclaims]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, delete]
# runtime.<group>.expose (Ingress, HTTPRoute) and .metrics (ServiceMonitor).
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
- apiGroups: [""]
  resources: [events]
  verbs: [create, list]
# Image builds: created once per source digest and read; never changed or deleted here.
# (The Jobs' pods: read with the pods rule above, for the builder's termination message.)
- apiGroups: [shipwright.io]
  resources: [buildruns]
  verbs: [get, list, watch, create]
# Model cache warm-ups use the same Job rights: created once per claim and image, read,
# never changed or deleted (they go with their claim); the claim is marked warm by a patch.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create]
{{- end -}}

{{- define "artifact-operator.webhookCertSecret" -}}
{{ include "artifact-operator.fullname" . }}-webhook-cert
{{- end -}}

{{/*
policy/v1 from Kubernetes 1.21 (v1beta1 is gone from 1.25). `helm install` sees the server's
API versions; `helm template` sees Helm's defaults unless given --kube-version or --api-versions,
so both must say v1.
*/}}
{{- define "artifact-operator.pdbApiVersion" -}}
{{- if and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end }}

{{/*
The namespaces the webhooks are called for. From 1.21 every namespace carries its name as the
label kubernetes.io/metadata.name, so a namespaced install selects its watchNamespaces by it.
A 1.20 server sets no such label: the webhooks are called for every namespace, and the
operator (run with --namespace for each watched one) admits what is outside them unjudged.
*/}}
{{- define "artifact-operator.webhookNamespaceSelector" -}}
{{- if and .Values.watchNamespaces (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: In
      values:
        {{- toYaml .Values.watchNamespaces | nindent 8 }}
{{- end -}}
{{- end }}
