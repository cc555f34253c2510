# Shared setup of the backupop-controller tests (bash): the real kube-apiserver that
# tests/env/k8s-local.sh started (BOP_TEST_KUBECONFIG, an admin kubeconfig), kubectl from
# the same build, the shipped manifests applied, and a kubeconfig of the controller's own
# ServiceAccount, so the controller runs with the shipped RBAC, not as admin.
. "$BOP_SOURCE_ROOT/tests/tap.sh"
. "$BOP_SOURCE_ROOT/tests/env/lib.sh"
CTL="$BOP_BUILD_ROOT/controller/backupop-controller"
RUNNER="$BOP_BUILD_ROOT/runner/daemon/backupop-runner"
BOP="$BOP_BUILD_ROOT/runner/cli/backupop"
KUBECTL=${BOP_KUBECTL:-${BOP_CACHE_DIR:-/var/cache/backupop-testenv}/k8s-1.20.2/kubectl}
[ -x "$CTL" ] || skip_all "backupop-controller was not built ($CTL)"
[ -n "${BOP_TEST_KUBECONFIG:-}" ] || skip_all "no Kubernetes API server (BOP_TEST_KUBECONFIG is not set; tests/run starts one with tests/env/k8s-local.sh)"
[ -x "$KUBECTL" ] || skip_all "kubectl is not built ($KUBECTL; tests/env/k8s-local.sh build makes it)"
command -v python3 >/dev/null || skip_all "python3 is not installed"
command -v curl >/dev/null || skip_all "curl is not installed"

