"""Where decoded batches go. Small protocols, so the pipeline does not depend on the stores.

The pipeline calls each sink once per batch, inside the batch's transaction (``session`` is the
open SQLAlchemy session, or ``None`` when the pipeline runs without a database). A sink must not
commit: the pipeline commits readings, device events and delivery receipts together, which is what
makes "acknowledged to the broker" imply "stored".
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from cityweave.devices.discovery import DiscoveredDevice
from cityweave.devices.reading import AvailabilityChange, CommandAck, Reading


class ReadingSink(Protocol):
    def write_batch(self, session: Any, readings: Sequence[Reading]) -> None: ...


@dataclass
class DeviceEvents:
    """What one batch said about devices rather than about measurements."""

    discovered: list[tuple[DiscoveredDevice, datetime]] = field(default_factory=list)
    availability: list[tuple[AvailabilityChange, datetime]] = field(default_factory=list)
    seen: dict[str, datetime] = field(default_factory=dict)  # device_key -> last message time
    # Devices' replies to commands (Shelly RPC result/error, MIoT codes, native ``ack``): the
    # runtime hands them to the CommandTracker inside the batch's transaction.
    acks: list[tuple[CommandAck, datetime]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.discovered or self.availability or self.seen or self.acks)


class DeviceEventSink(Protocol):
    """Discovery, availability and last-seen go to the device registry through this."""

    def write_events(self, session: Any, events: DeviceEvents) -> None: ...


class NullSink:
    """Accepts and forgets: for throughput measurements of the transport alone."""

    def write_batch(self, session: Any, readings: Sequence[Reading]) -> None:
        return None

    def write_events(self, session: Any, events: DeviceEvents) -> None:
        return None


class MemorySink:
    """Keeps everything in lists (thread-safe): tests, simulators, the in-process demo."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.readings: list[Reading] = []
        self.events: list[DeviceEvents] = []
        self.batches = 0

    def write_batch(self, session: Any, readings: Sequence[Reading]) -> None:
        with self._lock:
            self.readings.extend(readings)
            self.batches += 1

    def write_events(self, session: Any, events: DeviceEvents) -> None:
        with self._lock:
            self.events.append(events)

    def availability(self) -> list[AvailabilityChange]:
        with self._lock:
            return [change for e in self.events for change, _ in e.availability]

    def discovered(self) -> list[DiscoveredDevice]:
        with self._lock:
            return [device for e in self.events for device, _ in e.discovered]
