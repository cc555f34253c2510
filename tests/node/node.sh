#!/bin/bash
# A real node (tests/env/node-local.sh) beside the API server that tests/run started: it
# becomes Ready; a pod from a one-file local image runs to completion as user 65532 with a
# read-only root, an emptyDir and a Secret volume (its log shows the secret's hash, never
# the secret); a pod reaches TCP servers on the bridge's address and on the node IP (how
# later tests reach S3 and databases: there is no DNS and no Service IP); and a full stop
# leaves no process, mount, cgroup, link, network namespace or changed sysctl behind; nor
# does a node killed without a stop, once the next one has started.
# The test starts and stops the node itself (it is the one that can check the stop), and
# runs alone (is_parallel: false): while a node runs, other tests' pods would really be
# scheduled and run. It is skipped, with the reason, where a node cannot run.
. "$BOP_SOURCE_ROOT/tests/tap.sh"
. "$BOP_SOURCE_ROOT/tests/env/lib.sh"
ENV=$BOP_SOURCE_ROOT/tests/env
CACHE=${K8S_CACHE:-${BOP_CACHE_DIR:-/var/cache/backupop-testenv}/k8s-1.20.2}
KUBECTL=$CACHE/kubectl
need_node "a node needs root (mounts, cgroups, a bridge, network namespaces)"
command -v busybox >/dev/null || skip_all "no static busybox for the test image (apt-get install busybox-static)"

T=$(mktemp -d "${TMPDIR:-/tmp}/bop-node.XXXXXX") || exit 1
TAP_LOG=$T/log
NS=bop-node-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
export K8S_DIR=$BOP_TEST_K8S_DIR
k() { "$KUBECTL" --kubeconfig "$K8S_DIR/kubeconfig" "$@"; }
node() { bash "$ENV/node-local.sh" "$@"; }
srv_pids=()
orphan= OLD=
cleanup() {
	k delete namespace "$NS" --wait=false >/dev/null 2>&1
	[ ${#srv_pids[@]} -eq 0 ] || kill "${srv_pids[@]}" 2>/dev/null
	node stop >/dev/null 2>&1
	[ -z "$OLD" ] || K8S_DIR=$OLD node stop >/dev/null 2>&1
	# should the clearing have missed it: it holds this test's output
	[ -z "$orphan" ] || kill -KILL "$orphan" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
# a test harness's timeout is a SIGTERM: the node must still be stopped
trap 'exit 143' TERM INT

# What the machine looks like without a node, to compare with after the stop.
SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
kernel.keys.root_maxbytes net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables"
# the cgroup hierarchies (every v1 one, and the v2 one) under /sys/fs/cgroup
hierarchies() {
	awk '($3 == "cgroup" || $3 == "cgroup2") && $2 ~ "^/sys/fs/cgroup" { print $2 }' /proc/self/mounts
}
# processes of a node: ours, or a system containerd that was there before (and may stay)
node_procs() {
	{ for n in kubelet kube-scheduler containerd containerd-shim runc catatonit busybox; do
		pgrep -x "$n"
	  done
	  pgrep -f "$1/"; } | sort -u
}
snapshot() { # DIR
	mkdir -p "$1"
	node_procs "$K8S_DIR/node" >"$1/procs"
	for s in $SYSCTLS; do echo "$s=$(sysctl -n "$s" 2>/dev/null)"; done >"$1/sysctl"
	ip -o link show | awk -F': ' '{ print $2 }' | sed 's/@.*//' | sort >"$1/links"
	# mount point and type (after the " - " separator)
	sed 's/^\([^ ]* \)\{4\}\([^ ]*\) .* - \([^ ]*\) .*/\2 \3/' /proc/self/mountinfo | sort >"$1/mounts"
	hierarchies | while read -r h; do find "$h" -mindepth 1 -maxdepth 1 -type d; done | sort >"$1/cgroups"
	lsns -n -t net -o NS 2>/dev/null | sort -u >"$1/netns"
	ls -d /var/lib/kubelet /var/lib/cni /run/containerd 2>/dev/null >"$1/dirs"
	# the rules and chains of ours (iptables-nft keeps a table once made, empty)
	{ iptables-save 2>/dev/null | grep -E '^(-A|:)' | sed 's/ \[[0-9:]*\]$//' |
		grep -vE '^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) ACCEPT$' || true; } >"$1/iptables"
}
snapshot "$T/before"
since() { local d=$(($(date +%s%3N) - $1)); printf '%d.%03d' $((d / 1000)) $((d % 1000)); }

# A node that ended without a stop: all its processes killed at once, as when the session
# that ran it is killed. Its bridge, DNAT chain, cgroups (with a process of a container in
# them) and changed sysctls stay behind; the next start, from another state dir, clears
# them, and the checks after the final stop find none of it.
OLD=$T/old-k8s
mkdir "$OLD" && cp "$K8S_DIR/kubeconfig" "$OLD/"
K8S_DIR=$OLD node start >/dev/null 2>"$T/old.err"
rc=$?
[ $rc -eq 77 ] && skip_all "$(grep -m1 'cannot run a node here' "$T/old.err")"
check "a node starts with its state in another dir" $rc
if [ $rc -eq 0 ]; then
	ns=$(readlink "/proc/$(cat "$OLD/node/ns.pid")/ns/mnt")
	kill -KILL "$(cat "$OLD/node/scheduler.pid")"
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] && kill -KILL "${p#/proc/}" 2>/dev/null
	done
	# a container's process outlives its shim: one in a cgroup under the pods', in every
	# hierarchy (a leaf, as cgroup v2 wants)
	sleep 600 &
	orphan=$!
	procs=
	for h in $(hierarchies); do
		[ -d "$h/bop-node/kubepods" ] || continue
		mkdir "$h/bop-node/kubepods/orphan" && echo "$orphan" >"$h/bop-node/kubepods/orphan/cgroup.procs"
		procs="$procs $h/bop-node/kubepods/orphan/cgroup.procs"
	done
	sleep 0.5
	check "killed, the node's processes are gone" "$(pgrep -f "$OLD/node/"; [ $? -eq 1 ]; echo $?)"
	ok "... and its bridge, DNAT chain and cgroups are left" sh -c \
		"ip link show bopbr0 && iptables -w -t nat -S BOP-NODE-bopbr0 && grep -qx '$orphan' $procs"
fi

t0=$(date +%s%3N)
node start >"$T/env" 2>"$T/start.err"
rc=$?
case $rc in
0) ;;
77) skip_all "$(grep -m1 'cannot run a node here' "$T/start.err")" ;;
*) check "the node starts and becomes Ready" 1
	sed 's/^/# /' "$T/start.err" | tail -20 ;;
