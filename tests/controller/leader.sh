#!/bin/bash
# Leader election between two backupop-controllers on the real API server: one leader;
# the leader killed (no release) -> the other takes over within the lease time; a leader
# stopped with SIGTERM releases the lease -> the other takes over at once. Only the leader
# reconciles.
. "$BOP_SOURCE_ROOT/tests/controller/lib.sh"

LEASE=4
leader_of() { metric "$1" backupop_controller_leader 2>/dev/null; }
one_leader() {
	local a b
	a=$(leader_of "$MPORT_a") b=$(leader_of "$MPORT_b")
	[ "$((a + b))" -eq 1 ]
}
start_ctl a --leader-elect --lease-seconds $LEASE --identity ctl-a ||
	{ echo "Bail out! controller a did not start"; exit 1; }
start_ctl b --leader-elect --lease-seconds $LEASE --identity ctl-b ||
	{ echo "Bail out! controller b did not start"; exit 1; }
ok "two controllers: exactly one leader" wait_for 20 one_leader
sleep 3
ok "... and it stays that way" one_leader
holder=$(k -n "$SYS" get lease backupop-controller -o jsonpath='{.spec.holderIdentity}')
diag "lease holder: $holder"
ok "the Lease names the leader" sh -c "[ '$holder' = ctl-a ] || [ '$holder' = ctl-b ]"
if [ "$holder" = ctl-a ]; then L=a F=b; else L=b F=a; fi
lpid=$(eval echo "\$PID_$L")
fport=$(eval echo "\$MPORT_$F")

# Only the leader works: a schedule is reconciled (by the leader) exactly once per change.
k -n "$NS" create secret generic db --from-literal=password=p >/dev/null
k apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupStorage
metadata: {name: store-$NS}
spec:
  s3: {endpoint: "http://127.0.0.1:9", bucket: b, region: us-east-1}
  credentialsSecretRef: {namespace: $SYS, name: none-$NS}
  allowedNamespaces: {from: All}
EOF
ok "the standby reconciles nothing" test "$(metric "$fport" backupop_controller_reconcile_total)" = 0

kill -9 "$lpid"
t0=$(date +%s.%N)
ok "leader killed: the other takes over within the lease time (+ retry period)" \
	wait_for $((LEASE + 4)) sh -c "[ \"\$(curl -s http://127.0.0.1:$fport/metrics | grep '^backupop_controller_leader ' | cut -d' ' -f2)\" = 1 ]"
t1=$(date +%s.%N)
diag "takeover after a kill: $(python3 -c "print(round($t1 - $t0, 1))") s (lease $LEASE s)"
ok "the Lease now names the new leader" sh -c \
	"[ \"\$('$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $SYS get lease backupop-controller -o jsonpath='{.spec.holderIdentity}')\" = ctl-$F ]"

# A third candidate; the leader stops cleanly and releases the lease.
start_ctl c --leader-elect --lease-seconds 30 --identity ctl-c ||
	{ echo "Bail out! controller c did not start"; exit 1; }
fpid=$(eval echo "\$PID_$F")
kill -TERM "$fpid"
t0=$(date +%s.%N)
wait "$fpid"
check "SIGTERM: the leader exits with status 0" $?
ok "released: the next candidate takes over well before the (30 s) lease would expire" \
	wait_for 10 sh -c "[ \"\$(curl -s http://127.0.0.1:$MPORT_c/metrics | grep '^backupop_controller_leader ' | cut -d' ' -f2)\" = 1 ]"
t1=$(date +%s.%N)
diag "takeover after a release: $(python3 -c "print(round($t1 - $t0, 1))") s"
done_testing
