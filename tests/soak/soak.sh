#!/bin/bash
# Crash soak (issue 9): backups killed with SIGKILL at random moments, on file:// storage
# and on S3 (when BOP_TEST_S3_ENDPOINT and the AWS_* keys are set), of a stream and of the
# postgres engine (when PostgreSQL is installed: tests/env/pg-local.sh). After each kill
# the next backup to the same name must succeed at once, with no manual step. At the end,
# every listed backup must verify and restore to exactly the bytes that went in, gc must
# leave no lock, temporary file, upload or manifest-less data behind, and one more backup
# must succeed.
#   BOP_SOAK_N        the number of killed backups (default 6; e.g. 200 for a long run)
#   BOP_SOAK_REPORT   a file to append the run's figures to
. "$BOP_SOURCE_ROOT/tests/tap.sh"

BOP="$BOP_BUILD_ROOT/runner/cli/backupop"
[ -x "$BOP" ] || skip_all "the backupop executable was not built ($BOP)"
command -v python3 >/dev/null || skip_all "python3 is not installed"
N=${BOP_SOAK_N:-6}
T=$(mktemp -d "${TMPDIR:-/tmp}/bop-soak.XXXXXX") || exit 1
TAP_LOG="$T/tap.log"
unset BACKUPOP_STORAGE
cd "$T" || exit 1
PGSCRIPT="$BOP_SOURCE_ROOT/tests/env/pg-local.sh"
PGD=
AWS_BIN=
S3PFX=
BG=()
cleanup() {
	for p in "${BG[@]}"; do kill -9 "$p" 2>/dev/null; done
	[ -n "$PGD" ] && { sh "$PGSCRIPT" stop "$PGD" >/dev/null 2>&1; rm -rf "$PGD"; }
	if [ -n "$AWS_BIN" ] && [ -n "$S3PFX" ]; then
		"$AWS_BIN" --endpoint-url "$BOP_TEST_S3_ENDPOINT" s3 rm --recursive --quiet \
			"s3://$BUCKET/$S3PFX/" >/dev/null 2>&1
	fi
	rm -rf "$T"
}
trap cleanup EXIT

# ---- where and what -------------------------------------------------------------------
STORAGES=("file://$T/store")
if [ -n "${BOP_TEST_S3_ENDPOINT:-}" ] && [ -n "${AWS_ACCESS_KEY_ID:-}" ] &&
	[ -n "${AWS_SECRET_ACCESS_KEY:-}" ]; then
	BUCKET=${BOP_TEST_S3_BUCKET:-backupop-test}
	S3PFX="bop-test/soak-$(date -u +%Y%m%dT%H%M%S)-$$-$RANDOM"
	STORAGES+=("s3://$BUCKET/$S3PFX?endpoint=$BOP_TEST_S3_ENDPOINT&path_style=true")
	export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1} AWS_EC2_METADATA_DISABLED=true
	AWS_BIN=/usr/bin/aws
	[ -x "$AWS_BIN" ] || AWS_BIN=$(command -v aws) || AWS_BIN=
else
	diag "no S3 server (BOP_TEST_S3_ENDPOINT is not set): file:// storage only"
fi

KINDS=(stream)
PASSWORD="soak-$RANDOM$RANDOM"
PGD=$(mktemp -d /tmp/bop-soak-pg.XXXXXX) || exit 1
if PG_LOCAL_USER=bop PG_LOCAL_PASSWORD=$PASSWORD sh "$PGSCRIPT" start "$PGD" >"$T/pg.log" 2>&1; then
	. "$PGD/env"
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGD" -p "$PG_PORT" -U postgres -d postgres \
		-c 'CREATE DATABASE app' >/dev/null &&
	"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGD" -p "$PG_PORT" -U postgres -d app \
		-c "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g" \
		>/dev/null || { cat "$T/pg.log" >&2; echo "Bail out! cannot fill PostgreSQL"; exit 1; }
	printf '%s\n' "$PASSWORD" >"$T/pgpass"
	chmod 600 "$T/pgpass"
	KINDS+=(pg)
else
	diag "PostgreSQL is not used: $(tail -1 "$T/pg.log")"
	rm -rf "$PGD"
	PGD=
