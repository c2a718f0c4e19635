"""Tuya: the cloud device dumps (DP codes) and the tuya-local definitions (DP ids)."""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from cityweave.devices.binding import DeviceBinding
from cityweave.devices.command import Command, CommandRejected
from cityweave.devices.reading import Quality
from tests.devices.support import (
    NOW,
    adapter,
    assert_clean,
    decode,
    fixture_files,
    fixture_path,
    path_of,
    reasons,
    values,
)

# Per cloud dump: readings that must come out of its "status".
EXPECTED = {
    "cl_cpbo62rn": {"cover_position": 64.0, "battery": 100.0},
    "cl_zah67ekd": {"cover_position": 52.0, "cover_state": "closing"},
    "co2bj_yakol79dibtswovc": {"co2": 450.0, "temperature": 25.0, "humidity": 43.0},
    "co2bj_yrr3eiyiacm31ski": {"co2": 541.0, "pm2_5": 17.0, "tvoc": 18.0, "formaldehyde": 0.002},
    "cobj_hcdy5zrq3ikzthws": {"carbon_monoxide": False, "co_ppm": 0.0, "self_test_result": "success"},
    "cz_0g1fmqh6d5io7lcn": {"on_off@1": False},
    "cz_2jxesipczks0kdct": {"on_off@2": True, "energy_kwh": 0.19, "current": 0.083, "power_w": 6.4, "voltage": 121.7},
    "cz_cuhokdii7ojyw8k2": {"on_off@1": True},
    "dj_AqHUMdcbYzIq1Of4": {"on_off": False, "brightness": 100.0},
    "dj_oe0cpnjg": {"on_off": False, "brightness": 100.0},
    "hps_2aaelwxk": {"presence": False, "motion": False, "illuminance": 0.0},
    "jtmspro_xqeob8h6": {"battery": 99.0, "duress": False, "doorbell": False},
    "kg_5ftkaulg": {"on_off@1": False},
    "kg_gbm9ata1zrzaez4a": {"on_off@1": False},
    "ldcg_9kbbfeho": {"illuminance": 16.0, "battery": 91.0},
    "mal_gyitctrjj1kefxp2": {"alarm_state": "disarmed", "alarm_muted": False},
    "mcs_7jIGJAymiH8OsFFb": {"contact": True},
    "mcs_8yhypbo7": {"contact": True, "battery": 62.0},
    "mcs_qxu3flpqjsc1kqu3": {"contact": True, "battery": 11.0},
    "pc_t2afic7i3v1bwhfp": {"on_off@1": True, "on_off@2": True},
    "pc_yku9wsimasckdt15": {"voltage": 247.1, "child_lock": False, "energy_kwh": 0.001},
    "pir_3amxzozho9xp4mkh": {"motion": True, "tamper": False, "battery_level": "low"},
    "pir_fcdjzz3s": {"motion": False, "battery": 85.0},
    "pir_wqz93nrdomectyoz": {"motion": True, "battery_level": "medium"},
    "rqbj_4iqe2hsfyd86kwwc": {"gas": False, "gas_ppm": 0.0, "alarm_muted": True},
    "sfkzq_o6dagifntoafakst": {"valve_open": False},
    "sgbj_ulv4nnue7gqp0rjk": {"siren": False},
    "sj_tgvtvdoc": {"water_leak": False, "battery": 98.0},
    "wk_6kijc7nd": {"on_off": True, "target_temperature": 21.5, "temperature": 19.5, "window_open": False},
    "wk_aqoouq7x": {"hvac_mode": "cool", "target_temperature": 25.0, "fan_mode": "auto"},
    "wk_fi6dne5tu4t1nm6j": {"target_temperature": 22.0, "temperature": 24.9},
    "wsdcg_g2y6z3p3ja2qhyav": {"temperature": 18.5, "humidity": 47.0},
    "wsdcg_iq4ygaai": {"temperature": 21.7},
    "wxkg_l8yaz4um5b3pwyvf": {"button_event@1": "single", "battery": 100.0},
    "ywbj_arywmw6h6vesoz5t": {"smoke": False, "battery_level": "high"},
    "ywbj_gf9dejhmzffgdyfj": {"smoke": False, "battery": 16.0},
    "ywbj_rccxox8p": {"smoke": False, "smoke_density": 0.0},
    "zndb_4ggkyflayu1h1ho9": {"energy_kwh": 1.2, "energy_exported_kwh": 0.8, "power_w": 1500.0},
    "zndb_v5jlnn5hwyffkhp3": {"energy_kwh": 1520.21, "power_w": 2314.6},
    "zndb_ze8faryrxr0glqnn": {"voltage@a": 233.8, "current@a": 5.62, "power_w@a": 1185.0},
}
CATEGORY_TYPE = {"cl": "curtain", "co2bj": "air_quality_monitor", "cobj": "co_detector", "cz": "plug",
                 "dj": "light", "hps": "presence_sensor", "jtmspro": "lock", "kg": "switch",
                 "ldcg": "illuminance_sensor", "mal": "alarm_panel", "mcs": "contact_sensor", "pc": "plug",
                 "pir": "motion_sensor", "rqbj": "gas_detector", "sfkzq": "valve", "sgbj": "siren",
                 "sj": "water_leak_sensor", "wk": "climate", "wsdcg": "climate_sensor", "wxkg": "button",
                 "ywbj": "smoke_detector", "zndb": "electricity_meter"}


