"""Vendor payload encoders: (topic, payload bytes) exactly as each ecosystem publishes them.

:func:`encode` turns one device's capability values (from :mod:`~cityweave.simulator.behaviour`)
into the MQTT messages its real firmware or bridge would send; :func:`announcements` gives the
retained messages by which devices make themselves known (Zigbee2MQTT ``bridge/devices``, Home
Assistant device discovery, Tasmota discovery, Shelly ``NotifyFullStatus``, native ``announce``);
:func:`description` gives the out-of-band documents an operator would import (a Tuya cloud
device description, a Shelly ``/shelly`` + config + status bundle).

The shapes follow the fixtures in the shared device fixtures (Zigbee2MQTT exposes from
zigbee-herdsman-converters, MIT; Tuya cloud dumps and Shelly status documents as Home Assistant
and aioshelly test with them, Apache-2.0) and decode with the adapters in
:mod:`cityweave.devices.adapters` — the tests check every vendor and kind.

A sequence number goes where the format has room for one, so a consumer can count losses:
native ``seq``, Tuya ``msgId``, and an extra ``seq`` member of the Home Assistant state JSON
(entities read their own member through a value template, so the extra key harms nothing).
Zigbee2MQTT, Tasmota and Shelly payloads have no such field and carry none.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from cityweave import __version__
from cityweave.simulator.behaviour import CHINA
from cityweave.simulator.fleet import (
    AIR,
    CLIMATE,
    DOOR,
    FALL_RADAR,
    GAS,
    HOMEASSISTANT,
    LEAK,
    LIGHT,
    METER,
    MOTION,
    NATIVE,
    PLUG,
    PRESENCE,
    SHELLY,
    SIREN,
    SMOKE,
    SOS,
    TASMOTA,
    TUYA,
    VALVE,
    ZIGBEE2MQTT,
    Fleet,
    VirtualDevice,
)

Values = Mapping[str, Any]
Z2M_BASE = "zigbee2mqtt"
HA_PREFIX = "homeassistant"
TASMOTA_DISCOVERY = "tasmota/discovery"
NATIVE_PREFIX = "cityweave/v1"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT message to publish."""

    topic: str
    payload: bytes
    retain: bool = False


def _json(document: Any) -> bytes:
    return orjson.dumps(document)


def _sorted_json(document: Mapping[str, Any]) -> bytes:
    """Zigbee2MQTT's stable stringify: keys in order."""
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def _epoch(when: datetime) -> float:
    return when.timestamp()


def _mired(kelvin: float) -> int:
    return round(1_000_000 / kelvin)


def _battery_mv(values: Values) -> int:
    return int(2700 + 4 * float(values.get("battery", 80)))


# == Zigbee2MQTT ========================================================================================
# Exposes as zigbee-herdsman-converters 26.112.0 defines them (MIT), reduced to the members a
# consumer reads (type, name, property, access, value_on/off, range, unit, values, features).
def _num(prop: str, unit: str | None = None, access: int = 1, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "numeric", "name": prop, "property": prop, "access": access, **extra}
    if unit is not None:
        spec["unit"] = unit
    return spec


def _bin(prop: str, on: Any = True, off: Any = False, access: int = 1) -> dict[str, Any]:
    return {"type": "binary", "name": prop, "property": prop, "access": access, "value_on": on, "value_off": off}


def _enum(prop: str, values: list[str], access: int = 1) -> dict[str, Any]:
    return {"type": "enum", "name": prop, "property": prop, "access": access, "values": values}


_BATTERY = _num("battery", "%", value_min=0, value_max=100)
_LQI = _num("linkquality", "lqi", value_min=0, value_max=255)
_STATE = _bin("state", "ON", "OFF", 7)


@dataclass(frozen=True, slots=True)
class Z2MModel:
    model: str
    vendor: str
    description: str
    exposes: tuple[dict[str, Any], ...]
    power_source: str
    state: Callable[[Values], dict[str, Any]]


def _z2m_light(v: Values) -> dict[str, Any]:
    return {"brightness": round(v["brightness"] * 2.54), "color_temp": _mired(v["color_temperature"]),
            "state": "ON" if v["on_off"] else "OFF"}


def _z2m_sos(v: Values) -> dict[str, Any]:
    return {"battery": v["battery"], **({"action": "single"} if v["emergency_call"] else {})}


