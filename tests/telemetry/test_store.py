"""TelemetryStore: batch writes, latest state, place queries, rollups, retention (both backends)."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from cityweave.context import AppContext
from cityweave.devices.reading import Quality, Reading
from cityweave.places.models import Place
from cityweave.telemetry import query
from cityweave.telemetry.models import (
    HOUR_MS,
    MINUTE_MS,
    device_state,
    readings,
    readings_1h,
    readings_1m,
    telemetry_watermarks,
)
from cityweave.telemetry.sink import TelemetrySink
from cityweave.telemetry.store import TelemetryStore, forget_device, prune, prune_expired, relocate
from cityweave.telemetry.values import to_ms
from tests.telemetry.support import T0, at, brute_force, raw_rows, reading


def write(ctx: AppContext, batch: list[Reading], paths: dict[str, str] | None = None):
    with ctx.db.session() as session:
        return TelemetryStore(ctx.clock).write(session, batch, paths or {})


def count(ctx: AppContext, table) -> int:
    with ctx.db.session() as session:
        return session.execute(select(func.count()).select_from(table)).scalar_one()


def test_batch_of_mixed_value_types_round_trips(ctx: AppContext) -> None:
    batch = [
        reading("plug-1", "on_off", True, 1),
        reading("plug-1", "power_w", 1234.5, 1, unit="W"),
        reading("plug-1", "energy_kwh", 7, 1, unit="kWh"),  # an int comes back as a float
        reading("ac-1", "mode", "cool", 2),
        reading("bulb-1", "color", {"h": 120, "s": 80}, 3),
        reading("sw-2", "on_off", False, 4, endpoint="l2"),
        reading("sw-2", "on_off", True, 4, endpoint="l1"),
        reading("sensor-1", "temperature", None, 5),  # "unknown": kept raw and as state
        reading("sensor-1", "humidity", math.nan, 5),  # refused, not stored
        Reading("sensor-1", "pm2_5", 12.0, at(6), unit="µg/m³", quality=Quality.UNCERTAIN),
    ]
    counts = write(ctx, batch, {"plug-1": "/tc/"})
    assert (counts.raw, counts.states, counts.rejected) == (9, 9, 1)
    assert count(ctx, readings) == 9

    with ctx.db.session() as session:
        state = {(v.device_key, v.capability, v.endpoint): v for v in
                 [*query.latest_for_device(session, "plug-1"), *query.latest_for_device(session, "ac-1"),
                  *query.latest_for_device(session, "bulb-1"), *query.latest_for_device(session, "sw-2"),
                  *query.latest_for_device(session, "sensor-1")]}
    assert state["plug-1", "on_off", None].value is True
    assert state["plug-1", "power_w", None].value == 1234.5
    assert state["plug-1", "power_w", None].unit == "W"
    assert state["plug-1", "power_w", None].place_path == "/tc/"
    assert state["plug-1", "energy_kwh", None].value == 7.0
    assert state["ac-1", "mode", None].value == "cool"
    assert state["bulb-1", "color", None].value == {"h": 120, "s": 80}
    assert state["sw-2", "on_off", "l1"].value is True
    assert state["sw-2", "on_off", "l2"].value is False
    assert state["sensor-1", "temperature", None].value is None
    assert state["sensor-1", "pm2_5", None].quality == "uncertain"
    assert state["ac-1", "mode", None].timestamp == at(2)
    assert ("sensor-1", "humidity", None) not in state
    assert state["plug-1", "on_off", None].updated_at == ctx.clock.now()


def test_latest_state_is_the_newest_reading_whatever_the_arrival_order(ctx: AppContext) -> None:
    write(ctx, [reading("d", "temperature", 21.0, 10.5)])
    # A late message with an older reading must not replace the state...
    write(ctx, [reading("d", "temperature", 19.0, 10)])
    # ...inside one batch the newest wins, not the last in the list...
    write(ctx, [reading("d", "humidity", 50.0, 30), reading("d", "humidity", 40.0, 20)])
    # ...and a whole second after a fractional one compares as later (text timestamps on SQLite).
    write(ctx, [reading("d", "temperature", 23.0, 11)])
    write(ctx, [reading("d", "temperature", 22.0, 10.999)])
    with ctx.db.session() as session:
        state = {v.capability: v for v in query.latest_for_device(session, "d")}
    assert (state["temperature"].value, state["temperature"].timestamp) == (23.0, at(11))
    assert (state["humidity"].value, state["humidity"].timestamp) == (50.0, at(30))
    # Every reading is still in the raw series, late or not.
    assert count(ctx, readings) == 6


def test_place_of_a_device_is_kept_when_a_batch_does_not_know_it_and_moves_with_relocate(ctx: AppContext) -> None:
    write(ctx, [reading("d", "on_off", True, 1)], {"d": "/tc/tc-d1/"})
    write(ctx, [reading("d", "on_off", False, 2)])  # no place known to this ingest worker
    with ctx.db.session() as session:
        assert [v.place_path for v in query.latest_for_device(session, "d")] == ["/tc/tc-d1/"]
        assert relocate(session, "d", "/oc/") == 1
    with ctx.db.session() as session:
        assert [v.device_key for v in query.latest_for_place(session, "/oc/")] == ["d"]
        assert query.latest_for_place(session, "/tc/") == []


def test_latest_for_place_returns_exactly_the_devices_inside_the_place(ctx: AppContext) -> None:
    with ctx.db.session() as session:
        paths = dict(session.execute(select(Place.id, Place.path)).all())
    homes = {"ca-b1-u1-101": "h101", "ca-b1-u1-102": "h102", "ca-b2-u1-201": "h201", "cb-b1-u1-101": "cb101"}
    devices = {f"{short}-{n}": paths[home] for home, short in homes.items() for n in range(3)}
    # A look-alike: a path that is a string prefix match of building ca-b1 but not inside it.
    devices["impostor"] = paths["ca-b1"][:-1] + "x/ca-b1x-u1/"
    batch = [reading(d, cap, 1.0, 5) for d in devices for cap in ("temperature", "on_off")]
    write(ctx, batch, devices)

    def devices_in(place_id: str) -> set[str]:
        with ctx.db.session() as session:
            return {v.device_key for v in query.latest_for_place(session, paths[place_id])}

    assert devices_in("ca-b1-u1-101") == {"h101-0", "h101-1", "h101-2"}
    assert devices_in("ca-b1") == {f"{h}-{n}" for h in ("h101", "h102") for n in range(3)}
    assert devices_in("ca") == {f"{h}-{n}" for h in ("h101", "h102", "h201") for n in range(3)} | {"impostor"}
    assert "impostor" in devices_in("ca-g1") and "impostor" not in devices_in("ca-b1")
    assert devices_in("oc") == set()
    with ctx.db.session() as session:
        household = query.latest_for_place(session, paths["ca-b1-u1-101"])
    assert len(household) == 6  # two capabilities of three devices, one row each


def _random_batches(seed: int) -> list[list[Reading]]:
    """Three hours of four series with unique timestamps, shuffled into batches of random sizes
    so buckets are hit by several batches and out of order."""
    rng = random.Random(seed)
    span_ms = 3 * HOUR_MS + 17 * MINUTE_MS
    items: list[Reading] = []
    for device in ("m1", "m2"):
        for ts in rng.sample(range(span_ms), 700):
            items.append(Reading(device, "temperature", round(rng.uniform(-10, 40), 3), T0 + timedelta(milliseconds=ts)))
        for ts in rng.sample(range(span_ms), 300):
            items.append(Reading(device, "contact", rng.random() < 0.3, T0 + timedelta(milliseconds=ts)))
    for ts in rng.sample(range(span_ms), 200):
        items.append(Reading("m1", "mode", rng.choice(["auto", "cool", "heat"]), T0 + timedelta(milliseconds=ts), endpoint="ac"))
    rng.shuffle(items)
    batches, i = [], 0
    while i < len(items):
        size = rng.randint(1, 400)
        batches.append(items[i:i + size])
        i += size
    return batches


@pytest.mark.parametrize(("table", "width"), [(readings_1m, MINUTE_MS), (readings_1h, HOUR_MS)])
def test_rollups_equal_a_brute_force_aggregation_of_the_raw_rows(ctx: AppContext, table, width: int) -> None:
    for batch in _random_batches(seed=20261122):
        write(ctx, batch)
    with ctx.db.session() as session:
        expected = brute_force(raw_rows(session), 0, width)
        stored = {
            (r.device_key, r.capability, r.endpoint, r.bucket_ms): r
            for r in session.execute(select(table))
        }
    assert len(expected) > (3 if width == HOUR_MS else 150)
    assert stored.keys() == expected.keys()
    for key, want in expected.items():
        got = stored[key]
        assert got.count == want.count, key
        assert got.num_min == want.min and got.num_max == want.max, key
        assert got.num_sum == pytest.approx(want.sum), key
        assert (got.last_ts_ms, got.last_num, got.last_text) == (want.last_ts, want.last_num, want.last_text), key
    contact = [r for k, r in stored.items() if k[1] == "contact"]
    assert sum(r.num_sum for r in contact) == sum(1 for b in _random_batches(20261122) for x in b
                                                  if x.capability == "contact" and x.value is True)


def test_prune_removes_only_rows_past_their_retention(ctx: AppContext) -> None:
    day = 86_400
    write(ctx, [reading("d", "temperature", float(n), n * day) for n in range(12)])
    write(ctx, [reading("e", "on_off", n % 2 == 0, n * day, endpoint="l1") for n in range(12)])
    now = at(12 * day)
    with ctx.db.session() as session:
        counts = prune(session, now, raw_days=3, minute_days=6, hour_days=None, chunk_rows=2)
    # raw keeps days 9, 10, 11 (ts >= now - 3 days); minute rollups keep 6..11; hours keep all.
    assert (counts.raw, counts.minute, counts.hour) == (18, 12, 0)
    with ctx.db.session() as session:
        kept = session.execute(select(readings.c.device_key, readings.c.ts_ms)).all()
        assert sorted(kept) == sorted((d, to_ms(at(n * day))) for d in "de" for n in (9, 10, 11))
        minute_buckets = sorted(r for (r,) in session.execute(select(readings_1m.c.bucket_ms)))
        assert minute_buckets == sorted(to_ms(at(n * day)) for n in range(6, 12) for _ in "de")
        assert session.execute(select(func.count()).select_from(readings_1h)).scalar_one() == 24
        marks = dict(session.execute(select(telemetry_watermarks.c.level, telemetry_watermarks.c.pruned_before_ms)).all())
    assert marks == {"raw": to_ms(now - timedelta(days=3)), "1m": to_ms(now - timedelta(days=6))}
    # The state is not telemetry history: pruning never removes it.
    assert count(ctx, device_state) == 2

    with ctx.db.session() as session:
        counts = prune(session, now, raw_days=30, minute_days=30, hour_days=10)
        assert (counts.raw, counts.minute, counts.hour) == (0, 0, 4)
        marks = dict(session.execute(select(telemetry_watermarks.c.level, telemetry_watermarks.c.pruned_before_ms)).all())
    # A longer window later does not move a watermark back: that data is gone.
    assert marks["raw"] == to_ms(now - timedelta(days=3))


def test_forget_device_deletes_its_rows_and_nothing_else(ctx: AppContext) -> None:
    write(ctx, [reading(d, "temperature", 1.0, s) for d in ("gone", "kept") for s in (1, 90, 4000)])
    with ctx.db.session() as session:
        assert forget_device(session, "gone") == 3 + 3 + 2 + 1  # raw, minutes, hours, state
    for table, rows in ((readings, 3), (readings_1m, 3), (readings_1h, 2), (device_state, 1)):
        with ctx.db.session() as session:
            assert [d for (d,) in session.execute(select(table.c.device_key))] == ["kept"] * rows


def test_sink_writes_a_pipeline_batch_with_the_places_it_is_given(ctx: AppContext) -> None:
    class Places:
        def place_paths(self, session, device_keys):
            assert set(device_keys) == {"a", "b"}
            return {"a": "/tc/"}

    sink = TelemetrySink(TelemetryStore(ctx.clock), Places())
    with ctx.db.session() as session:
        sink.write_batch(session, [reading("a", "on_off", True, 1), reading("b", "on_off", False, 1)])
        sink.write_batch(session, [])
    assert sink.last is not None and sink.last.raw == 2
    with ctx.db.session() as session:
        assert [v.device_key for v in query.latest_for_place(session, "/tc/")] == ["a"]


def test_prune_expired_uses_the_configured_windows(ctx: AppContext) -> None:
    write(ctx, [reading("d", "temperature", 1.0, 0), reading("d", "temperature", 2.0, 40 * 86_400)])
    settings = ctx.settings.model_copy(update={"telemetry_raw_days": 30, "telemetry_minute_days": 35})
    with ctx.db.session() as session:
        counts = prune_expired(session, at(41 * 86_400), settings)
    assert (counts.raw, counts.minute, counts.hour) == (1, 1, 0)
