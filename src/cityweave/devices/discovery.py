"""A device that announced itself, before anyone has accepted it into a place.

Zigbee2MQTT's bridge device list, Home Assistant MQTT discovery, Tasmota's discovery topic, a
Shelly's full status, a native ``announce`` message and out-of-band descriptions (a Tuya cloud
dump, a MIoT spec instance) all become a :class:`DiscoveredDevice`. It carries what an operator
needs to decide (vendor, model, inferred type, capabilities) and the adapter's ``profile``: the
plain-JSON data the adapter needs later to decode this device's messages and encode commands for
it. Accepting the device means storing ``discovered.bind(device_key)``.

Some ecosystems split one device's description over several announcements: Tasmota publishes a
``config`` (relays, topic, light type) and a ``sensors`` sample under the same MAC. Such an
announcement names its ``part``; whoever keeps descriptions (the registry, the simulator's
``discover_fleet``) keeps the latest announcement of each part and describes the device by all of
them together (:func:`merge`), so that whichever half arrives last does not erase the other.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cityweave.devices.binding import DeviceBinding
from cityweave.devices.types import infer


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
    # Which part of a description split over several announcements this is (Tasmota: "config",
    # "sensors"); None for a complete description.
    part: str | None = None

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


def part_document(device: DiscoveredDevice) -> dict[str, Any]:
    """One part of a description as plain JSON (the registry keeps the parts in the profile)."""
    return {"name": device.name, "manufacturer": device.manufacturer, "model": device.model,
            "description": device.description, "device_type": device.device_type,
            "capabilities": [[r.capability, r.endpoint, r.writable] for r in device.capabilities],
            "aliases": list(device.aliases), "profile": dict(device.profile)}


def part_from_document(adapter: str, address: str, part: str, document: Mapping[str, Any]) -> DiscoveredDevice:
    refs = tuple(CapabilityRef(str(c[0]), c[1], bool(c[2])) for c in document.get("capabilities") or ()
                 if isinstance(c, list | tuple) and len(c) == 3)
    return DiscoveredDevice(
        adapter=adapter, address=address, name=document.get("name"), manufacturer=document.get("manufacturer"),
        model=document.get("model"), description=document.get("description"),
        device_type=document.get("device_type"), capabilities=refs,
        aliases=tuple(document.get("aliases") or ()), profile=dict(document.get("profile") or {}), part=part,
    )


def merge(parts: Iterable[DiscoveredDevice]) -> DiscoveredDevice:
    """One description from the parts of a device's description.

    The part that names the device's aliases (Tasmota's ``config``: the MQTT topic its messages
    use) is the base: its name, model and profile win; the others add their capabilities and the
    profile keys the base lacks. The type is inferred again from all capabilities together.
    """
    ordered = sorted(parts, key=lambda d: (not d.aliases, d.part or ""))
    if not ordered:
        raise ValueError("nothing to merge")
    base = ordered[0]
    refs = tuple(dict.fromkeys(ref for d in ordered for ref in d.capabilities))
    profile: dict[str, Any] = {}
    for d in reversed(ordered):
        profile.update(d.profile)
    text = {key: next((getattr(d, key) for d in ordered if getattr(d, key)), None)
            for key in ("name", "manufacturer", "model", "description")}
    names = {ref.capability for ref in refs}
    device_type = (infer(names, f"{text['description'] or ''} {text['model'] or ''}")
                   or next((d.device_type for d in ordered if d.device_type), None))
    return replace(base, capabilities=refs, device_type=device_type, profile=profile, part=None,
                   aliases=tuple(dict.fromkeys(a for d in ordered for a in d.aliases)), **text)
