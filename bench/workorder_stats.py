"""How long work-order statistics take over 100,000 cases, against a raw-SQL baseline.

Loads the demo district into a fresh database (SQLite by default, or the PostgreSQL URL given
with --database-url), inserts N work orders spread over the demo's households, categories and
the last 180 days with plausible response/resolution times and ratings, then times, as a platform
admin and as a community admin (whose scope adds a prefix condition):

  * statistics by category, grid, department and week (stats.summarise)
  * hot spots per grid and categories rising week over week
  * the floor: one plain GROUP BY category_id count over the same rows

Run by hand (not in CI):

    .venv/bin/python bench/workorder_stats.py [--cases 100000] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, select, text

from cityweave.accounts.models import RoleGrant, User
from cityweave.authz.policy import Principal
from cityweave.config import Settings
from cityweave.context import AppContext, Call
from cityweave.db import migrate
from cityweave.demo import loader
from cityweave.places.models import Place, PlaceKind
from cityweave.workorders import stats
from cityweave.workorders.models import Category, Channel, Status, WorkOrder


def timed(fn, repeat: int = 5) -> str:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return f"median {statistics.median(samples) * 1000:8.1f} ms   max {max(samples) * 1000:8.1f} ms"


def populate(ctx: AppContext, cases: int) -> float:
    rng = random.Random(7)
    now = ctx.clock.now()
    with ctx.db.session() as session:
        households = session.execute(select(Place.id, Place.path).where(Place.kind == PlaceKind.HOUSEHOLD)).all()
        categories = session.execute(select(Category)).scalars().all()
        users = session.execute(select(User.id)).scalars().all()
    grid_of = {path: path.strip("/").split("/")[4] for _, path in households}
    started = time.perf_counter()
    batch = []
    for n in range(cases):
        place_id, path = rng.choice(households)
        category = rng.choice(categories)
        created = now - timedelta(minutes=rng.randrange(0, 180 * 24 * 60))
        response = timedelta(minutes=rng.expovariate(1 / 40))
        resolution = timedelta(hours=rng.expovariate(1 / category.resolve_within_hours * 1.3))
        done = created + resolution < now and rng.random() < 0.9
        status = rng.choice([Status.CLOSED, Status.CLOSED, Status.CONFIRMED, Status.RESOLVED]) if done else \
            rng.choice([Status.ASSIGNED, Status.IN_PROGRESS, Status.SUBMITTED])
        batch.append({
            "id": f"wo-bench{n:09d}", "number": f"WB{n:09d}", "category_id": category.id,
            "department_id": category.department_id, "status": status.value,
            "priority": category.default_priority.value, "channel": Channel.RESIDENT.value,
            "description": "bench", "place_id": place_id, "place_path": path, "grid_id": grid_of[path],
            "reporter_user_id": rng.choice(users), "anonymous": False, "reopen_count": 0,
            "accept_due_at": created + timedelta(minutes=category.accept_within_minutes),
            "resolve_due_at": created + timedelta(hours=category.resolve_within_hours),
            "escalation": 0, "public": category.public, "created_at": created, "updated_at": created,
            "accepted_at": created + response if created + response < now else None,
            "resolved_at": created + resolution if done else None,
            "satisfaction": rng.choice([3, 4, 4, 5, 5, 5]) if done and rng.random() < 0.6 else None,
        })
        if len(batch) == 5000:
            with ctx.db.session() as session:
                session.execute(insert(WorkOrder), batch)
            batch = []
    if batch:
        with ctx.db.session() as session:
            session.execute(insert(WorkOrder), batch)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="cw-bench-")), database_url=args.database_url,
                        secret_key="q2Xn3VUmqkGq6jyHcC0C1Y0Jq4kV1w2mT9o3cYkqH0E=", mode="demo")
    ctx = AppContext.build(settings)
    if args.database_url:  # start from an empty schema
        with ctx.db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    migrate.upgrade(ctx.db.engine)
    loader.load(ctx)
    seconds = populate(ctx, args.cases)
    print(f"database: {ctx.db.engine.dialect.name}; {args.cases:,} work orders inserted in {seconds:.1f} s")
    with ctx.db.session() as session:
        admin = Principal.system("bench")
        grant = session.execute(select(RoleGrant).where(RoleGrant.role == "community_admin")).scalars().first()
        community = Principal.from_user(session.get(User, grant.user_id), via="token")
        for label, principal in (("platform admin", admin), (f"community admin ({grant.place_path})", community)):
            call = Call(ctx, session, principal)
            print(f"\nas {label}:")
            for by in (stats.GroupBy.CATEGORY, stats.GroupBy.GRID, stats.GroupBy.DEPARTMENT, stats.GroupBy.WEEK):
                print(f"  statistics by {by.value:<10} {timed(lambda: stats.summarise(call, by=by, days=180))}")
            print(f"  hot spots               {timed(lambda: stats.hotspots(call, days=180))}")
            print(f"  rising categories       {timed(lambda: stats.rising(call))}")
        floor = lambda: session.execute(text(
            "SELECT category_id, count(*) FROM work_orders GROUP BY category_id")).all()
        print(f"\nfloor: plain GROUP BY count   {timed(floor)}")
    ctx.db.dispose()


if __name__ == "__main__":
    main()
