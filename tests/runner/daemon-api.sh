#!/bin/bash
# The runner's API is never open and checks what it is sent (issue 9):
#   finding 2: without api.token or api.tokenFile the runner generates a token, writes it
#     0600 where backupop runs/status find it, and requires it (also on 0.0.0.0); it
#     refuses to start when the file cannot be written;
#   finding 3: 70 slow clients do not stop /healthz from answering;
#   finding 17: an over-long or malformed backup id or body field gets 400 up front.
. "$BOP_SOURCE_ROOT/tests/runner/lib.sh"

export XDG_RUNTIME_DIR="$T/run"
mkdir -m 700 "$XDG_RUNTIME_DIR"
code() { curl -s -o "$T/answer" -w '%{http_code}' "$@"; }

cat >"$T/open.yaml" <<YAML
name: app
storage: 'file://$T/store'
engine:
  exec:
    backupCommand: [cat, '$T/input']
api: {listen: '127.0.0.1:0'}
YAML
start open "$T/open.yaml"
ok "finding 2: a runner without api.token starts" test -n "$PORT"
TF="$XDG_RUNTIME_DIR/backupop/api-token-$PORT"
ok "finding 2: ... and writes a generated token to $TF" test -s "$TF"
ok "finding 2: ... mode 0600" test "$(stat -c %a "$TF" 2>/dev/null)" = 600
GEN=$(cat "$TF" 2>/dev/null)
ok "finding 2: ... a long random token (${#GEN} characters)" test "${#GEN}" -ge 32
ok "finding 2: the log names the file" grep -q "$TF" "$T/open.log"
fails "finding 2: ... but never the token" grep -qF "${GEN:-no-token-read}" "$T/open.log"

gen() { curl -s -H "Authorization: Bearer $GEN" "$@"; }
gen -X POST "$URL/v1/backups" >"$T/post.json"
rid=$(jq_py 'print(d["id"])' <"$T/post.json" 2>/dev/null)
ok "finding 2: POST /v1/backups with the generated token: 202 and a run" test -n "$rid"
TOKEN=$GEN
ok "... the backup succeeds" wait_phase "$rid" Succeeded
bid=$(jq_py 'print(d["backup"])' <"$T/run.json" 2>/dev/null)
ok "... and is in the catalog" test -f "$T/store/app/$bid/manifest.json"

# requestId: a POST sent again with the same requestId (a controller that crashed before it
# saw the answer) gets the run the first one made, not a second run
c=$(code -H "Authorization: Bearer $GEN" -X POST "$URL/v1/backups?requestId=9f0c2b7e-5d1a-4c3b-8e6f-0123456789ab")
rq=$(jq_py 'print(d["id"])' <"$T/answer" 2>/dev/null)
ok "requestId: the first POST starts a run (202, got $c)" test "$c" = 202 -a -n "$rq"
c=$(code -H "Authorization: Bearer $GEN" -X POST "$URL/v1/backups?requestId=9f0c2b7e-5d1a-4c3b-8e6f-0123456789ab")
ok "requestId: the same POST again: 200 (got $c) ..." test "$c" = 200
ok "... with the run the first one made" test "$(jq_py 'print(d["id"])' <"$T/answer" 2>/dev/null)" = "$rq"
ok "... which succeeds" wait_phase "$rq" Succeeded
n_req=$(gen "$URL/v1/runs" | jq_py "print(sum(1 for r in d['runs'] if r.get('requestId') == '9f0c2b7e-5d1a-4c3b-8e6f-0123456789ab'))")
ok "... and is the only run with that requestId ($n_req)" test "$n_req" = 1
c=$(code -H "Authorization: Bearer $GEN" -X POST "$URL/v1/verifications?requestId=9f0c2b7e-5d1a-4c3b-8e6f-0123456789ab")
ok "requestId: the same requestId for a verification: 409 (got $c)" test "$c" = 409
ok "... naming the run it made" grep -q "was used for run $rq, a backup" "$T/answer"
c=$(code -H "Authorization: Bearer $GEN" -X POST "$URL/v1/backups?requestId=bad%20id%3B")
ok "requestId: one with a space and a ';': 400 (got $c)" test "$c" = 400
ok "... saying what a requestId may hold" grep -q "invalid requestId" "$T/answer"
c=$(code -H "Authorization: Bearer $GEN" -X POST "$URL/v1/backups?requestId=$(head -c 129 /dev/zero | tr '\0' a)")
ok "requestId: 129 characters: 400 (got $c)" test "$c" = 400

