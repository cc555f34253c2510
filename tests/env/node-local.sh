#!/bin/bash
# A real, throwaway Kubernetes node beside the API server of k8s-local.sh, for tests on
# Debian 12: kubelet + kube-scheduler v1.20.2 (built from the same source, same cache),
# Debian's containerd and runc, a local pause image and a bridge CNI.
#   node-local.sh start    start containerd, the kubelet and kube-scheduler against the API
#                          server in $K8S_DIR and wait until the node is Ready; prints the
#                          exports tests need (see env). Exit 77 with "cannot run a node
#                          here: WHY" on stderr when this machine cannot run one (no root,
#                          no cgroups, no bridge...); 1 when it should but did not.
#   node-local.sh stop     stop all of it; leaves no process, mount, cgroup, bridge, network
#                          namespace or changed sysctl behind
#   node-local.sh env      BOP_TEST_NODE_NAME, _IP (the node's IP: its eth0 address),
#                          _GATEWAY (the bridge's address), _CTR (a ctr command line),
#                          _INCLUSTER (IP:PORT of the API server's Service when pods can
#                          reach it there, as in-cluster clients do; empty when not)
#   node-local.sh file-image OUT.tar NAME:TAG ENTRYPOINT... -- /host/file:/path/in/image...
#                          an OCI image tarball of a few host files (static binaries) and an
#                          empty /tmp (mode 1777), made with umoci, owned by root, timestamps
#                          at SOURCE_DATE_EPOCH (or 0)
#   node-local.sh import IMAGE.tar NAME   load an OCI image tarball into the node's containerd
#                          as NAME:TAG (TAG from the tarball's ref name), NAME completed as
#                          docker does (busybox is docker.io/library/busybox, org/app is
#                          docker.io/org/app); pods name it with imagePullPolicy: Never
# Env: K8S_DIR (the API server's state dir, as for k8s-local.sh; the node lives in
# $K8S_DIR/node), BOP_CACHE_DIR / K8S_CACHE (the binaries, as for k8s-local.sh),
# NODE_BRIDGE (bopbr0), NODE_POD_CIDR (10.244.250.0/24; the bridge gets .1), NODE_CGROUP
# (bop-node: the kubelet's cgroupRoot, made in every cgroup hierarchy).
# Packages it installs: containerd runc containernetworking-plugins catatonit umoci
# iproute2 iptables. tests/node/ also needs busybox-static for its image (tests/run installs it).
#
# How (see the README's test-environment notes): containerd and the kubelet run in one private
# mount namespace (unshare) with a tmpfs on /run and bind mounts over /var/log,
# /var/lib/kubelet and /var/lib/cni, so their mounts and files never reach the host; the
# scheduler runs outside it. The pods' network is a bridge made here with isGateway false, so
# the plugin leaves ip_forward alone, and a default route via the bridge's address: pods reach
# the host's addresses (the bridge's, the node IP: nothing is forwarded), not its 127.0.0.1.
# No DNS, no Service ClusterIP (no kube-proxy) but the API server's own (api_dnat). The kubelet
# serves on 127.0.0.1 only (anonymous, AlwaysAllow); the node is named localhost so that the
# API server's first choice of address (Hostname) reaches it for logs/exec.
set -euo pipefail
CACHE=${K8S_CACHE:-${BOP_CACHE_DIR:-/var/cache/backupop-testenv}/k8s-1.20.2}
D=${K8S_DIR:-/tmp/backupop-k8s}
N=$D/node
BRIDGE=${NODE_BRIDGE:-bopbr0}
CIDR=${NODE_POD_CIDR:-10.244.250.0/24}
CG=${NODE_CGROUP:-bop-node}
# one node per bridge on a host: held (flock) by start and every process of the node, so it
# is free exactly when no node of ours runs; it names the node dir of the last one started
LOCK=${NODE_LOCK:-/run/backupop-node-$BRIDGE.lock}
NAME=localhost
SOCK=$N/containerd.sock
PAUSE=docker.io/library/bop-pause:3.2
# what the kubelet sets (vm.overcommit_memory, kernel.panic...): saved before, put back after
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
	kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

cannot() { echo "cannot run a node here: $*" >&2; exit 77; }
ctr_() { ctr --address "$SOCK" -n k8s.io "$@"; }
k() { "$CACHE/kubectl" --kubeconfig "$D/kubeconfig" "$@"; }

