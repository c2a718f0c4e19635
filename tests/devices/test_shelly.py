"""Shelly Gen1 and Gen2+: device dumps, RPC responses, notifications, commands."""

from __future__ import annotations

import json

import pytest

from cityweave.devices.binding import DeviceBinding
from cityweave.devices.command import Command
from tests.devices.support import (
    adapter,
    assert_clean,
    decode,
    fixture_files,
    load_json,
    path_of,
    reasons,
    require_fixtures,
    values,
)

# Per device dump: (device type, a reading that must appear).
EXPECTED = {
    "SHAIR-1": ("switch", ("on_off@relay:0", False)),
    "SHGS-1": ("gas_detector", ("gas", False)),
    "SHPLG-S": ("plug", ("energy_kwh@relay:0", 0.043867)),
    "SHVIN-1": ("light", ("brightness@light:0", 100.0)),
    "SNGW-BT01": (None, ("rssi", None)),
    "SNSW-001P16EU": ("switch", ("energy_kwh@switch:0", 0.110046)),
    "SNPL-00110IT": ("plug", ("power_w@switch:0", 0.8)),
    "SNPL-00112EU": ("plug", ("current@switch:0", 0.121)),
    "SPEM-003CEBEU": ("electricity_meter", ("power_w@em:0", 558.965)),
    "SPSW-003XE16EU": ("switch", ("on_off@switch:2", False)),
    "SPSW-004PE16EU": ("switch", ("voltage@switch:3", 121.8)),
    "SAWD-0A1XX10EU1": ("climate", ("target_temperature@thermostat:0", 21.0)),
    "S4SN-0U61X": ("presence_sensor", ("occupant_count@presencezone:200", 1)),
}


def _model(document):
    info = document["shelly"]
    return info.get("model") or info.get("type")


@pytest.mark.parametrize("path", fixture_files("shelly/aioshelly_fixtures/*.json", "shelly/ha_core_fixtures/*.json"))
def test_device_dump_discovers_and_decodes(path):
    document = json.loads(path_of(path).read_text("utf-8"))
    shelly, directory = adapter("shelly")
    device = shelly.discover(document)
    device_type, (key, expected) = EXPECTED[_model(document)]
    assert device.device_type == device_type
    directory.add(device.bind("dev-1"))
    if device.profile["gen"] == 1:
        result = decode(shelly, f"shellies/{device.address}/info", document["status"])
    else:
        frame = {"src": device.address, "dst": "cityweave", "method": "NotifyFullStatus",
                 "params": {"ts": 1772352900.0, **document["status"]}}
        result = decode(shelly, f"{device.profile['topic_prefix']}/events/rpc", frame)
    assert_clean(result)
    assert result.device_key == "dev-1"
    got = values(result)
    assert key in got
    if expected is not None:
        assert got[key] == pytest.approx(expected)
    # Every capability the discovery promised is actually produced by the status.
    assert {r.capability for r in device.capabilities} - {"cover_control"} <= {r.capability for r in result.readings}


def test_pro_3em_phases_and_kwh():
    document = load_json("shelly/aioshelly_fixtures/gen2_Shelly Pro 3EM_SPEM-003CEBEU_20231219-134001-1.1.0-g34b5d4f.json")
    shelly, directory = adapter("shelly")
    directory.add(shelly.discover(document).bind("meter"))
    got = values(decode(shelly, "shellypro3em-aabbccddeeff/events/rpc",
                        {"src": "shellypro3em-aabbccddeeff", "method": "NotifyStatus", "params": document["status"]}))
    assert got["power_w@em:0:a"] == 375.5 and got["voltage@em:0:c"] == 229.2
    assert got["energy_kwh@em:0"] == pytest.approx(2589.77339)  # 2 589 773.39 Wh
    assert got["energy_exported_kwh@em:0:c"] == pytest.approx(0.98591)
    assert "rssi" not in got  # Wi-Fi off: rssi 0 is not a signal level


RPC = "shelly/aioshelly_rpc_fixtures"


@pytest.fixture
def rpc_world():
    require_fixtures()
    shelly, directory = adapter("shelly")
    return shelly, directory


