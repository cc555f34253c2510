#!/usr/bin/env python3
"""debian/libbackupop1.symbols must list exactly the symbols of libbackupop/libbackupop.map,
each with its version node (bop_x@LIBBACKUPOP_1.0), and nothing else.

Regenerate the file after changing the map (a new node for a new release, or, before the
first release, any change of LIBBACKUPOP_1.0):

    tests/lib/check-debian-symbols.py --update

A symbol already in the file keeps its minimal version; a new one gets the version of the
changelog's top entry without its Debian revision (so the -dev package's dependents get a
dependency on the release that added it). Without --update it is a TAP test (suite lib)."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import check, done_testing  # noqa: E402

src = os.environ.get("BOP_SOURCE_ROOT") or os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
map_path = os.path.join(src, "libbackupop", "libbackupop.map")
sym_path = os.path.join(src, "debian", "libbackupop1.symbols")
changelog = os.path.join(src, "debian", "changelog")
HEADER = ["libbackupop.so.1 libbackupop1 #MINVER#",
          "* Build-Depends-Package: libbackupop-dev",
          "# Written by tests/lib/check-debian-symbols.py --update from libbackupop/libbackupop.map"]


def map_symbols():
    """(symbol, node) of every global entry, nodes in file order, plus each node itself
    (dpkg-gensymbols lists a version node as NODE@NODE)."""
    text = re.sub(r"/\*.*?\*/", "", open(map_path).read(), flags=re.S)
    text = re.sub(r"#[^\n]*", "", text)
    out = []
    for node, body in re.findall(r"([A-Za-z_][\w.]*)\s*\{(.*?)\}\s*[\w.]*\s*;", text, re.S):
        out.append((node, node))
        scope = "global"
        for tok in re.findall(r"(\w+:|[^\s;]+;)", body):
            if tok.endswith(":"):
                scope = tok[:-1]
            elif scope == "global":
                out.append((tok[:-1], node))
    return out


def current():
    """symbol@node -> minimal version, from the symbols file as it is."""
    entries = {}
    if not os.path.exists(sym_path):
        return entries, []
    lines = open(sym_path).read().splitlines()
    for line in lines:
        m = re.match(r"^ (\S+@\S+) (\S+)", line)
        if m:
            entries[m.group(1)] = m.group(2)
    return entries, lines


def release():
    first = open(changelog).readline()
    m = re.match(r"^\S+ \(([^)]+)\)", first)
    version = m.group(1) if m else "0"
    return re.sub(r"-[^-]*$", "", version)


def render(syms, old):
    new_version = release()
    lines = list(HEADER)
    for name, node in sorted(syms, key=lambda s: (s[1], s[0] != s[1], s[0])):
        key = name + "@" + node
        lines.append(" %s %s" % (key, old.get(key, new_version)))
    return lines


syms = map_symbols()
old, lines = current()
want = render(syms, old)

if sys.argv[1:] == ["--update"]:
    with open(sym_path, "w") as f:
        f.write("\n".join(want) + "\n")
    print("%s: %d symbols" % (sym_path, len(want) - len(HEADER)))
    sys.exit(0)



check(len(syms) > 1, "the map has a version node and symbols (%d entries)" % len(syms))
check(lines[:2] == HEADER[:2], "the symbols file starts with the soname line and "
      "'* Build-Depends-Package: libbackupop-dev'", "\n".join(lines[:2]))
listed = set(old)
mapped = set(n_ + "@" + v for n_, v in syms)
check(mapped - listed == set(), "every symbol of the map is in debian/libbackupop1.symbols",
      "missing: " + " ".join(sorted(mapped - listed)))
check(listed - mapped == set(), "debian/libbackupop1.symbols lists nothing that is not in the map",
      "not in the map: " + " ".join(sorted(listed - mapped)))
check(lines == want, "the file is as --update writes it (sorted, no other lines)",
      "run tests/lib/check-debian-symbols.py --update")
bad = [k + " " + v for k, v in old.items() if not re.match(r"^\d+(\.\d+)*$", v)]
check(not bad, "every minimal version is an upstream version", "\n".join(bad))
done_testing()
