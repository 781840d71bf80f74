{{/* Chart name, truncated for label values. */}}
{{- define "resq.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped name: <release>-resq, or the release name when it already says resq. */}}
{{- define "resq.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object (Helm's app.kubernetes.io conventions). */}}
{{- define "resq.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
app.kubernetes.io/name: {{ include "resq.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: resq
{{- end -}}

{{/* Selector labels of one component: call with (dict "root" $ "component" "web"). */}}
{{- define "resq.selectorLabels" -}}
app.kubernetes.io/name: {{ include "resq.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "resq.componentLabels" -}}
{{ include "resq.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Redis host and port: the in-chart StatefulSet's Service, or the external one. */}}
{{- define "resq.redisHost" -}}
{{- if .Values.redis.enabled -}}
{{- printf "%s-redis" (include "resq.fullname" .) -}}
{{- else -}}
{{- required "redis.external.host is required when redis.enabled is false" .Values.redis.external.host -}}
{{- end -}}
{{- end -}}

{{- define "resq.redisPort" -}}
{{- if .Values.redis.enabled -}}{{ .Values.redis.port }}{{- else -}}{{ .Values.redis.external.port }}{{- end -}}
{{- end -}}

{{/* "true" when Redis is a primary with replicas behind sentinels. */}}
{{- define "resq.sentinelMode" -}}
{{- if eq .Values.redis.mode "sentinel" -}}true{{- else if ne .Values.redis.mode "standalone" -}}
{{- fail "redis.mode must be standalone or sentinel" -}}{{- end -}}
{{- end -}}

{{/* The sentinels, comma-separated host:port: the in-chart pods (by their stable names
under the headless Service), or the external setup's. */}}
{{- define "resq.sentinels" -}}
{{- if .Values.redis.enabled -}}
{{- $name := printf "%s-redis-sentinel" (include "resq.fullname" .) -}}
{{- $addresses := list -}}
{{- range $i := until (int .Values.redis.sentinel.sentinels) -}}
{{- $addresses = append $addresses (printf "%s-%d.%s.%s.svc:%v" $name $i $name $.Release.Namespace $.Values.redis.sentinel.port) -}}
{{- end -}}
{{- join "," $addresses -}}
{{- else -}}
{{- join "," (required "redis.external.sentinels is required for an external Sentinel setup" .Values.redis.external.sentinels) -}}
{{- end -}}
{{- end -}}

{{- define "resq.redisSecret" -}}
{{- .Values.redis.auth.existingSecret | default (printf "%s-redis" (include "resq.fullname" .)) -}}
{{- end -}}

{{- define "resq.flowerSecret" -}}
{{- .Values.flower.existingSecret | default (printf "%s-flower" (include "resq.fullname" .)) -}}
{{- end -}}

{{/* Environment of a resq tier's container (call with (dict "root" $ "tier" "web")): the
Redis password and where Redis is, for every tier; API keys for the web tier, which
checks them; the webhook secret for the workers, which sign with it (the web tier is
only told that webhooks are on). */}}
{{- define "resq.env" -}}
{{- $tier := .tier }}
{{- with .root }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "resq.redisSecret" . }}
      key: {{ .Values.redis.auth.passwordKey }}
{{- if include "resq.sentinelMode" . }}
# The sentinels say where the primary is; REDIS_URL gives its password and database.
- name: REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@primary/%v" .Values.redis.database | quote }}
- name: REDIS_SENTINELS
  value: {{ include "resq.sentinels" . | quote }}
- name: REDIS_SENTINEL_MASTER
  value: {{ .Values.redis.sentinel.masterName | quote }}
- name: REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "resq.redisSecret" . }}
      key: {{ .Values.redis.auth.passwordKey }}
{{- else }}
- name: REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:%v/%v" (include "resq.redisHost" .) (include "resq.redisPort" .) .Values.redis.database | quote }}
{{- end }}
{{- if and .Values.apiKeysSecret (eq $tier "web") }}
- name: API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.apiKeysSecret }}
      key: API_KEYS
{{- end }}
{{- if .Values.webhookSecret }}
{{- if eq $tier "worker" }}
- name: WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .Values.webhookSecret }}
      key: WEBHOOK_SECRET
{{- else if eq $tier "web" }}
- name: WEBHOOKS_ENABLED
  value: "true"
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Spread a component's pods over nodes. */}}
{{- define "resq.antiAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "resq.selectorLabels" . | nindent 12 }}
{{- end -}}

{{/* Egress to Redis (and its sentinels): the in-chart pods, or the external range. */}}
{{- define "resq.redisEgress" -}}
- to:
{{- if .Values.redis.enabled }}
    - podSelector:
        matchLabels:
          {{- include "resq.selectorLabels" (dict "root" . "component" "redis") | nindent 10 }}
{{- if include "resq.sentinelMode" . }}
    - podSelector:
        matchLabels:
          {{- include "resq.selectorLabels" (dict "root" . "component" "redis-sentinel") | nindent 10 }}
{{- end }}
{{- else }}
    - ipBlock:
        cidr: {{ .Values.redis.external.cidr }}
{{- end }}
  ports:
    - port: {{ include "resq.redisPort" . }}
      protocol: TCP
{{- if include "resq.sentinelMode" . }}
{{- if .Values.redis.enabled }}
    - port: {{ .Values.redis.sentinel.port }}
      protocol: TCP
{{- else }}
{{- $ports := list }}
{{- range $address := .Values.redis.external.sentinels }}
{{- $ports = append $ports (last (splitList ":" $address)) }}
{{- end }}
{{- range $port := uniq $ports }}
    - port: {{ $port }}
      protocol: TCP
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "resq.dnsEgress" -}}
- to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end -}}
