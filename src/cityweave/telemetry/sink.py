"""The telemetry store as the ingest pipeline's ``ReadingSink`` (``ingest/sinks.py``).

The sink needs each device's place path for ``device_state.place_path``; who knows it (the device
registry) is plugged in as a :class:`PlaceLookup`, so telemetry does not depend on the registry.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy.orm import Session

from cityweave.devices.reading import Reading
from cityweave.telemetry.store import TelemetryStore, WriteCounts


class PlaceLookup(Protocol):
    def place_paths(self, session: Session, device_keys: Collection[str]) -> Mapping[str, str]:
        """device_key -> place path, for those of ``device_keys`` that have a place."""
        ...


class NoPlaces:
    """For devices nobody has placed yet, and for tests: every place stays as it is."""

    def place_paths(self, session: Session, device_keys: Collection[str]) -> Mapping[str, str]:
        return {}


class TelemetrySink:
    """``write_batch`` for the ingest pipeline: one TelemetryStore.write per batch, in the
    pipeline's transaction. ``last`` holds the counts of the latest batch (for metrics)."""

    def __init__(self, store: TelemetryStore, places: PlaceLookup | None = None) -> None:
        self.store = store
        self.places = places or NoPlaces()
        self.last: WriteCounts | None = None

    def write_batch(self, session: Any, readings: Sequence[Reading]) -> None:
        if not readings:
            return
        paths = self.places.place_paths(session, {r.device_key for r in readings})
        self.last = self.store.write(session, readings, paths)
