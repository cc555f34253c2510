"""What the end-to-end benchmarks share: arguments, configs, running a contender, sizes,
medians, ratios."""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
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


class Seconds(float):
    """Wall seconds of a run, with .cpu: the user + system seconds of its processes (the
    process and the children it waited for, so a whole shell pipeline; a database server's
    own work is not in it)."""

    def __new__(cls, wall, cpu):
        obj = float.__new__(cls, wall)
        obj.cpu = cpu
        return obj


def run(cmd, shell=False, watch_rss=False, cwd=None, stdin=None):
    """Runs one contender to completion; exits the benchmark if it fails.

    Returns (seconds as Seconds, peak RSS in KiB). With watch_rss the RSS is the process's own
    (sampled VmHWM, children excluded); otherwise it is the kernel's figure for the
    process and the children it waited for (the heaviest of them).
    """
    start = time.perf_counter()
    p = subprocess.Popen(cmd, shell=shell, stdin=stdin, stdout=subprocess.DEVNULL, cwd=cwd)
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
    return (Seconds(elapsed, usage.ru_utime + usage.ru_stime),
            peak[0] if watch_rss else usage.ru_maxrss)


def rotated(names, r):
    """The contenders in the order of round r: each round starts with the next one. On a
    virtual machine the first to write into memory the guest has not touched lately pays
    for the host's page faults (a files restore on tmpfs: 3 s -> 5 s), so a fixed order
    would charge that to the same contender every round."""
    k = r % len(names)
    return list(names[k:]) + list(names[:k])


def contender_rounds(rounds, backups, restores, times, check_restore, fresh_target=None):
    """`rounds` rounds of an end-to-end benchmark, each starting with the next contender:
    every backup (name -> function giving its seconds), then every restore (into a fresh
    target, when `fresh_target` is given), checked by check_restore(name). The seconds go
    into times["b:<name>"] and times["r:<name>"]."""
    for r in range(rounds):
        for n in rotated(list(backups), r):
            times["b:" + n].append(backups[n]())
        for n in rotated(list(restores), r):
            if fresh_target:
                fresh_target()
            times["r:" + n].append(restores[n]())
            check_restore(n)
        print("bench: round %d/%d done: %s" % (r + 1, rounds, ", ".join(
            "%s %.2fs" % (k, v[-1]) for k, v in sorted(times.items()))), flush=True)


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
    our stored bytes / the peer's (below 1.0 we store less). Where the times carry their
    CPU seconds (run()), the median CPU and the cores it kept busy (CPU / wall) too: on a
    machine with few cores, what separates two contenders that both keep every core busy
    is the CPU they spend.
    """
    print(title)
    base_t = statistics.median(rows[0][2])
    base_s = rows[0][3]
    for label, times, stored in ((r[0], r[2], r[3]) for r in rows):
        med = statistics.median(times)
        line = "  %-30s %8.2fs %11s" % (label, med, fmt_size(stored) if stored else "")
        if all(hasattr(t, "cpu") for t in times):
            cpu = statistics.median(t.cpu for t in times)
            line += "   cpu %6.2fs (%.2f cores)" % (cpu, statistics.median(t.cpu / t for t in times))
        if label != rows[0][0]:
            line += "   %s speed %.2fx" % (ours, med / base_t)
            if stored and base_s:
                line += ", size %.3f" % (base_s / stored)
        print(line)


def arg_parser(description, **sizes):
    """--backupop, --rounds, --workdir, and the benchmark's size options (name=default)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--backupop", required=True)
    for name, default in sizes.items():
        ap.add_argument("--" + name, type=int, default=default)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    return ap


def missing_tool(what, tools):
    """Prints why the benchmark is skipped and returns True when a tool is missing."""
    for tool in tools:
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            print("bench: %s skipped: %s is not installed" % (what, tool))
            return True
    return False


def write_config(path, storage, name, engine, recipient):
    """A backupop config: file:// storage, an engine block (YAML text), zstd -3, age."""
    with open(path, "w") as f:
        f.write("storage: {url: \"file://%s\"}\nname: %s\n" % (storage, name))
        f.write("engine:\n  %s\n" % engine)
        f.write("compression: {algorithm: zstd, level: 3}\n")
        f.write("encryption: {recipients: [\"%s\"]}\n" % recipient)


def keygen(backupop, key):
    """A new age identity in `key`; returns its recipient."""
    return subprocess.run([backupop, "keygen", "-o", key], check=True,
                          stdout=subprocess.PIPE, text=True).stdout.strip()


def bop_backup(backupop, config, storage):
    """`backupop backup --config` into an emptied file:// storage folder: (seconds, its
    own peak RSS in KiB, stored bytes)."""
    shutil.rmtree(storage, ignore_errors=True)
    t, rss = run([backupop, "--log-level", "warn", "backup", "--config", config], watch_rss=True)
    return t, rss, os.path.getsize(stored_object(storage))


def bop_restore(backupop, config, key):
    """`backupop restore --config` of the latest backup through the engine: seconds."""
    return run([backupop, "--log-level", "warn", "restore", "--config", config,
                "--identity", key, "latest"])[0]


def pipeline(command):
    """A shell pipeline that fails when any of its commands fails: seconds."""
    return run(["bash", "-c", "set -o pipefail; " + command])[0]   # Seconds, with .cpu


class LocalServer:
    """A private database server of tests/env (pg-local.sh, mariadb-local.sh) in a folder
    under workdir: started at construction, its DIR/env settings in self.env."""

    def __init__(self, script, workdir):
        self.script = os.path.join(ROOT, "tests/env", script)
        self.dir = tempfile.mkdtemp(prefix=script.split("-")[0] + ".", dir=workdir)
        os.chmod(self.dir, 0o755)
        subprocess.run(["sh", self.script, "start", self.dir], check=True,
                       stdout=subprocess.DEVNULL)
        self.env = {}
        with open(os.path.join(self.dir, "env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                if k:
                    self.env[k] = v.strip("'\"")

    def stop(self):
        subprocess.run(["sh", self.script, "stop", self.dir],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)
