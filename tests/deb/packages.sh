#!/bin/bash
# The Debian packages, built and used as a user would: dpkg-buildpackage -us -uc -b on a
# copy of the committed tree (git archive HEAD, in a scratch directory: nothing is written
# into the checkout or next to it), the six binary packages checked, lintian on the
# .changes (no error, no warning), then the .debs installed into a brand-new Debian 12 root
# (tests/env/fresh-root.sh), where `import backupop` must work from python3-backupop and
# autopkgtest runs debian/tests/ against them.
# Each stage is one check or more; its time and the package sizes are TAP comments.
# Skipped when the packaging tools or the build dependencies are missing; the fresh-root
# stage alone is skipped when this machine cannot make such a root.
. "$BOP_SOURCE_ROOT/tests/tap.sh"
SRC=$BOP_SOURCE_ROOT
PACKAGES="libbackupop1 libbackupop-dev backupop backupop-runner backupop-controller python3-backupop"
NPKG=$(echo $PACKAGES | wc -w)

for tool in git dpkg-buildpackage dpkg-checkbuilddeps dpkg-parsechangelog dh lintian; do
	command -v $tool >/dev/null || skip_all "$tool is not installed (dpkg-dev, debhelper, lintian)"
done
git -C "$SRC" rev-parse HEAD >/dev/null 2>&1 || skip_all "$SRC is not a git checkout"
T=$(mktemp -d "${TMPDIR:-/tmp}/bop-deb.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
mkdir "$T/src"
git -C "$SRC" archive HEAD | tar -C "$T/src" -xf - || { echo "Bail out! git archive failed"; exit 1; }
[ -z "$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null)" ] ||
	diag "the checkout has uncommitted changes; the packages are built from HEAD without them"
unmet=$(cd "$T/src" && dpkg-checkbuilddeps 2>&1) ||
	skip_all "build dependencies missing: ${unmet#*: }"
version=$(cd "$T/src" && dpkg-parsechangelog -S Version)
arch=$(dpkg --print-architecture)

now() { date +%s; }

# 1. The build (its own tests included: debian/rules runs the server-less suites; no S3
# server is passed on to them).
start=$(now)
rc=0
(cd "$T/src" && env -u BOP_SOURCE_ROOT -u BOP_BUILD_ROOT -u BOP_SANITIZE -u MESON_TESTTHREADS \
	-u BOP_TEST_S3_ENDPOINT \
	dpkg-buildpackage -us -uc -b -j"${BOP_DEB_JOBS:-auto}") >"$T/build.log" 2>&1 || rc=$?
build_s=$(($(now) - start))
check "dpkg-buildpackage -us -uc -b builds from the committed tree (exit $rc, ${build_s}s)" "$rc"
diag "dpkg-buildpackage (build and dh_auto_test): ${build_s}s"
[ $rc -eq 0 ] || { tail -40 "$T/build.log" | sed 's/^/# /'; done_testing; }
grep -E '^ *[0-9]+/[0-9]+ .*(OK|SKIP)' "$T/build.log" >/dev/null &&
	diag "dh_auto_test: $(grep -cE '^ *[0-9]+/[0-9]+ .* OK ' "$T/build.log") meson tests passed"

# 2. Six binary packages, with what each is for.
debs=()
for p in $PACKAGES; do
	f=$T/${p}_${version}_$arch.deb
	check "$p ${version} was built ($(basename "$f"))" "$([ -s "$f" ]; echo $?)"
	[ -s "$f" ] && debs+=("$f")
done
[ ${#debs[@]} -eq "$NPKG" ] || done_testing
for f in "${debs[@]}"; do
	diag "$(printf '%-42s Installed-Size %5s KiB, .deb %7s bytes' "$(basename "$f")" \
		"$(dpkg-deb -f "$f" Installed-Size)" "$(stat -c %s "$f")")"
done
has() { dpkg-deb -c "$T/${1}_${version}_$arch.deb" | awk '{ print $6 }' | grep -qE "^\./$2\$"; }
check "libbackupop1 has the shared library and no unversioned link" \
	"$(has libbackupop1 'usr/lib/[^/]+/libbackupop\.so\.1' &&
		! has libbackupop1 'usr/lib/[^/]+/libbackupop\.so'; echo $?)"
check "libbackupop-dev has <backupop.h>, libbackupop.pc and the libbackupop.so link" \
	"$(has libbackupop-dev 'usr/include/backupop\.h' &&
		has libbackupop-dev 'usr/lib/[^/]+/pkgconfig/libbackupop\.pc' &&
		has libbackupop-dev 'usr/lib/[^/]+/libbackupop\.so'; echo $?)"
symbols=$(dpkg-deb -I "$T/libbackupop1_${version}_$arch.deb" symbols 2>/dev/null)
check "libbackupop1's symbols file names the -dev package and every symbol's version node" \
	"$(printf '%s\n' "$symbols" | grep -q '^\* Build-Depends-Package: libbackupop-dev$' &&
		! printf '%s\n' "$symbols" | grep '^ ' | grep -qv '@LIBBACKUPOP_'; echo $?)"
