#!/usr/bin/python3
"""Runs the pytest tests of the Python bindings and reports each as one TAP line, so the
suite's total counts every test:  run_tap.py TESTS_DIR [pytest args...]

pytest's own output goes to stderr (the test log); stdout carries only TAP. Without cffi or
pytest, or when the module cannot be imported, the whole file reports itself skipped."""
import os
import sys

tap = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
sys.stdout = sys.stderr


def skip_all(reason):
    tap.write("1..0 # SKIP %s\n" % reason)
    sys.exit(0)


try:
    import cffi  # noqa: F401
except ImportError:
    skip_all("python3-cffi is not installed")
try:
    import pytest
except ImportError:
    skip_all("python3-pytest is not installed")


class TapPlugin:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def _line(self, ok, name, directive="", detail=""):
        self.n += 1
        tap.write("%s %d - %s%s\n" % ("ok" if ok else "not ok", self.n, name, directive))
        for line in detail.splitlines()[-40:]:
            tap.write("# %s\n" % line)
        if not ok:
            self.failed += 1

    def pytest_runtest_logreport(self, report):
        name = report.nodeid.split("::", 1)[-1]
        if report.when == "call" or (report.when == "setup" and not report.passed):
            if report.skipped:
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
                reason = reason.replace("Skipped: ", "")
                self._line(True, name, " # SKIP %s" % reason)
            elif report.passed:
                self._line(True, name)
            else:
                self._line(False, name, detail=report.longreprtext)
        elif report.when == "teardown" and report.failed:
            self._line(False, name + " (teardown)", detail=report.longreprtext)

    def pytest_collectreport(self, report):
        if report.failed:
            self._line(False, "collect " + report.nodeid, detail=report.longreprtext)


plugin = TapPlugin()
rc = pytest.main([sys.argv[1], "-p", "no:cacheprovider", "-q", "-rs"] + sys.argv[2:],
                 plugins=[plugin])
tap.write("1..%d\n" % plugin.n)
if plugin.n == 0:
    tap.write("not ok 1 - no test ran (pytest exit %d)\n" % rc)
    sys.exit(1)
sys.exit(1 if plugin.failed or rc not in (0, 5) else 0)