def _report(status, ms=1772352900000):
    return {"msgId": "m1", "time": ms, "data": {code: {"value": value, "time": ms} for code, value in status.items()}}


@pytest.mark.parametrize("path", fixture_files("tuya/ha_core_fixtures/*.json"))
def test_cloud_dump_discovers_and_its_status_decodes(path):
    path = path_of(path)
    document = json.loads(path.read_text("utf-8"))
    tuya, directory = adapter("tuya")
    device_id = document.get("id") or f"dev{document['product_id']}"
    device = tuya.discover(document, address=device_id)
    assert device.device_type == CATEGORY_TYPE[document["category"]]
    directory.add(device.bind("dev"))
    result = decode(tuya, f"tylink/{device_id}/thing/property/report", _report(document["status"]))
    assert_clean(result)
    got = values(result)
    for key, expected in EXPECTED[path.stem].items():
        assert got[key] == pytest.approx(expected) if isinstance(expected, float) else got[key] == expected, key
    # Every DP of the status is a reading or kept raw.
    accounted = {r.source.split(".")[0] for r in result.readings} | set(result.unknown)
    skipped = {c for c, v in document["status"].items() if v in ("", "unknown")}
    assert set(document["status"]) - skipped <= accounted


def test_scaling_and_ranges():
    tuya, directory = adapter("tuya")
    document = json.loads(fixture_path("tuya/ha_core_fixtures/wk_6kijc7nd.json").read_text())
    directory.add(tuya.discover(document, address="t1").bind("thermostat"))
    topic = "tylink/t1/thing/property/report"
    assert values(decode(tuya, topic, {"data": {"temp_set": 215}})) == {"target_temperature": 21.5}  # 215 / 10**1
    assert reasons(decode(tuya, topic, {"data": {"temp_set": 990}})) == ["out_of_range"]  # max 950 raw
    assert reasons(decode(tuya, topic, {"data": {"temp_set": "215"}})) == ["wrong_type"]
    assert reasons(decode(tuya, topic, {"data": {"window_state": "ajar"}})) == ["invalid_value"]
    assert decode(tuya, topic, {"data": {"sensor_choose": "all"}}).unknown == {"sensor_choose": "all"}
    assert reasons(decode(tuya, topic, {"nodata": 1})) == ["schema_violation"]
    assert reasons(decode(tuya, "tylink/t2/thing/property/report", {"data": {}})) == ["unknown_device"]


def test_meter_phase_formats():
    tuya, directory = adapter("tuya")
    directory.add(DeviceBinding("m", "tuya", "m1", profile={"dps": {
        "phase_a": {"code": "phase_a", "type": "raw", "capability": "phase", "endpoint": "a"},
        "phase_b": {"code": "phase_b", "type": "json", "capability": "phase", "endpoint": "b"}}}))
    raw = base64.b64encode(bytes([0x09, 0x22, 0x00, 0x15, 0xF4, 0x00, 0x04, 0xA1])).decode()
    result = decode(tuya, "tylink/m1/thing/property/report",
                    {"data": {"phase_a": raw, "phase_b": {"voltage": 230.1, "electricCurrent": 2.5, "power": 0.5}}})
    assert values(result) == {"voltage@a": 233.8, "current@a": 5.62, "power_w@a": 1185.0,
                              "voltage@b": 230.1, "current@b": 2.5, "power_w@b": 500.0}
    assert {r.quality for r in result.readings if r.endpoint == "b"} == {Quality.UNCERTAIN}
    assert reasons(decode(tuya, "tylink/m1/thing/property/report", {"data": {"phase_a": "!!"}})) == ["wrong_type"]


def _sample(dp):
    mapped = [m["dps_val"] for m in dp.get("mapping") or [] if m.get("dps_val") is not None]
    if mapped:
        return mapped[0]
    kind = dp.get("type")
    if kind == "boolean":
        return True
    if kind == "integer":
        return int((dp.get("range") or {}).get("min", 20))
    if kind == "bitfield":
        return 0
    if kind == "string":
        return "normal"
    return None


