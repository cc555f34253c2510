#!/bin/bash
# A BackupSchedule without spec.schedule only parents BackupRuns: the controller still makes
# its runner (the test plays the kubelet with the runner config from the Secret, its file
# storage at a local directory), the status says it is on demand and has no next run, the
# runner never starts a backup by itself, and a BackupRun backup + restore works through it;
# the schedule's status then shows that backup. Adding a cron later gives a next run.
. "$BOP_SOURCE_ROOT/tests/controller/lib.sh"

[ -x "$RUNNER" ] || skip_all "backupop-runner was not built"
RPORT=$(free_port)
mkdir -p "$T/store"
head -c 300000 /dev/urandom | od -An -tx1 >"$T/data"
file_storage od
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: adhoc}
spec:
  engine:
    exec: {backupCommand: [cat, "$T/data"], restoreCommand: [dd, "of=$T/restored", status=none]}
  storage: {name: files-$NS}
EOF
check "the API server accepts a schedule without spec.schedule" $?
start_ctl a --runner-url "http://127.0.0.1:$RPORT" --runner-port "$RPORT" --poll-seconds 1 ||
	{ echo "Bail out! the controller did not become ready"; sed 's/^/# /' "$T/a.log"; exit 1; }
N=$(rname "$NS" adhoc)
ready_is() { [ "$(cond backupschedule adhoc)" = "$1" ]; }
ok "it becomes Ready with reason OnDemandOnly" wait_for 30 ready_is "True OnDemandOnly"
ok "its runner objects exist" k -n "$SYS" get secret,statefulset,service "$N"
k -n "$NS" get backupschedule adhoc -o json >"$T/sched.json"
ok "the status says backups run only when a BackupRun asks, and has no next run" jq_py "
s = d['status']
c = [c for c in s['conditions'] if c['type'] == 'Ready'][0]
assert 'BackupRun' in c['message'], c
assert 'nextScheduleTime' not in s, s" <"$T/sched.json"

# Play the kubelet: the runner with the Secret's config, the volume at a local directory.
k -n "$SYS" get secret "$N" -o jsonpath='{.data.config\.json}' | base64 -d | jq_py "
assert 'schedule' not in d, d.get('schedule')
d['storage']['url'] = 'file://$T/store/od'
print(json.dumps(d))" >"$T/config.json"
check "the runner config has no schedule" $?
chmod 600 "$T/config.json"
ok "the runner starts with that config" start_runner "$T/config.json"

run() { backuprun adhoc "$@"; } # NAME ACTION [BACKUP [FIELDS]]
run b1 backup
ok "a BackupRun backup succeeds" wait_for 60 phase_is b1 Succeeded
BID=$(k -n "$NS" get backuprun b1 -o jsonpath='{.status.backupId}')
run r1 restore "$BID"
ok "a BackupRun restore of it succeeds" wait_for 60 phase_is r1 Succeeded
ok "... and gives back the data" cmp "$T/data" "$T/restored"
shows_backup() { [ "$(k -n "$NS" get backupschedule adhoc -o jsonpath='{.status.lastSuccessfulBackup}')" = "$BID" ]; }
ok "the schedule's status shows the BackupRun's backup" wait_for 30 shows_backup

run r2 restore "$BID" "targetDatabase: other"
ok "a restore with targetDatabase through the exec engine fails instead of restoring elsewhere" \
	wait_for 30 phase_is r2 Failed
says_target() { k -n "$NS" get backuprun r2 -o jsonpath='{.status.error}' | grep -q "the exec engine has no database to restore into"; }
ok "... saying why (the runner refused it)" says_target
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupRun
metadata: {name: b2}
spec: {scheduleRef: {name: adhoc}, action: backup, targetDatabase: other}
EOF
ok "a backup with targetDatabase fails" wait_for 30 phase_is b2 Failed
says_restores() { k -n "$NS" get backuprun b2 -o jsonpath='{.status.error}' | grep -q "targetDatabase applies to restores only"; }
ok "... saying it applies to restores only" says_restores

TOKEN=$(jq_py "print(d['api']['token'])" <"$T/config.json")
only_api_runs() {
	curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$RPORT/v1/runs" | jq_py "
runs = d['runs']
assert len(runs) == 2, runs
assert all(r['trigger'] == 'api' for r in runs), runs"
}
sleep 3
ok "the runner started no run by itself" only_api_runs

k -n "$NS" patch backupschedule adhoc --type merge -p '{"spec":{"schedule":"@daily"}}' >/dev/null
has_next() { k -n "$NS" get backupschedule adhoc -o jsonpath='{.status.nextScheduleTime}' | grep -q Z; }
ok "given a cron later, it is Ready as a scheduled one" wait_for 20 ready_is "True RunnerApplied"
ok "... and nextScheduleTime" has_next
k -n "$NS" patch backupschedule adhoc --type json -p '[{"op":"remove","path":"/spec/schedule"}]' >/dev/null
no_next() { ready_is "True OnDemandOnly" && ! has_next; }
ok "the cron removed again: OnDemandOnly, nextScheduleTime gone" wait_for 20 no_next
done_testing
