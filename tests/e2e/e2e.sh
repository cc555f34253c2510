#!/bin/bash
# backupop in a real cluster, installed from the shipped manifests only: a real node
# (tests/env/node-local.sh) beside the API server of tests/run, the images built from the
# Debian packages (controller/images/build.sh), `kubectl apply -k` of an overlay of
# controller/deploy/ (its Kustomization) that sets the namespace, the controller's image
# and the runner image, as docs/install.md tells a user to, and then objects written like
# controller/deploy/examples:
#   - the controller runs as a pod with its ServiceAccount and the shipped RBAC (in-cluster
#     config: no kubeconfig), from the overlay's image, in the overlay's namespace, and
#     becomes ready and the leader;
#   - PostgreSQL 15 and MariaDB 10.11 run as pods (test images made the same way,
#     tests/env/db-image.sh) with data loaded; radosgw listens on the node's bridge, where
#     pods reach it;
#   - a BackupStorage and a BackupSchedule per database (engines postgres and mysql): each
#     runner's pod (the overlay's runner image) becomes Running and Ready, takes a
#     scheduled backup, a BackupRun backup, a verify, and a restore into a new database,
#     compared with the original row by row; the MariaDB schedule is then deleted;
#   - a changed password Secret restarts the runner pod with the new configuration;
#   - a runner pod deleted in the middle of a backup leaves no manifest and no data, and
#     the next backup succeeds;
#   - with no controller pod, the runner goes on taking scheduled backups, and a new
#     controller pod brings the schedule's status up to date;
#   - deleting the schedule removes the runner's pod and objects.
# Times and sizes are TAP comments: the node's start, the images' build (or their reuse),
# from `kubectl apply -k` to the first Succeeded backup of each database. Skipped, with the
# reason, where the node cannot run or the images cannot be built. It starts and stops the
# node and radosgw itself and runs alone (is_parallel: false).
. "$BOP_SOURCE_ROOT/tests/tap.sh"
. "$BOP_SOURCE_ROOT/tests/env/lib.sh"
ENV=$BOP_SOURCE_ROOT/tests/env
CACHE=${K8S_CACHE:-${BOP_CACHE_DIR:-/var/cache/backupop-testenv}/k8s-1.20.2}
KUBECTL=$CACHE/kubectl
AWS=/usr/bin/aws
[ -n "${BOP_TEST_K8S_DIR:-}" ] ||
	skip_all "no API server of tests/env/k8s-local.sh to join (BOP_TEST_K8S_DIR is not set; tests/run sets it)"
[ "$(id -u)" -eq 0 ] || skip_all "a node and the images need root"
for b in kubelet kube-scheduler kubectl; do
	[ -x "$CACHE/$b" ] || skip_all "$b is not built ($CACHE; tests/env/k8s-local.sh build makes it)"
done
for t in mmdebstrap umoci dpkg-buildpackage git psql mariadb radosgw ceph-mon; do
	command -v "$t" >/dev/null || skip_all "$t is not installed"
done
[ -x "$AWS" ] || skip_all "awscli is not installed ($AWS)"
git -C "$BOP_SOURCE_ROOT" rev-parse HEAD >/dev/null 2>&1 ||
	skip_all "the source is not a git checkout (the images are built from its committed tree)"

