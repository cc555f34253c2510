# Shared setup of the S3 CLI tests; sourced by each script (bash). They run the built
# backupop (and the s3cat test tool) against the real S3 server that tests/run starts
# (tests/env/s3-local.sh): BOP_TEST_S3_ENDPOINT, BOP_TEST_S3_BUCKET and the AWS_* keys
# come from the environment, and without them the test is skipped. Each script works
# under its own prefix of the bucket ($PFX), removed at exit with everything under it
# (objects and open multipart uploads), as is its temporary directory.
. "$BOP_SOURCE_ROOT/tests/tap.sh"

BOP="$BOP_BUILD_ROOT/runner/cli/backupop"
S3CAT="$BOP_BUILD_ROOT/tests/s3-cli/s3cat"
[ -x "$BOP" ] || skip_all "the backupop executable was not built ($BOP)"
[ -n "${BOP_TEST_S3_ENDPOINT:-}" ] ||
	skip_all "no S3 server: BOP_TEST_S3_ENDPOINT is not set (tests/run starts radosgw with tests/env/s3-local.sh)"
[ -n "${AWS_ACCESS_KEY_ID:-}" ] && [ -n "${AWS_SECRET_ACCESS_KEY:-}" ] ||
	skip_all "no S3 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"
# Debian's awscli is /usr/bin/aws; another one earlier in PATH may be a different major.
AWS_BIN=/usr/bin/aws
[ -x "$AWS_BIN" ] || AWS_BIN=$(command -v aws) ||
	skip_all "awscli is not installed (apt-get install awscli)"
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
export AWS_EC2_METADATA_DISABLED=true AWS_PAGER=
BUCKET=${BOP_TEST_S3_BUCKET:-backupop-test}
EP=$BOP_TEST_S3_ENDPOINT

T=$(mktemp -d "${TMPDIR:-/tmp}/bop-s3cli.XXXXXX") || exit 1
TAP_LOG="$T/tap.log"
unset BACKUPOP_STORAGE
cd "$T" || exit 1
# A prefix of its own: the script's name, the time and a random part.
PFX="bop-test/$(basename "$0" .sh)-$(date -u +%Y%m%dT%H%M%S)-$$-$RANDOM"

aws_s3() { "$AWS_BIN" --endpoint-url "$EP" "$@"; }

# The storage URL of PREFIX (default $PFX) with extra query parameters ($2, "&a=b...").
s3url() { echo "s3://$BUCKET/${1:-$PFX}?endpoint=$EP&path_style=true${2:-}"; }

# Every key under PREFIX/ (default $PFX), one per line, as the server lists them.
keys_under() {
	aws_s3 s3api list-objects-v2 --bucket "$BUCKET" --prefix "${1:-$PFX}/" \
		--query 'Contents[].Key' --output text | tr '\t' '\n' | grep -v '^None$' || true
}

# The upload ids of the open multipart uploads under PREFIX/ (default $PFX).
uploads_under() {
	aws_s3 s3api list-multipart-uploads --bucket "$BUCKET" --prefix "${1:-$PFX}/" \
		--query 'Uploads[].[Key,UploadId]' --output text | grep -v '^None$' || true
}

s3_cleanup() {
	local key id
	aws_s3 s3 rm --recursive --quiet "s3://$BUCKET/$PFX/" >/dev/null 2>&1 || true
	uploads_under 2>/dev/null | while IFS=$'\t' read -r key id; do
		[ -n "$id" ] && aws_s3 s3api abort-multipart-upload --bucket "$BUCKET" --key "$key" \
			--upload-id "$id" >/dev/null 2>&1
	done
	rm -rf "$T"
}
trap s3_cleanup EXIT

# The server must answer before anything is worth testing.
aws_s3 s3api head-bucket --bucket "$BUCKET" >"$T/head-bucket.log" 2>&1 ||
	skip_all "S3 server $EP does not answer for bucket $BUCKET: $(tail -1 "$T/head-bucket.log")"

# Quiet: errors only.
bop() { "$BOP" -q "$@"; }

# expect_exit CODE NAME CMD...: passes when CMD exits with CODE ("nonzero" for any
# failure). Its stdout and stderr are kept in $T/out and $T/err.
expect_exit() {
	local want=$1 name=$2 got=0 pass=0
	shift 2
	"$@" >"$T/out" 2>"$T/err" || got=$?
	TAP_N=$((TAP_N + 1))
	if [ "$want" = nonzero ]; then [ "$got" -ne 0 ] && pass=1; else [ "$got" -eq "$want" ] && pass=1; fi
	if [ $pass = 1 ]; then
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

gen_random() { head -c "$1" /dev/urandom >"$2"; }

# Whether the executable is built with AddressSanitizer (its memory use is then not ours).
asan_build() { grep -qa __asan_init "$1"; }
