#!/bin/bash
# POST /v1/restores with "targetDatabase": a restore into another database than the
# engine's, for that run only, against a real PostgreSQL (tests/env/pg-local.sh) and a real
# MariaDB (tests/env/mariadb-local.sh): the rows arrive in the new database, the original
# one is untouched, the next plain restore goes where the config says again; names that
# are not plain identifiers and engines that have no single database are refused with 400
# before anything runs.
. "$BOP_SOURCE_ROOT/tests/runner/lib.sh"

PASSWORD='Pg-target_pass-5521'
start_pg "$PASSWORD"
both_cleanup() {
	my_stop
	pg_cleanup
}
trap both_cleanup EXIT

psql_su -d postgres -c 'CREATE DATABASE app' -c 'CREATE DATABASE app_copy' \
	-c 'CREATE DATABASE app_restored' >/dev/null
psql_su -d app >/dev/null <<'SQL'
CREATE TABLE items (id int PRIMARY KEY, name text);
INSERT INTO items VALUES (1, 'Zoë'), (2, 'Иван'), (3, '李');
SQL
printf '%s\n' "$PASSWORD" >"$T/pgpass"
chmod 600 "$T/pgpass"
# rows DB: the items of a PostgreSQL database, one line
rows() { psql_su -d "$1" -c "SELECT string_agg(id || ':' || name, ',' ORDER BY id) FROM items" 2>&1; }
post_restore() { api -X POST "$URL/v1/restores" -H 'Content-Type: application/json' -d "$1"; }
# refused BODY TEXT: POST /v1/restores gets 400 with TEXT in the error
refused() {
	local c
	c=$(api -o "$T/err.json" -w '%{http_code}' -X POST "$URL/v1/restores" -d "$1")
	[ "$c" = 400 ] && jq_py 'print(d["error"])' <"$T/err.json" | grep -qF -- "$2" ||
		{ echo "HTTP $c: $(cat "$T/err.json")"; return 1; }
}

runner_config "$T/pg.yaml" pgapp <<YAML
postgres: {host: 127.0.0.1, port: $PG_PORT, database: app, user: bop, passwordFile: '$T/pgpass',
           restore: {database: app_restored}}
YAML
start pg "$T/pg.yaml"
api -X POST "$URL/v1/backups" >"$T/post.json"
ok "postgres: a backup of app through the API succeeds" \
	wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Succeeded
psql_su -d app -c "UPDATE items SET name = 'changed' WHERE id = 1" >/dev/null
post_restore '{"backup": "latest", "targetDatabase": "app_copy"}' >"$T/post.json"
rid=$(jq_py 'print(d["id"])' <"$T/post.json")
ok "postgres: a restore with targetDatabase app_copy succeeds" wait_phase "$rid" Succeeded
ok "... the run names its target database" jq_py "assert d['targetDatabase']=='app_copy', d" <"$T/run.json"
got=$(rows app_copy)
ok "... app_copy holds the backed-up rows (got '$got')" test "$got" = "1:Zoë,2:Иван,3:李"
got=$(rows app)
ok "... app, the engine's database, is untouched (got '$got')" test "$got" = "1:changed,2:Иван,3:李"
got=$(psql_su -d app_restored -c "SELECT count(*) FROM pg_tables WHERE tablename = 'items'")
ok "... and app_restored, its restore.database, too (got '$got' tables)" test "$got" = 0
ok "... the log says where it restored" grep -q 'restoring into database app_copy (targetDatabase)' "$T/pg.log"
post_restore '{}' >"$T/post.json"
ok "a plain restore afterwards goes into restore.database again" \
	wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Succeeded
got=$(rows app_restored)
ok "... app_restored now holds the rows (got '$got')" test "$got" = "1:Zoë,2:Иван,3:李"
post_restore '{"targetDatabase": "no_such_db"}' >"$T/post.json"
ok "a target database that does not exist: the run fails" \
	wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Failed
ok "... with PostgreSQL's message" jq_py "assert 'no_such_db' in d['error'] and 'does not exist' in d['error'], d" <"$T/run.json"
ok "an empty name: 400" refused '{"targetDatabase": ""}' 'invalid database name "" (0 bytes)'
ok "a name with a space and '=' (a libpq connection string): 400" \
	refused '{"targetDatabase": "host=evil dbname=x"}' 'invalid database name "host=evil dbname=x"'
