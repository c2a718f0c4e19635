"""End-to-end ingest: offered vs stored messages/s, latency, memory, reconciliation, against the ceiling.

An open-loop generator (``--publishers`` processes, a fixed rate, round robin over ``--devices``
devices of mixed vendors from the simulator's benchmark fleet) publishes at QoS 1 through a
private Mosquitto started for the run (queues raised so the broker does not drop QoS 1 messages
while a consumer is slow). See bench/_stream.py for why the publishers are hand-written (paho
and payload generation at 20,000 msg/s would eat the two cores the consumer is measured on) and
for the trailer that carries a sequence number and the send time in every payload.

Two consumers see the same stream, one after the other, in the same run:

  ceiling  a bare paho subscriber (MQTT 5, QoS 1, paho's automatic PUBACK) on the same filters
           that only counts: what paho's own read path takes on this machine right now
           (CityWeave's subscriber reads faster, so the ingest may exceed it when it is
           not limited by decoding and storing)
  ingest   CityWeave's IngestService in --processes processes (several: an MQTT 5 shared
           subscription): vendor adapters, batch, TelemetryStore into SQLite (or
           --database-url), receipts, commit, then PUBACK

For each: offered and achieved publish rate, messages received/stored and msg/s, lag (how long
after the last publish the last message was done), publish -> commit latency p50/p99 (ingest),
peak RSS (sampled VmRSS: the ingest processes; the ceiling's growth; the broker), max queue
depth and max backlog (offered but not yet stored: in the broker, the socket or the queue), and the reconciliation: every sequence number the broker
PUBACKed to a publisher must be in ``bench_ledger`` exactly once (missing / stored twice). What is
still missing 30 s after the stream stopped is fetched by restarting the ingest with the same
client ids (the broker holds their sessions); only what is missing after that is lost.

Run by hand (not in CI); the machine's load moves absolute figures, so compare the two rows of
one run and repeat:

    .venv/bin/python bench/ingest.py --rate 20000 --seconds 30 --publishers 2
    .venv/bin/python bench/ingest.py --rate 1000,5000,10000 --seconds 20 --no-ceiling   # latency
    .venv/bin/python bench/ingest.py --rate 2000 --burst 10 --burst-seconds 60 --seconds 30
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stream import LedgerSink, acked_sequences, ingest_results, percentile

from cityweave.config import Settings
from cityweave.context import AppContext
from cityweave.db import migrate
from cityweave.devices.adapters import create_all
from cityweave.devices.binding import InMemoryDirectory

KEY = "q2Xn3VUmqkGq6jyHcC0C1Y0Jq4kV1w2mT9o3cYkqH0E="
STREAM = Path(__file__).resolve().parent / "_stream.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


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


def ingest_topics() -> list[str]:
    adapters = create_all(directory=InMemoryDirectory(auto_bind=True))
    return sorted({t for a in adapters for t in a.subscriptions() + a.discovery_topics()})


class Publishers:
    """The generator: ``count`` processes, each building its share of the message pool, then
    publishing ``phases`` ([rate, seconds], ...) in step once all are ready."""

    def __init__(self, port: int, phases: list[list[float]], count: int, devices: int, folder: Path,
                 tag: str) -> None:
        self.prefix = folder / tag
        self.count = count
        self.phases = phases
        go = self.prefix.with_suffix(".go")
        self.go = go
        self.processes = []
        for index in range(count):
            spec = {"host": "127.0.0.1", "port": port, "index": index, "publishers": count,
                    "devices": devices, "rounds": 2, "phases": phases, "topics": ingest_topics(),
                    "out": str(self.prefix.with_name(f"{tag}-{index}")), "go": str(go)}
            self.processes.append(subprocess.Popen([sys.executable, str(STREAM), json.dumps(spec)]))

    def wait_ready(self) -> None:
        while not all(self.prefix.with_name(f"{self.prefix.name}-{i}").with_suffix(".ready").exists()
                      for i in range(self.count)):
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError("a publisher died while preparing")
            time.sleep(0.05)

    def start(self) -> float:
        self.go.touch()
        return time.monotonic()

    def running(self) -> bool:
        return any(p.poll() is None for p in self.processes)

    def offered_until(self, elapsed: float) -> float:
        total, t = 0.0, elapsed
        for rate, seconds in self.phases:
            total += rate * max(0.0, min(t, seconds))
            t -= seconds
        return total

    def results(self) -> tuple[set[int], dict[str, float]]:
        for p in self.processes:
            p.wait()
        return acked_sequences(self.prefix, self.count)


class Sampler:
    """VmRSS of this process and of the broker, every 0.1 s, while a phase runs."""

    def __init__(self, broker_pid: int, extra: Any = None) -> None:
        self.broker_pid = broker_pid
        self.extra = extra
        self.peak_self = self.peak_broker = 0.0
        self.max_extra = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_self = max(self.peak_self, rss_mib())
            self.peak_broker = max(self.peak_broker, rss_mib(self.broker_pid))
            if self.extra is not None:
                self.max_extra = max(self.max_extra, self.extra())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def measure_ceiling(broker: PrivateMosquitto, phases: list[list[float]], args: argparse.Namespace,
                    folder: Path) -> dict[str, Any]:
    count = 0
    last = [time.monotonic()]

    def on_message(_c: object, _u: object, _m: object) -> None:
        nonlocal count
        count += 1
        last[0] = time.monotonic()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-ceiling", protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.connect("127.0.0.1", broker.port)
    client.subscribe([(topic, 1) for topic in ingest_topics()])
    client.loop_start()
    publishers = Publishers(broker.port, phases, args.publishers, args.devices, folder, "ceiling")
    publishers.wait_ready()
    time.sleep(0.3)
    before = rss_mib()
    sampler = Sampler(broker.process.pid)
    started = publishers.start()
    while publishers.running():
        time.sleep(0.1)
    ended = time.monotonic()
    acked, stats = publishers.results()
    while count < len(acked) and time.monotonic() - last[0] < 5.0:
        time.sleep(0.1)
    sampler.stop()
    client.loop_stop()
    client.disconnect()
    return {"name": "ceiling (bare paho)", "offered": sum(r * s for r, s in phases), "acked": len(acked),
            "published": stats, "done": count, "rate": count / max(1e-9, last[0] - started),
            "lag": max(0.0, last[0] - ended), "rss": sampler.peak_self - before, "broker_rss": sampler.peak_broker}


def measure_ingest(broker: PrivateMosquitto, phases: list[list[float]], args: argparse.Namespace,
                   folder: Path, tag: str) -> dict[str, Any]:
    """``--processes`` ingest processes (one: a plain subscription; several: an MQTT 5 shared
    subscription, each with its own client id, session and receipts) into one database."""
    data = folder / tag
    data.mkdir()
    settings = Settings(data_dir=data, database_url=args.database_url, secret_key=KEY)
    ctx = AppContext.build(settings)
    migrate.upgrade(ctx.db.engine)
    with ctx.db.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE IF EXISTS bench_ledger")
    LedgerSink.create_table(ctx.db.engine)
    count = max(1, args.processes)

    def spawn(round_: int) -> tuple[list[subprocess.Popen[bytes]], list[Path]]:
        workers, outs = [], []
        for index in range(count):
            out = data / f"worker-{round_}-{index}"
            outs.append(out)
            spec = {"url": broker.url, "client_id": f"bench-{tag}-{index}", "key": KEY,
                    "shared_group": "bench" if count > 1 else None, "database_url": args.database_url,
                    "data_dir": str(data), "ready": str(out.with_suffix(".ready")),
                    "stop": str(data / f"stop-{round_}"), "out": str(out)}
            workers.append(subprocess.Popen([sys.executable, str(STREAM), "ingest", json.dumps(spec)]))
        while not all(out.with_suffix(".ready").exists() for out in outs):
            if any(w.poll() is not None for w in workers):
                raise RuntimeError("an ingest process died while starting")
            time.sleep(0.05)
        return workers, outs

    def wait_stored(target: int, patience: float) -> None:
        last_move, seen = time.monotonic(), -1
        while (now := stored()) < target and time.monotonic() - last_move < patience:
            if now != seen:
                seen, last_move = now, time.monotonic()
            time.sleep(0.2)

    def finish(round_: int, workers: list[subprocess.Popen[bytes]]) -> None:
        (data / f"stop-{round_}").touch()
        for worker in workers:
            worker.wait(120)

    sqlite = ctx.db.is_sqlite

    def stored() -> int:
        with ctx.db.engine.connect() as connection:
            sql = "SELECT coalesce(max(rowid), 0) FROM bench_ledger" if sqlite else "SELECT count(*) FROM bench_ledger"
            return int(connection.exec_driver_sql(sql).scalar_one())

    workers, outs = spawn(0)
    publishers = Publishers(broker.port, phases, args.publishers, args.devices, folder, tag)
    publishers.wait_ready()
    time.sleep(0.3)
    rss = {"workers": 0.0}

    def sample_workers() -> float:
        rss["workers"] = max(rss["workers"], sum(rss_mib(w.pid) for w in workers))
        return 0.0

    sampler = Sampler(broker.process.pid, sample_workers)
    started_wall = time.time()
    started = publishers.start()
    max_backlog = 0.0
    while publishers.running():
        max_backlog = max(max_backlog, publishers.offered_until(time.monotonic() - started) - stored())
        time.sleep(0.2)
    ended_wall = time.time()
    acked, stats = publishers.results()
    wait_stored(len(acked), 30.0)
    sampler.stop()
    finish(0, workers)
    # What is still missing may be held by the broker (a consumer that reconnected late, or gave
    # up waiting): a restart with the same client ids and sessions must bring it in. Only what is
    # missing after that is lost.
    before_restart = stored()
    first_round = set(outs)
    if before_restart < len(acked):
        again, more = spawn(1)
        wait_stored(len(acked), 30.0)
        finish(1, again)
        outs += more
    latency: list[float] = []
    info: dict[str, Any] = {"max_queue": 0, "batches": 0, "dropped": {}, "rejected_by_adapters": 0,
                            "last_commit": started_wall}
    for out in outs:
        lat, one = ingest_results(out)
        latency.extend(lat)
        info["max_queue"] = max(info["max_queue"], one["max_queue"])
        info["batches"] += one["batches"]
        info["rejected_by_adapters"] += one["rejected_by_adapters"]
        if out in first_round:  # the throughput is the first round's
            info["last_commit"] = max(info["last_commit"], one["last_commit"] or started_wall)
        for reason, n in one["dropped"].items():
            info["dropped"][reason] = info["dropped"].get(reason, 0) + n
    with ctx.db.engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT seq, count(*) FROM bench_ledger GROUP BY seq").fetchall()
        readings = connection.exec_driver_sql("SELECT count(*) FROM readings").scalar_one()
    ctx.db.dispose()
    stored_set = {seq for seq, _ in rows}
    twice = sum(n - 1 for _, n in rows if n > 1)
    end = info["last_commit"]
    name = f"CityWeave ingest x{count}" if count > 1 else "CityWeave ingest"
    return {"name": name, "offered": sum(r * s for r, s in phases), "acked": len(acked), "published": stats,
            "done": len(stored_set), "rate": len(stored_set) / max(1e-9, end - started_wall),
            "lag": max(0.0, end - ended_wall), "rss": rss["workers"], "broker_rss": sampler.peak_broker,
            "p50": percentile(latency, 50), "p99": percentile(latency, 99),
            "max": max(latency) if latency else float("nan"),
            "missing": len(acked - stored_set), "twice": twice, "not_acked": len(stored_set - acked),
            "after_restart": len(stored_set) - before_restart,
            "readings": readings, "max_queue": info["max_queue"], "max_backlog": max_backlog,
            "dropped": info["dropped"], "batches": info["batches"],
            "rejected_by_adapters": info["rejected_by_adapters"]}


def report(rows: list[dict[str, Any]], phases: list[list[float]]) -> None:
    ceiling = next((r for r in rows if r["name"].startswith("ceiling")), None)
    head = (f"{'consumer':<24}{'offered/s':>10}{'published/s':>12}{'acked':>10}{'done':>10}{'msg/s':>9}"
            f"{'vs ceil':>8}{'lag s':>7}{'p50 ms':>8}{'p99 ms':>8}{'RSS MiB':>8}{'broker MiB':>11}")
    print(head)
    print("-" * len(head))
    seconds = sum(s for _, s in phases)
    for r in rows:
        pub = r["published"]
        ratio = f"{r['rate'] / ceiling['rate']:.2f}" if ceiling and ceiling["rate"] else "-"
        print(f"{r['name']:<24}{r['offered'] / seconds:>10,.0f}{pub['sent'] / max(1e-9, pub['elapsed']):>12,.0f}"
              f"{r['acked']:>10,}{r['done']:>10,}{r['rate']:>9,.0f}{ratio:>8}{r['lag']:>7.1f}"
              f"{r.get('p50', float('nan')):>8.0f}{r.get('p99', float('nan')):>8.0f}{r['rss']:>8.0f}"
              f"{r['broker_rss']:>11.0f}")
    for r in rows:
        if "missing" in r:
            verdict = "OK" if r["missing"] == 0 and r["twice"] == 0 else "FAILED"
            restart = (f" ({r['after_restart']:,} of them only after a restart of the ingest)"
                       if r["after_restart"] else "")
            print(f"  reconciliation {verdict}: acked by broker {r['acked']:,}, stored {r['done']:,}{restart}, "
                  f"missing {r['missing']:,}, stored twice {r['twice']:,}, stored but not acked "
                  f"{r['not_acked']:,}; readings {r['readings']:,}; max queue {r['max_queue']:,.0f}, "
                  f"max backlog {r['max_backlog']:,.0f}; latency max {r['max']:,.0f} ms; "
                  f"{r['batches']} batches; drops {r['dropped'] or 'none'} "
                  f"(adapter-rejected messages {r['rejected_by_adapters']:,})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", default="20000", help="offered msg/s; a comma list runs each in turn")
    parser.add_argument("--seconds", type=float, default=30, help="sustained phase length")
    parser.add_argument("--burst", type=float, default=0, help="first a burst at this multiple of --rate")
    parser.add_argument("--burst-seconds", type=float, default=60)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--publishers", type=int, default=2, help="generator processes")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--processes", type=int, default=1,
                        help="ingest processes (more than one: an MQTT 5 shared subscription)")
    parser.add_argument("--no-ceiling", action="store_true", help="measure the ingest only")
    args = parser.parse_args()
    if not shutil.which("mosquitto"):
        sys.exit("needs the mosquitto binary (Debian package mosquitto)")
    folder = Path(tempfile.mkdtemp(prefix="cw-bench-ingest-"))
    broker = PrivateMosquitto(folder)
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; private mosquitto on {broker.url}; {args.devices:,} devices, "
          f"QoS 1, {args.publishers} publisher processes")
    try:
        for number, rate_text in enumerate(args.rate.split(",")):
            rate = float(rate_text)
            phases = [[rate, args.seconds]]
            if args.burst:
                phases.insert(0, [rate * args.burst, args.burst_seconds])
            print("\nphases: " + ", then ".join(f"{r:,.0f} msg/s for {s:.0f} s" for r, s in phases))
            rows = []
            if not args.no_ceiling:
                rows.append(measure_ceiling(broker, phases, args, folder))
            rows.append(measure_ingest(broker, phases, args, folder, f"ingest{number}"))
            report(rows, phases)
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
