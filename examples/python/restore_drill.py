#!/usr/bin/python3
"""A restore drill, as a CI job would run it: for the newest backup of a catalog, restore
it into a scratch file, check its size and SHA-256 against the manifest, and fail when it
is older than allowed. Prints a report of every backup's age and size.

    restore_drill.py STORAGE_URL NAME [--identity FILE] [--max-age-hours N]

Exit status: 0 when the drill passed, 1 when it failed (the reason on stderr).
"""
import argparse
import hashlib
import os
import sys
import tempfile
import time

import backupop


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("storage")
    ap.add_argument("name")
    ap.add_argument("--identity", help="age identity file, for encrypted backups")
    ap.add_argument("--max-age-hours", type=float, default=26.0)
    args = ap.parse_args()

    identities = None
    if args.identity:
        identities = backupop.Keys(identity_files=[args.identity])
    with backupop.Catalog(args.storage, args.name) as cat:
        backups = cat.list()
        now = time.time()
        print("%-24s %10s %12s %12s  %s" % ("id", "age (h)", "plain", "stored", "tags"))
        for m in backups:
            print("%-24s %10.1f %12d %12d  %s" % (m.id, (now - m.start_time) / 3600,
                                                  m.plain_bytes, m.stored_bytes,
                                                  ",".join(m.tags)))
        if not backups:
            print("drill failed: no backup of %s" % args.name, file=sys.stderr)
            return 1
        latest = backups[-1]
        age_h = (now - latest.start_time) / 3600
        if age_h > args.max_age_hours:
            print("drill failed: the newest backup is %.1f hours old (at most %.1f)"
                  % (age_h, args.max_age_hours), file=sys.stderr)
            return 1
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "restored")
            try:
                cat.restore(latest.id, to=out, identities=identities)
            except backupop.BackupopError as e:
                print("drill failed: %s: %s" % (type(e).__name__, e), file=sys.stderr)
                return 1
            h = hashlib.sha256()
            with open(out, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            size = os.path.getsize(out)
        if size != latest.plain_bytes or h.hexdigest() != latest.plain_sha256:
            print("drill failed: the restored data does not match the manifest",
                  file=sys.stderr)
            return 1
        print("drill passed: %s restored, %d bytes, sha256 %s" % (latest.id, size,
                                                                 h.hexdigest()))
        return 0


if __name__ == "__main__":
    sys.exit(main())