T=$(mktemp -d "${TMPDIR:-/tmp}/bop-e2e.XXXXXX") || exit 1
chmod 755 "$T"
TAP_LOG=$T/log
export K8S_DIR=$BOP_TEST_K8S_DIR
NS=bop-e2e-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
# the overlay's namespace for the controller and the runners, and its image names (the
# images are imported under these names only, so a pod runs only if the overlay set them)
SYS=$NS-system
STORE=e2e-$NS
version=$(sed -n "s/^  version: '\([^']*\)',/\1/p" "$BOP_SOURCE_ROOT/meson.build")
CIMG=localhost/bop-e2e/controller RIMG=localhost/bop-e2e/runner
k() { "$KUBECTL" --kubeconfig "$K8S_DIR/kubeconfig" "$@"; }
node() { bash "$ENV/node-local.sh" "$@"; }
node_started= rgw_started= lock_pid=
cleanup() {
	[ -z "$lock_pid" ] || kill "$lock_pid" 2>/dev/null
	if [ -n "$node_started" ]; then
		for o in $(k -n "$NS" get backupschedules,backupruns -o name 2>/dev/null); do
			k -n "$NS" patch "$o" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1
		done
		k delete namespace "$NS" "$SYS" --wait=false >/dev/null 2>&1
		k delete backupstorage "$STORE" --wait=false >/dev/null 2>&1
		# the overlay bound the controller's ClusterRole to its ServiceAccount in $SYS:
		# back to the shipped binding
		k apply -f "$BOP_SOURCE_ROOT/controller/deploy/02-rbac.yaml" >/dev/null 2>&1
		node stop >/dev/null 2>&1
	fi
	[ -z "$rgw_started" ] || RGW_DIR=$T/rgw bash "$ENV/s3-local.sh" stop >/dev/null 2>&1
	[ -n "${KEEP_T:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
# a test harness's timeout is a SIGTERM: the node must still be stopped
trap 'exit 143' TERM INT
now() { date +%s%3N; }
since() { local d=$(($(now) - $1)); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }
# wait_for SECONDS CMD...: retries CMD every 0.5 s until it succeeds.
wait_for() {
	local n=$(($1 * 2)); shift
	for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
	return 1
}
T_ALL=$(now)

# ---- the images: backupop's (reused when this build directory has them from the same
# committed tree, tests/ aside: images_key; tests/images leaves them there too) and the
# databases' (cached by tests/env/db-image.sh) ----
IMG=$BOP_BUILD_ROOT/images
head=$(images_key "$BOP_SOURCE_ROOT")
if [ "$(cat "$IMG/tree" 2>/dev/null)" = "$head" ] && [ -s "$IMG/runner-$version.oci.tar" ] &&
	[ -s "$IMG/controller-$version.oci.tar" ]; then
	diag "images of this tree ($head) reused from $IMG"
else
	t0=$(now)
	rm -f "$IMG/tree"
	SOURCE_DATE_EPOCH=$(git -C "$BOP_SOURCE_ROOT" log -1 --format=%ct) \
		"$BOP_SOURCE_ROOT/controller/images/build.sh" -o "$IMG" >"$T/build.log" 2>&1 ||
		{ tail -5 "$T/build.log" | sed 's/^/# /'; skip_all "the images cannot be built (controller/images/build.sh failed)"; }
	echo "$head" >"$IMG/tree"
	diag "packages and images built in $(since "$t0") s"
fi
t0=$(now)
bash "$ENV/db-image.sh" postgres "$T/postgres.tar" >"$T/db-image.log" 2>&1 ||
	{ tail -5 "$T/db-image.log" | sed 's/^/# /'; skip_all "the PostgreSQL image cannot be built (tests/env/db-image.sh failed)"; }
diag "PostgreSQL image ready in $(since "$t0") s"
t0=$(now)
bash "$ENV/db-image.sh" mariadb "$T/mariadb.tar" >"$T/db-image.log" 2>&1 ||
	{ tail -5 "$T/db-image.log" | sed 's/^/# /'; skip_all "the MariaDB image cannot be built (tests/env/db-image.sh failed)"; }
diag "MariaDB image ready in $(since "$t0") s"

# ---- the node, the images in it, radosgw on its bridge ----
# A controller Deployment left by the tests without a node (tests/controller/ apply the
# same manifests) would start before its image is there, and back off: it goes first.
k -n backupop-system delete deployment backupop-controller --ignore-not-found >/dev/null 2>&1
t0=$(now)
rc=0
node start >"$T/node.env" 2>"$T/node.err" || rc=$?
[ $rc -eq 77 ] && skip_all "$(grep -m1 'cannot run a node here' "$T/node.err")"
node_started=1
check "a node starts" $rc
[ $rc -eq 0 ] || { sed 's/^/# /' "$T/node.err" | tail -20; done_testing; }
eval "$(grep '^export' "$T/node.env")"
diag "node Ready in $(since "$t0") s"
[ -n "${BOP_TEST_NODE_INCLUSTER:-}" ] ||
	{ diag "pods cannot reach the API server's Service here (no iptables?): nothing more to test"; done_testing; }
t0=$(now)
ok "the runner and controller images and the PostgreSQL and MariaDB images are imported" sh -c "
	bash '$ENV/node-local.sh' import '$IMG/runner-$version.oci.tar' $RIMG &&
	bash '$ENV/node-local.sh' import '$IMG/controller-$version.oci.tar' $CIMG &&
	bash '$ENV/node-local.sh' import '$T/postgres.tar' bop-postgres &&
	bash '$ENV/node-local.sh' import '$T/mariadb.tar' bop-mariadb"
diag "images imported in $(since "$t0") s"
t0=$(now)
rgw_started=1
RGW_DIR=$T/rgw RGW_BIND=$BOP_TEST_NODE_GATEWAY RGW_PORT=7490 MON_PORT=3390 OSD_STORE=memstore \
	S3_BUCKET=e2e bash "$ENV/s3-local.sh" start >"$T/rgw.log" 2>&1
check "radosgw starts on the node's bridge ($BOP_TEST_NODE_GATEWAY)" $?
set -a; . "$T/rgw/env"; set +a
diag "radosgw up in $(since "$t0") s at $BOP_TEST_S3_ENDPOINT"
s3() { "$AWS" --endpoint-url "$BOP_TEST_S3_ENDPOINT" "$@"; }
# the backup ids that have a manifest, one a line
manifests() {
	s3 s3api list-objects-v2 --bucket "$BOP_TEST_S3_BUCKET" --prefix "$STORE/" \
		--query 'Contents[].Key' --output text 2>/dev/null | tr '\t' '\n' |
		sed -n 's|.*/\([^/]*\)/manifest\.json$|\1|p' | sort
}

# ---- 1. the controller, from the shipped manifests through an overlay (docs/install.md) ----
# kubectl 1.20's kustomize (2.0.3) takes a folder as "bases" (later ones as "resources"
# too), and leaves the Namespace object of the base as it is: the namespace is made first
mkdir "$T/overlay"
cat >"$T/overlay/kustomization.yaml" <<EOF
bases: [$(realpath --relative-to="$T/overlay" "$BOP_SOURCE_ROOT/controller/deploy")]
namespace: $SYS
images:
- {name: backupop/controller, newName: $CIMG, newTag: "$version"}
configMapGenerator:
- name: backupop-controller
  behavior: merge
  literals: [runnerImage=$RIMG:$version]
EOF
k create namespace "$SYS" >/dev/null
T_APPLY=$(now)
ok "kubectl apply -k of an overlay of controller/deploy/ (namespace, images, runner image)" \
	k apply -k "$T/overlay"
ok "the controller Deployment rolls out" k -n "$SYS" rollout status deployment/backupop-controller --timeout=120s
diag "controller Ready $(since "$T_APPLY") s after kubectl apply"
CPOD=$(k -n "$SYS" get pods -l app.kubernetes.io/name=backupop-controller -o jsonpath='{.items[0].metadata.name}')
k -n "$SYS" get pod "$CPOD" -o json >"$T/cpod.json"
ok "the controller pod runs as the backupop-controller ServiceAccount, with no kubeconfig" python3 -c "
import json, sys
p = json.load(open('$T/cpod.json'))
assert p['spec']['serviceAccountName'] == 'backupop-controller', p['spec']
c = p['spec']['containers'][0]
assert not any('kubeconfig' in a for a in c.get('args', []) + c.get('command', [])), c
assert not any(e['name'] == 'KUBECONFIG' for e in c.get('env', [])), c
assert c['securityContext']['readOnlyRootFilesystem'] is True
assert c['image'] == '$CIMG:$version', c['image']
assert p['metadata']['namespace'] == '$SYS'
assert p['status']['phase'] == 'Running', p['status']"
leader() { k -n "$SYS" logs "$CPOD" | grep -q 'became the leader'; }
ok "it became the leader (its log)" wait_for 30 leader

# ---- 2. PostgreSQL as a pod, with data ----
PGPW=pg-admin-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
BPW=bop-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
k create namespace "$NS" >/dev/null
k -n "$NS" create secret generic orders-db-admin --from-literal=password="$PGPW" >/dev/null
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: orders-db, labels: {app: orders-db}}
spec:
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532}
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: postgres
    image: docker.io/library/bop-postgres:15
    imagePullPolicy: Never
    env: [{name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: orders-db-admin, key: password}}}]
    ports: [{containerPort: 5432, protocol: TCP}]
    readinessProbe: {tcpSocket: {port: 5432}, periodSeconds: 1}
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
                      capabilities: {drop: [ALL]}}
    volumeMounts: [{name: data, mountPath: /var/lib/db}]
