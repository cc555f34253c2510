# What the tests of the real node (e2e.sh, tools.sh, sidecar.sh) share; sourced after
# tests/tap.sh and tests/env/lib.sh, once T (the test's temp dir), ENV (tests/env) and
# version (meson.build's) are set.

now() { date +%s%3N; }
since() { local d=$(($(now) - $1)); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }
# wait_for SECONDS CMD...: retries CMD every 0.5 s until it succeeds.
wait_for() {
	local n=$(($1 * 2)); shift
	for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
	return 1
}
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# backupop's images in $IMG ($BOP_BUILD_ROOT/images): reused when this build directory
# has them from the same committed tree, tests/ aside (images_key), else built from the
# packages by controller/images/build.sh; the test is skipped when they cannot be built.
e2e_images() {
	local head t0
	IMG=$BOP_BUILD_ROOT/images
	head=$(images_key "$BOP_SOURCE_ROOT")
	if [ "$(cat "$IMG/tree" 2>/dev/null)" = "$head" ] && [ -s "$IMG/runner-$version.oci.tar" ] &&
		[ -s "$IMG/controller-$version.oci.tar" ]; then
		diag "images of this tree ($head) reused from $IMG"
		return 0
	fi
	t0=$(now)
	rm -f "$IMG/tree"
	SOURCE_DATE_EPOCH=$(git -C "$BOP_SOURCE_ROOT" log -1 --format=%ct) \
		"$BOP_SOURCE_ROOT/controller/images/build.sh" -o "$IMG" >"$T/build.log" 2>&1 ||
		{ tail -5 "$T/build.log" | sed 's/^/# /'; skip_all "the images cannot be built (controller/images/build.sh failed)"; }
	echo "$head" >"$IMG/tree"
	diag "packages and images built in $(since "$t0") s"
}

# e2e_db_image KIND NAME: a database's test image (tests/env/db-image.sh, cached) as
# $T/KIND.tar; the test is skipped when it cannot be built.
e2e_db_image() {
	local t0
	t0=$(now)
	bash "$ENV/db-image.sh" "$1" "$T/$1.tar" >"$T/db-image.log" 2>&1 ||
		{ tail -5 "$T/db-image.log" | sed 's/^/# /'; skip_all "the $2 image cannot be built (tests/env/db-image.sh failed)"; }
	diag "$2 image ready in $(since "$t0") s"
}
