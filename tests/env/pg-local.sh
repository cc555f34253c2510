#!/bin/sh
# A private PostgreSQL cluster for tests, on loopback only.
#
#   pg-local.sh start DIR     initdb DIR/data and start it; writes DIR/env
#   pg-local.sh stop DIR      stop it (immediately); DIR is left for the caller to remove
#
# The server listens on 127.0.0.1:PORT (a free port) and on a socket in DIR. Local (socket)
# connections are trusted, TCP needs a password (scram-sha-256). The superuser is
# "postgres". With PG_LOCAL_USER and PG_LOCAL_PASSWORD in the environment, start also
# creates that login role (superuser) with that password. Run as root, the cluster is
# created and run as the `postgres` OS user (initdb refuses root).
#
# DIR/env (sourceable) holds PG_BIN, PG_PORT, PG_SOCKDIR, PG_SUPERUSER.
set -eu

find_bindir() {
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
		[ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
	done
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(readlink -f "$(command -v initdb)")"
		return 0
	fi
	return 1
}

free_port() {
	# below the ephemeral port range, where no outgoing connection takes it first
	python3 "$(dirname "$0")/free-port.py"
}

# Runs a command as the cluster's owner.
as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

start() {
	dir=$1
	bin=$(find_bindir) || { echo "pg-local: PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql" >&2; exit 3; }
	mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && chown postgres "$dir"
	as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
		--no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; exit 1; }
	tries=0
	while :; do
		port=$(free_port)
		if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
				-o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" \
				start >"$dir/pg_ctl.log" 2>&1; then
			break
		fi
		tries=$((tries + 1))
		if [ $tries -ge 3 ]; then
			cat "$dir/pg_ctl.log" "$dir/server.log" >&2
			exit 1
		fi
	done
	cat >"$dir/env" <<EOT
PG_BIN=$bin
PG_PORT=$port
PG_SOCKDIR=$dir
PG_SUPERUSER=postgres
EOT
	if [ -n "${PG_LOCAL_USER:-}" ]; then
		pw=$(printf '%s' "${PG_LOCAL_PASSWORD:-}" | sed "s/'/''/g")
		# The password goes through stdin, never an argument.
		printf "CREATE ROLE \"%s\" LOGIN SUPERUSER PASSWORD '%s';\n" "$PG_LOCAL_USER" "$pw" |
			"$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres >/dev/null
	fi
}

stop() {
	dir=$1
	[ -f "$dir/env" ] || exit 0
	. "$dir/env"
	[ -f "$dir/data/postmaster.pid" ] || exit 0
	as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
}

case "${1:-}" in
start) start "$2" ;;
stop) stop "$2" ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