# shellcheck source=tests/env/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The cgroup hierarchies: every v1 one mounted under /sys/fs/cgroup, and the v2 one.
hierarchies() {
	awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts | sort -u
}

gateway() { local p=${CIDR%/*}; echo "${p%.*}.$((${p##*.} + 1))"; }
node_ip() {
	# the default route's source address, else the first global one (not our bridge's); the
	# kubelet refuses a loopback node IP. `route get` sends nothing.
	local a
	a=$(ip -4 -o route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
	[[ -n $a ]] || a=$(ip -4 -o addr show scope global | awk -v b="$BRIDGE" '$2 != b { sub("/.*", "", $4); print $4; exit }')
	echo "$a"
}

file_image() { # OUT.tar NAME:TAG ENTRYPOINT... -- SRC:DEST...
	local out=$1 tag=${2#*:} w e=() a
	shift 2
	while (($#)) && [[ $1 != -- ]]; do e+=("$1"); shift; done
	shift
	need_pkgs umoci
	w=$(mktemp -d "${TMPDIR:-/tmp}/bop-image.XXXXXX")
	mkdir "$w/root"
	mkdir -m 1777 "$w/root/tmp"
	for a in "$@"; do
		mkdir -p "$w/root$(dirname "${a#*:}")"
		cp "${a%%:*}" "$w/root${a#*:}"
	done
	local t=${SOURCE_DATE_EPOCH:-0}
	tar -C "$w/root" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$t" \
		-cf "$w/layer.tar" .
	umoci init --layout "$w/oci"
	umoci new --image "$w/oci:$tag"
	umoci raw add-layer --image "$w/oci:$tag" "$w/layer.tar"
	local ep=()
	for a in "${e[@]}"; do ep+=(--config.entrypoint "$a"); done
	umoci config --image "$w/oci:$tag" "${ep[@]}" --config.workingdir / \
		--created "$(date -u -d "@$t" +%Y-%m-%dT%H:%M:%SZ)"
	umoci gc --layout "$w/oci"
	tar -C "$w/oci" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$t" -cf "$out" .
	rm -rf "$w"
}

import() { # TARBALL NAME: names as docker normalizes them (busybox, org/app, host.tld/app)
	local n=$2
	case ${n%%/*} in
	*.* | *:* | localhost) ;;
	*) [[ $n == */* ]] && n=docker.io/$n || n=docker.io/library/$n ;;
	esac
	ctr_ images import --base-name "$n" "$1" >/dev/null
}

# The checks that tell "this machine cannot" from "this did not work".
preflight() {
	[[ $(id -u) == 0 ]] ||
		cannot "it needs root (containerd and the kubelet mount filesystems, make cgroups, a bridge and network namespaces)"
	[[ -f $D/kubeconfig ]] || cannot "no API server in $D (start tests/env/k8s-local.sh first)"
	need_pkgs containerd runc containernetworking-plugins catatonit umoci iproute2 iptables ||
		cannot "could not install containerd, runc, containernetworking-plugins, catatonit, umoci, iptables"
	unshare --mount --propagation private sh -c 'mount --make-rshared / && mount -t tmpfs none /mnt' ||
		cannot "unshare --mount with a tmpfs fails (no CAP_SYS_ADMIN?)"
	# containerd's snapshotter: overlayfs on the filesystem of $D
	local o; o=$(mktemp -d "$D/overlay-probe.XXXXXX")
	mkdir "$o/l" "$o/u" "$o/w" "$o/m"
	if ! unshare --mount --propagation private \
		mount -t overlay overlay -o "lowerdir=$o/l,upperdir=$o/u,workdir=$o/w" "$o/m" 2>/dev/null; then
		rm -rf "$o"
		cannot "overlayfs cannot be mounted on $D (containerd's snapshotter needs it)"
	fi
	rm -rf "$o"
	local h have=0
	for h in $(hierarchies); do
		have=1
		[[ -w $h ]] || cannot "the cgroup hierarchy $h is not writable"
	done
	((have)) || cannot "no cgroup filesystem is mounted under /sys/fs/cgroup"
	[[ -n $(node_ip) ]] || cannot "no non-loopback IPv4 address for the node IP"
	claim
	if ip link show "$BRIDGE" >/dev/null 2>&1; then
		echo "node-local: the bridge $BRIDGE exists and is not a node's of ours (delete it, or set NODE_BRIDGE)" >&2
		exit 1
	fi
	ss -Hltn 'sport = :10250' | grep -q . &&
		{ echo "node-local: port 10250 is taken (another kubelet?)" >&2; exit 1; }
	return 0
}

