"""The safety session: a second MQTT session on the exact topics that carried life-safety readings,
so a smoke report overtakes the main session's backlog in the broker; its main-session copy is
acknowledged without being processed (``pipeline.SafetyCopies``). Real Mosquitto (the machine's,
and a private one with a deep queue for the backlog), and the embedded broker."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from cityweave.clock import ManualClock
from cityweave.config import Settings
from cityweave.devices.adapters import create_all
from cityweave.devices.binding import DeviceBinding, InMemoryDirectory
from cityweave.devices.metrics import DecodeMetrics
from cityweave.ingest.metrics import IngestMetrics
from cityweave.ingest.pipeline import MAIN, SAFETY, Inbound, Pipeline, SafetyCopies
from cityweave.ingest.service import IngestService
from cityweave.ingest.sinks import MemorySink
from tests.ingest.support import (
    PrivateMosquitto,
    Publisher,
    forget_session,
    free_port,
    native_state,
    shared_mosquitto,
    unique,
    wait_until,
)
from tests.ingest.test_pipeline import NOW


def smoke(device: str, value: bool = True, number: int | None = None) -> tuple[str, bytes]:
    """A native smoke report; with ``number``, its endpoint and ``seq`` make it unique."""
    reading: dict[str, object] = {"capability": "smoke", "value": value}
    body: dict[str, object] = {"v": 1, "kind": "state", "device": device, "readings": [reading]}
    if number is not None:
        reading["endpoint"] = f"s{number}"
        body["seq"] = number
    return f"cityweave/v1/{device}/state", json.dumps(body).encode()


class OrderedSink(MemorySink):
    """Remembers the order in which readings reached the store; optionally slow (a busy store)."""

    def __init__(self, seconds_per_batch: float = 0.0) -> None:
        super().__init__()
        self.seconds_per_batch = seconds_per_batch

    def write_batch(self, session, readings) -> None:
        if self.seconds_per_batch:
            time.sleep(self.seconds_per_batch)
        super().write_batch(session, readings)

    def smoke(self, device: str) -> list[object]:
        return [r.value for r in list(self.readings) if r.device_key == device and r.capability == "smoke"]


def start(settings: Settings, devices: list[str], sink: OrderedSink) -> IngestService:
    directory = InMemoryDirectory([DeviceBinding(device_key=d, adapter="native", address=d) for d in devices])
    service = IngestService(settings, directory=directory, readings=sink, events=sink, node=settings.mqtt_client_id)
    service.start()
    assert service.wait_connected(10), "no connection to the broker"
    return service


def learn(service: IngestService, publisher: Publisher, device: str, sink: OrderedSink) -> None:
    """One smoke report (value false) teaches the pipeline the topic; then the safety session
    subscribes to it (as the refresh loop would within 5 s) and the SUBACK is waited for."""
    topic, _ = smoke(device)
    publisher.publish([smoke(device, False)])
    assert wait_until(lambda: topic in service.pipeline.safety_topics, 10)
    assert service.safety is not None and service.safety.wait_connected(10)
    service.safety.resubscribe()
    assert service.status()["safety_session"]["topics"] == 1
    time.sleep(0.5)  # SUBACK
    assert sink.smoke(device) == [False]


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    broker = PrivateMosquitto(tmp_path / "broker")  # a deep per-client queue: the backlog waits there
    broker.start()
    yield broker
    broker.stop()


def test_a_smoke_report_overtakes_the_backlog_and_its_main_copy_is_dropped(mosquitto):
    smoke_device, meter = unique("smk"), unique("meter")
    # ~500 msg/s: a backlog of 2,000 takes about 4 s to drain; Receive Maximum 100 keeps it in
    # the broker, in the main session's queue, where one session delivers in order.
    sink = OrderedSink(seconds_per_batch=0.1)
    settings = Settings(mqtt_url=mosquitto.url, mqtt_client_id=unique("cw-safety"), ingest_batch_size=50,
                        ingest_batch_ms=10, ingest_queue_size=100)
    service = start(settings, [smoke_device, meter], sink)
    publisher = Publisher(mosquitto.url)
    try:
        learn(service, publisher, smoke_device, sink)
        backlog = 2000
        publisher.publish(native_state(meter, i) for i in range(backlog))
        publisher.publish([smoke(smoke_device, True, 1)])
        assert wait_until(lambda: True in sink.smoke(smoke_device), 30)
        readings = list(sink.readings)
        at = next(i for i, r in enumerate(readings) if r.device_key == smoke_device and r.value is True)
        meters_before = sum(1 for r in readings[:at] if r.device_key == meter)
        # Processed while most of the backlog was still waiting (in the broker, behind it in the
        # main session's order).
        assert meters_before < backlog // 2, meters_before

        assert wait_until(lambda: sum(1 for r in list(sink.readings) if r.device_key == meter) == backlog, 60)
        assert wait_until(lambda: service.metrics.dropped.get("safety_copy", 0) >= 1, 10)
        time.sleep(0.5)
        assert sink.smoke(smoke_device) == [False, True]  # each stored once: the main copy was a copy
        assert service.metrics.dropped["safety_copy"] == 1
        assert service.safety is not None and service.safety.client_id == settings.mqtt_client_id + "-safety"
    finally:
        publisher.close()
        service.stop()


@pytest.mark.parametrize("broker", ["mosquitto", "embedded"])
def test_identical_payloads_on_a_safety_topic_are_stored_as_often_as_sent(broker, ingest_sessions):
    device = unique("smk")
    client_id = unique("cw-safety")
    if broker == "mosquitto":
        url = shared_mosquitto()
        ingest_sessions(url, client_id, client_id)
        settings = Settings(mqtt_url=url, mqtt_client_id=client_id)
    else:
        settings = Settings(mqtt_url=None, mqtt_embedded_port=free_port(), mqtt_client_id=client_id)
    sink = OrderedSink()
    service = start(settings, [device], sink)
    publisher = Publisher(url if broker == "mosquitto" else service.broker.url)
    try:
        learn(service, publisher, device, sink)
        repeats = 25
        publisher.publish([smoke(device)] * repeats)  # byte for byte the same, on one topic
        assert wait_until(lambda: len(sink.smoke(device)) >= 1 + repeats, 15)
        assert wait_until(lambda: service.metrics.dropped.get("safety_copy", 0) == repeats, 10), \
            service.metrics.dropped
        time.sleep(0.5)
        # Each came twice (both sessions: ``repeats`` copies dropped) and was stored once.
        assert Counter(sink.smoke(device)) == {False: 1, True: repeats}
    finally:
        publisher.close()
        service.stop()


def test_off_keeps_one_session(ingest_sessions):
    url = shared_mosquitto()
    device = unique("smk")
    client_id = unique("cw-nosafety")
    ingest_sessions(url, client_id, client_id)
    sink = OrderedSink()
    service = start(Settings(mqtt_url=url, mqtt_client_id=client_id, ingest_safety_session=False), [device], sink)
    publisher = Publisher(url)
    try:
        time.sleep(0.3)  # SUBACK
        publisher.publish([smoke(device, False)])
        assert wait_until(lambda: service.pipeline.safety_topics, 10)
        publisher.publish([smoke(device)] * 5)
        assert wait_until(lambda: len(sink.smoke(device)) == 6, 10)
        time.sleep(0.5)
        assert service.safety is None and service.status()["safety_session"] is None
        assert service.pipeline.ackers == {} and service.pipeline.twin_possible is None
        assert len(sink.smoke(device)) == 6 and "safety_copy" not in service.metrics.dropped
    finally:
        publisher.close()
        service.stop()
        forget_session(url, client_id, client_id)


# -- the record of copies, without a broker ----------------------------------------------------------

def make_pipeline(twin: bool = True) -> tuple[Pipeline, MemorySink, dict[str, list[int]]]:
    directory = InMemoryDirectory([DeviceBinding(device_key="d1", adapter="native", address="d1")])
    metrics = IngestMetrics(DecodeMetrics())
    acked: dict[str, list[int]] = {"main": [], "safety": []}
    sink = MemorySink()
    pipeline = Pipeline(create_all(directory=directory, metrics=metrics.decode), sink, sink, client_id="c",
                        clock=ManualClock(NOW), metrics=metrics,
                        acker=lambda pairs: acked["main"].extend(mid for mid, _ in pairs))
    pipeline.ackers["c-safety"] = lambda pairs: acked["safety"].extend(mid for mid, _ in pairs)
    pipeline.twin_possible = lambda topic, at: twin
    return pipeline, sink, acked


def main_copy(message: tuple[str, bytes], mid: int) -> Inbound:
    return Inbound(*message, NOW, mid=mid)


def safety_copy(message: tuple[str, bytes], mid: int) -> Inbound:
    return Inbound(*message, NOW, mid=mid, session="c-safety")


@pytest.mark.parametrize("order", ["safety first", "main first", "one batch, main first", "one batch, safety first"])
def test_either_copy_may_come_first_and_each_session_acks_its_own(order):
    pipeline, sink, acked = make_pipeline()
    message = smoke("d1")
    safety, main = safety_copy(message, 7), main_copy(message, 9)
    batches = {"safety first": [[safety], [main]], "main first": [[main], [safety]],
               "one batch, main first": [[main, safety]], "one batch, safety first": [[safety, main]]}[order]
    for batch in batches:
        pipeline.process(batch)
    assert [r.value for r in sink.readings] == [True]
    assert pipeline.metrics.dropped == {"safety_copy": 1}
    assert acked == {"main": [9], "safety": [7]}
    assert len(pipeline.copies) == 0


def test_repeats_balance_and_a_message_the_safety_session_never_got_is_processed():
    pipeline, sink, _ = make_pipeline(twin=False)  # published before the safety subscription
    message = smoke("d1")
    pipeline.process([main_copy(message, 1), main_copy(message, 2)])
    assert len(sink.readings) == 2 and len(pipeline.copies) == 0
    pipeline.twin_possible = lambda topic, at: True
    # three identical reports, the copies interleaved as they may arrive
    pipeline.process([safety_copy(message, 11), safety_copy(message, 12)])
    pipeline.process([main_copy(message, 3), safety_copy(message, 13)])
    pipeline.process([main_copy(message, 4), main_copy(message, 5)])
    assert len(sink.readings) == 5
    assert pipeline.metrics.dropped == {"safety_copy": 3}
    assert len(pipeline.copies) == 0


def test_a_redelivered_safety_copy_is_a_duplicate_by_its_own_receipts(tmp_path):
    from cityweave.db.engine import Database
    from cityweave.ingest.receipts import IngestReceipt

    db = Database(f"sqlite:///{tmp_path / 'ingest.sqlite3'}")
    IngestReceipt.__table__.create(db.engine)
    try:
        pipeline, sink, _ = make_pipeline()
        pipeline.db = db
        message = smoke("d1", True, 1)
        pipeline.process([safety_copy(message, 5)])
        # the same packet id on the main session is another message: not a duplicate
        pipeline.process([Inbound(*smoke("d1", True, 2), NOW, mid=5, dup=True)])
        redelivered = safety_copy(message, 5)
        redelivered.dup = True
        pipeline.process([redelivered])
        assert len(sink.readings) == 2
        assert pipeline.metrics.dropped == {"duplicate": 1}
        with db.session() as session:
            owners = sorted(r.client_id for r in session.query(IngestReceipt))
        assert owners == ["c", "c-safety"]
    finally:
        db.dispose()


def test_the_record_expires_and_is_bounded():
    copies = SafetyCopies(ttl=3600, limit=2)
    copies.apply(Counter({(MAIN, "t1", "a"): 1, (MAIN, "t2", "b"): 2, (SAFETY, "t3", "c"): 1}))
    assert len(copies) == 2 and copies.count(MAIN, ("t1", "a")) == 0  # the oldest forgotten
    assert copies.count(MAIN, ("t2", "b")) == 2 and set(copies.topics) == {"t2", "t3"}
    copies.apply(Counter({(MAIN, "t2", "b"): -2}))
    assert len(copies) == 1 and set(copies.topics) == {"t3"}
    expired = SafetyCopies(ttl=-1)
    expired.apply(Counter({(MAIN, "t1", "a"): 1}))
    assert len(expired) == 0 and not expired.topics


def test_with_the_safety_session_up_main_copies_leave_the_lane_to_the_safety_copies():
    pipeline, _, _ = make_pipeline()
    message = smoke("d1")
    pipeline.safety_topics.add(message[0])
    pipeline.safety_connected = lambda: True
    assert pipeline.submit(main_copy(message, 1))  # the slow copy: the ordinary queue
    assert pipeline.submit(Inbound(*message, NOW, transport="http"))  # no twin: the lane
    assert pipeline.submit_safety(safety_copy(message, 2))
    assert [item.transport for item in list(pipeline.safety_lane.queue)] == ["http", "mqtt"]
    assert [item.mid for item in list(pipeline.queue.queue) if item is not None] == [1]
    pipeline.safety_connected = lambda: False  # the safety session is away: the lane, as before
    assert pipeline.submit(main_copy(message, 3))
    assert [item.mid for item in list(pipeline.safety_lane.queue)] == [None, 2, 3]