T=$(mktemp -d "${TMPDIR:-/tmp}/bop-ctl.XXXXXX") || exit 1
NS=bop-ctl-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
SYS=backupop-system
PIDS=()
k() { "$KUBECTL" --kubeconfig "$BOP_TEST_KUBECONFIG" "$@"; }
# drop_namespace NS: deletes a test's namespace without waiting. Its schedules and runs
# carry the controller's finalizer, which no controller removes once the test is over: it
# is dropped first so that the namespace can go.
drop_namespace() {
	local s
	for s in $(k -n "$1" get backupschedules,backupruns -o name 2>/dev/null); do
		k -n "$1" patch "$s" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
	done
	k delete namespace "$1" --wait=false >/dev/null 2>&1
}
cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	drop_namespace "$NS"
	k -n "$SYS" delete statefulsets,services,secrets -l app.kubernetes.io/managed-by=backupop-controller \
		>/dev/null 2>&1
	k -n "$SYS" delete lease backupop-controller >/dev/null 2>&1
	[ -n "${KEEP_T:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
cd "$T" || exit 1

jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
# free_port: a free port P whose P+1 is free too (a runner the controller configures
# listens for metrics on its API port + 1), never given before nor next to one given before
# (the runner's port, then the controller's metrics port, must not be neighbours).
free_port() { python3 "$BOP_SOURCE_ROOT/tests/env/free-port.py" --pair --given "$T/ports.given"; }
# wait_for SECONDS CMD...: retries CMD every 0.2 s until it succeeds.
wait_for() {
	local n=$(($1 * 5)); shift
	for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
	return 1
}

# The shipped manifests, applied as an administrator would.
k apply -f "$BOP_SOURCE_ROOT/controller/deploy/" >"$T/apply.log" 2>&1 ||
	{ sed 's/^/# /' "$T/apply.log"; echo "Bail out! kubectl apply -f controller/deploy/ failed"; exit 1; }
for crd in backupstorages backupschedules backupruns clusterbackuptemplates backuptemplates; do
	k wait --for condition=established --timeout=60s "crd/$crd.backupop.io" >/dev/null 2>&1 ||
		{ echo "Bail out! CRD $crd.backupop.io is not established"; exit 1; }
done
# What an earlier test left when it was killed (a timeout's SIGKILL skips its EXIT trap):
# its schedules would still be reconciled by this test's controller, their runs counted in
# its metrics and alerts. These tests run one at a time, so no other test owns them now.
for old in $(k get namespaces -o name 2>/dev/null | grep '^namespace/bop-ctl-'); do
	drop_namespace "${old#namespace/}" && diag "removed namespace ${old#namespace/}, left by an earlier test"
done
k create namespace "$NS" >/dev/null || { echo "Bail out! cannot create namespace $NS"; exit 1; }

# A kubeconfig with the controller ServiceAccount's token.
sa_kubeconfig "$SYS" backupop-controller "$T/sa.kubeconfig" ||
	{ echo "Bail out! no token for ServiceAccount $SYS/backupop-controller"; exit 1; }

# start_ctl NAME ARGS...: a controller in the background; its metrics port in MPORT_<NAME>.
start_ctl() {
	local name=$1 port; shift
	port=$(free_port)
	"$CTL" --kubeconfig "$T/sa.kubeconfig" --namespace "$SYS" --runner-image backupop/runner:test \
		--metrics-addr "127.0.0.1:$port" --log-format text --resync-seconds 600 "$@" \
		>>"$T/$name.log" 2>&1 &
	PIDS+=("$!")
	eval "PID_$name=$!"
	eval "MPORT_$name=$port"
	wait_for 30 curl -sf "http://127.0.0.1:$port/readyz"
}
# stop_ctl PID: SIGTERM, then up to 30 s for the controller to exit. One that hangs gets
# its threads' stacks printed (when gdb is there) and SIGKILL; the call then fails.
stop_ctl() {
	local pid=$1
	kill "$pid" 2>/dev/null
	for _ in $(seq 150); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
		sleep 0.2
	done
	echo "# the controller (pid $pid) did not stop within 30 s of SIGTERM"
	command -v gdb >/dev/null &&
		gdb -p "$pid" -batch -ex 'thread apply all bt' 2>/dev/null | grep -E '^(Thread|#)' | sed 's/^/# /' | head -80
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 1
}
metric() { # PORT NAME: the sum of a metric's samples
	curl -s "http://127.0.0.1:$1/metrics" | python3 -c "
import sys
t = 0.0
for l in sys.stdin:
    if l.startswith('$2 ') or l.startswith('$2{'):
        t += float(l.rsplit(' ', 1)[1])
print(int(t))"
}
# rname NS NAME: the runner objects' name
# start_runner CONFIG: plays the kubelet: the runner with a config taken from the
# controller's Secret, in the background; succeeds once it answers /healthz on $RPORT.
start_runner() {
	"$RUNNER" --config "$1" --state-dir "$T/runner.state" --log-format text \
		>"$T/runner.log" 2>&1 &
	PIDS+=("$!")
	wait_for 20 curl -sf "http://127.0.0.1:$RPORT/healthz"
}
# backuprun SCHEDULE NAME ACTION [BACKUP [FIELDS]]: a BackupRun in $NS; FIELDS, more of its
# spec (YAML, e.g. "targetDatabase: app_copy").
backuprun() {
	k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupRun
metadata: {name: $2}
spec: {scheduleRef: {name: $1}, action: $3${4:+, backup: $4}${5:+, $5}}
EOF
}
# phase_is RUN PHASE: the BackupRun's status.phase.
phase_is() { [ "$(k -n "$NS" get backuprun "$1" -o jsonpath='{.status.phase}')" = "$2" ]; }
rname() { echo "runner-$1-$2"; }
cond() { # KIND NAME: "status reason" of the Ready condition
	k -n "$NS" get "$1" "$2" -o json 2>/dev/null | jq_py "
c = [c for c in d.get('status', {}).get('conditions', []) if c['type'] == 'Ready']
print(c[0]['status'], c[0]['reason'] if c else '') if c else print('none')"
}
# file_storage PREFIX [ALLOWED]: the BackupStorage files-$NS, of the claim "backups" (where
# the test plays the kubelet: a local directory) under PREFIX, for $NS alone or for
# ALLOWED (allowedNamespaces, as YAML).
file_storage() {
	local allowed=${2:-}
	[ -n "$allowed" ] || allowed="{from: Names, names: [$NS]}"
	k apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupStorage
metadata: {name: files-$NS}
spec:
  file: {claimName: backups, prefix: $1}
  allowedNamespaces: $allowed
EOF
}
