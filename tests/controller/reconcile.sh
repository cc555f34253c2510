#!/bin/bash
# backupop-controller against the real kube-apiserver, with the shipped RBAC: runner objects
# made for a schedule (names, labels, mounts, affinity, pull secrets), the config hash (it
# changes with the spec or a referenced Secret and not otherwise), no writes over a quiet
# minute, invalid schedules (conditions + Events, Ready again once fixed), deletion
# (objects gone, finalizer removed) and orphans swept after a restart.
. "$BOP_SOURCE_ROOT/tests/controller/lib.sh"

"$BOP" keygen -o "$T/key" >/dev/null 2>&1 || { echo "Bail out! backupop keygen failed"; exit 1; }
RECIPIENT=$(grep -o 'age1[0-9a-z]*' "$T/key" | head -1)
STORE=store-$NS
k -n "$SYS" create secret generic "s3-$NS" --from-literal=accessKeyId=AKTEST \
	--from-literal=secretAccessKey=sk-never-logged-5521 >/dev/null
k -n "$NS" create secret generic db --from-literal=password=pw-never-logged-9913 >/dev/null
k -n "$NS" create secret generic keys --from-literal=recipients="$RECIPIENT" >/dev/null
storage() { # ALLOWED-YAML
	k apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupStorage
metadata: {name: $STORE}
spec:
  s3: {endpoint: "http://127.0.0.1:9", bucket: backups, region: us-east-1, prefix: prod,
       forcePathStyle: true}
  credentialsSecretRef: {namespace: $SYS, name: s3-$NS}
  allowedNamespaces: $1
EOF
}
schedule() { # NAME CRON [RETENTION-KEEPLAST] [PASSWORD-SECRET]
	k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: $1}
spec:
  schedule: "$2"
  timeZone: Europe/Berlin
  engine:
    postgres: {host: orders-db.$NS.svc, database: orders, user: backup,
               passwordSecretRef: {name: ${4:-db}, key: password}}
  storage: {name: $STORE}
  compression: {algorithm: zstd, level: 3}
  encryption: {recipientsSecretRef: {name: keys, key: recipients}}
  retention: {keepLast: ${3:-3}, keepDaily: 7}
  concurrencyPolicy: Forbid
  historyLimits: {successful: 10, failed: 3}
  runner: {affinity: {podSelector: {app: orders-db}}}
EOF
}
storage '{from: All}'
schedule orders "0 */6 * * *"

start_ctl a --image-pull-secret regcred || { echo "Bail out! the controller did not become ready"; sed 's/^/# /' "$T/a.log"; exit 1; }
N=$(rname "$NS" orders)
ok "the runner Secret $SYS/$N appears" wait_for 30 k -n "$SYS" get secret "$N"
ok "the runner StatefulSet appears" wait_for 30 k -n "$SYS" get statefulset "$N"
ok "the runner Service appears" wait_for 30 k -n "$SYS" get service "$N"
k -n "$SYS" get statefulset "$N" -o json >"$T/sts.json"
ok "objects carry the schedule labels" jq_py "
l = d['metadata']['labels']
assert l['backupop.io/schedule-namespace'] == '$NS', l
assert l['backupop.io/schedule-name'] == 'orders', l" <"$T/sts.json"
ok "1 replica, the runner image, the config Secret mounted read-only" jq_py "
s = d['spec']; p = s['template']['spec']
assert s['replicas'] == 1
c = p['containers'][0]
assert c['image'] == 'backupop/runner:test', c['image']
vols = {v['name']: v for v in p['volumes']}
m = [m for m in c['volumeMounts'] if 'secret' in vols[m['name']]]
assert m and m[0].get('readOnly') is True, c['volumeMounts']
assert vols[m[0]['name']]['secret']['secretName'] == '$N'" <"$T/sts.json"
ok "imagePullSecrets come from the controller's flags" jq_py "
assert d['spec']['template']['spec']['imagePullSecrets'] == [{'name': 'regcred'}]" <"$T/sts.json"
ok "a preferred pod affinity to the database pods in their namespace" jq_py "
a = d['spec']['template']['spec']['affinity']['podAffinity']
t = a['preferredDuringSchedulingIgnoredDuringExecution'][0]['podAffinityTerm']
assert t['labelSelector']['matchLabels'] == {'app': 'orders-db'}, t
assert t['namespaces'] == ['$NS'], t" <"$T/sts.json"
ok "the pod runs as non-root with a read-only root file system" jq_py "
p = d['spec']['template']['spec']; c = p['containers'][0]
sc = dict(p.get('securityContext', {})); sc.update(c.get('securityContext', {}))
assert sc.get('runAsNonRoot') is True and sc.get('readOnlyRootFilesystem') is True, sc" <"$T/sts.json"
ok "the schedule gets its finalizer" wait_for 10 sh -c \
	"'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get backupschedule orders -o jsonpath='{.metadata.finalizers}' | grep -q backupop.io/cleanup"
