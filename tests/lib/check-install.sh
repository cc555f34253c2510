#!/bin/bash
# Installs the build into a scratch prefix and builds a program against it the way a user
# would: only <backupop.h> and `pkg-config --cflags --libs libbackupop`. Also checks that
# every public header compiles on its own, as C and as C++.
set -u
. "$BOP_SOURCE_ROOT/tests/tap.sh"
command -v pkg-config >/dev/null || skip_all "pkg-config is not installed"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
TAP_LOG=$work/log

ok "meson install into a scratch destdir" meson install -C "$BOP_BUILD_ROOT" --no-rebuild --quiet --destdir "$work/root"
pc=$(find "$work/root" -name libbackupop.pc | head -1)
check "libbackupop.pc is installed" "$([ -n "$pc" ]; echo $?)"
prefix=$(sed -n 's/^prefix=//p' "$pc")
export PKG_CONFIG_SYSROOT_DIR=$work/root PKG_CONFIG_PATH=$(dirname "$pc")
check "the shared library is installed as libbackupop.so.1" \
	"$(find "$work/root" -name 'libbackupop.so.1' | grep -q .; echo $?)"

# A sanitized library needs a sanitized program (the runtime must come first).
san=
[ "${BOP_SANITIZE:-none}" != none ] && san="-fsanitize=$BOP_SANITIZE"

cat >"$work/user.c" <<'C'
#include <backupop.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	bop_keys_t *keys = NULL;
	char *identity = NULL, *recipient = NULL;

	if (bop_version() != BOP_VERSION_NUMBER || strcmp(bop_version_string(), BOP_VERSION_STRING))
		return 1;
	if (bop_age_keygen(&identity, &recipient) || bop_keys_new(&keys) ||
	    bop_keys_add_recipient(keys, recipient))
		return 2;
	printf("%s\n", recipient);
	bop_keys_free(keys);
	bop_free(identity);
	bop_free(recipient);
	return 0;
}
C
ok "a program builds with pkg-config --cflags --libs libbackupop" \
	sh -c "cc $san -Wall -Werror -o '$work/user' '$work/user.c' \$(pkg-config --cflags --libs libbackupop)"
ok "and runs against the installed library" \
	env LD_LIBRARY_PATH="$(dirname "$(find "$work/root" -name 'libbackupop.so.1' | head -1)")" "$work/user"

for h in "$work/root$prefix"/include/backupop.h "$work/root$prefix"/include/backupop/*.h "$work/root$prefix"/include/backupop/sys/*.h; do
	name=${h#"$work/root$prefix/include/"}
	printf '#include <%s>\n' "$name" >"$work/one.c"
	ok "<$name> compiles on its own (C)" cc -Wall -Wextra -Werror -fsyntax-only -I"$work/root$prefix/include" "$work/one.c"
	if command -v c++ >/dev/null; then
		cp "$work/one.c" "$work/one.cc"
		ok "<$name> compiles on its own (C++)" c++ -Wall -Werror -fsyntax-only -I"$work/root$prefix/include" "$work/one.cc"
	fi
done
done_testing
