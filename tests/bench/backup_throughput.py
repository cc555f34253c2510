#!/usr/bin/env python3
"""Backup pipeline benchmark (DESIGN.md §7).

On SQL-dump-like input, measures in one run, alternating the contenders so that machine
noise hits all of them alike:
  backupop   `backupop backup` — zstd -3 + age (X25519) + SHA-256 of plaintext and of the
             stored bytes, file source -> file:// storage
  zstd       `zstd -3 -T0` alone (the compression limit on these cores)
  zstd|age   the shell pipeline `zstd -3 -T0 | age -r R`
  gzip|age   the script-based seed's design, `gzip | age -r R`
and prints throughput and backupop's ratio against each peer; then restore of the same
input, `backupop restore -o FILE` against `age -d | zstd -d` (every output compared with the
input); then backupop's peak RSS at two input sizes. Outputs go to a tmpfs (/dev/shm) for every contender, so the disk is not
what is measured; backupop still fsyncs and renames as it always does.

usage: backup_throughput.py --backupop PATH --gen-sql PATH [--size-mib 256] [--big-mib 1024]
                            [--rounds 3] [--workdir /dev/shm]
"""
import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import rotated, run  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backupop", required=True)
    ap.add_argument("--gen-sql", required=True)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = ap.parse_args()

    for tool in ("zstd", "age", "gzip"):
        if not shutil.which(tool):
            sys.exit("bench: %s is not installed (apt-get install %s)" % (tool, tool))
    work = tempfile.mkdtemp(prefix="bop-bench-", dir=args.workdir)
    try:
        bench(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def best_of(contenders, rounds, after):
    """Runs the contenders in turn, `rounds` times (each round starting with the next one),
    calling after(name) after each run: the best time of each."""
    best = {name: float("inf") for name in contenders}
    for r in range(rounds):
        for name in rotated(list(contenders), r):
            seconds, _ = contenders[name]()
            best[name] = min(best[name], seconds)
            after(name)
    return best


def print_rates(title, best, mib):
    print(title)
    for name, seconds in best.items():
        print("  %-9s %8.1f MiB/s  (%.2f s, cpu %.2f s)" % (name, mib / seconds, seconds,
                                                         seconds.cpu))


def bench(args, work):
    inp = os.path.join(work, "input.sql")
    with open(inp, "wb") as f:
        subprocess.run([args.gen_sql, str(args.size_mib << 20)], stdout=f, check=True)
    key = os.path.join(work, "key.txt")
    recipient = subprocess.run([args.backupop, "keygen", "-o", key], check=True,
                               capture_output=True, text=True).stdout.strip().split()[-1]
    out = os.path.join(work, "out")
    storage = "file://" + os.path.join(work, "store")

    contenders = {
        "backupop": lambda: run([args.backupop, "backup", "--storage", storage, "--name", "bench",
                                 "--recipient", recipient, "--compression", "zstd", "--level", "3",
                                 "-q", "-i", inp]),
        "zstd": lambda: run(["zstd", "-q", "-3", "-T0", "-f", "-o", out, inp]),
        "zstd|age": lambda: run("zstd -q -3 -T0 -c '%s' | age -r %s > '%s'" % (inp, recipient, out),
                                shell=True),
        "gzip|age": lambda: run("gzip -c '%s' | age -r %s > '%s'" % (inp, recipient, out),
                                shell=True),
    }
    def clean(_):
        shutil.rmtree(os.path.join(work, "store"), ignore_errors=True)
        if os.path.exists(out):
            os.unlink(out)

    best = best_of(contenders, args.rounds, clean)
    print_rates("backup throughput on %d MiB of SQL-like text, best of %d rounds, %d cores:"
                % (args.size_mib, args.rounds, os.cpu_count()), best, args.size_mib)
    for peer in ("zstd", "zstd|age", "gzip|age"):
        print("ratio backupop / %-9s %.2fx" % (peer, best[peer] / best["backupop"]))

    restore(args, work, inp, key, recipient, storage, out)

    rss = {}
    for size in (args.size_mib, args.big_mib):
        path = os.path.join(work, "rss-%d.sql" % size)
        with open(path, "wb") as f:
            subprocess.run([args.gen_sql, str(size << 20), "7"], stdout=f, check=True)
        _, rss[size] = run([args.backupop, "backup", "--storage", storage, "--name", "rss",
                            "--recipient", recipient, "-q", "-i", path])
        os.unlink(path)
        shutil.rmtree(os.path.join(work, "store"), ignore_errors=True)
    small, big = rss[args.size_mib], rss[args.big_mib]
    print("peak RSS of backupop backup: %d MiB input %.1f MiB, %d MiB input %.1f MiB (%+.1f%%)"
          % (args.size_mib, small / 1024, args.big_mib, big / 1024, 100.0 * (big - small) / small))


def restore(args, work, inp, key, recipient, storage, out):
    """Restore of the same input, alternating: `backupop restore -o` (decrypt, decompress,
    the stored size and the plaintext's size and SHA-256 checked, atomic rename) against
    `age -d | zstd -d`; each output is compared with the input."""
    stored = os.path.join(work, "peer.zst.age")
    run([args.backupop, "backup", "--storage", storage, "--name", "restore", "--recipient",
         recipient, "-q", "-i", inp])
    run("zstd -q -3 -T0 -c '%s' | age -r %s > '%s'" % (inp, recipient, stored), shell=True)
    contenders = {
        "backupop": lambda: run([args.backupop, "restore", "--storage", storage, "--name",
                                 "restore", "--identity", key, "-q", "-o", out, "latest"]),
        "age|zstd": lambda: run("age -d -i '%s' '%s' | zstd -d -q > '%s'" % (key, stored, out),
                                shell=True),
    }
    def check(name):
        if not filecmp.cmp(inp, out, shallow=False):
            sys.exit("bench: %s restored something else than the input" % name)
        os.unlink(out)

    best = best_of(contenders, args.rounds, check)
    os.unlink(stored)
    print_rates("restore throughput of the same input, best of %d rounds:" % args.rounds, best,
                args.size_mib)
    print("ratio backupop / %-9s %.2fx" % ("age -d | zstd -d", best["age|zstd"] / best["backupop"]))


if __name__ == "__main__":
    main()
