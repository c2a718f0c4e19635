"""Shelly relays, plugs, meters, covers and sensors, Gen1 and Gen2+ (Plus, Pro, Gen3, Gen4).

**Gen2+** speaks JSON-RPC 2.0 over MQTT under a *topic prefix* (default: the device id, e.g.
``shellyplus1pm-aabbccddeeff``; it may contain slashes): ``<prefix>/online`` (``true``/``false``),
``<prefix>/events/rpc`` (``NotifyStatus``, ``NotifyFullStatus``, ``NotifyEvent`` frames),
``<prefix>/status/<component>`` (when status notifications are on) and ``<prefix>/rpc`` for
requests (``Switch.Set``, ``Cover.GoToPosition``...), answered on ``<src of the request>/rpc``.
Status is a dict of components keyed ``type:id`` (``switch:0``, ``cover:0``, ``em:0``...); the
component key is the reading's endpoint. Energy counters are in Wh and become kWh.

**Gen1** publishes plain values under ``shellies/<id>/`` (``relay/0`` = ``on``/``off``,
``relay/0/power``, ``relay/0/energy`` in watt-minutes, ``sensor/gas``...) and its full HTTP
``/status`` document on ``shellies/<id>/info``; ``shellies/announce`` introduces a device.

A Gen2 device that sends ``NotifyFullStatus`` without being bound appears as discovered.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

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
from cityweave.devices.reasons import Reason

GEN1_ROOT = "shellies"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Components that describe the device's own housekeeping, understood and not turned into readings.
_HOUSEKEEPING = {"sys", "cloud", "mqtt", "ble", "ws", "eth", "knx", "matter", "bthome", "blugw",
                 "modbus", "ui", "plugs_ui", "script", "number", "text", "boolean", "enum", "group",
                 "button", "awaiting_auth_code", "ts", "presence", "schedule", "webhook", "zigbee"}
# Per-component members understood and not needed.
_IGNORED_MEMBERS = {"id", "source", "errors", "timer_started_at", "timer_duration", "pos_control",
                    "last_direction", "move_timeout", "move_started_at", "minute_ts", "by_minute",
                    "flags", "packet_id", "last_updated_ts", "paired", "rpc", "rsv", "tF",
                    "user_calibrated_phase", "schedules", "safety_switch", "target_pos"}
# Member -> capability for electrical values, shared by switch, cover, light, pm1, em1.
_ELECTRIC = {"apower": "power_w", "act_power": "power_w", "voltage": "voltage", "current": "current",
             "freq": "frequency", "pf": "power_factor", "aprt_power": "apparent_power"}
_PHASE_MEMBERS = {"act_power": "power_w", "aprt_power": "apparent_power", "voltage": "voltage",
                  "current": "current", "pf": "power_factor", "freq": "frequency"}
_EVENT_NAMES = {"single_push": "single", "double_push": "double", "triple_push": "triple",
                "long_push": "long", "btn_down": "press", "btn_up": "release",
                "long_single_push": "long_single", "single_long_push": "single_long"}
_QUIET_EVENTS = {"config_changed", "ota_begin", "ota_progress", "ota_success", "ota_error",
                 "scheduled_restart", "sleep", "component_added", "component_removed"}
_COVER_STATES = {"open", "closed", "opening", "closing", "stopped"}
_GEN1_GAS = {"none": False, "mild": True, "heavy": True}


class ShellyAdapter(VendorAdapter):
    name: ClassVar[str] = "shelly"
    title: ClassVar[str] = "Shelly"

    def subscriptions(self) -> list[str]:
        topics = [f"{GEN1_ROOT}/#", "+/online", "+/events/rpc", "+/status/+", "+/rpc",
                  f"{self.settings.client_id}/rpc"]
        for binding in self.directory.bindings(self.name):
            prefix = binding.profile.get("topic_prefix")
            if isinstance(prefix, str) and "/" in prefix:
                topics.append(f"{prefix}/#")
        return list(dict.fromkeys(topics))

    def discovery_topics(self) -> list[str]:
        return [f"{GEN1_ROOT}/announce", "+/events/rpc"]

    # -- routing ----------------------------------------------------------------------------------
    def _decode(self, message: Message) -> None:
        topic = message.topic
        if topic.startswith(GEN1_ROOT + "/"):
            self._gen1(message, topic[len(GEN1_ROOT) + 1:])
        elif topic.endswith("/events/rpc"):
            self._events(message, topic[: -len("/events/rpc")])
        elif topic.endswith("/online"):
            self._online(message, topic[: -len("/online")])
        elif "/status/" in topic:
            prefix, _, component = topic.rpartition("/status/")
            binding = self._bind_prefix(message, prefix)
            body = message.json(dict)
            if binding is not None and body is not None:
                self._component(message, component, body, component)
        elif topic.endswith("/rpc"):
            self._rpc(message, topic[: -len("/rpc")])
        else:
            message.ignore()

    def _bind_prefix(self, message: Message, prefix: str) -> DeviceBinding | None:
        return message.bind(prefix)

    def _online(self, message: Message, prefix: str) -> None:
        binding = self._bind_prefix(message, prefix)
        text = message.text()
        if binding is None or text is None:
            return
        if text.strip() not in ("true", "false"):
            message.reject(Reason.INVALID_VALUE, f"online={text!r:.40}")
            return
        message.online(binding.address, text.strip() == "true")

    # -- Gen2 frames ----------------------------------------------------------------------------
    def _events(self, message: Message, prefix: str) -> None:
        frame = message.json(dict)
        if frame is None:
            return
        method, params, src = frame.get("method"), frame.get("params"), frame.get("src")
        if not isinstance(method, str) or not isinstance(params, dict):
            message.reject(Reason.SCHEMA_VIOLATION, "notification without method and params")
            return
        binding = message.adapter.directory.find(self.name, prefix)
        if binding is None and isinstance(src, str):
            binding = message.adapter.directory.find(self.name, src)
        if binding is None:
            message.result.address = src if isinstance(src, str) else prefix
            if method == "NotifyFullStatus" and isinstance(src, str):
                message.announce(self._discover_gen2({"id": src}, None, params, prefix))
            message.reject(Reason.UNKNOWN_DEVICE, f"no Shelly bound to {prefix!r}")
            return
        message.bind(binding.address)
        if isinstance(src, str) and src != binding.address:
            message.mismatch(src, binding.address)
            message.result.readings.clear()
            return
        moment = message.timestamp(params.get("ts"))
        if method in ("NotifyStatus", "NotifyFullStatus"):
            self._status(message, params, "", moment)
        elif method == "NotifyEvent":
            self._notify_event(message, params, moment)
        else:
            message.unknown(method, params)

    def _status(self, message: Message, status: Mapping[str, Any], path: str,
                moment: datetime | None = None) -> None:
        for key, value in status.items():
            if key == "ts" or key.partition(":")[0] in _HOUSEKEEPING:
                continue
            if key == "wifi" and isinstance(value, dict):
                # rssi is 0 while Wi-Fi is off (a Pro on Ethernet): not a signal level.
                if value.get("rssi") not in (None, 0) and value.get("status", "got ip") == "got ip":
                    message.read("rssi", value["rssi"], source=f"{path}wifi.rssi", timestamp=moment)
                continue
            if not isinstance(value, dict):
                message.unknown(f"{path}{key}", value)
                continue
            self._component(message, key, value, f"{path}{key}", moment)

    def _component(self, message: Message, key: str, status: Mapping[str, Any], source: str,
                   moment: datetime | None = None) -> None:
        kind = key.partition(":")[0]
        if kind in _HOUSEKEEPING:
            return
        read = message.read
        handled: set[str] = set(_IGNORED_MEMBERS)

        def take(member: str, capability: str, endpoint: str | None = key, unit: str | None = None,
                 transform: Any = None) -> None:
            handled.add(member)
            if member not in status or status[member] is None:
                return
            value = status[member] if transform is None else transform(status[member])
            read(capability, value, unit=unit, endpoint=endpoint, source=f"{source}.{member}", timestamp=moment)

        if kind in ("switch", "light", "cover", "pm1", "em1"):
            take("output", "on_off")
            for member, capability in _ELECTRIC.items():
                take(member, capability)
            for member, capability in (("aenergy", "energy_kwh"), ("ret_aenergy", "energy_exported_kwh")):
                handled.add(member)
                total = status.get(member, {}).get("total") if isinstance(status.get(member), dict) else None
                if total is not None:
                    read(capability, total, unit="Wh", endpoint=key, source=f"{source}.{member}.total",
                         timestamp=moment)
            handled.add("temperature")
            if isinstance(status.get("temperature"), dict) and status["temperature"].get("tC") is not None:
                read("device_temperature", status["temperature"]["tC"], endpoint=key,
                     source=f"{source}.temperature.tC", timestamp=moment)
            take("brightness", "brightness")
            if kind == "cover":
                handled.add("state")
                state = status.get("state")
                if isinstance(state, str) and state in _COVER_STATES:
                    read("cover_state", state, endpoint=key, source=f"{source}.state", timestamp=moment)
                elif state is not None:
                    message.unknown(f"{source}.state", state)  # calibrating
                take("current_pos", "cover_position")
        elif kind == "input":
            handled.add("state")
            if isinstance(status.get("state"), bool):
                read("binary", status["state"], endpoint=key, source=f"{source}.state", timestamp=moment)
        elif kind in ("em", "emdata"):
            self._em(message, key, status, source, moment, handled)
        elif kind == "em1data":
            take("total_act_energy", "energy_kwh", f"em1:{key.partition(':')[2]}", "Wh")
            take("total_act_ret_energy", "energy_exported_kwh", f"em1:{key.partition(':')[2]}", "Wh")
        elif kind == "temperature":
            take("tC", "temperature")
        elif kind == "humidity":
            take("rh", "humidity")
        elif kind == "illuminance":
            take("lux", "illuminance")
            take("illumination", "illuminance_level")
        elif kind == "voltmeter":
            take("voltage", "voltage")
        elif kind == "devicepower":
            handled.update({"battery", "external"})
            battery = status.get("battery") if isinstance(status.get("battery"), dict) else {}
            if battery.get("percent") is not None:
                read("battery", battery["percent"], source=f"{source}.battery.percent", timestamp=moment)
            if battery.get("V") is not None:
                read("battery_voltage", battery["V"], source=f"{source}.battery.V", timestamp=moment)
            external = status.get("external") if isinstance(status.get("external"), dict) else {}
            if isinstance(external.get("present"), bool):
                read("mains_power", external["present"], source=f"{source}.external.present", timestamp=moment)
        elif kind == "thermostat":
            take("current_C", "temperature")
            take("target_C", "target_temperature")
            take("enable", "hvac_mode", transform=lambda on: "heat" if on else "off")
            take("output", "hvac_action", transform=lambda on: "heating" if on else "idle")
        elif kind in ("blutrv", "bthomedevice"):
            take("target_C", "target_temperature")
            take("current_C", "temperature")
            take("pos", "valve_position")
            take("battery", "battery")
            take("rssi", "rssi")
        elif kind == "presencezone":
            take("value", "presence")
            take("num_objects", "occupant_count")
        elif kind == "smoke":
            take("alarm", "smoke")
            take("mute", "alarm_muted")
        elif kind == "flood":
            take("alarm", "water_leak")
            take("mute", "alarm_muted")
            take("cable_unplugged", "fault")
        else:
            message.unknown(source, dict(status))
            return
        for member in set(status) - handled:
            message.unknown(f"{source}.{member}", status[member])

    def _em(self, message: Message, key: str, status: Mapping[str, Any], source: str,
            moment: datetime | None, handled: set[str]) -> None:
        meter = f"em:{key.partition(':')[2]}"
        for member, value in status.items():
            if member in handled or value is None:
                continue
            phase, _, rest = member.partition("_")
            capability: str | None = None
            unit: str | None = None
            endpoint = meter
            if phase in ("a", "b", "c", "n") and rest in _PHASE_MEMBERS:
                capability, endpoint = _PHASE_MEMBERS[rest], f"{meter}:{phase}"
            elif phase in ("a", "b", "c") and rest == "total_act_energy":
                capability, unit, endpoint = "energy_kwh", "Wh", f"{meter}:{phase}"
            elif phase in ("a", "b", "c") and rest == "total_act_ret_energy":
                capability, unit, endpoint = "energy_exported_kwh", "Wh", f"{meter}:{phase}"
            elif member in ("total_act_power", "total_aprt_power", "total_current"):
                capability = {"total_act_power": "power_w", "total_aprt_power": "apparent_power",
                              "total_current": "current"}[member]
            elif member in ("total_act", "total_act_ret"):
                capability = "energy_kwh" if member == "total_act" else "energy_exported_kwh"
                unit = "Wh"
            handled.add(member)
            if capability is None:
                message.unknown(f"{source}.{member}", value)
                continue
            message.read(capability, value, unit=unit, endpoint=endpoint, source=f"{source}.{member}",
                         timestamp=moment)

    def _notify_event(self, message: Message, params: Mapping[str, Any], moment: datetime) -> None:
        events = params.get("events")
        if not isinstance(events, list):
            message.reject(Reason.SCHEMA_VIOLATION, "NotifyEvent without an events list")
            return
        for index, event in enumerate(events):
            where = f"events[{index}]"
            if not isinstance(event, dict) or not isinstance(event.get("event"), str):
                message.unknown(where, event)  # tolerated: an event without a name
                continue
            name = event["event"]
            component = event.get("component") or f"input:{event.get('id', 0)}"
            stamp = message.timestamp(event.get("ts", params.get("ts")))
            if name in _QUIET_EVENTS:
                continue
            if str(component).startswith("input:") and (name in _EVENT_NAMES or name.endswith("_push")):
                message.read("button_event", _EVENT_NAMES.get(name, name.removesuffix("_push")),
                             endpoint=str(component), source=f"{where}.event", timestamp=stamp)
            elif str(component).startswith("smoke:") and name == "alarm":
                message.read("smoke", True, endpoint=str(component), source=f"{where}.event", timestamp=stamp)
            elif str(component).startswith("flood:") and name == "alarm":
                message.read("water_leak", True, endpoint=str(component), source=f"{where}.event",
                             timestamp=stamp)
            else:
                message.unknown(where, event)

    def _rpc(self, message: Message, prefix: str) -> None:
        frame = message.json(dict)
        if frame is None:
            return
        src = frame.get("src")
        if "method" in frame:  # a request somebody sent to the device on <prefix>/rpc
            if message.bind(prefix) is not None:
                self._observed(message, frame)
            return
        if "result" not in frame and "error" not in frame:
            message.reject(Reason.SCHEMA_VIOLATION, "RPC frame is neither request nor response")
            return
        if frame.get("dst") not in (None, prefix):
            message.mismatch(str(frame.get("dst"))[:80], prefix)
            return
        if not isinstance(src, str) or message.bind(src) is None:
            return
        request_id = str(frame.get("id"))
        error = frame.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            text = error.get("message") if isinstance(error, dict) else error
            message.ack(request_id, False, f"code {code}: {str(text)[:120]}")
            message.reject(Reason.DEVICE_ERROR, f"RPC {request_id} failed with code {code}")
            return
        message.ack(request_id, True)
        result = frame.get("result")
        if isinstance(result, dict) and isinstance(result.get("components"), list):
            for index, entry in enumerate(result["components"]):
                if isinstance(entry, dict) and isinstance(entry.get("key"), str) and isinstance(entry.get("status"), dict):
                    self._component(message, entry["key"], entry["status"], f"components[{index}].status")
        elif isinstance(result, dict) and _is_config(result):
            message.unknown("config", result)  # Shelly.GetConfig: settings, not measurements
        elif isinstance(result, dict) and any(":" in k or k in ("wifi", "sys") for k in result):
            self._status(message, result, "result.")
        elif result is not None:
            message.unknown("result", result)

    def _observed(self, message: Message, frame: Mapping[str, Any]) -> None:
        method, params = frame.get("method"), frame.get("params") or {}
        if not isinstance(method, str) or not isinstance(params, dict):
            message.reject(Reason.SCHEMA_VIOLATION, "RPC request without method/params")
            return
        kind, _, verb = method.partition(".")
        endpoint = f"{kind.lower()}:{params.get('id', 0)}"
        command_id = str(frame["id"]) if "id" in frame else None
        if verb == "Set" and kind in ("Switch", "Light") and isinstance(params.get("on"), bool):
            message.observed("on_off", params["on"], endpoint, command_id)
        if verb == "Set" and kind == "Light" and params.get("brightness") is not None:
            message.observed("brightness", params["brightness"], endpoint, command_id)
        elif kind == "Cover" and verb == "GoToPosition":
            message.observed("cover_position", params.get("pos"), endpoint, command_id)
        elif kind == "Cover" and verb in ("Open", "Close", "Stop"):
            message.observed("cover_control", verb.lower(), endpoint, command_id)
        elif not (verb == "Set" and kind in ("Switch", "Light")):
            message.unknown(method, dict(params))

    # -- Gen1 --------------------------------------------------------------------------------------
    def _gen1(self, message: Message, rest: str) -> None:
        if rest == "announce":
            body = message.json(dict)
            if body is not None and isinstance(body.get("id"), str):
                message.result.address = body["id"]
                message.announce(self._discover_gen1(body, None))
            elif body is not None:
                message.reject(Reason.INVALID_DISCOVERY, "announce without id")
            return
        if rest == "command":
            message.ignore()
            return
        device_id, _, path = rest.partition("/")
        if not path:
            message.reject(Reason.UNEXPECTED_TOPIC, f"no Gen1 path in {message.topic}")
            return
        binding = message.bind(device_id)
        if binding is None:
            return
        parts = path.split("/")
        text = message.text()
        if text is None:
            return
        value = text.strip()
        if path == "online":
            if value not in ("true", "false"):
                message.reject(Reason.INVALID_VALUE, f"online={value!r:.40}")
                return
            message.online(binding.address, value == "true")
        elif path == "info":
            body = message.json(dict)
            if body is not None:
                self._gen1_status(message, body)
        elif path == "announce":
            body = message.json(dict)
            if body is not None:
                message.announce(self._discover_gen1(body, None))
        elif parts[0] in ("relay", "light") and len(parts) >= 2:
            endpoint = f"{parts[0]}:{parts[1]}"
            what = parts[2] if len(parts) > 2 else None
            if what is None:
                if value in ("on", "off"):
                    message.read("on_off", value == "on", endpoint=endpoint, source=path)
                elif value == "overpower":
                    message.read("fault", True, endpoint=endpoint, source=path)
                else:
                    message.reject(Reason.INVALID_VALUE, f"{path}={value!r:.40}", path)
            elif what == "power":
                message.read("power_w", value, endpoint=endpoint, source=path)
            elif what == "energy":  # watt-minutes
                number = as_number(value)
                message.read("energy_kwh", round(number / 60000.0, 6) if number is not None else value,
                             endpoint=endpoint, source=path)
            elif what == "command":
                if value in ("on", "off"):
                    message.observed("on_off", value == "on", endpoint)
                else:
                    message.unknown(path, value)
            elif what == "status":
                body = message.json(dict)
                if body is not None:
                    self._gen1_channel(message, body, endpoint, path)
            else:
                message.unknown(path, value)
        elif path == "sensor/gas":
            if value in _GEN1_GAS:  # value is text here
                message.read("gas", _GEN1_GAS[value], source=path)
            elif value == "test":
                message.read("self_test", True, source=path)
            else:
                message.reject(Reason.INVALID_VALUE, f"gas={value!r:.40}", path)
        elif path == "sensor/concentration":
            message.read("gas_ppm", value, source=path)
        elif path in ("sensor/temperature", "sensor/humidity", "sensor/battery", "sensor/lux"):
            capability = {"temperature": "temperature", "humidity": "humidity", "battery": "battery",
                          "lux": "illuminance"}[parts[1]]
            message.read(capability, value, source=path)
        elif path == "temperature":
            message.read("device_temperature", value, source=path)
        else:
            message.unknown(path, value)

    def _gen1_channel(self, message: Message, body: Mapping[str, Any], endpoint: str, source: str) -> None:
        if isinstance(body.get("ison"), bool):
            message.read("on_off", body["ison"], endpoint=endpoint, source=f"{source}.ison")
        if body.get("brightness") is not None:
            message.read("brightness", body["brightness"], endpoint=endpoint, source=f"{source}.brightness")
        for member in set(body) - {"ison", "brightness", "has_timer", "timer_started", "timer_duration",
                                   "timer_remaining", "source", "overpower", "transition", "mode"}:
            message.unknown(f"{source}.{member}", body[member])

    def _gen1_status(self, message: Message, status: Mapping[str, Any]) -> None:
        """A Gen1 ``/status`` document (HTTP or the ``info`` topic)."""
        read = message.read
        channels = "relay" if status.get("relays") else "light"
        actuated = bool(status.get("relays") or status.get("lights") or status.get("meters"))
        for kind in ("relays", "lights"):
            for index, entry in enumerate(_list(status.get(kind))):
                if isinstance(entry, dict):
                    self._gen1_channel(message, {k: v for k, v in entry.items() if k in ("ison", "brightness")},
                                       f"{kind[:-1]}:{index}", f"{kind}[{index}]")
        for index, meter in enumerate(_list(status.get("meters"))):
            if not isinstance(meter, dict) or meter.get("is_valid") is False:
                continue
            endpoint = f"{channels}:{index}"
            read("power_w", meter.get("power"), endpoint=endpoint, source=f"meters[{index}].power")
            total = as_number(meter.get("total"))
            if total is not None:
                read("energy_kwh", round(total / 60000.0, 6), endpoint=endpoint, source=f"meters[{index}].total")
        tmp = status.get("tmp")
        if isinstance(tmp, dict) and tmp.get("is_valid", True) and tmp.get("tC") is not None:
            read("device_temperature" if actuated else "temperature", tmp["tC"], source="tmp.tC")
        for index, sensor in _items(status.get("ext_temperature")):
            if isinstance(sensor, dict) and sensor.get("tC") is not None:
                read("temperature", sensor["tC"], endpoint=f"ext:{index}", source=f"ext_temperature.{index}.tC")
        for index, sensor in _items(status.get("ext_humidity")):
            if isinstance(sensor, dict) and sensor.get("hum") is not None:
                read("humidity", sensor["hum"], endpoint=f"ext:{index}", source=f"ext_humidity.{index}.hum")
        if isinstance(status.get("hum"), dict) and status["hum"].get("value") is not None:
            read("humidity", status["hum"]["value"], source="hum.value")
        if isinstance(status.get("bat"), dict) and status["bat"].get("value") is not None:
            read("battery", status["bat"]["value"], source="bat.value")
        gas = status.get("gas_sensor")
        if isinstance(gas, dict):
            alarm = gas.get("alarm_state")
            if lookup(_GEN1_GAS, alarm) is not None:
                read("gas", _GEN1_GAS[alarm], source="gas_sensor.alarm_state")
            if gas.get("sensor_state") in ("warmup", "normal"):
                read("preheating", gas["sensor_state"] == "warmup", source="gas_sensor.sensor_state")
            if gas.get("sensor_state") == "fault":
                read("fault", True, source="gas_sensor.sensor_state")
            if gas.get("self_test_state") is not None:
                message.unknown("gas_sensor.self_test_state", gas["self_test_state"])
        concentration = status.get("concentration")
        if isinstance(concentration, dict) and concentration.get("is_valid", True):
            read("gas_ppm", concentration.get("ppm"), source="concentration.ppm")
        for index, valve in enumerate(_list(status.get("valves"))):
            state = valve.get("state") if isinstance(valve, dict) else None
            if state in ("opened", "closed"):
                read("valve_open", state == "opened", endpoint=f"valve:{index}", source=f"valves[{index}].state")
            elif state is not None:
                message.unknown(f"valves[{index}].state", state)
        for index, entry in enumerate(_list(status.get("inputs"))):
            if isinstance(entry, dict) and entry.get("input") in (0, 1):
                read("binary", bool(entry["input"]), endpoint=f"input:{index}", source=f"inputs[{index}].input")
        wifi = status.get("wifi_sta")
        if isinstance(wifi, dict) and wifi.get("rssi") is not None:
            read("rssi", wifi["rssi"], source="wifi_sta.rssi")

    # -- discovery -------------------------------------------------------------------------------
    def discover(self, document: Mapping[str, Any], *, address: str | None = None) -> DiscoveredDevice:
        """A device from its ``/shelly`` (or ``Shelly.GetDeviceInfo``) document.

        Accepts the bare document or ``{"shelly": ..., "config"|"settings": ..., "status": ...}``
        as HTTP polling collects it; status and config make the capability list precise.
        """
        info = document.get("shelly", document)
        if not isinstance(info, Mapping):
            raise DiscoveryError("no device information")
        config = document.get("config") or document.get("settings")
        status = document.get("status")
        if info.get("gen") in (2, 3, 4) or "gen" in info:
            if not isinstance(info.get("id"), str) and address is None:
                raise DiscoveryError("Gen2 device information without id")
            mqtt = (config or {}).get("mqtt") if isinstance(config, Mapping) else None
            prefix = (mqtt or {}).get("topic_prefix") if isinstance(mqtt, Mapping) else None
            return self._discover_gen2(info, config, status, prefix, address)
        return self._discover_gen1(info, status, address, config)

    def _discover_gen2(self, info: Mapping[str, Any], config: Any, status: Any, prefix: str | None,
                       address: str | None = None) -> DiscoveredDevice:
        device_id = address or str(info["id"])
        prefix = prefix or device_id
        components = sorted(k for k in (status or config or {}) if ":" in k)
        refs = self._probe(device_id, status if isinstance(status, dict) else {},
                           lambda m, s: self._status(m, s, ""))
        if not status and isinstance(config, Mapping):  # no status: writable components from config
            refs = [CapabilityRef(cap, key, True) for key in components
                    for cap in {"switch": ("on_off",), "light": ("on_off", "brightness"),
                                "cover": ("cover_position", "cover_control")}.get(key.partition(":")[0], ())]
        refs = [CapabilityRef(r.capability, r.endpoint, r.capability in _WRITABLE and bool(r.endpoint)
                              and r.endpoint.partition(":")[0] in _WRITABLE[r.capability]) for r in refs]
        if any(r.capability == "cover_position" for r in refs):
            refs += [CapabilityRef("cover_control", r.endpoint, True) for r in refs if r.capability == "cover_position"]
        caps = {r.capability for r in refs}
        model = info.get("model") if isinstance(info.get("model"), str) else None
        app = str(info.get("app") or "")
        return DiscoveredDevice(
            adapter=self.name, address=device_id, name=info.get("name") if isinstance(info.get("name"), str) else None,
            manufacturer="Shelly", model=model, description=f"Shelly {app}".strip(),
            device_type=device_types.infer(caps, _describe(app)),
            capabilities=tuple(sorted(set(refs), key=lambda r: (r.capability, r.endpoint or ""))),
            aliases=(prefix,) if prefix != device_id else (),
            profile={"gen": int(info.get("gen") or 2), "topic_prefix": prefix, "components": components,
                     "app": app or None},
        )

    def _discover_gen1(self, info: Mapping[str, Any], status: Any, address: str | None = None,
                       settings: Any = None) -> DiscoveredDevice:
        device_type_code = str(info.get("type") or info.get("model") or "")
        mqtt = (settings or {}).get("mqtt") if isinstance(settings, Mapping) else None
        mqtt_id = (mqtt or {}).get("id") if isinstance(mqtt, Mapping) else None
        device_id = address or info.get("id") or mqtt_id or f"shelly-{info.get('mac', 'unknown')}"
        refs = self._probe(str(device_id), status if isinstance(status, dict) else {},
                           self._gen1_status)
        refs = [CapabilityRef(r.capability, r.endpoint,
                              r.capability == "on_off" and bool(r.endpoint)) for r in refs]
        caps = {r.capability for r in refs}
        return DiscoveredDevice(
            adapter=self.name, address=str(device_id), name=info.get("name") if isinstance(info.get("name"), str) else None,
            manufacturer="Shelly", model=device_type_code or None, description=f"Shelly {device_type_code}",
            device_type=device_types.infer(caps, _describe(device_type_code)),
            capabilities=tuple(sorted(set(refs), key=lambda r: (r.capability, r.endpoint or ""))),
            profile={"gen": 1, "topic_prefix": f"{GEN1_ROOT}/{device_id}"},
        )

    def _probe(self, device_id: str, status: Mapping[str, Any], decoder: Any) -> list[CapabilityRef]:
        """The capabilities a status document yields, found by decoding it once."""
        probe = Message(self, "probe", b"", _EPOCH)
        probe.binding = DeviceBinding(device_key=device_id, adapter=self.name, address=device_id)
        decoder(probe, status)
        return [CapabilityRef(r.capability, r.endpoint) for r in probe.result.readings]

    # -- commands --------------------------------------------------------------------------------
    def encode(self, command: Command, binding: DeviceBinding) -> EncodedCommand:
        profile = binding.profile
        components = profile.get("components") or []
        if profile.get("gen") == 1:
            return self._encode_gen1(command, binding)
        capability, value = command.capability, command.value
        kinds = _WRITABLE.get(capability)
        if kinds is None:
            raise CommandRejected(Reason.NOT_SUPPORTED, f"Shelly adapter cannot set {capability}")
        default = next((c for c in components if c.partition(":")[0] in kinds), None)
        endpoint = command.endpoint or default
        if endpoint is None or endpoint.partition(":")[0] not in kinds or (components and endpoint not in components):
            raise CommandRejected(Reason.NOT_SUPPORTED, f"{binding.address} has no {capability} on {endpoint!r}")
        kind, _, index = endpoint.partition(":")
        cid = int(index) if index.isdigit() else 0
        echo: ExpectedEcho | None = ExpectedEcho(capability, value, endpoint)
        if capability == "on_off":
            method, params = f"{kind.capitalize()}.Set", {"id": cid, "on": bool(value)}
        elif capability == "brightness":
            method, params = "Light.Set", {"id": cid, "brightness": round(float(value))}  # type: ignore[arg-type]
        elif capability == "cover_position":
            method, params = "Cover.GoToPosition", {"id": cid, "pos": round(float(value))}  # type: ignore[arg-type]
            echo = ExpectedEcho(capability, round(float(value)), endpoint, timeout_s=120)  # type: ignore[arg-type]
        elif capability == "cover_control":
            method, params = f"Cover.{str(value).capitalize()}", {"id": cid}
            echo = None
        else:  # target_temperature
            method, params = "Thermostat.SetConfig", {"id": cid, "config": {"target_C": value}}
        frame = {"id": command.id, "src": self.settings.client_id, "method": method, "params": params}
        prefix = profile.get("topic_prefix") or binding.address
        return EncodedCommand(command=command, topic=f"{prefix}/rpc", payload=dumps(frame), expected_echo=echo)

    def _encode_gen1(self, command: Command, binding: DeviceBinding) -> EncodedCommand:
        if command.capability != "on_off":
            raise CommandRejected(Reason.NOT_SUPPORTED, f"Gen1 Shelly adapter cannot set {command.capability}")
        endpoint = command.endpoint or "relay:0"
        kind, _, index = endpoint.partition(":")
        if kind not in ("relay", "light") or not index.isdigit():
            raise CommandRejected(Reason.NOT_SUPPORTED, f"no on/off channel {endpoint!r}")
        return EncodedCommand(
            command=command, topic=f"{GEN1_ROOT}/{binding.address}/{kind}/{index}/command",
            payload=b"on" if command.value else b"off",
            expected_echo=ExpectedEcho("on_off", command.value, endpoint),
        )


def _items(value: Any) -> list[tuple[str, Any]]:
    return list(value.items()) if isinstance(value, dict) else []


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_config(result: Mapping[str, Any]) -> bool:
    """Shelly.GetConfig and Shelly.GetStatus share component keys; only config has these."""
    sys_part, mqtt_part = result.get("sys"), result.get("mqtt")
    return (isinstance(sys_part, dict) and "device" in sys_part) or (
        isinstance(mqtt_part, dict) and "client_id" in mqtt_part)


_WRITABLE: dict[str, tuple[str, ...]] = {
    "on_off": ("switch", "light"), "brightness": ("light",), "cover_position": ("cover",),
    "cover_control": ("cover",), "target_temperature": ("thermostat",),
}

_APP_WORDS = {"plug": "plug", "3em": "meter", "pro3em": "meter", "gas": "gas", "smoke": "smoke",
              "flood": "flood", "presence": "presence", "walldisplay": "thermostat", "blugw": "gateway",
              "ht": "temperature humidity", "trv": "radiator"}


def _describe(app: str) -> str:
    """Hint words for device-type inference from a Shelly app or model code (PlusPlugS, SHGS-1)."""
    text = app.lower()
    words = [word for key, word in _APP_WORDS.items() if key in text]
    if "shgs" in text:
        words.append("gas")
    if "shplg" in text:
        words.append("plug")
    return " ".join(words)
