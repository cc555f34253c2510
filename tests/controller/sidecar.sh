#!/bin/bash
# Sidecar mode (spec.sidecar): a Deployment and a StatefulSet labelled
# backupop.io/schedule=<schedule> get the runner container, mounting their volume where the
# files engine reads it; their own containers stay as they were; unlabelling or deleting the
# schedule removes exactly what was added. The controller makes one BackupRun per scheduled
# time (also across a controller restart), sent to the first Ready pod by name, or to the
# next one when that one does not answer; every backup's success or failure is an Event on
# the schedule; a BackupRun restore writes the backed-up bytes back into the volume; a
# config change makes a new sidecar Secret and the old ones go once no template names them
# (also those made before a controller restart).
# The test plays the kubelet: the Deployment's two pods are marked Ready with the addresses
# 127.0.0.2 and 127.0.0.3, where runners started from the sidecar's Secret listen; the
# "volume" is a local directory.
. "$BOP_SOURCE_ROOT/tests/controller/lib.sh"

[ -x "$RUNNER" ] || skip_all "backupop-runner was not built"
RPORT=$(free_port)
python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.3', $RPORT))" 2>/dev/null ||
	skip_all "cannot listen on 127.0.0.3 (loopback addresses other than 127.0.0.1)"
mkdir -p "$T/store" "$T/vol/sub"
head -c 300000 /dev/urandom >"$T/vol/a.bin"
echo "hello" >"$T/vol/sub/b.txt"
cp -a "$T/vol" "$T/orig"

file_storage sc
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: sc}
spec:
  schedule: "*/6 * * * * *"
  engine:
    files: {path: /data, restore: {path: /data/restored}}
  storage: {name: files-$NS}
  sidecar: {volume: data, port: $RPORT}
  historyLimits: {successful: 100, failed: 100}
EOF
check "the API server accepts a schedule with spec.sidecar" $?
# Deployment: Recreate, so that a template change replaces both pods (no kubelet makes
# new pods available for a rolling update).
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  strategy: {type: Recreate}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: busybox, command: [sleep, 1d], volumeMounts: [{name: data, mountPath: /srv}]}
      volumes:
      - {name: data, emptyDir: {}}
EOF
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, labels: {backupop.io/schedule: sc}}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: db, image: busybox, command: [sleep, 1d], volumeMounts: [{name: data, mountPath: /var/lib/db}]}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
EOF
k -n "$NS" get deployment web -o json | jq_py "print(json.dumps(d['spec']['template']['spec']))" >"$T/web.before"
start_ctl a --poll-seconds 1 ||
	{ echo "Bail out! the controller did not become ready"; sed 's/^/# /' "$T/a.log"; exit 1; }
ready_is() { [ "$(cond backupschedule sc)" = "$1" ]; }
ok "the schedule becomes Ready with reason SidecarConfigured" wait_for 30 ready_is "True SidecarConfigured"
no_runner() { ! k -n "$SYS" get statefulset "$(rname "$NS" sc)" >/dev/null 2>&1; }
ok "no runner StatefulSet of its own" no_runner
SECRET=$(k -n "$NS" get secret -l backupop.io/schedule-name=sc,app.kubernetes.io/name=backupop-sidecar -o jsonpath='{.items[0].metadata.name}')
ok "the sidecar's config Secret is in the schedule's namespace, held by a ConfigMap of its name" sh -c "
'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get secret '$SECRET' -o json | python3 -c \"
import json, sys; d = json.load(sys.stdin)
o = d['metadata']['ownerReferences']
assert [(x['kind'], x['name']) for x in o] == [('ConfigMap', '$SECRET')], o
assert d.get('immutable') is True\""
ok "... which the schedule owns" sh -c "
'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get configmap '$SECRET' -o json | python3 -c \"
import json, sys; d = json.load(sys.stdin)
o = d['metadata']['ownerReferences']
assert [(x['kind'], x['name']) for x in o] == [('BackupSchedule', 'sc')], o\""
sidecar_of() { # KIND NAME: the sidecar container's volume mounts as "name:path:ro", ...
	k -n "$NS" get "$1" "$2" -o json | jq_py "
c = [c for c in d['spec']['template']['spec']['containers'] if c['name'] == 'backupop-sidecar']
print(','.join('%s:%s:%s' % (m['name'], m['mountPath'], m.get('readOnly', False)) for m in c[0]['volumeMounts']) if c else 'none')"
}
has_sidecar() { sidecar_of "$1" "$2" | grep -q "data:/data:$3"; }
ok "a labelled StatefulSet gets the sidecar, its volumeClaimTemplate mounted read-only at the files path" \
	wait_for 30 has_sidecar statefulset db True
