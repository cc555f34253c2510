#!/bin/bash
# Two backupop-runners on one catalog as two pods with hostNetwork on one node: both see
# KUBERNETES_SERVICE_HOST and the same host name (the node's), and differ only in the pod
# name the controller gives them (BOP_POD_NAME). A runner that starts while the other runs
# a backup leaves that one's catalog lock and run alone; a runner restarted with its own
# pod name recovers its own run at once; without BOP_POD_NAME (pods of an older
# controller) a live runner's lock is left alone too.
. "$BOP_SOURCE_ROOT/tests/runner/lib.sh"
export KUBERNETES_SERVICE_HOST=127.0.0.1

# A backup that goes on while $T/go exists, then ends well.
runner_config "$T/shared.yaml" shared <<YAML
exec:
  backupCommand: [sh, -c, 'i=0; while [ -e "$T/go" ] && [ \$i -lt 600 ]; do head -c 4096 /dev/urandom; sleep 0.1; i=\$((i+1)); done']
YAML
lock="$T/store/shared/lock.json"
# the lock's holder: its owner and token (a refresh changes only its expiry)
holder() { jq_py 'print(d["owner"], d["token"])' <"$lock" 2>/dev/null; }
still_held() { [ -n "$held" ] && [ "$(holder)" = "$held" ]; }

BOP_POD_NAME=pod-a start_slow_backup a "A (pod-a)"
PID_A=$PID URL_A=$URL
ok "... its record's writer and the catalog lock's owner name pod-a" sh -c "
	grep -q '\"writer\":\"backupop-runner:shared:pod-a:$PID_A\"' '$T/store/shared/runs/$rid.json' &&
	grep -q '\"owner\":\"backupop-runner:shared:pod-a:$PID_A\"' '$lock'"
held=$(holder)

BOP_POD_NAME=pod-b start b "$T/shared.yaml"
PID_B=$PID URL_B=$URL
ok "runner B (pod-b, same host name) starts on the same catalog meanwhile" test -n "$URL_B"
ok "... B leaves A's lock alone" still_held
ok "... and A's run (says so in its log)" grep -q "run $rid is .*:pod-a:$PID_A's, which may still run it" "$T/b.log"
ok "... A's record still says Running" grep -q '"phase":"Running"' "$T/store/shared/runs/$rid.json"
shared_run_succeeds "$rid"

# B's own backup, killed: B restarted with its pod name recovers it at once (in a pod the
# earlier container's pid cannot be tested), while A keeps running.
kill_slow_backup_of_b
BOP_POD_NAME=pod-b start b "$T/shared.yaml"
PID_B=$PID
api "$URL/v1/runs/$rid" >"$T/run.json"
ok "B (pod-b) restarted after kill -9 shows its interrupted run Failed" \
	jq_py 'assert d["phase"]=="Failed" and d["error"].startswith("interrupted"), d' <"$T/run.json"
ok "... in its record too" grep -q '"phase":"Failed"' "$T/store/shared/runs/$rid.json"
ok "... and removed the lock its earlier life held" test ! -e "$lock"
rm -f "$T/go"
kill -TERM "$PID_B"
wait "$PID_B"

# Pods of an older controller (no BOP_POD_NAME): the owner names the host only, which two
# hostNetwork pods share, so a live holder is not taken for an earlier life.
unset BOP_POD_NAME
start_slow_backup c "C (no pod name)"
PID_C=$PID URL_C=$URL
held=$(holder)
start d "$T/shared.yaml"
PID_D=$PID
ok "runner D (no pod name, same host name) leaves C's lock alone" still_held
ok "... and C's run" grep -q "run $rid is .*:$PID_C's, which may still run it" "$T/d.log"
rm -f "$T/go"
URL=$URL_C
ok "C's backup Succeeds" wait_phase "$rid" Succeeded
st=0
for p in "$PID_A" "$PID_C" "$PID_D"; do kill -TERM "$p"; wait "$p" || st=$?; done
ok "the runners stop cleanly (exit 0, got $st)" test "$st" -eq 0
done_testing
