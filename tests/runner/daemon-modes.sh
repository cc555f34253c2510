#!/bin/bash
# backupop-runner: mode single (one overwritten object, verify and restore through
# meta.json) and the concurrency policies Forbid and Replace.
. "$BOP_SOURCE_ROOT/tests/runner/lib.sh"

# ---- 1. mode: single --------------------------------------------------------------------
"$BOP" keygen -o "$T/key.txt" >/dev/null 2>&1
cat >"$T/single.yaml" <<YAML
name: one
mode: single
storage: 'file://$T/store'
engine:
  exec:
    backupCommand: [cat, '$T/input']
    restoreCommand: [sh, -c, 'cat >"\$OUT"']
    env: {OUT: '$T/single-restored'}
encryption: {identityFile: '$T/key.txt'}
retention: {keepLast: 1}
api: {listen: '127.0.0.1:0', token: '$TOKEN'}
YAML
start single "$T/single.yaml"
for i in 1 2; do
	api -X POST "$URL/v1/backups" >"$T/post.json"
	rid=$(jq_py 'print(d["id"])' <"$T/post.json")
	wait_phase "$rid" Succeeded
done
ok "single mode: two backups succeed" grep -q '"phase":"Succeeded"' "$T/run.json"
ok "... into one object and its meta.json, no catalog" test "$(find "$T/store/one" -type f ! -path '*/runs/*' | sort | sed "s|$T/store/one/||" | tr '\n' ' ')" = "single/data.zst.age single/meta.json "
api -X POST "$URL/v1/verifications" >"$T/post.json"
ok "... verify succeeds" wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Succeeded
api -X POST "$URL/v1/restores" >"$T/post.json"
ok "... restore through the engine succeeds" wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Succeeded
ok "... with the exact bytes" cmp -s "$T/input" "$T/single-restored"
printf 'X' | dd of="$T/store/one/single/data.zst.age" bs=1 seek=300 conv=notrunc 2>/dev/null
api -X POST "$URL/v1/verifications" >"$T/post.json"
ok "... verify of a tampered object fails" wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Failed
code=$(api -o /dev/null -w '%{http_code}' "$URL/v1/backups")
ok "... GET /v1/backups: 404, no catalog (got $code)" test "$code" = 404
kill -TERM "$PID"
wait "$PID"

# ---- 2. concurrencyPolicy ------------------------------------------------------------
for policy in Forbid Replace; do
	runner_config "$T/$policy.yaml" "$policy" "schedule: '*/2 * * * * *'" "concurrencyPolicy: $policy" <<YAML
exec:
  backupCommand: [sh, -c, 'i=0; while [ \$i -lt 30 ]; do echo x; sleep 0.1; i=\$((i+1)); done']
YAML
	start "$policy" "$T/$policy.yaml"
	sleep 6.5
	kill -TERM "$PID"
	wait "$PID"
done
ok "Forbid: a due backup is skipped while one runs" grep -q 'Forbid: skipping the scheduled backup' "$T/Forbid.log"
ok "... and no run was canceled for it" sh -c '! grep -q replaced "$1"/store/Forbid/runs/*.json' sh "$T"
ok "Replace: the running backup is canceled for the new one" \
	sh -c 'grep -l "canceled: replaced by a newer scheduled backup" "$1"/store/Replace/runs/*.json' sh "$T"
ok "... leaving no manifest of the canceled run" python3 - "$T/store/Replace" <<'PY'
import glob, json, os, sys
root = sys.argv[1]
ok = {json.load(open(f))["backup"] for f in glob.glob(root + "/runs/*.json") if json.load(open(f))["phase"] == "Succeeded"}
have = {os.path.basename(os.path.dirname(m)) for m in glob.glob(root + "/*/manifest.json")}
assert have == ok, (have, ok)
PY

done_testing
