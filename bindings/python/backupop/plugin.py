"""Storage backends written in Python, registered with the library for a URL scheme
(through the <backupop/sys/storage.h> and <backupop/sys/io.h> vtables), so that every user
of the library (Storage.open, Catalog, backups and restores) can use them.

    class MemoryStorage(backupop.StorageBackend):
        ...
    backupop.register_storage("pymem", MemoryStorage)
    backupop.Storage.open("pymem://bucket")

Each method runs with the GIL held (the library may call it from any of its threads). It
reports failure by raising: a BackupopError subclass gives its code and message to the
library (raise NotFound for a missing key), FileNotFoundError/KeyError count as
BOP_ENOTFOUND, FileExistsError as BOP_EEXISTS, anything else as BOP_ERROR with the
exception's type and text as the message.
"""
from __future__ import annotations

import io
import threading
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple, Type, Union

from ._backupop import ffi, lib
from ._errors import BackupopError
from .storage import Stat


class StorageBackend:
    """Base class of a storage backend in Python. ``url`` is the full URL opened,
    ``settings`` the settings given to Storage.open(). Override put, get, stat, list and
    remove; close is called when the library frees the storage."""

    def __init__(self, url: str, settings: Mapping[str, str]) -> None:
        self.url = url
        self.settings = dict(settings)

    def put(self, key: str, size_hint: int, exclusive: bool) -> Any:
        """Returns a writer with write(bytes-like), commit() and abort(): the object must
        appear under ``key`` only at commit. ``exclusive``: raise AlreadyExists if the key
        exists. The buffer given to write() is only valid during the call."""
        raise NotImplementedError

    def get(self, key: str, offset: int) -> Any:
        """Returns the data of ``key`` from byte ``offset``: bytes, or a binary file
        object (readinto() or read(), and close() if it has one). Raise NotFound when
        missing."""
        raise NotImplementedError

    def stat(self, key: str) -> Union[Stat, Tuple[int, int]]:
        """Returns (size, mtime) of ``key``; raise NotFound when missing."""
        raise NotImplementedError

    def list(self, prefix: str) -> Iterable[Tuple[str, Union[Stat, Tuple[int, int]]]]:
        """Yields (key, (size, mtime)) of every key starting with ``prefix``."""
        raise NotImplementedError

    def remove(self, key: str) -> None:
        """Removes ``key``; raise NotFound when missing."""
        raise NotImplementedError

    def close(self) -> None:
        """Called once when the library frees the storage."""


# Everything C holds a handle to, by the address of its struct: kept alive here until the
# library calls the struct's free. Factories are kept forever (registration is for good).
_live: Dict[int, Tuple[Any, Any, Any]] = {}
_factories: list = []
_lock = threading.Lock()


def _fail(exc: BaseException) -> int:
    if isinstance(exc, BackupopError):
        code, msg = exc.code, exc.message
    elif isinstance(exc, (FileNotFoundError, KeyError)):
        code, msg = lib.BOP_ENOTFOUND, "not found: %s" % exc
    elif isinstance(exc, FileExistsError):
        code, msg = lib.BOP_EEXISTS, "exists already: %s" % exc
    else:
        code, msg = lib.BOP_ERROR, "a Python storage backend raised %s: %s" % (
            type(exc).__name__, exc)
    return lib.bop_error_set(code, str(msg).encode("utf-8", "replace"))


def _keep(ctype: str, obj: Any) -> Any:
    """A new plug-in struct carrying a handle to obj, kept alive until its free."""
    handle = ffi.new_handle(obj)
    s = ffi.new(ctype)
    s.handle = handle
    with _lock:
        _live[int(ffi.cast("uintptr_t", s))] = (s, handle, obj)
    return s


def _drop(ptr: Any) -> Any:
    with _lock:
        entry = _live.pop(int(ffi.cast("uintptr_t", ptr)), None)
    return entry[2] if entry else None


def _obj(ptr: Any, ctype: str) -> Any:
    return ffi.from_handle(ffi.cast(ctype, ptr).handle)


def register_storage(scheme: str, backend: Type[StorageBackend]) -> None:
    """Registers ``backend`` (a StorageBackend subclass, or any callable taking
    (url, settings)) for URLs "scheme://...". AlreadyExists if the scheme is taken.
    Registration lasts as long as the process."""
    from ._errors import check
    handle = ffi.new_handle(backend)
    check(lib.bop_storage_register(scheme.encode(), lib._bop_py_open, handle))
    _factories.append(handle)