EOF
# MariaDB's pod starts meanwhile (its first start makes the system tables: some seconds)
MYPW=my-admin-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
MBPW=bop-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
k -n "$NS" create secret generic shop-db-admin --from-literal=password="$MYPW" >/dev/null
T_MY=$(now)
k -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: shop-db, labels: {app: shop-db}}
spec:
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532}
  volumes: [{name: data, emptyDir: {}}]
  containers:
  - name: mariadb
    image: docker.io/library/bop-mariadb:10.11
    imagePullPolicy: Never
    env: [{name: DB_PASSWORD, valueFrom: {secretKeyRef: {name: shop-db-admin, key: password}}}]
    ports: [{containerPort: 3306, protocol: TCP}]
    readinessProbe: {tcpSocket: {port: 3306}, periodSeconds: 1}
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
                      capabilities: {drop: [ALL]}}
    volumeMounts: [{name: data, mountPath: /var/lib/db}]
EOF
t0=$(now)
ok "the PostgreSQL pod becomes Ready" k -n "$NS" wait --for=condition=Ready pod/orders-db --timeout=90s
diag "PostgreSQL pod Ready in $(since "$t0") s"
PGIP=$(k -n "$NS" get pod orders-db -o jsonpath='{.status.podIP}')
psql_as() { # USER PASSWORD DB ARGS...
	local u=$1 p=$2 d=$3; shift 3
	PGPASSWORD=$p PGCONNECT_TIMEOUT=5 psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$PGIP" -U "$u" -d "$d" "$@"
}
pg_su() { psql_as postgres "$PGPW" "$@"; }
ok "the database, its owner and a second database to restore into are made" pg_su postgres \
	-c "CREATE ROLE bop LOGIN PASSWORD '$BPW'" -c "CREATE DATABASE app OWNER bop" \
	-c "CREATE DATABASE app_restored OWNER bop"
