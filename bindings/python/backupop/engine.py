"""Engines (the library's, such as "exec", or written in Python): what produces a backup
stream and what consumes one to restore."""
from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Union

from ._backupop import ffi, lib
from ._errors import check


class Engine:
    """An engine opened by name with its configuration (a dict, or JSON text). Give it
    to Catalog.backup() as the source and to Catalog.restore() as ``to``."""

    def __init__(self, name: str, config: Union[Mapping[str, Any], str, None] = None) -> None:
        self.name = name
        text = config if isinstance(config, str) else json.dumps(dict(config or {}))
        p = ffi.new("bop_engine_t **")
        check(lib.bop_engine_open(p, name.encode(), text.encode()))
        self._ptr: Optional[Any] = ffi.gc(p[0], lib.bop_engine_free)

    @property
    def ptr(self) -> Any:
        if self._ptr is None:
            raise ValueError("the engine is closed")
        return self._ptr

    def validate(self) -> None:
        """Checks that the engine can run here (tools present, settings coherent)."""
        check(lib.bop_engine_validate(self.ptr))

    def close(self) -> None:
        """Frees the engine."""
        if self._ptr is not None:
            ptr, self._ptr = self._ptr, None
            ffi.release(ptr)

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<backupop.Engine %s>" % self.name
