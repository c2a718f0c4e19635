"""Zigbee2MQTT: the bridge device list, every state message, commands."""

from __future__ import annotations

import json

import pytest

from cityweave.devices.binding import DeviceBinding
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

# The capability each fixture category is about, and the message field that carries it.
KEY_CAPABILITY = {
    "smoke": "smoke", "smoke+co": "smoke", "gas": "gas", "co": "carbon_monoxide",
    "water_leak": "water_leak", "contact": "contact", "motion": "occupancy",
    "vibration": "vibration", "sos": "emergency_call", "presence_radar": "presence",
    "presence_radar+fall": "fall_state", "fall": "fall_state", "plug_metering": "power_w",
    "energy_meter": "energy_kwh", "light_dimmable": "brightness", "light_color_temp": "color_temperature",
    "light_color": "color", "lock": "lock", "cover_curtain": "cover_position",
    "cover_blind": "cover_position", "trv": "target_temperature", "air_quality_voc": "tvoc_ppb",
    "air_quality_co2_voc_hcho": "co2", "air_quality_pm25": "pm2_5", "air_quality_pm25_hcho": "pm2_5",
    "temperature_humidity": "temperature", "water_valve": "valve_open", "siren": "battery",
    "illuminance": "illuminance", "wall_switch": "on_off", "wall_switch_metering": "on_off",
}


@pytest.fixture(scope="module")
def bridge():
    require_fixtures()
    z2m, directory = adapter("zigbee2mqtt")
    listing = load_json("zigbee2mqtt/bridge_devices.json")
    result = decode(z2m, listing["topic"], listing["payload"])
    assert_clean(result)
    for device in result.discovered:
        directory.add(device.bind(f"dev-{device.address}"))
    return z2m, directory, result


def test_bridge_device_list_announces_every_device(bridge):
    _, _, result = bridge
    listing = load_json("zigbee2mqtt/bridge_devices.json")
    expected = [d for d in listing["payload"] if d["type"] != "Coordinator"]
    assert len(result.discovered) == len(expected) == 44
    by_name = {d.name: d for d in result.discovered}
    assert by_name["kitchen/smoke_detector"].device_type == "smoke_detector"
    assert by_name["kitchen/smoke_detector"].aliases == ("kitchen/smoke_detector",)
    assert by_name["kitchen/smoke_detector"].address.startswith("0x")
    assert by_name["bedside_emergency_button"].device_type == "emergency_button"
    assert by_name["elder_bedroom_radar"].device_type == "fall_detector"
    assert by_name["main_water_valve"].device_type == "valve"
    assert by_name["garden_valve"].device_type == "valve"  # a switch whose description says valve
    assert by_name["corridor_siren"].device_type == "siren"  # write-only IAS warning
    assert by_name["kitchen_wall_switch"].device_type == "switch"
    assert {r.endpoint for r in by_name["kitchen_wall_switch"].capabilities if r.capability == "on_off"} == {"left", "right"}
    untyped = [d.name for d in result.discovered if d.device_type is None]
    assert untyped == []
    writable = {(r.capability) for r in by_name["living_room_lamp"].capabilities if r.writable}
    assert {"on_off", "brightness", "color_temperature", "color"} <= writable


def test_definitions_file_describes_every_model():
    z2m, _ = adapter("zigbee2mqtt")
    definitions = load_json("zigbee2mqtt/definitions.json")
    assert len(definitions) == 44
    for definition in definitions:
        device = z2m.discover(definition, address=definition["model"])
        key = KEY_CAPABILITY[definition["category"]]
        if key != "emergency_call" or definition["model"] != "SEB01ZB":
            assert key in device.capability_names or definition["category"] == "sos", definition["model"]
        assert device.device_type is not None, definition["model"]


def test_every_state_message_decodes(bridge):
    z2m, _, _ = bridge
    messages = load_json("zigbee2mqtt/messages.json")
    assert len(messages) == 97
    for message in messages:
        result = decode(z2m, message["topic"], message["payload"])
        assert_clean(result)
        assert result.device_key and result.device_key.startswith("dev-0x")
        assert result.readings, message["topic"]
        capability = KEY_CAPABILITY[message["category"]]
        assert capability in {r.capability for r in result.readings}, (message["topic"], message["note"])
        # Everything in the payload is either a reading or kept raw, never lost.
        sources = {r.source for r in result.readings} | set(result.unknown)
        # lock_state is finer than state; a running motor says more than the last OPEN/CLOSE.
        payload = message["payload"]
        redundant = {"state"} if "lock_state" in payload or payload.get("running") else set()
        assert set(payload) - redundant <= sources, set(payload) - sources
        if result.unknown:
            assert result.raw == json.dumps(message["payload"]).encode()


