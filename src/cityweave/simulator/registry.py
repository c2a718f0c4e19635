"""Bindings for a simulated fleet, obtained the way a registry would: from the announcements.

Adapters decode only devices someone has bound. A test, the demo or a benchmark consumer wants
the simulated devices accepted without an operator clicking through thousands of discoveries,
so :func:`bind_fleet` decodes each device's announcement (or, for Tuya and Shelly, feeds its
out-of-band description to ``adapter.discover``), and binds what the adapter discovered under
the virtual device's id. The binding therefore carries the adapter's own profile (exposes, entity
configs, data-point specs), exactly as an accepted real device would.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

from cityweave.devices.adapters import VendorAdapter, create_all
from cityweave.devices.binding import InMemoryDirectory
from cityweave.devices.discovery import DiscoveredDevice
from cityweave.devices.types import infer
from cityweave.simulator.behaviour import sample
from cityweave.simulator.fleet import SHELLY, TUYA, Fleet, VirtualDevice
from cityweave.simulator.payloads import announcements, description


def bind_fleet(fleet: Fleet, directory: InMemoryDirectory | None = None,
               adapters: Iterable[VendorAdapter] | None = None,
               when: datetime | None = None) -> InMemoryDirectory:
    """Bind every device of ``fleet`` (device key = virtual device id) into ``directory``.

    Raises ``LookupError`` naming the devices no adapter discovered: a simulator whose devices
    cannot be discovered is broken, and silence would hide it.
    """
    directory = directory if directory is not None else InMemoryDirectory()
    adapters = list(adapters) if adapters is not None else create_all(directory=directory)
    by_name = {adapter.name: adapter for adapter in adapters}
    when = when or datetime.now(UTC)
    rng = random.Random(fleet.seed)
    keys = {(d.vendor, d.address): d.id for d in fleet.devices}
    found: list[DiscoveredDevice] = []
    for message in announcements(fleet, when, lambda d: sample(d, when, rng)):
        for adapter in adapters:
            if adapter.handles(message.topic) and any(
                    _matches(p, message.topic) for p in adapter.discovery_topics()):
                found.extend(adapter.decode(message.topic, message.payload, when).discovered)
                break
    for device in fleet.devices:
        if device.vendor in (TUYA, SHELLY):
            document = description(device, sample(device, when, rng), when)
            assert document is not None
            found.append(by_name[device.vendor].discover(document, address=device.address))
    merged: dict[tuple[str, str], DiscoveredDevice] = {}
    for discovered in found:
        where = (discovered.adapter, discovered.address)
        if where in keys and not discovered.removed:
            merged[where] = _merge(merged[where], discovered) if where in merged else discovered
    bound: set[str] = set()
    for where, discovered in merged.items():
        directory.add(discovered.bind(keys[where]))
        bound.add(keys[where])
    missing = [d.id for d in fleet.devices if d.id not in bound]
    if missing:
        raise LookupError(f"{len(missing)} simulated devices were not discovered, e.g. {missing[:5]}")
    return directory


def _merge(first: DiscoveredDevice, later: DiscoveredDevice) -> DiscoveredDevice:
    """Two announcements of one device (Tasmota's ``config`` and ``sensors``): one description.

    The richer profile (the one with aliases: the config's topic) wins; capabilities add up and
    the type is inferred again from all of them.
    """
    base, extra = (first, later) if first.aliases or not later.aliases else (later, first)
    refs = tuple(dict.fromkeys((*base.capabilities, *extra.capabilities)))
    names = {ref.capability for ref in refs}
    device_type = infer(names, f"{base.description or ''} {base.model or ''}") or base.device_type
    return replace(base, capabilities=refs, device_type=device_type,
                   profile={**extra.profile, **base.profile})


def _matches(pattern: str, topic: str) -> bool:
    from cityweave.devices.adapters import topic_matches

    return topic_matches(pattern, topic)


def device_key(device: VirtualDevice) -> str:
    """The device key :func:`bind_fleet` uses."""
    return device.id