esac
if [ $rc -eq 0 ]; then
	check "the node starts and becomes Ready" 0
	if [ -n "$orphan" ]; then
		ok "it cleared what the killed node left" grep -qF "clearing what the node in $OLD/node left" "$T/start.err"
		# (a zombie until this shell, its parent, reaps it)
		ok "the killed node's orphaned process is gone" \
			sh -c "! grep -q '^[^)]*) [^Z]' /proc/$orphan/stat 2>/dev/null"
	fi
	diag "node Ready in $(since "$t0") s (containerd, kubelet, scheduler from cold)"
	eval "$(grep '^export' "$T/env")"

	# the tests' image: the host's static busybox, one file (plus an empty /tmp, so that a
	# refused write tells a read-only root from a permission)
	ok "a one-file busybox image is made with umoci" \
		node file-image "$T/busybox.tar" bop-busybox:1 /bin/busybox -- /bin/busybox:/bin/busybox
	ok "it is imported into the node's containerd" node import "$T/busybox.tar" bop-busybox
	ok "the node's containerd lists it (and the pause image)" sh -c \
		"$BOP_TEST_NODE_CTR images ls -q | grep -x docker.io/library/bop-busybox:1 &&
		 $BOP_TEST_NODE_CTR images ls -q | grep -x docker.io/library/bop-pause:3.2"

	k create namespace "$NS" >/dev/null
	secret=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
	printf '%s' "$secret" >"$T/secret"
	k -n "$NS" create secret generic config --from-file=token="$T/secret" >/dev/null
	want=$(sha256sum <"$T/secret" | cut -d' ' -f1)

	cat >"$T/ro.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: ro}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532}
  containers:
  - name: main
    image: docker.io/library/bop-busybox:1
    imagePullPolicy: Never
    command: [/bin/busybox, sh, -c]
    args:
    - |
      echo "uid=$(busybox id -u)"
      busybox touch /tmp/x 2>&1 || true
      echo scratch > /scratch/f && echo "emptydir=$(busybox cat /scratch/f)"
      echo "secret-sha256=$(busybox sha256sum < /config/token | busybox cut -d' ' -f1)"
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}
    volumeMounts:
    - {name: scratch, mountPath: /scratch}
    - {name: config, mountPath: /config, readOnly: true}
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: config, secret: {secretName: config, defaultMode: 0400}}
EOF
	t1=$(date +%s%3N)
	ok "a pod with a read-only root, user 65532, an emptyDir and a Secret is created" \
		k -n "$NS" apply -f "$T/ro.yaml"
	phase=$(wait_pod_done "$NS" ro)
	check "it runs to completion (phase $phase)" "$([ "$phase" = Succeeded ]; echo $?)"
	diag "pod created to Succeeded in $(since "$t1") s"
	k -n "$NS" logs ro >"$T/ro.log" 2>&1
	sed 's/^/#   log: /' "$T/ro.log"
	ok "kubectl logs reaches the kubelet" test -s "$T/ro.log"
	ok "it ran as user 65532" grep -qx 'uid=65532' "$T/ro.log"
	ok "its root filesystem refused a write as read-only" grep -q 'Read-only file system' "$T/ro.log"
	ok "it wrote and read its emptyDir" grep -qx 'emptydir=scratch' "$T/ro.log"
	ok "it read the Secret's file (the log shows its hash)" grep -qx "secret-sha256=$want" "$T/ro.log"
	fails "the log does not show the secret" grep -qF "$secret" "$T/ro.log"
	fails "a pod running as root is refused by runAsNonRoot" sh -c "sed -e 's/name: ro}/name: root}/' \
		-e 's/runAsUser: 65532,/runAsUser: 0,/' '$T/ro.yaml' | '$KUBECTL' --kubeconfig '$K8S_DIR/kubeconfig' \
		-n $NS apply -f - >/dev/null && for i in \$(seq 60); do
			r=\$('$KUBECTL' --kubeconfig '$K8S_DIR/kubeconfig' -n $NS get pod root \
				-o 'jsonpath={.status.containerStatuses[0].state.waiting.reason}')
			[ \"\$r\" = CreateContainerConfigError ] && exit 1; sleep 0.5; done"

	# TCP servers on the bridge's address and on the node IP, each answering with a word
	# of its own; a pod connects to both by IP.
	cat >"$T/srv.py" <<'EOF'
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
s.listen(4)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[2].encode() + b"\n")
    c.close()
