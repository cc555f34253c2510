"""The catalog: the backups of one name in a storage; backup, list, verify, restore,
retention."""
from __future__ import annotations

import datetime as _dt
import io
import os
import time
from dataclasses import dataclass, field
from typing import (Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union)

from ._backupop import ffi, lib
from ._errors import check, cstr, take_string
from . import _cb
from .engine import Engine
from .keys import Keys, KeyPair
from .storage import Storage

Recipients = Union[None, str, KeyPair, Keys, Iterable[Union[str, KeyPair]]]


@dataclass(frozen=True)
class Command:
    """A command whose standard output is the data to back up (argv[0] is looked up in
    PATH; no shell unless ``shell``). A command that exits non-zero fails the backup with
    ChildFailed, and nothing is stored. ``env`` values are never logged. ``timeout`` in
    seconds, None for none."""

    argv: Sequence[str]
    env: Optional[Mapping[str, str]] = None
    inherit_env: bool = True
    shell: bool = False
    cwd: Optional[str] = None
    timeout: Optional[float] = None


@dataclass(frozen=True)
class Manifest:
    """What the catalog records about one backup (manifest.json), copied out of the
    library: sizes and SHA-256 of the plaintext and of the stored object, compression,
    encryption ("none", "x25519", "scrypt"), tags and times (unix seconds)."""

    id: str
    name: str
    engine: str
    start_time: int
    end_time: int
    plain_bytes: int
    stored_bytes: int
    plain_sha256: str
    stored_sha256: str
    compression: str
    encryption: str
    object_key: str
    tags: Tuple[str, ...]
    file_count: int
    multi_file: bool
    json: str = field(repr=False, compare=False)

    @property
    def start(self) -> _dt.datetime:
        """The start time as an aware UTC datetime."""
        return _dt.datetime.fromtimestamp(self.start_time, _dt.timezone.utc)

    @property
    def end(self) -> _dt.datetime:
        """The end time as an aware UTC datetime."""
        return _dt.datetime.fromtimestamp(self.end_time, _dt.timezone.utc)

    @classmethod
    def parse(cls, text: Union[str, bytes]) -> "Manifest":
        """Parses a manifest.json document (FormatError with the reason if it is not)."""
        data = text.encode() if isinstance(text, str) else bytes(text)
        p = ffi.new("bop_manifest_t **")
        check(lib.bop_manifest_parse(p, data, len(data)))
        try:
            return _manifest(p[0])
        finally:
            lib.bop_manifest_free(p[0])


def _manifest(m: Any) -> Manifest:
    js = ffi.new("char **")
    check(lib.bop_manifest_to_json(m, js))
    return Manifest(
        id=cstr(lib.bop_manifest_id(m)) or "",
        name=cstr(lib.bop_manifest_name(m)) or "",
        engine=cstr(lib.bop_manifest_engine(m)) or "",
        start_time=int(lib.bop_manifest_start_time(m)),
        end_time=int(lib.bop_manifest_end_time(m)),
        plain_bytes=int(lib.bop_manifest_plain_bytes(m)),
        stored_bytes=int(lib.bop_manifest_stored_bytes(m)),
        plain_sha256=cstr(lib.bop_manifest_plain_sha256(m)) or "",
        stored_sha256=cstr(lib.bop_manifest_stored_sha256(m)) or "",
        compression=cstr(lib.bop_compression_name(lib.bop_manifest_compression(m))) or "",
        encryption=cstr(lib.bop_manifest_encryption(m)) or "",
        object_key=cstr(lib.bop_manifest_object_key(m)) or "",
        tags=tuple(cstr(lib.bop_manifest_tag(m, i)) or ""
                   for i in range(lib.bop_manifest_tag_count(m))),
        file_count=int(lib.bop_manifest_file_count(m)),
        multi_file=bool(lib.bop_manifest_has_files(m)),
        json=take_string(js[0]),
    )


