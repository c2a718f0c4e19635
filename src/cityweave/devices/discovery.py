"""A device that announced itself, before anyone has accepted it into a place.

Zigbee2MQTT's bridge device list, Home Assistant MQTT discovery, Tasmota's discovery topic, a
Shelly's full status, a native ``announce`` message and out-of-band descriptions (a Tuya cloud
dump, a MIoT spec instance) all become a :class:`DiscoveredDevice`. It carries what an operator
needs to decide (vendor, model, inferred type, capabilities) and the adapter's ``profile``: the
plain-JSON data the adapter needs later to decode this device's messages and encode commands for
it. Accepting the device means storing ``discovered.bind(device_key)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cityweave.devices.binding import DeviceBinding


@dataclass(frozen=True, slots=True)
class CapabilityRef:
    """One capability a device offers, on one endpoint (channel, phase, button...)."""

    capability: str
    endpoint: str | None = None
    writable: bool = False


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    adapter: str
    address: str  # the vendor's stable id: IEEE address, MAC, Shelly id, Tuya id, MIoT did, ...
    name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    description: str | None = None
    device_type: str | None = None
    capabilities: tuple[CapabilityRef, ...] = ()
    aliases: tuple[str, ...] = ()  # other names the device's messages use (friendly name, topic)
    profile: Mapping[str, Any] = field(default_factory=dict)
    # True when the announcement withdraws the device (HA discovery with an empty payload).
    removed: bool = False

    @property
    def capability_names(self) -> frozenset[str]:
        return frozenset(ref.capability for ref in self.capabilities)

    def bind(self, device_key: str) -> DeviceBinding:
        return DeviceBinding(
            device_key=device_key,
            adapter=self.adapter,
            address=self.address,
            aliases=self.aliases,
            device_type=self.device_type,
            profile=dict(self.profile),
        )
