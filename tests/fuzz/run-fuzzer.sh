#!/bin/sh
# Runs one libFuzzer target for a while from a seed corpus and reports one TAP check.
#   run-fuzzer.sh TARGET NAME SECONDS
set -u
target=$1 name=$2 seconds=$3
seeds=$BOP_SOURCE_ROOT/tests/fuzz/seeds/$name
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
[ -d "$seeds" ] && cp "$seeds"/* "$work/corpus/" 2>/dev/null
if "$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$work/" \
	"$work/corpus" >"$work/log" 2>&1; then
	runs=$(grep -o 'Done [0-9]* runs' "$work/log" | tail -1)
	echo "ok 1 - fuzz-$name: no crash, leak or hang in ${seconds}s (${runs:-?})"
else
	echo "not ok 1 - fuzz-$name found a failure"
	grep -E 'ERROR|SUMMARY|Test unit written' "$work/log" | head -10 | sed 's/^/# /'
	for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-*; do
		[ -f "$f" ] && echo "# input (base64): $(base64 -w0 "$f" | head -c 2000)"
	done
fi
echo "1..1"
