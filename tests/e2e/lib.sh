# What the tests of the real node (e2e.sh, tools.sh, sidecar.sh) share; sourced after
# tests/tap.sh and tests/env/lib.sh. It sets ENV (tests/env), CACHE and KUBECTL (the
# binaries of tests/env/k8s-local.sh) and version (meson.build's); e2e_setup sets T and NS.
ENV=$BOP_SOURCE_ROOT/tests/env
CACHE=${K8S_CACHE:-${BOP_CACHE_DIR:-/var/cache/backupop-testenv}/k8s-1.20.2}
KUBECTL=$CACHE/kubectl
version=$(sed -n "s/^  version: '\([^']*\)',/\1/p" "$BOP_SOURCE_ROOT/meson.build")
k() { "$KUBECTL" --kubeconfig "$K8S_DIR/kubeconfig" "$@"; }
node() { bash "$ENV/node-local.sh" "$@"; }
node_started=
now() { date +%s%3N; }
since() { local d=$(($(now) - $1)); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }
# wait_for SECONDS CMD...: retries CMD every 0.5 s until it succeeds.
wait_for() {
	local n=$(($1 * 2)); shift
	for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
	return 1
}
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
free_port() { python3 "$BOP_SOURCE_ROOT/tests/env/free-port.py"; }

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

# rand_hex N: N random bytes in hex (names and passwords unique to a run)
rand_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# e2e_require TOOL...: skips the test where it cannot run: no API server of
# tests/env/k8s-local.sh to join, not root, the node's binaries not built, a TOOL (or one
# the images are built with) not installed, the source not a git checkout.
e2e_require() {
	local t
	need_node "a node and the images need root"
	for t in mmdebstrap umoci dpkg-buildpackage git "$@"; do
		command -v "$t" >/dev/null || skip_all "$t is not installed"
	done
	git -C "$BOP_SOURCE_ROOT" rev-parse HEAD >/dev/null 2>&1 ||
		skip_all "the source is not a git checkout (the images are built from its committed tree)"
}

# e2e_setup NAME: the test's temp dir T (bop-NAME.XXXXXX, readable by the node's pods),
# its TAP_LOG, NS (bop-NAME-<random>), K8S_DIR (the API server's, exported for
# node-local.sh); the test's cleanup() runs on exit, and on a SIGTERM (a test harness's
# timeout) too, so that the node is still stopped.
e2e_setup() {
	T=$(mktemp -d "${TMPDIR:-/tmp}/bop-$1.XXXXXX") || exit 1
	chmod 755 "$T"
	TAP_LOG=$T/log
	export K8S_DIR=$BOP_TEST_K8S_DIR
	NS=bop-$1-$(rand_hex 4)
	trap cleanup EXIT
	trap 'exit 143' TERM INT
}