Z2M_MODELS: dict[str, Z2MModel] = {
    LIGHT: Z2MModel("LED1545G12", "IKEA", "TRADFRI bulb E26/E27, white spectrum, globe, opal, 980 lm", (
        {"type": "light", "features": [_STATE, _num("brightness", None, 7, value_min=0, value_max=254),
                                       _num("color_temp", "mired", 7, value_min=250, value_max=454)]},
        _enum("power_on_behavior", ["off", "on", "toggle", "previous"], 7), _LQI), "Mains (single phase)",
        _z2m_light),
    PLUG: Z2MModel("SP-EUC01", "Aqara", "Smart plug EU", (
        {"type": "switch", "features": [_STATE]}, _num("power", "W"), _num("energy", "kWh"), _num("voltage", "V"),
        _num("current", "A"), _num("device_temperature", "°C"), _LQI), "Mains (single phase)",
        lambda v: {"current": v["current"], "device_temperature": 31, "energy": v["energy_kwh"],
                   "power": v["power_w"], "state": "ON" if v["on_off"] else "OFF", "voltage": v["voltage"]}),
    DOOR: Z2MModel("MCCGQ11LM", "Aqara", "Door and window sensor", (
        _BATTERY, _bin("contact", False, True), _num("device_temperature", "°C"), _num("voltage", "mV"), _LQI),
        "Battery", lambda v: {"battery": v["battery"], "contact": v["contact"], "voltage": _battery_mv(v)}),
    MOTION: Z2MModel("RTCGQ11LM", "Aqara", "Motion sensor", (
        _BATTERY, _bin("occupancy"), _num("voltage", "mV"), _num("illuminance", "lx"), _LQI), "Battery",
        lambda v: {"battery": v["battery"], "illuminance": v["illuminance"], "occupancy": v["motion"],
                   "voltage": _battery_mv(v)}),
    SMOKE: Z2MModel("JTYJ-GD-01LM/BW", "Xiaomi", "Mijia Honeywell smoke detector", (
        _bin("smoke"), _bin("battery_low"), _BATTERY, _num("smoke_density"), _num("voltage", "mV"), _bin("test"),
        _LQI), "Battery",
        lambda v: {"battery": v["battery"], "battery_low": v["battery"] < 15, "smoke": v["smoke"],
                   "smoke_density": 6 if v["smoke"] else 0, "test": False, "voltage": _battery_mv(v)}),
    GAS: Z2MModel("JTQJ-BF-01LM/BW", "Xiaomi", "Mijia Honeywell gas leak detector", (
        _bin("gas"), _enum("sensitivity", ["low", "medium", "high"], 3), _num("gas_density"), _LQI),
        "Mains (single phase)",
        lambda v: {"gas": v["gas"], "gas_density": round(v["gas_ppm"] / 100), "sensitivity": "high"}),
    LEAK: Z2MModel("SJCGQ11LM", "Aqara", "Water leak sensor", (
        _BATTERY, _num("voltage", "mV"), _bin("water_leak"), _bin("battery_low"), _LQI), "Battery",
        lambda v: {"battery": v["battery"], "battery_low": v["battery"] < 15, "voltage": _battery_mv(v),
                   "water_leak": v["water_leak"]}),
    CLIMATE: Z2MModel("WSDCGQ11LM", "Aqara", "Temperature and humidity sensor", (
        _BATTERY, _num("temperature", "°C"), _num("humidity", "%"), _num("pressure", "hPa"), _num("voltage", "mV"),
        _LQI), "Battery",
        lambda v: {"battery": v["battery"], "humidity": v["humidity"], "pressure": 1008.6,
                   "temperature": v["temperature"], "voltage": _battery_mv(v)}),
    AIR: Z2MModel("TS0601_air_quality_sensor", "Tuya", "Air quality sensor", (
        _num("temperature", "°C"), _num("humidity", "%"), _num("co2", "ppm"), _num("voc", "ppb"),
        _num("formaldehyd", "µg/m³"), _LQI), "Mains (single phase)",
        lambda v: {"co2": v["co2"], "formaldehyd": round(v["formaldehyde"] * 1000), "humidity": v["humidity"],
                   "temperature": v["temperature"], "voc": round(v["tvoc"] / 4.5)}),
    METER: Z2MModel("TS0601_din", "Tuya", "Zigbee smart energy meter DDS238-2 Zigbee", (
        {"type": "switch", "features": [_bin("state", "ON", "OFF", 3)]}, _num("voltage", "V"), _num("power", "W"),
        _num("current", "A"), _num("energy", "kWh"), _LQI), "Mains (single phase)",
        lambda v: {"current": v["current"], "energy": v["energy_kwh"], "power": v["power_w"],
                   "state": "ON" if v.get("on_off", True) else "OFF", "voltage": v["voltage"]}),
    SOS: Z2MModel("HS1EB/HS1EB-E", "Heiman", "Smart emergency button", (
        _BATTERY, _enum("action", ["off", "single", "double", "hold"]), _LQI), "Battery", _z2m_sos),
    FALL_RADAR: Z2MModel("MIR-HE200-TY", "Tuya", "Human presence sensor with fall function", (
        _num("illuminance", "lx"), _bin("presence"), _bin("occupancy"),
        _enum("fall_down_status", ["none", "maybe_fall", "fall"]), _LQI), "Mains (single phase)",
        lambda v: {"fall_down_status": v["fall_state"], "occupancy": v["presence"], "presence": v["presence"]}),
    PRESENCE: Z2MModel("RTCZCGQ11LM", "Aqara", "Presence sensor FP1", (
        _bin("presence", access=5), _num("device_temperature", "°C"), _LQI), "Mains (single phase)",
        lambda v: {"device_temperature": 33, "presence": v["presence"]}),
    VALVE: Z2MModel("TS0049", "Tuya", "Water valve", (
        {"type": "switch", "features": [_bin("state", "ON", "OFF", 3)]},
        _enum("battery_state", ["low", "medium", "high"]), _LQI), "Battery",
        lambda v: {"battery_state": "high", "state": "ON" if v["valve_open"] else "OFF"}),
}


def _z2m(device: VirtualDevice, values: Values) -> list[Outgoing]:
    body = Z2M_MODELS[device.kind].state(values)
    body["linkquality"] = values["link_quality"]
    return [Outgoing(f"{Z2M_BASE}/{device.friendly_name}", _sorted_json(body))]