c=$(code -X DELETE "$URL/v1/backups/$bid")
ok "finding 2: an unauthenticated DELETE /v1/backups/<id>: 401 (got $c)" test "$c" = 401
ok "finding 2: ... and the backup is still there" test -f "$T/store/app/$bid/manifest.json"
c=$(code -X DELETE -H "Authorization: Bearer not-the-token-0123456789" "$URL/v1/backups/$bid")
ok "finding 2: DELETE with a wrong token: 401 (got $c)" test "$c" = 401
c=$(code -X POST "$URL/v1/backups")
ok "finding 2: an unauthenticated POST /v1/backups: 401 (got $c)" test "$c" = 401
c=$(code "$URL/v1/status")
ok "finding 2: an unauthenticated GET /v1/status: 401 (got $c)" test "$c" = 401
c=$(code "$URL/metrics")
ok "finding 2: an unauthenticated GET /metrics: 401 (got $c)" test "$c" = 401
c=$(code "$URL/healthz")
ok "/healthz stays public: 200 (got $c)" test "$c" = 200
c=$(code "$URL/readyz")
ok "/readyz stays public: 200 (got $c)" test "$c" = 200

"$BOP" runs --url "$URL" >"$T/cli-runs" 2>&1
ok "finding 2: backupop runs on this host finds the generated token" grep -q "$rid" "$T/cli-runs"
"$BOP" status --url "$URL" >"$T/cli-status" 2>&1
ok "finding 2: ... and so does backupop status" grep -q "app" "$T/cli-status"

# ---- finding 17: bad ids and fields get 400 up front -----------------------------------
runs_before=$(gen "$URL/v1/runs" | jq_py 'print(len(d["runs"]))')
long5k=$(head -c 5000 /dev/zero | tr '\0' a)
c=$(code -X DELETE -H "Authorization: Bearer $GEN" "$URL/v1/backups/$long5k")
ok "finding 17: DELETE /v1/backups/<5000 characters>: 400 (got $c)" test "$c" = 400
ok "finding 17: ... saying the id is invalid, without echoing all of it" \
	sh -c 'grep -q "invalid backup id" "$1" && test "$(wc -c <"$1")" -lt 1000' sh "$T/answer"
long10k=$(head -c 10000 /dev/zero | tr '\0' b)
for route in backups restores verifications; do
	c=$(code -X POST -H "Authorization: Bearer $GEN" -d "{\"backup\":\"$long10k\"}" "$URL/v1/$route")
	ok "finding 17: POST /v1/$route {\"backup\": <10000 characters>}: 400 (got $c)" test "$c" = 400
done
ok "finding 17: ... the answer says the id is invalid" grep -q "invalid backup id" "$T/answer"
c=$(code -X POST -H "Authorization: Bearer $GEN" -d '{"backup":"../x"}' "$URL/v1/restores")
ok "finding 17: POST /v1/restores {\"backup\": \"../x\"}: 400 (got $c)" test "$c" = 400
c=$(code -X POST -H "Authorization: Bearer $GEN" -d '{"backup":"latest","force":true}' "$URL/v1/restores")
ok "finding 17: an unknown field: 400 (got $c)" test "$c" = 400
ok "finding 17: ... naming the field" grep -q '\\"force\\"' "$T/answer"
c=$(code -X POST -H "Authorization: Bearer $GEN" -d '{"backup":"latest"} x' "$URL/v1/restores")
ok "finding 17: trailing garbage after the object: 400 (got $c)" test "$c" = 400
runs_after=$(gen "$URL/v1/runs" | jq_py 'print(len(d["runs"]))')
ok "finding 17: no run was queued by the bad requests ($runs_before, $runs_after)" \
	test "$runs_before" = "$runs_after"
