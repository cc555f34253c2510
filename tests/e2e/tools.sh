#!/bin/bash
# spec.runner.tools with pods on a real node (tests/env/node-local.sh): a database whose
# tools are not in the runner image. Redis runs as a pod (tests/env/db-image.sh redis:
# redis-server and redis-cli from Debian); a BackupSchedule of the shipped "redis"
# ClusterBackupTemplate (redis-cli --rdb -) names that image as its tools image. The
# runner's pod runs the runner (backupop's image, which has no redis-cli) and the tools
# container (the Redis image, with backupop-exec-agent copied in by the init container);
# a BackupRun backup Succeeds, its RDB stream coming from redis-cli in the tools container;
# the backup is then restored as the template says (backupop restore to dump.rdb, a Redis
# started on it) and holds every key. The controller runs beside the API server (not as a
# pod: tests/e2e/e2e.sh covers that); the storage is a hostPath PersistentVolume, so the
# test reads the catalog directly. Root only; skipped with the reason where a node cannot
# run or the images cannot be built. Runs alone (is_parallel: false): it starts a node.
. "$BOP_SOURCE_ROOT/tests/tap.sh"
. "$BOP_SOURCE_ROOT/tests/env/lib.sh"
. "$BOP_SOURCE_ROOT/tests/e2e/lib.sh"
CTL=$BOP_BUILD_ROOT/controller/backupop-controller
BOP=$BOP_BUILD_ROOT/runner/cli/backupop
[ -x "$CTL" ] || skip_all "backupop-controller was not built ($CTL)"
e2e_require redis-server redis-cli python3 curl

e2e_setup tools
SYS=backupop-system
PV=tools-$NS
ctl_pid= redis_pid= had_key=
own_objects() {
	k delete backupstorage "$PV" --wait=false >/dev/null 2>&1
	k -n "$SYS" delete statefulsets,services,secrets \
		-l app.kubernetes.io/managed-by=backupop-controller --wait=false >/dev/null 2>&1
	k -n "$SYS" delete pvc "$PV" --wait=false >/dev/null 2>&1
	k delete pv "$PV" --wait=false >/dev/null 2>&1
	k -n "$SYS" delete lease backupop-controller >/dev/null 2>&1
	[ -n "$had_key" ] || k -n "$SYS" delete secret backupop-controller-key >/dev/null 2>&1
}
cleanup() {
	[ -z "$ctl_pid" ] || { kill "$ctl_pid" 2>/dev/null; wait "$ctl_pid" 2>/dev/null; }
	[ -z "$redis_pid" ] || kill "$redis_pid" 2>/dev/null
	e2e_cleanup own_objects
}
T_ALL=$(now)

# ---- the images: backupop's, shared with tests/e2e/e2e.sh (same directory, same key,
# both images, so neither test reuses a stale one), and Redis's (cached by db-image.sh) ----
e2e_images
e2e_db_image redis Redis

# ---- the node and the images in it ----
e2e_node_start
t0=$(now)
ok "the runner image and the Redis image are imported" \
	e2e_import "$IMG/runner-$version.oci.tar" backupop/runner "$T/redis.tar" bop-redis
diag "images imported in $(since "$t0") s"

# ---- the CRDs, RBAC and the shipped redis template; the controller beside the API server ----
k -n "$SYS" get secret backupop-controller-key >/dev/null 2>&1 && had_key=1
ok "the CRDs, RBAC and the shipped templates are applied" sh -c "
	'$KUBECTL' --kubeconfig '$K8S_DIR/kubeconfig' apply -f '$BOP_SOURCE_ROOT/controller/deploy/00-namespace.yaml' \
		-f '$BOP_SOURCE_ROOT/controller/deploy/01-crds.yaml' -f '$BOP_SOURCE_ROOT/controller/deploy/02-rbac.yaml' \
		-f '$BOP_SOURCE_ROOT/controller/deploy/templates/' &&
	'$KUBECTL' --kubeconfig '$K8S_DIR/kubeconfig' wait --for condition=established --timeout=60s \
		crd/backupschedules.backupop.io crd/clusterbackuptemplates.backupop.io"
MPORT=$(free_port)
"$CTL" --kubeconfig "$K8S_DIR/kubeconfig" --namespace "$SYS" --runner-image "backupop/runner:$version" \
	--metrics-addr "127.0.0.1:$MPORT" --log-format text --poll-seconds 1 >"$T/controller.log" 2>&1 &
