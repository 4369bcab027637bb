{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "sse-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. If the release name already contains the chart name it is
used as is. Truncated to leave room for the "-redis" suffix.
*/}}
{{- define "sse-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 57 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 57 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 57 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sse-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object of the release. */}}
{{- define "sse-gateway.labels" -}}
helm.sh/chart: {{ include "sse-gateway.chart" . }}
app.kubernetes.io/name: {{ include "sse-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector of the gateway pods (component keeps the Redis pod out of it). */}}
{{- define "sse-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sse-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{/* Selector of the bundled Redis pod. */}}
{{- define "sse-gateway.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ include "sse-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end }}

{{- define "sse-gateway.redisFullname" -}}
{{- printf "%s-redis" (include "sse-gateway.fullname" .) }}
{{- end }}

{{- define "sse-gateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Name of the Secret holding API_KEYS. */}}
{{- define "sse-gateway.secretName" -}}
{{- if .Values.existingSecret }}
{{- .Values.existingSecret }}
{{- else }}
{{- include "sse-gateway.fullname" . }}
{{- end }}
{{- end }}

{{/*
API keys for the chart's Secret: the value given, else the one already stored in the
Secret (so upgrades keep it), else a new random key.
*/}}
{{- define "sse-gateway.apiKeys" -}}
{{- if .Values.apiKeys }}
{{- .Values.apiKeys }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "sse-gateway.fullname" .) }}
{{- if and $existing $existing.data (index $existing.data "API_KEYS") }}
{{- index $existing.data "API_KEYS" | b64dec }}
{{- else }}
{{- randAlphaNum 40 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The REDIS_URL env entry (a list item), or nothing for a single in-memory node.
Fails when several replicas would run without Redis: they could not share topics.
*/}}
{{- define "sse-gateway.redisUrlEnv" -}}
{{- if .Values.redis.enabled }}
- name: REDIS_URL
  value: {{ printf "redis://%s:%d" (include "sse-gateway.redisFullname" .) (int .Values.redis.port) | quote }}
{{- else if .Values.externalRedis.existingSecret }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.externalRedis.existingSecret }}
      key: {{ .Values.externalRedis.existingSecretKey }}
{{- else if .Values.externalRedis.url }}
- name: REDIS_URL
  value: {{ .Values.externalRedis.url | quote }}
{{- else if gt (int .Values.replicaCount) 1 }}
{{- fail "redis.enabled=false needs externalRedis.url or externalRedis.existingSecret: replicas without Redis cannot share topics (or set replicaCount=1 for a single in-memory node)" }}
{{- end }}
{{- end }}