def z2m_bridge_entry(device: VirtualDevice) -> dict[str, Any]:
    """The device's entry in ``zigbee2mqtt/bridge/devices``."""
    model = Z2M_MODELS[device.kind]
    return {
        "ieee_address": device.ieee, "type": "EndDevice" if model.power_source == "Battery" else "Router",
        "network_address": device.index % 65000 + 1, "supported": True, "friendly_name": device.friendly_name,
        "disabled": False, "power_source": model.power_source, "interview_completed": True,
        "interviewing": False, "interview_state": "SUCCESSFUL", "manufacturer": model.vendor,
        "definition": {"model": model.model, "vendor": model.vendor, "description": model.description,
                       "exposes": list(model.exposes), "options": [], "supports_ota": False, "source": "native"},
    }


# == Tasmota =============================================================================================
@dataclass(frozen=True, slots=True)
class TasmotaModel:
    name: str  # "md" in the discovery config
    relays: tuple[int, ...]  # 1 relay, 2 light
    light_subtype: int
    state: Callable[[Values], dict[str, Any]]
    sensor: Callable[[Values], dict[str, Any]] | None


def _energy(v: Values) -> dict[str, Any]:
    power = v["power_w"]
    return {"ENERGY": {"TotalStartTime": "2024-03-02T10:11:12", "Total": round(v["energy_kwh"], 3),
                       "Yesterday": 1.82, "Today": 0.74, "Power": round(power), "ApparentPower": round(power * 1.05),
                       "ReactivePower": round(power * 0.3), "Factor": 0.95, "Voltage": round(v["voltage"]),
                       "Current": round(v["current"], 3)}}


TASMOTA_MODELS: dict[str, TasmotaModel] = {
    LIGHT: TasmotaModel("Athom LB01 CCT", (2,), 2, lambda v: {
        "POWER": "ON" if v["on_off"] else "OFF", "Dimmer": round(v["brightness"]),
        "CT": _mired(v["color_temperature"])}, None),
    PLUG: TasmotaModel("Athom Plug V2", (1,), 0, lambda v: {"POWER": "ON" if v["on_off"] else "OFF"}, _energy),
    CLIMATE: TasmotaModel("ESP32-C3 AM2301", (), 0, lambda v: {}, lambda v: {
        "AM2301": {"Temperature": v["temperature"], "Humidity": v["humidity"]}, "TempUnit": "C"}),
    METER: TasmotaModel("PZEM-004T energy meter", (), 0, lambda v: {}, _energy),
}


def _uptime(device: VirtualDevice, when: datetime) -> dict[str, Any]:
    seconds = int(_epoch(when) + 3600 * (device.index % 97)) % (21 * 86400)
    days, rest = divmod(seconds, 86400)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return {"Uptime": f"{days}T{clock}", "UptimeSec": seconds}


def _tasmota(device: VirtualDevice, values: Values, when: datetime) -> list[Outgoing]:
    model = TASMOTA_MODELS[device.kind]
    stamp = when.astimezone(CHINA).strftime("%Y-%m-%dT%H:%M:%S")
    state = {"Time": stamp, **_uptime(device, when), "Heap": 25, "SleepMode": "Dynamic", "Sleep": 50,
             "LoadAvg": 19, "MqttCount": 1, **model.state(values), "Wifi": {"Signal": values["rssi"]}}
    messages = [Outgoing(f"tele/{device.tasmota_topic}/STATE", _json(state))]
    if model.sensor is not None:
        messages.append(Outgoing(f"tele/{device.tasmota_topic}/SENSOR", _json({"Time": stamp, **model.sensor(values)})))
    return messages


def tasmota_config(device: VirtualDevice) -> dict[str, Any]:
    """The retained ``tasmota/discovery/<MAC>/config`` document (Tasmota 13 layout)."""
    model = TASMOTA_MODELS[device.kind]
    relays = list(model.relays) + [0] * (8 - len(model.relays))
    return {"ip": f"10.{device.index // 65536 % 256}.{device.index // 256 % 256}.{device.index % 256}",
            "dn": f"{device.household.id} {device.slot}", "fn": [device.slot, None, None, None, None, None, None, None],
            "hn": f"{device.tasmota_topic}-{device.index % 10000:04d}", "mac": device.mac, "md": model.name,
            "ty": 0, "if": 0, "ofln": "Offline", "onln": "Online", "state": ["OFF", "ON", "TOGGLE", "HOLD"],
            "sw": "13.4.0", "t": device.tasmota_topic, "ft": "%prefix%/%topic%/", "tp": ["cmnd", "stat", "tele"],
            "rl": relays, "swc": [-1] * 8, "swn": [None] * 8, "btn": [0] * 8,
            "so": {"4": 0, "11": 0, "13": 0, "17": 0, "20": 0, "30": 0, "68": 0, "73": 0, "82": 0, "114": 0,
                   "117": 0}, "lk": 1, "lt_st": model.light_subtype, "bat": 0, "dslp": 0, "sho": [], "sht": [],
            "ver": 1}


# == Shelly Gen2+ ==========================================================================================
@dataclass(frozen=True, slots=True)
class ShellyModel:
    app: str
    model: str
    status: Callable[[Values, datetime], dict[str, Any]]


def _device_power(v: Values) -> dict[str, Any]:
    percent = v["battery"]
    return {"devicepower:0": {"id": 0, "battery": {"V": round(2.6 + 0.005 * percent, 2), "percent": percent},
                              "external": {"present": False}}}


def _shelly_temperature(celsius: float) -> dict[str, Any]:
    return {"tC": celsius, "tF": round(celsius * 9 / 5 + 32, 1)}


