"""Reading telemetry back through the registry's scope: who may see a device sees its values.

``telemetry.query`` does no access control; these functions decide which device or place path
to ask it for. A device's state and series need device READ on the device (404 otherwise). A
place's state needs place READ on the place *and* keeps only the devices the caller may read:
everybody may read the names of the places enclosing their scope (their building), but a
resident sees the values of their own household only, never the neighbours'.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from cityweave.authz.policy import Action, Resource, scope_clause
from cityweave.context import Call
from cityweave.devices.registry import service
from cityweave.devices.registry.models import Device
from cityweave.errors import FieldError, Invalid
from cityweave.places.models import Place
from cityweave.places.service import get_place
from cityweave.telemetry import query
from cityweave.telemetry.query import LatestValue, Series

DEFAULT_WINDOW = timedelta(hours=24)


def device_state(call: Call, device_id: str) -> tuple[Device, list[LatestValue]]:
    device = service.get_device(call, device_id)
    return device, query.latest_for_device(call.session, device.id)


def device_series(call: Call, device_id: str, capability: str, endpoint: str | None,
                  start: datetime | None, end: datetime | None, max_points: int) -> Series:
    """``[start, end)``, by default the 24 hours up to now (or before ``end``, or after ``start``)."""
    device = service.get_device(call, device_id)
    try:
        if end is None:
            end = start + DEFAULT_WINDOW if start is not None and start.tzinfo is not None else call.now()
        if start is None:
            start = end - DEFAULT_WINDOW
    except OverflowError as exc:
        raise Invalid([FieldError("/start", "out of range")]) from exc
    return query.series(call.session, device.id, capability, endpoint, start, end, max_points)


def place_state(call: Call, place_id: str) -> tuple[Place, list[LatestValue]]:
    place = get_place(call, place_id)
    values = query.latest_for_place(call.session, place.path)
    if not values:
        return place, []
    keys = {value.device_key for value in values}
    visible = set(call.session.execute(select(Device.id).where(
        Device.id.in_(keys), scope_clause(call.principal, Resource.DEVICE, Action.READ),
    )).scalars()) if len(keys) <= 1000 else _visible_inside(call, place.path)
    return place, [value for value in values if value.device_key in visible]


def _visible_inside(call: Call, path: str) -> set[str]:
    return set(call.session.execute(select(Device.id).where(
        Device.place_path.startswith(path, autoescape=True),
        scope_clause(call.principal, Resource.DEVICE, Action.READ),
    )).scalars())