# Takes the host's node lock (another node of ours runs: exit 1), then clears what a node
# that ended without a stop left behind (its processes were killed, e.g. with the session
# that ran it): first by its own state dir, named in the lock, then by name, for what a
# missing state dir no longer names (the DNAT chain, the bridge, the cgroups).
claim() {
	exec {LOCKFD}>>"$LOCK" || cannot "cannot open the lock $LOCK"
	if ! flock -n "$LOCKFD"; then
		echo "node-local: another node runs on this host (state in $(cat "$LOCK" 2>/dev/null || echo '?');" \
			"processes $(fuser "$LOCK" 2>/dev/null | tr -s ' ' | sed 's/^ //'); K8S_DIR=<its dir> node-local.sh stop)" >&2
		exit 1
	fi
	local old; old=$(cat "$LOCK" 2>/dev/null || true)
	if [[ -n $old && $old != "$N" && -d $old ]]; then
		echo "node-local: clearing what the node in $old left (it ended without a stop)" >&2
		(N=$old D=${old%/node} SOCK=$old/containerd.sock stop) >/dev/null 2>&1 || true
	fi
	iptables -w -t nat -S "BOP-NODE-$BRIDGE" >/dev/null 2>&1 && remove_chain "BOP-NODE-$BRIDGE" "$BRIDGE"
	kill_cgroup "$CG"
	remove_cgroup "$CG"
	# a bridge of ours has the bridge network's gateway address; another one is left alone
	if ip -4 -o addr show dev "$BRIDGE" 2>/dev/null | grep -q " $(gateway)/"; then
		ip link del "$BRIDGE" 2>/dev/null || true
	fi
	echo "$N" >"$LOCK"
}

setup_host() {
	mkdir -p "$N"/{log,kubelet,cni/net.d,cni/lib,containerd,images,volume-plugins}
	local s
	: >"$N/sysctl.saved"
	for s in "${SYSCTLS[@]}"; do
		[[ -e /proc/sys/${s//./\/} ]] && echo "$s=$(sysctl -n "$s")" >>"$N/sysctl.saved"
	done
	# mount points for the namespace's bind mounts; made here only when missing, and removed
	# by stop (they stay empty on the host)
	: >"$N/made-dirs"
	for s in /var/lib/kubelet /var/lib/cni; do
		[[ -d $s ]] || { mkdir "$s" && echo "$s" >>"$N/made-dirs"; }
	done
	ip link add "$BRIDGE" type bridge || cannot "could not create the bridge $BRIDGE"
	echo "$BRIDGE" >"$N/bridge"
	ip addr add "$(gateway)/${CIDR#*/}" dev "$BRIDGE"
	ip link set "$BRIDGE" up
	local h
	for h in $(hierarchies); do
		mkdir -p "$h/$CG" || cannot "could not create the cgroup $h/$CG"
		if [[ -f $h/cpuset.cpus ]]; then
			cat "$h/cpuset.cpus" >"$h/$CG/cpuset.cpus"
			cat "$h/cpuset.mems" >"$h/$CG/cpuset.mems"
		fi
		if [[ -f $h/cgroup.subtree_control && -f $h/cgroup.controllers ]]; then
			# cgroup v2: hand the controllers down to the kubelet's pods
			local c
			for c in $(<"$h/$CG/cgroup.controllers"); do
				echo "+$c" >"$h/$CG/cgroup.subtree_control" 2>/dev/null || true
			done
		fi
	done
	echo "$CG" >"$N/cgroup"
}

# Pods find the API server at the address of the Service default/kubernetes (in
# KUBERNETES_SERVICE_HOST/PORT, what in-cluster clients read), which kube-proxy would make
# reachable; there is none, so one DNAT rule in a chain of ours does it for pods on our
# bridge, to the API server on 127.0.0.1 (route_localnet on the bridge only: it goes with
# the bridge). The API server's certificate names that address (k8s-local.sh).
api_dnat() {
	local svc server chain=BOP-NODE-$BRIDGE
	svc=$(k -n default get service kubernetes -o 'jsonpath={.spec.clusterIP}:{.spec.ports[0].port}' 2>/dev/null) ||
		{ echo "no Service default/kubernetes"; return 1; }
	server=$(sed -n 's|^ *server: https://\(127\.0\.0\.1:[0-9]*\)$|\1|p' "$D/kubeconfig")
	[[ -n $server ]] || { echo "the API server is not on 127.0.0.1"; return 1; }
	command -v iptables >/dev/null || { echo "no iptables"; return 1; }
	iptables -w -t nat -N "$chain" || { echo "iptables -t nat fails"; return 1; }
	echo "$chain $BRIDGE" >"$N/iptables"
	if ! { iptables -w -t nat -A "$chain" -p tcp -d "${svc%:*}/32" --dport "${svc##*:}" \
		-j DNAT --to-destination "$server" &&
		iptables -w -t nat -A PREROUTING -i "$BRIDGE" -j "$chain" &&
		sysctl -q -w "net.ipv4.conf.$BRIDGE.route_localnet=1"; }; then
		echo "the DNAT rule to $server cannot be made"
		return 1
	fi
	echo "$svc" >"$N/incluster"
}

write_configs() {
	cat >"$N/containerd.toml" <<EOF
version = 2
root = "$N/containerd/root"
state = "$N/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$N/cni/net.d"
EOF
	cat >"$N/cni/net.d/10-bop.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "bop",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": false,
      "ipMasq": false,
      "hairpinMode": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$CIDR", "gateway": "$(gateway)"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$N/cni/networks"
      }
    },
    {"type": "loopback"}
  ]
}
EOF
	local nofile; nofile=$(ulimit -Hn)
	[[ $nofile == unlimited ]] && nofile=1048576
	cat >"$N/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
  x509: {}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: /$CG
