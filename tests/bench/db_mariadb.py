#!/usr/bin/env python3
"""End-to-end MariaDB backup and restore benchmark: the job users run.

Starts a private MariaDB server (tests/env/mariadb-local.sh), fills a database of about
--mib MB (an orders table of repetitive rows and a table of less compressible text), then,
alternating the contenders round by round (each round starting with the next one):

  backup   backupop   `backupop backup --config` with the mysql engine (zstd -3 + age)
           shell      `mariadb-dump <the engine's flags> | zstd -3 -T0 | age -r R`
  restore  backupop   `backupop restore` into a new, empty database
           shell      `age -d | zstd -d | mariadb` into a new, empty database

and prints each one's median time, stored size and backupop's ratios (speed ratio = peer
time / backupop time). Every restore is checked: row counts and CHECKSUM TABLE of the
restored tables equal the source's. backupop's own peak RSS at the full size and at a
quarter of it. Everything lives on a tmpfs (--workdir, default /dev/shm).

usage: db_mariadb.py --backupop PATH [--mib 640] [--rounds 3] [--workdir /dev/shm]
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

# What the mysql engine passes to mariadb-dump for one database (see its source).
DUMP_FLAGS = ("--single-transaction --routines --triggers --events --hex-blob "
              "--default-character-set=utf8mb4")


class MariaDB(LocalServer):
    def __init__(self, workdir):
        super().__init__("mariadb-local.sh", workdir)
        self.socket = self.env["MY_SOCKET"]
        self.user = self.env.get("MY_SUPERUSER", "root")
        self.client = "mariadb --no-defaults --socket=%s -u %s" % (self.socket, self.user)
        self.dump = "mariadb-dump --no-defaults --socket=%s -u %s" % (self.socket, self.user)

    def sql(self, text, db=""):
        out = subprocess.run(self.client.split() + ["-N", "-B", "-e", text] + ([db] if db else []),
                             check=True, stdout=subprocess.PIPE, text=True)
        return out.stdout.strip()


def fill(my, db, mib):
    """About mib MB of dump: 60% repetitive order rows, 40% hex text."""
    orders = int(mib * 1e6 * 0.6 / 110)
    notes = int(mib * 1e6 * 0.4 / 110)
    my.sql("CREATE DATABASE %s" % db)
    my.sql("CREATE TABLE orders (id bigint PRIMARY KEY, customer varchar(40), amount decimal(10,2),"
           " day date, status varchar(16), note varchar(64)) ENGINE=InnoDB;"
           "INSERT INTO orders SELECT seq, concat('customer-', seq * 7919 %% 100003),"
           " (seq * 31 %% 100000) / 100, '2026-01-01' + INTERVAL (seq %% 365) DAY,"
           " elt(1 + seq %% 4, 'new', 'paid', 'shipped', 'returned'),"
           " concat('order ', seq, ' for ', seq %% 977, ' items') FROM seq_1_to_%d;"
           "CREATE TABLE notes (id bigint PRIMARY KEY, body varchar(100)) ENGINE=InnoDB;"
           "INSERT INTO notes SELECT seq, concat(md5(rand()), md5(seq), md5(rand()))"
           " FROM seq_1_to_%d" % (orders, notes), db)


def fingerprint(my, db):
    return my.sql("SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM notes);"
                  "CHECKSUM TABLE orders, notes", db).replace(db + ".", "")


def my_config(path, my, db, restore_db, storage, recipient):
    write_config(path, storage, "bench/" + db,
                 "mysql: {socket: \"%s\", database: %s, user: %s, restore: {database: %s}}"
                 % (my.socket, db, my.user, restore_db), recipient)


def main():
    args = arg_parser(__doc__.splitlines()[0], mib=640).parse_args()
    if missing_tool("mariadb", ("zstd", "age", "mariadbd", "mariadb-dump")):
        return 0
    bop = os.path.abspath(args.backupop)
    work = tempfile.mkdtemp(prefix="bench-my.", dir=args.workdir)
    os.chmod(work, 0o755)
    my = None
    try:
        my = MariaDB(work)
        t0 = time.perf_counter()
        fill(my, "bench", args.mib)
        fill(my, "small", args.mib // 4)
        source = fingerprint(my, "bench")
        key = os.path.join(work, "key.txt")
        recipient = keygen(bop, key)
        storage = os.path.join(work, "store")
        cfg = os.path.join(work, "bench.yaml")
        my_config(cfg, my, "bench", "restored", storage, recipient)
        cfg_small = os.path.join(work, "small.yaml")
        my_config(cfg_small, my, "small", "restored", storage, recipient)
        piped = os.path.join(work, "dump.sql.zst.age")
        plain = subprocess.run("%s %s bench | wc -c" % (my.dump, DUMP_FLAGS), shell=True,
                               check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
        print("bench: mariadb database 'bench' dumps to %s (loaded in %.0f s)" %
              (fmt_size(int(plain)), time.perf_counter() - t0), flush=True)

        times = {k: [] for k in ("b:backupop", "b:shell", "r:backupop", "r:shell")}
        sizes = {}
        rss = {}

        def fresh_target():
            my.sql("DROP DATABASE IF EXISTS restored; CREATE DATABASE restored")

        def check_restore(who):
            got = fingerprint(my, "restored")
            if got != source:
                sys.exit("bench: %s restored %r, the source is %r" % (who, got, source))

        def backup_backupop():
            t, m, sizes["backupop"] = bop_backup(bop, cfg, storage)
            rss["full"] = max(rss.get("full", 0), m)
            return t

        def backup_shell():
            t = pipeline("%s %s bench | zstd -3 -T0 -q | age -r %s > %s"
                         % (my.dump, DUMP_FLAGS, recipient, piped))
            sizes["shell"] = os.path.getsize(piped)
            return t

        backups = {"backupop": backup_backupop, "shell": backup_shell}
        restores = {
            "backupop": lambda: bop_restore(bop, cfg, key),
            "shell": lambda: pipeline("age -d -i %s %s | zstd -d -q | %s restored"
                                      % (key, piped, my.client)),
        }
        contender_rounds(args.rounds, backups, restores, times, check_restore, fresh_target)

        shutil.rmtree(storage, ignore_errors=True)
        _, rss["quarter"] = run([bop, "--log-level", "warn", "backup", "--config", cfg_small],
                                watch_rss=True)
        print()
        report("MariaDB, a %s dump, backup, median of %d" % (fmt_size(int(plain)), args.rounds),
               [("backupop (mysql engine)", "", times["b:backupop"], sizes["backupop"]),
                ("mariadb-dump | zstd | age", "", times["b:shell"], sizes["shell"])])
        report("restore into a new database",
               [("backupop restore", "", times["r:backupop"], None),
                ("age -d | zstd -d | mariadb", "", times["r:shell"], None)])
        print("backupop peak RSS: %.1f MiB at the full size, %.1f MiB at a quarter (ratio %.2f)"
              % (rss["full"] / 1024, rss["quarter"] / 1024, rss["full"] / max(1, rss["quarter"])))
    finally:
        if my:
            my.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
