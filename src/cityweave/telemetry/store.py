"""The telemetry write path and retention.

:meth:`TelemetryStore.write` takes one batch of :class:`~cityweave.devices.reading.Reading`
and does three things inside the caller's transaction, each as ONE executemany:

1. appends the raw rows to ``readings``;
2. upserts ``device_state`` with the newest reading of each series in the batch, guarded by
   ``WHERE excluded.ts >= device_state.ts`` so a late, out-of-order message never replaces a newer
   state;
3. folds the batch into ``readings_1m`` and ``readings_1h``: the batch is first aggregated in
   Python per (series, bucket), then each touched bucket is upserted once, merging
   count/min/max/sum and keeping the "last" value of whichever side is newer.

Everything is computed per batch in Python and written with few statements, because on SQLite
the cost of a write is dominated by statement round trips, not by the rows. Duplicate delivery
of the same message (MQTT QoS 1) is stored twice and counted twice; de-duplication belongs to the
ingest side, which knows message ids.

:func:`prune` removes data past its retention window in bounded chunks and records how far it
pruned, so that :func:`cityweave.telemetry.query.series` never reads a level that no longer
covers the requested range.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Float,
    Table,
    TypeDecorator,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    literal_column,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cityweave.clock import Clock
from cityweave.config import Settings
from cityweave.devices.reading import Quality, Reading
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
from cityweave.telemetry.values import NULL, NUMBER, UnstorableValue, encode, to_ms

__all__ = ["PruneCounts", "TelemetryStore", "WriteCounts", "forget_device", "prune", "prune_expired", "relocate"]

SeriesKey = tuple[str, str, str]
# [count, min, max, sum, last_ts_ms, last_num, last_text]
_Aggregate = list[Any]
_QUALITY_TEXT = {id(q): q.value for q in Quality}


@dataclass(frozen=True, slots=True)
class WriteCounts:
    """What one :meth:`TelemetryStore.write` did; ``rejected`` readings were not stored at all."""

    raw: int
    states: int  # series whose state was offered (the guard may still keep a newer one)
    minute_buckets: int
    hour_buckets: int
    rejected: int


@dataclass(frozen=True, slots=True)
class PruneCounts:
    raw: int
    minute: int
    hour: int


class _Batch:
    """One batch, encoded once: raw rows, the newest reading per series, rollup aggregates."""

    def __init__(self) -> None:
        self.raw_rows: list[tuple[Any, ...]] = []  # in readings' column order
        # series -> (ts_ms, reading, value_type, num, text)
        self.newest: dict[SeriesKey, tuple[int, Reading, str, float | None, str | None]] = {}
        self.minutes: dict[tuple[str, str, str, int], _Aggregate] = {}
        self.hours: dict[tuple[str, str, str, int], _Aggregate] = {}
        self.rejected = 0

    @classmethod
    def collect(cls, batch: Sequence[Reading]) -> _Batch:
        """Per reading, the hot loop of the store: the readings of one message share one
        timestamp object (converted once), most values are finite floats (encoded inline),
        and the quality's text is looked up by identity (an Enum's ``.value`` and hash run in
        Python)."""
        self = cls()
        last_ts: datetime | None = None
        last_ms = 0
        quality_text = _QUALITY_TEXT
        for reading in batch:
            value = reading.value
            try:
                if type(value) is float and value - value == 0.0:  # finite (NaN/inf give NaN)
                    value_type, num, text = NUMBER, value, None
                else:
                    value_type, num, text = encode(value)
                timestamp = reading.timestamp
                if timestamp is not last_ts:
                    last_ms, last_ts = to_ms(timestamp), timestamp
                ts_ms = last_ms
            except UnstorableValue:
                self.rejected += 1
                continue
            endpoint = reading.endpoint or ENDPOINT_NONE
            series = (reading.device_key, reading.capability, endpoint)
            quality = quality_text.get(id(reading.quality))
            if quality is None:
                quality = reading.quality.value
            self.raw_rows.append((*series, ts_ms, num, text, quality))
            seen = self.newest.get(series)
            if seen is None or ts_ms >= seen[0]:
                self.newest[series] = (ts_ms, reading, value_type, num, text)
            if value_type != NULL:
                _fold(self.minutes, (*series, ts_ms - ts_ms % MINUTE_MS), ts_ms, num, text)
                _fold(self.hours, (*series, ts_ms - ts_ms % HOUR_MS), ts_ms, num, text)
        return self

    def state_rows(
        self, place_paths: Mapping[str, str], now: datetime,
        processor: Callable[[str], Callable[[Any], Any]],
    ) -> list[tuple[Any, ...]]:
        """In device_state's column order, timestamps in the driver's form.

        The readings of one message share one timestamp, and converting a datetime for the
        driver costs microseconds, so each distinct timestamp is converted once per batch."""
        convert_ts, updated_at = processor("ts"), processor("updated_at")(now)
        converted: dict[datetime, Any] = {}
        rows = []
        for (device_key, capability, endpoint), (_, reading, value_type, num, text) in self.newest.items():
            ts = converted.get(reading.timestamp)
            if ts is None:
                ts = converted[reading.timestamp] = convert_ts(reading.timestamp)
            rows.append((device_key, capability, endpoint, place_paths.get(device_key), value_type,
                         num, text, reading.unit, reading.quality.value, ts, updated_at))
        return rows


def _fold(
    buckets: dict[tuple[str, str, str, int], _Aggregate],
    key: tuple[str, str, str, int],
    ts_ms: int,
    num: float | None,
    text: str | None,
) -> None:
    aggregate = buckets.get(key)
    if aggregate is None:
        buckets[key] = [1, num, num, num, ts_ms, num, text]
        return
    aggregate[0] += 1
    if num is not None:
        if aggregate[1] is None or num < aggregate[1]:
            aggregate[1] = num
        if aggregate[2] is None or num > aggregate[2]:
            aggregate[2] = num
        aggregate[3] = num if aggregate[3] is None else aggregate[3] + num
    if ts_ms >= aggregate[4]:
        aggregate[4], aggregate[5], aggregate[6] = ts_ms, num, text


def _rollup_rows(buckets: dict[tuple[str, str, str, int], _Aggregate]) -> list[tuple[Any, ...]]:
    """In the rollup tables' column order."""
    return [(*key, *aggregate) for key, aggregate in buckets.items()]


