"""The MQTT subscriber: QoS 1, a persistent session, acknowledgements only after storage.

Built on paho-mqtt 2.x, whose network loop runs in its own thread. The choices that matter:

* **Fixed client id and a persistent session** (MQTT 5 ``clean_start=False`` with a session
  expiry, or 3.1.1 ``clean_session=False``): while CityWeave is down or reconnecting, the broker
  queues QoS 1 messages for it.
* **manual_ack**: paho does not send PUBACK on receipt; :meth:`MqttSubscriber.ack` sends it after
  the pipeline committed the message's batch. Until then the broker owns the message and
  redelivers it (DUP=1, same packet id) after a crash; see ``ingest/receipts.py``.
* **MQTT 5 Receive Maximum** (default): the broker sends at most that many unacknowledged messages,
  so batches can be large (Mosquitto otherwise allows 20 in flight to a 3.1.1 client, which would
  cap every batch at 20). It is the transport's flow control.
* **Reconnect** with exponential backoff and full jitter, so a fleet of services does not hammer a
  restarted broker in lock-step; subscriptions are renewed on every connect.
* **Our own availability**: ``cityweave/ingest/<node>/status`` is ``online`` (retained) once
  connected, and the broker publishes the retained will ``offline`` if we vanish.
"""

from __future__ import annotations

import logging
import random
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cityweave.clock import Clock

log = logging.getLogger("cityweave.ingest.mqtt")

STATUS_TOPIC = "cityweave/ingest/{node}/status"
SESSION_EXPIRY_SECONDS = 7 * 24 * 3600  # how long the broker keeps our queue while we are away
_READ_PACKETS_PER_WAKEUP = 2000
_RECV_BYTES = 256 * 1024
_PUBACK = struct.Struct("!BBH")
_UINT16 = struct.Struct("!H")