cgroupsPerQOS: true
failSwapOn: false
maxOpenFiles: $nofile
oomScoreAdj: 0
evictionHard: {"nodefs.available": "0%", "imagefs.available": "0%", "memory.available": "50Mi"}
imageGCHighThresholdPercent: 100
makeIPTablesUtilChains: false
hairpinMode: none
volumePluginDir: $N/volume-plugins
protectKernelDefaults: false
serializeImagePulls: false
# Ready the moment the runtime is (not at the next 10 s status update); unchanged status is
# still only reported every nodeStatusReportFrequency (5 min), so this costs the API nothing
nodeStatusUpdateFrequency: 2s
EOF
}

# Runs inside `unshare --mount`: the namespace's own mounts, then containerd and the kubelet.
inner() {
	mount --make-rshared /
	mount -t tmpfs -o mode=755 bop-run /run
	mount --bind "$N/log" /var/log
	mount --bind "$N/kubelet" /var/lib/kubelet
	mount --bind "$N/cni/lib" /var/lib/cni
	containerd --config "$N/containerd.toml" >"$N/containerd.log" 2>&1 &
	echo $! >"$N/containerd.pid"
	for _ in $(seq 100); do
		[[ -S $SOCK ]] && ctr --address "$SOCK" version >/dev/null 2>&1 && break
		kill -0 "$(cat "$N/containerd.pid")" 2>/dev/null || break
		sleep 0.1
	done
	ctr --address "$SOCK" version >/dev/null 2>&1 || { echo containerd-failed >"$N/inner.status"; exit 1; }
	import "$N/images/pause.tar" bop-pause >>"$N/containerd.log" 2>&1 ||
		{ echo pause-import-failed >"$N/inner.status"; exit 1; }
	"$CACHE/kubelet" --config="$N/kubelet.yaml" --kubeconfig="$D/kubeconfig" \
		--container-runtime=remote --container-runtime-endpoint="unix://$SOCK" \
		--hostname-override="$NAME" --node-ip="$(node_ip)" --v=1 >"$N/kubelet.log" 2>&1 &
	echo $! >"$N/kubelet.pid"
	echo started >"$N/inner.status"
	wait
}

undo() { (($1 == 0)) || stop >/dev/null 2>&1; exit "$1"; }

