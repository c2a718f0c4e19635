"""The ingest service as its own process, for the crash test (``python -m tests.ingest.crash_worker``).

Stores readings into a SQLite file (a table of its own, in the batch's transaction, like the real
telemetry store does) and, with ``--ack-delay``, waits after each commit before acknowledging,
marking that window with a file so the test can SIGKILL it exactly between commit and PUBACK.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Column, MetaData, String, Table, insert

from cityweave.config import Settings
from cityweave.db.engine import Database
from cityweave.devices.binding import InMemoryDirectory
from cityweave.devices.reading import Reading
from cityweave.ingest.receipts import IngestReceipt
from cityweave.ingest.service import IngestService

meta = MetaData()
stored = Table("crash_readings", meta, Column("device", String), Column("endpoint", String))


class SqlSink:
    def write_batch(self, session, readings: Sequence[Reading]) -> None:
        session.execute(insert(stored), [{"device": r.device_key, "endpoint": r.endpoint} for r in readings])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--status", required=True, help="file receiving metrics as JSON")
    parser.add_argument("--ack-delay", type=float, default=0.0)
    parser.add_argument("--window-file", default="")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    db = Database(f"sqlite:///{args.db}")
    IngestReceipt.__table__.create(db.engine, checkfirst=True)
    meta.create_all(db.engine)
    settings = Settings(mqtt_url=args.url, mqtt_client_id=args.client_id, ingest_batch_size=200,
                        ingest_batch_ms=10)
    service = IngestService(settings, directory=InMemoryDirectory(auto_bind=True), readings=SqlSink(), db=db,
                            node=args.client_id)
    service.start()
    if args.ack_delay:
        real_ack = service.pipeline.acker
        window = Path(args.window_file)

        def delayed_ack(deliveries: Sequence[tuple[int, int]]) -> None:
            window.touch()
            time.sleep(args.ack_delay)
            window.unlink(missing_ok=True)
            real_ack(deliveries)

        service.pipeline.acker = delayed_ack
    if not service.wait_connected(10):
        sys.exit("no broker")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    status = Path(args.status)
    while not stop.wait(0.1):
        tmp = status.with_suffix(".tmp")
        tmp.write_text(json.dumps(service.metrics.snapshot()))
        tmp.replace(status)
    service.stop()


if __name__ == "__main__":
    main()
