"""backupop: streaming, verified backups from Python.

The package binds libbackupop's public C API through cffi (out-of-line API mode):

    import backupop
    pair = backupop.keygen()
    storage = backupop.Storage.open("file:///var/backups")
    with backupop.Catalog(storage, "db") as cat:
        m = cat.backup(backupop.Command(["pg_dump", "app"]), recipients=[pair.recipient])
        cat.verify(m.id, identities=[pair.identity])

Calls into the library release the GIL; callbacks (sources, sinks, progress) take it back,
and an exception they raise is raised again by the call that invoked them. Failures raise
BackupopError subclasses (NotFound, AuthError, IntegrityError, ...) carrying the library's
message.
"""
from ._backupop import ffi as _ffi, lib as _lib
from ._errors import (AlreadyExists, AuthError, BackupopError, Canceled, ChildFailed,
                      Conflict, ConnectError, FormatError, IOFailure, IntegrityError,
                      InvalidArgument, NoKey, NotFound, NotSupported, OutOfMemory, Timeout,
                      VersionError, error_class)
from .keys import KeyPair, Keys, identity_to_recipient, keygen
from .storage import Reader, Stat, Storage, Writer
from .catalog import (Catalog, Command, Manifest, RetentionEntry, RetentionPlan,
                      RetentionPolicy)
from .schedule import Schedule, next_run
from .plugin import EngineBackend, StorageBackend, register_engine, register_storage
from .engine import Engine
from .pipeline import Compress, Decompress, Decrypt, Encrypt, Pipeline, Stage
from .log import add_secret, log_to, set_log_format, set_log_level

__version__: str = _ffi.string(_lib.bop_version_string()).decode()

__all__ = [
    "AlreadyExists", "AuthError", "BackupopError", "Canceled", "ChildFailed", "Conflict",
    "ConnectError", "FormatError", "IOFailure", "IntegrityError", "InvalidArgument",
    "NoKey", "NotFound", "NotSupported", "OutOfMemory", "Timeout", "VersionError",
    "error_class", "KeyPair", "Keys", "identity_to_recipient", "keygen", "Reader", "Stat",
    "Storage", "Writer", "Catalog", "Command", "Manifest", "RetentionEntry",
    "RetentionPlan", "RetentionPolicy", "Schedule", "next_run", "StorageBackend",
    "register_storage", "Compress", "Decompress", "Decrypt", "Encrypt", "Pipeline",
    "Stage", "Engine", "EngineBackend", "register_engine", "set_log_level",
    "set_log_format", "log_to", "add_secret", "__version__",
]