def _message(topic, predicate=lambda p: True):
    return next(m for m in load_json("zigbee2mqtt/messages.json") if m["topic"] == topic and predicate(m["payload"]))


def test_smoke_alarm_and_self_test(bridge):
    z2m, _, _ = bridge
    alarm = decode(z2m, "zigbee2mqtt/kitchen/smoke_detector",
                   _message("zigbee2mqtt/kitchen/smoke_detector", lambda p: p["smoke"])["payload"])
    smoke = next(r for r in alarm.readings if r.capability == "smoke")
    assert smoke.value is True and smoke.quality is Quality.GOOD and smoke.unit is None
    assert smoke.device_key == "dev-0x00158d0003a1b2c1"
    assert values(alarm)["battery_voltage"] == 3.085  # mV converted
    assert alarm.unknown == {"power_outage_count": 0, "sensitivity": "medium"}
    testing = decode(z2m, "zigbee2mqtt/kitchen/smoke_detector",
                     _message("zigbee2mqtt/kitchen/smoke_detector", lambda p: p["test"])["payload"])
    assert next(r for r in testing.readings if r.capability == "smoke").quality is Quality.TEST


@pytest.mark.parametrize(
    ("topic", "field", "expected"),
    [
        ("zigbee2mqtt/front_door", "contact", {True: True, False: False}),  # contact made = closed
        ("zigbee2mqtt/bathroom/water_leak", "water_leak", {True: True, False: False}),
        ("zigbee2mqtt/living_room_co", "carbon_monoxide", {True: True, False: False}),
    ],
)
def test_binary_sensors_keep_their_meaning(bridge, topic, field, expected):
    z2m, _, _ = bridge
    for message in [m for m in load_json("zigbee2mqtt/messages.json") if m["topic"] == topic]:
        result = decode(z2m, topic, message["payload"])
        assert values(result)[field] is expected[message["payload"][field]]


def test_actuators_lights_and_multi_endpoint(bridge):
    z2m, _, _ = bridge
    lamp = values(decode(z2m, "zigbee2mqtt/living_room_lamp", _message("zigbee2mqtt/living_room_lamp")["payload"]))
    assert lamp["on_off"] is True and lamp["brightness"] == pytest.approx(70.9, abs=0.1)  # 180/254
    assert lamp["color_temperature"] == 2703 and lamp["color"]["h"] == 36
    switch = values(decode(z2m, "zigbee2mqtt/kitchen_wall_switch",
                           _message("zigbee2mqtt/kitchen_wall_switch", lambda p: "action" in p)["payload"]))
    assert switch["on_off@left"] is True and switch["on_off@right"] is True
    assert switch["button_event@right"] == "single"
    lock = values(decode(z2m, "zigbee2mqtt/front_door_lock", _message("zigbee2mqtt/front_door_lock")["payload"]))
    assert lock["lock"] == "locked"
    curtain = values(decode(z2m, "zigbee2mqtt/living_room_curtain",
                            _message("zigbee2mqtt/living_room_curtain", lambda p: p["running"])["payload"]))
    assert curtain["cover_state"] == "closing" and curtain["cover_position"] == 60


def test_elderly_care_signals(bridge):
    z2m, _, _ = bridge
    sos = values(decode(z2m, "zigbee2mqtt/bedside_emergency_button",
                        _message("zigbee2mqtt/bedside_emergency_button")["payload"]))
    assert sos["emergency_call"] is True and sos["button_event"] == "single"
    panic = values(decode(z2m, "zigbee2mqtt/bathroom_sos", _message("zigbee2mqtt/bathroom_sos")["payload"]))
    assert panic["emergency_call"] is True
    fall = values(decode(z2m, "zigbee2mqtt/elder_bathroom_fall",
                         _message("zigbee2mqtt/elder_bathroom_fall", lambda p: p["fall_status"] == "fall_alarm")["payload"]))
    assert fall["fall"] is True and fall["fall_state"] == "fall"
    maybe = values(decode(z2m, "zigbee2mqtt/elder_bedroom_radar",
                          _message("zigbee2mqtt/elder_bedroom_radar", lambda p: p["fall_down_status"] == "maybe_fall")["payload"]))
    assert maybe["fall"] is False and maybe["fall_state"] == "suspected"


def test_refusals(bridge):
    z2m, _, _ = bridge
    assert reasons(decode(z2m, "zigbee2mqtt/stranger", {"smoke": True})) == ["unknown_device"]
    spoofed = decode(z2m, "zigbee2mqtt/front_door", {"contact": False, "device": {"ieeeAddr": "0x00124b0025e6f7a8"}})
    assert reasons(spoofed) == ["topic_mismatch"] and not spoofed.readings
    bad = decode(z2m, "zigbee2mqtt/hallway_smoke", {"smoke": "yes", "battery": 150, "linkquality": 80})
    assert sorted(reasons(bad)) == ["invalid_value", "out_of_range"]
    assert values(bad) == {"link_quality": 80}
    assert reasons(decode(z2m, "zigbee2mqtt/hallway_smoke", b"{not json")) == ["malformed_json"]
    assert reasons(decode(z2m, "zigbee2mqtt/hallway_smoke", [1, 2])) == ["schema_violation"]


