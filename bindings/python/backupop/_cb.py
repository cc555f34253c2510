"""Callbacks from the library into Python (cffi ``extern "Python"``).

Each C call that may call back gets a _Call: the Python objects the callbacks use, reached
from C through a handle (ffi.new_handle) that the _Call keeps alive for as long as the
library may use it. The library calls back with the GIL released; cffi takes it again for
the callback (from whatever thread the library uses). A Python exception raised inside a
callback cannot cross C: it is stored, the callback fails with BOP_ERROR (so the C call
stops and cleans up as on any failure), and it is raised again once the C call returned.
"""
from __future__ import annotations

import io
from typing import Any, Callable, Iterable, Iterator, List, Optional, Tuple

from ._backupop import ffi, lib

ProgressCallback = Callable[[int, int], Any]


class _Call:
    """The Python side of one C call's callbacks."""

    def __init__(self) -> None:
        self.error: Optional[BaseException] = None
        self.handle = ffi.new_handle(self)
        self.reader: Optional[Callable[[memoryview], int]] = None
        self.writer: Optional[Callable[[memoryview], None]] = None
        self.progress: Optional[ProgressCallback] = None
        self.on_progress_error: Optional[Callable[[], None]] = None
        self.items: List[Tuple[str, int, int]] = []
        self.canceled = False

    def fail(self, exc: BaseException) -> int:
        """Stores the first exception and tells the library (BOP_ERROR, with words)."""
        if self.error is None:
            self.error = exc
        msg = "a Python callback raised %s: %s" % (type(exc).__name__, exc)
        return lib.bop_error_set(lib.BOP_ERROR, msg.encode("utf-8", "replace"))

    def reraise(self) -> None:
        """Called once the C call returned: drops the handle (which refers back to this
        object, so the pair would otherwise wait for the cycle collector) and raises the
        stored exception, if a callback raised one."""
        self.handle = None
        self.on_progress_error = None
        if self.error is not None:
            exc, self.error = self.error, None
            raise exc


@ffi.def_extern()
def _bop_py_read(buf, cap, got, payload):  # type: ignore[no-untyped-def]
    call = ffi.from_handle(payload)
    got[0] = 0
    try:
        got[0] = call.reader(memoryview(ffi.buffer(buf, cap)))
        return 0
    except BaseException as e:  # noqa: B902 - stored and raised after the C call
        return call.fail(e)


@ffi.def_extern()
def _bop_py_write(buf, length, payload):  # type: ignore[no-untyped-def]
    call = ffi.from_handle(payload)
    try:
        call.writer(memoryview(ffi.buffer(buf, length)))
        return 0
    except BaseException as e:  # noqa: B902
        return call.fail(e)


@ffi.def_extern()
def _bop_py_list(key, st, payload):  # type: ignore[no-untyped-def]
    call = ffi.from_handle(payload)
    try:
        call.items.append((ffi.string(key).decode("utf-8", "surrogateescape"),
                           int(st.size), int(st.mtime)))
        return 0
    except BaseException as e:  # noqa: B902
        call.fail(e)
        return 1


@ffi.def_extern()
def _bop_py_progress(bytes_in, bytes_out, payload):  # type: ignore[no-untyped-def]
    call = ffi.from_handle(payload)
    if call.progress is None or call.error is not None:
        return
    try:
        call.progress(int(bytes_in), int(bytes_out))
    except BaseException as e:  # noqa: B902
        call.fail(e)
        if call.on_progress_error is not None:
            call.canceled = True
            call.on_progress_error()


def file_reader(f: Any) -> Callable[[memoryview], int]:
    """A read callback over a binary file object (readinto() when it has one)."""
    readinto = getattr(f, "readinto", None)
    if readinto is not None and not isinstance(f, io.TextIOBase):
        def read(buf: memoryview) -> int:
            n = readinto(buf)
            if n is None:          # a non-blocking file with nothing yet
                raise BlockingIOError("the source file is non-blocking and has no data")
            return int(n)
        return read

    def read_copy(buf: memoryview) -> int:
        data = f.read(len(buf))
        if isinstance(data, str):
            raise TypeError("source file must be opened in binary mode, not text mode")
        n = len(data)
        buf[:n] = data
        return n
    return read_copy


def iter_reader(chunks: Iterable[Any]) -> Callable[[memoryview], int]:
    """A read callback over an iterable of bytes-like chunks (of any sizes)."""
    it: Iterator[Any] = iter(chunks)
    pending = memoryview(b"")

    def read(buf: memoryview) -> int:
        nonlocal pending
        while not pending:
            try:
                chunk = next(it)
            except StopIteration:
                return 0
            if isinstance(chunk, str):
                raise TypeError("source iterator yielded str; yield bytes")
            pending = memoryview(chunk).cast("B")
        n = min(len(buf), len(pending))
        buf[:n] = pending[:n]
        pending = pending[n:]
        return n
    return read


def file_writer(f: Any) -> Callable[[memoryview], None]:
    """A write callback over a binary file object. io objects get the library's buffer
    (they copy or write it before returning); anything else gets bytes."""
    if isinstance(f, io.TextIOBase):
        raise TypeError("destination file must be opened in binary mode, not text mode")
    write = f.write
    raw = isinstance(f, io.RawIOBase)
    if isinstance(f, io.IOBase):
        def write_view(buf: memoryview) -> None:
            while buf:
                n = write(buf)
                if not raw:
                    return
                if n is None:
                    raise BlockingIOError("the destination file is non-blocking and full")
                buf = buf[n:]
        return write_view

    def write_bytes(buf: memoryview) -> None:
        write(bytes(buf))
    return write_bytes
