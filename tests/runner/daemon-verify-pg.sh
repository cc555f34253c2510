#!/bin/bash
# backupop-runner verifications with a test restore into a scratch database of a real
# PostgreSQL (tests/env/pg-local.sh) and the row check: a backup through the runner API,
# a verification that restores it into the scratch database and reports the rows it
# counted there, and one that expects more rows than there are and fails saying so.
. "$BOP_SOURCE_ROOT/tests/runner/lib.sh"

PASSWORD='Pg-verify_pass-7731'
start_pg "$PASSWORD"

psql_su -d postgres -c 'CREATE DATABASE app' -c 'CREATE DATABASE scratch' >/dev/null
psql_su -d app >/dev/null <<'SQL'
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id serial PRIMARY KEY, name text, photo bytea);
INSERT INTO shop.customers (name, photo) VALUES ('Zoë', '\x00ff'), ('Иван', NULL), ('李', '\x01');
CREATE TABLE shop.orders (id bigint PRIMARY KEY, customer int REFERENCES shop.customers, total numeric(12,2));
INSERT INTO shop.orders SELECT g, 1 + g % 3, g * 1.5 FROM generate_series(1, 4) g;
CREATE TABLE public.events (at timestamptz DEFAULT now(), what jsonb);
INSERT INTO public.events (what) SELECT jsonb_build_object('n', g) FROM generate_series(1, 5) g;
CREATE VIEW shop.big_orders AS SELECT * FROM shop.orders WHERE total > 3;
SQL
printf '%s\n' "$PASSWORD" >"$T/pgpass"
chmod 600 "$T/pgpass"

# conf NAME EXPECT EXTRA: a runner of catalog "pgapp" with a scratch database.
conf() {
	cat >"$T/$1.yaml" <<YAML
name: pgapp
storage: 'file://$T/store'
engine:
  postgres: {host: 127.0.0.1, port: $PG_PORT, database: app, user: bop, passwordFile: '$T/pgpass'}
verification:
  $3
  restore:
    engine:
      postgres: {host: 127.0.0.1, port: $PG_PORT, database: scratch, user: bop,
                 passwordFile: '$T/pgpass', restore: {clean: true}}
    expectRows: $2
api: {listen: '127.0.0.1:0', token: '$TOKEN'}
YAML
}

conf good 12 ""
start good "$T/good.yaml"
ok "the runner starts with a postgres scratch database" test -n "$PORT"
api -X POST "$URL/v1/backups" >"$T/post.json"
ok "a backup of the postgres database through the API succeeds" \
	wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Succeeded
bid=$(jq_py 'print(d["backup"])' <"$T/run.json")
api -X POST "$URL/v1/verifications" >"$T/post.json"
vid=$(jq_py 'print(d["id"])' <"$T/post.json")
ok "a verification with expectRows 12 restores it into the scratch database: Succeeded" \
	wait_phase "$vid" Succeeded
ok "... the run reports kind verify, the backup, 12 rows in 3 tables" \
	jq_py "assert d['kind']=='verify' and d['backup']=='$bid' and d['rows']==12 and d['tables']==3 and not d.get('error'), d" <"$T/run.json"
ok "... so does its record in the storage" \
	python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['rows']==12 and d['phase']=='Succeeded', d" \
	"$T/store/pgapp/runs/$vid.json"
got=$(psql_su -d scratch -c "SELECT string_agg(name, ',' ORDER BY id) FROM shop.customers" \
	-c "SELECT sum(total) FROM shop.big_orders" -c "SELECT count(*) FROM public.events" | tr '\n' ' ')
ok "... the scratch database holds the restored data (got '$got')" test "$got" = "Zoë,Иван,李 10.50 5 "
ok "... the log line gives the count" grep -q 'the scratch database has 12 rows in 3 tables' "$T/good.log"
kill -TERM "$PID"
wait "$PID"

conf bad 100 "schedule: '*/2 * * * * *'"
start bad "$T/bad.yaml"
api -X POST "$URL/v1/verifications" >"$T/post.json"
ok "a verification expecting 100 rows (there are 12) is Failed" \
	wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Failed
ok "... with a clear error and the rows it found" \
	jq_py "assert d['error']=='row check failed: the restored scratch database has 12 rows in 3 tables, expected at least 100 (verification.restore.expectRows)' and d['rows']==12, d" <"$T/run.json"
sleep 3
api "$URL/v1/runs" >"$T/runs.json"
ok "verification.schedule: a scheduled verification ran, restored and counted (Failed the same way)" \
	jq_py "v=[r for r in d['runs'] if r['trigger']=='scheduled' and r['kind']=='verify' and r.get('end')]; assert v and all(r['phase']=='Failed' and r['rows']==12 and 'expected at least 100' in r['error'] for r in v), d" <"$T/runs.json"
kill -TERM "$PID"
wait "$PID"
ok "the password is in no log and no run record" \
	sh -c '! grep -rq -- "$1" "$2"/*.log "$2"/store' sh "$PASSWORD" "$T"

# Refused at start: a row check where there is no single database to count in.
sed -e 's/database: scratch,/allDatabases: true,/' -e 's/, restore: {clean: true}//' "$T/good.yaml" >"$T/all.yaml"
"$RUNNER" --config "$T/all.yaml" 2>"$T/err"
st=$?
ok "expectRows with an allDatabases scratch engine: exit 2 (got $st)" test "$st" -eq 2
ok "... saying why" grep -q 'verification.restore.expectRows: the row check needs one scratch database' "$T/err"
done_testing
