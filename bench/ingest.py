"""End-to-end ingest throughput: offered vs stored messages/s, lag and memory, against the ceiling.

An open-loop generator (a separate process: a fixed rate, round-robin over 10,000 devices of mixed
vendors, `cityweave.simulator.runner.run_open_loop`) publishes at QoS 1 through a private
Mosquitto started for the run (a real Mosquitto, with queues raised so the broker does not drop
QoS 1 messages while a consumer is slow). Two consumers are measured in the same run:

  ceiling  a bare paho subscriber on the same topic filters that only counts messages (the most
           a Python MQTT client takes)
  ingest   CityWeave's IngestService: decode with the vendor adapters, batch, write telemetry into
           SQLite (or --database-url), receipts, commit, then PUBACK

Prints, per consumer: offered msg/s, received/stored msg/s, lag at the end (how long after the
generator stopped the last message was processed), peak RSS. Run by hand (not in CI):

    .venv/bin/python bench/ingest.py [--rate 20000] [--seconds 30] [--devices 10000]
    .venv/bin/python bench/ingest.py --rate 2000 --burst 10 --seconds 60   # a 10x burst
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from cityweave.clock import Clock
from cityweave.config import Settings
from cityweave.context import AppContext
from cityweave.db import migrate
from cityweave.devices.binding import InMemoryDirectory
from cityweave.ingest.service import IngestService
from cityweave.telemetry.sink import TelemetrySink
from cityweave.telemetry.store import TelemetryStore

KEY = "q2Xn3VUmqkGq6jyHcC0C1Y0Jq4kV1w2mT9o3cYkqH0E="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PrivateMosquitto:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        config = folder / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 10000000\nmax_queued_bytes 0\nmax_inflight_messages 0\n"
        )
        self.process = subprocess.Popen(["mosquitto", "-c", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(5)


PUBLISHERS = 1


class Generator:
    """``PUBLISHERS`` processes, each publishing its share of the rate (own seed, same fleet size)."""

    def __init__(self, url: str, rate: float, seconds: float, devices: int) -> None:
        self.processes = []
        for index in range(PUBLISHERS):
            code = (
                "from cityweave.simulator.runner import run_open_loop\n"
                f"run_open_loop({url!r}, rate={rate / PUBLISHERS}, devices={devices}, "
                f"duration={seconds}, qos=1, seed={index + 1})\n"
            )
            self.processes.append(subprocess.Popen([sys.executable, "-c", code],
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def poll(self) -> int | None:
        codes = [p.poll() for p in self.processes]
        return None if any(c is None for c in codes) else max(codes)

    def wait(self) -> None:
        for process in self.processes:
            process.wait()


def generator(url: str, rate: float, seconds: float, devices: int) -> Generator:
    return Generator(url, rate, seconds, devices)


def ingest_topics() -> list[str]:
    from cityweave.devices.adapters import create_all

    adapters = create_all(directory=InMemoryDirectory(auto_bind=True))
    return sorted({t for a in adapters for t in a.subscriptions() + a.discovery_topics()})


def measure_ceiling(url: str, rate: float, seconds: float, devices: int) -> dict[str, float]:
    count = 0
    last = [time.monotonic()]

    def on_message(_c: object, _u: object, _m: object) -> None:
        nonlocal count
        count += 1
        last[0] = time.monotonic()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-ceiling", protocol=mqtt.MQTTv5)
    client.on_message = on_message
    host, port = url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    # The same filters the ingest subscribes to, so both consumers see the same stream (Home
    # Assistant entity topics are only known after discovery, so HA state messages are in neither).
    client.subscribe([(topic, 1) for topic in ingest_topics()])
    client.loop_start()
    time.sleep(0.5)
    started = time.monotonic()
    gen = generator(url, rate, seconds, devices)
    gen.wait()
    ended = time.monotonic()
    while time.monotonic() - last[0] < 2.0:
        time.sleep(0.2)
    client.loop_stop()
    client.disconnect()
    return {"offered": rate, "received": count, "rate": count / (last[0] - started),
            "lag": max(0.0, last[0] - ended)}


def measure_ingest(url: str, rate: float, seconds: float, devices: int, database_url: str | None,
                   folder: Path) -> dict[str, float]:
    settings = Settings(data_dir=folder, database_url=database_url, secret_key=KEY, mqtt_url=url + "?protocol=5",
                        mqtt_client_id="bench-ingest")
    ctx = AppContext.build(settings)
    migrate.upgrade(ctx.db.engine)
    service = IngestService(settings, directory=InMemoryDirectory(auto_bind=True),
                            readings=TelemetrySink(TelemetryStore(Clock())), db=ctx.db, clock=Clock())
    service.start()
    if not service.wait_connected(10):
        raise RuntimeError("ingest did not connect")
    time.sleep(0.5)
    started = time.monotonic()
    gen = generator(url, rate, seconds, devices)
    max_depth = 0
    while gen.poll() is None:
        max_depth = max(max_depth, service.pipeline.queue.qsize())
        time.sleep(0.1)
    ended = time.monotonic()
    processed = -1
    while True:  # drained when the count stops moving
        time.sleep(1.0)
        now = service.metrics.processed
        if now == processed:
            break
        processed = now
    done = time.monotonic() - 1.0
    snapshot = service.metrics.snapshot()
    if os.environ.get("BENCH_DEBUG"):
        print(snapshot)
    service.stop()
    ctx.db.dispose()
    return {"offered": rate, "received": processed, "rate": processed / (done - started),
            "lag": max(0.0, done - ended), "stored_readings": float(snapshot.get("readings_stored", 0)),
            "max_queue": max_depth, "dropped": float(sum((snapshot.get("dropped") or {}).values())),
            "reasons": snapshot.get("dropped") or {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20_000, help="offered messages/s")
    parser.add_argument("--burst", type=float, default=1.0, help="multiply the rate (10 = a 10x burst)")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--publishers", type=int, default=1, help="generator processes")
    args = parser.parse_args()
    global PUBLISHERS
    PUBLISHERS = max(1, args.publishers)
    if not shutil.which("mosquitto"):
        sys.exit("needs the mosquitto binary (Debian package mosquitto)")
    rate = args.rate * args.burst
    folder = Path(tempfile.mkdtemp(prefix="cw-bench-ingest-"))
    broker = PrivateMosquitto(folder)
    try:
        print(f"offered {rate:,.0f} msg/s for {args.seconds:.0f} s over {args.devices:,} devices (QoS 1), "
              f"private mosquitto on {broker.url}")
        ceiling = measure_ceiling(broker.url, rate, args.seconds, args.devices)
        print(f"  ceiling  bare paho subscriber: {ceiling['received']:>9,.0f} msgs  "
              f"{ceiling['rate']:>8,.0f} msg/s  lag {ceiling['lag']:5.1f} s")
        result = measure_ingest(broker.url, rate, args.seconds, args.devices, args.database_url, folder)
        print(f"  ingest   CityWeave into {args.database_url or 'SQLite'}: {result['received']:>9,.0f} msgs  "
              f"{result['rate']:>8,.0f} msg/s  lag {result['lag']:5.1f} s  "
              f"readings {result['stored_readings']:,.0f}  max queue {result['max_queue']:,}  "
              f"dropped {result['dropped']:,.0f} {result['reasons'] or ''}")
        print(f"  peak RSS of this process: {peak_rss_mib():.0f} MiB")
    finally:
        broker.stop()
        os.environ.pop("CITYWEAVE_MQTT_URL", None)


if __name__ == "__main__":
    main()
