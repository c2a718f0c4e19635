"""The work-order lifecycle through the domain service, with a controllable clock, both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cityweave.accounts.models import Role
from cityweave.audit.models import AuditRecord
from cityweave.errors import Conflict, Forbidden, Invalid, NotFound
from cityweave.workorders import deadlines, service
from cityweave.workorders.models import Channel, Status, WorkOrder, WorkOrderEvent
from cityweave.workorders.schemas import (
    Contact,
    MergeInput,
    RateInput,
    TransferInput,
)
from tests.workorders.support import HOME, Recorder, add_user, as_system, as_user, report


def test_a_resident_report_is_routed_to_the_property_staff_with_deadlines(ctx, world, clock):
    events = Recorder(ctx)
    resident, staff = world.user_ids[Role.RESIDENT], world.user_ids[Role.PROPERTY_STAFF]
    with as_user(ctx, resident) as call:
        order = service.submit(call, report())
        assert events.changes == []  # nothing announced before the commit
    assert order.status is Status.ASSIGNED and order.assignee_user_id == staff
    assert order.channel is Channel.RESIDENT and order.reporter_user_id == resident
    assert order.grid_id == "ca-g1" and order.place_path.endswith(f"/{HOME}/")
    assert order.number.startswith(f"WO{clock.now():%Y%m%d}-") and len(order.number) == 17
    assert order.accept_due_at == clock.now() + timedelta(minutes=30)
    assert order.resolve_due_at == clock.now() + timedelta(hours=24)
    assert events.actions() == ["submitted", "routed"]
    assert events.changes[-1].assignee_user_id == staff
    with as_system(ctx) as call:
        audit = call.session.execute(select(AuditRecord).where(AuditRecord.object_id == order.id)).scalars().all()
        assert [a.action for a in audit] == ["work_order.submit"]


def test_full_lifecycle_to_a_rated_close(ctx, world, clock):
    resident, staff = world.user_ids[Role.RESIDENT], world.user_ids[Role.PROPERTY_STAFF]
    with as_user(ctx, resident) as call:
        order_id = service.submit(call, report()).id
    clock.advance(minutes=10)
    with as_user(ctx, staff) as call:
        order = service.start(call, order_id, "师傅十分钟内到")
        assert order.status is Status.IN_PROGRESS and order.accepted_at == clock.now()
    clock.advance(hours=2)
    with as_user(ctx, staff) as call:
        assert service.resolve(call, order_id, "已更换阀门").resolved_at == clock.now()
    with as_user(ctx, resident) as call:
        order = service.rate(call, order_id, RateInput(satisfaction=5, comment="很快，谢谢"))
        assert order.status is Status.CLOSED and order.satisfaction == 5
        assert order.confirmed_at == order.closed_at == clock.now()
        public = [(e.action, e.to_status) for e in service.history(call, order_id)]
    # The reporter sees the public steps only (not the routing and assignment details).
    assert public == [("submitted", "submitted"), ("start", "in_progress"), ("resolve", "resolved"),
                      ("confirm", "confirmed"), ("close", "closed")]
    with as_user(ctx, staff) as call:
        everything = [e.action for e in service.history(call, order_id)]
    assert everything == ["submitted", "routed", "start", "resolve", "confirm", "rated", "close"]


def test_wrong_steps_conflict_and_only_the_reporter_confirms(ctx, world):
    resident, staff = world.user_ids[Role.RESIDENT], world.user_ids[Role.PROPERTY_STAFF]
    with as_user(ctx, resident) as call:
        order_id = service.submit(call, report()).id
    with as_user(ctx, resident) as call, pytest.raises(Conflict, match="cannot confirm"):
        service.confirm(call, order_id)  # not before it is resolved
    with as_user(ctx, staff) as call, pytest.raises(Forbidden, match="only the reporter"):
        service.confirm(call, order_id)  # the staff may not confirm for a signed-in resident ...
    with as_user(ctx, staff) as call:
        service.resolve(call, order_id)
    with as_user(ctx, staff) as call, pytest.raises(Forbidden, match="only the reporter"):
        service.confirm(call, order_id)  # ... not even once it is resolved
    with as_user(ctx, resident) as call, pytest.raises(NotFound):
        service.start(call, "wo-doesnotexist")
    with as_user(ctx, resident) as call, pytest.raises(Forbidden):
        service.start(call, order_id)  # the reporter sees it but does not handle it


def test_reject_transfer_and_reopen(ctx, world, clock):
    resident, staff, grid = (world.user_ids[r] for r in (Role.RESIDENT, Role.PROPERTY_STAFF, Role.GRID_WORKER))
    with as_user(ctx, resident) as call:
        first = service.submit(call, report()).id
        second = service.submit(call, report("repair-water")).id
    with as_user(ctx, staff) as call:
        rejected = service.reject(call, first, "楼上住户漏水，请联系楼上")
        assert rejected.status is Status.REJECTED and rejected.closed_at == clock.now()
        clock.advance(minutes=5)
        moved = service.transfer(call, second, TransferInput(category_id="noise", reason="其实是噪音问题"))
    # Noise is the grid workers' job: routed again, response clock restarted for the new unit.
    assert moved.category_id == "noise" and moved.department_id == "committee"
    assert moved.assignee_user_id == grid and moved.status is Status.ASSIGNED
    assert moved.accepted_at is None and moved.accept_due_at == clock.now() + timedelta(minutes=60)
    with as_user(ctx, grid) as call:
        service.resolve(call, second, "已劝导")
    clock.advance(days=1)
    with as_user(ctx, resident) as call:
        again = service.reopen(call, second, "晚上还是很吵")
    assert again.status is Status.ASSIGNED and again.reopen_count == 1 and again.resolved_at is None
    with as_user(ctx, grid) as call:
        service.resolve(call, second, "再次上门")
    clock.advance(days=31)
    with as_user(ctx, resident) as call, pytest.raises(Conflict, match="30 days"):
        service.reopen(call, second, "又吵了")


def test_duplicates_are_found_and_merged(ctx, world, clock):
    resident, staff = world.user_ids[Role.RESIDENT], world.user_ids[Role.PROPERTY_STAFF]
    other = world.household_user["ca-b1-u1-102"]
    with as_user(ctx, resident) as call:
        keep = service.submit(call, report("repair-lift", "ca-b1")).id
    clock.advance(minutes=20)
    with as_user(ctx, other) as call:
        duplicate = service.submit(call, report("repair-lift", "ca-b1")).id
    clock.advance(hours=3)
    with as_user(ctx, other) as call:
        later = service.submit(call, report("repair-lift", "ca-b1")).id
    with as_user(ctx, staff) as call:
        found = [o.id for o in service.duplicates_of(call, service.get(call, duplicate))]
        assert found == [keep]  # the one three hours later is not a duplicate
        assert later not in found
        with pytest.raises(Invalid):
            service.merge(call, duplicate, MergeInput(into=duplicate))
        merged = service.merge(call, duplicate, MergeInput(into=keep))
        assert merged.status is Status.MERGED and merged.merged_into == keep
        kept_events = [e.action for e in service.history(call, keep)]
        assert "merged_in" in kept_events


def test_timers_escalate_and_survive_a_restart(ctx, world, clock, tmp_path):
    resident = world.user_ids[Role.RESIDENT]
    events = Recorder(ctx)
    with as_user(ctx, resident) as call:
        order_id = service.submit(call, report("noise")).id  # accept 60 min, resolve 48 h
    clock.advance(minutes=59)
    with ctx.db.session() as session:
        assert deadlines.check(session, ctx.bus, clock.now()) == 0
    # "Restart": a brand-new Database on the same URL; the timers are columns, nothing in memory.
    from cityweave.db.engine import Database

    fresh = Database(ctx.db.url)
    try:
        clock.advance(minutes=2)
        with fresh.session() as session:
            assert deadlines.check(session, ctx.bus, clock.now()) == 1
        with fresh.session() as session:
            order = session.get(WorkOrder, order_id)
            assert order.escalation == 1 and order.next_check_at is not None
            clock.set(order.resolve_due_at + timedelta(seconds=1))
        with fresh.session() as session:
            assert deadlines.check(session, ctx.bus, clock.now()) == 1
            assert deadlines.check(session, ctx.bus, clock.now()) == 0  # once only
        with fresh.session() as session:
            order = session.get(WorkOrder, order_id)
            assert order.escalation == 2 and order.next_check_at is None
            actions = session.execute(select(WorkOrderEvent.action).where(
                WorkOrderEvent.work_order_id == order_id)).scalars().all()
            assert actions == ["submitted", "routed", "at_risk", "overdue"]
    finally:
        fresh.dispose()
    assert [c.escalation for c in events.changes if c.action == "escalated"] == [1, 2]


def test_silence_confirms_then_closes(ctx, world, clock):
    resident, grid = world.user_ids[Role.RESIDENT], world.user_ids[Role.GRID_WORKER]
    with as_user(ctx, resident) as call:
        order_id = service.submit(call, report("noise")).id
    with as_user(ctx, grid) as call:
        service.resolve(call, order_id, "done")
    clock.advance(days=3, seconds=1)
    with ctx.db.session() as session:
        assert deadlines.check(session, ctx.bus, clock.now()) == 1
        assert session.get(WorkOrder, order_id).status is Status.CONFIRMED
    clock.advance(days=7, seconds=1)
    with ctx.db.session() as session:
        assert deadlines.check(session, ctx.bus, clock.now()) == 1
        assert session.get(WorkOrder, order_id).status is Status.CLOSED


def test_rota_takes_turns_and_least_load_balances(ctx, world):
    staff = world.user_ids[Role.PROPERTY_STAFF]
    second = add_user(ctx, "property_b", Role.PROPERTY_STAFF, "ca")
    resident = world.user_ids[Role.RESIDENT]
    with as_user(ctx, resident) as call:
        # sanitation goes by rota: strictly alternating, whatever the load
        turns = [service.submit(call, report("sanitation", "ca-b1")).assignee_user_id for _ in range(4)]
    ordered = sorted([staff, second])
    assert turns == [ordered[0], ordered[1], ordered[0], ordered[1]]
    with as_user(ctx, resident) as call:
        # repair-water goes to whoever has fewer open work orders (equal now: the first by id)
        loads = [service.submit(call, report("repair-water")).assignee_user_id for _ in range(4)]
    assert sorted(loads) == sorted([staff, second, staff, second])


def test_hotline_call_on_behalf_keeps_the_caller_encrypted_and_masked(ctx, world):
    staff = world.user_ids[Role.PROPERTY_STAFF]
    with as_user(ctx, staff) as call:
        order = service.submit(call, report(channel=Channel.HOTLINE,
                                            contact=Contact(name="赵大爷", phone="13912345678")))
        assert order.reporter_user_id is None and order.entered_by == staff
        assert b"13912345678" not in order.contact_enc and "赵大爷".encode() not in order.contact_enc
        assert service.reporter_label(call, order) == "赵**"
    with as_user(ctx, world.user_ids[Role.RESIDENT]) as call, pytest.raises(Invalid) as refused:
        service.submit(call, report(channel=Channel.HOTLINE))
    assert refused.value.errors[0].pointer == "/channel" and "staff" in refused.value.errors[0].detail


def test_anonymous_reports_hide_the_reporter_even_from_handlers(ctx, world):
    with as_user(ctx, world.user_ids[Role.RESIDENT]) as call:
        order = service.submit(call, report("fire-escape", "ca-b1", anonymous=True))
        assert not order.public  # an anonymous report never appears in public listings
    with as_user(ctx, world.user_ids[Role.PROPERTY_STAFF]) as call:
        assert service.reporter_label(call, service.get(call, order.id)) is None


def test_the_running_service_checks_work_order_deadlines(ctx, world, clock):
    """The runtime's timer thread calls this every few seconds; here it is called once."""
    from cityweave.runtime import DeviceRuntime

    with as_user(ctx, world.user_ids[Role.RESIDENT]) as call:
        order_id = service.submit(call, report("noise")).id
    runtime = DeviceRuntime(ctx)
    assert runtime.check_work_orders() == 0
    clock.advance(hours=49)
    assert runtime.check_work_orders() == 1
    with ctx.db.session() as session:
        assert session.get(WorkOrder, order_id).escalation == 2
