#!/bin/bash
# The exec engine with "tools": {"socket": ...}: commands run beside the runner, started by
# the real backupop-exec-agent (here a local process, as it would be the tools container's
# first process), with stdout/stdin passed as descriptors: backup and restore byte for
# byte, exit status and stderr, a missing program, an unreachable agent, a timeout, the
# runner killed, a 1 GiB stream with the agent's memory flat, an empty environment and a
# root holding only the agent and a static busybox, and a peer of another uid refused.
. "$BOP_SOURCE_ROOT/tests/tap.sh"

BOP="$BOP_BUILD_ROOT/runner/cli/backupop"
AGENT="$BOP_BUILD_ROOT/runner/agent/backupop-exec-agent"
[ -x "$BOP" ] || skip_all "the backupop executable was not built ($BOP)"
[ -x "$AGENT" ] || skip_all "backupop-exec-agent was not built ($AGENT)"
T=$(mktemp -d "${TMPDIR:-/tmp}/bop-agent.XXXXXX") || exit 1
AGENT_PID=
stop_agent() {
	[ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
	AGENT_PID=
}
trap 'stop_agent; rm -rf "$T"' EXIT
cd "$T" || exit 1

# start_agent SOCKET [agent args...]: in the background, with an empty environment.
start_agent() {
	local sock=$1
	shift
	env -i "$AGENT" --socket "$sock" "$@" 2>>"$T/agent.log" &
	AGENT_PID=$!
	for _ in $(seq 50); do [ -S "$sock" ] && return 0; sleep 0.1; done
	return 1
}

# config FILE SOCKET BACKUP-ARGV RESTORE-ARGV [timeoutSeconds]
config() {
	cat >"$1" <<YAML
namespace: shop
scheduleName: tools
storage:
  url: file://$T/store
engine:
  exec:
    tools: {socket: $2}
    backupCommand: $3
    restoreCommand: $4
    env: {APP_PASSWORD: very-secret-pw}
    timeoutSeconds: ${5:-60}
compression: {algorithm: zstd, level: 1}
YAML
}

head -c 3000000 /dev/urandom >"$T/input"
start_agent "$T/agent.sock"
check "the agent listens, started with an empty environment" $?
ok "... its socket is private (mode 0600)" test "$(stat -c %a "$T/agent.sock")" = 600

config "$T/a.yaml" "$T/agent.sock" "[cat, $T/input]" "[dd, of=$T/restored, status=none]"
"$BOP" -q backup --config "$T/a.yaml" >"$T/id" 2>"$T/err"
check "backup through the agent" $?
"$BOP" -q restore --config "$T/a.yaml" latest 2>"$T/err"
check "restore through the agent" $?
ok "... byte for byte" cmp -s "$T/input" "$T/restored"

config "$T/fail.yaml" "$T/agent.sock" "[sh, -c, 'echo oops-from-tools >&2; exit 3']" "['false']"
"$BOP" backup --config "$T/fail.yaml" >/dev/null 2>"$T/err"
st=$?
ok "a failing command: the backup fails (exit 7, got $st)" test "$st" -eq 7
ok "... with the command's exit status" grep -q "exited with status 3" "$T/err"
ok "... and its stderr" grep -q "oops-from-tools" "$T/err"
"$BOP" -q restore --config "$T/fail.yaml" latest 2>"$T/err"
ok "a failing restore command fails the restore" test $? -ne 0
ok "... naming the status" grep -q "exited with status 1" "$T/err"

config "$T/missing.yaml" "$T/agent.sock" "[no-such-tool-xyz, --all]" "[cat]"
"$BOP" -q backup --config "$T/missing.yaml" >/dev/null 2>"$T/err"
ok "a program missing in the tools container fails the backup" test $? -ne 0
ok "... saying so" grep -q "'no-such-tool-xyz' not found in the tools container" "$T/err"

config "$T/nosock.yaml" "$T/none.sock" "[cat, $T/input]" "[cat]"
"$BOP" -q backup --config "$T/nosock.yaml" >/dev/null 2>"$T/err"
ok "no agent: the backup fails" test $? -ne 0
ok "... saying where it looked and what to set" grep -q "agent is not reachable at $T/none.sock (is runner.tools set" "$T/err"

config "$T/slow.yaml" "$T/agent.sock" "[sleep, '86.25']" "[cat]" 1
"$BOP" -q backup --config "$T/slow.yaml" >/dev/null 2>"$T/err"
ok "a timeout fails the backup" grep -q "did not finish within 1000 ms" "$T/err"
sleep 0.3
ok "... and the command is gone" sh -c '! pgrep -f "^sleep 86.25" >/dev/null'

config "$T/long.yaml" "$T/agent.sock" "[sleep, '86.5']" "[cat]"
"$BOP" -q backup --config "$T/long.yaml" >/dev/null 2>&1 &
cli=$!
for _ in $(seq 50); do pgrep -f "^sleep 86.5" >/dev/null && break; sleep 0.1; done
ok "a long command runs in the agent" pgrep -f "^sleep 86.5"
kill -KILL "$cli"; wait "$cli" 2>/dev/null
for _ in $(seq 50); do pgrep -f "^sleep 86.5" >/dev/null || break; sleep 0.1; done
ok "the runner killed with SIGKILL: the command dies too" sh -c '! pgrep -f "^sleep 86.5" >/dev/null'

# 1 GiB through the agent: the data never passes through it.
config "$T/big.yaml" "$T/agent.sock" "[head, -c, '1073741824', /dev/zero]" "[cat]"
( max=0
  while sleep 0.2; do
	for p in $(pgrep -f "^$AGENT"); do
		r=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null)
		[ -n "$r" ] && [ "$r" -gt "$max" ] && max=$r && echo "$max" >"$T/rss"
	done
  done ) &
