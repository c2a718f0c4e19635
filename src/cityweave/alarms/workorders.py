"""The hook from an alarm that needs people on site to a work order.

A :class:`WorkOrderOpener` opens a work order for an alarm and returns its reference. Until the
work-order issue wires its service in, :data:`DEFAULT_OPENER` opens nothing: the request is recorded
on the alarm (``work_order_requested`` set, a ``work_order_requested`` event in its history), so the
work-order service can pick up requested alarms when it lands. Which kinds need a site visit by
default is :data:`DEFAULT_SITE_VISIT_KINDS`; ``dispatch(..., work_order=True)`` asks regardless.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from cityweave.alarms.history import SYSTEM_ACTOR, log_event, system_audit
from cityweave.alarms.models import Alarm

# Kinds where somebody has to go and look: dangerous conditions and people who may be hurt.
DEFAULT_SITE_VISIT_KINDS: frozenset[str] = frozenset({
    "fire", "gas", "water_leak", "electricity", "emergency_call", "fall", "inactivity",
})


class WorkOrderOpener(Protocol):
    def open(self, session: Session, alarm: Alarm) -> str | None:
        """Open a work order for ``alarm`` in the caller's transaction; its id, or None."""
        ...


class RecordOnAlarm:
    """The default until work orders exist: open nothing; the request stays recorded on the alarm."""

    def open(self, session: Session, alarm: Alarm) -> str | None:
        return None


DEFAULT_OPENER: WorkOrderOpener = RecordOnAlarm()


def needs_site_visit(alarm: Alarm, kinds: Collection[str] = DEFAULT_SITE_VISIT_KINDS) -> bool:
    return alarm.kind in kinds


def request_work_order(session: Session, alarm: Alarm, now: datetime, *, opener: WorkOrderOpener | None = None,
                       actor_id: str | None = None, actor: str | None = None) -> str | None:
    """Ask the opener for a work order once per alarm (idempotent); record the request on the alarm.
    Requests by the platform itself (``actor_id`` None: rules) are audited here; a person's request
    is part of the audit record of the step that made it (dispatch)."""
    if alarm.work_order_requested:
        return alarm.work_order_ref
    ref = (opener or DEFAULT_OPENER).open(session, alarm)
    alarm.work_order_requested = True
    alarm.work_order_ref = ref
    alarm.updated_at = now
    log_event(session, alarm.id, now, "work_order_requested", actor_id, actor or SYSTEM_ACTOR, None,
              {"work_order_ref": ref})
    if actor_id is None:
        system_audit(session, "alarm.work_order", alarm.id, alarm.place_path, now, {"work_order_ref": ref})
    return ref
