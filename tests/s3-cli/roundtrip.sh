#!/bin/bash
# Round trips through the CLI to S3 with 5 MiB parts: 0 B, 1 B, exactly one part, one part
# and one byte, and 200 MiB of random bytes: backup, list, verify, restore, bytes equal.
# Stored without compression or encryption, so the object's size is the input's, and the
# part boundaries fall exactly where the sizes say.
. "$BOP_SOURCE_ROOT/tests/s3-cli/lib.sh"

PART=$((5 << 20))
URL=$(s3url "$PFX" "&part_size=5MiB&concurrency=4")

# parts_of ETAG: the number of parts of a multipart object ("-N" suffix), else "single".
parts_of() {
	local etag=${1//\"/}
	case $etag in *-*) echo "${etag##*-}" ;; *) echo single ;; esac
}

n=0
for spec in 0 1 "$PART" $((PART + 1)) $((200 << 20)); do
	n=$((n + 1))
	name="size-$spec"
	what="$spec B"
	gen_random "$spec" "$T/in"
	if [ $((n % 2)) = 0 ]; then
		expect_exit 0 "$what: backup from stdin" bop backup --storage "$URL" --name "$name" \
			-c none <"$T/in"
	else
		expect_exit 0 "$what: backup from a file" bop backup --storage "$URL" --name "$name" \
			-c none -i "$T/in"
	fi
	id=$(cat "$T/out")
	key="$PFX/$name/$id/data"
	aws_s3 s3api head-object --bucket "$BUCKET" --key "$key" >"$T/head.json" 2>"$T/err"
	is "$what: the object $name/<id>/data is stored with the input's size" \
		"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ContentLength"])' \
			"$T/head.json" 2>/dev/null)" "$spec"
	etag=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ETag"])' \
		"$T/head.json" 2>/dev/null)
	case $spec in
	$((PART + 1))) is "$what: uploaded in 2 parts" "$(parts_of "$etag")" 2 ;;
	$((200 << 20))) is "$what: uploaded in 40 parts" "$(parts_of "$etag")" 40 ;;
	esac
	expect_exit 0 "$what: list" bop list --storage "$URL" --name "$name"
	ok "$what: list shows the id" grep -q "^$id " "$T/out"
	expect_exit 0 "$what: verify" bop verify --storage "$URL" --name "$name" "$id"
	expect_exit 0 "$what: restore to a file" bop restore --storage "$URL" --name "$name" \
		"$id" -o "$T/restored"
	ok "$what: restored bytes are identical" cmp "$T/in" "$T/restored"
	if [ "$spec" = $((PART + 1)) ]; then
		bop restore --storage "$URL" --name "$name" latest >"$T/stdout" 2>"$T/err"
		check "$what: restore latest to stdout" $?
		ok "$what: stdout bytes are identical" cmp "$T/in" "$T/stdout"
	fi
	rm -f "$T/in" "$T/restored" "$T/stdout"
done

leftover=$(uploads_under)
is "no multipart upload is left open" "$leftover" ""
done_testing
