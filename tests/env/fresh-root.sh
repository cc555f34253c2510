#!/bin/bash
# A brand-new Debian 12 machine for one command: a root made by mmdebstrap's `apt` variant
# (nothing installed but apt and what it needs), with the repository's committed tree
# (git archive HEAD: no uncommitted, untracked or ignored file) in /src, then CMD run there
# as root, with a clean environment. It proves that a command installs everything it needs.
#
#   tests/env/fresh-root.sh check                  # exit 0 if this machine can make one,
#                                                  # else print why and exit 1
#   tests/env/fresh-root.sh run [-f FILE]... -- CMD [ARGS...]
#                                                  # -f copies FILE into /src as well
#
# The base root is made once (~1 minute, from the machine's Debian mirror) and kept as
# $FRESH_ROOT_CACHE/bookworm-apt.tar.zst (default: $BOP_CACHE_DIR or
# /var/cache/backupop-testenv, then fresh-root/); each run unpacks a new copy under
# $TMPDIR and removes it afterwards (FRESH_ROOT_KEEP=1 keeps it). Needs root, mmdebstrap,
# zstd and the Debian mirror. Exit status: CMD's; 125 when the root could not be made.
set -euo pipefail

cache=${FRESH_ROOT_CACHE:-${BOP_CACHE_DIR:-/var/cache/backupop-testenv}/fresh-root}
base=$cache/bookworm-apt.tar.zst
src=$(cd "$(dirname "$0")/../.." && pwd)

why_not() {
	[ "$(id -u)" -eq 0 ] || { echo "making a root needs root (chroot, mounts)"; return; }
	command -v mmdebstrap >/dev/null || { echo "mmdebstrap is not installed"; return; }
	command -v zstd >/dev/null || { echo "zstd is not installed"; return; }
	command -v git >/dev/null && git -C "$src" rev-parse HEAD >/dev/null 2>&1 ||
		{ echo "$src is not a git checkout (the root gets its committed tree)"; return; }
	[ -s "$base" ] && return
	# Making the base needs the mirror; a kept base does not.
	apt-get download --print-uris -qq apt 2>/dev/null | grep -q "^'http" ||
		{ echo "the Debian mirror is not reachable from apt"; return; }
}

make_base() {
	mkdir -p "$cache"
	exec 9>"$cache/lock"
	flock 9
	if [ ! -s "$base" ]; then
		echo "fresh-root: making a Debian 12 base root (apt variant) in $base" >&2
		if ! mmdebstrap --variant=apt --mode=root bookworm "$base.part.tar.zst" \
			>"$cache/mmdebstrap.log" 2>&1; then
			tail -20 "$cache/mmdebstrap.log" >&2
			echo "fresh-root: mmdebstrap failed (the whole log: $cache/mmdebstrap.log)" >&2
			rm -f "$base.part.tar.zst"
			return 1
		fi
		mv "$base.part.tar.zst" "$base"
	fi
	exec 9>&-
}

root=
cleanup() {
	[ -n "$root" ] || return 0
	local m
	for m in dev/pts dev sys proc; do
		mountpoint -q "$root/$m" 2>/dev/null && umount -R -l "$root/$m" 2>/dev/null
	done
	if [ -n "${FRESH_ROOT_KEEP:-}" ]; then
		echo "fresh-root: kept $root" >&2
	else
		# Nothing may still be mounted below it when it goes.
		grep -q " $root/" /proc/mounts || rm -rf --one-file-system "$root"
	fi
}

run() {
	local files=()
	while [ $# -gt 0 ]; do
		case $1 in
		-f) files+=("$2"); shift 2 ;;
		--) shift; break ;;
		*) break ;;
		esac
	done
	[ $# -gt 0 ] || { echo "usage: fresh-root.sh run [-f FILE]... -- CMD [ARGS...]" >&2; return 2; }
	local reason
	reason=$(why_not)
	[ -z "$reason" ] || { echo "fresh-root: $reason" >&2; return 125; }
	make_base || return 125
	root=$(mktemp -d "${TMPDIR:-/tmp}/backupop-fresh.XXXXXX")
	trap cleanup EXIT
	chmod 755 "$root"
	tar -C "$root" --zstd -xf "$base"
	mkdir "$root/src"
	git -C "$src" archive --format=tar HEAD | tar -C "$root/src" -xf -
	local f
	for f in "${files[@]}"; do cp "$f" "$root/src/"; done
	cp -L /etc/resolv.conf "$root/etc/resolv.conf"
	mount -t proc proc "$root/proc"
	mount --rbind /sys "$root/sys"
	mount --make-rslave "$root/sys"
	mount --rbind /dev "$root/dev"
	mount --make-rslave "$root/dev"
	echo "fresh-root: in a new Debian 12 root: $*" >&2
	local rc=0
	chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		LANG=C.UTF-8 TERM=dumb bash -c 'cd /src && exec "$@"' fresh-root "$@" || rc=$?
	return $rc
}

case ${1:-} in
check)
	reason=$(why_not)
	[ -z "$reason" ] || { echo "$reason"; exit 1; } ;;
run)
	shift
	rc=0
	run "$@" || rc=$?
	exit $rc ;;
*)
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2 ;;
esac