# --- upsert statements ----------------------------------------------------------------------

def _insert_for(dialect_name: str) -> Callable[[Table], Any]:
    if dialect_name == "sqlite":
        return sqlite.insert
    if dialect_name == "postgresql":
        return postgresql.insert
    raise NotImplementedError(f"telemetry supports SQLite and PostgreSQL, not {dialect_name}")


def _smaller(new: ColumnElement[Any], old: ColumnElement[Any]) -> ColumnElement[Any]:
    """min() that ignores NULL on both backends (SQLite's min(a, b) returns NULL if one is)."""
    return case((new.is_(None), old), (old.is_(None), new), (new < old, new), else_=old)


def _larger(new: ColumnElement[Any], old: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((new.is_(None), old), (old.is_(None), new), (new > old, new), else_=old)


def _plus(new: ColumnElement[Any], old: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((new.is_(None), old), (old.is_(None), new), else_=old + new)


def _batch_insert(dialect_name: str, table: Table) -> Any:
    """INSERT of a whole batch. SQLite: one row of parameters, run with executemany (the loop is
    in C and there is no network). PostgreSQL: ``INSERT ... SELECT * FROM unnest(arrays)``, one
    statement and one round trip per batch, each parameter a column of the batch; executemany
    would cost a statement execution per row."""
    insert = _insert_for(dialect_name)(table)
    if dialect_name != "postgresql":
        return insert
    arrays = [
        cast(bindparam(c.key), postgresql.ARRAY(c.type.impl if isinstance(c.type, TypeDecorator) else c.type))
        for c in table.c
    ]
    rows = select(literal_column("*")).select_from(func.unnest(*arrays).alias("batch"))
    return insert.from_select([c.key for c in table.c], rows)


def _state_upsert(dialect_name: str) -> Any:
    stmt = _batch_insert(dialect_name, device_state)
    new, old = stmt.excluded, device_state.c
    return stmt.on_conflict_do_update(
        index_elements=[old.device_key, old.capability, old.endpoint],
        set_={
            # A reading without a known place must not erase the place we know.
            "place_path": func.coalesce(new.place_path, old.place_path),
            "value_type": new.value_type, "num": new.num, "text": new.text, "unit": new.unit,
            "quality": new.quality, "ts": new.ts, "updated_at": new.updated_at,
        },
        where=new.ts >= old.ts,
    )


def _rollup_upsert(dialect_name: str, table: Table) -> Any:
    stmt = _batch_insert(dialect_name, table)
    new, old = stmt.excluded, table.c
    newer = new.last_ts_ms >= old.last_ts_ms
    return stmt.on_conflict_do_update(
        index_elements=[old.device_key, old.capability, old.endpoint, old.bucket_ms],
        set_={
            "count": old["count"] + new["count"],
            "num_min": _smaller(new.num_min, old.num_min),
            "num_max": _larger(new.num_max, old.num_max),
            "num_sum": _plus(new.num_sum, old.num_sum),
            "last_ts_ms": case((newer, new.last_ts_ms), else_=old.last_ts_ms),
            "last_num": case((newer, new.last_num), else_=old.last_num),
            "last_text": case((newer, new.last_text), else_=old.last_text),
        },
    )


class _Prepared:
    """A statement compiled once to the driver's SQL with positional parameters in the table's
    column order, executed with plain tuples (on PostgreSQL: one tuple of column arrays).

    Why not ``connection.execute(stmt, [dict, ...])``: SQLAlchemy then builds and type-processes
    a parameter dict per row, which profiling showed to cost more than SQLite's own work
    (about 60 % of a batch). Compiling once keeps SQLAlchemy as the author of the SQL (dialect
    quirks, quoting, ON CONFLICT syntax) and leaves the per-row loop to the driver. The caller
    converts the few columns whose type needs it, with :meth:`processor`.
    """

    def __init__(self, stmt: Any, table: Table, dialect: Dialect, converted: tuple[str, ...] = ()) -> None:
        positional = dialect if dialect.positional else type(dialect)(paramstyle="format")
        compiled = stmt.compile(dialect=positional, column_keys=[c.key for c in table.c])
        names = list(compiled.positiontup or [])
        if names != [c.key for c in table.c]:
            raise RuntimeError(f"unexpected parameter order for {table.name}: {names}")
        self.sql = compiled.string
        self.columnar = dialect.name == "postgresql"  # see _batch_insert
        self._processors = {
            column.key: processor
            for column in table.c
            # Float's processor only coerces to float, and encode() yields float or None already.
            if not isinstance(column.type, Float)
            and (processor := column.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        if unhandled := set(self._processors) - set(converted):
            raise RuntimeError(f"{table.name}: columns {sorted(unhandled)} need conversion on {dialect.name}")

    def processor(self, column_key: str) -> Callable[[Any], Any]:
        return self._processors.get(column_key, _unchanged)

    def execute(self, connection: Connection, rows: list[tuple[Any, ...]]) -> None:
        if self.columnar:
            connection.exec_driver_sql(self.sql, tuple(list(column) for column in zip(*rows)))
        else:
            connection.exec_driver_sql(self.sql, rows)


def _unchanged(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class _Statements:
    raw_insert: _Prepared
    state_upsert: _Prepared
    minute_upsert: _Prepared
    hour_upsert: _Prepared


class TelemetryStore:
    """Writes batches of readings. Holds no data, only the clock and prepared statements, so one
    instance can serve every ingest worker."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self._statements: dict[str, _Statements] = {}

    def _prepared(self, dialect: Dialect) -> _Statements:
        if dialect.name not in self._statements:
            self._statements[dialect.name] = _Statements(
                raw_insert=_Prepared(_batch_insert(dialect.name, readings), readings, dialect),
                state_upsert=_Prepared(_state_upsert(dialect.name), device_state, dialect,
                                       converted=("ts", "updated_at")),
                minute_upsert=_Prepared(_rollup_upsert(dialect.name, readings_1m), readings_1m, dialect),
                hour_upsert=_Prepared(_rollup_upsert(dialect.name, readings_1h), readings_1h, dialect),
            )
        return self._statements[dialect.name]

    def write(
        self, session: Session, batch: Sequence[Reading], place_paths: Mapping[str, str]
    ) -> WriteCounts:
        """Store one batch in the session's transaction (the caller commits).

        ``place_paths`` maps device_key to the path of the household or facility the device
        belongs to; devices missing from it keep the place they had (or none).
        """
        collected = _Batch.collect(batch)
        if not collected.raw_rows:
            return WriteCounts(0, 0, 0, 0, collected.rejected)
        connection = session.connection()
        statements = self._prepared(connection.dialect)
        minute_rows = _rollup_rows(collected.minutes)
        hour_rows = _rollup_rows(collected.hours)
        state_rows = collected.state_rows(place_paths, self.clock.now(), statements.state_upsert.processor)
        statements.raw_insert.execute(connection, collected.raw_rows)
        statements.state_upsert.execute(connection, state_rows)
        if minute_rows:
            statements.minute_upsert.execute(connection, minute_rows)
            statements.hour_upsert.execute(connection, hour_rows)
        return WriteCounts(
            raw=len(collected.raw_rows), states=len(state_rows), minute_buckets=len(minute_rows),
            hour_buckets=len(hour_rows), rejected=collected.rejected,
        )


def relocate(session: Session, device_key: str, place_path: str | None) -> int:
    """Set the place of every series of a device (the registry calls this when a device is
    assigned to another household). Returns the number of state rows changed."""
    result = session.execute(
        device_state.update()
        .where(device_state.c.device_key == device_key)
        .values(place_path=place_path)
    )
    return result.rowcount or 0


# --- retention ------------------------------------------------------------------------------

def prune(
    session: Session,
    now: datetime,
    *,
    raw_days: int,
    minute_days: int,
    hour_days: int | None = None,
    chunk_rows: int = 10_000,
    commit_between_chunks: bool = True,
) -> PruneCounts:
    """Delete raw rows older than ``raw_days``, minute rollups older than ``minute_days`` and,
    when ``hour_days`` is given, hour rollups older than that.

    Deletes ``chunk_rows`` at a time and, by default, commits after each chunk: on SQLite a
    single huge DELETE would hold the one write lock and stall ingest for its whole duration.
    Records the cut-offs in ``telemetry_watermarks`` (only ever moving forward).
    """
    raw_cutoff = to_ms(now - timedelta(days=raw_days))
    _advance_watermark(session, "raw", raw_cutoff)
    raw = _prune_raw(session, raw_cutoff, chunk_rows, commit_between_chunks)
    rollups: dict[str, int] = {"1m": 0, "1h": 0}
    for level, table, days in (("1m", readings_1m, minute_days), ("1h", readings_1h, hour_days)):
        if days is None:
            continue
        cutoff_ms = to_ms(now - timedelta(days=days))
        _advance_watermark(session, level, cutoff_ms)
        while True:
            count = _delete_chunk(session, table, table.c.bucket_ms < cutoff_ms, chunk_rows)
            rollups[level] += count
            if commit_between_chunks:
                session.commit()
            if count < chunk_rows:
                break
    return PruneCounts(raw=raw, minute=rollups["1m"], hour=rollups["1h"])


def prune_expired(session: Session, now: datetime, settings: Settings) -> PruneCounts:
    """:func:`prune` with the retention windows from the settings (``CITYWEAVE_TELEMETRY_*``)."""
    return prune(
        session, now, raw_days=settings.telemetry_raw_days,
        minute_days=settings.telemetry_minute_days, hour_days=settings.telemetry_hour_days,
    )


def _prune_raw(session: Session, cutoff_ms: int, chunk_rows: int, commit: bool) -> int:
    """Raw rows are pruned series by series, through the (series, ts_ms) index.

    ``readings`` deliberately has no index on ``ts_ms`` alone: it would cost every insert
    another B-tree (about 15 % of write throughput measured on SQLite) to speed up a daily job.
    Every series with raw rows has a ``device_state`` row (write() always upserts it, prune never
    deletes it, :func:`forget_device` deletes both), so device_state lists what to visit."""
    key = [device_state.c.device_key, device_state.c.capability, device_state.c.endpoint]
    deleted = since_commit = 0
    after: tuple[str, str, str] | None = None
    while True:
        page_query = select(*key).order_by(*key).limit(1000)
        if after is not None:
            page_query = page_query.where(tuple_(*key) > tuple_(*after))
        page = [tuple(row) for row in session.execute(page_query)]
        for device_key, capability, endpoint in page:
            condition = and_(
                readings.c.device_key == device_key, readings.c.capability == capability,
                readings.c.endpoint == endpoint, readings.c.ts_ms < cutoff_ms,
            )
            while True:
                count = _delete_chunk(session, readings, condition, chunk_rows)
                deleted += count
                since_commit += count
                if commit and since_commit >= chunk_rows:
                    session.commit()
                    since_commit = 0
                if count < chunk_rows:
                    break
        if len(page) < 1000:
            break
        after = page[-1]
    if commit:
        session.commit()
    return deleted


def forget_device(session: Session, device_key: str) -> int:
    """Delete everything stored about a device (the registry calls this when a device is
    removed for good). Returns the number of rows deleted."""
    total = 0
    for table in (readings, readings_1m, readings_1h, device_state):
        total += session.execute(delete(table).where(table.c.device_key == device_key)).rowcount or 0
    return total


def _delete_chunk(session: Session, table: Table, condition: ColumnElement[bool], limit: int) -> int:
    """DELETE at most ``limit`` rows matching ``condition``.

    Neither backend has a portable ``DELETE ... LIMIT``, so a bounded set of row identities is
    selected first: the primary key for keyed tables (row-value ``IN``, SQLite >= 3.15 and
    PostgreSQL), the physical address for ``readings``, which has no key (SQLite ``rowid``,
    PostgreSQL ``ctid``)."""
    key = list(table.primary_key.columns)
    if key:
        chosen = select(*key).where(condition).limit(limit)
        predicate: ColumnElement[bool] = tuple_(*key).in_(chosen)
    elif session.connection().dialect.name == "sqlite":
        rowid = literal_column("rowid")
        predicate = rowid.in_(select(rowid).select_from(table).where(condition).limit(limit))
    else:
        ctid = literal_column("ctid")
        chosen_ctids = select(ctid).select_from(table).where(condition).limit(limit)
        # = ANY(ARRAY(...)) lets PostgreSQL fetch the rows by TID instead of a hash join.
        predicate = ctid == func.any(func.array(chosen_ctids.scalar_subquery()))
    result = session.execute(delete(table).where(predicate))
    return result.rowcount or 0


def _advance_watermark(session: Session, level: str, cutoff_ms: int) -> None:
    stmt = _insert_for(session.connection().dialect.name)(telemetry_watermarks).values(
        level=level, pruned_before_ms=cutoff_ms
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[telemetry_watermarks.c.level],
        set_={"pruned_before_ms": _larger(stmt.excluded.pruned_before_ms,
                                          telemetry_watermarks.c.pruned_before_ms)},
    )
    session.execute(stmt)
