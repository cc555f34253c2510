#!/bin/sh
# Interoperability with the real tools: zstd -d and gzip -d read what we write, and we
# read what zstd and gzip write (including concatenated streams). Truncated or corrupt
# input fails with BOP_EFORMAT (exit status 15 of the tool).
. "$BOP_SOURCE_ROOT/tests/tap.sh"

TOOL=$1
[ -x "$TOOL" ] || skip_all "bop-codec-tool was not built"
T=$(mktemp -d "${TMPDIR:-/tmp}/bop-interop-XXXXXX") || skip_all "no temporary directory"
trap 'rm -rf "$T"' EXIT
TAP_LOG=$T/log

# 3 MiB of random bytes followed by 2 MiB of text, and a small file.
head -c 3145728 /dev/urandom > "$T/data"
i=0
while [ $i -lt 2000 ]; do
	echo "line $i: INSERT INTO accounts VALUES ($i, 'backupop interop', now());"
	i=$((i + 1))
done > "$T/text"
cat "$T/text" "$T/text" "$T/text" >> "$T/data"
printf 'x' > "$T/one"
: > "$T/empty"

ours() { "$TOOL" "$@"; }

# expect_format NAME ALG FILE MESSAGE: decompressing FILE fails with BOP_EFORMAT.
expect_format() {
	name=$1 alg=$2 file=$3 msg=$4
	ours decompress "$alg" < "$file" > "$T/bad.out" 2> "$T/bad.err"
	status=$?
	if [ $status -eq 15 ] && grep -q "$msg" "$T/bad.err"; then check "$name" 0; else
		diag "exit $status: $(cat "$T/bad.err")"; check "$name" 1; fi
}

round_with_tool() {
	alg=$1 tool=$2 ext=$3
	for f in data one empty; do
		ok "$alg: ours -> $tool -d ($f)" sh -c \
			"'$TOOL' compress $alg < '$T/$f' > '$T/$f.ours$ext' && $tool -d -c < '$T/$f.ours$ext' | cmp - '$T/$f'"
		ok "$alg: $tool -> ours ($f)" sh -c \
			"$tool -c < '$T/$f' > '$T/$f.theirs$ext' && '$TOOL' decompress $alg < '$T/$f.theirs$ext' | cmp - '$T/$f'"
	done
}

if command -v zstd >/dev/null 2>&1; then
	round_with_tool zstd zstd .zst
	ok "zstd: ours at level 19, one thread -> zstd -d" sh -c \
		"'$TOOL' compress zstd 19 1 < '$T/text' | zstd -d -c | cmp - '$T/text'"
	ok "zstd: ours carries a checksum (zstd -t)" sh -c \
		"'$TOOL' compress zstd < '$T/data' | zstd -t -q"
	ok "zstd: zstd -19 -T2 -> ours" sh -c \
		"zstd -19 -T2 -c < '$T/text' | '$TOOL' decompress zstd | cmp - '$T/text'"
	ok "zstd: concatenated frames -> ours" sh -c \
		"cat '$T/data.theirs.zst' '$T/one.ours.zst' | '$TOOL' decompress zstd > '$T/cat.out' && cat '$T/data' '$T/one' | cmp - '$T/cat.out'"
	head -c 100000 "$T/data.ours.zst" > "$T/trunc.zst"
	expect_format "zstd: truncated -> BOP_EFORMAT" zstd "$T/trunc.zst" "ended early"
	expect_format "zstd: not zstd -> BOP_EFORMAT" zstd "$T/text" "zstd data is corrupt"
	expect_format "zstd: empty -> BOP_EFORMAT" zstd "$T/empty" "empty"
else
	skip "zstd is not installed: interop with zstd not tested"
fi

if command -v gzip >/dev/null 2>&1; then
	round_with_tool gzip gzip .gz
	ok "gzip: gzip -t accepts ours" sh -c "'$TOOL' compress gzip < '$T/data' | gzip -t"
	ok "gzip: ours at level 9 -> gzip -d" sh -c \
		"'$TOOL' compress gzip 9 < '$T/text' | gzip -d -c | cmp - '$T/text'"
	ok "gzip: gzip -1 -> ours" sh -c \
		"gzip -1 -c < '$T/text' | '$TOOL' decompress gzip | cmp - '$T/text'"
	ok "gzip: concatenated members -> ours" sh -c \
		"cat '$T/data.theirs.gz' '$T/one.ours.gz' | '$TOOL' decompress gzip > '$T/cat.out' && cat '$T/data' '$T/one' | cmp - '$T/cat.out'"
	head -c 100000 "$T/data.ours.gz" > "$T/trunc.gz"
	expect_format "gzip: truncated -> BOP_EFORMAT" gzip "$T/trunc.gz" "the gzip stream ended early"
	expect_format "gzip: not gzip -> BOP_EFORMAT" gzip "$T/text" "gzip data is corrupt"
	expect_format "gzip: empty -> BOP_EFORMAT" gzip "$T/empty" "empty"
else
	skip "gzip is not installed: interop with gzip not tested"
fi

ok "none: passes bytes through" sh -c "'$TOOL' compress none < '$T/data' | cmp - '$T/data'"
done_testing