check "backupop has the CLI and its man pages" \
	"$(has backupop 'usr/bin/backupop' && has backupop 'usr/share/man/man1/backupop\.1\.gz' &&
		has backupop 'usr/share/man/man5/backupop-config\.5\.gz'; echo $?)"
check "backupop-runner has the daemon, its man page, the systemd unit, the exec agent and the config example" \
	"$(has backupop-runner 'usr/sbin/backupop-runner' &&
		has backupop-runner 'usr/share/man/man8/backupop-runner\.8\.gz' &&
		has backupop-runner 'lib/systemd/system/backupop-runner@\.service' &&
		has backupop-runner 'usr/lib/backupop/backupop-exec-agent' &&
		has backupop-runner 'usr/share/doc/backupop-runner/examples/runner-example\.yaml'; echo $?)"
check "backupop-controller has the operator, its man page, the CRDs and the manifests" \
	"$(has backupop-controller 'usr/sbin/backupop-controller' &&
		has backupop-controller 'usr/share/man/man8/backupop-controller\.8\.gz' &&
		has backupop-controller 'usr/share/backupop/deploy/01-crds\.yaml' &&
		has backupop-controller 'usr/share/backupop/deploy/03-controller\.yaml'; echo $?)"
PYDIR='usr/lib/python3/dist-packages/backupop'
check "python3-backupop has the package and its cffi extension module in /$PYDIR, its API reference and examples" \
	"$(has python3-backupop "$PYDIR/__init__\.py" && has python3-backupop "$PYDIR/catalog\.py" &&
		has python3-backupop "$PYDIR/py\.typed" &&
		has python3-backupop "$PYDIR/_backupop\.cpython-3[0-9]+-[^/]+\.so" &&
		has python3-backupop 'usr/share/doc/python3-backupop/python-api\.md(\.gz)?' &&
		has python3-backupop 'usr/share/doc/python3-backupop/examples/restore_drill\.py'; echo $?)"
pydeps=$(dpkg-deb -f "$T/python3-backupop_${version}_$arch.deb" Depends)
diag "python3-backupop Depends: $pydeps"
check "python3-backupop depends on python3, a cffi backend of its module's API and libbackupop1 of this version or later" \
	"$(printf '%s\n' "$pydeps" | grep -qE '(^|, )python3 \(' &&
		printf '%s\n' "$pydeps" | grep -qE '(^|, )python3-cffi-backend-api-min \(<= [0-9]+\)' &&
		printf '%s\n' "$pydeps" | grep -qE '(^|, )python3-cffi-backend-api-max \(>= [0-9]+\)' &&
		printf '%s\n' "$pydeps" | grep -qE "(^|, )libbackupop1 \(>= ${version%-*}"; echo $?)"