t0=$(now)
ok "data is loaded" psql_as bop "$BPW" app <<'SQL'
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, since date);
CREATE TABLE orders (id bigint PRIMARY KEY, customer int REFERENCES customers, total numeric(12,2),
  placed timestamptz, note jsonb, blob bytea);
INSERT INTO customers SELECT g, 'customer ' || g || ' ü', date '2020-01-01' + g FROM generate_series(1, 2000) g;
INSERT INTO orders SELECT g, 1 + g % 2000, g * 1.25, timestamptz '2026-01-01 00:00+00' + g * interval '1 min',
  jsonb_build_object('n', g, 'tag', md5(g::text)), decode(md5(g::text) || md5((g * 7)::text), 'hex')
  FROM generate_series(1, 200000) g;
SQL
diag "200,000 + 2,000 rows loaded in $(since "$t0") s"
rows() { # DB: every row of both tables, in order
	psql_as bop "$BPW" "$1" -c 'COPY (SELECT * FROM customers ORDER BY id) TO STDOUT' \
		-c 'COPY (SELECT * FROM orders ORDER BY id) TO STDOUT'
}
rows app >"$T/rows.app"

ok "the MariaDB pod becomes Ready" k -n "$NS" wait --for=condition=Ready pod/shop-db --timeout=90s
k -n "$NS" get pod shop-db -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True ||
	k -n "$NS" logs shop-db 2>&1 | tail -20 | sed 's/^/# /'
diag "MariaDB pod Ready $(since "$T_MY") s after it was made"
MYIP=$(k -n "$NS" get pod shop-db -o jsonpath='{.status.podIP}')
my_as() { # USER PASSWORD DB ARGS... (the password in the environment, not on the command line)
	local u=$1 p=$2 d=$3; shift 3
	MYSQL_PWD=$p mariadb --connect-timeout=5 -N -B -h "$MYIP" -u "$u" "$d" "$@"
}
ok "the MariaDB database, its owner and a second database to restore into are made" \
	my_as root "$MYPW" mysql -e "CREATE USER bop@'%' IDENTIFIED BY '$MBPW';
		CREATE DATABASE shop; CREATE DATABASE shop_restored;
		GRANT ALL ON shop.* TO bop@'%'; GRANT ALL ON shop_restored.* TO bop@'%'"
t0=$(now)
ok "data is loaded into MariaDB" my_as bop "$MBPW" shop <<'SQL'
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, since DATE) CHARACTER SET utf8mb4;
CREATE TABLE orders (id BIGINT PRIMARY KEY, customer INT NOT NULL REFERENCES customers (id),
  total DECIMAL(12,2), placed DATETIME(3), note JSON, data VARBINARY(32));
CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, kind ENUM('new', 'paid', 'sent'), body TEXT);
INSERT INTO customers SELECT seq, CONCAT('customer ', seq, ' ü'), DATE '2020-01-01' + INTERVAL seq DAY
  FROM seq_1_to_2000;
INSERT INTO orders SELECT seq, 1 + seq % 2000, seq * 1.25, TIMESTAMP '2026-01-01 00:00:00' + INTERVAL seq MINUTE,
  JSON_OBJECT('n', seq, 'tag', MD5(seq)), UNHEX(CONCAT(MD5(seq), MD5(seq * 7))) FROM seq_1_to_50000;
INSERT INTO events (kind, body) SELECT ELT(1 + seq % 3, 'new', 'paid', 'sent'),
  IF(seq % 5 = 0, NULL, REPEAT(CONCAT('line ', seq, '\t\\ "quoted"\n'), 3)) FROM seq_1_to_10000;
SQL
diag "50,000 + 2,000 + 10,000 rows loaded into MariaDB in $(since "$t0") s"
my_rows() { # DB: every row of the three tables, in order
	for t in customers orders events; do my_as bop "$MBPW" "$1" -e "SELECT * FROM $t ORDER BY id"; done
}
my_rows shop >"$T/myrows.shop"