def test_availability_bridge_state_and_leave(bridge):
    z2m, _, _ = bridge
    offline = decode(z2m, "zigbee2mqtt/kitchen/smoke_detector/availability", {"state": "offline"})
    assert [(a.address, a.online) for a in offline.availability] == [("0x00158d0003a1b2c1", False)]
    assert decode(z2m, "zigbee2mqtt/hallway_smoke/availability", "online").availability[0].online
    assert decode(z2m, "zigbee2mqtt/bridge/state", {"state": "online"}).availability[0].device_key is None
    left = decode(z2m, "zigbee2mqtt/bridge/event",
                  {"type": "device_leave", "data": {"ieee_address": "0x0015bc001b02c3d4", "friendly_name": "hallway_smoke"}})
    assert left.discovered[0].removed and left.discovered[0].address == "0x0015bc001b02c3d4"
    assert decode(z2m, "zigbee2mqtt/bridge/logging", {"level": "info"}).ignored


@pytest.mark.parametrize(
    ("name", "capability", "value", "endpoint", "payload", "echo"),
    [
        ("kettle_plug", "on_off", True, None, {"state": "ON"}, {"state": "ON"}),
        ("kitchen_wall_switch", "on_off", False, "right", {"state_right": "OFF"}, {"state_right": "OFF"}),
        ("hall_ceiling_light", "brightness", 50, None, {"brightness": 127}, {"brightness": 127, "state": "ON"}),
        ("bedroom_ceiling_light", "color_temperature", 2700, None, {"color_temp": 370}, {"color_temp": 370}),
        ("living_room_curtain", "cover_position", 40, None, {"position": 40}, {"position": 40}),
        ("front_door_lock", "lock", "unlocked", None, {"state": "UNLOCK"}, {"state": "UNLOCK", "lock_state": "unlocked"}),
        ("main_water_valve", "valve_open", False, None, {"state": "CLOSE"}, {"state": "CLOSE"}),
        ("garden_valve", "valve_open", True, None, {"state": "ON"}, {"state": "ON"}),
        ("bedroom_radiator", "target_temperature", 22.5, None, {"occupied_heating_setpoint": 22.5},
         {"occupied_heating_setpoint": 22.5}),
        ("entrance_siren", "siren", True, None, {"alarm": True}, {"alarm": True}),
    ],
)
def test_encode_round_trip(bridge, name, capability, value, endpoint, payload, echo):
    z2m, directory, _ = bridge
    binding = directory.find("zigbee2mqtt", name)
    command = Command.create(binding.device_key, capability, value, endpoint)
    encoded = z2m.encode(command, binding)
    assert encoded.topic == f"zigbee2mqtt/{name}/set"
    assert json.loads(encoded.payload) == payload
    state = decode(z2m, f"zigbee2mqtt/{name}", echo)
    assert_clean(state)
    assert any(encoded.expected_echo.matches(r) for r in state.readings), (encoded.expected_echo, state.readings)


def test_encode_refuses_what_the_device_cannot_do(bridge):
    z2m, directory, _ = bridge
    sensor = directory.find("zigbee2mqtt", "hallway_smoke")
    with pytest.raises(CommandRejected):
        z2m.encode(Command.create(sensor.device_key, "on_off", True), sensor)
    siren = directory.find("zigbee2mqtt", "corridor_siren")
    encoded = z2m.encode(Command.create(siren.device_key, "siren", True), siren)
    assert json.loads(encoded.payload)["warning"]["mode"] == "emergency" and encoded.expected_echo is None
    with pytest.raises(CommandRejected):
        Command.create("x", "smoke", True)  # read-only capability


def test_observed_commands_from_other_controllers(bridge):
    z2m, _, _ = bridge
    seen = decode(z2m, "zigbee2mqtt/kettle_plug/set", {"state": "OFF"})
    assert [(c.capability, c.value) for c in seen.commands] == [("on_off", False)]


def test_decoding_without_exposes_uses_common_names():
    z2m, _ = adapter("zigbee2mqtt", [DeviceBinding("dev-x", "zigbee2mqtt", "0xabc", aliases=("porch",))])
    result = decode(z2m, "zigbee2mqtt/porch", {"state": "ON", "temperature": 12.5, "voltage": 3000, "mystery": 1})
    assert values(result) == {"on_off": True, "temperature": 12.5, "battery_voltage": 3.0}
    assert result.unknown == {"mystery": 1}