ok "an unlabelled Deployment does not" test "$(sidecar_of deployment web)" = none

k -n "$NS" label deployment web backupop.io/schedule=sc >/dev/null
ok "labelled, the Deployment gets it too" wait_for 30 has_sidecar deployment web True
user_untouched() {
	k -n "$NS" get deployment web -o json | jq_py "
before = json.load(open('$T/web.before'))
now = d['spec']['template']['spec']
assert [c for c in now['containers'] if c['name'] != 'backupop-sidecar'] == before['containers']
assert [v for v in now['volumes'] if not v['name'].startswith('backupop-sidecar-')] == before['volumes']
assert d['spec']['template']['metadata']['labels']['backupop.io/sidecar-of'] == 'sc'
sc = [c for c in now['containers'] if c['name'] == 'backupop-sidecar'][0]
assert sc['securityContext']['readOnlyRootFilesystem'] is True
assert [p['containerPort'] for p in sc['ports']] == [$RPORT, $RPORT + 1], sc['ports']"
}
ok "... beside the user's containers and volumes, unchanged" user_untouched
pod_name_env() {
	k -n "$NS" get deployment web -o json | jq_py "
sc = [c for c in d['spec']['template']['spec']['containers'] if c['name'] == 'backupop-sidecar'][0]
assert sc['env'] == [{'name': 'BOP_POD_NAME', 'valueFrom': {'fieldRef':
    {'apiVersion': 'v1', 'fieldPath': 'metadata.name'}}}], sc.get('env')"
}
ok "... with BOP_POD_NAME from the pod's name (hostNetwork replicas share a host name)" pod_name_env
GEN=$(k -n "$NS" get deployment web -o jsonpath='{.metadata.generation}')
sleep 2
ok "nothing more is written while nothing changes" \
	test "$(k -n "$NS" get deployment web -o jsonpath='{.metadata.generation}')" = "$GEN"

# restores write into the volume: readOnly false
k -n "$NS" patch backupschedule sc --type merge -p '{"spec":{"sidecar":{"readOnly":false}}}' >/dev/null
ok "spec.sidecar.readOnly false mounts the volume read-write" wait_for 30 has_sidecar deployment web False

# Play the kubelet: both pods of the current template Ready, at 127.0.0.2 and .3.
pods_of_template() {
	k -n "$NS" get pods -l backupop.io/sidecar-of=sc,app=web -o json | jq_py "
ps = [p for p in d['items'] if not p['metadata'].get('deletionTimestamp') and
      any(not m.get('readOnly') and m['name'] == 'data'
          for c in p['spec']['containers'] if c['name'] == 'backupop-sidecar'
          for m in c['volumeMounts'])]
assert len(ps) == 2
print(' '.join(sorted(p['metadata']['name'] for p in ps)))"
}
ok "the Deployment's two pods carry the sidecar" wait_for 60 pods_of_template ||
	{ echo "Bail out! no pods"; exit 1; }
read -r POD1 POD2 <<<"$(pods_of_template)"
mark_ready() { # POD IP
	k -n "$NS" get pod "$1" -o json | jq_py "
d['status'] = {'phase': 'Running', 'podIP': '$2', 'podIPs': [{'ip': '$2'}],
               'conditions': [{'type': 'Ready', 'status': 'True'}]}
print(json.dumps(d))" >"$T/$1.json" &&
	k replace --raw "/api/v1/namespaces/$NS/pods/$1/status" -f "$T/$1.json" >/dev/null
}
mark_ready "$POD1" 127.0.0.2 && mark_ready "$POD2" 127.0.0.3
check "the pods are Ready at 127.0.0.2 and 127.0.0.3" $?

k -n "$NS" get secret "$(k -n "$NS" get deployment web -o json | jq_py "
print([v for v in d['spec']['template']['spec']['volumes'] if v['name'] == 'backupop-sidecar-config'][0]['secret']['secretName'])")" \
	-o jsonpath='{.data.config\.json}' | base64 -d >"$T/sc.json"