c=$(code -X DELETE -H "Authorization: Bearer $GEN" "$URL/v1/backups/$bid")
ok "finding 2: DELETE /v1/backups/<id> with the generated token: 204 (got $c)" test "$c" = 204
fails "... the backup is gone" test -e "$T/store/app/$bid/manifest.json"

# ---- finding 3: slow clients do not take the API down ----------------------------------
# 70 connections each sending one header line every 2 s, for about 12 s; meanwhile 20
# probes of /healthz with a 2 s deadline. Loopback only; every socket is closed at the end.
ok "finding 3: /healthz answers at least 19 of 20 probes while 70 slow clients hold connections" \
	python3 - "$PORT" <<'PY'
import socket, sys, threading, time, urllib.request
port = int(sys.argv[1])
socks = []
for _ in range(70):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
    socks.append(s)
stop = threading.Event()
def drip():
    while not stop.wait(2):
        for s in socks:
            try:
                s.send(b"X-Slow: 1\r\n")
            except OSError:
                pass
t = threading.Thread(target=drip)
t.start()
answered = 0
try:
    time.sleep(1)
    for _ in range(20):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=2) as r:
                answered += r.status == 200
        except OSError:
            pass
        time.sleep(0.5)
finally:
    stop.set()
    t.join()
    for s in socks:
        s.close()
print("answered %d of 20" % answered)
assert answered >= 19, answered
PY

kill -TERM "$PID"
wait "$PID"
st=$?
ok "the runner stops cleanly on SIGTERM (exit $st)" test "$st" -eq 0
fails "finding 2: a runner that stops removes its generated token" test -e "$TF"

# ... and after a restart, from the run records in the storage
start open "$T/open.yaml"
GEN=$(cat "$XDG_RUNTIME_DIR/backupop/api-token-$PORT" 2>/dev/null)
c=$(code -H "Authorization: Bearer $GEN" -X POST "$URL/v1/backups?requestId=9f0c2b7e-5d1a-4c3b-8e6f-0123456789ab")
ok "requestId: after a restart of the runner, the same POST: 200 (got $c)" test "$c" = 200
ok "... with the run made before the restart" test "$(jq_py 'print(d["id"])' <"$T/answer" 2>/dev/null)" = "$rq"
kill -TERM "$PID"
wait "$PID"

# ---- finding 2: every address, and a place that cannot be written -----------------------
sed "s/127.0.0.1:0/0.0.0.0:0/" "$T/open.yaml" >"$T/any.yaml"
start any "$T/any.yaml"
ok "finding 2: a runner on 0.0.0.0 without a token starts" test -n "$PORT"
c=$(code -X DELETE "$URL/v1/backups/20260101T000000Z-abcd")
ok "finding 2: ... and is not open: an unauthenticated DELETE gets 401 (got $c)" test "$c" = 401
c=$(code "$URL/v1/runs")
ok "finding 2: ... GET /v1/runs too (got $c)" test "$c" = 401
ok "finding 2: ... its token is written too" test -s "$XDG_RUNTIME_DIR/backupop/api-token-$PORT"
kill -TERM "$PID"
wait "$PID"

mkdir -p "$T/shared/backupop"
chmod 755 "$T/shared/backupop"
XDG_RUNTIME_DIR="$T/shared" timeout 20 "$RUNNER" --config "$T/open.yaml" \
	--state-dir "$T/bad.state" --log-format text >"$T/bad.log" 2>&1
st=$?
ok "finding 2: a token that cannot be kept privately: the runner refuses to start (exit $st)" \
	test "$st" -eq 1
ok "finding 2: ... saying why" grep -q "generated token cannot be written" "$T/bad.log"
fails "finding 2: ... and never served its API" test -s "$T/bad.state/api-port"

done_testing