@pytest.mark.parametrize("path", fixture_files("tuya/tuya_local_devices/*.yaml"))
def test_local_definition_discovers_and_decodes(path):
    path = path_of(path)
    definition = yaml.safe_load(path.read_text("utf-8"))
    tuya, directory = adapter("tuya")
    device = tuya.discover(definition, address=path.stem)
    mapped = {key for key, spec in device.profile["dps"].items() if spec["capability"]}
    assert mapped, "a definition must map at least one DP"
    directory.add(device.bind("dev"))
    dps = {}
    for entity in definition["entities"]:
        for dp in entity["dps"]:
            if (value := _sample(dp)) is not None:
                dps.setdefault(str(dp["id"]), value)
    result = decode(tuya, f"tuya/{path.stem}/dps/state", dps)
    assert_clean(result)
    assert {r.source for r in result.readings} >= mapped & set(dps) - {k for k, v in dps.items() if v is None}
    assert result.readings


def test_local_definitions_mean_what_they_say():
    tuya, directory = adapter("tuya")
    for name in ("tuya_smart_zigbee_door_sensor", "smoke_detector", "matsee_2wayv2_energymeter", "linkoze_dual_button"):
        path = fixture_path(f"tuya/tuya_local_devices/{name}.yaml")
        directory.add(tuya.discover(yaml.safe_load(path.read_text()), address=name).bind(name))
    door = values(decode(tuya, "tuya/tuya_smart_zigbee_door_sensor/dps/state", {"101": True, "103": 87}))
    assert door == {"contact": False, "battery": 87.0}  # HA door class: true = open
    smoke = values(decode(tuya, "tuya/smoke_detector/dps/state", {"1": "1", "15": 90}))
    assert smoke == {"smoke": True, "battery": 90.0}
    assert values(decode(tuya, "tuya/smoke_detector/dps/1/state", "2")) == {"smoke": False}
    meter = values(decode(tuya, "tuya/matsee_2wayv2_energymeter/dps/state", {"1": 152021, "101": 2301, "106": 1234}))
    assert meter == {"energy_kwh@1": 1520.21, "voltage": 230.1, "power_w@106": 123.4}
    button = values(decode(tuya, "tuya/linkoze_dual_button/dps/state", {"2": "double_click"}))
    assert button == {"button_event@2": "double"}
    assert decode(tuya, "tuya/smoke_detector/state", "offline").availability[0].online is False


def test_encode_tuyalink_round_trip():
    tuya, directory = adapter("tuya")
    path = fixture_path("tuya/ha_core_fixtures/cz_2jxesipczks0kdct.json")
    device = tuya.discover(json.loads(path.read_text()), address="plug9")
    directory.add(device.bind("plug"))
    binding = directory.find("tuya", "plug9")
    encoded = tuya.encode(Command.create("plug", "on_off", False, "2"), binding)
    body = json.loads(encoded.payload)
    assert encoded.topic == "tylink/plug9/thing/property/set" and body["data"] == {"switch_2": False}
    echo = decode(tuya, "tylink/plug9/thing/property/report", _report({"switch_2": False}))
    assert any(encoded.expected_echo.matches(r) for r in echo.readings)
    seen = decode(tuya, encoded.topic, encoded.payload)
    assert [(c.capability, c.value, c.endpoint) for c in seen.commands] == [("on_off", False, "2")]
    with pytest.raises(CommandRejected):
        tuya.encode(Command.create("plug", "brightness", 50), binding)


def test_encode_scaled_and_local_round_trip():
    tuya, directory = adapter("tuya")
    path = fixture_path("tuya/ha_core_fixtures/wk_6kijc7nd.json")
    directory.add(tuya.discover(json.loads(path.read_text()), address="t1").bind("thermostat"))
    encoded = tuya.encode(Command.create("thermostat", "target_temperature", 22.5), directory.find("tuya", "t1"))
    assert json.loads(encoded.payload)["data"] == {"temp_set": 225}
    with pytest.raises(CommandRejected):
        tuya.encode(Command.create("thermostat", "target_temperature", 99), directory.find("tuya", "t1"))
    valve = fixture_path("tuya/tuya_local_devices/hoenyzy_valve_timer.yaml")
    directory.add(tuya.discover(yaml.safe_load(valve.read_text()), address="garden").bind("valve"))
    encoded = tuya.encode(Command.create("valve", "valve_open", True), directory.find("tuya", "garden"))
    assert (encoded.topic, encoded.payload) == ("tuya/garden/dps/1/command", b"true")
    echo = tuya.decode("tuya/garden/dps/1/state", b"true", NOW)
    assert any(encoded.expected_echo.matches(r) for r in echo.readings)