ok "the sidecar's config has no cron and listens on the sidecar port" jq_py "
assert 'schedule' not in d, d.get('schedule')
assert d['api']['listen'] == ':$RPORT', d['api']
assert d['engine']['files']['path'] == '/data'" <"$T/sc.json"
RPIDS=()
runner() { # N IP
	jq_py "
d['storage']['url'] = 'file://$T/store/sc'
d['api']['listen'] = '$2:$RPORT'
d['metrics']['listen'] = '$2:$((RPORT + 1))'
d['engine']['files']['path'] = '$T/vol'
d['engine']['files']['restore']['path'] = '$T/restored'
print(json.dumps(d))" <"$T/sc.json" >"$T/config$1.json" && chmod 600 "$T/config$1.json" || return 1
	"$RUNNER" --config "$T/config$1.json" --state-dir "$T/state$1" --log-format text \
		>"$T/runner$1.log" 2>&1 &
	PIDS+=("$!")
	RPIDS[$1]=$!
	wait_for 20 curl -sf "http://$2:$RPORT/healthz"
}
runner 1 127.0.0.2 && runner 2 127.0.0.3
R=$?
check "two runners answer, started with the sidecar's config (one per pod)" $R
[ $R = 0 ] || { echo "Bail out! no runners"; sed 's/^/# /' "$T"/runner*.log; exit 1; }

runs_json() { k -n "$NS" get backupruns -l backupop.io/schedule-name=sc -o json; }
n_succeeded() { # at least N scheduled BackupRuns succeeded
	runs_json | jq_py "
n = sum(1 for r in d['items'] if r.get('status', {}).get('phase') == 'Succeeded')
assert n >= $1, n"
}
ok "scheduled BackupRuns succeed" wait_for 40 n_succeeded 2
stop_ctl "$PID_a"
start_ctl b --poll-seconds 1 ||
	{ echo "Bail out! the controller did not restart"; sed 's/^/# /' "$T/b.log"; exit 1; }
ok "... and go on after a controller restart" wait_for 40 n_succeeded 4
TOKEN=$(jq_py "print(d['api']['token'])" <"$T/sc.json")
all_runs() {
	for ip in 127.0.0.2 127.0.0.3; do
		curl -sf -H "Authorization: Bearer $TOKEN" "http://$ip:$RPORT/v1/runs" >"$T/rr.$ip" || return 1
		cat "$T/rr.$ip"
		echo
	done
}
# A sidecar lists the runs it made and, read at its start from the shared storage, the
# other sidecars' records: runs are told apart by id.
one_per_time() {
	runs_json >"$T/runs.json"
	all_runs >"$T/rr.json" || return 1
	"$BOP" list --storage "file://$T/store/sc" --name "$NS/sc" --json -q >"$T/list.json" || return 1
	python3 - "$T/runs.json" "$T/rr.json" "$POD1" "$T/list.json" >"$T/counts" <<'EOF2'
import json, sys, datetime
runs = json.load(open(sys.argv[1]))['items']
times = [r['metadata']['annotations']['backupop.io/scheduled-time'] for r in runs]
assert len(times) == len(set(times)), times
secs = [datetime.datetime.strptime(t, '%Y-%m-%dT%H:%M:%SZ').second for t in times]
assert all(s % 6 == 0 for s in secs), times
done = [r for r in runs if r.get('status', {}).get('phase') in ('Succeeded', 'Failed')]
assert all(r['status'].get('runnerPod') == sys.argv[3] for r in done), \
    [(r['metadata']['name'], r['status'].get('runnerPod')) for r in done]
rr = {r['id']: r for l in open(sys.argv[2]) if l.strip() for r in json.loads(l)['runs']}
assert all(r['trigger'] == 'api' for r in rr.values()), rr
sent = sorted(r['status']['runId'] for r in runs if r.get('status', {}).get('runId'))
assert sent == sorted(rr), (sent, sorted(rr))
ok = sorted(r['status']['backupId'] for r in runs if r['status'].get('phase') == 'Succeeded')
lst = json.load(open(sys.argv[4]))
backups = sorted(b['id'] for b in (lst['backups'] if isinstance(lst, dict) else lst))
assert ok == backups, (ok, backups)
print(len(runs), len(rr), len(backups))
EOF2
}
ok "exactly one BackupRun, one run and one backup in storage per scheduled time, all by the first pod by name" \
	wait_for 10 one_per_time
diag "BackupRuns, runs, backups: $(cat "$T/counts")"
events() { # REASON: the schedule's Events with that reason
	k -n "$NS" get events --field-selector "involvedObject.kind=BackupSchedule,involvedObject.name=sc,reason=$1" \
		-o jsonpath='{range .items[*]}{.message}{"\n"}{end}'
}
has_event() { events "$1" | grep -q "$2"; }
ok "an Event BackupSucceeded on the schedule per backup" has_event BackupSucceeded "backup "

