#!/bin/bash
# What a user sees when S3 refuses: a wrong secret key, an unknown access key id, a
# bucket that does not exist, a server that is not there. Each is a clear error and a
# non-zero exit status, nothing is stored (no object, no open multipart upload), and no
# secret appears in the messages.
. "$BOP_SOURCE_ROOT/tests/s3-cli/lib.sh"

URL=$(s3url "$PFX" "&part_size=5MiB")
head -c 1000 /dev/urandom >"$T/small"
head -c $((12 << 20)) /dev/urandom >"$T/big"
good_secret=$AWS_SECRET_ACCESS_KEY
bad_secret="wrong-secret-$RANDOM$RANDOM"

nothing_stored() {
	is "$1: no object under the prefix" "$(keys_under)" ""
	is "$1: no multipart upload left open" "$(uploads_under)" ""
}

no_secret_in_messages() {
	ok "$1: no secret key in the messages" \
		bash -c '! grep -qF -e "$1" -e "$2" "$3"' _ "$good_secret" "$bad_secret" "$T/err"
}

for input in small big; do
	what="wrong secret key, $input input"
	expect_exit nonzero "$what: backup fails" env AWS_SECRET_ACCESS_KEY="$bad_secret" \
		"$BOP" -q backup --storage "$URL" --name n -c none -i "$T/$input"
	err_says "$what: says the signature does not match" "SignatureDoesNotMatch|signature|secret"
	no_secret_in_messages "$what"
	nothing_stored "$what"
done

what="unknown access key id"
expect_exit nonzero "$what: backup fails" env AWS_ACCESS_KEY_ID="NOSUCHKEY$RANDOM" \
	"$BOP" -q backup --storage "$URL" --name n -c none -i "$T/big"
err_says "$what: says the key id is unknown" "InvalidAccessKeyId|access key"
no_secret_in_messages "$what"
nothing_stored "$what"

expect_exit nonzero "wrong secret key: list fails" env AWS_SECRET_ACCESS_KEY="$bad_secret" \
	"$BOP" -q list --storage "$URL" --name n
err_says "wrong secret key: list says why" "SignatureDoesNotMatch|signature|secret"

what="missing bucket"
nobucket="backupop-no-such-bucket-$$-$RANDOM"
expect_exit nonzero "$what: backup fails" bop backup \
	--storage "s3://$nobucket/$PFX?endpoint=$EP&path_style=true" --name n -c none -i "$T/small"
err_says "$what: says the bucket does not exist" "NoSuchBucket|bucket.*(not exist|not found|no such)|no such bucket"
err_says "$what: names the bucket" "$nobucket"
fails "$what: it was not created" aws_s3 s3api head-bucket --bucket "$nobucket"

what="no server"
port=$(python3 "$BOP_SOURCE_ROOT/tests/env/free-port.py")
expect_exit 9 "$what: backup fails with exit status 9 (cannot connect)" bop backup \
	--storage "s3://$BUCKET/$PFX?endpoint=http://127.0.0.1:$port&path_style=true" --name n \
	-c none -i "$T/small"
err_says "$what: says it cannot connect" "connect|refused"
nothing_stored "$what"
done_testing
