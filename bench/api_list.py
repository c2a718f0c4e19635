"""API latency for large lists, against a raw-SQL baseline in the same run.

Loads the demo district into a fresh database (SQLite by default, or the PostgreSQL URL given
with --database-url), starts `cityweave serve` as a real server, signs in, and times:

  * GET /api/v1/places?kind=household&limit=1000   (the list of ~1,000 households)
  * GET /api/v1/persons?limit=1000                 (1,000 residents: decrypt + mask each)

against the same rows read with plain SQL on the same database (the floor no API can beat).
Prints p50 / p99 / mean per request and the demo load time. Run by hand:

    .venv/bin/python bench/api_list.py [--requests 200] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from cityweave.config import Settings
from cityweave.context import AppContext
from cityweave.db import migrate
from cityweave.demo import loader


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return (f"p50 {p(0.50) * 1000:7.2f} ms   p99 {p(0.99) * 1000:7.2f} ms   "
            f"mean {statistics.fmean(ordered) * 1000:7.2f} ms")


def time_calls(fn, n: int) -> list[float]:
    fn()  # warm-up
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="cw-bench-"))
    key = "q2Xn3VUmqkGq6jyHcC0C1Y0Jq4kV1w2mT9o3cYkqH0E="
    settings = Settings(data_dir=data_dir, database_url=args.database_url, secret_key=key, mode="demo")
    ctx = AppContext.build(settings)
    migrate.upgrade(ctx.db.engine)
    report = loader.load(ctx)
    print(f"database: {ctx.db.engine.dialect.name}; demo load: {report.seconds:.1f} s "
          f"({report.places} places, {report.residents} residents)")
    url = ctx.settings.effective_database_url
    ctx.db.dispose()

    port = free_port()
    env = {**os.environ, "CITYWEAVE_SECRET_KEY": key, "CITYWEAVE_LOG_LEVEL": "WARNING"}
    if args.database_url:
        env["CITYWEAVE_DATABASE_URL"] = args.database_url
    server = subprocess.Popen(
        [sys.executable, "-m", "cityweave", "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(100):
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            token = client.post("/api/v1/auth/token", data={"username": "admin", "password": "admin-demo"}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}

            def households() -> None:
                r = client.get("/api/v1/places", params={"kind": "household", "limit": 1000}, headers=headers)
                assert r.status_code == 200 and len(r.json()["items"]) >= 900, r.text[:200]

            def persons() -> None:
                r = client.get("/api/v1/persons", params={"limit": 1000}, headers=headers)
                assert r.status_code == 200 and len(r.json()["items"]) == 1000, r.text[:200]

            engine = create_engine(url)

            def raw_households() -> None:
                with engine.connect() as conn:
                    rows = conn.execute(text("SELECT * FROM places WHERE kind = 'household' ORDER BY id LIMIT 1000")).all()
                assert len(rows) >= 900

            def raw_persons() -> None:
                with engine.connect() as conn:
                    rows = conn.execute(text("SELECT * FROM persons ORDER BY id LIMIT 1000")).all()
                assert len(rows) == 1000

            n = args.requests
            print(f"{n} sequential requests each, one client, server with one worker:")
            print(f"  API  GET /places?kind=household&limit=1000   {percentiles(time_calls(households, n))}")
            print(f"  SQL  SELECT 1000 household rows             {percentiles(time_calls(raw_households, n))}")
            print(f"  API  GET /persons?limit=1000 (decrypt+mask) {percentiles(time_calls(persons, n))}")
            print(f"  SQL  SELECT 1000 person rows                {percentiles(time_calls(raw_persons, n))}")
            engine.dispose()
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
