"""Home Assistant MQTT discovery: every discovery payload and every state/command message."""

from __future__ import annotations

import json

import pytest

from cityweave.devices.adapters.homeassistant import TemplateError, expand, render_template
from cityweave.devices.command import Command, CommandRejected
from cityweave.devices.reading import Quality
from tests.devices.support import (
    adapter,
    assert_clean,
    decode,
    load_json,
    reasons,
    require_fixtures,
    values,
)

# Authored discovery variants: the capability each must produce.
AUTHORED = {"kitchen_smoke": "smoke", "kitchen_gas": "gas", "bathroom_leak": "water_leak",
            "plug_power": "power_w", "plug_energy": "energy_kwh", "room_pm25": "pm2_5",
            "room_co2": "co2", "room_temperature": "temperature"}

# Configs for state messages whose test defines the entity elsewhere (same HA test module).
SUPPLEMENT = {
    ("alarm_control_panel", "alarm/state"): {"state_topic": "alarm/state", "command_topic": "alarm/command"},
    ("alarm_control_panel", "alarm/command"): {"state_topic": "alarm/state", "command_topic": "alarm/command"},
    ("cover", "state-topic"): {"state_topic": "state-topic", "command_topic": "command-topic"},
    ("cover", "command-topic"): {"state_topic": "state-topic", "command_topic": "command-topic"},
    ("light", "test_light_rgb"): {"schema": "json", "state_topic": "test_light_rgb",
                                  "command_topic": "test_light_rgb/set", "brightness": True,
                                  "supported_color_modes": ["rgb"]},
    ("light", "test_light_bright_scale"): {"schema": "json", "state_topic": "test_light_bright_scale",
                                           "command_topic": "test_light_bright_scale/set",
                                           "brightness": True, "brightness_scale": 99},
    ("binary_sensor", "availability-topic"): {"state_topic": "test-topic", "availability_topic": "availability-topic"},
}
SUPPLEMENT[("light", "test_light_rgb/set")] = SUPPLEMENT[("light", "test_light_rgb")]


def test_every_discovery_payload():
    ha, _ = adapter("homeassistant")
    entries = load_json("homeassistant_discovery/discovery.json")
    assert len(entries) == 44
    for entry in entries:
        result = decode(ha, entry["topic"], entry["payload"])
        if entry["expect"] == "invalid":
            assert len(result.rejections) == 1 and not result.discovered, entry["note"]
            assert reasons(result)[0] in ("malformed_json", "invalid_discovery")
            continue
        assert_clean(result)
        assert len(result.discovered) == 1, entry["note"]
        device = result.discovered[0]
        if not entry["payload"]:
            assert "binary_sensor.bla" not in device.profile.get("entities", {})  # withdrawn
            continue
        assert device.capabilities or entry["component"] in ("tag",), entry["note"]
        name = entry["topic"].split("/")[-2]
        if name in AUTHORED:
            assert AUTHORED[name] in device.capability_names


def test_discovery_details():
    ha, directory = adapter("homeassistant")
    entries = {e["note"]: e for e in load_json("homeassistant_discovery/discovery.json")}
    door = decode(ha, entries["door contact with device block"]["topic"],
                  entries["door contact with device block"]["payload"]).discovered[0]
    assert (door.address, door.device_type, door.name) == ("very_unique", "contact_sensor", "xyz_door_sensor")
    expansion = next(e for n, e in entries.items() if n.startswith("abbreviated keys and '~'"))
    switch = decode(ha, expansion["topic"], expansion["payload"]).discovered[0]
    config = switch.profile["entities"]["switch.bla"]["config"]
    assert config["state_topic"] == "test_topic/some/base/topic"
    assert config["command_topic"] == "some/base/topic/test_topic"
    assert [a["topic"] for a in config["availability"]] == ["some/base/topic/avail_item1", "avail_item2/some/base/topic"]
    assert (switch.address, switch.model) == ("5706DF", "Generic")
    directory.add(switch.bind("dev-switch"))
    assert "test_topic/some/base/topic" in ha.subscriptions()
    assert values(decode(ha, "test_topic/some/base/topic", "ON")) == {"on_off@switch.bla": True}
    bundle = next(e for n, e in entries.items() if n.startswith("device-based discovery with a button"))
    device = decode(ha, bundle["topic"], bundle["payload"]).discovered[0]
    assert device.address == "0AFFD2" and {"button_event", "measurement"} <= device.capability_names


def _config_for(entry):
    if entry.get("entity_config"):
        return entry["entity_config"]
    return SUPPLEMENT.get((entry["component"], entry["topic"]))


