"""Through the machine's real Mosquitto (127.0.0.1:1883): fixtures in, readings out, once;
bad messages counted; persistent session; back-pressure with a slow sink."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from cityweave.config import Settings
from cityweave.devices.binding import DeviceBinding, InMemoryDirectory
from cityweave.ingest.service import IngestService
from cityweave.ingest.sinks import MemorySink
from tests.devices.support import load_json, require_fixtures
from tests.ingest.support import (
    Publisher,
    forget_session,
    native_state,
    shared_mosquitto,
    unique,
    wait_until,
)


class Harness:
    def __init__(self, url: str, directory: InMemoryDirectory, sink: MemorySink | None = None, **settings) -> None:
        self.url = url
        self.client_id = unique("cw-test")
        self.node = self.client_id
        self.directory = directory
        self.sink = sink or MemorySink()
        self.settings = Settings(mqtt_url=url, mqtt_client_id=self.client_id, **settings)
        self.service: IngestService | None = None

    def start(self) -> IngestService:
        self.service = IngestService(self.settings, directory=self.directory, readings=self.sink,
                                     events=self.sink, node=self.node)
        self.service.start()
        assert self.service.wait_connected(10), "no connection to the broker"
        time.sleep(0.3)  # SUBACK
        return self.service

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None

    def endpoints(self, device_key: str) -> Counter[str]:
        return Counter(r.endpoint for r in list(self.sink.readings) if r.device_key == device_key)


@pytest.fixture
def broker_url() -> str:
    return shared_mosquitto()


@pytest.fixture
def harness(broker_url: str, ingest_sessions) -> Iterator[Harness]:
    made: list[Harness] = []

    def build(directory: InMemoryDirectory, **kwargs) -> Harness:
        h = Harness(broker_url, directory, **kwargs)
        ingest_sessions(broker_url, h.client_id, h.node)
        made.append(h)
        return h

    yield build  # type: ignore[misc]
    for h in made:
        h.stop()


@pytest.fixture
def publisher(broker_url: str) -> Iterator[Publisher]:
    pub = Publisher(broker_url)
    yield pub
    pub.close()


def test_native_messages_arrive_once(harness, publisher):
    device = unique("nat")
    h = harness(InMemoryDirectory([DeviceBinding(device_key=device, adapter="native", address=device)]))
    h.start()
    publisher.publish(native_state(device, i) for i in range(200))
    assert wait_until(lambda: sum(h.endpoints(device).values()) >= 200, 15)
    time.sleep(0.3)
    seen = h.endpoints(device)
    assert len(seen) == 200 and set(seen.values()) == {1}
    assert h.service.metrics.snapshot()["connected"] is True


def test_zigbee2mqtt_fixtures_arrive_once_with_discovery(harness, publisher):
    require_fixtures()
    directory = InMemoryDirectory()
    h = harness(directory)
    h.start()
    listing = load_json("zigbee2mqtt/bridge_devices.json")
    prefix = unique("z2m")
    # The devices announce themselves on the bridge topic...
    publisher.publish([(listing["topic"], json.dumps(listing["payload"]).encode())])
    addresses = {d["ieee_address"] for d in listing["payload"] if d["type"] != "Coordinator"}
    # (Other programs may share this broker: a retained device list of theirs may arrive too.)
    assert wait_until(lambda: addresses <= {d.address for d in h.sink.discovered()}, 10)
    for device in h.sink.discovered():
        if device.address in addresses:
            directory.add(device.bind(f"{prefix}-{device.address}"))
    # ...then every state message of the fixture file goes through the broker.
    messages = [m for m in load_json("zigbee2mqtt/messages.json") if isinstance(m.get("payload"), dict)]
    publisher.publish((m["topic"], json.dumps(m["payload"]).encode()) for m in messages)
    expected = Counter()
    for m in messages:
        result = h.service.pipeline.decode(m["topic"], json.dumps(m["payload"]).encode(), datetime.now(UTC))
        expected.update(r.device_key for r in result.readings)
    assert sum(expected.values()) > 100

    def ours() -> Counter[str]:
        return Counter(r.device_key for r in list(h.sink.readings) if r.device_key.startswith(prefix))

    assert wait_until(lambda: ours() == expected, 15), (sum(ours().values()), sum(expected.values()))
    time.sleep(0.3)
    assert ours() == expected  # nothing twice


def test_bad_messages_are_counted_not_stored(harness, publisher):
    device = unique("bad")
    h = harness(InMemoryDirectory([DeviceBinding(device_key=device, adapter="native", address=device)]))
    h.start()
    other = unique("other")
    bad = [
        (f"cityweave/v1/{device}/state", b'{"v":1,"readings":['),                       # malformed_json
        (f"cityweave/v1/{device}/state", b'{"v":1,"pad":"' + b"x" * 70_000 + b'"}'),    # oversize
        (f"cityweave/v1/{other}/state", native_state(other, 1)[1]),                     # unknown_device
        (f"cityweave/v1/{device}/state", native_state(other, 2)[1]),                    # topic_mismatch
        (f"cityweave/v1/{device}/state",
         json.dumps({"v": 1, "readings": [{"capability": "humidity", "value": 180}]}).encode()),  # out_of_range
        (f"cityweave/v1/{device}/state",
         json.dumps({"v": 1, "readings": [{"capability": "temperature", "value": [1]}]}).encode()),  # wrong_type
    ]
    publisher.publish(bad)
    publisher.publish([native_state(device, 99)])
    assert wait_until(lambda: h.endpoints(device) == Counter({"m99": 1}), 10)
    dropped = h.service.metrics.dropped
    for reason in ("malformed_json", "oversize", "unknown_device", "topic_mismatch", "out_of_range", "wrong_type"):
        assert dropped[reason] >= 1, (reason, dict(dropped))
    assert h.service.pipeline.queue.qsize() == 0
    assert all(r.device_key == device for r in h.sink.readings)


def test_persistent_session_keeps_messages_while_we_are_away(harness, publisher):
    device = unique("away")
    directory = InMemoryDirectory([DeviceBinding(device_key=device, adapter="native", address=device)])
    h = harness(directory)
    h.start()
    h.stop()
    publisher.publish(native_state(device, i) for i in range(300))  # nobody connected
    assert h.endpoints(device) == Counter()
    h.start()  # same client id: the broker hands over what it kept
    assert wait_until(lambda: len(h.endpoints(device)) == 300, 15)
    time.sleep(0.3)
    assert set(h.endpoints(device).values()) == {1}


class SlowSink(MemorySink):
    def __init__(self) -> None:
        super().__init__()
        self.max_batch = 0

    def write_batch(self, session, readings):
        time.sleep(0.02)
        self.max_batch = max(self.max_batch, len(readings))
        super().write_batch(session, readings)


def test_back_pressure_bounded_queue_nothing_lost(harness, publisher):
    device = unique("slow")
    sink = SlowSink()
    h = harness(InMemoryDirectory([DeviceBinding(device_key=device, adapter="native", address=device)]),
                sink=sink, ingest_queue_size=20, ingest_batch_size=10, ingest_batch_ms=5)
    service = h.start()
    depths: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            depths.append(service.pipeline.queue.qsize())
            time.sleep(0.005)

    threading.Thread(target=watch, daemon=True).start()
    publisher.publish(native_state(device, i) for i in range(600))  # far faster than the sink
    assert wait_until(lambda: len(h.endpoints(device)) == 600, 40)
    stop.set()
    assert max(depths) <= 20
    assert sink.max_batch <= 10
    assert set(h.endpoints(device).values()) == {1}


def test_a_shared_group_splits_the_load_between_processes(harness, publisher):
    device = unique("shared")
    group = unique("grp")
    directory = InMemoryDirectory([DeviceBinding(device_key=device, adapter="native", address=device)])
    first = harness(directory, mqtt_shared_group=group)
    second = harness(directory, mqtt_shared_group=group)
    first.start()
    second.start()
    publisher.publish(native_state(device, i) for i in range(400))

    def union() -> Counter[str]:
        return first.endpoints(device) + second.endpoints(device)

    assert wait_until(lambda: len(union()) == 400, 15)
    time.sleep(0.3)
    assert set(union().values()) == {1}  # each message to one member only
    assert sum(first.endpoints(device).values()) > 0 and sum(second.endpoints(device).values()) > 0


def test_forget_session_leaves_nothing_on_the_shared_broker(harness, broker_url):
    """What the ``ingest_sessions`` fixture does after every test: no session, no retained status."""
    import queue

    import paho.mqtt.client as paho
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    h = harness(InMemoryDirectory())
    h.start()
    h.stop()
    forget_session(broker_url, h.client_id, h.node)
    host, port = broker_url.rsplit("//", 1)[1].rsplit(":", 1)
    present: queue.Queue[bool] = queue.Queue()
    retained: queue.Queue[bytes] = queue.Queue()
    probe = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=h.client_id, protocol=paho.MQTTv5)
    probe.on_connect = lambda _c, _u, flags, _r, _p: present.put(flags.session_present)
    probe.on_message = lambda _c, _u, message: retained.put(message.payload)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    probe.connect(host, int(port), clean_start=False, properties=props)
    probe.loop_start()
    try:
        assert present.get(timeout=5) is False
        probe.subscribe(f"cityweave/ingest/{h.node}/status", qos=1)
        time.sleep(0.5)
        assert retained.empty()
    finally:
        probe.disconnect()
        probe.loop_stop()
