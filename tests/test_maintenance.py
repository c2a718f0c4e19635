"""The device runtime's housekeeping (``DeviceRuntime.maintain``, run hourly by its maintenance
thread): telemetry past its retention and the delivery receipts of ingest client ids gone for
longer than their MQTT session (7 days) are deleted; what is still useful stays. Both backends,
with the manual clock."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from cityweave.clock import ManualClock
from cityweave.context import AppContext
from cityweave.devices.reading import Reading
from cityweave.ingest import receipts
from cityweave.ingest.receipts import IngestReceipt
from cityweave.runtime import DeviceRuntime
from cityweave.telemetry.models import readings
from cityweave.telemetry.store import TelemetryStore
from tests.world import World


def test_maintain_prunes_old_telemetry_and_the_receipts_of_gone_clients(ctx: AppContext, world: World,
                                                                        clock: ManualClock) -> None:
    device = next(iter(world.device_of_household.values()))
    start = clock.now()
    ctx.settings.telemetry_raw_days = 30
    with ctx.db.session() as session:
        # Two clients stop storing now; one of them comes back after 7 days and stores again.
        receipts.record(session, "gone", [(1, "a"), (2, "b")], start)
        receipts.record(session, "back", [(1, "a")], start)
        TelemetryStore(clock).write(session, [
            Reading(device, "temperature", 20.0 + day, start + timedelta(days=day)) for day in (0, 25)], {})
    clock.advance(days=7, seconds=30)
    with ctx.db.session() as session:
        receipts.record(session, "back", [(2, "b")], clock.now())

    runtime = DeviceRuntime(ctx)  # not started: the one-shot pass is what the thread runs
    assert runtime.maintain() == {"receipts": 2, "raw": 0, "minute": 0, "hour": 0}
    with ctx.db.session() as session:
        kept = session.execute(select(IngestReceipt.client_id, IngestReceipt.packet_id)
                               .order_by(IngestReceipt.client_id, IngestReceipt.packet_id)).all()
        assert [tuple(row) for row in kept] == [("back", 1), ("back", 2)]

    clock.advance(days=30)  # the first reading is now 37 days old, the second 12
    done = runtime.maintain()
    assert done["raw"] == 1 and done["receipts"] == 2  # "back" went quiet too
    with ctx.db.session() as session:
        assert session.execute(select(func.count()).select_from(readings)
                               .where(readings.c.device_key == device)).scalar_one() == 1
        assert session.execute(select(func.count()).select_from(IngestReceipt)).scalar_one() == 0
    assert runtime.maintain()["raw"] == 0  # nothing left to do


def test_the_maintenance_interval_is_a_setting(ctx: AppContext) -> None:
    from cityweave.config import Settings

    assert Settings().maintenance_interval_seconds == 3600
    assert Settings(maintenance_interval_seconds=60).maintenance_interval_seconds == 60
