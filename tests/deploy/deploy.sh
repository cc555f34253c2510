#!/bin/bash
# The shipped manifests (controller/deploy/) against a real kube-apiserver: they apply,
# the CRDs become Established, the examples apply, invalid objects are refused by the
# schemas with the field named, printer columns show, the controller's ServiceAccount
# may do what the controller needs and no more, and the folder's Kustomization and
# docs/install.md's overlay of it give the objects they should.
# Needs BOP_TEST_KUBECONFIG (tests/env/k8s-local.sh start) and kubectl (BOP_KUBECTL, by
# default the one tests/env/k8s-local.sh build puts in the cache). CRDs and the
# backupop-system objects stay installed (applying them again is a no-op); the custom
# objects live in a namespace of their own that is removed at the end.
. "$BOP_SOURCE_ROOT/tests/tap.sh"
KUBECTL=${BOP_KUBECTL:-${BOP_CACHE_DIR:-/var/cache/backupop-testenv}/k8s-1.20.2/kubectl}
[ -n "${BOP_TEST_KUBECONFIG:-}" ] ||
	skip_all "no Kubernetes API server (BOP_TEST_KUBECONFIG is not set; tests/env/k8s-local.sh start)"
[ -x "$KUBECTL" ] || skip_all "kubectl is not built ($KUBECTL; tests/env/k8s-local.sh build makes it)"

