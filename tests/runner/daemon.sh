#!/bin/bash
# backupop-runner end to end: a real exec engine, file:// storage, the HTTP API, metrics,
# retention, SIGTERM during a backup and a restart after kill -9.
. "$BOP_SOURCE_ROOT/tests/runner/lib.sh"

# ---- 1. Scheduled backups, retention, API, metrics ------------------------------------
cat >"$T/sched.yaml" <<YAML
name: app
schedule: '*/2 * * * * *'
storage: {url: 'file://$T/store'}
engine:
  exec:
    backupCommand: [cat, '$T/input']
    restoreCommand: [sh, -c, 'cat >"\$OUT"']
    env: {OUT: '$T/restored'}
retention: {keepLast: 2}
historyLimits: {successful: 50, failed: 5}
api: {listen: '127.0.0.1:0', tokenFile: token}
YAML
start sched "$T/sched.yaml"
ok "the runner starts and serves its API" test -n "$PORT"
sleep 7.5
api "$URL/v1/runs" >"$T/runs.json"
echo "$(jq_py 'print(" ".join(str(r["start"]) for r in d["runs"] if r["trigger"]=="scheduled" and r["start"]))' <"$T/runs.json")" >"$T/starts"
diag "scheduled starts: $(cat "$T/starts")"
n=$(wc -w <"$T/starts")
ok "3 or more scheduled backups in 7.5 s (got $n)" test "$n" -ge 3
ok "... each on an even second, 2 s apart (within 1 s)" python3 - "$T/starts" <<'PY'
import sys
s = sorted(int(x) for x in open(sys.argv[1]).read().split())
assert all(abs(t - 2 * round(t / 2)) <= 1 for t in s), s
assert all(1 <= b - a <= 3 for a, b in zip(s, s[1:])), s
PY
ok "... all Succeeded" jq_py 'assert all(r["phase"]=="Succeeded" for r in d["runs"] if r["end"]), d' <"$T/runs.json"
manifests=$(find "$T/store/app" -name manifest.json | wc -l)
ok "retention keepLast 2 keeps exactly 2 backups (got $manifests)" test "$manifests" -eq 2
ok "... the two newest" python3 - "$T/store/app" "$T/runs.json" <<'PY'
import json, os, sys
ids = sorted(d for d in os.listdir(sys.argv[1]) if os.path.exists(os.path.join(sys.argv[1], d, "manifest.json")))
runs = json.load(open(sys.argv[2]))["runs"]
done = sorted(r["backup"] for r in runs if r["phase"] == "Succeeded" and r["kind"] == "backup")
assert len(ids) == 2 and all(x in ids for x in done if x >= ids[0]), (ids, done)
PY
ok "the retention log line is written" grep -q "retention plan" "$T/sched.log"

code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/runs")
ok "GET /v1/runs without the token: 401 (got $code)" test "$code" = 401
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer wrong-token-123" "$URL/v1/backups")
ok "GET /v1/backups with a wrong token: 401 (got $code)" test "$code" = 401
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/metrics")
ok "/metrics without the token: 401 (got $code)" test "$code" = 401
code=$(api -o /dev/null -w '%{http_code}' "$URL/v1/runs")
ok "GET /v1/runs with the token: 200 (got $code)" test "$code" = 200
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")
ok "/healthz needs no token: 200 (got $code)" test "$code" = 200
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/readyz")
ok "/readyz needs no token: 200 (got $code)" test "$code" = 200
api "$URL/v1/backups" >"$T/backups.json"
ok "GET /v1/backups lists the catalog with retention labels" \
	jq_py 'b=d["backups"]; assert len(b)>=2 and all("labels" in x and "keep" in x for x in b), d' <"$T/backups.json"

api "$URL/metrics" >"$T/metrics"
ok "/metrics parses as Prometheus text with the expected names and types" python3 - "$T/metrics" <<'PY'
import re, sys
types, samples = {}, {}
line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*)?\})? (-?[0-9.e+-]+|[+-]Inf|NaN)( -?[0-9]+)?$')
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if not line:
        continue
    if line.startswith("# TYPE "):
        _, _, name, t = line.split(" ", 3)
        types[name] = t
    elif line.startswith("#"):
        assert line.startswith("# HELP "), line
    else:
        m = line_re.match(line)
        assert m, "bad sample line: " + line
        samples.setdefault(m.group(1), []).append(line)
