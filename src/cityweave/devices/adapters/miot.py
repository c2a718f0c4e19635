"""Xiaomi MIoT devices, described by MIoT-Spec and spoken to in JSON-RPC.

A MIoT device is a set of *services* (``siid``), each with *properties* (``piid``), *events*
(``eiid``) and *actions* (``aiid``); the spec instance names each one by URN,
``urn:miot-spec-v2:property:contact-state:0000007C:<model>:1``. Decoding keys on the service and
property *names* (the ``<name>`` segment), never on the 8-hex type numbers, and on siid/piid as the
device's own spec instance assigns them; :meth:`MiotAdapter.discover` turns a spec instance into the
binding profile.

MIoT has no MQTT convention of its own (devices talk miIO over UDP or to the cloud), so CityWeave's
bridge publishes the JSON-RPC frames unchanged on ``miot/<did>/rpc`` (frames about that device) or
``miot/gateway/<gateway id>/rpc`` (a gateway relaying several sub-devices), and executes what
CityWeave publishes on ``miot/<did>/set``. Understood: ``properties_changed``, ``event_occured``
(sic), responses to ``get_properties``/``set_properties`` (``code`` 0 = ok), and requests seen on
the bus (``set_properties``, ``action``) as observed commands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from cityweave.devices import types as device_types
from cityweave.devices.adapters.base import DiscoveryError, Message, VendorAdapter, dumps
from cityweave.devices.binding import DeviceBinding
from cityweave.devices.command import Command, CommandRejected, EncodedCommand, ExpectedEcho
from cityweave.devices.discovery import CapabilityRef, DiscoveredDevice
from cityweave.devices.reasons import Reason

UNITS = {"percentage": "%", "celsius": "°C", "fahrenheit": "°F", "kelvin": "K", "watt": "W",
         "kwh": "kWh", "lux": "lx", "ppm": "ppm", "mg/m3": "mg/m³", "μg/m3": "µg/m³",
         "ug/m3": "µg/m³", "v": "V", "a": "A", "pascal": "Pa", "kpa": "kPa", "hour": "h",
         "minutes": "min", "seconds": "s", "none": None}
# (service, property) -> capability; "*" matches any service.
PROPERTIES: dict[tuple[str, str], str] = {
    ("*", "contact-state"): "contact", ("*", "battery-level"): "battery",
    ("*", "smoke-status"): "smoke", ("*", "smoke-concentration"): "smoke_density",
    ("*", "fault"): "fault", ("alarm", "alarm"): "siren", ("*", "gas-concentration"): "gas_ppm",
    ("valve", "on"): "valve_open", ("switch", "on"): "on_off", ("outlet", "on"): "on_off",
    ("light", "on"): "on_off", ("light", "brightness"): "brightness",
    ("light", "color-temperature"): "color_temperature", ("*", "temperature"): "temperature",
    ("*", "relative-humidity"): "humidity", ("*", "power-consumption"): "energy_kwh",
    ("*", "electric-power"): "power_w", ("*", "voltage"): "voltage",
    ("*", "electric-current"): "current", ("*", "pm2.5-density"): "pm2_5",
    ("*", "pm10-density"): "pm10", ("*", "co2-density"): "co2", ("*", "hcho-density"): "formaldehyde",
    ("*", "tvoc-density"): "tvoc", ("*", "motion-state"): "motion",
    ("*", "occupancy-status"): "occupancy", ("*", "submersion-state"): "water_leak",
    ("*", "illumination"): "illuminance", ("*", "status"): "status",
}
EVENTS: dict[tuple[str, str], tuple[str, Any]] = {
    ("magnet-sensor", "open"): ("contact", False), ("magnet-sensor", "close"): ("contact", True),
    ("*", "smoke-alarm"): ("smoke", True), ("*", "gas-leak-alarm"): ("gas", True),
    ("*", "motion-detected"): ("motion", True), ("*", "submersion-detected"): ("water_leak", True),
    ("*", "click"): ("button_event", "single"), ("*", "double-click"): ("button_event", "double"),
    ("*", "long-press"): ("button_event", "long"),
}
ACTIONS: dict[tuple[str, str], tuple[str, Any]] = {("*", "self-check"): ("self_test", True)}
_DEVICE_TEMPERATURE_SERVICES = {"switch", "outlet", "light"}
_STATUS = {"normal": ("gas", False), "alarm": ("gas", True), "preheating": ("preheating", True),
           "fault": ("fault", True)}


def urn_name(urn: Any) -> str:
    """``contact-state`` from ``urn:miot-spec-v2:property:contact-state:0000007C:...``."""
    parts = str(urn).split(":")
    return parts[3] if len(parts) > 3 else ""


def _lookup(table: Mapping[tuple[str, str], Any], service: str, name: str) -> Any:
    return table.get((service, name), table.get(("*", name)))


def spec_profile(instance: Mapping[str, Any]) -> dict[str, Any]:
    """siid.piid / siid.eiid / siid.aiid maps from a MIoT spec instance."""
    services = instance.get("services")
    if not isinstance(services, list):
        raise DiscoveryError("spec instance without services")
    props: dict[str, dict[str, Any]] = {}
    events: dict[str, dict[str, Any]] = {}
    actions: dict[str, dict[str, Any]] = {}
    for service in services:
        if not isinstance(service, dict) or not isinstance(service.get("iid"), int):
            raise DiscoveryError("service without iid")
        sname = urn_name(service.get("type"))
        for prop in service.get("properties", []):
            pname = urn_name(prop.get("type"))
            capability = _lookup(PROPERTIES, sname, pname)
            if capability == "temperature" and sname in _DEVICE_TEMPERATURE_SERVICES:
                capability = "device_temperature"
            values = {str(v.get("value")): str(v.get("description", "")) for v in prop.get("value-list", [])}
            if capability == "illuminance" and values:
                capability = "illuminance_level"
            if capability == "status" and sname != "gas-sensor":
                capability = None
            unit = prop.get("unit")
            props[f"{service['iid']}.{prop['iid']}"] = {
                "service": sname, "property": pname, "capability": capability,
                "format": prop.get("format"), "access": prop.get("access", []),
                "unit": UNITS.get(str(unit).lower(), unit) if unit else None,
                "range": prop.get("value-range"), "values": values,
            }
        for event in service.get("events", []):
            events[f"{service['iid']}.{event['iid']}"] = {"service": sname, "event": urn_name(event.get("type")),
                                                          "arguments": event.get("arguments", [])}
        for action in service.get("actions", []):
            actions[f"{service['iid']}.{action['iid']}"] = {"service": sname, "action": urn_name(action.get("type"))}
    return {"type": instance.get("type"), "properties": props, "events": events, "actions": actions}


class MiotAdapter(VendorAdapter):
    name: ClassVar[str] = "miot"
    title: ClassVar[str] = "Xiaomi MIoT"

    def subscriptions(self) -> list[str]:
        return ["miot/+/rpc", "miot/gateway/+/rpc"]

    def _decode(self, message: Message) -> None:
        parts = message.topic.split("/")
        if len(parts) == 3 and parts[0] == "miot" and parts[2] == "rpc":
            topic_did: str | None = parts[1]
        elif len(parts) == 4 and parts[:2] == ["miot", "gateway"] and parts[3] == "rpc":
            topic_did = None
        else:
            message.reject(Reason.UNEXPECTED_TOPIC, f"not a MIoT bridge topic: {message.topic}")
            return
        frame = message.json(dict)
        if frame is None:
            return
        method, params = frame.get("method"), frame.get("params")
        items = params if isinstance(params, list) else [params] if isinstance(params, dict) else []
        if "result" in frame or "error" in frame:
            items = frame.get("result") if isinstance(frame.get("result"), list) else []
        claimed = {item.get("did") for item in items if isinstance(item, dict)}
        if topic_did is not None and claimed - {topic_did, None}:
            message.result.address = topic_did
            message.mismatch(str(sorted(str(c) for c in claimed - {topic_did, None})), topic_did)
            return
        if "error" in frame:
            if topic_did and message.bind(topic_did):
                message.ack(str(frame.get("id")), False, str(frame["error"])[:200])
                message.reject(Reason.DEVICE_ERROR, f"request {frame.get('id')} failed: {str(frame['error'])[:120]}")
            return
        if "result" in frame:
            self._response(message, frame, items, topic_did)
        elif method == "properties_changed":
            for index, item in enumerate(items):
                self._property(message, item, f"params[{index}]", topic_did)
        elif method == "event_occured":
            for index, item in enumerate(items):
                self._event(message, item, f"params[{index}]", topic_did)
        elif method == "set_properties":
            for index, item in enumerate(items):
                self._observed_set(message, item, f"params[{index}]", topic_did, frame.get("id"))
        elif method == "action":
            for index, item in enumerate(items):
                self._observed_action(message, item, f"params[{index}]", topic_did, frame.get("id"))
        elif method == "get_properties":
            message.ignore()  # a poll; the answer is what matters
        else:
            message.reject(Reason.SCHEMA_VIOLATION, f"unknown MIoT method {method!r:.40}")

    def _bind_item(self, message: Message, item: Any, where: str, topic_did: str | None) -> DeviceBinding | None:
        if not isinstance(item, dict) or not isinstance(item.get("siid"), int):
            message.reject(Reason.SCHEMA_VIOLATION, "entry without did/siid", where)
            return None
        did = item.get("did", topic_did)
        if not isinstance(did, str):
            message.reject(Reason.SCHEMA_VIOLATION, "entry without did", where)
            return None
        if message.binding is not None and message.binding.address == did:
            return message.binding
        return message.bind(did)

    def _property(self, message: Message, item: Any, where: str, topic_did: str | None) -> None:
        binding = self._bind_item(message, item, where, topic_did)
        if binding is None:
            return
        key = f"{item['siid']}.{item.get('piid')}"
        spec = (binding.profile.get("properties") or {}).get(key)
        if "value" not in item:
            message.reject(Reason.SCHEMA_VIOLATION, "property without value", where)
            return
        self._value(message, spec, key, item["value"], where)

    def _value(self, message: Message, spec: Mapping[str, Any] | None, key: str, value: Any, where: str) -> None:
        if spec is None or not spec.get("capability"):
            message.unknown(key, value)
            return
        capability: str = spec["capability"]
        fmt = str(spec.get("format") or "")
        if fmt == "bool" and not isinstance(value, bool):
            message.reject(Reason.WRONG_TYPE, f"{key}: {value!r:.40} is not a bool", where)
            return
        if (fmt.startswith(("uint", "int")) or fmt == "float") and (isinstance(value, bool) or not isinstance(value, int | float)):
            message.reject(Reason.WRONG_TYPE, f"{key}: {value!r:.40} is not a number", where)
            return
        bounds = spec.get("range")
        if isinstance(bounds, list) and len(bounds) >= 2 and isinstance(value, int | float) and not isinstance(value, bool):
            if not bounds[0] <= value <= bounds[1]:
                message.reject(Reason.OUT_OF_RANGE, f"{key}={value} outside {bounds[:2]}", where)
                return
        described = (spec.get("values") or {}).get(str(value), "").lower()
        if spec.get("values") and not described:
            message.reject(Reason.INVALID_VALUE, f"{key}={value!r:.40} not in the value list", where)
            return
        if capability == "fault":
            message.read("fault", value != 0, source=key, extra={"description": described} if value else None)
        elif capability == "status":
            meaning = next((m for word, m in _STATUS.items() if word in described), None)
            if meaning is None:
                message.unknown(key, value)
                return
            message.read(meaning[0], meaning[1], source=key)
            if meaning[0] == "gas":  # a normal or alarming reading means the sensor is warm
                message.read("preheating", False, source=key)
        elif capability == "illuminance_level":
            level = "dark" if "weak" in described or "dark" in described else "bright" if described else None
            if level is None:
                message.unknown(key, value)
                return
            message.read(capability, level, source=key)
        else:
            message.read(capability, value, unit=spec.get("unit"), source=key)

    def _event(self, message: Message, item: Any, where: str, topic_did: str | None) -> None:
        binding = self._bind_item(message, item, where, topic_did)
        if binding is None:
            return
        key = f"{item['siid']}.{item.get('eiid')}"
        spec = (binding.profile.get("events") or {}).get(key)
        meaning = _lookup(EVENTS, spec["service"], spec["event"]) if spec else None
        if meaning is None:
            message.unknown(f"event.{key}", item.get("arguments"))
            return
        message.read(meaning[0], meaning[1], source=f"event.{key}")
        for argument in item.get("arguments") or []:
            if isinstance(argument, dict) and "piid" in argument:
                arg_key = f"{item['siid']}.{argument['piid']}"
                self._value(message, (binding.profile.get("properties") or {}).get(arg_key), arg_key,
                            argument.get("value"), f"{where}.arguments")

    def _response(self, message: Message, frame: Mapping[str, Any], items: list[Any], topic_did: str | None) -> None:
        for index, item in enumerate(items):
            where = f"result[{index}]"
            binding = self._bind_item(message, item, where, topic_did)
            if binding is None:
                continue
            code = item.get("code", 0)
            if code != 0:
                message.reject(Reason.DEVICE_ERROR, f"{item['siid']}.{item.get('piid')}: code {code}", where)
                continue
            if "value" in item:
                key = f"{item['siid']}.{item.get('piid')}"
                self._value(message, (binding.profile.get("properties") or {}).get(key), key, item["value"], where)
        if message.binding is not None:
            ok = all(isinstance(i, dict) and i.get("code", 0) == 0 for i in items)
            message.ack(str(frame.get("id")), ok)

    def _observed_set(self, message: Message, item: Any, where: str, topic_did: str | None, request_id: Any) -> None:
        binding = self._bind_item(message, item, where, topic_did)
        if binding is None:
            return
        key = f"{item['siid']}.{item.get('piid')}"
        spec = (binding.profile.get("properties") or {}).get(key)
        if spec is None or not spec.get("capability") or "write" not in spec.get("access", []):
            message.unknown(f"set.{key}", item.get("value"))
            return
        message.observed(spec["capability"], item.get("value"), None, str(request_id) if request_id else None)

    def _observed_action(self, message: Message, item: Any, where: str, topic_did: str | None, request_id: Any) -> None:
        binding = self._bind_item(message, item, where, topic_did)
        if binding is None:
            return
        key = f"{item['siid']}.{item.get('aiid')}"
        spec = (binding.profile.get("actions") or {}).get(key)
        meaning = _lookup(ACTIONS, spec["service"], spec["action"]) if spec else None
        if meaning is None:
            message.unknown(f"action.{key}", item.get("in"))
            return
        message.observed(meaning[0], meaning[1], None, str(request_id) if request_id else None)

    # -- discovery and commands --------------------------------------------------------------------
    def discover(self, document: Mapping[str, Any], *, address: str | None = None) -> DiscoveredDevice:
        """A MIoT spec instance; ``address`` is the device's did."""
        if not address:
            raise DiscoveryError("a MIoT spec instance does not name the device: pass its did")
        profile = spec_profile(document)
        refs = {CapabilityRef(p["capability"], None, "write" in p["access"])
                for p in profile["properties"].values() if p["capability"] and p["capability"] != "status"}
        for spec in profile["properties"].values():
            if spec["capability"] == "status":
                refs |= {CapabilityRef("gas"), CapabilityRef("preheating")}
        for spec in profile["events"].values():
            meaning = _lookup(EVENTS, spec["service"], spec["event"])
            if meaning:
                refs.add(CapabilityRef(meaning[0]))
        caps = {r.capability for r in refs}
        device_name = urn_name(document.get("type"))
        model = str(document.get("type", "")).split(":")[5] if len(str(document.get("type", "")).split(":")) > 5 else None
        return DiscoveredDevice(
            adapter=self.name, address=address, name=document.get("description"), manufacturer="Xiaomi",
            model=model, description=device_name.replace("-", " "),
            device_type=device_types.infer(caps, device_name.replace("-", " ")),
            capabilities=tuple(sorted(refs, key=lambda r: (r.capability, r.endpoint or ""))), profile=profile,
        )

    def encode(self, command: Command, binding: DeviceBinding) -> EncodedCommand:
        properties: Mapping[str, Any] = binding.profile.get("properties") or {}
        for key, spec in properties.items():
            if spec.get("capability") == command.capability and "write" in spec.get("access", []):
                siid, piid = (int(part) for part in key.split("."))
                frame = {"id": command.id, "method": "set_properties",
                         "params": [{"did": binding.address, "siid": siid, "piid": piid, "value": command.value}]}
                return EncodedCommand(command=command, topic=f"miot/{binding.address}/set", payload=dumps(frame),
                                      expected_echo=ExpectedEcho(command.capability, command.value, None))
        raise CommandRejected(Reason.NOT_SUPPORTED, f"{binding.address} has no writable {command.capability}")