def test_every_state_message():
    require_fixtures()
    entries = load_json("homeassistant_discovery/states.json")
    assert len(entries) == 55
    discovery = {e["note"]: e for e in load_json("homeassistant_discovery/discovery.json")}
    expansion = next(e for n, e in discovery.items() if n.startswith("abbreviated keys and '~'"))
    for index, entry in enumerate(entries):
        ha, directory = adapter("homeassistant")
        if entry["component"] == "switch":
            device = decode(ha, expansion["topic"], expansion["payload"]).discovered[0]
        else:
            config = _config_for(entry)
            assert config is not None, entry
            device = ha.discover({**config, "platform": entry["component"]}, address=f"fixture-{index}")
        directory.add(device.bind("dev"))
        result = decode(ha, entry["topic"], entry["payload"])
        _check(entry, result)


def _check(entry, result):
    component, expected, payload = entry["component"], entry["expected_ha_state"], entry["payload"]
    got = {k.split("@")[0]: v for k, v in values(result).items()}
    commands = {(c.capability, json.dumps(c.value) if isinstance(c.value, dict) else c.value) for c in result.commands}
    note = f"{component} {payload!r}: {result.rejections}"
    if entry["direction"] == "ha_to_device":
        assert commands, note
        if component == "lock":
            assert commands == {("lock", payload.lower() + "ed")}
        elif component == "alarm_control_panel":
            state = {"ARM_HOME": "armed_home", "ARM_AWAY": "armed_away", "ARM_NIGHT": "armed_night",
                     "ARM_CUSTOM_BYPASS": "armed_custom_bypass", "DISARM": "disarmed"}[payload]
            assert commands == {("alarm_state", state)}
        elif component == "cover":
            assert commands == {("cover_control", payload.lower())}
        elif component == "light":
            assert ("on_off", True) in commands
        return
    if "availability" in entry["note"] or payload in ("online", "available", "not_available"):
        assert [a.online for a in result.availability] == [payload in ("online", "available")], note
        return
    if expected is None:  # HA ignores the message; CityWeave refuses it with a reason
        assert reasons(result) == ["invalid_value"] and not result.readings, note
        return
    if expected == "unknown":
        assert not result.readings and not result.rejections, note
        return
    if component == "binary_sensor":
        assert got == {"binary": expected == "on"}, note
    elif component == "sensor":
        assert got == {"measurement": float(expected)}, note
    elif component == "lock":
        assert got == {"lock": expected}, note
    elif component == "alarm_control_panel":
        assert got == {"alarm_state": expected}, note
    elif component == "switch":
        assert got == {"on_off": True}, note
    elif component == "light":
        assert got["on_off"] is True, note
        if "bad" in payload:
            assert reasons(result) == ["wrong_type"]  # the colour is refused, the state kept
        elif "99" in payload:
            assert got["brightness"] == 100.0
    elif component == "valve":
        number = payload.strip()
        if number.isdigit():
            if int(number) > 100:
                assert reasons(result) == ["out_of_range"] and not result.readings, note  # HA would clamp
            else:
                assert got == {"valve_position": float(number)}, note
        elif expected in ("opening", "closing"):
            assert result.unknown and not result.rejections, note
        else:
            assert got.get("valve_open") is (expected == "open"), note
    elif component == "cover":
        number = payload.strip()
        if number.isdigit():
            if int(number) > 100:
                assert reasons(result) == ["out_of_range"], note  # HA clamps 101 to 100
            else:
                assert got == {"cover_position": float(number)}, note
        else:
            assert got == {"cover_state": expected}, note
    else:
        raise AssertionError(f"unchecked component {component}")


def test_authored_variants_end_to_end():
    ha, directory = adapter("homeassistant")
    for entry in load_json("homeassistant_discovery/discovery.json"):
        if entry["provenance"] == "authored_variant":
            for device in decode(ha, entry["topic"], entry["payload"]).discovered:
                directory.add(device.bind(f"dev-{device.address}"))
    smoke = decode(ha, "cityweave/kitchen/smoke/state", "ON")
    assert [(r.device_key, r.capability, r.value) for r in smoke.readings] == [("dev-cw_kitchen_smoke", "smoke", True)]
    assert values(decode(ha, "cityweave/plug/energy/state", "12.5")) == {"energy_kwh@sensor.cityweave_fixture_plug_energy": 12.5}
    assert reasons(decode(ha, "cityweave/room/co2/state", "-5")) == ["out_of_range"]
    assert reasons(decode(ha, "cityweave/room/pm25/state", "dusty")) == ["wrong_type"]
    assert reasons(decode(ha, "somewhere/else", "1")) == ["unknown_device"]


def test_uncertain_quality_without_unit():
    ha, directory = adapter("homeassistant")
    device = ha.discover({"platform": "sensor", "state_topic": "t", "device_class": "temperature"}, address="x")
    directory.add(device.bind("dev"))
    (reading,) = decode(ha, "t", "21.5").readings
    assert (reading.value, reading.unit, reading.quality) == (21.5, "°C", Quality.UNCERTAIN)