def _shelly_plug(v: Values, when: datetime) -> dict[str, Any]:
    minute = int(_epoch(when)) // 60 * 60
    power = v["power_w"]
    return {"switch:0": {"id": 0, "source": "init", "output": v["on_off"], "apower": power,
                         "voltage": v["voltage"], "current": v["current"],
                         "aenergy": {"total": round(v["energy_kwh"] * 1000, 3),
                                     "by_minute": [round(power / 60 * 1000, 3)] * 3, "minute_ts": minute},
                         "temperature": _shelly_temperature(36.2)}}


SHELLY_MODELS: dict[str, ShellyModel] = {
    PLUG: ShellyModel("PlusPlugS", "SNPL-00112EU", _shelly_plug),
    LIGHT: ShellyModel("Plus1", "SNSW-001X16EU", lambda v, t: {"switch:0": {
        "id": 0, "source": "switch", "output": v["on_off"], "temperature": _shelly_temperature(41.5)}}),
    SMOKE: ShellyModel("PlusSmoke", "SNSN-0031Z", lambda v, t: {
        "smoke:0": {"id": 0, "alarm": v["smoke"], "mute": False}, **_device_power(v)}),
    CLIMATE: ShellyModel("PlusHT", "SNSN-0013A", lambda v, t: {
        "temperature:0": {"id": 0, **_shelly_temperature(v["temperature"])},
        "humidity:0": {"id": 0, "rh": v["humidity"]}, **_device_power(v)}),
    LEAK: ShellyModel("FloodG4", "S4SN-0071A", lambda v, t: {
        "flood:0": {"id": 0, "alarm": v["water_leak"], "mute": False}, **_device_power(v)}),
    METER: ShellyModel("ProEM", "SPEM-002CEBEU50", lambda v, t: {
        "em1:0": {"id": 0, "current": v["current"], "voltage": v["voltage"], "act_power": v["power_w"],
                  "aprt_power": round(v["power_w"] / v["power_factor"], 1), "pf": v["power_factor"],
                  "freq": v["frequency"]},
        "em1data:0": {"id": 0, "total_act_energy": round(v["energy_kwh"] * 1000, 2), "total_act_ret_energy": 0}}),
    PRESENCE: ShellyModel("PresenceG4", "S4SN-0U61X", lambda v, t: {
        "presencezone:200": {"id": 200, "value": v["presence"], "num_objects": int(v["presence"])},
        "illuminance:0": {"id": 0, "lux": v["illuminance"],
                          "illumination": "dark" if v["illuminance"] < 50 else "bright"}}),
}


def _shelly_frame(device: VirtualDevice, method: str, params: dict[str, Any]) -> bytes:
    return _json({"src": device.shelly_id, "dst": f"{device.shelly_id}/events", "method": method, "params": params})


def _shelly(device: VirtualDevice, values: Values, when: datetime) -> list[Outgoing]:
    status = SHELLY_MODELS[device.kind].status(values, when)
    params = {"ts": round(_epoch(when), 2), **status}
    return [Outgoing(f"{device.shelly_id}/events/rpc", _shelly_frame(device, "NotifyStatus", params))]


def shelly_full_status(device: VirtualDevice, values: Values, when: datetime) -> dict[str, Any]:
    """``Shelly.GetStatus`` as the device would answer it (also the NotifyFullStatus params)."""
    epoch = int(_epoch(when))
    return {
        "ble": {}, "cloud": {"connected": False}, "mqtt": {"connected": True},
        "sys": {"mac": device.mac, "restart_required": False, "time": when.astimezone(CHINA).strftime("%H:%M"),
                "unixtime": epoch, "uptime": epoch % 1_000_000, "ram_size": 246084, "ram_free": 141748,
                "fs_size": 458752, "fs_free": 139264, "cfg_rev": 12, "kvs_rev": 0, "schedule_rev": 0,
                "webhook_rev": 0, "available_updates": {}, "reset_reason": 3},
        "wifi": {"sta_ip": f"10.1.{device.index // 256 % 256}.{device.index % 256}", "status": "got ip",
                 "ssid": f"home-{device.household.id}", "rssi": values["rssi"]},
        **SHELLY_MODELS[device.kind].status(values, when),
    }


def shelly_info(device: VirtualDevice) -> dict[str, Any]:
    """``/shelly`` (``Shelly.GetDeviceInfo``)."""
    model = SHELLY_MODELS[device.kind]
    return {"name": f"{device.household.id} {device.slot}", "id": device.shelly_id, "mac": device.mac, "slot": 0,
            "model": model.model, "gen": 2, "fw_id": "20250306-071318/1.5.1-g01dcbeb", "ver": "1.5.1",
            "app": model.app, "auth_en": False, "auth_domain": None}


# == Tuya (TuyaLink) ========================================================================================
def _int(unit: str, low: int, high: int, scale: int = 0) -> dict[str, Any]:
    return {"type": "Integer", "value": {"unit": unit, "min": low, "max": high, "scale": scale, "step": 1}}


_T_BOOL: dict[str, Any] = {"type": "Boolean", "value": {}}


def _t_enum(*values: str) -> dict[str, Any]:
    return {"type": "Enum", "value": {"range": list(values)}}


_T_BATTERY = _int("%", 0, 100)
_ALARM = _t_enum("alarm", "normal")


