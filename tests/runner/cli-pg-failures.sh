#!/bin/bash
# The postgres engine through `backupop --config` against a real PostgreSQL
# (tests/env/pg-local.sh), issue 9:
#  finding 8: restore {clean: true, singleTransaction: false} is warned about at config
#    load, and a restore of a corrupt backup in that mode says the target was modified;
#  finding 17: a wrong password exits 8 (authentication), a wrong port 9 (cannot connect).
. "$BOP_SOURCE_ROOT/tests/runner/lib.sh"

PASSWORD='Pg-failures_pass-4417'
start_pg "$PASSWORD"

psql_su -d postgres -c 'CREATE DATABASE app' >/dev/null
psql_su -d app >/dev/null <<'SQL'
CREATE TABLE items (id int PRIMARY KEY, name text);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 10) g;
CREATE TABLE filler (id int, payload text);
INSERT INTO filler SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 60000) g;
SQL
printf '%s\n' "$PASSWORD" >"$T/pgpass"
chmod 600 "$T/pgpass"

# conf NAME PORT PASSWORDFILE RESTORE
conf() {
	cat >"$T/$1.yaml" <<YAML
name: pg
storage: 'file://$T/store'
compression: {algorithm: none}
engine:
  postgres: {host: 127.0.0.1, port: $2, database: app, user: bop, passwordFile: '$3',
             restore: $4}
YAML
}

conf risky "$PG_PORT" "$T/pgpass" "{clean: true, singleTransaction: false}"
"$BOP" --log-format text backup --config "$T/risky.yaml" >"$T/id" 2>"$T/err"
check "a backup of the database with the postgres engine" $?
ok "finding 8: the config load warns that clean without singleTransaction cannot roll back" \
	grep -q "risky.yaml:5: engine.postgres.restore: clean: true with singleTransaction: false cannot roll back" "$T/err"
id=$(cat "$T/id")
data=$(ls "$T/store/pg/$id"/data* 2>/dev/null | head -1)
ok "... the backup is stored uncompressed" test -f "$data"

# Corrupt the table data in the middle of the dump: pg_restore has dropped the tables
# (clean) before it reads there.
size=$(stat -c %s "$data")
python3 - "$data" "$size" <<'PY'
import sys
path, size = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(size // 2)
    f.write(b"\xff" * 4096)
PY
"$BOP" -q restore --config "$T/risky.yaml" latest >"$T/out" 2>"$T/err"
st=$?
ok "finding 8: the restore of the corrupt backup fails" test "$st" -ne 0
ok "finding 8: the error says the target database was modified and may be partly restored or empty" \
	grep -q "the target database app was modified and may be partly restored or empty" "$T/err"
rows=$(psql_su -d app -c "SELECT count(*) FROM items" 2>/dev/null)
diag "rows in app.items after the failed restore: '${rows:-no table}' (10 before)"

# The default (one transaction) says nothing of the kind.
conf safe "$PG_PORT" "$T/pgpass" "{clean: true}"
"$BOP" -q restore --config "$T/safe.yaml" latest >"$T/out" 2>"$T/safe-err"
ok "the same corrupt restore in one transaction fails too" test $? -ne 0
ok "... without saying that the target was modified" \
	sh -c "! grep -q 'was modified' '$T/safe-err'"
"$BOP" --log-format text list --config "$T/safe.yaml" >/dev/null 2>"$T/err"
ok "... and its config loads without the warning" sh -c "! grep -q 'cannot roll back' '$T/err'"

# Finding 17: connection failures have their own exit statuses.
printf 'wrong-password-123\n' >"$T/badpass"
chmod 600 "$T/badpass"
conf badpw "$PG_PORT" "$T/badpass" "{}"
"$BOP" -q backup --config "$T/badpw.yaml" >"$T/out" 2>"$T/err"
is_st=$?
ok "finding 17: a wrong password exits 8 (authentication failed; got $is_st)" test "$is_st" -eq 8
ok "... saying the login was refused" grep -qi "refused the login" "$T/err"
closed=$(python3 "$BOP_SOURCE_ROOT/tests/env/free-port.py")
conf badport "$closed" "$T/pgpass" "{}"
"$BOP" -q backup --config "$T/badport.yaml" >"$T/out" 2>"$T/err"
is_st=$?
ok "finding 17: a wrong port exits 9 (cannot connect; got $is_st)" test "$is_st" -eq 9
ok "... saying the server cannot be reached" grep -qi "cannot reach the database server" "$T/err"
done_testing