ready_is() { # NAME "STATUS REASON"
	[ "$(cond backupschedule "$1")" = "$2" ]
}
ok "the schedule becomes Ready" wait_for 20 ready_is orders "True RunnerApplied"
k -n "$NS" get backupschedule orders -o json >"$T/sched.json"
ok "status: nextScheduleTime, observedGeneration, runnerName" jq_py "
s = d['status']
assert s['nextScheduleTime'].endswith('Z'), s
assert s['observedGeneration'] == d['metadata']['generation'], s
assert s['runnerName'] == '$N', s" <"$T/sched.json"
ok "kubectl get shows the printer columns" sh -c "'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get backupschedules | head -1 | grep -qi schedule"

# The runner config the controller wrote: every secret resolved, loadable by the runner.
k -n "$SYS" get secret "$N" -o jsonpath='{.data.config\.json}' | base64 -d >"$T/config.json"
ok "the runner config holds the resolved password, recipients and S3 credentials" \
	sh -c "grep -q pw-never-logged-9913 '$T/config.json' && grep -q '$RECIPIENT' '$T/config.json' && grep -q sk-never-logged-5521 '$T/config.json'"
ok "no secret in the controller's log, the schedule's status or Events" sh -c "
! grep -q -e pw-never-logged -e sk-never-logged '$T/a.log' &&
! grep -q -e pw-never-logged -e sk-never-logged '$T/sched.json' &&
! '$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' get events -A -o json | grep -q -e pw-never-logged -e sk-never-logged"

hash() { k -n "$SYS" get statefulset "$N" -o jsonpath='{.spec.template.metadata.annotations.backupop\.io/config-hash}'; }
H0=$(hash)
ok "the pod template carries a config hash" test -n "$H0"
changed_from() { [ -n "$(hash)" ] && [ "$(hash)" != "$1" ]; }
schedule orders "0 */6 * * *" 5
ok "changing the schedule's spec changes the config hash" wait_for 20 changed_from "$H0"
H1=$(hash)
k -n "$NS" create secret generic db --from-literal=password=pw-never-logged-2 --dry-run=client -o yaml |
	k apply -f - >/dev/null 2>&1
ok "changing a referenced Secret changes the config hash" wait_for 20 changed_from "$H1"
H2=$(hash)
k -n "$NS" label backupschedule orders team=shop >/dev/null
k -n "$NS" annotate secret db note=rotated-later >/dev/null
sleep 3
ok "labels on the schedule and annotations on the Secret leave it alone" test "$(hash)" = "$H2"

W0=$(metric "$MPORT_a" backupop_controller_writes_total)
sleep 60
W1=$(metric "$MPORT_a" backupop_controller_writes_total)
diag "writes to the API server: $W0 before and $W1 after a quiet minute"
ok "no writes over a quiet minute" test "$W0" = "$W1"

