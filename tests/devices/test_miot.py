"""Xiaomi MIoT: spec instances as profiles, every JSON-RPC message."""

from __future__ import annotations

import json

import pytest

from cityweave.devices.command import Command, CommandRejected
from tests.devices.support import adapter, assert_clean, decode, load_json, reasons, values

EXPECTED = {
    101: {"contact": False}, 102: {"contact": False}, 103: {"smoke": True, "smoke_density": 12.5},
    104: {"smoke": True, "battery": 97.0}, 105: {"gas_ppm": 1350.0, "gas": True, "preheating": False},
    106: {"temperature": 22.4, "humidity": 48.0},
}


@pytest.fixture
def miot():
    instances = {i["type"]: i for i in load_json("miot/spec_instances.json")["instances"]}
    messages = load_json("miot/messages.json")["messages"]
    m, directory = adapter("miot")
    for message in messages:
        params = message["payload"].get("params", message["payload"].get("result"))
        did = (params[0] if isinstance(params, list) else params)["did"]
        if directory.find("miot", did) is None:
            directory.add(m.discover(instances[message["model_type"]], address=did).bind(f"dev-{did}"))
    return m, directory, messages, instances


def test_spec_instances_become_devices(miot):
    m, _, _, instances = miot
    assert len(instances) == 5
    kinds = {}
    for type_urn, instance in instances.items():
        device = m.discover(instance, address="did-1")
        kinds[type_urn.split(":")[3]] = device.device_type
        assert device.capabilities
    assert kinds == {"magnet-sensor": "contact_sensor", "smoke-sensor": "smoke_detector",
                     "gas-sensor": "gas_detector", "temperature-humidity-sensor": "climate_sensor",
                     "outlet": "plug"}


def test_every_message_decodes(miot):
    m, _, messages, _ = miot
    assert len(messages) == 10
    for message in messages:
        payload = message["payload"]
        params = payload.get("params", payload.get("result"))
        did = (params[0] if isinstance(params, list) else params)["did"]
        result = decode(m, f"miot/{did}/rpc", payload)
        assert_clean(result)
        method = payload.get("method")
        if payload["id"] in EXPECTED:
            assert values(result) == EXPECTED[payload["id"]], message["note"]
        elif method == "get_properties":
            assert result.ignored
        elif method == "set_properties":
            assert [(c.capability, c.value) for c in result.commands] == [("on_off", False)]
        elif method == "action":
            assert [(c.capability, c.value) for c in result.commands] == [("self_test", True)]
        else:  # get_properties response
            assert values(result) == {"on_off": True, "power_w": 1250.5, "energy_kwh": 12.345}
            assert result.acks[0].ok


def test_refusals(miot):
    m, _, _, _ = miot
    frame = {"id": 1, "method": "properties_changed", "params": [{"did": "123456789", "siid": 3, "piid": 1, "value": 140}]}
    assert reasons(decode(m, "miot/123456789/rpc", frame)) == ["out_of_range"]
    frame["params"][0].update(value="97")
    assert reasons(decode(m, "miot/123456789/rpc", frame)) == ["wrong_type"]
    frame["params"][0].update(did="223456789", value=50)
    assert reasons(decode(m, "miot/123456789/rpc", frame)) == ["topic_mismatch"]
    frame["params"][0].update(did="999")
    assert reasons(decode(m, "miot/gateway/gw1/rpc", frame)) == ["unknown_device"]
    fault = {"id": 2, "method": "properties_changed", "params": [{"did": "123456789", "siid": 2, "piid": 3, "value": 9}]}
    assert reasons(decode(m, "miot/123456789/rpc", fault)) == ["invalid_value"]
    error = {"id": 3, "result": [{"did": "323456789", "siid": 9, "piid": 9, "code": -4004}]}
    result = decode(m, "miot/323456789/rpc", error)
    assert reasons(result) == ["device_error"] and result.acks[0].ok is False
    assert reasons(decode(m, "miot/123456789/rpc", {"id": 4, "method": "reboot_everything"})) == ["schema_violation"]


def test_gateway_topic_carries_several_devices(miot):
    m, _, _, _ = miot
    frame = {"id": 9, "method": "properties_changed", "params": [
        {"did": "blt.3.2b3c4d5e6f70", "siid": 2, "piid": 1, "value": 23.0},
        {"did": "123456789", "siid": 2, "piid": 1, "value": False}]}
    result = decode(m, "miot/gateway/gw1/rpc", frame)
    assert_clean(result)
    assert {(r.device_key, r.capability, r.value) for r in result.readings} == {
        ("dev-blt.3.2b3c4d5e6f70", "temperature", 23.0), ("dev-123456789", "smoke", False)}


def test_encode_round_trip(miot):
    m, directory, _, _ = miot
    binding = directory.find("miot", "323456789")
    encoded = m.encode(Command.create(binding.device_key, "on_off", True), binding)
    frame = json.loads(encoded.payload)
    assert encoded.topic == "miot/323456789/set"
    assert frame["method"] == "set_properties" and frame["params"] == [{"did": "323456789", "siid": 2, "piid": 1, "value": True}]
    echo = decode(m, "miot/323456789/rpc", {"id": 5, "method": "properties_changed", "params": frame["params"]})
    assert any(encoded.expected_echo.matches(r) for r in echo.readings)
    with pytest.raises(CommandRejected):
        m.encode(Command.create(binding.device_key, "brightness", 10), binding)
