"""The lifecycle through the service: steps with who/when/note, history, audit, escalation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cityweave.accounts.models import Role
from cityweave.alarms import service
from cityweave.alarms.escalation import ELDERLY_CHAIN
from cityweave.alarms.events import AlarmChange
from cityweave.alarms.models import Alarm, AlarmEvent, AlarmStatus, Severity
from cityweave.audit.models import AuditRecord
from cityweave.authz.policy import Unauthorized
from cityweave.clock import ManualClock
from cityweave.context import AppContext
from cityweave.errors import Conflict, NotFound
from tests.alarms.support import NEIGHBOUR, OWN, fall, smoke
from tests.devices_registry.support import call_as

GRID = "/tc/tc-d1/tc-d1-s1/ca/ca-g1/"
HOUSEHOLD = "/tc/tc-d1/tc-d1-s1/ca/ca-g1/ca-b1/ca-b1-u1/ca-b1-u1-101/"


def _events(ctx: AppContext, alarm_id: str) -> list[tuple[str, str, str | None]]:
    with ctx.db.session() as session:
        return [(e.action, e.actor, e.note) for e in session.execute(
            select(AlarmEvent).where(AlarmEvent.alarm_id == alarm_id).order_by(AlarmEvent.id)).scalars()]


def _audit(ctx: AppContext, alarm_id: str) -> list[tuple[str, str, str | None]]:
    with ctx.db.session() as session:
        return [(r.action, r.actor_label, r.place_path) for r in session.execute(
            select(AuditRecord).where(AuditRecord.object_id == alarm_id).order_by(AuditRecord.seq)).scalars()]


def _alarm(ctx: AppContext, alarm_id: str) -> Alarm:
    with ctx.db.session() as session:
        alarm = session.get(Alarm, alarm_id)
        assert alarm is not None
        return alarm


def test_raised_acknowledged_dispatched_resolved(ctx: AppContext, clock: ManualClock) -> None:
    t0 = clock.now()
    with ctx.db.session() as session:
        raised = service.raise_alarm(session, fall(), t0)
    assert raised.audience == "family"  # the first step is told at once
    with ctx.db.session() as session:
        ack = service.acknowledge(call_as(ctx, session, Role.GRID_WORKER, GRID), raised.alarm_id, "calling her")
    t1 = clock.advance(seconds=40)
    with ctx.db.session() as session:
        sent = service.dispatch(call_as(ctx, session, Role.GRID_WORKER, GRID), raised.alarm_id, "on my way",
                                work_order=None)
    t2 = clock.advance(minutes=15)
    with ctx.db.session() as session:
        done = service.resolve(call_as(ctx, session, Role.GRID_WORKER, GRID), raised.alarm_id, "she is fine")
    assert [c.change for c in (ack, sent, done)] == ["acknowledged", "dispatched", "resolved"]
    assert [c.status for c in (ack, sent, done)] == [AlarmStatus.ACKNOWLEDGED, AlarmStatus.DISPATCHED,
                                                     AlarmStatus.RESOLVED]
    assert ack.actor == "grid_worker-test" and ack.note == "calling her" and done.at == t2
    alarm = _alarm(ctx, raised.alarm_id)
    assert (alarm.acknowledged_at, alarm.dispatched_at, alarm.closed_at) == (t0, t1, t2)
    assert alarm.open_key is None and alarm.escalation_due_at is None
    assert alarm.work_order_requested is True and alarm.work_order_ref is None  # a fall needs a visit
    assert _events(ctx, alarm.id) == [
        ("raised", "alarms", None), ("acknowledged", "grid_worker-test", "calling her"),
        ("dispatched", "grid_worker-test", "on my way"), ("work_order_requested", "grid_worker-test", None),
        ("resolved", "grid_worker-test", "she is fine"),
    ]
    assert _audit(ctx, alarm.id) == [
        ("alarm.raise", "alarms", HOUSEHOLD), ("alarm.acknowledge", "grid_worker-test", HOUSEHOLD),
        ("alarm.dispatch", "grid_worker-test", HOUSEHOLD), ("alarm.resolve", "grid_worker-test", HOUSEHOLD),
    ]
    # The same cause again is a new incident.
    with ctx.db.session() as session:
        again = service.raise_alarm(session, fall(), clock.advance(minutes=1))
    assert again.change == "raised" and again.alarm_id != raised.alarm_id and again.count == 1


def test_wrong_transitions_are_conflicts(ctx: AppContext, clock: ManualClock) -> None:
    with ctx.db.session() as session:
        alarm_id = service.raise_alarm(session, smoke(), clock.now()).alarm_id
    with ctx.db.session() as session:
        service.acknowledge(call_as(ctx, session, Role.PROPERTY_STAFF, "/tc/tc-d1/tc-d1-s1/ca/"), alarm_id)
    for step in (service.acknowledge,):
        with ctx.db.session() as session, pytest.raises(Conflict):
            step(call_as(ctx, session, Role.PROPERTY_STAFF, "/tc/tc-d1/tc-d1-s1/ca/"), alarm_id)
    with ctx.db.session() as session:
        service.resolve(call_as(ctx, session, Role.RESIDENT, HOUSEHOLD), alarm_id, "false alarm, toast")
    for step in (service.acknowledge, service.dispatch, service.resolve):
        with ctx.db.session() as session, pytest.raises(Conflict):
            step(call_as(ctx, session, Role.PROPERTY_STAFF, "/tc/tc-d1/tc-d1-s1/ca/"), alarm_id)
    assert [a for a, _, _ in _events(ctx, alarm_id)] == ["raised", "acknowledged", "resolved"]


def test_scope_hides_and_forbids(ctx: AppContext, clock: ManualClock) -> None:
    with ctx.db.session() as session:
        own = service.raise_alarm(session, smoke(), clock.now()).alarm_id
        other = service.raise_alarm(session, smoke(NEIGHBOUR, "dev-smoke0002"), clock.now()).alarm_id
    with ctx.db.session() as session:
        resident = call_as(ctx, session, Role.RESIDENT, HOUSEHOLD)
        assert service.get_alarm(resident, own).id == own
        with pytest.raises(NotFound):
            service.get_alarm(resident, other)
        with pytest.raises(NotFound):
            service.acknowledge(resident, other)
        with pytest.raises(Unauthorized) as denied:
            service.dispatch(resident, own)  # visible, but residents do not dispatch
        assert not denied.value.hidden
        operator = call_as(ctx, session, Role.CITY_OPERATOR, "/tc/")
        assert service.get_alarm(operator, other).id == other
        with pytest.raises(Unauthorized):
            service.acknowledge(operator, other)
        officer = call_as(ctx, session, Role.DEPARTMENT_OFFICER, "/tc/tc-d1/tc-d1-s1/ca/")
        with pytest.raises(NotFound):
            service.get_alarm(officer, own)


def test_clearing_leaves_a_dispatched_alarm_to_the_people_on_site(ctx: AppContext, clock: ManualClock) -> None:
    with ctx.db.session() as session:
        raised = service.raise_alarm(session, smoke(), clock.now())
    with ctx.db.session() as session:
        service.dispatch(call_as(ctx, session, Role.COMMUNITY_ADMIN, "/tc/tc-d1/tc-d1-s1/ca/"), raised.alarm_id,
                         work_order=True)
    with ctx.db.session() as session:
        assert service.clear_alarm(session, raised.cause_key, clock.advance(seconds=9), reason="no smoke") is None
    alarm = _alarm(ctx, raised.alarm_id)
    assert alarm.status is AlarmStatus.DISPATCHED and alarm.open_key == raised.cause_key
    assert [a for a, _, _ in _events(ctx, alarm.id)] == [
        "raised", "dispatched", "work_order_requested", "condition_cleared"]
    # Further smoke counts onto the same incident.
    with ctx.db.session() as session:
        assert service.raise_alarm(session, smoke(), clock.now()).alarm_id == raised.alarm_id


def test_escalation_chain_walks_each_step_then_reminds(ctx: AppContext, clock: ManualClock) -> None:
    t0 = clock.now()
    with ctx.db.session() as session:
        raised = service.raise_alarm(session, fall(), t0)
        quiet = service.raise_alarm(session, smoke(NEIGHBOUR, "dev-smoke0002"), t0)  # no chain
    assert (raised.audience, quiet.audience) == ("family", None)

    def tick(**delta: float) -> list[tuple[str, str | None]]:
        clock.set(t0 + timedelta(**delta))
        with ctx.db.session() as session:
            return [(c.alarm_id, c.audience) for c in service.escalate_due(session, clock.now())]

    aid = raised.alarm_id
    assert tick(seconds=119) == []
    assert tick(seconds=120) == [(aid, "grid_worker")]
    assert tick(seconds=121) == []  # once per deadline
    assert tick(seconds=419) == []
    assert tick(seconds=420) == [(aid, "community_staff")]
    assert tick(seconds=1019) == []
    assert tick(seconds=1020) == [(aid, "community_staff")]  # past the last step: a reminder
    assert tick(seconds=1620) == [(aid, "community_staff")]
    alarm = _alarm(ctx, aid)
    assert alarm.escalation_step == 2 and alarm.escalation_due_at == t0 + timedelta(seconds=2220)
    with ctx.db.session() as session:
        service.acknowledge(call_as(ctx, session, Role.COMMUNITY_ADMIN, "/tc/tc-d1/tc-d1-s1/ca/"), aid, "got it")
    assert tick(days=3) == []
    escalations = [(e[0]) for e in _events(ctx, aid) if e[0] == "escalated"]
    assert len(escalations) == 4
    assert [a for a, _, _ in _audit(ctx, aid)] == ["alarm.raise"] + ["alarm.escalate"] * 4 + ["alarm.acknowledge"]
    with ctx.db.session() as session:
        details = [e.details for e in session.execute(select(AlarmEvent).where(
            AlarmEvent.alarm_id == aid, AlarmEvent.action == "escalated").order_by(AlarmEvent.id)).scalars()]
    assert [(d["step"], d["audience"], d["reminder"]) for d in details] == [
        (1, "grid_worker", False), (2, "community_staff", False), (2, "community_staff", True),
        (2, "community_staff", True)]


def test_acknowledging_early_stops_the_chain(ctx: AppContext, clock: ManualClock) -> None:
    t0 = clock.now()
    with ctx.db.session() as session:
        aid = service.raise_alarm(session, fall(), t0).alarm_id
    clock.set(t0 + timedelta(seconds=ELDERLY_CHAIN[0].ack_within_s))
    with ctx.db.session() as session:
        assert [c.audience for c in service.escalate_due(session, clock.now())] == ["grid_worker"]
    with ctx.db.session() as session:
        service.acknowledge(call_as(ctx, session, Role.RESIDENT, HOUSEHOLD), aid, "I'm fine")
    for hours in (1, 5, 48):
        clock.set(t0 + timedelta(hours=hours))
        with ctx.db.session() as session:
            assert service.escalate_due(session, clock.now()) == []
    assert _alarm(ctx, aid).escalation_step == 1


def test_a_second_timer_run_for_the_same_moment_escalates_nothing(ctx: AppContext, clock: ManualClock) -> None:
    t0 = clock.now()
    with ctx.db.session() as session:
        service.raise_alarm(session, fall(), t0)
    later = t0 + timedelta(seconds=121)
    # Two timer processes run for the same moment: the deadline moved with the first.
    with ctx.db.session() as first, ctx.db.session() as second:
        a = service.escalate_due(first, later)
        first.commit()
        b = service.escalate_due(second, later)
    assert len(a) == 1 and b == []


def test_roll_up_counts_by_level(ctx: AppContext, clock: ManualClock) -> None:
    now = clock.now()
    with ctx.db.session() as session:
        service.raise_alarm(session, smoke(OWN, "dev-a"), now)  # critical
        service.raise_alarm(session, smoke(OWN, "dev-b", severity=Severity.MINOR), now)
        service.raise_alarm(session, smoke(NEIGHBOUR, "dev-c", severity=Severity.MAJOR), now)
        service.raise_alarm(session, smoke("ca-b2-u1-201", "dev-d", severity=Severity.WARNING), now)
        service.raise_alarm(session, smoke("ca-gate1", "dev-e", severity=Severity.INFO), now)
        service.raise_alarm(session, smoke("cb-b1-u1-101", "dev-f"), now)
        closed = service.raise_alarm(session, smoke(OWN, "dev-g"), now)
        service.clear_alarm(session, closed.cause_key, now, reason="gone")
    with ctx.db.session() as session:
        admin = call_as(ctx, session, Role.PLATFORM_ADMIN, None)

        def table(by: str, place_id: str | None = None, call=admin) -> dict[str, tuple[int, ...]]:
            return {r.place_id: tuple(r.counts[s] for s in ("critical", "major", "minor", "warning", "info"))
                    for r in service.summary(call, by=by, place_id=place_id)}

        assert table("community") == {"ca": (1, 1, 1, 1, 1), "cb": (1, 0, 0, 0, 0)}
        assert table("building") == {"ca-b1": (1, 1, 1, 0, 0), "ca-b2": (0, 0, 0, 1, 0), "cb-b1": (1, 0, 0, 0, 0)}
        assert table("household") == {"ca-b1-u1-101": (1, 0, 1, 0, 0), "ca-b1-u1-102": (0, 1, 0, 0, 0),
                                      "ca-b2-u1-201": (0, 0, 0, 1, 0), "cb-b1-u1-101": (1, 0, 0, 0, 0)}
        assert table("community", "ca-g1") == {"ca": (1, 1, 1, 0, 0)}
        grid = call_as(ctx, session, Role.GRID_WORKER, GRID)
        assert table("community", call=grid) == {"ca": (1, 1, 1, 0, 0)}
        resident = call_as(ctx, session, Role.RESIDENT, HOUSEHOLD)
        assert table("building", call=resident) == {"ca-b1": (1, 0, 1, 0, 0)}


def test_timer_pass_hands_escalations_to_listeners_after_commit(ctx: AppContext, clock: ManualClock) -> None:
    from cityweave.alarms.timer import run_escalations

    t0 = clock.now()
    with ctx.db.session() as session:
        aid = service.raise_alarm(session, fall(), t0).alarm_id
    heard: list[tuple[str, str | None, int]] = []

    def listener(change: AlarmChange) -> None:
        with ctx.db.session() as session:  # runs after commit: the move is visible elsewhere
            heard.append((change.change, change.audience, session.get(Alarm, change.alarm_id).escalation_step))

    assert run_escalations(ctx.db, t0 + timedelta(seconds=60), [listener]) == []
    changes = run_escalations(ctx.db, t0 + timedelta(seconds=120), [listener])
    assert [c.alarm_id for c in changes] == [aid]
    assert heard == [("escalated", "grid_worker", 1)]
