"""The library's log: its level, its format, where its lines go, and secrets it must hide.

By default libbackupop writes one line per event to stderr (text on a terminal, JSON lines
otherwise) at level "info" and above. Every line is redacted before it leaves the library:
a secret registered with add_secret() (and every key, password and token the library knows
itself) appears as "[REDACTED]".
"""
from __future__ import annotations

import logging
import sys
import threading
import traceback
from typing import Any, Callable, List, Union

from ._backupop import ffi, lib
from ._errors import InvalidArgument, check

LogTarget = Union[None, int, Any, logging.Logger, Callable[[str, str, str], Any]]

_LEVELS = {"trace": lib.BOP_LOG_TRACE, "debug": lib.BOP_LOG_DEBUG, "info": lib.BOP_LOG_INFO,
           "warn": lib.BOP_LOG_WARN, "warning": lib.BOP_LOG_WARN,
           "error": lib.BOP_LOG_ERROR, "off": lib.BOP_LOG_OFF}
_NAMES = {lib.BOP_LOG_TRACE: "trace", lib.BOP_LOG_DEBUG: "debug", lib.BOP_LOG_INFO: "info",
          lib.BOP_LOG_WARN: "warn", lib.BOP_LOG_ERROR: "error"}
# "trace" has no level of its own in the logging module: it goes one below DEBUG.
_PY_LEVELS = {lib.BOP_LOG_TRACE: logging.DEBUG - 5, lib.BOP_LOG_DEBUG: logging.DEBUG,
              lib.BOP_LOG_INFO: logging.INFO, lib.BOP_LOG_WARN: logging.WARNING,
              lib.BOP_LOG_ERROR: logging.ERROR}
_FORMATS = {"auto": lib.BOP_LOG_FORMAT_AUTO, "text": lib.BOP_LOG_FORMAT_TEXT,
            "json": lib.BOP_LOG_FORMAT_JSON}

_lock = threading.Lock()
# Every handle ever given to the library stays alive: a line being logged on another
# thread may still be using the previous one when log_to() replaces it.
_handles: List[Any] = []


def set_log_level(level: str) -> None:
    """Drops the library's lines below `level`: "trace", "debug", "info" (the default),
    "warn", "error" or "off". Raises InvalidArgument for any other name."""
    code = _LEVELS.get(level.lower()) if isinstance(level, str) else None
    if code is None:
        raise InvalidArgument("unknown log level %r: use trace, debug, info, warn, error "
                              "or off" % (level,))
    lib.bop_log_set_level(code)


def set_log_format(fmt: str) -> None:
    """The form of lines written to a file descriptor: "auto" (the default: text on a
    terminal, JSON lines otherwise), "text" or "json". Lines sent to a logger or a
    callable (log_to) are always the bare message."""
    code = _FORMATS.get(fmt) if isinstance(fmt, str) else None
    if code is None:
        raise InvalidArgument("unknown log format %r: use auto, text or json" % (fmt,))
    lib.bop_log_set_format(code)


def add_secret(secret: Union[str, bytes]) -> None:
    """Registers a secret (password, key, token): from now on it never appears in a log
    line or an error message of this process, as "[REDACTED]" instead. The library keeps
    its own copy. Secrets shorter than 4 bytes raise InvalidArgument (they would redact
    ordinary words)."""
    raw = secret.encode() if isinstance(secret, str) else bytes(secret)
    if b"\0" in raw:
        raise InvalidArgument("a secret cannot contain a NUL byte")
    check(lib.bop_log_add_secret(raw))


def log_to(target: LogTarget = None) -> None:
    """Sends the library's lines to `target`:

    - None: standard error (file descriptor 2), the default;
    - an int, or a file object with fileno(): that file descriptor (not closed by the
      library; keep the file open as long as it is the target);
    - a logging.Logger: each line becomes a record of the child logger named after the
      library's component (e.g. "backupop.pipeline"), at the matching level ("trace" is
      logging.DEBUG - 5);
    - a callable: called as target(level, component, message) with strings.

    Lines reach a logger or a callable from whatever thread the library logs on, already
    redacted and already filtered by set_log_level(). An exception raised by a callable
    cannot stop the library: it is printed to sys.stderr and the line is dropped."""
    if target is None:
        fd = 2
    elif isinstance(target, int):
        fd = target
    elif isinstance(target, logging.Logger):
        _set_callback(_to_logger(target))
        return
    elif hasattr(target, "fileno"):
        fd = target.fileno()
    elif callable(target):
        _set_callback(target)
        return
    else:
        raise TypeError("log_to() takes None, a file descriptor, a file, a logging.Logger "
                        "or a callable, not %s" % type(target).__name__)
    with _lock:
        lib.bop_log_set_callback(ffi.NULL, ffi.NULL)
        lib.bop_log_set_fd(fd)


def _to_logger(logger: logging.Logger) -> Callable[[str, str, str], None]:
    def emit(level: str, component: str, message: str) -> None:
        code = _LEVELS[level]
        child = logger.getChild(component) if component else logger
        child.log(_PY_LEVELS[code], "%s", message)
    return emit


def _set_callback(fn: Callable[[str, str, str], Any]) -> None:
    handle = ffi.new_handle(fn)
    with _lock:
        _handles.append(handle)
        lib.bop_log_set_callback(lib._bop_py_log, handle)


@ffi.def_extern()
def _bop_py_log(level, component, message, payload):  # type: ignore[no-untyped-def]
    try:
        fn = ffi.from_handle(payload)
        fn(_NAMES.get(level, "error"),
           ffi.string(component).decode("utf-8", "replace") if component else "",
           ffi.string(message).decode("utf-8", "replace"))
    except BaseException:  # noqa: B902 - nothing may cross back into C
        try:
            sys.stderr.write("backupop: a log target raised an exception:\n" +
                             traceback.format_exc())
        except Exception:  # noqa: BLE001
            pass


def _log(level: str, component: str, message: str) -> None:
    """Logs one line through the library's logger (used by tests)."""
    lib.bop_log(_LEVELS[level], component.encode(), message.encode())


__all__ = ["set_log_level", "set_log_format", "add_secret", "log_to"]
