# Shared setup of the CLI tests; sourced by each script (bash). Runs the built
# $BOP_BUILD_ROOT/runner/cli/backupop in a temporary directory that is removed at exit.
. "$BOP_SOURCE_ROOT/tests/tap.sh"

BOP="$BOP_BUILD_ROOT/runner/cli/backupop"
[ -x "$BOP" ] || skip_all "the backupop executable was not built ($BOP)"
T=$(mktemp -d "${TMPDIR:-/tmp}/bop-cli.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
TAP_LOG="$T/tap.log"
unset BACKUPOP_STORAGE
cd "$T" || exit 1

# Quiet, and JSON logs would clutter the TAP output: errors only.
bop() { "$BOP" -q "$@"; }

# expect_exit CODE NAME CMD...: passes when CMD exits with CODE. Its stdout and stderr
# are kept in $T/out and $T/err for the checks that follow.
expect_exit() {
	local want=$1 name=$2 got=0
	shift 2
	"$@" >"$T/out" 2>"$T/err" || got=$?
	TAP_N=$((TAP_N + 1))
	if [ "$got" -eq "$want" ]; then
		echo "ok $TAP_N - $name"
	else
		echo "not ok $TAP_N - $name (exit status $got, expected $want)"
		TAP_FAILED=$((TAP_FAILED + 1))
		sed 's/^/# stderr: /' "$T/err" | tail -5
	fi
}

# err_says NAME REGEX: the last expect_exit's stderr matches REGEX (extended, no case).
err_says() {
	local name=$1 re=$2
	TAP_N=$((TAP_N + 1))
	if grep -qiE -e "$re" "$T/err"; then
		echo "ok $TAP_N - $name"
	else
		echo "not ok $TAP_N - $name (stderr does not match /$re/)"
		TAP_FAILED=$((TAP_FAILED + 1))
		sed 's/^/# stderr: /' "$T/err" | tail -5
	fi
}

# is NAME GOT WANT
is() {
	TAP_N=$((TAP_N + 1))
	if [ "$2" = "$3" ]; then
		echo "ok $TAP_N - $1"
	else
		echo "not ok $TAP_N - $1 (got '$2', expected '$3')"
		TAP_FAILED=$((TAP_FAILED + 1))
	fi
}

# Test data: random bytes, and SQL-like text that compresses well.
gen_random() { head -c "$1" /dev/urandom >"$2"; }
gen_text() {
	awk 'BEGIN { for (i = 1; ; i++) printf "INSERT INTO orders VALUES (%d, '\''customer-%d'\'', %d.%02d, '\''2026-11-%02d'\'');\n", i, i % 977, i % 1000, i % 100, i % 28 + 1 }' |
		head -c "$1" >"$2"
}

# The data object of backup ID in a file:// storage directory STORE (name NAME).
data_file() {
	local store=$1 name=$2 id=$3 f
	for f in "$store/$name/$id"/data*; do
		[ -f "$f" ] && echo "$f" && return 0
	done
	return 1
}

# Files under DIR other than the catalog lock; empty when a failed backup left nothing.
leftovers() { find "$1" -type f ! -name lock.json 2>/dev/null; }
