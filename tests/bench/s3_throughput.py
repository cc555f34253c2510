#!/usr/bin/env python3
"""S3 throughput benchmark (DESIGN.md §7: "S3 upload of a 1 GiB stream to radosgw faster
than `aws s3 cp -` on the same machine").

Streams the same random bytes (from a file on tmpfs, through a pipe) to the S3 server,
alternating the contenders in every round so that machine noise hits both alike:
  upload    `backupop backup --compression none` (no encryption; SHA-256 of the stream and
            of the stored bytes, the manifest) to s3://...   vs   `aws s3 cp - s3://...`
  download  `backupop restore` of that backup to /dev/null (verifying its size and
            SHA-256)   vs   `aws s3 cp s3://<the same object> -` to /dev/null
and prints the best throughput of each and backupop's ratio against awscli, then
backupop's peak RSS during its uploads. Everything is removed afterwards.

The server and keys come from the environment, as for the tests (tests/env/s3-local.sh
writes them): BOP_TEST_S3_ENDPOINT, BOP_TEST_S3_BUCKET, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY.

usage: s3_throughput.py --backupop PATH [--size-mib 1024] [--rounds 3]
                        [--params "&part_size=16MiB&concurrency=4"] [--aws /usr/bin/aws]
                        [--workdir /dev/shm]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time


def run(cmd, stdin=None, stdout=subprocess.DEVNULL):
    """Runs one contender; returns (seconds, peak RSS in KiB, its stdout if captured)."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=stdin, stdout=stdout)
    out = p.stdout.read() if stdout == subprocess.PIPE else None
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit("bench: %r failed with status %d" % (cmd, code))
    return elapsed, usage.ru_maxrss, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backupop", required=True)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--params", default="", help="extra s3:// URL parameters, \"&name=value...\"")
    ap.add_argument("--aws", default="/usr/bin/aws" if os.path.exists("/usr/bin/aws")
                    else shutil.which("aws"))
    ap.add_argument("--workdir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = ap.parse_args()

    endpoint = os.environ.get("BOP_TEST_S3_ENDPOINT")
    if not endpoint:
        sys.exit("bench: BOP_TEST_S3_ENDPOINT is not set (start tests/env/s3-local.sh and "
                 "load its env file)")
    if not args.aws:
        sys.exit("bench: awscli is not installed (apt-get install awscli)")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    bucket = os.environ.get("BOP_TEST_S3_BUCKET", "backupop-test")
    prefix = "bop-bench/s3-%d-%d" % (int(time.time()), os.getpid())
    work = tempfile.mkdtemp(prefix="bop-s3bench-", dir=args.workdir)
    aws = [args.aws, "--endpoint-url", endpoint, "--only-show-errors"]
    try:
        bench(args, work, endpoint, bucket, prefix, aws)
    finally:
        subprocess.run(aws + ["s3", "rm", "--recursive", "s3://%s/%s/" % (bucket, prefix)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)


def bench(args, work, endpoint, bucket, prefix, aws):
    inp = os.path.join(work, "input.bin")
    with open(inp, "wb") as f:
        left = args.size_mib << 20
        while left:
            chunk = os.urandom(min(left, 16 << 20))
            f.write(chunk)
            left -= len(chunk)
    url = "s3://%s/%s?endpoint=%s&path_style=true%s" % (bucket, prefix, endpoint, args.params)
    best = {k: float("inf") for k in ("up backupop", "up aws", "down backupop", "down aws")}
    rss = []
    for r in range(args.rounds):
        with open(inp, "rb") as f:
            s, kib, out = run([args.backupop, "-q", "backup", "--storage", url, "--name", "r%d" % r,
                               "--compression", "none"], stdin=f, stdout=subprocess.PIPE)
        backup_id = out.decode().strip()
        best["up backupop"] = min(best["up backupop"], s)
        rss.append(kib)
        aws_key = "s3://%s/%s/aws-%d" % (bucket, prefix, r)
        with open(inp, "rb") as f:
            s, _, _ = run(aws + ["s3", "cp", "-", aws_key], stdin=f)
        best["up aws"] = min(best["up aws"], s)
        s, _, _ = run([args.backupop, "-q", "restore", "--storage", url, "--name", "r%d" % r,
                       backup_id])
        best["down backupop"] = min(best["down backupop"], s)
        data = "s3://%s/%s/r%d/%s/data" % (bucket, prefix, r, backup_id)
        s, _, _ = run(aws + ["s3", "cp", data, "-"])
        best["down aws"] = min(best["down aws"], s)
        subprocess.run(aws + ["s3", "rm", "--recursive", "s3://%s/%s/" % (bucket, prefix)],
                       check=True, stdout=subprocess.DEVNULL)

    mib = args.size_mib
    print("S3 throughput to %s on %d MiB of random bytes, best of %d rounds, %d cores:"
          % (endpoint, mib, args.rounds, os.cpu_count()))
    for name, seconds in best.items():
        print("  %-13s %8.1f MiB/s  (%.2f s)" % (name, mib / seconds, seconds))
    print("ratio upload   backupop / aws s3 cp   %.2fx" % (best["up aws"] / best["up backupop"]))
    print("ratio download backupop / aws s3 cp   %.2fx"
          % (best["down aws"] / best["down backupop"]))
    print("peak RSS of backupop backup: %.1f MiB (max of %d uploads)" % (max(rss) / 1024, len(rss)))


if __name__ == "__main__":
    main()
