#!/bin/bash
# Memory stays bounded by the configuration, not by the backup's size: the peak RSS of
# `backupop backup` streaming 1 GiB from a pipe to S3 with 16 MiB parts and 4 uploads in
# flight stays within part_size x (concurrency + 1) + 64 MiB.
. "$BOP_SOURCE_ROOT/tests/s3-cli/lib.sh"

asan_build "$BOP" && skip_all "AddressSanitizer build: its memory use is not backupop's"
PART_MIB=16 CONC=4
LIMIT_MIB=$((PART_MIB * (CONC + 1) + 64))
URL=$(s3url "$PFX" "&part_size=${PART_MIB}MiB&concurrency=$CONC")

# Runs `head -c SIZE /dev/urandom | backupop ...` and prints backupop's peak RSS in KiB
# (getrusage of that one process, as wait4 reports it), then its exit status.
peak_rss() {
	python3 - "$@" <<'EOF'
import os, subprocess, sys
size, cmd = sys.argv[1], sys.argv[2:]
src = subprocess.Popen(["head", "-c", size, "/dev/urandom"], stdout=subprocess.PIPE)
p = subprocess.Popen(cmd, stdin=src.stdout, stdout=open("out", "wb"), stderr=open("err", "wb"))
src.stdout.close()
_, status, usage = os.wait4(p.pid, 0)
src.wait()
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
EOF
}

read -r rss status <<<"$(peak_rss $((1 << 30)) "$BOP" -q backup --storage "$URL" --name big -c none)"
check "1 GiB backup from a pipe succeeds (exit $status)" "${status:-1}"
sed 's/^/# stderr: /' "$T/err" | tail -3
id=$(cat "$T/out")
size=$(aws_s3 s3api head-object --bucket "$BUCKET" --key "$PFX/big/$id/data" \
	--query ContentLength --output text 2>/dev/null)
is "the object holds 1 GiB" "$size" $((1 << 30))
diag "peak RSS $((rss / 1024)) MiB; limit ${PART_MIB} MiB x ($CONC + 1) + 64 MiB = $LIMIT_MIB MiB"
check "peak RSS $((rss / 1024)) MiB <= $LIMIT_MIB MiB" $((rss > LIMIT_MIB * 1024))

done_testing
