#!/bin/bash
# Builds the two container images the shipped manifests name, from the Debian packages,
# without a registry or a container engine:
#
#   backupop/runner:VERSION       backupop-runner and the backupop CLI, with the database
#                                 clients the engines run (postgresql-client-15,
#                                 mariadb-client); entrypoint /usr/sbin/backupop-runner;
#                                 and /usr/lib/backupop/backupop-exec-agent (static), which
#                                 runner pods copy into a schedule's tools container
#   backupop/controller:VERSION   backupop-controller; entrypoint /usr/sbin/backupop-controller
#
# Each is a Debian 12 root made by mmdebstrap (the essential set plus those packages and
# the locally built .debs: no apt, no apt sources, no docs or man pages), one layer in an
# OCI image made by umoci, running as user 65532 (a passwd entry "backupop"), and
# writing nothing outside the emptyDir the pod mounts on /tmp, so the root can be
# read-only. Nothing needs a shell at run time. Given SOURCE_DATE_EPOCH (default: the
# time of the commit) and the same Debian packages, a build gives the same bytes.
#
#   controller/images/build.sh [-d DEBDIR] [-o OUTDIR] [runner] [controller]
#
# DEBDIR holds the .debs (default: they are built first, with dpkg-buildpackage, from the
# committed tree, and kept in OUTDIR/debs). OUTDIR (default ./images) gets, per image, NAME-VERSION.oci.tar (an OCI
# layout: `ctr -n k8s.io images import --base-name docker.io/backupop/NAME`,
# `podman load -i`, `skopeo copy oci-archive:...`) and, when skopeo is installed,
# NAME-VERSION.docker.tar (`docker load -i`). Needs root, mmdebstrap, umoci and the
# Debian mirror; installs mmdebstrap and umoci with apt-get when missing.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
debdir= out=$PWD/images
while getopts d:o: opt; do
	case $opt in
	d) debdir=$(cd "$OPTARG" && pwd) ;;
	o) mkdir -p "$OPTARG" && out=$(cd "$OPTARG" && pwd) ;;
	*) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
images=("$@")
[ ${#images[@]} -gt 0 ] || images=(runner controller)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'images: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "building images needs root (mmdebstrap --mode=root)"
missing=()
for tool in mmdebstrap:mmdebstrap umoci:umoci zstd:zstd; do
	command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
		die "could not install ${missing[*]}"
fi

version=$(sed -n "s/^  version: '\([^']*\)',/\1/p" "$src/meson.build")
[ -n "$version" ] || die "no version in meson.build"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$src" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)

work=$(mktemp -d "${TMPDIR:-/tmp}/backupop-images.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ -z "$debdir" ]; then
	say "building the Debian packages from the committed tree"
	mkdir -p "$work/pkg/backupop"
	git -C "$src" archive HEAD | tar -C "$work/pkg/backupop" -xf -
	(cd "$work/pkg/backupop" && dpkg-buildpackage -us -uc -b >"$work/pkg/build.log" 2>&1) ||
		{ tail -30 "$work/pkg/build.log" >&2; die "dpkg-buildpackage failed"; }
	mkdir -p "$out/debs"
	cp "$work"/pkg/*.deb "$out/debs/"
	debdir=$out/debs
fi
deb() { # package
	local f
	f=$(ls "$debdir/$1"_*.deb 2>/dev/null | grep -v dbgsym | head -1)
	[ -n "$f" ] || die "no $1 package in $debdir"
	echo "$f"
}

# What an image's root must not carry: package manager state and sources, docs, man
# pages, translations, caches and logs.
trim_hook='rm -rf "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/* \
	"$1"/var/lib/apt/lists/* "$1"/var/cache/* "$1"/var/log/* "$1"/usr/share/doc \
	"$1"/usr/share/man "$1"/usr/share/info "$1"/usr/share/lintian "$1"/usr/share/locale \
	"$1"/etc/machine-id "$1"/var/lib/dbus/machine-id "$1"/etc/ld.so.cache
	ldconfig -r "$1"
	echo "backupop:x:65532:65532:backupop:/tmp:/usr/sbin/nologin" >>"$1"/etc/passwd
	echo "backupop:x:65532:" >>"$1"/etc/group
	rm -f "$1"/etc/passwd- "$1"/etc/group- "$1"/etc/shadow- "$1"/etc/gshadow-'

build_image() { # name entrypoint packages...
	local name=$1 entry=$2; shift 2
	local include rootfs=$work/$name.rootfs.tar layout=$work/$name.oci
	include=$(IFS=,; echo "$*")
	say "backupop/$name:$version: a Debian 12 root with $include"
	if ! mmdebstrap --variant=essential --mode=root --format=tar \
		--include="$include" \
		--hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
		--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
		--customize-hook="$trim_hook" \
		bookworm "$rootfs" >"$work/$name.log" 2>&1; then
		tail -30 "$work/$name.log" >&2
		die "mmdebstrap failed for $name"
	fi
	say "backupop/$name:$version: the OCI image"
	umoci init --layout "$layout"
	umoci new --image "$layout:$version"
	umoci raw add-layer --image "$layout:$version" --history.created "$created" \
		--history.created_by "controller/images/build.sh (mmdebstrap bookworm, $include)" "$rootfs"
	umoci config --image "$layout:$version" --created "$created" --author "backupop" \
		--architecture amd64 --os linux \
		--config.entrypoint "$entry" --config.user 65532:65532 --config.workingdir /tmp \
		--config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--config.env TMPDIR=/tmp \
		--config.label "org.opencontainers.image.title=backupop-$name" \
		--config.label "org.opencontainers.image.version=$version" \
		--config.label "org.opencontainers.image.source=https://github.com/backupop/backupop" \
		--manifest.annotation "org.opencontainers.image.ref.name=$version" \
		--history.created "$created" --history.created_by "umoci config"
	umoci gc --layout "$layout"
	# the layout as a tar with fixed names, owners and times
	find "$layout" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	tar -C "$layout" --sort=name --owner=0 --group=0 --numeric-owner --format=posix \
		--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
		-cf "$out/$name-$version.oci.tar" .
	if command -v skopeo >/dev/null; then
		rm -f "$out/$name-$version.docker.tar"
		skopeo copy --quiet "oci:$layout:$version" \
			"docker-archive:$out/$name-$version.docker.tar:backupop/$name:$version" ||
			die "skopeo could not write the docker-archive of $name"
	fi
	local size
	size=$(tar -xOf "$rootfs" 2>/dev/null | wc -c)
	printf 'backupop/%s:%s  root %s MB unpacked, image %s MB (%s)\n' "$name" "$version" \
		"$((size / 1000000))" "$(($(stat -c %s "$out/$name-$version.oci.tar") / 1000000))" \
		"$out/$name-$version.oci.tar"
}

mkdir -p "$out"
for image in "${images[@]}"; do
	case $image in
	runner)
		build_image runner /usr/sbin/backupop-runner ca-certificates tzdata \
			postgresql-client-15 mariadb-client \
			"$(deb libbackupop1)" "$(deb backupop)" "$(deb backupop-runner)" ;;
	controller)
		build_image controller /usr/sbin/backupop-controller ca-certificates \
			"$(deb libbackupop1)" "$(deb backupop-controller)" ;;
	*) die "unknown image '$image' (runner, controller)" ;;
	esac
done
