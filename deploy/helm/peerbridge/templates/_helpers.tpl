{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "peerbridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: <release>-<chart>, or <release> when it already contains the chart name.
*/}}
{{- define "peerbridge.fullname" -}}
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

{{- define "peerbridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels shared by every object.
*/}}
{{- define "peerbridge.labels" -}}
helm.sh/chart: {{ include "peerbridge.chart" . }}
{{ include "peerbridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: peerbridge
{{- end }}

{{/*
Release-wide selector labels (every pod of this release, whatever its component).
*/}}
{{- define "peerbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "peerbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Selector of the server pods only (not the migration Job or the test pod), so that the
Service, the PodDisruptionBudget and the spread constraints see API replicas only.
*/}}
{{- define "peerbridge.serverSelectorLabels" -}}
{{ include "peerbridge.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "peerbridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "peerbridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: repository@digest when a digest is given, else repository:tag
(tag defaults to the chart's appVersion).
*/}}
{{- define "peerbridge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "peerbridge.testImage" -}}
{{- if .Values.tests.image.digest }}
{{- printf "%s@%s" .Values.tests.image.repository .Values.tests.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.tests.image.repository .Values.tests.image.tag }}
{{- end }}
{{- end }}

{{/*
Name of the Secret holding credentials: the operator's existingSecret, or the chart's.
*/}}
{{- define "peerbridge.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- include "peerbridge.fullname" . }}
{{- end }}
{{- end }}

{{/*
Secret consumed by the migration hook. Hooks run before regular objects exist on the
first install, so without existingSecret the chart renders a hook-scoped copy holding
DATABASE_URL only.
*/}}
{{- define "peerbridge.migrationSecretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- printf "%s-migration" (include "peerbridge.fullname" . | trunc 53 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{/*
The Secret's keys: environment variable name -> (values key, required).
Required keys are referenced with optional: false, so a pod without them fails to
start loudly instead of falling back to per-pod development keys or SQLite.
*/}}
{{- define "peerbridge.secretKeys" -}}
DATABASE_URL: {key: databaseUrl, required: true}
REDIS_URL: {key: redisUrl, required: false}
PEERBRIDGE_JWT_SIGNING_KEY: {key: jwtSigningKey, required: true}
PEERBRIDGE_JWT_SIGNING_KID: {key: jwtSigningKid, required: true}
PEERBRIDGE_JWT_VERIFY_KEYS: {key: jwtVerifyKeys, required: false}
PEERBRIDGE_FIELD_KEYS: {key: fieldKeys, required: true}
PEERBRIDGE_FIELD_KEY_ACTIVE: {key: fieldKeyActive, required: false}
PEERBRIDGE_INDEX_KEY: {key: indexKey, required: true}
PEERBRIDGE_VAPID_PRIVATE_KEY: {key: vapidPrivateKey, required: false}
{{- end }}

{{/*
Required secret values missing from secrets.values (empty when existingSecret is set).
*/}}
{{- define "peerbridge.missingSecrets" -}}
{{- $missing := list }}
{{- if not .Values.secrets.existingSecret }}
{{- range $env, $spec := include "peerbridge.secretKeys" . | fromYaml }}
{{- if and $spec.required (not (index $.Values.secrets.values $spec.key)) }}
{{- $missing = append $missing $env }}
{{- end }}
{{- end }}
{{- end }}
{{- join ", " $missing }}
{{- end }}

{{/*
Public URL: explicit, else https://<first ingress host>, else unset (server default).
*/}}
{{- define "peerbridge.publicUrl" -}}
{{- if .Values.config.publicUrl }}
{{- .Values.config.publicUrl }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- printf "https://%s" (first .Values.ingress.hosts).host }}
{{- end }}
{{- end }}

{{/*
Pod security context shared by the server, the migration Job and the test pod
(Pod Security Standards "restricted").
*/}}
{{- define "peerbridge.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "peerbridge.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Shutdown arithmetic, checked at render time: the grace period must outlast the preStop
sleep, the unready delay and the drain timeout.
*/}}
{{- define "peerbridge.checkShutdown" -}}
{{- $s := .Values.shutdown }}
{{- $needed := add $s.preStopSleepSeconds $s.unreadyDelaySeconds $s.drainSeconds }}
{{- if le (int $s.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%v) must be greater than preStopSleepSeconds + unreadyDelaySeconds + drainSeconds (%v)" $s.terminationGracePeriodSeconds $needed) }}
{{- end }}
{{- end }}

{{/*
Label matchers of a selector in the alert rules: the given matchers and the rendered
alerts.selector, in braces; nothing when both are empty (`metric{}` is not valid PromQL).
Call with (list <rendered alerts.selector> <matchers>...).
*/}}
{{- define "peerbridge.alertMatchers" -}}
{{- $m := compact . -}}
{{- if $m }}{{ printf "{%s}" (join ", " $m) }}{{ end -}}
{{- end }}

{{/*
Runbook link of an alert: alerts.runbookBaseUrl (deploy/README.md) and the alert's
section anchor. Call with (list $ "AlertName").
*/}}
{{- define "peerbridge.runbook" -}}
{{- $root := index . 0 -}}
{{- printf "%s#%s" $root.Values.alerts.runbookBaseUrl (index . 1 | lower) -}}
{{- end }}