D=$BOP_SOURCE_ROOT/controller/deploy
SA=system:serviceaccount:backupop-system:backupop-controller
T=$(mktemp -d "${TMPDIR:-/tmp}/bop-deploy.XXXXXX") || exit 1
NS=bop-deploy-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
STORAGE=$NS-minio
TAP_LOG=$T/log
# a discovery cache of our own: one made before the CRDs existed would not know them
k() { "$KUBECTL" --kubeconfig "$BOP_TEST_KUBECONFIG" --cache-dir "$T/kube-cache" "$@"; }
cleanup() {
	# a controller under test elsewhere may have put its finalizer on our schedule
	for s in $(k -n "$NS" get backupschedules,backupruns -o name 2>/dev/null); do
		k -n "$NS" patch "$s" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
	done
	k delete namespace "$NS" --wait=false >/dev/null 2>&1
	k delete backupstorage "$STORAGE" --wait=false >/dev/null 2>&1
	k -n backupop-system delete statefulsets,services,secrets \
		-l "backupop.io/schedule-namespace=$NS" >/dev/null 2>&1
	k -n backupop-system delete secret "$NS-creds" --wait=false >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT

# the examples, in our namespace and with a storage name of our own (it is cluster-scoped)
rename() {
	sed -e "s/namespace: shop/namespace: $NS/" -e "s/name: minio\([,}]\)/name: $STORAGE\1/" \
		-e "s/orders-db\.shop\.svc/orders-db.$NS.svc/" -e "s/{name: shop}/{name: $NS}/" \
		-e "s/minio-credentials/$NS-creds/" "$@"
}
mkdir -p "$T/readme/controller/deploy/examples/runs"
cp "$D"/*.yaml "$T/readme/controller/deploy/"
for f in "$D"/examples/*.yaml "$D"/examples/runs/*.yaml; do
	rename "$f" >"$T/readme/controller/deploy/examples/${f#"$D"/examples/}"
done

# The README's Kubernetes commands, as written but for those names, in order: the
# on-demand run is created (generated name), the namespace comes with the examples.
BOP=$BOP_BUILD_ROOT/runner/cli/backupop
awk '/^## In Kubernetes/ { k = 1 } k && /^```sh/ { b = 1; next } b && /^```/ { exit } b' \
	"$BOP_SOURCE_ROOT/README.md" | sed -e ':a' -e '/\\$/N; s/\\\n//; ta' >"$T/readme.sh"
ok "the README has Kubernetes commands" grep -q '^kubectl create -f' "$T/readme.sh"
kubectl() { k "$@"; }
backupop() { "$BOP" "$@"; }
while IFS= read -r line; do
	cmd=$(rename <<<"$line" | sed -e 's/ shop / '"$NS"' /g' -e 's/[[:space:]]*#.*$//')
	[ -n "$cmd" ] || continue
	ok "README: $(sed "s/[[:space:]]*#.*$//" <<<"$line")" env -C "$T/readme" bash -c "$(declare -f k kubectl backupop)
		KUBECTL='$KUBECTL' BOP_TEST_KUBECONFIG='$BOP_TEST_KUBECONFIG' T='$T' BOP='$BOP'
		PGPASSWORD=example AWS_ACCESS_KEY_ID=example-id AWS_SECRET_ACCESS_KEY=example-secret
		$cmd"
done <"$T/readme.sh"
for crd in backupstorages backupschedules backupruns clusterbackuptemplates backuptemplates; do
	ok "CRD $crd.backupop.io is Established" \
		k wait --for condition=established --timeout=60s "crd/$crd.backupop.io"
done
ok "applying the manifests again changes nothing" sh -c \
	"'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' apply -f '$D/' | grep -v unchanged | grep -q . && exit 1 || exit 0"
ok "the short names resolve" k get bstore,bsched,brun -A
ok "the README's secrets exist" k -n "$NS" get secret backup-keys orders-db-backup
ok "the README's on-demand run is a backup of orders-db" sh -c "'$KUBECTL' --kubeconfig \
	'$BOP_TEST_KUBECONFIG' -n $NS get backupruns -o jsonpath='{range .items[*]}{.spec.action} {.spec.scheduleRef.name}{\"\\n\"}{end}' |
	grep -qx 'backup orders-db'"
ok "the example restore run is created" k create -f "$T/readme/controller/deploy/examples/runs/restore-latest.yaml"
ok "the schedule is stored as written" sh -c "'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS \
	get backupschedule orders-db -o jsonpath='{.spec.retention.keepTags[0]} {.spec.engine.postgres.passwordSecretRef.key} {.spec.runner.affinity.podSelector.app}' |
	grep -qx 'pinned password orders-db'"
ok "the run gets its defaults and keeps its fields" sh -c "'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS \
	get backupruns -o jsonpath='{range .items[*]}{.spec.action} {.spec.backup}{\"\\n\"}{end}' | grep -qx 'restore latest'"

# invalid objects: the API server refuses them (--validate=false: the server's schema, not
# kubectl's client-side check) and names the field
refused() { # name field file
	local name=$1 field=$2 file=$3 out
	TAP_N=$((TAP_N + 1))
	if out=$(k apply --validate=false -f "$file" 2>&1); then
		echo "not ok $TAP_N - $name: accepted"
		TAP_FAILED=$((TAP_FAILED + 1))
	elif grep -qF "$field" <<<"$out"; then
		echo "ok $TAP_N - $name: refused, naming $field"
	else
		echo "not ok $TAP_N - $name: refused without naming $field"
		sed 's/^/# /' <<<"$out"
		TAP_FAILED=$((TAP_FAILED + 1))
	fi
}
bad_schedule() { # name: the spec fragment replaces the example's spec lines
	cat >"$T/bad.yaml" <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: bad-$1, namespace: $NS}
spec:
  storage: {name: $STORAGE}
$2
EOF
	echo "$T/bad.yaml"
}
PG='  engine: {postgres: {host: db, database: d, user: u}}'
refused "compression.algorithm lz4" "spec.compression.algorithm" \
	"$(bad_schedule lz4 "$PG
  compression: {algorithm: lz4}")"
refused "retention.keepLast -1" "spec.retention.keepLast" \
	"$(bad_schedule keep "$PG
  retention: {keepLast: -1}")"
refused "two engines" "spec.engine" \
	"$(bad_schedule two "  engine: {postgres: {host: db}, mysql: {host: db}}")"
refused "neither engine nor templateRef" "spec.engine" "$(bad_schedule none "  schedule: '@daily'")"
refused "both engine and templateRef" "one and only one" \
	"$(bad_schedule both "$PG
  templateRef: {name: postgresql}")"
refused "concurrencyPolicy Allow" "spec.concurrencyPolicy" \
	"$(bad_schedule allow "$PG
  concurrencyPolicy: Allow")"
refused "a password Secret ref without key" "spec.engine.postgres.passwordSecretRef.key" \
	"$(bad_schedule ref "  engine: {postgres: {host: db, passwordSecretRef: {name: s}}}")"
refused "historyLimits.failed -3" "spec.historyLimits.failed" \
	"$(bad_schedule hist "$PG
  historyLimits: {failed: -3}")"
cat >"$T/bad-run.yaml" <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupRun
metadata: {name: bad-run, namespace: $NS}
spec: {scheduleRef: {name: orders-db}, action: delete}
EOF
refused "a BackupRun with action delete" "spec.action" "$T/bad-run.yaml"
cat >"$T/bad-storage.yaml" <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupStorage
metadata: {name: $NS-bad}
spec:
  s3: {endpoint: "http://minio:9000"}
  credentialsSecretRef: {namespace: backupop-system, name: x}
  allowedNamespaces: {from: Some}
EOF
refused "a BackupStorage without bucket" "spec.s3.bucket" "$T/bad-storage.yaml"
refused "a BackupStorage with allowedNamespaces.from Some" "spec.allowedNamespaces.from" \
	"$T/bad-storage.yaml"
cat >"$T/bad-storage2.yaml" <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupStorage
metadata: {name: $NS-bad2}
spec:
  s3: {bucket: b}
  file: {claimName: c}
EOF
refused "a BackupStorage with both s3 and file" "oneOf" "$T/bad-storage2.yaml"
k delete backupstorage "$NS-bad" "$NS-bad2" --wait=false >/dev/null 2>&1

# status (a subresource) and the printer columns
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
k -n "$NS" get backupschedule orders-db -o json >"$T/s.json"
python3 - "$T/s.json" "$now" <<'EOF' 2>/dev/null
import json, sys
o = json.load(open(sys.argv[1]))
o["status"] = {"observedGeneration": 1, "runnerName": "runner-x", "lastSuccessfulTime": sys.argv[2],
	"lastScheduleTime": sys.argv[2], "nextScheduleTime": "2099-01-01T00:00:00Z",
	"lastSuccessfulBackup": "20991121T020000Z-k3f9",
	"conditions": [{"type": "Ready", "status": "True", "reason": "RunnerReady", "message": "ok",
		"lastTransitionTime": sys.argv[2], "observedGeneration": 1}]}
json.dump(o, open(sys.argv[1], "w"))
EOF
if command -v python3 >/dev/null; then
	ok "the schedule's status is written through the status subresource" \
		k replace --raw "/apis/backupop.io/v1alpha1/namespaces/$NS/backupschedules/orders-db/status" \
		-f "$T/s.json"
	ok "the status keeps every field the controller writes" sh -c "'$KUBECTL' --kubeconfig \
		'$BOP_TEST_KUBECONFIG' -n $NS get backupschedule orders-db -o jsonpath='{.status.runnerName} {.status.lastSuccessfulBackup} {.status.conditions[0].reason}' |
		grep -qx 'runner-x 20991121T020000Z-k3f9 RunnerReady'"
else
	skip "python3 is not installed: no status written"
	skip "python3 is not installed: no status written"
fi
k -n "$NS" get backupschedules >"$T/sched.txt" 2>&1
ok "kubectl get backupschedules shows SCHEDULE READY LAST SUCCESS NEXT RUN AGE" \
	grep -Eq '^NAME +SCHEDULE +READY +LAST SUCCESS +NEXT RUN +AGE$' "$T/sched.txt"
ok "with the values" grep -Eq '^orders-db +0 \*/6 \* \* \* +True +[0-9]+s +2099-01-01T00:00:00Z ' "$T/sched.txt"
sed 's/^/# /' "$T/sched.txt"
k -n "$NS" get backupruns >"$T/runs.txt" 2>&1
ok "kubectl get backupruns shows ACTION SCHEDULE PHASE SIZE AGE" \
	grep -Eq '^NAME +ACTION +SCHEDULE +PHASE +SIZE +AGE$' "$T/runs.txt"
ok "with the values" grep -Eq '^orders-db-restore-[a-z0-9]+ +restore +orders-db ' "$T/runs.txt"
sed 's/^/# /' "$T/runs.txt"
k get backupstorage "$STORAGE" >"$T/st.txt" 2>&1
ok "kubectl get backupstorages shows BUCKET ENDPOINT AGE" \
	grep -Eq '^NAME +BUCKET +ENDPOINT +AGE$' "$T/st.txt"
ok "with the values" grep -Eq "^$STORAGE +backups +http://minio.minio:9000 " "$T/st.txt"

# RBAC of the controller's ServiceAccount
can() { ok "the controller may $*" k auth can-i --as="$SA" "$@"; }
cannot() { fails "the controller may not $*" k auth can-i --as="$SA" "$@"; }
can list backupschedules.backupop.io --all-namespaces
can watch backupstorages.backupop.io
can watch backupruns.backupop.io --all-namespaces
can watch clusterbackuptemplates.backupop.io
can watch backuptemplates.backupop.io --all-namespaces
can patch backupschedules.backupop.io --subresource=status -n "$NS"
can patch backupruns.backupop.io --subresource=status -n "$NS"
can patch backupschedules.backupop.io -n "$NS"
can update backupschedules.backupop.io --subresource=finalizers -n "$NS"
can create backupruns.backupop.io -n "$NS"
can delete backupruns.backupop.io -n "$NS"
can get secrets -n "$NS"
can watch secrets --all-namespaces
can list namespaces
can create events -n "$NS"
can create statefulsets.apps -n backupop-system
can patch services -n backupop-system
can delete secrets -n backupop-system
can update leases.coordination.k8s.io -n backupop-system
can get pods -n backupop-system
cannot delete backupschedules.backupop.io -n "$NS"
cannot create backupschedules.backupop.io -n "$NS"
cannot create backupstorages.backupop.io
cannot update backupstorages.backupop.io
can create secrets -n "$NS"            # spec.encryption.generateIdentity, when missing
cannot update secrets -n "$NS"         # ... and never rewritten
cannot patch secrets -n "$NS"
cannot delete secrets -n "$NS"
cannot create backuptemplates.backupop.io -n "$NS"
cannot delete secrets -n default
cannot create statefulsets.apps -n "$NS"
cannot create services -n default
cannot create pods -n backupop-system
can list pods --all-namespaces           # sidecar mode: a run goes to a Ready pod
can watch deployments.apps --all-namespaces
can patch statefulsets.apps -n "$NS"     # ... the sidecar is patched into the template
can delete configmaps -n "$NS"          # ... the holder of an old sidecar Secret
cannot update configmaps -n "$NS"
can patch daemonsets.apps -n "$NS"
cannot create deployments.apps -n "$NS"
cannot update deployments.apps -n "$NS"
cannot delete daemonsets.apps -n "$NS"
cannot get pods -n "$NS"
cannot delete leases.coordination.k8s.io -n backupop-system
cannot create leases.coordination.k8s.io -n "$NS"
cannot delete namespaces
cannot update clusterroles.rbac.authorization.k8s.io
cannot delete customresourcedefinitions.apiextensions.k8s.io

# The Kustomization: `kubectl apply -k controller/deploy/` gives the objects of the folder's
# files, and docs/install.md's overlay sets the namespace, the images and the runner image
if ! python3 -c 'import yaml' 2>/dev/null; then
	skip "python3-yaml is not installed: the Kustomization is not checked"
	skip "python3-yaml is not installed: docs/install.md's overlay is not checked"
	done_testing
fi
objects() { python3 -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d: print(d["kind"], d["metadata"].get("namespace", "-"), d["metadata"]["name"])' | sort; }
for f in "$D"/*.yaml; do cat "$f"; echo ---; done | objects >"$T/files.objects"
k kustomize "$D" | objects >"$T/kustomize.objects"
check "kubectl kustomize controller/deploy/ gives the objects of its files ($(wc -l <"$T/files.objects"))" \
	"$([ -s "$T/files.objects" ] && cmp -s "$T/files.objects" "$T/kustomize.objects"; echo $?)"
mkdir -p "$T/install/backupop-install"
ln -s "$BOP_SOURCE_ROOT" "$T/install/backupop"
sed -n "/^cat >backupop-install\/kustomization.yaml <<'EOF'$/,/^EOF$/p" \
	"$BOP_SOURCE_ROOT/docs/install.md" | sed '1d;$d' >"$T/install/backupop-install/kustomization.yaml"
k kustomize "$T/install/backupop-install" >"$T/install.yaml" 2>"$T/log"
ok "docs/install.md's overlay sets the namespace, the controller's image and the runner image" python3 -c "
import yaml
objs = [d for d in yaml.safe_load_all(open('$T/install.yaml')) if d]
assert len(objs) == $(wc -l <"$T/files.objects"), len(objs)
by = {(o['kind'], o['metadata']['name']): o for o in objs}
dep = by[('Deployment', 'backupop-controller')]
assert dep['metadata']['namespace'] == 'backups'
c = dep['spec']['template']['spec']['containers'][0]
assert c['image'] == 'localhost/backupop/controller:0.1.0', c['image']
assert '--runner-image=\$(RUNNER_IMAGE)' in c['args'], c['args']
ref = [e for e in c['env'] if e['name'] == 'RUNNER_IMAGE'][0]['valueFrom']['configMapKeyRef']
cm = [o for o in objs if o['kind'] == 'ConfigMap' and o['metadata']['name'] == ref['name']][0]
assert cm['metadata']['namespace'] == 'backups'
assert cm['data'][ref['key']] == 'localhost/backupop/runner:0.1.0', cm['data']
for kind in ('ClusterRoleBinding', 'RoleBinding'):
    assert by[(kind, 'backupop-controller')]['subjects'][0]['namespace'] == 'backups', kind
for o in objs:
    if o['kind'] not in ('Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding'):
        assert o['metadata']['namespace'] == 'backups', o['metadata']
"

# docs/install.md, sections 7 to 9: the template schedule and the generated identity are
# what the API server takes (a server-side dry run: nothing is stored), the templates
# apply, and the loop that renames the monitoring objects' namespace leaves none behind
# (the monitoring.coreos.com CRDs are not in this cluster; tests/e2e checks the objects
# against real pods)
ok "docs/install.md: the shipped templates apply" k apply -f "$D/templates/"
sed -n "/^kubectl -n shop apply -f - <<'EOF'$/,/^EOF$/p" "$BOP_SOURCE_ROOT/docs/install.md" |
	sed '/^kubectl -n shop apply/d' | sed 's/^EOF$/---/' >"$T/guide-schedules.yaml"
ok "docs/install.md: its schedules include the template's one without schedule:" python3 -c "
import yaml
d = [x for x in yaml.safe_load_all(open('$T/guide-schedules.yaml')) if x]
t = [x for x in d if 'templateRef' in x['spec']]
assert t and 'schedule' not in t[0]['spec'] and t[0]['spec']['varsSecretRef']['keys'] == ['password'], d
assert t[0]['spec']['encryption'] == {'generateIdentity': {'secretName': 'orders-server-identity'}}, t[0]"
ok "docs/install.md: the API server takes its schedules (server-side dry run)" \
	sh -c "sed -e 's/name: s3}/name: $STORAGE}/' '$T/guide-schedules.yaml' |
		'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS apply --dry-run=server -f -"
awk '/^```sh$/ { b = 1; s = ""; next } b && /^```$/ { if (s ~ /controller\/deploy\/monitoring/ && s ~ /^for f/) printf "%s", s; b = 0; next } b { s = s $0 "\n" }' \
	"$BOP_SOURCE_ROOT/docs/install.md" | sed 's/| kubectl apply -f -$//' >"$T/monitoring.sh"
ok "docs/install.md: the monitoring objects in the overlay's namespace, nothing left in backupop-system" sh -c "
	cd '$BOP_SOURCE_ROOT' && bash '$T/monitoring.sh' | python3 -c \"
import sys, yaml
d = [x for x in yaml.safe_load_all(sys.stdin) if x]
assert sorted(x['kind'] for x in d) == ['PodMonitor', 'PodMonitor', 'PrometheusRule', 'ServiceMonitor'], d
for x in d:
    assert x['metadata']['namespace'] == 'backups', x['metadata']
    if x['metadata']['name'] == 'backupop-sidecar':
        assert x['spec']['namespaceSelector'] == {'any': True}, x['spec']
        continue
    assert x['spec'].get('namespaceSelector', {'matchNames': ['backups']})['matchNames'] == ['backups'], x['spec']
assert 'backupop-system' not in yaml.safe_dump_all(d)\""

done_testing
