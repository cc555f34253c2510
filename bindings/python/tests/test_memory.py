"""Memory: repeated open/close of every kind of object leaks neither Python objects
(tracemalloc) nor C memory (glibc's malloc statistics) and leaves no reference cycles;
a large backup from Python keeps a flat RSS (its peak does not grow with its size).

Sizes: BOP_PY_RSS_MIB (default 1024: a 1 GiB backup, about 3 s) is the large backup,
compared with one an eighth of its size. BOP_PY_CYCLES (default 10000) is the number of
open/close cycles."""
import ctypes
import ctypes.util
import gc
import os
import threading
import tracemalloc

import pytest

import backupop

IDENTITY = backupop.keygen().identity
CYCLES = int(os.environ.get("BOP_PY_CYCLES", "10000"))


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


def _libc_mallinfo2():
    try:
        f = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    f.restype = _Mallinfo2
    return f


_mallinfo2 = _libc_mallinfo2()


def c_heap_bytes():
    """Bytes the C heap has handed out and not taken back (every arena, and the chunks
    malloc mapped on their own). Python objects of up to 512 bytes are not in it
    (pymalloc has its own arenas); tracemalloc sees those."""
    m = _mallinfo2()
    return m.uordblks + m.hblkhd


class Upper(backupop.Stage):
    name = "upper"

    def process(self, data):
        return bytes(data).upper()


def cycle(url, n):
    """n times: a storage, a catalog in it, a key set, a Writer (aborted: a commit would
    wait for fsync) and a Reader, and a pipeline (a Python stage between library stages)
    built, run and freed."""
    keys = [IDENTITY]
    for _ in range(n):
        with backupop.Storage.open(url) as s:
            with backupop.Catalog(s, "db") as c:
                c.name
            w = s.put("new")
            w.write(b"never committed")
            w.abort()
            with s.get("obj") as r:
                assert r.read() == b"object data"
        k = backupop.Keys(identities=keys)
        k.close()
        out = backupop.Pipeline(b"pipeline data", [Upper(), backupop.Compress("none"),
                                                   backupop.Decompress("none")]).run()
        assert out == b"PIPELINE DATA"


def test_open_close_10000_times_leaks_nothing_and_makes_no_cycles(storage_dir):
    if _mallinfo2 is None:
        pytest.skip("no mallinfo2 in this C library: the C heap cannot be measured")
    url = "file://%s" % storage_dir
    (storage_dir / "obj").write_bytes(b"object data")
    cycle(url, 500)                       # warm up allocator pools and caches
    gc.collect()
    gc.disable()
    try:
        tracemalloc.start()
        snap0 = tracemalloc.take_snapshot()
        heap0, rss0 = c_heap_bytes(), rss_kib()
        cycle(url, CYCLES)
        heap1, rss1 = c_heap_bytes(), rss_kib()
        # Objects that only the cycle collector could free: none may be left.
        cyclic = gc.collect()
        snap1 = tracemalloc.take_snapshot()
        tracemalloc.stop()
    finally:
        gc.enable()
    grown = [s for s in snap1.compare_to(snap0, "lineno") if s.size_diff > 0]
    py_grown = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
    assert cyclic == 0, "%d objects in reference cycles after %d cycles" % (cyclic, CYCLES)
    assert py_grown < 64 * 1024, "Python memory grew by %d bytes: %s" % (py_grown, grown[:5])
    # One lost allocation per cycle (32 bytes at least) would be 320 KB after 10000.
    assert heap1 - heap0 < 128 * 1024, "the C heap grew by %d bytes over %d cycles" % (
        heap1 - heap0, CYCLES)
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


class PeakRss:
    """The peak RSS (KiB) while the block runs: the kernel's high-water mark, reset at the
    start (/proc/self/clear_refs), or, where that cannot be reset, RSS sampled every 5 ms."""

    def __enter__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = None
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self._hwm = True
        except OSError:
            self._hwm = False
            self._thread = threading.Thread(target=self._sample)
            self._thread.start()
        self.base = rss_kib()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_kib())

    def __exit__(self, *exc):
        if self._hwm:
            with open("/proc/self/status") as f:
                self.peak = next(int(line.split()[1]) for line in f
                                 if line.startswith("VmHWM:"))
        else:
            self._stop.set()
            self._thread.join()
        self.peak = max(self.peak, rss_kib())
        self.grown = self.peak - self.base


def backup_peak(catalog, mib):
    """Backs up `mib` MiB given as 1 MiB bytes objects, each a new object (a reference
    kept to any of them would show), and returns the RSS growth at the peak (KiB)."""
    block = bytes(range(256)) * 4096

    def chunks():
        for i in range(mib):
            yield block[:-8] + i.to_bytes(8, "little")
    gc.collect()
    with PeakRss() as p:
        m = catalog.backup(chunks(), compression="zstd", level=1, threads=1)
    assert m.plain_bytes == mib << 20
    return p.grown


def test_large_backup_from_python_has_flat_rss(catalog):
    large = int(os.environ.get("BOP_PY_RSS_MIB", "1024"))
    small = max(large // 8, 16)
    backup_peak(catalog, 8)                   # the library's buffers and zstd, once
    small_kib = backup_peak(catalog, small)
    large_kib = backup_peak(catalog, large)
    print("peak RSS growth: %d KiB for %d MiB, %d KiB for %d MiB" % (
        small_kib, small, large_kib, large))
    # The stream passes through: its size does not show in the peak. The pipeline's
    # buffers and zstd's window are the same for both; 16 MiB of slack is far below
    # the (large - small) MiB a stream held in memory would add.
    assert large_kib - small_kib < 16 * 1024, \
        "peak RSS grew by %d KiB for %d MiB, by %d KiB for %d MiB" % (
            small_kib, small, large_kib, large)
    assert large_kib < 96 * 1024, "RSS grew by %d KiB for a %d MiB backup" % (large_kib, large)
