"""The pipeline without a broker: decoding, reasons, receipts (exactly once), retries, heartbeats,
metrics, the bounded queue."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import OperationalError

from cityweave.clock import ManualClock
from cityweave.db import migrate
from cityweave.db.engine import Database
from cityweave.devices.adapters import create_all
from cityweave.devices.binding import DeviceBinding, InMemoryDirectory
from cityweave.devices.metrics import DecodeMetrics
from cityweave.ingest.heartbeat import HeartbeatTracker
from cityweave.ingest.metrics import IngestMetrics
from cityweave.ingest.pipeline import Inbound, Pipeline
from cityweave.ingest.receipts import IngestReceipt, digest
from cityweave.ingest.sinks import MemorySink
from tests.ingest.support import native_state, wait_until

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def make(db: Database | None = None, *, bindings=("t1", "t2"), sink=None, **kwargs):
    directory = InMemoryDirectory([DeviceBinding(device_key=f"key-{b}", adapter="native", address=b) for b in bindings])
    metrics = IngestMetrics(DecodeMetrics())
    acked: list[int] = []
    sink = sink or MemorySink()
    pipeline = Pipeline(create_all(directory=directory, metrics=metrics.decode), sink, sink, db=db,
                        client_id="test-client", clock=kwargs.pop("clock", ManualClock(NOW)), metrics=metrics,
                        acker=lambda pairs: acked.extend(mid for mid, _ in pairs), **kwargs)
    return pipeline, sink, acked, directory


def msg(topic: str, payload: bytes | str, mid: int | None = None, dup: bool = False) -> Inbound:
    body = payload.encode() if isinstance(payload, str) else payload
    return Inbound(topic, body, NOW, mid=mid, dup=dup)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'ingest.sqlite3'}")
    IngestReceipt.__table__.create(database.engine)
    yield database
    database.dispose()


def test_readings_go_to_the_sink_in_one_call_and_every_message_is_acked():
    pipeline, sink, acked, _ = make()
    pipeline.process([msg(*native_state("t1", i), mid=i + 1) for i in range(10)])
    assert sink.batches == 1
    assert sorted(r.endpoint for r in sink.readings) == sorted(f"m{i}" for i in range(10))
    assert {r.device_key for r in sink.readings} == {"key-t1"}
    assert sorted(acked) == list(range(1, 11))
    assert pipeline.metrics.readings_stored == 10
    assert sink.events[0].seen == {"key-t1": NOW}


BAD = [
    ("malformed_json", "cityweave/v1/t1/state", b'{"v":1, "readings": ['),
    ("bad_encoding", "cityweave/v1/t1/state", b"\xff\xfe{}"),
    ("oversize", "cityweave/v1/t1/state", b'{"v":1,"pad":"' + b"x" * 70_000 + b'"}'),
    ("unknown_device", "cityweave/v1/stranger/state", native_state("stranger", 1)[1]),
    ("topic_mismatch", "cityweave/v1/t1/state", native_state("t2", 1)[1]),
    ("wrong_type", "cityweave/v1/t1/state",
     json.dumps({"v": 1, "readings": [{"capability": "temperature", "value": "warm"}]}).encode()),
    ("out_of_range", "cityweave/v1/t1/state",
     json.dumps({"v": 1, "readings": [{"capability": "humidity", "value": 180}]}).encode()),
    ("unexpected_topic", "nobody/listens/here", b"{}"),
]


def test_device_replies_to_commands_reach_the_event_sink():
    """A native ``ack`` (like a Shelly RPC result or a MIoT code) travels in ``DeviceEvents.acks``."""
    pipeline, sink, _, _ = make()
    body = {"v": 1, "kind": "state", "device": "t1", "ack": "cmd-1", "values": {"on_off": True}}
    pipeline.process([msg("cityweave/v1/t1/state", json.dumps(body), mid=1)])
    acks = [ack for events in sink.events for ack, _ in events.acks]
    assert [(a.request_id, a.ok) for a in acks] == [("cmd-1", True)]


@pytest.mark.parametrize(("reason", "topic", "payload"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_dropped_with_a_counted_reason_and_nothing_stored(reason, topic, payload):
    pipeline, sink, acked, _ = make()
    pipeline.process([msg(topic, payload, mid=7)])
    assert sink.readings == []
    assert acked == [7]  # dropped messages are acknowledged: redelivery would not make them better
    assert pipeline.metrics.dropped[reason] == 1
    text = pipeline.metrics.prometheus()
    assert f'cityweave_ingest_dropped_total{{reason="{reason}"}} 1' in text
    if reason != "unexpected_topic":
        assert f'reason="{reason}"' in pipeline.metrics.decode.prometheus()


def test_one_bad_message_does_not_spoil_its_batch():
    pipeline, sink, _, _ = make()
    pipeline.process([msg(*native_state("t1", 1), mid=1), msg("cityweave/v1/t1/state", b"{", mid=2),
                      msg(*native_state("t2", 3), mid=3)])
    assert sorted(r.endpoint for r in sink.readings) == ["m1", "m3"]


def test_a_redelivered_message_with_a_receipt_is_not_stored_twice(db):
    pipeline, sink, acked, _ = make(db)
    topic, payload = native_state("t1", 1)
    pipeline.process([msg(topic, payload, mid=5)])
    # The crash came after the commit, before the PUBACK: the broker sends it again, DUP=1.
    pipeline.process([msg(topic, payload, mid=5, dup=True)])
    assert [r.endpoint for r in sink.readings] == ["m1"]
    assert acked == [5, 5]
    assert pipeline.metrics.dropped["duplicate"] == 1


def test_dup_without_receipt_is_new_and_dup0_always_new(db):
    pipeline, sink, _, _ = make(db)
    first = native_state("t1", 1)
    pipeline.process([msg(*first, mid=5)])
    # Packet id 5 reused after its ack, for another message: new, even though DUP is set
    # (its first delivery died with the crash before the commit).
    pipeline.process([msg(*native_state("t1", 2), mid=5, dup=True)])
    # A first delivery (DUP=0) is new even with identical bytes and packet id.
    pipeline.process([msg(*first, mid=5)])
    assert [r.endpoint for r in sink.readings] == ["m1", "m2", "m1"]
    with db.session() as session:
        stored = session.execute(select(IngestReceipt.digest).where(IngestReceipt.packet_id == 5)).scalar_one()
    assert stored == digest(*first)


def test_a_redelivery_within_one_batch_is_stored_once(db):
    pipeline, sink, _, _ = make(db)
    topic, payload = native_state("t1", 1)
    pipeline.process([msg(topic, payload, mid=9), msg(topic, payload, mid=9, dup=True)])
    assert [r.endpoint for r in sink.readings] == ["m1"]


class FlakySink(MemorySink):
    def __init__(self, failures: list[Exception]) -> None:
        super().__init__()
        self.failures = failures

    def write_batch(self, session, readings):
        if self.failures:
            raise self.failures.pop(0)
        if any(r.endpoint == "m666" for r in readings):
            raise ValueError("the store refuses this one")
        super().write_batch(session, readings)


def test_transient_store_errors_are_retried_until_they_pass():
    sink = FlakySink([OperationalError("INSERT", {}, Exception("database is locked"))] * 3)
    pipeline, _, acked, _ = make(sink=sink)
    pipeline.process([msg(*native_state("t1", i), mid=i + 1) for i in range(3)])
    assert sorted(r.endpoint for r in sink.readings) == ["m0", "m1", "m2"]
    assert pipeline.metrics.store_retries == 3
    assert sorted(acked) == [1, 2, 3]


def test_a_message_the_store_refuses_alone_is_dropped_and_the_rest_stored():
    sink = FlakySink([])
    pipeline, _, acked, _ = make(sink=sink)
    pipeline.process([msg(*native_state("t1", i), mid=i) for i in (1, 666, 3)])
    assert sorted(r.endpoint for r in sink.readings) == ["m1", "m3"]
    assert pipeline.metrics.dropped["store_error"] == 1
    assert sorted(acked) == [1, 3, 666]


def test_heartbeat_timeout_reports_silent_devices_offline_once():
    clock = ManualClock(NOW)
    pipeline, sink, _, _ = make(clock=clock, heartbeat=HeartbeatTracker(timedelta(minutes=5)))
    pipeline.process([msg(*native_state("t1", 1)), msg(*native_state("t2", 2))])
    clock.advance(minutes=4)
    assert pipeline.check_heartbeats() == []
    late = Inbound(*native_state("t2", 3), received_at=clock.now())
    pipeline.process([late])
    clock.advance(minutes=2)
    gone = pipeline.check_heartbeats()
    assert [(c.device_key, c.address, c.online) for c in gone] == [("key-t1", "t1", False)]
    assert pipeline.check_heartbeats() == []  # reported once
    assert [c.device_key for c in sink.availability()] == ["key-t1"]
    # Heard again: back online.
    pipeline.process([Inbound(*native_state("t1", 4), received_at=clock.now())])
    assert [(c.device_key, c.online) for c in sink.availability()] == [("key-t1", False), ("key-t1", True)]


def test_a_device_that_says_offline_is_not_timed_out_again():
    clock = ManualClock(NOW)
    pipeline, sink, _, _ = make(clock=clock, heartbeat=HeartbeatTracker(timedelta(minutes=5)))
    pipeline.process([msg(*native_state("t1", 1)), msg("cityweave/v1/t1/availability", "offline")])
    clock.advance(minutes=10)
    assert pipeline.check_heartbeats() == []
    assert [(c.device_key, c.online) for c in sink.availability()] == [("key-t1", False)]


def test_the_queue_is_bounded():
    pipeline, _, _, _ = make(queue_size=3)
    for i in range(3):
        assert pipeline.submit(msg(*native_state("t1", i)), timeout=0.01)
    assert not pipeline.submit(msg(*native_state("t1", 9)), timeout=0.05)
    assert pipeline.queue.qsize() == 3
    assert "cityweave_ingest_queue_depth 3" in pipeline.metrics.prometheus()


def test_worker_drains_in_batches_and_stop_finishes_the_queue():
    pipeline, sink, acked, _ = make(queue_size=1000, batch_size=100, batch_ms=20)
    for i in range(450):
        pipeline.submit(msg(*native_state("t1", i), mid=i + 1))
    pipeline.start()
    pipeline.stop()
    assert len(sink.readings) == 450 and len(acked) == 450
    assert 5 <= sink.batches <= 450
    assert not pipeline.submit(msg(*native_state("t1", 1)))  # stopped: refused, left to the broker


def test_submit_blocks_while_full_and_resumes():
    pipeline, sink, _, _ = make(queue_size=2, batch_size=1)
    for i in range(2):
        pipeline.submit(msg(*native_state("t1", i)))
    done = threading.Event()
    threading.Thread(target=lambda: (pipeline.submit(msg(*native_state("t1", 2))), done.set()), daemon=True).start()
    time.sleep(0.2)
    assert not done.is_set()  # back-pressure: the transport thread waits
    pipeline.start()
    assert done.wait(5)
    pipeline.stop()
    assert len(sink.readings) == 3


def test_migration_creates_the_receipts_table(tmp_path: Path):
    database = Database(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    migrate.upgrade(database.engine)
    columns = {c["name"] for c in inspect(database.engine).get_columns("ingest_receipts")}
    assert columns == {"client_id", "packet_id", "digest", "stored_at"}
    database.dispose()


def _smoke(device: str, number: int) -> tuple[str, bytes]:
    body = {"v": 1, "kind": "state", "device": device, "seq": number,
            "readings": [{"capability": "smoke", "value": True, "endpoint": f"s{number}"}]}
    return f"cityweave/v1/{device}/state", json.dumps(body).encode()


class SlowSink(MemorySink):
    """Each batch takes a while, as a loaded store does: a backlog builds up behind it."""

    def write_batch(self, session, readings) -> None:
        time.sleep(0.02)
        super().write_batch(session, readings)


def test_a_safety_topic_skips_the_backlog_of_ordinary_telemetry():
    pipeline, sink, _, _ = make(bindings=("meter", "smoke1"), sink=SlowSink(), batch_size=50)
    # The first smoke report teaches the pipeline that this topic carries life-safety readings.
    pipeline.process([msg(*_smoke("smoke1", 0), mid=1)])
    assert "cityweave/v1/smoke1/state" in pipeline.safety_topics
    backlog = 2_000
    for i in range(backlog):
        pipeline.submit(msg(*native_state("meter", i), mid=10 + i))
    pipeline.submit(msg(*_smoke("smoke1", 1), mid=5_000))
    assert pipeline.safety_lane.qsize() == 1
    pipeline.start()
    try:
        assert wait_until(lambda: any(r.endpoint == "s1" for r in list(sink.readings)), 30)
        order = [r.endpoint for r in list(sink.readings)]
        meters_before = sum(1 for e in order[:order.index("s1")] if e and e.startswith("m"))
        # Stored with the first batch the worker took, not after the 2,000 queued before it.
        assert meters_before == 0, meters_before
        assert wait_until(lambda: len(sink.readings) == backlog + 2, 60)
    finally:
        pipeline.stop()


def test_a_full_safety_lane_falls_back_to_the_ordinary_queue():
    pipeline, sink, _, _ = make(bindings=("meter", "smoke1"))
    pipeline.process([msg(*_smoke("smoke1", 0), mid=1)])
    for i in range(1_005):  # more than the lane holds: the rest takes the ordinary queue
        pipeline.submit(msg(*_smoke("smoke1", i + 1), mid=10 + i))
    assert pipeline.safety_lane.full() and pipeline.queue.qsize() >= 5
    pipeline.start()
    try:
        assert wait_until(lambda: len(sink.readings) == 1_006, 30)
    finally:
        pipeline.stop()