@pytest.mark.parametrize("path", fixture_files(f"{RPC}/*/*"))
def test_rpc_fixture_decodes(path, rpc_world):
    path = path_of(path)
    shelly, directory = rpc_world
    device, method = path.parent.name, path.name
    body = json.loads(path.read_text("utf-8"))
    device_id = f"{device}-aabbccddeeff"
    if method in ("Shelly.GetDeviceInfo", "shelly.json"):
        found = shelly.discover(body)
        assert found.address == body["id"] and found.manufacturer == "Shelly"
        return
    if isinstance(body, dict) and "src" in body:  # a full JSON-RPC response frame
        directory.add(DeviceBinding("dev", "shelly", body["src"]))
        result = decode(shelly, f"{body['dst']}/rpc", body)
        assert result.acks and result.acks[0].request_id == str(body["id"])
        if "error" in body:
            assert reasons(result) == ["device_error"] and result.acks[0].ok is False
        else:
            assert_clean(result)
            assert result.acks[0].ok is True
        return
    directory.add(DeviceBinding("dev", "shelly", device_id))
    if method == "Cover.GetStatus":
        result = decode(shelly, f"{device_id}/status/cover:0", body)
        assert values(result)["cover_state@cover:0"] == "closing"
        assert values(result)["cover_position@cover:0"] == 51
    else:  # a bare result: wrap it as the response to a CityWeave request
        result = decode(shelly, "cityweave/rpc", {"id": 7, "src": device_id, "dst": "cityweave", "result": body})
        assert result.acks[0].ok
        if method == "Shelly.GetStatus":
            assert result.readings
        if method == "Shelly.GetComponents" and body["components"]:
            assert values(result)["target_temperature@blutrv:200"] == 19
        if method in ("Shelly.GetConfig", "Shelly.ListMethods", "BluTrv.GetRemoteConfig"):
            assert result.unknown and result.raw  # understood as settings, kept raw
    assert_clean(result)


def test_gateway_discovery_uses_the_configured_prefix():
    shelly, directory = adapter("shelly")
    info = load_json(f"{RPC}/shellyblugatewaygen3/Shelly.GetDeviceInfo")
    config = load_json(f"{RPC}/shellyblugatewaygen3/Shelly.GetConfig")
    status = load_json(f"{RPC}/shellyblugatewaygen3/Shelly.GetStatus")
    device = shelly.discover({"shelly": info, "config": config, "status": status})
    assert device.aliases == ("shellies-gen3/shelly-blu-gateway-gen3-78742c",)
    directory.add(device.bind("gw"))
    assert "shellies-gen3/shelly-blu-gateway-gen3-78742c/#" in shelly.subscriptions()
    frame = {"src": info["id"], "method": "NotifyStatus", "params": {"blutrv:200": {"current_C": 20.5, "pos": 35}}}
    got = values(decode(shelly, "shellies-gen3/shelly-blu-gateway-gen3-78742c/events/rpc", frame))
    assert got == {"temperature@blutrv:200": 20.5, "valve_position@blutrv:200": 35.0}


def test_notifications_file():
    notes = load_json("shelly/notifications.json")
    shelly, directory = adapter("shelly")
    mock = next(s["value"] for s in notes["status_snapshots"] if s["name"] == "MOCK_SHELLY_RPC")
    config = next(s["value"] for s in notes["status_snapshots"] if s["name"] == "MOCK_CONFIG")
    device = shelly.discover({"shelly": mock, "config": config})
    assert device.device_type == "curtain"
    directory.add(device.bind("dev-2pm"))
    example = notes["frame_example"]
    assert values(decode(shelly, example["topic"], example["payload"])) == {"button_event@input:0": "single"}
    for entry in notes["notify_event_params"]:
        frame = {"src": mock["id"], "dst": "x", "method": entry["method"], "params": entry["params"]}
        result = decode(shelly, f"{mock['id']}/events/rpc", frame)
        assert_clean(result)
        if "single_push" in json.dumps(entry["params"]):
            assert values(result) == {"button_event@input:0": "single"}
        else:
            assert not result.readings  # script events kept raw, config_changed ignored
    status = next(s["value"] for s in notes["status_snapshots"] if s["name"] == "MOCK_STATUS_RPC")
    got = values(decode(shelly, f"{mock['id']}/events/rpc",
                        {"src": mock["id"], "method": "NotifyFullStatus", "params": status}))
    assert got["cover_position@cover:0"] == 50 and got["brightness@light:0"] == 53 and got["rssi"] == -63