fi

# The catalog of storage index $1 and kind $2, and how to back it up.
cat_name() { echo "soak/$2"; }
pg_config() {  # STORAGE-INDEX: the config of a postgres backup into that storage
	local f="$T/pg-$1.yaml"
	[ -e "$f" ] || cat >"$f" <<YAML
name: soak/pg
storage: '${STORAGES[$1]}'
engine:
  postgres: {host: 127.0.0.1, port: $PG_PORT, database: app, user: bop, passwordFile: '$T/pgpass'}
YAML
	echo "$f"
}
# start_backup STORAGE-INDEX KIND SLOW: starts a backup in the background ($!). A stream
# backup's input is kept in $T/in and its digest in the catalog's list of inputs.
start_backup() {
	local s=$1 kind=$2 slow=$3
	if [ "$kind" = stream ]; then
		head -c $(( (RANDOM % 16 + 1) * 1048576 + RANDOM )) /dev/urandom >"$T/in"
		sha256sum <"$T/in" | cut -c1-64 >>"$T/inputs-$s-$kind"
		( cat "$T/in"; sleep "$slow" ) |
			"$BOP" -q backup --storage "${STORAGES[$s]}" --name "$(cat_name "$s" "$kind")" \
			>"$T/bk.out" 2>"$T/bk.err" &
	else
		"$BOP" -q backup --config "$(pg_config "$s")" >"$T/bk.out" 2>"$T/bk.err" &
	fi
}

