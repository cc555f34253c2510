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
