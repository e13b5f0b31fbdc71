{{/*
Names, labels and the shared pieces of every workload. Services are addressed by their values key
(recommender, productHub, contentHub, rightsHub, profile); "qianmian.serviceTable" holds what is
fixed by the code rather than by values: name, console script, settings prefix, port, whether the
service uses Feast, and whom it calls (the call graph the NetworkPolicies and URLs follow).
*/}}

{{- define "qianmian.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* 34 characters at most: the longest suffix, "-recommender-train", must still fit the 52
     characters Kubernetes allows a CronJob name. */}}
{{- define "qianmian.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 34 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 34 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 34 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "qianmian.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The order is the deployment order of the docs: the decision API first, then the hubs. */}}
{{- define "qianmian.serviceKeys" -}}
recommender productHub contentHub rightsHub profile
{{- end -}}

{{- define "qianmian.serviceTable" -}}
recommender:
  name: recommender
  cli: recommender
  prefix: RECOMMENDER_
  port: 8000
  feast: true
  calls: [productHub, contentHub, rightsHub, profile]
productHub:
  name: product-hub
  cli: product-hub
  prefix: PRODUCT_HUB_
  port: 8001
  feast: false
  calls: [profile]
contentHub:
  name: content-hub
  cli: content-hub
  prefix: CONTENT_HUB_
  port: 8002
  feast: false
  calls: [profile]
rightsHub:
  name: rights-hub
  cli: rights-hub
  prefix: RIGHTS_HUB_
  port: 8003
  feast: false
  calls: []
profile:
  name: profile
  cli: profile-service
  prefix: PROFILE_
  port: 8004
  feast: true
  calls: []
{{- end -}}

{{/* The table entry of one service: (dict "root" $ "key" "productHub") */}}
{{- define "qianmian.svc" -}}
{{- index (include "qianmian.serviceTable" .root | fromYaml) .key | toYaml -}}
{{- end -}}

