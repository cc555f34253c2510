#!/bin/bash
# A real S3 server for the tests, on Debian 12: a one-node Ceph cluster with its S3 gateway
# (radosgw), on loopback only. radosgw enforces SigV4 fully; Ceph's internal auth is off.
#   install: apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw curl
#   usage:   s3-local.sh start | stop | env
#   env:     RGW_DIR (default /tmp/rgw-ci)   everything of this instance: data, logs, pids
#            RGW_PORT (default 7480)         S3 port; the next free one if it is taken
#            RGW_BIND (default 127.0.0.1)    the S3 port's address, e.g. a node's bridge
#                                            address so that pods reach it (Ceph itself
#                                            stays on loopback)
#            MON_PORT (default 3300)         Ceph monitor port; the next free one if taken
#            S3_ACCESS_KEY, S3_SECRET_KEY    the S3 user's keys (ci-access-key/ci-secret-key)
#            S3_BUCKET (default backupop-test) created after start
#            OSD_STORE (default bluestore, on a sparse 10 GiB file; or memstore)
# `start` stops an instance already running in RGW_DIR, starts a fresh one (~15 s), creates
# the bucket, prints the endpoint, and writes $RGW_DIR/env: shell assignments of
# BOP_TEST_S3_ENDPOINT, BOP_TEST_S3_BUCKET, BOP_TEST_S3_DIR and the AWS_* variables that the
# tests read (`env` prints it). `stop` ends the processes of RGW_DIR by their pid files.
# 1 mon (msgr v2), 1 OSD, no mgr.
set -euo pipefail
D=${RGW_DIR:-/tmp/rgw-ci}
AK=${S3_ACCESS_KEY:-ci-access-key}; SK=${S3_SECRET_KEY:-ci-secret-key}
BUCKET=${S3_BUCKET:-backupop-test}; STORE=${OSD_STORE:-bluestore}
DAEMONS="client.rgw.a osd.0 mon.a"
BIND=${RGW_BIND:-127.0.0.1}

alive() { kill -0 "$1" 2>/dev/null && [ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z ]; }

stop() {
	local n f i ok
	for n in $DAEMONS; do
		f=$D/run/$n.pid
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
	done
	for i in $(seq 1 40); do
		ok=1
		for n in $DAEMONS; do
			f=$D/run/$n.pid
			[ -f "$f" ] && alive "$(cat "$f")" && ok=0
		done
		[ $ok = 1 ] && return 0
		sleep 0.5
	done
	for n in $DAEMONS; do
		f=$D/run/$n.pid
		[ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null || true
	done
}

# Whether something listens on ${2:-127.0.0.1}:$1.
port_busy() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }

# The first port from $1 on that nothing listens on.
free_port() {
	local p=$1
	while port_busy "$p" || port_busy "$p" "$BIND"; do
		p=$((p + 1))
		[ "$p" -lt 65536 ] || { echo "s3-local.sh: no free port from $1 on" >&2; exit 1; }
	done
	echo "$p"
}

case ${1:-start} in
stop) stop; exit 0 ;;
env) cat "$D/env"; exit 0 ;;
start) ;;
*) echo "usage: s3-local.sh start | stop | env" >&2; exit 2 ;;
esac

for tool in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph curl; do
	command -v "$tool" >/dev/null || {
		echo "s3-local.sh: $tool is not installed (apt-get install ceph-mon ceph-osd radosgw curl)" >&2
		exit 1
	}
done
stop 2>/dev/null || true
PORT=$(free_port "${RGW_PORT:-7480}")
MPORT=$(free_port "${MON_PORT:-3300}")
[ "$PORT" = "${RGW_PORT:-7480}" ] || echo "s3-local.sh: port ${RGW_PORT:-7480} is taken; radosgw uses $PORT" >&2
rm -rf "$D"; mkdir -p "$D"/{mon,osd0,run,log,rgw}
FSID=$(cat /proc/sys/kernel/random/uuid); OSDUUID=$(cat /proc/sys/kernel/random/uuid)
cat > "$D/ceph.conf" <<EOC
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$MPORT
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
auth allow insecure global id reclaim = false
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
pid file = $D/run/\$name.pid
mon data = $D/mon
osd data = $D/osd0
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 2
mon max pg per osd = 1000
osd objectstore = $STORE
memstore device bytes = 3221225472
bluestore block path = $D/block
bluestore block create = true
bluestore block size = 10737418240
bluestore fsck on mkfs = false
osd memory target = 1073741824
bluestore cache autotune = false
bluestore cache size = 268435456
[client.rgw.a]
keyring = /dev/null
rgw frontends = beast endpoint=$BIND:$PORT
rgw data = $D/rgw
rgw gc obj min wait = 60
rgw gc processor period = 60
EOC
C="-c $D/ceph.conf"
monmaptool --create --addv a "[v2:127.0.0.1:$MPORT]" --fsid "$FSID" "$D/monmap" >/dev/null
ceph-mon $C --mkfs -i a --monmap "$D/monmap"
ceph-mon $C -i a
timeout 60 ceph $C osd new "$OSDUUID" >/dev/null
ceph-osd $C -i 0 --mkfs --osd-uuid "$OSDUUID" >"$D/log/osd-mkfs.log" 2>&1
ceph-osd $C -i 0 2>>"$D/log/osd-start.log"
radosgw $C -n client.rgw.a
ENDPOINT=http://$BIND:$PORT
for i in $(seq 1 120); do curl -s -o /dev/null "$ENDPOINT/" && break; sleep 0.5; done
curl -s -o /dev/null "$ENDPOINT/" || { echo "s3-local.sh: radosgw did not come up; see $D/log" >&2; exit 1; }
radosgw-admin $C -n client.rgw.a --admin-socket= user create --uid=ci --display-name=ci \
	--access-key="$AK" --secret-key="$SK" >/dev/null

# The bucket, with curl's SigV4 (it does not send x-amz-content-sha256 itself: this is the
# SHA-256 of the empty body). The new user's keys may take a moment to be served.
EMPTY_SHA256=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
for i in $(seq 1 20); do
	code=$(curl -s -o "$D/log/create-bucket.xml" -w '%{http_code}' -X PUT \
		--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" \
		-H "x-amz-content-sha256: $EMPTY_SHA256" "$ENDPOINT/$BUCKET") || code=000
	[ "$code" = 200 ] && break
	sleep 0.5
done
[ "$code" = 200 ] || { echo "s3-local.sh: cannot create bucket $BUCKET (HTTP $code): $(cat "$D/log/create-bucket.xml")" >&2; exit 1; }

(umask 077; cat > "$D/env" <<EOE
BOP_TEST_S3_ENDPOINT=$ENDPOINT
BOP_TEST_S3_BUCKET=$BUCKET
BOP_TEST_S3_DIR=$D
AWS_ACCESS_KEY_ID=$AK
AWS_SECRET_ACCESS_KEY=$SK
AWS_DEFAULT_REGION=us-east-1
EOE
)
echo "S3 endpoint $ENDPOINT bucket $BUCKET access=$AK (conf $D/ceph.conf, env $D/env)"
