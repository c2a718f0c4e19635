"""The registry as the telemetry sink's ``PlaceLookup``: device key -> the device's place path.

Implements ``cityweave.telemetry.sink.PlaceLookup`` (structurally). One indexed query per ingest
batch, in the batch's own session, so a device claimed a moment ago gets its place at once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityweave.devices.registry.models import Device

_CHUNK = 500  # keeps the IN list well under every driver's parameter limit


class RegistryPlaces:
    def place_paths(self, session: Session, device_keys: Collection[str]) -> Mapping[str, str]:
        if session is None or not device_keys:
            return {}
        keys = sorted(device_keys)
        found: dict[str, str] = {}
        for index in range(0, len(keys), _CHUNK):
            rows = session.execute(select(Device.id, Device.place_path).where(
                Device.id.in_(keys[index:index + _CHUNK]), Device.place_path.is_not(None)))
            found.update({row.id: row.place_path for row in rows})
        return found
