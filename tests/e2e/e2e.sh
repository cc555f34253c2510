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
#   - encryption.generateIdentity: PostgreSQL's age identity is made by the controller into
#     a Secret (the restore proves the runner pod decrypts with it; it outlives the
#     schedule, never rewritten); MariaDB's names such a Secret made beforehand, which is
#     used as it is;
#   - a schedule of the shipped ClusterBackupTemplate postgresql (templateRef, vars,
#     varsSecretRef) without schedule: is Ready OnDemandOnly and takes a BackupRun backup;
#   - metrics, from the node's host: the runner pod's port "metrics" answers /metrics
#     without a token (its API port keeps it), as the shipped PodMonitor and ServiceMonitor
#     select them; the controller pod's per-schedule gauges have plausible values; with
#     Debian's prometheus installed, a Prometheus scraping the pods has every series the
#     shipped rules and dashboard use, and the rules evaluate without error;
#   - a changed password Secret restarts the runner pod with the new configuration;
#   - a runner pod deleted in the middle of a backup leaves no manifest and no data, and
#     the next backup succeeds;
#   - with no controller pod, the runner goes on taking scheduled backups, and a new
#     controller pod brings the schedule's status up to date;
#   - deleting the schedule removes the runner's pod and objects.
# Times and sizes are TAP comments: the node's start, the images' build (or their reuse),
# from `kubectl apply -k` to the first Succeeded backup of each database. Skipped, with the
# reason, where the node cannot run or the images cannot be built. It starts and stops the
# node and radosgw itself and runs alone (is_parallel: false). With BOP_E2E_NODE_LOCK=FILE
# it takes an flock on FILE once the images are ready, before the node starts (checkouts
# that take turns on one machine's node: the image build does not hold the node).
. "$BOP_SOURCE_ROOT/tests/tap.sh"
. "$BOP_SOURCE_ROOT/tests/env/lib.sh"
. "$BOP_SOURCE_ROOT/tests/e2e/lib.sh"
AWS=/usr/bin/aws
e2e_require psql mariadb radosgw ceph-mon
[ -x "$AWS" ] || skip_all "awscli is not installed ($AWS)"

e2e_setup e2e
# the overlay's namespace for the controller and the runners, and its image names (the
# images are imported under these names only, so a pod runs only if the overlay set them)
SYS=$NS-system
STORE=e2e-$NS
CIMG=localhost/bop-e2e/controller RIMG=localhost/bop-e2e/runner
rgw_started= lock_pid= prom_pid=
own_objects() {
	k delete namespace "$SYS" --wait=false >/dev/null 2>&1
	k delete backupstorage "$STORE" --wait=false >/dev/null 2>&1
	# the overlay bound the controller's ClusterRole to its ServiceAccount in $SYS:
	# back to the shipped binding
	k apply -f "$BOP_SOURCE_ROOT/controller/deploy/02-rbac.yaml" >/dev/null 2>&1
}
cleanup() {
	[ -z "$lock_pid" ] || kill "$lock_pid" 2>/dev/null
	[ -z "$prom_pid" ] || kill "$prom_pid" 2>/dev/null
	[ -z "$rgw_started" ] || RGW_DIR=$T/rgw bash "$ENV/s3-local.sh" stop >/dev/null 2>&1
	e2e_cleanup own_objects
}
T_ALL=$(now)

# ---- the images: backupop's (reused when this build directory has them from the same
# committed tree, tests/ aside: images_key; tests/images leaves them there too) and the
# databases' (cached by tests/env/db-image.sh) ----
e2e_images
e2e_db_image postgres PostgreSQL
e2e_db_image mariadb MariaDB

# ---- the node, the images in it, radosgw on its bridge ----
if [ -n "${BOP_E2E_NODE_LOCK:-}" ]; then
	t0=$(now)
	exec 9>>"$BOP_E2E_NODE_LOCK" && flock 9 || skip_all "cannot lock $BOP_E2E_NODE_LOCK"
	diag "$BOP_E2E_NODE_LOCK locked after $(since "$t0") s"
