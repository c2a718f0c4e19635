"""The CityWeave native JSON format, for devices and gateways built for CityWeave.

Documented in ``docs/devices/native-format.md``; the JSON Schema is
``cityweave/devices/schemas/native-v1.schema.json``. Topics, under ``cityweave/v1/<device>/``:
``state`` (retained readings), ``event`` (momentary readings), ``availability``, ``announce``
(self-description) and ``set`` (commands to the device). Unlike the vendor formats, the native
format names CityWeave capabilities directly, so an unknown capability is an error of the sender,
not a field to keep.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, ClassVar

from cityweave.devices import capabilities
from cityweave.devices import types as device_types
from cityweave.devices.adapters.base import (
    DiscoveryError,
    Message,
    VendorAdapter,
    dumps,
    epoch_to_datetime,
)
from cityweave.devices.binding import DeviceBinding
from cityweave.devices.command import Command, CommandRejected, EncodedCommand, ExpectedEcho
from cityweave.devices.discovery import CapabilityRef, DiscoveredDevice
from cityweave.devices.reasons import Reason

VERSION = 1
PREFIX = "cityweave/v1"
DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
KINDS = ("state", "event", "availability", "announce", "command")
_TOPIC_KIND = {"state": "state", "event": "event", "availability": "availability",
               "announce": "announce", "set": "command"}
_ENVELOPE = {"v", "kind", "device", "ts", "seq"}
_READING_KEYS = {"capability", "value", "unit", "endpoint", "ts"}
_ANNOUNCE_KEYS = {"name", "manufacturer", "model", "description", "device_type", "capabilities",
                  "firmware"}


@cache
def schema() -> dict[str, Any]:
    """The published JSON Schema of the native format (``schemas/native-v1.schema.json``)."""
    text = resources.files("cityweave.devices").joinpath("schemas/native-v1.schema.json").read_text("utf-8")
    return json.loads(text)


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 text or epoch seconds/milliseconds."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo is not None else None
    return epoch_to_datetime(value)


class NativeAdapter(VendorAdapter):
    name: ClassVar[str] = "native"
    title: ClassVar[str] = "CityWeave native JSON"

    def subscriptions(self) -> list[str]:
        return [f"{PREFIX}/+/state", f"{PREFIX}/+/event", f"{PREFIX}/+/availability",
                f"{PREFIX}/+/announce", f"{PREFIX}/+/set"]

    def discovery_topics(self) -> list[str]:
        return [f"{PREFIX}/+/announce"]

    def _decode(self, message: Message) -> None:
        parts = message.topic.split("/")
        if len(parts) != 4 or "/".join(parts[:2]) != PREFIX or parts[3] not in _TOPIC_KIND:
            message.reject(Reason.UNEXPECTED_TOPIC, f"not a native v1 topic: {message.topic}")
            return
        device_id, kind = parts[2], _TOPIC_KIND[parts[3]]
        if not DEVICE_ID.match(device_id):
            message.reject(Reason.UNEXPECTED_TOPIC, f"invalid device id {device_id!r:.60}")
            return
        if kind == "availability" and (text := message.text()) is not None and text.strip() in ("online", "offline"):
            if message.bind(device_id):
                message.online(device_id, text.strip() == "online")
            return
        body = message.json(dict)
        if body is None:
            return
        if body.get("v") != VERSION:
            message.reject(Reason.SCHEMA_VIOLATION, f"unsupported version v={body.get('v')!r:.20}")
            return
        if body.get("kind", kind) != kind:
            message.reject(Reason.SCHEMA_VIOLATION, f"kind {body.get('kind')!r:.20} on a {kind} topic")
            return
        claimed = body.get("device", device_id)
        if claimed != device_id:
            message.result.address = device_id
            message.mismatch(str(claimed)[:128], device_id)
            return
        if kind == "announce":
            self._announce(message, device_id, body)
            return
        if message.bind(device_id) is None:
            return
        if kind == "availability":
            online = body.get("online")
            if not isinstance(online, bool):
                message.reject(Reason.WRONG_TYPE, "availability.online must be a boolean", "online")
                return
            message.online(device_id, online)
        elif kind == "command":
            self._observed_command(message, body)
        else:
            self._readings(message, body)

    def _readings(self, message: Message, body: Mapping[str, Any]) -> None:
        default_ts = parse_time(body["ts"]) if "ts" in body else None
        if "ts" in body and default_ts is None:
            message.reject(Reason.WRONG_TYPE, f"ts {body['ts']!r:.40} is not a time", "ts")
        moment = message.timestamp(default_ts) if default_ts else message.received_at
        entries: list[tuple[str, Mapping[str, Any]]] = []
        readings = body.get("readings", [])
        if not isinstance(readings, list):
            message.reject(Reason.SCHEMA_VIOLATION, "readings must be an array", "readings")
            readings = []
        entries += [(f"readings[{i}]", r) for i, r in enumerate(readings)]
        values = body.get("values", {})
        if not isinstance(values, dict):
            message.reject(Reason.SCHEMA_VIOLATION, "values must be an object", "values")
            values = {}
        for key, value in values.items():
            capability, _, endpoint = str(key).partition("@")
            entries.append((f"values.{key}", {"capability": capability, "value": value,
                                              **({"endpoint": endpoint} if endpoint else {})}))
        for path, entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("capability"), str) or "value" not in entry:
                message.reject(Reason.SCHEMA_VIOLATION, "a reading needs capability and value", path)
                continue
            extra_keys = set(entry) - _READING_KEYS
            for extra_key in extra_keys:
                message.unknown(f"{path}.{extra_key}", entry[extra_key])
            endpoint = entry.get("endpoint")
            if endpoint is not None and not isinstance(endpoint, str):
                message.reject(Reason.WRONG_TYPE, "endpoint must be text", f"{path}.endpoint")
                continue
            unit = entry.get("unit")
            if unit is not None and not isinstance(unit, str):
                message.reject(Reason.WRONG_TYPE, "unit must be text", f"{path}.unit")
                continue
            stamp = moment
            if "ts" in entry:
                parsed = parse_time(entry["ts"])
                if parsed is None:
                    message.reject(Reason.WRONG_TYPE, "ts is not a time", f"{path}.ts")
                    continue
                stamp = message.timestamp(parsed)
            message.read(entry["capability"], entry["value"], unit=unit, endpoint=endpoint,
                         source=path, timestamp=stamp)
        if isinstance(body.get("ack"), str):
            message.ack(body["ack"], True)
        for key in set(body) - _ENVELOPE - {"readings", "values", "ack"}:
            message.unknown(key, body[key])

    def _observed_command(self, message: Message, body: Mapping[str, Any]) -> None:
        capability, endpoint = body.get("capability"), body.get("endpoint")
        if not isinstance(capability, str) or "value" not in body or not (endpoint is None or isinstance(endpoint, str)):
            message.reject(Reason.SCHEMA_VIOLATION, "a command needs capability, value and an optional endpoint")
            return
        command_id = body.get("id") if isinstance(body.get("id"), str) else None
        message.observed(capability, body["value"], endpoint, command_id)

    def _announce(self, message: Message, device_id: str, body: Mapping[str, Any]) -> None:
        try:
            device = self.discover(body, address=device_id)
        except DiscoveryError as exc:
            message.result.address = device_id
            message.reject(Reason.INVALID_DISCOVERY, str(exc))
            return
        message.result.address = device_id
        binding = message.adapter.directory.find(self.name, device_id)
        if binding is not None:
            message.binding = binding
            message.result.device_key = binding.device_key
        message.announce(device)
        for key in set(body) - _ENVELOPE - _ANNOUNCE_KEYS:
            message.unknown(key, body[key])

    def discover(self, document: Mapping[str, Any], *, address: str | None = None) -> DiscoveredDevice:
        device_id = address or document.get("device")
        if not isinstance(device_id, str) or not DEVICE_ID.match(device_id):
            raise DiscoveryError("announce needs a valid device id")
        refs: list[CapabilityRef] = []
        entries = document.get("capabilities", [])
        if not isinstance(entries, list) or not entries:
            raise DiscoveryError("announce needs a non-empty capabilities array")
        for entry in entries:
            name, endpoint = (entry, None) if isinstance(entry, str) else (
                (entry.get("capability"), entry.get("endpoint")) if isinstance(entry, dict) else (None, None))
            cap = capabilities.find(name) if isinstance(name, str) else None
            if cap is None or not (endpoint is None or isinstance(endpoint, str)):
                raise DiscoveryError(f"unknown capability in announce: {entry!r:.60}")
            refs.append(CapabilityRef(cap.name, endpoint, cap.writable))
        text = {k: document.get(k) if isinstance(document.get(k), str) else None
                for k in ("name", "manufacturer", "model", "description", "device_type")}
        declared = text["device_type"]
        if declared is not None and declared not in device_types.DEVICE_TYPES:
            raise DiscoveryError(f"unknown device_type {declared!r:.40}")
        names = [r.capability for r in refs]
        inferred = declared or device_types.infer(names, text["description"] or text["model"] or "")
        return DiscoveredDevice(
            adapter=self.name, address=device_id, name=text["name"], manufacturer=text["manufacturer"],
            model=text["model"], description=text["description"], device_type=inferred,
            capabilities=tuple(refs),
            profile={"capabilities": [{"capability": r.capability, "endpoint": r.endpoint} for r in refs]},
        )

    def encode(self, command: Command, binding: DeviceBinding) -> EncodedCommand:
        declared = binding.profile.get("capabilities")
        if declared and not any(d.get("capability") == command.capability and d.get("endpoint") == command.endpoint
                                for d in declared):
            raise CommandRejected(Reason.NOT_SUPPORTED,
                                  f"{binding.address} did not announce {command.capability}@{command.endpoint}")
        payload = {"v": VERSION, "kind": "command", "device": binding.address, "id": command.id,
                   "capability": command.capability, "value": command.value}
        if command.endpoint is not None:
            payload["endpoint"] = command.endpoint
        return EncodedCommand(
            command=command, topic=f"{PREFIX}/{binding.address}/set", payload=dumps(payload),
            expected_echo=ExpectedEcho(command.capability, command.value, command.endpoint),
        )