@dataclass(frozen=True)
class BrokerUrl:
    """``mqtt://[user[:password]@]host[:port][?protocol=5|311]``; ``mqtts://`` for TLS.

    IPv6 literals in brackets: ``mqtt://[::1]:1883``."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    protocol: int = 5  # 5 or 311

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"not an MQTT URL (mqtt:// or mqtts://): {url!r}")
        tls = parts.scheme in ("mqtts", "ssl")
        if not parts.hostname:
            raise ValueError(f"MQTT URL without a host: {url!r}")
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ValueError(f"bad port in MQTT URL {url!r}") from exc
        query = parse_qs(parts.query)
        protocol = query.get("protocol", ["5"])[0].replace(".", "")
        if protocol not in ("5", "311"):
            raise ValueError(f"protocol must be 5 or 3.1.1, not {protocol!r}")
        return cls(
            host=parts.hostname, port=port, tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            protocol=int(protocol),
        )

    def __str__(self) -> str:  # never shows the password
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}"


@dataclass(slots=True)
class Received:
    topic: str
    payload: bytes
    mid: int | None  # None for QoS 0
    dup: bool
    received_at: datetime
    epoch: int = 0  # which connection it came on: a PUBACK is only valid on that one


class _Client(paho.Client):
    """paho's client, tuned for a subscriber that receives thousands of messages per second.

    * Full jitter on the reconnect delay (paho doubles it, without jitter).
    * **Buffered reads.** paho reads each packet with at least three ``recv`` calls (the command
      byte, each byte of the remaining length, the body) and, in 2.2, one packet per ``select()``
      wake-up whatever ``max_packets`` says. :meth:`_sock_recv` serves those small reads from one
      256 KiB ``recv``, and :meth:`loop_read` handles every packet the socket has before going
      back to ``select()`` (up to ``_READ_PACKETS_PER_WAKEUP``, then only what is already
      buffered, so PUBACKs and pings get their turn).
    * **A short path for PUBLISH** (QoS 0/1): :meth:`_handle_publish` parses the packet itself and
      hands ``(topic bytes, payload, packet id, dup)`` to ``fast_on_message``, without paho's
      ``MQTTMessage``, MQTT 5 ``Properties`` object, debug formatting and per-message callback
      matching (none of which the ingest uses). QoS 2, topic aliases, or no ``fast_on_message``:
      paho's own path.
    * :meth:`ack_many` queues the PUBACKs of a whole batch as one write instead of one packet
      (and one wake-up of the network thread) per message.

    These touch paho internals (``_sock_recv``, ``_packet_read``, ``_in_packet``,
    ``_packet_queue``, ``_reconnect_*``); pinned to paho-mqtt 2.x and covered by the ingest tests.
    """

    fast_on_message: Callable[[bytes, bytes, int | None, bool], None] | None = None
    _rbuf: bytes = b""
    _rpos: int = 0
    _refill: bool = True

    def _sock_recv(self, bufsize: int) -> bytes:
        buf, pos = self._rbuf, self._rpos
        if pos >= len(buf):
            if not self._refill:
                raise BlockingIOError()
            buf = super()._sock_recv(_RECV_BYTES)
            if not buf:
                return buf  # connection closed
            self._rbuf, pos = buf, 0
        chunk = buf[pos:pos + bufsize]
        self._rpos = pos + len(chunk)
        return chunk

    def _sock_close(self) -> None:
        self._rbuf, self._rpos = b"", 0  # bytes of a dead connection mean nothing on the next
        super()._sock_close()

    def loop_read(self, max_packets: int = 1) -> paho.MQTTErrorCode:
        count = 0
        try:
            while True:
                if self._sock is None:
                    return paho.MQTTErrorCode.MQTT_ERR_NO_CONN
                rc = self._packet_read()
                if rc > 0:
                    return self._loop_rc_handle(rc)
                if rc == paho.MQTTErrorCode.MQTT_ERR_AGAIN:
                    return paho.MQTTErrorCode.MQTT_ERR_SUCCESS
                count += 1
                if count >= _READ_PACKETS_PER_WAKEUP:
                    self._refill = False  # finish what is buffered, then let writes out
        finally:
            self._refill = True

    def _handle_publish(self) -> paho.MQTTErrorCode:
        fast = self.fast_on_message
        command = self._in_packet["command"]
        qos = (command & 0x06) >> 1
        if fast is None or qos > 1:
            return super()._handle_publish()
        packet = self._in_packet["packet"]
        try:
            (length,) = _UINT16.unpack_from(packet, 0)
            if length == 0:  # a topic alias: paho knows what to do
                return super()._handle_publish()
            pos = 2 + length
            topic = bytes(packet[2:pos])
            mid = None
            if qos:
                (mid,) = _UINT16.unpack_from(packet, pos)
                pos += 2
            if self._protocol == paho.MQTTv5:  # skip the properties
                size, shift = 0, 0
                while True:
                    byte = packet[pos]
                    pos += 1
                    size |= (byte & 0x7F) << shift
                    shift += 7
                    if not byte & 0x80:
                        break
                pos += size
                if pos > len(packet):
                    raise MalformedPacket("properties longer than the packet")
        except (IndexError, struct.error) as exc:
            raise MalformedPacket(f"short PUBLISH: {exc}") from exc
        fast(topic, bytes(packet[pos:]), mid, bool(command & 0x08))
        if qos and not self._manual_ack:
            return self._send_puback(mid)
        return paho.MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: Sequence[int]) -> None:
        if not mids:
            return
        # PUBACK: fixed header 0x40, remaining length 2, packet id. MQTT 5 allows this short form
        # for reason "Success" without properties.
        blob = b"".join(_PUBACK.pack(0x40, 2, mid) for mid in mids)
        self._packet_queue(paho.PUBACK, blob, 0, 0)

    def _reconnect_wait(self) -> None:
        with self._reconnect_delay_mutex:
            if self._reconnect_delay is None:
                self._reconnect_delay = self._reconnect_min_delay
            else:
                self._reconnect_delay = min(self._reconnect_delay * 2, self._reconnect_max_delay)
            delay = random.uniform(self._reconnect_min_delay, self._reconnect_delay)
        deadline = time.monotonic() + delay
        while not self._thread_terminate and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


class MqttSubscriber:
    def __init__(
        self,
        url: BrokerUrl | str,
        *,
        topics: Callable[[], Sequence[str]],
        on_message: Callable[[Received], None],
        client_id: str = "cityweave-ingest",
        node: str | None = None,
        receive_maximum: int = 20_000,
        keepalive: int = 30,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        clock: Clock | None = None,
        shared_group: str | None = None,
        announce: bool = True,
    ) -> None:
        self.url = BrokerUrl.parse(url) if isinstance(url, str) else url
        if shared_group is not None and (not shared_group or any(c in shared_group for c in "/+#")):
            raise ValueError(f"invalid shared subscription group {shared_group!r}")
        self.shared_group = shared_group
        self.topics = topics
        self.on_message = on_message
        self.client_id = client_id
        self.node = node or socket.gethostname()
        self.status_topic = STATUS_TOPIC.format(node=self.node)
        # Whether this client publishes the node's status (and holds its last will). A second
        # session of the same node (the safety session) must not: its stop would say "offline"
        # for an ingest that is still running.
        self.announce = announce
        self.receive_maximum = max(1, min(65_535, receive_maximum))
        self.keepalive = keepalive
        self.clock = clock or Clock()
        self._connected = threading.Event()
        self.on_bad_topic: Callable[[], None] | None = None
        self._subscribed: set[str] = set()
        # Bumped when a connection ends. A message received on an earlier connection is not
        # acknowledged on a later one: the broker has redelivered it there (DUP=1) and that copy
        # gets the PUBACK; a second PUBACK for the same packet id could acknowledge a *new*
        # message the broker has meanwhile given that id.
        self.epoch = 0
        self._ack_lock = threading.Lock()
        self.stale_acks = 0
        self.connects = 0
        self.last_error: str | None = None
        v5 = self.url.protocol == 5
        self.client = _Client(
            paho.CallbackAPIVersion.VERSION2, client_id=client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else False, manual_ack=True,
        )
        # paho's own queue of outgoing messages is small: we only publish our status.
        self.client.max_queued_messages_set(1000)
        self.client.reconnect_delay_set(min_delay=max(1, int(min_backoff)), max_delay=int(max_backoff))
        self.client._reconnect_min_delay = min_backoff  # float is fine for paho; the setter wants int
        if self.url.username:
            self.client.username_pw_set(self.url.username, self.url.password)
        if self.url.tls:
            self.client.tls_set_context(ssl.create_default_context())
        if announce:
            self.client.will_set(self.status_topic, b"offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.fast_on_message = self._on_publish

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (retrying with backoff) and run paho's network thread."""
        kwargs: dict[str, Any] = {"keepalive": self.keepalive}
        if self.url.protocol == 5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
            props.ReceiveMaximum = self.receive_maximum
            kwargs.update(clean_start=False, properties=props)
        self.client.connect_async(self.url.host, self.url.port, **kwargs)
        self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self) -> None:
        """Say offline, disconnect cleanly (the session stays: queued messages wait for us)."""
        if self._connected.is_set() and self.announce:
            try:
                self.client.publish(self.status_topic, b"offline", qos=1, retain=True).wait_for_publish(2)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()

    def _filters(self, topics: Sequence[str]) -> list[tuple[str, int]]:
        """QoS 1 filters; under a shared group ``$share/<group>/<filter>``, so that the broker
        hands each message to one of the ingest processes of the group."""
        prefix = f"$share/{self.shared_group}/" if self.shared_group else ""
        return [(prefix + topic, 1) for topic in topics]

    def resubscribe(self) -> int:
        """Subscribe to topics that appeared since the last connect (new bindings); returns how many."""
        if not self._connected.is_set():
            return 0
        new = sorted(set(self.topics()) - self._subscribed)
        if new:
            self.client.subscribe(self._filters(new))
            self._subscribed.update(new)
        return len(new)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Send a message (device commands): the registry's ``Publisher`` protocol. Raises
        ``ConnectionError`` when there is no broker connection to hand it to."""
        if not self._connected.is_set():
            raise ConnectionError(f"not connected to the MQTT broker {self.url}")
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"MQTT publish failed: {paho.error_string(info.rc)}")

    def ack(self, deliveries: Sequence[tuple[int, int]]) -> None:
        """PUBACK the ``(packet id, epoch)`` of a committed batch. Thread-safe (paho queues the
        packet and wakes its network thread). Deliveries of an earlier connection are skipped
        (see ``epoch``); their redelivered copies are acknowledged instead."""
        with self._ack_lock:
            current = [mid for mid, epoch in deliveries if epoch == self.epoch]
            self.stale_acks += len(deliveries) - len(current)
            self.client.ack_many(current)

    # -- paho callbacks (network thread) -----------------------------------------------------------
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.last_error = str(reason)
            log.warning("MQTT broker %s refused the connection: %s", self.url, reason)
            return
        self.connects += 1
        topics = sorted(set(self.topics()))
        if topics:
            client.subscribe(self._filters(topics))
        self._subscribed = set(topics)
        if self.announce:
            client.publish(self.status_topic, b"online", qos=1, retain=True)
        self._connected.set()
        log.info("connected to MQTT broker %s (session present: %s, %d subscriptions)",
                 self.url, flags.session_present, len(topics))

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._ack_lock:
            self.epoch += 1
        was = self._connected.is_set()
        self._connected.clear()
        if was:
            self.last_error = str(reason)
            log.warning("disconnected from MQTT broker %s: %s; reconnecting", self.url, reason)

    def _on_publish(self, topic_bytes: bytes, payload: bytes, mid: int | None, dup: bool) -> None:
        """The short path from :class:`_Client` (network thread): nothing may escape."""
        try:
            topic = topic_bytes.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("message dropped: topic is not UTF-8", extra={"reason": "bad_encoding"})
            if self.on_bad_topic is not None:
                self.on_bad_topic()
            if mid is not None:
                self.client.ack(mid, 1)
            return
        try:
            self.on_message(Received(topic, payload, mid, dup, self.clock.now(), self.epoch))
        except Exception:
            log.exception("could not queue the message on %s", topic)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        # An exception here would end paho's network thread: nothing may escape.
        mid = message.mid if message.qos > 0 else None  # QoS 0 has nothing to acknowledge
        try:
            topic = message.topic
        except UnicodeDecodeError:
            log.warning("message dropped: topic is not UTF-8", extra={"reason": "bad_encoding"})
            if self.on_bad_topic is not None:
                self.on_bad_topic()
            if mid is not None:
                client.ack(mid, message.qos)
            return
        try:
            self.on_message(Received(topic, message.payload, mid, bool(message.dup), self.clock.now(),
                                     self.epoch))
        except Exception:
            log.exception("could not queue the message on %s", topic)
