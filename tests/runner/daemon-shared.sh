#!/bin/bash
# Two backupop-runners on one catalog (the sidecars of one schedule share theirs): a runner
# that starts while another runs a backup leaves that run alone, and still recovers its
# own run after kill -9.
. "$BOP_SOURCE_ROOT/tests/runner/lib.sh"

# A backup that goes on while $T/go exists, then ends well.
runner_config "$T/shared.yaml" shared <<YAML
exec:
  backupCommand: [sh, -c, 'i=0; while [ -e "$T/go" ] && [ \$i -lt 600 ]; do head -c 4096 /dev/urandom; sleep 0.1; i=\$((i+1)); done']
YAML
start_slow_backup a A
PID_A=$PID URL_A=$URL
ok "... its record says Running and names its writer" \
	jq_py "assert d['phase']=='Running' and d['writer'].endswith(':$PID_A'), d" <"$T/store/shared/runs/$rid.json"

start b "$T/shared.yaml"
PID_B=$PID URL_B=$URL
ok "runner B starts on the same catalog meanwhile" test -n "$URL_B"
ok "... B leaves A's run alone (says so in its log)" grep -q "run $rid is .*:$PID_A's, which may still run it" "$T/b.log"
ok "... A's record still says Running" grep -q '"phase":"Running"' "$T/store/shared/runs/$rid.json"
code=$(api -o /dev/null -w '%{http_code}' "$URL_B/v1/runs/$rid")
ok "... B does not claim A's run (404, got $code)" test "$code" = 404
shared_run_succeeds "$rid"

# B's own backup, killed: B's next life recovers it while A keeps running.
kill_slow_backup_of_b
start b "$T/shared.yaml"
api "$URL/v1/runs/$rid" >"$T/run.json"
ok "B restarted after kill -9 shows its interrupted run Failed" \
	jq_py 'assert d["phase"]=="Failed" and d["error"].startswith("interrupted"), d' <"$T/run.json"
ok "... in its record too" grep -q '"phase":"Failed"' "$T/store/shared/runs/$rid.json"
ok "... and no manifest for it" test "$(find "$T/store/shared" -name manifest.json | wc -l)" -eq 1
rm -f "$T/go"
st=0
for p in "$PID_A" "$PID"; do kill -TERM "$p"; wait "$p" || st=$?; done
ok "both runners stop cleanly (exit 0, got $st)" test "$st" -eq 0
done_testing
