"""The key test: every payload of every vendor decodes with the real adapters, inside its ranges.

A catalogue fleet holds one device of every (kind, vendor) pair the simulator makes. It is bound
the way a registry would bind it (announcements and out-of-band descriptions decoded by the
adapters), then two simulated days of its messages, with alarm rates raised so that smoke, gas,
leaks, SOS presses and falls all happen, go through the adapters.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta

import orjson
import pytest

from cityweave.devices import capabilities
from cityweave.devices.adapters import adapter_for_topic, create_all
from cityweave.devices.binding import InMemoryDirectory
from cityweave.devices.reading import DecodeResult
from cityweave.simulator.behaviour import (
    CHINA,
    EVENTS,
    BehaviourConfig,
    Moment,
    event_window,
    sample,
)
from cityweave.simulator.fleet import (
    APPLIANCES,
    HOMEASSISTANT,
    NATIVE,
    SUPPORTED,
    TASMOTA,
    ZIGBEE2MQTT,
    Fleet,
    Household,
    VirtualDevice,
)
from cityweave.simulator.payloads import announcements, encode
from cityweave.simulator.registry import bind_fleet, discover_fleet

START = datetime(2026, 5, 11, 0, 0, tzinfo=CHINA)
LIVELY = BehaviourConfig(smoke_per_day=1.0, gas_per_day=1.0, leak_per_day=1.0, sos_per_day=1.0,
                         fall_per_day=1.0, inactive_day_rate=0.0)
# What each kind must report, whatever the vendor calls it (any one of each tuple).
ESSENTIAL: dict[str, tuple[tuple[str, ...], ...]] = {
    "light": (("on_off",),), "plug": (("on_off",), ("power_w",), ("energy_kwh",)),
    "door": (("contact",),), "motion": (("motion", "occupancy"),), "smoke": (("smoke",),),
    "gas": (("gas",),), "leak": (("water_leak",),), "climate": (("temperature",), ("humidity",)),
    "air": (("co2", "pm2_5"),), "meter": (("energy_kwh",), ("power_w",)), "sos": (("emergency_call",),),
    "fall_radar": (("presence",), ("fall", "fall_state")), "presence": (("presence",),),
    "valve": (("valve_open",),), "siren": (("siren",),),
}
# Alarms that must be seen both raised and cleared over the two days.
ALARMS = {"smoke": "smoke", "gas": "gas", "leak": "water_leak", "siren": "siren", "valve": "valve_open",
          "fall_radar": "fall"}


def catalogue() -> Fleet:
    elder = Household("cat-b01-u1-0101", 1, elderly_alone=True, away_by_day=False)
    family = Household("cat-b01-u1-0102", 3, elderly_alone=False)
    devices: list[VirtualDevice] = []
    for kind, vendors in SUPPORTED.items():
        for vendor in vendors:
            home = elder if kind in ("sos", "fall_radar", "presence") else family
            appliance, rated = APPLIANCES[len(devices) % len(APPLIANCES)] if kind == "plug" else (None, 0.0)
            devices.append(VirtualDevice(
                id=f"{home.id}-{kind.replace('_', '')}-{vendor}", index=len(devices), household=home, kind=kind,
                vendor=vendor, room="kitchen" if kind in ("gas", "smoke") else "living_room",
                slot=f"{kind}_{vendor}", appliance=appliance, rated_w=rated or 900.0))
    return Fleet(seed=11, households=(elder, family), devices=tuple(devices))


@pytest.fixture(scope="module")
def decoded() -> dict[str, list[DecodeResult]]:
    """Two simulated days of every catalogue device, decoded: ``{device id: [results]}``."""
    fleet = catalogue()
    directory = bind_fleet(fleet, when=START)
    adapters = create_all(directory=directory)
    rng = random.Random(11)
    results: dict[str, list[DecodeResult]] = defaultdict(list)
    moments = [START + timedelta(minutes=step) for step in range(0, 2 * 24 * 60, 5)]
    for day in range(2):  # the middle of every event, short ones (an SOS press) included
        for home in fleet.households:
            for kind in EVENTS:
                window = event_window(kind, home, Moment.of(START).day + day, LIVELY)
                if window is not None:
                    moments.append(START + timedelta(days=day, hours=sum(window) / 2))
    for step, when in enumerate(sorted(moments)):
        for device in fleet.devices:
            for message in encode(device, sample(device, when, rng, LIVELY), when, step):
                adapter = adapter_for_topic(adapters, message.topic)
                assert adapter is not None and adapter.name == device.vendor, message.topic
                results[device.id].append(adapter.decode(message.topic, message.payload, when))
    return results


def test_catalogue_covers_every_vendor_and_kind() -> None:
    fleet = catalogue()
    assert {d.vendor for d in fleet.devices} == {"zigbee2mqtt", "tasmota", "shelly", "tuya", "homeassistant",
                                                 "native"}
    assert len(fleet.devices) == sum(len(v) for v in SUPPORTED.values())


def test_every_message_decodes_for_its_device_without_refusal(decoded: dict[str, list[DecodeResult]]) -> None:
    for device in catalogue().devices:
        results = decoded[device.id]
        assert results, device.id
        for result in results:
            assert not result.rejections, (device.id, result.topic, result.rejections, result.raw)
            assert result.device_key == device.id, (device.id, result.topic)
            assert result.readings, (device.id, result.topic)
            for reading in result.readings:
                assert capabilities.validate(reading.capability, reading.value, reading.unit).ok, reading


def test_each_kind_reports_its_essential_capabilities(decoded: dict[str, list[DecodeResult]]) -> None:
    for device in catalogue().devices:
        seen = {r.capability for result in decoded[device.id] for r in result.readings}
        for choices in ESSENTIAL[device.kind]:
            assert seen & set(choices), (device.id, choices, sorted(seen))


def test_alarms_are_raised_and_cleared(decoded: dict[str, list[DecodeResult]]) -> None:
    for device in catalogue().devices:
        capability = ALARMS.get(device.kind)
        if capability is None:
            continue
        values = {r.value for result in decoded[device.id] for r in result.readings if r.capability == capability}
        assert values == {True, False}, (device.id, values)
    for device in catalogue().devices:
        if device.kind == "sos":
            calls = [r for result in decoded[device.id] for r in result.readings if r.capability == "emergency_call"]
            assert any(r.value is True for r in calls), device.id


def test_energy_counters_decode_monotonic(decoded: dict[str, list[DecodeResult]]) -> None:
    for device in catalogue().devices:
        if device.kind not in ("meter", "plug"):
            continue
        energy = [r.value for result in decoded[device.id] for r in result.readings if r.capability == "energy_kwh"]
        assert energy and energy == sorted(energy), device.id


def test_announcements_are_discovered_as_the_right_device_types() -> None:
    fleet = catalogue()
    directory = bind_fleet(fleet, when=START)
    expected = {"smoke": "smoke_detector", "gas": "gas_detector", "leak": "water_leak_sensor",
                "door": "contact_sensor", "motion": "motion_sensor", "sos": "emergency_button",
                "meter": "electricity_meter", "air": "air_quality_monitor"}
    for device in fleet.devices:
        binding = directory.find(device.vendor, device.address)
        assert binding is not None and binding.device_key == device.id
        if device.kind in expected:
            assert binding.device_type == expected[device.kind], (device.id, binding.device_type)


def test_announcement_messages_have_the_ecosystem_shapes() -> None:
    fleet = catalogue()
    rng = random.Random(1)
    messages = announcements(fleet, START, lambda d: sample(d, START, rng))
    topics = {m.topic: m for m in messages}
    bridge = orjson.loads(topics["zigbee2mqtt/bridge/devices"].payload)
    assert bridge[0]["type"] == "Coordinator"
    assert {e["ieee_address"] for e in bridge[1:]} == {d.ieee for d in fleet.of_vendor(ZIGBEE2MQTT)}
    for device in fleet.of_vendor(TASMOTA):
        config = orjson.loads(topics[f"tasmota/discovery/{device.mac}/config"].payload)
        assert config["t"] == device.tasmota_topic and config["mac"] == device.mac
    for device in fleet.of_vendor(HOMEASSISTANT):
        assert topics[f"homeassistant/device/{device.ha_node}/config"].retain
    for device in fleet.of_vendor(NATIVE):
        body = orjson.loads(topics[f"cityweave/v1/{device.id}/announce"].payload)
        assert body["v"] == 1 and body["kind"] == "announce" and body["capabilities"]
    assert all(m.retain for m in messages if not m.topic.endswith("/events/rpc"))


def test_auto_bound_adapters_read_the_self_describing_vendors() -> None:
    """Without any announcement, an auto-binding directory still reads Zigbee2MQTT, Tasmota,
    Shelly and native payloads (Tuya and Home Assistant need their descriptions by design)."""
    fleet = catalogue()
    adapters = create_all(directory=InMemoryDirectory(auto_bind=True))
    rng = random.Random(3)
    when = START + timedelta(hours=20)
    for device in fleet.devices:
        if device.vendor in ("tuya", "homeassistant"):
            continue
        for message in encode(device, sample(device, when, rng), when, 1):
            adapter = adapter_for_topic(adapters, message.topic)
            assert adapter is not None
            result = adapter.decode(message.topic, message.payload, when)
            assert result.readings and not result.rejections, (device.id, result.rejections)


def test_the_demo_district_fits_its_announcements_and_is_discovered() -> None:
    """What the demo loads: one Zigbee2MQTT device list for ~3,000 devices stays under the
    adapters' discovery limit, and (on a slice, for speed) every device is discovered."""
    from cityweave.devices.adapters.base import DEFAULT_MAX_DISCOVERY_PAYLOAD
    from cityweave.simulator.fleet import build_fleet, demo_households

    homes = demo_households()
    fleet = build_fleet(homes, 1)
    rng = random.Random(1)
    sizes = {m.topic: len(m.payload) for m in announcements(fleet, START, lambda d: sample(d, START, rng))}
    assert 1_000_000 < sizes["zigbee2mqtt/bridge/devices"] < DEFAULT_MAX_DISCOVERY_PAYLOAD
    part = build_fleet(homes[:80], 1)
    found = discover_fleet(part, when=START)
    assert set(found) == {d.id for d in part.devices}
    assert all(found[d.id].address == d.address and found[d.id].device_type for d in part.devices)
