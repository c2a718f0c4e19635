"""The simulated devices answer commands as their ecosystems do: without a broker, every writable
capability of every (vendor, kind) in a fleet is commanded through the platform's own adapter, and
the fleet's answer decodes into the echo the platform waits for (plus the Shelly RPC reply)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from cityweave.devices.adapters import create_all
from cityweave.devices.binding import InMemoryDirectory
from cityweave.devices.command import Command
from cityweave.simulator.fleet import SHELLY, build_fleet, synthetic_households
from cityweave.simulator.registry import discover_fleet
from cityweave.simulator.responder import CommandResponder, Overrides
from cityweave.simulator.runner import Schedule

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
VALUES = {"on_off": [False, True], "brightness": [37], "color_temperature": [3300], "valve_open": [False, True],
          "siren": [True, False], "alarm_muted": [True]}


@pytest.fixture(scope="module")
def setup():
    fleet = build_fleet(synthetic_households(300, 3, prefix="resp"), 3)
    found = discover_fleet(fleet, when=NOW)
    directory = InMemoryDirectory([d.bind(key) for key, d in found.items()])
    platform = {a.name: a for a in create_all(directory=directory)}
    return fleet, found, directory, platform


def _cases(fleet, found):
    seen: set[tuple[str, str, str]] = set()
    for key, discovered in found.items():
        device = fleet.device(key)
        for ref in discovered.capabilities:
            if ref.writable and (device.vendor, device.kind, ref.capability) not in seen:
                seen.add((device.vendor, device.kind, ref.capability))
                yield device, discovered, ref


def test_every_writable_capability_is_answered_with_its_echo(setup) -> None:
    fleet, found, directory, platform = setup
    responder = CommandResponder(fleet, when=NOW)
    covered: set[str] = set()
    for device, discovered, ref in _cases(fleet, found):
        binding = directory.find(discovered.adapter, discovered.address)
        for value in VALUES[ref.capability]:
            command = Command.create(device.id, ref.capability, value, ref.endpoint, command_id=f"cmd-{device.index}")
            encoded = platform[discovered.adapter].encode(command, binding)
            answers = responder.handle(encoded.topic, encoded.payload, NOW)
            readings, acks = [], []
            for answer in answers:
                adapter = next(a for a in platform.values() if a.handles(answer.topic))
                result = adapter.decode(answer.topic, answer.payload, NOW)
                readings += result.readings
                acks += result.acks
            case = f"{device.vendor} {device.kind} {ref.capability}={value}"
            assert encoded.expected_echo is not None, case
            assert any(encoded.expected_echo.matches(r) for r in readings), case
            assert {r.device_key for r in readings} == {device.id}, case
            if device.vendor == SHELLY:
                assert [(a.request_id, a.ok) for a in acks] == [(command.id, True)], case
            covered.add(device.vendor)
    assert covered == {"zigbee2mqtt", "tasmota", "shelly", "tuya", "homeassistant", "native"}


def test_shelly_refuses_what_it_cannot_do_and_ignores_other_traffic(setup) -> None:
    fleet, *_ = setup
    responder = CommandResponder(fleet, when=NOW)
    shelly = next(d for d in fleet.devices if d.vendor == SHELLY)
    frame = {"id": "x1", "src": "cityweave", "method": "Cover.GoToPosition", "params": {"id": 0, "pos": 10}}
    [reply] = responder.handle(f"{shelly.shelly_id}/rpc", orjson.dumps(frame), NOW)
    assert reply.topic == "cityweave/rpc"
    body = orjson.loads(reply.payload)
    assert body["id"] == "x1" and body["dst"] == "cityweave" and body["error"]["code"] == -105
    assert responder.handle("cityweave/rpc", reply.payload, NOW) == []  # our own reply comes back: ignored
    assert responder.handle("cmnd/tasmota_FFFFFF/POWER1", b"ON", NOW) == []  # not one of ours
    assert responder.handle("zigbee2mqtt/nobody/here/set", b'{"state":"ON"}', NOW) == []


def test_a_commanded_value_holds_in_later_reports_then_expires(setup) -> None:
    fleet, *_ = setup
    now = [0.0]
    overrides = Overrides(hold=60, monotonic=lambda: now[0])
    plug = next(d for d in fleet.devices if d.kind == "plug")
    overrides.set(plug.id, "on_off", False)
    schedule = Schedule([plug], rate=10, start=NOW, seed=1)
    schedule.overrides = overrides
    first = next(iter(schedule))
    assert first.device is plug
    values = overrides.apply(plug, {"on_off": True, "power_w": 1800.0, "current": 8.1})
    assert values["on_off"] is False and values["power_w"] == 0.0 and values["current"] == 0.0
    now[0] = 61.0
    assert overrides.apply(plug, {"on_off": True})["on_off"] is True
    assert not overrides
