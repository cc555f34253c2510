#!/bin/bash
# ClusterBackupTemplate / BackupTemplate against the real kube-apiserver, with the shipped
# RBAC and the shipped templates: a schedule of the postgresql template (vars + a vars
# Secret) gets a runner config whose pg_dumpall/psql arguments are the rendered variables
# and whose password is only in env; the password is nowhere in status, Events, the log or
# the StatefulSet. The test plays the kubelet: a BackupRun backup of a real PostgreSQL and a
# restore after the database was dropped bring every row back. A missing variable or
# template is a condition naming it, fixed without touching the schedule; a template's
# change reaches the runner; the shipped mongodb and redis templates render, and (when Redis
# is installed) the redis one takes a snapshot that a fresh server loads.
. "$BOP_SOURCE_ROOT/tests/controller/lib.sh"

[ -x "$RUNNER" ] || skip_all "backupop-runner was not built"
PGSCRIPT="$BOP_SOURCE_ROOT/tests/env/pg-local.sh"
PGD=$T/pg
mkdir -p "$PGD" && chmod 755 "$T" "$PGD"
PASSWORD='Tmpl-pg_pass-8842'
PG_LOCAL_USER=bop PG_LOCAL_PASSWORD=$PASSWORD sh "$PGSCRIPT" start "$PGD" >"$T/pg-start.log" 2>&1
st=$?
[ $st -eq 3 ] && skip_all "PostgreSQL is not installed: $(cat "$T/pg-start.log")"
[ $st -eq 0 ] || { cat "$T/pg-start.log" >&2; echo "Bail out! cannot start PostgreSQL"; exit 1; }
MINE="nope-$NS"
stop_redis() { for f in "$T"/redis/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done; }
trap 'stop_redis; sh "$PGSCRIPT" stop "$PGD" >/dev/null 2>&1; k delete clusterbackuptemplate "$MINE" >/dev/null 2>&1; cleanup' EXIT
. "$PGD/env"
psql_su() { "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PGD" -p "$PG_PORT" -U postgres "$@"; }
psql_su -d postgres -c 'CREATE DATABASE app' >/dev/null
psql_su -d app >/dev/null <<'SQL'
CREATE TABLE orders (id bigint PRIMARY KEY, customer text, note jsonb);
INSERT INTO orders SELECT g, 'cust-' || g % 97, jsonb_build_object('n', g) FROM generate_series(1, 5000) g;
SQL
sum_app() { psql_su -d app -c "SELECT count(*), md5(string_agg(id || customer || note::text, ',' ORDER BY id)) FROM orders"; }
BEFORE=$(sum_app)

ok "the shipped templates apply" k apply -f "$BOP_SOURCE_ROOT/controller/deploy/templates/"
RPORT=$(free_port)
mkdir -p "$T/store"
k -n "$NS" create secret generic pg-vars --from-literal=password="$PASSWORD" >/dev/null
file_storage tp
templated() { # NAME TEMPLATE-REF VARS [VARS-SECRET-REF]
	k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: $1}
spec:
  templateRef: $2
  vars: $3
  ${4:+varsSecretRef: $4}
  storage: {name: files-$NS}
EOF
}
templated pg '{name: postgresql}' "{host: 127.0.0.1, port: $PG_PORT, user: bop}" \
	'{name: pg-vars, keys: [password]}'
check "the API server takes a schedule with templateRef, vars and varsSecretRef" $?
templated nohost '{name: postgresql}' '{user: bop}'
templated later "{name: $MINE}" '{}'
templated mongo '{name: mongodb}' '{}' '{name: mongo-vars}'
k -n "$NS" create secret generic mongo-vars --from-literal=uri='mongodb://u:p@db:27017/' >/dev/null
templated redis '{name: redis}' '{host: cache, port: 6380}'

start_ctl a --runner-url "http://127.0.0.1:$RPORT" --runner-port "$RPORT" --poll-seconds 1 ||
	{ echo "Bail out! the controller did not become ready"; sed 's/^/# /' "$T/a.log"; exit 1; }
