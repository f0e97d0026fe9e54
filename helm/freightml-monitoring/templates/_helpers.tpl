{{/* The chart name. */}}
{{- define "freightml-monitoring.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: <release>-<chart>, or the release when it already contains the chart name. */}}
{{- define "freightml-monitoring.fullname" -}}
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
{{- define "freightml-monitoring.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "freightml-monitoring.labels" -}}
helm.sh/chart: {{ include "freightml-monitoring.chart" . }}
{{ include "freightml-monitoring.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: freightml
{{- end }}

{{/* Selector labels (never the chart version); a component label is added per workload. */}}
{{- define "freightml-monitoring.selectorLabels" -}}
app.kubernetes.io/name: {{ include "freightml-monitoring.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Restricted Pod Security: pod level. Argument: the UID. */}}
{{- define "freightml-monitoring.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Restricted Pod Security: container level. */}}
{{- define "freightml-monitoring.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* NetworkPolicy egress rule: DNS to the cluster resolver (kube-dns in kube-system). */}}
{{- define "freightml-monitoring.dnsEgress" -}}
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
{{- define "freightml-monitoring.storeEgress" -}}
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
{{- define "freightml-monitoring.clientPeers" -}}
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


{{- define "freightml-monitoring.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- if .Values.image.digest }}{{- $ref = printf "%s@%s" $ref .Values.image.digest }}{{- end }}
{{- $ref }}
{{- end }}

{{/* Env of every FreightML container: the store URL by reference, the writable home. */}}
{{- define "freightml-monitoring.env" -}}
- name: FREIGHTML_STORE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.store }}
      key: {{ .Values.secrets.storeUrlKey }}
- name: FREIGHTML_HOME
  value: /var/lib/freightml
{{- if .Values.settings }}
- name: FREIGHTML_CONFIG
  value: /etc/freightml/freightml.yaml
{{- end }}
{{- end }}

{{/* Env of the jobs that read the registry: the MLflow Secret's keys by reference. */}}
{{- define "freightml-monitoring.mlflowEnv" -}}
- name: MLFLOW_TRACKING_URI
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.mlflow }}
      key: MLFLOW_TRACKING_URI
{{- range list "MLFLOW_TRACKING_USERNAME" "MLFLOW_TRACKING_PASSWORD" "MLFLOW_S3_ENDPOINT_URL" "AWS_ACCESS_KEY_ID" "AWS_SECRET_ACCESS_KEY" }}
- name: {{ . }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.secrets.mlflow }}
      key: {{ . }}
      optional: true
{{- end }}
{{- end }}

{{/* Volume mounts of every FreightML container: writable home and /tmp, the settings. */}}
{{- define "freightml-monitoring.volumeMounts" -}}
- name: home
  mountPath: /var/lib/freightml
- name: tmp
  mountPath: /tmp
{{- if .Values.settings }}
- name: settings
  mountPath: /etc/freightml/freightml.yaml
  subPath: freightml.yaml
  readOnly: true
{{- end }}
{{- end }}

{{- define "freightml-monitoring.volumes" -}}
- name: home
  emptyDir:
    sizeLimit: 2Gi
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- if .Values.settings }}
- name: settings
  configMap:
    name: {{ include "freightml-monitoring.fullname" . }}-settings
{{- end }}
{{- end }}

{{/* The pod spec shared by the monitor and retraining CronJobs. Argument: dict root, component, args, resources, mlflow. */}}
{{- define "freightml-monitoring.jobPod" -}}
{{- $ := .root }}
metadata:
  labels:
    {{- include "freightml-monitoring.labels" $ | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
    # the tracking chart's NetworkPolicy admits MLflow clients by this label
    freightml.io/tracking-client: "true"
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "freightml-monitoring.fullname" $ }}-jobs
  automountServiceAccountToken: false
  {{- with $.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  securityContext:
    {{- include "freightml-monitoring.podSecurityContext" 10001 | nindent 4 }}
  containers:
    # a run-to-completion Job: no probes (nothing to route traffic to or restart)
    - name: {{ .component }}
      image: {{ include "freightml-monitoring.image" $ }}
      imagePullPolicy: {{ $.Values.image.pullPolicy }}
      command:
        {{- toYaml .command | nindent 8 }}
      env:
        {{- include "freightml-monitoring.env" $ | nindent 8 }}
        {{- include "freightml-monitoring.mlflowEnv" $ | nindent 8 }}
        {{- with .extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      securityContext:
        {{- include "freightml-monitoring.containerSecurityContext" $ | nindent 8 }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      volumeMounts:
        {{- include "freightml-monitoring.volumeMounts" $ | nindent 8 }}
        {{- with .extraMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    {{- include "freightml-monitoring.volumes" $ | nindent 4 }}
    {{- with .extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
