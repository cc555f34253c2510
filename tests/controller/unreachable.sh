#!/bin/bash
# BackupRuns whose runner cannot be reached: 1000 of them for one schedule whose runner
# accepts connections and never answers (each call waits for its timeout). They show
# Pending with the reason, and once --runner-unreachable-seconds have passed since each
# was made they end Failed, saying that nothing was run and why, all of them within a few
# seconds of that deadline: the controller calls such a runner once at a time, and the
# other runs take that call's failure instead of waiting for their own.
. "$BOP_SOURCE_ROOT/tests/controller/lib.sh"

N_RUNS=${BOP_UNREACHABLE_RUNS:-1000}
DEADLINE=20
# a "runner" that accepts and never answers
RPORT=$(free_port)
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1024)
held = []
while True:
    c, _ = s.accept(); held.append(c)' "$RPORT" &
PIDS+=("$!")
file_storage unreachable
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: lost}
spec:
  engine: {exec: {backupCommand: ["true"]}}
  storage: {name: files-$NS}
  historyLimits: {failed: 2000}
EOF
start_ctl a --runner-url "http://127.0.0.1:$RPORT" --runner-port "$RPORT" --poll-seconds 1 \
	--runner-unreachable-seconds "$DEADLINE" ||
	{ echo "Bail out! the controller did not become ready"; sed 's/^/# /' "$T/a.log"; exit 1; }
python3 -c "
import json
items = [{'apiVersion': 'backupop.io/v1alpha1', 'kind': 'BackupRun',
          'metadata': {'name': 'r%04d' % i}, 'spec': {'scheduleRef': {'name': 'lost'}}}
         for i in range($N_RUNS)]
print(json.dumps({'apiVersion': 'v1', 'kind': 'List', 'items': items}))" >"$T/runs.json"
t0=$(date +%s)
k -n "$NS" create -f "$T/runs.json" >/dev/null
check "$N_RUNS BackupRuns are made" $?
t1=$(date +%s)
diag "made in $((t1 - t0)) s"
# phases: "Pending N Failed M ..." of all runs
phases() { k -n "$NS" get backupruns -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' | sort | uniq -c | awk '{printf "%s %s ", $2, $1}'; }
pending_with_reason() {
	k -n "$NS" get backuprun r0000 -o jsonpath='{.status.phase} {.status.error}' | grep -q '^Pending .*not reachable'
}
ok "a run shows Pending with the reason while the runner does not answer" wait_for 15 pending_with_reason
all_failed() { [ "$(phases)" = "Failed $N_RUNS " ]; }
wait_for $((DEADLINE + 120)) all_failed
st=$?
t2=$(date +%s)
diag "phases: $(phases); the last ended $((t2 - t1)) s after the last was made (deadline $DEADLINE s)"
check "all $N_RUNS end Failed" $st
check "... within 60 s of the deadline (before: Pending for minutes)" "$([ $((t2 - t1)) -le $((DEADLINE + 60)) ]; echo $?)"
k -n "$NS" get backuprun r0000 -o jsonpath='{.status.error}' >"$T/error"
ok "... saying nothing was run, the time, the flag and the runner's failure" grep -q \
	"^nothing was run: the runner could not be reached for [0-9]*s after the BackupRun was made (--runner-unreachable-seconds $DEADLINE): runner .* is not reachable at http://127.0.0.1:$RPORT" "$T/error"
sed 's/^/# error: /' "$T/error"
calls=$(grep -c "is not reachable at" "$T/a.log")
diag "log lines about the unreachable runner: $calls"
ok "the log has about one line per run, not one per attempt ($calls for $N_RUNS runs)" \
	test "$calls" -le $((N_RUNS * 2 + 10))
# one request for all (the shared cleanup would patch them one by one)
k delete --raw "/apis/backupop.io/v1alpha1/namespaces/$NS/backupruns" >/dev/null
done_testing
