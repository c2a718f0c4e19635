"""Reading telemetry back: latest values of a place or a device, and downsampled series.

These functions do no access control: the caller (the device registry's service, which knows
who may see which device and place) decides what ``place_path`` or ``device_key`` to ask for.
Intended wiring:

- ``GET /api/v1/places/{id}/state``   -> ``latest_for_place(session, place.path)``
- ``GET /api/v1/devices/{id}/state``  -> ``latest_for_device(session, device.key)``
- ``GET /api/v1/devices/{id}/telemetry?capability=&endpoint=&start=&end=&max_points=``
  -> ``series(session, device.key, capability, endpoint, start, end, max_points)``
  (``Invalid`` carries JSON pointers ``/start``, ``/end``, ``/max_points``; map them to query
  parameters).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Table, and_, func, select
from sqlalchemy.orm import Session

from cityweave.errors import FieldError, Invalid
from cityweave.telemetry.models import (
    ENDPOINT_NONE,
    HOUR_MS,
    MINUTE_MS,
    device_state,
    readings,
    readings_1h,
    readings_1m,
    telemetry_watermarks,
)
from cityweave.telemetry.values import decode, from_ms, to_ms

__all__ = [
    "MAX_POINTS",
    "MAX_RANGE",
    "Bucket",
    "LatestValue",
    "Series",
    "SourceLimits",
    "latest_for_device",
    "latest_for_place",
    "series",
]

MAX_POINTS = 5000
MAX_RANGE = timedelta(days=5 * 366)


@dataclass(frozen=True, slots=True)
class LatestValue:
    """The newest known value of one series."""

    device_key: str
    capability: str
    endpoint: str | None
    value: Any  # bool, float, str, dict/list or None, as the device sent it
    value_type: str  # bool | number | text | object | null
    unit: str | None
    quality: str
    timestamp: datetime  # when the device measured it
    updated_at: datetime  # when it was stored
    place_path: str | None


@dataclass(frozen=True, slots=True)
class Bucket:
    """One downsampled interval ``[start, start + width)``.

    ``min``/``max``/``avg``/``sum`` are over numeric values; for a boolean series they are over
    1/0, so ``sum`` is the number of ``True`` values ("door opened N times") and ``avg`` the share
    of ``True``. They are ``None`` for text and object series, whose ``last`` and ``count`` still
    hold. ``last`` is typed like the series.
    """

    start: datetime
    count: int
    min: float | None
    max: float | None
    avg: float | None
    sum: float | None
    last: Any


@dataclass(frozen=True, slots=True)
class Series:
    """A downsampled series: ``source`` is the table used ("raw", "1m" or "1h")."""

    source: str
    bucket_width: timedelta
    value_type: str | None
    buckets: list[Bucket]


@dataclass(frozen=True, slots=True)
class SourceLimits:
    """How many source rows one series() call may read from raw and from minute rollups before
    it moves to the next coarser level. Hour rollups are bounded by MAX_RANGE (~44,000)."""

    raw_rows: int = 20_000
    minute_rows: int = 20_000  # about 14 days


DEFAULT_LIMITS = SourceLimits()


def _latest(rows: list[Row[Any]]) -> list[LatestValue]:
    return [
        LatestValue(
            device_key=r.device_key, capability=r.capability, endpoint=r.endpoint or None,
            value=decode(r.value_type, r.num, r.text), value_type=r.value_type, unit=r.unit,
            quality=r.quality, timestamp=r.ts, updated_at=r.updated_at, place_path=r.place_path,
        )
        for r in rows
    ]


def latest_for_place(session: Session, place_path: str) -> list[LatestValue]:
    """Every latest value of every device inside a place (a household, a building, a whole
    community), in one query on the ``place_path`` index, ordered by device and capability.

    ``place_path`` is a materialised path ending in ``/`` (``Place.path``). The prefix match is
    written as a range, which both backends answer from the B-tree (see models.PLACE_PATH_TYPE).
    """
    if not place_path.endswith("/"):
        raise Invalid.field("/place_path", "a place path ends with '/'")
    upper = place_path[:-1] + chr(ord("/") + 1)  # "/a/b/" -> "/a/b0": just past every "/a/b/..."
    column = device_state.c.place_path
    stmt = (
        select(device_state)
        .where(column >= place_path, column < upper)
        .order_by(device_state.c.device_key, device_state.c.capability, device_state.c.endpoint)
    )
    return _latest(list(session.execute(stmt)))


def latest_for_device(session: Session, device_key: str) -> list[LatestValue]:
    """Every latest value of one device (one primary-key range)."""
    stmt = (
        select(device_state)
        .where(device_state.c.device_key == device_key)
        .order_by(device_state.c.capability, device_state.c.endpoint)
    )
    return _latest(list(session.execute(stmt)))


# --- series ---------------------------------------------------------------------------------

def _validate(start: datetime, end: datetime, max_points: int) -> None:
    errors: list[FieldError] = []
    for pointer, moment in (("/start", start), ("/end", end)):
        if moment.tzinfo is None:
            errors.append(FieldError(pointer, "needs a time zone (e.g. 2026-01-01T00:00:00Z)"))
    if not isinstance(max_points, int) or isinstance(max_points, bool) or not 1 <= max_points <= MAX_POINTS:
        errors.append(FieldError("/max_points", f"must be an integer from 1 to {MAX_POINTS}"))
    if not errors:
        if start >= end:
            errors.append(FieldError("/end", "must be after start"))
        elif end - start > MAX_RANGE:
            errors.append(FieldError("/end", f"the range may span at most {MAX_RANGE.days} days"))
    if errors:
        raise Invalid(errors)


@dataclass(frozen=True, slots=True)
class _Source:
    name: str
    resolution_ms: int  # a bucket width is always a multiple of this
    table: Table | None  # None: raw readings


_RAW = _Source("raw", 1, None)
_MINUTE = _Source("1m", MINUTE_MS, readings_1m)
_HOUR = _Source("1h", HOUR_MS, readings_1h)


def _series_filter(table: Table, device_key: str, capability: str, endpoint: str) -> Any:
    c = table.c
    return and_(c.device_key == device_key, c.capability == capability, c.endpoint == endpoint)


def _pick_source(
    session: Session, key: tuple[str, str, str], start_ms: int, end_ms: int, limits: SourceLimits
) -> _Source:
    """The finest level that still holds the whole range and is small enough to read:
    raw when the range has at most ``limits.raw_rows`` raw rows (counted with a bounded probe, so
    a dense year does not get counted row by row), minute rollups up to ``limits.minute_rows``
    minutes, hour rollups otherwise. A level pruned past ``start`` is skipped."""
    pruned = dict(session.execute(select(telemetry_watermarks.c.level, telemetry_watermarks.c.pruned_before_ms)).all())
    if start_ms >= pruned.get("raw", start_ms):
        probe = (
            select(readings.c.ts_ms)
            .where(_series_filter(readings, *key), readings.c.ts_ms >= start_ms, readings.c.ts_ms < end_ms)
            .limit(limits.raw_rows + 1)
            .subquery()
        )
        if session.execute(select(func.count()).select_from(probe)).scalar_one() <= limits.raw_rows:
            return _RAW
    minute_start = start_ms - start_ms % MINUTE_MS
    if minute_start >= pruned.get("1m", minute_start) and (end_ms - minute_start) <= limits.minute_rows * MINUTE_MS:
        return _MINUTE
    return _HOUR


def _bucket_width(origin_ms: int, end_ms: int, max_points: int, resolution_ms: int) -> int:
    """The smallest multiple of the source resolution that splits [origin, end) into at most
    ``max_points`` buckets."""
    width = -(-(end_ms - origin_ms) // max_points)  # ceiling division
    return max(resolution_ms, -(-width // resolution_ms) * resolution_ms)


class _Accumulator:
    __slots__ = ("count", "last_num", "last_text", "last_ts", "max", "min", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.min: float | None = None
        self.max: float | None = None
        self.sum: float | None = None
        self.last_ts = -1 << 62
        self.last_num: float | None = None
        self.last_text: str | None = None

    def add(self, count: int, lo: float | None, hi: float | None, total: float | None,
            ts: int, last_num: float | None, last_text: str | None) -> None:
        self.count += count
        if lo is not None and (self.min is None or lo < self.min):
            self.min = lo
        if hi is not None and (self.max is None or hi > self.max):
            self.max = hi
        if total is not None:
            self.sum = total if self.sum is None else self.sum + total
        if ts >= self.last_ts:
            self.last_ts, self.last_num, self.last_text = ts, last_num, last_text


def _source_rows(session: Session, source: _Source, key: tuple[str, str, str],
                 origin_ms: int, end_ms: int) -> Any:
    """Rows as (ts, count, min, max, sum, last_ts, last_num, last_text), oldest first."""
    if source.table is None:
        c = readings.c
        stmt = (
            select(c.ts_ms, c.num, c.text)
            .where(_series_filter(readings, *key), c.ts_ms >= origin_ms, c.ts_ms < end_ms)
            .order_by(c.ts_ms)
        )
        for ts, num, text in session.execute(stmt):
            if num is None and text is None:
                continue  # None ("unknown") readings are not samples
            yield ts, 1, num, num, num, ts, num, text
        return
    c = source.table.c
    stmt = (
        select(c.bucket_ms, c["count"], c.num_min, c.num_max, c.num_sum, c.last_ts_ms, c.last_num, c.last_text)
        .where(_series_filter(source.table, *key), c.bucket_ms >= origin_ms, c.bucket_ms < end_ms)
        .order_by(c.bucket_ms)
    )
    yield from session.execute(stmt)


def series(
    session: Session,
    device_key: str,
    capability: str,
    endpoint: str | None,
    start: datetime,
    end: datetime,
    max_points: int = 500,
    *,
    limits: SourceLimits = DEFAULT_LIMITS,
) -> Series:
    """One series over ``[start, end)`` in at most ``max_points`` buckets (empty ones left out).

    The source is picked automatically (see :func:`_pick_source`). Buckets start at ``start``
    for raw data; rollups cover whole minutes or hours, so with them the first bucket starts at
    ``start`` rounded down to the minute or hour and includes that whole interval. Buckets are
    aggregated in Python: the rows read are bounded by ``limits`` and MAX_RANGE, and doing it in
    Python keeps "last value" and bucket arithmetic identical on SQLite and PostgreSQL.
    """
    _validate(start, end, max_points)
    key = (device_key, capability, endpoint or ENDPOINT_NONE)
    start_ms, end_ms = to_ms(start), to_ms(end)
    source = _pick_source(session, key, start_ms, end_ms, limits)
    origin_ms = start_ms - start_ms % source.resolution_ms
    width_ms = _bucket_width(origin_ms, end_ms, max_points, source.resolution_ms)

    accumulators: dict[int, _Accumulator] = {}
    for ts, count, lo, hi, total, last_ts, last_num, last_text in _source_rows(session, source, key, origin_ms, end_ms):
        index = (ts - origin_ms) // width_ms
        accumulator = accumulators.get(index)
        if accumulator is None:
            accumulator = accumulators[index] = _Accumulator()
        accumulator.add(count, lo, hi, total, last_ts, last_num, last_text)

    value_type = session.execute(
        select(device_state.c.value_type).where(_series_filter(device_state, *key))
    ).scalar_one_or_none()
    buckets = [_bucket(origin_ms + index * width_ms, accumulators[index], value_type) for index in sorted(accumulators)]
    return Series(source.name, timedelta(milliseconds=width_ms), value_type, buckets)


def _bucket(start_ms: int, a: _Accumulator, value_type: str | None) -> Bucket:
    numeric_count = a.count if a.sum is not None else 0
    return Bucket(
        start=from_ms(start_ms),
        count=a.count,
        min=a.min,
        max=a.max,
        avg=a.sum / numeric_count if numeric_count else None,
        sum=a.sum,
        last=decode(value_type, a.last_num, a.last_text),
    )
