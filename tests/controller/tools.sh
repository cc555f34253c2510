#!/bin/bash
# spec.runner.tools against the real API server: the CRD accepts a tools container and
# refuses one without an image; the StatefulSet the controller writes has the init container
# installing backupop-exec-agent, the tools container running it, the shared volume, and the
# runner config points the exec engine at its socket. Then the test plays the kubelet: the
# init container's and the tools container's commands (the real agent, empty environment)
# and the runner with the Secret's config, the paths moved into a local directory; a
# BackupRun backup and restore run their commands in the "tools container". A tools env
# reading a Secret by valueFrom (which would be one of the runner's namespace) is refused.
. "$BOP_SOURCE_ROOT/tests/controller/lib.sh"

AGENT="$BOP_BUILD_ROOT/runner/agent/backupop-exec-agent"
[ -x "$RUNNER" ] || skip_all "backupop-runner was not built"
[ -x "$AGENT" ] || skip_all "backupop-exec-agent was not built"
RPORT=$(free_port)
mkdir -p "$T/store" "$T/tools"
head -c 500000 /dev/urandom >"$T/data"
file_storage tools
k -n "$NS" apply -f - >"$T/noimage.log" 2>&1 <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: noimage}
spec:
  engine: {exec: {backupCommand: [mongodump, --archive]}}
  storage: {name: files-$NS}
  runner: {tools: {imagePullPolicy: Always}}
EOF
ok "the API server refuses runner.tools without an image" test $? -ne 0
ok "... naming the field" grep -q 'runner.tools.*image' "$T/noimage.log"
k -n "$NS" create secret generic mongo-uri --from-literal=uri='mongodb://backup:s3cret@mongo:27017' >/dev/null
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: mongo}
spec:
  engine:
    exec:
      backupCommand: [cat, "$T/data"]
      restoreCommand: [dd, "of=$T/restored", status=none]
      env: {MONGO_URISecretRef: {name: mongo-uri, key: uri}}
  storage: {name: files-$NS}
  runner:
    tools:
      image: mongo:7
      imagePullPolicy: IfNotPresent
      env: [{name: TZ, value: UTC}, {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]
      resources: {limits: {memory: 2Gi}}
      securityContext: {readOnlyRootFilesystem: true}
---
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: steal}
spec:
  engine: {exec: {backupCommand: [printenv, KEY]}}
  storage: {name: files-$NS}
  runner:
    tools:
      image: busybox
      env: [{name: KEY, valueFrom: {secretKeyRef: {name: backupop-controller-key, key: key}}}]
EOF
check "the API server accepts a schedule with runner.tools" $?
start_ctl a --runner-url "http://127.0.0.1:$RPORT" --runner-port "$RPORT" --poll-seconds 1 ||
	{ echo "Bail out! the controller did not become ready"; sed 's/^/# /' "$T/a.log"; exit 1; }
N=$(rname "$NS" mongo)
ready_is() { [ "$(cond backupschedule mongo)" = "$1" ]; }
ok "it becomes Ready" wait_for 30 ready_is "True OnDemandOnly"
steal_refused() { [ "$(cond backupschedule steal)" = "False InvalidSpec" ]; }
ok "a tools env valueFrom.secretKeyRef (a Secret of the runner's namespace) is refused: InvalidSpec" \
	wait_for 30 steal_refused
ok "... naming the entry and where secrets go instead" sh -c "'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get backupschedule steal -o jsonpath='{.status.conditions[0].message}' | grep -q 'spec.runner.tools.env\[0\] (KEY): valueFrom.secretKeyRef is not taken.*KEYSecretRef'"
ok "... and it gets no runner" sh -c "! '$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $SYS get statefulset $(rname "$NS" steal) 2>/dev/null"
k -n "$SYS" get statefulset "$N" -o json >"$T/sts.json"
ok "the StatefulSet has the runner and the tools container" jq_py "
p = d['spec']['template']['spec']
assert [c['name'] for c in p['containers']] == ['runner', 'tools'], p['containers']
t = p['containers'][1]
assert t['image'] == 'mongo:7' and t['imagePullPolicy'] == 'IfNotPresent', t
assert t['command'] == ['/backupop-tools/backupop-exec-agent', '--socket',
    '/backupop-tools/agent.sock', '--allow-uid', '65532'], t['command']