# ---- 3. storage, schedule, the runner; scheduled backup, backup, verify, restore ----
k -n "$SYS" create secret generic "s3-$NS" --from-literal=accessKeyId="$AWS_ACCESS_KEY_ID" \
	--from-literal=secretAccessKey="$AWS_SECRET_ACCESS_KEY" >/dev/null
k -n "$NS" create secret generic orders-db-backup --from-literal=password="$BPW" >/dev/null
"$BOP_BUILD_ROOT/runner/cli/backupop" keygen -o "$T/key" >/dev/null 2>&1
RECIPIENT=$(grep -o 'age1[0-9a-z]*' "$T/key" | head -1)
k -n "$NS" create secret generic backup-keys --from-literal=recipients="$RECIPIENT" \
	--from-file=identity="$T/key" >/dev/null
ok "a BackupStorage of radosgw (as in examples/10-storage.yaml)" k apply -f - <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupStorage
metadata: {name: $STORE}
spec:
  s3: {endpoint: "$BOP_TEST_S3_ENDPOINT", bucket: $BOP_TEST_S3_BUCKET, region: us-east-1,
       prefix: $STORE, forcePathStyle: true}
  credentialsSecretRef: {namespace: $SYS, name: s3-$NS}
  allowedNamespaces: {from: Names, names: [$NS]}
EOF
T_SCHED=$(now)
ok "a BackupSchedule (as in examples/20-schedule.yaml), every 20 s" k -n "$NS" apply -f - <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: orders-db}
spec:
  schedule: "*/20 * * * * *"
  engine:
    postgres: {host: "$PGIP", database: app, user: bop,
               passwordSecretRef: {name: orders-db-backup, key: password},
               restore: {database: app_restored}}
  storage: {name: $STORE}
  compression: {algorithm: zstd, level: 3}
  encryption: {recipientsSecretRef: {name: backup-keys, key: recipients},
               identitySecretRef: {name: backup-keys, key: identity}}
  retention: {keepLast: 3}
  concurrencyPolicy: Forbid
  historyLimits: {successful: 20, failed: 5}
  runner: {affinity: {podSelector: {app: orders-db}}}
EOF
# MariaDB's, in the same storage: its runner starts and backs up while PostgreSQL's is tested
k -n "$NS" create secret generic shop-db-backup --from-literal=password="$MBPW" >/dev/null
ok "a BackupSchedule of MariaDB (engine mysql), every 20 s" k -n "$NS" apply -f - <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: shop-db}
spec:
  schedule: "*/20 * * * * *"
  engine:
    mysql: {host: "$MYIP", port: 3306, database: shop, user: bop,
            passwordSecretRef: {name: shop-db-backup, key: password},
            restore: {database: shop_restored}}
  storage: {name: $STORE}
  compression: {algorithm: zstd, level: 3}
  encryption: {recipientsSecretRef: {name: backup-keys, key: recipients},
               identitySecretRef: {name: backup-keys, key: identity}}
  retention: {keepLast: 3}
  concurrencyPolicy: Forbid
  runner: {affinity: {podSelector: {app: shop-db}}}
EOF
SCHED=orders-db
sched_ready() {
	k -n "$NS" get backupschedule "$SCHED" \
		-o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}
ok "the schedule becomes Ready" wait_for 30 sched_ready
RN=$(k -n "$NS" get backupschedule orders-db -o jsonpath='{.status.runnerName}')
RPOD=$RN-0
ok "the runner's pod $SYS/$RPOD appears" wait_for 30 k -n "$SYS" get pod "$RPOD"
ok "it becomes Running and Ready" k -n "$SYS" wait --for=condition=Ready "pod/$RPOD" --timeout=120s
diag "runner pod Ready $(since "$T_SCHED") s after the schedule was applied"
k -n "$SYS" get pod "$RPOD" -o json >"$T/rpod.json"
ok "it runs as 65532 with a read-only root and no API token" python3 -c "
import json
p = json.load(open('$T/rpod.json'))
s = p['spec']
assert s['securityContext']['runAsUser'] == 65532
assert s['automountServiceAccountToken'] is False
assert s['containers'][0]['securityContext']['readOnlyRootFilesystem'] is True
assert s['containers'][0]['image'] == '$RIMG:$version', s['containers'][0]['image']"
RUID=$(python3 -c "import json; print(json.load(open('$T/rpod.json'))['metadata']['uid'])")

