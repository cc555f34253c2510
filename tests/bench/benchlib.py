"""What the end-to-end benchmarks share: running a contender, sizes, medians, ratios."""
import os
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def vmhwm_kib(pid):
    """The process's peak resident set so far (VmHWM), in KiB; 0 once it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(cmd, shell=False, watch_rss=False, cwd=None):
    """Runs one contender to completion; exits the benchmark if it fails.

    Returns (seconds, peak RSS in KiB). With watch_rss the RSS is the process's own
    (sampled VmHWM, children excluded); otherwise it is the kernel's figure for the
    process and the children it waited for (the heaviest of them).
    """
    start = time.perf_counter()
    p = subprocess.Popen(cmd, shell=shell, stdout=subprocess.DEVNULL, cwd=cwd)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], vmhwm_kib(p.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample) if watch_rss else None
    if sampler:
        sampler.start()
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - start
    done.set()
    if sampler:
        sampler.join()
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        sys.exit("bench: %r failed with status %d" % (cmd, rc))
    return elapsed, (peak[0] if watch_rss else usage.ru_maxrss)


def fmt_size(n):
    return "%.1f MB" % (n / 1e6)


def tree_size(path):
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(path) for f in fs)


def stored_object(storage):
    """The data object of the only backup in a file:// storage folder."""
    found = [os.path.join(d, f) for d, _, fs in os.walk(storage) for f in fs
             if f.startswith("data")]
    if len(found) != 1:
        sys.exit("bench: expected one data object under %s, found %d" % (storage, len(found)))
    return found[0]


def report(title, rows, ours="backupop"):
    """rows: [(label, key, seconds list, stored bytes or None)]; the first row is ours.

    Speed ratio = the peer's median time / ours (above 1.0 we are faster); size ratio =
    our stored bytes / the peer's (below 1.0 we store less).
    """
    print(title)
    base_t = statistics.median(rows[0][2])
    base_s = rows[0][3]
    for label, times, stored in ((r[0], r[2], r[3]) for r in rows):
        med = statistics.median(times)
        line = "  %-30s %8.2fs %11s" % (label, med, fmt_size(stored) if stored else "")
        if label != rows[0][0]:
            line += "   %s speed %.2fx" % (ours, med / base_t)
            if stored and base_s:
                line += ", size %.3f" % (base_s / stored)
        print(line)