@dataclass(frozen=True, slots=True)
class TuyaModel:
    category: str
    product_id: str
    product_name: str
    status_range: dict[str, dict[str, Any]]
    writable: tuple[str, ...]
    dps: Callable[[Values], dict[str, Any]]


def _phase(v: Values) -> str:
    """Tuya's base64 phase record: volts/10 (2 bytes), amperes/1000 (3), kilowatts/1000 (3)."""
    raw = (round(v["voltage"] * 10).to_bytes(2, "big") + round(v["current"] * 1000).to_bytes(3, "big")
           + round(v["power_w"]).to_bytes(3, "big"))
    return base64.b64encode(raw).decode()


def _alarm(flag: bool) -> str:
    return "alarm" if flag else "normal"


TUYA_MODELS: dict[str, TuyaModel] = {
    LIGHT: TuyaModel("dj", "oe0cpnjg", "Smart Lighting", {
        "switch_led": _T_BOOL, "bright_value_v2": _int("", 10, 1000), "temp_value_v2": _int("", 0, 1000)},
        ("switch_led", "bright_value_v2", "temp_value_v2"),
        lambda v: {"switch_led": v["on_off"], "bright_value_v2": max(10, round(v["brightness"] * 10)),
                   "temp_value_v2": round((v["color_temperature"] - 2700) / 3800 * 1000)}),
    PLUG: TuyaModel("cz", "2jxesipczks0kdct", "Smart Plug with metering", {
        "switch_1": _T_BOOL, "add_ele": _int("kwh", 0, 99999999, 3), "cur_current": _int("mA", 0, 30000),
        "cur_power": _int("W", 0, 50000, 1), "cur_voltage": _int("V", 0, 5000, 1)}, ("switch_1",),
        lambda v: {"switch_1": v["on_off"], "add_ele": round(v["energy_kwh"] * 1000),
                   "cur_current": round(v["current"] * 1000), "cur_power": round(v["power_w"] * 10),
                   "cur_voltage": round(v["voltage"] * 10)}),
    DOOR: TuyaModel("mcs", "8yhypbo7", "Door Sensor", {
        "doorcontact_state": _T_BOOL, "battery_percentage": _T_BATTERY}, (),
        lambda v: {"doorcontact_state": not v["contact"], "battery_percentage": round(v["battery"])}),
    MOTION: TuyaModel("pir", "3amxzozho9xp4mkh", "Smart Motion Sensor", {
        "pir": _t_enum("pir", "none"), "battery_percentage": _T_BATTERY}, (),
        lambda v: {"pir": "pir" if v["motion"] else "none", "battery_percentage": round(v["battery"])}),
    SMOKE: TuyaModel("ywbj", "gf9dejhmzffgdyfj", "Smart Smoke Alarm", {
        "smoke_sensor_status": _ALARM, "battery_percentage": _T_BATTERY, "muffling": _T_BOOL}, ("muffling",),
        lambda v: {"smoke_sensor_status": _alarm(v["smoke"]), "battery_percentage": round(v["battery"]),
                   "muffling": bool(v.get("alarm_muted", False))}),
    GAS: TuyaModel("rqbj", "4iqe2hsfyd86kwwc", "Gas sensor", {
        "gas_sensor_status": _ALARM, "gas_sensor_value": _int("ppm", 0, 999), "muffling": _T_BOOL}, ("muffling",),
        lambda v: {"gas_sensor_status": _alarm(v["gas"]), "gas_sensor_value": min(999, round(v["gas_ppm"])),
                   "muffling": bool(v.get("alarm_muted", False))}),
    LEAK: TuyaModel("sj", "tgvtvdoc", "Water leak sensor", {
        "watersensor_state": _ALARM, "battery_percentage": _T_BATTERY}, (),
        lambda v: {"watersensor_state": _alarm(v["water_leak"]), "battery_percentage": round(v["battery"])}),
    CLIMATE: TuyaModel("wsdcg", "g2y6z3p3ja2qhyav", "温湿度传感器wifi", {
        "va_temperature": _int("℃", -200, 600, 1), "va_humidity": _int("%", 0, 100),
        "battery_percentage": _T_BATTERY}, (),
        lambda v: {"va_temperature": round(v["temperature"] * 10), "va_humidity": round(v["humidity"]),
                   "battery_percentage": round(v["battery"])}),
    AIR: TuyaModel("co2bj", "yrr3eiyiacm31ski", "AIR_DETECTOR", {
        "co2_value": _int("ppm", 0, 5000), "pm25_value": _int("ug/m3", 0, 1000),
        "voc_value": _int("mg/m3", 0, 9999, 3), "ch2o_value": _int("mg/m3", 0, 9999, 3),
        "temp_current": _int("℃", -9, 199), "humidity_value": _int("%", 0, 100)}, (),
        lambda v: {"co2_value": min(5000, v["co2"]), "pm25_value": min(1000, v["pm2_5"]),
                   "voc_value": min(9999, round(v["tvoc"])), "ch2o_value": round(v["formaldehyde"] * 1000),
                   "temp_current": round(v["temperature"]), "humidity_value": round(v["humidity"])}),
    METER: TuyaModel("zndb", "ze8faryrxr0glqnn", "PJ2101A 1P WiFi Smart Meter", {
        "forward_energy_total": _int("kW·h", 0, 99999999, 2), "phase_a": {"type": "Raw", "value": {}}}, (),
        lambda v: {"forward_energy_total": round(v["energy_kwh"] * 100), "phase_a": _phase(v)}),
    SOS: TuyaModel("sos", "kkxdkgaqfgcdwcmo", "SOS emergency button", {
        "sos_state": _T_BOOL, "battery_percentage": _T_BATTERY}, (),
        lambda v: {"sos_state": v["emergency_call"], "battery_percentage": round(v["battery"])}),
    FALL_RADAR: TuyaModel("hps", "fd7iwbhsm4fqbkc8", "Fall detection radar", {
        "presence_state": _t_enum("none", "presence"), "fall_down_state": _t_enum("none", "maybe_fall", "fall"),
        "heart_rate": _int("bpm", 0, 200)}, (),
        lambda v: {"presence_state": "presence" if v["presence"] else "none", "fall_down_state": v["fall_state"],
                   **({"heart_rate": v["heart_rate"]} if "heart_rate" in v else {})}),
    PRESENCE: TuyaModel("hps", "2aaelwxk", "Human presence sensor", {
        "presence_state": _t_enum("none", "presence"), "illuminance_value": _int("lux", 0, 6000)}, (),
        lambda v: {"presence_state": "presence" if v["presence"] else "none",
                   "illuminance_value": min(6000, round(v["illuminance"]))}),
    VALVE: TuyaModel("sfkzq", "o6dagifntoafakst", "Valve Controller", {"switch": _T_BOOL}, ("switch",),
                     lambda v: {"switch": v["valve_open"]}),
    SIREN: TuyaModel("sgbj", "ulv4nnue7gqp0rjk", "Siren Sensor", {
        "alarm_switch": _T_BOOL, "battery_percentage": _T_BATTERY}, ("alarm_switch",),
        lambda v: {"alarm_switch": v["siren"], "battery_percentage": 100}),
}