EOF
	ports=()
	for ip in "$BOP_TEST_NODE_GATEWAY" "$BOP_TEST_NODE_IP"; do
		python3 "$T/srv.py" "$ip" "hello-from-$ip" >"$T/srv-$ip" &
		srv_pids+=($!)
		for _ in $(seq 50); do [ -s "$T/srv-$ip" ] && break; sleep 0.1; done
		ports+=("$(head -1 "$T/srv-$ip")")
	done
	cat >"$T/net.yaml" <<EOF
apiVersion: v1
kind: Pod
metadata: {name: net}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532}
  containers:
  - name: main
    image: docker.io/library/bop-busybox:1
    imagePullPolicy: Never
    command: [/bin/busybox, sh, -c]
    args:
    - |
      busybox ip -4 -o addr show eth0
      busybox nc -w 5 $BOP_TEST_NODE_GATEWAY ${ports[0]} </dev/null
      busybox nc -w 5 $BOP_TEST_NODE_IP ${ports[1]} </dev/null
      echo "api=\$KUBERNETES_SERVICE_HOST:\$KUBERNETES_SERVICE_PORT"
      printf 'GET /version HTTP/1.0\r\n\r\n' | busybox nc -w 5 \$KUBERNETES_SERVICE_HOST \$KUBERNETES_SERVICE_PORT
    securityContext: {readOnlyRootFilesystem: true}