# the first pod's sidecar stops answering: runs go to the second
kill "${RPIDS[1]}"
wait "${RPIDS[1]}" 2>/dev/null
by_second() {
	runs_json | jq_py "
late = [r for r in d['items'] if r.get('status', {}).get('runnerPod') == '$POD2' and
        r['status'].get('phase') == 'Succeeded']
assert late"
}
ok "when the first pod's sidecar does not answer, the run goes to the next pod" wait_for 30 by_second

# a backup that fails: the volume's directory is gone
mv "$T/vol" "$T/vol.away"
failed_run() { runs_json | jq_py "assert any(r.get('status', {}).get('phase') == 'Failed' for r in d['items'])"; }
ok "a failing backup makes a Failed BackupRun" wait_for 30 failed_run
ok "... and an Event BackupFailed on the schedule" wait_for 10 has_event BackupFailed "BackupRun sc-"
mv "$T/vol.away" "$T/vol"
kill "${RPIDS[2]}"
wait "${RPIDS[2]}" 2>/dev/null

# restore into the volume (the runner of the first pod again)
runner 1 127.0.0.2
check "the first pod's sidecar is back" $?
k -n "$NS" patch backupschedule sc --type merge -p '{"spec":{"suspend":true}}' >/dev/null
BID=$(runs_json | jq_py "
ok = sorted((r for r in d['items'] if r.get('status', {}).get('phase') == 'Succeeded'),
            key=lambda r: r['status']['completionTime'])
print(ok[-1]['status']['backupId'])")
backuprun sc restore1 restore "$BID"
ok "a BackupRun restore through the sidecar succeeds" wait_for 60 phase_is restore1 Succeeded
ok "... and writes the backed-up bytes into the volume" diff -r "$T/orig" "$T/restored"
restore_no_event() { ! events BackupSucceeded | grep -q restore1; }
ok "a restore is no backup Event" restore_no_event

# a run whose sidecar's pod is deleted while it runs: Failed, saying so, not Running for
# ever. The controller is stopped while the BackupRun gets the status it records once a
# sidecar took the run, naming a pod that has since been deleted.
stop_ctl "$PID_b"
backuprun sc lost backup &&
	k -n "$NS" get backuprun lost -o json | jq_py "
d['status'] = {'phase': 'Running', 'runId': '20260101T000000Z-lost', 'runnerPod': 'web-deleted-0'}
print(json.dumps(d))" >"$T/lost.json" &&
	k replace --raw "/apis/backupop.io/v1alpha1/namespaces/$NS/backupruns/lost/status" \
		-f "$T/lost.json" >/dev/null &&
	phase_is lost Running
check "a BackupRun is Running on pod web-deleted-0, which no longer exists" $?
start_ctl b --poll-seconds 1 ||
	{ echo "Bail out! the controller did not restart"; sed 's/^/# /' "$T/b.log"; exit 1; }
ok "... it fails" wait_for 30 phase_is lost Failed
lost_error() { k -n "$NS" get backuprun lost -o jsonpath='{.status.error}'; }
ok "... saying its pod is gone and what became of its data" sh -c "
'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get backuprun lost -o jsonpath='{.status.error}' |
	grep -q \"pod web-deleted-0 is gone; the run ended with it, unfinished.*backupop gc\""
diag "status.error: $(lost_error)"
ok "... and keeps its run id and pod" test "$(k -n "$NS" get backuprun lost -o jsonpath='{.status.runId} {.status.runnerPod}')" = "20260101T000000Z-lost web-deleted-0"

# a config change makes a new Secret; the old ones go once no pod template names them
sc_secrets() {
	k -n "$NS" get secret -l backupop.io/schedule-name=sc,app.kubernetes.io/name=backupop-sidecar \
		-o jsonpath='{range .items[*]}{.metadata.name}{" "}{end}'
}
named_by() { # KIND NAME: the sidecar Secret its pod template names
	k -n "$NS" get "$1" "$2" -o json | jq_py "
print([v for v in d['spec']['template']['spec']['volumes'] if v['name'] == 'backupop-sidecar-config'][0]['secret']['secretName'])"
}
both_name_new() { # OLD: both templates name one Secret, not OLD; it goes into $NEW
	NEW=$(named_by deployment web) && [ "$NEW" != "$1" ] && [ "$(named_by statefulset db)" = "$NEW" ]
}
OLD1=$(named_by deployment web)
k -n "$NS" patch backupschedule sc --type merge -p '{"spec":{"historyLimits":{"successful":99}}}' >/dev/null
ok "a config change: both pod templates name a new sidecar Secret" wait_for 30 both_name_new "$OLD1"
OLD2=$NEW
k -n "$NS" patch backupschedule sc --type merge -p '{"spec":{"historyLimits":{"successful":98}}}' >/dev/null
ok "... and again" wait_for 30 both_name_new "$OLD2"
CUR=$NEW
only_current() { [ "$(sc_secrets)" = "$CUR " ]; }
ok "the two old Secrets go, the current one stays" wait_for 60 only_current
diag "sidecar Secrets: $(sc_secrets) (were $OLD1, $OLD2)"
holders_gone() { ! k -n "$NS" get configmap "$OLD1" >/dev/null 2>&1 && ! k -n "$NS" get configmap "$OLD2" >/dev/null 2>&1; }
ok "... with their holder ConfigMaps" holders_gone
k -n "$NS" patch backupschedule sc --type merge -p '{"spec":{"historyLimits":{"successful":100}}}' >/dev/null
ok "back to an earlier config: both templates name its Secret again" wait_for 30 both_name_new "$CUR"
back_to_first() { [ "$NEW" = "$OLD1" ] && k -n "$NS" get secret "$OLD1" >/dev/null 2>&1; }
ok "... made anew (the same name, since its content is the same)" wait_for 30 back_to_first
only_first() { [ "$(sc_secrets)" = "$OLD1 " ]; }
ok "... and the one before goes" wait_for 60 only_first
# an old Secret that a pod template names stays (here an unlabelled Deployment's, which
# the controller leaves alone); after a restart the controller knows the schedule's
# Secrets again, and that one goes once no template names it
k -n "$NS" create deployment pin --image=busybox --replicas=0 >/dev/null &&
	k -n "$NS" patch deployment pin --type json -p '[{"op": "add", "path": "/spec/template/spec/volumes",
		"value": [{"name": "cfg", "secret": {"secretName": "'"$OLD1"'"}}]}]' >/dev/null &&
	k -n "$NS" patch backupschedule sc --type merge -p '{"spec":{"historyLimits":{"successful":97}}}' >/dev/null &&
	wait_for 30 both_name_new "$OLD1" && OLD3=$NEW &&
	k -n "$NS" patch backupschedule sc --type merge -p '{"spec":{"historyLimits":{"successful":96}}}' >/dev/null &&
	wait_for 30 both_name_new "$OLD3"
