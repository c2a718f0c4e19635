"""The alarm catch-up sweep on SQLite and PostgreSQL: a raised or escalated step whose outbox rows
were never written (the notifier's write failed, or the process died after the alarm's commit) is
queued with the rows the notifier would have written, once, within the window, for open alarms."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.exc import OperationalError

from cityweave.accounts.models import Role
from cityweave.alarms import service
from cityweave.alarms.escalation import SAFETY_CHAIN
from cityweave.alarms.events import AlarmChange
from cityweave.clock import ManualClock
from cityweave.context import AppContext
from cityweave.notifications import alarms as adapter
from cityweave.notifications.alarms import AlarmNotifier, catch_up
from cityweave.notifications.hub import NotificationHub
from cityweave.notifications.models import Notification, NotificationStatus
from cityweave.notifications.service import Notifications
from tests.alarms.support import smoke
from tests.world import World

COLUMNS = ("user_id", "channel", "kind", "severity", "subject_key", "body_key", "params", "place_path", "ref",
           "status", "attempts", "next_attempt_at", "created_at", "dedupe_key")


def outbox(ctx: AppContext) -> set[tuple[Any, ...]]:
    with ctx.db.session() as session:
        rows = session.execute(select(Notification).order_by(Notification.id)).scalars()
        return {tuple(repr(getattr(row, c)) for c in COLUMNS) for row in rows}


def count(ctx: AppContext) -> int:
    with ctx.db.session() as session:
        return session.execute(select(func.count()).select_from(Notification)).scalar_one()


def clear_outbox(ctx: AppContext) -> None:
    with ctx.db.session() as session:
        session.execute(delete(Notification))


def raise_(ctx: AppContext, clock: ManualClock, **kwargs: Any) -> AlarmChange:
    """Raise and commit, without telling the notifier: the process died right after the commit."""
    with ctx.db.session() as session:
        return service.raise_alarm(session, smoke(**kwargs), clock.now())


def notifier(ctx: AppContext) -> AlarmNotifier:
    return AlarmNotifier(ctx, NotificationHub())


@pytest.mark.parametrize("chain", [SAFETY_CHAIN, ()], ids=["chain", "no-chain"])
def test_a_missed_raise_is_queued_as_the_notifier_would_have(ctx: AppContext, world: World, clock: ManualClock,
                                                            chain: Any) -> None:
    raised = raise_(ctx, clock, escalation=chain)
    assert count(ctx) == 0
    clock.advance(minutes=2)
    assert catch_up(ctx) > 0
    recovered = outbox(ctx)
    # The same rows the notifier writes when it runs (same dedupe keys, texts, times).
    clear_outbox(ctx)
    clock.set(raised.at)  # the notifier runs right after the commit
    notifier(ctx)(raised)
    assert outbox(ctx) == recovered
    family = {world.user_ids[Role.RESIDENT], world.household_user["ca-b1-u1-101"]}
    expected = family if chain else family | {world.user_ids[Role.PROPERTY_STAFF]}
    with ctx.db.session() as session:
        assert set(session.execute(select(Notification.user_id)).scalars()) == expected


def test_a_failed_notifier_write_is_recovered(ctx: AppContext, world: World, clock: ManualClock,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    raised = raise_(ctx, clock, escalation=SAFETY_CHAIN)
    failed: list[int] = []

    def locked(*_: Any, **__: Any) -> int:
        raise OperationalError("INSERT INTO notifications", {}, Exception("database is locked"))

    with monkeypatch.context() as patch:
        patch.setattr(adapter, "enqueue_alarm", locked)
        AlarmNotifier(ctx, NotificationHub(), on_failed=lambda: failed.append(1))(raised)
    assert failed == [1] and count(ctx) == 0  # only logged by the notifier
    written = catch_up(ctx)
    assert written == count(ctx) == 4  # the family (two residents), critical: sms and voice each
    assert {row[COLUMNS.index("channel")] for row in outbox(ctx)} == {"'sms'", "'voice'"}


def test_nothing_is_queued_twice(ctx: AppContext, world: World, clock: ManualClock) -> None:
    # After the notifier wrote: nothing to do.
    raised = raise_(ctx, clock, escalation=SAFETY_CHAIN)
    notifier(ctx)(raised)
    before = outbox(ctx)
    assert before and catch_up(ctx) == 0 and outbox(ctx) == before
    # A missed step: queued by the first sweep only.
    clock.advance(minutes=1)
    raise_(ctx, clock, device_id="dev-smoke0002", escalation=())
    first = catch_up(ctx)
    assert first > 0 and count(ctx) == len(before) + first
    assert catch_up(ctx) == 0 and catch_up(ctx, clock.advance(minutes=5)) == 0
    assert count(ctx) == len(before) + first
    # Sent (or folded) rows count as queued too.
    with ctx.db.session() as session:
        session.execute(Notification.__table__.update().values(status=NotificationStatus.SENT))
    assert catch_up(ctx) == 0


def test_steps_older_than_the_window_are_not_sent(ctx: AppContext, world: World, clock: ManualClock) -> None:
    raise_(ctx, clock, escalation=SAFETY_CHAIN)
    clock.advance(minutes=61)
    assert catch_up(ctx) == 0 and count(ctx) == 0
    assert catch_up(ctx, minutes=0) == 0  # 0 turns it off
    assert catch_up(ctx, minutes=62) > 0  # within a wider window it would have been


def test_a_step_inside_the_window_is_sent(ctx: AppContext, world: World, clock: ManualClock) -> None:
    raise_(ctx, clock, escalation=SAFETY_CHAIN)
    clock.advance(minutes=59)
    assert catch_up(ctx) > 0


@pytest.mark.parametrize("close", ["cleared", "resolved"])
def test_an_alarm_closed_before_the_sweep_is_not_sent(ctx: AppContext, world: World, clock: ManualClock,
                                                      close: str) -> None:
    raised = raise_(ctx, clock, escalation=SAFETY_CHAIN)
    clock.advance(minutes=1)
    with ctx.db.session() as session:
        if close == "cleared":
            assert service.clear_alarm(session, raised.cause_key, clock.now(), reason="smoke gone")
        else:
            from cityweave.alarms.models import Alarm, AlarmStatus
            alarm = session.get(Alarm, raised.alarm_id)
            service._close(alarm, AlarmStatus.RESOLVED, clock.now())
    assert catch_up(ctx) == 0 and count(ctx) == 0
    # An acknowledged (still open) alarm's step is still recovered.
    clock.advance(minutes=1)
    other = raise_(ctx, clock, device_id="dev-smoke0003", escalation=SAFETY_CHAIN)
    with ctx.db.session() as session:
        from cityweave.alarms.models import Alarm, AlarmStatus
        session.get(Alarm, other.alarm_id).status = AlarmStatus.ACKNOWLEDGED
    assert catch_up(ctx) > 0


def test_a_missed_escalation_is_recovered(ctx: AppContext, world: World, clock: ManualClock) -> None:
    raised = raise_(ctx, clock, escalation=SAFETY_CHAIN)
    notifier(ctx)(raised)  # the raise was told
    told = outbox(ctx)
    clock.advance(seconds=61)
    with ctx.db.session() as session:
        ctx.db.write_first(session)
        [escalated] = service.escalate_due(session, clock.now())
    assert escalated.change == "escalated" and escalated.audience == "property_staff"
    clock.advance(seconds=30)
    assert catch_up(ctx) > 0
    recovered = outbox(ctx) - told
    assert recovered and {row[COLUMNS.index("user_id")] for row in recovered} == {
        repr(world.user_ids[Role.PROPERTY_STAFF])}
    assert all("escalated" in row[COLUMNS.index("subject_key")] for row in recovered)
    # What the notifier would have written for that step.
    with ctx.db.session() as session:
        session.execute(delete(Notification).where(Notification.subject_key.like("%escalated%")))
    clock.set(escalated.at)
    notifier(ctx)(escalated)
    assert outbox(ctx) - told == recovered


def test_notifications_start_catches_up_and_old_steps_join_the_restart_digest(
        ctx: AppContext, world: World, clock: ManualClock) -> None:
    raise_(ctx, clock, escalation=SAFETY_CHAIN)  # 30 min before the restart: stale, but in the window
    clock.advance(minutes=30)
    fresh = raise_(ctx, clock, device_id="dev-smoke0004", escalation=SAFETY_CHAIN)
    notifications = Notifications(ctx, interval=3600.0)
    notifications.catch_up_every = 3600.0
    try:
        notifications.start()
        with ctx.db.session() as session:
            rows = session.execute(select(Notification)).scalars().all()
            by_ref: dict[str | None, set[NotificationStatus]] = {}
            for row in rows:
                by_ref.setdefault(row.ref, set()).add(row.status)
    finally:
        notifications.stop()
    old = next(ref for ref in by_ref if ref not in (fresh.alarm_id, None))
    assert by_ref[old] == {NotificationStatus.DIGESTED}  # folded into the restart digest, no storm
    assert NotificationStatus.DIGESTED not in by_ref[fresh.alarm_id]
    assert None in by_ref  # the digest (ref-less)
