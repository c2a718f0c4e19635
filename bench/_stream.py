"""Helpers of bench/ingest.py: a cheap open-loop MQTT publisher, and the ledger that reconciles.

Why a hand-written publisher: generating the simulator's payloads costs about 75 µs per message
in Python and paho's ``publish`` about 30 µs more, so publishers at 20,000 msg/s would need more
than the two cores of the machine and steal them from the consumer being measured. Here each
publisher process renders its share of a *pool* of real vendor messages (the simulator's
open-loop fleet: 10,000 devices of mixed vendors, generated before the clock starts) and then
only frames MQTT 3.1.1 PUBLISH packets (QoS 1) on a raw socket, about 2 µs per message, reading
the broker's PUBACKs in a second thread.

Every payload gets a trailer ``\\n#<seq>,<sent µs>`` after the vendor's own bytes: a sequence
number unique over the run and the wall-clock time the packet was written to the socket. The
ceiling client only counts; the ingest side strips the trailer before the vendor adapter sees the
payload (:class:`LedgerAdapter`), so adapters decode exactly the vendor's bytes, and records the
sequence number in the batch's own transaction (:class:`LedgerSink`, table ``bench_ledger``).
After the run, "acknowledged by the broker to a publisher" (each publisher's bitmap of PUBACKed
sequence numbers) is compared with "stored" (the ledger rows): missing, stored twice.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
from array import array
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

TRAILER = b"\n#"
LEDGER_DEVICE = "bench:ledger"


# -- the message pool ---------------------------------------------------------------------------------
def message_pool(devices: int, rounds: int, topics: Sequence[str], seed: int = 1) -> list[tuple[str, bytes]]:
    """``rounds`` reports of each of ``devices`` devices (simulator open loop, mixed vendors), only
    messages on topics the ingest subscribes to (Home Assistant state topics are only known after
    discovery, so neither consumer would receive them)."""
    from paho.mqtt.client import topic_matches_sub

    from cityweave.simulator.runner import open_loop_schedule

    schedule = open_loop_schedule(devices, rate=1000.0, seed=seed)
    pool: list[tuple[str, bytes]] = []
    verdict: dict[str, bool] = {}
    for reports, planned in enumerate(schedule, 1):
        for message in planned.messages:
            ok = verdict.get(message.topic)
            if ok is None:
                ok = verdict[message.topic] = any(topic_matches_sub(f, message.topic) for f in topics)
            if ok:
                pool.append((message.topic, message.payload))
        if reports >= devices * rounds:
            return pool
    return pool


# -- the publisher --------------------------------------------------------------------------------------
def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


class RawPublisher:
    """MQTT 3.1.1, QoS 1, on a plain socket. Not a general client: enough for a benchmark."""

    WINDOW = 40_000  # unacknowledged packets at most (packet ids are 16 bits)

    def __init__(self, host: str, port: int, client_id: str) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cid = client_id.encode()
        variable = b"\x00\x04MQTT\x04\x02\x00\x00"  # level 4, clean session, no keep-alive
        body = variable + struct.pack("!H", len(cid)) + cid
        self.sock.sendall(b"\x10" + _remaining_length(len(body)) + body)
        if self.sock.recv(4)[:2] != b"\x20\x02":
            raise ConnectionError("no CONNACK")
        self.pid_seq = array("q", [-1]) * 65536
        self.outstanding = 0
        self.acked: bytearray = bytearray()
        self.acked_count = 0
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.next_pid = 0
        self.closed = False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                with self.cond:
                    self.closed = True
                    self.cond.notify_all()
                return
            buffer += data
            acked = []
            pos, end = 0, len(buffer)
            while end - pos >= 2:
                kind = buffer[pos]
                length, shift, i = 0, 0, pos + 1
                while i < end:  # remaining length varint
                    byte = buffer[i]
                    length |= (byte & 0x7F) << shift
                    i += 1
                    shift += 7
                    if not byte & 0x80:
                        break
                else:
                    break
                if i + length > end:
                    break
                if kind == 0x40 and length >= 2:
                    acked.append(buffer[i] << 8 | buffer[i + 1])
                pos = i + length
            buffer = buffer[pos:]
            if acked:
                with self.cond:
                    for pid in acked:
                        seq = self.pid_seq[pid]
                        if seq >= 0:
                            self.pid_seq[pid] = -1
                            self.acked[seq] = 1
                            self.acked_count += 1
                            self.outstanding -= 1
                    self.cond.notify_all()

    def send(self, packets: list[tuple[int, str, bytes]]) -> None:
        """``(local index, topic, payload)``: frame and write; blocks while the window is full."""
        chunks = []
        with self.cond:
            while self.outstanding + len(packets) > self.WINDOW and not self.closed:
                self.cond.wait(0.1)
            if self.closed:
                raise ConnectionError("broker closed the connection")
            for index, topic, payload in packets:
                pid = self.next_pid % 65535 + 1
                while self.pid_seq[pid] >= 0:  # still in flight: the next free id
                    pid = pid % 65535 + 1
                self.next_pid = pid
                self.pid_seq[pid] = index
                self.outstanding += 1
                t = topic.encode()
                remaining = 2 + len(t) + 2 + len(payload)
                chunks.append(b"\x32" + _remaining_length(remaining) + struct.pack("!H", len(t)) + t
                              + struct.pack("!H", pid) + payload)
        self.sock.sendall(b"".join(chunks))

    def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.outstanding and not self.closed and time.monotonic() < deadline:
                self.cond.wait(0.1)

    def close(self) -> None:
        try:
            self.sock.sendall(b"\xe0\x00")
            self.sock.close()
        except OSError:
            pass


def publish_main(spec_text: str) -> None:
    """Entry point of a publisher process (``bench/ingest.py --publisher '<json>'``).

    spec: url host/port, index, publishers, devices, rounds, phases [[rate, seconds], ...] (the
    process's share is rate / publishers), out (a file prefix), topics, go (start when it exists)."""
    spec = json.loads(spec_text)
    index, publishers = spec["index"], spec["publishers"]
    pool = message_pool(spec["devices"], spec["rounds"], spec["topics"])[index::publishers]
    total = sum(int(rate * seconds / publishers) for rate, seconds in spec["phases"])
    publisher = RawPublisher(spec["host"], spec["port"], f"bench-pub-{index}-{time.time_ns()}")
    publisher.acked = bytearray(total)
    out = Path(spec["out"])
    out.with_suffix(".ready").touch()
    go = Path(spec["go"])
    while not go.exists():
        time.sleep(0.001)
    started = time.monotonic()
    sent = 0
    behind = 0.0
    for rate, seconds in spec["phases"]:
        share = rate / publishers
        count = int(share * seconds)
        phase_start = time.monotonic()
        done = 0
        while done < count:
            now = time.monotonic()
            due = min(count, int((now - phase_start) * share) + 1)
            if due <= done:
                time.sleep(min(0.002, (done + 1) / share - (now - phase_start)))
                continue
            behind = max(behind, now - phase_start - done / share)
            batch = []
            stamp = b"%d" % (time.time_ns() // 1000)
            for k in range(done, min(due, done + 2000)):
                seq_local = sent + k
                topic, payload = pool[seq_local % len(pool)]
                seq = seq_local * publishers + index
                batch.append((seq_local, topic, payload + TRAILER + b"%d," % seq + stamp))
            publisher.send(batch)
            done += len(batch)
        sent += count
    elapsed = time.monotonic() - started
    publisher.drain(30)
    publisher.close()
    out.with_suffix(".acked").write_bytes(bytes(publisher.acked))
    out.with_suffix(".json").write_text(json.dumps({"sent": sent, "acked": publisher.acked_count,
                                                    "elapsed": elapsed, "max_behind": behind}))


def acked_sequences(prefix: Path, publishers: int) -> tuple[set[int], dict[str, float]]:
    """Every sequence number some publisher had PUBACKed by the broker, and the summed stats."""
    acked: set[int] = set()
    stats = {"sent": 0.0, "acked": 0.0, "elapsed": 0.0, "max_behind": 0.0}
    for index in range(publishers):
        base = prefix.with_name(f"{prefix.name}-{index}")
        bitmap = base.with_suffix(".acked").read_bytes()
        acked.update(k * publishers + index for k, flag in enumerate(bitmap) if flag)
        info = json.loads(base.with_suffix(".json").read_text())
        stats["sent"] += info["sent"]
        stats["acked"] += info["acked"]
        stats["elapsed"] = max(stats["elapsed"], info["elapsed"])
        stats["max_behind"] = max(stats["max_behind"], info["max_behind"])
    return acked, stats


# -- the consumer side: ledger --------------------------------------------------------------------------
def split_trailer(payload: bytes) -> tuple[bytes, int, int] | None:
    at = payload.rfind(TRAILER)
    if at < 0:
        return None
    seq, _, sent = payload[at + 2:].partition(b",")
    try:
        return payload[:at], int(seq), int(sent)
    except ValueError:
        return None


class LedgerAdapter:
    """Wraps a vendor adapter: strips the trailer, decodes the vendor's bytes, and adds one ledger
    reading (device ``bench:ledger``, value = sequence number) to the result, so the message's
    sequence number is stored in the same transaction as its readings."""

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter
        self.rejected_only = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> Any:
        from cityweave.devices.reading import Reading

        parts = split_trailer(payload)
        if parts is None:
            return self._adapter.decode(topic, payload, received_at)
        original, seq, sent = parts
        result = self._adapter.decode(topic, original, received_at)
        if result.dropped:
            self.rejected_only += 1
        result.readings.append(Reading(LEDGER_DEVICE, "sequence", seq, received_at, extra={"sent": sent}))
        return result


class LedgerSink:
    """The real ReadingSink for everything but the ledger readings, which go to ``bench_ledger``
    (no index: an append costs next to nothing) in the same transaction. After the commit, the
    publish → commit latency of every message of the batch is recorded."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.latency_ms = array("d")
        self.commits = array("d")  # commit wall time (s), one per batch
        self._sql = "INSERT INTO bench_ledger (seq) VALUES (?)"

    @staticmethod
    def create_table(engine: Any) -> None:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS bench_ledger (seq BIGINT NOT NULL)")

    def write_batch(self, session: Any, readings: Sequence[Any]) -> None:
        from cityweave.db.engine import on_commit

        real = [r for r in readings if r.device_key != LEDGER_DEVICE]
        ledger = [r for r in readings if r.device_key == LEDGER_DEVICE]
        if real:
            self.inner.write_batch(session, real)
        if not ledger:
            return
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("INSERT INTO bench_ledger (seq) SELECT unnest(%(s)s::bigint[])",
                                       {"s": [r.value for r in ledger]})
        else:
            connection.exec_driver_sql(self._sql, [(r.value,) for r in ledger])
        sent = [r.extra["sent"] for r in ledger]

        def committed() -> None:
            now_us = time.time_ns() / 1000
            self.latency_ms.extend((now_us - s) / 1000 for s in sent)
            self.commits.append(now_us / 1e6)

        on_commit(session, committed)

    def place_paths(self, session: Any, device_keys: Collection[str]) -> Mapping[str, str]:
        return {}


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]




# -- an ingest process -----------------------------------------------------------------------------------
def ingest_main(spec_text: str) -> None:
    """Entry point of one ingest process (``_stream.py ingest '<json>'``): CityWeave's
    IngestService with the ledger, until the ``stop`` file appears; then its figures to ``out``.

    spec: url, client_id, shared_group (null for one process), database_url, data_dir, ready,
    stop, out."""
    spec = json.loads(spec_text)
    from cityweave.clock import Clock
    from cityweave.config import Settings
    from cityweave.context import AppContext
    from cityweave.devices.adapters import create_all
    from cityweave.devices.binding import InMemoryDirectory
    from cityweave.ingest.service import IngestService
    from cityweave.telemetry.sink import TelemetrySink
    from cityweave.telemetry.store import TelemetryStore

    settings = Settings(data_dir=Path(spec["data_dir"]), database_url=spec["database_url"],
                        secret_key=spec["key"], mqtt_url=spec["url"] + "?protocol=5",
                        mqtt_client_id=spec["client_id"], mqtt_shared_group=spec["shared_group"])
    ctx = AppContext.build(settings)
    directory = InMemoryDirectory(auto_bind=True)
    adapters = [LedgerAdapter(a) for a in create_all(directory=directory)]
    sink = LedgerSink(TelemetrySink(TelemetryStore(Clock())))
    service = IngestService(settings, directory=directory, readings=sink, db=ctx.db, clock=Clock(),
                            adapters=adapters)  # type: ignore[arg-type]
    service.start()
    if not service.wait_connected(20):
        raise SystemExit("ingest did not connect")
    Path(spec["ready"]).touch()
    stop = Path(spec["stop"])
    max_queue = 0
    while not stop.exists():
        max_queue = max(max_queue, service.pipeline.queue.qsize())
        time.sleep(0.05)
    service.stop()
    ctx.db.dispose()
    out = Path(spec["out"])
    with out.with_suffix(".lat").open("wb") as f:
        sink.latency_ms.tofile(f)
    snapshot = service.metrics.snapshot()
    out.with_suffix(".json").write_text(json.dumps({
        "max_queue": max_queue, "first_commit": sink.commits[0] if sink.commits else None,
        "last_commit": sink.commits[-1] if sink.commits else None, "batches": snapshot["batches"],
        "processed": snapshot["processed"], "dropped": snapshot["dropped"],
        "rejected_by_adapters": sum(a.rejected_only for a in adapters)}))


def ingest_results(out: Path) -> tuple[array, dict[str, Any]]:
    latency = array("d")
    data = out.with_suffix(".lat").read_bytes()
    latency.frombytes(data)
    return latency, json.loads(out.with_suffix(".json").read_text())


if __name__ == "__main__":
    if sys.argv[1] == "ingest":
        ingest_main(sys.argv[2])
    else:
        publish_main(sys.argv[1])
