"""Zigbee2MQTT: thousands of Zigbee devices behind one bridge.

Topics under the base topic (default ``zigbee2mqtt``): ``bridge/devices`` (retained list of every
paired device with its *exposes*: the announcement), ``bridge/state`` and ``<name>/availability``
(online/offline), ``<name>`` (state as flat JSON) and ``<name>/set`` (commands). Friendly names may
contain slashes, so a topic is parsed from the end.

The exposes tell, per property, its type, access bits (1 state, 2 set, 4 get), ``value_on`` /
``value_off`` (``true``/``false`` for sensors, ``"ON"``/``"LOCK"``/``"OPEN"`` for actuators; the
Aqara contact sensor even has ``value_on: false``), range and unit. Discovery stores the mapping of
every property to a capability in the binding's profile, so decoding uses the device's own
definition; a device decoded without one (auto-bind) falls back to the common property names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from cityweave.devices import capabilities
from cityweave.devices import types as device_types
from cityweave.devices.adapters.base import Message, VendorAdapter, as_number, dumps, lookup
from cityweave.devices.binding import DeviceBinding, DeviceDirectory
from cityweave.devices.command import Command, CommandRejected, EncodedCommand, ExpectedEcho
from cityweave.devices.discovery import CapabilityRef, DiscoveredDevice
from cityweave.devices.reasons import Reason

# property -> capability, for properties whose meaning does not depend on the device.
PROPERTY_CAPABILITIES: dict[str, str] = {
    "smoke": "smoke", "gas": "gas", "carbon_monoxide": "carbon_monoxide", "water_leak": "water_leak",
    "contact": "contact", "occupancy": "occupancy", "presence": "presence", "vibration": "vibration",
    "tamper": "tamper", "battery_low": "battery_low", "battery": "battery",
    "battpercentage": "battery", "temperature": "temperature", "local_temperature": "temperature",
    "device_temperature": "device_temperature", "humidity": "humidity", "pressure": "pressure",
    "illuminance": "illuminance", "illuminance_lux": "illuminance", "co2": "co2",
    "voc_index": "voc_index", "formaldehyd": "formaldehyde", "hcho": "formaldehyde",
    "pm25": "pm2_5", "pm10": "pm10", "aqi": "aqi", "air_quality": "air_quality",
    "power": "power_w", "energy": "energy_kwh", "current": "current", "linkquality": "link_quality",
    "smoke_density": "smoke_density", "gas_density": "gas_density", "child_lock": "child_lock",
    "silence": "alarm_muted", "self_test": "self_test", "test": "self_test",
    "self_test_result": "self_test_result", "preheat": "preheating", "alarm": "siren",
    "sos": "emergency_call", "lock_state": "lock", "brightness": "brightness",
    "color_temp": "color_temperature", "color": "color",
    "occupied_heating_setpoint": "target_temperature",
    "current_heating_setpoint": "target_temperature", "system_mode": "hvac_mode",
    "running_state": "hvac_action", "window_open": "window_open",
    "fall_down_status": "fall_state", "fall_status": "fall_state",
}

_FALL_STATES = {"none": "none", "normal": "none", "maybe_fall": "suspected",
                "fall_warning": "suspected", "fall": "fall", "fall_alarm": "fall"}
_RUNNING = {"idle": "idle", "heat": "heating", "cool": "cooling", "fan_only": "fan"}
_COVER = {"OPEN": "open", "CLOSE": "closed", "STOP": "stopped"}
_LOCK = {"LOCK": "locked", "UNLOCK": "unlocked"}
_LOCK_STATES = {"locked": "locked", "unlocked": "unlocked", "not_fully_locked": "not_fully_locked"}
_BATTERY_LEVEL = {"low": "low", "medium": "medium", "middle": "medium", "high": "high"}
_CHARGING = {"not_charging": "not_charging", "charging": "charging", "charged": "charged"}
_EMERGENCY_ACTIONS = {"emergency", "sos", "panic"}
_EMERGENCY_WORDS = ("sos", "emergency", "panic")
# Lock and radar "actions" (keypad unlock by user 3, region 2 entered) are events CityWeave has
# no capability for yet; they stay raw rather than pretending to be button presses.
_ACTIONS_KEPT_RAW = ("lock", "presence_sensor")
_VIBRATION_ACTIONS = {"vibration", "tilt", "drop"}
_BUTTON_SUFFIXES = ("_left", "_right", "_both", "_center", "_top", "_bottom")
_ON = {True, "ON", "on", "OPEN", "LOCK", "true"}
_OFF = {False, "OFF", "off", "CLOSE", "UNLOCK", "false"}


def _leaves(exposes: list[Any], parent: str | None = None) -> Iterator[tuple[dict[str, Any], str | None]]:
    """Every property-bearing expose with the type of the composite that holds it."""
    for expose in exposes:
        if not isinstance(expose, dict):
            continue
        kind = expose.get("type")
        if kind in ("light", "switch", "lock", "cover", "climate", "fan"):
            yield from _leaves(expose.get("features", []), kind)
        elif kind == "composite" and expose.get("property") == "warning":
            yield expose, "warning"  # IAS sirens: write-only {"warning": {"mode": ...}}
        elif kind == "composite" and expose.get("property") != "color":
            continue  # settings such as level_config: kept raw if they ever appear
        elif isinstance(expose.get("property"), str):
            yield expose, parent


def _capability_for(expose: Mapping[str, Any], parent: str | None) -> str | None:
    prop, unit = expose["property"], expose.get("unit")
    if prop == "state" or prop.startswith("state_"):
        if parent in ("light", "switch"):
            return "on_off"
        if parent == "lock":
            return "lock"
        if parent == "cover":
            return "cover_state"
        if parent is None and expose.get("value_on") == "OPEN":
            return "valve_open"
        return None
    if prop == "position":
        return "cover_position" if parent == "cover" else "valve_position"
    if prop == "voltage":
        return "battery_voltage" if unit == "mV" else "voltage"
    if prop == "voc":
        return "tvoc_ppb" if unit == "ppb" else "tvoc"
    if prop == "gas_value":
        return "gas_lel" if unit == "LEL" else "gas_density"
    if prop == "battery_state":
        values = set(expose.get("values") or [])
        return "charging_state" if values & set(_CHARGING) else "battery_level"
    if prop == "action":
        return "button_event"
    if prop == "warning" and parent == "warning":
        return "siren"
    return PROPERTY_CAPABILITIES.get(prop)


def property_specs(exposes: list[Any], description: str = "") -> dict[str, dict[str, Any]]:
    """The profile: every exposed property with the capability it maps to (None: kept raw)."""
    specs: dict[str, dict[str, Any]] = {}
    for expose, parent in _leaves(exposes):
        spec = {k: expose[k] for k in ("type", "access", "value_on", "value_off", "value_min",
                                       "value_max", "unit", "values", "endpoint") if k in expose}
        spec["parent"] = parent
        spec["capability"] = _capability_for(expose, parent)
        if spec["capability"] == "on_off" and "endpoint" not in spec and "_" in expose["property"]:
            spec["endpoint"] = expose["property"].split("_", 1)[1]
        specs[expose["property"]] = spec
    text = description.lower()
    has_valve = any(s["capability"] in ("valve_open", "valve_position") for s in specs.values())
    if "valve" in text and not has_valve and "radiator" not in text and "thermostat" not in text:
        # A Tuya water valve exposes a plain switch: on means open.
        for spec in specs.values():
            if spec["capability"] == "on_off":
                spec["capability"] = "valve_open"
    return specs


class Zigbee2MqttAdapter(VendorAdapter):
    name: ClassVar[str] = "zigbee2mqtt"
    title: ClassVar[str] = "Zigbee2MQTT"

    def __init__(self, directory: DeviceDirectory | None = None, *, base_topic: str = "zigbee2mqtt",
                 **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self.base_topic = base_topic.rstrip("/")

    def subscriptions(self) -> list[str]:
        return [f"{self.base_topic}/#"]

    def discovery_topics(self) -> list[str]:
        return [f"{self.base_topic}/bridge/devices"]

    # -- decoding ------------------------------------------------------------------------------
    def _decode(self, message: Message) -> None:
        prefix = self.base_topic + "/"
        if not message.topic.startswith(prefix) or message.topic == prefix:
            message.reject(Reason.UNEXPECTED_TOPIC, f"not under {self.base_topic}/")
            return
        rest = message.topic[len(prefix):]
        if rest.startswith("bridge/"):
            self._bridge(message, rest[len("bridge/"):])
            return
        name, _, last = rest.rpartition("/")
        if last == "availability" and name:
            self._availability(message, name)
        elif last == "set" and name:
            self._observed(message, name)
        elif last == "get" and name or name and rest.split("/")[-2:-1] == ["set"]:
            message.ignore()
        else:
            self._state(message, rest)

    def _bridge(self, message: Message, what: str) -> None:
        if what == "devices":
            self._devices(message)
        elif what == "state":
            text = message.text()
            state = text.strip() if text is not None else None
            if state and state.startswith("{"):
                body = message.json(dict)
                state = body.get("state") if body else None
            if state not in ("online", "offline"):
                message.reject(Reason.INVALID_VALUE, f"bridge state {state!r:.40}")
                return
            message.result.address = f"bridge:{self.base_topic}"
            message.online(f"bridge:{self.base_topic}", state == "online")
        elif what == "event":
            body = message.json(dict)
            data = body.get("data") if body else None
            if body and body.get("type") == "device_leave" and isinstance(data, dict):
                ieee = data.get("ieee_address")
                if isinstance(ieee, str):
                    message.announce(DiscoveredDevice(self.name, ieee, name=data.get("friendly_name"),
                                                      removed=True))
                    return
            message.ignore()
        else:
            message.ignore()  # info, logging, groups, definitions, extensions, responses

    def _devices(self, message: Message) -> None:
        devices = message.json(list)
        if devices is None:
            return
        for index, entry in enumerate(devices):
            if not isinstance(entry, dict) or not isinstance(entry.get("ieee_address"), str):
                message.reject(Reason.INVALID_DISCOVERY, "device entry without ieee_address", f"[{index}]")
                continue
            if entry.get("type") == "Coordinator":
                continue
            try:
                message.announce(self.discover(entry))
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                message.reject(Reason.INVALID_DISCOVERY, f"{entry['ieee_address']}: {exc}", f"[{index}]")

    def discover(self, document: Mapping[str, Any], *, address: str | None = None) -> DiscoveredDevice:
        """One entry of ``bridge/devices`` (or a definition with ``exposes``) as a discovery."""
        definition = document.get("definition")
        definition = definition if isinstance(definition, dict) else {}
        exposes = definition.get("exposes", document.get("exposes", []))
        if not isinstance(exposes, list):
            raise ValueError("exposes must be a list")
        description = str(definition.get("description") or document.get("description") or "")
        specs = property_specs(exposes, description)
        caps = {s["capability"] for s in specs.values() if s["capability"]}
        refs = {CapabilityRef(s["capability"], s.get("endpoint"), bool(int(s.get("access", 1)) & 2))
                for s in specs.values() if s["capability"]}
        if "button_event" in caps and any(w in description.lower() for w in _EMERGENCY_WORDS):
            # An SOS button only exposes "action": its description is what makes it one.
            caps.add("emergency_call")
            refs.add(CapabilityRef("emergency_call"))
        device_type = device_types.infer(caps, description)
        if device_type in _ACTIONS_KEPT_RAW:
            refs = {r for r in refs if r.capability != "button_event"}
        refs_sorted = sorted(refs, key=lambda r: (r.capability, r.endpoint or ""))
        ieee = address or str(document.get("ieee_address") or document.get("model"))
        friendly = document.get("friendly_name")
        return DiscoveredDevice(
            adapter=self.name, address=ieee, name=friendly if isinstance(friendly, str) else None,
            manufacturer=definition.get("vendor") or document.get("vendor") or document.get("manufacturer"),
            model=definition.get("model") or document.get("model"), description=description or None,
            device_type=device_type, capabilities=tuple(refs_sorted),
            aliases=(friendly,) if isinstance(friendly, str) and friendly != ieee else (),
            profile={"friendly_name": friendly, "properties": specs},
        )

    def _availability(self, message: Message, name: str) -> None:
        binding = message.bind(name)
        text = message.text()
        if binding is None or text is None:
            return
        state = text.strip()
        if state.startswith("{"):
            body = message.json(dict)
            state = body.get("state") if body else None
        if state not in ("online", "offline"):
            message.reject(Reason.INVALID_VALUE, f"availability {state!r:.40}")
            return
        message.online(binding.address, state == "online")

    def _state(self, message: Message, name: str) -> None:
        binding = message.bind(name)
        if binding is None:
            return
        body = message.json(dict)
        if body is None:
            return
        claimed = body.get("device")
        if isinstance(claimed, dict) and isinstance(claimed.get("ieeeAddr"), str):
            if claimed["ieeeAddr"] != binding.address and binding.address.startswith("0x"):
                message.mismatch(claimed["ieeeAddr"], binding.address)
                return
        specs: Mapping[str, Any] = binding.profile.get("properties") or {}
        for prop, value in body.items():
            spec = specs.get(prop) or self._default_spec(prop, value)
            if prop in ("last_seen", "update", "update_available", "device", "color_mode", "elapsed"):
                message.unknown(prop, value)
                continue
            capability = spec.get("capability")
            if capability is None or (prop == "action" and value == ""):
                if not (prop == "action" and value == ""):
                    message.unknown(prop, value)
                continue
            self._property(message, binding, prop, value, spec)
        self._settle_cover(message, body)

    @staticmethod
    def _default_spec(prop: str, value: Any) -> dict[str, Any]:
        """A guess for devices bound without exposes: the common meaning of the name."""
        parent = "switch" if prop == "state" or prop.startswith("state_") else None
        spec: dict[str, Any] = {"capability": _capability_for({"property": prop}, parent)}
        if prop == "voltage" and isinstance(value, int | float) and value > 1000:
            spec = {"capability": "battery_voltage", "unit": "mV"}
        if prop == "color_temp":
            spec["unit"] = "mired"
        if spec["capability"] == "on_off" and "_" in prop:
            spec["endpoint"] = prop.split("_", 1)[1]
        return spec

    def _property(self, message: Message, binding: DeviceBinding, prop: str, value: Any,
                  spec: Mapping[str, Any]) -> None:
        capability: str = spec["capability"]
        endpoint = spec.get("endpoint")
        read = message.read
        if capability == "button_event":
            self._action(message, binding, str(value) if value is not None else "", prop)
            return
        cap = capabilities.get(capability)
        if capability == "contact":
            # Zigbee2MQTT's raw contact is already "contact made" (closed); its value_on=false
            # only tells Home Assistant that "on" means open.
            if not isinstance(value, bool):
                message.reject(Reason.WRONG_TYPE, f"contact={value!r:.40} is not a boolean", prop)
                return
            read("contact", value, endpoint=endpoint, source=prop)
        elif cap.value_type is capabilities.ValueType.BOOL:
            flag = self._binary(value, spec)
            if flag is None:
                message.reject(Reason.INVALID_VALUE, f"{prop}={value!r:.40} is neither on nor off", prop)
                return
            read(capability, flag, endpoint=endpoint, source=prop)
        elif capability == "lock":
            state = lookup(_LOCK, value) if prop == "state" else lookup(_LOCK_STATES, value)
            if prop == "state" and "lock_state" in (binding.profile.get("properties") or {}):
                return  # lock_state is the finer report of the same thing
            self._enum(message, capability, state, value, prop, endpoint)
        elif capability == "cover_state":
            self._enum(message, capability, lookup(_COVER, value), value, prop, endpoint)
        elif capability == "fall_state":
            state = _FALL_STATES.get(str(value))
            if state is None:
                message.unknown(prop, value)  # "unknown": the radar does not know either
                return
            read("fall_state", state, source=prop)
            read("fall", state == "fall", source=prop)
        elif capability == "hvac_action":
            self._enum(message, capability, lookup(_RUNNING, value), value, prop, endpoint)
        elif capability == "battery_level":
            self._enum(message, capability, lookup(_BATTERY_LEVEL, value), value, prop, endpoint)
        elif capability == "brightness":
            number = as_number(value)
            top = as_number(spec.get("value_max")) or 254.0
            if number is None:
                message.reject(Reason.WRONG_TYPE, f"brightness {value!r:.40}", prop)
                return
            read("brightness", round(number * 100.0 / top, 1), endpoint=endpoint, source=prop)
        elif capability == "color":
            if not isinstance(value, dict):
                message.reject(Reason.WRONG_TYPE, "color must be an object", prop)
                return
            renamed = {"hue": "h", "saturation": "s"}
            color = {renamed.get(k, k): v for k, v in value.items() if renamed.get(k, k) in ("h", "s", "x", "y")}
            read("color", color, endpoint=endpoint, source=prop)
        elif capability == "color_temperature":
            read(capability, value, unit=spec.get("unit") or "mired", endpoint=endpoint, source=prop)
        else:
            unit = spec.get("unit")
            if capability == "formaldehyde" and unit is None and isinstance(value, int | float) and value > 5:
                unit = "µg/m³"  # Tuya boxes report µg/m³ without saying so
            read(capability, value, unit=unit if cap.unit else None, endpoint=endpoint, source=prop)

    def _enum(self, message: Message, capability: str, state: str | None, raw: Any, prop: str,
              endpoint: str | None) -> None:
        if state is None:
            message.reject(Reason.INVALID_VALUE, f"{prop}={raw!r:.40} not understood", prop)
            return
        message.read(capability, state, endpoint=endpoint, source=prop)

    @staticmethod
    def _binary(value: Any, spec: Mapping[str, Any]) -> bool | None:
        if "value_on" in spec and value == spec["value_on"]:
            return True
        if "value_off" in spec and value == spec["value_off"]:
            return False
        if "value_on" in spec or not isinstance(value, bool | str):
            return None  # a definition exists and the value is neither of its two, or not a flag
        if value in _ON:
            return True
        if value in _OFF:
            return False
        return None

    def _action(self, message: Message, binding: DeviceBinding, action: str, prop: str) -> None:
        if not action:
            return
        if action in _EMERGENCY_ACTIONS or (binding.device_type == "emergency_button"
                                            and action not in ("off", "release")):
            message.read("emergency_call", True, source=prop)
        if action in _VIBRATION_ACTIONS:
            message.read("vibration_event", action, source=prop)
            return
        if binding.device_type in _ACTIONS_KEPT_RAW or action.startswith("region_"):
            message.unknown(prop, action)  # lock and radar actions are events we do not type yet
            return
        endpoint = None
        for suffix in _BUTTON_SUFFIXES:
            if action.endswith(suffix):
                action, endpoint = action[: -len(suffix)], suffix[1:]
                break
        message.read("button_event", action, endpoint=endpoint, source=prop)

    def _settle_cover(self, message: Message, body: Mapping[str, Any]) -> None:
        """A moving motor says more than the last command's OPEN/CLOSE."""
        motor = body.get("motor_state")
        if motor in ("opening", "closing"):
            readings = message.result.readings
            readings[:] = [r for r in readings if r.capability != "cover_state"]
            message.read("cover_state", motor, source="motor_state")
        elif "motor_state" in body:
            message.unknown("motor_state", motor)

    def _observed(self, message: Message, name: str) -> None:
        """A command someone else published to ``<name>/set``."""
        binding = message.bind(name)
        body = message.json(dict)
        if binding is None or body is None:
            return
        specs: Mapping[str, Any] = binding.profile.get("properties") or {}
        for prop, value in body.items():
            spec = specs.get(prop) or self._default_spec(prop, value)
            capability = spec.get("capability")
            if capability == "on_off" or capability == "valve_open":
                flag = self._binary(value, spec) if value != "TOGGLE" else None
                if flag is not None:
                    message.observed(capability, flag, spec.get("endpoint"))
                    continue
            elif capability == "brightness" and (number := as_number(value)) is not None:
                message.observed("brightness", round(number * 100.0 / (spec.get("value_max") or 254), 1))
                continue
            elif capability == "cover_position":
                message.observed("cover_position", value)
                continue
            elif capability == "color_temperature" and (mired := as_number(value)) and mired > 0:
                message.observed("color_temperature", round(1_000_000 / mired), spec.get("endpoint"))
                continue
            message.unknown(prop, value)

    # -- commands ------------------------------------------------------------------------------
    def encode(self, command: Command, binding: DeviceBinding) -> EncodedCommand:
        specs: Mapping[str, Any] = binding.profile.get("properties") or {}
        friendly = binding.profile.get("friendly_name") or (binding.aliases[0] if binding.aliases else binding.address)
        capability = command.capability
        wanted = "cover_state" if capability == "cover_control" else capability
        matches = [(prop, spec) for prop, spec in specs.items()
                   if spec.get("capability") == wanted and spec.get("endpoint") == command.endpoint
                   and int(spec.get("access", 0)) & 2]
        if not matches:
            raise CommandRejected(Reason.NOT_SUPPORTED,
                                  f"{friendly} has no settable {capability}@{command.endpoint}")
        prop, spec = matches[0]
        value: Any = command.value
        echo: Any = command.value
        if capability == "siren" and spec.get("parent") == "warning":
            value = {"mode": "emergency", "strobe": True, "duration": 60} if command.value else {"mode": "stop"}
            echo = None  # write-only: the siren never reports its state
        elif capability in ("on_off", "valve_open", "child_lock", "siren", "alarm_muted", "self_test"):
            value = spec.get("value_on", "ON") if command.value else spec.get("value_off", "OFF")
        elif capability == "lock":
            if command.value not in ("locked", "unlocked"):
                raise CommandRejected(Reason.INVALID_VALUE, "a lock can be set to locked or unlocked")
            value = "LOCK" if command.value == "locked" else "UNLOCK"
        elif capability == "cover_control":
            value = {"open": "OPEN", "close": "CLOSE", "stop": "STOP"}[str(command.value)]
            echo = None
        elif capability == "brightness":
            top = as_number(spec.get("value_max")) or 254.0
            value = round(float(command.value) * top / 100.0)  # type: ignore[arg-type]
            echo = round(value * 100.0 / top, 1)
        elif capability == "color_temperature":
            value = round(1_000_000 / float(command.value))  # type: ignore[arg-type]
        elif capability == "color" and isinstance(command.value, dict):
            names = {"h": "hue", "s": "saturation"}
            value = {names.get(k, k): v for k, v in command.value.items()}
        return EncodedCommand(
            command=command, topic=f"{self.base_topic}/{friendly}/set", payload=dumps({prop: value}),
            expected_echo=ExpectedEcho(capability, echo, command.endpoint) if echo is not None else None,
        )
