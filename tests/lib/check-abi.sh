#!/bin/bash
# The ABI gate: the built libbackupop.so.1 against the committed baseline
# (libbackupop/libbackupop.abi, made by libabigail's abidw from a build with debug info).
# Any incompatible change (a symbol removed, a public type's layout or a function's
# signature changed) fails; a compatible one (symbols added) passes and is reported.
#
#   tests/lib/check-abi.sh                 # as a test (BOP_SOURCE_ROOT, BOP_BUILD_ROOT set)
#   tests/lib/check-abi.sh --update BUILD  # writes a new baseline from BUILD's library
#
# Update the baseline only on purpose: when symbols were added in a new version node, or
# when the soname changes. Use a build with debug info (meson's default debugoptimized,
# or -Ddebug=true) and the same libabigail (Debian 12's abigail-tools 2.2).
set -u
src=${BOP_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
baseline=$src/libbackupop/libbackupop.abi

dump() { # library output
	abidw --headers-dir "$src/include/backupop" --headers-dir "$src/include/backupop/sys" \
		--drop-private-types --no-corpus-path --no-comp-dir-path --out-file "$2" "$1"
}

if [ "${1:-}" = --update ]; then
	lib=${2:?usage: check-abi.sh --update BUILD_DIR}/libbackupop/libbackupop.so.1
	lib=$(readlink -f "$lib")
	dump "$lib" "$baseline" && echo "wrote $baseline from $lib"
	exit
fi

. "$src/tests/tap.sh"
command -v abidw >/dev/null && command -v abidiff >/dev/null ||
	skip_all "abidw/abidiff are not installed (Debian: abigail-tools)"
lib=$(readlink -f "$BOP_BUILD_ROOT/libbackupop/libbackupop.so.1")
[ -f "$lib" ] || skip_all "the library is not built ($lib)"
readelf -S "$lib" | grep -q '\.debug_info' || skip_all "the library has no debug info (build with -Ddebug=true)"
[ -f "$baseline" ] || { echo "Bail out! no ABI baseline ($baseline)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ok "abidw describes the built library" dump "$lib" "$work/current.abi"
rc=0
abidiff --headers-dir1 "$src/include/backupop" --headers-dir2 "$src/include/backupop" \
	"$baseline" "$work/current.abi" >"$work/report" 2>&1 || rc=$?
# abidiff's exit status is a bit set: 1 error, 2 usage error, 4 ABI change, 8 incompatible.
check "abidiff could compare the library with the baseline (status $rc)" "$(((rc & 3) != 0))"
check "no incompatible ABI change against libbackupop/libbackupop.abi" "$(((rc & 8) != 0))"
if ((rc & 8)); then
	sed 's/^/# /' "$work/report" | head -60
	diag "an incompatible change needs a new soname; see tests/lib/check-abi.sh"
elif ((rc & 4)); then
	diag "compatible ABI changes (new symbols go in a new version node; then update the baseline):"
	sed 's/^/# /' "$work/report" | head -30
fi
soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
check "the soname is still libbackupop.so.1 (got $soname)" "$([ "$soname" = libbackupop.so.1 ]; echo $?)"
done_testing
