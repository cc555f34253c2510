#!/bin/bash
# A real, throwaway Kubernetes control plane on loopback, for tests on Debian 12.
#   k8s-local.sh build   build kube-apiserver, kube-controller-manager, kubectl, and for the node
#                        of node-local.sh kubelet and kube-scheduler, v1.20.2 (cached; only
#                        the binaries missing from the cache are built, with nice -n 10)
#   k8s-local.sh start   start etcd, kube-apiserver, kube-controller-manager; write a kubeconfig
#   k8s-local.sh stop    stop them (by pid file), and first the node of node-local.sh if one runs
#   k8s-local.sh env     print the exports tests need (KUBECONFIG, K8S_SERVER, K8S_TOKEN, K8S_CA)
#   k8s-local.sh env     also prints BOP_TEST_KUBECONFIG, the variable tests/k8s/ reads
#                        and BOP_KUBECTL (the cached kubectl) for tests/deploy/, and
#                        BOP_TEST_K8S_DIR (this state dir) for tests/node/ and restarts,
#                        BOP_TEST_ETCD (etcd's client URL) for the informer's compaction tests
# Env: BOP_CACHE_DIR (cache root, default /var/cache/backupop-testenv; the binaries go in
# $BOP_CACHE_DIR/k8s-1.20.2), K8S_CACHE (the binaries' directory itself, overrides that),
# K8S_DIR (state, default /tmp/backupop-k8s), K8S_PORT (6443), K8S_ETCD_PORT (2379; etcd's peer
# port is the next one), K8S_KCM_PORT (10257): a second control plane beside the first needs
# all three, and its own K8S_DIR.
#
# Where the binaries come from: Debian bookworm's `kubernetes` source package carries the full
# upstream v1.20.2 tree with vendor/, and Debian's Go 1.19 builds it offline. One patch: the
# vendored modern-go/reflect2 v1.0.1 faults under Go >= 1.18 on the first custom-object create,
# so it is replaced by Debian's reflect2 v1.0.2 sources. Build: ~4-5 min for the control plane,
# kubelet and scheduler another ~7 min (15 min nice'd on a busy 2-core machine); ~1.4 GB RAM,
# 2.2 GB disk; kubelet 105 MB, kube-scheduler 40 MB.
# `start` runs no kubelet or scheduler: pods stay Pending (tests patch pods/status when they need
# to) until node-local.sh start adds a real node.
set -euo pipefail
CACHE=${K8S_CACHE:-${BOP_CACHE_DIR:-/var/cache/backupop-testenv}/k8s-1.20.2}
D=${K8S_DIR:-/tmp/backupop-k8s}
# A running control plane's ports are remembered, so that stop and restart-apiserver need only
# K8S_DIR (the file only fills in the variables the caller did not set).
# shellcheck disable=SC1091
[[ -f $D/ports.env ]] && . "$D/ports.env"
PORT=${K8S_PORT:-6443}
ETCD_PORT=${K8S_ETCD_PORT:-2379}
KCM_PORT=${K8S_KCM_PORT:-10257}
SRC_VERSION=1.20.5+really1.20.2-1.1+deb12u1
ORIG_SHA256=b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc

# shellcheck source=tests/env/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

build() {
	build_bins kube-apiserver kube-controller-manager kubectl kubelet kube-scheduler
}