def _tuya(device: VirtualDevice, values: Values, when: datetime, seq: int) -> list[Outgoing]:
    millis = int(_epoch(when) * 1000)
    data = {code: {"value": raw, "time": millis} for code, raw in TUYA_MODELS[device.kind].dps(values).items()}
    body = {"msgId": str(seq), "time": millis, "data": data}
    return [Outgoing(f"tylink/{device.tuya_id}/thing/property/report", _json(body))]


def tuya_description(device: VirtualDevice) -> dict[str, Any]:
    """The cloud description (as the Tuya device-sharing API returns it) for ``TuyaAdapter.discover``."""
    model = TUYA_MODELS[device.kind]
    return {"id": device.tuya_id, "name": f"{device.household.id} {device.slot}", "category": model.category,
            "product_id": model.product_id, "product_name": model.product_name, "online": True,
            "time_zone": "+08:00", "function": {c: model.status_range[c] for c in model.writable},
            "status_range": model.status_range}


# == Home Assistant MQTT discovery ==========================================================================
def _sensor(name: str, device_class: str, unit: str | None, member: str,
            state_class: str = "measurement") -> dict[str, Any]:
    config = {"p": "sensor", "name": name, "dev_cla": device_class, "stat_cla": state_class,
              "val_tpl": f"{{{{ value_json.{member} }}}}"}
    if unit is not None:
        config["unit_of_meas"] = unit
    return config


def _binary(name: str, device_class: str, member: str) -> dict[str, Any]:
    return {"p": "binary_sensor", "name": name, "dev_cla": device_class, "val_tpl": f"{{{{ value_json.{member} }}}}"}


def _flag(value: bool) -> str:
    return "ON" if value else "OFF"


_HA_BATTERY = _sensor("Battery", "battery", "%", "battery")


@dataclass(frozen=True, slots=True)
class HAModel:
    manufacturer: str
    model: str
    components: dict[str, dict[str, Any]]
    state: Callable[[Values], dict[str, Any]]
    json_light: bool = False


