# What the scripts of tests/env share; source it.

# need_pkgs PKG...: installs (apt-get, as root) those of the Debian packages that are not
# installed yet; apt's errors reach stderr.
need_pkgs() {
	local missing=() p
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	((${#missing[@]} == 0)) && return 0
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# wait_pod_done NS POD [SECONDS]: waits (60 s by default) until the pod has Succeeded or
# Failed, through the caller's k() (its kubectl); prints the last phase seen.
wait_pod_done() {
	local phase= i
	for ((i = 0; i < ${3:-60} * 2; i++)); do
		phase=$(k -n "$1" get pod "$2" -o 'jsonpath={.status.phase}' 2>/dev/null)
		case $phase in Succeeded | Failed) break ;; esac
		sleep 0.5
	done
	echo "$phase"
}

# images_key SRC: what the images of controller/images/build.sh depend on in the source
# checkout SRC: its committed tree without tests/. Tests keep the images they built in
# $BOP_BUILD_ROOT/images with this key in its file "tree", and reuse them when it matches.
images_key() {
	git -C "$1" ls-tree HEAD | grep -v "$(printf '\t')tests\$" | sha256sum | cut -c1-16
}

# sa_kubeconfig NS SA OUT: writes OUT (mode 600), a kubeconfig of the caller's API server
# (its k(), the kubectl of an admin) that authenticates with the token of the
# ServiceAccount NS/SA (the Secret kube-controller-manager makes for it in Kubernetes 1.20,
# waited for up to 30 s), with NS as its namespace; fails where no token comes. The token
# goes from kubectl to the file, never through a command line.
sa_kubeconfig() {
	local secret= token= server ca i
	for ((i = 0; i < 150; i++)); do
		secret=$(k -n "$1" get sa "$2" -o jsonpath='{.secrets[0].name}' 2>/dev/null) && [ -n "$secret" ] &&
			token=$(k -n "$1" get secret "$secret" -o jsonpath='{.data.token}' 2>/dev/null | base64 -d) &&
			[ -n "$token" ] && break
		sleep 0.2
	done
	[ -n "$token" ] || return 1
	server=$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')
	ca=$(k config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
	(umask 077 && cat >"$3") <<EOK
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "$server", certificate-authority-data: "$ca"}
users:
- name: sa
  user: {token: "$token"}
contexts:
- name: c
  context: {cluster: c, user: sa, namespace: $1}
current-context: c
EOK
	chmod 600 "$3"
}

# monitoring_names RULES DASHBOARD: the metrics (backupop_*, and up) that the Prometheus
# rules file RULES (groups of rules) and the Grafana dashboard DASHBOARD (its panels'
# targets and its query variables) use, one name a line, sorted.
monitoring_names() {
	python3 - "$1" "$2" <<'PY'
import json, re, sys, yaml
exprs = [r['expr'] for g in yaml.safe_load(open(sys.argv[1]))['groups'] for r in g['rules']]
d = json.load(open(sys.argv[2]))
exprs += [t['expr'] for p in d['panels'] for t in p.get('targets', [])]
exprs += [v['definition'] for v in d['templating']['list'] if v['type'] == 'query']
names = set()
for e in exprs:
    names |= set(re.findall(r'\b(backupop_[a-z0-9_]+|up)\b', e))
print('\n'.join(sorted(names)))
PY
}

# need_node WHY-ROOT: for a test that starts a node of node-local.sh: skips it (tap.sh's
# skip_all) where there is no API server of k8s-local.sh to join (BOP_TEST_K8S_DIR), the
# user is not root (WHY-ROOT: the reason given), or the node's binaries are not built in
# $CACHE.
need_node() {
	local b
	[ -n "${BOP_TEST_K8S_DIR:-}" ] ||
		skip_all "no API server of tests/env/k8s-local.sh to join (BOP_TEST_K8S_DIR is not set; tests/run sets it)"
	[ "$(id -u)" -eq 0 ] || skip_all "$1"
	for b in kubelet kube-scheduler kubectl; do
		[ -x "$CACHE/$b" ] || skip_all "$b is not built ($CACHE; tests/env/k8s-local.sh build makes it)"
	done
}
