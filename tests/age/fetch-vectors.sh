#!/bin/sh
# Writes the C2SP age conformance vectors (npm package cctv-age@0.2.0, from
# https://github.com/C2SP/CCTV/tree/main/age) into a directory, one file per vector.
#
#   fetch-vectors.sh OUTDIR [CACHEDIR]
#
# CACHEDIR defaults to ${BOP_CACHE_DIR:-/var/cache/backupop-testenv}/cctv-age-0.2.0; the
# package tarball is fetched there with `npm pack` once, checked against its pinned SHA-256,
# and unpacked. Exit status: 0 done, 77 skipped (the reason is printed: no node/npm, no
# network), anything else is a failure.
set -eu

PKG=cctv-age@0.2.0
TARBALL=cctv-age-0.2.0.tgz
SHA256=94a2a220a95b158a69997e84405bb5d4ef84adf05d15bf341b83ec3ba9dd846e

out=${1:?usage: fetch-vectors.sh OUTDIR [CACHEDIR]}
cache=${2:-${BOP_CACHE_DIR:-/var/cache/backupop-testenv}/cctv-age-0.2.0}

skip() { echo "SKIP: $*"; exit 77; }

command -v node >/dev/null 2>&1 || skip "node is not installed (apt-get install nodejs)"
command -v npm >/dev/null 2>&1 || skip "npm is not installed (apt-get install npm)"
command -v sha256sum >/dev/null 2>&1 || skip "sha256sum is not installed"

if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
	echo "note: cannot write the cache $cache, fetching into $out/.cache" >&2
	cache=$out/.cache
	mkdir -p "$cache"
fi

if [ ! -f "$cache/$TARBALL" ]; then
	tmp=$(mktemp -d "$cache/fetch.XXXXXX")
	if ! (cd "$tmp" && timeout 180 npm pack "$PKG" --silent >/dev/null 2>"$tmp/npm.log"); then
		reason=$(tail -n 3 "$tmp/npm.log" | tr '\n' ' ')
		rm -rf "$tmp"
		skip "npm pack $PKG failed (no network or registry?): $reason"
	fi
	mv "$tmp/$TARBALL" "$cache/$TARBALL"
	rm -rf "$tmp"
fi

got=$(sha256sum "$cache/$TARBALL" | cut -d' ' -f1)
if [ "$got" != "$SHA256" ]; then
	echo "error: $cache/$TARBALL has SHA-256 $got, expected $SHA256" >&2
	exit 1
fi

if [ ! -f "$cache/package/index.js" ]; then
	tmp=$(mktemp -d "$cache/unpack.XXXXXX")
	tar -xzf "$cache/$TARBALL" -C "$tmp"
	rm -rf "$cache/package"
	mv "$tmp/package" "$cache/package"
	rmdir "$tmp"
fi

mkdir -p "$out"
# index.js is an ES module; require() loads it on recent node, import() on older ones.
node - "$cache/package/index.js" "$out" <<'EOF'
const fs = require('fs');
const path = require('path');
const [index, out] = process.argv.slice(2);
const write = (vectors) => {
	let n = 0;
	for (const [name, bytes] of Object.entries(vectors)) {
		if (!(bytes instanceof Uint8Array) || !/^[A-Za-z0-9_.-]+$/.test(name))
			continue;
		fs.writeFileSync(path.join(out, name), bytes);
		n++;
	}
	console.log(`wrote ${n} vectors`);
};
let vectors;
try {
	vectors = require(index);
} catch (e) {
	vectors = null;
}
if (vectors && Object.keys(vectors).length > 1)
	write(vectors.default && Object.keys(vectors).length === 1 ? vectors.default : vectors);
else
	import(require('url').pathToFileURL(index).href).then(write, (e) => {
		console.error(e);
		process.exit(1);
	});
EOF
