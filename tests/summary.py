#!/usr/bin/env python3
"""Counts the TAP checks of one or more meson test logs (meson-logs/testlog.json) and
prints the skip reasons, the failures, and one closing line:
    tests: N passed, N failed, N skipped
A test program that failed without a failing check (crash, sanitizer report, wrong plan,
timeout) counts as one failure. Exits 1 when anything failed or nothing ran."""
import json
import re
import sys

passed = failed = skipped = 0
skips = []
failures = []

for path in sys.argv[1:]:
    label = path.split("/meson-logs/")[0]
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        print("summary: cannot read %s: %s" % (path, e))
        failed += 1
        continue
    for line in lines:
        rec = json.loads(line)
        name, result, out = rec["name"], rec["result"], rec.get("stdout") or ""
        t_pass = t_fail = t_skip = 0
        for l in out.splitlines():
            m = re.match(r"^(not )?ok\b\s*\d*\s*(?:-\s*)?(.*)$", l)
            if m:
                if "# SKIP" in l or "# skip" in l:
                    t_skip += 1
                    skips.append("%s %s: %s" % (label, name, l.split("#", 1)[1].strip()))
                elif m.group(1):
                    t_fail += 1
                    failures.append("%s %s: %s" % (label, name, m.group(2)))
                else:
                    t_pass += 1
            elif re.match(r"^1\.\.0\b.*SKIP", l):
                t_skip += 1
                skips.append("%s %s: %s" % (label, name, l.split("SKIP", 1)[1].strip()))
        if result in ("FAIL", "ERROR", "TIMEOUT", "UNEXPECTEDPASS") and t_fail == 0:
            t_fail = 1
            failures.append("%s %s: %s (exit %s)" % (label, name, result, rec.get("returncode")))
        if result == "SKIP" and t_pass + t_fail + t_skip == 0:
            t_skip = 1
            skips.append("%s %s: skipped" % (label, name))
        if result == "OK" and t_pass + t_fail + t_skip == 0:
            t_pass = 1
        passed += t_pass
        failed += t_fail
        skipped += t_skip

if skips:
    print("skipped checks, with their reasons:")
    for s in skips:
        print("  " + s)
if failures:
    print("failed checks:")
    for f in failures:
        print("  " + f)
print("tests: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed or passed == 0 else 0)
