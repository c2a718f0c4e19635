"""Readings, and everything an adapter says about one incoming message.

A :class:`Reading` is the one normalised unit the rest of CityWeave sees: device, capability,
value in the capability's unit, timestamp, quality. A :class:`DecodeResult` is the adapter's full
account of one MQTT message: the readings, devices that announced themselves, availability
changes, commands another controller sent, and what was refused and why. Nothing is silently
lost: refused values come with a reason code (counted as metrics), and fields the adapter does
not understand are kept together with the raw message.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cityweave.devices.capabilities import Value
from cityweave.devices.command import Command, EncodedCommand, ExpectedEcho
from cityweave.devices.discovery import DiscoveredDevice
from cityweave.devices.reasons import Reason

__all__ = [
    "AvailabilityChange", "Command", "CommandAck", "DecodeResult", "EncodedCommand",
    "ExpectedEcho", "Quality", "Reading", "Rejection",
]


class Quality(enum.StrEnum):
    GOOD = "good"
    # Plausible but not fully trusted: units inferred, a vendor format we only partly know.
    UNCERTAIN = "uncertain"
    # Sent while the device runs a self-test: alarms must not dispatch on it.
    TEST = "test"


@dataclass(frozen=True, slots=True)
class Reading:
    device_key: str
    capability: str
    value: Value
    timestamp: datetime
    unit: str | None = None
    endpoint: str | None = None
    quality: Quality = Quality.GOOD
    source: str | None = None  # where in the vendor message the value was, e.g. "switch:0.apower"
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    detail: str
    field: str | None = None  # the vendor field, when one value (not the message) was refused


@dataclass(frozen=True, slots=True)
class AvailabilityChange:
    address: str
    online: bool
    device_key: str | None = None  # None for a bridge or for a device nobody has bound yet


@dataclass(frozen=True, slots=True)
class CommandAck:
    """A device's reply to a request (Shelly RPC result/error, MIoT code)."""

    request_id: str
    ok: bool
    detail: str = ""


@dataclass
class DecodeResult:
    adapter: str
    topic: str
    received_at: datetime
    address: str | None = None
    device_key: str | None = None
    readings: list[Reading] = field(default_factory=list)
    discovered: list[DiscoveredDevice] = field(default_factory=list)
    availability: list[AvailabilityChange] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)  # seen on the bus, sent by others
    acks: list[CommandAck] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    unknown: dict[str, Any] = field(default_factory=dict)
    raw: bytes | None = None  # kept whenever something was refused or not understood
    ignored: bool = False  # a topic the adapter knows and deliberately does not use

    @property
    def dropped(self) -> bool:
        """Nothing usable came out and at least one reason says why."""
        return bool(self.rejections) and not (
            self.readings or self.discovered or self.availability or self.commands or self.acks
        )

    def reasons(self) -> list[Reason]:
        return [r.reason for r in self.rejections]

    def values(self) -> dict[tuple[str, str | None], Value]:
        """``{(capability, endpoint): value}``: the last value of each, for tests and logs."""
        return {(r.capability, r.endpoint): r.value for r in self.readings}
