"""series(): source choice, the max_points bound, downsampled values against brute force,
input validation (both backends)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from cityweave.context import AppContext
from cityweave.devices.reading import Reading
from cityweave.errors import Invalid
from cityweave.telemetry import query
from cityweave.telemetry.models import HOUR_MS, MINUTE_MS
from cityweave.telemetry.query import SourceLimits
from cityweave.telemetry.store import TelemetryStore, prune
from cityweave.telemetry.values import to_ms
from tests.telemetry.support import T0, at, brute_force, raw_rows

# Small limits so that a test-sized data set crosses every threshold.
LIMITS = SourceLimits(raw_rows=300, minute_rows=240)
DAYS = 3


@pytest.fixture
def filled(ctx: AppContext) -> AppContext:
    """Three days: a temperature every ~50 s (numeric) and a door contact every ~7 min (bool),
    irregular, written in batches of 1000."""
    rng = random.Random(7)
    items: list[Reading] = []
    for ts in sorted(rng.sample(range(0, DAYS * 86_400_000, 1000), DAYS * 1728)):
        items.append(Reading("s1", "temperature", round(rng.gauss(22, 4), 2), T0 + timedelta(milliseconds=ts)))
    for ts in sorted(rng.sample(range(0, DAYS * 86_400_000, 1000), DAYS * 200)):
        items.append(Reading("s1", "contact", rng.random() < 0.4, T0 + timedelta(milliseconds=ts)))
    items.append(Reading("s1", "mode", "cool", at(60)))
    items.append(Reading("s1", "mode", "heat", at(120)))
    store = TelemetryStore(ctx.clock)
    for i in range(0, len(items), 1000):
        with ctx.db.session() as session:
            store.write(session, items[i:i + 1000], {})
    return ctx


def run(ctx: AppContext, capability: str, start: datetime, end: datetime, max_points: int = 500,
        limits: SourceLimits = LIMITS) -> query.Series:
    with ctx.db.session() as session:
        return query.series(session, "s1", capability, None, start, end, max_points, limits=limits)


def check_against_raw(ctx: AppContext, result: query.Series, capability: str, start: datetime, end: datetime) -> None:
    """Every bucket equals the brute-force aggregate of the raw rows it covers."""
    resolution = {"raw": 1, "1m": MINUTE_MS, "1h": HOUR_MS}[result.source]
    start_ms, end_ms = to_ms(start), to_ms(end)
    origin = start_ms - start_ms % resolution
    end_ms = -(-end_ms // resolution) * resolution  # a rollup bucket starting before end counts whole
    width = result.bucket_width // timedelta(milliseconds=1)
    with ctx.db.session() as session:
        expected = {key[3]: value for key, value in brute_force(raw_rows(session), origin, width, end_ms).items()
                    if key[1] == capability}
    got = {to_ms(b.start): b for b in result.buckets}
    assert got.keys() == expected.keys()
    for start_key, want in expected.items():
        bucket = got[start_key]
        assert bucket.count == want.count
        assert bucket.min == want.min and bucket.max == want.max
        assert bucket.sum == pytest.approx(want.sum)
        assert bucket.avg == pytest.approx(want.sum / want.count)
        assert bucket.last == (want.last_num if capability == "temperature" else want.last_num == 1.0)


def test_source_follows_the_range(filled: AppContext) -> None:
    # The temperature has ~72 raw rows an hour. 3 hours: ~216 <= 300 -> raw.
    assert run(filled, "temperature", at(3600), at(4 * 3600)).source == "raw"
    # 8 hours: ~576 raw rows > 300, and 480 minutes > 240 -> hours.
    assert run(filled, "temperature", at(0), at(8 * 3600)).source == "1h"
    # 3.5 hours with at most 100 raw rows: ~252 > 100, 210 minutes <= 240 -> minutes.
    assert run(filled, "temperature", at(0), at(3.5 * 3600), limits=SourceLimits(raw_rows=100, minute_rows=240)).source == "1m"
    assert run(filled, "temperature", at(0), at(2 * 86_400)).source == "1h"
    # The sparse contact series stays raw over a whole day (~200 rows).
    assert run(filled, "contact", at(0), at(86_400)).source == "raw"


@pytest.mark.parametrize(("capability", "start_s", "end_s"), [
    ("temperature", 1234.567, 3 * 3600 + 89.1),  # raw, unaligned
    ("temperature", 0, DAYS * 86_400),  # hour rollups
    ("temperature", 1800, DAYS * 86_400 - 1),  # hour rollups, unaligned
    ("contact", 0, DAYS * 86_400),  # booleans over rollups
    ("contact", 100, 86_400 - 100),  # booleans raw
])
def test_downsampled_buckets_equal_brute_force_and_respect_max_points(
    filled: AppContext, capability: str, start_s: float, end_s: float
) -> None:
    for max_points in (1, 7, 60, 500, 5000):
        result = run(filled, capability, at(start_s), at(end_s), max_points)
        assert 0 < len(result.buckets) <= max_points
        # max_points buckets of that width reach the end: nothing in range falls off the grid
        assert at(start_s) + result.bucket_width * max_points >= at(end_s)
        check_against_raw(filled, result, capability, at(start_s), at(end_s))


def test_minute_rollups_downsample_like_raw(filled: AppContext) -> None:
    limits = SourceLimits(raw_rows=100, minute_rows=240)
    for max_points in (1, 13, 100, 500):
        result = run(filled, "temperature", at(3600 + 30), at(3600 * 4.5), max_points, limits)
        assert result.source == "1m"
        assert 0 < len(result.buckets) <= max_points
        assert result.bucket_width % timedelta(minutes=1) == timedelta(0)
        check_against_raw(filled, result, "temperature", at(3600 + 30), at(3600 * 4.5))


def test_boolean_and_text_buckets(filled: AppContext) -> None:
    day = run(filled, "contact", at(0), at(DAYS * 86_400), max_points=DAYS)
    assert [b.start for b in day.buckets] == [T0 + timedelta(days=n) for n in range(DAYS)]
    assert all(isinstance(b.last, bool) for b in day.buckets)
    assert all(0 <= b.sum <= b.count and b.avg == pytest.approx(b.sum / b.count) for b in day.buckets)
    assert day.value_type == "bool"
    text = run(filled, "mode", at(0), at(3600), max_points=1)
    assert [(b.count, b.last, b.min, b.avg) for b in text.buckets] == [(2, "heat", None, None)]


def test_a_pruned_level_is_not_used_for_ranges_it_no_longer_holds(filled: AppContext) -> None:
    with filled.db.session() as session:
        prune(session, at(DAYS * 86_400), raw_days=1, minute_days=2)
    early = run(filled, "contact", at(0), at(3600))
    assert early.source == "1h"  # raw (day 1) and minutes (day 1) are gone for this range
    assert sum(b.count for b in early.buckets) > 0
    assert run(filled, "contact", at(86_400 + 60), at(86_400 + 3600)).source == "1m"
    assert run(filled, "contact", at(2 * 86_400 + 60), at(2 * 86_400 + 3600)).source == "raw"


def test_empty_and_unknown_series(filled: AppContext) -> None:
    result = run(filled, "temperature", at(-86_400), at(-3600))
    assert result.buckets == []
    with filled.db.session() as session:
        nothing = query.series(session, "nope", "temperature", "x", at(0), at(60))
    assert nothing.buckets == [] and nothing.value_type is None


@pytest.mark.parametrize(("start", "end", "max_points", "pointers"), [
    (at(10), at(10), 500, ["/end"]),
    (at(10), at(5), 500, ["/end"]),
    (at(0), at(0) + timedelta(days=5 * 366 + 1), 500, ["/end"]),
    (at(0), at(60), 0, ["/max_points"]),
    (at(0), at(60), 5001, ["/max_points"]),
    (at(0), at(60), True, ["/max_points"]),
    (datetime(2026, 1, 1), at(60), 500, ["/start"]),  # naive
    (datetime(2026, 1, 1), datetime(2026, 1, 2), 0, ["/start", "/end", "/max_points"]),
])
def test_bad_series_arguments_are_invalid_with_pointers(
    ctx: AppContext, start: datetime, end: datetime, max_points: int, pointers: list[str]
) -> None:
    with ctx.db.session() as session, pytest.raises(Invalid) as caught:
        query.series(session, "d", "temperature", None, start, end, max_points)
    assert [e.pointer for e in caught.value.errors] == pointers


def test_place_path_must_be_a_path(ctx: AppContext) -> None:
    with ctx.db.session() as session, pytest.raises(Invalid) as caught:
        query.latest_for_place(session, "/tc")
    assert caught.value.errors[0].pointer == "/place_path"


def test_the_longest_range_at_the_most_points_is_accepted(ctx: AppContext) -> None:
    start = datetime(2021, 1, 1, tzinfo=UTC)
    with ctx.db.session() as session:
        result = query.series(session, "d", "temperature", None, start, start + query.MAX_RANGE, 5000)
    assert result.buckets == [] and result.bucket_width >= query.MAX_RANGE / 5000
