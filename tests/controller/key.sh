#!/bin/bash
# The controller's secret key (Secret backupop-controller-key, data.key: 64 hex digits,
# base64 in the API like every Secret value): made at the first start, read back by the
# next controller through the library's Secret decoding (no hand-written base64 of its
# own), so the runners' API tokens stay the same; a key Secret that holds no key stops the
# controller instead of letting it derive tokens from an all-zero key.
. "$BOP_SOURCE_ROOT/tests/controller/lib.sh"

KEY=backupop-controller-key
k -n "$SYS" get secret "$KEY" -o json >"$T/key-before.json" 2>/dev/null || rm -f "$T/key-before.json"
restore_key() {
	k -n "$SYS" delete secret "$KEY" --wait=true >/dev/null 2>&1
	[ -f "$T/key-before.json" ] && jq_py "
for f in ('resourceVersion', 'uid', 'creationTimestamp', 'managedFields'):
    d['metadata'].pop(f, None)
print(json.dumps(d))" <"$T/key-before.json" | k create -f - >/dev/null 2>&1
}
trap 'restore_key; cleanup' EXIT
k -n "$SYS" delete secret "$KEY" --wait=true >/dev/null 2>&1

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
k -n "$NS" apply -f - >/dev/null <<EOF2
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: keyed}
spec:
  schedule: "@daily"
  engine: {postgres: {host: db, database: app, user: u, passwordSecretRef: {name: db, key: password}}}
  storage: {name: store-$NS}
EOF2
RUNNER_SECRET=$(rname "$NS" keyed)
runner_config() { # the runner config (with its API token) as the controller wrote it
	k -n "$SYS" get secret "$RUNNER_SECRET" -o jsonpath='{.data.config\.json}' 2>/dev/null
}
key_hex() { k -n "$SYS" get secret "$KEY" -o jsonpath='{.data.key}' | base64 -d; }

start_ctl a || { echo "Bail out! the controller did not start"; exit 1; }
ok "the first controller made Secret $KEY" wait_for 10 k -n "$SYS" get secret "$KEY"
ok "its data.key is 64 lowercase hex digits" sh -c "'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $SYS get secret $KEY -o jsonpath='{.data.key}' | base64 -d | grep -Eqx '[0-9a-f]{64}'"
ok "the schedule's runner config is written" wait_for 30 sh -c "[ -n \"\$('$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $SYS get secret $RUNNER_SECRET -o jsonpath='{.data.config\\.json}')\" ]"
first_key=$(key_hex)
first_config=$(runner_config)
stop_ctl "$PID_a"
check "the first controller stops on SIGTERM" $?

start_ctl b
check "a second controller starts with the key it finds" $?
sleep 3
[ "$(key_hex)" = "$first_key" ]
check "the key is kept, not made again" $?
[ -n "$first_config" ] && [ "$(runner_config)" = "$first_config" ]
check "the runner's config and API token are unchanged across controllers" $?
grep -q "created Secret" "$T/b.log"
[ $? -ne 0 ]
check "the second controller did not create a key" $?
stop_ctl "$PID_b"
check "the second controller stops on SIGTERM" $?

k -n "$SYS" delete secret "$KEY" --wait=true >/dev/null
k -n "$SYS" create secret generic "$KEY" --from-literal=other=x >/dev/null
port=$(free_port)
timeout 30 "$CTL" --kubeconfig "$T/sa.kubeconfig" --namespace "$SYS" --runner-image backupop/runner:test \
	--metrics-addr "127.0.0.1:$port" --log-format text >"$T/c.log" 2>&1
st=$?
[ $st -ne 0 ] && [ $st -ne 124 ]
check "a key Secret without data.key: the controller refuses to start (exit $st)" $?
grep -q "Secret $KEY: the Secret has no key \"key\"" "$T/c.log"
check "and says which Secret lacks which key" $?
[ $st -eq 0 ] || [ $st -eq 124 ] && sed 's/^/# /' "$T/c.log" | tail -5

k -n "$SYS" delete secret "$KEY" --wait=true >/dev/null
k -n "$SYS" create secret generic "$KEY" --from-literal=key=not-hex >/dev/null
timeout 30 "$CTL" --kubeconfig "$T/sa.kubeconfig" --namespace "$SYS" --runner-image backupop/runner:test \
	--metrics-addr "127.0.0.1:$port" --log-format text >"$T/d.log" 2>&1
st=$?
[ $st -ne 0 ] && [ $st -ne 124 ] && grep -q "has a malformed key" "$T/d.log"
check "a key that is not 64 hex digits: refused as malformed (exit $st)" $?
done_testing
