#!/bin/bash
# The README's first command, as written, on a brand-new Debian 12 machine: a root made by
# mmdebstrap's apt variant with the committed tree in /src (tests/env/fresh-root.sh),
# nothing else installed. It must install what it needs, build, and round-trip a backup;
# and when it cannot go on, it must say why on the terminal.
# Skipped when this machine cannot make such a root (not root, no mmdebstrap, no mirror).
. "$BOP_SOURCE_ROOT/tests/tap.sh"
FRESH=$BOP_SOURCE_ROOT/tests/env/fresh-root.sh
why=$(bash "$FRESH" check) || skip_all "no fresh Debian 12 root here: $why"
T=$(mktemp -d "${TMPDIR:-/tmp}/bop-fresh.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

# The command exactly as the README shows it.
first=$(awk '/^```sh/ { b = 1; next } b { print; exit }' "$BOP_SOURCE_ROOT/README.md" |
	sed 's/[[:space:]]*#.*$//')
check "the README's first command is ./examples/roundtrip.sh (got '$first')" \
	"$([ "$first" = ./examples/roundtrip.sh ]; echo $?)"

# A user who is not root and has no sudo: nothing can be installed, and it says so.
start=$(date +%s)
rc=0
bash "$FRESH" run -- setpriv --reuid=65534 --regid=65534 --clear-groups $first >"$T/nobody.log" 2>&1 || rc=$?
check "without root or sudo it fails (exit $rc)" "$([ $rc -ne 0 ] && [ $rc -ne 125 ]; echo $?)"
check "and says that installing the build dependencies needs root or sudo" \
	"$(grep -q 'needs root: run this as root or install sudo' "$T/nobody.log"; echo $?)"
[ $TAP_FAILED -eq 0 ] || sed 's/^/# /' "$T/nobody.log" | tail -20

# As root, as written; then, in the same root, a build that cannot configure (no compiler)
# must show meson's own reason.
start=$(date +%s)
rc=0
bash "$FRESH" run -- bash -c "
	echo '== as written'
	$first; echo \"== exit \$?\"
	echo '== no compiler'
	CC=/nonexistent/cc BUILD=/tmp/broken ./examples/roundtrip.sh; echo \"== exit \$?\"" \
	>"$T/root.log" 2>&1 || rc=$?
took=$(($(date +%s) - start))
exit_of() { sed -n "/^== $1\$/,/^== exit/p" "$T/root.log" | sed -n 's/^== exit //p'; }
check "the fresh root was made and the command ran (exit $rc)" "$([ $rc -eq 0 ]; echo $?)"
as_written=$(exit_of 'as written')
check "as root, as written, it exits 0 (exit ${as_written:-none})" "$([ "$as_written" = 0 ]; echo $?)"
check "it installed the build dependencies with apt-get build-dep" \
	"$(grep -q 'installing the build dependencies (debian/control)' "$T/root.log"; echo $?)"
check "the restored data is identical to the sample" \
	"$(grep -q '^result      restored data is identical$' "$T/root.log"; echo $?)"
broken=$(exit_of 'no compiler')
check "a build that cannot configure fails (exit ${broken:-none})" \
	"$([ -n "$broken" ] && [ "$broken" != 0 ]; echo $?)"
check "and shows meson's reason and the log's path" \
	"$(sed -n '/^== no compiler$/,$p' "$T/root.log" | grep -q '/nonexistent/cc' &&
		grep -q 'meson setup failed (the whole log: /tmp/broken.log)' "$T/root.log"; echo $?)"
diag "fresh root, apt-get build-dep, build and round trip: ${took}s"
sed -n 's/^\(backup\|verify\|restore\|stored\) .*/&/p' "$T/root.log" | sed 's/^/# /'
[ $TAP_FAILED -eq 0 ] || tail -40 "$T/root.log" | sed 's/^/# /'
done_testing