def test_removal_withdraws_the_device():
    ha, _ = adapter("homeassistant")
    decode(ha, "homeassistant/binary_sensor/cityweave_fixture/kitchen_smoke/config",
           {"name": "Kitchen smoke", "device_class": "smoke", "state_topic": "s", "unique_id": "cw_kitchen_smoke"})
    gone = decode(ha, "homeassistant/binary_sensor/cityweave_fixture/kitchen_smoke/config", b"")
    assert gone.discovered[0].removed and gone.discovered[0].address == "cw_kitchen_smoke"


@pytest.mark.parametrize(
    ("template", "payload", "expected"),
    [
        ("{{ value_json.state1.state }}", '{"state1":{"state":"ON"}}', "ON"),
        ("{{ value_json.val }}", '{ "val": "100" }', "100"),
        ("{{ value_json.state | int }}", '{"state":100}', 100),
        ("{{ value_json['a'][1] | float | round(1) }}", '{"a":[0, "2.345"]}', 2.3),
        ("{{ value | upper }}", "on", "ON"),
    ],
)
def test_template_subset(template, payload, expected):
    assert render_template(template, payload) == expected


@pytest.mark.parametrize("template", ["{{ states('sensor.x') }}", "{% if value %}1{% endif %}",
                                      "{{ value_json.missing }}", "{{ value | md5 }}"])
def test_template_outside_the_subset_is_refused(template):
    with pytest.raises(TemplateError):
        render_template(template, '{"a": 1}')


def test_expand_handles_abbreviated_device_keys():
    config = expand({"stat_t": "~/s", "~": "base", "dev": {"ids": ["x"], "mf": "ACME"}})
    assert config == {"state_topic": "base/s", "device": {"identifiers": ["x"], "manufacturer": "ACME"}}


@pytest.mark.parametrize(
    ("config", "capability", "value", "topic", "payload", "echo_topic", "echo"),
    [
        ({"platform": "switch", "state_topic": "s", "command_topic": "c"}, "on_off", True, "c", "ON", "s", "ON"),
        ({"platform": "lock", "state_topic": "state-topic", "command_topic": "command-topic",
          "payload_lock": "LOCK", "payload_unlock": "UNLOCK", "state_locked": "LOCKED", "state_unlocked": "UNLOCKED"},
         "lock", "locked", "command-topic", "LOCK", "state-topic", "LOCKED"),
        ({"platform": "cover", "position_topic": "get-position-topic", "command_topic": "command-topic",
          "set_position_topic": "set-position-topic", "position_open": 100, "position_closed": 0},
         "cover_position", 40, "set-position-topic", "40", "get-position-topic", "40"),
        ({"platform": "valve", "command_topic": "command-topic", "state_topic": "state-topic"},
         "valve_open", False, "command-topic", "CLOSE", "state-topic", "closed"),
        ({"platform": "alarm_control_panel", "state_topic": "alarm/state", "command_topic": "alarm/command"},
         "alarm_state", "armed_away", "alarm/command", "ARM_AWAY", "alarm/state", "armed_away"),
        ({"platform": "light", "schema": "json", "state_topic": "test_light_bright_scale",
          "command_topic": "test_light_bright_scale/set", "brightness": True, "brightness_scale": 99},
         "brightness", 50, "test_light_bright_scale/set", '{"state":"ON","brightness":50}',
         "test_light_bright_scale", '{"state":"ON","brightness":50}'),
        ({"platform": "climate", "current_temperature_topic": "climate/bla/current_temp",
          "temperature_command_topic": "climate/bla/target_temp", "temperature_state_topic": "climate/bla/target"},
         "target_temperature", 21.5, "climate/bla/target_temp", "21.5", "climate/bla/target", "21.5"),
    ],
)
def test_encode_round_trip(config, capability, value, topic, payload, echo_topic, echo):
    ha, directory = adapter("homeassistant")
    directory.add(ha.discover(config, address="fixture").bind("dev"))
    binding = directory.find("homeassistant", "fixture")
    encoded = ha.encode(Command.create("dev", capability, value), binding)
    assert (encoded.topic, encoded.payload.decode()) == (topic, payload)
    state = decode(ha, echo_topic, echo)
    assert_clean(state)
    assert any(encoded.expected_echo.matches(r) for r in state.readings), state.readings


def test_encode_refuses_unsupported():
    ha, directory = adapter("homeassistant")
    directory.add(ha.discover({"platform": "sensor", "state_topic": "t"}, address="s").bind("dev"))
    with pytest.raises(CommandRejected):
        ha.encode(Command.create("dev", "on_off", True), directory.find("homeassistant", "s"))


def test_discovery_memory_is_bounded(monkeypatch):
    ha, _ = adapter("homeassistant")
    monkeypatch.setattr(type(ha), "max_remembered_devices", 2)
    for name in ("a", "b"):
        assert decode(ha, f"homeassistant/sensor/{name}/config", {"state_topic": name}).discovered
    flood = decode(ha, "homeassistant/sensor/c/config", {"state_topic": "c"})
    assert reasons(flood) == ["invalid_discovery"] and not flood.discovered
    assert decode(ha, "homeassistant/sensor/a/config", {"state_topic": "a2"}).discovered  # known ones update
