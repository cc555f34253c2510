"""TAP for the Python tests: one line per check, the plan at the end.

    from tap import check, done_testing
    check(cond, "what it means", "detail shown as comments when it fails")
    done_testing()          # prints 1..N, exits 1 if a check failed
"""
import sys

_n = 0
_failed = 0


def check(cond, name, detail=""):
    global _n, _failed
    _n += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (_n, name))
    if not cond:
        _failed += 1
        for line in detail.splitlines():
            print("# " + line)
    return cond


def done_testing():
    print("1..%d" % _n)
    sys.exit(1 if _failed else 0)
