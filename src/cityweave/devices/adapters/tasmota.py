"""Tasmota firmware (Sonoff, Shelly-on-Tasmota, countless ESP8266/ESP32 boards).

A device is addressed by its MQTT *topic* (``tasmota_49A3BC``) placed in a *full topic* pattern,
``%prefix%/%topic%/`` by default or ``%topic%/%prefix%/`` as many installations prefer; both are
recognised. Prefixes: ``cmnd`` (commands), ``stat`` (replies, ``RESULT``, ``POWER``, ``STATUSn``),
``tele`` (periodic ``STATE`` and ``SENSOR``, ``LWT``). Tasmota's native discovery publishes a
retained ``tasmota/discovery/<MAC>/config`` (relays, light type, switch modes, full topic, LWT
texts) and ``.../sensors`` (a sample SENSOR payload); the binding's address is the MAC and its alias
the topic.

Sensor payloads are nested ``{"<sensor>": {"Temperature": 21.5, ...}}``; the sensor name becomes
the endpoint, so a device with two DS18B20s yields two temperatures. ``ENERGY`` values may be a
number, a list (one per channel) or a dict (one per phase). Numbers sometimes arrive as strings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from cityweave.devices import types as device_types
from cityweave.devices.adapters.base import Message, VendorAdapter, as_number, dumps
from cityweave.devices.binding import DeviceBinding, DeviceDirectory
from cityweave.devices.command import Command, CommandRejected, EncodedCommand, ExpectedEcho
from cityweave.devices.discovery import CapabilityRef, DiscoveredDevice
from cityweave.devices.reasons import Reason

PREFIXES = ("cmnd", "stat", "tele")
DEFAULT_FULL_TOPIC = "%prefix%/%topic%/"
_NUMBERED = re.compile(r"^([A-Za-z]+?)(\d+)$")

# Leaf name in a sensor block -> capability (unit given by Tasmota's defaults or the payload).
SENSOR_FIELDS: dict[str, str] = {
    "Temperature": "temperature", "Humidity": "humidity", "Pressure": "pressure",
    "Illuminance": "illuminance", "CarbonDioxide": "co2", "CO2": "co2", "eCO2": "co2",
    "TVOC": "tvoc_ppb", "PM2.5": "pm2_5", "PM1": "pm1", "PM10": "pm10", "Moisture": "humidity",
}
ENERGY_FIELDS: dict[str, str] = {
    "Total": "energy_kwh", "Energy": "energy_kwh", "Power": "power_w",
    "ApparentPower": "apparent_power", "ReactivePower": "reactive_power", "Factor": "power_factor",
    "Frequency": "frequency", "Voltage": "voltage", "Current": "current",
    "ExportActive": "energy_exported_kwh",
}
# Understood and deliberately unused: uptime counters, memory, timestamps.
_HOUSEKEEPING = {"Time", "Uptime", "UptimeSec", "Heap", "SleepMode", "Sleep", "LoadAvg",
                 "MqttCount", "TempUnit", "PressureUnit", "SpeedUnit", "Epoch", "TotalStartTime"}
_SHUTTER_COMMANDS = {"ShutterOpen": "open", "ShutterClose": "close", "ShutterStop": "stop"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def split_topic(topic: str) -> tuple[str, str, str] | None:
    """``(prefix, device topic, last level)`` for either full-topic layout, else None."""
    parts = topic.split("/")
    if len(parts) < 3:
        return None
    if parts[0] in PREFIXES:
        return parts[0], "/".join(parts[1:-1]), parts[-1]
    if parts[-2] in PREFIXES:
        return parts[-2], "/".join(parts[:-2]), parts[-1]
    return None


class TasmotaAdapter(VendorAdapter):
    name: ClassVar[str] = "tasmota"
    title: ClassVar[str] = "Tasmota"

    def __init__(self, directory: DeviceDirectory | None = None, *,
                 discovery_prefix: str = "tasmota/discovery", **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self.discovery_prefix = discovery_prefix.rstrip("/")

    def subscriptions(self) -> list[str]:
        return [f"{self.discovery_prefix}/+/config", f"{self.discovery_prefix}/+/sensors",
                "tele/+/+", "stat/+/+", "cmnd/+/+", "+/tele/+", "+/stat/+", "+/cmnd/+"]

    def discovery_topics(self) -> list[str]:
        return [f"{self.discovery_prefix}/+/config", f"{self.discovery_prefix}/+/sensors"]

    # -- decoding ------------------------------------------------------------------------------
    def _decode(self, message: Message) -> None:
        if message.topic.startswith(self.discovery_prefix + "/"):
            self._discovery(message)
            return
        parsed = split_topic(message.topic)
        if parsed is None:
            message.reject(Reason.UNEXPECTED_TOPIC, f"not a Tasmota topic: {message.topic}")
            return
        prefix, device_topic, last = parsed
        binding = message.bind(device_topic)
        if binding is None:
            return
        profile = binding.profile
        if prefix == "cmnd":
            self._observed(message, last)
        elif last == "LWT":
            text = message.text()
            if text is None:
                return
            online, offline = profile.get("online_payload", "Online"), profile.get("offline_payload", "Offline")
            if text not in (online, offline):
                message.reject(Reason.INVALID_VALUE, f"LWT {text!r:.40} is neither {online} nor {offline}")
                return
            message.online(binding.address, text == online)
        elif re.fullmatch(r"POWER\d*", last):
            self._power(message, last, message.text())
        elif last in ("STATE", "RESULT"):
            body = message.json(dict)
            if body is not None:
                self._state(message, body, "")
        elif last == "SENSOR":
            body = message.json(dict)
            if body is not None:
                self._sensors(message, body, "")
        elif (match := re.fullmatch(r"SWITCH(\d+)", last)) is not None:
            body = message.json(dict)
            if body is not None:
                self._switch(message, f"switch{match.group(1)}", body.get("STATE"), last)
        elif last.startswith("STATUS"):
            body = message.json(dict)
            if body is None:
                return
            for key, value in body.items():
                if key == "StatusSNS" and isinstance(value, dict):
                    self._sensors(message, value, "StatusSNS.")
                elif key == "StatusSTS" and isinstance(value, dict):
                    self._state(message, value, "StatusSTS.")
                else:
                    message.unknown(key, value)
        elif last.startswith("INFO") or last in ("UPGRADE", "LOGGING"):
            message.ignore()
        else:
            body = message.json()
            if body is not None:
                message.unknown(last, body)

    def _power(self, message: Message, key: str, value: Any) -> None:
        binding = message.binding
        texts = (binding.profile.get("state_texts") if binding else None) or ["OFF", "ON", "TOGGLE", "HOLD"]
        endpoint = key[len("POWER"):] or "1"
        if value == texts[1] or value == "ON":
            message.read("on_off", True, endpoint=endpoint, source=key)
        elif value == texts[0] or value == "OFF":
            message.read("on_off", False, endpoint=endpoint, source=key)
        else:
            message.reject(Reason.INVALID_VALUE, f"{key}={value!r:.40}", key)

    def _switch(self, message: Message, endpoint: str, value: Any, source: str) -> None:
        if value not in ("ON", "OFF"):
            message.reject(Reason.INVALID_VALUE, f"{source}={value!r:.40}", source)
            return
        message.read("binary", value == "ON", endpoint=endpoint, source=source)

    def _state(self, message: Message, body: Mapping[str, Any], path: str) -> None:
        profile = message.binding.profile if message.binding else {}
        light = profile.get("light_endpoint") or "1"
        subtype = profile.get("light_subtype")
        for key, value in body.items():
            source = f"{path}{key}"
            if re.fullmatch(r"POWER\d*", key):
                self._power(message, key, value)
            elif key == "Dimmer" or re.fullmatch(r"Dimmer\d", key):
                message.read("brightness", value, endpoint=light, source=source)
            elif key == "CT":
                message.read("color_temperature", value, unit="mired", endpoint=light, source=source)
            elif key == "HSBColor" and (subtype is None or subtype >= 3):
                self._hsb(message, value, light, source)
            elif key == "Wifi" and isinstance(value, dict):
                for wifi_key, wifi_value in value.items():
                    if wifi_key == "Signal":
                        message.read("rssi", wifi_value, source=f"{source}.Signal")
                    else:
                        message.unknown(f"{source}.{wifi_key}", wifi_value)
            elif key == "BatteryPercentage":
                message.read("battery", value, source=source)
            elif (match := re.fullmatch(r"Shutter(\d+)", key)) and isinstance(value, dict):
                self._shutter(message, match.group(1), value, source)
            elif key in _HOUSEKEEPING:
                continue
            else:
                message.unknown(source, value)

    @staticmethod
    def _hsb(message: Message, value: Any, endpoint: str | None, source: str) -> None:
        parts = str(value).split(",")
        numbers = [as_number(p) for p in parts]
        if len(numbers) != 3 or any(n is None for n in numbers):
            message.reject(Reason.WRONG_TYPE, f"HSBColor {value!r:.40}", source)
            return
        message.read("color", {"h": numbers[0], "s": numbers[1]}, endpoint=endpoint, source=source)

    @staticmethod
    def _shutter(message: Message, index: str, value: Mapping[str, Any], source: str) -> None:
        position, direction = value.get("Position"), value.get("Direction")
        message.read("cover_position", position, endpoint=index, source=f"{source}.Position")
        number = as_number(position)
        if direction in (-1, 1):
            message.read("cover_state", "closing" if direction == -1 else "opening", endpoint=index,
                         source=f"{source}.Direction")
        elif direction == 0 and number is not None:
            message.read("cover_state", "closed" if number == 0 else "open", endpoint=index,
                         source=f"{source}.Direction")
        for extra in set(value) - {"Position", "Direction"}:
            message.unknown(f"{source}.{extra}", value[extra])

    def _sensors(self, message: Message, body: Mapping[str, Any], path: str) -> None:
        temp_unit = "°F" if body.get("TempUnit") == "F" else "°C"
        for sensor, block in body.items():
            source = f"{path}{sensor}"
            if sensor in _HOUSEKEEPING:
                continue
            if (match := re.fullmatch(r"Switch(\d+)", sensor)) is not None:
                self._switch(message, f"switch{match.group(1)}", block, source)
            elif re.fullmatch(r"Shutter\d+", sensor) and isinstance(block, dict):
                self._shutter(message, sensor[len("Shutter"):], block, source)
            elif sensor == "ENERGY" and isinstance(block, dict):
                self._energy(message, block, None, source)
            elif isinstance(block, dict):
                self._sensor_block(message, sensor, block, source, temp_unit)
            else:
                message.unknown(source, block)

    def _sensor_block(self, message: Message, sensor: str, block: Mapping[str, Any], source: str,
                      temp_unit: str) -> None:
        extra = {"sensor_id": block["Id"]} if isinstance(block.get("Id"), str) else None
        for key, value in block.items():
            where = f"{source}.{key}"
            if key == "Id":
                continue
            if isinstance(value, dict):
                if set(value) & set(ENERGY_FIELDS):  # e.g. ANALOG.CTEnergy1
                    self._energy(message, value, f"{sensor}.{key}", where)
                else:
                    message.unknown(where, value)
                continue
            name, number = key, None
            if (match := _NUMBERED.match(key)) and match.group(1) in SENSOR_FIELDS:
                name, number = match.group(1), match.group(2)
            capability = SENSOR_FIELDS.get(name)
            if capability is None:
                message.unknown(where, value)
                continue
            unit = temp_unit if capability == "temperature" else None
            endpoint = f"{sensor}.{number}" if number else sensor
            message.read(capability, value, unit=unit, endpoint=endpoint, source=where, extra=extra)

    def _energy(self, message: Message, block: Mapping[str, Any], endpoint: str | None, source: str) -> None:
        for key, value in block.items():
            where = f"{source}.{key}"
            capability = ENERGY_FIELDS.get(key)
            if capability is None:
                if key not in _HOUSEKEEPING:
                    message.unknown(where, value)
                continue
            if isinstance(value, list):
                for index, item in enumerate(value, start=1):
                    sub = f"{endpoint}.{index}" if endpoint else str(index)
                    message.read(capability, item, endpoint=sub, source=f"{where}[{index - 1}]")
            elif isinstance(value, dict):
                for phase, item in value.items():
                    label = phase.removeprefix("Phase")
                    sub = f"{endpoint}.{label}" if endpoint else label
                    message.read(capability, item, endpoint=sub, source=f"{where}.{phase}")
            else:
                message.read(capability, value, endpoint=endpoint, source=where)

    def _observed(self, message: Message, command: str) -> None:
        text = message.text()
        if text is None:
            return
        for part in ([p.strip() for p in text.split(";")] if command.lower() == "backlog"
                     else [f"{command} {text}".strip()]):
            name, _, argument = part.partition(" ")
            self._observed_one(message, name, argument.strip())

    def _observed_one(self, message: Message, name: str, argument: str) -> None:
        upper = name.upper()
        if upper.startswith("POWER") and argument.upper() in ("ON", "OFF", "1", "0"):
            endpoint = name[len("POWER"):] or "1"
            message.observed("on_off", argument.upper() in ("ON", "1"), endpoint)
        elif upper.startswith("DIMMER") and as_number(argument) is not None:
            message.observed("brightness", as_number(argument))
        elif upper == "CT" and (mired := as_number(argument)):
            message.observed("color_temperature", round(1_000_000 / mired))
        elif upper.startswith("SHUTTERPOSITION") and as_number(argument) is not None:
            message.observed("cover_position", as_number(argument), name[len("ShutterPosition"):] or "1")
        elif (base := next((c for c in _SHUTTER_COMMANDS if upper.startswith(c.upper())), None)) is not None:
            message.observed("cover_control", _SHUTTER_COMMANDS[base], name[len(base):] or "1")
        elif upper in ("NODELAY", "DELAY"):
            return
        else:
            message.unknown(f"cmnd.{name}", argument)

    # -- discovery -------------------------------------------------------------------------------
    def _discovery(self, message: Message) -> None:
        parts = message.topic[len(self.discovery_prefix) + 1:].split("/")
        if len(parts) != 2 or parts[1] not in ("config", "sensors"):
            message.ignore()
            return
        mac, kind = parts
        message.result.address = mac
        if not message.payload:
            message.announce(DiscoveredDevice(self.name, mac, removed=True))
            return
        body = message.json(dict)
        if body is None:
            return
        try:
            device = self.discover(body, address=mac) if kind == "config" else self._sensor_discovery(mac, body)
        except (KeyError, TypeError, ValueError) as exc:
            message.reject(Reason.INVALID_DISCOVERY, f"{kind}: {exc}")
            return
        # Two halves of one description: the registry merges them (discovery.merge), so the
        # sensors arriving after the config do not erase its topic (and the other way round).
        message.announce(replace(device, part=kind))

    def discover(self, document: Mapping[str, Any], *, address: str | None = None) -> DiscoveredDevice:
        """A ``tasmota/discovery/<MAC>/config`` document."""
        mac = address or str(document["mac"])
        if str(document.get("mac", mac)) != mac:
            raise ValueError(f"config for {document.get('mac')!r} on the topic of {mac!r}")
        topic = document["t"]
        if not isinstance(topic, str) or not topic:
            raise ValueError("config without topic 't'")
        relays = [int(r) for r in document.get("rl", [])]
        options = {str(k): v for k, v in (document.get("so") or {}).items()}
        subtype = int(document.get("lt_st", 0))
        refs: list[CapabilityRef] = []
        light_endpoint = None
        shutter = 0
        for index, relay in enumerate(relays, start=1):
            endpoint = str(index)
            if relay == 1 and options.get("30") == 1 or relay == 2:
                light_endpoint = light_endpoint or endpoint
                refs.append(CapabilityRef("on_off", endpoint, True))
                if relay == 2 and subtype >= 1:
                    refs.append(CapabilityRef("brightness", endpoint, True))
                if relay == 2 and subtype in (2, 5):
                    refs.append(CapabilityRef("color_temperature", endpoint, True))
                if relay == 2 and subtype >= 3:
                    refs.append(CapabilityRef("color", endpoint, True))
            elif relay == 1:
                refs.append(CapabilityRef("on_off", endpoint, True))
            elif relay == 3 and index % 2 == 1:
                shutter += 1
                for cap, writable in (("cover_position", True), ("cover_state", False), ("cover_control", True)):
                    refs.append(CapabilityRef(cap, str(shutter), writable))
        for index, mode in enumerate(document.get("swc", []), start=1):
            if int(mode) != -1:
                refs.append(CapabilityRef("binary", f"switch{index}"))
        if document.get("bat"):
            refs.append(CapabilityRef("battery"))
        refs.append(CapabilityRef("rssi"))
        names = document.get("fn") or []
        model = document.get("md")
        caps = {r.capability for r in refs}
        return DiscoveredDevice(
            adapter=self.name, address=mac, name=(document.get("dn") or (names[0] if names else None)),
            manufacturer="Tasmota", model=model if isinstance(model, str) else None,
            description=f"Tasmota {document.get('sw', '')} on {model}".strip(),
            device_type=device_types.infer(caps, str(model or "")),
            capabilities=tuple(refs), aliases=(topic,),
            profile={
                "topic": topic, "full_topic": document.get("ft", DEFAULT_FULL_TOPIC),
                "prefixes": document.get("tp", list(PREFIXES)), "relays": relays,
                "light_subtype": subtype, "light_endpoint": light_endpoint,
                "online_payload": document.get("onln", "Online"),
                "offline_payload": document.get("ofln", "Offline"),
                "state_texts": document.get("state", ["OFF", "ON", "TOGGLE", "HOLD"]),
                "hostname": document.get("hn"), "mac": mac,
            },
        )

    def _sensor_discovery(self, mac: str, body: Mapping[str, Any]) -> DiscoveredDevice:
        """The ``sensors`` half of Tasmota discovery: a sample SENSOR payload, merged by MAC."""
        sample = body.get("sn")
        if not isinstance(sample, dict):
            raise ValueError("sensors discovery without 'sn'")
        probe = Message(self, f"tele/{mac}/SENSOR", dumps(sample), _EPOCH)
        probe.binding = DeviceBinding(device_key=mac, adapter=self.name, address=mac)
        self._sensors(probe, sample, "")
        refs = sorted({CapabilityRef(r.capability, r.endpoint) for r in probe.result.readings},
                      key=lambda r: (r.capability, r.endpoint or ""))
        return DiscoveredDevice(adapter=self.name, address=mac, capabilities=tuple(refs),
                                profile={"sensors": sorted(sample)})

    # -- commands --------------------------------------------------------------------------------
    def encode(self, command: Command, binding: DeviceBinding) -> EncodedCommand:
        profile = binding.profile
        topic = profile.get("topic") or (binding.aliases[0] if binding.aliases else binding.address)
        full = str(profile.get("full_topic") or DEFAULT_FULL_TOPIC)
        base = (full.replace("%prefix%", "cmnd").replace("%topic%", topic)
                .replace("%hostname%", str(profile.get("hostname") or topic))
                .replace("%id%", str(profile.get("mac") or binding.address)[-6:]))
        if not base.endswith("/"):
            base += "/"
        capability, value = command.capability, command.value
        relays = profile.get("relays") or [1]
        light = profile.get("light_endpoint") or "1"
        if capability == "on_off":
            endpoint = self.require_endpoint(command, [str(i + 1) for i, r in enumerate(relays) if r in (1, 2)], "1")
            return self._command(command, base + f"POWER{endpoint}", "ON" if value else "OFF",
                                 ExpectedEcho("on_off", value, endpoint))
        if capability == "brightness":
            level = round(float(value))  # type: ignore[arg-type]
            return self._command(command, base + "Dimmer", str(level), ExpectedEcho("brightness", level, light))
        if capability == "color_temperature":
            mired = round(1_000_000 / float(value))  # type: ignore[arg-type]
            return self._command(command, base + "CT", str(mired),
                                 ExpectedEcho("color_temperature", value, light, tolerance=50))
        if capability == "cover_position":
            endpoint = command.endpoint or "1"
            return self._command(command, base + f"ShutterPosition{endpoint}", str(round(float(value))),  # type: ignore[arg-type]
                                 ExpectedEcho("cover_position", round(float(value)), endpoint, timeout_s=120))  # type: ignore[arg-type]
        if capability == "cover_control":
            endpoint = command.endpoint or "1"
            verb = {"open": "ShutterOpen", "close": "ShutterClose", "stop": "ShutterStop"}[str(value)]
            return self._command(command, base + f"{verb}{endpoint}", "", None)
        raise CommandRejected(Reason.NOT_SUPPORTED, f"Tasmota adapter cannot set {capability}")

    @staticmethod
    def _command(command: Command, topic: str, payload: str, echo: ExpectedEcho | None) -> EncodedCommand:
        return EncodedCommand(command=command, topic=topic, payload=payload.encode(), expected_echo=echo)

