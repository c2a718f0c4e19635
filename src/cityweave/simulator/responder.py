"""Simulated devices answer commands, as their real firmware and bridges do.

A :class:`CommandResponder` subscribes to the command topics of the fleet's ecosystems, understands
a command with the platform's own adapters (``DecodeResult.commands``: what an adapter makes of a
command it sees on the bus, in capability terms), remembers the new value (:class:`Overrides`, which
the :class:`~cityweave.simulator.runner.Schedule` applies to the device's later reports too) and
publishes what the real device would publish next:

=============  ==========================================  ==========================================
ecosystem      command                                     answer
=============  ==========================================  ==========================================
Zigbee2MQTT    ``zigbee2mqtt/<name>/set`` JSON               the device's full state on ``zigbee2mqtt/<name>``
Tasmota        ``cmnd/<topic>/POWER1``, ``Dimmer``, ``CT``   ``stat/<topic>/RESULT`` (+ ``stat/<topic>/POWER``), ``tele/<topic>/STATE``
Shelly Gen2    ``<id>/rpc`` ``Switch.Set``                   RPC result on ``<src>/rpc``, ``NotifyStatus`` on ``<id>/events/rpc``
Tuya           ``tylink/<id>/thing/property/set``            ``thing/property/report`` with the new data points
Home Assistant the entity's ``command_topic``                the device's state topic
native         ``cityweave/v1/<id>/set``                     ``cityweave/v1/<id>/state`` with ``ack``
=============  ==========================================  ==========================================

A command the device cannot carry out is answered as the device would: a Shelly RPC error
reply, silence elsewhere (the platform then times the command out). There are no MIoT devices in
the simulated fleet (MIoT has no MQTT convention of its own), so none answer.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from cityweave.devices.adapters import VendorAdapter, create_all, topic_matches
from cityweave.devices.command import Command
from cityweave.simulator.behaviour import DEFAULT_CONFIG, BehaviourConfig, sample
from cityweave.simulator.fleet import (
    HOMEASSISTANT,
    METER,
    NATIVE,
    PLUG,
    SHELLY,
    TASMOTA,
    TUYA,
    ZIGBEE2MQTT,
    Fleet,
    VirtualDevice,
)
from cityweave.simulator.payloads import (
    NATIVE_PREFIX,
    TASMOTA_MODELS,
    Z2M_BASE,
    Outgoing,
    encode,
)

log = logging.getLogger("cityweave.simulator")

# Which behaviour value a commanded capability sets (the payload encoders read these).
VALUE_OF: dict[str, str] = {
    "on_off": "on_off", "brightness": "brightness", "color_temperature": "color_temperature",
    "valve_open": "valve_open", "siren": "siren", "alarm_muted": "alarm_muted",
}
# How long a commanded value overrides the behaviour (the light someone switched on stays on).
DEFAULT_HOLD_S = 3600.0

# The command topics each ecosystem's devices listen on (Zigbee2MQTT friendly names are
# "<household>/<slot>", Home Assistant command topics "home/<household>/<slot>/set").
COMMAND_TOPICS: dict[str, tuple[str, ...]] = {
    ZIGBEE2MQTT: (f"{Z2M_BASE}/+/+/set",),
    TASMOTA: ("cmnd/+/+",),
    SHELLY: ("+/rpc",),
    TUYA: ("tylink/+/thing/property/set",),
    HOMEASSISTANT: ("home/+/+/set",),
    NATIVE: (f"{NATIVE_PREFIX}/+/set",),
}


class Overrides:
    """Values set by commands, per device, until ``hold`` seconds have passed. Thread-safe."""

    def __init__(self, hold: float = DEFAULT_HOLD_S, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.hold = hold
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._values: dict[str, dict[str, tuple[Any, float]]] = {}

    def __bool__(self) -> bool:
        return bool(self._values)

    def set(self, device_id: str, key: str, value: Any) -> None:
        with self._lock:
            self._values.setdefault(device_id, {})[key] = (value, self._monotonic() + self.hold)

    def apply(self, device: VirtualDevice, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with the device's live overrides on top (and what follows from them)."""
        if device.id not in self._values:
            return values
        now = self._monotonic()
        with self._lock:
            mine = self._values.get(device.id, {})
            live = {key: value for key, (value, until) in mine.items() if until > now}
            if len(live) != len(mine):
                if live:
                    self._values[device.id] = {k: v for k, v in mine.items() if k in live}
                else:
                    self._values.pop(device.id, None)
        if not live:
            return values
        values = {**values, **live}
        if device.kind in (PLUG, METER) and live.get("on_off") is False:  # nothing flows when switched off
            values.update(power_w=0.0, current=0.0)
        return values