# Invalid schedules: a condition with the reason, an Event, and Ready once fixed.
event_for() { # NAME REASON
	k -n "$NS" get events --field-selector "involvedObject.name=$1,reason=$2" -o name | grep -q .
}
schedule badcron "61 * * * *"
ok "a bad cron expression gives Ready=False InvalidSchedule" wait_for 20 ready_is badcron "False InvalidSchedule"
ok "... and a Warning Event with that reason" wait_for 10 event_for badcron InvalidSchedule
k -n "$NS" get backupschedule badcron -o json | jq_py "
c = [c for c in d['status']['conditions'] if c['type'] == 'Ready'][0]; print(c['message'])" >"$T/msg"
diag "message: $(cat "$T/msg")"
ok "the message names the field" grep -q -i schedule "$T/msg"
fails "no runner objects for it" k -n "$SYS" get statefulset "$(rname "$NS" badcron)"
schedule badcron "1 * * * *"
ok "fixed, it becomes Ready" wait_for 20 ready_is badcron "True RunnerApplied"

schedule nosecret "0 3 * * *" 3 later-db
ok "a missing Secret gives Ready=False SecretNotFound" wait_for 20 ready_is nosecret "False SecretNotFound"
ok "... and an Event" wait_for 10 event_for nosecret SecretNotFound
k -n "$NS" create secret generic later-db --from-literal=wrong=x >/dev/null
ok "a Secret without the key gives SecretKeyNotFound" wait_for 20 ready_is nosecret "False SecretKeyNotFound"
k -n "$NS" create secret generic later-db --from-literal=password=p --dry-run=client -o yaml |
	k apply -f - >/dev/null 2>&1
ok "the key appears: Ready without touching the schedule" wait_for 20 ready_is nosecret "True RunnerApplied"

storage "{from: Names, names: [somewhere-else]}"
ok "a storage that does not allow the namespace gives StorageNotAllowed" \
	wait_for 20 ready_is orders "False StorageNotAllowed"
storage '{from: All}'
ok "allowed again: Ready" wait_for 20 ready_is orders "True RunnerApplied"

LONG=a-very-long-schedule-name-that-goes-on-and-on-past-the-limits-of-labels
schedule "$LONG" "0 4 * * *"
ok "a long schedule name gets a shortened runner name" wait_for 20 sh -c \
	"'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $SYS get statefulsets -o name | grep -q 'runner-$NS-a-very'"
names_short() {
	local n
	for n in $(k -n "$SYS" get statefulsets,services -o jsonpath='{.items[*].metadata.name}'); do
		[ ${#n} -le 52 ] || return 1
	done
}
ok "... of at most 52 characters" names_short

# Deletion: objects gone and the finalizer removed (the schedule disappears).
k -n "$NS" delete backupschedule nosecret --wait=false >/dev/null
ok "a deleted schedule's runner objects are removed" wait_for 20 sh -c \
	"! '$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $SYS get statefulset,service,secret $(rname "$NS" nosecret) 2>/dev/null | grep -q ."
ok "... and the schedule is gone (finalizer removed)" wait_for 20 sh -c \
	"! '$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get backupschedule nosecret 2>/dev/null"

# Controller down while schedules go: one deleted (waits on the finalizer), one whose
# finalizer someone removed by hand (its objects are orphans). A new controller cleans both.
kill "$PID_a"
wait "$PID_a" 2>/dev/null
k -n "$NS" delete backupschedule badcron --wait=false >/dev/null
k -n "$NS" patch backupschedule "$LONG" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null
k -n "$NS" delete backupschedule "$LONG" --wait=false >/dev/null
ok "while no controller runs, the deleted schedule waits on its finalizer" \
	k -n "$NS" get backupschedule badcron
start_ctl b
ok "restarted: the deleted schedule's objects are removed and it is gone" wait_for 30 sh -c \
	"! '$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get backupschedule badcron 2>/dev/null && ! '$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $SYS get statefulset $(rname "$NS" badcron) 2>/dev/null"
ok "restarted: the orphaned runner objects are swept" wait_for 30 sh -c \
	"! '$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $SYS get statefulsets -o name | grep -q 'runner-$NS-a-very'"
ok "the remaining schedule's objects are untouched" k -n "$SYS" get statefulset "$N"
kill "$PID_b"
wait "$PID_b"
check "SIGTERM stops the controller with status 0" $?
done_testing
