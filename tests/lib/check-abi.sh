#!/bin/bash
# The ABI gate: the built libbackupop.so.1 against the committed baseline
# (libbackupop/libbackupop.abi, made by libabigail's abidw from a build with debug info).
# Any change to what the baseline describes (a symbol removed, a public type's layout or a
# function's signature changed) fails; symbols added pass and are reported.
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

# The verdict: abidiff with added symbols left out, so that only a change to what exists
# counts. Its exit status is a bit set: 1 error, 2 usage error, 4 ABI change, 8 incompatible
# change. abidiff marks a changed struct layout or a changed parameter type as a change
# (4), not as incompatible (8): for a library that promises binary compatibility both
# break callers, so either bit fails.
verdict() { # old new report [abidiff options]
	local rc=0
	abidiff --no-added-syms "${@:4}" "$1" "$2" >"$3" 2>&1 || rc=$?
	echo $rc
}
public=(--headers-dir1 "$src/include/backupop" --headers-dir2 "$src/include/backupop")

# First the gate itself, on two tiny libraries: it passes an added function and fails a
# changed struct layout and swapped parameters.
tiny() { # name source
	printf '%s\n' "$2" >"$work/$1.c"
	gcc -g -shared -fPIC -o "$work/lib$1.so" "$work/$1.c" && abidw "$work/lib$1.so" >"$work/$1.abi"
}
if tiny v1 'struct s { int a; }; int f(struct s *x, long n) { return x->a + (int)n; }' &&
	tiny v2 'struct s { int a; }; int f(struct s *x, long n) { return x->a + (int)n; } int g(void) { return 1; }' &&
	tiny v3 'struct s { long z; int a; }; int f(struct s *x, long n) { return x->a + (int)n; }' &&
	tiny v4 'struct s { int a; }; int f(long n, struct s *x) { return x->a + (int)n; }'; then
	check "the gate passes a library that only adds a function" "$(verdict "$work/v1.abi" "$work/v2.abi" /dev/null)"
	check "the gate fails a changed struct layout" "$((($(verdict "$work/v1.abi" "$work/v3.abi" /dev/null) & 12) == 0))"
	check "the gate fails swapped parameters" "$((($(verdict "$work/v1.abi" "$work/v4.abi" /dev/null) & 12) == 0))"
else
	skip "gcc cannot build the gate's own test libraries"
	skip "gcc cannot build the gate's own test libraries"
	skip "gcc cannot build the gate's own test libraries"
fi

ok "abidw describes the built library" dump "$lib" "$work/current.abi"
rc=$(verdict "$baseline" "$work/current.abi" "$work/report" "${public[@]}")
check "abidiff could compare the library with the baseline (status $rc)" "$(((rc & 3) != 0))"
check "no ABI change to what libbackupop/libbackupop.abi describes (status $rc)" "$(((rc & 12) != 0))"
if ((rc & 12)); then
	sed 's/^/# /' "$work/report" | head -60
	diag "a change that breaks callers needs a new soname; see tests/lib/check-abi.sh"
fi
abidiff "${public[@]}" "$baseline" "$work/current.abi" >"$work/added" 2>&1
if grep -q '^[0-9]* Added function' "$work/added"; then
	diag "added since the baseline (new symbols go in a new version node; then update it):"
	grep "\[A\]" "$work/added" | sed 's/^/# /'
fi
soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
check "the soname is still libbackupop.so.1 (got $soname)" "$([ "$soname" = libbackupop.so.1 ]; echo $?)"
done_testing
