#!/bin/bash
# End to end: the test plays the kubelet. The controller (shipped RBAC) writes the runner
# Secret for a schedule of a real PostgreSQL database and a real radosgw bucket; the test
# starts backupop-runner locally with exactly that config; a BackupRun "backup" and then a
# BackupRun "restore" (into the database after it was dropped and made again) reach
# Succeeded, and the rows are back. Scheduled runs of the runner appear as BackupRuns, and
# history limits delete the old ones.
. "$BOP_SOURCE_ROOT/tests/controller/lib.sh"

[ -n "${BOP_TEST_S3_ENDPOINT:-}" ] || skip_all "no S3 server (tests/run starts radosgw and sets BOP_TEST_S3_ENDPOINT)"
[ -x "$RUNNER" ] || skip_all "backupop-runner was not built"
PGSCRIPT="$BOP_SOURCE_ROOT/tests/env/pg-local.sh"
PGD=$T/pg
mkdir -p "$PGD" && chmod 755 "$T" "$PGD"
PASSWORD='Pg-e2e_pass-4417'
PG_LOCAL_USER=bop PG_LOCAL_PASSWORD=$PASSWORD sh "$PGSCRIPT" start "$PGD" >"$T/pg-start.log" 2>&1
st=$?
[ $st -eq 3 ] && skip_all "PostgreSQL is not installed: $(cat "$T/pg-start.log")"
[ $st -eq 0 ] || { cat "$T/pg-start.log" >&2; echo "Bail out! cannot start PostgreSQL"; exit 1; }
trap 'sh "$PGSCRIPT" stop "$PGD" >/dev/null 2>&1; cleanup' EXIT
. "$PGD/env"
psql_su() { "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PGD" -p "$PG_PORT" -U postgres "$@"; }
psql_su -d postgres -c 'CREATE DATABASE app' >/dev/null
psql_su -d app >/dev/null <<'SQL'
CREATE TABLE orders (id bigint PRIMARY KEY, customer text, total numeric(12,2), note jsonb);
INSERT INTO orders SELECT g, 'cust-' || g % 97, g * 1.25, jsonb_build_object('n', g, 'ü', 'ß')
  FROM generate_series(1, 20000) g;
SQL
sum_app() { psql_su -d app -c "SELECT count(*), md5(string_agg(id || customer || total || note::text, ',' ORDER BY id)) FROM orders"; }
BEFORE=$(sum_app)

"$BOP" keygen -o "$T/key" >/dev/null 2>&1
RECIPIENT=$(grep -o 'age1[0-9a-z]*' "$T/key" | head -1)
RPORT=$(free_port)
S3HOST=${BOP_TEST_S3_ENDPOINT}
k -n "$SYS" create secret generic "s3-$NS" --from-literal=accessKeyId="$AWS_ACCESS_KEY_ID" \
	--from-literal=secretAccessKey="$AWS_SECRET_ACCESS_KEY" >/dev/null
k -n "$NS" create secret generic db --from-literal=password="$PASSWORD" >/dev/null
k -n "$NS" create secret generic keys --from-literal=recipients="$RECIPIENT" \
	--from-file=identity="$T/key" >/dev/null
k apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupStorage
metadata: {name: s3-$NS}
spec:
  s3: {endpoint: "$S3HOST", bucket: "$BOP_TEST_S3_BUCKET", region: us-east-1, prefix: "e2e-$NS",
       forcePathStyle: true}
  credentialsSecretRef: {namespace: $SYS, name: s3-$NS}
  allowedNamespaces: {from: All}
EOF
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: app}
spec:
  schedule: "*/5 * * * * *"
  suspend: true
  engine:
    postgres: {host: 127.0.0.1, port: $PG_PORT, database: app, user: bop,
               passwordSecretRef: {name: db, key: password}}
  storage: {name: s3-$NS}
  compression: {algorithm: zstd, level: 3}
  encryption: {recipientsSecretRef: {name: keys, key: recipients},
               identitySecretRef: {name: keys, key: identity}}
  retention: {keepLast: 3}
  historyLimits: {successful: 2, failed: 2}
