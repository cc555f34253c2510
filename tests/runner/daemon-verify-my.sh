#!/bin/bash
# backupop-runner verifications with a test restore into a scratch database of a real
# MariaDB (tests/env/mariadb-local.sh) and the row check, as daemon-verify-pg.sh does for
# PostgreSQL: counted through the mariadb client with a 0600 option file.
. "$BOP_SOURCE_ROOT/tests/runner/lib.sh"

PASSWORD='My-verify_pass"7731'
my_cleanup() {
	my_stop
	cleanup
}
trap my_cleanup EXIT
start_mariadb "$PASSWORD" || skip_all "MariaDB is not installed: $(cat "$T/my-start.log")"

my_su <<'SQL'
CREATE DATABASE shop CHARACTER SET utf8mb4;
CREATE DATABASE scratch CHARACTER SET utf8mb4;
USE shop;
CREATE TABLE customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(50), photo BLOB);
INSERT INTO customers (name, photo) VALUES ('Zoë', x'00ff'), ('Иван', NULL), ('😀', x'01');
CREATE TABLE `odd``name` (n INT);
INSERT INTO `odd``name` VALUES (1), (2), (3), (4);
CREATE VIEW v AS SELECT * FROM customers;
SQL
printf '%s\n' "$PASSWORD" >"$T/mypass"
chmod 600 "$T/mypass"

conf() {
	cat >"$T/$1.yaml" <<YAML
name: myapp
storage: 'file://$T/store'
engine:
  mysql: {host: 127.0.0.1, port: $MY_PORT, database: shop, user: bop, passwordFile: '$T/mypass'}
verification:
  restore:
    engine:
      mysql: {host: 127.0.0.1, port: $MY_PORT, database: shop, user: bop,
              passwordFile: '$T/mypass', restore: {database: scratch}}
    expectRows: $2
api: {listen: '127.0.0.1:0', token: '$TOKEN'}
YAML
}

conf good 7
start good "$T/good.yaml"
api -X POST "$URL/v1/backups" >"$T/post.json"
ok "a backup of the MariaDB database through the API succeeds" \
	wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Succeeded
api -X POST "$URL/v1/verifications" >"$T/post.json"
ok "a verification restoring into restore.database scratch, expectRows 7: Succeeded" \
	wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Succeeded
ok "... 7 rows in 2 tables (the view is not counted; a name with a backtick is)" \
	jq_py "assert d['rows']==7 and d['tables']==2, d" <"$T/run.json"
got=$(my_su scratch -e 'SELECT GROUP_CONCAT(name ORDER BY id) FROM customers')
ok "... the scratch database holds the restored rows (got '$got')" test "$got" = "Zoë,Иван,😀"
kill -TERM "$PID"
wait "$PID"

conf bad 8
start bad "$T/bad.yaml"
api -X POST "$URL/v1/verifications" >"$T/post.json"
ok "expectRows 8 with 7 rows: Failed" wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Failed
ok "... saying what was found and expected" \
	jq_py "assert 'has 7 rows in 2 tables, expected at least 8' in d['error'], d" <"$T/run.json"
kill -TERM "$PID"
wait "$PID"
ok "the password is in no log and no run record" \
	sh -c '! grep -rqF -- "$1" "$2"/*.log "$2"/store' sh "$PASSWORD" "$T"
ok "no option file is left in the state directories" \
	test -z "$(find "$T"/*.state -name 'bop-rows.*' 2>/dev/null)"
done_testing
