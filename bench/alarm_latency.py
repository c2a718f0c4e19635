"""Alarm latency: from a smoke payload published on a real broker to the alarm on the live push
channel (Server-Sent Events), with background telemetry, against the broker's own delivery time
measured in the same run.

What runs: a private Mosquitto; CityWeave in this process exactly as `cityweave serve` wires it
(DeviceRuntime: MQTT ingest → telemetry → rule engine → alarms → notifications hub; the API on a
real uvicorn server); a smoke detector registered in a household (native CityWeave format); an
SSE client signed in as a platform administrator; a bare paho subscriber on the smoke topic (the
baseline: the broker's delivery time); and, per phase, open-loop background telemetry from
bench/ingest.py's raw-socket publishers (real vendor payloads of 10,000 mixed devices; they are
bound on the fly, as bench/ingest.py does, so that they are decoded and stored like real ones).

Every ``--interval`` seconds the detector reports smoke. The fire rule raises one alarm and counts
each further report (``count``); the k-th report's latency is the arrival of the first live event
whose count reaches k. ``--safety-session off`` runs without the ingest's second MQTT session
(``CITYWEAVE_INGEST_SAFETY_SESSION``; docs/ingest.md), to compare. The machine's load average
(/proc/loadavg, 1 min) is printed per phase. Run by hand (not in CI):

    .venv/bin/python bench/alarm_latency.py [--background 0,1000,2000,10000] [--seconds 20] [--safety-session off]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _stream import split_trailer

from cityweave.accounts import service as accounts
from cityweave.accounts.models import Role
from cityweave.accounts.schemas import GrantIn, UserCreate
from cityweave.api.app import create_app
from cityweave.authz.policy import Principal
from cityweave.config import Settings
from cityweave.context import AppContext, Call
from cityweave.db import migrate
from cityweave.devices.binding import InMemoryDirectory
from cityweave.devices.registry import service as devices
from cityweave.devices.registry.schemas import CapabilityRefModel, DeviceRegister
from cityweave.net import bind_tcp
from cityweave.places import service as places
from cityweave.places.models import PlaceKind
from cityweave.places.schemas import PlaceCreate
from cityweave.runtime import DeviceRuntime
from ingest import KEY, PrivateMosquitto, Publishers, rss_mib

TREE = [("bc", PlaceKind.CITY, None), ("bc-d", PlaceKind.DISTRICT, "bc"), ("bc-s", PlaceKind.STREET, "bc-d"),
        ("bcc", PlaceKind.COMMUNITY, "bc-s"), ("bcc-g", PlaceKind.GRID, "bcc"), ("bcc-b", PlaceKind.BUILDING, "bcc-g"),
        ("bcc-b-u", PlaceKind.UNIT, "bcc-b"), ("bcc-b-u-101", PlaceKind.HOUSEHOLD, "bcc-b-u")]


class StripTrailer:
    """The background publishers append ``\\n#seq,sent`` to each payload (bench/_stream.py);
    the vendor adapter must see the vendor's bytes alone."""

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)

    def decode(self, topic: str, payload: bytes, received_at: Any) -> Any:
        parts = split_trailer(payload)
        return self._adapter.decode(topic, parts[0] if parts else payload, received_at)


def build(folder: Path, broker: PrivateMosquitto, database_url: str | None,
          safety_session: bool = True) -> tuple[AppContext, str, str]:
    settings = Settings(data_dir=folder / "data", database_url=database_url, secret_key=KEY, mqtt_url=broker.url,
                        mqtt_client_id="bench-alarm", ingest_safety_session=safety_session)
    ctx = AppContext.build(settings)
    migrate.upgrade(ctx.db.engine)
    with ctx.db.session() as session:
        call = Call(ctx, session, Principal.system("bench"))
        for place_id, kind, parent in TREE:
            places.create_place(call, PlaceCreate(id=place_id, kind=kind, parent_id=parent, name=place_id))
        device, _, _ = devices.register(call, DeviceRegister(
            place_id="bcc-b-u-101", name="厨房烟感", adapter="native", device_type="smoke_detector",
            capabilities=[CapabilityRefModel(capability="smoke")]))
        user = accounts.create_user(call, UserCreate(username="bench-admin", display_name="bench",
                                                     grants=[GrantIn(role=Role.PLATFORM_ADMIN)]))
        token = accounts.issue_tokens(ctx, session, user, source_ip=None).access_token
    return ctx, device.id, token


