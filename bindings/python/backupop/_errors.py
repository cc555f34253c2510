"""Errors: one exception class per bop_error_t code, all derived from BackupopError.

A failing C call raises the class of its code, carrying bop_error_last()'s message (the
words for the user, with secrets redacted) and the code itself.
"""
from __future__ import annotations

from typing import Dict, Optional, Type

from ._backupop import ffi, lib


class BackupopError(Exception):
    """A libbackupop call failed. ``code`` is the negative bop_error_t, ``message`` the
    library's explanation (bop_error_last())."""

    code: int = lib.BOP_ERROR

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(BackupopError, LookupError):
    """The object, backup, file or key does not exist (BOP_ENOTFOUND)."""
    code = lib.BOP_ENOTFOUND


class AlreadyExists(BackupopError):
    """It exists already (BOP_EEXISTS)."""
    code = lib.BOP_EEXISTS


class InvalidArgument(BackupopError, ValueError):
    """An argument, option or setting is invalid (BOP_EINVAL)."""
    code = lib.BOP_EINVAL


class VersionError(BackupopError):
    """An options struct or vtable has a version the library does not know
    (BOP_EVERSION)."""
    code = lib.BOP_EVERSION


class OutOfMemory(BackupopError, MemoryError):
    """The library ran out of memory (BOP_ENOMEM)."""
    code = lib.BOP_ENOMEM


class IOFailure(BackupopError, OSError):
    """Reading or writing failed: disk, pipe or network (BOP_EIO)."""
    code = lib.BOP_EIO


class AuthError(BackupopError):
    """Credentials were refused by a storage or database (BOP_EAUTH)."""
    code = lib.BOP_EAUTH


class IntegrityError(BackupopError):
    """Data failed authentication or did not match its checksum (BOP_EINTEGRITY)."""
    code = lib.BOP_EINTEGRITY


class Timeout(BackupopError, TimeoutError):
    """A deadline passed (BOP_ETIMEOUT)."""
    code = lib.BOP_ETIMEOUT


class Canceled(BackupopError):
    """The operation was canceled (BOP_ECANCELED)."""
    code = lib.BOP_ECANCELED


class Conflict(BackupopError):
    """Someone else holds the lock, or removed what was being written (BOP_ECONFLICT)."""
    code = lib.BOP_ECONFLICT


class ChildFailed(BackupopError):
    """A child process exited non-zero or was killed by a signal (BOP_ECHILD)."""
    code = lib.BOP_ECHILD


class NotSupported(BackupopError):
    """The backend or engine cannot do this (BOP_ENOTSUPPORTED)."""
    code = lib.BOP_ENOTSUPPORTED


class FormatError(BackupopError):
    """Malformed input: age header, manifest, config, key (BOP_EFORMAT)."""
    code = lib.BOP_EFORMAT


class NoKey(AuthError):
    """No identity or passphrase given matches the encrypted data (BOP_ENOKEY)."""
    code = lib.BOP_ENOKEY


class ConnectError(BackupopError, ConnectionError):
    """A server (database, storage) could not be reached (BOP_ECONNECT)."""
    code = lib.BOP_ECONNECT


_BY_CODE: Dict[int, Type[BackupopError]] = {
    cls.code: cls
    for cls in (NotFound, AlreadyExists, InvalidArgument, VersionError, OutOfMemory,
                IOFailure, AuthError, IntegrityError, Timeout, Canceled, Conflict,
                ChildFailed, NotSupported, FormatError, NoKey, ConnectError)
}


def error_class(code: int) -> Type[BackupopError]:
    """The exception class for a bop_error_t code (BackupopError for BOP_ERROR and for
    codes this version does not know)."""
    return _BY_CODE.get(code, BackupopError)


def last_error(code: int) -> BackupopError:
    """The exception for a failed call that returned ``code``, with this thread's
    bop_error_last() message."""
    message = ffi.string(lib.bop_error_last()).decode("utf-8", "replace")
    return error_class(code)(message, code)


def check(rc: int) -> int:
    """Returns ``rc`` when it is not negative, else raises the matching exception."""
    if rc < 0:
        raise last_error(rc)
    return rc


def take_string(ptr: "ffi.CData") -> str:
    """Decodes a ``char *`` the library handed out and frees it with bop_free()."""
    try:
        return ffi.string(ptr).decode("utf-8")
    finally:
        lib.bop_free(ptr)


def cstr(ptr: "ffi.CData") -> Optional[str]:
    """A ``const char *`` owned by the library as str (None for NULL)."""
    if ptr == ffi.NULL:
        return None
    return ffi.string(ptr).decode("utf-8", "replace")
