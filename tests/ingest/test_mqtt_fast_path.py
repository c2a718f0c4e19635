"""The subscriber's own read path (``mqtt_client._Client``): buffered reads and the short PUBLISH
parser, checked packet by packet without a broker (the broker tests cover it end to end)."""

from __future__ import annotations

import struct

import paho.mqtt.client as paho
import pytest
from paho.mqtt.exception import MalformedPacket

from cityweave.ingest.mqtt_client import MqttSubscriber, Received, _Client


def publish_packet(topic: bytes, payload: bytes, *, qos: int = 1, mid: int = 7, dup: bool = False,
                   properties: bytes | None = b"") -> bytes:
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    if properties is not None:  # MQTT 5: properties length (one byte here) then the properties
        body += bytes([len(properties)]) + properties
    body += payload
    assert len(body) < 128
    return bytes([0x30 | (0x08 if dup else 0) | (qos << 1), len(body)]) + body


class FakeSocket:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.calls = 0

    def close(self) -> None:
        self.data = b""

    def recv(self, n: int) -> bytes:
        self.calls += 1
        if not self.data:
            raise BlockingIOError()
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk


def client(protocol: int = paho.MQTTv5) -> tuple[_Client, list[tuple[bytes, bytes, int | None, bool]]]:
    seen: list[tuple[bytes, bytes, int | None, bool]] = []
    c = _Client(paho.CallbackAPIVersion.VERSION2, client_id="t", protocol=protocol, manual_ack=True)
    c.fast_on_message = lambda topic, payload, mid, dup: seen.append((topic, payload, mid, dup))
    return c, seen


def feed(c: _Client, data: bytes) -> FakeSocket:
    sock = FakeSocket(data)
    c._sock = sock  # type: ignore[assignment]
    c._state = paho._ConnectionState.MQTT_CS_CONNECTED
    return sock


def test_every_buffered_packet_is_handled_in_one_wakeup_with_one_recv() -> None:
    c, seen = client()
    packets = [publish_packet(b"a/%d" % i, b"{\"n\":%d}" % i, mid=i + 1, dup=i == 2,
                              properties=b"\x01\x01" if i == 1 else b"") for i in range(50)]
    sock = feed(c, b"".join(packets))
    assert c.loop_read() == paho.MQTT_ERR_SUCCESS
    assert [s[0] for s in seen] == [b"a/%d" % i for i in range(50)]
    assert seen[1] == (b"a/1", b'{"n":1}', 2, False)  # properties skipped, not in the payload
    assert seen[2][3] is True  # DUP
    assert sock.calls == 2  # one read for all 50 packets, one that finds the socket empty


def test_a_packet_split_across_reads_is_put_together() -> None:
    c, seen = client()
    packet = publish_packet(b"t", b"x" * 60)
    feed(c, packet[:10])
    c.loop_read()
    assert seen == []
    c._sock.data = packet[10:]  # type: ignore[union-attr]
    c.loop_read()
    assert seen == [(b"t", b"x" * 60, 7, False)]


def test_mqtt_311_and_qos_0() -> None:
    c, seen = client(paho.MQTTv311)
    feed(c, publish_packet(b"q0", b"p", qos=0, properties=None) + publish_packet(b"q1", b"p", properties=None))
    c.loop_read()
    assert seen == [(b"q0", b"p", None, False), (b"q1", b"p", 7, False)]


def test_properties_longer_than_the_packet_are_malformed() -> None:
    c, _ = client()
    packet = publish_packet(b"t", b"", properties=b"")
    c._in_packet = {"command": packet[0], "packet": bytearray(packet[2:-1] + b"\x7f")}  # claims 127 bytes
    with pytest.raises(MalformedPacket):
        c._handle_publish()


def test_a_closed_connection_forgets_buffered_bytes() -> None:
    c, seen = client()
    feed(c, publish_packet(b"t", b"1") + publish_packet(b"t", b"2")[:3])
    c.loop_read()
    assert len(seen) == 1 and c._rbuf
    c._sock_close()
    assert c._rbuf == b"" and c._rpos == 0


def test_subscriber_turns_fast_messages_into_received_and_acks_bad_topics() -> None:
    received: list[Received] = []
    sub = MqttSubscriber("mqtt://127.0.0.1:1", topics=list, on_message=received.append)
    acked: list[int] = []
    sub.client.ack = lambda mid, qos: acked.append(mid)  # type: ignore[method-assign]
    bad: list[int] = []
    sub.on_bad_topic = lambda: bad.append(1)
    sub._on_publish(b"cityweave/v1/d/state", b"{}", 9, True)
    sub._on_publish(b"\xff\xfe", b"{}", 10, False)
    assert [(r.topic, r.payload, r.mid, r.dup, r.epoch) for r in received] == [
        ("cityweave/v1/d/state", b"{}", 9, True, 0)]
    assert bad == [1] and acked == [10]
