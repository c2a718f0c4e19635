"""Live device values: a device's latest state and series, a household's or building's state.

Access follows the device registry (``devices/registry/state.py``): a device the caller cannot
see is 404; a place's state lists only the devices the caller may read.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from cityweave.api.deps import CallDep
from cityweave.api.problems import Problem
from cityweave.devices.registry import state
from cityweave.telemetry.query import MAX_POINTS, LatestValue

router = APIRouter(
    prefix="/api/v1",
    tags=["telemetry"],
    responses={401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem}, 422: {"model": Problem}},
)


class ValueOut(BaseModel):
    device_id: str
    capability: str
    endpoint: str | None
    value: Any
    value_type: str
    unit: str | None
    quality: str
    timestamp: datetime
    updated_at: datetime


class DeviceStateOut(BaseModel):
    device_id: str
    values: list[ValueOut]


class PlaceStateOut(BaseModel):
    place_id: str
    values: list[ValueOut]


class BucketOut(BaseModel):
    start: datetime
    count: int
    min: float | None
    max: float | None
    avg: float | None
    sum: float | None
    last: Any


class SeriesOut(BaseModel):
    device_id: str
    capability: str
    endpoint: str | None
    source: str
    bucket_seconds: float
    value_type: str | None
    buckets: list[BucketOut]


def _values(values: list[LatestValue]) -> list[ValueOut]:
    return [ValueOut(device_id=v.device_key, capability=v.capability, endpoint=v.endpoint, value=v.value,
                     value_type=v.value_type, unit=v.unit, quality=v.quality, timestamp=v.timestamp,
                     updated_at=v.updated_at) for v in values]


@router.get("/devices/{device_id}/state", response_model=DeviceStateOut)
def device_state(call: CallDep, device_id: Annotated[str, Path(max_length=40)]) -> DeviceStateOut:
    """The newest value of every capability the device reported."""
    device, values = state.device_state(call, device_id)
    return DeviceStateOut(device_id=device.id, values=_values(values))


@router.get("/devices/{device_id}/telemetry", response_model=SeriesOut)
def device_telemetry(
    call: CallDep,
    device_id: Annotated[str, Path(max_length=40)],
    capability: Annotated[str, Query(min_length=1, max_length=64)],
    endpoint: Annotated[str | None, Query(max_length=64)] = None,
    start: Annotated[datetime | None, Query(description="with a time zone; default: 24 h before end")] = None,
    end: Annotated[datetime | None, Query(description="with a time zone; default: now")] = None,
    max_points: Annotated[int, Query(ge=1, le=MAX_POINTS)] = 500,
) -> SeriesOut:
    """One capability over ``[start, end)`` in at most ``max_points`` buckets, read from raw
    readings or minute/hour rollups, whichever covers the range in few enough rows."""
    series = state.device_series(call, device_id, capability, endpoint, start, end, max_points)
    return SeriesOut(
        device_id=device_id, capability=capability, endpoint=endpoint, source=series.source,
        bucket_seconds=series.bucket_width / timedelta(seconds=1), value_type=series.value_type,
        buckets=[BucketOut(start=b.start, count=b.count, min=b.min, max=b.max, avg=b.avg, sum=b.sum, last=b.last)
                 for b in series.buckets],
    )


@router.get("/places/{place_id}/state", response_model=PlaceStateOut)
def place_state(call: CallDep, place_id: Annotated[str, Path(max_length=64)]) -> PlaceStateOut:
    """Every latest value of the devices inside a household, a building or a community that the
    caller may read (a resident: their own household's)."""
    place, values = state.place_state(call, place_id)
    return PlaceStateOut(place_id=place.id, values=_values(values))