# ---- the kills ----------------------------------------------------------------------
kills=0 midrun=0 completed=0 next_ok=0 unexpected=0
start=$(date +%s)
for i in $(seq 1 "$N"); do
	s=$(( i % ${#STORAGES[@]} ))
	kind=${KINDS[$(( (i / ${#STORAGES[@]}) % ${#KINDS[@]} ))]}
	start_backup "$s" "$kind" "0.$(( RANDOM % 8 ))"
	p=$!
	BG+=("$p")
	sleep "$(( RANDOM % 1300 / 1000 )).$(printf '%03d' $(( RANDOM % 1000 )))"
	if kill -9 "$p" 2>/dev/null; then
		kills=$((kills + 1))
	fi
	wait "$p"
	st=$?
	if [ "$st" = 137 ]; then
		midrun=$((midrun + 1))
	elif [ "$st" = 0 ]; then
		completed=$((completed + 1))
	else
		unexpected=$((unexpected + 1))
		diag "backup $i ($kind on storage $s) ended with $st before the kill: $(tail -2 "$T/bk.err")"
	fi
	# The next backup to the same name, at once and without any manual step.
	start_backup "$s" "$kind" 0
	p=$!
	wait "$p"
	st=$?
	if [ "$st" = 0 ]; then
		next_ok=$((next_ok + 1))
	else
		check "kill $i ($kind, ${STORAGES[$s]%%:*}): the next backup succeeds at once (exit $st: $(tail -1 "$T/bk.err"))" 1
	fi
done
check "the $N backups that were not killed in time all succeeded ($unexpected failed)" "$unexpected"
check "after each of the $N kills the next backup to the name succeeded at once ($next_ok)" \
	$(( next_ok != N ))

# ---- everything listed verifies and restores identically ------------------------------
verified=0 restored=0 listed=0 problems=0
for s in "${!STORAGES[@]}"; do
	for kind in "${KINDS[@]}"; do
		name=$(cat_name "$s" "$kind")
		url=${STORAGES[$s]}
		if ! "$BOP" -q list --storage "$url" --name "$name" --json >"$T/list.json" 2>"$T/err"; then
			check "list $name on ${url%%:*}" 1
			continue
		fi
		python3 -c 'import json,sys; [print(b["id"], b["plain"]["sha256"]) for b in json.load(open(sys.argv[1]))]' \
			"$T/list.json" >"$T/listed"
		while read -r id sha; do
			listed=$((listed + 1))
			if "$BOP" -q verify --storage "$url" --name "$name" "$id" >/dev/null 2>"$T/err"; then
				verified=$((verified + 1))
			else
				problems=$((problems + 1))
				diag "verify $name $id: $(tail -1 "$T/err")"
			fi
			rm -f "$T/out"
			if "$BOP" -q restore --storage "$url" --name "$name" "$id" -o "$T/out" 2>"$T/err" &&
				got=$(sha256sum <"$T/out" | cut -c1-64) && [ "$got" = "$sha" ] &&
				{ [ "$kind" != stream ] || grep -qx "$got" "$T/inputs-$s-$kind"; }; then
				restored=$((restored + 1))
			else
				problems=$((problems + 1))
				diag "restore $name $id: not the bytes that went in $(tail -1 "$T/err")"
			fi
		done <"$T/listed"
		if "$BOP" -q gc --storage "$url" --name "$name" --older-than 0 >"$T/gc.out" 2>"$T/err"; then
			gcd=$(wc -l <"$T/gc.out")
			diag "gc $name on ${url%%:*}: $gcd leftover(s) removed"
		else
			problems=$((problems + 1))
			diag "gc $name: $(tail -1 "$T/err")"
		fi
		if [ "${url%%:*}" = file ]; then
			dir="$T/store/$name"
			left=$(find "$dir" -maxdepth 1 -name 'lock.json*'; find "$dir" -name '*.tmp-*')
			for d in "$dir"/2*/; do
				[ -e "$d/manifest.json" ] || left="$left $d"
			done
			check "gc leaves no lock, temporary file or data without a manifest in $name" \
				"$([ -z "$(echo $left)" ]; echo $?)"
			[ -n "$(echo $left)" ] && diag "left: $left"
		elif [ -n "$AWS_BIN" ]; then
			up=$("$AWS_BIN" --endpoint-url "$BOP_TEST_S3_ENDPOINT" s3api list-multipart-uploads \
				--bucket "$BUCKET" --prefix "$S3PFX/$name/" --query 'Uploads[].Key' --output text 2>/dev/null |
				grep -v '^None$')
			check "gc leaves no multipart upload in $name on S3" "$([ -z "$up" ]; echo $?)"
			"$AWS_BIN" --endpoint-url "$BOP_TEST_S3_ENDPOINT" s3api list-objects-v2 \
				--bucket "$BUCKET" --prefix "$S3PFX/$name/" --query 'Contents[].Key' \
				--output text 2>/dev/null | tr '\t' '\n' | grep -v '^None$' >"$T/keys"
			orphans=$(python3 - "$T/keys" "$S3PFX/$name/" <<'PY'
import re, sys
pfx = sys.argv[2]
keys = [k[len(pfx):] for k in open(sys.argv[1]).read().split() if k.startswith(pfx)]
ids = {k.split("/")[0] for k in keys if re.match(r"\d{8}T\d{6}Z-", k)}
print(" ".join(sorted(i for i in ids if i + "/manifest.json" not in keys)))
print(" ".join(k for k in keys if k.startswith("lock.json")))
PY
)
			check "gc leaves no lock or data without a manifest in $name on S3" \
				"$([ -z "$(echo $orphans)" ]; echo $?)"
			[ -n "$(echo $orphans)" ] && diag "left: $orphans"
		fi
		before=$(wc -l <"$T/listed")
		start_backup "$s" "$kind" 0
		wait $!
		st=$?
		n=$("$BOP" -q list --storage "$url" --name "$name" --json 2>/dev/null |
			python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
		check "one more backup of $name on ${url%%:*} succeeds and is listed (exit $st, $before -> $n)" \
			"$([ "$st" = 0 ] && [ "$n" = $((before + 1)) ]; echo $?)"
	done
done
check "every listed backup verifies and restores to the bytes that went in ($problems problems)" \
	"$problems"
check "backups were listed ($listed)" "$([ "$listed" -gt 0 ]; echo $?)"
figures="soak: N=$N storages=${#STORAGES[@]} kinds=${KINDS[*]} kills=$kills mid-run=$midrun completed-before-kill=$completed next-backups-ok=$next_ok listed=$listed verified=$verified restores-identical=$restored problems=$problems seconds=$(( $(date +%s) - start ))"
diag "$figures"
[ -n "${BOP_SOAK_REPORT:-}" ] && echo "$figures" >>"$BOP_SOAK_REPORT"
done_testing