ctl_pid=$!
ok "the controller is ready" wait_for 30 curl -sf "http://127.0.0.1:$MPORT/readyz"

# ---- Redis as a pod, with data ----
RPW=redis-$(rand_hex 6)
k create namespace "$NS" >/dev/null
k -n "$NS" create secret generic cache-admin --from-literal=password="$RPW" >/dev/null
e2e_db_pod cache redis docker.io/library/bop-redis:7.0 6379
t0=$(now)
ok "the Redis pod becomes Ready" k -n "$NS" wait --for=condition=Ready pod/cache --timeout=90s
diag "Redis pod Ready in $(since "$t0") s"
RIP=$(k -n "$NS" get pod cache -o jsonpath='{.status.podIP}')
rcli() { REDISCLI_AUTH=$RPW redis-cli --no-auth-warning -h "$RIP" "$@"; }
# 5,000 keys: strings, a hash and a list; their dump, one "key type value" line each, sorted
python3 - >"$T/load.resp" <<'PY'
import sys
def cmd(*a):
    out = "*%d\r\n" % len(a)
    for x in a:
        b = str(x).encode()
        out += "$%d\r\n%s\r\n" % (len(b), b.decode())
    sys.stdout.write(out)
for i in range(5000):
    cmd("SET", "key:%05d" % i, "value %d ü %s" % (i, "x" * (i % 50)))
cmd("HSET", "profile", "name", "Zoë", "city", "Wien")
cmd("RPUSH", "queue", "a", "b", "c")
PY
ok "data is loaded into Redis (redis-cli --pipe from the host)" sh -c \
	"REDISCLI_AUTH='$RPW' redis-cli --no-auth-warning -h '$RIP' --pipe <'$T/load.resp' | grep -q 'errors: 0, replies: 5002'"
# dump PORT HOST PASSWORD: every key of that Redis and its value, sorted
dump() {
	python3 - "$@" <<'PY'
import socket, sys
port, host, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection((host, port), timeout=10)
f = s.makefile("rb")
def call(*a):
    msg = b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x.encode()), x.encode()) for x in a)
    s.sendall(msg)
    return read()
def read():
    line = f.readline()[:-2]
    t, rest = line[:1], line[1:]
    if t in (b"+", b":"): return rest.decode()
    if t == b"-": raise SystemExit("redis: " + rest.decode())
    if t == b"$":
        n = int(rest)
        if n < 0: return None
        d = f.read(n + 2)[:-2]
        return d.decode()
    if t == b"*": return [read() for _ in range(int(rest))]
if pw: call("AUTH", pw)
for key in sorted(call("KEYS", "*")):
    kind = call("TYPE", key)
    val = {"string": lambda: call("GET", key), "hash": lambda: sorted(call("HGETALL", key)),
           "list": lambda: call("LRANGE", key, "0", "-1")}[kind]()
    print(key, kind, val)
PY
}
dump 6379 "$RIP" "$RPW" >"$T/dump.before"
ok "... 5002 keys" test "$(wc -l <"$T/dump.before")" -eq 5002

# ---- storage (a hostPath PersistentVolume), the schedule with the tools image ----
storage() { e2e_file_storage "$PV" "$SYS" "$PV" ReadWriteOnce tools | k apply -f -; }
ok "a hostPath PersistentVolume and its claim in $SYS, and a BackupStorage on it" storage
k -n "$NS" create secret generic cache-backup --from-literal=password="$RPW" >/dev/null
T_SCHED=$(now)
ok "a BackupSchedule of the shipped redis template, runner.tools the Redis image" k -n "$NS" apply -f - <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: cache}
spec:
  templateRef: {name: redis}
  vars: {host: "$RIP"}
  varsSecretRef: {name: cache-backup, keys: [password]}
  storage: {name: $PV}
  compression: {algorithm: zstd, level: 3}
  runner:
    tools: {image: docker.io/library/bop-redis:7.0, imagePullPolicy: Never}