class CommandResponder:
    """The fleet's answers to commands. ``handle`` is pure apart from the overrides it records;
    ``attach`` wires it to a paho client (subscriptions renewed on every connect)."""

    def __init__(self, fleet: Fleet, overrides: Overrides | None = None, *,
                 adapters: Iterable[VendorAdapter] | None = None, config: BehaviourConfig = DEFAULT_CONFIG,
                 seed: int | None = None, when: datetime | None = None) -> None:
        from cityweave.simulator.registry import bind_fleet

        self.fleet = fleet
        self.overrides = overrides if overrides is not None else Overrides()
        self.config = config
        self.rng = random.Random(f"respond:{fleet.seed if seed is None else seed}")
        self._lock = threading.Lock()
        directory = bind_fleet(fleet, when=when)
        self.adapters = {a.name: a for a in (list(adapters) if adapters is not None else create_all(directory=directory))}
        self.vendors = sorted({d.vendor for d in fleet.devices} & set(COMMAND_TOPICS))
        self._shelly = {d.shelly_id: d for d in fleet.devices if d.vendor == SHELLY}
        self.answered = 0
        self.refused = 0

    def topics(self) -> list[str]:
        return [topic for vendor in self.vendors for topic in COMMAND_TOPICS[vendor]]

    # -- understanding and answering ----------------------------------------------------------------
    def handle(self, topic: str, payload: bytes, now: datetime | None = None) -> list[Outgoing]:
        """What the fleet publishes in answer to one message on a command topic (often nothing:
        the wildcards also bring other devices' commands and Shelly replies)."""
        now = now or datetime.now(UTC)
        vendor = next((v for v in self.vendors if any(topic_matches(p, topic) for p in COMMAND_TOPICS[v])), None)
        if vendor is None:
            return []
        if vendor == SHELLY:
            return self._shelly_rpc(topic, payload, now)
        result = self.adapters[vendor].decode(topic, payload, now)
        if not result.commands:
            return []
        device = self._device(result.commands[0].device_key)
        if device is None:
            return []
        for command in result.commands:
            self._remember(device, command)
        self.answered += 1
        return self._report(device, now, result.commands)

    def _device(self, key: str) -> VirtualDevice | None:
        try:
            return self.fleet.device(key)
        except KeyError:
            return None

    def _remember(self, device: VirtualDevice, command: Command) -> None:
        key = VALUE_OF.get(command.capability)
        if key is not None:
            self.overrides.set(device.id, key, command.value)

    def values(self, device: VirtualDevice, now: datetime) -> dict[str, Any]:
        with self._lock:
            values = sample(device, now, self.rng, self.config)
        return self.overrides.apply(device, values)

    def _report(self, device: VirtualDevice, now: datetime, commands: list[Command]) -> list[Outgoing]:
        values = self.values(device, now)
        vendor = device.vendor
        if vendor == TASMOTA:
            state = TASMOTA_MODELS[device.kind].state(values)
            answer = [Outgoing(f"stat/{device.tasmota_topic}/RESULT", orjson.dumps(state))]
            if "POWER" in state:
                answer.append(Outgoing(f"stat/{device.tasmota_topic}/POWER", state["POWER"].encode()))
            return answer + [m for m in encode(device, values, now) if m.topic.endswith("/STATE")]
        if vendor == NATIVE:
            body = orjson.loads(encode(device, values, now)[0].payload)
            acked = next((c.id for c in commands if c.id), None)
            if acked:
                body["ack"] = acked
            return [Outgoing(f"{NATIVE_PREFIX}/{device.id}/state", orjson.dumps(body), retain=True)]
        # Zigbee2MQTT publishes the device's new state, a Tuya device reports its data points,
        # a Home Assistant device its state topic: what encode() gives for the new values.
        return encode(device, values, now)

    def _shelly_rpc(self, topic: str, payload: bytes, now: datetime) -> list[Outgoing]:
        device = self._shelly.get(topic.removesuffix("/rpc"))
        if device is None:
            return []  # another device's request, or a reply to a requester
        try:
            frame = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(frame, dict) or "method" not in frame or not isinstance(frame.get("src"), str):
            return []
        reply: dict[str, Any] = {"id": frame.get("id"), "src": device.shelly_id, "dst": frame["src"]}
        result = self.adapters[SHELLY].decode(topic, payload, now)
        commands = [c for c in result.commands if c.device_key == device.id and c.capability in VALUE_OF]
        if not commands:
            self.refused += 1
            reply["error"] = {"code": -105, "message": f"Unsupported method {frame.get('method')!r:.60}"}
            return [Outgoing(f"{frame['src']}/rpc", orjson.dumps(reply))]
        before = self.values(device, now).get("on_off")
        for command in commands:
            self._remember(device, command)
        self.answered += 1
        reply["result"] = {"was_on": bool(before)}
        return [Outgoing(f"{frame['src']}/rpc", orjson.dumps(reply)),
                *encode(device, self.values(device, now), now)]

    # -- MQTT ---------------------------------------------------------------------------------------
    def attach(self, client: Any, qos: int = 1) -> None:
        """Subscribe ``client`` to the command topics (again after every reconnect) and answer."""
        topics = [(topic, qos) for topic in self.topics()]
        if not topics:
            return
        previous = client.on_connect

        def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
            if previous is not None:
                previous(c, userdata, flags, reason, properties)
            if not getattr(reason, "is_failure", False):
                c.subscribe(topics)

        def on_message(c: Any, _userdata: Any, message: Any) -> None:
            try:
                for answer in self.handle(message.topic, message.payload):
                    c.publish(answer.topic, answer.payload, qos=1, retain=answer.retain)
            except Exception:  # a strange command must not stop the simulated fleet
                log.exception("simulated device could not answer %s", message.topic)

        client.on_connect = on_connect
        client.on_message = on_message
        client.subscribe(topics)