fi
e2e_node_start
[ -n "${BOP_TEST_NODE_INCLUSTER:-}" ] ||
	{ diag "pods cannot reach the API server's Service here (no iptables?): nothing more to test"; done_testing; }
t0=$(now)
ok "the runner and controller images and the PostgreSQL and MariaDB images are imported" \
	e2e_import "$IMG/runner-$version.oci.tar" $RIMG "$IMG/controller-$version.oci.tar" $CIMG \
	"$T/postgres.tar" bop-postgres "$T/mariadb.tar" bop-mariadb
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
PGPW=pg-admin-$(rand_hex 6)
BPW=bop-$(rand_hex 6)
k create namespace "$NS" >/dev/null
k -n "$NS" create secret generic orders-db-admin --from-literal=password="$PGPW" >/dev/null
e2e_db_pod orders-db postgres docker.io/library/bop-postgres:15 5432
# MariaDB's pod starts meanwhile (its first start makes the system tables: some seconds)
MYPW=my-admin-$(rand_hex 6)
MBPW=bop-$(rand_hex 6)
k -n "$NS" create secret generic shop-db-admin --from-literal=password="$MYPW" >/dev/null
T_MY=$(now)
e2e_db_pod shop-db mariadb docker.io/library/bop-mariadb:10.11 3306
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
my_rows shop >"$T/my_rows.shop"

# ---- 3. storage, schedule, the runner; scheduled backup, backup, verify, restore ----
k -n "$SYS" create secret generic "s3-$NS" --from-literal=accessKeyId="$AWS_ACCESS_KEY_ID" \
	--from-literal=secretAccessKey="$AWS_SECRET_ACCESS_KEY" >/dev/null
k -n "$NS" create secret generic orders-db-backup --from-literal=password="$BPW" >/dev/null
# PostgreSQL's schedule has the controller generate its age identity into a Secret
# (encryption.generateIdentity); MariaDB's names a Secret of that form made beforehand with
# `backupop keygen`, which the controller must use as it is, never rewrite
# (docs/install.md, section 7)
"$BOP_BUILD_ROOT/runner/cli/backupop" keygen -o "$T/key" >"$T/recipients.txt" 2>/dev/null
RECIPIENT=$(grep -o 'age1[0-9a-z]*' "$T/recipients.txt" | head -1)
k -n "$NS" create secret generic shop-db-identity --from-file=identity="$T/key" \
	--from-file=recipient="$T/recipients.txt" >/dev/null
SHOP_ID_RV=$(k -n "$NS" get secret shop-db-identity -o jsonpath='{.metadata.resourceVersion}')
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
  encryption: {generateIdentity: {secretName: orders-db-identity}}
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
  encryption: {generateIdentity: {secretName: shop-db-identity}}
  retention: {keepLast: 3}
  concurrencyPolicy: Forbid
  runner: {affinity: {podSelector: {app: shop-db}}}
EOF
# The whole PostgreSQL server through the shipped ClusterBackupTemplate postgresql
# (controller/deploy/templates/): the schedule names the template, its variables and the
# Secret of its secret variable; it has no schedule:, so it only serves BackupRuns
# (docs/install.md, section 8)
ok "the shipped ClusterBackupTemplates apply" k apply -f "$BOP_SOURCE_ROOT/controller/deploy/templates/"
ok "a BackupSchedule of the template postgresql, without schedule: (BackupRuns only)" \
	k -n "$NS" apply -f - <<EOF
apiVersion: backupop.io/v1alpha1
kind: BackupSchedule
metadata: {name: orders-server}
spec:
  templateRef: {name: postgresql}
  vars: {host: "$PGIP", user: postgres}
  varsSecretRef: {name: orders-db-admin, keys: [password]}
  storage: {name: $STORE}
  encryption: {generateIdentity: {secretName: orders-server-identity}}