@dataclass(frozen=True)
class RetentionPolicy:
    """Which backups to keep: the newest ``keep_last``; the newest backup of each of the
    newest N hours/days/weeks/months/years that have one; everything younger than
    ``keep_within`` (seconds or a timedelta); every backup with one of ``keep_tags``.
    The newest backup is always kept; a policy with every rule off keeps everything."""

    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    keep_within: Union[int, float, _dt.timedelta] = 0
    keep_tags: Sequence[str] = ()


@dataclass(frozen=True)
class RetentionEntry:
    """One backup of a plan: kept or deleted, and the labels saying why it is kept
    ("last", "daily-20261121", "tag:<t>", ...)."""

    id: str
    keep: bool
    labels: Tuple[str, ...]


@dataclass(frozen=True)
class RetentionPlan:
    """The plan for every backup, oldest first. ``removed`` is how many backups prune()
    removed (None for a dry run); ``text`` the table the CLI prints."""

    entries: Tuple[RetentionEntry, ...]
    text: str
    removed: Optional[int] = None

    @property
    def kept(self) -> List[str]:
        """Ids of the backups kept."""
        return [e.id for e in self.entries if e.keep]

    @property
    def deleted(self) -> List[str]:
        """Ids of the backups the plan deletes."""
        return [e.id for e in self.entries if not e.keep]


def _keys(recipients: Recipients = None, identities: Any = None,
          passphrase: Optional[Union[str, bytes]] = None) -> Optional[Keys]:
    if isinstance(recipients, Keys) and identities is None and passphrase is None:
        return recipients
    if isinstance(identities, Keys) and recipients is None and passphrase is None:
        return identities
    if recipients is None and identities is None and passphrase is None:
        return None
    keys = Keys()
    for r in ([recipients] if isinstance(recipients, (str, KeyPair)) else recipients or ()):
        keys.add_recipient(r.recipient if isinstance(r, KeyPair) else r)
    for i in ([identities] if isinstance(identities, (str, KeyPair)) else identities or ()):
        keys.add_identity(i.identity if isinstance(i, KeyPair) else i)
    if passphrase is not None:
        keys.set_passphrase(passphrase)
    return keys


def _strv(items: Iterable[str]) -> Tuple[Any, list]:
    keep = [ffi.new("char[]", s.encode()) for s in items]
    if not keep:
        return ffi.NULL, keep
    return ffi.new("const char *[]", keep + [ffi.NULL]), keep


def _command_options(cmd: Command) -> Tuple[Any, list]:
    opts = ffi.new("bop_command_options_t *")
    check(lib.bop_command_options_init(opts, lib.BOP_COMMAND_OPTIONS_VERSION))
    argv, keep = _strv(cmd.argv)
    if argv == ffi.NULL:
        raise ValueError("Command needs at least argv[0]")
    opts.argv = argv
    keep.append(argv)
    if cmd.env is not None:
        env, k2 = _strv("%s=%s" % (k, v) for k, v in cmd.env.items())
        keep += k2 + [env]
        opts.env = env
    opts.inherit_env = 1 if cmd.inherit_env else 0
    opts.shell = 1 if cmd.shell else 0
    if cmd.cwd is not None:
        cwd = ffi.new("char[]", os.fsencode(cmd.cwd))
        keep.append(cwd)
        opts.cwd = cwd
    opts.timeout_ms = int((cmd.timeout or 0) * 1000)
    return opts, keep


Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", Command, Any]


def make_source(source: Source, call: _cb._Call) -> Any:
    """A new bop_source_t * for a Python source (see Catalog.backup()); callbacks go
    through ``call``."""
    p = ffi.new("bop_source_t **")
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source).cast("B")
        check(lib.bop_source_memory_new(p, ffi.from_buffer(view), len(view)))
    elif isinstance(source, (str, os.PathLike)):
        check(lib.bop_source_file_new(p, os.fsencode(source)))
    elif isinstance(source, Command):
        opts, keep = _command_options(source)
        check(lib.bop_source_command_new(p, opts))
        del keep
    elif isinstance(source, Engine):
        check(lib.bop_engine_backup(source.ptr, p))
    else:
        if hasattr(source, "read"):
            call.reader = _cb.file_reader(source)
        elif hasattr(source, "__iter__"):
            call.reader = _cb.iter_reader(source)
        else:
            raise TypeError("cannot back up a %s: give bytes, a path, a binary file, "
                            "an iterable of bytes or a Command" % type(source).__name__)
        check(lib.bop_source_callback_new(p, lib._bop_py_read, call.handle))
    return p[0]