HA_MODELS: dict[str, HAModel] = {
    LIGHT: HAModel("Espressif", "ESP32-C3 CCT light", {
        "light": {"p": "light", "name": None, "schema": "json", "brightness": True, "sup_clrm": ["color_temp"],
                  "cmd_t": "~set"}},
        lambda v: {"state": _flag(v["on_off"]), "brightness": round(v["brightness"] * 2.55),
                   "color_temp": _mired(v["color_temperature"])}, json_light=True),
    PLUG: HAModel("Espressif", "ESP8266 smart plug", {
        "relay": {"p": "switch", "name": None, "val_tpl": "{{ value_json.state }}", "cmd_t": "~set"},
        "power": _sensor("Power", "power", "W", "power"),
        "energy": _sensor("Energy", "energy", "kWh", "energy", "total_increasing"),
        "voltage": _sensor("Voltage", "voltage", "V", "voltage"),
        "current": _sensor("Current", "current", "A", "current")},
        lambda v: {"state": _flag(v["on_off"]), "power": v["power_w"], "energy": v["energy_kwh"],
                   "voltage": v["voltage"], "current": v["current"]}),
    DOOR: HAModel("Espressif", "ESP32 door sensor", {
        "door": _binary("Door", "door", "door"), "battery": _HA_BATTERY},
        lambda v: {"door": _flag(not v["contact"]), "battery": v["battery"]}),
    MOTION: HAModel("Espressif", "ESP32 PIR sensor", {
        "motion": _binary("Motion", "motion", "motion"),
        "illuminance": _sensor("Illuminance", "illuminance", "lx", "illuminance"), "battery": _HA_BATTERY},
        lambda v: {"motion": _flag(v["motion"]), "illuminance": v["illuminance"], "battery": v["battery"]}),
    SMOKE: HAModel("Espressif", "ESP32 smoke detector", {
        "smoke": _binary("Smoke", "smoke", "smoke"), "battery": _HA_BATTERY},
        lambda v: {"smoke": _flag(v["smoke"]), "battery": v["battery"]}),
    GAS: HAModel("Espressif", "ESP32 gas detector", {"gas": _binary("Gas", "gas", "gas")},
                 lambda v: {"gas": _flag(v["gas"])}),
    LEAK: HAModel("Espressif", "ESP32 leak sensor", {
        "leak": _binary("Leak", "moisture", "leak"), "battery": _HA_BATTERY},
        lambda v: {"leak": _flag(v["water_leak"]), "battery": v["battery"]}),
    CLIMATE: HAModel("Espressif", "ESP32 climate sensor", {
        "temperature": _sensor("Temperature", "temperature", "°C", "temperature"),
        "humidity": _sensor("Humidity", "humidity", "%", "humidity"), "battery": _HA_BATTERY},
        lambda v: {"temperature": v["temperature"], "humidity": v["humidity"], "battery": v["battery"]}),
    AIR: HAModel("Espressif", "ESP32 air monitor", {
        "pm25": _sensor("PM2.5", "pm25", "µg/m³", "pm25"), "co2": _sensor("CO2", "carbon_dioxide", "ppm", "co2"),
        "tvoc": _sensor("TVOC", "volatile_organic_compounds", "µg/m³", "tvoc"),
        "temperature": _sensor("Temperature", "temperature", "°C", "temperature"),
        "humidity": _sensor("Humidity", "humidity", "%", "humidity")},
        lambda v: {"pm25": v["pm2_5"], "co2": v["co2"], "tvoc": v["tvoc"], "temperature": v["temperature"],
                   "humidity": v["humidity"]}),
    PRESENCE: HAModel("Espressif", "ESP32 mmWave presence", {
        "presence": _binary("Presence", "presence", "presence"),
        "illuminance": _sensor("Illuminance", "illuminance", "lx", "illuminance")},
        lambda v: {"presence": _flag(v["presence"]), "illuminance": v["illuminance"]}),
    VALVE: HAModel("Espressif", "ESP32 water valve", {
        "valve": {"p": "valve", "name": None, "val_tpl": "{{ value_json.valve }}", "cmd_t": "~set"}},
        lambda v: {"valve": "open" if v["valve_open"] else "closed"}),
    SIREN: HAModel("Espressif", "ESP32 siren", {
        "siren": {"p": "siren", "name": None, "val_tpl": "{{ value_json.siren }}", "cmd_t": "~set"}},
        lambda v: {"siren": _flag(v["siren"])}),
}


def _ha(device: VirtualDevice, values: Values, seq: int) -> list[Outgoing]:
    model = HA_MODELS[device.kind]
    body = model.state(values)
    if not model.json_light:  # a JSON light's state document has a fixed schema: no extra member
        body["seq"] = seq
    return [Outgoing(device.ha_state_topic, _json(body))]


def ha_discovery(device: VirtualDevice) -> Outgoing:
    """Device-based discovery (``homeassistant/device/<id>/config``, HA 2024.11+), abbreviated keys."""
    model = HA_MODELS[device.kind]
    base = device.ha_state_topic.removesuffix("state")
    components = {}
    for key, component in model.components.items():
        config = {**component, "uniq_id": f"{device.ha_node}_{key}", "stat_t": "~state"}
        if "cmd_t" in config:
            config["cmd_t"] = config["cmd_t"].replace("~", base)
        config["stat_t"] = config["stat_t"].replace("~", base)
        components[key] = config
    document = {"dev": {"ids": [device.ha_node], "name": f"{device.household.id} {device.slot}",
                        "mf": model.manufacturer, "mdl": model.model, "sw": "2025.2.0",
                        "sa": device.room.replace("_", " ")},
                "o": {"name": "cityweave-simulator", "sw": __version__}, "cmps": components, "qos": 0}
    return Outgoing(f"{HA_PREFIX}/device/{device.ha_node}/config", _json(document), retain=True)


# == CityWeave native ========================================================================================
_NATIVE_EVENTS = ("emergency_call",)
_NATIVE_TYPES = {LIGHT: "light", PLUG: "plug", DOOR: "contact_sensor", MOTION: "motion_sensor",
                 SMOKE: "smoke_detector", GAS: "gas_detector", LEAK: "water_leak_sensor", CLIMATE: "climate_sensor",
                 AIR: "air_quality_monitor", METER: "electricity_meter", SOS: "emergency_button",
                 FALL_RADAR: "fall_detector", PRESENCE: "presence_sensor", VALVE: "valve", SIREN: "siren"}
_NATIVE_MODELS = {LIGHT: "CW-L1", PLUG: "CW-P1", DOOR: "CW-D1", MOTION: "CW-M1", SMOKE: "CW-S1", GAS: "CW-G1",
                  LEAK: "CW-W1", CLIMATE: "CW-T1", AIR: "CW-A1", METER: "CW-E1", SOS: "CW-SOS1",
                  FALL_RADAR: "CW-R1", PRESENCE: "CW-P60", VALVE: "CW-V1", SIREN: "CW-H1"}


def _native_values(device: VirtualDevice, values: Values) -> dict[str, Any]:
    state = {k: v for k, v in values.items() if k not in ("link_quality", *_NATIVE_EVENTS)}
    if device.kind == FALL_RADAR:
        state["fall"] = values["fall_state"] == "fall"
    return state


