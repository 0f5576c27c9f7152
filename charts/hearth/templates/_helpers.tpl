{{/* Names, labels, images and the checks that span several values. */}}

{{- define "hearth.chart" -}}
{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels. app.kubernetes.io/part-of=hearth matters: the NetworkPolicy the operator puts
in every account namespace admits traffic to model servers only from pods of the operator's
namespace carrying it (the gateway and the operator).
*/}}
{{- define "hearth.labels" -}}
helm.sh/chart: {{ include "hearth.chart" . }}
app.kubernetes.io/part-of: hearth
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "hearth.operator.selector" -}}
app.kubernetes.io/name: hearth-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hearth.gateway.selector" -}}
app.kubernetes.io/name: hearth-gateway
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The operator's ServiceAccount and ClusterRole names are fixed: the operator's code binds
them by name (operator/hearth_operator/settings.py, constants.py). One release per cluster. */}}
{{- define "hearth.operator.name" -}}hearth-operator{{- end }}
{{- define "hearth.gateway.name" -}}hearth-gateway{{- end }}

{{/* image reference: (dict "root" $ "image" .Values.images.operator) */}}
{{- define "hearth.image" -}}
{{- $tag := .image.tag | default .root.Values.images.tag | default .root.Chart.AppVersion -}}
{{- if eq (.image.flavor | default "cpu") "cuda" }}{{ $tag = printf "%s-cuda" $tag }}{{ end -}}
{{ printf "%s/%s:%s" (.root.Values.images.registry | trimSuffix "/") .image.name $tag }}
{{- end }}

{{- define "hearth.pullSecrets" -}}
{{- with .Values.images.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* Gateway replicas: the value, or 2 with PostgreSQL and 1 with SQLite. */}}
{{- define "hearth.gateway.replicas" -}}
{{- $g := .Values.gateway -}}
{{- if kindIs "invalid" $g.replicas -}}
{{ ternary 2 1 (eq $g.ledger.type "postgresql") }}
{{- else -}}
{{ int $g.replicas }}
{{- end -}}
{{- end }}

{{/* Rules that span several values (values.schema.json checks each value alone). */}}
{{- define "hearth.validate" -}}
{{- $g := .Values.gateway -}}
{{- if and (eq $g.ledger.type "sqlite") (gt (int (include "hearth.gateway.replicas" .)) 1) -}}
{{- fail (printf "gateway.replicas: %v replicas need a shared ledger: the SQLite file serves one pod; set gateway.ledger.type=postgresql with gateway.ledger.postgresql.secretName, or gateway.replicas=1" $g.replicas) -}}
{{- end -}}
{{- if and (eq $g.ledger.type "postgresql") (not $g.ledger.postgresql.secretName) -}}
{{- fail "gateway.ledger.postgresql.secretName: required with gateway.ledger.type=postgresql (a Secret in the release namespace holding the database URL)" -}}
{{- end -}}
{{- if and $g.redis.url $g.redis.secretName -}}
{{- fail "gateway.redis: set url or secretName, not both" -}}
{{- end -}}
{{- if and $g.httpRoute.enabled (not $g.httpRoute.parentRefs) -}}
{{- fail "gateway.httpRoute.parentRefs: required with gateway.httpRoute.enabled=true (the Gateway(s) the route attaches to)" -}}
{{- end -}}
{{- if and $g.ingress.enabled (not $g.ingress.host) -}}
{{- fail "gateway.ingress.host: required with gateway.ingress.enabled=true" -}}
{{- end -}}
{{- if has .Values.platformAccount (list "default" "kube-system" "kube-public" "kube-node-lease" .Release.Namespace) -}}
{{- fail (printf "platformAccount: '%s' is a system namespace or the release namespace; an account owns a namespace of its name" .Values.platformAccount) -}}
{{- end -}}
{{- end }}