{{- define "qianmian.labels" -}}
helm.sh/chart: {{ include "qianmian.chart" . }}
app.kubernetes.io/name: {{ include "qianmian.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: qianmian
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "product-hub") */}}
{{- define "qianmian.selectorLabels" -}}
app.kubernetes.io/name: {{ include "qianmian.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* metadata.labels + annotations of a resource of one component */}}
{{- define "qianmian.metadata" -}}
labels:
  {{- include "qianmian.labels" .root | nindent 2 }}
  app.kubernetes.io/component: {{ .component }}
{{- with .root.Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "qianmian.componentName" -}}
{{- printf "%s-%s" (include "qianmian.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "qianmian.serviceAccountName" -}}
{{- $v := index .root.Values .key -}}
{{- $svc := include "qianmian.svc" . | fromYaml -}}
{{- if $v.serviceAccount.create -}}
{{- default (include "qianmian.componentName" (dict "root" .root "component" $svc.name)) $v.serviceAccount.name -}}
{{- else -}}
{{- default "default" $v.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "qianmian.hooksServiceAccountName" -}}
{{- printf "%s-hooks" (include "qianmian.fullname" .) -}}
{{- end -}}

{{/* Image reference of one service: registry/repository@digest, else :tag (never latest). */}}
{{- define "qianmian.image" -}}
{{- $v := index .root.Values .key -}}
{{- $g := .root.Values.image -}}
{{- $ref := printf "%s/%s" $g.registry $v.image.repository -}}
{{- if $v.image.digest -}}
{{- printf "%s@%s" $ref $v.image.digest -}}
{{- else -}}
{{- $tag := default $g.tag $v.image.tag -}}
{{- if or (not $tag) (eq $tag "latest") -}}
{{- fail (printf "%s.image: pin a tag or digest; `latest` and empty tags are refused" .key) -}}
{{- end -}}
{{- printf "%s:%s" $ref $tag -}}
{{- end -}}
{{- end -}}

{{- define "qianmian.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}

{{- define "qianmian.podSecurityContext" -}}
{{- $p := .Values.defaults.podSecurityContext -}}
runAsNonRoot: true
{{- if not (kindIs "invalid" $p.runAsUser) }}
runAsUser: {{ $p.runAsUser }}
{{- end }}
{{- if not (kindIs "invalid" $p.runAsGroup) }}
runAsGroup: {{ $p.runAsGroup }}
{{- end }}
{{- if not (kindIs "invalid" $p.fsGroup) }}
fsGroup: {{ $p.fsGroup }}
{{- end }}
seccompProfile:
  {{- toYaml $p.seccompProfile | nindent 2 }}
{{- end -}}

{{- define "qianmian.containerSecurityContext" -}}
{{- toYaml .Values.defaults.containerSecurityContext }}
{{- end -}}

{{/* Settings of one service as environment (the ConfigMap's data; also inlined into hook Jobs,
     which run before the ConfigMap exists). Values are strings. */}}
{{- define "qianmian.configData" -}}
{{- $root := .root -}}
{{- $v := index $root.Values .key -}}
{{- $svc := include "qianmian.svc" . | fromYaml -}}
{{- $p := $svc.prefix -}}
{{- $data := dict -}}
{{- $_ := set $data (printf "%sENVIRONMENT" $p) $root.Values.environment -}}
{{- $_ := set $data (printf "%sLOG_LEVEL" $p) (default $root.Values.logLevel $v.logLevel) -}}
{{- $_ := set $data (printf "%sHOST" $p) "0.0.0.0" -}}
{{- $_ := set $data (printf "%sPORT" $p) (toString $svc.port) -}}
{{- $_ := set $data (printf "%sAUTH_TOKENS_FILE" $p) "/etc/qianmian/auth/tokens.yaml" -}}
{{- range $svc.calls }}
{{- $target := include "qianmian.svc" (dict "root" $root "key" .) | fromYaml -}}
{{- $url := printf "http://%s:%d" (include "qianmian.componentName" (dict "root" $root "component" $target.name)) (int $target.port) -}}
{{- $_ := set $data (printf "%s%s_URL" $p ($target.name | upper | replace "-" "_")) $url -}}
{{- end }}
{{- if eq .key "recommender" }}
{{- $_ := set $data "RECOMMENDER_REGISTRY_DIR" $v.modelStorage.mountPath -}}
{{- if $v.modelStorage.rankerStore }}
{{- $_ := set $data "RECOMMENDER_RANKER_STORE" (printf "%s/%s" $v.modelStorage.mountPath $v.modelStorage.rankerStore) -}}
{{- end }}
{{- $_ := set $data "RECOMMENDER_EVAL_DIR" "/tmp/eval" -}}
{{- $_ := set $data "RECOMMENDER_OUTBOUND_DIR" $v.outboundStorage.mountPath -}}
{{- end }}
{{- range $k, $val := $v.config }}
{{- $_ := set $data (printf "%s%s" $p $k) (toString $val) -}}
{{- end }}
{{- toYaml $data -}}
{{- end -}}

{{/* Environment read from Secrets: the database URL (password from the service's Secret) and
     secretEnv. The password must be URL-safe or percent-encoded in the Secret. */}}
{{- define "qianmian.secretEnv" -}}
{{- $root := .root -}}
{{- $v := index $root.Values .key -}}
{{- $svc := include "qianmian.svc" . | fromYaml -}}
{{- $db := $root.Values.externalDatabase -}}
- name: QIANMIAN_DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $v.existingSecret }}
      key: {{ $v.secretKeys.databasePassword }}
- name: {{ $svc.prefix }}DATABASE_URL
  value: {{ printf "postgresql+psycopg://%s:$(QIANMIAN_DATABASE_PASSWORD)@%s:%d/%s?sslmode=%s" $v.database.user $db.host (int $db.port) $v.database.name $db.sslMode | quote }}
{{- range $name, $key := $v.secretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $v.existingSecret }}
      key: {{ $key }}
{{- end }}
{{- end -}}

{{/* Environment of every Feast user: QIANMIAN_* and the variables of feature_store.yaml. */}}
{{- define "qianmian.feastEnv" -}}
{{- $f := .Values.feast -}}
{{- $db := .Values.externalDatabase -}}
{{- $r := .Values.externalRedis -}}
- name: QIANMIAN_FEAST_ENV
  value: production
- name: QIANMIAN_FEATURE_REPO
  value: /app/feature_repo
- name: QIANMIAN_DATA_DIR
  value: {{ $f.dataDir | quote }}
- name: POSTGRES_HOST
  value: {{ $db.host | quote }}
- name: POSTGRES_PORT
  value: {{ $db.port | quote }}
- name: POSTGRES_DB
  value: {{ $f.registry.database | quote }}
- name: POSTGRES_USER
  value: {{ $f.registry.user | quote }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $f.registry.existingSecret }}
      key: {{ $f.registry.passwordKey }}
{{- $conn := printf "%s:%d,db=%d" $r.host (int $r.port) (int $r.db) }}
{{- if $r.existingSecret }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $r.existingSecret }}
      key: {{ $r.passwordKey }}
{{- $conn = printf "%s,password=$(REDIS_PASSWORD)" $conn }}
{{- end }}
{{- if $r.tls }}
{{- $conn = printf "%s,ssl=true" $conn }}
{{- end }}
- name: REDIS_CONNECTION_STRING
  value: {{ $conn | quote }}
{{- with $f.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* feature_store.yaml of the production environment, from values. Feast substitutes the
     remaining ${VARS} from the environment set by "qianmian.feastEnv". */}}
{{- define "qianmian.featureStoreYaml" -}}
{{- $f := .Values.feast -}}
{{- $db := .Values.externalDatabase -}}
project: {{ $f.project }}
provider: local
registry:
  registry_type: sql
  path: postgresql+psycopg://${POSTGRES_USER}:${POSTGRES_PASSWORD}@{{ $db.host }}:{{ $db.port }}/{{ $f.registry.database }}?sslmode={{ $db.sslMode }}
  cache_ttl_seconds: {{ $f.registry.cacheTtlSeconds }}
  sqlalchemy_config_kwargs:
    pool_pre_ping: true
online_store:
  type: redis
  connection_string: ${REDIS_CONNECTION_STRING}
offline_store:
  type: file
entity_key_serialization_version: 3
{{- end -}}

{{- define "qianmian.featureStoreVolume" -}}
- name: feature-store
  configMap:
    name: {{ .name }}
    defaultMode: 0444
{{- end -}}

{{- define "qianmian.featureStoreMount" -}}
- name: feature-store
  mountPath: /app/feature_repo/environments/production
  readOnly: true
{{- end -}}

{{/* The auth-token file of one service, mounted as /etc/qianmian/auth/tokens.yaml. */}}
{{- define "qianmian.authVolume" -}}
{{- $v := index .root.Values .key -}}
- name: auth-tokens
  secret:
    secretName: {{ $v.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ $v.secretKeys.authTokens }}
        path: tokens.yaml
{{- end -}}

{{- define "qianmian.authMount" -}}
- name: auth-tokens
  mountPath: /etc/qianmian/auth
  readOnly: true
{{- end -}}

{{- define "qianmian.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .sizeLimit }}
{{- end -}}

{{- define "qianmian.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{/* Pod-level fields shared by every job pod. */}}
{{- define "qianmian.jobPodCommon" -}}
{{- include "qianmian.imagePullSecrets" . }}
automountServiceAccountToken: false
securityContext:
  {{- include "qianmian.podSecurityContext" . | nindent 2 }}
{{- with .Values.jobs.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.jobs.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Labels of a job pod: its component and the marker the jobs NetworkPolicy selects. */}}
{{- define "qianmian.jobPodLabels" -}}
{{- include "qianmian.selectorLabels" . }}
qianmian.io/workload: job
{{- end -}}

{{/* Egress every Qianmian pod needs: DNS, PostgreSQL, Redis when it uses Feast, and extraEgress. */}}
{{- define "qianmian.egressBase" -}}
{{- $np := .root.Values.networkPolicy -}}
- to:
    - namespaceSelector:
        matchLabels:
          {{- toYaml $np.dns.namespaceSelector | nindent 10 }}
      podSelector:
        matchLabels:
          {{- toYaml $np.dns.podSelector | nindent 10 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
- to:
    {{- range $np.postgresql.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    {{- range $np.postgresql.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- if .redis }}
- to:
    {{- range $np.redis.cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    {{- range $np.redis.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end }}
{{- with $np.extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end -}}
