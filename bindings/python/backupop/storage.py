"""Storage: where backups live, addressed by URL ("file:///var/backups", "s3://bucket/p")."""
from __future__ import annotations

import io
from typing import Any, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Union

from ._backupop import ffi, lib
from ._errors import check
from . import _cb

CHUNK = 1 << 20


class Stat(NamedTuple):
    """Size in bytes and modification time (unix seconds) of a stored object."""

    size: int
    mtime: int


class Reader(io.RawIOBase):
    """A readable binary stream of a stored object (from Storage.get()). close() reports
    how reading ended; use it as a context manager. ``chunks()`` iterates over the data."""

    def __init__(self, src: Any, keepalive: Any) -> None:
        super().__init__()
        self._src = src
        self._keepalive = keepalive
        self._got = ffi.new("size_t *")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        """Reads up to len(b) bytes into b; 0 only at the end."""
        if self._src is None:
            raise ValueError("I/O operation on closed stream")
        n = len(memoryview(b).cast("B"))
        if n == 0:
            return 0
        check(lib.bop_source_read(self._src, ffi.from_buffer(b, require_writable=True), n,
                                  self._got))
        return int(self._got[0])

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """Yields the rest of the data in pieces of at most ``size`` bytes."""
        buf = bytearray(size)
        view = memoryview(buf)
        while True:
            n = self.readinto(view)
            if n == 0:
                return
            yield bytes(view[:n])

    def close(self) -> None:
        """Ends reading and frees the stream; raises if the producer failed."""
        if self._src is None:
            return
        src, self._src = self._src, None
        try:
            rc = lib.bop_source_close(src)
        finally:
            ffi.release(src)
            self._keepalive = None
            super().close()
        check(rc)

    def __del__(self) -> None:
        if self._src is not None:
            src, self._src = self._src, None
            ffi.release(src)


class Writer(io.RawIOBase):
    """A writable binary stream to a stored object (from Storage.put()). The object
    appears only when the writer is committed: close() or leaving a ``with`` block
    normally commits, an exception in the block aborts, and a writer garbage-collected
    without close() is aborted, never committed."""

    def __init__(self, sink: Any, keepalive: Any) -> None:
        super().__init__()
        self._sink = sink
        self._keepalive = keepalive

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        """Writes all of b (bytes-like); returns its length."""
        if self._sink is None:
            raise ValueError("I/O operation on closed stream")
        view = memoryview(b).cast("B")
        n = len(view)
        if n:
            check(lib.bop_sink_write(self._sink, ffi.from_buffer(view), n))
        return n

    def commit(self) -> None:
        """Declares the data complete: the object appears (or the error is raised)."""
        if self._sink is None:
            raise ValueError("the writer is closed already")
        sink, self._sink = self._sink, None
        try:
            rc = lib.bop_sink_commit(sink)
        finally:
            ffi.release(sink)
            self._keepalive = None
            super().close()
        check(rc)

    def abort(self) -> None:
        """Discards what was written."""
        if self._sink is None:
            return
        sink, self._sink = self._sink, None
        lib.bop_sink_abort(sink)
        ffi.release(sink)
        self._keepalive = None
        super().close()

    def close(self) -> None:
        """Commits, unless already committed or aborted."""
        if self._sink is not None:
            self.commit()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        self.abort()


def _settings_array(settings: Optional[Mapping[str, str]]) -> tuple:
    if not settings:
        return ffi.NULL, []
    keep = []
    for k, v in settings.items():
        keep.append(ffi.new("char[]", str(k).encode()))
        keep.append(ffi.new("char[]", str(v).encode()))
    arr = ffi.new("const char *[]", keep + [ffi.NULL])
    return arr, keep


