"""The alarm adapter: each ``AlarmChange`` (after its commit) becomes a live event, and a raised or
escalated alarm also becomes outbox rows for that step's audience.

* raised: the audience of the first escalation step (``change.audience``), or, without a chain,
  the household's family and the community's property staff;
* escalated: the audience of the step reached;
* every change (repeated, acknowledged, dispatched, resolved, cleared too): a live ``alarm``
  event, seen by whoever may read alarms at that place.

The live event goes out first and costs no database work. The outbox rows are written in a
transaction of their own (the alarm's has committed); their ``dedupe_key`` names the change, so
a change handed over twice is written once.

If that write fails (database locked, disk full) or the process dies between the alarm's commit
and the write, :func:`catch_up` recovers the step from the alarm's history (``alarm_events``:
``at`` and the audience in ``details``) and queues the same rows under the same ``dedupe_key``.
It looks back ``notify_catch_up_minutes`` (default 60) and only at alarms still open; a step that
already has any outbox row is skipped, so nothing queued or sent is sent again. ``Notifications``
runs it at start (before stale rows are folded into the restart digest) and every minute.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityweave.alarms.events import AlarmChange
from cityweave.alarms.models import OPEN, Alarm, AlarmEvent, AlarmStatus, Severity
from cityweave.context import AppContext
from cityweave.notifications import recipients
from cityweave.notifications.hub import LiveEvent, NotificationHub
from cityweave.notifications.models import Notification
from cityweave.notifications.outbox import both_languages, enqueue
from cityweave.notifications.preferences import outbox_channels_for, preferences_of
from cityweave.places.models import Place

log = logging.getLogger("cityweave.notifications")

NOTIFIED_CHANGES = ("raised", "escalated")


def _value(value: Any) -> Any:
    return getattr(value, "value", value)


def live_event(change: Any) -> LiveEvent:
    data = {
        "alarm_id": change.alarm_id, "cause_key": change.cause_key, "kind": change.kind,
        "severity": _value(change.severity), "status": _value(change.status), "count": change.count,
        "change": change.change, "place_id": change.place_id, "audience": change.audience,
        "title": dict(change.title or {}), "device_id": getattr(change, "device_id", None),
        "actor": getattr(change, "actor", None), "note": getattr(change, "note", None),
        "at": change.at.isoformat(),
    }
    return LiveEvent(type="alarm", place_path=change.place_path, data=data, at=change.at)


def audiences_for(change: Any) -> tuple[str, ...]:
    if change.change == "raised":
        return (change.audience,) if change.audience else recipients.DEFAULT_AUDIENCES
    if change.change == "escalated" and change.audience:
        return (change.audience,)
    return ()


def dedupe_base(change: Any) -> str:
    """Names one notified step of an alarm; recoverable from its ``alarm_events`` row (the alarm,
    the action, ``details["audience"]``, ``at``), which :func:`catch_up` relies on."""
    return f"alarm:{change.alarm_id}:{change.change}:{change.audience or '-'}:{change.at.isoformat()}"


def enqueue_alarm(session: Session, change: Any, now: Any) -> int:
    """Outbox rows for one alarm change (none for changes that only go live)."""
    audiences = audiences_for(change)
    if not audiences:
        return 0
    user_ids = recipients.users_for_all(session, change.place_path, audiences)
    if not user_ids:
        return 0
    severity = str(_value(change.severity))
    place_name = session.execute(select(Place.name).where(Place.id == change.place_id)).scalar_one_or_none()
    params = {
        "severity": both_languages(f"notify.severity.{severity}"),
        "title": dict(change.title or {}),
        "place": place_name or change.place_id,
        "count": change.count,
        "kind": change.kind,
        "alarm_id": change.alarm_id,
    }
    step = change.change
    return enqueue(
        session, user_ids=user_ids, severity=severity, kind="alarm",
        subject_key=f"notify.alarm.{step}.subject", body_key=f"notify.alarm.{step}.body", params=params,
        dedupe_key=dedupe_base(change),
        now=now, place_path=change.place_path, ref=change.alarm_id,
    )


class AlarmNotifier:
    """Call it with an ``AlarmChange`` after commit. Subscribed on ``ctx.bus`` (changes from the
    rule engine) and listed in ``app.state.alarm_listeners`` (changes from the alarms API); a
    change that arrives both ways is handled once."""

    def __init__(self, ctx: AppContext, hub: NotificationHub,
                 on_enqueued: Callable[[], None] | None = None, *, remember: int = 4096,
                 on_failed: Callable[[], None] | None = None) -> None:
        self.ctx = ctx
        self.hub = hub
        self.on_enqueued = on_enqueued
        self.on_failed = on_failed  # the write failed: e.g. run the catch-up sweep soon
        self._seen: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()

    def _first_time(self, change: Any) -> bool:
        key = (change.alarm_id, change.change, change.count, _value(change.status), change.audience, change.at)
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = None
            if len(self._seen) > self._remember:
                self._seen.popitem(last=False)
        return True

    def __call__(self, change: Any) -> None:
        if not self._first_time(change):
            return
        self.hub.publish(live_event(change))
        if change.change not in NOTIFIED_CHANGES:
            return
        try:
            with self.ctx.db.session() as session:
                self.ctx.db.write_first(session)
                written = enqueue_alarm(session, change, self.ctx.clock.now())
        except Exception:
            log.exception("could not queue notifications for alarm %s; the catch-up sweep queues them "
                          "(within notify_catch_up_minutes, same dedupe key)", change.alarm_id)
            if self.on_failed is not None:
                self.on_failed()
            return
        if written and self.on_enqueued is not None:
            self.on_enqueued()


# -- catch-up: steps whose outbox rows were never written ----------------------------------------
def recent_steps(session: Session, now: datetime, window: timedelta) -> list[AlarmChange]:
    """Raised and escalated steps of still-open alarms in ``(now - window, now]``, oldest first,
    rebuilt as the ``AlarmChange`` the notifier was handed (one query, ``ix_alarm_events_at``)."""
    rows = session.execute(
        select(AlarmEvent.at, AlarmEvent.action, AlarmEvent.details, Alarm)
        .join(Alarm, Alarm.id == AlarmEvent.alarm_id)
        .where(AlarmEvent.at > now - window, AlarmEvent.at <= now,
               AlarmEvent.action.in_(NOTIFIED_CHANGES), Alarm.status.in_(sorted(OPEN)))
        .order_by(AlarmEvent.at, AlarmEvent.id)
    ).all()
    return [
        AlarmChange(
            alarm_id=alarm.id, cause_key=alarm.cause_key, kind=alarm.kind, severity=Severity(alarm.severity),
            status=AlarmStatus(alarm.status), count=alarm.count, place_path=alarm.place_path,
            place_id=alarm.place_id, at=at, change=action, audience=(details or {}).get("audience"),
            title=dict(alarm.title or {}), device_id=alarm.device_id,
        )
        for at, action, details, alarm in rows
    ]


def _expected_keys(session: Session, change: AlarmChange) -> list[str]:
    """The outbox keys the notifier would write for ``change`` now (as ``outbox.enqueue`` forms them)."""
    audiences = audiences_for(change)
    if not audiences:
        return []
    user_ids = recipients.users_for_all(session, change.place_path, audiences)
    preferences = preferences_of(session, user_ids)
    base, severity = dedupe_base(change), str(_value(change.severity))
    return [f"{base}:{user_id}:{channel}"[:200] for user_id in user_ids
            for channel in outbox_channels_for(preferences.get(user_id), severity)]


def catch_up(ctx: AppContext, now: datetime | None = None, *, minutes: float | None = None) -> int:
    """Queue the notifications of recent steps that have none (a failed write, a crash after the
    alarm's commit); rows written.

    * window: steps of the last ``notify_catch_up_minutes`` (older steps are not sent: no storm
      of stale alarms after a long outage); ``0`` turns it off;
    * only alarms still open (raised, acknowledged, dispatched): a closed alarm needs no SMS;
    * a step with ANY outbox row was queued by the notifier (its rows are written in one
      transaction) and is skipped, even if recipients or preferences changed since;
    * the rows get the live path's ``dedupe_key`` and the step's time as ``created_at``, so a
      concurrent notifier adds nothing, and at start ``Dispatcher.fold_stale`` folds steps older
      than ``notify_freshness_seconds`` into the restart digest like any row held over a restart.

    Reads only, unless something is missing; then one write transaction."""
    now = now or ctx.clock.now()
    minutes = getattr(ctx.settings, "notify_catch_up_minutes", 60) if minutes is None else minutes
    if minutes <= 0:
        return 0
    with ctx.db.session() as session:
        steps = recent_steps(session, now, timedelta(minutes=minutes))
        if not steps:
            return 0
        expected = {id(step): _expected_keys(session, step) for step in steps}
        keys = [key for wanted in expected.values() for key in wanted]
        present: set[str] = set()
        for start in range(0, len(keys), 500):
            present.update(session.execute(
                select(Notification.dedupe_key).where(Notification.dedupe_key.in_(keys[start:start + 500]))
            ).scalars())
    missing = [step for step in steps if expected[id(step)] and not present.intersection(expected[id(step)])]
    if not missing:
        return 0
    written = 0
    with ctx.db.session() as session:
        ctx.db.write_first(session)
        for step in missing:
            written += enqueue_alarm(session, step, step.at)
    log.warning("catch-up: queued %d notifications for %d alarm steps that had none (%s)", written,
                len(missing), ", ".join(f"{s.alarm_id} {s.change}" for s in missing[:10]))
    return written
