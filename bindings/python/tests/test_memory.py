"""Leaks: repeated open/close and callback-driven calls keep Python and C memory flat."""
import gc
import os
import tracemalloc

import backupop


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def cycle(url, n):
    for _ in range(n):
        with backupop.Storage.open(url) as s:
            with backupop.Catalog(s, "db") as c:
                c.name
        k = backupop.Keys(identities=[IDENTITY])
        k.close()


IDENTITY = backupop.keygen().identity


def test_open_close_10000_times_leaks_nothing(storage_dir):
    url = "file://%s" % storage_dir
    cycle(url, 1000)                      # warm up allocator pools and caches
    gc.collect()
    tracemalloc.start()
    rss0 = rss_kib()
    snap0 = tracemalloc.take_snapshot()
    cycle(url, 10000)
    gc.collect()
    snap1 = tracemalloc.take_snapshot()
    rss1 = rss_kib()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
    assert grown < 64 * 1024, "Python memory grew by %d bytes" % grown
    assert rss1 - rss0 < 4096, "RSS grew by %d KiB" % (rss1 - rss0)


def test_callback_backups_leave_no_cycles(catalog):
    def chunks():
        yield b"x" * 4096
    catalog.backup(chunks())              # warm up
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        for _ in range(200):
            catalog.backup(chunks(), compression="none", progress=lambda a, b: None)
        after = len(gc.get_objects())
        # handles and per-call state are freed by reference counting, without the collector
        assert after - before < 50, "%d objects left behind" % (after - before)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_large_backup_from_python_has_flat_rss(catalog):
    # BOP_PY_RSS_MIB sets the size (default 256 MiB; 1024 for the 1 GiB check).
    mib = int(os.environ.get("BOP_PY_RSS_MIB", "256"))
    chunk = bytes(range(256)) * 4096            # 1 MiB
    peak = [0]

    def chunks():
        for i in range(mib):
            if i % 16 == 0:
                peak[0] = max(peak[0], rss_kib())
            yield chunk
    gc.collect()
    base = rss_kib()
    m = catalog.backup(chunks(), compression="zstd", level=1, threads=1)
    assert m.plain_bytes == mib << 20
    grown = max(peak[0], rss_kib()) - base
    # buffers between stages and zstd's window, not the stream: far below its size
    assert grown < 96 * 1024, "RSS grew by %d KiB for a %d MiB backup" % (grown, mib)
