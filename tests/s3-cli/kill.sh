#!/bin/bash
# The S3 server dies in the middle of a multipart upload: a second radosgw of the test
# cluster (its own port, its own process, started and killed here; the cluster of
# tests/env/s3-local.sh and its first gateway are untouched) receives a slowly piped
# backup and is killed with SIGKILL after some parts. backupop must exit non-zero without
# writing a manifest, and once a gateway serves the cluster again no multipart upload may
# be left open under the prefix: aborted on failure, or collected by `backupop gc`.
. "$BOP_SOURCE_ROOT/tests/s3-cli/lib.sh"

conf=${BOP_TEST_S3_DIR:+$BOP_TEST_S3_DIR/ceph.conf}
[ -n "$conf" ] && [ -f "$conf" ] ||
	skip_all "BOP_TEST_S3_DIR does not name the cluster of tests/env/s3-local.sh (needed to start a gateway of our own)"
command -v radosgw >/dev/null || skip_all "radosgw is not installed"

rgw_pid=
gen_pid=
bop_pid=
stop_all() {
	local p
	for p in $bop_pid $gen_pid $rgw_pid; do kill "$p" 2>/dev/null; done
	[ -n "$rgw_pid" ] && wait "$rgw_pid" 2>/dev/null
	s3_cleanup
}
trap stop_all EXIT

# start_gateway PORT: a radosgw for the cluster on PORT, in the foreground (so $! is its
# pid), with its files here.
start_gateway() {
	radosgw -f -c "$conf" -n client.rgw.killtest --keyring=/dev/null \
		--rgw-frontends="beast endpoint=127.0.0.1:$1" --rgw-data="$T/rgw" \
		--pid-file="$T/rgw.pid" --admin-socket="$T/rgw.asok" --log-file="$T/rgw.log" \
		>>"$T/rgw.out" 2>&1 &
	rgw_pid=$!
	for _ in $(seq 1 100); do
		curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
		kill -0 "$rgw_pid" 2>/dev/null || break
		sleep 0.2
	done
	return 1
}

port=$(python3 "$BOP_SOURCE_ROOT/tests/env/free-port.py")
mkdir -p "$T/rgw"
start_gateway "$port" || {
	tail -3 "$T/rgw.out" "$T/rgw.log" 2>/dev/null | sed 's/^/# /'
	skip_all "a second radosgw for $conf did not start"
}
URL2="s3://$BUCKET/$PFX?endpoint=http://127.0.0.1:$port&path_style=true&part_size=5MiB&concurrency=2"
URL=$(s3url "$PFX")

# 1 MiB every 0.1 s; stops on its own once backupop is gone (head gets SIGPIPE).
mkfifo "$T/fifo"
(for _ in $(seq 1 900); do head -c 1048576 /dev/urandom || exit 0; sleep 0.1; done) >"$T/fifo" &
gen_pid=$!
"$BOP" -q backup --storage "$URL2" --name victim -c none <"$T/fifo" >"$T/out" 2>"$T/err" &
bop_pid=$!

# Kill the gateway once the upload has some parts.
parts=0
for _ in $(seq 1 150); do
	read -r key id <<<"$(uploads_under | head -1)"
	if [ -n "${id:-}" ]; then
		parts=$(aws_s3 s3api list-parts --bucket "$BUCKET" --key "$key" --upload-id "$id" \
			--query 'length(Parts)' --output text 2>/dev/null || echo 0)
		[ "$parts" != None ] && [ "$parts" -ge 2 ] 2>/dev/null && break
	fi
	sleep 0.2
done
had_parts=1
[ "$parts" != None ] && [ "${parts:-0}" -ge 2 ] 2>/dev/null && had_parts=0
check "a multipart upload has parts before the kill ($parts)" $had_parts
kill -9 "$rgw_pid"
wait "$rgw_pid" 2>/dev/null
rgw_pid=

# backupop retries for a few seconds, then fails; it must not hang.
for _ in $(seq 1 600); do
	kill -0 "$bop_pid" 2>/dev/null || break
	sleep 0.2
done
if kill -0 "$bop_pid" 2>/dev/null; then
	check "backupop ends within 2 minutes of the server's death" 1
	kill -9 "$bop_pid"
fi
status=0
wait "$bop_pid" || status=$?
bop_pid=
kill "$gen_pid" 2>/dev/null
wait "$gen_pid" 2>/dev/null
gen_pid=
check "backupop exits non-zero ($status)" $((status == 0))
sed 's/^/# stderr: /' "$T/err" | tail -3
err_says "it says the connection failed" "connect|refused|reset|server|recv|send"

keys_under >"$T/keys"
ok "no manifest was written" bash -c '! grep -q "manifest.json" "$1"' _ "$T/keys"
ok "no data object was written" bash -c '! grep -q "/data" "$1"' _ "$T/keys"
expect_exit 0 "list through the first gateway" bop list --storage "$URL" --name victim
is "it shows no backup" "$(grep -c . "$T/out")" 0

# The gateway comes back (same cluster, same port).
start_gateway "$port"
check "the killed gateway restarts" $?
uploads_under >"$T/open"
if [ -s "$T/open" ]; then
	diag "open after the failure (the abort could not reach the dead server):"
	sed 's/^/#   /' "$T/open"
	expect_exit 0 "gc with the default age (24h) succeeds" bop gc --storage "$URL2" --name victim
	is "and leaves the fresh upload alone" "$(uploads_under | wc -l)" "$(wc -l <"$T/open")"
	expect_exit 0 "gc --older-than 0 --dry-run succeeds" bop gc --storage "$URL2" \
		--name victim --older-than 0 --dry-run
	ok "it names the upload's key" grep -qF "victim/" "$T/out"
	is "and removes nothing" "$(uploads_under | wc -l)" "$(wc -l <"$T/open")"
	expect_exit 0 "gc --older-than 0 succeeds" "$BOP" gc --storage "$URL2" --name victim \
		--older-than 0
	ok "it names the upload's key" grep -qF "victim/" "$T/out"
	err_says "and counts what it removed" "removed [1-9][0-9]* leftover"
else
	diag "no upload was left open: backupop aborted it itself"
fi
is "no multipart upload is left open under the prefix" "$(uploads_under)" ""
done_testing