# Builds those of the named cmd/ binaries that the cache lacks, and only those.
build_bins() {
	local missing=() b what=""
	for b in "$@"; do [[ -x $CACHE/$b ]] || missing+=("$b"); done
	((${#missing[@]} == 0)) && return 0
	for b in "${missing[@]}"; do what+="${what:+ }cmd/$b"; done
	need_pkgs golang-1.19-go golang-github-modern-go-reflect2-dev etcd-server make gcc rsync openssl curl
	# deb-src entries from the machine's own apt sources: no host is named here
	if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/; then
		sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
			>/etc/apt/sources.list.d/debian-src.sources
		apt-get update -q >/dev/null
	fi
	local w; w=$(mktemp -d /tmp/k8s-build.XXXXXX)
	if ! (cd "$w" && apt-get source --download-only -q "kubernetes=$SRC_VERSION" >"$w.log" 2>&1); then
		tail -20 "$w.log" >&2
		echo "k8s-local: apt-get source kubernetes=$SRC_VERSION failed (deb-src entries? the mirror?)" >&2
		return 1
	fi
	rm -f "$w.log"
	local orig=$w/kubernetes_1.20.5+really1.20.2.orig.tar.gz
	echo "$ORIG_SHA256  $orig" | sha256sum -c --quiet -
	tar -C "$w" -xzf "$orig"
	local k=$w/kubernetes-1.20.2 v
	v=$k/vendor/github.com/modern-go/reflect2
	rm -f "$v"/*.go "$v"/*.s
	for f in /usr/share/gocode/src/github.com/modern-go/reflect2/*.go \
		/usr/share/gocode/src/github.com/modern-go/reflect2/*.s; do
		case $f in *_test.go) ;; *) cp "$f" "$v/" ;; esac
	done
	(
		cd "$k"
		export PATH=/usr/lib/go-1.19/bin:$PATH GOPROXY=off GOFLAGS= HOME=$w/home
		export KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 KUBE_GIT_TREE_STATE=clean
		mkdir -p "$HOME"
		# nice: the Go build takes both cores for minutes, and the machine may be shared
		nice -n 10 make WHAT="$what" >"$w/build.log" 2>&1 ||
			{ tail -30 "$w/build.log" >&2; exit 1; }
	)
	mkdir -p "$CACHE"
	for b in "${missing[@]}"; do cp "$k/_output/bin/$b" "$CACHE/"; done
	rm -rf "$w"
}

pki() {
	local p=$D/pki
	mkdir -p "$p"
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=backupop-test-ca \
		-keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver \
		-keyout "$p/apiserver.key" -out "$p/apiserver.csr" 2>/dev/null
	# 10.0.0.1: the in-cluster address (Service default/kubernetes) that node-local.sh's pods use
	printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' \
		>"$p/san.ext"
	openssl x509 -req -in "$p/apiserver.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
		-days 30 -extfile "$p/san.ext" -out "$p/apiserver.crt" 2>/dev/null
	openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
	openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
	local admin kcm
	admin=$(openssl rand -hex 16) kcm=$(openssl rand -hex 16)
	printf '%s,admin,admin-uid,"system:masters"\n%s,system:kube-controller-manager,kcm-uid,"system:masters"\n' \
		"$admin" "$kcm" >"$p/tokens.csv"
	chmod 600 "$p"/*.key "$p/tokens.csv"
	kubeconfig "$D/kubeconfig" "$admin"
	kubeconfig "$D/kubeconfig-kcm" "$kcm"
	echo "$admin" >"$D/admin.token"
}

kubeconfig() { # path token
	local ca; ca=$(base64 -w0 <"$D/pki/ca.crt")
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$PORT
    certificate-authority-data: $ca
users:
- name: local
  user:
    token: $2
contexts:
- name: local
  context: {cluster: local, user: local, namespace: default}
current-context: local
EOF
	chmod 600 "$1"
}

stop() {
	[[ ! -d $D/node ]] || K8S_DIR=$D bash "$(dirname "$0")/node-local.sh" stop || true
	for n in kube-controller-manager kube-apiserver etcd; do
		local f=$D/$n.pid
		[[ -f $f ]] || continue
		kill "$(cat "$f")" 2>/dev/null || true
		for _ in $(seq 1 50); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.1; done
		rm -f "$f"
	done
}

# Starts kube-apiserver on the existing etcd and PKI and waits until it is ready.
start_apiserver() {
	local p=$D/pki
	"$CACHE/kube-apiserver" --etcd-servers=http://127.0.0.1:$ETCD_PORT \
		--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$PORT" --insecure-port=0 \
		--tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
		--client-ca-file="$p/ca.crt" --token-auth-file="$p/tokens.csv" --authorization-mode=RBAC \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
		--api-audiences=https://kubernetes.default.svc.cluster.local \
		--service-cluster-ip-range=10.0.0.0/24 --endpoint-reconciler-type=none \
		--allow-privileged=true --enable-priority-and-fairness=false --v=1 >"$D/apiserver.log" 2>&1 &
	echo $! >"$D/kube-apiserver.pid"
	local tok; tok=$(cat "$D/admin.token")
	for _ in $(seq 1 120); do
		curl -sf --cacert "$p/ca.crt" -H "Authorization: Bearer $tok" \
			"https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
		sleep 0.5
	done
	curl -sf --cacert "$p/ca.crt" -H "Authorization: Bearer $tok" "https://127.0.0.1:$PORT/readyz" >/dev/null ||
		{ echo "kube-apiserver did not become ready; see $D/apiserver.log" >&2; exit 1; }
}

# Stops and starts only kube-apiserver (etcd and its data stay): what a control-plane
# upgrade or crash looks like to clients, for tests of watch recovery.
restart_apiserver() {
	local f=$D/kube-apiserver.pid
	if [[ -f $f ]]; then
		kill "$(cat "$f")" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.1; done
	fi
	start_apiserver
}

start() {
	build   # kubectl and the node's binaries too: one build of all is cheaper than two
	need_pkgs etcd-server openssl curl iproute2
	stop
	# another control plane's ports: etcd or the API server would fail to listen, and ours
	# could even talk to theirs
	local port
	for port in "$PORT" "$ETCD_PORT" "$((ETCD_PORT + 1))" "$KCM_PORT"; do
		if ss -Hltn "sport = :$port" | grep -q .; then
			echo "k8s-local: port $port is in use (another API server or etcd? stop it, or set" \
				"K8S_PORT, K8S_ETCD_PORT, K8S_KCM_PORT)" >&2
			exit 1
		fi
	done
	rm -rf "$D" && mkdir -p "$D"
	pki
	echo ": \"\${K8S_PORT:=$PORT}\" \"\${K8S_ETCD_PORT:=$ETCD_PORT}\" \"\${K8S_KCM_PORT:=$KCM_PORT}\"" >"$D/ports.env"
	local p=$D/pki
	etcd --name backupop-test --data-dir "$D/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
		--initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
		--initial-cluster "backupop-test=http://127.0.0.1:$((ETCD_PORT + 1))" --initial-cluster-state new \
		--logger zap --log-level warn >"$D/etcd.log" 2>&1 &
	echo $! >"$D/etcd.pid"
	start_apiserver
	"$CACHE/kube-controller-manager" --kubeconfig="$D/kubeconfig-kcm" \
		--bind-address=127.0.0.1 --secure-port="$KCM_PORT" --port=0 --leader-elect=false \
		--service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
		--controllers='*' --flex-volume-plugin-dir="$D/flexvolume" --v=1 >"$D/kcm.log" 2>&1 &
	echo $! >"$D/kube-controller-manager.pid"
	envs
}

envs() {
	echo "export KUBECONFIG=$D/kubeconfig BOP_TEST_KUBECONFIG=$D/kubeconfig K8S_SERVER=https://127.0.0.1:$PORT" \
		"K8S_TOKEN=$(cat "$D/admin.token") K8S_CA=$D/pki/ca.crt" \
		"BOP_KUBECTL=$CACHE/kubectl BOP_TEST_K8S_DIR=$D BOP_TEST_ETCD=http://127.0.0.1:$ETCD_PORT"
}

case ${1:-start} in
build) build ;;
start) start ;;
stop) stop ;;
restart-apiserver) restart_apiserver ;;
env) envs ;;
*) echo "usage: $0 build|start|stop|restart-apiserver|env" >&2; exit 2 ;;
esac
