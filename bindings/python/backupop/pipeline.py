"""Pipelines: one stream from a source through stages into a sink, with bounded memory.
Stages are the library's (Compress, Decompress, Encrypt, Decrypt) or written in Python
(subclass Stage)."""
from __future__ import annotations

import io
import threading
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from ._backupop import ffi, lib
from ._errors import check
from . import _cb
from .catalog import Source, _keys, make_sink, make_source
from .keys import Keys


class Stage:
    """A pipeline stage written in Python. Override ``process`` (returns the output for
    a piece of input, possibly empty) and, if the stage buffers, ``end`` (the rest of the
    output at the end of the stream; may raise to fail the stream) and ``flush``. The
    library calls them from its own threads, one call at a time per stage."""

    name = "python"

    def process(self, data: memoryview) -> bytes:
        """Output for ``data``; the view is only valid during the call."""
        return bytes(data)

    def flush(self) -> bytes:
        """Output of everything buffered so far."""
        return b""

    def end(self) -> bytes:
        """The end of the output, once the input has ended."""
        return b""


class Compress:
    """The library's compressing stage: "zstd" (``level`` 1..19, ``threads``), "gzip"
    (1..9) or "none"."""

    def __init__(self, algorithm: str = "zstd", level: int = 0, threads: int = 0) -> None:
        self.algorithm, self.level, self.threads = algorithm, level, threads

    def _new(self) -> Any:
        opts = ffi.new("bop_compress_options_t *")
        check(lib.bop_compress_options_init(opts, lib.BOP_COMPRESS_OPTIONS_VERSION))
        alg = ffi.new("bop_compression_t *")
        check(lib.bop_compression_parse(alg, self.algorithm.encode()))
        opts.algorithm = alg[0]
        opts.level = self.level
        opts.threads = self.threads
        p = ffi.new("bop_stage_t **")
        check(lib.bop_stage_compress_new(p, opts))
        return p[0]


class Decompress:
    """The library's decompressing stage ("zstd", "gzip", "none"); FormatError on corrupt
    input."""

    def __init__(self, algorithm: str = "zstd") -> None:
        self.algorithm = algorithm

    def _new(self) -> Any:
        alg = ffi.new("bop_compression_t *")
        check(lib.bop_compression_parse(alg, self.algorithm.encode()))
        p = ffi.new("bop_stage_t **")
        check(lib.bop_stage_decompress_new(p, alg[0]))
        return p[0]


class Encrypt:
    """age encryption to ``recipients`` (or with ``passphrase``); the output decrypts with
    ``age -d``."""

    def __init__(self, recipients: Any = None,
                 passphrase: Optional[Union[str, bytes]] = None) -> None:
        self.keys = _keys(recipients, None, passphrase)

    def _new(self) -> Any:
        p = ffi.new("bop_stage_t **")
        check(lib.bop_stage_age_encrypt_new(p, self.keys._ptr if self.keys else ffi.NULL))
        return p[0]


class Decrypt:
    """age decryption with ``identities`` (or ``passphrase``); releases only
    authenticated data. NoKey, FormatError or IntegrityError on failure."""

    def __init__(self, identities: Any = None,
                 passphrase: Optional[Union[str, bytes]] = None) -> None:
        self.keys = _keys(None, identities, passphrase)

    def _new(self) -> Any:
        p = ffi.new("bop_stage_t **")
        check(lib.bop_stage_age_decrypt_new(p, self.keys._ptr if self.keys else ffi.NULL))
        return p[0]


class _StageState:
    def __init__(self, stage: Stage, call: _cb._Call) -> None:
        self.stage = stage
        self.call = call
        self.pending = memoryview(b"")
        self.ended = False
        self.name = ffi.new("char[]", str(getattr(stage, "name", "python")).encode())


_live: Dict[int, Tuple[Any, Any, Any]] = {}
_lock = threading.Lock()


