#!/usr/bin/env python3
"""End-to-end file tree backup and restore benchmark: the job users run.

Copies a real tree (--tree, default /usr/share: tens of thousands of files, text and
binary) onto a tmpfs, then, alternating the contenders round by round (each round
starting with the next one):

  backup   backupop   `backupop backup --config` with the files engine (zstd -3 + age)
           tar        `tar -c | zstd -3 -T0 | age -r R`
           restic     `restic backup` into a new repository (a first backup), when installed
  restore  backupop   `backupop restore` into an empty directory
           tar        `age -d | zstd -d | tar -x`
           restic     `restic restore latest --target`

and prints median times, stored sizes and backupop's ratios (speed ratio = peer time /
backupop time). Every restore is compared with the source (names, types, sizes, modes,
contents). backupop's own peak RSS at the tree and at twice the tree (two copies of it side
by side: the same files, twice the bytes and entries).

usage: files_tree.py --backupop PATH [--tree /usr/share] [--rounds 3] [--workdir /dev/shm]
"""
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (arg_parser, bop_backup, bop_restore, contender_rounds,  # noqa: E402
                      fmt_size, keygen, missing_tool, pipeline, report, run, tree_size,
                      write_config)


def same_tree(a, b):
    """True when b holds what a holds: every entry, type, size, mode bits and content."""
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        print("bench: %s differs: only in source %s, only in restore %s" %
              (a, cmp.left_only[:3], cmp.right_only[:3]))
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        print("bench: %s: files differ: %s" % (a, (mismatch + errors)[:3]))
        return False
    for name in cmp.common_files:
        if os.lstat(os.path.join(a, name)).st_mode != os.lstat(os.path.join(b, name)).st_mode:
            print("bench: %s: mode differs" % os.path.join(a, name))
            return False
    return all(same_tree(os.path.join(a, d), os.path.join(b, d)) for d in cmp.common_dirs)


def file_count(path):
    return sum(len(fs) for _, _, fs in os.walk(path))


def files_config(path, tree, restore_to, storage, recipient):
    write_config(path, storage, "bench/files",
                 "files: {path: \"%s\", restore: {path: \"%s\"}}" % (tree, restore_to), recipient)


def main():
    ap = arg_parser(__doc__.splitlines()[0])
    ap.add_argument("--tree", default="/usr/share")
    args = ap.parse_args()
    if missing_tool("files", ("zstd", "age", "tar")):
        return 0
    restic = shutil.which("restic")
    bop = os.path.abspath(args.backupop)
    work = tempfile.mkdtemp(prefix="bench-files.", dir=args.workdir)
    try:
        tree = os.path.join(work, "tree")
        # symlinks kept as links; what cannot be read (sockets, unreadable files) left out
        subprocess.run(["cp", "-a", args.tree, tree], check=True)
        size, files = tree_size(tree), file_count(tree)
        print("bench: tree %s: %s in %d files" % (args.tree, fmt_size(size), files), flush=True)

        key = os.path.join(work, "key.txt")
        recipient = keygen(bop, key)
        storage = os.path.join(work, "store")
        out = os.path.join(work, "out")
        cfg = os.path.join(work, "files.yaml")
        files_config(cfg, tree, out, storage, recipient)
        double = os.path.join(work, "double")
        cfg_double = os.path.join(work, "double.yaml")
        files_config(cfg_double, double, out, storage, recipient)
        piped = os.path.join(work, "tree.tar.zst.age")
        repo = os.path.join(work, "restic")
        os.environ["RESTIC_PASSWORD"] = "bench-only"

        names = ["backupop", "tar"] + (["restic"] if restic else [])
        times = {k + n: [] for k in ("b:", "r:") for n in names}
        sizes, rss = {}, {}

        def restored(who):
            if not same_tree(tree, out):
                sys.exit("bench: the tree %s restored differs from the source" % who)
            shutil.rmtree(out)

        def backup_backupop():
            t, m, sizes["backupop"] = bop_backup(bop, cfg, storage)
            rss["full"] = max(rss.get("full", 0), m)
            return t

        def backup_tar():
            t = pipeline("tar -C %s -c . | zstd -3 -T0 -q | age -r %s > %s"
                         % (tree, recipient, piped))
            sizes["tar"] = os.path.getsize(piped)
            return t

        def backup_restic():
            shutil.rmtree(repo, ignore_errors=True)
            subprocess.run([restic, "init", "-q", "--repo", repo], check=True,
                           stdout=subprocess.DEVNULL)
            t, _ = run([restic, "backup", "-q", "--repo", repo, "."], cwd=tree)
            sizes["restic"] = tree_size(repo)
            return t

        def restore_tar():
            os.mkdir(out)
            return pipeline("age -d -i %s %s | zstd -d -q | tar -C %s -x" % (key, piped, out))

        def restore_restic():
            return run([restic, "restore", "-q", "--repo", repo, "latest", "--target", out])[0]

        backups = {"backupop": backup_backupop, "tar": backup_tar, "restic": backup_restic}
        restores = {"backupop": lambda: bop_restore(bop, cfg, key), "tar": restore_tar,
                    "restic": restore_restic}
        contender_rounds(args.rounds, {n: backups[n] for n in names},
                         {n: restores[n] for n in names}, times,
                         lambda n: restored("by " + n))

        # The peak at twice the tree (not at a part of it: another mix of files makes zstd
        # keep another number of jobs in flight), as many times as at the tree: zstd's
        # buffer pool varies from run to run by a few MiB with the timing of its workers.
        os.mkdir(double)
        for copy in ("a", "b"):
            subprocess.run(["cp", "-a", tree, os.path.join(double, copy)], check=True)
        for _ in range(args.rounds):
            _, m, _ = bop_backup(bop, cfg_double, storage)
            rss["double"] = max(rss.get("double", 0), m)
        shutil.rmtree(double)
        label = {"backupop": "backupop (files engine)", "tar": "tar | zstd | age",
                 "restic": "restic backup (first)"}
        print()
        report("Files: %s, %s in %d files, backup, median of %d" %
               (args.tree, fmt_size(size), files, args.rounds),
               [(label[n], "", times["b:" + n], sizes[n]) for n in names])
        rlabel = {"backupop": "backupop restore", "tar": "age -d | zstd -d | tar -x",
                  "restic": "restic restore"}
        report("restore into an empty directory",
               [(rlabel[n], "", times["r:" + n], None) for n in names])
        if not restic:
            print("  restic: not installed, not compared")
        print("backupop peak RSS: %.1f MiB at the tree, %.1f MiB at twice the tree (ratio %.2f)"
              % (rss["full"] / 1024, rss["double"] / 1024, rss["double"] / max(1, rss["full"])))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
