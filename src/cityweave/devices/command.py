"""Commands towards devices and the vendor message an adapter makes of one.

A command names a capability and a value, never a vendor topic, so the UI and rules can switch a
Shelly and a Zigbee plug alike. The adapter's :class:`EncodedCommand` says what to publish and
what state echo to expect back: the device service marks the command confirmed when a reading
matching ``expected_echo`` arrives, and failed when none does in time.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field

from cityweave.devices import capabilities
from cityweave.devices.capabilities import Value
from cityweave.devices.reasons import Reason
from cityweave.errors import CityWeaveError


class CommandRejected(CityWeaveError):
    """The command cannot be sent: unknown or read-only capability, bad value, unsupported."""

    status = 422
    slug = "command-rejected"

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail, reason=str(reason))
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Command:
    device_key: str
    capability: str
    value: Value
    endpoint: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def create(cls, device_key: str, capability: str, value: object, endpoint: str | None = None,
               command_id: str | None = None) -> Command:
        """A validated command: the capability exists, is writable and the value fits it."""
        cap = capabilities.find(capability)
        if cap is None:
            raise CommandRejected(Reason.UNKNOWN_CAPABILITY, f"no capability {capability!r}")
        if not cap.writable:
            raise CommandRejected(Reason.NOT_WRITABLE, f"{cap.name} is read-only")
        checked = capabilities.validate(cap, value)
        if not checked.ok:
            raise CommandRejected(checked.reason or Reason.INVALID_VALUE, checked.detail)
        return cls(device_key, cap.name, checked.value, endpoint, command_id or uuid.uuid4().hex)


@dataclass(frozen=True, slots=True)
class ExpectedEcho:
    """The reading that confirms a command took effect."""

    capability: str
    value: Value
    endpoint: str | None = None
    timeout_s: float = 10.0
    # For numbers: devices round (brightness 50 % -> 127/254) and colour temperature travels in
    # whole mireds (2700 K -> 370 mired -> 2703 K).
    tolerance: float | None = None

    def matches(self, reading: object) -> bool:
        capability = getattr(reading, "capability", None)
        endpoint = getattr(reading, "endpoint", None)
        value = getattr(reading, "value", None)
        if capability != self.capability or endpoint != self.endpoint:
            return False
        if isinstance(self.value, bool) or isinstance(value, bool):
            return value is self.value
        if isinstance(self.value, int | float) and isinstance(value, int | float):
            tolerance = self.tolerance
            if tolerance is None:
                tolerance = 50.0 if self.capability == "color_temperature" else 0.5
            return math.isclose(float(value), float(self.value), abs_tol=tolerance)
        return bool(value == self.value)


@dataclass(frozen=True, slots=True)
class EncodedCommand:
    command: Command
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    expected_echo: ExpectedEcho | None = None
