"""IngestService: broker (embedded or external) + subscribers + pipeline + sinks, one start/stop.

``serve``/``demo`` build one with the real telemetry store and device registry behind the sink
protocols; tests and the crash-test subprocess build one with their own sinks.

Two MQTT sessions (``ingest_safety_session``, on by default): the main one subscribes to the
adapters' wildcard filters; the *safety session* (``<client id>-safety``) subscribes to the exact
topics that have carried a life-safety reading (``Pipeline.safety_topics``) and hands their
messages straight to the pipeline's safety lane. One MQTT session delivers in order, so when the
ingest is overloaded a smoke report queues in the broker behind the main session's backlog; the
safety session has no such backlog. The main session still gets those messages too (wildcards
cannot leave a topic out): ``pipeline.SafetyCopies`` processes whichever copy comes first and
acknowledges the other without processing it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cityweave.clock import Clock
from cityweave.config import Settings
from cityweave.db.engine import Database
from cityweave.devices.adapters import VendorAdapter, create_all
from cityweave.devices.binding import DeviceDirectory
from cityweave.devices.metrics import DecodeMetrics
from cityweave.ingest.broker import EmbeddedBroker
from cityweave.ingest.heartbeat import HeartbeatTracker
from cityweave.ingest.metrics import IngestMetrics
from cityweave.ingest.mqtt_client import MqttSubscriber, Received
from cityweave.ingest.pipeline import SAFETY_LANE_SIZE, Inbound, Pipeline
from cityweave.ingest.sinks import DeviceEventSink, ReadingSink

log = logging.getLogger("cityweave.ingest")

SAFETY_SUFFIX = "-safety"  # the safety session's client id: the main one's with this suffix
# Exact subscriptions of the safety session. Each is a few hundred bytes in the broker and a
# SUBSCRIBE entry; beyond this many safety topics (detectors) per ingest process, further ones keep
# the in-process lane only (run several ingest processes, each learns the topics it receives).
SAFETY_SUBSCRIPTIONS_LIMIT = 10_000


class IngestService:
    def __init__(
        self,
        settings: Settings,
        *,
        directory: DeviceDirectory,
        readings: ReadingSink,
        events: DeviceEventSink | None = None,
        db: Database | None = None,
        clock: Clock | None = None,
        node: str | None = None,
        adapters: list[VendorAdapter] | None = None,
        device_login: Callable[[str, str], bool] | None = None,
    ) -> None:
        self.settings = settings
        # With CITYWEAVE_MQTT_DEVICE_AUTH the embedded broker asks this for every device login.
        self.device_login = device_login
        self.clock = clock or Clock()
        self.metrics = IngestMetrics(DecodeMetrics())
        self.adapters = adapters if adapters is not None else create_all(
            directory=directory, metrics=self.metrics.decode)
        self.broker: EmbeddedBroker | None = None
        self.pipeline = Pipeline(
            self.adapters, readings, events, db=db, client_id=settings.mqtt_client_id, clock=self.clock,
            metrics=self.metrics, queue_size=settings.ingest_queue_size,
            batch_size=settings.ingest_batch_size, batch_ms=settings.ingest_batch_ms,
            heartbeat=HeartbeatTracker(_seconds(settings.ingest_heartbeat_seconds)),
        )
        self.node = node
        self.subscriber: MqttSubscriber | None = None
        self.safety: MqttSubscriber | None = None
        # Topics of the safety session and when each was first subscribed (see _twin_possible).
        self._safety_since: dict[str, datetime] = {}
        self._safety_lock = threading.Lock()
        self._safety_full_logged = False
        self._refresh_stop = threading.Event()
        self._refresh: threading.Thread | None = None

    def topics(self) -> list[str]:
        found: list[str] = []
        for adapter in self.adapters:
            found += adapter.subscriptions() + adapter.discovery_topics()
        return sorted(set(found))

    def start(self) -> None:
        url = self.settings.mqtt_url
        if not url:
            login = self.device_login if self.settings.mqtt_device_auth else None
            if self.settings.mqtt_device_auth and login is None:
                login = _nobody  # only CityWeave's own accounts
            self.broker = EmbeddedBroker(port=self.settings.mqtt_embedded_port, login=login)
            self.broker.start()
            url = self.broker.url_for(self.settings.mqtt_client_id)
        self.subscriber = MqttSubscriber(
            url, topics=self.topics, on_message=self._on_mqtt, client_id=self.settings.mqtt_client_id,
            node=self.node, receive_maximum=self.settings.ingest_queue_size, clock=self.clock,
            shared_group=self.settings.mqtt_shared_group,
        )
        self.subscriber.on_bad_topic = lambda: self.metrics.drop("bad_encoding")
        self.pipeline.acker = self.subscriber.ack
        self.metrics.connected = lambda: self.subscriber is not None and self.subscriber.connected
        if self.settings.ingest_safety_session:
            self.safety = self._safety_subscriber(url)
        self.pipeline.start()
        self.subscriber.start()
        if self.safety is not None:
            self.safety.start()
        self._refresh_stop.clear()
        self._refresh = threading.Thread(target=self._refresh_loop, name="cityweave-ingest-topics", daemon=True)
        self._refresh.start()
        log.info("ingest from %s", self.subscriber.url)

    def _safety_subscriber(self, main_url: str) -> MqttSubscriber:
        """The safety session: its own client id and persistent session (QoS 1), so its messages
        survive a restart like the main session's and their receipts (per client id) make a
        redelivery after a crash harmless. Under a shared subscription group it shares in a group
        of its own (``<group>-safety``): each safety message then goes to one safety session of the
        group rather than to every ingest process; its main copy may land in another process,
        which cannot know it was processed, and is then processed again (stored twice, never lost;
        docs/ingest.md)."""
        client_id = self.settings.mqtt_client_id + SAFETY_SUFFIX
        url = self.broker.url_for(client_id) if self.broker is not None else main_url
        group = self.settings.mqtt_shared_group
        safety = MqttSubscriber(
            url, topics=self._safety_topics, on_message=self._on_safety, client_id=client_id, node=self.node,
            receive_maximum=SAFETY_LANE_SIZE, clock=self.clock,
            shared_group=f"{group}{SAFETY_SUFFIX}" if group else None, announce=False,
        )
        safety.on_bad_topic = lambda: self.metrics.drop("bad_encoding")
        self.pipeline.ackers[client_id] = safety.ack
        self.pipeline.twin_possible = self._twin_possible
        self.pipeline.safety_connected = lambda: safety.connected
        return safety

    def _safety_topics(self) -> list[str]:
        """The safety session's subscriptions: the pipeline's learned safety topics, those subscribed
        first kept, at most ``SAFETY_SUBSCRIPTIONS_LIMIT``. Called by the subscriber right before it
        subscribes (on connect and on each renewal), which is when a topic's time is noted."""
        with self._safety_lock:
            for topic in tuple(self.pipeline.safety_topics):
                if topic in self._safety_since:
                    continue
                if len(self._safety_since) >= SAFETY_SUBSCRIPTIONS_LIMIT:
                    if not self._safety_full_logged:
                        self._safety_full_logged = True
                        log.warning("safety session: %d topics, no more subscribed; further safety topics "
                                    "use the in-process lane only", SAFETY_SUBSCRIPTIONS_LIMIT)
                    break
                self._safety_since[topic] = self.clock.now()
            return list(self._safety_since)

    def _twin_possible(self, topic: str, received_at: datetime) -> bool:
        """Whether the safety session may bring a copy of a main-session message: it was
        subscribed to the topic before the message reached us. (Not "surely": a message published
        just before the subscription took effect can arrive after it. A copy expected in vain only
        delays a later identical message on that topic; see ``SafetyCopies``.)"""
        since = self._safety_since.get(topic)
        return since is not None and since <= received_at

    def _on_mqtt(self, message: Received) -> None:
        self.pipeline.submit(Inbound(message.topic, message.payload, message.received_at,
                                     mid=message.mid, dup=message.dup, epoch=message.epoch))

    def _on_safety(self, message: Received) -> None:
        assert self.safety is not None
        self.pipeline.submit_safety(Inbound(message.topic, message.payload, message.received_at,
                                            mid=message.mid, dup=message.dup, epoch=message.epoch,
                                            session=self.safety.client_id))

    def _refresh_loop(self) -> None:
        # New bindings (Home Assistant entities) bring new topics; new safety topics are learned
        # by the worker.
        while not self._refresh_stop.wait(5.0):
            for subscriber in (self.subscriber, self.safety):
                try:
                    if subscriber is not None:
                        subscriber.resubscribe()
                except Exception:
                    log.exception("could not renew subscriptions of %s", subscriber.client_id if subscriber else "?")

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Device commands out through the same connection (the registry's ``Publisher``)."""
        if self.subscriber is None:
            raise ConnectionError("ingest is not running")
        self.subscriber.publish(topic, payload, qos=qos, retain=retain)

    def wait_connected(self, timeout: float) -> bool:
        return self.subscriber is not None and self.subscriber.wait_connected(timeout)

    def stop(self) -> None:
        """Finish queued work and acknowledge it, then disconnect; the session keeps the rest."""
        self._refresh_stop.set()
        self.pipeline.stop()
        if self.subscriber is not None:
            self.subscriber.stop()
        if self.safety is not None:
            self.safety.stop()
        if self.broker is not None:
            self.broker.stop()

    def status(self) -> dict[str, Any]:
        """For /readyz: is the broker connected, how full is the queue."""
        return {
            "mqtt": str(self.subscriber.url) if self.subscriber else None,
            "embedded_broker": self.broker is not None,
            "connected": bool(self.subscriber and self.subscriber.connected),
            "queue_depth": self.pipeline.queue.qsize(),
            "queue_size": self.pipeline.queue.maxsize,
            "safety_session": None if self.safety is None else {
                "connected": self.safety.connected, "topics": len(self._safety_since)},
        }


def _nobody(_username: str, _password: str) -> bool:
    return False


def _seconds(n: int) -> Any:
    from datetime import timedelta

    return timedelta(seconds=n)