# e2e_cleanup [CMD...]: the end of every test's cleanup(): once the node was started, the
# finalizers of $NS's schedules and runs dropped, $NS deleted, CMD run (deletes the test's
# own objects), the node stopped; then $T removed (kept with KEEP_T set).
e2e_cleanup() {
	local o
	if [ -n "$node_started" ]; then
		for o in $(k -n "$NS" get backupschedules,backupruns -o name 2>/dev/null); do
			k -n "$NS" patch "$o" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
		done
		k delete namespace "$NS" --wait=false >/dev/null 2>&1
		[ $# -eq 0 ] || "$@"
		node stop >/dev/null 2>&1
	fi
	[ -n "${KEEP_T:-}" ] || rm -rf "$T"
}

# e2e_node_start: the node (tests/env/node-local.sh start), checked as "a node starts"; its
# exports (BOP_TEST_NODE_*) set. Skipped where a node cannot run; the test ends where it
# does not start. A controller Deployment that other tests left (tests/controller/ apply
# the shipped manifests) would start on the node, before its image is there: it goes first.
e2e_node_start() {
	local t0 rc=0
	k -n backupop-system delete deployment backupop-controller --ignore-not-found >/dev/null 2>&1
	t0=$(now)
	node start >"$T/node.env" 2>"$T/node.err" || rc=$?
	[ $rc -eq 77 ] && skip_all "$(grep -m1 'cannot run a node here' "$T/node.err")"
	node_started=1
	check "a node starts" $rc
	[ $rc -eq 0 ] || { sed 's/^/# /' "$T/node.err" | tail -20; done_testing; }
	eval "$(grep '^export' "$T/node.env")"
	diag "node Ready in $(since "$t0") s"
}

# e2e_import TAR NAME [TAR NAME]...: imports each image TAR into the node as NAME.
e2e_import() {
	while [ $# -ge 2 ]; do
		node import "$1" "$2" || return 1
		shift 2
	done
}

# e2e_db_pod NAME CONTAINER IMAGE PORT: a database's pod NAME in $NS (label app=NAME) from a
# test image of tests/env/db-image.sh (never pulled), as a user would run it: not root, a
# read-only root, its data in an emptyDir; DB_PASSWORD from the Secret NAME-admin, key
# password; Ready once it listens on PORT.
e2e_db_pod() {
	k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: $1, labels: {app: $1}}
spec:
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532}
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: $2
    image: $3
    imagePullPolicy: Never
    env: [{name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: $1-admin, key: password}}}]
    ports: [{containerPort: $4, protocol: TCP}]
    readinessProbe: {tcpSocket: {port: $4}, periodSeconds: 1}
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
                      capabilities: {drop: [ALL]}}
    volumeMounts: [{name: data, mountPath: /var/lib/db}]
EOF
}

# e2e_file_storage NAME CLAIM-NS CLAIM MODE PREFIX: makes $T/store (owned by the pods' user
# 65532) and prints the objects of a file storage there: a hostPath PersistentVolume NAME
# bound to the claim CLAIM-NS/CLAIM (access mode MODE), and the BackupStorage NAME of that
# claim under PREFIX, for $NS.
e2e_file_storage() {
	mkdir -p "$T/store" && chown 65532:65532 "$T/store"
	cat <<EOY
apiVersion: v1
kind: PersistentVolume
metadata: {name: $1}
spec:
  capacity: {storage: 1Gi}
  accessModes: [$4]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: "$T/store", type: Directory}
  claimRef: {namespace: $2, name: $3}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: $3, namespace: $2}
spec:
  accessModes: [$4]
  storageClassName: ""
  volumeName: $1
  resources: {requests: {storage: 1Gi}}
---
apiVersion: backupop.io/v1alpha1
kind: BackupStorage
metadata: {name: $1}
spec:
  file: {claimName: $3, prefix: $5}
  allowedNamespaces: {from: Names, names: [$NS]}
EOY
}

# sched_ready: the schedule $SCHED of $NS has its Ready condition True.
sched_ready() {
	k -n "$NS" get backupschedule "$SCHED" \
		-o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}
# e2e_runner_pod: the checks that $SCHED becomes Ready and that its runner's pod
# $SYS/RPOD (RN-0, both set here) appears and becomes Running and Ready, with the time
# since T_SCHED (when the schedule was applied); the pod's JSON in $T/rpod.json.
e2e_runner_pod() {
	ok "the schedule becomes Ready" wait_for 30 sched_ready
	RN=$(k -n "$NS" get backupschedule "$SCHED" -o jsonpath='{.status.runnerName}')
	RPOD=$RN-0
	ok "the runner's pod $SYS/$RPOD appears" wait_for 30 k -n "$SYS" get pod "$RPOD"
	ok "it becomes Running and Ready" k -n "$SYS" wait --for=condition=Ready "pod/$RPOD" --timeout=120s
	diag "runner pod Ready $(since "$T_SCHED") s after the schedule was applied"
	k -n "$SYS" get pod "$RPOD" -o json >"$T/rpod.json"
}
