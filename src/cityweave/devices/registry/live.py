"""Live device states: what changed in a committed ingest batch, announced on the event bus.

Pages that show devices (the resident's home, the console) keep themselves current from these
announcements instead of polling. At thousands of readings a second, announcing every reading
would drown the push channel in values nobody is looking at, so :class:`StateChangeFeed`
announces only *changes*, per device and batch:

* a discrete value (on/off, contact, lock, mode, alarm flags) whenever it differs from the last
  one announced: a switch's echo or an opened door shows at once;
* a number (power, temperature, PM2.5) when it differs and its series was last announced at
  least ``numeric_every_s`` ago: a meter reporting every second costs one event per half-minute.

Only devices placed somewhere (claimed into a household or facility) are announced: the event's
place path is what decides who may see it. The "last announced" memory is updated after the
commit, so a batch that rolls back (and is retried) announces its changes when it does commit.
It is per process, as the announcements are: a restarted process announces each series once more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cityweave.db.engine import on_commit
from cityweave.devices.capabilities import Value
from cityweave.devices.reading import Reading
from cityweave.telemetry.sink import PlaceLookup

NUMERIC_EVERY_S = 30.0

SeriesKey = tuple[str, str, str | None]  # device key, capability, endpoint


@dataclass(frozen=True)
class DeviceStateChange:
    """The new values of one device, after the commit that stored them."""

    device_id: str
    place_path: str
    # capability (``capability@endpoint`` for a device with several endpoints) -> value, unit, at
    values: dict[str, dict[str, Any]]
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _is_number(value: Value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class StateChangeFeed:
    """An ingest ``ReadingSink`` that writes nothing: it announces the batch's changes after the
    commit with ``publish`` (``EventBus.publish`` in the runtime)."""

    def __init__(self, places: PlaceLookup, publish: Callable[[DeviceStateChange], None], *,
                 numeric_every_s: float = NUMERIC_EVERY_S, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.places = places
        self.publish = publish
        self.numeric_every_s = numeric_every_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._announced: dict[SeriesKey, tuple[Value, float]] = {}

    def _changed(self, reading: Reading, now: float) -> bool:
        last = self._announced.get((reading.device_key, reading.capability, reading.endpoint))
        if last is None:
            return True
        value, when = last
        if value == reading.value:
            return False
        return not _is_number(reading.value) or now - when >= self.numeric_every_s

    def write_batch(self, session: Any, readings: Sequence[Reading]) -> None:
        now = self._monotonic()
        newest: dict[SeriesKey, Reading] = {}
        with self._lock:
            for reading in readings:  # the batch's last reading of each series is its state
                key = (reading.device_key, reading.capability, reading.endpoint)
                held = newest.get(key)
                if held is None or reading.timestamp >= held.timestamp:
                    newest[key] = reading
            changed = [r for r in newest.values() if self._changed(r, now)]
        if not changed:
            return
        paths = self.places.place_paths(session, {r.device_key for r in changed})
        by_device: dict[str, list[Reading]] = {}
        for reading in changed:
            if reading.device_key in paths:
                by_device.setdefault(reading.device_key, []).append(reading)
        if not by_device:
            return
        events = [DeviceStateChange(device_id, paths[device_id], {
            (r.capability if r.endpoint is None else f"{r.capability}@{r.endpoint}"):
                {"value": r.value, "unit": r.unit, "at": r.timestamp.isoformat()} for r in device_readings},
            max(r.timestamp for r in device_readings)) for device_id, device_readings in by_device.items()]

        def announce() -> None:
            with self._lock:
                for device_readings in by_device.values():
                    for r in device_readings:
                        self._announced[(r.device_key, r.capability, r.endpoint)] = (r.value, now)
            for event in events:
                self.publish(event)

        if session is None:
            announce()
        else:
            on_commit(session, announce)