EOF
start_ctl a --runner-url "http://127.0.0.1:$RPORT" --runner-port "$RPORT" --poll-seconds 1 ||
	{ echo "Bail out! the controller did not become ready"; exit 1; }
N=$(rname "$NS" app)
ok "the controller writes the runner Secret" wait_for 30 k -n "$SYS" get secret "$N"
# the runner's config and the identity beside it, as the Secret's volume gives them
play_config() {
	k -n "$SYS" get secret "$N" -o jsonpath='{.data.config\.json}' | base64 -d >"$T/config.json"
	k -n "$SYS" get secret "$N" -o jsonpath='{.data.age-identity\.txt}' | base64 -d >"$T/age-identity.txt"
	chmod 600 "$T/config.json" "$T/age-identity.txt"
}
play_config
ok "the runner config encrypts and names the identity from identitySecretRef" jq_py "
e = d['encryption']
assert e['recipients'] == ['$RECIPIENT'] and e['identityFile'] == 'age-identity.txt', e" <"$T/config.json"

# Play the kubelet: run the runner with the config from the Secret.
"$RUNNER" --config "$T/config.json" --state-dir "$T/runner.state" --log-format text \
	>"$T/runner.log" 2>&1 &
RPID=$!
PIDS+=("$RPID")
ok "the runner starts with the controller's config" wait_for 20 curl -sf "http://127.0.0.1:$RPORT/healthz" ||
	{ sed 's/^/# runner: /' "$T/runner.log"; kill -0 "$RPID" 2>/dev/null || echo "# the runner exited"
	  echo "Bail out! the runner did not start"; exit 1; }

run() { backuprun app "$@"; } # NAME ACTION [BACKUP [FIELDS]]
phase() { k -n "$NS" get backuprun "$1" -o jsonpath='{.status.phase}'; }
phase_is() { [ "$(phase "$1")" = "$2" ]; }
run b1 backup
ok "BackupRun backup reaches Succeeded" wait_for 60 phase_is b1 Succeeded
[ "$(phase b1)" = Succeeded ] || { sed 's/^/# /' "$T/runner.log" | tail -20; k -n "$NS" get backuprun b1 -o yaml | sed 's/^/# /'; }
k -n "$NS" get backuprun b1 -o json >"$T/b1.json"
ok "its status mirrors the runner: backup id, bytes, sha256, times" jq_py "
s = d['status']
assert s['backupId'] and s['runId'], s
assert int(s['bytesIn']) > 100000 and int(s['bytesOut']) > 0, s
assert len(s['sha256']) == 64, s
assert s['startTime'].endswith('Z') and s['completionTime'].endswith('Z'), s" <"$T/b1.json"
BID=$(jq_py "print(d['status']['backupId'])" <"$T/b1.json")
ok "the backup is in the bucket, listed by the CLI" sh -c "'$BOP' list --config '$T/config.json' 2>/dev/null | grep -q '$BID'"

# Disaster: the database is dropped and made again, empty.
psql_su -d postgres -c 'DROP DATABASE app' -c 'CREATE DATABASE app' >/dev/null
no_orders() { ! psql_su -d app -c 'SELECT 1 FROM orders' >/dev/null 2>&1; }
ok "the database is empty before the restore" no_orders
run r1 restore "$BID"
ok "BackupRun restore reaches Succeeded" wait_for 60 phase_is r1 Succeeded
[ "$(phase r1)" = Succeeded ] || { sed 's/^/# /' "$T/runner.log" | tail -20; k -n "$NS" get backuprun r1 -o yaml | sed 's/^/# /'; }
AFTER=$(sum_app 2>&1)
diag "rows before: $BEFORE, after: $AFTER"
ok "every row is back (count and md5 of all rows)" test "$BEFORE" = "$AFTER"

