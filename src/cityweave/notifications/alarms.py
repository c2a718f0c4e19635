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
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityweave.context import AppContext
from cityweave.notifications import recipients
from cityweave.notifications.hub import LiveEvent, NotificationHub
from cityweave.notifications.outbox import both_languages, enqueue
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
        dedupe_key=f"alarm:{change.alarm_id}:{step}:{change.audience or '-'}:{change.at.isoformat()}",
        now=now, place_path=change.place_path, ref=change.alarm_id,
    )


class AlarmNotifier:
    """Call it with an ``AlarmChange`` after commit. Subscribed on ``ctx.bus`` (changes from the
    rule engine) and listed in ``app.state.alarm_listeners`` (changes from the alarms API); a
    change that arrives both ways is handled once."""

    def __init__(self, ctx: AppContext, hub: NotificationHub,
                 on_enqueued: Callable[[], None] | None = None, *, remember: int = 4096) -> None:
        self.ctx = ctx
        self.hub = hub
        self.on_enqueued = on_enqueued
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
            log.exception("could not queue notifications for alarm %s", change.alarm_id)
            return
        if written and self.on_enqueued is not None:
            self.on_enqueued()