class LiveClient(threading.Thread):
    """Reads alarm events off /api/v1/events; remembers (arrival, count) of each."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.events: list[tuple[float, int]] = []
        self.connected = threading.Event()
        self.stop = False

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(timeout=None) as client, client.stream(
                "GET", f"{self.url}/api/v1/events", params={"types": "alarm"}, headers=headers) as response:
            self.connected.set()
            for line in response.iter_lines():
                if self.stop:
                    return
                if line.startswith("data:"):
                    data = json.loads(line[5:]).get("data", {})
                    self.events.append((time.monotonic(), int(data.get("count", 0))))


def load_average() -> float:
    """The machine's 1-minute load average: the figures mean little without it on a shared host."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--background", default="0,1000,2000,10000", help="msg/s of telemetry, one phase each")
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between smoke reports")
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--safety-session", choices=["on", "off"], default="on",
                        help="the ingest's second MQTT session for life-safety topics")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="cw-alarm-bench-"))
    broker = PrivateMosquitto(folder)
    ctx, device_id, token = build(folder, broker, args.database_url, args.safety_session == "on")

    runtime = DeviceRuntime(ctx)
    auto = InMemoryDirectory(auto_bind=True)
    registry_find = runtime.directory.find
    runtime.directory.find = lambda adapter, key: registry_find(adapter, key) or auto.find(adapter, key)  # type: ignore[method-assign]
    runtime.ingest.adapters[:] = [StripTrailer(a) for a in runtime.ingest.adapters]
    runtime.start()
    assert runtime.wait_connected(15), "the ingest did not connect"
    app = create_app(ctx)
    runtime.install(app)
    sockets = bind_tcp("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", server_header=False))
    threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    live = LiveClient(base, token)
    live.start()
    live.connected.wait(10)

    topic = f"cityweave/v1/{device_id}/state"
    broker_seen: dict[int, float] = {}
    watcher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-baseline")
    watcher.on_message = lambda _c, _u, m: broker_seen.setdefault(json.loads(m.payload)["seq"], time.monotonic())
    watcher.connect("127.0.0.1", broker.port)
    watcher.subscribe(topic, qos=1)
    watcher.loop_start()
    sender = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-smoke")
    sender.connect("127.0.0.1", broker.port)
    sender.loop_start()
    time.sleep(1.0)

    rows = []
    sent_k = 0
    for index, rate in enumerate(float(r) for r in args.background.split(",")):
        publishers = None
        if rate > 0:
            publishers = Publishers(broker.port, [[rate, args.seconds + 2]], args.publishers, 10_000, folder,
                                    f"bg{index}")
            publishers.wait_ready()
            publishers.start()
            time.sleep(2.0)  # let the background reach its rate
        sends: dict[int, float] = {}
        ended = time.monotonic() + args.seconds
        while time.monotonic() < ended:
            sent_k += 1
            body = {"v": 1, "kind": "state", "device": device_id, "seq": sent_k,
                    "readings": [{"capability": "smoke", "value": True}]}
            sends[sent_k] = time.monotonic()
            sender.publish(topic, json.dumps(body).encode(), qos=1)
            time.sleep(args.interval)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (not live.events or live.events[-1][1] < sent_k):
            time.sleep(0.1)
        if publishers is not None:
            while publishers.running():
                time.sleep(0.2)
        latencies, baseline, missing = [], [], 0
        for k, at in sends.items():
            arrival = next((t for t, count in live.events if count >= k), None)
            if arrival is None:
                missing += 1
                continue
            latencies.append((arrival - at) * 1000)
            if k in broker_seen:
                baseline.append((broker_seen[k] - at) * 1000)
        rows.append({"background": rate, "n": len(sends), "missing": missing,
                     "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                     "max": max(latencies, default=float("nan")), "mean": statistics.fmean(latencies or [0.0]),
                     "broker_p50": percentile(baseline, 0.5), "broker_p99": percentile(baseline, 0.99),
                     "rss": rss_mib(), "load": load_average()})
        print(f"phase {index + 1}: background {rate:,.0f} msg/s done", flush=True)

    print(f"\ndatabase: {ctx.db.engine.dialect.name}; smoke every {args.interval * 1000:.0f} ms, "
          f"{args.seconds:.0f} s per phase; safety session {args.safety_session}; "
          f"safety copies dropped {runtime.ingest.metrics.dropped.get('safety_copy', 0)}; "
          f"ingest status {runtime.ingest.status()}")
    print("background msg/s | smoke reports | no event | alarm p50 ms | p99 ms | max ms | broker p50 | broker p99 | RSS MiB | load")
    for r in rows:
        print(f"{r['background']:>16,.0f} | {r['n']:>13} | {r['missing']:>8} | {r['p50']:>12.1f} | {r['p99']:>6.1f} | "
              f"{r['max']:>6.0f} | {r['broker_p50']:>10.1f} | {r['broker_p99']:>10.1f} | {r['rss']:>7.0f} | {r['load']:>4.1f}")
    live.stop = True
    sender.loop_stop()
    watcher.loop_stop()
    server.should_exit = True
    runtime.stop()
    broker.stop()


if __name__ == "__main__":
    main()
