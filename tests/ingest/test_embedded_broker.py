"""The embedded broker: no external service needed; listens on 127.0.0.1 and ::1."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest

from cityweave.config import Settings
from cityweave.devices.binding import DeviceBinding, InMemoryDirectory
from cityweave.ingest.broker import EmbeddedBroker
from cityweave.ingest.service import IngestService
from cityweave.ingest.sinks import MemorySink
from tests.ingest.support import free_port, native_state, unique, wait_until


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    embedded = EmbeddedBroker(port=0)
    embedded.start()
    yield embedded
    embedded.stop()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_accepts_connections_on_both_loopbacks(broker: EmbeddedBroker, host: str) -> None:
    if host == "::1" and not ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback")
    got: list[bytes] = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=unique("probe"))
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect(host, broker.port)
    client.loop_start()
    try:
        client.subscribe("probe/#", qos=1)
        time.sleep(0.2)
        client.publish("probe/x", b"hello", qos=1).wait_for_publish(5)
        assert wait_until(lambda: got == [b"hello"], 5)
    finally:
        client.disconnect()
        client.loop_stop()
    bound = {sock.getsockname()[0] for sock in broker.sockets}
    assert host in bound


def test_a_taken_port_falls_back_to_a_free_one() -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    embedded = EmbeddedBroker(port=taken)
    try:
        embedded.start()
        assert embedded.port not in (None, taken)
    finally:
        embedded.stop()
        blocker.close()


def test_service_without_url_runs_its_own_broker() -> None:
    device = unique("emb")
    sink = MemorySink()
    settings = Settings(mqtt_url=None, mqtt_embedded_port=free_port(), mqtt_client_id=unique("cw"))
    service = IngestService(settings, directory=InMemoryDirectory(
        [DeviceBinding(device_key=device, adapter="native", address=device)]), readings=sink, events=sink)
    service.start()
    try:
        assert service.broker is not None and service.wait_connected(10)
        time.sleep(0.3)
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=unique("dev"))
        client.connect("127.0.0.1", service.broker.port)
        client.loop_start()
        for i in range(50):
            client.publish(*native_state(device, i), qos=1)
        assert wait_until(lambda: len({r.endpoint for r in sink.readings}) == 50, 10)
        client.disconnect()
        client.loop_stop()
        assert len(sink.readings) == 50
        assert service.status()["embedded_broker"] is True
    finally:
        service.stop()