ready_is() { [ "$(cond backupschedule "$1")" = "$2" ]; }
message() { k -n "$NS" get backupschedule "$1" -o json | jq_py "
print([c for c in d['status']['conditions'] if c['type'] == 'Ready'][0]['message'])"; }
ok "the postgresql schedule becomes Ready" wait_for 30 ready_is pg "True OnDemandOnly"
N=$(rname "$NS" pg)
k -n "$SYS" get secret "$N" -o jsonpath='{.data.config\.json}' | base64 -d >"$T/config.raw"
ok "the runner config runs pg_dumpall and psql with the rendered variables, no shell" jq_py "
e = d['engine']['exec']
assert e['backupCommand'] == ['pg_dumpall', '--clean', '--if-exists', '--no-password',
    '--host=127.0.0.1', '--port=$PG_PORT', '--username=bop'], e['backupCommand']
assert e['restoreCommand'][0] == 'psql' and '--username=bop' in e['restoreCommand'], e
assert not e.get('shell'), e
assert e['env'] == {'PGPASSWORD': '$PASSWORD', 'PGSSLMODE': 'prefer'}, list(e['env'])" <"$T/config.raw"
k -n "$NS" get backupschedule pg -o json >"$T/sched.json"
k -n "$SYS" get statefulset "$N" -o json >"$T/sts.json"
ok "the password is not in the status, the StatefulSet, the log or any Event" sh -c "
! grep -q '$PASSWORD' '$T/sched.json' && ! grep -q '$PASSWORD' '$T/sts.json' &&
! grep -q '$PASSWORD' '$T/a.log' &&
! '$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' get events -A -o json | grep -q '$PASSWORD'"

ok "a missing required variable: Ready=False TemplateVariableMissing" \
	wait_for 30 ready_is nohost "False TemplateVariableMissing"
names_host() { message nohost | grep -q 'variable host'; }
ok "... whose message names the variable" names_host
ok "... and a Warning Event" wait_for 10 sh -c \
	"'$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $NS get events --field-selector involvedObject.name=nohost,reason=TemplateVariableMissing -o name | grep -q ."
ok "... and no runner objects" sh -c "! '$KUBECTL' --kubeconfig '$BOP_TEST_KUBECONFIG' -n $SYS get statefulset $(rname "$NS" nohost) 2>/dev/null"
k -n "$NS" patch backupschedule nohost --type merge -p '{"spec":{"vars":{"host":"db; touch /tmp/pwned-'"$NS"'"}}}' >/dev/null
ok "given the variable, it becomes Ready" wait_for 20 ready_is nohost "True OnDemandOnly"
k -n "$SYS" get secret "$(rname "$NS" nohost)" -o jsonpath='{.data.config\.json}' | base64 -d >"$T/nohost.json"
ok "a value with shell syntax stays one argument" jq_py "
assert '--host=db; touch /tmp/pwned-$NS' in d['engine']['exec']['backupCommand'], d['engine']" <"$T/nohost.json"

ok "a template that does not exist: Ready=False TemplateNotFound" \
	wait_for 20 ready_is later "False TemplateNotFound"
k apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: ClusterBackupTemplate
metadata: {name: $MINE}
spec:
  variables: [{name: word, default: first}]
  exec: {backupCommand: [echo, "{{ .word }}"]}
EOF
ok "the template created: Ready without touching the schedule" wait_for 20 ready_is later "True OnDemandOnly"
hash() { k -n "$SYS" get statefulset "$(rname "$NS" later)" -o jsonpath='{.spec.template.metadata.annotations.backupop\.io/config-hash}'; }
H0=$(hash)
k patch clusterbackuptemplate "$MINE" --type merge -p '{"spec":{"variables":[{"name":"word","default":"second"}]}}' >/dev/null
changed() { [ -n "$(hash)" ] && [ "$(hash)" != "$H0" ]; }
ok "the template changed: the runner's config follows" wait_for 20 changed
k -n "$SYS" get secret "$(rname "$NS" later)" -o jsonpath='{.data.config\.json}' | base64 -d |
	jq_py "assert d['engine']['exec']['backupCommand'] == ['echo', 'second'], d['engine']"
check "... with the new default" $?

ok "the shipped mongodb template renders (uri from the Secret, through env)" wait_for 20 ready_is mongo "True OnDemandOnly"
k -n "$SYS" get secret "$(rname "$NS" mongo)" -o jsonpath='{.data.config\.json}' | base64 -d |
	jq_py "
e = d['engine']['exec']
assert e['backupCommand'][:2] == ['sh', '-c'] and 'mongodump --archive' in e['backupCommand'][2], e
assert 'mongodb://' not in ' '.join(e['backupCommand'] + e['restoreCommand']), e
assert e['env'] == {'MONGODB_URI': 'mongodb://u:p@db:27017/'}, e"
check "... the connection string only in env" $?
ok "the shipped redis template renders" wait_for 20 ready_is redis "True OnDemandOnly"
k -n "$SYS" get secret "$(rname "$NS" redis)" -o jsonpath='{.data.config\.json}' | base64 -d |
	jq_py "
e = d['engine']['exec']
assert e['backupCommand'] == ['redis-cli', '--no-auth-warning', '-h', 'cache', '-p', '6380', '--rdb', '-'], e
assert 'env' not in e or not e['env'], e"
check "... redis-cli --rdb - with the variables, no password set, no REDISCLI_AUTH" $?

# Play the kubelet for the postgresql schedule: backup, drop the database, restore.
jq_py "
d['storage']['url'] = 'file://$T/store/tp'
print(json.dumps(d))" <"$T/config.raw" >"$T/config.json"
chmod 600 "$T/config.json"
ok "the runner starts with the rendered config" start_runner "$T/config.json"
run() { backuprun pg "$@"; } # NAME ACTION [BACKUP]
run b1 backup
ok "a BackupRun backup through the template (pg_dumpall) succeeds" wait_for 60 phase_is b1 Succeeded
[ "$(k -n "$NS" get backuprun b1 -o jsonpath='{.status.phase}')" = Succeeded ] || sed 's/^/# /' "$T/runner.log" | tail -20
BID=$(k -n "$NS" get backuprun b1 -o jsonpath='{.status.backupId}')
psql_su -d postgres -c 'DROP DATABASE app' >/dev/null
run r1 restore "$BID"
ok "a BackupRun restore through the template (psql) succeeds" wait_for 60 phase_is r1 Succeeded
AFTER=$(sum_app 2>&1)
diag "rows before: $BEFORE, after: $AFTER"
ok "the dropped database is back with every row" test "$BEFORE" = "$AFTER"
ok "the password never showed in the runner's log" sh -c "! grep -q '$PASSWORD' '$T/runner.log'"

# The shipped redis template against a real Redis (when installed): the rendered config,
# run by the CLI as a runner would, takes an RDB snapshot; restored to dump.rdb, a fresh
# server loads it (the restore by hand that the template documents).
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
	RDIR=$T/redis && mkdir -p "$RDIR/a" "$RDIR/b"
	RP=$(free_port)
	RPASS='Redis-pass-3317'
	redis-server --port "$RP" --bind 127.0.0.1 --requirepass "$RPASS" --dir "$RDIR/a" \
		--save '' --appendonly no --daemonize yes --pidfile "$RDIR/a.pid" >/dev/null
	wait_for 10 sh -c "REDISCLI_AUTH='$RPASS' redis-cli --no-auth-warning -p $RP ping | grep -q PONG"
	REDISCLI_AUTH=$RPASS redis-cli --no-auth-warning -p "$RP" set greeting 'hello from redis' >/dev/null
	k -n "$NS" create secret generic redis-vars --from-literal=password="$RPASS" >/dev/null
	templated rds '{name: redis}' "{host: 127.0.0.1, port: $RP}" '{name: redis-vars, keys: [password]}'
	ok "redis: the schedule becomes Ready" wait_for 20 ready_is rds "True OnDemandOnly"
	k -n "$SYS" get secret "$(rname "$NS" rds)" -o jsonpath='{.data.config\.json}' | base64 -d |
		jq_py "
assert d['engine']['exec']['env'] == {'REDISCLI_AUTH': '$RPASS'}, list(d['engine']['exec']['env'])
d['storage']['url'] = 'file://$T/store/redis'
print(json.dumps(d))" >"$T/redis.json"
	chmod 600 "$T/redis.json"
	ok "redis: a backup with the rendered procedure (redis-cli --rdb -)" \
		"$BOP" backup --config "$T/redis.json" -q
	ok "redis: restored to dump.rdb" "$BOP" restore latest --config "$T/redis.json" -q -o "$RDIR/b/dump.rdb"
	RP2=$(free_port)
	redis-server --port "$RP2" --bind 127.0.0.1 --dir "$RDIR/b" --dbfilename dump.rdb \
		--save '' --appendonly no --daemonize yes --pidfile "$RDIR/b.pid" >/dev/null
	loaded() { [ "$(redis-cli -p "$RP2" get greeting)" = 'hello from redis' ]; }
	ok "redis: a fresh server loads it, the data is there" wait_for 10 loaded
	stop_redis
else
	skip "redis: redis-server and redis-cli are not installed (Debian: redis-server, redis-tools)"
fi
done_testing
