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
from datetime import UTC, datetime

from cityweave.devices.adapters import VendorAdapter, create_all, topic_matches
from cityweave.devices.binding import InMemoryDirectory
from cityweave.devices.discovery import DiscoveredDevice, merge
from cityweave.simulator.behaviour import sample
from cityweave.simulator.fleet import SHELLY, TUYA, Fleet
from cityweave.simulator.payloads import announcements, description


def discover_fleet(fleet: Fleet, adapters: Iterable[VendorAdapter] | None = None,
                   when: datetime | None = None) -> dict[str, DiscoveredDevice]:
    """``{virtual device id: what its adapter discovered}`` for every device of ``fleet``.

    What a registry would record as discovered; a device's household is
    ``fleet.device(id).household.id``, the place to claim it into. Raises ``LookupError``
    naming the devices no adapter discovered: a simulator whose devices cannot be discovered is
    broken, and silence would hide it.
    """
    adapters = list(adapters) if adapters is not None else create_all(directory=InMemoryDirectory())
    by_name = {adapter.name: adapter for adapter in adapters}
    when = when or datetime.now(UTC)
    rng = random.Random(fleet.seed)
    keys = {(d.vendor, d.address): d.id for d in fleet.devices}
    found: list[DiscoveredDevice] = []
    for message in announcements(fleet, when, lambda d: sample(d, when, rng)):
        for adapter in adapters:
            if adapter.handles(message.topic) and any(
                    topic_matches(p, message.topic) for p in adapter.discovery_topics()):
                found.extend(adapter.decode(message.topic, message.payload, when).discovered)
                break
    for device in fleet.devices:
        if device.vendor in (TUYA, SHELLY):  # richer out of band (Tuya: only out of band)
            document = description(device, sample(device, when, rng), when)
            assert document is not None
            found.append(by_name[device.vendor].discover(document, address=device.address))
    merged: dict[str, DiscoveredDevice] = {}
    for discovered in found:
        key = keys.get((discovered.adapter, discovered.address))
        if key is not None and not discovered.removed:
            merged[key] = _merge(merged[key], discovered) if key in merged else discovered
    missing = [d.id for d in fleet.devices if d.id not in merged]
    if missing:
        raise LookupError(f"{len(missing)} simulated devices were not discovered, e.g. {missing[:5]}")
    return merged


def bind_fleet(fleet: Fleet, directory: InMemoryDirectory | None = None,
               adapters: Iterable[VendorAdapter] | None = None,
               when: datetime | None = None) -> InMemoryDirectory:
    """Bind every device of ``fleet`` (device key = virtual device id) into ``directory``."""
    directory = directory if directory is not None else InMemoryDirectory()
    for key, discovered in discover_fleet(fleet, adapters, when).items():
        directory.add(discovered.bind(key))
    return directory


def _merge(first: DiscoveredDevice, later: DiscoveredDevice) -> DiscoveredDevice:
    """Two announcements of one device (Tasmota's ``config`` and ``sensors``): one description,
    merged as the registry merges them (``discovery.merge``)."""
    return merge([first, later])
