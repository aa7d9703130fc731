{{/* Names and labels shared by every object of the chart. */}}
{{- define "herald.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "herald.labels" -}}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The headless service through which the peers find each other. */}}
{{- define "herald.peers" -}}
{{ include "herald.fullname" . }}-peers
{{- end -}}

{{/* Pod N's stable DNS name (N counts from 0; its node id is N+1). */}}
{{- define "herald.podHost" -}}
{{- $ := index . 0 -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "herald.fullname" $) (index . 1) (include "herald.peers" $) $.Release.Namespace $.Values.clusterDomain -}}
{{- end -}}

{{/* The scheme of the HTTP endpoints (probes, scrapes). */}}
{{- define "herald.httpScheme" -}}
{{- if .Values.tls.enabled }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}

{{/* PDB: how many pods may be down at once. Never more than keeps a majority, and one fewer
     than that from five nodes on, so an unplanned loss during a planned one keeps it too:
     3 -> 1, 5 -> 1, 7 -> 2. */}}
{{- define "herald.maxUnavailable" -}}
{{- $n := int .Values.replicas -}}
{{- $spare := sub (div (sub $n 1) 2) 1 -}}
{{- if lt $spare 1 }}1{{ else }}{{ $spare }}{{ end -}}
{{- end -}}

{{/* The container's grace: the node's own drain on SIGTERM, then a margin to flush and
     exit. */}}
{{- define "herald.terminationGrace" -}}
{{- add (int .Values.drain.timeoutSeconds) 15 -}}
{{- end -}}

{{/* Node config of pod N (node id N+1): TOML, as `herald node --config` reads it. */}}
{{- define "herald.nodeConfig" -}}
{{- $ := index . 0 -}}
{{- $i := index . 1 -}}
{{- $v := $.Values -}}
# Node {{ add $i 1 }} of {{ include "herald.fullname" $ }} (rendered by the Helm chart).
node-id = {{ add $i 1 }}
grpc-listen = "0.0.0.0:{{ $v.ports.grpc }}"
raft-listen = "0.0.0.0:{{ $v.ports.raft }}"
http-listen = "0.0.0.0:{{ $v.ports.http }}"
data-dir = "/var/lib/herald/data"
shutdown-drain-timeout-ms = {{ mul (int $v.drain.timeoutSeconds) 1000 }}
{{- if not $v.tls.enabled }}
insecure = true
{{- end }}

{{- range $p := until (int $v.replicas) }}

[[peers]]
id = {{ add $p 1 }}
grpc = "{{ include "herald.podHost" (list $ $p) }}:{{ $v.ports.grpc }}"
raft = "{{ include "herald.podHost" (list $ $p) }}:{{ $v.ports.raft }}"
{{- end }}
{{- if $v.tls.enabled }}

[tls]
cluster = {{ $v.tls.cluster | quote }}
ca = "/etc/herald/tls/ca.pem"
cert = "/etc/herald/tls/node-{{ add $i 1 }}.pem"
key = "/etc/herald/tls/node-{{ add $i 1 }}.key"
{{- end }}
{{- if $v.auth.adminKeySha256 }}

[auth]
admin-key-sha256 = [{{ range $k, $h := $v.auth.adminKeySha256 }}{{ if $k }}, {{ end }}{{ $h | quote }}{{ end }}]
{{- end }}
{{- range $l, $link := $v.links }}

[[links]]
name = {{ $link.name | quote }}
protocol = {{ $link.protocol | quote }}
address = {{ $link.address | quote }}
account = {{ $link.account | quote }}
secret-file = "/etc/herald/links/{{ $l }}/password"
{{- with $link.serviceId }}
service-id = {{ . | quote }}
{{- end }}
{{- with $link.srcId }}
src-id = {{ . | quote }}
{{- end }}
{{- with $link.maxWindow }}
max-window = {{ . }}
{{- end }}
{{- with $link.maxPerSecond }}
max-per-second = {{ . }}
{{- end }}
{{- with $link.connections }}
connections = {{ . }}
{{- end }}
{{- with $link.options }}
{{- $kv := list }}
{{- range $k, $o := . }}{{ $kv = append $kv (printf "%s = %s" ($k | quote) ($o | toString | quote)) }}{{ end }}
options = { {{ join ", " $kv }} }
{{- end }}
{{- end }}
{{- with $v.extraConfig }}

{{ . }}
{{- end }}
{{- end -}}
