"""End-to-end plumbing for the built-in rules: a DeviceRuntime on the machine's real Mosquitto
(127.0.0.1:1883), simulated vendor devices bound the way the demo binds them (their own
announcements decoded by their adapters, claimed into a household), paho clients that publish
the devices' real payloads and listen for the commands the rules send."""

from __future__ import annotations

import json
import queue
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import paho.mqtt.client as paho
import pytest

from cityweave.authz.policy import Principal
from cityweave.clock import ManualClock
from cityweave.context import AppContext, Call
from cityweave.devices.registry import service as devices
from cityweave.devices.registry.schemas import DeviceClaim
from cityweave.runtime import DeviceRuntime
from cityweave.simulator.behaviour import sample
from cityweave.simulator.fleet import Fleet, Household, VirtualDevice
from cityweave.simulator.payloads import encode
from cityweave.simulator.registry import discover_fleet
from tests.conftest import need_service

HOST, PORT = "127.0.0.1", 1883


def mosquitto() -> None:
    with socket.socket() as probe:
        probe.settimeout(1)
        if probe.connect_ex((HOST, PORT)) != 0:
            need_service("Mosquitto", f"nothing listens on {HOST}:{PORT}")


def paho_client(name: str) -> paho.Client:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:8]}")
    client.connect(HOST, PORT, keepalive=30)
    client.loop_start()
    return client


def until(check: Callable[[], Any], timeout: float = 15.0, every: Callable[[], None] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if every is not None:
            every()
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


@dataclass
class Sim:
    """One simulated device, bound in the registry: ``id`` is its CityWeave device id."""

    virtual: VirtualDevice
    id: str

    def messages(self, when: datetime, **values: Any) -> list[tuple[str, bytes]]:
        base = sample(self.virtual, when, random.Random(1))
        base.update(values)
        return [(out.topic, out.payload) for out in encode(self.virtual, base, when)]


@dataclass
class Listener:
    client: paho.Client
    received: queue.Queue[paho.MQTTMessage] = field(default_factory=queue.Queue)

    def expect(self, topic: str, timeout: float = 15.0) -> paho.MQTTMessage:
        deadline = time.monotonic() + timeout
        while True:
            message = self.received.get(timeout=max(0.01, deadline - time.monotonic()))
            if message.topic == topic:
                return message


class Harness:
    def __init__(self, ctx: AppContext, clock: ManualClock,
                 sessions: Callable[..., None] | None = None) -> None:
        self.ctx = ctx
        self.clock = clock
        self.sessions = sessions  # the ``ingest_sessions`` fixture: ends the runtime's MQTT session after the test
        self.runtime: DeviceRuntime | None = None
        self.clients: list[paho.Client] = []
        self.device = paho_client("cw-rules-device")
        self.clients.append(self.device)
        self._index = random.randrange(0x100000, 0xF00000)

    def start(self, **settings: Any) -> DeviceRuntime:
        self.ctx.settings.mqtt_url = f"mqtt://{HOST}:{PORT}"
        self.ctx.settings.mqtt_client_id = f"cw-rules-{uuid.uuid4().hex[:10]}"
        if self.sessions is not None:
            self.sessions(self.ctx.settings.mqtt_url, self.ctx.settings.mqtt_client_id, self.ctx.settings.mqtt_client_id)
        for name, value in settings.items():
            setattr(self.ctx.settings, name, value)
        self.runtime = DeviceRuntime(self.ctx, node=self.ctx.settings.mqtt_client_id, tick_interval=0.1).start()
        assert self.runtime.wait_connected(10), "the runtime did not connect to Mosquitto"
        # "connected" is set when SUBSCRIBE is sent, not acknowledged: until a probe comes through,
        # what a device publishes could reach the broker before the subscription does
        metrics = self.runtime.ingest.metrics
        probe = f"zigbee2mqtt/cw-probe-{uuid.uuid4().hex[:8]}"
        before = metrics.processed
        assert until(lambda: metrics.processed > before,
                     every=lambda: self.device.publish(probe, b'{"probe":1}', qos=1)), "no subscription"
        return self.runtime

    def bind(self, household: str, kind: str, vendor: str, *, name: str | None = None,
             elderly: bool = False) -> Sim:
        """A simulated device of ``kind`` by ``vendor``, discovered from its announcement and claimed."""
        self._index += 1
        home = Household(household, 1, elderly)
        virtual = VirtualDevice(f"{household}-{kind}{self._index}", self._index, home, kind, vendor, "room",
                                f"{kind}-{uuid.uuid4().hex[:8]}")
        discovered = discover_fleet(Fleet(1, (home,), (virtual,)), when=self.clock.now())[virtual.id]
        with self.ctx.db.session() as session:
            self.ctx.db.write_first(session)
            device = devices.record_discovered(session, discovered, self.clock.now())
            assert device is not None
            devices.claim(Call(self.ctx, session, Principal.system("test")), device.id,
                          DeviceClaim(place_id=household, name=name))
            device_id = device.id
        if self.runtime is not None:
            self.runtime.directory.refresh(force=True)
        return Sim(virtual, device_id)

    def listen(self, *topics: str) -> Listener:
        client = paho_client("cw-rules-listener")
        self.clients.append(client)
        listener = Listener(client)
        subscribed: queue.Queue[bool] = queue.Queue()
        client.on_message = lambda _c, _u, message: listener.received.put(message)
        client.on_subscribe = lambda *_args: subscribed.put(True)
        for topic in topics:
            client.subscribe(topic, qos=1)
            subscribed.get(timeout=5)
        return listener

    def publish(self, messages: list[tuple[str, bytes]]) -> None:
        for topic, payload in messages:
            self.device.publish(topic, payload, qos=1).wait_for_publish(5)

    def report(self, sim: Sim, **values: Any) -> None:
        self.publish(sim.messages(self.clock.now(), **values))

    def stored(self, device_id: str, capability: str) -> Any:
        """The device's latest stored value of ``capability`` (None before any)."""
        from sqlalchemy import select

        from cityweave.telemetry.models import device_state

        with self.ctx.db.session() as session:
            row = session.execute(select(device_state.c.num, device_state.c.text).where(
                device_state.c.device_key == device_id, device_state.c.capability == capability)).first()
        if row is None:
            return None
        return row.num if row.num is not None else row.text

    def rule_state(self, rule_key: str) -> bool:
        assert self.runtime is not None
        return any(key[0] == rule_key for key in list(self.runtime.rules._state))

    def close(self) -> None:
        for client in self.clients:
            client.loop_stop()
            client.disconnect()
        if self.runtime is not None:
            self.runtime.stop()


@pytest.fixture(name="harness")
def harness_fixture(ctx: AppContext, clock: ManualClock, ingest_sessions: Callable[..., None]) -> Iterator[Harness]:
    mosquitto()
    h = Harness(ctx, clock, ingest_sessions)
    try:
        yield h
    finally:
        h.close()


def payload(message: paho.MQTTMessage) -> Any:
    try:
        return json.loads(message.payload)
    except ValueError:
        return message.payload.decode()
