"""Telemetry write throughput: TelemetryStore vs bare sqlite3 executemany on the same rows.

    .venv/bin/python bench/telemetry_write.py                      # 200,000 readings, SQLite
    .venv/bin/python bench/telemetry_write.py --batch 2000 --database-url postgresql://postgres@127.0.0.1/cwbench

Each batch is one transaction (what an ingest worker does). The simulated fleet is
``--devices`` devices with a temperature (float), a power reading (float), a contact (bool) and
a mode (enum) each, reporting every ``--interval`` seconds of simulated time, so batches touch
many series and the rollup upserts are realistic (one minute/hour bucket per series per batch).
The baseline inserts the same raw rows into a bare table with no index through sqlite3's
executemany: the floor of what SQLite can do from Python, not a competitor.
"""

from __future__ import annotations

import argparse
import random
import resource
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from cityweave.db import migrate
from cityweave.db.engine import Database
from cityweave.devices.reading import Reading
from cityweave.telemetry.store import TelemetryStore
from cityweave.telemetry.values import encode, to_ms

START = datetime(2026, 1, 1, tzinfo=UTC)
MODES = ("auto", "cool", "heat", "dry", "fan")


def fleet_readings(total: int, devices: int, interval_s: float, seed: int) -> Iterator[Reading]:
    """Round-robin over devices; each report is four readings with the same timestamp."""
    rng = random.Random(seed)
    produced, step = 0, 0
    while True:
        moment = START + timedelta(seconds=step * interval_s)
        for device in range(devices):
            key = f"zigbee2mqtt:0x{device:016x}"
            at = moment + timedelta(milliseconds=device % 1000)
            for reading in (
                Reading(key, "temperature", round(rng.gauss(24, 3), 2), at, unit="°C"),
                Reading(key, "power_w", round(rng.uniform(0, 2000), 1), at, unit="W"),
                Reading(key, "contact", rng.random() < 0.5, at),
                Reading(key, "mode", rng.choice(MODES), at),
            ):
                yield reading
                produced += 1
                if produced == total:
                    return
        step += 1


def place_paths(devices: int) -> dict[str, str]:
    return {
        f"zigbee2mqtt:0x{d:016x}": f"/sz/ns/ns-yh/xfl/xfl-g1/xfl-b{d // 400:02d}/xfl-b{d // 400:02d}-u1/h{d // 4}/"
        for d in range(devices)
    }


def batches(items: list[Reading], size: int) -> Iterator[list[Reading]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def report(label: str, rows: int, seconds: float, cpu_seconds: float, latencies: list[float]) -> None:
    """Wall-clock rows/s is the figure that counts; rows per CPU-second of this process is printed
    too because on a shared machine it moves far less with other people's load."""
    latencies = sorted(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"{label:<34} {rows / seconds:>9,.0f} rows/s  ({rows / cpu_seconds:>9,.0f} /cpu-s)"
          f"  batch p50 {statistics.median(latencies) * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms"
          f"  ({rows:,} rows in {seconds:.2f} s)")


def run_store(url: str, items: list[Reading], batch: int, paths: dict[str, str], label: str) -> None:
    db = Database(url)
    migrate.upgrade(db.engine)
    with db.session() as session:  # a previous run's rows would make the numbers incomparable
        for table in ("readings", "readings_1m", "readings_1h", "device_state"):
            session.execute(text(f"DELETE FROM {table}"))
    store = TelemetryStore()
    latencies: list[float] = []
    started, cpu_started = time.perf_counter(), time.process_time()
    for chunk in batches(items, batch):
        t0 = time.perf_counter()
        with db.session() as session:
            store.write(session, chunk, paths)
        latencies.append(time.perf_counter() - t0)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    report(label, len(items), elapsed, cpu, latencies)
    with db.session() as session:
        counts = {t: session.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                  for t in ("readings", "device_state", "readings_1m", "readings_1h")}
    print(f"{'':<34} rows stored: {counts}")
    db.dispose()


def run_baseline(path: Path, items: list[Reading], batch: int) -> None:
    """The same raw rows, encoded the same way, into a bare table: sqlite3 and nothing else."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE raw (device_key TEXT, capability TEXT, endpoint TEXT, ts_ms INTEGER,"
                 " num REAL, text TEXT, quality TEXT)")
    latencies: list[float] = []
    started, cpu_started = time.perf_counter(), time.process_time()
    for chunk in batches(items, batch):
        t0 = time.perf_counter()
        rows = []
        for r in chunk:
            _, num, txt = encode(r.value)
            rows.append((r.device_key, r.capability, r.endpoint or "", to_ms(r.timestamp), num, txt, r.quality.value))
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO raw VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
        latencies.append(time.perf_counter() - t0)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    report(f"baseline sqlite3 executemany b={batch}", len(items), elapsed, cpu, latencies)
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--readings", type=int, default=200_000)
    parser.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 500 and 2000)")
    parser.add_argument("--devices", type=int, default=5_000)
    parser.add_argument("--interval", type=float, default=10.0, help="simulated seconds between reports")
    parser.add_argument("--database-url", help="also run the store against this PostgreSQL database")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = args.batch or [500, 2000]

    items = list(fleet_readings(args.readings, args.devices, args.interval, args.seed))
    paths = place_paths(args.devices)
    span = items[-1].timestamp - items[0].timestamp
    print(f"{len(items):,} readings from {args.devices:,} devices x 4 capabilities over {span} simulated")
    with tempfile.TemporaryDirectory(prefix="cw-telemetry-bench-") as folder:
        for size in sizes:
            run_baseline(Path(folder) / f"baseline-{size}.sqlite3", items, size)
            run_store(f"sqlite:///{folder}/store-{size}.sqlite3", items, size, paths,
                      f"TelemetryStore SQLite b={size}")
            if args.database_url:
                url = args.database_url
                if url.startswith(("postgres://", "postgresql://")):
                    url = "postgresql+psycopg://" + url.split("://", 1)[1]
                run_store(url, items, size, paths, f"TelemetryStore PostgreSQL b={size}")
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
