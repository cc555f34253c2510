# Shared setup of the backupop-runner tests (bash): a temporary directory, a token, and
# helpers to start a runner and talk to its API. Sourced by each script.
. "$BOP_SOURCE_ROOT/tests/tap.sh"
RUNNER="$BOP_BUILD_ROOT/runner/daemon/backupop-runner"
BOP="$BOP_BUILD_ROOT/runner/cli/backupop"
[ -x "$RUNNER" ] || skip_all "backupop-runner was not built ($RUNNER)"
command -v curl >/dev/null || skip_all "curl is not installed"
command -v python3 >/dev/null || skip_all "python3 is not installed"
T=$(mktemp -d "${TMPDIR:-/tmp}/bop-runner.XXXXXX") || exit 1
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
cd "$T" || exit 1

TOKEN=tok-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$TOKEN" >"$T/token"
head -c 200000 /dev/urandom >"$T/input"

# start NAME CONFIG: starts a runner; its state dir is $T/NAME.state.
start() {
	rm -f "$T/$1.state/api-port"
	"$RUNNER" --config "$2" --state-dir "$T/$1.state" --log-format text \
		>>"$T/$1.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	for _ in $(seq 100); do
		[ -s "$T/$1.state/api-port" ] && break
		sleep 0.1
	done
	PORT=$(cat "$T/$1.state/api-port" 2>/dev/null)
	URL="http://127.0.0.1:$PORT"
}
api() { curl -s -H "Authorization: Bearer $TOKEN" "$@"; }
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
# wait_phase RUN-ID PHASE: polls GET /v1/runs/{id} for up to 20 s.
wait_phase() {
	for _ in $(seq 200); do
		api "$URL/v1/runs/$1" >"$T/run.json"
		grep -q "\"phase\":\"$2\"" "$T/run.json" && return 0
		sleep 0.1
	done
	cat "$T/run.json" >&2
	return 1
}


# start_pg PASSWORD: a private PostgreSQL (tests/env/pg-local.sh) with the user bop, stopped
# and removed at exit; the test is skipped when PostgreSQL is not installed. Sets PGD and
# what $PGD/env says (PG_PORT, PG_BIN); psql_su runs psql as the superuser.
start_pg() {
	local st=0
	PGSCRIPT="$BOP_SOURCE_ROOT/tests/env/pg-local.sh"
	PGD=$(mktemp -d /tmp/bop-runner-pg.XXXXXX) || exit 1
	trap pg_cleanup EXIT
	PG_LOCAL_USER=bop PG_LOCAL_PASSWORD=$1 sh "$PGSCRIPT" start "$PGD" >"$T/pg-start.log" 2>&1 || st=$?
	[ $st -eq 3 ] && skip_all "PostgreSQL is not installed: $(cat "$T/pg-start.log")"
	[ $st -eq 0 ] || { cat "$T/pg-start.log" >&2; echo "Bail out! cannot start PostgreSQL"; exit 1; }
	. "$PGD/env"
}
pg_cleanup() {
	sh "$PGSCRIPT" stop "$PGD" >/dev/null 2>&1
	rm -rf "$PGD"
	cleanup
}
psql_su() { "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PGD" -p "$PG_PORT" -U postgres "$@"; }

# start_mariadb PASSWORD: a private MariaDB (tests/env/mariadb-local.sh) in MYD=$T/mariadb
# with the user bop; sets what $MYD/env says (MY_PORT, MY_SOCKET, MY_SUPERUSER); my_su runs
# the mariadb client as the superuser, my_stop stops it (the caller's exit trap). Fails
# (the reason in $T/my-start.log) when MariaDB is not installed; bails out when it cannot
# start.
MYSCRIPT="$BOP_SOURCE_ROOT/tests/env/mariadb-local.sh"
MYD="$T/mariadb"
start_mariadb() {
	local st=0
	MARIADB_LOCAL_USER=bop MARIADB_LOCAL_PASSWORD=$1 sh "$MYSCRIPT" start "$MYD" >"$T/my-start.log" 2>&1 || st=$?
	[ $st -eq 3 ] && return 1
	[ $st -eq 0 ] || { cat "$T/my-start.log" >&2; echo "Bail out! cannot start MariaDB"; exit 1; }
	. "$MYD/env"
}
my_stop() { sh "$MYSCRIPT" stop "$MYD" >/dev/null 2>&1; }
my_su() { mariadb --no-defaults --default-character-set=utf8mb4 --socket="$MY_SOCKET" -u "$MY_SUPERUSER" -N -B "$@"; }

. "$BOP_SOURCE_ROOT/tests/runner/config.sh"      # runner_config

# For runners on the catalog "shared" (daemon-shared*.sh, config $T/shared.yaml): starts
# runner $1 and a slow backup on it, which runs while $T/go exists; its run id in $rid,
# the runner's pid and URL in $PID and $URL (1 check, naming the runner $2).
start_slow_backup() {
	touch "$T/go"
	start "$1" "$T/shared.yaml"
	api -X POST "$URL/v1/backups" >"$T/post.json"
	rid=$(jq_py 'print(d["id"])' <"$T/post.json")
	ok "runner $2 runs a slow backup" wait_phase "$rid" Running
	sleep 1
}

# For two runners A and B on the catalog "shared": A's slow backup $1,
# released, Succeeds, with its record and its manifest (3 checks).
shared_run_succeeds() {
	local backup
	rm -f "$T/go"
	URL=$URL_A
	ok "A's backup Succeeds" wait_phase "$1" Succeeded
	ok "... its record says Succeeded" grep -q '"phase":"Succeeded"' "$T/store/shared/runs/$1.json"
	backup=$(jq_py 'print(d["backup"])' <"$T/run.json")
	ok "... and its manifest is there" test -s "$T/store/shared/$backup/manifest.json"
}

# B starts a slow backup (its run id in $rid) and is killed with SIGKILL while it runs
# (1 check).
kill_slow_backup_of_b() {
	touch "$T/go"
	api -X POST "$URL_B/v1/backups" >"$T/post.json"
	rid=$(jq_py 'print(d["id"])' <"$T/post.json")
	URL=$URL_B
	ok "runner B runs a slow backup" wait_phase "$rid" Running
	sleep 1
	kill -9 "$PID_B"
	wait "$PID_B" 2>/dev/null
}