check "an unlabelled Deployment names the current Secret; two more config changes reach both templates" $?
CUR=$NEW
secrets_are() { [ "$(sc_secrets | tr ' ' '\n' | sort | xargs)" = "$(printf '%s\n' "$@" | sort | xargs)" ]; }
ok "the old Secret that Deployment names stays, the other old one goes" wait_for 60 secrets_are "$CUR" "$OLD1"
stop_ctl "$PID_b"
start_ctl c --poll-seconds 1 --log-level debug ||
	{ echo "Bail out! the controller did not restart"; sed 's/^/# /' "$T/c.log"; exit 1; }
stays_logged() { grep -q "old Secret $OLD1 stays: the pod template of deployments pin names it" "$T/c.log"; }
ok "restarted, the controller finds it again and logs (debug) why it stays" wait_for 30 stays_logged
k -n "$NS" delete deployment pin >/dev/null &&
	k -n "$NS" annotate backupschedule sc backupop-test/touched=1 >/dev/null
ok "... and once no template names it, it goes at the schedule's next reconcile" wait_for 60 secrets_are "$CUR"

# unlabel: removed, the user's template as it was
k -n "$NS" label deployment web backupop.io/schedule- >/dev/null
gone() { [ "$(sidecar_of "$1" "$2")" = none ]; }
ok "unlabelled, the Deployment loses the sidecar" wait_for 30 gone deployment web
as_before() {
	k -n "$NS" get deployment web -o json | jq_py "
before = json.load(open('$T/web.before'))
t = d['spec']['template']
assert t['spec']['containers'] == before['containers'] and t['spec']['volumes'] == before['volumes']
assert 'backupop.io/sidecar-of' not in t['metadata'].get('labels', {})
assert 'backupop.io/sidecar' not in d['metadata'].get('annotations', {})"
}
ok "... and its pod template is the user's again" as_before
k -n "$NS" delete backupschedule sc --wait=false >/dev/null
ok "the schedule deleted, the StatefulSet loses the sidecar" wait_for 30 gone statefulset db
db_as_before() {
	k -n "$NS" get statefulset db -o json | jq_py "
t = d['spec']['template']['spec']
assert [c['name'] for c in t['containers']] == ['db'] and not t.get('volumes')"
}
ok "... keeping its own container" db_as_before
no_secrets() { [ -z "$(sc_secrets)" ]; }
ok "... and the sidecar's Secret goes with it" wait_for 60 no_secrets
done_testing
