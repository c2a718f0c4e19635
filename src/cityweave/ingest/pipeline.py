"""The bounded queue between the transports and the store, and the worker that batches.

Why batches: SQLite (and PostgreSQL) pay per transaction, not per row, so the worker takes
everything that is queued, up to ``batch_size`` messages, without waiting when there is a backlog
(a small batch on an idle system lingers at most ``min(batch_ms, 2 ms)`` for companions; see
``_take``), decodes them, hands all readings to the :class:`~cityweave.ingest.sinks.ReadingSink`
in one call, the device events to the :class:`~cityweave.ingest.sinks.DeviceEventSink` in another,
writes delivery receipts, commits once and only then acknowledges every MQTT message of the batch.

Why a bounded queue: memory must not grow with the load. ``submit`` blocks when the queue is full.
The MQTT transport calls it from paho's network thread, so a full queue stops that thread reading
the socket; the broker then keeps the messages (it may not send more than the Receive Maximum we
announced without acknowledgements anyway). Unacknowledged messages stay the broker's
responsibility, which is what makes a crash lose nothing. HTTP ingest submits with a timeout and
answers 503 when the queue stays full.

A store failure never drops data silently: transient database errors (locked, connection lost)
are retried with backoff for as long as they last, stalling the queue (back-pressure again); any
other error makes the worker retry the messages one by one and drop only those the store refuses
alone, each counted as ``store_error``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from cityweave.clock import Clock
from cityweave.db.engine import Database
from cityweave.devices.adapters import VendorAdapter
from cityweave.devices.capabilities import CAPABILITIES
from cityweave.devices.reading import AvailabilityChange, DecodeResult, Reading
from cityweave.devices.reasons import Reason
from cityweave.ingest import receipts
from cityweave.ingest.heartbeat import HeartbeatTracker
from cityweave.ingest.metrics import IngestMetrics
from cityweave.ingest.sinks import DeviceEvents, DeviceEventSink, ReadingSink

log = logging.getLogger("cityweave.ingest")

DUPLICATE = "duplicate"
STORE_ERROR = "store_error"
_TOPIC_CACHE_LIMIT = 100_000
_TRANSIENT = (OperationalError, InterfaceError)
_SMALL_BATCH = 32  # below this, a batch may linger for more messages when the queue is empty
# The safety lane: topics that have carried a life-safety reading (smoke, gas, CO, water leak,
# an emergency call, a fall: ``Capability.safety``) skip the queue of ordinary telemetry, so a
# smoke report never waits behind thousands of meter readings. A topic joins the lane when the
# worker first decodes such a reading from it; the lane is small and, if ever full, its messages
# simply take the ordinary queue.
SAFETY_CAPABILITIES = frozenset(name for name, capability in CAPABILITIES.items() if capability.safety)
_SAFETY_LANE_SIZE = 1_000
_SAFETY_TOPICS_LIMIT = 100_000
_WAKE = None  # put in the ordinary queue to wake a worker that waits there
_MAX_LINGER_SECONDS = 0.002


@dataclass(slots=True)
class Inbound:
    """One message from a transport. MQTT messages carry their packet id for the acknowledgement;
    HTTP messages arrive decoded (the HTTP answer needs the verdict) and have none."""

    topic: str
    payload: bytes
    received_at: datetime
    mid: int | None = None
    dup: bool = False
    transport: str = "mqtt"
    decoded: DecodeResult | None = None
    epoch: int = 0  # the MQTT connection it arrived on


Acker = Callable[[Sequence[tuple[int, int]]], None]  # (packet id, connection epoch)


class Pipeline:
    def __init__(
        self,
        adapters: list[VendorAdapter],
        readings: ReadingSink,
        events: DeviceEventSink | None = None,
        *,
        db: Database | None = None,
        client_id: str = "cityweave-ingest",
        clock: Clock | None = None,
        metrics: IngestMetrics | None = None,
        queue_size: int = 20_000,
        batch_size: int = 2_000,
        batch_ms: int = 50,
        heartbeat: HeartbeatTracker | None = None,
        acker: Acker | None = None,
    ) -> None:
        self.adapters = adapters
        self.readings = readings
        self.events = events
        self.db = db
        self.client_id = client_id
        self.clock = clock or Clock()
        self.metrics = metrics or IngestMetrics()
        self.queue: queue.Queue[Inbound | None] = queue.Queue(maxsize=queue_size)
        self.safety_lane: queue.Queue[Inbound] = queue.Queue(maxsize=_SAFETY_LANE_SIZE)
        self.safety_topics: set[str] = set()
        self.batch_size = batch_size
        self.batch_seconds = batch_ms / 1000
        # How long a small batch waits for companions when the queue runs dry (see _take).
        self.linger_seconds = min(self.batch_seconds, _MAX_LINGER_SECONDS)
        self.heartbeat = heartbeat
        self.acker = acker
        self.metrics.queue_depth = self.queue.qsize
        self._topic_cache: dict[str, VendorAdapter | None] = {}
        self._cache_revision = -1
        self._logged_topics: set[str] = set()
        self._accepting = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat_check = 0.0

    # -- transport side --------------------------------------------------------------------------
    def submit(self, item: Inbound, *, timeout: float | None = None) -> bool:
        """Queue a message; blocks while the queue is full (``timeout``: give up, return False).
        False also once the pipeline is stopping: MQTT leaves such a message unacknowledged, so
        the broker delivers it again after the restart."""
        if not self._accepting:
            return False
        self.metrics.received_one(item.transport)
        if item.topic in self.safety_topics:
            try:
                self.safety_lane.put_nowait(item)
                if self.queue.empty():
                    with contextlib.suppress(queue.Full):
                        self.queue.put_nowait(_WAKE)
                return True
            except queue.Full:
                pass  # the lane is full: the ordinary queue takes it
        while True:
            try:
                self.queue.put(item, timeout=0.5 if timeout is None else timeout)
                return True
            except queue.Full:
                if timeout is not None or not self._accepting:
                    return False

    def adapter_for(self, topic: str) -> VendorAdapter | None:
        """The adapter subscribed to ``topic``, cached until a binding changes."""
        revision = self.adapters[0].directory.revision if self.adapters else 0
        if revision != self._cache_revision or len(self._topic_cache) > _TOPIC_CACHE_LIMIT:
            self._topic_cache = {}
            self._cache_revision = revision
        try:
            return self._topic_cache[topic]
        except KeyError:
            adapter = next((a for a in self.adapters if a.handles(topic)), None)
            self._topic_cache[topic] = adapter
            return adapter

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> DecodeResult | None:
        adapter = self.adapter_for(topic)
        return None if adapter is None else adapter.decode(topic, payload, received_at)

    # -- worker ----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._accepting = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="cityweave-ingest-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Refuse new messages, process what is queued, then end the worker."""
        self._accepting = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch:
                self.process(batch)
            elif self._stop.is_set():
                return
            if self.heartbeat is not None and time.monotonic() - self._last_heartbeat_check >= 1.0:
                self._last_heartbeat_check = time.monotonic()
                self.check_heartbeats()

    def _take(self) -> list[Inbound]:
        """The next batch: whatever is queued (up to ``batch_size``), without waiting when there
        is a backlog. Only a small batch (the queue ran dry: light load) waits up to ``linger``
        for companions, so an idle system commits a lone alarm within milliseconds and a busy
        one makes large batches by itself: messages pile up while the previous batch is
        processed, so batch size follows the load and latency stays about one batch's work."""
        urgent = self._take_safety_lane()
        if urgent:
            return urgent
        try:
            first = self.queue.get(timeout=0.2)
        except queue.Empty:
            return []
        if first is _WAKE:
            return self._take_safety_lane()
        batch = [first]
        get = self.queue.get_nowait
        lane = self.safety_lane
        deadline = 0.0
        while len(batch) < self.batch_size:
            if not lane.empty():
                break  # commit what we have; the safety lane goes next
            try:
                item = get()
                if item is not _WAKE:
                    batch.append(item)
                continue
            except queue.Empty:
                pass
            if len(batch) >= _SMALL_BATCH or self._stop.is_set():
                break
            now = time.monotonic()
            if not deadline:
                deadline = now + self.linger_seconds
            if now >= deadline:
                break
            # Sleep rather than block on the queue: a blocked get() is woken by every put(),
            # and that ping-pong of the GIL between the network thread and this one costs
            # more than the messages themselves.
            time.sleep(min(deadline - now, 0.0005))
        return batch

    def _take_safety_lane(self) -> list[Inbound]:
        batch: list[Inbound] = []
        while len(batch) < self.batch_size:
            try:
                batch.append(self.safety_lane.get_nowait())
            except queue.Empty:
                break
        return batch

    def _learn_safety_topic(self, topic: str, result: DecodeResult) -> None:
        if topic not in self.safety_topics and len(self.safety_topics) < _SAFETY_TOPICS_LIMIT and any(
                r.capability in SAFETY_CAPABILITIES for r in result.readings):
            self.safety_topics.add(topic)

    # -- one batch -------------------------------------------------------------------------------
    def process(self, batch: list[Inbound]) -> None:
        """Decode, store, commit, acknowledge. Synchronous, so tests can call it directly."""
        started = time.perf_counter()
        decoded = [(item, item.decoded or self._decode_logged(item)) for item in batch]
        stored = self._store_with_retries(decoded)
        deliveries = [(item.mid, item.epoch) for item in batch if item.mid is not None]
        if deliveries and self.acker is not None:
            self.acker(deliveries)
        oldest = min(item.received_at for item in batch)
        self.metrics.batch_done(len(batch), stored, time.perf_counter() - started,
                                (self.clock.now() - oldest).total_seconds())

    def _decode_logged(self, item: Inbound) -> DecodeResult | None:
        result = self.decode(item.topic, item.payload, item.received_at)
        if result is None and len(self._logged_topics) < 1000 and item.topic not in self._logged_topics:
            self._logged_topics.add(item.topic)
            log.warning("message dropped: no adapter subscribes to %s", item.topic,
                        extra={"topic": item.topic, "reason": str(Reason.UNEXPECTED_TOPIC)})
        return result

    def _store_with_retries(self, decoded: list[tuple[Inbound, DecodeResult | None]]) -> int:
        delay = 0.05
        attempts = 0
        while True:
            try:
                return self._store(decoded)
            except _TRANSIENT as exc:
                attempts += 1
                self.metrics.store_retries += 1
                log.warning("store unavailable (%s), batch of %d retried", type(exc).__name__, len(decoded))
            except Exception:
                attempts += 1
                self.metrics.store_retries += 1
                if len(decoded) == 1 or attempts >= 2:
                    if len(decoded) == 1:
                        log.exception("store refused a message on %s; dropped", decoded[0][0].topic)
                        self.metrics.drop(STORE_ERROR)
                        return 0
                    log.exception("store refused a batch of %d; retrying one by one", len(decoded))
                    return sum(self._store_with_retries([one]) for one in decoded)
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 5.0)

    def _store(self, decoded: list[tuple[Inbound, DecodeResult | None]]) -> int:
        """One transaction: receipts checked, readings and events written, receipts recorded."""
        now = self.clock.now()
        context: Any = self.db.session() if self.db is not None else nullcontext(None)
        drops: list[str] = []
        with context as session:
            if session is not None and self.db is not None:
                # SQLite: BEGIN IMMEDIATE. With several ingest processes (shared subscription),
                # or a place lookup or rules reading before the first write, a deferred
                # transaction would fail with "database is locked" instead of waiting its turn.
                self.db.write_first(session)
            digests = {id(item): receipts.digest(item.topic, item.payload)
                       for item, _ in decoded if item.mid is not None}
            duplicates: set[int] = set()
            if session is not None:
                duplicates = receipts.already_stored(
                    session, self.client_id,
                    [(item.mid, digests[id(item)]) for item, _ in decoded if item.dup and item.mid is not None])
            in_batch: set[tuple[int, str]] = set()
            readings: list[Reading] = []
            events = DeviceEvents()
            new_receipts: list[tuple[int, str]] = []
            for item, result in decoded:
                if item.mid is not None:
                    key = (item.mid, digests[id(item)])
                    if item.dup and (item.mid in duplicates or key in in_batch):
                        drops.append(DUPLICATE)
                        continue
                    in_batch.add(key)
                    new_receipts.append(key)
                if result is None:
                    drops.append(str(Reason.UNEXPECTED_TOPIC))
                    continue
                if result.dropped:
                    drops.append(str(result.rejections[0].reason))
                self._collect(result, readings, events)
                if result.readings:
                    self._learn_safety_topic(item.topic, result)
            if readings:
                self.readings.write_batch(session, readings)
            if events and self.events is not None:
                self.events.write_events(session, events)
            if session is not None and new_receipts:
                receipts.record(session, self.client_id, new_receipts, now)
        for reason in drops:
            self.metrics.drop(reason)
        return len(readings)

    def _collect(self, result: DecodeResult, readings: list[Reading], events: DeviceEvents) -> None:
        readings.extend(result.readings)
        at = result.received_at
        for device in result.discovered:
            events.discovered.append((device, at))
        for ack in result.acks:
            events.acks.append((ack, at))
        for change in result.availability:
            events.availability.append((change, at))
            if self.heartbeat is not None and change.device_key and not change.online:
                self.heartbeat.went_offline(change.device_key)
        if result.device_key and (result.readings or any(c.online for c in result.availability)):
            previous = events.seen.get(result.device_key)
            events.seen[result.device_key] = at if previous is None or at > previous else previous
            back = self.heartbeat is not None and self.heartbeat.seen(result.device_key, result.address or "", at)
            if back and not result.availability:
                events.availability.append(
                    (AvailabilityChange(result.address or "", True, result.device_key), at))

    def check_heartbeats(self) -> list[AvailabilityChange]:
        """Report devices silent past the timeout as offline (one transaction)."""
        if self.heartbeat is None:
            return []
        now = self.clock.now()
        changes = self.heartbeat.expired(now)
        if changes and self.events is not None:
            for change in changes:
                log.info("device %s silent for %s: offline", change.device_key, self.heartbeat.timeout)
            context: Any = self.db.session() if self.db is not None else nullcontext(None)
            try:
                with context as session:
                    self.events.write_events(session, DeviceEvents(availability=[(c, now) for c in changes]))
            except Exception:
                log.exception("could not store heartbeat timeouts")
        return changes
