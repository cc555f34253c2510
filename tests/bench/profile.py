#!/usr/bin/env python3
"""Where a command's CPU goes: per thread, and per library within each thread.

Runs COMMAND under `perf record` (every thread, and the children it starts), then prints
the CPU seconds of each thread by name and id (backupop names its own threads: bop-read
reads, checks and decrypts a restore's stored object, bop-sha256 hashes, bop-output writes
a restore's output, bop-extract unpacks a files restore, zstd's workers keep the process's
name), split by the library the time was spent in, and the wall
time. The thread with the most CPU against the wall time shows what bounds the job.

usage: profile.py [--freq 999] [--min 0.02] -- COMMAND [ARGS...]
   e.g. profile.py -- backupop restore --config c.yaml latest -o /dev/shm/out
        profile.py -- sh -c 'age -d -i key f.age | zstd -d > /dev/shm/out'

Needs perf (Debian: linux-perf) and permission to use it (root, or
kernel.perf_event_paranoid <= 1); says so and exits 77 otherwise.
"""
import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time

SHORT = {"[kernel.kallsyms]": "kernel"}


def short(dso):
    """libzstd.so.1.5.4 -> libzstd; [kernel.kallsyms] -> kernel."""
    if dso in SHORT:
        return SHORT[dso]
    return dso.split(".so")[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--freq", type=int, default=999, help="samples per second (default 999)")
    ap.add_argument("--min", type=float, default=0.02,
                    help="hide libraries under this many seconds in a thread (default 0.02)")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("give the command after --")
    if not shutil.which("perf"):
        print("profile: perf is not installed (apt-get install linux-perf)")
        sys.exit(77)
    with tempfile.TemporaryDirectory(prefix="bop-profile-") as work:
        data = os.path.join(work, "perf.data")
        start = time.perf_counter()
        rec = subprocess.run(["perf", "record", "-q", "-F", str(args.freq), "-o", data, "--"]
                             + cmd, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        if not os.path.exists(data):
            print("profile: perf record failed: %s" % rec.stderr.strip().splitlines()[-1:])
            sys.exit(77)
        if rec.returncode != 0:
            print("profile: the command failed with status %d" % rec.returncode)
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "-g", "none",
                              "--sort", "pid,dso", "-F", "period,pid,dso"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             check=True).stdout
        # The command's own wall time: from its first sample to its last (perf's start and
        # end are not the command's).
        stamps = subprocess.run(["perf", "script", "-i", data, "-F", "time"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                check=True).stdout.split()
        if len(stamps) > 1:
            wall = float(stamps[-1].rstrip(":")) - float(stamps[0].rstrip(":"))
    threads = collections.defaultdict(collections.Counter)
    for line in rep.splitlines():
        parts = line.split()
        if not parts or line.startswith("#") or not parts[0].isdigit():
            continue
        # "50050050  17653:backupop  libzstd.so.1.5.4": the period is in ns of CPU time
        threads[parts[1]][short(" ".join(parts[2:]))] += int(parts[0]) / 1e9
    total = sum(sum(c.values()) for c in threads.values())
    print("%-24s %7s   %s" % ("thread", "cpu s", "by library (s)"))
    for name, libs in sorted(threads.items(), key=lambda kv: -sum(kv[1].values())):
        own = sum(libs.values())
        if own < args.min:
            continue
        tid, _, comm = name.partition(":")
        shown = ["%s %.2f" % (lib, s) for lib, s in libs.most_common() if s >= args.min]
        print("%-24s %7.2f   %s" % ("%s[%s]" % (comm, tid), own, "  ".join(shown)))
    print("total %.2f s of CPU in %.2f s (%.2f cores)" % (total, wall, total / wall))
    sys.exit(rec.returncode)


if __name__ == "__main__":
    main()