# Every executable and the library built hardened (hardening-check, from devscripts): PIE,
# stack protector, fortify, RELRO, BIND_NOW. Not control-flow protection: Debian 12's C
# start files carry no CET property, so no program linked there has it. An "unknown" (no
# fortifiable call, no frame large enough for stack clash probes) is no failure.
if command -v hardening-check >/dev/null; then
	H=$T/hardening
	mkdir "$H"
	for p in libbackupop1 backupop backupop-runner backupop-controller python3-backupop; do
		dpkg-deb -x "$T/${p}_${version}_$arch.deb" "$H"
	done
	bins=$(find "$H" -type f \( -path '*/bin/*' -o -path '*/sbin/*' -o -name 'libbackupop.so.*' \))
	# The Python module without the fortify check: the C that cffi generates calls no
	# function _FORTIFY_SOURCE can check (only memset, of sizes known at run time), so
	# hardening-check finds "only unprotected functions"; the rest applies to it as well.
	pymod=$(find "$H" -type f -name '_backupop.*.so')
	out=$({ hardening-check --nocfprotection $bins; hardening-check --nocfprotection --nofortify $pymod; } 2>&1 |
		grep -E '^ ' | grep -vE ': yes|\(ignored\)|: unknown')
	bins="$bins $pymod"
	check "hardening-check: $(echo $bins | wc -w) ELF files built hardened" "$([ -z "$out" ]; echo $?)"
	[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/# /'
else
	skip "hardening-check (devscripts) is not installed"
fi

# The runner's unit as systemd reads it: systemd-analyze verify in a root made of the
# package and this machine's own units (for the targets it names) must say nothing.
if command -v systemd-analyze >/dev/null && [ -d /lib/systemd/system ]; then
	R=$T/unit-root
	mkdir -p "$R/lib/systemd/system"
	cp -a /lib/systemd/system/. "$R/lib/systemd/system/"
	dpkg-deb -x "$T/backupop-runner_${version}_$arch.deb" "$R"
	cp "$R/lib/systemd/system/backupop-runner@.service" "$R/lib/systemd/system/backupop-runner@db.service"
	out=$(systemd-analyze verify --man=no --root="$R" "$R/lib/systemd/system/backupop-runner@db.service" 2>&1)
	rc=$?
	check "systemd-analyze verify accepts backupop-runner@.service without a message (exit $rc)" \
		"$([ $rc -eq 0 ] && [ -z "$out" ]; echo $?)"
	[ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/# /'
	diag "backupop-runner@.service: $(systemd-analyze security --offline=true --root="$R" \
		"$R/lib/systemd/system/backupop-runner@db.service" 2>/dev/null | grep -o 'Overall exposure level.*')"
else
	skip "systemd-analyze is not installed: the unit is not verified"
fi

# 3. lintian: no error and no warning (overrides in debian/*.lintian-overrides say why).
start=$(now)
changes=$T/backupop_${version}_$arch.changes
rc=0
lintian --no-cfg --fail-on error,warning --display-info --pedantic "$changes" >"$T/lintian.log" 2>&1 || rc=$?
lint_s=$(($(now) - start))
bad=$(grep -E '^[EW]: ' "$T/lintian.log")
check "lintian reports no error and no warning on the .changes (exit $rc, ${lint_s}s)" \
	"$([ $rc -eq 0 ] && [ -z "$bad" ]; echo $?)"
[ $rc -eq 0 ] && [ -z "$bad" ] || grep -v 'running with root privileges' "$T/lintian.log" | sed 's/^/# /' | head -30
# Info and pedantic tags do not fail the check; they are shown.
grep -E '^[IP]: ' "$T/lintian.log" | sed 's/^/# lintian: /' | head -20

# 4. A brand-new Debian 12 root: install the six packages with apt (their dependencies
# come from the mirror), then autopkgtest's null server runs debian/tests/ there (the root
# is the testbed; its test dependencies, build-essential for the -dev test, get installed).
# autopkgtest rather than running debian/tests/* by hand: it reads debian/tests/control,
# installs each test's Depends and reports PASS/FAIL per test, as a Debian CI would.
FRESH=$SRC/tests/env/fresh-root.sh
if ! why=$(bash "$FRESH" check); then
	skip "no fresh Debian 12 root here: $why"
	done_testing
fi
args=()
for f in "${debs[@]}"; do args+=(-f "$f"); done
start=$(now)
rc=0
bash "$FRESH" run "${args[@]}" -- bash -c '
	set -e
	export DEBIAN_FRONTEND=noninteractive
	echo "== install"
	s=$(date +%s)
	apt-get update -q
	apt-get install -y -q --no-install-recommends autopkgtest ./*.deb
	echo "== installed in $(($(date +%s) - s))s"
	for p in '"$PACKAGES"'; do dpkg-query -W -f "== package \${Package} \${Version} \${db:Status-Abbrev}\n" $p; done
	# The module as a user gets it: from the package, linked to the installed library.
	(cd / && python3 -c "import backupop, os
lib = [l.split()[-1] for l in open(\"/proc/self/maps\") if \"libbackupop.so\" in l][0]
print(\"== import backupop\", backupop.__version__, os.path.dirname(backupop.__file__), lib)") ||
		echo "== import of backupop failed"
	s=$(date +%s)
	rc=0
	autopkgtest -B ./*.deb /src -- null || rc=$?
	echo "== autopkgtest exit $rc in $(($(date +%s) - s))s"
	exit $rc' >"$T/fresh.log" 2>&1 || rc=$?
fresh_s=$(($(now) - start))
check "the fresh root was made, the packages installed and autopkgtest passed (exit $rc, ${fresh_s}s)" "$rc"
installed=$(grep -c '^== package .* ii *$' "$T/fresh.log")
check "all $NPKG packages are installed there ($installed)" "$([ "$installed" -eq "$NPKG" ]; echo $?)"
imported=$(sed -n 's/^== import backupop //p' "$T/fresh.log")
diag "python3 -c 'import backupop': ${imported:-failed}"
check "python3 -c 'import backupop' works there: version ${version%-*}, from /$PYDIR, with the installed library" \
	"$(printf '%s\n' "$imported" | grep -qE "^${version%-*} /$PYDIR /usr/lib/[^/]+/libbackupop\.so\.1"; echo $?)"
for t in build-against-dev cli-roundtrip runner-daemon python-roundtrip; do
	check "autopkgtest $t passed in the fresh root" \
		"$(sed -n '/@@@@ summary/,$p' "$T/fresh.log" | grep -qE "^$t +PASS"; echo $?)"
done
check "the installed CLI restored identical data there" \
	"$(grep -q '^restored 9437184 bytes, identical$' "$T/fresh.log"; echo $?)"
check "the installed Python module backed up and restored there, and age, zstd and the CLI read it" \
	"$(grep -q '^python: 7340032 bytes backed up, listed, verified and restored identical$' "$T/fresh.log" &&
		grep -q '^age, zstd and the backupop CLI read what Python wrote: identical$' "$T/fresh.log"; echo $?)"
diag "fresh root: $(sed -n 's/^== \(installed in .*\)/\1/p' "$T/fresh.log") (apt-get install of the $NPKG .debs and autopkgtest)," \
	"$(sed -n 's/^== autopkgtest exit [0-9]* \(in .*\)/autopkgtest \1/p' "$T/fresh.log"), ${fresh_s}s in all"
[ $TAP_FAILED -eq 0 ] || tail -40 "$T/fresh.log" | sed 's/^/# /'
done_testing