ok "a name starting with '-' (an option): 400" refused '{"targetDatabase": "-Ufoo"}' 'starting with a letter'
ok "a name with a quote and a semicolon: 400" refused "{\"targetDatabase\": \"x';DROP\"}" 'invalid database name'
ok "64 characters (the limit is 63): 400" refused "{\"targetDatabase\": \"$(printf 'a%.0s' $(seq 64))\"}" '(64 bytes)'
ok "a number: 400" refused '{"targetDatabase": 7}' 'targetDatabase: must be a string'
c=$(api -o "$T/err.json" -w '%{http_code}' -X POST "$URL/v1/verifications" -d '{"targetDatabase": "app_copy"}')
ok "a verification does not take targetDatabase: 400 (got $c)" test "$c" = 400
kill -TERM "$PID"
wait "$PID"

# Engines that cannot restore into another database: refused before anything is queued.
runner_config "$T/pgall.yaml" pgall <<YAML
postgres: {host: 127.0.0.1, port: $PG_PORT, allDatabases: true, user: bop, passwordFile: '$T/pgpass'}
YAML
start pgall "$T/pgall.yaml"
ok "postgres allDatabases: 400, the dump recreates every database under its own name" \
	refused '{"targetDatabase": "app_copy"}' 'backs up every database (allDatabases)'
kill -TERM "$PID"
wait "$PID"
sed 's/restore: {database: app_restored}/restore: {create: true}/' "$T/pg.yaml" >"$T/pgcreate.yaml"
start pgcreate "$T/pgcreate.yaml"
ok "postgres restore.create: 400 saying why" refused '{"targetDatabase": "app_copy"}' 'restore.create is set'
kill -TERM "$PID"
wait "$PID"
mkdir -p "$T/files"
echo data >"$T/files/a"
runner_config "$T/files.yaml" filesapp <<YAML
files: {path: '$T/files'}
YAML
start files "$T/files.yaml"
ok "the files engine: 400, it has no database" \
	refused '{"targetDatabase": "app_copy"}' 'targetDatabase: the files engine has no database to restore into'
ok "... and nothing was queued" jq_py "assert d['runs']==[], d" < <(api "$URL/v1/runs")
kill -TERM "$PID"
wait "$PID"
ok "the postgres password is in no log and no run record" \
	sh -c '! grep -rqF -- "$1" "$2"/*.log "$2"/store' sh "$PASSWORD" "$T"

# MariaDB: the same restore through the mysql engine.
MYPASS='My-target_pass"5521'
if ! start_mariadb "$MYPASS"; then
	skip "MariaDB is not installed: $(cat "$T/my-start.log")"
	done_testing
fi
my_su <<'SQL'
CREATE DATABASE shop CHARACTER SET utf8mb4;
CREATE DATABASE `shop-copy` CHARACTER SET utf8mb4;
USE shop;
CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50));
INSERT INTO items VALUES (1, 'Zoë'), (2, 'Иван'), (3, '😀');
SQL
printf '%s\n' "$MYPASS" >"$T/mypass"
chmod 600 "$T/mypass"
myrows() { my_su "$1" -e "SELECT GROUP_CONCAT(CONCAT(id, ':', name) ORDER BY id) FROM items" 2>&1; }
runner_config "$T/my.yaml" myapp <<YAML
mysql: {host: 127.0.0.1, port: $MY_PORT, database: shop, user: bop, passwordFile: '$T/mypass'}
YAML
start my "$T/my.yaml"
api -X POST "$URL/v1/backups" >"$T/post.json"
ok "mysql: a backup of shop through the API succeeds" \
	wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Succeeded
my_su shop -e "UPDATE items SET name = 'changed' WHERE id = 1"
post_restore '{"targetDatabase": "shop-copy"}' >"$T/post.json"
ok "mysql: a restore with targetDatabase shop-copy succeeds" \
	wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Succeeded
got=$(myrows shop-copy)
ok "... shop-copy holds the backed-up rows (got '$got')" test "$got" = "1:Zoë,2:Иван,3:😀"
got=$(myrows shop)
ok "... shop, the engine's database, is untouched (got '$got')" test "$got" = "1:changed,2:Иван,3:😀"
kill -TERM "$PID"
wait "$PID"
ok "the mysql password is in no log and no run record" \
	sh -c '! grep -rqF -- "$1" "$2"/*.log "$2"/store' sh "$MYPASS" "$T"
done_testing