EOF
SCHED=cache
e2e_runner_pod
ok "both containers run: the runner (backupop's image) and tools (the Redis image)" python3 -c "
import json
p = json.load(open('$T/rpod.json'))
c = {c['name']: c for c in p['spec']['containers']}
assert sorted(c) == ['runner', 'tools'], sorted(c)
assert c['runner']['image'] == 'backupop/runner:$version', c['runner']['image']
assert c['tools']['image'] == 'docker.io/library/bop-redis:7.0', c['tools']['image']
assert c['tools']['command'][0] == '/backupop-tools/backupop-exec-agent', c['tools']['command']
s = {s['name']: s for s in p['status']['containerStatuses']}
assert all(s[n]['ready'] and 'running' in s[n]['state'] for n in ('runner', 'tools')), s
i = p['status']['initContainerStatuses']
assert len(i) == 1 and i[0]['state']['terminated']['exitCode'] == 0, i"
ok "the runner image has no redis-cli (so the backup can only come from the tools container)" python3 - "$IMG/runner-$version.oci.tar" <<'PY'
import io, sys, tarfile
outer = tarfile.open(sys.argv[1])
names = []
for m in outer.getmembers():
    if not m.isfile() or "blobs/" not in m.name:
        continue
    data = outer.extractfile(m).read()
    try:
        if data[:4] == b"\x28\xb5\x2f\xfd":
            import subprocess
            data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
        layer = tarfile.open(fileobj=io.BytesIO(data))
        names += layer.getnames()
    except Exception:   # the config and manifest blobs are JSON, not layers
        continue
assert any(n.endswith("usr/sbin/backupop-runner") for n in names), "no runner in the layers"
assert not any(n.endswith("bin/redis-cli") for n in names), "the runner image has redis-cli"
PY

# ---- a backup through the tools container ----
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupRun
metadata: {name: b1}
spec: {scheduleRef: {name: cache}, action: backup}
EOF
phase() { k -n "$NS" get backuprun "$1" -o jsonpath='{.status.phase}' 2>/dev/null; }
done_() { case $(phase "$1") in Succeeded | Failed) return 0 ;; esac; return 1; }
t0=$(now)
wait_for 90 done_ b1
check "a BackupRun backup Succeeds (redis-cli --rdb - in the tools container)" \
	"$([ "$(phase b1)" = Succeeded ]; echo $?)"
[ "$(phase b1)" = Succeeded ] || { diag "error: $(k -n "$NS" get backuprun b1 -o jsonpath='{.status.error}')";
	k -n "$SYS" logs "$RPOD" -c runner 2>&1 | tail -20 | sed 's/^/# /'; }
BID=$(k -n "$NS" get backuprun b1 -o jsonpath='{.status.backupId}')
diag "backup $BID: $(k -n "$NS" get backuprun b1 -o jsonpath='{.status.bytesIn}') bytes in," \
	"$(k -n "$NS" get backuprun b1 -o jsonpath='{.status.bytesOut}') stored, $(since "$t0") s"

# ---- restored as the template says: backupop restore to dump.rdb, a Redis started on it ----
k -n "$SYS" get secret "$RN" -o jsonpath='{.data.config\.json}' | base64 -d | python3 -c "
import json, sys
d = json.load(sys.stdin)
assert d['storage']['url'].startswith('file:///'), d['storage']['url']
d['storage']['url'] = 'file://$T/store/' + d['storage']['url'].split('/storage/', 1)[1]
json.dump({'name': d['name'], 'storage': d['storage']}, sys.stdout)" >"$T/cli.json"
mkdir -p "$T/restored"
ok "backupop restore of it to dump.rdb (from the PersistentVolume's directory)" \
	"$BOP" restore --config "$T/cli.json" "$BID" -o "$T/restored/dump.rdb"
ok "... an RDB file that redis-check-rdb accepts" redis-check-rdb "$T/restored/dump.rdb"
PORT2=$(free_port)
redis-server --port "$PORT2" --bind 127.0.0.1 --dir "$T/restored" --dbfilename dump.rdb \
	--save "" --appendonly no --daemonize no --logfile "$T/redis2.log" &
redis_pid=$!
wait_for 20 redis-cli -p "$PORT2" ping
dump "$PORT2" 127.0.0.1 "" >"$T/dump.after"
ok "a Redis started on it holds every key and value of the original ($(wc -l <"$T/dump.after") keys)" \
	cmp "$T/dump.before" "$T/dump.after"
ok "the password is in no log of the controller or the runner" sh -c "
	! grep -qF -- '$RPW' '$T/controller.log' &&
	! '$KUBECTL' --kubeconfig '$K8S_DIR/kubeconfig' -n $SYS logs $RPOD -c runner | grep -qF -- '$RPW'"
diag "total test time $(since "$T_ALL") s"
done_testing
