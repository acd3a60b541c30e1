{{/* Chart name, truncated to what a label value allows. */}}
{{- define "zeromesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name prefix: <release>-zeromesh, or the release name when it already contains the chart name. */}}
{{- define "zeromesh.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "zeromesh.controller" -}}{{ include "zeromesh.fullname" . }}-controller{{- end -}}
{{- define "zeromesh.agent" -}}{{ include "zeromesh.fullname" . }}-agent{{- end -}}
{{- define "zeromesh.caSecret" -}}{{ default (printf "%s-ca" (include "zeromesh.fullname" .)) .Values.ca.existingSecret }}{{- end -}}
{{/* The trust bundle (root certificates only, key root-cert.pem) the controller publishes for agents: the way istiod
publishes istio-ca-root-cert. Agents mount this, never the CA Secret. */}}
{{- define "zeromesh.trustBundle" -}}{{ include "zeromesh.fullname" . }}-ca-root-cert{{- end -}}
{{- define "zeromesh.joinSecret" -}}{{ default (printf "%s-join-tokens" (include "zeromesh.fullname" .)) .Values.joinTokens.existingSecret }}{{- end -}}

{{/* Labels on every object; pass a dict with "ctx" (the root context) and "component". */}}
{{- define "zeromesh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{ include "zeromesh.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: zeromesh
{{- end -}}

{{- define "zeromesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zeromesh.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* "<registry>/<repository>:<tag>"; pass a dict with "ctx" and "image". */}}
{{- define "zeromesh.image" -}}
{{- $repo := .image.repository -}}
{{- if .ctx.Values.imageRegistry -}}{{- $repo = printf "%s/%s" (trimSuffix "/" .ctx.Values.imageRegistry) $repo -}}{{- end -}}
{{- printf "%s:%s" $repo (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* The controller's in-cluster address agents dial: a gRPC DNS target resolving to every replica (headless
Service); gRPC's pick_first keeps the first that accepts, the leader. */}}
{{- define "zeromesh.controllerAddress" -}}
dns:///{{ include "zeromesh.controller" . }}.{{ .Release.Namespace }}.svc:{{ .Values.controller.service.grpcPort }}
{{- end -}}

{{/* Whether a join-token Secret is there to mount (given, or rendered from joinTokens.nodes). */}}
{{- define "zeromesh.joinEnabled" -}}
{{- if or .Values.joinTokens.existingSecret .Values.joinTokens.nodes -}}true{{- end -}}
{{- end -}}

{{/* Where the projected ServiceAccount token appears in the agent container. */}}
{{- define "zeromesh.agentTokenPath" -}}/var/run/secrets/zeromesh/token{{- end -}}
