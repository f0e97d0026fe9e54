{{/* The chart name. */}}
{{- define "freightml-tracking.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: <release>-<chart>, or the release when it already contains the chart name. */}}
{{- define "freightml-tracking.fullname" -}}
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

{{/* chart label value: name-version */}}
{{- define "freightml-tracking.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "freightml-tracking.labels" -}}
helm.sh/chart: {{ include "freightml-tracking.chart" . }}
{{ include "freightml-tracking.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: freightml
{{- end }}

{{/* Selector labels (never the chart version); a component label is added per workload. */}}
{{- define "freightml-tracking.selectorLabels" -}}
app.kubernetes.io/name: {{ include "freightml-tracking.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "freightml-tracking.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "freightml-tracking.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "freightml-tracking.postgresName" -}}
{{- printf "%s-postgresql" (include "freightml-tracking.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "freightml-tracking.image" -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end }}

{{/* Restricted Pod Security: pod level. Argument: the UID. */}}
{{- define "freightml-tracking.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Restricted Pod Security: container level. */}}
{{- define "freightml-tracking.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Env: MLFLOW_BACKEND_STORE_URI from the external Secret, or the bundled PostgreSQL's URL with PGPASSWORD beside it. */}}
{{- define "freightml-tracking.backendEnv" -}}
{{- if eq .Values.backendStore.type "external" }}
{{- if not .Values.backendStore.external.existingSecret }}
{{- fail "backendStore.type=external needs backendStore.external.existingSecret (a Secret with the database URL)" }}
{{- end }}
- name: MLFLOW_BACKEND_STORE_URI
  valueFrom:
    secretKeyRef:
      name: {{ .Values.backendStore.external.existingSecret }}
      key: {{ .Values.backendStore.external.uriKey }}
{{- else }}
{{- /* no password in the URL: libpq (psycopg2) reads PGPASSWORD */}}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.postgresql.existingSecret }}
      key: {{ .Values.postgresql.passwordKey }}
- name: MLFLOW_BACKEND_STORE_URI
  value: {{ printf "postgresql+psycopg2://%s@%s:5432/%s" .Values.postgresql.username (include "freightml-tracking.postgresName" .) .Values.postgresql.database | quote }}
{{- end }}
{{- end }}

{{/* Env: S3 credentials and endpoint by reference. */}}
{{- define "freightml-tracking.s3Env" -}}
{{- if eq .Values.artifacts.type "s3" }}
{{- with .Values.artifacts.s3 }}
- name: MLFLOW_S3_ENDPOINT_URL
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .endpointKey }}
      optional: true
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .secretAccessKeyKey }}
{{- if .region }}
- name: AWS_DEFAULT_REGION
  value: {{ .region | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* --allowed-hosts: the Service's names (with and without port), localhost, the Ingress host, extras. */}}
{{- define "freightml-tracking.allowedHosts" -}}
{{- $svc := include "freightml-tracking.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $port := .Values.service.port | toString }}
{{- $hosts := list "localhost" (printf "localhost:%s" (.Values.server.port | toString)) "127.0.0.1" (printf "127.0.0.1:%s" (.Values.server.port | toString)) }}
{{- range $name := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) }}
{{- $hosts = append $hosts $name }}
{{- $hosts = append $hosts (printf "%s:%s" $name $port) }}
{{- end }}
{{- if .Values.ingress.enabled }}
{{- $hosts = append $hosts .Values.ingress.host }}
{{- end }}
{{- /* pod IPs (RFC 1918), as MLflow's own default: Prometheus scrapes by pod IP */}}
{{- $hosts = concat $hosts (list "10.*" "192.168.*") }}
{{- range $i := untilStep 16 32 1 }}
{{- $hosts = append $hosts (printf "172.%d.*" $i) }}
{{- end }}
{{- $hosts = concat $hosts .Values.server.allowedHosts }}
{{- join "," (uniq $hosts) }}
{{- end }}

{{/* NetworkPolicy egress rule: DNS to the cluster resolver (kube-dns in kube-system). */}}
{{- define "freightml-tracking.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end }}

{{/*
Egress to a store (networkPolicy.database or .objectStore): its CIDRs on its port; with no
CIDRs, addresses outside the private ranges only (a public endpoint, e.g. S3 over HTTPS).
*/}}
{{- define "freightml-tracking.storeEgress" -}}
- to:
    {{- if .cidrs }}
    {{- range .cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
    {{- else }}
    - ipBlock:
        cidr: 0.0.0.0/0
        except: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
    {{- end }}
  ports:
    - protocol: TCP
      port: {{ .port }}
{{- end }}

{{/*
The peers networkPolicy.clients admits: pods with those labels, in the listed namespaces or
(none listed) the release's namespace. Whole namespaces are never admitted.
*/}}
{{- define "freightml-tracking.clientPeers" -}}
{{- range .Values.networkPolicy.clients }}
{{- $labels := .podLabels }}
{{- if .namespaces }}
{{- range .namespaces }}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ . }}
  podSelector:
    matchLabels:
      {{- toYaml $labels | nindent 6 }}
{{- end }}
{{- else }}
- podSelector:
    matchLabels:
      {{- toYaml $labels | nindent 6 }}
{{- end }}
{{- end }}
{{- end }}