assert [e['name'] for e in t['env']] == ['TZ', 'NODE'] and t['env'][0]['value'] == 'UTC', t['env']
assert t['env'][1]['valueFrom']['fieldRef']['fieldPath'] == 'spec.nodeName', t['env']
assert t['resources']['limits']['memory'] == '2Gi', t['resources']
assert t['securityContext'] == {'allowPrivilegeEscalation': False,
    'capabilities': {'drop': ['ALL']}, 'readOnlyRootFilesystem': True}, t['securityContext']
assert {'name': 'backupop-tools', 'mountPath': '/backupop-tools'} in t['volumeMounts']" <"$T/sts.json"
ok "... an init container installing the agent from the runner image" jq_py "
i = d['spec']['template']['spec']['initContainers']
assert len(i) == 1 and i[0]['image'] == 'backupop/runner:test', i
assert i[0]['command'] == ['/usr/lib/backupop/backupop-exec-agent', '--install',
    '/backupop-tools/backupop-exec-agent'], i[0]['command']
assert i[0]['volumeMounts'][0]['mountPath'] == '/backupop-tools', i" <"$T/sts.json"
ok "... the shared emptyDir, mounted by the runner too" jq_py "
p = d['spec']['template']['spec']
v = [v for v in p['volumes'] if v['name'] == 'backupop-tools']
assert len(v) == 1 and 'emptyDir' in v[0], p['volumes']
assert any(m['mountPath'] == '/backupop-tools' for m in p['containers'][0]['volumeMounts'])" <"$T/sts.json"
k -n "$SYS" get secret "$N" -o jsonpath='{.data.config\.json}' | base64 -d >"$T/config.orig.json"
ok "the runner config points the exec engine at the agent's socket" jq_py "
assert d['engine']['exec']['tools'] == {'socket': '/backupop-tools/agent.sock'}, d['engine']" <"$T/config.orig.json"
ok "... and the commands' env has the secret from the schedule's namespace (MONGO_URISecretRef)" jq_py "
assert d['engine']['exec']['env'] == {'MONGO_URI': 'mongodb://backup:s3cret@mongo:27017'}, list(d['engine']['exec'])" <"$T/config.orig.json"

# Play the kubelet: /backupop-tools is $T/tools, the file storage a local directory.
env -i "$AGENT" --install "$T/tools/backupop-exec-agent" 2>"$T/install.log"
check "the init container's command installs the agent" $?
env -i "$T/tools/backupop-exec-agent" --socket "$T/tools/agent.sock" 2>"$T/agent.log" &
PIDS+=("$!")
ok "the tools container's command listens" wait_for 10 test -S "$T/tools/agent.sock"
jq_py "
d['storage']['url'] = 'file://$T/store/tools'
d['engine']['exec']['tools']['socket'] = '$T/tools/agent.sock'
print(json.dumps(d))" <"$T/config.orig.json" >"$T/config.json"
chmod 600 "$T/config.json"
ok "the runner starts with that config" start_runner "$T/config.json"
run() { backuprun mongo "$@"; } # NAME ACTION [BACKUP]
run b1 backup
ok "a BackupRun backup through the tools container succeeds" wait_for 60 phase_is b1 Succeeded
BID=$(k -n "$NS" get backuprun b1 -o jsonpath='{.status.backupId}')
run r1 restore "$BID"
ok "a BackupRun restore through it succeeds" wait_for 60 phase_is r1 Succeeded
ok "... byte for byte" cmp -s "$T/data" "$T/restored"
done_testing