@ffi.def_extern()
def _bop_py_open(out, url, opts, payload):  # type: ignore[no-untyped-def]
    out[0] = ffi.NULL
    try:
        factory = ffi.from_handle(payload)
        settings: Dict[str, str] = {}
        if opts != ffi.NULL and opts.settings != ffi.NULL:
            i = 0
            while opts.settings[i] != ffi.NULL and opts.settings[i + 1] != ffi.NULL:
                settings[ffi.string(opts.settings[i]).decode()] = \
                    ffi.string(opts.settings[i + 1]).decode()
                i += 2
        backend = factory(ffi.string(url).decode(), settings)
        s = _keep("struct bop_py_storage *", backend)
        s.base.version = lib.BOP_STORAGE_VERSION
        s.base.put = lib._bop_py_st_put
        s.base.get = lib._bop_py_st_get
        s.base.stat = lib._bop_py_st_stat
        s.base.list = lib._bop_py_st_list
        s.base.remove = lib._bop_py_st_remove
        s.base.free = lib._bop_py_st_free
        out[0] = ffi.cast("bop_storage_t *", s)
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(e)


def _new_source(data: Any) -> Any:
    """A bop_source_t * reading bytes or a binary file object (readinto()/read())."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = io.BytesIO(bytes(data))
    s = _keep("struct bop_py_source *", data)
    s.base.version = lib.BOP_SOURCE_VERSION
    s.base.read = lib._bop_py_src_read
    s.base.close = lib._bop_py_src_close
    s.base.free = lib._bop_py_src_free
    return ffi.cast("bop_source_t *", s)


def _new_sink(writer: Any) -> Any:
    """A bop_sink_t * over a writer with write(), commit() and abort()."""
    s = _keep("struct bop_py_sink *", _SinkState(writer))
    s.base.version = lib.BOP_SINK_VERSION
    s.base.write = lib._bop_py_sink_write
    s.base.commit = lib._bop_py_sink_commit
    s.base.abort = lib._bop_py_sink_abort
    s.base.free = lib._bop_py_sink_free
    return ffi.cast("bop_sink_t *", s)


class _SinkState:
    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self.done = False


@ffi.def_extern()
def _bop_py_st_put(storage, out, key, opts):  # type: ignore[no-untyped-def]
    out[0] = ffi.NULL
    try:
        backend = _obj(storage, "struct bop_py_storage *")
        writer = backend.put(ffi.string(key).decode(), int(opts.size_hint), bool(opts.exclusive))
        out[0] = _new_sink(writer)
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(e)


@ffi.def_extern()
def _bop_py_st_get(storage, out, key, offset):  # type: ignore[no-untyped-def]
    out[0] = ffi.NULL
    try:
        backend = _obj(storage, "struct bop_py_storage *")
        out[0] = _new_source(backend.get(ffi.string(key).decode(), int(offset)))
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(e)


@ffi.def_extern()
def _bop_py_st_stat(storage, st, key):  # type: ignore[no-untyped-def]
    try:
        backend = _obj(storage, "struct bop_py_storage *")
        size, mtime = backend.stat(ffi.string(key).decode())
        st.size = size
        st.mtime = mtime
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(e)


@ffi.def_extern()
def _bop_py_st_list(storage, prefix, cb, payload):  # type: ignore[no-untyped-def]
    try:
        backend = _obj(storage, "struct bop_py_storage *")
        st = ffi.new("bop_storage_stat_t *")
        st.version = lib.BOP_STORAGE_STAT_VERSION
        for key, (size, mtime) in backend.list(ffi.string(prefix).decode()):
            st.size = size
            st.mtime = mtime
            if cb(key.encode(), st, payload) != 0:
                break
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(e)


@ffi.def_extern()
def _bop_py_st_remove(storage, key):  # type: ignore[no-untyped-def]
    try:
        _obj(storage, "struct bop_py_storage *").remove(ffi.string(key).decode())
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(e)


@ffi.def_extern()
def _bop_py_st_free(storage):  # type: ignore[no-untyped-def]
    backend = _drop(storage)
    if backend is not None:
        try:
            backend.close()
        except Exception:  # noqa: BLE001 - free cannot fail
            pass


@ffi.def_extern()
def _bop_py_src_read(src, buf, cap, got):  # type: ignore[no-untyped-def]
    got[0] = 0
    try:
        f = _obj(src, "struct bop_py_source *")
        view = memoryview(ffi.buffer(buf, cap))
        readinto = getattr(f, "readinto", None)
        if readinto is not None:
            n = readinto(view)
        else:
            data = f.read(cap)
            n = len(data)
            view[:n] = data
        got[0] = n or 0
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(e)


@ffi.def_extern()
def _bop_py_src_close(src):  # type: ignore[no-untyped-def]
    try:
        f = _obj(src, "struct bop_py_source *")
        close = getattr(f, "close", None)
        if close is not None:
            close()
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(e)


@ffi.def_extern()
def _bop_py_src_free(src):  # type: ignore[no-untyped-def]
    _drop(src)


@ffi.def_extern()
def _bop_py_sink_write(sink, buf, length):  # type: ignore[no-untyped-def]
    try:
        _obj(sink, "struct bop_py_sink *").writer.write(memoryview(ffi.buffer(buf, length)))
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(e)


@ffi.def_extern()
def _bop_py_sink_commit(sink):  # type: ignore[no-untyped-def]
    try:
        state = _obj(sink, "struct bop_py_sink *")
        state.done = True
        state.writer.commit()
        return 0
    except BaseException as e:  # noqa: B902
        rc = _fail(e)
        try:
            state.writer.abort()
        except Exception:  # noqa: BLE001 - the commit's error is the one reported
            pass
        return rc


@ffi.def_extern()
def _bop_py_sink_abort(sink):  # type: ignore[no-untyped-def]
    state = _obj(sink, "struct bop_py_sink *")
    if not state.done:
        state.done = True
        try:
            state.writer.abort()
        except Exception:  # noqa: BLE001 - abort cannot fail
            pass


@ffi.def_extern()
def _bop_py_sink_free(sink):  # type: ignore[no-untyped-def]
    state = _drop(sink)
    if state is not None and not state.done:
        state.done = True
        try:
            state.writer.abort()
        except Exception:  # noqa: BLE001
            pass


class EngineBackend:
    """Base class of an engine written in Python: how to produce a backup stream and how
    to consume one to restore. ``config`` is the engine's JSON configuration, parsed.
    Register it with register_engine(); open it with backupop.Engine(name, config)."""

    def __init__(self, config: Dict[str, Any]) -> None:
        self.config = config

    def validate(self) -> None:
        """Raise (InvalidArgument, NotFound, ...) if the engine cannot run here."""

    def backup(self) -> Any:
        """The backup stream: bytes, a binary file object, or anything a Python
        storage backend's get() may return."""
        raise NotImplementedError

    def restore(self) -> Any:
        """A writer with write(), commit() (the stream is complete: apply it) and abort()
        (leave the target as it was)."""
        raise NotImplementedError

    def close(self) -> None:
        """Called once when the library frees the engine."""


