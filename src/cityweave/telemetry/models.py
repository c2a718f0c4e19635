"""Telemetry tables: latest state per series, the raw time series, per-minute and per-hour rollups.

A *series* is one (device_key, capability, endpoint). ``endpoint`` is ``''`` when the device has
only one, never NULL, so it can be part of a primary key on SQLite and PostgreSQL alike.

How values are stored (the same in every table):

====================  ===========  ===============================================
value                 ``num``      ``text``
====================  ===========  ===============================================
number (int/float)    the number   NULL
boolean               1.0 / 0.0    NULL  (so sum = "times true", avg = share true)
enum / string         NULL         the string
object (dict/list)    NULL         compact JSON, keys sorted
None ("unknown")      NULL         NULL  (kept raw and as state, skipped by rollups)
====================  ===========  ===============================================

Booleans live in ``num`` because then one rollup layout (count, min, max, sum, last) answers both
"average temperature" and "how often was the door opened". Which of the four a series holds is
recorded once per series in ``device_state.value_type`` rather than in every raw row.

Time in the time-series tables is an integer, **milliseconds since the Unix epoch (UTC)**: rows
stay narrow, writes skip datetime conversion, and bucket arithmetic (``ts_ms // width``) is plain
integer division that SQLite and PostgreSQL evaluate identically. ``device_state`` keeps a real
``UTCDateTime`` because people and APIs read it.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, String, Table, Text

from cityweave.db.base import Base, UTCDateTime

__all__ = [
    "ENDPOINT_NONE", "PLACE_PATH_TYPE", "device_state", "readings", "readings_1h", "readings_1m",
    "rollup_tables", "telemetry_watermarks",
]

ENDPOINT_NONE = ""

# Prefix matches ("every device inside this building") are written as a range
# (path >= prefix AND path < prefix-successor). That range is only a prefix match under a
# byte-wise collation: SQLite's default BINARY is one; on PostgreSQL we ask for "C" explicitly,
# which also lets the plain B-tree index serve the range whatever the database's locale is.
PLACE_PATH_TYPE = String(600).with_variant(String(600, collation="C"), "postgresql")


def _series_columns() -> list[Column]:  # type: ignore[type-arg]
    return [
        Column("device_key", String(128), nullable=False),
        Column("capability", String(64), nullable=False),
        Column("endpoint", String(64), nullable=False),
    ]


device_state = Table(
    "device_state",
    Base.metadata,
    Column("device_key", String(128), primary_key=True),
    Column("capability", String(64), primary_key=True),
    Column("endpoint", String(64), primary_key=True),
    Column("place_path", PLACE_PATH_TYPE, nullable=True),
    Column("value_type", String(8), nullable=False),  # bool | number | text | object | null
    Column("num", Float, nullable=True),
    Column("text", Text, nullable=True),
    Column("unit", String(32), nullable=True),
    Column("quality", String(16), nullable=False),
    Column("ts", UTCDateTime, nullable=False),  # when the device measured it
    Column("updated_at", UTCDateTime, nullable=False),  # when we stored it
    Index("ix_device_state_place_path", "place_path"),
    sqlite_with_rowid=False,
)

# No primary key and no surrogate id on purpose: the raw table is the one that grows by tens of
# thousands of rows a second, and every extra column or index is paid on each of them. SQLite
# gives it a rowid; PostgreSQL a heap. Repeats at the same timestamp are legitimate (events).
readings = Table(
    "readings",
    Base.metadata,
    *_series_columns(),
    Column("ts_ms", BigInteger, nullable=False),
    Column("num", Float, nullable=True),
    Column("text", Text, nullable=True),
    Column("quality", String(16), nullable=False),
    # The only index: range scans of one series. Retention walks it series by series rather
    # than paying a second index (on ts_ms) on every insert; see store._prune_raw.
    Index("ix_readings_series_ts", "device_key", "capability", "endpoint", "ts_ms"),
)


def _rollup_table(name: str) -> Table:
    """count/min/max/sum/last of one series over one bucket; ``bucket_ms`` is its start.

    WITHOUT ROWID on SQLite (as ``device_state``): rows are looked up and updated by their
    primary key on every batch, and a clustered key makes that one B-tree instead of two."""
    return Table(
        name,
        Base.metadata,
        Column("device_key", String(128), primary_key=True),
        Column("capability", String(64), primary_key=True),
        Column("endpoint", String(64), primary_key=True),
        Column("bucket_ms", BigInteger, primary_key=True),
        Column("count", Integer, nullable=False),  # every non-None value, numeric or not
        Column("num_min", Float, nullable=True),
        Column("num_max", Float, nullable=True),
        Column("num_sum", Float, nullable=True),  # booleans: the number of true values
        Column("last_ts_ms", BigInteger, nullable=False),  # decides "last" across batches
        Column("last_num", Float, nullable=True),
        Column("last_text", Text, nullable=True),
        Index(f"ix_{name}_bucket_ms", "bucket_ms"),
        sqlite_with_rowid=False,
    )


readings_1m = _rollup_table("readings_1m")
readings_1h = _rollup_table("readings_1h")

# level ("raw", "1m", "1h") -> everything before pruned_before_ms has been deleted. series()
# reads it so that it never answers an old range from a table that no longer holds it.
telemetry_watermarks = Table(
    "telemetry_watermarks",
    Base.metadata,
    Column("level", String(8), primary_key=True),
    Column("pruned_before_ms", BigInteger, nullable=False),
)

MINUTE_MS = 60_000
HOUR_MS = 3_600_000


def rollup_tables() -> dict[int, Table]:
    """Rollup tables by bucket width in milliseconds."""
    return {MINUTE_MS: readings_1m, HOUR_MS: readings_1h}
