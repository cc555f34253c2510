#!/bin/bash
# Sidecar mode on a real node (tests/env/node-local.sh): the runner image built from the
# Debian packages (controller/images/build.sh, reused like e2e.sh does), the controller with
# the shipped RBAC (its ServiceAccount's token, run beside the API server: it reaches the
# pods at their IPs on the node's bridge), a file BackupStorage on a hostPath volume bound
# to a claim in the schedule's namespace, and a Deployment of two busybox replicas, each
# writing its own file into an emptyDir and labelled backupop.io/schedule. The kubelet runs
# the sidecar the controller adds; it becomes Ready beside the application; scheduled
# backups are taken, one per scheduled time, all by the first pod by name, holding exactly
# that pod's file; with readOnly false a BackupRun restore writes it into a pod's volume
# (read back through the application's container); unlabelled, the pods roll back to the
# user's containers alone.
# Root only; skipped with the reason where a node cannot run or the images cannot be built.
# It starts and stops the node itself and runs alone (is_parallel: false).
. "$BOP_SOURCE_ROOT/tests/tap.sh"
. "$BOP_SOURCE_ROOT/tests/env/lib.sh"
. "$BOP_SOURCE_ROOT/tests/e2e/lib.sh"
CTL=$BOP_BUILD_ROOT/controller/backupop-controller
BOP=$BOP_BUILD_ROOT/runner/cli/backupop
e2e_require busybox python3 curl
[ -x "$CTL" ] || skip_all "backupop-controller was not built"

e2e_setup e2e-sc
SYS=backupop-system
STORE=sc-$NS
ctl_pid=
own_objects() {
	k delete backupstorage "$STORE" --wait=false >/dev/null 2>&1
	k delete pv "$STORE" --wait=false >/dev/null 2>&1
}
cleanup() {
	[ -z "$ctl_pid" ] || { kill "$ctl_pid" 2>/dev/null; wait "$ctl_pid" 2>/dev/null; }
	e2e_cleanup own_objects
}

# ---- images (as e2e.sh: reused when built from this committed tree) ----
e2e_images

# ---- the node ----
e2e_node_start
images() {
	node file-image "$T/busybox.tar" bop-busybox:1 /bin/busybox -- "$(command -v busybox):/bin/busybox" &&
		e2e_import "$IMG/runner-$version.oci.tar" backupop/runner "$T/busybox.tar" bop-busybox
}
ok "the runner image and a one-file busybox image are imported" images

# ---- the controller: the shipped manifests, its ServiceAccount's token ----
ok "kubectl apply -f controller/deploy/" k apply -f "$BOP_SOURCE_ROOT/controller/deploy/"
k -n "$SYS" delete deployment backupop-controller --ignore-not-found >/dev/null 2>&1
sa_kubeconfig "$SYS" backupop-controller "$T/sa.kubeconfig" ||
	{ echo "Bail out! no token for the controller's ServiceAccount"; exit 1; }
"$CTL" --kubeconfig "$T/sa.kubeconfig" --namespace "$SYS" \
	--runner-image "docker.io/backupop/runner:$version" --metrics-addr 0 --log-format text \
	--poll-seconds 1 >"$T/ctl.log" 2>&1 &
ctl_pid=$!

# ---- storage: a hostPath PV bound to the claim "backups" of the schedule's namespace ----
k create namespace "$NS" >/dev/null
PORT=9180
{ e2e_file_storage "$STORE" "$NS" backups ReadWriteMany sc; cat <<EOF
---
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: files, namespace: $NS}
spec:
  schedule: "*/20 * * * * *"
  engine:
    files: {path: /data}
  storage: {name: $STORE}
  sidecar: {volume: data, port: $PORT}
  historyLimits: {successful: 100}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: $NS
  labels: {backupop.io/schedule: files}
spec:
  replicas: 2
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: 2
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532}
      containers:
      - name: app
        image: docker.io/library/bop-busybox:1
        imagePullPolicy: Never
        command: [/bin/busybox, sh, -c]
        args: ['echo "written by \$HOSTNAME" >/data/who && mkdir -p /data/sub && /bin/busybox head -c 100000 /dev/urandom >/data/sub/blob && exec /bin/busybox sleep 3600']
        volumeMounts: [{name: data, mountPath: /data}]
      volumes:
      - {name: data, emptyDir: {}}
EOF
} | k apply -f - >/dev/null
check "a hostPath claim, a file storage, a sidecar schedule and a labelled Deployment are applied" $?
ready_pods() {
	k -n "$NS" get pods -l app=app,backupop.io/sidecar-of=files -o json | jq_py "
ps = [p for p in d['items'] if not p['metadata'].get('deletionTimestamp')
      and any(c['type'] == 'Ready' and c['status'] == 'True' for c in p['status'].get('conditions', []))
      and len(p['spec']['containers']) == 2]
assert len(ps) == 2
print(' '.join(sorted(p['metadata']['name'] for p in ps)))"
}
t0=$(now)
ok "the kubelet runs the pods with the sidecar, both containers Ready" wait_for 150 ready_pods ||
	{ k -n "$NS" get pods -o wide | sed 's/^/# /'; k -n "$NS" describe pods | tail -30 | sed 's/^/# /'; }