# spec.targetDatabase: the same backup into another, new database; app stays as it is.
psql_su -d postgres -c 'CREATE DATABASE app_copy' >/dev/null
psql_su -d app -c 'DELETE FROM orders WHERE id <= 10' >/dev/null
CHANGED=$(sum_app)
run r2 restore "$BID" "targetDatabase: app_copy"
ok "BackupRun restore with targetDatabase app_copy reaches Succeeded" wait_for 60 phase_is r2 Succeeded
[ "$(phase r2)" = Succeeded ] || k -n "$NS" get backuprun r2 -o yaml | sed 's/^/# /'
COPY=$(psql_su -d app_copy -c "SELECT count(*), md5(string_agg(id || customer || total || note::text, ',' ORDER BY id)) FROM orders" 2>&1)
ok "... app_copy holds every row of the backup" test "$BEFORE" = "$COPY"
ok "... app, the schedule's database, is untouched" test "$(sum_app)" = "$CHANGED"
k -n "$NS" apply -f - >/dev/null 2>"$T/apply-bad.err" <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupRun
metadata: {name: r3}
spec: {scheduleRef: {name: app}, action: restore, targetDatabase: "app; DROP"}
EOF
ok "the API server refuses a targetDatabase that is not a plain name" grep -q 'spec.targetDatabase' "$T/apply-bad.err"

run bad restore no-such-backup
ok "a restore of a backup that does not exist fails" wait_for 30 phase_is bad Failed
ok "... saying so in its status" sh -c "'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get backuprun bad -o jsonpath='{.status.error}' | grep -qi 'no-such-backup\\|not found\\|not exist'"

# retainPolicy Delete: deleting the BackupRun deletes its backup from storage.
run b2 backup "" "retainPolicy: Delete"
ok "a BackupRun with retainPolicy Delete succeeds" wait_for 60 phase_is b2 Succeeded
B2=$(k -n "$NS" get backuprun b2 -o jsonpath='{.status.backupId}')
ok "... and its backup is listed" sh -c "'$BOP' list --config '$T/config.json' 2>/dev/null | grep -q '$B2'"
k -n "$NS" delete backuprun b2 --wait=false >/dev/null
gone_run() { ! k -n "$NS" get backuprun b2 >/dev/null 2>&1; }
ok "deleted, the BackupRun goes (finalizer released)" wait_for 30 gone_run
ok "... and its backup is gone from storage" sh -c "! '$BOP' list --config '$T/config.json' 2>/dev/null | grep -q '$B2'"
ok "the other backup stays" sh -c "'$BOP' list --config '$T/config.json' 2>/dev/null | grep -q '$BID'"

# Scheduled runs appear as BackupRuns; history limits (2 successful) apply.
k -n "$NS" patch backupschedule app --type merge -p '{"spec":{"suspend":false}}' >/dev/null
# the runner reads its config at start: play the kubelet again (the config hash changed)
kill "$RPID"; wait "$RPID" 2>/dev/null
sleep 1
play_config
"$RUNNER" --config "$T/config.json" --state-dir "$T/runner.state" --log-format text \
	>>"$T/runner.log" 2>&1 &
RPID=$!
PIDS+=("$RPID")
scheduled_runs() {
	k -n "$NS" get backupruns -o json | jq_py "
n = [r for r in d['items'] if r['metadata'].get('annotations', {}).get('backupop.io/run-id')]
print(len(n))"
}
some_scheduled() { [ "$(scheduled_runs)" -ge 1 ]; }
ok "scheduled runs of the runner appear as BackupRuns" wait_for 90 some_scheduled
last_success() { k -n "$NS" get backupschedule app -o jsonpath='{.status.lastSuccessfulBackup}'; }
has_last_success() { [ -n "$(last_success)" ]; }
ok "the schedule's status shows the last successful backup and schedule time" wait_for 40 has_last_success
ok "... with lastScheduleTime set" sh -c "'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get backupschedule app -o jsonpath='{.status.lastScheduleTime}' | grep -q Z"
succeeded_at_most() {
	local n
	n=$(k -n "$NS" get backupruns -o json | jq_py "
print(len([r for r in d['items'] if r.get('status', {}).get('phase') == 'Succeeded']))")
	[ "$n" -le "$1" ] && [ "$n" -ge 1 ]
}
sleep 12
ok "history limits keep at most 2 succeeded BackupRuns" wait_for 30 succeeded_at_most 2
kill "$RPID"
done_testing