want = {"backupop_backup_duration_seconds": "histogram", "backupop_backup_bytes": "gauge",
        "backupop_last_success_timestamp_seconds": "gauge", "backupop_runs_total": "counter"}
for n, t in want.items():
    assert types.get(n) == t, (n, types.get(n))
assert any('le="+Inf"' in l for l in samples["backupop_backup_duration_seconds_bucket"])
assert "backupop_backup_duration_seconds_count" in samples
ok = [l for l in samples["backupop_runs_total"] if 'kind="backup"' in l and 'result="success"' in l]
assert ok and float(ok[0].split()[-1]) >= 3, ok
PY

# POST /v1/backups, then a restore of it through the engine.
api -X POST "$URL/v1/backups" >"$T/post.json"
rid=$(jq_py 'print(d["id"])' <"$T/post.json")
ok "POST /v1/backups answers with a run id" test -n "$rid"
ok "... the run shows Succeeded in GET /v1/runs/{id}" wait_phase "$rid" Succeeded
ok "... triggered by the api, with bytes and sha256" \
	jq_py 'assert d["trigger"]=="api" and d["bytesIn"]==200000 and len(d["sha256"])==64 and d["backup"], d' <"$T/run.json"
bid=$(jq_py 'print(d["backup"])' <"$T/run.json")
api -X POST -d "{\"backup\": \"$bid\"}" "$URL/v1/restores" >"$T/post.json"
rid=$(jq_py 'print(d["id"])' <"$T/post.json")
ok "POST /v1/restores {backup: id} succeeds" wait_phase "$rid" Succeeded
ok "... the engine's restore command got the exact bytes" cmp -s "$T/input" "$T/restored"
api -X POST -d '{"backup": "latest"}' "$URL/v1/verifications" >"$T/post.json"
rid=$(jq_py 'print(d["id"])' <"$T/post.json")
ok "POST /v1/verifications succeeds" wait_phase "$rid" Succeeded
code=$(api -o /dev/null -w '%{http_code}' -X POST -d '{"backup": 3}' "$URL/v1/restores")
ok "a bad restore body: 400 (got $code)" test "$code" = 400
code=$(api -o /dev/null -w '%{http_code}' "$URL/v1/runs/no-such-run")
ok "an unknown run: 404 (got $code)" test "$code" = 404

"$BOP" runs --url "$URL" --token-file "$T/token" >"$T/cli-runs" 2>&1
ok "backupop runs lists the runner's runs" grep -q "$rid" "$T/cli-runs"
"$BOP" status --config "$T/sched.yaml" --url "$URL" >"$T/cli-status" 2>&1
ok "backupop status shows the last success and next run" \
	sh -c 'grep -q "last success *20" "$1" && grep -q "next run *20" "$1"' sh "$T/cli-status"
"$BOP" runs --url "$URL" >"$T/cli-runs" 2>&1
ok "backupop runs without a token fails with a clear message" grep -q "refused the token" "$T/cli-runs"

kill -TERM "$PID"
wait "$PID"
st=$?
ok "SIGTERM when idle: exit 0 (got $st)" test "$st" -eq 0

# ---- 2. SIGTERM in the middle of a slow backup -----------------------------------------
runner_config "$T/slow.yaml" slow <<YAML
exec:
  backupCommand: [sh, -c, 'i=0; while [ \$i -lt 300 ]; do head -c 4096 /dev/urandom; [ -e "$T/go-slow" ] || exit 0; sleep 0.1; i=\$((i+1)); done']
YAML
touch "$T/go-slow"
start slow "$T/slow.yaml"
api -X POST "$URL/v1/backups" >"$T/post.json"
rid=$(jq_py 'print(d["id"])' <"$T/post.json")
ok "a slow backup runs" wait_phase "$rid" Running
sleep 1.5
kill -TERM "$PID"
wait "$PID"
st=$?
ok "SIGTERM during the backup: exit 0 (got $st)" test "$st" -eq 0
ok "... no manifest" test "$(find "$T/store/slow" -name manifest.json | wc -l)" -eq 0
ok "... no data and no temporary files left" \
	test "$(find "$T/store/slow" -type f ! -path '*/runs/*' ! -name lock.json | wc -l)" -eq 0
ok "... the run is recorded Failed: canceled at shutdown" \
	grep -q '"phase":"Failed".*canceled at shutdown' "$T/store/slow/runs/$rid.json"