def _native(device: VirtualDevice, values: Values, when: datetime, seq: int) -> list[Outgoing]:
    millis = int(_epoch(when) * 1000)
    messages = [Outgoing(f"{NATIVE_PREFIX}/{device.id}/state", _json({
        "v": 1, "kind": "state", "device": device.id, "ts": millis, "seq": seq,
        "values": _native_values(device, values)}), retain=True)]
    if values.get("emergency_call"):
        messages.append(Outgoing(f"{NATIVE_PREFIX}/{device.id}/event", _json({
            "v": 1, "kind": "event", "device": device.id, "ts": millis, "seq": seq,
            "values": {"emergency_call": True, "button_event": "single"}})))
    return messages


def native_announce(device: VirtualDevice, values: Values) -> Outgoing:
    capabilities = sorted(set(_native_values(device, values)) | ({"emergency_call", "button_event"}
                                                                 if device.kind == SOS else set())
                          | ({"heart_rate", "respiration_rate"} if device.kind == FALL_RADAR else set()))
    return Outgoing(f"{NATIVE_PREFIX}/{device.id}/announce", _json({
        "v": 1, "kind": "announce", "device": device.id, "name": f"{device.household.id} {device.slot}",
        "manufacturer": "CityWeave reference devices", "model": _NATIVE_MODELS[device.kind], "firmware": "1.2.0",
        "device_type": _NATIVE_TYPES[device.kind],
        "capabilities": capabilities}), retain=True)


# == entry points =============================================================================================
def encode(device: VirtualDevice, values: Values, when: datetime, seq: int = 0) -> list[Outgoing]:
    """The messages ``device`` publishes to report ``values`` measured at ``when``."""
    vendor = device.vendor
    if vendor == ZIGBEE2MQTT:
        return _z2m(device, values)
    if vendor == TASMOTA:
        return _tasmota(device, values, when)
    if vendor == SHELLY:
        return _shelly(device, values, when)
    if vendor == TUYA:
        return _tuya(device, values, when, seq)
    if vendor == HOMEASSISTANT:
        return _ha(device, values, seq)
    if vendor == NATIVE:
        return _native(device, values, when, seq)
    raise ValueError(f"unknown vendor {vendor!r}")


def announcements(fleet: Fleet | Iterable[VirtualDevice], when: datetime,
                  sample: Callable[[VirtualDevice], Values]) -> list[Outgoing]:
    """Retained messages by which the devices announce themselves, where their ecosystem does.

    ``sample`` gives a device's current values (Shelly's full status and native announcements
    describe the device by what it reports). Tuya devices announce nothing over MQTT: their
    descriptions come from the cloud (:func:`description`).
    """
    devices = list(fleet.devices if isinstance(fleet, Fleet) else fleet)
    messages: list[Outgoing] = []
    zigbee = [z2m_bridge_entry(d) for d in devices if d.vendor == ZIGBEE2MQTT]
    if zigbee:
        coordinator = {"ieee_address": "0x00124b0029876543", "type": "Coordinator", "network_address": 0,
                       "friendly_name": "Coordinator", "supported": True, "disabled": False,
                       "interview_completed": True, "interviewing": False, "interview_state": "SUCCESSFUL"}
        messages.append(Outgoing(f"{Z2M_BASE}/bridge/state", b'{"state":"online"}', retain=True))
        messages.append(Outgoing(f"{Z2M_BASE}/bridge/devices", _json([coordinator, *zigbee]), retain=True))
    for device in devices:
        if device.vendor == TASMOTA:
            messages.append(Outgoing(f"{TASMOTA_DISCOVERY}/{device.mac}/config", _json(tasmota_config(device)), True))
            sensor = TASMOTA_MODELS[device.kind].sensor
            if sensor is not None:  # a sample SENSOR payload: which sensors the device has
                sample_time = when.astimezone(CHINA).strftime("%Y-%m-%dT%H:%M:%S")
                messages.append(Outgoing(f"{TASMOTA_DISCOVERY}/{device.mac}/sensors", _json(
                    {"sn": {"Time": sample_time, **sensor(sample(device))}, "ver": 1}), True))
            messages.append(Outgoing(f"tele/{device.tasmota_topic}/LWT", b"Online", retain=True))
        elif device.vendor == SHELLY:
            params = shelly_full_status(device, sample(device), when)
            messages.append(Outgoing(f"{device.shelly_id}/online", b"true", retain=True))
            messages.append(Outgoing(f"{device.shelly_id}/events/rpc",
                                     _shelly_frame(device, "NotifyFullStatus",
                                                   {"ts": round(_epoch(when), 2), **params})))
        elif device.vendor == HOMEASSISTANT:
            messages.append(ha_discovery(device))
        elif device.vendor == NATIVE:
            messages.append(native_announce(device, sample(device)))
            messages.append(Outgoing(f"{NATIVE_PREFIX}/{device.id}/availability", b"online", retain=True))
    return messages


def description(device: VirtualDevice, values: Values, when: datetime) -> dict[str, Any] | None:
    """The out-of-band document ``adapter.discover()`` takes for this device, where one exists."""
    if device.vendor == TUYA:
        return tuya_description(device)
    if device.vendor == SHELLY:
        return {"shelly": shelly_info(device), "config": {"mqtt": {"topic_prefix": device.shelly_id}},
                "status": shelly_full_status(device, values, when)}
    return None
