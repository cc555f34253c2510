#!/bin/bash
# Failed producers and consumers: a backup whose command fails leaves no manifest and no
# data; the exit status is 7 and the message names how the command ended. Interrupting a
# backup leaves nothing either.
. "$BOP_SOURCE_ROOT/tests/cli/lib.sh"

store="$T/store"
S="file://$store"

expect_exit 7 "producer exits 3 after 1 MB: exit status 7" bop backup --storage "$S" \
	-- sh -c 'head -c 1000000 /dev/urandom; exit 3'
err_says "... the message names the exit status" "(status|code|exited)[^0-9]*3([^0-9]|$)"
is "... stdout is empty (no id)" "$(cat "$T/out")" ""
is "... no file left in the storage" "$(leftovers "$store")" ""

expect_exit 7 "producer killed by SIGKILL: exit status 7" bop backup --storage "$S" \
	-- sh -c 'head -c 100000 /dev/urandom; kill -9 $$'
err_says "... the message names the signal" "signal|kill"
is "... no file left in the storage" "$(leftovers "$store")" ""

recipient=$(bop keygen -o "$T/key.txt")
expect_exit 7 "encrypted, producer exits 1: exit status 7" bop backup --storage "$S" \
	-r "$recipient" -- sh -c 'head -c 3000000 /dev/zero; exit 1'
is "... no file left in the storage" "$(leftovers "$store")" ""

expect_exit 7 "producer that does not exist: exit status 7" bop backup --storage "$S" \
	-- /nonexistent/producer
is "... no file left in the storage" "$(leftovers "$store")" ""

expect_exit 0 "list --json after the failures" bop list --storage "$S" --json
is "... shows no backup" "$(tr -d ' \n' <"$T/out")" "[]"

# A producer that succeeds is a backup; its consumer failing fails the restore with 7.
gen_random 200000 "$T/in"
expect_exit 0 "producer that succeeds" bop backup --storage "$S" -- cat "$T/in"
id=$(cat "$T/out")
ok "... has a manifest" test -f "$store/default/$id/manifest.json"
expect_exit 7 "consumer exits 5: exit status 7" bop restore --storage "$S" latest \
	-- sh -c 'cat >/dev/null; exit 5'
expect_exit 0 "consumer that succeeds" bop restore --storage "$S" latest \
	-- sh -c 'cat > "$1"' sh "$T/restored"
ok "... got the data" cmp "$T/in" "$T/restored"

# A running backup holds the catalog's lock: a second writer gets exit status 6.
"$BOP" -q backup --storage "$S" -- sh -c 'head -c 1000 /dev/urandom; sleep 4' >/dev/null 2>&1 &
pid=$!
for i in 1 2 3 4 5 6 7 8 9 10; do [ -e "$store/default/lock.json" ] && break; sleep 0.2; done
expect_exit 6 "prune while a backup runs: 6" bop prune --storage "$S" --keep-last 1
err_says "... naming the holder" "backupop backup"
expect_exit 6 "backup while a backup runs: 6" bop backup --storage "$S" -i "$T/in"
expect_exit 0 "another name is not locked" bop backup --storage "$S" --name other -i "$T/in"
status=0
wait "$pid" || status=$?
is "the first backup completes" "$status" 0
expect_exit 0 "the lock is released after it" bop prune --storage "$S" --keep-last 1

# terminate PID: SIGTERM to the background backupop PID; sets status, its exit status, and
# ms, how long it took to exit (milliseconds).
terminate() {
	local t0
	t0=$(date +%s%N)
	kill -TERM "$1"
	status=0
	wait "$1" || status=$?
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
}

# SIGTERM during a backup: exit status 130, no new backup, no partial data.
rm -rf "$store"
"$BOP" -q backup --storage "$S" \
	-- sh -c 'while :; do head -c 65536 /dev/urandom || exit; sleep 0.05; done' \
	>"$T/out" 2>"$T/err" &
pid=$!
sleep 1
terminate "$pid"
is "SIGTERM: exit status 130" "$status" 130
err_says "... says it was interrupted" "interrupt"
is "... no file left in the storage" "$(leftovers "$store")" ""

# SIGTERM during a restore into a command: 130, and the command is killed, not given EOF.
gen_random 4000000 "$T/big"
bop backup --storage "$S" -c none -i "$T/big" >/dev/null
"$BOP" -q restore --storage "$S" latest \
	-- sh -c 'sleep 2; cat > "$1" && touch "$2"' sh "$T/OUT" "$T/DONE" >/dev/null 2>"$T/err" &
pid=$!
sleep 1
terminate "$pid"
is "SIGTERM during restore: exit status 130" "$status" 130
sleep 2.5
ok "... the command never saw the end of its input" test ! -e "$T/DONE"

# SIGTERM while the producer has written nothing yet (a pg_dump waiting on a lock): the
# cancel does not wait for output; the producer is stopped at once.
marker="bop-silent-$$-$RANDOM"
rm -rf "$store"
"$BOP" -q backup --storage "$S" -- sh -c "sleep 30; echo $marker" >"$T/out" 2>"$T/err" &
pid=$!
sleep 1
terminate "$pid"
is "SIGTERM with a silent producer: exit status 130" "$status" 130
ok "... within 3 s, not when the producer writes ($ms ms)" test "$ms" -lt 3000
ok "... the producer is stopped" sh -c "! pgrep -f '[s]leep 30; echo $marker' >/dev/null"
is "... no file left in the storage" "$(leftovers "$store")" ""

# SIGTERM while a restore's consumer reads nothing (its input pipe is full): likewise.
bop backup --storage "$S" -c none -i "$T/big" >/dev/null
"$BOP" -q restore --storage "$S" latest -- sh -c "sleep 30; echo $marker-r; cat >/dev/null" \
	>/dev/null 2>"$T/err" &
pid=$!
sleep 1.5
terminate "$pid"
is "SIGTERM with a consumer that does not read: exit status 130" "$status" 130
ok "... within 3 s ($ms ms)" test "$ms" -lt 3000
ok "... the consumer is stopped" sh -c "! pgrep -f '[e]cho $marker-r' >/dev/null"

# SIGTERM while a restore writes to standard output and its reader reads nothing (a
# pipe into a stuck program): the restore still ends, with 130.
mkfifo "$T/fifo"
# terminate_unread: restores the latest backup into $T/fifo, whose reader sleeps, and
# sends SIGTERM after 1.5 s (sets status and ms, as terminate).
terminate_unread() {
	local reader
	sleep 30 <"$T/fifo" &
	reader=$!
	"$BOP" -q restore --storage "$S" latest >"$T/fifo" 2>"$T/err" &
	pid=$!
	sleep 1.5
	terminate "$pid"
	kill "$reader" 2>/dev/null || :
	wait "$reader" 2>/dev/null || :
}
terminate_unread
is "SIGTERM with a standard output nobody reads: exit status 130" "$status" 130
ok "... within 3 s ($ms ms)" test "$ms" -lt 3000
err_says "... says it was interrupted" "interrupt"

# ... also when the whole restore is decoded and waits only for its output to be written
gen_random 1000000 "$T/small"
bop backup --storage "$S" -c none -i "$T/small" >/dev/null
terminate_unread
is "SIGTERM while the last of the output waits for its reader: exit status 130" "$status" 130
ok "... within 3 s ($ms ms)" test "$ms" -lt 3000

done_testing
