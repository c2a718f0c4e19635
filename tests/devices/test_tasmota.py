"""Tasmota: discovery, every message of the fixture file, commands."""

from __future__ import annotations

import pytest

from cityweave.devices.command import Command, CommandRejected
from tests.devices.support import adapter, assert_clean, decode, load_json, reasons, values

MAC, TOPIC = "00000049A3BC", "tasmota_49A3BC"


def _messages(kind=None):
    return [m for m in load_json("tasmota/messages.json") if kind is None or m["kind"] == kind]


def _configs():
    return {m["note"]: m["payload_json"] for m in _messages("discovery_config")}


def _bound(note_part: str):
    tasmota, directory = adapter("tasmota")
    config = next(c for note, c in _configs().items() if note_part in note)
    directory.add(tasmota.discover(config).bind("dev-tasmota"))
    return tasmota, directory


def test_discovery_configs_describe_the_device():
    tasmota, _ = adapter("tasmota")
    configs = _messages("discovery_config")
    assert len(configs) == 7
    kinds = {}
    for message in configs:
        result = decode(tasmota, message["topic"], message["payload"])
        assert_clean(result)
        (device,) = result.discovered
        assert device.address == MAC and device.aliases == (TOPIC,)
        kinds[message["note"][:20]] = (device.device_type, sorted(device.capability_names))
    assert ("light", ["brightness", "color_temperature", "on_off", "rssi"]) in kinds.values()
    assert ("curtain", ["cover_control", "cover_position", "cover_state", "rssi"]) in kinds.values()
    assert any("binary" in caps for _, caps in kinds.values())
    assert any("battery" in caps for _, caps in kinds.values())


def test_sensor_discovery_lists_sensor_capabilities():
    tasmota, _ = adapter("tasmota")
    for message in _messages("discovery_sensors"):
        result = decode(tasmota, message["topic"], message["payload"])
        assert_clean(result)
        assert result.discovered[0].capabilities, message["note"]


def test_every_message_decodes():
    tasmota, _ = _bound("RGBW")
    handled = 0
    for message in _messages():
        if message["kind"].startswith("discovery"):
            continue
        result = decode(tasmota, message["topic"], message["payload"])
        assert_clean(result)
        assert result.device_key == "dev-tasmota"
        assert result.readings or result.availability or result.commands or result.unknown, message["note"]
        handled += 1
    assert handled == 49


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('{"POWER":"ON","Dimmer":50}', {"on_off@1": True, "brightness@1": 50.0}),
        ('{"POWER":"ON","CT":300}', {"on_off@1": True, "color_temperature@1": 3333}),
        ('{"POWER":"ON","Dimmer":50,"HSBColor":"30,100,50","White":0}',
         {"on_off@1": True, "brightness@1": 50.0, "color@1": {"h": 30, "s": 100}}),
        ('{"Wifi":{"Signal":20.5}}', {"rssi": 20.5}),
        ('{"BatteryPercentage":55}', {"battery": 55.0}),
    ],
)
def test_state_messages(payload, expected):
    tasmota, _ = _bound("RGBW")
    assert values(decode(tasmota, f"{TOPIC}/tele/STATE", payload)) == expected


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('{"DHT11":{"Temperature":20.5}}', {"temperature@DHT11": 20.5}),
        ('{"ENERGY":{"Total":{"Phase1":1.2, "Phase2":3.4},"TotalStartTime":"2018-11-23T15:33:47"}}',
         {"energy_kwh@1": 1.2, "energy_kwh@2": 3.4}),
        ('{"ENERGY":{"ApparentPower":[1.2,3.4,5.6]}}',
         {"apparent_power@1": 1.2, "apparent_power@2": 3.4, "apparent_power@3": 5.6}),
        ('{"ANALOG":{"CTEnergy1":{"Energy":0.5,"Power":2300,"Voltage":230,"Current":10}}}',
         {"energy_kwh@ANALOG.CTEnergy1": 0.5, "power_w@ANALOG.CTEnergy1": 2300.0,
          "voltage@ANALOG.CTEnergy1": 230.0, "current@ANALOG.CTEnergy1": 10.0}),
        ('{"Shutter1":{"Position":54,"Direction":-1}}', {"cover_position@1": 54.0, "cover_state@1": "closing"}),
        ('{"Switch1":"ON"}', {"binary@switch1": True}),
    ],
)
def test_sensor_messages(payload, expected):
    tasmota, _ = _bound("RGBW")
    assert values(decode(tasmota, f"{TOPIC}/tele/SENSOR", payload)) == expected


