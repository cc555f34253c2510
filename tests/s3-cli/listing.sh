#!/bin/bash
# Listing across more than one page of ListObjectsV2 (1000 keys): 1003 objects whose keys
# hold spaces, UTF-8 and characters that SigV4 must encode (+ % & = ~ '), stored and listed
# through the library (s3cat) and cross-checked with awscli.
. "$BOP_SOURCE_ROOT/tests/s3-cli/lib.sh"

[ -x "$S3CAT" ] || skip_all "the s3cat test tool was not built ($S3CAT)"
URL=$(s3url "$PFX")
N=1000
extra=("many/a+b c.txt" "many/100% done & x=y.txt" "many/tilde~quote'.txt")

# Four writers at once, 250 keys each.
for w in 0 1 2 3; do
	"$S3CAT" put-many "$URL" "many/" $((w * N / 4)) $((N / 4)) 2>"$T/put-$w.err" &
	writers[w]=$!
done
status=0
for w in 0 1 2 3; do wait "${writers[w]}" || status=1; done
check "s3cat put-many stores $N objects (4 writers)" $status
cat "$T"/put-*.err | sed 's/^/# /' | head -5
for k in "${extra[@]}"; do
	printf '%s' "$k" | "$S3CAT" put "$URL" "$k" 2>"$T/err"
	check "s3cat put stores \"$k\"" $?
done
want=$((N + ${#extra[@]}))

"$S3CAT" list "$URL" "many/" >"$T/list" 2>"$T/err"
check "s3cat list succeeds" $?
is "it lists every key, once" "$(sort -u "$T/list" | wc -l) $(wc -l <"$T/list")" "$want $want"
for i in 00000 00999 00500; do
	ok "the exact key \"many/$i ü € file.txt\" is listed" grep -Fxq "many/$i ü € file.txt" "$T/list"
done
for k in "${extra[@]}"; do
	ok "the exact key \"$k\" is listed" grep -Fxq "$k" "$T/list"
done
"$S3CAT" list "$URL" "many/00" >"$T/list2"
is "a narrower prefix lists only its keys" "$(wc -l <"$T/list2")" 1000
"$S3CAT" list "$URL" "many/nothing" >"$T/list3"
is "a prefix without keys lists nothing" "$(wc -l <"$T/list3")" 0

keys_under "$PFX/many" | sed "s|^$PFX/||" | sort >"$T/aws-list"
is "awscli lists the same keys" "$(sort "$T/list" | cmp - "$T/aws-list" && echo same)" same
"$S3CAT" get "$URL" "many/00777 ü € file.txt" >"$T/got"
is "an object with such a key reads back" "$(cat "$T/got")" "many/00777 ü € file.txt"
"$S3CAT" get "$URL" "${extra[1]}" >"$T/got"
is "so does \"${extra[1]}\"" "$(cat "$T/got")" "${extra[1]}"
done_testing
