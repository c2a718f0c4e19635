"""The capability registry, validation and the device types built on it."""

from __future__ import annotations

import math

import pytest

from cityweave.devices import capabilities, types
from cityweave.devices.capabilities import CAPABILITIES, Direction, ValueType, validate
from cityweave.devices.reasons import Reason
from cityweave.devices.units import UnitError, convert, normalize_unit

# Every capability the issue names, by the name the registry gives it.
ISSUE_CAPABILITIES = [
    "on_off", "brightness", "color_temperature", "contact", "motion", "occupancy", "smoke", "gas",
    "gas_ppm", "carbon_monoxide", "co_ppm", "water_leak", "valve_position", "valve_open", "lock",
    "temperature", "humidity", "pm2_5", "pm10", "co2", "tvoc", "formaldehyde", "illuminance",
    "power_w", "energy_kwh", "voltage", "current", "water_m3", "gas_m3", "battery", "rssi",
    "link_quality", "hvac_mode", "target_temperature", "cover_position", "emergency_call", "fall",
    "heart_rate", "blood_pressure", "spo2", "parking_occupied", "fill_level", "charging_state",
    # what the fixtures need besides
    "vibration", "tamper", "presence", "pressure", "aqi", "child_lock", "siren", "alarm_state",
    "button_event", "battery_low", "camera_event", "doorbell", "plate_number",
]
ISSUE_TYPES = [
    "light", "plug", "lock", "contact_sensor", "smoke_detector", "gas_detector", "water_leak_sensor",
    "valve", "climate", "curtain", "electricity_meter", "water_meter", "gas_meter",
    "air_quality_monitor", "emergency_button", "fall_detector", "health_monitor", "doorbell",
    "camera", "siren", "parking_sensor", "locker", "charger", "street_light", "bin_sensor", "gate",
]


@pytest.mark.parametrize("name", ISSUE_CAPABILITIES)
def test_issue_capability_exists(name):
    assert name in CAPABILITIES


@pytest.mark.parametrize("name", ISSUE_TYPES)
def test_issue_device_type_exists_and_is_consistent(name):
    device_type = types.get(name)
    assert device_type.required or device_type.required_any
    assert device_type.capabilities <= CAPABILITIES.keys()


def test_registry_is_well_formed():
    assert len(CAPABILITIES) >= 90
    for cap in CAPABILITIES.values():
        assert cap.name.islower() and " " not in cap.name
        if cap.value_type is ValueType.ENUM:
            assert cap.enum and all(v == v.lower() for v in cap.enum)
        if cap.minimum is not None and cap.maximum is not None:
            assert cap.minimum < cap.maximum
        if cap.unit is not None:
            assert normalize_unit(cap.unit) == cap.unit, f"{cap.name} unit {cap.unit} is not canonical"
    aliases = [a for c in CAPABILITIES.values() for a in c.aliases]
    assert len(aliases) == len(set(aliases)) and not set(aliases) & CAPABILITIES.keys()


def test_units_and_directions_where_it_matters():
    assert capabilities.get("power_w").unit == "W"
    assert capabilities.get("energy_kwh").unit == "kWh"
    assert capabilities.get("water_m3").unit == "m³"
    assert capabilities.get("pm2_5").unit == "µg/m³"
    assert capabilities.get("blood_pressure").unit == "mmHg"
    assert capabilities.get("heart_rate").unit == "bpm"
    assert capabilities.get("rssi").unit == "dBm"
    assert capabilities.get("smoke").direction is Direction.READ
    assert capabilities.get("on_off").writable and capabilities.get("on_off").readable
    assert capabilities.get("cover_control").writable and not capabilities.get("cover_control").readable
    assert capabilities.get("smoke").safety and capabilities.get("emergency_call").safety


def test_aliases_resolve_to_ha_and_matter_names():
    assert capabilities.get("pm25").name == "pm2_5"
    assert capabilities.get("carbon_dioxide").name == "co2"
    assert capabilities.get("moisture").name == "water_leak"
    assert capabilities.get("power").name == "power_w"
    assert capabilities.find("no_such_thing") is None


