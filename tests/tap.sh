# TAP helpers for the shell tests; source it. Each check prints one TAP line.
#   ok "name" cmd args...     passes when the command exits 0
#   not_ok_expected ...       see fails
#   skip_all "reason"         the whole script is skipped
#   done_testing              prints the plan, exits 1 if anything failed
TAP_N=0
TAP_FAILED=0
ok() {
	local name=$1; shift
	TAP_N=$((TAP_N + 1))
	if "$@" >"${TAP_LOG:-/dev/null}" 2>&1; then
		echo "ok $TAP_N - $name"
	else
		echo "not ok $TAP_N - $name"
		TAP_FAILED=$((TAP_FAILED + 1))
		[ -n "${TAP_LOG:-}" ] && sed 's/^/# /' "$TAP_LOG" | tail -20
	fi
}
# check "name" CONDITION-EXIT-STATUS: records a result computed by the caller.
check() {
	local name=$1 status=$2
	TAP_N=$((TAP_N + 1))
	if [ "$status" -eq 0 ]; then echo "ok $TAP_N - $name"; else
		echo "not ok $TAP_N - $name"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}
# fails "name" cmd args...  passes when the command exits non-zero
fails() {
	local name=$1; shift
	TAP_N=$((TAP_N + 1))
	if "$@" >"${TAP_LOG:-/dev/null}" 2>&1; then
		echo "not ok $TAP_N - $name (expected a failure)"
		TAP_FAILED=$((TAP_FAILED + 1))
	else
		echo "ok $TAP_N - $name"
	fi
}
skip() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # SKIP $1"; }
skip_all() { echo "1..0 # SKIP $1"; exit 0; }
diag() { echo "# $*"; }
done_testing() { echo "1..$TAP_N"; [ "$TAP_FAILED" -eq 0 ]; exit $?; }

# The orphan checks (a producer `sh -c 'sleep NAP; echo late # MARKER'` must not outlive a
# killed backupop): wait_running NAP waits up to 5 s for `sleep NAP` to run; after a kill,
# survivors NAP MARKER waits up to 2 s and prints the processes still there, then kills them.
wait_running() {
	for _ in $(seq 50); do
		pgrep -f "sleep $1" >/dev/null && return 0
		sleep 0.1
	done
	return 1
}
survivors() {
	for _ in $(seq 20); do
		pgrep -f "$2" >/dev/null || pgrep -f "sleep $1" >/dev/null || break
		sleep 0.1
	done
	(pgrep -af "$2"; pgrep -af "sleep $1") | grep -v pgrep
	pkill -9 -f "$2" 2>/dev/null
	pkill -9 -f "sleep $1" 2>/dev/null
	return 0
}
