#!/bin/bash
# Database server images for tests on a real node (tests/env/node-local.sh), made the way
# controller/images/build.sh makes backupop's: a Debian 12 root by mmdebstrap with Debian's
# packages, one layer in an OCI image by umoci, no registry.
#   db-image.sh postgres OUT.tar    bop-postgres:15   (postgresql-15)
#   db-image.sh mariadb OUT.tar     bop-mariadb:10.11 (mariadb-server)
#   db-image.sh redis OUT.tar       bop-redis:7.0     (redis-server, redis-tools: redis-cli)
# All run as user 65532 ("db") and write only below /var/lib/db, where the pod mounts an
# emptyDir, so the root can be read-only. The entrypoint (/usr/local/bin/db-start) makes
# a fresh server there on the first start, with the administrator's password from
# $DB_PASSWORD (user "postgres", or "root" for MariaDB; Redis's requirepass), open to TCP
# from anywhere on the default port, and runs it in the foreground. Test images only: no
# TLS, no tuning. The Redis image also serves as a tools image (spec.runner.tools): it has
# redis-cli, which the backupop runner image has not.
# Built images are cached in $BOP_CACHE_DIR/images (default
# /var/cache/backupop-testenv/images), keyed by this script's hash; OUT.tar is a copy.
# Needs root, mmdebstrap, umoci and the Debian mirror.
set -euo pipefail
kind=${1:-} out=${2:-}
case $kind in
postgres) tag=bop-postgres:15 pkgs=postgresql-15 ;;
mariadb) tag=bop-mariadb:10.11 pkgs=mariadb-server ;;
redis) tag=bop-redis:7.0 pkgs=redis-server,redis-tools ;;
*) echo "usage: db-image.sh postgres|mariadb|redis OUT.tar" >&2; exit 2 ;;
esac
[ -n "$out" ] || { echo "usage: db-image.sh postgres|mariadb|redis OUT.tar" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "db-image.sh: needs root (mmdebstrap --mode=root)" >&2; exit 1; }
. "$(dirname "$0")/lib.sh"
need_pkgs mmdebstrap umoci

cache=${BOP_CACHE_DIR:-/var/cache/backupop-testenv}/images
key=$(sha256sum <"$0" | cut -c1-12)
cached=$cache/$kind-$key.oci.tar
if [ -s "$cached" ]; then
	cp "$cached" "$out"
	exit 0
fi

w=$(mktemp -d "${TMPDIR:-/tmp}/bop-db-image.XXXXXX")
trap 'rm -rf "$w"' EXIT
# The entrypoint, kept in the image as /usr/local/bin/db-start.
if [ "$kind" = postgres ]; then
	cat >"$w/db-start" <<'EOF'
#!/bin/sh
set -eu
data=/var/lib/db/data bin=/usr/lib/postgresql/15/bin
if [ ! -s "$data/PG_VERSION" ]; then
	umask 077
	printf '%s\n' "$DB_PASSWORD" >/var/lib/db/pwfile
	"$bin/initdb" -D "$data" -U postgres --pwfile=/var/lib/db/pwfile -E UTF8 \
		--locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/var/lib/db/initdb.log
	rm -f /var/lib/db/pwfile
	echo "host all all 0.0.0.0/0 scram-sha-256" >>"$data/pg_hba.conf"
fi
exec "$bin/postgres" -D "$data" -c listen_addresses='*' -c unix_socket_directories=/var/lib/db
EOF
elif [ "$kind" = redis ]; then
	cat >"$w/db-start" <<'EOF'
#!/bin/sh
# (the password goes into redis.conf as it is: no quotes, backslashes or spaces in it)
set -eu
case $DB_PASSWORD in *\'* | *\"* | *\\* | *" "* | "") echo "DB_PASSWORD: set, no quotes, backslashes or spaces" >&2; exit 2 ;; esac
umask 077
printf 'requirepass %s\n' "$DB_PASSWORD" >/var/lib/db/redis.conf
exec redis-server /var/lib/db/redis.conf --bind 0.0.0.0 --port 6379 --protected-mode no \
	--dir /var/lib/db --daemonize no --logfile "" --save "" --appendonly no
EOF
else
	cat >"$w/db-start" <<'EOF'
#!/bin/sh
# (the password goes into SQL as it is: no quotes or backslashes in it)
set -eu
# the root is read-only: temporary files (mariadb-install-db's server too) go below /var/lib/db
export TMPDIR=/var/lib/db
data=/var/lib/db/data
case $DB_PASSWORD in *\'* | *\\*) echo "DB_PASSWORD: no quotes or backslashes" >&2; exit 2 ;; esac
init=
if [ ! -d "$data/mysql" ]; then
	umask 077
	mkdir -p "$data"
	mariadb-install-db --datadir="$data" --auth-root-authentication-method=normal \
		--skip-test-db --skip-name-resolve --force >/var/lib/db/install.log 2>&1
	cat >/var/lib/db/init.sql <<SQL
CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;
ALTER USER 'root'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
SQL
	init=--init-file=/var/lib/db/init.sql
fi
exec mariadbd --datadir="$data" --socket=/var/lib/db/mysqld.sock --port=3306 \
	--bind-address=0.0.0.0 --skip-name-resolve --pid-file=/var/lib/db/mysqld.pid \
	--tmpdir=/var/lib/db $init
EOF
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0}
# the package scripts make a default cluster or database: removed, the entrypoint makes one
hook='rm -rf "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/* "$1"/var/lib/apt/lists/* \
	"$1"/var/cache/* "$1"/var/log/* "$1"/usr/share/doc "$1"/usr/share/man \
	"$1"/var/lib/postgresql/* "$1"/etc/postgresql/* "$1"/var/lib/mysql/* "$1"/var/lib/redis/*
	install -m 0755 '"$w"'/db-start "$1"/usr/local/bin/db-start
	mkdir -p "$1"/var/lib/db && chown 65532:65532 "$1"/var/lib/db
	echo "db:x:65532:65532:db:/var/lib/db:/usr/sbin/nologin" >>"$1"/etc/passwd
	echo "db:x:65532:" >>"$1"/etc/group'
if ! mmdebstrap --variant=essential --mode=root --format=tar --include="$pkgs" \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--customize-hook="$hook" bookworm "$w/root.tar" >"$w/mmdebstrap.log" 2>&1; then
	tail -20 "$w/mmdebstrap.log" >&2
	echo "db-image.sh: mmdebstrap failed for $tag" >&2
	exit 1
fi
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
umoci init --layout "$w/oci"
umoci new --image "$w/oci:${tag#*:}"
umoci raw add-layer --image "$w/oci:${tag#*:}" --history.created "$created" "$w/root.tar"
umoci config --image "$w/oci:${tag#*:}" --created "$created" --architecture amd64 --os linux \
	--config.entrypoint /usr/local/bin/db-start --config.user 65532:65532 \
	--config.workingdir /var/lib/db \
	--config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	--manifest.annotation "org.opencontainers.image.ref.name=${tag#*:}"
umoci gc --layout "$w/oci"
mkdir -p "$cache"
tar -C "$w/oci" --sort=name --owner=0 --group=0 --numeric-owner -cf "$w/image.tar" .
rm -f "$cache/$kind"-*.oci.tar
mv "$w/image.tar" "$cached"
cp "$cached" "$out"
