#!/bin/bash
# Issue 9 finding 15: a backupop-runner killed with SIGKILL during a backup takes the
# engine's command and everything it started with it. And finding 11 at runner start.
. "$BOP_SOURCE_ROOT/tests/runner/lib.sh"

marker="bop-runner-orphan-$$-$RANDOM"
nap="25.$((RANDOM % 900 + 100))"
runner_config "$T/r.yaml" orphans <<YAML
exec:
  backupCommand: [sh, -c, 'sleep $nap; echo late # $marker']
YAML
start r "$T/r.yaml"
ok "the runner starts" test -n "$PORT"
api -X POST "$URL/v1/backups" >"$T/post.json"
wait_running "$nap"
ok "finding 15: the backup's command and its child are running" pgrep -f "sleep $nap"
kill -9 "$PID"
wait "$PID" 2>/dev/null
left=$(survivors "$nap" "$marker")
TAP_N=$((TAP_N + 1))
if [ -z "$left" ]; then
	echo "ok $TAP_N - finding 15: within 2 s of kill -9 of the runner no process of the command remains"
else
	echo "not ok $TAP_N - finding 15: within 2 s of kill -9 of the runner no process of the command remains"
	echo "$left" | sed 's/^/# left: /'
	TAP_FAILED=$((TAP_FAILED + 1))
fi

# Finding 11 at runner start: tags: [[[...]]] of 1 MB is refused at once (it took minutes).
python3 -c 'import sys; sys.stdout.write("tags: " + "[" * 500000 + "]" * 500000 + "\n")' >"$T/deep.yaml"
timeout 60 "$RUNNER" --config "$T/deep.yaml" --state-dir "$T/deep.state" >"$T/deep.log" 2>&1
st=$?
ok "finding 11: a runner with a 1 MB nested config exits 2 (got $st)" test "$st" -eq 2
ok "... saying nesting deeper than 64 levels" grep -q "deep.yaml:1: nesting deeper than 64 levels" "$T/deep.log"
done_testing