diag "pods with the sidecar Ready in $(since "$t0") s"
read -r POD1 POD2 <<<"$(ready_pods)"
# Runs scheduled before both pods were Ready may have gone to the only Ready one; from
# here on, each goes to the first by name.
READY_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
succeeded() { # N: at least N runs scheduled after READY_AT succeeded
	k -n "$NS" get backupruns -o json | jq_py "
assert sum(1 for r in d['items'] if r.get('status', {}).get('phase') == 'Succeeded'
           and r['metadata']['annotations']['backupop.io/scheduled-time'] > '$READY_AT') >= $1"
}
t0=$(now)
ok "scheduled backups succeed through the sidecar" wait_for 90 succeeded 2
diag "two scheduled backups in $(since "$t0") s"
# Suspended, and every run finished, the runs and the catalog stand still to be compared
# (a run still going when the runs are read would be in the catalog but not Succeeded).
k -n "$NS" patch backupschedule files --type merge -p '{"spec":{"suspend":true}}' >/dev/null
quiet() {
	k -n "$NS" get backupruns -o json | jq_py "
assert all(r.get('status', {}).get('phase') in ('Succeeded', 'Failed') for r in d['items'])"
}
ok "suspended, the schedule's runs all finish" wait_for 90 quiet
k -n "$NS" get backupruns -o json >"$T/runs.json"
"$BOP" list --storage "file://$T/store/sc" --name "$NS/files" --json -q >"$T/list.json" 2>"$T/list.err"
check "the catalog lists the backups" $?
ok "one BackupRun per scheduled time, each with one backup in the catalog, all by the first pod once both are Ready" \
	python3 - "$T/runs.json" "$T/list.json" "$POD1" "$POD2" "$READY_AT" <<'EOF'
import json, sys
runs = json.load(open(sys.argv[1]))['items']
times = [r['metadata']['annotations']['backupop.io/scheduled-time'] for r in runs]
assert len(times) == len(set(times)), times
ok = [r for r in runs if r.get('status', {}).get('phase') == 'Succeeded']
assert all(r['status']['runnerPod'] in sys.argv[3:5] for r in ok), [r['status'] for r in ok]
late = [r for r in ok if r['metadata']['annotations']['backupop.io/scheduled-time'] > sys.argv[5]]
assert len(late) >= 2 and all(r['status']['runnerPod'] == sys.argv[3] for r in late), \
    [r['status'] for r in late]
backups = sorted(b['id'] for b in json.load(open(sys.argv[2])))
assert sorted(r['status']['backupId'] for r in ok) == backups, (ok, backups)
EOF
BID=$(python3 -c "import json; print(sorted(b['id'] for b in json.load(open('$T/list.json')))[-1])")
mkdir -p "$T/out"
restored() {
	"$BOP" restore --storage "file://$T/store/sc" --name "$NS/files" -q "$BID" -- tar -x -C "$T/out" &&
		grep -qx "written by $POD1" "$T/out/who" && [ "$(stat -c %s "$T/out/sub/blob")" = 100000 ]
}
ok "the newest backup holds the first pod's files (restored with the CLI from the storage)" restored
events() { k -n "$NS" get events --field-selector involvedObject.kind=BackupSchedule,reason=BackupSucceeded -o name | grep -q .; }
ok "BackupSucceeded Events on the schedule" events

# a restore into the volume, through the sidecar: read-write, a restore path inside it
k -n "$NS" patch backupschedule files --type merge \
	-p '{"spec":{"sidecar":{"readOnly":false},"engine":{"files":{"path":"/data","restore":{"path":"/data/restored"}}}}}' >/dev/null
rw_pods() {
	k -n "$NS" get pods -l app=app,backupop.io/sidecar-of=files -o json | jq_py "
ps = [p for p in d['items'] if not p['metadata'].get('deletionTimestamp')
      and any(c['type'] == 'Ready' and c['status'] == 'True' for c in p['status'].get('conditions', []))
      and any(not m.get('readOnly') for c in p['spec']['containers'] if c['name'] == 'backupop-sidecar'
              for m in c['volumeMounts'] if m['name'] == 'data')]
assert len(ps) == 2
print(' '.join(sorted(p['metadata']['name'] for p in ps)))"
}
t0=$(now)
ok "readOnly false: the pods roll, the sidecar mounts the volume read-write" wait_for 120 rw_pods
diag "rolled in $(since "$t0") s"
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupRun
metadata: {name: restore-1}
spec: {scheduleRef: {name: files}, action: restore, backup: "$BID"}
EOF
restore_done() { [ "$(k -n "$NS" get backuprun restore-1 -o jsonpath='{.status.phase}')" = Succeeded ]; }
ok "a BackupRun restore through the sidecar succeeds" wait_for 60 restore_done ||
	k -n "$NS" get backuprun restore-1 -o jsonpath='{.status}' | sed 's/^/# /'
RPOD=$(k -n "$NS" get backuprun restore-1 -o jsonpath='{.status.runnerPod}')
in_volume() {
	[ "$(k -n "$NS" exec "$RPOD" -c app -- /bin/busybox cat /data/restored/who)" = "written by $POD1" ] &&
		[ "$(k -n "$NS" exec "$RPOD" -c app -- /bin/busybox sha256sum /data/restored/sub/blob | cut -d' ' -f1)" = \
		  "$(sha256sum "$T/out/sub/blob" | cut -d' ' -f1)" ]
}
ok "... the backed-up bytes are in the pod's volume (read by the application's container)" in_volume

# unlabelled: the pods roll back to the application alone
k -n "$NS" label deployment app backupop.io/schedule- >/dev/null
alone() {
	k -n "$NS" get pods -l app=app -o json | jq_py "
ps = [p for p in d['items'] if not p['metadata'].get('deletionTimestamp')]
assert len(ps) == 2 and all([c['name'] for c in p['spec']['containers']] == ['app'] for p in ps)
assert all(any(c['type'] == 'Ready' and c['status'] == 'True' for c in p['status'].get('conditions', [])) for p in ps)"
}
t0=$(now)
ok "unlabelled, the Deployment's pods run the application alone again" wait_for 120 alone
diag "rolled back in $(since "$t0") s"
grep -q "sidecar removed" "$T/ctl.log"
check "the controller logged the removal" $?
done_testing