phase() { k -n "$NS" get backuprun "$1" -o jsonpath='{.status.phase}' 2>/dev/null; }
# wait_done RUN SECONDS: until the run has Succeeded or Failed; prints the phase
wait_done() {
	local p=
	for _ in $(seq $(($2 * 2))); do
		p=$(phase "$1")
		case $p in Succeeded | Failed) break ;; esac
		sleep 0.5
	done
	echo "$p"
}
# new_run ACTION [BACKUP]: a BackupRun of the schedule $SCHED as in examples/runs/; prints
# its name
new_run() {
	k -n "$NS" create -o jsonpath='{.metadata.name}' -f - <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupRun
metadata: {generateName: $SCHED-$1-}
spec: {scheduleRef: {name: $SCHED}, action: $1${2:+, backup: $2}}
EOF
}
field() { k -n "$NS" get backuprun "$1" -o jsonpath="{.status.$2}"; }
run_diag() { # RUN WHAT
	local s e
	s=$(field "$1" startTime) e=$(field "$1" completionTime)
	diag "$2: $(field "$1" bytesIn) bytes in, $(field "$1" bytesOut) stored," \
		"$(($(date -d "$e" +%s) - $(date -d "$s" +%s))) s (runner's times, 1 s resolution)"
}
# the scheduled runs of $SCHED the controller mirrored as BackupRuns that Succeeded
scheduled_ok() {
	k -n "$NS" get backupruns -l "backupop.io/schedule-name=$SCHED" -o json | python3 -c "
import json, sys
for r in json.load(sys.stdin)['items']:
    if 'backupop.io/run-id' in r['metadata'].get('annotations', {}) and \
       r.get('status', {}).get('phase') == 'Succeeded':
        print(r['metadata']['name'], r['status'].get('backupId', ''))"
}
have_scheduled() { [ -n "$(scheduled_ok)" ]; }
ok "a scheduled backup appears as a Succeeded BackupRun" wait_for 90 have_scheduled
first=$(scheduled_ok | head -1)
diag "first Succeeded scheduled PostgreSQL backup seen $(since "$T_APPLY") s after kubectl apply -k, $(since "$T_SCHED") s after its schedule was applied"
[ -z "$first" ] || run_diag "${first%% *}" "scheduled backup ${first#* }"
check "its manifest is in the bucket" "$([ -n "$first" ] && manifests | grep -qx "${first#* }"; echo $?)"
last_ok() { k -n "$NS" get backupschedule "$SCHED" -o jsonpath='{.status.lastSuccessfulBackup}'; }
has_last() { [ -n "$(last_ok)" ]; }
ok "the schedule's status shows the last success" wait_for 20 has_last

B=$(new_run backup)
check "a BackupRun backup Succeeds" "$([ "$(wait_done "$B" 90)" = Succeeded ]; echo $?)"
BID=$(field "$B" backupId)
run_diag "$B" "BackupRun backup $BID"
check "its manifest is in the bucket" "$(manifests | grep -qx "$BID"; echo $?)"
V=$(new_run verify "$BID")
check "a BackupRun verify of it Succeeds" "$([ "$(wait_done "$V" 90)" = Succeeded ]; echo $?)"
run_diag "$V" "verify"
R=$(new_run restore "$BID")
check "a BackupRun restore of it into the database app_restored Succeeds" \
	"$([ "$(wait_done "$R" 120)" = Succeeded ]; echo $?)"
run_diag "$R" "restore"
[ "$(phase "$R")" = Succeeded ] || diag "restore: $(field "$R" error)"
rows app_restored >"$T/rows.restored"
check "app_restored has every row of app, the same ($(wc -l <"$T/rows.app") rows)" \
	"$([ -s "$T/rows.app" ] && cmp -s "$T/rows.app" "$T/rows.restored"; echo $?)"

# ---- 3b. MariaDB: its runner, a scheduled backup, backup, verify, restore ----
SCHED=shop-db
ok "the MariaDB schedule is Ready" wait_for 30 sched_ready
MRPOD=$(k -n "$NS" get backupschedule shop-db -o jsonpath='{.status.runnerName}')-0
ok "its runner's pod $SYS/$MRPOD appears" wait_for 30 k -n "$SYS" get pod "$MRPOD"
ok "it is Running and Ready" k -n "$SYS" wait --for=condition=Ready "pod/$MRPOD" --timeout=120s
# (server times, 1 s resolution: these things happened while PostgreSQL's were tested)
epoch() { date -d "$1" +%s; }
MYSCHED_T=$(epoch "$(k -n "$NS" get backupschedule shop-db -o jsonpath='{.metadata.creationTimestamp}')")
diag "MariaDB runner started $(($(epoch "$(k -n "$SYS" get pod "$MRPOD" \
	-o jsonpath='{.status.containerStatuses[0].state.running.startedAt}')") - MYSCHED_T)) s after its schedule was applied"
ok "a scheduled MariaDB backup appears as a Succeeded BackupRun" wait_for 90 have_scheduled
first=$(scheduled_ok | head -1)
if [ -n "$first" ]; then
	done_t=$(epoch "$(field "${first%% *}" completionTime)")
	diag "first Succeeded scheduled MariaDB backup $((done_t - MYSCHED_T)) s after its schedule was applied," \
		"$((done_t - T_APPLY / 1000)) s after kubectl apply -k"
	run_diag "${first%% *}" "scheduled MariaDB backup ${first#* }"
fi
check "its manifest is in the bucket" "$([ -n "$first" ] && manifests | grep -qx "${first#* }"; echo $?)"
B=$(new_run backup)
check "a BackupRun backup of MariaDB Succeeds" "$([ "$(wait_done "$B" 90)" = Succeeded ]; echo $?)"
BID=$(field "$B" backupId)
run_diag "$B" "BackupRun backup $BID"
[ "$(phase "$B")" = Succeeded ] || diag "backup: $(field "$B" error)"
check "its manifest is in the bucket" "$(manifests | grep -qx "$BID"; echo $?)"
V=$(new_run verify "$BID")
check "a BackupRun verify of it Succeeds" "$([ "$(wait_done "$V" 90)" = Succeeded ]; echo $?)"
run_diag "$V" "verify"
R=$(new_run restore "$BID")
check "a BackupRun restore of it into the database shop_restored Succeeds" \
	"$([ "$(wait_done "$R" 120)" = Succeeded ]; echo $?)"
run_diag "$R" "restore"
[ "$(phase "$R")" = Succeeded ] || diag "restore: $(field "$R" error)"
my_rows shop_restored >"$T/myrows.restored"
check "shop_restored has every row of shop, the same ($(wc -l <"$T/myrows.shop") rows)" \
	"$([ -s "$T/myrows.shop" ] && cmp -s "$T/myrows.shop" "$T/myrows.restored"; echo $?)"
# done with it: its runner goes (section 7 checks what a deleted schedule leaves)
k -n "$NS" delete backupschedule shop-db --wait=false >/dev/null
SCHED=orders-db

# ---- 4. a changed Secret restarts the runner with the new configuration ----
BPW2=bop2-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')
HASH1=$(k -n "$SYS" get statefulset "$RN" -o jsonpath='{.spec.template.metadata.annotations.backupop\.io/config-hash}')
pg_su postgres -c "ALTER ROLE bop PASSWORD '$BPW2'" >/dev/null
BPW=$BPW2
t0=$(now)
k -n "$NS" create secret generic orders-db-backup --from-literal=password="$BPW2" \
	--dry-run=client -o yaml | k apply -f - >/dev/null
new_pod() {
	local u
	u=$(k -n "$SYS" get pod "$RPOD" -o jsonpath='{.metadata.uid}' 2>/dev/null)
	[ -n "$u" ] && [ "$u" != "$RUID" ] &&
		k -n "$SYS" get pod "$RPOD" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}
ok "a new password in the Secret: a new runner pod becomes Ready" wait_for 120 new_pod
diag "runner pod replaced and Ready $(since "$t0") s after the Secret changed"
HASH2=$(k -n "$SYS" get statefulset "$RN" -o jsonpath='{.spec.template.metadata.annotations.backupop\.io/config-hash}')
check "its pod template's config hash changed" "$([ -n "$HASH2" ] && [ "$HASH1" != "$HASH2" ]; echo $?)"
RUID=$(k -n "$SYS" get pod "$RPOD" -o jsonpath='{.metadata.uid}')
B=$(new_run backup)
check "a backup with the new password Succeeds" "$([ "$(wait_done "$B" 90)" = Succeeded ]; echo $?)"

# ---- 5. the runner pod deleted in the middle of a backup ----
# A transaction holds an exclusive lock on a table: pg_dump waits for it, so the backups
# that start meanwhile (the BackupRun's, or a scheduled one before it) are under way, their
# pg_dump running, when the pod is deleted. Backup ids begin with their start time (UTC).
idtime() { date -u +%Y%m%dT%H%M%SZ; }
T_LOCK=$(idtime)
PGPASSWORD=$BPW PGAPPNAME=bop-e2e-lock psql -X -q -h "$PGIP" -U bop -d app \
	-c 'BEGIN' -c 'LOCK TABLE orders IN ACCESS EXCLUSIVE MODE' -c 'SELECT pg_sleep(600)' \
	>/dev/null 2>&1 &
lock_pid=$!
locked() {
	pg_su app -c "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
		WHERE c.relname = 'orders' AND l.mode = 'AccessExclusiveLock' AND l.granted" | grep -qx 1
}
ok "a transaction locks the orders table" wait_for 10 locked
B=$(new_run backup)
sent() { [ -n "$(field "$B" runId)" ]; }
ok "a BackupRun backup reaches the runner (it has a run id)" wait_for 30 sent
dump_waits() {
	pg_su app -c "SELECT 1 FROM pg_stat_activity WHERE application_name = 'pg_dump'
		AND wait_event_type = 'Lock'" | grep -qx 1
}
ok "a backup is under way: its pg_dump waits for the lock" wait_for 30 dump_waits
T_DEL=$(idtime)
t0=$(now)
k -n "$SYS" delete pod "$RPOD" --wait=false >/dev/null
old_gone() { [ "$(k -n "$SYS" get pod "$RPOD" -o jsonpath='{.metadata.uid}' 2>/dev/null)" != "$RUID" ]; }
wait_for 120 old_gone
diag "runner pod deleted mid-backup: gone after $(since "$t0") s (terminationGracePeriodSeconds 60)"
ok "the runner pod is replaced" wait_for 120 new_pod
diag "the new one Ready $(since "$t0") s after the delete"
# (the server ends the transaction: a killed psql leaves its backend sleeping)
pg_su postgres -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE application_name = 'bop-e2e-lock'" >/dev/null
wait "$lock_pid" 2>/dev/null
lock_pid=
check "the interrupted BackupRun ends Failed" "$([ "$(wait_done "$B" 60)" = Failed ]; echo $?)"
diag "its error: $(field "$B" error)"
RUID=$(k -n "$SYS" get pod "$RPOD" -o jsonpath='{.metadata.uid}')
# the keys and open uploads of backups that started between the lock and the delete
interrupted() {
	{ s3 s3api list-objects-v2 --bucket "$BOP_TEST_S3_BUCKET" --prefix "$STORE/$NS/orders-db/" \
		--query 'Contents[].Key' --output text
	  s3 s3api list-multipart-uploads --bucket "$BOP_TEST_S3_BUCKET" --prefix "$STORE/$NS/orders-db/" \
		--query 'Uploads[].Key' --output text; } 2>/dev/null | tr '\t' '\n' |
		while read -r key; do
			id=$(echo "$key" | grep -o '/[0-9]\{8\}T[0-9]\{6\}Z-[a-z0-9]*/' | head -1 | tr -d /)
			[ -n "$id" ] && ! [ "${id%%-*}" \< "$T_LOCK" ] && ! [ "${id%%-*}" \> "$T_DEL" ] &&
				echo "$key"
		done
}
interrupted >"$T/interrupted"
check "nothing is stored of the interrupted backups: no manifest, no data, no open upload" \
	"$([ ! -s "$T/interrupted" ]; echo $?)"
sed 's/^/# left: /' "$T/interrupted"
B=$(new_run backup)
check "the next backup Succeeds" "$([ "$(wait_done "$B" 90)" = Succeeded ]; echo $?)"

# ---- 6. no controller: the runner goes on; a new controller catches up ----
ok "the controller's pod is deleted (Deployment scaled to 0)" \
	k -n "$SYS" scale deployment/backupop-controller --replicas=0
no_controller() { [ -z "$(k -n "$SYS" get pods -l app.kubernetes.io/name=backupop-controller -o name)" ]; }
ok "it is gone" wait_for 60 no_controller
t0=$(now)
seen=$(manifests)
newer() { [ -n "$(comm -13 <(echo "$seen") <(manifests))" ]; }
ok "with no controller, the runner takes a scheduled backup (a new manifest)" wait_for 60 newer
ADOWN=$(comm -13 <(echo "$seen") <(manifests) | tail -1)
diag "scheduled backup $ADOWN stored $(since "$t0") s after the controller went"
k -n "$SYS" scale deployment/backupop-controller --replicas=1 >/dev/null
ok "a new controller pod is Ready" \
	k -n "$SYS" rollout status deployment/backupop-controller --timeout=120s
caught_up() { [ "$(last_ok)" \> "$ADOWN" ] || [ "$(last_ok)" = "$ADOWN" ]; }
ok "it brings the schedule's lastSuccessfulBackup up to $ADOWN or later" wait_for 60 caught_up
mirrored() { k -n "$NS" get backupruns -o jsonpath='{.items[*].status.backupId}' | grep -qw "$ADOWN"; }
ok "and mirrors that scheduled run as a BackupRun" wait_for 30 mirrored

# ---- 7. deleting the schedule removes the runner ----
t0=$(now)
ok "the schedule is deleted" k -n "$NS" delete backupschedule orders-db --timeout=60s
gone() {
	[ -z "$(k -n "$SYS" get statefulset,service,secret -l "backupop.io/schedule-namespace=$NS" -o name)" ] &&
		! k -n "$SYS" get pod "$RPOD" >/dev/null 2>&1
}
ok "its runner's pod, StatefulSet, Service and Secret are gone" wait_for 90 gone
diag "runner removed $(since "$t0") s after the delete"

diag "total test time $(since "$T_ALL") s"
done_testing