def test_unknown_sensor_fields_are_kept_raw():
    tasmota, _ = _bound("RGBW")
    result = decode(tasmota, f"{TOPIC}/tele/SENSOR", '{"TX23":{"Speed":{"Act":"12.3"},"Dir": {"Card": "WSW"}}}')
    assert not result.readings and set(result.unknown) == {"TX23.Speed", "TX23.Dir"}
    assert result.raw is not None


def test_lwt_uses_the_configured_texts():
    tasmota, _ = _bound("RGBW")
    assert decode(tasmota, f"{TOPIC}/tele/LWT", "Offline").availability[0].online is False
    assert reasons(decode(tasmota, f"{TOPIC}/tele/LWT", "Gone")) == ["invalid_value"]


def test_both_full_topic_layouts_and_unknown_devices():
    tasmota, _ = _bound("RGBW")
    assert values(decode(tasmota, f"tele/{TOPIC}/STATE", '{"POWER":"OFF"}')) == {"on_off@1": False}
    assert reasons(decode(tasmota, "tele/other_device/STATE", '{"POWER":"OFF"}')) == ["unknown_device"]
    assert reasons(decode(tasmota, f"{TOPIC}/tele/SENSOR", '{"DHT11":{"Temperature":"hot"}}')) == ["wrong_type"]
    assert reasons(decode(tasmota, f"{TOPIC}/tele/SENSOR", '{"DHT11":{"Humidity":140}}')) == ["out_of_range"]


def test_observed_commands_match_the_fixture():
    tasmota, _ = _bound("RGBW")
    seen = []
    for message in _messages("command"):
        result = decode(tasmota, message["topic"], message["payload"])
        seen += [(c.capability, c.value, c.endpoint) for c in result.commands]
    assert ("on_off", True, "1") in seen and ("on_off", False, "1") in seen
    assert ("brightness", 75.0, None) in seen
    assert ("cover_position", 99.0, "1") in seen and ("cover_control", "close", "1") in seen


@pytest.mark.parametrize(
    ("config", "capability", "value", "topic", "payload", "echo_topic", "echo"),
    [
        ("relay forced", "on_off", True, f"{TOPIC}/cmnd/POWER1", b"ON", f"{TOPIC}/stat/RESULT", '{"POWER1":"ON"}'),
        ("relay forced", "on_off", False, f"{TOPIC}/cmnd/POWER1", b"OFF", f"{TOPIC}/stat/POWER", "OFF"),
        ("RGBW", "brightness", 75, f"{TOPIC}/cmnd/Dimmer", b"75", f"{TOPIC}/stat/RESULT", '{"POWER":"ON","Dimmer":75}'),
        ("2-channel CT", "color_temperature", 2700, f"{TOPIC}/cmnd/CT", b"370", f"{TOPIC}/stat/RESULT", '{"CT":370}'),
        ("shutter", "cover_position", 99, f"{TOPIC}/cmnd/ShutterPosition1", b"99", f"{TOPIC}/stat/RESULT",
         '{"Shutter1":{"Position":99,"Direction":0}}'),
    ],
)
def test_encode_round_trip(config, capability, value, topic, payload, echo_topic, echo):
    tasmota, directory = _bound(config)
    binding = directory.find("tasmota", TOPIC)
    encoded = tasmota.encode(Command.create(binding.device_key, capability, value), binding)
    assert (encoded.topic, encoded.payload) == (topic, payload)
    state = decode(tasmota, echo_topic, echo)
    assert_clean(state)
    assert any(encoded.expected_echo.matches(r) for r in state.readings)


def test_encode_matches_the_fixture_commands_and_refuses_missing_relays():
    tasmota, directory = _bound("relay forced")
    binding = directory.find("tasmota", TOPIC)
    close = tasmota.encode(Command.create(binding.device_key, "cover_control", "close"), binding)
    assert (close.topic, close.payload) == (f"{TOPIC}/cmnd/ShutterClose1", b"")  # as in the fixture
    bare, bare_directory = _bound("Tasmota native discovery config")
    no_relays = bare_directory.find("tasmota", TOPIC)
    with pytest.raises(CommandRejected):
        bare.encode(Command.create(no_relays.device_key, "on_off", True), no_relays)