@ffi.def_extern()
def _bop_py_stage_process(stage, out, inb, directive):  # type: ignore[no-untyped-def]
    st = ffi.from_handle(ffi.cast("struct bop_py_stage *", stage).handle)
    try:
        produced: List[bytes] = []
        if inb != ffi.NULL and inb.size > inb.pos:
            view = memoryview(ffi.buffer(ffi.cast("char *", inb.src) + inb.pos,
                                         inb.size - inb.pos))
            produced.append(st.stage.process(view))
            inb.pos = inb.size
        if directive == lib.BOP_STREAM_FLUSH and not st.pending:
            produced.append(st.stage.flush())
        elif directive == lib.BOP_STREAM_END and not st.ended:
            st.ended = True
            produced.append(st.stage.end())
        extra = b"".join(x for x in produced if x)
        if extra:
            st.pending = memoryview(bytes(st.pending) + extra) if st.pending \
                else memoryview(extra)
        room = out.size - out.pos if out != ffi.NULL else 0
        n = min(room, len(st.pending))
        if n:
            ffi.buffer(ffi.cast("char *", out.dst) + out.pos, n)[:] = st.pending[:n]
            out.pos += n
            st.pending = st.pending[n:]
        return 1 if st.pending else 0
    except BaseException as e:  # noqa: B902 - stored, raised by Pipeline.run()
        return st.call.fail(e)


@ffi.def_extern()
def _bop_py_stage_free(stage):  # type: ignore[no-untyped-def]
    with _lock:
        _live.pop(int(ffi.cast("uintptr_t", stage)), None)


def _python_stage(stage: Stage, call: _cb._Call) -> Any:
    state = _StageState(stage, call)
    handle = ffi.new_handle(state)
    s = ffi.new("struct bop_py_stage *")
    s.handle = handle
    s.base.version = lib.BOP_STAGE_VERSION
    s.base.name = state.name
    s.base.process = lib._bop_py_stage_process
    s.base.free = lib._bop_py_stage_free
    with _lock:
        _live[int(ffi.cast("uintptr_t", s))] = (s, handle, state)
    return ffi.cast("bop_stage_t *", s)


StageLike = Union[Stage, Compress, Decompress, Encrypt, Decrypt]


class Pipeline:
    """source -> stages -> sink. ``source`` as for Catalog.backup() (bytes, path, binary
    file, iterable of bytes, Command); ``sink`` a path, a binary file object, a Command,
    or None to collect the output (returned by run()).

    run() reads the source to its end, ends every stage, checks the producer, and only
    then commits the sink; on any failure the sink is aborted. An exception raised by a
    Python stage, source, sink or ``progress`` is raised by run()."""

    def __init__(self, source: Source, stages: Sequence[StageLike] = (), sink: Any = None,
                 *, buffer_size: int = 0,
                 progress: Optional[_cb.ProgressCallback] = None) -> None:
        self.source = source
        self.stages = list(stages)
        self.sink = sink
        self.buffer_size = buffer_size
        self.progress = progress
        self.bytes_in = 0
        self.bytes_out = 0

    def run(self) -> Optional[bytes]:
        """Runs the pipeline once; returns the output when ``sink`` is None."""
        source_call = _cb._Call()
        sink_call = _cb._Call()
        stage_call = _cb._Call()
        prog_call = _cb._Call()
        prog_call.progress = self.progress
        opts = ffi.new("bop_pipeline_options_t *")
        check(lib.bop_pipeline_options_init(opts, lib.BOP_PIPELINE_OPTIONS_VERSION))
        opts.buffer_size = self.buffer_size
        if self.progress is not None:
            opts.progress = lib._bop_py_progress
            opts.payload = prog_call.handle
        pp = ffi.new("bop_pipeline_t **")
        check(lib.bop_pipeline_new(pp, opts))
        p = ffi.gc(pp[0], lib.bop_pipeline_free)
        prog_call.on_progress_error = lambda: lib.bop_pipeline_cancel(p)
        collected = io.BytesIO() if self.sink is None else None
        try:
            check(lib.bop_pipeline_set_source(p, make_source(self.source, source_call)))
            for stage in self.stages:
                if isinstance(stage, Stage):
                    c_stage = _python_stage(stage, stage_call)
                elif hasattr(stage, "_new"):
                    c_stage = stage._new()
                else:
                    raise TypeError("not a stage: %r" % (stage,))
                check(lib.bop_pipeline_add_stage(p, c_stage))
            check(lib.bop_pipeline_set_sink(p, make_sink(
                collected if collected is not None else self.sink, sink_call)))
            rc = lib.bop_pipeline_run(p)
            self.bytes_in = int(lib.bop_pipeline_bytes_in(p))
            self.bytes_out = int(lib.bop_pipeline_bytes_out(p))
        finally:
            ffi.release(p)      # frees the stages: their handles go with them
        for call in (source_call, stage_call, sink_call, prog_call):
            call.reraise()
        check(rc)
        return collected.getvalue() if collected is not None else None
