"""Schedules: cron expressions evaluated in a time zone, as pure functions (no clock)."""
from __future__ import annotations

import datetime as _dt
from typing import Optional, Tuple, TypeVar, Union

from ._backupop import ffi, lib
from ._errors import check, cstr

Instant = Union[int, float, _dt.datetime]
T = TypeVar("T", int, _dt.datetime)


def _seconds(t: Instant) -> int:
    if isinstance(t, _dt.datetime):
        if t.tzinfo is None:
            raise ValueError("give an aware datetime (with tzinfo), or unix seconds")
        return int(t.timestamp()) if t.microsecond == 0 else int(t.timestamp() // 1)
    return int(t // 1)


def _like(t: Instant, seconds: int) -> Union[int, _dt.datetime]:
    if isinstance(t, _dt.datetime):
        return _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc)
    return seconds


class Schedule:
    """A parsed cron expression ("0 2 * * *", six fields with seconds, @daily,
    "@every 90s", an optional "CRON_TZ=Europe/Berlin " prefix) in a time zone (None or
    "UTC", "Local", or a tz database name). InvalidArgument names the bad field; NotFound
    for an unknown zone."""

    def __init__(self, expression: str, time_zone: Optional[str] = None) -> None:
        p = ffi.new("bop_schedule_t **")
        check(lib.bop_schedule_parse(p, expression.encode(),
                                     time_zone.encode() if time_zone else ffi.NULL))
        self._ptr = ffi.gc(p[0], lib.bop_schedule_free)

    @property
    def expression(self) -> str:
        """The expression as given."""
        return cstr(lib.bop_schedule_expression(self._ptr)) or ""

    @property
    def time_zone(self) -> str:
        """The zone in effect: "UTC", "Local" or a name such as "Europe/Berlin"."""
        return cstr(lib.bop_schedule_time_zone(self._ptr)) or ""

    def next_run(self, after: Instant) -> Union[int, _dt.datetime]:
        """The first fire time strictly after ``after``: unix seconds for a number, an
        aware UTC datetime for a datetime. NotFound if it never fires again before the
        year 10000."""
        out = ffi.new("int64_t *")
        check(lib.bop_schedule_next(self._ptr, out, _seconds(after)))
        return _like(after, int(out[0]))

    def due(self, last: Instant, now: Instant,
            deadline: Optional[float] = None) -> Tuple[Optional[Union[int, _dt.datetime]], int]:
        """Missed runs: of the fire times in (last, now], returns the latest if it is not
        more than ``deadline`` seconds late (None: no deadline), else None, and how many
        fire times there were (at most 10000)."""
        run = ffi.new("int64_t *")
        missed = ffi.new("uint64_t *")
        rc = check(lib.bop_schedule_due(self._ptr, run, missed, _seconds(last), _seconds(now),
                                        -1 if deadline is None else int(deadline)))
        return (_like(now, int(run[0])) if rc == 1 else None), int(missed[0])

    def format_time(self, t: Instant) -> str:
        """``t`` as local time in the schedule's zone, RFC 3339 with the offset."""
        buf = ffi.new("char[64]")
        check(lib.bop_schedule_format_time(self._ptr, buf, 64, _seconds(t)))
        return ffi.string(buf).decode()

    def __repr__(self) -> str:
        return "Schedule(%r, %r)" % (self.expression, self.time_zone)


def next_run(expression: str, after: Instant,
             time_zone: Optional[str] = None) -> Union[int, _dt.datetime]:
    """The first fire time of ``expression`` strictly after ``after`` (see
    Schedule.next_run)."""
    return Schedule(expression, time_zone).next_run(after)
