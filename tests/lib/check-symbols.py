#!/usr/bin/env python3
"""The ABI check: the public headers, the linker version script and the shared library
must agree. Every BOP_EXTERN declaration is in libbackupop.map, every map entry is
declared, sorted, and defined by the library, and the library exports nothing else."""
import glob
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tap import check, done_testing  # noqa: E402

src = os.environ.get("BOP_SOURCE_ROOT", ".")
build = os.environ.get("BOP_BUILD_ROOT", "build")


headers = glob.glob(os.path.join(src, "include", "backupop", "*.h")) + \
    glob.glob(os.path.join(src, "include", "backupop", "sys", "*.h"))
declared = set()
for h in headers:
    text = open(h).read()
    declared |= set(re.findall(r"BOP_EXTERN\([^)]*\)\s*(bop_\w+)\s*\(", text))

map_text = open(os.path.join(src, "libbackupop", "libbackupop.map")).read()
m = re.search(r"LIBBACKUPOP_1\.0\s*\{\s*global:(.*?)local:\s*\*;\s*\};", map_text, re.S)
check(m is not None, "the map has a LIBBACKUPOP_1.0 node with global and local: *")
mapped = re.findall(r"(\w+);", m.group(1)) if m else []

check(mapped == sorted(mapped), "the map is sorted",
      "\n".join(a + " > " + b for a, b in zip(mapped, mapped[1:]) if a > b))
check(len(mapped) == len(set(mapped)), "the map has no duplicates")
check(declared - set(mapped) == set(), "every BOP_EXTERN declaration is in the map",
      "missing from the map: " + " ".join(sorted(declared - set(mapped))))
check(set(mapped) - declared == set(), "every map entry is declared in a public header",
      "not declared: " + " ".join(sorted(set(mapped) - declared)))

lib = os.path.join(build, "libbackupop", "libbackupop.so.1")
out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True)
check(out.returncode == 0, "nm reads " + lib, out.stderr)
exported = set()
for line in out.stdout.splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[1] in "TDBRVWiu" and not parts[2].startswith("LIBBACKUPOP"):
        exported.add(parts[2].split("@")[0])
check(set(mapped) - exported == set(), "the library defines every mapped symbol",
      "undefined: " + " ".join(sorted(set(mapped) - exported)))
check(exported - set(mapped) == set(), "the library exports nothing beyond the map",
      "leaked: " + " ".join(sorted(exported - set(mapped))))

soname = subprocess.run(["objdump", "-p", lib], capture_output=True, text=True).stdout
check("SONAME               libbackupop.so.1" in soname, "the soname is libbackupop.so.1")

done_testing()
