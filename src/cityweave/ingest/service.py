"""IngestService: broker (embedded or external) + subscriber + pipeline + sinks, one start/stop.

``serve``/``demo`` build one with the real telemetry store and device registry behind the sink
protocols; tests and the crash-test subprocess build one with their own sinks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
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
from cityweave.ingest.pipeline import Inbound, Pipeline
from cityweave.ingest.sinks import DeviceEventSink, ReadingSink

log = logging.getLogger("cityweave.ingest")


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
        self.pipeline.start()
        self.subscriber.start()
        self._refresh_stop.clear()
        self._refresh = threading.Thread(target=self._refresh_loop, name="cityweave-ingest-topics", daemon=True)
        self._refresh.start()
        log.info("ingest from %s", self.subscriber.url)

    def _on_mqtt(self, message: Received) -> None:
        self.pipeline.submit(Inbound(message.topic, message.payload, message.received_at,
                                     mid=message.mid, dup=message.dup, epoch=message.epoch))

    def _refresh_loop(self) -> None:
        # New bindings (Home Assistant entities) bring new topics.
        while not self._refresh_stop.wait(5.0):
            try:
                if self.subscriber is not None:
                    self.subscriber.resubscribe()
            except Exception:
                log.exception("could not renew subscriptions")

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
        }


def _nobody(_username: str, _password: str) -> bool:
    return False


def _seconds(n: int) -> Any:
    from datetime import timedelta

    return timedelta(seconds=n)
