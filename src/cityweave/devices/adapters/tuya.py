"""Tuya data points (DPs), from the cloud model and from local-protocol bridges.

A Tuya device is a bag of DPs. The cloud names them by *code* (``switch_1``, ``cur_power``,
``smoke_sensor_status``) and describes each in ``status_range``/``function``: Boolean, Integer
(``unit``, ``min``, ``max``, ``scale``; the real value is ``raw / 10**scale``), Enum (``range``),
Bitmap (``label``), Json, Raw (base64), String. The meaning of a code depends on the product
*category* (``bright_value`` is a lamp level on a ``dj`` light and lux on an ``ldcg`` sensor), so
the mapping is per category with common defaults. Local bridges number DPs instead (``1``, ``101``);
their meaning comes from a device definition such as make-all/tuya-local's YAML files.

Two MQTT forms are understood:

* TuyaLink (Tuya's MQTT device protocol): ``tylink/<device id>/thing/property/report`` with
  ``{"msgId", "time", "data": {"<code>": {"value": v, "time": t}}}``; commands go to
  ``tylink/<device id>/thing/property/set`` as ``{"msgId", "time", "data": {"<code>": v}}``.
* tuya-mqtt style local bridges: ``tuya/<device>/dps/state`` (``{"1": true, "2": 123}``),
  ``tuya/<device>/dps/<id>/state`` (one raw value), ``tuya/<device>/state`` (online/offline);
  commands to ``tuya/<device>/dps/<id>/command``.

The binding's profile holds the DP specs, built by :meth:`TuyaAdapter.discover` from a cloud
device description or a tuya-local definition.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from cityweave.devices import types as device_types
from cityweave.devices.adapters.base import (
    DiscoveryError,
    Message,
    VendorAdapter,
    as_number,
    dumps,
    lookup,
)
from cityweave.devices.binding import DeviceBinding
from cityweave.devices.command import Command, CommandRejected, EncodedCommand, ExpectedEcho
from cityweave.devices.discovery import CapabilityRef, DiscoveredDevice
from cityweave.devices.reading import Quality
from cityweave.devices.reasons import Reason

# Category code -> words that steer device-type inference.
CATEGORIES: dict[str, str] = {
    "ywbj": "smoke detector", "rqbj": "gas detector", "jwbj": "gas detector", "cobj": "carbon monoxide detector",
    "sj": "water leak sensor", "mcs": "door contact", "pir": "motion pir", "hps": "presence radar",
    "cz": "smart plug", "pc": "smart plug power strip", "kg": "wall switch", "tdq": "switch",
    "dlq": "breaker meter", "dj": "light bulb", "dd": "light strip", "xdd": "light", "cl": "curtain",
    "clkg": "curtain", "wk": "thermostat", "wkf": "radiator thermostat", "kt": "air conditioner",
    "wsdcg": "temperature humidity", "co2bj": "air quality co2", "pm2.5": "air quality pm2.5",
    "hjjcy": "air quality", "zndb": "energy meter", "ldcg": "light sensor luminance", "sgbj": "siren",
    "mal": "alarm panel", "jtmspro": "lock", "ms": "lock", "sfkzq": "valve", "wxkg": "button scene",
    "sos": "sos emergency", "cwysj": "water", "znrb": "water meter", "ywcgq": "fill level",
}

# The category is the product's own statement of what it is; it beats inference.
CATEGORY_TYPES: dict[str, str] = {
    "ywbj": "smoke_detector", "rqbj": "gas_detector", "jwbj": "gas_detector", "cobj": "co_detector",
    "sj": "water_leak_sensor", "mcs": "contact_sensor", "pir": "motion_sensor", "hps": "presence_sensor",
    "cz": "plug", "pc": "plug", "kg": "switch", "tdq": "switch", "dj": "light", "dd": "light",
    "xdd": "light", "cl": "curtain", "clkg": "curtain", "wk": "climate", "wkf": "climate", "kt": "climate",
    "wsdcg": "climate_sensor", "co2bj": "air_quality_monitor", "hjjcy": "air_quality_monitor",
    "zndb": "electricity_meter", "ldcg": "illuminance_sensor", "sgbj": "siren", "mal": "alarm_panel",
    "jtmspro": "lock", "ms": "lock", "sfkzq": "valve", "wxkg": "button", "sos": "emergency_button",
}

# Code -> capability, valid in every category unless overridden below.
COMMON: dict[str, str] = {
    "battery_percentage": "battery", "residual_electricity": "battery", "va_battery": "battery",
    "battery_state": "battery_level", "temp_current": "temperature", "va_temperature": "temperature",
    "humidity_value": "humidity", "va_humidity": "humidity", "humidity": "humidity",
    "co2_value": "co2", "pm25_value": "pm2_5", "pm10_value": "pm10", "pm1": "pm1",
    "voc_value": "tvoc", "ch2o_value": "formaldehyde", "co_status": "carbon_monoxide",
    "co_state": "carbon_monoxide", "co_value": "co_ppm", "gas_sensor_status": "gas",
    "gas_sensor_state": "gas", "gas_sensor_value": "gas_ppm", "smoke_sensor_status": "smoke",
    "smoke_sensor_state": "smoke", "smoke_sensor_value": "smoke_density",
    "watersensor_state": "water_leak", "doorcontact_state": "contact", "pir": "motion",
    "presence_state": "presence", "human_motion_state": "motion", "illuminance_value": "illuminance",
    "temper_alarm": "tamper", "muffling": "alarm_muted", "checking_result": "self_test_result",
    "self_checking": "self_test", "fault": "fault", "switch_led": "on_off",
    "bright_value": "brightness", "bright_value_v2": "brightness", "colour_data": "color",
    "colour_data_v2": "color", "cur_power": "power_w", "cur_voltage": "voltage",
    "cur_current": "current", "add_ele": "energy_kwh", "forward_energy_total": "energy_kwh",
    "reverse_energy_total": "energy_exported_kwh", "total_power": "power_w",
    "power_total": "power_w", "supply_frequency": "frequency", "percent_state": "cover_position",
    "work_state": "cover_state", "temp_set": "target_temperature", "window_state": "window_open",
    "child_lock": "child_lock", "master_mode": "alarm_state", "hijack": "duress",
    "doorbell": "doorbell", "closed_opened": "contact", "phase_a": "phase", "phase_b": "phase",
    "phase_c": "phase", "sos_state": "emergency_call", "fall_down_state": "fall_state",
    "heart_rate": "heart_rate", "level": "fan_mode", "switch": "on_off",
}
# Category-specific meanings that beat COMMON.
BY_CATEGORY: dict[str, dict[str, str]] = {
    "ldcg": {"bright_value": "illuminance"},
    "mcs": {"switch": "contact"},
    "sfkzq": {"switch": "valve_open"},
    "sgbj": {"alarm_switch": "siren"},
    "wk": {"mode": "hvac_mode"},
    "kt": {"mode": "hvac_mode"},
}

# Raw enum/bool -> capability value, for codes whose states need translating.
_ALARM = {"alarm": True, "normal": False, "1": True, "0": False}
VALUE_MAPS: dict[str, dict[Any, Any]] = {
    "smoke": _ALARM, "gas": _ALARM, "carbon_monoxide": _ALARM, "water_leak": _ALARM,
    "presence": {"presence": True, "none": False},
    "battery_level": {"low": "low", "middle": "medium", "high": "high"},
    "self_test_result": {"checking": "checking", "check_success": "success",
                         "check_failure": "failure", "others": "unknown"},
    "cover_state": {"opening": "opening", "closing": "closing"},
    "window_open": {"open": True, "close": False},
    "alarm_state": {"disarmed": "disarmed", "arm": "armed_away", "home": "armed_home", "sos": "triggered"},
    "hvac_mode": {"cold": "cool", "hot": "heat", "auto": "auto", "wind": "fan_only", "wet": "dry"},
    "fan_mode": {"low": "low", "middle": "medium", "high": "high", "auto": "auto"},
    "fall_state": {"none": "none", "normal": "none", "maybe_fall": "suspected", "fall": "fall"},
}
_BUTTON = {"click": "single", "single_click": "single", "double_click": "double", "press": "long",
           "long_press": "long", "press_end": "single", "long_press_end": "long",
           "multi_press_end": "double"}


def _mapping_for(code: str, category: str) -> tuple[str | None, str | None]:
    """``(capability, endpoint)`` of a cloud DP code in a category."""
    by_category = BY_CATEGORY.get(category, {})
    if code in by_category:
        return by_category[code], None
    if code.startswith("switch_") and code[7:].isdigit():
        return ("valve_open" if category == "sfkzq" else "on_off"), code[7:]
    if code.startswith("switch_mode") and code[11:].isdigit() and category == "wxkg":
        return "button_event", code[11:]
    if code == "switch" and category in ("ywbj", "rqbj", "cobj", "co2bj", "mal"):
        return None, None
    if code == "level" and category not in ("wk", "kt"):
        return None, None
    if code == "percent_control":
        return "cover_position", None  # used only when there is no percent_state
    return COMMON.get(code), (code[-1] if code.startswith("phase_") else None)


def _parse_values(spec: Mapping[str, Any]) -> dict[str, Any]:
    values = spec.get("values", spec.get("value"))
    if isinstance(values, str):  # the cloud API sometimes nests JSON in a string
        try:
            values = orjson.loads(values)
        except orjson.JSONDecodeError:
            values = {}
    return values if isinstance(values, dict) else {}


def cloud_profile(document: Mapping[str, Any]) -> dict[str, Any]:
    """DP specs keyed by code from a cloud description (``status_range`` + ``function``)."""
    category = str(document.get("category") or "")
    readable = document.get("status_range") or {}
    writable = document.get("function") or {}
    if not isinstance(readable, dict) or not isinstance(writable, dict):
        raise DiscoveryError("status_range and function must be objects")
    codes = list(dict.fromkeys([*readable, *writable, *(document.get("status") or {})]))
    dps: dict[str, dict[str, Any]] = {}
    for code in codes:
        spec = readable.get(code) or writable.get(code) or {}
        values = _parse_values(spec) if isinstance(spec, dict) else {}
        capability, endpoint = _mapping_for(code, category)
        if code == "percent_control" and "percent_state" in codes:
            capability = None
        enum_range = values.get("range") if isinstance(values, dict) else None
        if capability in VALUE_MAPS and isinstance(enum_range, list) and not set(enum_range) <= set(VALUE_MAPS[capability]):
            capability = None  # e.g. a thermostat "mode" of manual/program is a preset, not an HVAC mode
        entry: dict[str, Any] = {
            "code": code, "type": str(spec.get("type", "")).lower() if isinstance(spec, dict) else "",
            "capability": capability, "endpoint": endpoint, "writable": code in writable,
        }
        for key in ("unit", "min", "max", "scale", "step", "range", "label", "maxlen"):
            if key in values:
                entry[key] = values[key]
        if entry["type"] == "json" and isinstance(values.get("h"), dict):
            entry["hsv"] = {k: values[k].get("max") for k in ("h", "s", "v") if isinstance(values.get(k), dict)}
        dps[code] = entry
    return {"category": category, "product_id": document.get("product_id"), "keyed_by": "code", "dps": dps}


# --- tuya-local definitions (DP ids) ----------------------------------------------------------
_LOCAL_BINARY = {"door": "contact", "window": "contact", "opening": "contact", "garage_door": "contact",
                 "smoke": "smoke", "gas": "gas", "carbon_monoxide": "carbon_monoxide",
                 "moisture": "water_leak", "motion": "motion", "occupancy": "occupancy",
                 "presence": "presence", "tamper": "tamper", "problem": "fault",
                 "battery": "battery_low", "cold": "preheating", "plug": "mains_power",
                 "power": "mains_power", "sound": "siren", "vibration": "vibration"}
_LOCAL_SENSOR = {"temperature": "temperature", "humidity": "humidity", "carbon_dioxide": "co2",
                 "carbon_monoxide": "co_ppm", "pm25": "pm2_5", "pm10": "pm10", "pm1": "pm1",
                 "volatile_organic_compounds": "tvoc", "volatile_organic_compounds_parts": "tvoc_ppb",
                 "battery": "battery", "energy": "energy_kwh", "power": "power_w", "voltage": "voltage",
                 "current": "current", "frequency": "frequency", "power_factor": "power_factor",
                 "illuminance": "illuminance", "atmospheric_pressure": "pressure", "pressure": "pressure"}


def _local_capability(entity: Mapping[str, Any], dp: Mapping[str, Any]) -> str | None:
    kind, klass, role = entity.get("entity"), entity.get("class"), dp.get("name")
    label = str(entity.get("name") or entity.get("translation_key") or "").lower()
    config = entity.get("category") == "config"
    if kind == "binary_sensor" and role == "sensor":
        if "carbon monoxide" in label:
            return "carbon_monoxide"
        return _LOCAL_BINARY.get(str(klass))
    if kind == "sensor" and role == "sensor":
        if entity.get("translation_key") == "air_quality":
            return "air_quality"
        if klass == "volatile_organic_compounds" and label in ("hcho", "formaldehyde"):
            return "formaldehyde"
        if klass == "volatile_organic_compounds_parts" and "gas" in label or (klass is None and label == "gas"):
            return "gas_ppm"
        if klass == "energy" and "produced" in label:
            return "energy_exported_kwh"
        return _LOCAL_SENSOR.get(str(klass))
    if config:
        return "child_lock" if kind == "lock" and role == "lock" else None
    if kind in ("switch", "light") and role == "switch":
        # The main switch has no name of its own; named ones ("sound", "anti-frost") are options.
        main = not (entity.get("name") or entity.get("translation_key"))
        return "on_off" if main or klass in ("outlet", "switch") else None
    if kind == "light" and role == "brightness":
        return "brightness"
    if kind == "lock" and role == "lock":
        return "child_lock" if "child" in label else "lock"
    if kind == "cover" and role in ("position", "current_position"):
        return "cover_position"
    if kind == "valve" and role in ("valve", "switch"):
        return "valve_open" if dp.get("type") == "boolean" else "valve_position"
    if kind == "valve" and role == "current_position":
        return "valve_position"
    if kind == "climate":
        return {"hvac_mode": "hvac_mode", "temperature": "target_temperature",
                "current_temperature": "temperature", "hvac_action": "hvac_action"}.get(str(role))
    if kind == "siren" and role == "switch":
        return "siren"
    if kind == "alarm_control_panel" and role == "alarm_state":
        return "alarm_state"
    if kind == "event" and klass == "button" and role == "event":
        return "button_event"
    return None


def local_profile(definition: Mapping[str, Any]) -> dict[str, Any]:
    """DP specs keyed by DP id from a tuya-local style definition (``entities`` with ``dps``)."""
    entities = definition.get("entities")
    if not isinstance(entities, list):
        raise DiscoveryError("definition without entities")
    dps: dict[str, dict[str, Any]] = {}
    for entity in entities:
        if not isinstance(entity, dict):
            continue
        roles = {dp.get("name") for dp in entity.get("dps", []) if isinstance(dp, dict)}
        for dp in entity.get("dps", []):
            if not isinstance(dp, dict) or "id" not in dp:
                continue
            key = str(dp["id"])
            capability = _local_capability(entity, dp)
            if capability == "cover_position" and dp.get("name") == "position" and "current_position" in roles:
                capability = None
            entry: dict[str, Any] = {
                "code": f"{entity.get('entity')}.{entity.get('class') or entity.get('name') or dp.get('name')}",
                "type": str(dp.get("type", "")), "capability": capability, "endpoint": None,
                "writable": entity.get("entity") not in ("sensor", "binary_sensor", "event"),
                "unit": dp.get("unit"), "local": True,
            }
            if isinstance(dp.get("range"), dict):
                entry["min"], entry["max"] = dp["range"].get("min"), dp["range"].get("max")
            mapping = [m for m in dp.get("mapping") or [] if isinstance(m, dict) and "conditions" not in m]
            if mapping:
                entry["mapping"] = [{k: m[k] for k in ("dps_val", "value", "scale", "invert") if k in m}
                                    for m in mapping]
            if capability in ("contact",) and entity.get("class") in ("door", "window", "opening", "garage_door"):
                entry["invert"] = True
            # Several entities may share a DP (a bitfield read as problem and as tamper): first
            # mapped meaning wins, the others are documented by the definition itself.
            if key not in dps or (dps[key]["capability"] is None and capability is not None):
                dps[key] = entry
    endpoints: dict[str, int] = {}
    for entry in dps.values():  # two power sensors on a two-channel meter
        if entry["capability"]:
            endpoints[entry["capability"]] = endpoints.get(entry["capability"], 0) + 1
    for key, entry in dps.items():
        capability = entry["capability"]
        if capability and endpoints[capability] > 1:
            entry["endpoint"] = key
    return {"category": None, "keyed_by": "id", "name": definition.get("name"), "dps": dps}


class TuyaAdapter(VendorAdapter):
    name: ClassVar[str] = "tuya"
    title: ClassVar[str] = "Tuya data points"

    def subscriptions(self) -> list[str]:
        return ["tylink/+/thing/property/report", "tylink/+/thing/property/set",
                "tylink/+/thing/event/trigger", "tuya/+/dps/state", "tuya/+/dps/+/state",
                "tuya/+/state", "tuya/+/command", "tuya/+/dps/+/command"]

    # -- decoding ------------------------------------------------------------------------------
    def _decode(self, message: Message) -> None:
        parts = message.topic.split("/")
        if parts[0] == "tylink" and len(parts) >= 5:
            self._tylink(message, parts[1], "/".join(parts[2:]))
        elif parts[0] == "tuya" and len(parts) >= 3:
            self._local(message, parts[1], parts[2:])
        else:
            message.reject(Reason.UNEXPECTED_TOPIC, f"not a Tuya topic: {message.topic}")

    def _tylink(self, message: Message, device_id: str, rest: str) -> None:
        binding = message.bind(device_id)
        body = message.json(dict)
        if binding is None or body is None:
            return
        data = body.get("data")
        if not isinstance(data, dict):
            message.reject(Reason.SCHEMA_VIOLATION, "TuyaLink message without data object")
            return
        moment = message.timestamp(body.get("time"))
        if rest == "thing/property/report":
            for code, item in data.items():
                value, stamp = (item.get("value"), message.timestamp(item.get("time", body.get("time")))) \
                    if isinstance(item, dict) and "value" in item else (item, moment)
                self._dp(message, binding, str(code), value, stamp)
        elif rest == "thing/property/set":
            for code, value in data.items():
                self._observed(message, binding, str(code), value, body.get("msgId"))
        else:
            message.unknown(rest, data)

    def _local(self, message: Message, device: str, rest: list[str]) -> None:
        binding = message.bind(device)
        if binding is None:
            return
        if rest == ["state"]:
            text = message.text()
            if text is not None and text.strip() in ("online", "offline"):
                message.online(binding.address, text.strip() == "online")
            elif text is not None:
                message.reject(Reason.INVALID_VALUE, f"state {text!r:.40}")
        elif rest == ["dps", "state"]:
            body = message.json(dict)
            for key, value in (body or {}).items():
                self._dp(message, binding, str(key), value, message.received_at)
        elif len(rest) == 3 and rest[0] == "dps" and rest[2] in ("state", "command"):
            text = message.text()
            if text is None:
                return
            try:
                value: Any = orjson.loads(text)
            except orjson.JSONDecodeError:
                value = text.strip()  # tuya-mqtt publishes bare strings
            if rest[2] == "state":
                self._dp(message, binding, rest[1], value, message.received_at)
            else:
                self._observed(message, binding, rest[1], value, None)
        elif rest == ["command"]:
            body = message.json(dict)
            if body is not None and "dps" in body and "set" in body:
                self._observed(message, binding, str(body["dps"]), body["set"], None)
            elif body is not None:
                message.unknown("command", body)
        else:
            message.ignore()

    def _dp(self, message: Message, binding: DeviceBinding, key: str, raw: Any, stamp: Any) -> None:
        dps: Mapping[str, Any] = binding.profile.get("dps") or {}
        spec = dps.get(key)
        if spec is None or not spec.get("capability"):
            message.unknown(key, raw)
            return
        capability: str = spec["capability"]
        endpoint = spec.get("endpoint")
        value = self._raw_to_value(message, spec, key, raw)
        if value is _SKIP:
            return
        if capability == "phase":
            self._phase(message, key, raw, endpoint, stamp)
            return
        if capability == "fault":
            labels = spec.get("label") or []
            active = [label for bit, label in enumerate(labels) if isinstance(raw, int) and raw >> bit & 1]
            message.read("fault", bool(value), source=key, timestamp=stamp,
                         extra={"faults": active} if active else None)
            return
        unit = spec.get("unit") or None
        if capability == "tvoc" and unit is None:
            unit = "µg/m³"
        message.read(capability, value, unit=unit, endpoint=endpoint, source=key, timestamp=stamp)
        if capability == "alarm_state" and raw == "sos":
            message.read("emergency_call", True, source=key, timestamp=stamp)
        if capability == "fall_state" and isinstance(value, str):
            message.read("fall", value == "fall", source=key, timestamp=stamp)

    def _raw_to_value(self, message: Message, spec: Mapping[str, Any], key: str, raw: Any) -> Any:
        """The capability value of a raw DP, or ``_SKIP`` after recording why not."""
        capability: str = spec["capability"]
        kind = spec.get("type", "")
        if spec.get("local"):  # tuya-local definition: its own mapping, no cloud vocabulary
            return self._local_value(message, spec, key, raw)
        if capability == "motion":
            return raw not in ("none", "nopir", False, "no_pir")
        if capability == "contact":  # Tuya's doorcontact/switch: true = open
            if raw in ("open", "closed"):
                return raw == "closed"
            if raw == "unknown":
                return _SKIP
            return (not raw) if isinstance(raw, bool) else raw
        if capability == "button_event":
            return lookup(_BUTTON, raw, raw)
        if capability == "fault":
            return raw != 0
        if capability in VALUE_MAPS:
            mapped = lookup(VALUE_MAPS[capability], raw)
            if mapped is None:
                message.reject(Reason.INVALID_VALUE, f"{key}={raw!r:.40} has no {capability} meaning", key)
                return _SKIP
            return mapped
        if capability == "brightness" and (number := as_number(raw)) is not None:
            top = as_number(spec.get("max")) or 255.0
            return round(number * 100.0 / top, 1)
        if capability == "color":
            return self._hsv(message, spec, key, raw)
        if kind == "integer":
            number = as_number(raw)
            if number is None or isinstance(raw, str):
                message.reject(Reason.WRONG_TYPE, f"{key}={raw!r:.40} is not an integer", key)
                return _SKIP
            low, high = as_number(spec.get("min")), as_number(spec.get("max"))
            if low is not None and number < low or high is not None and number > high:
                message.reject(Reason.OUT_OF_RANGE, f"{key}={raw} outside [{low}, {high}]", key)
                return _SKIP
            scale = int(spec.get("scale") or 0)
            return number / 10**scale if scale else number
        if kind == "enum" and spec.get("range") and raw not in spec["range"]:
            message.reject(Reason.INVALID_VALUE, f"{key}={raw!r:.40} not in {spec['range']}", key)
            return _SKIP
        return raw

    def _local_value(self, message: Message, spec: Mapping[str, Any], key: str, raw: Any) -> Any:
        value: Any = raw
        default: Any = _SKIP
        matched = False
        for entry in spec.get("mapping", []):
            if "dps_val" not in entry:
                if "value" in entry:
                    default = entry["value"]
                if "scale" in entry and as_number(raw) is not None:
                    value = as_number(raw) / float(entry["scale"])  # type: ignore[operator]
                continue
            if str(entry["dps_val"]).lower() == str(raw).lower() and "value" in entry:
                value, matched = entry["value"], True
                break
        if not matched and default is not _SKIP:
            value = default
        if spec.get("invert") and isinstance(value, bool):
            value = not value
        if spec["capability"] == "button_event":
            return _SKIP if value is None else lookup(_BUTTON, value, value)
        return value

    def _hsv(self, message: Message, spec: Mapping[str, Any], key: str, raw: Any) -> Any:
        data = raw
        if isinstance(raw, str):
            if not raw:
                return _SKIP
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError:
                message.reject(Reason.MALFORMED_JSON, f"{key} is not JSON", key)
                return _SKIP
        if not isinstance(data, dict) or as_number(data.get("h")) is None or as_number(data.get("s")) is None:
            message.reject(Reason.WRONG_TYPE, f"{key} is not an h/s/v object", key)
            return _SKIP
        s_max = as_number((spec.get("hsv") or {}).get("s")) or 255.0
        return {"h": as_number(data["h"]), "s": round(as_number(data["s"]) * 100.0 / s_max, 1)}  # type: ignore[operator]

    def _phase(self, message: Message, key: str, raw: Any, endpoint: str | None, stamp: Any) -> None:
        """One phase of a Tuya meter: base64 (V/10, A/1000, kW/1000 in 2+3+3 bytes) or JSON."""
        if isinstance(raw, dict):  # units undocumented: readable, but flagged uncertain
            for member, capability, unit in (("voltage", "voltage", "V"), ("electricCurrent", "current", "A"),
                                             ("power", "power_w", "kW")):
                if member in raw:
                    message.read(capability, raw[member], unit=unit, endpoint=endpoint, source=f"{key}.{member}",
                                 timestamp=stamp, quality=Quality.UNCERTAIN)
            return
        if raw in ("", None):
            return
        try:
            data = base64.b64decode(str(raw), validate=True)
        except (binascii.Error, ValueError):
            message.reject(Reason.WRONG_TYPE, f"{key} is not base64", key)
            return
        if len(data) < 8:
            message.reject(Reason.SCHEMA_VIOLATION, f"{key}: {len(data)} bytes, expected 8", key)
            return
        message.read("voltage", int.from_bytes(data[0:2], "big") / 10.0, endpoint=endpoint, source=key, timestamp=stamp)
        message.read("current", int.from_bytes(data[2:5], "big") / 1000.0, endpoint=endpoint, source=key, timestamp=stamp)
        message.read("power_w", int.from_bytes(data[5:8], "big") / 1000.0, unit="kW", endpoint=endpoint,
                     source=key, timestamp=stamp)

    def _observed(self, message: Message, binding: DeviceBinding, key: str, raw: Any, msg_id: Any) -> None:
        spec = (binding.profile.get("dps") or {}).get(key)
        if spec is None or spec.get("capability") in (None, "phase", "fault"):
            message.unknown(f"set.{key}", raw)
            return
        probe = Message(self, message.topic, b"", message.received_at)
        value = self._raw_to_value(probe, spec, key, raw)
        if value is _SKIP:
            message.unknown(f"set.{key}", raw)
            return
        message.observed(spec["capability"], value, spec.get("endpoint"),
                         str(msg_id) if msg_id is not None else None)

    # -- discovery -------------------------------------------------------------------------------
    def discover(self, document: Mapping[str, Any], *, address: str | None = None) -> DiscoveredDevice:
        """A cloud device description (category, status_range, function) or a tuya-local definition."""
        if "entities" in document:
            profile = local_profile(document)
            products = document.get("products") or []
            product = products[0] if products and isinstance(products[0], dict) else {}
            device_id = address or product.get("id")
            name, model, manufacturer = document.get("name"), product.get("model"), product.get("manufacturer")
            hint = str(name or "")
        else:
            profile = cloud_profile(document)
            device_id = address or document.get("id") or document.get("product_id")
            name, model, manufacturer = document.get("name"), document.get("product_name"), "Tuya"
            hint = f"{CATEGORIES.get(profile['category'], '')} {document.get('product_name') or ''}"
        if not isinstance(device_id, str) or not device_id:
            raise DiscoveryError("no device id")
        refs = {CapabilityRef(spec["capability"], spec.get("endpoint"), bool(spec.get("writable"))
                              and spec["capability"] in _ENCODABLE)
                for spec in profile["dps"].values() if spec.get("capability")}
        expanded: set[CapabilityRef] = set()
        for ref in refs:
            if ref.capability == "phase":
                expanded |= {CapabilityRef(c, ref.endpoint) for c in ("voltage", "current", "power_w")}
            elif ref.capability == "fall_state":
                expanded |= {ref, CapabilityRef("fall")}
            elif ref.capability == "alarm_state":
                expanded |= {ref, CapabilityRef("emergency_call")}
            else:
                expanded.add(ref)
        caps = {r.capability for r in expanded}
        return DiscoveredDevice(
            adapter=self.name, address=device_id, name=str(name).strip() if name else None,
            manufacturer=manufacturer, model=model, description=hint.strip() or None,
            device_type=CATEGORY_TYPES.get(str(profile.get("category"))) or device_types.infer(caps, hint),
            capabilities=tuple(sorted(expanded, key=lambda r: (r.capability, r.endpoint or ""))),
            profile=profile,
        )

    # -- commands --------------------------------------------------------------------------------
    def encode(self, command: Command, binding: DeviceBinding) -> EncodedCommand:
        profile = binding.profile
        dps: Mapping[str, Any] = profile.get("dps") or {}
        wanted = "cover_position" if command.capability == "cover_control" else command.capability
        candidates = [(key, spec) for key, spec in dps.items()
                      if spec.get("capability") == wanted and spec.get("endpoint") == command.endpoint
                      and spec.get("writable")]
        if command.capability == "cover_control":
            candidates = [(key, spec) for key, spec in dps.items() if spec.get("code") == "control"]
        if command.capability == "cover_position" and not candidates:
            candidates = [(k, s) for k, s in dps.items() if s.get("code") == "percent_control"]
        if not candidates or command.capability not in _ENCODABLE:
            raise CommandRejected(Reason.NOT_SUPPORTED,
                                  f"{binding.address} has no writable {command.capability}@{command.endpoint}")
        key, spec = candidates[0]
        raw = self._value_to_raw(command, spec)
        echo = None if command.capability == "cover_control" else ExpectedEcho(
            command.capability, command.value, command.endpoint,
            timeout_s=120 if command.capability == "cover_position" else 10, tolerance=1.0)
        if profile.get("keyed_by") == "id":
            name = binding.aliases[0] if binding.aliases else binding.address
            return EncodedCommand(command=command, topic=f"tuya/{name}/dps/{key}/command",
                                  payload=dumps(raw), expected_echo=echo)
        payload = {"msgId": command.id, "time": int(time.time() * 1000), "data": {key: raw}}
        return EncodedCommand(command=command, topic=f"tylink/{binding.address}/thing/property/set",
                              payload=dumps(payload), expected_echo=echo)

    @staticmethod
    def _value_to_raw(command: Command, spec: Mapping[str, Any]) -> Any:
        value = command.value
        capability = command.capability
        if capability == "cover_control":
            return {"open": "open", "close": "close", "stop": "stop"}[str(value)]
        if "mapping" in spec:
            for entry in spec.get("mapping", []):
                if entry.get("value") == value and "dps_val" in entry:
                    return entry["dps_val"]
        if isinstance(value, bool):
            return (not value) if spec.get("invert") or capability == "contact" else value
        if capability == "brightness":
            top, low = as_number(spec.get("max")) or 255.0, as_number(spec.get("min")) or 0.0
            return int(max(low, min(top, round(float(value) * top / 100.0))))  # type: ignore[arg-type]
        if capability in VALUE_MAPS:
            reverse = {v: k for k, v in VALUE_MAPS[capability].items() if isinstance(k, str)}
            if value not in reverse:
                raise CommandRejected(Reason.INVALID_VALUE, f"{capability}={value!r} has no Tuya value")
            return reverse[value]
        if isinstance(value, int | float):
            scale = int(spec.get("scale") or 0)
            raw = round(float(value) * 10**scale)
            low, high = as_number(spec.get("min")), as_number(spec.get("max"))
            if low is not None and raw < low or high is not None and raw > high:
                raise CommandRejected(Reason.OUT_OF_RANGE, f"{capability}={value} outside the device range")
            return raw
        return value


_SKIP = object()
_ENCODABLE = {"on_off", "valve_open", "valve_position", "brightness", "cover_position", "cover_control",
              "target_temperature", "hvac_mode", "fan_mode", "child_lock", "siren", "alarm_state",
              "alarm_muted", "lock"}
