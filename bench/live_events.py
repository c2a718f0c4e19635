"""Live channel latency: NotificationHub.publish → the event read off GET /api/v1/events.

    .venv/bin/python bench/live_events.py                       # 20 streams, 50 alarms/s for 10 s
    .venv/bin/python bench/live_events.py --streams 100 --background 10000

A real uvicorn server on a free port (SQLite in a temporary folder, one platform-admin token);
``--streams`` httpx clients read the stream (``types=alarm``) in threads; a publisher thread
publishes ``--rate`` alarm events per second, each carrying its ``perf_counter`` send time,
while another publishes ``--background`` device_state events per second that the streams filter
out (the cost every subscriber pays in the publisher's thread). Latency = arrival − send, per
stream and event, in one process (same clock). This measures the notifications part of the
issue's alarm latency only: the broker, ingest batch, rules and alarm upsert come before it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from cityweave.accounts import service as accounts
from cityweave.accounts.models import Role
from cityweave.accounts.schemas import GrantIn, UserCreate
from cityweave.api.app import create_app
from cityweave.authz.policy import Principal
from cityweave.config import Settings
from cityweave.context import AppContext, Call
from cityweave.db import migrate
from cityweave.net import bind_tcp
from cityweave.notifications.hub import LiveEvent
from cityweave.security.crypto import generate_master_key

PATH = "/bench/community/grid/building/unit/101/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--rate", type=float, default=50.0, help="alarm events per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--background", type=float, default=0.0, help="filtered-out events per second")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="cw-live-"))
    settings = Settings(data_dir=folder, secret_key=generate_master_key())
    ctx = AppContext.build(settings)
    migrate.upgrade(ctx.db.engine)
    with ctx.db.session() as session:
        call = Call(ctx, session, Principal.system("bench"))
        user = accounts.create_user(call, UserCreate(username="bench", display_name="bench",
                                                     grants=[GrantIn(role=Role.PLATFORM_ADMIN)]))
        token = accounts.issue_tokens(ctx, session, user, source_ip=None).access_token

    app = create_app(ctx)
    hub = app.state.notification_hub
    sockets = bind_tcp("127.0.0.1", 0)
    port = sockets[0].getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)

    latencies: list[float] = []
    lock = threading.Lock()

    def read() -> None:
        with httpx.Client(timeout=httpx.Timeout(10, read=60)) as client, client.stream(
                "GET", f"http://127.0.0.1:{port}/api/v1/events", params={"types": "alarm"},
                headers={"Authorization": f"Bearer {token}"}) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    arrived = time.perf_counter()
                    sent = json.loads(line[6:])["data"]["sent"]
                    with lock:
                        latencies.append(arrived - sent)

    for _ in range(args.streams):
        threading.Thread(target=read, daemon=True).start()
    while hub.subscriber_count < args.streams:
        time.sleep(0.01)

    stop = threading.Event()

    def background() -> None:
        if args.background <= 0:
            return
        interval, next_at = 1.0 / args.background, time.perf_counter()
        while not stop.is_set():
            for _ in range(100):
                hub.publish(LiveEvent("device_state", PATH, {"v": 1}))
            next_at += 100 * interval
            time.sleep(max(0.0, next_at - time.perf_counter()))

    threading.Thread(target=background, daemon=True).start()
    sent = 0
    interval, next_at, end = 1.0 / args.rate, time.perf_counter(), time.perf_counter() + args.seconds
    while time.perf_counter() < end:
        hub.publish(LiveEvent("alarm", PATH, {"sent": time.perf_counter()}))
        sent += 1
        next_at += interval
        time.sleep(max(0.0, next_at - time.perf_counter()))
    time.sleep(1.0)
    stop.set()
    hub.close()
    server.should_exit = True

    got = sorted(latencies)
    expected = sent * args.streams
    if not got:
        print("no events arrived")
        return
    pct = lambda q: got[min(len(got) - 1, int(q * len(got)))] * 1000
    print(f"streams={args.streams} alarms={sent} ({args.rate:g}/s) background={args.background:g}/s "
          f"received={len(got)}/{expected}")
    print(f"latency ms: p50={pct(0.50):.2f} p99={pct(0.99):.2f} max={got[-1] * 1000:.2f} "
          f"mean={statistics.fmean(got) * 1000:.2f}")


if __name__ == "__main__":
    main()
