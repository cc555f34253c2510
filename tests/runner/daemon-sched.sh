#!/bin/bash
# backupop-runner scheduling: suspend, startingDeadlineSeconds for runs missed while the
# runner was down (found from its run records), scheduled verifications, and the history
# limits of the run records.
. "$BOP_SOURCE_ROOT/tests/runner/lib.sh"

# conf NAME EXTRA-YAML: a config of catalog NAME with the exec engine.
conf() {
	cat >"$T/$1.yaml" <<YAML
name: $1
storage: 'file://$T/store'
engine:
  exec:
    backupCommand: [cat, '$T/input']
api: {listen: '127.0.0.1:0', token: '$TOKEN'}
$2
YAML
}
stop() { kill -TERM "$PID"; wait "$PID"; }
# scheduled_runs KIND: the scheduled runs of that kind in GET /v1/runs, as "phase:scheduledTime".
scheduled_runs() {
	api "$URL/v1/runs" | jq_py "print(' '.join('%s:%s' % (r['phase'], r.get('scheduledTime')) for r in d['runs'] if r['trigger']=='scheduled' and r['kind']=='$1'))"
}

# ---- 1. suspend: no scheduled runs, the API still takes backups --------------------------
conf susp "schedule: '* * * * * *'
suspend: true"
start susp "$T/susp.yaml"
sleep 2.5
ok "suspended: no scheduled run in 2.5 s with a schedule of every second" test -z "$(scheduled_runs backup)"
ok "... the log says so" grep -q 'suspended: no scheduled runs' "$T/susp.log"
api "$URL/v1/status" >"$T/status.json"
ok "... /v1/status: suspend true, no next run" \
	jq_py 'assert d["suspend"] is True and d["nextRun"] is None, d' <"$T/status.json"
api -X POST "$URL/v1/backups" >"$T/post.json"
ok "... a backup asked for through the API runs" wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Succeeded
stop

# ---- 2. startingDeadlineSeconds: a fire time missed while the runner was down ----------
# A schedule that fires once a year, 20 s ago; the run records say that the last
# scheduled backup was an hour ago, so that fire time was missed.
now=$(date -u +%s)
fire=$((now - 20))
cron=$(date -u -d "@$fire" '+%-S %-M %-H %-d %-m *')
record() {     # record CATALOG: a scheduled backup record of an hour ago
	mkdir -p "$T/store/$1/runs"
	python3 - "$T/store/$1/runs" "$now" <<'PY'
import json, sys, time
d, now = sys.argv[1], int(sys.argv[2])
t = now - 3600
rid = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t)) + "-backup-old1"
json.dump({"id": rid, "kind": "backup", "trigger": "scheduled", "phase": "Succeeded",
           "start": t, "end": t + 1, "scheduledTime": t, "bytesIn": 1, "bytesOut": 1},
          open("%s/%s.json" % (d, rid), "w"))
PY
}
record within
conf within "schedule: '$cron'
startingDeadlineSeconds: 60"
start within "$T/within.yaml"
sleep 2
runs=$(scheduled_runs backup)
ok "a run missed 20 s ago, deadline 60 s: it runs once at start (got '$runs')" \
	test "$runs" = "Succeeded:$fire Succeeded:$((now - 3600))"
stop

record late
conf late "schedule: '$cron'
startingDeadlineSeconds: 5"
start late "$T/late.yaml"
sleep 2
runs=$(scheduled_runs backup)
ok "a run missed 20 s ago, deadline 5 s: skipped (got '$runs')" test "$runs" = "Succeeded:$((now - 3600))"
ok "... with a log line saying why" \
	grep -Eq 'the scheduled backup of .* was missed by [0-9]+s, more than startingDeadlineSeconds \(5\): skipped' "$T/late.log"
stop

conf fresh "schedule: '$cron'
startingDeadlineSeconds: 60"
start fresh "$T/fresh.yaml"
sleep 1.5
ok "a runner without run records does not catch up on earlier fire times" test -z "$(scheduled_runs backup)"
stop

# ---- 3. Scheduled verifications ---------------------------------------------------------
conf ver "verification: {schedule: '*/2 * * * * *'}"
start ver "$T/ver.yaml"
api -X POST "$URL/v1/backups" >"$T/post.json"
bid=
wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Succeeded && bid=$(jq_py 'print(d["backup"])' <"$T/run.json")
sleep 4.5
api "$URL/v1/runs" >"$T/runs.json"
ok "verification.schedule: scheduled verifications of the latest backup succeed" \
	python3 - "$T/runs.json" "$bid" <<'PY'
import json, sys
runs = json.load(open(sys.argv[1]))["runs"]
v = [r for r in runs if r["kind"] == "verify" and r["trigger"] == "scheduled" and r.get("end")]
good = [r for r in v if r["phase"] == "Succeeded" and r["backup"] == sys.argv[2]]
# (one that came due before the backup existed had nothing to verify)
early = [r for r in v if r["phase"] == "Failed" and r["error"].startswith("cannot find the backup")]
assert good and len(good) + len(early) == len(v), runs
assert all(r["scheduledTime"] % 2 == 0 for r in v), v
PY
ok "... and no scheduled backups (the backup schedule is not set)" test -z "$(scheduled_runs backup)"
stop

# ---- 4. historyLimits ----------------------------------------------------------------------
conf hist "historyLimits: {successful: 2, failed: 1}"
start hist "$T/hist.yaml"
ids=()
for i in 1 2 3 4; do
	api -X POST "$URL/v1/backups" >"$T/post.json"
	ids+=("$(jq_py 'print(d["id"])' <"$T/post.json")")
	wait_phase "${ids[-1]}" Succeeded
done
for i in 1 2; do
	api -X POST -d '{"backup": "20200101T000000Z-none"}' "$URL/v1/verifications" >"$T/post.json"
	ids+=("$(jq_py 'print(d["id"])' <"$T/post.json")")
	wait_phase "${ids[-1]}" Failed
done
sleep 0.3
kept=$(cd "$T/store/hist/runs" && ls | sed 's/\.json$//' | sort | tr '\n' ' ')
want=$(printf '%s\n' "${ids[2]}" "${ids[3]}" "${ids[5]}" | sort | tr '\n' ' ')
ok "successful: 2, failed: 1 keeps the records of the 2 newest successes and the newest failure" \
	test "$kept" = "$want"
api "$URL/v1/runs" >"$T/runs.json"
ok "... and GET /v1/runs lists just those" \
	python3 - "$T/runs.json" "$want" <<'PY'
import json, sys
got = sorted(r["id"] for r in json.load(open(sys.argv[1]))["runs"])
assert got == sys.argv[2].split(), (got, sys.argv[2])
PY
stop
conf hist "historyLimits: {successful: 1, failed: 0}"
start hist "$T/hist.yaml"
kept=$(cd "$T/store/hist/runs" && ls | sed 's/\.json$//' | tr '\n' ' ')
ok "lower limits at the next start remove the older records (got '$kept')" test "$kept" = "${ids[3]} "
stop
done_testing