sampler=$!
start=$(date +%s.%N)
"$BOP" -q backup --config "$T/big.yaml" >"$T/bigid" 2>"$T/err"
st=$?
end=$(date +%s.%N)
kill "$sampler"; wait "$sampler" 2>/dev/null
ok "1 GiB backed up through the agent" test "$st" -eq 0
grep -q '"size": *1073741824\|"bytes": *1073741824\|1073741824' "$T/store/shop/tools/$(cat "$T/bigid")/manifest.json"
check "... all of it (the manifest counts 1073741824 bytes)" $?
rss=$(cat "$T/rss" 2>/dev/null || echo 0)
# (a sanitizer build's agent is dynamically linked and carries the sanitizer's own memory)
limit=8192
[ "${BOP_SANITIZE:-none}" = none ] || limit=65536
ok "... the agent's largest resident size stayed small (${rss} KiB, < $((limit / 1024)) MiB)" test "$rss" -gt 0 -a "$rss" -lt "$limit"
diag "1 GiB through the agent: $(echo "$end - $start" | bc) s, agent max RSS ${rss} KiB"
stop_agent

# A root holding nothing but the static agent and a static busybox: no libraries, no
# /bin/sh, no /dev, no name service.
BUSYBOX=$(command -v busybox)
static() { file -L "$1" | grep -Eq 'static(ally|-pie) linked'; }
why=
if [ "$(id -u)" != 0 ]; then
	why="needs root for chroot"
elif ! static "$AGENT"; then
	if [ "${BOP_SANITIZE:-none}" != none ]; then
		why="a sanitizer build ($BOP_SANITIZE) links the agent dynamically, and the root has no libraries"
	else
		why="the agent is not statically linked ($AGENT), and the root has no libraries"
	fi
elif [ -z "$BUSYBOX" ] || ! static "$BUSYBOX"; then
	why="needs a static busybox (busybox-static)"
