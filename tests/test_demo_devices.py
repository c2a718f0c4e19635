"""The demo's live devices: the demo residents' buildings get their simulated devices, claimed
into their households once (SQLite, like the demo)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from cityweave.context import AppContext
from cityweave.db import migrate
from cityweave.demo import devices, loader
from cityweave.demo.generator import DEFAULT_SEED
from cityweave.devices.registry.models import Device, DeviceStatus
from cityweave.simulator.fleet import build_fleet
from tests.conftest import make_settings


def test_demo_buildings_get_their_devices_once(tmp_path: Path) -> None:
    ctx = AppContext.build(make_settings(tmp_path, f"sqlite:///{tmp_path / 'demo.sqlite3'}"))
    try:
        migrate.upgrade(ctx.db.engine)
        assert loader.load(ctx, seed=DEFAULT_SEED) is not None
        fleet = devices.demo_fleet(ctx, DEFAULT_SEED)
        assert fleet.devices
        assert {h.id.split("-")[1] for h in fleet.households} == {"b02", "b03"}
        assert "xfl-b03-u2-1801" in {h.id for h in fleet.households}  # the demo resident's home

        small = build_fleet([h for h in fleet.households if h.id == "xfl-b03-u2-1801"], DEFAULT_SEED)
        report = devices.bind(ctx, small)
        assert report is not None and report.devices == len(small.devices) > 0
        with ctx.db.session() as session:
            rows = session.execute(select(Device).where(Device.place_id == "xfl-b03-u2-1801")).scalars().all()
            assert len(rows) == len(small.devices)
            assert {row.status for row in rows} == {DeviceStatus.CLAIMED}
            # Named and placed in rooms the way the family would say it: "客厅灯", "厨房烟雾报警器".
            assert all(row.room and row.name for row in rows)
            assert len({row.name for row in rows}) == len(rows)
            assert "客厅" in {row.room for row in rows} and "客厅灯" in {row.name for row in rows}
        assert devices.bind(ctx, small) is None  # once
        with ctx.db.session() as session:
            assert session.execute(select(func.count()).select_from(Device)).scalar_one() == len(small.devices)
    finally:
        ctx.db.dispose()