# ---- 2b. SIGTERM while the backup command has written nothing (pg_dump waiting on a lock)
runner_config "$T/silent.yaml" silent <<YAML
exec:
  backupCommand: [sh, -c, 'sleep 60; echo bop-silent-$$']
YAML
start silent "$T/silent.yaml"
api -X POST "$URL/v1/backups" >"$T/post.json"
rid=$(jq_py 'print(d["id"])' <"$T/post.json")
ok "a backup whose command writes nothing runs" wait_phase "$rid" Running
sleep 1
t0=$(date +%s%N)
kill -TERM "$PID"
wait "$PID"
st=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
ok "SIGTERM with a silent command: exit 0 (got $st) within 3 s, not when it writes ($ms ms)" \
	test "$st" -eq 0 -a "$ms" -lt 3000
ok "... the command is stopped" sh -c "! pgrep -f '[e]cho bop-silent-$$' >/dev/null"
ok "... the run is recorded Failed: canceled at shutdown" \
	grep -q '"phase":"Failed".*canceled at shutdown' "$T/store/silent/runs/$rid.json"

# ---- 3. kill -9 in the middle of a backup, then a restart ------------------------------
start slow "$T/slow.yaml"
api -X POST "$URL/v1/backups" >"$T/post.json"
rid=$(jq_py 'print(d["id"])' <"$T/post.json")
ok "another slow backup runs" wait_phase "$rid" Running
sleep 1.5
kill -9 "$PID"
wait "$PID" 2>/dev/null
sleep 0.3
left=$(find "$T/store/slow" -type f ! -path '*/runs/*' ! -name lock.json | wc -l)
diag "left behind by kill -9: $left file(s)"
ok "... the record says Running after kill -9" grep -q '"phase":"Running"' "$T/store/slow/runs/$rid.json"
start slow "$T/slow.yaml"
api "$URL/v1/runs/$rid" >"$T/run.json"
ok "after a restart the interrupted run shows Failed" \
	jq_py 'assert d["phase"]=="Failed" and d["error"].startswith("interrupted"), d' <"$T/run.json"
ok "... and its leftovers are gone" \
	test "$(find "$T/store/slow" -type f ! -path '*/runs/*' ! -name lock.json | wc -l)" -eq 0
ok "... no manifest" test "$(find "$T/store/slow" -name manifest.json | wc -l)" -eq 0
ok "... the lock of the killed runner was removed at start, not waited for" \
	grep -q 'removing the catalog lock of slow: it was held by an earlier run of this runner' "$T/slow.log"
rm -f "$T/go-slow"
api -X POST "$URL/v1/backups" >"$T/post.json"
rid=$(jq_py 'print(d["id"])' <"$T/post.json")
ok "a backup right after the restart succeeds (no 'locked' error)" wait_phase "$rid" Succeeded
kill -TERM "$PID"
wait "$PID"
ok "the restarted runner stops cleanly" test $? -eq 0

# A lock of the same runner identity whose pid is alive (another runner of this catalog
# on this host) is kept; a lock of another host is kept too.
for holder in "backupop-runner:slow:$(hostname):$$" "backupop-runner:slow:other-host:1"; do
	printf '{"owner":"%s","expires":%d,"token":"0123456789abcdef0123456789abcdef"}' \
		"$holder" $(($(date +%s) + 120)) >"$T/store/slow/lock.json"
	start slow "$T/slow.yaml"
	api -X POST "$URL/v1/backups" >"$T/post.json"
	rid=$(jq_py 'print(d["id"])' <"$T/post.json")
	ok "a lock held by $holder is not taken over" wait_phase "$rid" Failed
	ok "... the backup fails as locked, naming the holder" \
		jq_py "assert 'locked by $holder' in d['error'], d" <"$T/run.json"
	kill -TERM "$PID"
	wait "$PID"
done
rm -f "$T/store/slow/lock.json"

# ---- 6. Bad configs ----------------------------------------------------------------------
printf 'storage: file:///x\nengine: {exec: {backupCommand: [cat]}}\nretention:\n  keepDayly: 3\n' >"$T/bad.yaml"
"$RUNNER" --config "$T/bad.yaml" 2>"$T/err"
st=$?
ok "a bad config: exit 2 (got $st)" test "$st" -eq 2
ok "... the message names file, line and field" grep -q 'bad.yaml:4: retention.keepDayly: unknown field' "$T/err"
done_testing