start() {
	[[ -x $CACHE/kubelet && -x $CACHE/kube-scheduler ]] || bash "$(dirname "$0")/k8s-local.sh" build
	stop >/dev/null 2>&1 || true
	preflight
	rm -rf "$N"
	local t0=$SECONDS
	# from here on, any way out but success (a `cannot`, a failed command) undoes the setup
	trap 'undo $?' EXIT
	setup_host
	write_configs
	local why
	why=$(api_dnat 2>&1) ||
		echo "node-local: pods will not reach the API server (in-cluster clients): $why" >&2
	file_image "$N/images/pause.tar" bop-pause:3.2 /catatonit -P -- /usr/bin/catatonit:/catatonit
	# setsid: the namespace's holder is not in the caller's process group (the caller's ^C
	# or its test harness's kill of the group would leave half a node)
	setsid unshare --mount --propagation private bash "$0" inner </dev/null >"$N/inner.log" 2>&1 &
	echo $! >"$N/ns.pid"
	for _ in $(seq 150); do
		[[ -s $N/inner.status ]] && break
		sleep 0.1
	done
	readlink "/proc/$(cat "$N/ns.pid")/ns/mnt" >"$N/ns.id" 2>/dev/null || true
	case $(cat "$N/inner.status" 2>/dev/null) in
	started) ;;
	containerd-failed)
		local why; why=$(grep -m1 -i 'level=fatal\|level=error' "$N/containerd.log" || tail -1 "$N/containerd.log")
		cannot "containerd does not start: $why" ;;
	*)
		tail -5 "$N/inner.log" "$N/containerd.log" >&2 || true
		echo "node-local: containerd or the pause image failed (logs above)" >&2
		exit 1 ;;
	esac
	"$CACHE/kube-scheduler" --kubeconfig="$D/kubeconfig" --leader-elect=false --port=0 \
		--bind-address=127.0.0.1 --secure-port=10259 --v=1 >"$N/scheduler.log" 2>&1 &
	echo $! >"$N/scheduler.pid"
	for _ in $(seq 180); do
		[[ $(k get node "$NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]] &&
			break
		kill -0 "$(cat "$N/kubelet.pid")" 2>/dev/null || break
		sleep 0.5
	done
	if [[ $(k get node "$NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) != True ]]; then
		local why
		# its last errors, without the noise of every machine (no perf_event cgroup)
		why=$(grep '^[EF]' "$N/kubelet.log" | grep -v perf_event | tail -5 | cut -c1-300 || true)
		[[ -n $why ]] || why=$(tail -3 "$N/kubelet.log")
		echo "node-local: the node did not become Ready; the kubelet said:" >&2
		echo "$why" >&2
		exit 1
	fi
	trap - EXIT
	echo "# node $NAME Ready in $((SECONDS - t0)) s" >&2
	envs
}

# Every pid in the cgroups under our cgroupRoot, all hierarchies.
cgroup_pids() {
	local cg=$1 h
	for h in $(hierarchies); do
		[[ -d $h/$cg ]] && find "$h/$cg" -name cgroup.procs -exec cat {} + 2>/dev/null
	done | sort -u
}

kill_cgroup() { # CG: SIGKILL to every process in it, until none is left (3 tries)
	local p
	for _ in 1 2 3; do
		mapfile -t p < <(cgroup_pids "$1")
		((${#p[@]})) || break
		kill -KILL "${p[@]}" 2>/dev/null || true
		sleep 0.2
	done
}

remove_cgroup() { # CG: rmdir it and the cgroups under it, in every hierarchy (a dying
	# process's cgroup goes only once it is reaped: tried for up to 4 s)
	local h
	for _ in $(seq 20); do
		for h in $(hierarchies); do
			[[ -d $h/$1 ]] && find "$h/$1" -depth -type d -exec rmdir {} + 2>/dev/null
		done
		[[ -z $(for h in $(hierarchies); do [[ -d $h/$1 ]] && echo x; done) ]] && break
		sleep 0.2
	done
}

remove_chain() { # CHAIN BRIDGE: the DNAT chain of api_dnat and the rule that jumps to it
	iptables -w -t nat -D PREROUTING -i "$2" -j "$1" 2>/dev/null || true
	iptables -w -t nat -F "$1" 2>/dev/null || true
	iptables -w -t nat -X "$1" 2>/dev/null || true
}

stop_pid() { # FILE [SIGNAL]
	[[ -f $1 ]] || return 0
	local p; p=$(cat "$1")
	kill "-${2:-TERM}" "$p" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null || true
	rm -f "$1"
}

stop() {
	[[ -d $N ]] || return 0
	stop_pid "$N/scheduler.pid"
	stop_pid "$N/kubelet.pid"
	if [[ -S $SOCK ]]; then
		local t
		for t in $(ctr_ tasks ls -q 2>/dev/null); do
			ctr_ tasks kill -s KILL "$t" >/dev/null 2>&1 || true
		done
		for t in $(ctr_ tasks ls -q 2>/dev/null); do
			ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true
		done
	fi
	local cg; cg=$(cat "$N/cgroup" 2>/dev/null || true)
	[[ -z $cg ]] || kill_cgroup "$cg"
	stop_pid "$N/containerd.pid"
	# containerd 1.6 writes no shim pid: the shims (and anything else) are found by the
	# mount namespace they share with containerd
	# (only while the namespace holder lives in it: a mount namespace's id is reused once
	# it is gone, and another node may have it now)
	local ns; ns=$(cat "$N/ns.id" 2>/dev/null || true)
	[[ -n $ns && $(readlink "/proc/$(cat "$N/ns.pid" 2>/dev/null)/ns/mnt" 2>/dev/null) == "$ns" ]] || ns=
	if [[ -n $ns ]]; then
		local q
		for q in /proc/[0-9]*; do
			[[ $(readlink "$q/ns/mnt" 2>/dev/null) == "$ns" ]] && kill -KILL "${q#/proc/}" 2>/dev/null
		done
	fi
	stop_pid "$N/ns.pid" KILL
	rm -f "$N/ns.id"
	if [[ -n $cg ]]; then
		remove_cgroup "$cg"
		rm -f "$N/cgroup"
	fi
	if [[ -f $N/iptables ]]; then
		local chain br
		read -r chain br <"$N/iptables"
		remove_chain "$chain" "$br"
		rm -f "$N/iptables" "$N/incluster"
	fi
	[[ -f $N/bridge ]] && { ip link del "$(cat "$N/bridge")" 2>/dev/null || true; rm -f "$N/bridge"; }
	if [[ -f $N/sysctl.saved ]]; then
		local s
		while IFS= read -r s; do sysctl -q -w "$s" >/dev/null 2>&1 || true; done <"$N/sysctl.saved"
		rm -f "$N/sysctl.saved"
	fi
	if [[ -f $N/made-dirs ]]; then
		local d
		while IFS= read -r d; do rmdir "$d" 2>/dev/null || true; done <"$N/made-dirs"
		rm -f "$N/made-dirs"
	fi
	# the Node object would stay NotReady, and its pods Terminating, for ever
	if [[ -f $D/kubeconfig && -x $CACHE/kubectl ]]; then
		k delete node "$NAME" --wait=false --request-timeout=5s >/dev/null 2>&1 || true
	fi
	# the images' files (the logs stay)
	rm -rf "$N/containerd" "$N/kubelet" "$N/cni" "$N/images"
	# nothing of this node is left for the next start to clear
	if [[ $(cat "$LOCK" 2>/dev/null) == "$N" ]]; then : >"$LOCK"; fi
}

envs() {
	echo "export BOP_TEST_NODE_NAME=$NAME BOP_TEST_NODE_IP=$(node_ip) BOP_TEST_NODE_GATEWAY=$(gateway)" \
		"BOP_TEST_NODE_DIR=$N BOP_TEST_NODE_CTR='ctr --address $SOCK -n k8s.io'" \
		"BOP_TEST_NODE_INCLUSTER=$(cat "$N/incluster" 2>/dev/null)"
}

case ${1:-start} in
build) bash "$(dirname "$0")/k8s-local.sh" build ;;
start) start ;;
stop) stop ;;
inner) inner ;;
env) envs ;;
file-image) shift; file_image "$@" ;;
import) import "$2" "$3" ;;
*) echo "usage: $0 build|start|stop|env|file-image OUT.tar NAME:TAG CMD... -- SRC:DEST...|import TAR NAME" >&2; exit 2 ;;
esac
