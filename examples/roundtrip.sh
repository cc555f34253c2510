#!/bin/sh
# A backup round trip from a fresh checkout: installs the build dependencies (Debian 12:
# debian/control's Build-Depends, with apt-get, as root or through sudo) if any is
# missing, builds backupop into ./build, then with the built CLI: keygen -> backup (zstd + age) -> list -> verify -> restore ->
# compare. Exits non-zero if anything fails or the restored data differs.
#
#   ./examples/roundtrip.sh            # 64 MiB of SQL-like sample data
#   SAMPLE_MIB=512 BUILD=/tmp/b ./examples/roundtrip.sh
set -eu

SAMPLE_MIB=${SAMPLE_MIB:-64}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-"$ROOT/build"}

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'roundtrip: %s\n' "$*" >&2; exit 1; }

# The build dependencies are debian/control's Build-Depends, the project's one list of them:
# `apt-get build-dep` installs whatever of it is missing.
install_deps() {
	command -v apt-get >/dev/null ||
		die "this script installs the build dependencies with apt-get (Debian 12); install debian/control's Build-Depends by hand"
	# A simulation tells whether anything is missing; it also fails when apt has no package
	# lists yet (a new machine), and then the lists are fetched first.
	if sim=$(apt-get -s -qq build-dep -P nocheck "$ROOT" 2>&1) &&
		! printf '%s\n' "$sim" | grep -q '^Inst '; then
		return 0
	fi
	if [ "$(id -u)" -eq 0 ]; then
		sudo=""
	elif command -v sudo >/dev/null; then
		sudo="sudo"
	else
		die "the build dependencies (debian/control's Build-Depends) are not all installed, and installing them needs root: run this as root or install sudo"
	fi
	say "installing the build dependencies (debian/control) with apt-get"
	$sudo apt-get update -q || die "apt-get update failed (see above)"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get build-dep -y -q --no-install-recommends \
		-P nocheck "$ROOT" || die "apt-get build-dep failed (see above)"
}

build() {
	if [ ! -f "$BUILD/build.ninja" ]; then
		say "configuring $BUILD"
		meson setup "$BUILD" "$ROOT" >"$BUILD.log" 2>&1 ||
			{ tail -20 "$BUILD.log" >&2; die "meson setup failed (the whole log: $BUILD.log)"; }
	fi
	say "building"
	ninja -C "$BUILD" >"$BUILD.log" 2>&1 ||
		{ tail -40 "$BUILD.log" >&2; die "the build failed (the whole log: $BUILD.log)"; }
}

# SQL-like text: compresses like a real dump does.
make_sample() {
	awk -v bytes="$(($1 * 1024 * 1024))" 'BEGIN {
		print "CREATE TABLE orders (id bigint, customer text, amount numeric, day date);"
		for (i = 1; n < bytes; i++) {
			line = sprintf("INSERT INTO orders VALUES (%d, '\''customer-%d'\'', %d.%02d, '\''2026-%02d-%02d'\'');", i, (i * 7919) % 100003, (i * 31) % 10000, i % 100, i % 12 + 1, i % 28 + 1)
			print line
			n += length(line) + 1
		}
	}' | head -c "$(($1 * 1024 * 1024))" >"$2"
}

size_of() { stat -c %s "$1"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

install_deps
build
BOP="$BUILD/runner/cli/backupop"
[ -x "$BOP" ] || die "the build did not produce $BOP"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/backupop-roundtrip.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM
STORAGE="file://$TMP/backups"

say "generating ${SAMPLE_MIB} MiB of sample data"
make_sample "$SAMPLE_MIB" "$TMP/sample.sql"

say "backupop keygen"
RECIPIENT=$("$BOP" keygen -o "$TMP/key.txt")

say "backupop backup (zstd + age)"
t0=$(now)
ID=$("$BOP" --log-level warn backup --storage "$STORAGE" --recipient "$RECIPIENT" \
	--tag example -i "$TMP/sample.sql")
t1=$(now)

say "backupop list"
"$BOP" --log-level warn list --storage "$STORAGE"

say "backupop verify latest"
"$BOP" --log-level warn verify --storage "$STORAGE" --identity "$TMP/key.txt" latest
t2=$(now)

say "backupop restore latest"
"$BOP" --log-level warn restore --storage "$STORAGE" --identity "$TMP/key.txt" latest \
	-o "$TMP/restored.sql"
t3=$(now)

cmp "$TMP/sample.sql" "$TMP/restored.sql" || die "the restored data differs from the original"

DATA=$(ls "$TMP/backups/default/$ID"/data*)
plain=$(size_of "$TMP/sample.sql")
stored=$(size_of "$DATA")
cat <<EOF

backup      $ID
object      default/$ID/$(basename "$DATA")
plaintext   $plain bytes
stored      $stored bytes (ratio $(awk -v p="$plain" -v s="$stored" 'BEGIN { printf "%.2f", p / s }'))
backup      $(elapsed "$t0" "$t1") s
verify      $(elapsed "$t1" "$t2") s
restore     $(elapsed "$t2" "$t3") s
result      restored data is identical
EOF
