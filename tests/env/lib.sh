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
