"""Validated input and output shapes for the device registry (used by the API and importers)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from cityweave.devices.registry.models import CommandStatus, DeviceStatus, Protocol
from cityweave.places.schemas import PlaceId
from cityweave.schema import InputModel

Name = Annotated[str, Field(min_length=1, max_length=200)]
Text200 = Annotated[str, Field(min_length=1, max_length=200)]
Endpoint = Annotated[str, Field(min_length=1, max_length=100,
                                description="channel of a multi-part device: left, switch:0, 1, ...")]
CapabilityName = Annotated[str, Field(min_length=1, max_length=64, examples=["on_off"])]


class CapabilityRefModel(BaseModel):
    """One capability a device offers, on one endpoint."""

    model_config = ConfigDict(extra="forbid")

    capability: CapabilityName
    endpoint: Endpoint | None = None
    writable: bool = False


class CapabilityRefOut(BaseModel):
    """As stored: announcements may name endpoints longer than hand input is allowed to."""

    capability: str
    endpoint: str | None = None
    writable: bool = False


Room = Annotated[str, Field(min_length=1, max_length=64, examples=["厨房", "Living room"],
                            description="where in the home or facility the device is")]


class DeviceUpdate(InputModel):
    """Rename a device or say which room it is in. Give at least one field; ``room: null`` clears
    the room. Names and rooms are trimmed; blank text and control characters are refused."""

    name: Name | None = None
    room: Room | None = None


class DeviceClaim(InputModel):
    """Accept a discovered device into a household or a facility."""

    place_id: PlaceId
    name: Name | None = None


class DeviceRegister(InputModel):
    """A device added by hand (HTTP-only devices, or ones no bridge announces)."""

    place_id: PlaceId
    name: Name
    adapter: Annotated[str, Field(min_length=1, max_length=32)] = "native"
    address: Annotated[str, Field(min_length=1, max_length=200,
                                  description="the vendor's id; defaults to the new device id")] | None = None
    aliases: Annotated[list[Text200], Field(max_length=20)] = Field(default_factory=list)
    device_type: Annotated[str, Field(max_length=64)] | None = None
    manufacturer: Text200 | None = None
    model: Text200 | None = None
    firmware: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    protocol: Protocol = Protocol.UNKNOWN
    capabilities: Annotated[list[CapabilityRefModel], Field(max_length=200)] = Field(default_factory=list)
    profile: Annotated[dict[str, Any], Field(max_length=100)] = Field(default_factory=dict)


class CommandIn(InputModel):
    capability: CapabilityName
    value: Any = Field(description="in the capability's canonical unit: true, 50, \"locked\", {\"h\": 120, \"s\": 80}")
    endpoint: Endpoint | None = None


class DeviceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    adapter: str
    address: str
    aliases: list[str]
    name: str | None
    room: str | None = None
    device_type: str | None
    manufacturer: str | None
    model: str | None
    firmware: str | None
    protocol: Protocol
    capabilities: list[CapabilityRefOut]
    place_id: str | None
    place_path: str | None
    status: DeviceStatus
    online: bool | None
    last_seen_at: datetime | None
    claimed_at: datetime | None
    decommissioned_at: datetime | None
    created_at: datetime
    updated_at: datetime


class DeviceDetailOut(DeviceOut):
    profile: dict[str, Any] = Field(description="the adapter's profile: what it needs to decode and encode")


class DeviceCredentialOut(BaseModel):
    """A new device token. Shown once: only its hash is stored."""

    device_id: str
    token: str = Field(description="send as `Authorization: Bearer <token>` to HTTP ingest, or as the MQTT password")
    mqtt_username: str
    prefix: str
    created_at: datetime


class DeviceRegistered(BaseModel):
    device: DeviceDetailOut
    credential: DeviceCredentialOut


class CommandOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    device_id: str
    capability: str
    endpoint: str | None
    value: Any
    requested_by: str | None
    requested_by_name: str
    requested_at: datetime
    status: CommandStatus
    detail: str | None
    topic: str | None
    deadline_at: datetime | None
    completed_at: datetime | None