fi
if [ -z "$why" ]; then
	R="$T/root"
	mkdir -p "$R/sock" "$R/data"
	env -i "$AGENT" --install "$R/backupop-exec-agent" 2>/dev/null
	ok "--install copies the agent (what the runner pod's init container does)" cmp -s "$AGENT" "$R/backupop-exec-agent"
	cp "$BUSYBOX" "$R/busybox"
	cp "$T/input" "$R/data/input"
	env -i "$(command -v chroot)" "$R" /backupop-exec-agent --socket /sock/agent.sock 2>>"$T/agent.log" &
	AGENT_PID=$!
	for _ in $(seq 50); do [ -S "$R/sock/agent.sock" ] && break; sleep 0.1; done
	config "$T/root.yaml" "$R/sock/agent.sock" "[/busybox, cat, /data/input]" "[/busybox, dd, of=/data/out]"
	"$BOP" -q backup --config "$T/root.yaml" >/dev/null 2>"$T/err"
	check "a root with only the agent and busybox: backup" $?
	"$BOP" -q restore --config "$T/root.yaml" latest 2>"$T/err"
	check "... restore" $?
	ok "... byte for byte" cmp -s "$T/input" "$R/data/out"
	config "$T/root2.yaml" "$R/sock/agent.sock" "[sh, -c, 'true']" "[cat]"
	"$BOP" -q backup --config "$T/root2.yaml" >/dev/null 2>"$T/err"
	ok "... no shell there: a clear error" grep -q "'sh' not found in the tools container" "$T/err"
	stop_agent
else
	for _ in 1 2 3 4 5; do skip "a root with only the agent and busybox: $why"; done
fi

# The peer's uid: only the allowed ones may run commands.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	mkdir -p "$T/u" && chmod 0777 "$T" "$T/u" "$T/store" && chmod -R a+rwX "$T/store"
	chmod a+r "$T/input" "$T/key.txt" 2>/dev/null
	# The agent as 4000, allowing 4001 and 4002: the socket is open, the uid decides.
	setpriv --reuid 4000 --regid 4000 --clear-groups env -i "$AGENT" --socket "$T/u/agent.sock" \
		--allow-uid 4001 --allow-uid 4002 2>>"$T/agent.log" &
	AGENT_PID=$!
	for _ in $(seq 50); do [ -S "$T/u/agent.sock" ] && break; sleep 0.1; done
	config "$T/uid.yaml" "$T/u/agent.sock" "[cat, $T/input]" "[cat]"
	chmod a+r "$T/uid.yaml"
	setpriv --reuid 4001 --regid 4001 --clear-groups "$BOP" -q backup --config "$T/uid.yaml" >/dev/null 2>"$T/err"
	check "an allowed uid may run commands" $?
	setpriv --reuid 4003 --regid 4003 --clear-groups "$BOP" -q backup --config "$T/uid.yaml" >/dev/null 2>"$T/err"
	ok "another uid is refused" test $? -ne 0
	ok "... the runner says so" grep -q "refused command 'cat'" "$T/err"
	ok "... the agent logs it" grep -q "refused a connection from uid 4003" "$T/agent.log"
	stop_agent
	# The agent as root (a tools image that needs root) allowing one uid: the socket is
	# handed to that uid, still mode 0600.
	mkdir -p "$T/r" && chmod 0777 "$T/r"
	start_agent "$T/r/agent.sock" --allow-uid 4001
	ok "an agent run as root hands its socket to the one allowed uid" \
		test "$(stat -c %u:%a "$T/r/agent.sock")" = 4001:600
	config "$T/root-uid.yaml" "$T/r/agent.sock" "[cat, $T/input]" "[cat]"
	chmod a+r "$T/root-uid.yaml"
	setpriv --reuid 4001 --regid 4001 --clear-groups "$BOP" -q backup --config "$T/root-uid.yaml" >/dev/null 2>"$T/err"
	check "... which may run commands" $?
	stop_agent
else
	for _ in 1 2 3 4 5 6; do skip "a peer of another uid (needs root and setpriv)"; done
fi

ok "the secret env value never reached a message" sh -c '! grep -rq very-secret-pw "$1"/err "$1"/agent.log' sh "$T"
done_testing
