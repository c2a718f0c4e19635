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
from collections import Counter, OrderedDict
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
SAFETY_COPY = "safety_copy"  # the other MQTT session's copy of a message already processed
_TOPIC_CACHE_LIMIT = 100_000
_TRANSIENT = (OperationalError, InterfaceError)
_SMALL_BATCH = 32  # below this, a batch may linger for more messages when the queue is empty
# The safety lane: topics that have carried a life-safety reading (smoke, gas, CO, water leak,
# an emergency call, a fall: ``Capability.safety``) skip the queue of ordinary telemetry, so a
# smoke report never waits behind thousands of meter readings. A topic joins the lane when the
# worker first decodes such a reading from it; the lane is small and, if ever full, its messages
# simply take the ordinary queue.
SAFETY_CAPABILITIES = frozenset(name for name, capability in CAPABILITIES.items() if capability.safety)
SAFETY_LANE_SIZE = 1_000
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
    # The client id of the MQTT session it came through, when that is not the pipeline's own
    # (``client_id``): the safety session's messages are acknowledged by their own subscriber and
    # their receipts are kept under its client id (packet ids are per session).
    session: str | None = None


Acker = Callable[[Sequence[tuple[int, int]]], None]  # (packet id, connection epoch)
CopyKey = tuple[str, str]  # (topic, digest of topic and payload)
MAIN, SAFETY = "main", "safety"  # the two sides of SafetyCopies


