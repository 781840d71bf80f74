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

{{- define "resq.redisSecret" -}}
{{- .Values.redis.auth.existingSecret | default (printf "%s-redis" (include "resq.fullname" .)) -}}
{{- end -}}

{{- define "resq.flowerSecret" -}}
{{- .Values.flower.existingSecret | default (printf "%s-flower" (include "resq.fullname" .)) -}}
{{- end -}}

{{/* Environment every resq container gets: settings, the Redis password and URL, API keys. */}}
{{- define "resq.env" -}}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "resq.redisSecret" . }}
      key: {{ .Values.redis.auth.passwordKey }}
- name: REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:%v/%v" (include "resq.redisHost" .) (include "resq.redisPort" .) .Values.redis.database | quote }}
{{- if .Values.apiKeysSecret }}
- name: API_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ .Values.apiKeysSecret }}
      key: API_KEYS
{{- end }}
{{- if .Values.webhookSecret }}
- name: WEBHOOK_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ .Values.webhookSecret }}
      key: WEBHOOK_SECRET
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

{{/* Egress to Redis: the in-chart pods, or the external Redis's range. */}}
{{- define "resq.redisEgress" -}}
- to:
{{- if .Values.redis.enabled }}
    - podSelector:
        matchLabels:
          {{- include "resq.selectorLabels" (dict "root" . "component" "redis") | nindent 10 }}
{{- else }}
    - ipBlock:
        cidr: {{ .Values.redis.external.cidr }}
{{- end }}
  ports:
    - port: {{ include "resq.redisPort" . }}
      protocol: TCP
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