@pytest.mark.parametrize(
    ("capability", "value", "unit", "expected"),
    [
        ("temperature", 21.5, None, 21.5),
        ("temperature", "21.5", None, 21.5),
        ("temperature", 70, "°F", pytest.approx(21.111, abs=1e-3)),
        ("temperature", 22, "℃", 22.0),
        ("energy_kwh", 1500, "Wh", 1.5),
        ("power_w", 1.2, "kW", 1200.0),
        ("battery_voltage", 3050, "mV", 3.05),
        ("water_m3", 250, "L", 0.25),
        ("formaldehyde", 41, "ug/m3", 0.041),
        ("color_temperature", 250, "mired", 4000),
        ("smoke", "ON", None, True),
        ("smoke", 0, None, False),
        ("lock", "LOCKED", None, "locked"),
        ("link_quality", 120.0, None, 120),
        ("color", {"h": 30, "s": 100}, None, {"h": 30, "s": 100}),
        ("blood_pressure", {"systolic": 128, "diastolic": 82}, None, {"systolic": 128, "diastolic": 82}),
        ("button_event", "single", None, "single"),
    ],
)
def test_validate_coerces(capability, value, unit, expected):
    result = validate(capability, value, unit)
    assert result.ok, result.detail
    assert result.value == expected


@pytest.mark.parametrize(
    ("capability", "value", "unit", "reason"),
    [
        ("battery", 120, None, Reason.OUT_OF_RANGE),
        ("humidity", -3, None, Reason.OUT_OF_RANGE),
        ("temperature", 400, None, Reason.OUT_OF_RANGE),
        ("energy_kwh", -1, None, Reason.OUT_OF_RANGE),
        ("temperature", "warm", None, Reason.WRONG_TYPE),
        ("temperature", True, None, Reason.WRONG_TYPE),
        ("temperature", None, None, Reason.WRONG_TYPE),
        ("temperature", math.nan, None, Reason.WRONG_TYPE),
        ("temperature", math.inf, None, Reason.WRONG_TYPE),
        ("temperature", [21], None, Reason.WRONG_TYPE),
        ("smoke", "maybe", None, Reason.WRONG_TYPE),
        ("smoke", 2, None, Reason.WRONG_TYPE),
        ("lock", "ajar", None, Reason.INVALID_VALUE),
        ("lock", 1, None, Reason.WRONG_TYPE),
        ("tvoc", 300, "ppb", Reason.UNIT_MISMATCH),
        ("power_w", 3, "apples", Reason.UNIT_MISMATCH),
        ("color", {"h": 400}, None, Reason.OUT_OF_RANGE),
        ("color", {"q": 1}, None, Reason.INVALID_VALUE),
        ("color", "red", None, Reason.WRONG_TYPE),
        ("blood_pressure", {"systolic": 120}, None, Reason.INVALID_VALUE),
        ("plate_number", "x" * 300, None, Reason.OUT_OF_RANGE),
        ("no_such_capability", 1, None, Reason.UNKNOWN_CAPABILITY),
    ],
)
def test_validate_refuses_with_a_reason(capability, value, unit, reason):
    result = validate(capability, value, unit)
    assert not result.ok
    assert result.reason is reason
    assert result.detail


def test_units_are_exact_or_refused():
    assert normalize_unit("kW·h") == "kWh" and normalize_unit("kW\u00b7h") == "kWh"
    assert normalize_unit("\u2103") == "°C" and normalize_unit("ugm3") == "µg/m³"
    assert normalize_unit("μg/m³") == "µg/m³"  # Greek mu becomes the micro sign
    assert normalize_unit("") is None
    assert convert(1, "kWh", "Wh") == 1000
    with pytest.raises(UnitError):
        convert(1, "ppb", "µg/m³")
    with pytest.raises(UnitError):
        convert(0, "mired", "K")


@pytest.mark.parametrize(
    ("caps", "description", "expected"),
    [
        ({"smoke", "battery"}, "", "smoke_detector"),
        ({"gas", "gas_ppm"}, "", "gas_detector"),
        ({"on_off"}, "", "switch"),
        ({"on_off", "brightness"}, "", "light"),
        ({"on_off", "brightness"}, "LED street light", "street_light"),
        ({"on_off", "power_w", "energy_kwh"}, "Smart plug EU", "plug"),
        ({"energy_kwh", "power_w"}, "", "electricity_meter"),
        ({"emergency_call", "button_event"}, "", "emergency_button"),
        ({"fall_state", "presence"}, "", "fall_detector"),
        ({"heart_rate", "spo2"}, "", "health_monitor"),
        ({"parking_occupied"}, "", "parking_sensor"),
        ({"fill_level"}, "", "bin_sensor"),
        ({"charging_state", "power_w"}, "", "charger"),
        ({"cover_position"}, "", "curtain"),
        ({"cover_position", "cover_control"}, "barrier gate", "gate"),
        ({"battery"}, "", None),
    ],
)
def test_device_type_inference(caps, description, expected):
    assert types.infer(caps, description) == expected
