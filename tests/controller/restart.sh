#!/bin/bash
# The API server restarted under a running controller (etcd and its data stay, as in a
# control-plane upgrade): the controller's watches reconnect and resume on their own —
# changes made after the restart are reconciled, and the controller process is the same.
. "$BOP_SOURCE_ROOT/tests/controller/lib.sh"

[ -n "${BOP_TEST_K8S_DIR:-}" ] ||
	skip_all "the API server was not started by tests/run (BOP_TEST_K8S_DIR), so it cannot be restarted here"
k -n "$NS" create secret generic db --from-literal=password=p >/dev/null
k -n "$SYS" create secret generic "s3-$NS" --from-literal=accessKeyId=a --from-literal=secretAccessKey=b >/dev/null
k apply -f - >/dev/null <<EOF2
apiVersion: backupop.io/v1alpha1
kind: BackupStorage
metadata: {name: store-$NS}
spec:
  s3: {endpoint: "http://127.0.0.1:9", bucket: b, region: us-east-1}
  credentialsSecretRef: {namespace: $SYS, name: s3-$NS}
EOF2
schedule() {
	k -n "$NS" apply -f - >/dev/null <<EOF2
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: $1}
spec:
  schedule: "@daily"
  engine: {postgres: {host: db, database: app, user: u, passwordSecretRef: {name: db, key: password}}}
  storage: {name: store-$NS}
EOF2
}
schedule before
start_ctl a || { echo "Bail out! the controller did not start"; exit 1; }
ok "before the restart: the runner objects appear" wait_for 30 k -n "$SYS" get statefulset "$(rname "$NS" before)"

K8S_DIR=$BOP_TEST_K8S_DIR bash "$BOP_SOURCE_ROOT/tests/env/k8s-local.sh" restart-apiserver >"$T/restart.log" 2>&1
check "the API server restarted" $?
schedule after
ok "a schedule made after the restart is reconciled (watch resumed, within 60 s)" \
	wait_for 60 k -n "$SYS" get statefulset "$(rname "$NS" after)"
k -n "$NS" delete backupschedule before --wait=false >/dev/null
ok "a deletion after the restart is handled" wait_for 30 sh -c \
	"! '$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $SYS get statefulset $(rname "$NS" before) 2>/dev/null"
ok "the controller process is the one started before (no restart of its own)" kill -0 "$PID_a"
done_testing
