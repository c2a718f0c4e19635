"""StateChangeFeed: which readings a live page hears of, and when (after the commit only)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from cityweave.devices.reading import Reading
from cityweave.devices.registry.live import DeviceStateChange, StateChangeFeed

T0 = datetime(2026, 1, 1, 20, 0, tzinfo=UTC)
HOME = "/c/ca-b1-u1-101/"


class Places:
    """Only ``lamp`` and ``meter`` are placed; ``stray`` (discovered, unclaimed) is not."""

    def place_paths(self, session: object, device_keys: Collection[str]) -> Mapping[str, str]:
        return {key: HOME for key in device_keys if key in ("lamp", "meter")}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reading(device: str, capability: str, value: object, seconds: int = 0) -> Reading:
    return Reading(device, capability, value, T0 + timedelta(seconds=seconds))


@pytest.fixture
def feed() -> tuple[StateChangeFeed, list[DeviceStateChange], Clock]:
    got: list[DeviceStateChange] = []
    clock = Clock()
    return StateChangeFeed(Places(), got.append, numeric_every_s=30, monotonic=clock), got, clock


def test_discrete_changes_go_at_once_and_repeats_do_not(feed) -> None:
    sink, got, _ = feed
    sink.write_batch(None, [reading("lamp", "on_off", False), reading("lamp", "on_off", True, 1)])
    assert [c.values for c in got] == [{"on_off": {"value": True, "unit": None, "at": (T0 + timedelta(seconds=1)).isoformat()}}]
    assert got[0].device_id == "lamp" and got[0].place_path == HOME
    sink.write_batch(None, [reading("lamp", "on_off", True, 2)])
    assert len(got) == 1  # nothing changed
    sink.write_batch(None, [reading("lamp", "on_off", False, 3)])
    assert got[-1].values["on_off"]["value"] is False


def test_numbers_are_announced_at_most_every_interval(feed) -> None:
    sink, got, clock = feed
    sink.write_batch(None, [reading("meter", "power_w", 100.0)])
    clock.now = 10
    sink.write_batch(None, [reading("meter", "power_w", 120.0, 10)])
    assert [c.values["power_w"]["value"] for c in got] == [100.0]
    clock.now = 31
    sink.write_batch(None, [reading("meter", "power_w", 130.0, 31)])
    assert [c.values["power_w"]["value"] for c in got] == [100.0, 130.0]


def test_unplaced_devices_are_not_announced(feed) -> None:
    sink, got, _ = feed
    sink.write_batch(None, [reading("stray", "on_off", True)])
    assert got == []


def test_only_a_committed_batch_is_announced(ctx, feed) -> None:
    sink, got, _ = feed
    with ctx.db.session() as session:
        session.execute(text("SELECT 1"))
        sink.write_batch(session, [reading("lamp", "on_off", True)])
        assert got == []
        session.rollback()
    assert got == []
    # The retried batch is still a change (the rolled-back one was never announced).
    with ctx.db.session() as session:
        session.execute(text("SELECT 1"))
        sink.write_batch(session, [reading("lamp", "on_off", True)])
        session.commit()
    assert [c.values["on_off"]["value"] for c in got] == [True]