class Storage:
    """An open storage (a bop_storage_t). Open one with Storage.open(url)."""

    def __init__(self, ptr: Any, url: str) -> None:
        self._ptr = ptr
        self.url = url

    @classmethod
    def open(cls, url: str, settings: Optional[Mapping[str, str]] = None) -> "Storage":
        """Opens the storage at ``url``. ``settings`` are those that do not belong in a
        URL (credentials, CA files). NotSupported for an unknown scheme."""
        opts = ffi.new("bop_storage_options_t *")
        check(lib.bop_storage_options_init(opts, lib.BOP_STORAGE_OPTIONS_VERSION))
        arr, keep = _settings_array(settings)
        opts.settings = arr
        p = ffi.new("bop_storage_t **")
        check(lib.bop_storage_open(p, url.encode(), opts))
        del keep
        return cls(ffi.gc(p[0], lib.bop_storage_free), url)

    @property
    def ptr(self) -> Any:
        if self._ptr is None:
            raise ValueError("the storage is closed")
        return self._ptr

    def put(self, key: str, data: Any = None, *, exclusive: bool = False,
            size_hint: int = 0) -> Optional[Writer]:
        """Stores ``key``. Without ``data``, returns a Writer to write it with (the object
        appears when it is committed). With ``data`` (bytes-like, a binary file object, or
        an iterable of bytes), writes all of it and commits. ``exclusive``: fail with
        AlreadyExists if the key exists."""
        opts = ffi.new("bop_put_options_t *")
        opts.version = lib.BOP_PUT_OPTIONS_VERSION
        opts.size_hint = size_hint
        opts.exclusive = 1 if exclusive else 0
        p = ffi.new("bop_sink_t **")
        check(lib.bop_storage_put(self.ptr, p, key.encode(), opts))
        w = Writer(ffi.gc(p[0], lib.bop_sink_free), self._ptr)
        if data is None:
            return w
        with w:
            if isinstance(data, (bytes, bytearray, memoryview)):
                w.write(data)
            elif hasattr(data, "read"):
                while True:
                    chunk = data.read(CHUNK)
                    if not chunk:
                        break
                    w.write(chunk)
            else:
                for chunk in data:
                    w.write(chunk)
        return None

    def get(self, key: str, offset: int = 0) -> Reader:
        """A Reader of ``key`` from byte ``offset``. NotFound when it does not exist."""
        p = ffi.new("bop_source_t **")
        check(lib.bop_storage_get(self.ptr, p, key.encode(), offset))
        return Reader(ffi.gc(p[0], lib.bop_source_free), self._ptr)

    def read(self, key: str) -> bytes:
        """All of ``key``'s data."""
        with self.get(key) as r:
            return r.read()

    def stat(self, key: str) -> Stat:
        """Size and time of ``key``. NotFound when it does not exist."""
        st = ffi.new("bop_storage_stat_t *")
        st.version = lib.BOP_STORAGE_STAT_VERSION
        check(lib.bop_storage_stat(self.ptr, st, key.encode()))
        return Stat(int(st.size), int(st.mtime))

    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        from ._errors import NotFound
        try:
            self.stat(key)
            return True
        except NotFound:
            return False

    def list(self, prefix: str = "") -> Iterator[tuple]:
        """Iterates over (key, Stat) of every key starting with ``prefix``, sorted."""
        call = _cb._Call()
        rc = lib.bop_storage_list(self.ptr, prefix.encode(), lib._bop_py_list, call.handle)
        call.reraise()
        check(rc)
        items: List[tuple] = sorted(call.items)
        return iter([(k, Stat(size, mtime)) for k, size, mtime in items])

    def remove(self, key: str) -> None:
        """Removes ``key``. NotFound when it does not exist."""
        check(lib.bop_storage_remove(self.ptr, key.encode()))

    def remove_many(self, keys: Iterable[str]) -> None:
        """Removes every key given (missing ones are no error), in batches where the
        backend can."""
        keep = [ffi.new("char[]", k.encode()) for k in keys]
        if not keep:
            return
        arr = ffi.new("const char *[]", keep)
        check(lib.bop_storage_remove_many(self.ptr, arr, len(keep)))

    def close(self) -> None:
        """Lets go of the storage; it is freed once no catalog or stream uses it."""
        self._ptr = None

    def __enter__(self) -> "Storage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<backupop.Storage %s%s>" % (self.url, "" if self._ptr is not None else " closed")


StorageLike = Union[Storage, str]