class SafetyCopies:
    """Which messages one MQTT session processed whose copy the other session still owes us.

    With a safety session (``IngestService``) a life-safety topic is subscribed twice: exactly by
    the safety session, and through the main session's wildcards, which cannot leave it out. Each
    message on it therefore arrives twice, usually the safety copy first (it does not queue behind
    the main session's backlog in the broker), but on an idle system either may come first. The
    copy processed first records ``(topic, digest)`` here for the *other* side; when the other
    side's copy comes, its :meth:`count` is above 0, the worker decrements it (``Pipeline._is_copy``)
    and the copy is acknowledged without being processed. Counts, not a set: a detector repeating an identical payload sends
    identical messages, and each must balance one copy.

    Never losing a message matters more than never storing one twice, so an entry is recorded only
    for a copy that is sure or likely to come: the main session gets every message (wildcards), so
    the safety side always records; the main side records only when the safety session was
    subscribed to the topic before the message reached us (``Pipeline.twin_possible``). An entry
    whose copy never comes (the safety subscription took effect after the message was published;
    a shared subscription gave the main copy to another process) can at worst make the next
    identical message on that topic skip its copy on *that* side, and the other side processes
    it: delayed, not lost. Entries expire after ``ttl`` and the oldest are forgotten beyond
    ``limit``; both only make a later copy be processed a second time. After a restart the record
    is empty: a message processed by the safety session before the restart whose main copy is still
    queued in the broker is processed again (stored twice, never lost).

    Used by the worker thread only (no lock)."""

    def __init__(self, *, ttl: float = 3600.0, limit: int = 100_000) -> None:
        self.ttl = ttl
        self.limit = limit
        self._counts: OrderedDict[tuple[str, str, str], tuple[int, float]] = OrderedDict()  # oldest first
        self.topics: Counter[str] = Counter()  # entries per topic: most messages need no digest lookup

    def count(self, side: str, key: CopyKey) -> int:
        """How many copies of ``key`` that ``side`` still owes."""
        entry = self._counts.get((side, *key))
        return 0 if entry is None or entry[1] < time.monotonic() else entry[0]

    def apply(self, changes: Counter[tuple[str, str, str]]) -> None:
        """Add the net changes of a committed batch (``(side, topic, digest) -> ±n``). Only after
        the commit: a batch that is retried must not count its copies twice."""
        now = time.monotonic()
        for full, delta in changes.items():
            if not delta:
                continue
            entry = self._counts.pop(full, None)
            if entry is not None:
                self.topics[full[1]] -= 1
            count = delta + (entry[0] if entry is not None and entry[1] >= now else 0)
            if count > 0:
                self._counts[full] = (count, now + self.ttl)  # at the end: the newest
                self.topics[full[1]] += 1
            if self.topics[full[1]] <= 0:
                del self.topics[full[1]]
        while self._counts:  # expired, or beyond the limit: forget the oldest
            full, (_count, expires) = next(iter(self._counts.items()))
            if expires >= now and len(self._counts) <= self.limit:
                break
            del self._counts[full]
            self.topics[full[1]] -= 1
            if self.topics[full[1]] <= 0:
                del self.topics[full[1]]

    def __len__(self) -> int:
        return len(self._counts)


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
        self.safety_lane: queue.Queue[Inbound] = queue.Queue(maxsize=SAFETY_LANE_SIZE)
        self.safety_topics: set[str] = set()
        self.batch_size = batch_size
        self.batch_seconds = batch_ms / 1000
        # How long a small batch waits for companions when the queue runs dry (see _take).
        self.linger_seconds = min(self.batch_seconds, _MAX_LINGER_SECONDS)
        self.heartbeat = heartbeat
        self.acker = acker  # PUBACKs of the main session (``client_id``)
        # Other MQTT sessions (the safety session) by client id: their acknowledgements, and
        # whether the safety session was subscribed to a topic before a main-session message on it
        # arrived (``(topic, received_at)``: its copy may come; see SafetyCopies).
        self.ackers: dict[str, Acker] = {}
        self.twin_possible: Callable[[str, datetime], bool] | None = None
        self.safety_connected: Callable[[], bool] = lambda: False
        self.copies = SafetyCopies()
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
        if item.topic in self.safety_topics and not (
                item.transport == "mqtt" and self.twin_possible is not None and self.safety_connected()
                and self.twin_possible(item.topic, item.received_at)):
            # (An MQTT message on a topic the safety session is connected and subscribed to is the
            # slow copy: the safety session's copy takes the lane, this one the ordinary queue, so
            # the lane stays free for what is urgent.)
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

    def submit_safety(self, item: Inbound) -> bool:
        """Queue a message of the safety session: always the safety lane, never behind the ordinary
        queue. Blocks while the lane is full (the safety session's Receive Maximum is the lane's
        size, so it hardly can be); False once the pipeline is stopping (left unacknowledged)."""
        if not self._accepting:
            return False
        self.metrics.received_one(item.transport)
        while True:
            try:
                self.safety_lane.put(item, timeout=0.5)
                break
            except queue.Full:
                if not self._accepting:
                    return False
        if self.queue.empty():
            with contextlib.suppress(queue.Full):
                self.queue.put_nowait(_WAKE)
        return True

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
        # A message on a topic with copies outstanding is most likely the second copy of one
        # already processed: decoded only if it turns out not to be (in ``_store``).
        later = {id(item) for item in batch if item.decoded is None and item.topic in self.copies.topics}
        decoded = [(item, None if id(item) in later else item.decoded or self._decode_logged(item))
                   for item in batch]
        stored = self._store_with_retries(decoded, later)
        deliveries: dict[str | None, list[tuple[int, int]]] = {}
        for item in batch:
            if item.mid is not None:
                deliveries.setdefault(item.session, []).append((item.mid, item.epoch))
        for session, pairs in deliveries.items():
            acker = self.acker if session is None else self.ackers.get(session)
            if acker is not None:
                acker(pairs)
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

    def _store_with_retries(self, decoded: list[tuple[Inbound, DecodeResult | None]],
                            later: set[int] | None = None) -> int:
        delay = 0.05
        attempts = 0
        while True:
            try:
                return self._store(decoded, later or set())
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
                    return sum(self._store_with_retries([one], later) for one in decoded)
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 5.0)

    def _store(self, decoded: list[tuple[Inbound, DecodeResult | None]], later: set[int]) -> int:
        """One transaction: receipts checked, readings and events written, receipts recorded.
        Messages in ``later`` are decoded here, once known not to be copies (``_is_copy``)."""
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
            # Receipts are per MQTT session: packet ids are.
            duplicates: dict[str, set[int]] = {}
            if session is not None:
                candidates: dict[str, list[tuple[int, str]]] = {}
                for item, _ in decoded:
                    if item.dup and item.mid is not None:
                        candidates.setdefault(item.session or self.client_id, []).append(
                            (item.mid, digests[id(item)]))
                duplicates = {client: receipts.already_stored(session, client, pairs)
                              for client, pairs in candidates.items()}
            in_batch: set[tuple[str, int, str]] = set()
            readings: list[Reading] = []
            events = DeviceEvents()
            new_receipts: dict[str, list[tuple[int, str]]] = {}
            copies: Counter[tuple[str, str, str]] = Counter()  # applied to self.copies after the commit
            for item, result in decoded:
                client = item.session or self.client_id
                if item.mid is not None:
                    key = (item.mid, digests[id(item)])
                    if item.dup and (item.mid in duplicates.get(client, ()) or (client, *key) in in_batch):
                        drops.append(DUPLICATE)
                        continue
                    in_batch.add((client, *key))
                    new_receipts.setdefault(client, []).append(key)
                if item.transport == "mqtt" and self._is_copy(item, digests, copies):
                    drops.append(SAFETY_COPY)
                    continue
                if id(item) in later:
                    if item.decoded is None:  # kept for a retry of the batch
                        item.decoded = self._decode_logged(item)
                    result = item.decoded
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
            if session is not None:
                for client, entries in new_receipts.items():
                    receipts.record(session, client, entries, now)
        if copies:
            self.copies.apply(copies)
        for reason in drops:
            self.metrics.drop(reason)
        return len(readings)

    def _is_copy(self, item: Inbound, digests: dict[int, str],
                 changes: Counter[tuple[str, str, str]]) -> bool:
        """Whether ``item`` is the second copy of a message the other MQTT session brought first
        (see :class:`SafetyCopies`); if it is the first, the other side's copy is expected.
        ``changes`` collects this batch's changes, seen by the messages after it in the batch."""
        safety = item.session is not None
        if not safety and item.topic not in self.copies.topics and not changes and (
                self.twin_possible is None or not self.twin_possible(item.topic, item.received_at)):
            return False  # the common case: an ordinary topic, no digest needed
        digest_ = digests.get(id(item)) or receipts.digest(item.topic, item.payload)
        side, other = (SAFETY, MAIN) if safety else (MAIN, SAFETY)
        mine = (side, item.topic, digest_)
        if self.copies.count(side, (item.topic, digest_)) + changes[mine] > 0:
            changes[mine] -= 1
            return True
        if safety or (self.twin_possible is not None and self.twin_possible(item.topic, item.received_at)):
            changes[(other, item.topic, digest_)] += 1
        return False

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
