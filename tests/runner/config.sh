# runner_config [--storage URL] FILE NAME [LINE...]: writes FILE, the config of a runner
# NAME: the storage URL (default: the file storage $T/store), the engine read from stdin
# (the YAML under engine:), the API on a free port with $TOKEN, and each LINE (top-level
# YAML). Sourced by lib.sh, and by the tests elsewhere that start a runner.
runner_config() {
	local storage="file://$T/store" file name
	if [ "${1:-}" = --storage ]; then
		storage=$2
		shift 2
	fi
	file=$1 name=$2
	shift 2
	{
		echo "name: $name"
		echo "storage: '$storage'"
		echo 'engine:'
		sed 's/^/  /'
		echo "api: {listen: '127.0.0.1:0', token: '$TOKEN'}"
		[ $# -eq 0 ] || printf '%s\n' "$@"
	} >"$file"
}