def test_unbound_full_status_is_a_discovery_and_spoofing_is_refused():
    shelly, directory = adapter("shelly")
    frame = {"src": "shellyplus1-112233445566", "method": "NotifyFullStatus",
             "params": {"switch:0": {"id": 0, "output": True}}}
    result = decode(shelly, "shellyplus1-112233445566/events/rpc", frame)
    assert reasons(result) == ["unknown_device"] and not result.readings
    assert result.discovered[0].address == "shellyplus1-112233445566"
    directory.add(result.discovered[0].bind("dev"))
    spoof = decode(shelly, "shellyplus1-112233445566/events/rpc",
                   {**frame, "src": "shellyplus1-ffffffffffff"})
    assert reasons(spoof) == ["topic_mismatch"] and not spoof.readings


@pytest.mark.parametrize(
    ("capability", "value", "endpoint", "method", "params", "echo"),
    [
        ("on_off", True, "switch:0", "Switch.Set", {"id": 0, "on": True}, {"switch:0": {"id": 0, "output": True}}),
        ("cover_position", 30, "cover:0", "Cover.GoToPosition", {"id": 0, "pos": 30},
         {"cover:0": {"id": 0, "current_pos": 30, "state": "stopped"}}),
        ("brightness", 40, "light:0", "Light.Set", {"id": 0, "brightness": 40},
         {"light:0": {"id": 0, "output": True, "brightness": 40}}),
    ],
)
def test_encode_rpc_round_trip(capability, value, endpoint, method, params, echo):
    shelly, directory = adapter("shelly")
    binding = DeviceBinding("dev", "shelly", "shellyplus2pm-123456789abc",
                            profile={"gen": 2, "topic_prefix": "shellyplus2pm-123456789abc",
                                     "components": ["cover:0", "light:0", "switch:0"]})
    directory.add(binding)
    command = Command.create("dev", capability, value, endpoint)
    encoded = shelly.encode(command, binding)
    frame = json.loads(encoded.payload)
    assert encoded.topic == "shellyplus2pm-123456789abc/rpc"
    assert (frame["method"], frame["params"], frame["src"], frame["id"]) == (method, params, "cityweave", command.id)
    state = decode(shelly, "shellyplus2pm-123456789abc/events/rpc",
                   {"src": "shellyplus2pm-123456789abc", "method": "NotifyStatus", "params": echo})
    assert any(encoded.expected_echo.matches(r) for r in state.readings)
    reply = decode(shelly, "cityweave/rpc", {"id": command.id, "src": "shellyplus2pm-123456789abc",
                                             "dst": "cityweave", "result": None})
    assert reply.acks[0].request_id == command.id and reply.acks[0].ok
    seen = decode(shelly, "shellyplus2pm-123456789abc/rpc", frame)  # our own request, as others see it
    assert [(c.capability, c.endpoint) for c in seen.commands] == [(capability, endpoint)]


def test_gen1_topics_and_command():
    shelly, directory = adapter("shelly")
    document = load_json("shelly/aioshelly_fixtures/gen1_Shelly Plug S_SHPLG-S_20230913-113421-v1.14.0-gcb84623.json")
    device = shelly.discover(document)
    directory.add(device.bind("plug"))
    base = f"shellies/{device.address}"
    assert values(decode(shelly, f"{base}/relay/0", "on")) == {"on_off@relay:0": True}
    assert values(decode(shelly, f"{base}/relay/0/power", "12.5")) == {"power_w@relay:0": 12.5}
    assert values(decode(shelly, f"{base}/relay/0/energy", "60000")) == {"energy_kwh@relay:0": 1.0}
    assert decode(shelly, f"{base}/online", "false").availability[0].online is False
    encoded = shelly.encode(Command.create("plug", "on_off", True, "relay:0"), directory.find("shelly", device.address))
    assert (encoded.topic, encoded.payload) == (f"{base}/relay/0/command", b"on")
    assert any(encoded.expected_echo.matches(r) for r in decode(shelly, f"{base}/relay/0", "on").readings)
    gas = shelly.discover(load_json("shelly/aioshelly_fixtures/gen1_Shelly Gas_SHGS-1_20230913-114427-v1.14.0-gcb84623.json"))
    directory.add(gas.bind("gas"))
    assert values(decode(shelly, f"shellies/{gas.address}/sensor/gas", "heavy")) == {"gas": True}
    assert reasons(decode(shelly, f"shellies/{gas.address}/sensor/gas", "purple")) == ["invalid_value"]
    assert decode(shelly, "shellies/announce", {"id": "shellyht-AABBCC", "model": "SHHT-1", "mac": "AABBCC"}).discovered