def register_engine(name: str, engine: Type[EngineBackend], capabilities: int = 0) -> None:
    """Registers ``engine`` (an EngineBackend subclass, or a callable taking the parsed
    config) under ``name``. AlreadyExists if the name is taken. Lasts for the process."""
    from ._errors import check
    handle = ffi.new_handle(engine)
    check(lib.bop_engine_register(name.encode(), capabilities, lib._bop_py_eng_open, handle))
    _factories.append(handle)


@ffi.def_extern()
def _bop_py_eng_open(out, config_json, payload):  # type: ignore[no-untyped-def]
    import json
    out[0] = ffi.NULL
    try:
        text = ffi.string(config_json).decode() if config_json != ffi.NULL else ""
        engine = ffi.from_handle(payload)(json.loads(text) if text.strip() else {})
        s = _keep("struct bop_py_engine *", engine)
        s.base.version = lib.BOP_ENGINE_VERSION
        s.base.validate = lib._bop_py_eng_validate
        s.base.backup = lib._bop_py_eng_backup
        s.base.restore = lib._bop_py_eng_restore
        s.base.free = lib._bop_py_eng_free
        out[0] = ffi.cast("bop_engine_t *", s)
        return 0
    except ValueError as e:
        return lib.bop_error_set(lib.BOP_EINVAL, ("engine config: %s" % e).encode())
    except BaseException as e:  # noqa: B902
        return _fail(e)


@ffi.def_extern()
def _bop_py_eng_validate(engine):  # type: ignore[no-untyped-def]
    try:
        _obj(engine, "struct bop_py_engine *").validate()
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(e)


@ffi.def_extern()
def _bop_py_eng_backup(engine, out):  # type: ignore[no-untyped-def]
    out[0] = ffi.NULL
    try:
        out[0] = _new_source(_obj(engine, "struct bop_py_engine *").backup())
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(e)


@ffi.def_extern()
def _bop_py_eng_restore(engine, out):  # type: ignore[no-untyped-def]
    out[0] = ffi.NULL
    try:
        out[0] = _new_sink(_obj(engine, "struct bop_py_engine *").restore())
        return 0
    except BaseException as e:  # noqa: B902
        return _fail(e)


@ffi.def_extern()
def _bop_py_eng_free(engine):  # type: ignore[no-untyped-def]
    obj = _drop(engine)
    if obj is not None:
        try:
            obj.close()
        except Exception:  # noqa: BLE001 - free cannot fail
            pass
