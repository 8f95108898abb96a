{{/* Names, labels and the values the templates share. Names are cut to 63 characters, the
limit of a DNS label. */}}

{{- define "tensor-fusion.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tensor-fusion.fullname" -}}
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

{{/* "<fullname>-<part>", cut so that the part always shows. */}}
{{- define "tensor-fusion.componentName" -}}
{{- $part := .part }}
{{- printf "%s-%s" (include "tensor-fusion.fullname" .root | trunc (int (sub 62 (len $part))) | trimSuffix "-") $part }}
{{- end }}

{{- define "tensor-fusion.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tensor-fusion.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tensor-fusion.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tensor-fusion.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tensor-fusion.labels" -}}
helm.sh/chart: {{ include "tensor-fusion.chart" . }}
{{ include "tensor-fusion.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* A component's selector labels: dict "root" $ "component" "controller". */}}
{{- define "tensor-fusion.componentSelectorLabels" -}}
{{ include "tensor-fusion.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tensor-fusion.componentLabels" -}}
{{ include "tensor-fusion.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tensor-fusion.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tensor-fusion.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tensor-fusion.agentServiceAccountName" -}}
{{- include "tensor-fusion.componentName" (dict "root" . "part" "agent") }}
{{- end }}

{{/* An image reference: dict "image" .Values.x.image "root" $. */}}
{{- define "tensor-fusion.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* The scheduler's ConfigMap: the guide's name (R8), whatever the release is called. */}}
{{- define "tensor-fusion.schedulerConfigMap" -}}
tensor-fusion-sys-config
{{- end }}

{{/* The controller flags the chart sets itself; controller.command may not give them. */}}
{{- define "tensor-fusion.chartFlags" -}}
health-probe-bind-address api-bind-address webhook-port webhook-cert-dir webhook-image scheduler-config dynamic-config nvidia-operator-progressive-migration namespace
{{- end }}

{{/* controller.command as a list of flags: the program name (upstream's /manager) dropped,
and `fail` on a flag the chart owns. */}}
{{- define "tensor-fusion.userFlags" -}}
{{- $command := .Values.controller.command | default list }}
{{- if not (kindIs "slice" $command) }}
{{- fail "controller.command: must be a list of strings" }}
{{- end }}
{{- if and $command (not (hasPrefix "-" (toString (first $command)))) }}
{{- $command = rest $command }}
{{- end }}
{{- $owned := splitList " " (include "tensor-fusion.chartFlags" .) }}
{{- range $command }}
{{- $flag := toString . }}
{{- if hasPrefix "-" $flag }}
{{- $name := $flag | trimPrefix "-" | trimPrefix "-" | splitList "=" | first }}
{{- if has $name $owned }}
{{- fail (printf "controller.command: %s is set by the chart (remove it; see values.yaml)" $flag) }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $command }}
{{- end }}

{{/* The value given to a controller flag in controller.command (as -name v or -name=v), or
"" when the flag is absent: dict "flags" (list) "name" "metrics-bind-address". */}}
{{- define "tensor-fusion.flagValue" -}}
{{- $value := "" }}
{{- $next := false }}
{{- range .flags }}
{{- $arg := toString . }}
{{- if $next }}
{{- $value = $arg }}
{{- $next = false }}
{{- else if hasPrefix "-" $arg }}
{{- $parts := $arg | trimPrefix "-" | trimPrefix "-" | splitList "=" }}
{{- if eq (first $parts) $.name }}
{{- if gt (len $parts) 1 }}
{{- $value = join "=" (rest $parts) }}
{{- else }}
{{- $next = true }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $value }}
{{- end }}

{{/* Whether a boolean controller flag is on in controller.command: "true" or "". */}}
{{- define "tensor-fusion.flagOn" -}}
{{- $on := false }}
{{- range .flags }}
{{- $parts := toString . | trimPrefix "-" | trimPrefix "-" | splitList "=" }}
{{- if and (hasPrefix "-" (toString .)) (eq (first $parts) $.name) }}
{{- $on = or (eq (len $parts) 1) (has (index $parts 1) (list "1" "t" "T" "true" "TRUE" "True")) }}
{{- end }}
{{- end }}
{{- if $on }}true{{ end }}
{{- end }}

{{/* The port of the controller's -metrics-bind-address, or "" when metrics are off. */}}
{{- define "tensor-fusion.metricsPort" -}}
{{- $flags := include "tensor-fusion.userFlags" . | fromJsonArray }}
{{- $address := include "tensor-fusion.flagValue" (dict "flags" $flags "name" "metrics-bind-address") }}
{{- if and $address (ne $address "0") }}
{{- $port := splitList ":" $address | last }}
{{- if not (regexMatch "^[0-9]+$" $port) }}
{{- fail (printf "controller.command: -metrics-bind-address %q has no port" $address) }}
{{- end }}
{{- $port }}
{{- end }}
{{- end }}

{{/* Where the chart's Alertmanager answers. */}}
{{- define "tensor-fusion.alertmanagerAddr" -}}
{{- printf "%s.%s.svc:9093" (include "tensor-fusion.componentName" (dict "root" . "part" "alertmanager")) (include "tensor-fusion.namespace" .) }}
{{- end }}

{{/* The GreptimeDB the controller and agent write to: the chart's own or greptime.host. */}}
{{- define "tensor-fusion.greptimeHost" -}}
{{- if .Values.greptime.installStandalone }}
{{- printf "%s.%s.svc" (include "tensor-fusion.componentName" (dict "root" . "part" "greptimedb")) (include "tensor-fusion.namespace" .) }}
{{- else if .Values.greptime.host }}
{{- .Values.greptime.host }}
{{- else }}
{{- fail "greptime.host: required when greptime.installStandalone is false" }}
{{- end }}
{{- end }}

{{/* `fail` unless a replica count is at least 1: dict "field" "alert.replicaCount" "value" n. */}}
{{- define "tensor-fusion.checkReplicas" -}}
{{- if lt (int .value) 1 }}
{{- fail (printf "%s: must be a whole number of at least 1, got %v" .field .value) }}
{{- end }}
{{- end }}
