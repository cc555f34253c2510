#!/bin/bash
# The container images, built as a user would (controller/images/build.sh: the Debian
# packages of the committed tree, then a Debian 12 root per image, packed by umoci):
#   - what is inside: the binaries and the database clients, user 65532, the entrypoint,
#     no apt, no apt sources, no docs; the binaries run as 65532 in the unpacked root;
#   - reproducible: a second build from the same packages gives the same bytes;
#   - on a real node (tests/env/node-local.sh, when this machine can run one): both
#     images are imported with ctr, and pods with a read-only root as user 65532 run the
#     controller, the runner, the CLI, pg_dump and mariadb-dump from them.
# Sizes and times are TAP comments. Skipped, with the reason, without root or mmdebstrap.
. "$BOP_SOURCE_ROOT/tests/tap.sh"
. "$BOP_SOURCE_ROOT/tests/env/lib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "building images needs root (mmdebstrap, umoci unpack)"
for t in mmdebstrap umoci dpkg-buildpackage git; do
	command -v "$t" >/dev/null || skip_all "$t is not installed"
done
git -C "$BOP_SOURCE_ROOT" rev-parse HEAD >/dev/null 2>&1 ||
	skip_all "the source is not a git checkout (the images are built from its committed tree)"
T=$(mktemp -d "${TMPDIR:-/tmp}/bop-images.XXXXXX") || exit 1
# kept for tests/e2e, which reuses images of the same tree (images_key)
IMG=$BOP_BUILD_ROOT/images
rm -f "$IMG/tree" "$IMG"/*.oci.tar "$IMG"/*.docker.tar
TAP_LOG=$T/log
BUILD=$BOP_SOURCE_ROOT/controller/images/build.sh
version=$(sed -n "s/^  version: '\([^']*\)',/\1/p" "$BOP_SOURCE_ROOT/meson.build")
node_started=
NS=bop-images-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
CACHE=${K8S_CACHE:-${BOP_CACHE_DIR:-/var/cache/backupop-testenv}/k8s-1.20.2}
k() { "$CACHE/kubectl" --kubeconfig "$K8S_DIR/kubeconfig" "$@"; }
cleanup() {
	if [ -n "$node_started" ]; then
		k delete namespace "$NS" --wait=false >/dev/null 2>&1
		bash "$BOP_SOURCE_ROOT/tests/env/node-local.sh" stop >/dev/null 2>&1
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 143' TERM INT
since() { echo $(($(date +%s) - $1)); }

t0=$(date +%s)
export SOURCE_DATE_EPOCH=$(git -C "$BOP_SOURCE_ROOT" log -1 --format=%ct)
ok "controller/images/build.sh builds the packages and both images" "$BUILD" -o "$IMG"
diag "packages and both images built in $(since "$t0") s"
grep '^backupop/' "$T/log" | sed 's/^/# /'
for img in runner controller; do
	check "$img: an OCI layout tarball" "$(tar -tf "$IMG/$img-$version.oci.tar" 2>/dev/null | grep -qx './oci-layout'; echo $?)"
	if command -v skopeo >/dev/null; then
		check "$img: a docker-archive for docker load" \
			"$(tar -tf "$IMG/$img-$version.docker.tar" 2>/dev/null | grep -qx 'manifest.json'; echo $?)"
	fi
done

# Unpacked as a runtime would see them.
for img in runner controller; do
	mkdir -p "$T/oci-$img"
	tar -C "$T/oci-$img" -xf "$IMG/$img-$version.oci.tar"
	ok "$img: umoci unpacks it" umoci unpack --image "$T/oci-$img:$version" "$T/$img"
	cfg=$T/$img/config.json
	check "$img: runs as user 65532" "$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["process"]["user"]; sys.exit(not (p["uid"] == 65532 and p["gid"] == 65532))' "$cfg"; echo $?)"
	check "$img: its entrypoint is /usr/sbin/backupop-$img" "$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["process"]["args"]; sys.exit(a[0] != sys.argv[2])' "$cfg" "/usr/sbin/backupop-$img"; echo $?)"
	r=$T/$img/rootfs
	check "$img: no apt, no apt sources, no docs or man pages" "$([ ! -e "$r/usr/bin/apt" ] &&
		[ -z "$(ls -A "$r/etc/apt/sources.list.d" 2>/dev/null)" ] && [ ! -e "$r/etc/apt/sources.list" ] &&
		[ ! -d "$r/usr/share/doc" ] && [ ! -d "$r/usr/share/man" ]; echo $?)"
	check "$img: user 65532 has a passwd entry (libpq and others look it up)" \
		"$(grep -q '^backupop:x:65532:65532:' "$r/etc/passwd"; echo $?)"
	ok "$img: backupop-$img --version runs as 65532 in the image's root" \
		chroot --userspec=65532:65532 "$r" "/usr/sbin/backupop-$img" --version
	diag "$img: $(du -sm "$r" | cut -f1) MB unpacked, $(($(stat -c %s "$IMG/$img-$version.oci.tar") / 1000000)) MB as an OCI tarball"
done
r=$T/runner/rootfs
for tool in backupop pg_dump pg_restore psql mariadb-dump mariadb; do
	ok "runner: $tool runs as 65532 in the image's root" chroot --userspec=65532:65532 "$r" "$tool" --version
done
ok "runner: the exec agent for tools containers is there and statically linked" \
	sh -c 'file -L "$1" | grep -Eq "static(ally|-pie) linked"' sh "$r/usr/lib/backupop/backupop-exec-agent"

t0=$(date +%s)
ok "a second build from the same packages" "$BUILD" -d "$IMG/debs" -o "$T/b"
diag "both images rebuilt in $(since "$t0") s"
for img in runner controller; do
	check "$img: the second build is byte for byte the same ($(sha256sum <"$IMG/$img-$version.oci.tar" | cut -c1-16))" \
		"$(cmp -s "$IMG/$img-$version.oci.tar" "$T/b/$img-$version.oci.tar"; echo $?)"
done
rm -rf "$T/b" "$T/oci-runner" "$T/oci-controller"
[ -s "$IMG/runner-$version.oci.tar" ] && [ -s "$IMG/controller-$version.oci.tar" ] &&
	images_key "$BOP_SOURCE_ROOT" >"$IMG/tree"

# On a real node, when there is one to start.
if [ -z "${BOP_TEST_K8S_DIR:-}" ]; then
	skip "no API server for a node (BOP_TEST_K8S_DIR is not set): pods not run"
	done_testing
fi
export K8S_DIR=$BOP_TEST_K8S_DIR
rc=0
bash "$BOP_SOURCE_ROOT/tests/env/node-local.sh" start >"$T/node.env" 2>"$T/node.err" || rc=$?
if [ $rc -eq 77 ]; then
	skip "$(grep -m1 'cannot run a node here' "$T/node.err"): pods not run"
	done_testing
fi
node_started=1
check "a node starts" $rc
[ $rc -eq 0 ] || { sed 's/^/# /' "$T/node.err" | tail -20; done_testing; }
for img in runner controller; do
	ok "$img: imported into the node's containerd" \
		bash "$BOP_SOURCE_ROOT/tests/env/node-local.sh" import "$IMG/$img-$version.oci.tar" "backupop/$img"
done
k create namespace "$NS" >/dev/null
container() { # name image command...
	local name=$1 image=$2; shift 2
	local args
	args=$(printf '"%s", ' "$@")
	cat <<EOF
  - name: $name
    image: docker.io/backupop/$image:$version
    imagePullPolicy: Never
    command: [${args%, }]
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
                      capabilities: {drop: [ALL]}}
    volumeMounts: [{name: tmp, mountPath: /tmp}]
EOF
}
{
	cat <<EOF
apiVersion: v1
kind: Pod
metadata: {name: tools}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
  volumes: [{name: tmp, emptyDir: {}}]
  initContainers:
EOF
	container keygen runner /usr/bin/backupop keygen -o /tmp/key.txt
	container runner-version runner /usr/sbin/backupop-runner --version
	container pg-dump runner /usr/bin/pg_dump --version
	echo "  containers:"
	container mariadb-dump runner /usr/bin/mariadb-dump --version
	container controller-version controller /usr/sbin/backupop-controller --version
} >"$T/tools.yaml"
t0=$(date +%s)
ok "a pod of both images, read-only root, user 65532, is created" k -n "$NS" apply -f "$T/tools.yaml"
phase=$(wait_pod_done "$NS" tools 90)
check "it runs to completion (phase ${phase:-none})" "$([ "$phase" = Succeeded ]; echo $?)"
diag "pod created to Succeeded in $(since "$t0") s"
for c in keygen runner-version pg-dump mariadb-dump controller-version; do
	k -n "$NS" logs tools -c "$c" >"$T/$c.log" 2>&1
done
check "backupop keygen wrote a key into the emptyDir and printed its recipient" "$(grep -q '^age1' "$T/keygen.log"; echo $?)"
check "backupop-runner --version answers $version" "$(grep -q "$version" "$T/runner-version.log"; echo $?)"
check "pg_dump is PostgreSQL 15's" "$(grep -q 'pg_dump (PostgreSQL) 15' "$T/pg-dump.log"; echo $?)"
check "mariadb-dump runs" "$(grep -qi 'mariadb-dump.*Distrib' "$T/mariadb-dump.log"; echo $?)"
check "backupop-controller --version answers $version" "$(grep -q "$version" "$T/controller-version.log"; echo $?)"
[ "$phase" = Succeeded ] || { k -n "$NS" describe pod tools | tail -30 | sed 's/^/# /'; }
done_testing
