#!/bin/bash
# backupop-runner (the daemon) with the exec engine's commands in a tools container, i.e.
# through the real backupop-exec-agent: an API backup runs there; SIGTERM to the runner
# during a backup cancels it and kills the command in the tools container; an API restore
# feeds the stream to a command there.
. "$BOP_SOURCE_ROOT/tests/runner/lib.sh"

AGENT="$BOP_BUILD_ROOT/runner/agent/backupop-exec-agent"
[ -x "$AGENT" ] || skip_all "backupop-exec-agent was not built ($AGENT)"
env -i "$AGENT" --socket "$T/agent.sock" 2>"$T/agent.log" &
PIDS+=("$!")
for _ in $(seq 50); do [ -S "$T/agent.sock" ] && break; sleep 0.1; done
ok "the agent listens" test -S "$T/agent.sock"

cat >"$T/d.yaml" <<YAML
name: tools
storage: 'file://$T/store'
engine:
  exec:
    tools: {socket: '$T/agent.sock'}
    backupCommand: [cat, '$T/input']
    restoreCommand: [dd, 'of=$T/restored', status=none]
api: {listen: '127.0.0.1:0', token: '$TOKEN'}
YAML
start d "$T/d.yaml"
ok "the runner starts" test -n "$PORT"
api -X POST "$URL/v1/backups" >"$T/post.json"
rid=$(jq_py 'print(d["id"])' <"$T/post.json")
ok "an API backup through the tools container succeeds" wait_phase "$rid" Succeeded
bid=$(jq_py 'print(d.get("backupId") or d.get("backup") or "")' <"$T/run.json")
api -X POST -H 'Content-Type: application/json' -d "{\"backup\": \"$bid\"}" "$URL/v1/restores" >"$T/post.json"
rid=$(jq_py 'print(d["id"])' <"$T/post.json")
ok "an API restore through it succeeds" wait_phase "$rid" Succeeded
ok "... byte for byte" cmp -s "$T/input" "$T/restored"
t0=$(date +%s.%N)
kill -TERM "$PID"; wait "$PID" 2>/dev/null
diag "idle runner stopped in $(echo "$(date +%s.%N) - $t0" | bc) s"

# (a stream that never ends: the runner cancels between reads, so a silent command would
# hold the cancel until it writes or ends, here as with a local command)
sed "s|backupCommand: .*|backupCommand: [yes, tools-slow-86]|" "$T/d.yaml" >"$T/slow.yaml"
start slow "$T/slow.yaml"
api -X POST "$URL/v1/backups" >"$T/post.json"
rid=$(jq_py 'print(d["id"])' <"$T/post.json")
ok "a slow backup runs" wait_phase "$rid" Running
for _ in $(seq 50); do pgrep -f "^yes tools-slow-86" >/dev/null && break; sleep 0.1; done
ok "... its command runs under the agent" pgrep -f "^yes tools-slow-86"
t0=$(date +%s.%N)
kill -TERM "$PID"
wait "$PID"
st=$?
diag "the runner stopped $(echo "$(date +%s.%N) - $t0" | bc) s after SIGTERM"
ok "SIGTERM during the backup: the runner exits 0 (got $st)" test "$st" -eq 0
ok "... the command in the tools container is gone" sh -c '! pgrep -f "^yes tools-slow-86" >/dev/null'
ok "... no new manifest" test "$(find "$T/store/tools" -name manifest.json | wc -l)" -eq 1
done_testing
