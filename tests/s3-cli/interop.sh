#!/bin/bash
# backupop's objects and awscli's, both ways: what backupop stores reads back identically
# with `aws s3 cp`, and its encrypted, compressed data decrypts with the real age and zstd;
# what awscli stores (single PUT and its own multipart uploads) reads back identically
# through the library's S3 reader (the s3cat tool) and, as a backup's data object, passes
# backupop's verification only when it holds the right bytes.
. "$BOP_SOURCE_ROOT/tests/s3-cli/lib.sh"

for tool in age zstd cmp; do
	command -v "$tool" >/dev/null || skip_all "$tool is not installed"
done
[ -x "$S3CAT" ] || skip_all "the s3cat test tool was not built ($S3CAT)"
URL=$(s3url "$PFX" "&part_size=5MiB")

# 12 MiB: random and compressible halves, three 5 MiB parts when stored as is.
head -c $((6 << 20)) /dev/urandom >"$T/in"
seq 1 2000000 | head -c $((6 << 20)) >>"$T/in"

# 1. Plain, uncompressed: the stored object is the input.
expect_exit 0 "plain backup" bop backup --storage "$URL" --name plain -c none -i "$T/in"
id=$(cat "$T/out")
aws_s3 s3 cp --quiet "s3://$BUCKET/$PFX/plain/$id/data" - >"$T/got" 2>"$T/err"
check "aws s3 cp reads the stored object" $?
ok "it is the input, byte for byte" cmp "$T/in" "$T/got"
aws_s3 s3 cp --quiet "s3://$BUCKET/$PFX/plain/$id/manifest.json" - >"$T/manifest.json"
ok "the manifest reads back as JSON naming the object" \
	python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert "data" in json.dumps(m)' \
	"$T/manifest.json"

# 2. zstd + age: anyone can restore with the standard tools.
recipient=$(bop keygen -o "$T/key.txt") || { echo "Bail out! keygen failed"; exit 1; }
expect_exit 0 "zstd+age backup" bop backup --storage "$URL" --name sealed -r "$recipient" \
	-i "$T/in"
id=$(cat "$T/out")
aws_s3 s3 cp --quiet "s3://$BUCKET/$PFX/sealed/$id/data.zst.age" - 2>"$T/err" |
	age -d -i "$T/key.txt" | zstd -d -q >"$T/got"
check "aws s3 cp | age -d -i key | zstd -d succeeds" $?
ok "and gives the original bytes" cmp "$T/in" "$T/got"

# 3. Objects written by awscli, read by backupop's reader.
head -c 1000 /dev/urandom >"$T/small"
head -c $((20 << 20)) /dev/urandom >"$T/big"
ok "aws s3 cp stores a small object" aws_s3 s3 cp --quiet "$T/small" "s3://$BUCKET/$PFX/aws/small file ü.bin"
ok "aws s3 cp stores a 20 MiB object (multipart)" aws_s3 s3 cp --quiet "$T/big" "s3://$BUCKET/$PFX/aws/big.bin"
"$S3CAT" get "$(s3url "$PFX")" "aws/small file ü.bin" >"$T/got" 2>"$T/err"
check "s3cat get reads the small object" $?
ok "its bytes are identical" cmp "$T/small" "$T/got"
"$S3CAT" get "$(s3url "$PFX")" aws/big.bin >"$T/got" 2>"$T/err"
check "s3cat get reads the multipart object" $?
ok "its bytes are identical" cmp "$T/big" "$T/got"
"$S3CAT" list "$(s3url "$PFX")" aws/ | sort >"$T/list" 2>"$T/err"
is "s3cat list shows both keys" "$(tr '\n' '|' <"$T/list")" "aws/big.bin|aws/small file ü.bin|"
"$S3CAT" get "$(s3url "$PFX")" aws/missing >"$T/got" 2>"$T/err"
check "s3cat get of a missing key fails" $((! $?))
err_says "saying it is not there" "aws/missing.*(not found|no such|does not exist)|(not found|no such|does not exist).*aws/missing"

# 4. A backup's data object replaced with awscli: the same bytes (now an awscli multipart
# object) verify and restore; other bytes of the same size are an integrity failure.
expect_exit 0 "backup to replace" bop backup --storage "$URL" --name replaced -c none -i "$T/in"
id=$(cat "$T/out")
ok "aws s3 cp re-uploads the same bytes as its data" \
	aws_s3 s3 cp --quiet "$T/in" "s3://$BUCKET/$PFX/replaced/$id/data"
expect_exit 0 "verify passes on awscli's copy" bop verify --storage "$URL" --name replaced "$id"
expect_exit 0 "restore from awscli's copy" bop restore --storage "$URL" --name replaced "$id" \
	-o "$T/got"
ok "restored bytes are identical" cmp "$T/in" "$T/got"
cp "$T/in" "$T/tampered"
printf 'X' | dd of="$T/tampered" bs=1 seek=$((9 << 20)) conv=notrunc status=none
ok "aws s3 cp replaces it with one changed byte" \
	aws_s3 s3 cp --quiet "$T/tampered" "s3://$BUCKET/$PFX/replaced/$id/data"
expect_exit 4 "verify fails with an integrity error (4)" bop verify --storage "$URL" \
	--name replaced "$id"
err_says "naming a checksum mismatch" "sha-?256|checksum|mismatch|integrity"
done_testing
