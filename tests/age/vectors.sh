#!/bin/sh
# The C2SP age conformance vectors (cctv-age@0.2.0): fetch them (cached), then run every
# one through our age-decrypt stage with test-vectors. SKIP when node/npm/network are missing.
. "$BOP_SOURCE_ROOT/tests/tap.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bop-age-vectors.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

out=$(sh "$BOP_SOURCE_ROOT/tests/age/fetch-vectors.sh" "$tmp/vectors" 2>"$tmp/fetch.err")
status=$?
if [ "$status" -eq 77 ]; then
	skip_all "${out#SKIP: }"
fi
if [ "$status" -ne 0 ]; then
	echo "not ok 1 - fetching the cctv-age vectors failed (exit $status)"
	sed 's/^/# /' "$tmp/fetch.err"
	echo "1..1"
	exit 1
fi
diag "$out"
"$BOP_BUILD_ROOT/tests/age/test-vectors" "$tmp/vectors"
