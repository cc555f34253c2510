#!/usr/bin/env python3
"""End-to-end PostgreSQL backup and restore benchmark: the job users run.

Starts a private PostgreSQL server (tests/env/pg-local.sh), fills a database with
`pgbench -i` at --scale (70 gives about 1 GB) plus a less compressible table of text,
then, alternating the contenders round by round (each round starting with the next one)
so that machine noise hits all alike:

  backup   backupop      `backupop backup --config` with the postgres engine (zstd -3 + age)
           pg_dump -Fc   `pg_dump -Fc` alone (its own gzip)
           shell         `pg_dump -Fc -Z0 | zstd -3 -T0 | age -r R`
  restore  backupop      `backupop restore` into a new, empty database
           pg_restore    `pg_restore --single-transaction --exit-on-error` of the -Fc dump
           shell         `age -d | zstd -d | pg_restore --single-transaction --exit-on-error`

and prints each one's median time, stored size, and backupop's ratios against the peers
(speed ratio = peer time / backupop time: above 1.0 backupop is faster). Every restore is
checked (the row counts of the restored database equal the source's). Peak RSS: of the
backupop process itself (its VmHWM, sampled), at the full size and at a quarter of it.
Storage and dumps live on a tmpfs (--workdir, default /dev/shm).

usage: db_postgres.py --backupop PATH [--scale 70] [--rounds 3] [--workdir /dev/shm]
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (LocalServer, arg_parser, bop_backup, bop_restore,  # noqa: E402
                      contender_rounds, fmt_size, keygen, missing_tool, pipeline, report, run,
                      write_config)


class Postgres(LocalServer):
    def __init__(self, workdir):
        super().__init__("pg-local.sh", workdir)
        self.bin = self.env["PG_BIN"]
        self.host = self.env["PG_SOCKDIR"]
        self.port = self.env["PG_PORT"]
        self.user = self.env.get("PG_SUPERUSER", "postgres")

    def conn(self):
        return ["-h", self.host, "-p", self.port, "-U", self.user]

    def tool(self, name):
        return os.path.join(self.bin, name)

    def sql(self, db, text):
        out = subprocess.run([self.tool("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"] +
                             self.conn() + ["-d", db, "-c", text], check=True, text=True,
                             stdout=subprocess.PIPE,
                             env=dict(os.environ, PGOPTIONS="-c client_min_messages=warning"))
        return out.stdout.strip()


def fill(pg, db, scale):
    pg.sql("postgres", "CREATE DATABASE %s" % db)
    subprocess.run([pg.tool("pgbench"), "-i", "-q", "-s", str(scale)] + pg.conn() + [db],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # text that compresses about 2:1, like logs or ids: 35,000 rows per scale step
    pg.sql(db, "CREATE TABLE notes (id bigint PRIMARY KEY, who text, body text);"
               "INSERT INTO notes SELECT g, 'user-' || (g::bigint * 7919 %% 100003), "
               "md5(random()::text) || md5(g::text) || md5(random()::text) "
               "FROM generate_series(1, %d) g" % (35000 * scale))
    pg.sql(db, "VACUUM ANALYZE")
    return int(pg.sql("postgres", "SELECT pg_database_size('%s')" % db))


def counts(pg, db):
    return pg.sql(db, "SELECT (SELECT count(*) FROM pgbench_accounts) || ' ' || "
                      "(SELECT count(*) FROM pgbench_history) || ' ' || "
                      "(SELECT count(*) FROM notes) || ' ' || "
                      "(SELECT sum(abalance) FROM pgbench_accounts)")


def pg_config(path, pg, db, restore_db, storage, recipient):
    write_config(path, storage, "bench/" + db,
                 "postgres: {host: \"%s\", port: %s, database: %s, user: %s, binDir: \"%s\", "
                 "restore: {database: %s}}" % (pg.host, pg.port, db, pg.user, pg.bin, restore_db),
                 recipient)


def main():
    args = arg_parser(__doc__.splitlines()[0], scale=70).parse_args()
    if missing_tool("postgres", ("zstd", "age")):
        return 0
    bop = os.path.abspath(args.backupop)
    work = tempfile.mkdtemp(prefix="bench-db.", dir=args.workdir)
    os.chmod(work, 0o755)
    pg = None
    try:
        pg = Postgres(work)
        print("bench: postgres %s, loading pgbench scale %d + notes..." % (pg.bin, args.scale),
              flush=True)
        t0 = time.perf_counter()
        size = fill(pg, "bench", args.scale)
        small_scale = max(1, args.scale // 4)
        small = fill(pg, "small", small_scale)
        print("bench: database 'bench' %s (loaded in %.0f s), 'small' %s" %
              (fmt_size(size), time.perf_counter() - t0, fmt_size(small)), flush=True)
        source = counts(pg, "bench")

        key = os.path.join(work, "key.txt")
        recipient = keygen(bop, key)
        storage = os.path.join(work, "store")
        cfg = os.path.join(work, "bench.yaml")
        pg_config(cfg, pg, "bench", "restored", storage, recipient)
        cfg_small = os.path.join(work, "small.yaml")
        pg_config(cfg_small, pg, "small", "restored", storage, recipient)
        dump = os.path.join(work, "dump.fc")
        piped = os.path.join(work, "dump.zst.age")
        pg_dump = "%s -h %s -p %s -U %s" % (pg.tool("pg_dump"), pg.host, pg.port, pg.user)
        pg_restore = "%s -h %s -p %s -U %s --single-transaction --exit-on-error" % (
            pg.tool("pg_restore"), pg.host, pg.port, pg.user)

        times = {k: [] for k in ("b:backupop", "b:pg_dump -Fc", "b:shell",
                                  "r:backupop", "r:pg_restore", "r:shell")}
        sizes = {}
        rss = {}

        def fresh_target():
            pg.sql("postgres", "DROP DATABASE IF EXISTS restored")
            pg.sql("postgres", "CREATE DATABASE restored")

        def check_restore(who):
            got = counts(pg, "restored")
            if got != source:
                sys.exit("bench: %s restored %s rows, the source has %s" % (who, got, source))

        def backup_backupop():
            t, m, sizes["backupop"] = bop_backup(bop, cfg, storage)
            rss["full"] = max(rss.get("full", 0), m)
            return t

        def backup_pg_dump():
            t, _ = run("%s -Fc bench -f %s" % (pg_dump, dump), shell=True)
            sizes["pg_dump -Fc"] = os.path.getsize(dump)
            return t

        def backup_shell():
            t = pipeline("%s -Fc -Z0 bench | zstd -3 -T0 -q | age -r %s > %s"
                         % (pg_dump, recipient, piped))
            sizes["shell"] = os.path.getsize(piped)
            return t

        backups = {"backupop": backup_backupop, "pg_dump -Fc": backup_pg_dump,
                   "shell": backup_shell}
        restores = {
            "backupop": lambda: bop_restore(bop, cfg, key),
            "pg_restore": lambda: run("%s -d restored %s" % (pg_restore, dump), shell=True)[0],
            "shell": lambda: pipeline("age -d -i %s %s | zstd -d -q | %s -d restored"
                                      % (key, piped, pg_restore)),
        }
        contender_rounds(args.rounds, backups, restores, times, check_restore, fresh_target)

        _, rss["quarter"] = run([bop, "--log-level", "warn", "backup", "--config", cfg_small],
                                watch_rss=True)

        print()
        report("PostgreSQL %s (pgbench scale %d + notes), backup, median of %d" %
               (fmt_size(size), args.scale, args.rounds),
               [("backupop (postgres engine)", "", times["b:backupop"], sizes["backupop"]),
                ("pg_dump -Fc", "", times["b:pg_dump -Fc"], sizes["pg_dump -Fc"]),
                ("pg_dump -Z0 | zstd | age", "", times["b:shell"], sizes["shell"])])
        report("restore into a new database",
               [("backupop restore", "", times["r:backupop"], None),
                ("pg_restore (-Fc dump)", "", times["r:pg_restore"], None),
                ("age -d | zstd -d | pg_restore", "", times["r:shell"], None)])
        print("backupop peak RSS: %.1f MiB at %s, %.1f MiB at %s (ratio %.2f)" % (
            rss["full"] / 1024, fmt_size(size), rss["quarter"] / 1024, fmt_size(small),
            rss["full"] / max(1, rss["quarter"])))
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
