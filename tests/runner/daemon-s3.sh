#!/bin/bash
# backupop-runner with S3 storage (the real server of tests/env/s3-local.sh, named by
# BOP_TEST_S3_ENDPOINT): a backup through the API, the catalog listed through the API, a
# restore and a verification, all with the credentials from the config file.
. "$BOP_SOURCE_ROOT/tests/runner/lib.sh"

[ -n "${BOP_TEST_S3_ENDPOINT:-}" ] ||
	skip_all "no S3 server: BOP_TEST_S3_ENDPOINT is not set (tests/run starts radosgw with tests/env/s3-local.sh)"
[ -n "${AWS_ACCESS_KEY_ID:-}" ] && [ -n "${AWS_SECRET_ACCESS_KEY:-}" ] ||
	skip_all "no S3 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"
BUCKET=${BOP_TEST_S3_BUCKET:-backupop-test}
PFX="bop-test/runner-s3-$(date -u +%Y%m%dT%H%M%S)-$$-$RANDOM"
AWS_BIN=/usr/bin/aws
[ -x "$AWS_BIN" ] || AWS_BIN=$(command -v aws)
s3_cleanup() {
	[ -n "$AWS_BIN" ] && AWS_PAGER= AWS_EC2_METADATA_DISABLED=true \
		AWS_ACCESS_KEY_ID=$ak AWS_SECRET_ACCESS_KEY=$sk "$AWS_BIN" --endpoint-url "$BOP_TEST_S3_ENDPOINT" s3 rm --recursive --quiet \
		"s3://$BUCKET/$PFX/" >/dev/null 2>&1
	cleanup
}
trap s3_cleanup EXIT
# The keys reach the runner only through its config file.
ak=$AWS_ACCESS_KEY_ID sk=$AWS_SECRET_ACCESS_KEY
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN

"$BOP" keygen -o "$T/key.txt" >/dev/null 2>&1
printf '%s\n' "$sk" >"$T/secret-key"
cat >"$T/s3.yaml" <<YAML
name: shop/orders
storage:
  url: 's3://$BUCKET/$PFX'
  endpoint: '$BOP_TEST_S3_ENDPOINT'
  region: '${AWS_DEFAULT_REGION:-us-east-1}'
  forcePathStyle: true
  accessKeyId: '$ak'
  secretAccessKeyFile: '$T/secret-key'
engine:
  exec:
    backupCommand: [cat, '$T/input']
    restoreCommand: [sh, -c, 'cat >"\$OUT"']
    env: {OUT: '$T/restored'}
encryption: {identityFile: '$T/key.txt'}
retention: {keepLast: 1}
api: {listen: '127.0.0.1:0', token: '$TOKEN'}
YAML
start s3 "$T/s3.yaml"
ok "the runner starts on S3 storage" test -n "$PORT"
bids=()
for i in 1 2; do
	api -X POST "$URL/v1/backups" >"$T/post.json"
	ok "backup $i into S3 through the API succeeds" \
		wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Succeeded
	bids+=("$(jq_py 'print(d["backup"])' <"$T/run.json")")
done
api "$URL/v1/backups" >"$T/backups.json"
ok "GET /v1/backups lists the catalog in S3: retention keepLast 1 left the newest" \
	jq_py "b=d['backups']; assert [x['id'] for x in b]==['${bids[1]}'] and b[0]['plainBytes']==200000 and b[0]['keep'], d" <"$T/backups.json"
api -X POST -d "{\"backup\": \"${bids[1]}\"}" "$URL/v1/restores" >"$T/post.json"
ok "a restore from S3 through the engine succeeds" \
	wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Succeeded
ok "... with the exact bytes" cmp -s "$T/input" "$T/restored"
api -X POST "$URL/v1/verifications" >"$T/post.json"
ok "a verification of the latest backup in S3 succeeds" \
	wait_phase "$(jq_py 'print(d["id"])' <"$T/post.json")" Succeeded
kill -TERM "$PID"
wait "$PID"
ok "SIGTERM: exit 0" test $? -eq 0
ok "the secret key is not in the log" sh -c '! grep -q -- "$1" "$2"' sh "$sk" "$T/s3.log"

# After a restart the runs are read back from their records in S3.
start s3 "$T/s3.yaml"
api "$URL/v1/runs" >"$T/runs.json"
ok "after a restart GET /v1/runs shows the runs recorded in S3" \
	jq_py "r=d['runs']; assert len(r)==4 and all(x['phase']=='Succeeded' for x in r), d" <"$T/runs.json"
kill -TERM "$PID"
wait "$PID"
done_testing
