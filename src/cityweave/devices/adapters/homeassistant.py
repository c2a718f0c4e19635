"""Home Assistant MQTT discovery: any device or bridge that announces itself the HA way.

Announcements arrive retained on ``<prefix>/<component>/[<node_id>/]<object_id>/config`` (one
entity) or ``<prefix>/device/<object_id>/config`` (a whole device, entities under ``cmps``); an
empty payload withdraws the entity. Keys may be abbreviated (``stat_t``, ``dev_cla``, ``dev``...)
and topics may use ``~`` for a base topic. Entities of one device (same ``device.identifiers``) are
gathered into one :class:`DiscoveredDevice`; the adapter remembers what it has seen, so each
announcement carries every entity known so far.

State then arrives on whatever topics the entities name. The adapter indexes the topics of all
bound devices and decodes each message for the entities listening there: binary sensors by
``payload_on``/``payload_off``, sensors by ``device_class`` and ``unit_of_measurement``, locks,
covers, valves, alarm panels, lights (default and JSON schema), climate and device triggers. The
small subset of Jinja that discovery payloads use in ``value_template`` (``value_json.a.b``,
``value_json['a']``, ``| int``, ``| float``, ``| round(n)``...) is evaluated here; anything richer
is refused with a reason rather than guessed. Readings carry the entity (``sensor.room_co2``) as
their endpoint.

Where HA clamps (a cover position of 101 shown as 100) CityWeave refuses the value as out of
range, because a clamped number is not what the device measured.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

import orjson

from cityweave.devices import capabilities
from cityweave.devices import types as device_types
from cityweave.devices.adapters.base import (
    DiscoveryError,
    Message,
    VendorAdapter,
    as_number,
    lookup,
)
from cityweave.devices.binding import DeviceBinding, DeviceDirectory
from cityweave.devices.command import Command, CommandRejected, EncodedCommand, ExpectedEcho
from cityweave.devices.discovery import CapabilityRef, DiscoveredDevice
from cityweave.devices.reading import Quality
from cityweave.devices.reasons import Reason

ABBREVIATIONS: dict[str, str] = {
    "act_t": "action_topic", "act_tpl": "action_template", "atype": "automation_type",
    "avty": "availability", "avty_mode": "availability_mode", "avty_t": "availability_topic",
    "avty_tpl": "availability_template", "bri_cmd_t": "brightness_command_topic",
    "bri_cmd_tpl": "brightness_command_template", "bri_scl": "brightness_scale",
    "bri_stat_t": "brightness_state_topic", "bri_val_tpl": "brightness_value_template",
    "clr_temp_cmd_t": "color_temp_command_topic", "clr_temp_stat_t": "color_temp_state_topic",
    "clr_temp_val_tpl": "color_temp_value_template", "cmd_t": "command_topic",
    "cmd_tpl": "command_template", "cmps": "components", "cod_arm_req": "code_arm_required",
    "cod_dis_req": "code_disarm_required", "cod_trig_req": "code_trigger_required",
    "curr_temp_t": "current_temperature_topic", "curr_temp_tpl": "current_temperature_template",
    "dev": "device", "dev_cla": "device_class", "ent_cat": "entity_category",
    "evt_typ": "event_types", "exp_aft": "expire_after", "frc_upd": "force_update",
    "json_attr_t": "json_attributes_topic", "json_attr_tpl": "json_attributes_template",
    "max_temp": "max_temp", "min_temp": "min_temp", "mode_cmd_t": "mode_command_topic",
    "mode_cmd_tpl": "mode_command_template", "mode_stat_t": "mode_state_topic",
    "mode_stat_tpl": "mode_state_template", "o": "origin", "obj_id": "object_id",
    "off_dly": "off_delay", "opt": "optimistic", "p": "platform", "pl": "payload",
    "pl_arm_away": "payload_arm_away", "pl_arm_custom_b": "payload_arm_custom_bypass",
    "pl_arm_home": "payload_arm_home", "pl_arm_nite": "payload_arm_night",
    "pl_arm_vacation": "payload_arm_vacation", "pl_avail": "payload_available",
    "pl_cls": "payload_close", "pl_disarm": "payload_disarm", "pl_lock": "payload_lock",
    "pl_not_avail": "payload_not_available", "pl_off": "payload_off", "pl_on": "payload_on",
    "pl_open": "payload_open", "pl_stop": "payload_stop", "pl_unlk": "payload_unlock",
    "pos_clsd": "position_closed", "pos_open": "position_open", "pos_t": "position_topic",
    "pos_tpl": "position_template", "qos": "qos", "ret": "retain", "schema": "schema",
    "set_pos_t": "set_position_topic", "set_pos_tpl": "set_position_template",
    "stat_cla": "state_class", "stat_clsd": "state_closed", "stat_closing": "state_closing",
    "stat_jam": "state_jammed", "stat_locked": "state_locked", "stat_locking": "state_locking",
    "stat_off": "state_off", "stat_on": "state_on", "stat_open": "state_open",
    "stat_opening": "state_opening", "stat_stopped": "state_stopped", "stat_t": "state_topic",
    "stat_tpl": "state_template", "stat_unlocked": "state_unlocked",
    "stat_unlocking": "state_unlocking", "stat_val_tpl": "state_value_template",
    "stype": "subtype", "sup_clrm": "supported_color_modes", "t": "topic",
    "temp_cmd_t": "temperature_command_topic", "temp_cmd_tpl": "temperature_command_template",
    "temp_stat_t": "temperature_state_topic", "temp_stat_tpl": "temperature_state_template",
    "temp_unit": "temperature_unit", "uniq_id": "unique_id", "unit_of_meas": "unit_of_measurement",
    "val_tpl": "value_template", "rgb_cmd_t": "rgb_command_topic", "rgb_stat_t": "rgb_state_topic",
}
DEVICE_ABBREVIATIONS: dict[str, str] = {
    "cns": "connections", "ids": "identifiers", "mf": "manufacturer", "mdl": "model",
    "mdl_id": "model_id", "hw": "hw_version", "sw": "sw_version", "sa": "suggested_area",
    "sn": "serial_number", "cu": "configuration_url", "via_device": "via_device",
}
ORIGIN_ABBREVIATIONS: dict[str, str] = {"sw": "sw_version", "url": "support_url"}

_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
COMPONENTS = {"binary_sensor", "sensor", "switch", "light", "lock", "cover", "valve",
              "alarm_control_panel", "climate", "siren", "device_automation", "event", "tag",
              "button", "number", "select", "text", "fan", "humidifier", "scene", "update",
              "vacuum", "water_heater", "camera", "image", "lawn_mower", "notify", "device_tracker"}

BINARY_CLASSES: dict[str, str] = {
    "door": "contact", "window": "contact", "opening": "contact", "garage_door": "contact",
    "motion": "motion", "occupancy": "occupancy", "presence": "presence", "smoke": "smoke",
    "gas": "gas", "carbon_monoxide": "carbon_monoxide", "moisture": "water_leak",
    "tamper": "tamper", "vibration": "vibration", "battery": "battery_low", "problem": "fault",
    "power": "mains_power", "battery_charging": "charging_state", "sound": "siren",
}
SENSOR_CLASSES: dict[str, str] = {
    "temperature": "temperature", "humidity": "humidity", "pressure": "pressure",
    "atmospheric_pressure": "pressure", "illuminance": "illuminance", "power": "power_w",
    "energy": "energy_kwh", "voltage": "voltage", "current": "current", "frequency": "frequency",
    "power_factor": "power_factor", "apparent_power": "apparent_power",
    "reactive_power": "reactive_power", "battery": "battery", "carbon_dioxide": "co2",
    "carbon_monoxide": "co_ppm", "pm1": "pm1", "pm25": "pm2_5", "pm10": "pm10",
    "volatile_organic_compounds": "tvoc", "volatile_organic_compounds_parts": "tvoc_ppb",
    "aqi": "aqi", "signal_strength": "rssi", "water": "water_m3", "gas": "gas_m3",
    "enum": "text",
}
_TRIGGERS = {"button_short_press": "single", "button_double_press": "double",
             "button_triple_press": "triple", "button_quadruple_press": "quadruple",
             "button_long_press": "long", "button_short_release": "release",
             "button_long_release": "long_release"}
_ALARM_COMMANDS = {"payload_arm_home": ("ARM_HOME", "armed_home"),
                   "payload_arm_away": ("ARM_AWAY", "armed_away"),
                   "payload_arm_night": ("ARM_NIGHT", "armed_night"),
                   "payload_arm_vacation": ("ARM_VACATION", "armed_vacation"),
                   "payload_arm_custom_bypass": ("ARM_CUSTOM_BYPASS", "armed_custom_bypass"),
                   "payload_disarm": ("DISARM", "disarmed")}
_TOPIC_ROLES = ("state_topic", "availability_topic", "position_topic", "brightness_state_topic",
                "color_temp_state_topic", "current_temperature_topic", "temperature_state_topic",
                "mode_state_topic", "topic", "command_topic", "set_position_topic",
                "brightness_command_topic", "temperature_command_topic", "mode_command_topic",
                "json_attributes_topic")


# --- value templates ---------------------------------------------------------------------------
class TemplateError(ValueError):
    pass


_TEMPLATE = re.compile(r"^\s*\{\{\s*(.+?)\s*\}\}\s*$", re.DOTALL)
_ACCESS = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*'([^']*)'\s*\]|\[\s*\"([^\"]*)\"\s*\]|\[\s*(\d+)\s*\]")
_FILTER = re.compile(r"^([a-z_]+)(?:\((.*)\))?$")


def render_template(template: str, payload: str) -> Any:
    """Evaluate the ``{{ value_json.path | filter }}`` subset of HA templates."""
    match = _TEMPLATE.match(template)
    if not match:
        raise TemplateError(f"unsupported template {template!r:.60}")
    expression, *filters = [part.strip() for part in match.group(1).split("|")]
    if expression == "value":
        result: Any = payload
    elif expression.startswith("value_json"):
        try:
            result = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise TemplateError("payload is not JSON") from exc
        rest = expression[len("value_json"):]
        position = 0
        while position < len(rest):
            step = _ACCESS.match(rest, position)
            if step is None:
                raise TemplateError(f"unsupported expression {expression!r:.60}")
            name = next(g for g in step.groups() if g is not None)
            if isinstance(result, dict) and name in result:
                result = result[name]
            elif isinstance(result, list) and name.isdigit() and int(name) < len(result):
                result = result[int(name)]
            else:
                raise TemplateError(f"{expression} is undefined in the payload")
            position = step.end()
    else:
        raise TemplateError(f"unsupported expression {expression!r:.60}")
    for text in filters:
        spec = _FILTER.match(text)
        if spec is None:
            raise TemplateError(f"unsupported filter {text!r:.40}")
        name, argument = spec.groups()
        if name in ("int", "float"):
            number = as_number(result)
            if number is None:
                raise TemplateError(f"{result!r:.40} is not a number")
            result = int(number) if name == "int" else number
        elif name == "round":
            number = as_number(result)
            if number is None:
                raise TemplateError(f"{result!r:.40} is not a number")
            result = round(number, int(argument or 0))
        elif name in ("lower", "upper", "string", "trim"):
            result = {"lower": str.lower, "upper": str.upper, "string": str, "trim": str.strip}[name](str(result))
        else:
            raise TemplateError(f"unsupported filter {name!r}")
    return result


# --- discovery payloads ---------------------------------------------------------------------------
def expand(config: Mapping[str, Any]) -> dict[str, Any]:
    """Abbreviations spelled out and ``~`` replaced by the base topic, as HA does."""
    result = {ABBREVIATIONS.get(k, k): v for k, v in config.items()}
    for key, table in (("device", DEVICE_ABBREVIATIONS), ("origin", ORIGIN_ABBREVIATIONS)):
        if isinstance(result.get(key), dict):
            result[key] = {table.get(k, k): v for k, v in result[key].items()}
    base = result.pop("~", None)
    if isinstance(base, str):
        def tilde(value: Any) -> Any:
            if isinstance(value, str):
                if value.startswith("~"):
                    return base + value[1:]
                if value.endswith("~"):
                    return value[:-1] + base
            return value
        for key in list(result):
            if key.endswith("_topic") or key == "topic":
                result[key] = tilde(result[key])
        if isinstance(result.get("availability"), list):
            result["availability"] = [
                {**{ABBREVIATIONS.get(k, k): v for k, v in item.items()},
                 "topic": tilde(item.get("topic", item.get("t")))} if isinstance(item, dict) else item
                for item in result["availability"]]
    elif isinstance(result.get("availability"), list):
        result["availability"] = [{ABBREVIATIONS.get(k, k): v for k, v in item.items()}
                                  if isinstance(item, dict) else item for item in result["availability"]]
    return result


def check_config(component: str, config: Mapping[str, Any]) -> None:
    """The schema checks HA applies that matter to us; raises :class:`DiscoveryError`."""
    if "qos" in config and (not isinstance(config["qos"], int) or isinstance(config["qos"], bool)
                            or config["qos"] not in (0, 1, 2)):
        raise DiscoveryError(f"qos must be 0, 1 or 2, not {config['qos']!r:.30}")
    for key, value in config.items():
        if (key.endswith("_topic") or key == "topic") and not isinstance(value, str):
            raise DiscoveryError(f"{key} must be a string")
        if key.endswith("_template") and not isinstance(value, str):
            raise DiscoveryError(f"{key} must be a string")
    for key in ("retain", "force_update", "optimistic", "reports_position", "brightness"):
        if key in config and not isinstance(config[key], bool):
            raise DiscoveryError(f"{key} must be a boolean")
    for key in ("expire_after", "brightness_scale", "position_open", "position_closed"):
        if key in config and not isinstance(as_number(config[key]), float):
            raise DiscoveryError(f"{key} must be a number")
    if "device" in config and not isinstance(config["device"], dict):
        raise DiscoveryError("device must be an object")
    if "availability" in config and not (isinstance(config["availability"], list) and all(
            isinstance(a, dict) and isinstance(a.get("topic"), str) for a in config["availability"])):
        raise DiscoveryError("availability must be a list of {topic: ...}")
    if component in ("sensor", "binary_sensor", "lock", "valve", "switch", "siren") \
            and not any(k.endswith("_topic") for k in config):
        raise DiscoveryError(f"{component} without any topic")


def entity_capabilities(component: str, config: Mapping[str, Any]) -> list[str]:
    """The capabilities an entity provides (empty: understood but not mapped)."""
    device_class = config.get("device_class")
    if component == "binary_sensor":
        return [BINARY_CLASSES.get(str(device_class), "binary")]
    if component == "sensor":
        return [SENSOR_CLASSES.get(str(device_class), "measurement")]
    if component in ("switch",):
        return ["on_off"]
    if component == "siren":
        return ["siren"]
    if component == "light":
        caps = ["on_off"]
        if config.get("brightness") or config.get("brightness_state_topic") or config.get("brightness_command_topic"):
            caps.append("brightness")
        modes = set(config.get("supported_color_modes") or [])
        if modes & {"hs", "rgb", "rgbw", "rgbww", "xy"} or config.get("rgb_state_topic"):
            caps.append("color")
        if "color_temp" in modes or config.get("color_temp_state_topic"):
            caps.append("color_temperature")
        return caps
    if component == "lock":
        return ["lock"]
    if component == "cover":
        caps = []
        if config.get("state_topic"):
            caps.append("cover_state")
        if config.get("position_topic") or config.get("set_position_topic"):
            caps.append("cover_position")
        if config.get("command_topic"):
            caps.append("cover_control")
        return caps
    if component == "valve":
        return ["valve_position"] if config.get("reports_position") else ["valve_open"]
    if component == "alarm_control_panel":
        return ["alarm_state"]
    if component == "climate":
        caps = []
        if config.get("current_temperature_topic"):
            caps.append("temperature")
        if config.get("temperature_state_topic") or config.get("temperature_command_topic"):
            caps.append("target_temperature")
        if config.get("mode_state_topic") or config.get("mode_command_topic"):
            caps.append("hvac_mode")
        return caps
    if component in ("device_automation", "event"):
        return ["button_event"]
    return []


class HomeAssistantAdapter(VendorAdapter):
    name: ClassVar[str] = "homeassistant"
    title: ClassVar[str] = "Home Assistant MQTT discovery"

    # Discovery topics are open to anyone who may publish under the prefix; past this many
    # remembered devices new announcements are refused rather than filling memory.
    max_remembered_devices: ClassVar[int] = 20_000

    def __init__(self, directory: DeviceDirectory | None = None, *,
                 discovery_prefix: str = "homeassistant", **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self.discovery_prefix = discovery_prefix.rstrip("/")
        self._lock = threading.Lock()
        self._seen: dict[str, dict[str, Any]] = {}  # address -> {"device": ..., "entities": {...}}
        self._index: dict[str, list[tuple[DeviceBinding, str, str]]] = {}
        self._index_revision = -1

    # -- topics ------------------------------------------------------------------------------
    def subscriptions(self) -> list[str]:
        return [f"{self.discovery_prefix}/#", *sorted(self._topic_index())]

    def discovery_topics(self) -> list[str]:
        return [f"{self.discovery_prefix}/#"]

    def _topic_index(self) -> dict[str, list[tuple[DeviceBinding, str, str]]]:
        """topic -> [(binding, entity key, role)] over every bound device, rebuilt on change."""
        revision = self.directory.revision
        if revision == self._index_revision:
            return self._index
        index: dict[str, list[tuple[DeviceBinding, str, str]]] = {}
        for binding in self.directory.bindings(self.name):
            for key, entity in (binding.profile.get("entities") or {}).items():
                config = entity.get("config", {})
                state_topics = {config.get(r) for r in _TOPIC_ROLES if not r.endswith("command_topic")}
                for role in _TOPIC_ROLES:
                    topic = config.get(role)
                    if not isinstance(topic, str):
                        continue
                    if role.endswith("command_topic") and topic in state_topics:
                        continue  # one topic for both: what arrives there is state
                    index.setdefault(topic, []).append((binding, key, role))
                for item in config.get("availability") or []:
                    if isinstance(item, dict) and isinstance(item.get("topic"), str):
                        index.setdefault(item["topic"], []).append((binding, key, "availability"))
        with self._lock:
            self._index, self._index_revision = index, revision
        return index

    # -- decoding ------------------------------------------------------------------------------
    def _decode(self, message: Message) -> None:
        prefix = self.discovery_prefix + "/"
        if message.topic.startswith(prefix) and message.topic.endswith("/config"):
            self._discovery(message, message.topic[len(prefix):-len("/config")].split("/"))
            return
        targets = self._topic_index().get(message.topic)
        if not targets:
            if message.topic.startswith(prefix):
                message.ignore()  # HA's own status topic and the like
                return
            message.reject(Reason.UNKNOWN_DEVICE, f"no bound Home Assistant entity uses {message.topic}")
            return
        text = message.text()
        if text is None:
            return
        for binding, key, role in targets:
            message.binding = binding
            message.result.address = binding.address
            message.result.device_key = binding.device_key
            entity = binding.profile["entities"][key]
            self._entity_message(message, binding, key, entity["component"], entity.get("config", {}), role, text)

    def _entity_message(self, message: Message, binding: DeviceBinding, key: str, component: str,
                        config: Mapping[str, Any], role: str, text: str) -> None:
        if role in ("availability", "availability_topic"):
            self._availability(message, binding, config, text)
        elif role.endswith("command_topic"):
            self._observed(message, key, component, config, role, text)
        elif role == "json_attributes_topic":
            message.unknown(f"{key}.attributes", text[:512])
        elif component == "binary_sensor":
            self._binary_sensor(message, key, config, text)
        elif component == "sensor":
            self._sensor(message, key, config, text)
        elif component in ("switch", "siren"):
            self._on_off(message, key, config, text, "on_off" if component == "switch" else "siren")
        elif component == "light":
            self._light(message, key, config, role, text)
        elif component == "lock":
            self._lock_state(message, key, config, text)
        elif component == "cover":
            self._cover(message, key, config, role, text)
        elif component == "valve":
            self._valve(message, key, config, text)
        elif component == "alarm_control_panel":
            value = self._value(message, key, config, text)
            if value is not None:
                message.read("alarm_state", value, endpoint=key, source=key)
        elif component == "climate":
            template_key = {"current_temperature_topic": "current_temperature_template",
                            "temperature_state_topic": "temperature_state_template",
                            "mode_state_topic": "mode_state_template"}.get(role)
            value = self._value(message, key, config, text, template_key)
            capability = {"current_temperature_topic": "temperature",
                          "temperature_state_topic": "target_temperature",
                          "mode_state_topic": "hvac_mode"}.get(role)
            if value is not None and capability:
                unit = config.get("temperature_unit") if capability != "hvac_mode" else None
                message.read(capability, value, unit=unit, endpoint=key, source=key)
        elif component == "device_automation":
            expected = config.get("payload")
            if expected is None or text == expected:
                label = _TRIGGERS.get(str(config.get("type")), str(config.get("type") or text))
                message.read("button_event", label, endpoint=str(config.get("subtype") or key), source=key)
        elif component == "event":
            value = self._value(message, key, config, text)
            event_type = value.get("event_type") if isinstance(value, dict) else None
            if isinstance(event_type, str):
                message.read("button_event", event_type, endpoint=key, source=key)
            else:
                message.reject(Reason.SCHEMA_VIOLATION, "event without event_type", key)
        else:
            message.unknown(key, text[:512])

    def _value(self, message: Message, key: str, config: Mapping[str, Any], text: str,
               template_key: str | None = None) -> Any:
        template = config.get(template_key or "value_template")
        if template is None and template_key is not None:
            template = config.get("value_template")
        if template is None:
            if text.startswith("{") and config.get("_json_state"):
                try:
                    return orjson.loads(text)
                except orjson.JSONDecodeError:
                    message.reject(Reason.MALFORMED_JSON, "state is not JSON", key)
                    return None
            return text
        try:
            return render_template(str(template), text)
        except TemplateError as exc:
            message.reject(Reason.SCHEMA_VIOLATION, f"value_template: {exc}", key)
            return None

    def _availability(self, message: Message, binding: DeviceBinding, config: Mapping[str, Any],
                      text: str) -> None:
        entries = config.get("availability") or []
        spec = next((a for a in entries if isinstance(a, dict) and a.get("topic") == message.topic), config)
        online = spec.get("payload_available", config.get("payload_available", "online"))
        offline = spec.get("payload_not_available", config.get("payload_not_available", "offline"))
        if text == online or text == offline:
            if not any(a.address == binding.address for a in message.result.availability):
                message.online(binding.address, text == online)
        else:
            message.reject(Reason.INVALID_VALUE, f"availability {text!r:.40} is neither {online} nor {offline}")

    def _binary_sensor(self, message: Message, key: str, config: Mapping[str, Any], text: str) -> None:
        value = self._value(message, key, config, text)
        if value is None:
            return
        if value == "None":
            return  # HA's "reset to unknown": nothing to record
        on, off = config.get("payload_on", "ON"), config.get("payload_off", "OFF")
        if value not in (on, off):
            message.reject(Reason.INVALID_VALUE, f"{value!r:.40} is neither {on!r} nor {off!r}", key)
            return
        capability = BINARY_CLASSES.get(str(config.get("device_class")), "binary")
        flag = value == on
        if capability == "contact":
            flag = not flag  # HA: door "on" = open; CityWeave: contact true = closed
        if capability == "charging_state":
            message.read(capability, "charging" if flag else "not_charging", endpoint=key, source=key)
            return
        message.read(capability, flag, endpoint=key, source=key)

    def _sensor(self, message: Message, key: str, config: Mapping[str, Any], text: str) -> None:
        value = self._value(message, key, config, text)
        if value is None or value in ("None", "unknown", "unavailable", ""):
            return
        device_class = config.get("device_class")
        capability = SENSOR_CLASSES.get(str(device_class), "measurement")
        unit = config.get("unit_of_measurement")
        if capability == "measurement" and as_number(value) is None:
            capability = "text"
        if capability == "power_factor" and unit == "%":
            number = as_number(value)
            value, unit = (number / 100.0 if number is not None else value), None
        cap = capabilities.get(capability)
        quality = Quality.GOOD
        if cap.unit is not None and unit is None and device_class is not None:
            quality = Quality.UNCERTAIN  # a device class without a unit: assumed the canonical one
        message.read(capability, value, unit=unit if cap.unit is not None or capability == "measurement" else None,
                     endpoint=key, source=key, quality=quality)

    def _on_off(self, message: Message, key: str, config: Mapping[str, Any], text: str, capability: str) -> None:
        value = self._value(message, key, config, text)
        if value is None:
            return
        on = config.get("state_on", config.get("payload_on", "ON"))
        off = config.get("state_off", config.get("payload_off", "OFF"))
        if value not in (on, off):
            message.reject(Reason.INVALID_VALUE, f"{value!r:.40} is neither {on!r} nor {off!r}", key)
            return
        message.read(capability, value == on, endpoint=key, source=key)

    def _light(self, message: Message, key: str, config: Mapping[str, Any], role: str, text: str) -> None:
        scale = as_number(config.get("brightness_scale")) or 255.0
        if role == "brightness_state_topic":
            value = self._value(message, key, config, text, "brightness_value_template")
            number = as_number(value)
            if number is None:
                message.reject(Reason.WRONG_TYPE, f"brightness {value!r:.40}", key)
                return
            message.read("brightness", round(number * 100.0 / scale, 1), endpoint=key, source=key)
            return
        if config.get("schema") != "json":
            self._on_off(message, key, config, text, "on_off")
            return
        try:
            state = orjson.loads(text)
        except orjson.JSONDecodeError:
            message.reject(Reason.MALFORMED_JSON, "JSON light state is not JSON", key)
            return
        if not isinstance(state, dict):
            message.reject(Reason.SCHEMA_VIOLATION, "JSON light state must be an object", key)
            return
        for member, value in state.items():
            source = f"{key}.{member}"
            if member == "state":
                if value in ("ON", "OFF"):
                    message.read("on_off", value == "ON", endpoint=key, source=source)
                else:
                    message.reject(Reason.INVALID_VALUE, f"state {value!r:.40}", source)
            elif member == "brightness":
                number = as_number(value)
                if number is None:
                    message.reject(Reason.WRONG_TYPE, f"brightness {value!r:.40}", source)
                else:
                    message.read("brightness", round(number * 100.0 / scale, 1), endpoint=key, source=source)
            elif member == "color" and isinstance(value, dict):
                members = {"h": "h", "s": "s", "x": "x", "y": "y", "r": "r", "g": "g", "b": "b"}
                message.read("color", {members[k]: v for k, v in value.items() if k in members},
                             endpoint=key, source=source)
            elif member == "color_temp":
                message.read("color_temperature", value, unit="mired", endpoint=key, source=source)
            else:
                message.unknown(source, value)  # white_value, effect, transition...

    def _lock_state(self, message: Message, key: str, config: Mapping[str, Any], text: str) -> None:
        value = self._value(message, key, config, text)
        if value is None:
            return
        states = {config.get("state_locked", "LOCKED"): "locked", config.get("state_unlocked", "UNLOCKED"): "unlocked",
                  config.get("state_jammed", "JAMMED"): "jammed", config.get("state_locking", "LOCKING"): "locking",
                  config.get("state_unlocking", "UNLOCKING"): "unlocking", config.get("state_open", "OPEN"): "open"}
        state = lookup(states, value)
        if state is None:
            message.reject(Reason.INVALID_VALUE, f"lock state {value!r:.40}", key)
            return
        message.read("lock", state, endpoint=key, source=key)

    def _position(self, config: Mapping[str, Any], value: Any) -> float | None:
        """A device position rescaled to 0-100 (0 = closed); None when not a number."""
        number = as_number(value)
        if number is None:
            return None
        closed = as_number(config.get("position_closed")) or 0.0
        opened = as_number(config.get("position_open"))
        opened = 100.0 if opened is None else opened
        return (number - closed) * 100.0 / (opened - closed) if opened != closed else None

    def _cover(self, message: Message, key: str, config: Mapping[str, Any], role: str, text: str) -> None:
        if role == "position_topic":
            value = self._value(message, key, config, text, "position_template")
            position = self._position(config, value)
            if position is None:
                message.reject(Reason.WRONG_TYPE, f"position {value!r:.40}", key)
                return
            message.read("cover_position", round(position, 1), endpoint=key, source=key)
            return
        value = self._value(message, key, config, text)
        if value is None:
            return
        states = {config.get("state_open", "open"): "open", config.get("state_closed", "closed"): "closed",
                  config.get("state_opening", "opening"): "opening",
                  config.get("state_closing", "closing"): "closing",
                  config.get("state_stopped", "stopped"): "stopped"}
        if lookup(states, value) is not None:
            message.read("cover_state", states[value], endpoint=key, source=key)
        elif (position := self._position(config, value)) is not None:
            message.read("cover_position", round(position, 1), endpoint=key, source=key)
        else:
            message.reject(Reason.INVALID_VALUE, f"cover state {value!r:.40}", key)

    def _valve(self, message: Message, key: str, config: Mapping[str, Any], text: str) -> None:
        value = self._value(message, key, config, text)
        if value is None:
            return
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                message.reject(Reason.MALFORMED_JSON, "valve state is not JSON", key)
                return
        state, position = (value.get("state"), value.get("position")) if isinstance(value, dict) else (value, None)
        if config.get("reports_position") and position is None and as_number(state) is not None:
            state, position = None, state
        if position is not None:
            scaled = self._position(config, position)
            if scaled is None:
                message.reject(Reason.WRONG_TYPE, f"valve position {position!r:.40}", key)
            else:
                message.read("valve_position", round(scaled, 1), endpoint=key, source=key)
        if state is None:
            return
        open_state, closed_state = config.get("state_open", "open"), config.get("state_closed", "closed")
        if state in (open_state, closed_state):
            message.read("valve_open", state == open_state, endpoint=key, source=key)
        elif state in (config.get("state_opening", "opening"), config.get("state_closing", "closing")):
            message.unknown(f"{key}.moving", state)
        else:
            message.reject(Reason.INVALID_VALUE, f"valve state {state!r:.40}", key)

    def _observed(self, message: Message, key: str, component: str, config: Mapping[str, Any],
                  role: str, text: str) -> None:
        """A command Home Assistant (or anyone) published to an entity's command topic."""
        if component in ("switch", "siren", "light") and config.get("schema") != "json" and role == "command_topic":
            on, off = config.get("payload_on", "ON"), config.get("payload_off", "OFF")
            if text in (on, off):
                message.observed("on_off" if component != "siren" else "siren", text == on, key)
                return
        if component == "light" and config.get("schema") == "json":
            try:
                body = orjson.loads(text)
            except orjson.JSONDecodeError:
                body = None
            if isinstance(body, dict) and body.get("state") in ("ON", "OFF"):
                message.observed("on_off", body["state"] == "ON", key)
                scale = as_number(config.get("brightness_scale")) or 255.0
                if (level := as_number(body.get("brightness"))) is not None:
                    message.observed("brightness", round(level * 100.0 / scale, 1), key)
                if (temp := as_number(body.get("color_temp"))) and temp > 0:
                    message.observed("color_temperature",
                                     round(temp if config.get("color_temp_kelvin") else 1_000_000 / temp), key)
                if isinstance(body.get("color"), dict):
                    message.observed("color", body["color"], key)
                return
        if component == "lock":
            commands = {config.get("payload_lock", "LOCK"): "locked", config.get("payload_unlock", "UNLOCK"): "unlocked"}
            if text in commands:
                message.observed("lock", commands[text], key)
                return
        if component in ("cover", "valve") and role == "command_topic":
            commands = {config.get("payload_open", "OPEN"): "open", config.get("payload_close", "CLOSE"): "close",
                        config.get("payload_stop", "STOP"): "stop"}
            if text in commands:
                if component == "cover":
                    message.observed("cover_control", commands[text], key)
                    return
                if commands[text] != "stop":
                    message.observed("valve_open", commands[text] == "open", key)
                    return
            if component == "valve" and (position := self._position(config, text)) is not None:
                message.observed("valve_position", position, key)
                return
        if component == "cover" and role == "set_position_topic" and (position := self._position(config, text)) is not None:
            message.observed("cover_position", position, key)
            return
        if component == "alarm_control_panel":
            for option, (default, state) in _ALARM_COMMANDS.items():
                if text == config.get(option, default):
                    message.observed("alarm_state", state, key)
                    return
        if component == "climate" and role == "temperature_command_topic" and as_number(text) is not None:
            message.observed("target_temperature", as_number(text), key)
            return
        if component == "climate" and role == "mode_command_topic":
            message.observed("hvac_mode", text, key)
            return
        message.unknown(f"{key}.command", text[:512])

    # -- discovery -------------------------------------------------------------------------------
    def _discovery(self, message: Message, parts: list[str]) -> None:
        if len(parts) not in (2, 3):
            message.reject(Reason.INVALID_DISCOVERY, f"discovery topic needs 2 or 3 levels: {message.topic}")
            return
        component, object_id = parts[0], parts[-1]
        node_id = parts[1] if len(parts) == 3 else None
        if component not in COMPONENTS and component != "device":
            message.reject(Reason.INVALID_DISCOVERY, f"unknown component {component!r:.40}")
            return
        if not _ID.match(object_id) or (node_id is not None and not _ID.match(node_id)):
            message.reject(Reason.INVALID_DISCOVERY, f"illegal characters in {message.topic!r:.120}")
            return
        discovery_id = f"{node_id} {object_id}" if node_id else object_id
        if not message.payload.strip():
            self._withdraw(message, component, discovery_id)
            return
        body = message.json(dict)
        if body is None:
            return
        config = expand(body)
        entities: dict[str, tuple[str, dict[str, Any]]] = {}
        try:
            if component == "device":
                components = config.pop("components", None)
                if not isinstance(components, dict) or not components:
                    raise DiscoveryError("device discovery without components")
                for cmp_id, cmp in components.items():
                    if not isinstance(cmp, dict):
                        raise DiscoveryError(f"component {cmp_id!r:.30} is not an object")
                    entity = expand(cmp)
                    platform = entity.pop("platform", None)
                    if platform not in COMPONENTS:
                        raise DiscoveryError(f"component {cmp_id!r:.30} has unknown platform {platform!r:.30}")
                    for shared in ("device", "origin", "availability", "availability_topic", "qos"):
                        if shared in config and shared not in entity:
                            entity[shared] = config[shared]
                    check_config(platform, entity)
                    entities[f"{platform}.{discovery_id.replace(' ', '_')}_{cmp_id}"] = (platform, entity)
            else:
                check_config(component, config)
                key = f"{component}.{discovery_id.replace(' ', '_')}"
                entities[key] = (component, config)
        except DiscoveryError as exc:
            message.reject(Reason.INVALID_DISCOVERY, str(exc))
            return
        if len(self._seen) >= self.max_remembered_devices and not any(
                self._address(key, entity) in self._seen for key, (_, entity) in entities.items()):
            message.reject(Reason.INVALID_DISCOVERY, f"more than {self.max_remembered_devices} devices announced")
            return
        latest: dict[str, DiscoveredDevice] = {}
        for key, (platform, entity) in entities.items():
            device = self._remember(key, platform, entity)
            latest[device.address] = device  # the last snapshot holds every entity of the message
        for device in latest.values():
            message.announce(device)

    def _address(self, key: str, config: Mapping[str, Any]) -> str:
        device = config.get("device") or {}
        identifiers = device.get("identifiers")
        if isinstance(identifiers, list) and identifiers:
            return str(identifiers[0])
        if isinstance(identifiers, str) and identifiers:
            return identifiers
        connections = device.get("connections")
        if isinstance(connections, list) and connections and isinstance(connections[0], list):
            return ":".join(str(c) for c in connections[0])
        return str(config.get("unique_id") or key)

    def _remember(self, key: str, component: str, config: dict[str, Any]) -> DiscoveredDevice:
        address = self._address(key, config)
        if component == "light" and config.get("schema") == "json":
            config["_json_state"] = True
        with self._lock:
            known = self._seen.setdefault(address, {"device": {}, "entities": {}})
            for other in list(self._seen):  # an entity moving between devices leaves the old one
                if other != address and key in self._seen[other]["entities"]:
                    del self._seen[other]["entities"][key]
            if isinstance(config.get("device"), dict):
                known["device"].update(config["device"])
            known["entities"][key] = {"component": component, "config": config,
                                      "capabilities": entity_capabilities(component, config)}
            snapshot = {"device": dict(known["device"]), "entities": dict(known["entities"])}
        return self._describe(address, snapshot)

    def _describe(self, address: str, known: Mapping[str, Any]) -> DiscoveredDevice:
        device = known["device"]
        refs: list[CapabilityRef] = []
        for key, entity in known["entities"].items():
            config = entity["config"]
            for capability in entity["capabilities"]:
                writable = capabilities.get(capability).writable and bool(
                    config.get("command_topic") or config.get("set_position_topic")
                    or config.get("temperature_command_topic") or config.get("mode_command_topic")
                    or config.get("brightness_command_topic"))
                refs.append(CapabilityRef(capability, key, writable))
        caps = {r.capability for r in refs}
        names = [e["config"].get("name") for e in known["entities"].values() if isinstance(e["config"].get("name"), str)]
        components = sorted({e["component"].replace("_", " ") for e in known["entities"].values()})
        description = " ".join(filter(None, [str(device.get("model") or ""), *names, *components]))
        return DiscoveredDevice(
            adapter=self.name, address=address,
            name=device.get("name") if isinstance(device.get("name"), str) else (names[0] if names else None),
            manufacturer=device.get("manufacturer") if isinstance(device.get("manufacturer"), str) else None,
            model=device.get("model") if isinstance(device.get("model"), str) else None,
            description=description or None, device_type=device_types.infer(caps, description),
            capabilities=tuple(refs), profile={"entities": dict(known["entities"])},
        )

    def _withdraw(self, message: Message, component: str, discovery_id: str) -> None:
        key = f"{component}.{discovery_id.replace(' ', '_')}"
        with self._lock:
            owner = next((a for a, k in self._seen.items() if key in k["entities"]), None)
            if owner is not None:
                del self._seen[owner]["entities"][key]
                remaining = {"device": dict(self._seen[owner]["device"]),
                             "entities": dict(self._seen[owner]["entities"])}
                if not remaining["entities"]:
                    del self._seen[owner]
        if owner is None:
            message.result.address = key
            message.announce(DiscoveredDevice(self.name, key, removed=True))
        elif not remaining["entities"]:
            message.announce(DiscoveredDevice(self.name, owner, removed=True))
        else:
            message.announce(self._describe(owner, remaining))

    def discover(self, document: Mapping[str, Any], *, address: str | None = None) -> DiscoveredDevice:
        """One entity config (with ``platform`` naming its component), e.g. from YAML."""
        config = expand(document)
        component = config.pop("platform", None)
        if component not in COMPONENTS:
            raise DiscoveryError(f"unknown platform {component!r:.30}")
        check_config(component, config)
        key = f"{component}.{config.get('object_id') or config.get('unique_id') or address or 'entity'}"
        if address is not None:
            config.setdefault("unique_id", address)
        return self._remember(key, component, config)

    # -- commands --------------------------------------------------------------------------------
    def encode(self, command: Command, binding: DeviceBinding) -> EncodedCommand:
        entities: Mapping[str, Any] = binding.profile.get("entities") or {}
        matches = [(key, e) for key, e in entities.items()
                   if command.capability in e.get("capabilities", [])
                   and (command.endpoint is None or command.endpoint == key)]
        if len(matches) != 1:
            raise CommandRejected(Reason.NOT_SUPPORTED, f"{binding.address}: {len(matches)} entities offer "
                                  f"{command.capability}@{command.endpoint}; name exactly one")
        key, entity = matches[0]
        component, config = entity["component"], entity["config"]
        capability, value = command.capability, command.value
        topic, payload, echo = config.get("command_topic"), None, ExpectedEcho(capability, value, key)
        if capability in ("on_off", "siren"):
            if config.get("schema") == "json":
                payload = orjson.dumps({"state": "ON" if value else "OFF"}).decode()
            else:
                payload = config.get("payload_on", "ON") if value else config.get("payload_off", "OFF")
        elif capability == "brightness":
            scale = as_number(config.get("brightness_scale")) or 255.0
            level = round(float(value) * scale / 100.0)  # type: ignore[arg-type]
            echo = ExpectedEcho(capability, round(level * 100.0 / scale, 1), key)
            if config.get("schema") == "json":
                payload = orjson.dumps({"state": "ON", "brightness": level}).decode()
            else:
                topic, payload = config.get("brightness_command_topic"), str(level)
        elif capability == "color_temperature" and config.get("schema") == "json":
            # The JSON schema carries mireds unless the entity says it speaks kelvin.
            kelvin = round(float(value))  # type: ignore[arg-type]
            member = {"color_temp": kelvin} if config.get("color_temp_kelvin") else {
                "color_temp": round(1_000_000 / kelvin)}
            payload = orjson.dumps({"state": "ON", **member}).decode()
            echo = ExpectedEcho(capability, kelvin, key, tolerance=50)
        elif capability == "lock":
            if value not in ("locked", "unlocked"):
                raise CommandRejected(Reason.INVALID_VALUE, "a lock can be set to locked or unlocked")
            payload = config.get("payload_lock", "LOCK") if value == "locked" else config.get("payload_unlock", "UNLOCK")
        elif capability == "cover_control":
            payload = {"open": config.get("payload_open", "OPEN"), "close": config.get("payload_close", "CLOSE"),
                       "stop": config.get("payload_stop", "STOP")}[str(value)]
            echo = None
        elif capability in ("cover_position", "valve_position"):
            closed = as_number(config.get("position_closed")) or 0.0
            opened = as_number(config.get("position_open"))
            opened = 100.0 if opened is None else opened
            raw = round(closed + float(value) * (opened - closed) / 100.0)  # type: ignore[arg-type]
            topic = config.get("set_position_topic") or topic
            payload = str(raw)
            echo = ExpectedEcho(capability, value, key, timeout_s=120)
        elif capability == "valve_open":
            payload = config.get("payload_open", "OPEN") if value else config.get("payload_close", "CLOSE")
        elif capability == "alarm_state":
            option = next((o for o, (_, s) in _ALARM_COMMANDS.items() if s == value), None)
            if option is None:
                raise CommandRejected(Reason.INVALID_VALUE, f"an alarm panel cannot be set to {value!r}")
            payload = config.get(option, _ALARM_COMMANDS[option][0])
        elif capability == "target_temperature":
            topic, payload = config.get("temperature_command_topic"), f"{float(value):g}"  # type: ignore[arg-type]
        elif capability == "hvac_mode":
            topic, payload = config.get("mode_command_topic"), str(value)
        if not isinstance(topic, str) or payload is None:
            raise CommandRejected(Reason.NOT_SUPPORTED, f"{key} has no command topic for {capability}")
        return EncodedCommand(command=command, topic=topic, payload=str(payload).encode(),
                              qos=int(config.get("qos", 0)), retain=bool(config.get("retain", False)),
                              expected_echo=echo)