def make_sink(to: Any, call: _cb._Call) -> Any:
    """A new bop_sink_t * for a path (written beside, renamed into place at commit), a
    Command (its stdin), or a binary file object (written through ``call``)."""
    p = ffi.new("bop_sink_t **")
    if isinstance(to, (str, os.PathLike)):
        check(lib.bop_sink_file_new(p, os.fsencode(to)))
    elif isinstance(to, Command):
        opts, keep = _command_options(to)
        check(lib.bop_sink_command_new(p, opts))
        del keep
    elif isinstance(to, Engine):
        check(lib.bop_engine_restore(to.ptr, p))
    elif hasattr(to, "write"):
        call.writer = _cb.file_writer(to)
        check(lib.bop_sink_callback_new(p, lib._bop_py_write, call.handle))
    else:
        raise TypeError("cannot write to a %s: give a path, a binary file or a Command"
                        % type(to).__name__)
    return p[0]


class Catalog:
    """The backups of one name in a storage (a bop_catalog_t).

    >>> with Catalog(Storage.open("file:///var/backups"), "db") as cat:
    ...     m = cat.backup(b"data", recipients=[pair.recipient], tags=["nightly"])
    ...     assert cat.restore(m.id, identities=[pair.identity]) == b"data"

    One operation at a time per Catalog object; use one Catalog per thread.
    """

    def __init__(self, storage: Union[Storage, str], name: str) -> None:
        """Opens catalog ``name`` in ``storage`` (a Storage or a URL)."""
        self.storage = storage if isinstance(storage, Storage) else Storage.open(storage)
        self.name = name
        self._ptr: Any = None
        self._open()

    def _open(self) -> None:
        p = ffi.new("bop_catalog_t **")
        check(lib.bop_catalog_open(p, self.storage.ptr, self.name.encode()))
        self._ptr = ffi.gc(p[0], lib.bop_catalog_free)
        self._storage_ptr = self.storage.ptr   # the catalog borrows it

    @property
    def ptr(self) -> Any:
        if self._ptr is None:
            raise ValueError("the catalog is closed")
        return self._ptr

    def _call(self, progress: Optional[_cb.ProgressCallback]) -> _cb._Call:
        call = _cb._Call()
        call.progress = progress
        ptr = self.ptr
        call.on_progress_error = lambda: lib.bop_catalog_cancel(ptr)
        return call

    def _finish(self, call: _cb._Call, rc: int) -> None:
        if call.canceled:
            # A progress callback raised and canceled the catalog; cancellation sticks
            # to a C catalog, so later operations get a fresh one.
            old = self._ptr
            self._open()
            ffi.release(old)
        call.reraise()
        check(rc)

    def backup(self, source: Source, *, compression: str = "zstd", level: int = 0,
               threads: int = 0, recipients: Recipients = None,
               passphrase: Optional[Union[str, bytes]] = None,
               tags: Iterable[str] = (), engine: Optional[str] = None,
               progress: Optional[_cb.ProgressCallback] = None) -> Manifest:
        """Takes a backup of everything ``source`` yields and returns its manifest.

        ``source``: bytes-like; a path (str or os.PathLike) of a file; a binary file
        object; an iterable of bytes chunks; a Command; or an Engine (recorded as the
        manifest's engine). ``compression``: "zstd",
        "gzip" or "none" (``level`` 0 for the default). ``recipients``: "age1..."
        recipients (or KeyPairs, or a Keys) to encrypt to; ``passphrase`` to encrypt with
        scrypt instead. ``progress(bytes_in, bytes_out)`` is called now and then.

        On any failure nothing is stored. An exception raised by the source or by
        ``progress`` stops the backup and is raised here."""
        comp = ffi.new("bop_compression_t *")
        check(lib.bop_compression_parse(comp, compression.encode()))
        keys = _keys(recipients, None, passphrase)
        tagv, keep = _strv(tags)
        opts = ffi.new("bop_backup_options_t *")
        check(lib.bop_backup_options_init(opts, lib.BOP_BACKUP_OPTIONS_VERSION))
        opts.compression = comp[0]
        opts.level = level
        opts.threads = threads
        opts.keys = keys._ptr if keys is not None else ffi.NULL
        opts.tags = tagv
        if engine is None and isinstance(source, Engine):
            engine = source.name
        eng = ffi.new("char[]", engine.encode()) if engine else ffi.NULL
        opts.engine = eng
        call = self._call(progress)
        if progress is not None:
            opts.progress = lib._bop_py_progress
            opts.payload = call.handle
        src = make_source(source, call)
        out = ffi.new("bop_manifest_t **")
        rc = lib.bop_catalog_backup(self.ptr, out, src, opts)
        del keep
        self._finish(call, rc)
        try:
            return _manifest(out[0])
        finally:
            lib.bop_manifest_free(out[0])

    def list(self) -> List[Manifest]:
        """Every backup of the catalog, oldest first."""
        p = ffi.new("bop_manifest_list_t **")
        check(lib.bop_catalog_list(self.ptr, p))
        try:
            return [_manifest(lib.bop_manifest_list_get(p[0], i))
                    for i in range(lib.bop_manifest_list_count(p[0]))]
        finally:
            lib.bop_manifest_list_free(p[0])

    def __iter__(self):  # type: ignore[no-untyped-def]
        """Iterates over the backups, oldest first."""
        return iter(self.list())

    def _get(self, id: Union[str, Manifest]) -> Any:
        key = id.id if isinstance(id, Manifest) else id
        p = ffi.new("bop_manifest_t **")
        check(lib.bop_catalog_get(self.ptr, p, key.encode()))
        return ffi.gc(p[0], lib.bop_manifest_free)

    def get(self, id: Union[str, Manifest] = "latest") -> Manifest:
        """The manifest of backup ``id`` ("latest": the newest). NotFound if none."""
        return _manifest(self._get(id))

    def _restore_opts(self, keys: Optional[Keys], call: _cb._Call) -> Any:
        opts = ffi.new("bop_restore_options_t *")
        check(lib.bop_restore_options_init(opts, lib.BOP_RESTORE_OPTIONS_VERSION))
        opts.keys = keys._ptr if keys is not None else ffi.NULL
        if call.progress is not None:
            opts.progress = lib._bop_py_progress
            opts.payload = call.handle
        return opts

    def verify(self, id: Union[str, Manifest] = "latest", *, identities: Any = None,
               passphrase: Optional[Union[str, bytes]] = None,
               progress: Optional[_cb.ProgressCallback] = None) -> Manifest:
        """Reads backup ``id`` completely as a restore would, writing nothing, and returns
        its manifest. IntegrityError on a mismatch; NoKey when no identity given matches.
        """
        m = self._get(id)
        keys = _keys(None, identities, passphrase)
        call = self._call(progress)
        rc = lib.bop_catalog_verify(self.ptr, m, self._restore_opts(keys, call))
        self._finish(call, rc)
        return _manifest(m)

    def restore(self, id: Union[str, Manifest] = "latest", to: Any = None, *,
                identities: Any = None, passphrase: Optional[Union[str, bytes]] = None,
                progress: Optional[_cb.ProgressCallback] = None) -> Optional[bytes]:
        """Restores backup ``id`` (decrypting with ``identities`` or ``passphrase``,
        decompressing, checking size and SHA-256 against the manifest).

        ``to``: a path (the file appears only if everything checked out), an Engine or a
        Command (they get the stream and apply it at the end), a binary file object (written as data is authenticated: on failure it holds a partial stream),
        or None to return the data as bytes."""
        m = self._get(id)
        keys = _keys(None, identities, passphrase)
        call = self._call(progress)
        collected = io.BytesIO() if to is None else None
        sink = make_sink(collected if to is None else to, call)
        rc = lib.bop_catalog_restore(self.ptr, m, sink, self._restore_opts(keys, call))
        self._finish(call, rc)
        return collected.getvalue() if collected is not None else None

    def remove(self, id: Union[str, Manifest]) -> None:
        """Removes backup ``id``: its manifest first, then its data."""
        key = id.id if isinstance(id, Manifest) else id
        check(lib.bop_catalog_remove(self.ptr, key.encode()))

    def _plan(self, policy: RetentionPolicy, now: Optional[float]) -> Tuple[Any, Any]:
        pol = ffi.new("bop_retention_policy_t *")
        check(lib.bop_retention_policy_init(pol, lib.BOP_RETENTION_POLICY_VERSION))
        pol.keep_last = policy.keep_last
        pol.keep_hourly = policy.keep_hourly
        pol.keep_daily = policy.keep_daily
        pol.keep_weekly = policy.keep_weekly
        pol.keep_monthly = policy.keep_monthly
        pol.keep_yearly = policy.keep_yearly
        within = policy.keep_within
        if isinstance(within, _dt.timedelta):
            within = within.total_seconds()
        pol.keep_within_seconds = int(within)
        tagv, keep = _strv(policy.keep_tags)
        pol.keep_tags = tagv
        lst = ffi.new("bop_manifest_list_t **")
        check(lib.bop_catalog_list(self.ptr, lst))
        lst_ptr = ffi.gc(lst[0], lib.bop_manifest_list_free)
        p = ffi.new("bop_retention_plan_t **")
        check(lib.bop_retention_plan(p, lst_ptr, pol,
                                     int(time.time() if now is None else now)))
        del keep
        return ffi.gc(p[0], lib.bop_retention_plan_free), lst_ptr

    @staticmethod
    def _plan_entries(plan: Any, removed: Optional[int]) -> RetentionPlan:
        entries = []
        for i in range(lib.bop_retention_plan_count(plan)):
            labels = cstr(lib.bop_retention_plan_labels(plan, i)) or ""
            entries.append(RetentionEntry(
                id=cstr(lib.bop_retention_plan_id(plan, i)) or "",
                keep=bool(lib.bop_retention_plan_keep(plan, i)),
                labels=tuple(x for x in labels.split(",") if x)))
        text = ffi.new("char **")
        check(lib.bop_retention_plan_format(plan, text))
        return RetentionPlan(tuple(entries), take_string(text[0]), removed)

    def plan_retention(self, policy: RetentionPolicy,
                       now: Optional[float] = None) -> RetentionPlan:
        """The retention plan for the catalog's backups at ``now`` (unix seconds; default
        the current time). Changes nothing."""
        plan, _lst = self._plan(policy, now)
        return self._plan_entries(plan, None)

    def prune(self, policy: RetentionPolicy, dry_run: bool = True,
              now: Optional[float] = None) -> RetentionPlan:
        """Plans retention and, unless ``dry_run`` (the default), removes every backup the
        plan deletes. Returns the plan, with ``removed`` set when not a dry run."""
        plan, _lst = self._plan(policy, now)
        removed: Optional[int] = None
        if not dry_run:
            n = ffi.new("size_t *")
            rc = lib.bop_catalog_prune(self.ptr, n, plan)
            removed = int(n[0])
            check(rc)
        return self._plan_entries(plan, removed)

    def cancel(self) -> None:
        """Cancels the operation running on this catalog (from another thread), and every
        later one: they raise Canceled."""
        lib.bop_catalog_cancel(self.ptr)

    def close(self) -> None:
        """Frees the catalog (the storage stays open)."""
        if self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            ffi.release(ptr)
            self._storage_ptr = None

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<backupop.Catalog %r in %s>" % (self.name, self.storage.url)