EOF
SCHED=orders-db
e2e_runner_pod
ok "it runs as 65532 with a read-only root and no API token" python3 -c "
import json
p = json.load(open('$T/rpod.json'))
s = p['spec']
assert s['securityContext']['runAsUser'] == 65532
assert s['automountServiceAccountToken'] is False
assert s['containers'][0]['securityContext']['readOnlyRootFilesystem'] is True
assert s['containers'][0]['image'] == '$RIMG:$version', s['containers'][0]['image']"
RUID=$(python3 -c "import json; print(json.load(open('$T/rpod.json'))['metadata']['uid'])")
# encryption.generateIdentity: the controller made the Secret; the runner pod encrypts to
# its recipient, and the restore below decrypts with its identity
ok "the controller made the identity Secret orders-db-identity" k -n "$NS" get secret orders-db-identity
k -n "$NS" get secret orders-db-identity -o json >"$T/idsecret.json"
PG_RECIPIENT=$(python3 -c "
import base64, json
print(base64.b64decode(json.load(open('$T/idsecret.json'))['data']['recipient']).decode())")
PG_ID_RV=$(python3 -c "import json; print(json.load(open('$T/idsecret.json'))['metadata']['resourceVersion'])")
ok "it holds an age identity and its recipient, and no owner reference" python3 -c "
import base64, json
d = json.load(open('$T/idsecret.json'))
assert not d['metadata'].get('ownerReferences'), d['metadata']
assert d['metadata']['annotations']['backupop.io/generated-for'] == '$NS/orders-db', d['metadata']
i = base64.b64decode(d['data']['identity']).decode()
assert any(l.startswith('AGE-SECRET-KEY-1') for l in i.splitlines()), 'no identity'
assert '$PG_RECIPIENT'.startswith('age1'), 'no recipient'"
if command -v age-keygen >/dev/null; then
	derived() { # (the copy of docs/install.md, section 7)
		k -n "$NS" get secret orders-db-identity -o jsonpath='{.data.identity}' | base64 -d |
			age-keygen -y | grep -qx "$PG_RECIPIENT"
	}
	ok "... whose recipient is the identity's (age-keygen -y)" derived
else
	skip "age-keygen is not installed: the Secret's recipient is not derived again"
fi
rv_is() { [ "$(k -n "$NS" get secret "$1" -o jsonpath='{.metadata.resourceVersion}')" = "$2" ]; }
recipient_is() { [ "$(k -n "$NS" get backupschedule "$1" -o jsonpath='{.status.recipient}')" = "$2" ]; }
ok "the schedule's status shows that recipient" wait_for 20 recipient_is orders-db "$PG_RECIPIENT"

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

# backup_verify_restore DB ROWS [WHAT]: of $SCHED, a BackupRun backup ("a BackupRun backup
# [WHAT] Succeeds"), its manifest in the bucket, a BackupRun verify and a BackupRun restore
# of it into the database DB_restored, which must then have every row of DB (ROWS DB prints
# them, in order; $T/ROWS.DB has them from after the load).
backup_verify_restore() {
	local db=$1 rows=$2 b bid v r
	b=$(new_run backup)
	check "a BackupRun backup${3:+ $3} Succeeds" "$([ "$(wait_done "$b" 90)" = Succeeded ]; echo $?)"
	bid=$(field "$b" backupId)
	run_diag "$b" "BackupRun backup $bid"
	[ "$(phase "$b")" = Succeeded ] || diag "backup: $(field "$b" error)"
	check "its manifest is in the bucket" "$(manifests | grep -qx "$bid"; echo $?)"
	v=$(new_run verify "$bid")
	check "a BackupRun verify of it Succeeds" "$([ "$(wait_done "$v" 90)" = Succeeded ]; echo $?)"
	run_diag "$v" "verify"
	r=$(new_run restore "$bid")
	check "a BackupRun restore of it into the database ${db}_restored Succeeds" \
		"$([ "$(wait_done "$r" 120)" = Succeeded ]; echo $?)"
	run_diag "$r" "restore"
	[ "$(phase "$r")" = Succeeded ] || diag "restore: $(field "$r" error)"
	"$rows" "${db}_restored" >"$T/$rows.restored"
	check "${db}_restored has every row of $db, the same ($(wc -l <"$T/$rows.$db") rows)" \
		"$([ -s "$T/$rows.$db" ] && cmp -s "$T/$rows.$db" "$T/$rows.restored"; echo $?)"
}
backup_verify_restore app rows

# ---- 3b. MariaDB: its runner, a scheduled backup, backup, verify, restore ----
SCHED=shop-db
ok "the MariaDB schedule is Ready" wait_for 30 sched_ready
MRPOD=$(k -n "$NS" get backupschedule shop-db -o jsonpath='{.status.runnerName}')-0
ok "its runner's pod $SYS/$MRPOD appears" wait_for 30 k -n "$SYS" get pod "$MRPOD"
ok "it is Running and Ready" k -n "$SYS" wait --for=condition=Ready "pod/$MRPOD" --timeout=120s
ok "its status shows the recipient of the identity Secret made beforehand" \
	wait_for 20 recipient_is shop-db "$RECIPIENT"
ok "... and that Secret is unchanged (the restore below decrypts with its identity)" \
	rv_is shop-db-identity "$SHOP_ID_RV"
# A Prometheus on the host (Debian's, when installed) scrapes the controller pod as the
# shipped ServiceMonitor would and both runner pods as the PodMonitor would, with the
# shipped rules, while MariaDB is tested; section 3d looks at what it got
prom_pid=
if command -v prometheus >/dev/null && python3 -c 'import yaml' 2>/dev/null; then
	# the rule file and the scrape configuration of docs/install.md, section 9. Debian's
	# prometheus is built without kubernetes_sd_configs: the test finds the pods the
	# guide's relabel_configs keep, with the labels they give, and hands them over as
	# static targets.
	sed -n "/^python3 -c 'import sys, yaml/,/prometheusrule.yaml >backupop-rules.yml$/p" \
		"$BOP_SOURCE_ROOT/docs/install.md" | sed "s|>backupop-rules.yml\$|>'$T/rules.yml'|" >"$T/rules.sh"
	(cd "$BOP_SOURCE_ROOT" && bash "$T/rules.sh")
	sed -n '/^scrape_configs:$/,/^```$/p' "$BOP_SOURCE_ROOT/docs/install.md" | sed '$d' >"$T/guide-scrape.yml"
	k get pods -A -o json >"$T/pods.json"
	python3 - "$T/guide-scrape.yml" "$T/pods.json" "$SYS" >"$T/targets.yml" 2>"$T/targets.err" <<'PYEOF'
import json, re, sys, yaml
jobs = yaml.safe_load(open(sys.argv[1]))['scrape_configs']
pods = json.load(open(sys.argv[2]))['items']
out = []
def clean(k):
    return re.sub(r'[^a-zA-Z0-9_]', '_', k)
for job in jobs:
    sd = job['kubernetes_sd_configs']
    # the guide's namespace backups is the test's $SYS; a job without names: every namespace
    names = sd[0].get('namespaces', {}).get('names')
    assert [c['role'] for c in sd] == ['pod'] and names in (None, ['backups']), sd
    targets = []
    for p in pods:
        if not p['status'].get('podIP') or (names and p['metadata']['namespace'] != sys.argv[3]):
            continue
        for c in p['spec']['containers']:
            for port in c.get('ports', []):
                m = {'__address__': '%s:%d' % (p['status']['podIP'], port['containerPort']),
                     '__meta_kubernetes_pod_name': p['metadata']['name'],
                     '__meta_kubernetes_namespace': p['metadata']['namespace'],
                     '__meta_kubernetes_pod_container_port_name': port.get('name', '')}
                for k, v in p['metadata'].get('labels', {}).items():
                    m['__meta_kubernetes_pod_label_' + clean(k)] = v
                keep = True
                for r in job['relabel_configs']:
                    action = r.get('action', 'replace')
                    assert action in ('keep', 'replace'), action
                    val = r.get('separator', ';').join(m.get(l, '') for l in r['source_labels'])
                    mt = re.fullmatch(r.get('regex', '(.*)'), val)
                    if action == 'keep' and not mt:
                        keep = False
                        break
                    if action == 'replace' and mt:
                        v = mt.expand(r.get('replacement', '$1').replace('$1', r'\1'))
                        if v:
                            m[r['target_label']] = v
                        else:
                            m.pop(r['target_label'], None)
                if keep:
                    targets.append({'targets': [m['__address__']],
                                    'labels': {k: v for k, v in m.items() if not k.startswith('__')}})
    j = {k: v for k, v in job.items() if k not in ('kubernetes_sd_configs', 'relabel_configs')}
    j['static_configs'] = targets
    out.append(j)
yaml.safe_dump(out, sys.stdout, sort_keys=False)
PYEOF
	guide_targets() { python3 -c "
import yaml
j = {x['job_name']: x['static_configs'] for x in yaml.safe_load(open('$T/targets.yml'))}
c = j['backupop-controller']
assert [t['targets'][0] for t in c] == ['$(k -n "$SYS" get pod "$CPOD" -o jsonpath='{.status.podIP}'):8081'], c
r = {(t['labels']['namespace'], t['labels']['schedule']): t for t in j['backupop-runner']}
assert ('$NS', 'orders-db') in r and ('$NS', 'shop-db') in r, j['backupop-runner']
assert r[('$NS', 'orders-db')]['labels']['pod'] == '$RPOD', r
assert r[('$NS', 'orders-db')]['targets'][0].endswith(':8081'), r"; }
	ok "docs/install.md's scrape configuration keeps the controller's and the runners' metrics ports (8081) with namespace, schedule and pod" \
		guide_targets
	sed 's/^/# /' "$T/targets.err"
	PPORT=$(python3 "$BOP_SOURCE_ROOT/tests/env/free-port.py")
	{
		echo 'global: {scrape_interval: 1s, evaluation_interval: 1s}'
		echo "rule_files: ['$T/rules.yml']"
		echo 'scrape_configs:'
		cat "$T/targets.yml"
	} >"$T/prometheus.yml"
	prometheus --config.file "$T/prometheus.yml" --storage.tsdb.path "$T/prom" \
		--web.listen-address "127.0.0.1:$PPORT" >"$T/prometheus.log" 2>&1 &
	prom_pid=$!
fi
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
backup_verify_restore shop my_rows "of MariaDB"
# ---- 3c. the schedule of a template, BackupRuns only ----
SCHED=orders-server
t0=$(now)
ready_reason() {
	[ "$(k -n "$NS" get backupschedule "$SCHED" \
		-o jsonpath='{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].reason}')" = "$1" ]
}
ok "the template's schedule is Ready, OnDemandOnly" wait_for 30 ready_reason "True OnDemandOnly"
TRPOD=$(k -n "$NS" get backupschedule orders-server -o jsonpath='{.status.runnerName}')-0
ok "its runner's pod $SYS/$TRPOD appears" wait_for 30 k -n "$SYS" get pod "$TRPOD"
ok "it is Running and Ready" k -n "$SYS" wait --for=condition=Ready "pod/$TRPOD" --timeout=120s
B=$(new_run backup)
check "a BackupRun backup of the whole server (pg_dumpall of the template) Succeeds" \
	"$([ "$(wait_done "$B" 90)" = Succeeded ]; echo $?)"
[ "$(phase "$B")" = Succeeded ] || diag "backup: $(field "$B" error)"
BID=$(field "$B" backupId)
run_diag "$B" "template BackupRun backup $BID"
check "its manifest is in the bucket" "$(manifests | grep -qx "$BID"; echo $?)"
check "the schedule without schedule: has taken no scheduled backup" \
	"$([ -z "$(scheduled_ok)" ] && [ -z "$(k -n "$NS" get backupschedule orders-server -o jsonpath='{.status.nextScheduleTime}')" ]; echo $?)"
diag "template schedule checked in $(since "$t0") s"

# ---- 3d. metrics, scraped from the node's host as Prometheus in the cluster would ----
t0=$(now)
M=$BOP_SOURCE_ROOT/controller/deploy/monitoring
# sample FILE 'NAME{labels}': the value of that exact series in a scrape, or "none"
sample() { awk -v w="$2" 'index($0, w " ") == 1 { print $2; f = 1; exit } END { if (!f) print "none" }' "$1"; }
# holds VALUE AWK-CONDITION-ON-v
holds() { [ "$1" != none ] && awk -v v="$1" "BEGIN { exit !($2) }"; }
code() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$@"; }
k -n "$SYS" get pod "$RPOD" -o json >"$T/rpod.json"
RIP=$(python3 -c "import json; print(json.load(open('$T/rpod.json'))['status']['podIP'])")
port_of() { python3 -c "
import json, sys
p = json.load(open(sys.argv[1]))['spec']['containers'][0]['ports']
print([x['containerPort'] for x in p if x.get('name') == sys.argv[2]][0])" "$@" 2>/dev/null; }
RAPI=$(port_of "$T/rpod.json" api) RMET=$(port_of "$T/rpod.json" metrics)
check "the runner pod has the container ports api and metrics ($RAPI, $RMET)" \
	"$([ -n "$RAPI" ] && [ -n "$RMET" ] && [ "$RAPI" != "$RMET" ]; echo $?)"
if python3 -c 'import yaml' 2>/dev/null; then
	ok "the shipped PodMonitor selects the runner pod, by its port name and path" python3 -c "
import json, yaml
m = yaml.safe_load(open('$M/podmonitor.yaml'))['spec']
p = json.load(open('$T/rpod.json'))
labels = p['metadata']['labels']
assert all(labels.get(k) == v for k, v in m['selector']['matchLabels'].items()), labels
e = m['podMetricsEndpoints'][0]
assert e['port'] == 'metrics' and e['path'] == '/metrics', e
for r in e['relabelings']:
    l = r['sourceLabels'][0].replace('__meta_kubernetes_pod_label_', '')
    assert any(k.replace('.', '_').replace('/', '_').replace('-', '_') == l for k in labels), l
assert labels['backupop.io/schedule-namespace'] == '$NS' and labels['backupop.io/schedule-name'] == 'orders-db', labels"
	ok "the shipped ServiceMonitor's Service (port metrics) leads to the controller pod" python3 -c "
import json, subprocess, yaml
m = yaml.safe_load(open('$M/servicemonitor.yaml'))['spec']
out = subprocess.run(['$KUBECTL', '--kubeconfig', '$K8S_DIR/kubeconfig', '-n', '$SYS', 'get',
    'services,endpoints', '-o', 'json'], capture_output=True, check=True).stdout
items = json.loads(out)['items']
sel = m['selector']['matchLabels']
svcs = [s for s in items if s['kind'] == 'Service' and
        all(s['metadata'].get('labels', {}).get(k) == v for k, v in sel.items())]
assert svcs, 'no Service with the labels %s' % sel
ok = False
for s in svcs:
    assert any(p.get('name') == m['endpoints'][0]['port'] for p in s['spec']['ports']), s['spec']
    for e in items:
        if e['kind'] == 'Endpoints' and e['metadata']['name'] == s['metadata']['name']:
            for ss in e.get('subsets', []):
                ok |= any(a.get('targetRef', {}).get('name') == '$CPOD' for a in ss.get('addresses', [])) and \
                      any(p.get('name') == 'metrics' for p in ss.get('ports', []))
assert ok, 'the controller pod is not behind the Service'"
else
	skip "python3-yaml is not installed: the PodMonitor is not compared with the pod"
	skip "python3-yaml is not installed: the ServiceMonitor is not compared with the Service"
fi
RURL=http://$RIP:$RMET/metrics
ok "the runner pod's metrics port answers /metrics without a token" curl -sf --max-time 5 -o "$T/runner.prom" "$RURL"
ok "... with its backups counted (backupop_runs_total, success >= 2)" \
	holds "$(sample "$T/runner.prom" 'backupop_runs_total{kind="backup",result="success"}')" 'v >= 2'
runner_series() {
	grep -q '^backupop_last_success_timestamp_seconds ' "$T/runner.prom" &&
		grep -q '^backupop_backup_bytes ' "$T/runner.prom" &&
		grep -q '^backupop_backup_duration_seconds_bucket' "$T/runner.prom"
}
ok "... and backupop_last_success_timestamp_seconds, backupop_backup_bytes, backupop_backup_duration_seconds" \
	runner_series
api_401() { [ "$(code "http://$RIP:$RAPI/metrics")" = 401 ] && [ "$(code "http://$RIP:$RAPI/v1/runs")" = 401 ]; }
ok "the runner's API port wants its token: /metrics and /v1/runs answer 401" api_401
ok "the metrics port serves nothing of the API (GET /v1/runs: 404)" test "$(code "http://$RIP:$RMET/v1/runs")" = 404
CIP=$(k -n "$SYS" get pod "$CPOD" -o jsonpath='{.status.podIP}')
NOW=$(date +%s)
curl -sf --max-time 5 -o "$T/controller.prom" "http://$CIP:8081/metrics"
CURL=$T/controller.prom
L="namespace=\"$NS\",schedule=\"orders-db\""
LM="namespace=\"$NS\",schedule=\"shop-db\"" LT="namespace=\"$NS\",schedule=\"orders-server\""
last_success_plausible() {
	for l in "$L" "$LM" "$LT"; do
		holds "$(sample "$CURL" "backupop_schedule_last_success_timestamp_seconds{$l}")" \
			"v >= $((T_SCHED / 1000 - 1)) && v <= $((NOW + 1))" || { echo "$l"; return 1; }
	done
}
ok "the controller pod's backupop_schedule_last_success_timestamp_seconds of the three schedules: after they were applied, not later than now" \
	last_success_plausible
last_ok_ready() {
	holds "$(sample "$CURL" "backupop_schedule_last_run_success{$L}")" 'v == 1' &&
		holds "$(sample "$CURL" "backupop_schedule_ready{$L}")" 'v == 1'
}
ok "backupop_schedule_last_run_success is 1, backupop_schedule_ready 1 (orders-db)" last_ok_ready
sizes() {
	holds "$(sample "$CURL" "backupop_schedule_last_backup_bytes{$L}")" 'v > 1000' &&
		holds "$(sample "$CURL" "backupop_schedule_last_backup_bytes{$LM}")" 'v > 1000'
}
ok "backupop_schedule_last_backup_bytes of orders-db and shop-db > 1000" sizes
ok "backupop_schedule_interval_seconds of */20 * * * * * is 20" \
	holds "$(sample "$CURL" "backupop_schedule_interval_seconds{$L}")" 'v == 20'
# (status.nextScheduleTime: written once the runner has run the time before, so it may be
# a few seconds past)
ok "backupop_schedule_next_run_timestamp_seconds is a fire time of the cron within 20 s of now" \
	holds "$(sample "$CURL" "backupop_schedule_next_run_timestamp_seconds{$L}")" \
	"v % 20 == 0 && v >= $((NOW - 20)) && v <= $((NOW + 20))"
no_cron() {
	[ "$(sample "$CURL" "backupop_schedule_next_run_timestamp_seconds{$LT}")" = none ] &&
		[ "$(sample "$CURL" "backupop_schedule_interval_seconds{$LT}")" = none ] &&
		holds "$(sample "$CURL" "backupop_schedule_ready{$LT}")" 'v == 1'
}
ok "the schedule without schedule: is ready, with no next run nor interval" no_cron
grep -F "{$L}" "$CURL" | sed 's/^/# /'
diag "metrics checked from the host in $(since "$t0") s"
if [ -n "$prom_pid" ]; then
	t0=$(now)
	query() { curl -sf --max-time 5 --data-urlencode "query=$1" "http://127.0.0.1:$PPORT/api/v1/query"; }
	up3() { query "count(up{job=\"backupop-controller\"} == 1) + count(up{job=\"backupop-runner\",namespace=\"$NS\",schedule=~\"orders-db|shop-db\"} == 1)" |
		python3 -c "
import json, sys
assert float(json.load(sys.stdin)['data']['result'][0]['value'][1]) == 3"; }
	ok "Prometheus on the host scrapes the controller pod and both database runner pods (up == 1)" wait_for 30 up3
	[ -n "$(query up)" ] || sed 's/^/# /' "$T/prometheus.log" | tail -20
	names() { monitoring_names "$T/rules.yml" "$M/grafana-dashboard.json"; }
	# each with the labels of a schedule of this test (runner series: of its runner pod),
	# from one query of every series the two jobs have
	present() {
		names >"$T/names"
		curl -sf --max-time 5 -G --data-urlencode 'match[]={job=~"backupop-controller|backupop-runner"}' \
			"http://127.0.0.1:$PPORT/api/v1/series" | python3 -c "
import json, sys
have = json.load(sys.stdin)['data']
missing = []
for n in open('$T/names').read().split():
    want = {'__name__': n}
    if n.startswith('backupop_schedule_'):
        want.update(namespace='$NS', schedule='orders-db')
    elif n.startswith(('backupop_backup_', 'backupop_runs_total', 'backupop_last_success_')):
        want.update(job='backupop-runner', namespace='$NS', schedule='orders-db')
    if not any(all(s.get(k) == v for k, v in want.items()) for s in have):
        missing.append(n)
assert not missing, 'missing: ' + ' '.join(missing)"
	}
	ok "every series the shipped alerts and dashboard use is in what it scraped ($(names | wc -l))" wait_for 20 present
	present | sed 's/^/# /'
	rules_ok() { curl -sf --max-time 5 "http://127.0.0.1:$PPORT/api/v1/rules" | python3 -c "
import json, sys
r = [r for g in json.load(sys.stdin)['data']['groups'] for r in g['rules']]
assert r and all(x['health'] == 'ok' and x.get('lastEvaluation', '').startswith('2') for x in r), [(x['name'], x['health'], x.get('lastError')) for x in r]"; }
	ok "every shipped rule evaluates without error" wait_for 10 rules_ok
	none_firing() { curl -sf --max-time 5 "http://127.0.0.1:$PPORT/api/v1/alerts" | python3 -c "
import json, sys
a = json.load(sys.stdin)['data']['alerts']
assert not [x for x in a if x['state'] == 'firing'], a"; }
	ok "no alert fires for these healthy schedules" none_firing
	kill "$prom_pid" 2>/dev/null; wait "$prom_pid" 2>/dev/null; prom_pid=
	diag "Prometheus checked in $(since "$t0") s"
else
	skip "prometheus or python3-yaml is not installed: no Prometheus scrapes the pods"
fi
# done with them: their runners go (section 7 checks what a deleted schedule leaves)
k -n "$NS" delete backupschedule shop-db orders-server --wait=false >/dev/null
SCHED=orders-db

# ---- 4. a changed Secret restarts the runner with the new configuration ----
BPW2=bop2-$(rand_hex 6)
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
# A backup of such an id that has its manifest is complete: it ran after the lock was gone,
# so in the new pod (the latest scheduled time the old pod missed, run when the new one
# started); what an interrupted backup could leave is data or an upload without a manifest.
# The new pod removes that when it starts (its recovery of the interrupted runs), and one
# of its own backups may still be writing: wait for the window to hold complete backups only.
none_interrupted() {
	interrupted >"$T/window"
	sed -n 's|/manifest\.json$||p' "$T/window" >"$T/complete"
	grep -v -F -f "$T/complete" "$T/window" >"$T/interrupted" || true
	[ ! -s "$T/interrupted" ]
}
ok "nothing is stored of the interrupted backups: no data, no open upload without a manifest" \
	wait_for 60 none_interrupted
[ ! -s "$T/complete" ] || diag "complete, from the new pod: $(sed 's|.*/||' "$T/complete" | tr '\n' ' ')"
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
ok "the generated identity Secret stays, never rewritten (a new controller pod came meanwhile)" \
	rv_is orders-db-identity "$PG_ID_RV"

diag "total test time $(since "$T_ALL") s"
done_testing