EOF
	ok "a pod that connects to the bridge's address and the node IP is created" \
		k -n "$NS" apply -f "$T/net.yaml"
	phase=$(wait_pod_done "$NS" net)
	check "it runs to completion (phase $phase)" "$([ "$phase" = Succeeded ]; echo $?)"
	k -n "$NS" logs net >"$T/net.log" 2>&1
	sed 's/^/#   log: /' "$T/net.log"
	podip=$(k -n "$NS" get pod net -o 'jsonpath={.status.podIP}')
	ok "its IP ($podip) is on the bridge's network" sh -c \
		"[ '${podip%.*}' = '${BOP_TEST_NODE_GATEWAY%.*}' ] && grep -q 'inet $podip/' '$T/net.log'"
	ok "it reached the server on the bridge's address $BOP_TEST_NODE_GATEWAY" \
		grep -qx "hello-from-$BOP_TEST_NODE_GATEWAY" "$T/net.log"
	ok "it reached the server on the node IP $BOP_TEST_NODE_IP" \
		grep -qx "hello-from-$BOP_TEST_NODE_IP" "$T/net.log"
	# in-cluster clients (the controller) find the API server at the Service address in
	# KUBERNETES_SERVICE_HOST/PORT; with TLS it answers a plain request with 400
	if [ -n "$BOP_TEST_NODE_INCLUSTER" ]; then
		ok "the pod was given the API server's Service address ($BOP_TEST_NODE_INCLUSTER)" \
			grep -qx "api=$BOP_TEST_NODE_INCLUSTER" "$T/net.log"
		ok "it reached the API server there" grep -q 'Client sent an HTTP request to an HTTPS server' "$T/net.log"
		ok "the API server's certificate is valid for that address" curl -sf --cacert "$K8S_DIR/pki/ca.crt" \
			--connect-to "$BOP_TEST_NODE_INCLUSTER:$(sed -n 's|^ *server: https://||p' "$K8S_DIR/kubeconfig")" \
			"https://$BOP_TEST_NODE_INCLUSTER/version"
	else
		skip "$(grep -m1 'will not reach' "$T/start.err" || echo 'pods cannot reach the API server')"
	fi
	kill "${srv_pids[@]}" 2>/dev/null
	wait "${srv_pids[@]}" 2>/dev/null
	srv_pids=()
	# while the kubelet runs, so that no pod stays Terminating on a node that is gone
	ok "the test's namespace and pods are deleted" k delete namespace "$NS" --timeout=90s
fi

# A full stop, then the machine as it was.
t2=$(date +%s%3N)
ok "the node stops" node stop
diag "node stopped in $(since "$t2") s"
snapshot "$T/after"
ND=$K8S_DIR/node
ok "no node process is left" sh -c "! comm -13 '$T/before/procs' '$T/after/procs' | grep ."
# Only what is new counts, and of mounts only those a node makes (other tests on a busy
# machine, e.g. a chroot's, come and go meanwhile); each check prints what it found.
none_new() { ! comm -13 "$T/before/$1" "$T/after/$1" | grep -E "${2:-.}"; }
ok "no mount is left (of containerd, kubelet, pods, the network namespaces)" none_new mounts \
	"^($ND|/run|/var/lib/kubelet|/var/lib/cni|/var/log)[/ ]"
ok "no mount of the node's dirs exists" sh -c "! grep -F '$ND' /proc/self/mountinfo"
ok "no cgroup is left (none is new at the top of a hierarchy)" none_new cgroups
ok "no kubelet cgroup is left anywhere" sh -c "! find /sys/fs/cgroup -maxdepth 4 -name 'kubepods*' | grep ."
ok "no bridge or veth is left (no network link is new)" none_new links
ok "no network namespace is left" sh -c "! comm -13 '$T/before/netns' '$T/after/netns' | grep -q ."
ok "no iptables rule or chain is left" diff "$T/before/iptables" "$T/after/iptables"
ok "the sysctls the kubelet changes are as before" diff "$T/before/sysctl" "$T/after/sysctl"
ok "no directory is left in /var/lib or /run" diff "$T/before/dirs" "$T/after/dirs"
fails "the Node object is deleted" k get node localhost
done_testing
