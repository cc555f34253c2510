#!/bin/sh
# A private MariaDB server for tests, on loopback only.
#
#   mariadb-local.sh start DIR    mariadb-install-db into DIR/data and start mariadbd; writes DIR/env
#   mariadb-local.sh stop DIR     stop it (by its pid); DIR is left for the caller to remove
#
# The server listens on 127.0.0.1:PORT (a free port) and on DIR/sock. The OS user running
# this script is the server's superuser through the socket (unix_socket authentication).
# With MARIADB_LOCAL_USER and MARIADB_LOCAL_PASSWORD in the environment, start also creates
# that user (@127.0.0.1 and @localhost, all privileges) with that password.
#
# DIR/env (sourceable) holds MY_PORT, MY_SOCKET, MY_SUPERUSER.
set -eu

free_port() {
	# below the ephemeral port range, where no outgoing connection takes it first
	python3 "$(dirname "$0")/free-port.py"
}

# An SQL string literal: quotes and backslashes escaped.
sql_quote() {
	printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")"
}

start() {
	dir=$1
	for tool in mariadb-install-db mariadbd mariadb mariadb-admin; do
		command -v $tool >/dev/null 2>&1 || [ -x /usr/sbin/$tool ] ||
			{ echo "mariadb-local: $tool not found; apt-get install mariadb-server mariadb-client" >&2; exit 3; }
	done
	PATH=$PATH:/usr/sbin
	me=$(id -un)
	mkdir -p "$dir"
	mariadb-install-db --no-defaults --datadir="$dir/data" --user="$me" --skip-test-db \
		--auth-root-authentication-method=socket >"$dir/install.log" 2>&1 ||
		{ cat "$dir/install.log" >&2; exit 1; }
	tries=0
	while :; do
		port=$(free_port)
		setsid mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/sock" --port="$port" \
			--bind-address=127.0.0.1 --pid-file="$dir/mariadbd.pid" --log-error="$dir/error.log" \
			--skip-name-resolve --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=0 \
			--event-scheduler=OFF --user="$me" </dev/null >/dev/null 2>&1 &
		pid=$!
		echo $pid >"$dir/mariadbd.shellpid"
		i=0
		while [ $i -lt 300 ]; do
			if mariadb-admin --no-defaults --socket="$dir/sock" -u "$me" ping >/dev/null 2>&1; then
				break 2
			fi
			kill -0 $pid 2>/dev/null || break
			sleep 0.1
			i=$((i + 1))
		done
		kill -9 $pid 2>/dev/null || true
		tries=$((tries + 1))
		if [ $tries -ge 3 ]; then
			cat "$dir/error.log" >&2
			exit 1
		fi
	done
	cat >"$dir/env" <<EOT
MY_PORT=$port
MY_SOCKET=$dir/sock
MY_SUPERUSER=$me
EOT
	if [ -n "${MARIADB_LOCAL_USER:-}" ]; then
		u=$(sql_quote "$MARIADB_LOCAL_USER")
		p=$(sql_quote "${MARIADB_LOCAL_PASSWORD:-}")
		# The password goes through stdin, never an argument.
		mariadb --no-defaults --socket="$dir/sock" -u "$me" <<EOT
CREATE USER $u@'127.0.0.1' IDENTIFIED BY $p;
CREATE USER $u@'localhost' IDENTIFIED BY $p;
GRANT ALL ON *.* TO $u@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL ON *.* TO $u@'localhost' WITH GRANT OPTION;
EOT
	fi
}

stop() {
	dir=$1
	[ -f "$dir/mariadbd.shellpid" ] || exit 0
	pid=$(cat "$dir/mariadbd.shellpid")
	kill -TERM "$pid" 2>/dev/null || exit 0
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$dir/mariadbd.shellpid"
}

case "${1:-}" in
start) start "$2" ;;
stop) stop "$2" ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
