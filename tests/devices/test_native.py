"""The native CityWeave format: schema, documented examples, decoding and commands."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest

from cityweave.devices.adapters.native import schema
from cityweave.devices.binding import DeviceBinding
from cityweave.devices.capabilities import CAPABILITIES
from cityweave.devices.command import Command, CommandRejected
from cityweave.devices.types import DEVICE_TYPES
from tests.devices.support import REPO, adapter, assert_clean, decode, reasons, values

DOC = REPO / "docs" / "devices" / "native-format.md"
TOPIC_LEVEL = {"state": "state", "event": "event", "availability": "availability", "announce": "announce",
               "command": "set"}


def _validator():
    jsonschema.Draft202012Validator.check_schema(schema())
    return jsonschema.Draft202012Validator(schema(), format_checker=jsonschema.FormatChecker())


def _doc_examples():
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", DOC.read_text("utf-8"), re.DOTALL)]


def _bound():
    native, directory = adapter("native")
    for device in ("plug-0042", "meter-3f", "sos-bed-7", "bin-17", "bed-radar-2", "bp-cuff-1", "relay-9",
                   "space-B2-017"):
        directory.add(DeviceBinding(f"dev-{device}", "native", device))
    return native, directory


def test_schema_is_valid_and_in_step_with_the_registries():
    _validator()
    defs = schema()["$defs"]
    assert set(defs["capability"]["enum"]) == set(CAPABILITIES)
    assert set(defs["announceMessage"]["properties"]["device_type"]["enum"]) == set(DEVICE_TYPES)


@pytest.mark.parametrize("example", schema()["examples"] + _doc_examples(),
                         ids=lambda e: f"{e['kind']}-{e.get('device')}")
def test_examples_validate_and_decode(example):
    assert not list(_validator().iter_errors(example))
    native, _ = _bound()
    result = decode(native, f"cityweave/v1/{example['device']}/{TOPIC_LEVEL[example['kind']]}", example)
    assert_clean(result)
    assert result.readings or result.discovered or result.availability or result.commands


def test_documentation_shows_every_message_kind():
    assert {e["kind"] for e in _doc_examples()} == set(TOPIC_LEVEL)


@pytest.mark.parametrize(
    "message",
    [
        {"v": 2, "kind": "state", "values": {"on_off": True}},
        {"v": 1, "kind": "state"},
        {"v": 1, "kind": "state", "values": {"on_off": True}, "readings": "x"},
        {"v": 1, "kind": "announce", "capabilities": []},
        {"v": 1, "kind": "command", "capability": "on_off", "value": True},
        {"v": 1, "kind": "state", "values": {"Temperature": 1}},
    ],
)
def test_schema_rejects_bad_messages(message):
    assert list(_validator().iter_errors(message))


def test_values_units_endpoints_and_timestamps():
    native, _ = _bound()
    result = decode(native, "cityweave/v1/meter-3f/state", schema()["examples"][1])
    assert values(result) == {"energy_kwh": 152.021, "power_w@a": 375.5, "power_w@b": 170.8}
    assert {r.timestamp.isoformat() for r in result.readings} == {"2026-03-01T08:15:00+00:00"}
    assert {r.device_key for r in result.readings} == {"dev-meter-3f"}
    ack = decode(native, "cityweave/v1/plug-0042/state", {"v": 1, "kind": "state", "ack": "c-1", "values": {"on_off@1": False}})
    assert values(ack) == {"on_off@1": False} and ack.acks[0].request_id == "c-1"


def test_refusals_keep_the_rest():
    native, _ = _bound()
    result = decode(native, "cityweave/v1/plug-0042/state",
                    {"v": 1, "kind": "state", "values": {"on_off": True, "battery": 140, "frobnicate": 1,
                                                         "power_w": "lots"}, "note": "x"})
    assert values(result) == {"on_off": True}
    assert sorted(reasons(result)) == ["out_of_range", "unknown_capability", "wrong_type"]
    assert result.unknown == {"note": "x"} and result.raw is not None
    assert reasons(decode(native, "cityweave/v1/plug-0042/state", {"v": 1, "kind": "event", "values": {}})) == ["schema_violation"]
    assert reasons(decode(native, "cityweave/v1/plug-0042/state", {"v": 1, "device": "meter-3f", "values": {"on_off": True}})) == ["topic_mismatch"]
    assert reasons(decode(native, "cityweave/v1/nobody/state", {"v": 1, "values": {"on_off": True}})) == ["unknown_device"]
    assert reasons(decode(native, "cityweave/v1/bad id!/state", {"v": 1})) == ["unexpected_topic"]
    assert reasons(decode(native, "cityweave/v1/plug-0042/state", {"v": 1, "ts": "yesterday", "values": {}})) == ["wrong_type"]
    assert decode(native, "cityweave/v1/plug-0042/availability", "offline").availability[0].online is False


def test_announcement_of_an_unbound_device_is_a_discovery():
    native, directory = adapter("native")
    example = next(e for e in schema()["examples"] if e["kind"] == "announce")
    result = decode(native, "cityweave/v1/bin-17/announce", example)
    assert_clean(result)
    (device,) = result.discovered
    assert (device.address, device.device_type) == ("bin-17", "bin_sensor")
    assert {"fill_level", "temperature", "battery", "tamper"} == device.capability_names
    bad = decode(native, "cityweave/v1/bin-17/announce", {"v": 1, "kind": "announce", "capabilities": ["warp_drive"]})
    assert reasons(bad) == ["invalid_discovery"]


def test_encode_round_trip_and_limits():
    native, directory = _bound()
    binding = directory.find("native", "relay-9")
    command = Command.create(binding.device_key, "on_off", True, "2", command_id="c-7f3b")
    encoded = native.encode(command, binding)
    message = json.loads(encoded.payload)
    assert encoded.topic == "cityweave/v1/relay-9/set"
    assert not list(_validator().iter_errors(message))
    seen = decode(native, encoded.topic, encoded.payload)
    assert [(c.capability, c.value, c.endpoint, c.id) for c in seen.commands] == [("on_off", True, "2", "c-7f3b")]
    echo = decode(native, "cityweave/v1/relay-9/state", {"v": 1, "ack": "c-7f3b", "values": {"on_off@2": True}})
    assert any(encoded.expected_echo.matches(r) for r in echo.readings)
    announced = native.discover(next(e for e in schema()["examples"] if e["kind"] == "announce"))
    with pytest.raises(CommandRejected):
        native.encode(Command.create("dev", "on_off", True), announced.bind("dev"))
    with pytest.raises(CommandRejected):
        Command.create("dev", "battery", 50)  # read-only
